//! The outbox: seq allocation, the envelope, group commit, pending/delete, the bound policy.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use gsmgw_agent::store::{
    ALARM_RESERVE_ROWS, EventClass, NewEvent, Store, StoreError, StoreOptions,
};
use serde_json::{Value, json};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(60);

fn open_with(dir: &Path, f: impl FnOnce(&mut StoreOptions)) -> Store {
    gsmgw_testkit::store::open_with(dir, "gw-01", f)
}

fn open(dir: &Path) -> Store {
    open_with(dir, |_| {})
}

fn telemetry(n: u64) -> NewEvent {
    NewEvent::new("modem", EventClass::Telemetry, json!({ "n": n }))
}

fn critical(n: u64) -> NewEvent {
    NewEvent::new("sms-received", EventClass::Critical, json!({ "n": n }))
}

fn body_n(payload: &[u8]) -> u64 {
    let v: Value = serde_json::from_slice(payload).expect("json");
    v["n"].as_u64().expect("n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seq_is_monotonic_and_survives_reopen_even_when_emptied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let mut last = 0;
    for i in 0..5 {
        let row = store.append(critical(i)).await.expect("append");
        assert!(row.seq > last);
        last = row.seq;
    }
    assert_eq!(last, 5, "seq starts at 1");
    store.close().await.expect("close");

    let store = open(dir.path());
    let row = store.append(critical(5)).await.expect("append");
    assert_eq!(row.seq, 6);
    let all: Vec<u64> = store
        .pending(0, 100)
        .await
        .expect("pending")
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(all, vec![1, 2, 3, 4, 5, 6]);
    store.delete(all).await.expect("delete");
    assert_eq!(store.stats().await.expect("stats").rows, 0);
    store.close().await.expect("close");

    // Emptied outbox: the next seq still does not go back.
    let store = open(dir.path());
    let stats = store.stats().await.expect("stats");
    assert_eq!((stats.rows, stats.next_seq, stats.oldest_seq), (0, 7, None));
    let rows = store
        .append_many(vec![critical(7), telemetry(8)])
        .await
        .expect("many");
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![7, 8]);
}

#[tokio::test]
async fn envelope_has_its_fields_and_the_body_cannot_override_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let ev = NewEvent::new(
        "sms-received",
        EventClass::Critical,
        json!({
            "id": "forged", "seq": 0, "ts": "yesterday", "gateway": "other", "type": "modem",
            "slot": 1, "from": "+15550100", "text": "hi"
        }),
    );
    let row = store.append(ev).await.expect("append");
    let v: Value = serde_json::from_slice(&row.payload).expect("json");
    assert_eq!(v["id"].as_str(), Some(row.id.as_str()));
    assert_eq!(v["seq"].as_u64(), Some(row.seq));
    assert_eq!(v["gateway"], "gw-01");
    assert_eq!(v["type"], "sms-received");
    assert_eq!(row.event_type, "sms-received");
    assert_eq!(
        (v["slot"].clone(), v["from"].clone()),
        (json!(1), json!("+15550100"))
    );
    let ts = v["ts"].as_str().expect("ts");
    assert!(
        ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
        "{ts}"
    );
    let id = uuid::Uuid::parse_str(&row.id).expect("uuid");
    assert_eq!(id.get_version_num(), 7);
    // What pending hands out is byte for byte what append returned.
    let stored = store.pending(0, 1).await.expect("pending");
    assert_eq!(stored, vec![row]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_makes_10k_concurrent_appends_durable_in_few_transactions() {
    const TASKS: u64 = 100;
    const EACH: u64 = 100;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let before = store.stats().await.expect("stats");
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..EACH {
                seqs.push(
                    store
                        .append(telemetry(t * EACH + i))
                        .await
                        .expect("append")
                        .seq,
                );
            }
            seqs
        }));
    }
    let mut seqs = HashSet::new();
    for task in tasks {
        let mine = timeout(T, task).await.expect("hung").expect("join");
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "one task's seqs ascend"
        );
        seqs.extend(mine);
    }
    let total = TASKS * EACH;
    assert_eq!(seqs.len() as u64, total, "seqs unique");
    let stats = store.stats().await.expect("stats");
    let txns = stats.transactions - before.transactions;
    assert!(
        txns * 5 <= total,
        "{txns} transactions for {total} appends: group commit is not grouping"
    );
    store.close().await.expect("close");

    let store = open(dir.path());
    let rows = store.pending(0, 20_000).await.expect("pending");
    assert_eq!(rows.len() as u64, total);
    let stored: HashSet<u64> = rows.iter().map(|r| r.seq).collect();
    assert_eq!(stored, seqs);
    let ns: HashSet<u64> = rows.iter().map(|r| body_n(&r.payload)).collect();
    assert_eq!(ns.len() as u64, total, "every event's body is there");
}

#[tokio::test]
async fn pending_pages_in_seq_order_and_delete_removes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let rows = store
        .append_many((0..10).map(critical).collect())
        .await
        .expect("many");
    let seqs: Vec<u64> = rows.iter().map(|r| r.seq).collect();
    let page = store.pending(0, 4).await.expect("pending");
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), seqs[..4]);
    let page = store.pending(seqs[3], 4).await.expect("pending");
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), seqs[4..8]);

    let bytes: u64 = rows.iter().map(|r| r.payload.len() as u64).sum();
    let stats = store.stats().await.expect("stats");
    assert_eq!(
        (stats.rows, stats.bytes, stats.oldest_seq),
        (10, bytes, Some(seqs[0]))
    );

    // PUBACKs out of order, repeated, and for rows that are long gone.
    store
        .delete(vec![seqs[2], seqs[0], seqs[2], 9_999])
        .await
        .expect("delete");
    let left: Vec<u64> = store
        .pending(0, 100)
        .await
        .expect("pending")
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(left, [&seqs[1..2], &seqs[3..]].concat());
    let stats = store.stats().await.expect("stats");
    assert_eq!(stats.rows, 8);
    assert_eq!(stats.oldest_seq, Some(seqs[1]));
    assert_eq!(
        stats.bytes,
        bytes - rows[0].payload.len() as u64 - rows[2].payload.len() as u64
    );
}

#[tokio::test]
async fn at_the_row_bound_telemetry_goes_oldest_first_and_critical_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_with(dir.path(), |o| o.max_rows = 10);
    for i in 0..6 {
        store.append(telemetry(i)).await.expect("telemetry");
    }
    for i in 6..10 {
        store.append(critical(i)).await.expect("critical");
    }
    // Full: new telemetry pushes out the oldest telemetry.
    store
        .append(telemetry(10))
        .await
        .expect("telemetry at bound");
    let ns = |rows: Vec<gsmgw_agent::store::OutboxRow>| {
        rows.iter().map(|r| body_n(&r.payload)).collect::<Vec<_>>()
    };
    assert_eq!(
        ns(store.pending(0, 100).await.expect("p")),
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    );
    // A critical event takes the place of the oldest telemetry too.
    store.append(critical(11)).await.expect("critical at bound");
    assert_eq!(
        ns(store.pending(0, 100).await.expect("p")),
        vec![2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    );
    // Fill with critical until no telemetry is left…
    for i in 12..17 {
        store
            .append(critical(i))
            .await
            .expect("critical replaces telemetry");
    }
    let stats = store.stats().await.expect("stats");
    assert_eq!(
        (stats.rows, stats.telemetry_rows, stats.dropped_telemetry),
        (10, 0, 7)
    );
    // …then critical is refused, and so is telemetry: nothing may be dropped.
    let err = store.append(critical(17)).await.expect_err("full");
    assert!(matches!(err, StoreError::Full { rows: 10, .. }), "{err}");
    let err = store.append(telemetry(18)).await.expect_err("full");
    assert!(matches!(err, StoreError::Full { .. }), "{err}");
    // append_many is all or nothing.
    let err = store
        .append_many(vec![telemetry(19), critical(20)])
        .await
        .expect_err("full");
    assert!(matches!(err, StoreError::Full { .. }), "{err}");
    // The alarm about it still gets in, into the reserve.
    let alarm = NewEvent::new(
        "alarm",
        EventClass::Critical,
        json!({ "n": 21, "code": "store-full" }),
    );
    let row = store.append(alarm).await.expect("alarm into the reserve");
    let stats = store.stats().await.expect("stats");
    assert_eq!(stats.rows, 11);
    assert_eq!(stats.next_seq, row.seq + 1, "refused events used no seq");
    assert_eq!(
        ns(store.pending(0, 100).await.expect("p")),
        vec![6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 21]
    );
    // Once PUBACKs free room, critical events are accepted again.
    let first = store.pending(0, 2).await.expect("p");
    store
        .delete(first.iter().map(|r| r.seq).collect())
        .await
        .expect("delete");
    store.append(critical(22)).await.expect("room again");
    // The reserve is bounded too: alarms fill it, then they are refused as well.
    let alarms = (0..ALARM_RESERVE_ROWS)
        .map(|i| NewEvent::new("alarm", EventClass::Critical, json!({ "n": 1000 + i })))
        .collect();
    store
        .append_many(alarms)
        .await
        .expect("alarms fill the reserve");
    assert_eq!(
        store.stats().await.expect("stats").rows,
        10 + ALARM_RESERVE_ROWS
    );
    let alarm = NewEvent::new("alarm", EventClass::Critical, json!({ "n": 0 }));
    assert!(matches!(
        store.append(alarm).await,
        Err(StoreError::Full { .. })
    ));
}

#[tokio::test]
async fn at_the_byte_bound_telemetry_goes_oldest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let size = store_row_size(dir.path()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_with(dir.path(), |o| o.max_bytes = size * 5 + size / 2);
    for i in 100..105 {
        store.append(telemetry(i)).await.expect("telemetry");
    }
    store
        .append(telemetry(105))
        .await
        .expect("telemetry at bound");
    let rows = store.pending(0, 100).await.expect("p");
    assert_eq!(
        rows.iter().map(|r| body_n(&r.payload)).collect::<Vec<_>>(),
        vec![101, 102, 103, 104, 105]
    );
    let stats = store.stats().await.expect("stats");
    assert!(stats.bytes <= size * 5 + size / 2);
    assert_eq!(stats.dropped_telemetry, 1);
    // An event bigger than the whole bound can never fit.
    let huge = NewEvent::new(
        "sms-received",
        EventClass::Critical,
        json!({ "text": "x".repeat(size as usize * 6) }),
    );
    assert!(matches!(
        store.append(huge).await,
        Err(StoreError::Full { .. })
    ));
}

/// Payload size of a `telemetry(100..)` row (seq of the same digit count).
async fn store_row_size(dir: &Path) -> u64 {
    let store = open(dir);
    let row = store.append(telemetry(100)).await.expect("append");
    row.payload.len() as u64
}
