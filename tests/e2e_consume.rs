//! docs/examples/consume_events.py (the "consume the events" page) against a real gateway:
//! it sees the events, skips a duplicate by `id`, and reports a `seq` gap.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{AgentProc, Broker, Central, SimModem, write_config};
use serde_json::json;

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_consumer_dedupes_by_id_and_spots_seq_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sim = SimModem::start(dir.path(), "m1", &[]);
    let cfg = write_config(dir.path(), "gw-py", &broker.url(), &[(1, &sim.link)]);
    let mut central = Central::connect(broker.port, "gsmgw/gw-py/#").await;
    let _agent = AgentProc::start(&cfg);
    central
        .expect("gsmgw/gw-py/modem/1/state", T, |v| v["state"] == "ready")
        .await;

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/examples/consume_events.py"
    );
    // Debian's python3 sees python3-paho-mqtt; another python3 earlier on PATH may not.
    let python = ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .args(["-c", "import paho.mqtt.client"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("a python3 with paho-mqtt (tests/run installs python3-paho-mqtt)");
    let mut child = Command::new(python)
        .arg(script)
        .args(["--port", &broker.port.to_string(), "--count", "3"])
        .args(["--client-id", &format!("consumer-{}", std::process::id())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (tests/run installs python3-paho-mqtt)");
    let (tx, rx) = mpsc::channel::<String>();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let mut next_line = |want: &str| -> String {
        let deadline = std::time::Instant::now() + T;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => {
                    lines.push(l.clone());
                    if l.contains(want) {
                        return l;
                    }
                }
                Err(_) => panic!("no {want:?} from the consumer; it printed {lines:#?}"),
            }
        }
    };
    next_line("connected");

    for text in ["one", "two"] {
        let r = sim.control(json!({"op": "sms", "from": "+380501234567", "text": text}));
        assert_eq!(r["ok"], true, "{r}");
    }
    let first = central
        .expect("gsmgw/gw-py/event/sms-received", T, |v| v["text"] == "one")
        .await;
    let second = central
        .expect("gsmgw/gw-py/event/sms-received", T, |v| v["text"] == "two")
        .await;
    next_line(&format!(
        "seq {} gsmgw/gw-py/event/sms-received",
        first["seq"]
    ));
    next_line(&format!(
        "seq {} gsmgw/gw-py/event/sms-received",
        second["seq"]
    ));
    // The same event again (as after a reconnect), then one whose seq jumps by three.
    central
        .send("gsmgw/gw-py/event/sms-received", &first.to_string())
        .await;
    next_line(&format!(
        "duplicate {} skipped",
        first["id"].as_str().unwrap()
    ));
    let mut jump = second.clone();
    let seq = second["seq"].as_u64().unwrap();
    jump["id"] = json!("0193a5c2-7b1e-7c3d-9a2b-0000000000ff");
    jump["seq"] = json!(seq + 3);
    central
        .send("gsmgw/gw-py/event/sms-received", &jump.to_string())
        .await;
    next_line(&format!(
        "gap gw-py: seq {}..{} not seen yet",
        seq + 1,
        seq + 2
    ));
    next_line(&format!("seq {} ", seq + 3));
    // --count 3: it exits by itself after the third new event.
    let deadline = std::time::Instant::now() + T;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "consumer did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status} {lines:#?}");
}
