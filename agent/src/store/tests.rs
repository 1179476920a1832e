//! Unit tests that need the writer's insides: disk full and a group that fails part-way.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;
use tokio::time::timeout;

use super::*;

const T: Duration = Duration::from_secs(30);

fn open(dir: &Path) -> Store {
    let (store, alarms) = Store::open(StoreOptions::in_dir(dir), "gw-test").expect("open");
    assert!(alarms.is_empty());
    store
}

fn ev(n: usize) -> NewEvent {
    NewEvent::new(
        "sms-received",
        EventClass::Critical,
        json!({ "n": n, "text": "x".repeat(500) }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_is_reported_and_the_writer_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let mut seqs = Vec::new();
    for i in 0..20 {
        seqs.push(store.append(ev(i)).await.expect("append").seq);
    }
    // Cap the file at its current size: the next page it needs fails with SQLITE_FULL,
    // exactly as a full file system does.
    store
        .exec_on_writer(|c| {
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            c.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
        })
        .await
        .expect("cap");
    let mut full_at = None;
    for i in 0..10_000 {
        match timeout(T, store.append(ev(i))).await.expect("append hung") {
            Ok(_) => {}
            Err(StoreError::DiskFull) => {
                full_at = Some(i);
                break;
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert!(full_at.is_some(), "never hit the cap");

    // A whole group failing with DiskFull: each caller gets DiskFull, nobody hangs.
    let mut tasks = Vec::new();
    for i in 0..32 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move { s.append(ev(i)).await }));
    }
    for t in tasks {
        let r = timeout(T, t).await.expect("hung").expect("join");
        assert_eq!(r.err(), Some(StoreError::DiskFull));
    }
    let before = store.stats().await.expect("stats works while full");

    // Free space (PUBACKs arrive): writes work again.
    store.delete(seqs.clone()).await.expect("delete while full");
    let row = timeout(T, store.append(ev(1)))
        .await
        .expect("hung")
        .expect("append after delete");
    assert_eq!(row.seq, before.next_seq, "failed appends used no seq");
    let after = store.stats().await.expect("stats");
    assert_eq!(after.rows, before.rows - seqs.len() as u64 + 1);

    // Durable: what was acknowledged is there after reopen.
    store.close().await.expect("close");
    let store = open(dir.path());
    let rows = store.pending(0, 10_000).await.expect("pending");
    assert_eq!(rows.len() as u64, after.rows);
    assert_eq!(rows.last().map(|r| r.seq), Some(row.seq));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_operation_does_not_sink_its_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let before = store.stats().await.expect("stats");

    // Hold the writer inside an operation until the others are queued behind it, so they
    // are taken as one group.
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let (entered_tx, mut entered_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let hold = {
        let s = store.clone();
        tokio::spawn(async move {
            s.exec_on_writer(move |_| {
                let _ = entered_tx.send(());
                let rx = release_rx.lock().unwrap_or_else(|p| p.into_inner());
                let _ = rx.recv_timeout(Duration::from_secs(20));
                Ok(())
            })
            .await
        })
    };
    timeout(T, entered_rx.recv())
        .await
        .expect("writer never ran hold");
    let a = {
        let s = store.clone();
        tokio::spawn(async move { s.append(ev(1)).await })
    };
    let bad = {
        let s = store.clone();
        tokio::spawn(async move {
            s.exec_on_writer(|c| c.execute_batch("INSERT INTO no_such_table VALUES (1)"))
                .await
        })
    };
    let b = {
        let s = store.clone();
        tokio::spawn(async move { s.append(ev(2)).await })
    };
    // The writer is busy with `hold`: wait until the three are queued behind it.
    let deadline = tokio::time::Instant::now() + T;
    while store.inner.tx.capacity() > store.inner.tx.max_capacity() - 3 {
        assert!(tokio::time::Instant::now() < deadline, "ops never queued");
        tokio::task::yield_now().await;
    }
    release_tx.send(()).expect("release");

    timeout(T, hold)
        .await
        .expect("hung")
        .expect("join")
        .expect("hold");
    let a = timeout(T, a)
        .await
        .expect("hung")
        .expect("join")
        .expect("a");
    let b = timeout(T, b)
        .await
        .expect("hung")
        .expect("join")
        .expect("b");
    let bad = timeout(T, bad).await.expect("hung").expect("join");
    assert!(matches!(bad, Err(StoreError::Sqlite(_))), "{bad:?}");
    // The two appends raced to the queue: either order, both stored.
    let mut expected = vec![a.seq, b.seq];
    expected.sort_unstable();
    let rows = store.pending(0, 10).await.expect("pending");
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), expected);
    let after = store.stats().await.expect("stats");
    assert_eq!(after.next_seq, before.next_seq + 2);
}

#[test]
fn envelope_is_valid_json_with_seq_spliced_in() {
    let ev = NewEvent::new(
        "modem",
        EventClass::Telemetry,
        json!({ "slot": 2, "seq": 99, "gateway": "evil", "text": "quote \" and \u{e9}" }),
    );
    let p = Prepared::new(ev, &envelope::gateway_json("gw \"1\"").expect("gw")).expect("prep");
    let v: Value = serde_json::from_slice(&p.payload(123_456)).expect("json");
    assert_eq!(v["seq"], 123_456);
    assert_eq!(v["gateway"], "gw \"1\"");
    assert_eq!(v["type"], "modem");
    assert_eq!(v["slot"], 2);
    assert_eq!(v["text"], "quote \" and \u{e9}");
    assert_eq!(v["id"].as_str(), Some(p.id.as_str()));
}
