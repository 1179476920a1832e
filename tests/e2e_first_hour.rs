//! What a technician meets in the first minutes: a slot whose port is missing says so.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{AgentProc, Broker, Central, write_config};

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_port_is_said_once_in_the_log_and_in_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let missing = Path::new("/nonexistent/ttyUSB9");
    let cfg = write_config(dir.path(), "gw-first", &broker.url(), &[(1, missing)]);
    let mut central = Central::connect(broker.port, "gsmgw/gw-first/#").await;
    let agent = AgentProc::start(&cfg);
    let want = "port /nonexistent/ttyUSB9 does not exist; waiting for it";
    let s = central
        .expect("gsmgw/gw-first/modem/1/state", T, |v| v["error"] == want)
        .await;
    assert_eq!(s["state"], "absent", "{s}");
    // The log says it at WARN, once, although the channel keeps looking for the port.
    let line = format!("slot 1: {want}");
    let deadline = tokio::time::Instant::now() + T;
    while !agent.log().contains(&line) {
        assert!(tokio::time::Instant::now() < deadline, "{}", agent.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = agent.log();
    let warns: Vec<&str> = log.lines().filter(|l| l.contains(&line)).collect();
    assert_eq!(warns.len(), 1, "{log}");
    assert!(warns[0].contains("WARN"), "{log}");
    // No Rust forms in what people read.
    for bad in ["error=None", "Some(", "None"] {
        assert!(!log.contains(bad), "{bad} in {log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sim_starting_up_is_not_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sim = common::SimModem::start(dir.path(), "m1", &["--dialect", "quectel"]);
    let cfg = write_config(dir.path(), "gw-sim", &broker.url(), &[(1, &sim.link)]);
    let mut central = Central::connect(broker.port, "gsmgw/gw-sim/#").await;
    let agent = AgentProc::start(&cfg);
    central
        .expect("gsmgw/gw-sim/modem/1/state", T, |v| v["state"] == "ready")
        .await;
    // A message received once ready is read (the sweep after the SIM's start worked).
    let r = sim.control(serde_json::json!({"op": "sms", "from": "+380501234567", "text": "hi"}));
    assert_eq!(r["ok"], true, "{r}");
    central
        .expect("gsmgw/gw-sim/event/sms-received", T, |v| v["text"] == "hi")
        .await;
    let log = agent.log();
    let warns: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    assert!(
        warns.is_empty(),
        "a clean start warns about nothing: {warns:#?}"
    );
}
