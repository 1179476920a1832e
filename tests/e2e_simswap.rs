//! SIM hot swap, end to end: on every dialect whose modems report it (+QSIMSTAT,
//! +SIMCARD, ^SIMST, +CSMINS, #QSS, +SIM: Removed/Inserted), a SIM pulled out shows in the
//! slot's state at once — not at the next health check, an hour away in this test — and a SIM
//! pushed back in brings the slot up again (PIN, IMSI, ICCID read anew) to ready.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{AgentProc, Broker, Central, SimModem, write_config_with};
use serde_json::json;

const T: Duration = Duration::from_secs(30);
/// Much less than the health interval: only the modem's own report can explain it.
const AT_ONCE: Duration = Duration::from_secs(8);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pulled_sim_shows_at_once_and_a_new_one_brings_the_slot_up() {
    let dialects = [
        "quectel", "simcom", "huawei", "simcom2g", "telit", "fibocom",
    ];
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let sims: Vec<SimModem> = dialects
        .iter()
        .enumerate()
        .map(|(i, d)| {
            SimModem::start(
                dir.path(),
                &format!("modem{}", i + 1),
                &["--dialect", d, "--imsi", &format!("25501000000000{i}")],
            )
        })
        .collect();
    let modems: Vec<(u16, &std::path::Path, &str)> = sims
        .iter()
        .enumerate()
        .map(|(i, s)| (i as u16 + 1, s.link.as_path(), ""))
        .collect();
    let cfg = write_config_with(
        dir.path(),
        "gw-swap",
        &broker.url(),
        "health_interval_secs = 3600",
        &modems,
    );
    let mut central = Central::connect(broker.port, "gsmgw/gw-swap/#").await;
    let agent = AgentProc::start(&cfg);
    for slot in 1..=dialects.len() {
        central
            .expect(&format!("gsmgw/gw-swap/modem/{slot}/state"), T, |v| {
                v["state"] == "ready"
            })
            .await;
    }
    for (i, (sim, dialect)) in sims.iter().zip(dialects).enumerate() {
        let topic = format!("gsmgw/gw-swap/modem/{}/state", i + 1);
        assert_eq!(
            sim.control(json!({"op": "sim", "inserted": false}))["ok"],
            true
        );
        let out = central
            .expect(&topic, AT_ONCE, |v| v["sim"] == "absent")
            .await;
        assert_ne!(out["state"], "ready", "{dialect}: {out}");
        // Another card goes in: the slot must read its identity, not keep the old one.
        let imsi = format!("25503999999999{i}");
        assert_eq!(
            sim.control(json!({"op": "sim", "inserted": true, "imsi": imsi}))["ok"],
            true
        );
        let back = central
            .expect(&topic, T, |v| v["state"] == "ready" && v["sim"] == "ready")
            .await;
        assert_eq!(back["imsi"], imsi, "{dialect}: {back}\n{}", agent.log());
    }
    let log = agent.log();
    assert_eq!(
        log.matches("SIM removed").count(),
        dialects.len(),
        "one line per pulled SIM:\n{log}"
    );
}
