//! End to end: the agent brings up one simulated modem of each vendor dialect added for the
//! modems technicians buy (ZTE sticks, SIM800, Telit, u-blox, Sierra, Fibocom) and publishes each
//! one's identity with the dialect it detected; every dialect name is one the modem-state schema
//! allows.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{AgentProc, Broker, Central, SimModem, write_config};
use gsmgw_drivers::modem::Dialect;
use serde_json::Value;

const T: Duration = Duration::from_secs(40);

/// The dialect names the modem-state schema allows.
fn schema_dialects() -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/schema/modem-state.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["properties"]["dialect"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_dialect_is_in_the_modem_state_schema() {
    let allowed = schema_dialects();
    for d in Dialect::ALL {
        assert!(
            allowed.iter().any(|a| a == d.as_str()),
            "{d} not in {allowed:?}"
        );
    }
    assert_eq!(allowed.len(), Dialect::ALL.len() + 1, "{allowed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_identifies_each_new_dialect() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let rows = [
        ("zte", "ZTE CORPORATION", "89380030111222333444"),
        ("simcom2g", "SIMCOM_Ltd", "8938001098765432109"),
        ("telit", "Telit", "89390100001234567890"),
        ("ublox", "u-blox", "8939107800023416395"),
        (
            "sierra",
            "Sierra Wireless, Incorporated",
            "89490200000863940628",
        ),
        ("fibocom", "Fibocom", "89860117851023456789"),
    ];
    let sims: Vec<SimModem> = rows
        .iter()
        .enumerate()
        .map(|(i, (dialect, _, iccid))| {
            SimModem::start(
                dir.path(),
                &format!("modem{}", i + 1),
                &[
                    "--dialect",
                    dialect,
                    "--imei",
                    &format!("35209900176148{i}"),
                    "--iccid",
                    iccid,
                    "--sim-busy-secs",
                    "0",
                ],
            )
        })
        .collect();
    let modems: Vec<(u16, &std::path::Path)> = sims
        .iter()
        .enumerate()
        .map(|(i, s)| (i as u16 + 1, s.link.as_path()))
        .collect();
    let cfg = write_config(dir.path(), "gw-dialects", &broker.url(), &modems);
    let mut central = Central::connect(broker.port, "gsmgw/gw-dialects/#").await;
    let agent = AgentProc::start(&cfg);
    let allowed = schema_dialects();
    for (i, (dialect, manufacturer, iccid)) in rows.iter().enumerate() {
        let topic = format!("gsmgw/gw-dialects/modem/{}/state", i + 1);
        let m = central.expect(&topic, T, |v| v["state"] == "ready").await;
        assert_eq!(m["dialect"], *dialect, "{m}");
        assert!(allowed.iter().any(|a| a == dialect));
        assert_eq!(m["manufacturer"], *manufacturer, "{m}");
        assert_eq!(m["imei"], format!("35209900176148{i}"), "{m}");
        assert_eq!(m["iccid"], *iccid, "{m}");
        assert_eq!(m["sim"], "ready", "{m}");
        // None of them has a PCM voice port: the state says so.
        assert_eq!(m["pcm_voice"], false, "{m}");
    }
    // The dialects' own commands reached the modems: each ICCID by its vendor's command.
    for (sim, cmd) in sims.iter().zip([
        "AT+ZGETICCID",
        "AT+CCID",
        "AT#CCID",
        "AT+CCID",
        "AT!ICCID?",
        "AT+CCID",
    ]) {
        let log = sim.control(serde_json::json!({"op": "state"})).to_string();
        assert!(log.contains(cmd), "{cmd}: {log}");
    }
    let status = agent.terminate();
    assert!(status.success(), "agent exit status {status:?}");
}
