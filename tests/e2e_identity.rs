//! Identity is best effort: a modem whose firmware refuses optional identity queries (AT+CGMR,
//! its dialect's ICCID commands) still becomes ready, gets its ICCID from another vendor's
//! form, and carries SMS. Only a port that answers `AT` is required.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{AgentProc, Broker, Central, SimModem, write_config};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);
const IMEI: &str = "861698041234567";
const ICCID: &str = "89380030123456789012";

/// Starts a simulated modem with `sim_args` and the agent for it; returns the first `ready`
/// state of slot 1.
async fn ready_state(
    name: &str,
    sim_args: &[&str],
) -> (
    tempfile::TempDir,
    Broker,
    SimModem,
    AgentProc,
    Central,
    Value,
) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sim = SimModem::start(dir.path(), "ttyGSM0", sim_args);
    let cfg = write_config(dir.path(), name, &broker.url(), &[(1, &sim.link)]);
    let mut central = Central::connect(broker.port, &format!("gsmgw/{name}/#")).await;
    let agent = AgentProc::start(&cfg);
    let state = central
        .expect(&format!("gsmgw/{name}/modem/1/state"), T, |v| {
            v["state"] == "ready"
        })
        .await;
    (dir, broker, sim, agent, central, state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modem_refusing_cgmr_becomes_ready_and_receives_sms() {
    let (_d, _b, sim, agent, mut central, state) = ready_state(
        "gw-nocgmr",
        &[
            "--dialect",
            "quectel",
            "--imei",
            IMEI,
            "--iccid",
            ICCID,
            "--reject",
            "AT+CGMR",
        ],
    )
    .await;
    assert_eq!(state["imei"], IMEI, "{state}");
    assert_eq!(state["iccid"], ICCID, "{state}");
    // The refusal was met (and is no error the agent reports).
    let st = sim.control(json!({"op": "state"}));
    assert!(
        st["commands"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "AT+CGMR"),
        "{st}"
    );
    assert!(!agent.log().contains("AT+CGMR: ERROR"), "{}", agent.log());

    // Ready means usable: an SMS comes through.
    let r = sim.control(json!({"op": "sms", "from": "+380671112233", "text": "still here"}));
    assert_eq!(r["ok"], true, "{r}");
    let ev = central
        .expect("gsmgw/gw-nocgmr/event/sms-received", T, |v| {
            v["text"] == "still here"
        })
        .await;
    assert_eq!(ev["slot"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modem_refusing_its_dialects_iccid_commands_gets_iccid_from_another_vendor_form() {
    // A Quectel-identified modem whose firmware lacks AT+QCCID and AT+CCID but answers the
    // Sierra form AT!ICCID? ("ICCID: 8938...").
    let (_d, _b, sim, _agent, _central, state) = ready_state(
        "gw-iccid",
        &[
            "--dialect",
            "quectel",
            "--imei",
            IMEI,
            "--iccid",
            ICCID,
            "--reject",
            "AT+QCCID",
            "--reject",
            "AT+CCID",
            "--iccid-form",
            "AT!ICCID?",
        ],
    )
    .await;
    assert_eq!(state["iccid"], ICCID, "{state}");
    assert_eq!(state["imei"], IMEI, "{state}");
    let st = sim.control(json!({"op": "state"}));
    let cmds = st["commands"].as_array().unwrap();
    for c in ["AT+QCCID", "AT+CCID", "AT!ICCID?"] {
        assert!(cmds.iter().any(|x| x == c), "{c} not tried: {st}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_modem_without_any_identity_query_but_at_is_ready() {
    // Nothing optional answers: manufacturer, model, firmware and ICCID stay empty, the
    // character set stays the modem's; the modem is still ready.
    let (_d, _b, _sim, _agent, _central, state) = ready_state(
        "gw-bare",
        &[
            "--dialect",
            "generic",
            "--imei",
            IMEI,
            "--reject",
            "AT+CGMI",
            "--reject",
            "AT+GMI",
            "--reject",
            "ATI",
            "--reject",
            "AT+CGMM",
            "--reject",
            "AT+GMM",
            "--reject",
            "AT+CGMR",
            "--reject",
            "AT+GMR",
            "--reject",
            "AT+CCID",
            "--reject",
            "AT+CRSM",
            "--reject",
            "AT+CSCS",
        ],
    )
    .await;
    assert_eq!(state["iccid"], "", "{state}");
    assert_eq!(state["imei"], IMEI, "{state}");
}
