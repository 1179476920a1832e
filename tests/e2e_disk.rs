//! A full data disk, end to end: the agent's data_dir on a small tmpfs that the test fills.
//! The central server must learn why the box went quiet (an alarm and the retained status),
//! nothing may be lost or published twice, and the box must come back by itself once a
//! little space is freed. Needs root (mount); CI runs as root.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{AgentProc, Broker, Central, SimModem, write_config_with};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);
const FROM: &str = "+380671112233";

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).expect("mount point");
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(
            st.success(),
            "mounting a tmpfs needs root (CI runs the tests as root)"
        );
        Tmpfs {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Writes `path` until the file system has no byte left; returns its size.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("filler");
    let block = vec![0x5au8; 64 << 10];
    let mut n = 0u64;
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(_) => break,
        }
    }
    n
}

fn is_text(text: &'static str) -> impl Fn(&Value) -> bool {
    move |v: &Value| v["text"] == text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_alarmed_loses_nothing_and_recovers_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("data"), "16m");
    let broker = Broker::start();
    let sim = SimModem::start(dir.path(), "modem1", &["--dialect", "quectel"]);
    let cfg = write_config_with(
        dir.path(),
        "gw-disk",
        &broker.url(),
        "health_interval_secs = 2",
        &[(1, &sim.link, "")],
    );
    let mut central = Central::connect(broker.port, "gsmgw/gw-disk/#").await;
    let agent = AgentProc::start(&cfg);
    let status = "gsmgw/gw-disk/status";
    central
        .expect(status, T, |v| v["online"] == true && v["storage"] == "ok")
        .await;
    central
        .expect("gsmgw/gw-disk/modem/1/state", T, |v| v["state"] == "ready")
        .await;
    for i in 0..5 {
        let text = format!("before {i}");
        sim.control(json!({"op": "sms", "from": FROM, "text": text}));
        central
            .expect("gsmgw/gw-disk/event/sms-received", T, |v| v["text"] == text)
            .await;
    }

    // The disk fills up (another program, a log gone wild).
    let filler = disk.path.join("filler");
    let size = fill(&filler);
    let alarm = central
        .expect("gsmgw/gw-disk/event/alarm", T, |v| v["code"] == "disk-full")
        .await;
    assert!(alarm["seq"].as_u64().is_some(), "a stored alarm: {alarm}");
    central
        .expect(status, T, |v| v["online"] == true && v["storage"] == "full")
        .await;
    // A message arriving now stays on the SIM: refused by the store, not lost.
    sim.control(json!({"op": "sms", "from": FROM, "text": "while full"}));
    common::wait_for(T, "the modem to hold the message", || {
        (sim.stored_count() == 1).then_some(())
    });
    // A command is refused with a reason, not dropped.
    central
        .send(
            "gsmgw/gw-disk/cmd/ping",
            &json!({"request_id": "ping-full"}).to_string(),
        )
        .await;
    let reply = central
        .expect("gsmgw/gw-disk/reply/ping-full", T, |_| true)
        .await;
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["error"]["code"], "disk-full", "{reply}");
    assert_eq!(sim.stored_count(), 1, "still on the SIM");

    // 1 MiB freed: the box takes data again by itself, and the waiting SMS comes through.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .expect("filler");
    f.set_len(size - (1 << 20)).expect("free 1 MiB");
    drop(f);
    central
        .expect("gsmgw/gw-disk/event/alarm", T, |v| v["code"] == "disk-ok")
        .await;
    central
        .expect(status, T, |v| v["online"] == true && v["storage"] == "ok")
        .await;
    central
        .expect("gsmgw/gw-disk/event/sms-received", T, is_text("while full"))
        .await;
    common::wait_for(T, "the SIM to be emptied", || {
        (sim.stored_count() == 0).then_some(())
    });

    // A restart publishes nothing again.
    assert_eq!(agent.terminate().code(), Some(0));
    let _agent = AgentProc::start(&cfg);
    sim.control(json!({"op": "sms", "from": FROM, "text": "sentinel"}));
    central
        .expect("gsmgw/gw-disk/event/sms-received", T, is_text("sentinel"))
        .await;

    let events: Vec<&Value> = central
        .log
        .iter()
        .filter(|(t, _)| t.contains("/event/"))
        .map(|(_, v)| v)
        .collect();
    let seqs: Vec<u64> = events.iter().filter_map(|v| v["seq"].as_u64()).collect();
    assert_eq!(seqs.len(), events.len(), "every event has a seq");
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seq went backwards or repeated: {seqs:?}"
    );
    let ids: BTreeSet<&str> = events.iter().filter_map(|v| v["id"].as_str()).collect();
    assert_eq!(ids.len(), events.len(), "an event was published twice");
    let texts: Vec<&str> = events
        .iter()
        .filter(|v| v["type"] == "sms-received")
        .filter_map(|v| v["text"].as_str())
        .collect();
    assert_eq!(
        texts,
        [
            "before 0",
            "before 1",
            "before 2",
            "before 3",
            "before 4",
            "while full",
            "sentinel"
        ]
    );
}
