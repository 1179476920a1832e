//! Recovery without restarting the process: each injected fault ends with the modem ready
//! again, and the central server's `modem` events say what happened. Each test prints the
//! time from fault to ready.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{AgentProc, Broker, Central, SimModem, write_config_with};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(60);
const IMEI: &str = "861698041234567";

fn event_kind(kind: &'static str) -> impl Fn(&Value) -> bool {
    move |v: &Value| v["kind"] == kind
}

async fn start(
    name: &str,
    sim_args: &[&str],
    gateway_extra: &str,
    modem_extra: &str,
) -> (tempfile::TempDir, Broker, SimModem, AgentProc, Central) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sim = SimModem::start(dir.path(), "ttyGSM0", sim_args);
    let gateway_extra = gateway_extra.replace("{dir}", &dir.path().display().to_string());
    let modem_extra = modem_extra.replace("{dir}", &dir.path().display().to_string());
    let cfg = write_config_with(
        dir.path(),
        name,
        &broker.url(),
        &format!("health_interval_secs = 1\n{gateway_extra}"),
        &[(1, &sim.link, &modem_extra)],
    );
    let mut central = Central::connect(broker.port, &format!("gsmgw/{name}/#")).await;
    let agent = AgentProc::start(&cfg);
    central
        .expect(&format!("gsmgw/{name}/modem/1/state"), T, |v| {
            v["state"] == "ready"
        })
        .await;
    (dir, broker, sim, agent, central)
}

fn report(what: &str, since: Instant, recovered: &Value) {
    eprintln!(
        "RECOVERY {what}: fault to ready {} ms (agent's own count from detection: {} ms)",
        since.elapsed().as_millis(),
        recovered["recovery_ms"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_is_cured_by_soft_reset() {
    let (_d, _b, sim, _agent, mut central) =
        start("gw-soft", &["--dialect", "quectel", "--imei", IMEI], "", "").await;
    let t0 = Instant::now();
    assert_eq!(
        sim.control(json!({"op": "hang", "enabled": true, "cured_by": "reset"}))["ok"],
        true
    );
    let topic = "gsmgw/gw-soft/event/modem";
    let ev = central.expect(topic, T, event_kind("soft-reset")).await;
    assert_eq!(ev["slot"], 1);
    assert_eq!(ev["type"], "modem");
    assert!(
        ev["id"].as_str().is_some() && ev["seq"].as_u64().is_some(),
        "{ev}"
    );
    let rec = central.expect(topic, T, event_kind("recovered")).await;
    report("hang -> soft reset", t0, &rec);
    let st = sim.control(json!({"op": "state"}));
    assert!(st["counters"]["reboots"].as_u64().unwrap_or(0) >= 1, "{st}");
    // No power cycle was needed (and none is configured).
    assert!(!central.log.iter().any(|(_, v)| v["kind"] == "power-cycle"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_that_survives_soft_reset_is_cured_by_power_cycle() {
    // The board's power pin for slot 1 is the simulator's power line (its control socket).
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sim = SimModem::start(
        dir.path(),
        "ttyGSM0",
        &["--dialect", "simcom", "--imei", IMEI],
    );
    std::fs::write(
        dir.path().join("board.toml"),
        format!(
            "name = \"sim-board\"\n[[modem]]\nslot = 1\npower_socket = \"{}\"\npower_cycle = [{{ high = false, hold_ms = 300 }}, {{ high = true, hold_ms = 0 }}]\n",
            sim.control.display()
        ),
    )
    .unwrap();
    let cfg = write_config_with(
        dir.path(),
        "gw-power",
        &broker.url(),
        &format!(
            "health_interval_secs = 1\nboard_profile = \"{}/board.toml\"",
            dir.path().display()
        ),
        &[(1, &sim.link, "")],
    );
    let mut central = Central::connect(broker.port, "gsmgw/gw-power/#").await;
    let _agent = AgentProc::start(&cfg);
    central
        .expect("gsmgw/gw-power/modem/1/state", T, |v| v["state"] == "ready")
        .await;

    let t0 = Instant::now();
    assert_eq!(
        sim.control(json!({"op": "hang", "enabled": true, "cured_by": "power"}))["ok"],
        true
    );
    let topic = "gsmgw/gw-power/event/modem";
    central.expect(topic, T, event_kind("soft-reset")).await;
    central.expect(topic, T, event_kind("power-cycle")).await;
    let rec = central.expect(topic, T, event_kind("recovered")).await;
    report("hang surviving soft reset -> power cycle", t0, &rec);
    let st = sim.control(json!({"op": "state"}));
    assert_eq!(st["counters"]["power_offs"], 1, "{st}");
    assert_eq!(st["counters"]["power_ons"], 1, "{st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renumbered_port_is_found_again_by_imei() {
    let (d, _b, sim, _agent, mut central) = start(
        "gw-renum",
        &["--dialect", "huawei", "--imei", IMEI],
        "port_scan = [\"{dir}/ttyGSM*\"]",
        &format!("imei = \"{IMEI}\""),
    )
    .await;
    let t0 = Instant::now();
    assert_eq!(sim.control(json!({"op": "unplug"}))["ok"], true);
    let new_link = d.path().join("ttyGSM1");
    let r = sim.control(json!({"op": "replug", "link": new_link.display().to_string()}));
    assert_eq!(r["ok"], true, "{r}");
    let topic = "gsmgw/gw-renum/event/modem";
    let found = central.expect(topic, T, event_kind("port-found")).await;
    assert_eq!(found["port"], new_link.display().to_string());
    let st = central
        .expect("gsmgw/gw-renum/modem/1/state", T, |v| {
            v["state"] == "ready" && v["port"] == new_link.display().to_string()
        })
        .await;
    assert_eq!(st["imei"], IMEI);
    eprintln!(
        "RECOVERY unplug -> replug under another name: fault to ready {} ms",
        t0.elapsed().as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_sim_busy_after_reboot_are_shrugged_off() {
    let (_d, _b, sim, _agent, mut central) = start(
        "gw-garbage",
        &[
            "--dialect",
            "generic",
            "--imei",
            IMEI,
            "--sim-busy-secs",
            "3",
        ],
        "",
        "",
    )
    .await;
    // Garbage on the line: the modem stays ready; health checks keep passing.
    let t0 = Instant::now();
    assert_eq!(
        sim.control(json!({"op": "garbage", "len": 4096}))["ok"],
        true
    );
    let before = sim.control(json!({"op": "state"}))["counters"]["commands"]
        .as_u64()
        .unwrap_or(0);
    common::wait_for(T, "two more health checks answered", || {
        let n = sim.control(json!({"op": "state"}))["counters"]["commands"]
            .as_u64()
            .unwrap_or(0);
        (n >= before + 4).then_some(())
    });
    assert!(
        !central.log.iter().any(|(_, v)| v["kind"] == "soft-reset"),
        "garbage must not trigger a reset"
    );
    // The modem reboots by itself: port gone, back under a new pty, SIM busy for 3 s.
    let t1 = Instant::now();
    assert_eq!(sim.control(json!({"op": "reboot"}))["ok"], true);
    let topic = "gsmgw/gw-garbage/modem/1/state";
    central.expect(topic, T, |v| v["state"] == "absent").await;
    central.expect(topic, T, |v| v["state"] == "ready").await;
    eprintln!(
        "RECOVERY garbage: stayed ready, health checks answered within {} ms; reboot with 3 s SIM busy: fault to ready {} ms",
        t1.duration_since(t0).as_millis(),
        t1.elapsed().as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pin_is_tried_once_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sim = SimModem::start(dir.path(), "ttyGSM0", &["--pin", "1234", "--imei", IMEI]);
    let cfg = write_config_with(
        dir.path(),
        "gw-pin",
        &broker.url(),
        "health_interval_secs = 1",
        &[(1, &sim.link, "pin = \"9999\"")],
    );
    let mut central = Central::connect(broker.port, "gsmgw/gw-pin/#").await;
    let _agent = AgentProc::start(&cfg);
    let st = central
        .expect("gsmgw/gw-pin/modem/1/state", T, |v| {
            v["state"] == "degraded"
        })
        .await;
    assert!(st["error"].as_str().unwrap_or("").contains("PIN"), "{st}");
    // Exactly one attempt was spent: the SIM keeps the rest for a person with the right PIN.
    let s1 = sim.control(json!({"op": "state"}));
    assert_eq!(s1.to_string().matches("AT+CPIN=").count(), 1, "{s1}");
}
