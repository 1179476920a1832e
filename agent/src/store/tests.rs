//! Unit tests that need the writer's insides: disk full and a group that fails part-way.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;
use tokio::time::timeout;

use super::*;

const T: Duration = Duration::from_secs(30);

fn open(dir: &Path) -> Store {
    open_with(dir, |_| {})
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
    let health = store.health().borrow().clone();
    assert!(health.full, "{health:?}");

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

    assert!(before.disk_full);

    // Free space (PUBACKs arrive, deletes run while full): full mode ends by itself at the
    // writer's next look at the disk, with a `disk-ok` alarm, and writes work again.
    store.delete(seqs.clone()).await.expect("delete while full");
    let mut health = store.health();
    timeout(T, health.wait_for(|h| !h.full))
        .await
        .expect("full mode never ended")
        .expect("health");
    let row = timeout(T, store.append(ev(1)))
        .await
        .expect("hung")
        .expect("append after delete");
    assert_eq!(
        row.seq,
        before.next_seq + 1,
        "failed appends used no seq; the disk-ok alarm one"
    );
    let after = store.stats().await.expect("stats");
    assert!(!after.disk_full);
    assert_eq!(after.rows, before.rows - seqs.len() as u64 + 2);
    let alarm = store.pending(row.seq - 2, 1).await.expect("pending");
    let alarm: Value = serde_json::from_slice(&alarm[0].payload).expect("json");
    assert_eq!(alarm["code"], "disk-ok", "{alarm}");

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

/// Makes every delete on the writer's connection fail, as on a full disk.
async fn fail_deletes(store: &Store) {
    store
        .exec_on_writer(|c| {
            c.execute_batch(
                "CREATE TEMP TRIGGER no_delete BEFORE DELETE ON outbox
                 BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END;",
            )
        })
        .await
        .expect("trigger");
}

/// Rows the broker acknowledged are never handed out again, even when their delete fails:
/// not on the next read, not after a restart (the ack log), and the delete is retried until
/// it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_rows_whose_delete_fails_are_never_published_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let mut seqs = Vec::new();
    for i in 0..10 {
        seqs.push(store.append(ev(i)).await.expect("append").seq);
    }
    fail_deletes(&store).await;
    for &s in &seqs[..6] {
        store.mark_acked(s);
    }
    assert!(store.delete(seqs[..6].to_vec()).await.is_err());
    let left: Vec<u64> = store
        .pending(0, 100)
        .await
        .expect("pending")
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(
        left,
        seqs[6..].to_vec(),
        "acknowledged rows are not handed out"
    );
    // A page of nothing but acknowledged rows does not end the read.
    let page = store.pending(0, 3).await.expect("pending");
    assert_eq!(page.first().map(|r| r.seq), Some(seqs[6]));
    let st = store.stats().await.expect("stats");
    assert_eq!(st.acked_undeleted, 6);
    assert_eq!(st.rows, 10, "still stored");

    // A restart before the delete committed: the ack log deletes them first.
    store.close().await.expect("close");
    let store = open(dir.path());
    let st = store.stats().await.expect("stats");
    assert_eq!(st.rows, 4, "deleted at open");
    assert_eq!(st.acked_undeleted, 0);
    let left: Vec<u64> = store
        .pending(0, 100)
        .await
        .expect("pending")
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(left, seqs[6..].to_vec());
    // A third open finds the log empty.
    store.close().await.expect("close");
    let store = open(dir.path());
    assert_eq!(store.stats().await.expect("stats").rows, 4);
}

/// A failed delete is retried by the writer itself, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delete_is_retried_until_it_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_with(dir.path(), |o| o.tick = Duration::from_millis(20));
    let a = store.append(ev(1)).await.expect("append").seq;
    fail_deletes(&store).await;
    assert!(store.delete(vec![a]).await.is_err());
    assert_eq!(store.stats().await.expect("stats").acked_undeleted, 1);
    store
        .exec_on_writer(|c| c.execute_batch("DROP TRIGGER temp.no_delete;"))
        .await
        .expect("drop trigger");
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let st = store.stats().await.expect("stats");
        if st.rows == 0 && st.acked_undeleted == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never retried: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn open_with(dir: &Path, f: impl FnOnce(&mut StoreOptions)) -> Store {
    let mut o = StoreOptions::in_dir(dir);
    f(&mut o);
    let (store, alarms) = Store::open(o, "gw-test").expect("open");
    assert!(alarms.is_empty());
    store
}

/// Finished jobs and stale receipts go after their retention; jobs of a running campaign and
/// unfinished ones stay; the job bound prunes the oldest finished first, then refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_finished_jobs_and_receipts_and_bounds_the_jobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_with(dir.path(), |o| {
        o.job_retention = Duration::from_millis(300);
        o.receipt_retention = Duration::from_millis(300);
        o.housekeeping_every = Duration::from_millis(50);
        o.tick = Duration::from_millis(20);
        o.max_jobs = 50;
    });
    let job = |rid: String, state: &str| NewJob {
        request_id: rid,
        verb: crate::proto::Verb::Ping,
        payload: json!({}),
        slot: None,
        state: crate::proto::JobState::parse(state).unwrap(),
        outcome: None,
        event: None,
    };
    for i in 0..20 {
        store
            .submit_job(job(format!("done-{i}"), "done"))
            .await
            .expect("job");
    }
    store
        .submit_job(job("waiting".into(), "queued"))
        .await
        .expect("job");
    store
        .add_receipt("rx|1|SM|3|ab".into())
        .await
        .expect("receipt");
    assert_eq!(store.stats().await.expect("stats").jobs, 21);
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let st = store.stats().await.expect("stats");
        if st.jobs == 1 && st.receipts == 0 {
            assert_eq!(st.pruned_jobs, 20);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never pruned: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        store
            .job_by_request("waiting")
            .await
            .expect("job")
            .is_some()
    );
    assert!(store.job_by_request("done-0").await.expect("job").is_none());

    // The bound: 49 more queued jobs fill it; a finished one makes room for the next by
    // going first; with none finished, a new command is refused.
    for i in 0..48 {
        store
            .submit_job(job(format!("q-{i}"), "queued"))
            .await
            .expect("job");
    }
    store
        .submit_job(job("old-done".into(), "done"))
        .await
        .expect("job");
    assert_eq!(store.stats().await.expect("stats").jobs, 50);
    store
        .submit_job(job("one-more".into(), "queued"))
        .await
        .expect("room made by pruning the finished job");
    assert!(
        store
            .job_by_request("old-done")
            .await
            .expect("job")
            .is_none()
    );
    let r = store.submit_job(job("too-many".into(), "queued")).await;
    assert!(matches!(r, Err(StoreError::Full { .. })), "{r:?}");
}

/// After a big backlog drained, the file gives its space back (incremental vacuum and a WAL
/// truncated), without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_shrinks_after_a_backlog_drains() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_with(dir.path(), |o| {
        o.housekeeping_every = Duration::from_millis(100);
        o.tick = Duration::from_millis(20);
    });
    let mut seqs = Vec::new();
    for chunk in 0..20 {
        let evs = (0..500).map(|i| ev(chunk * 500 + i)).collect();
        seqs.extend(
            store
                .append_many(evs)
                .await
                .expect("append")
                .iter()
                .map(|r| r.seq),
        );
    }
    let full = store.stats().await.expect("stats").file_bytes;
    assert!(full > 5_000_000, "{full}");
    store.delete(seqs).await.expect("delete");
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let now = store.stats().await.expect("stats").file_bytes;
        if now < full / 5 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "file stayed at {now} of {full}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The console's login guard is one row that outlives a restart (reopen).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_auth_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    assert_eq!(
        store.console_auth().await.expect("read"),
        ConsoleAuth::default()
    );
    let locked = ConsoleAuth {
        failures: 0,
        lockouts: 2,
        locked_until_ms: 1_900_000_000_000,
    };
    store
        .set_console_auth(ConsoleAuth {
            failures: 3,
            ..ConsoleAuth::default()
        })
        .await
        .expect("write");
    store.set_console_auth(locked).await.expect("write");
    store.close().await.expect("close");
    let store = open(dir.path());
    assert_eq!(store.console_auth().await.expect("read"), locked);
}

#[test]
fn the_finished_states_in_sql_are_the_final_job_states() {
    use crate::proto::JobState;
    let mut finished: Vec<JobState> = JobState::ALL
        .iter()
        .copied()
        .filter(|s| s.is_final())
        .collect();
    // What the retention statements' `state IN (...)` sees, read back typed.
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    let mut stmt = conn.prepare(super::writer::FINISHED_JOB_STATES).unwrap();
    let mut sql: Vec<JobState> = stmt
        .query_map(
            rusqlite::named_params! {":finished": super::vocab::final_job_states()},
            |r| r.get(0),
        )
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    finished.sort();
    sql.sort();
    assert_eq!(finished, sql);
    assert!(!sql.contains(&JobState::Queued) && !sql.contains(&JobState::Sending));
}

#[tokio::test]
async fn a_verb_the_vocabulary_does_not_know_is_a_decode_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .submit_job(NewJob {
            request_id: "r-1".into(),
            verb: crate::proto::Verb::Ping,
            payload: json!({}),
            slot: None,
            state: crate::proto::JobState::Done,
            outcome: None,
            event: None,
        })
        .await
        .expect("job");
    assert_eq!(
        store
            .job_by_request("r-1")
            .await
            .expect("read")
            .map(|j| j.verb),
        Some(crate::proto::Verb::Ping)
    );
    // Another program (or an older agent) wrote a verb this one does not know.
    let other = rusqlite::Connection::open(store.path()).expect("open");
    other.busy_timeout(Duration::from_secs(5)).expect("timeout");
    other
        .execute(
            "UPDATE jobs SET verb = 'bogus' WHERE request_id = 'r-1'",
            [],
        )
        .expect("update");
    match store.job_by_request("r-1").await {
        Err(StoreError::Decode(m)) => assert!(m.contains("bogus"), "{m}"),
        other => panic!("expected a decode error, got {other:?}"),
    }
}
