//! Opening: damaged files are moved aside and kept, a newer schema is refused, and the
//! writer stops on close or when the last handle goes.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gsmgw_agent::store::{
    EventClass, NewEvent, SCHEMA_VERSION, Store, StoreAlarm, StoreError, StoreOptions,
};
use serde_json::json;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(30);

fn ev(n: u64) -> NewEvent {
    NewEvent::new(
        "sms-received",
        EventClass::Critical,
        json!({ "n": n, "text": "y".repeat(300) }),
    )
}

/// Files in `dir` whose names contain `.corrupt-`.
fn corrupt_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().contains(".corrupt-"))
        .collect();
    v.sort();
    v
}

async fn assert_fresh_store_works(store: &Store) {
    let stats = store.stats().await.expect("stats");
    assert_eq!((stats.rows, stats.next_seq), (0, 1));
    let row = store.append(ev(1)).await.expect("append");
    assert_eq!(row.seq, 1);
}

#[tokio::test]
async fn a_garbage_file_is_moved_aside_kept_and_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = StoreOptions::in_dir(&dir.path().join("nested/data"));
    fs::create_dir_all(opts.path.parent().expect("parent")).expect("mkdir");
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(&opts.path, &garbage).expect("write");
    // A stray -wal beside it goes along.
    fs::write(
        PathBuf::from(format!("{}-wal", opts.path.display())),
        b"junk",
    )
    .expect("wal");

    let (store, alarms) = Store::open(opts.clone(), "gw-01").expect("open");
    assert_eq!(alarms.len(), 1);
    let StoreAlarm::MovedAsideCorrupt { path, reason } = &alarms[0];
    assert!(!reason.is_empty());
    assert!(alarms[0].to_string().contains("moved aside"));
    assert_eq!(
        fs::read(path).expect("kept"),
        garbage,
        "the damaged file is kept as it was"
    );
    let aside = corrupt_files(opts.path.parent().expect("parent"));
    assert_eq!(aside.len(), 2, "{aside:?}");
    assert!(aside[1].to_string_lossy().ends_with("-wal"));
    assert_fresh_store_works(&store).await;
}

#[tokio::test]
async fn a_truncated_database_is_moved_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = StoreOptions::in_dir(dir.path());
    {
        let (store, _) = Store::open(opts.clone(), "gw-01").expect("open");
        store
            .append_many((0..400).map(ev).collect())
            .await
            .expect("fill");
        store.close().await.expect("close");
    }
    let len = fs::metadata(&opts.path).expect("meta").len();
    assert!(len > 64 * 1024, "a multi-page file ({len})");
    // Cut it mid-way, off a page boundary.
    let f = fs::OpenOptions::new()
        .write(true)
        .open(&opts.path)
        .expect("open");
    f.set_len(len / 2 + 100).expect("truncate");
    drop(f);

    let (store, alarms) = Store::open(opts.clone(), "gw-01").expect("open");
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    let StoreAlarm::MovedAsideCorrupt { path, .. } = &alarms[0];
    assert_eq!(fs::metadata(path).expect("kept").len(), len / 2 + 100);
    assert_fresh_store_works(&store).await;
}

#[tokio::test]
async fn damaged_pages_are_caught_by_quick_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = StoreOptions::in_dir(dir.path());
    {
        let (store, _) = Store::open(opts.clone(), "gw-01").expect("open");
        store
            .append_many((0..400).map(ev).collect())
            .await
            .expect("fill");
        store.close().await.expect("close");
    }
    // Scribble over the middle of the file, leaving the header intact.
    let mut bytes = fs::read(&opts.path).expect("read");
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 8192] {
        *b = 0xA5;
    }
    fs::File::create(&opts.path)
        .and_then(|mut f| f.write_all(&bytes))
        .expect("write");

    let (store, alarms) = Store::open(opts, "gw-01").expect("open");
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_fresh_store_works(&store).await;
}

#[tokio::test]
async fn a_database_from_a_newer_schema_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = StoreOptions::in_dir(dir.path());
    {
        let (store, _) = Store::open(opts.clone(), "gw-01").expect("open");
        store.append(ev(1)).await.expect("append");
        store.close().await.expect("close");
    }
    {
        let conn = rusqlite::Connection::open(&opts.path).expect("sqlite");
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("bump");
    }
    let err = Store::open(opts.clone(), "gw-01").expect_err("newer schema");
    assert_eq!(
        err,
        StoreError::FutureSchema {
            found: SCHEMA_VERSION + 1,
            known: SCHEMA_VERSION
        }
    );
    assert!(corrupt_files(dir.path()).is_empty(), "nothing moved aside");
    let conn = rusqlite::Connection::open(&opts.path).expect("sqlite");
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows, 1, "data untouched");
}

#[tokio::test]
async fn an_empty_file_becomes_a_fresh_store_at_the_current_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = StoreOptions::in_dir(dir.path());
    fs::write(&opts.path, b"").expect("touch");
    let (store, alarms) = Store::open(opts.clone(), "gw-01").expect("open");
    assert!(alarms.is_empty());
    assert_fresh_store_works(&store).await;
    store.close().await.expect("close");
    let conn = rusqlite::Connection::open(&opts.path).expect("sqlite");
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(v, SCHEMA_VERSION);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    assert_eq!(mode, "wal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_stops_when_the_last_handle_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(StoreOptions::in_dir(dir.path()), "gw-01").expect("open");
    let clone = store.clone();
    let task = tokio::spawn(async move { clone.append(ev(1)).await });
    let stopped = store.writer_exited();
    timeout(T, task)
        .await
        .expect("hung")
        .expect("join")
        .expect("append");
    drop(store);
    timeout(T, stopped).await.expect("writer still running");
    // Everything was closed: the database opens again at once and holds the event.
    let (store, _) = Store::open(StoreOptions::in_dir(dir.path()), "gw-01").expect("reopen");
    assert_eq!(store.pending(0, 10).await.expect("pending").len(), 1);
}

#[tokio::test]
async fn after_close_every_handle_answers_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(StoreOptions::in_dir(dir.path()), "gw-01").expect("open");
    let other = store.clone();
    store.append(ev(1)).await.expect("append");
    timeout(T, store.close())
        .await
        .expect("close hung")
        .expect("close");
    assert_eq!(other.append(ev(2)).await, Err(StoreError::Closed));
    assert_eq!(other.pending(0, 1).await, Err(StoreError::Closed));
    assert_eq!(other.close().await, Ok(()));
}
