//! Crash safety: a child process appends from many tasks and prints each acknowledged seq;
//! it is SIGKILLed mid-stream, and every acknowledged event must be in the reopened store.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gsmgw_agent::store::{EventClass, NewEvent, Store, StoreOptions};
use serde_json::json;

const CHILD_ENV: &str = "GSMGW_STORE_CRASH_DIR";
/// Acknowledgements to see before pulling the plug.
const ACKS_BEFORE_KILL: usize = 3000;

/// The child's side: does nothing unless started by `acknowledged_appends_survive_sigkill`.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let (store, _) = Store::open(StoreOptions::in_dir(dir.as_ref()), "gw-crash").expect("open");
        let mut tasks = Vec::new();
        for t in 0..16u64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                // Bounded, so a child nobody kills still ends.
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let ev = NewEvent::new(
                        "sms-received",
                        EventClass::Critical,
                        json!({ "task": t, "i": i, "text": "z".repeat(150) }),
                    );
                    let row = store.append(ev).await.expect("append");
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {}", row.seq).expect("stdout");
                    out.flush().expect("flush");
                    i += 1;
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    });
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<u64>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(seq) = line.strip_prefix("ACK ").and_then(|s| s.parse().ok()) {
                if tx.send(seq).is_err() {
                    break;
                }
            }
        }
    });

    let mut acked = BTreeSet::new();
    while acked.len() < ACKS_BEFORE_KILL {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(seq) => {
                assert!(acked.insert(seq), "seq {seq} acknowledged twice");
            }
            Err(e) => {
                let _ = child.kill();
                panic!(
                    "child stopped acknowledging after {} acks: {e}",
                    acked.len()
                );
            }
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    reader.join().expect("reader");
    // Acks already in the pipe when the child died count too.
    acked.extend(rx.try_iter());

    let (store, alarms) =
        Store::open(StoreOptions::in_dir(dir.path()), "gw-crash").expect("reopen");
    assert!(alarms.is_empty(), "database damaged by a crash: {alarms:?}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let stored: BTreeSet<u64> = rt.block_on(async {
        let rows = store.pending(0, usize::MAX).await.expect("pending");
        rows.iter().map(|r| r.seq).collect()
    });
    let lost: Vec<&u64> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    // And appends go on after the newest stored seq.
    let next = rt.block_on(async {
        store
            .append(NewEvent::new("alarm", EventClass::Critical, json!({})))
            .await
            .expect("append after crash")
            .seq
    });
    assert!(stored.last().is_none_or(|&last| next > last));
}
