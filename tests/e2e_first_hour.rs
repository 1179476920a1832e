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

/// What people read at info and warn level is words, not Rust: no `Some(`, `None`, `Ok(`,
/// `Err(` or struct dumps, through a run that receives, sends, does USSD, refuses a command,
/// loses a port and recovers a hung modem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_and_warn_lines_read_for_people() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sim = common::SimModem::start(dir.path(), "m1", &["--dialect", "quectel"]);
    let missing = Path::new("/nonexistent/ttyUSB7");
    let cfg = common::write_config_with(
        dir.path(),
        "gw-words",
        &broker.url(),
        "health_interval_secs = 1",
        &[(1, &sim.link, "balance_ussd = \"*111#\""), (2, missing, "")],
    );
    let mut central = Central::connect(broker.port, "gsmgw/gw-words/#").await;
    let agent = AgentProc::start(&cfg);
    let t = |s: &str| format!("gsmgw/gw-words/{s}");
    central
        .expect(&t("modem/1/state"), T, |v| v["state"] == "ready")
        .await;
    let r = sim.control(serde_json::json!({"op": "sms", "from": "+380501234567", "text": "hi"}));
    assert_eq!(r["ok"], true, "{r}");
    central.expect(&t("event/sms-received"), T, |_| true).await;
    central
        .send(
            &t("cmd/sms-send"),
            r#"{"request_id":"w-1","to":"+380501234567","text":"hello"}"#,
        )
        .await;
    central
        .expect(&t("event/sms-status"), T, |v| v["state"] == "sent")
        .await;
    central
        .send(
            &t("cmd/ussd"),
            r#"{"request_id":"w-2","slot":1,"code":"*100#"}"#,
        )
        .await;
    central.expect(&t("reply/w-2"), T, |_| true).await;
    central
        .send(
            &t("cmd/sms-send"),
            r#"{"request_id":"w-3","to":"12ab","text":"x"}"#,
        )
        .await;
    central.expect(&t("reply/w-3"), T, |_| true).await;
    // A hung modem: the health check notices, a soft reset brings it back.
    let r = sim.control(serde_json::json!({"op": "hang", "enabled": true, "cured_by": "reset"}));
    assert_eq!(r["ok"], true, "{r}");
    central
        .expect(&t("event/modem"), T, |v| v["kind"] == "recovered")
        .await;
    let log = agent.log();
    let people: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" INFO ") || l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    assert!(people.len() > 10, "{log}");
    for bad in ["Some(", "None", "Ok(", "Err(", "{ "] {
        let hits: Vec<&&str> = people.iter().filter(|l| l.contains(bad)).collect();
        assert!(hits.is_empty(), "{bad:?} in what people read: {hits:#?}");
    }
}

/// On a stdin console (the demo's), `exit` does not leave a terminal that ignores everything:
/// it says how to stop, and the next command still runs.
#[test]
fn exit_on_a_stdin_console_keeps_it_answering() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gsmgw.toml");
    std::fs::write(
        &cfg,
        format!(
            "[gateway]\nid = \"gw-stdin\"\ndata_dir = \"{}\"\n\n[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\n\n[console]\ndevice = \"stdin\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut child = std::process::Command::new(common::gsmgw_bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "exit").unwrap();
    writeln!(stdin, "status").unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |want: &str| {
        let deadline = std::time::Instant::now() + T;
        while !seen.iter().any(|l: &String| l.contains(want)) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => seen.push(l),
                Err(_) => panic!("no {want:?}; the console printed {seen:#?}"),
            }
        }
    };
    wait_for("Ctrl-C stops the agent");
    wait_for("uptime");
    let _ = child.kill();
    let _ = child.wait();
}
