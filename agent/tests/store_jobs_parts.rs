//! Jobs (idempotent commands), multipart SMS reassembly and counters.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gsmgw_agent::proto::JobState;
use std::path::Path;
use std::time::Duration;

use gsmgw_agent::store::{
    EventClass, NewEvent, NewJob, PartKey, PartOutcome, Store, StoreError, StoreOptions,
    StoredPart, Submitted,
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

fn job(request_id: &str, event: Option<NewEvent>) -> NewJob {
    NewJob {
        request_id: request_id.into(),
        verb: gsmgw_agent::proto::Verb::SmsSend,
        payload: json!({ "to": "+15550100", "text": "hello" }),
        slot: Some(2),
        state: JobState::Queued,
        outcome: None,
        event,
    }
}

fn result_event(request_id: &str, ok: bool) -> NewEvent {
    NewEvent::new(
        "command-result",
        EventClass::Critical,
        json!({ "request_id": request_id, "ok": ok }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_request_id_is_recorded_once_even_when_submitted_concurrently() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .submit_job(job("req-1", Some(result_event("req-1", true))))
                .await
                .expect("submit")
        }));
    }
    let mut new = Vec::new();
    let mut existing = Vec::new();
    for t in tasks {
        match timeout(T, t).await.expect("hung").expect("join") {
            Submitted::New { job_id, event } => new.push((job_id, event)),
            Submitted::Existing {
                job_id,
                verb,
                state,
                outcome,
            } => {
                assert_eq!(
                    (verb.as_str(), state.as_str(), outcome),
                    ("sms-send", "queued", None)
                );
                existing.push(job_id);
            }
        }
    }
    assert_eq!(new.len(), 1, "exactly one New");
    let (job_id, event) = new.remove(0);
    assert!(event.is_some());
    assert_eq!(existing, vec![job_id; 15]);
    let stats = store.stats().await.expect("stats");
    assert_eq!(stats.rows, 1, "the job's event was appended once");
    assert_eq!(stats.jobs_by_state.get("queued"), Some(&1));

    // After a restart too.
    store.close().await.expect("close");
    let store = open(dir.path());
    let again = store.submit_job(job("req-1", None)).await.expect("submit");
    assert!(matches!(again, Submitted::Existing { job_id: j, .. } if j == job_id));
    let stored = store.job(job_id).await.expect("job").expect("present");
    assert_eq!(stored.request_id, "req-1");
    assert_eq!(stored.slot, Some(2));
    assert_eq!(
        stored.payload,
        json!({ "to": "+15550100", "text": "hello" })
    );
}

#[tokio::test]
async fn update_job_changes_state_and_appends_its_event_atomically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_with(dir.path(), |o| o.max_rows = 3);
    let Submitted::New {
        job_id,
        event: None,
    } = store.submit_job(job("req-7", None)).await.expect("submit")
    else {
        panic!("expected a new job without event");
    };
    let row = store
        .update_job(job_id, JobState::Sending, None, None)
        .await
        .expect("update");
    assert!(row.is_none());
    let row = store
        .update_job(
            job_id,
            JobState::Done,
            Some(json!({ "message_ref": 42 })),
            Some(result_event("req-7", true)),
        )
        .await
        .expect("update")
        .expect("event row");
    let j = store.job(job_id).await.expect("job").expect("present");
    assert_eq!(j.state, "done");
    assert_eq!(j.outcome, Some(json!({ "message_ref": 42 })));
    assert!(j.updated_ms >= j.created_ms);
    assert_eq!(store.pending(0, 10).await.expect("p"), vec![row]);

    // Outbox full of critical rows: the event is refused, so the state change is undone too.
    let Submitted::New { job_id: j2, .. } =
        store.submit_job(job("req-8", None)).await.expect("submit")
    else {
        panic!("expected new");
    };
    for i in 0..2 {
        store
            .append(NewEvent::new(
                "call",
                EventClass::Critical,
                json!({ "n": i }),
            ))
            .await
            .expect("append");
    }
    let err = store
        .update_job(
            j2,
            JobState::Done,
            Some(json!({ "x": 1 })),
            Some(result_event("req-8", true)),
        )
        .await
        .expect_err("full");
    assert!(matches!(err, StoreError::Full { .. }), "{err}");
    let still = store.job(j2).await.expect("job").expect("present");
    assert_eq!((still.state.as_str(), still.outcome), ("queued", None));
    // And new jobs are refused at the bound; a repeat of a known one still answers.
    let err = store
        .submit_job(job("req-9", None))
        .await
        .expect_err("full");
    assert!(matches!(err, StoreError::Full { .. }), "{err}");
    assert!(matches!(
        store.submit_job(job("req-8", None)).await,
        Ok(Submitted::Existing { .. })
    ));

    assert_eq!(
        store.update_job(9_999, JobState::Done, None, None).await,
        Err(StoreError::NoSuchJob(9_999))
    );
    let queued = store
        .jobs_in_state(JobState::Queued, 10)
        .await
        .expect("jobs");
    assert_eq!(
        queued.iter().map(|j| j.job_id).collect::<Vec<_>>(),
        vec![j2]
    );
    let stats = store.stats().await.expect("stats");
    assert_eq!(stats.jobs_by_state.get("done"), Some(&1));
    assert_eq!(stats.jobs_by_state.get("queued"), Some(&1));
}

#[tokio::test]
async fn a_job_done_at_once_records_its_outcome_and_event_together() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let mut j = job("req-ping", Some(result_event("req-ping", true)));
    j.verb = gsmgw_agent::proto::Verb::Ping;
    j.state = JobState::Done;
    j.outcome = Some(json!({ "pong": true }));
    j.slot = None;
    let Submitted::New {
        job_id,
        event: Some(row),
    } = store.submit_job(j).await.expect("submit")
    else {
        panic!("expected new with event");
    };
    let stored = store.job(job_id).await.expect("job").expect("present");
    assert_eq!((stored.state.as_str(), stored.slot), ("done", None));
    assert_eq!(stored.outcome, Some(json!({ "pong": true })));
    let v: Value = serde_json::from_slice(&row.payload).expect("json");
    assert_eq!(v["request_id"], "req-ping");
    assert!(store.job(job_id + 1).await.expect("job").is_none());
}

fn part(seq: u8, total: u8, received_ms: i64) -> StoredPart {
    StoredPart {
        slot: 1,
        sender: "+15550123".into(),
        reference: 77,
        total,
        seq,
        part: json!({ "text": format!("part {seq}") }),
        received_ms,
    }
}

fn key(total: u8) -> PartKey {
    part(1, total, 0).key()
}

#[tokio::test]
async fn parts_out_of_order_with_duplicates_complete_into_one_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    assert_eq!(
        store.put_part(part(3, 3, 1000)).await.expect("put"),
        PartOutcome::Stored { have: 1 }
    );
    assert_eq!(
        store.put_part(part(3, 3, 1001)).await.expect("put"),
        PartOutcome::Duplicate
    );
    assert_eq!(
        store.put_part(part(1, 3, 1002)).await.expect("put"),
        PartOutcome::Stored { have: 2 }
    );
    // Same reference, other sender / other total: other messages.
    let mut other = part(2, 3, 1003);
    other.sender = "+15550999".into();
    assert_eq!(
        store.put_part(other).await.expect("put"),
        PartOutcome::Stored { have: 1 }
    );
    assert_eq!(
        store.put_part(part(2, 4, 1003)).await.expect("put"),
        PartOutcome::Stored { have: 1 }
    );

    let PartOutcome::Complete(parts) = store.put_part(part(2, 3, 1004)).await.expect("put") else {
        panic!("expected complete");
    };
    assert_eq!(
        parts.iter().map(|p| p.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(parts[0].part, json!({ "text": "part 1" }));
    assert_eq!(parts[2].received_ms, 1000, "the first copy was kept");
    // Until completed, the parts stay (a crash here loses nothing).
    assert_eq!(store.complete_parts().await.expect("complete").len(), 1);

    let text: String = parts
        .iter()
        .map(|p| p.part["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    let ev = NewEvent::new(
        "sms-received",
        EventClass::Critical,
        json!({ "text": text }),
    );
    let row = store
        .complete_message(key(3), ev.clone())
        .await
        .expect("complete");
    assert_eq!(store.pending(0, 10).await.expect("p"), vec![row]);
    assert!(store.complete_parts().await.expect("complete").is_empty());
    assert_eq!(
        store.stats().await.expect("stats").sms_parts,
        2,
        "the other messages remain"
    );
    // Completing twice would duplicate the message: refused.
    assert!(matches!(
        store.complete_message(key(3), ev).await,
        Err(StoreError::NoSuchMessage(_))
    ));
    assert_eq!(store.stats().await.expect("stats").rows, 1);
    assert!(matches!(
        store.put_part(part(4, 3, 0)).await,
        Err(StoreError::InvalidPart(_))
    ));
    assert!(matches!(
        store.put_part(part(0, 3, 0)).await,
        Err(StoreError::InvalidPart(_))
    ));
}

#[tokio::test]
async fn complete_message_at_the_bound_keeps_the_parts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_with(dir.path(), |o| o.max_rows = 1);
    store
        .append(NewEvent::new("call", EventClass::Critical, json!({})))
        .await
        .expect("append");
    store.put_part(part(1, 1, 5)).await.expect("put");
    let ev = NewEvent::new("sms-received", EventClass::Critical, json!({ "text": "x" }));
    let err = store.complete_message(key(1), ev).await.expect_err("full");
    assert!(matches!(err, StoreError::Full { .. }), "{err}");
    assert_eq!(store.complete_parts().await.expect("complete").len(), 1);
}

#[tokio::test]
async fn a_restart_between_parts_loses_nothing_and_stale_messages_are_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store.put_part(part(1, 2, 1_000)).await.expect("put");
    let mut lonely = part(1, 5, 2_000);
    lonely.reference = 9;
    store.put_part(lonely.clone()).await.expect("put");
    store.close().await.expect("close");

    let store = open(dir.path());
    assert_eq!(
        store.put_part(part(1, 2, 1_500)).await.expect("put"),
        PartOutcome::Duplicate
    );
    let stale = store.stale_parts(1_500).await.expect("stale");
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].0, key(2));
    assert_eq!(stale[0].1, vec![part(1, 2, 1_000)]);
    let stale = store.stale_parts(10_000).await.expect("stale");
    let refs: Vec<u16> = stale.iter().map(|(k, _)| k.reference).collect();
    assert_eq!(refs, vec![9, 77]);
    assert_eq!(stale.len(), 2);

    let PartOutcome::Complete(parts) = store.put_part(part(2, 2, 3_000)).await.expect("put") else {
        panic!("expected complete");
    };
    assert_eq!(parts.len(), 2);
    assert_eq!(
        store.stale_parts(10_000).await.expect("stale").len(),
        1,
        "complete is not stale"
    );
    // A stale message is given up on the same way: its event, then its parts are gone.
    let ev = NewEvent::new(
        "sms-received",
        EventClass::Critical,
        json!({ "partial": true }),
    );
    store
        .complete_message(lonely.key(), ev)
        .await
        .expect("give up");
    assert_eq!(store.stale_parts(i64::MAX).await.expect("stale"), vec![]);
}

#[tokio::test]
async fn counters_persist_and_the_store_s_own_are_reserved() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    assert_eq!(store.counter_get("sim1.sms.day").await.expect("get"), 0);
    assert_eq!(store.counter_add("sim1.sms.day", 3).await.expect("add"), 3);
    assert_eq!(store.counter_add("sim1.sms.day", -1).await.expect("add"), 2);
    assert!(matches!(
        store.counter_add("next_seq", 1).await,
        Err(StoreError::ReservedCounter(_))
    ));
    store.close().await.expect("close");
    let store = open(dir.path());
    assert_eq!(store.counter_get("sim1.sms.day").await.expect("get"), 2);
    assert_eq!(store.counter_get("next_seq").await.expect("get"), 1);
}

/// A message read again after a crash (committed, not yet deleted from the SIM) is not
/// published twice: its receipt is recorded with its event (or its part), also across a
/// reopen; once the delete is confirmed and the receipt forgotten, the same content at the
/// same index is a new message. A message whose parts were all stored but never completed
/// still completes.
#[tokio::test]
async fn receipts_keep_a_re_read_message_out_and_let_an_identical_new_one_in() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let ev = || NewEvent::new("sms-received", EventClass::Critical, json!({"text": "hi"}));
    let receipt = || "rx|1|SM|0|00ff".to_string();
    let first = timeout(T, store.append_once(receipt(), ev()))
        .await
        .unwrap()
        .unwrap();
    assert!(first.is_some());
    assert!(store.receipt_pending(&receipt()).await.unwrap());
    let again = timeout(T, store.append_once(receipt(), ev()))
        .await
        .unwrap()
        .unwrap();
    assert!(again.is_none(), "a re-read is not published twice");
    drop(store);
    let store = open(dir.path());
    assert!(store.receipt_pending(&receipt()).await.unwrap());
    store.forget_receipt(receipt()).await.unwrap();
    assert!(!store.receipt_pending(&receipt()).await.unwrap());
    let new = store.append_once(receipt(), ev()).await.unwrap();
    assert!(
        new.is_some(),
        "identical content after a confirmed delete is new"
    );

    // Parts 1 and 2 of 2 stored with their receipts; the completion never ran (crash):
    // reading part 2 again completes the message.
    let r1 = "rx|1|SM|1|aa".to_string();
    assert!(matches!(
        store
            .put_part_taken(part(1, 2, 1), Some(r1.clone()))
            .await
            .unwrap(),
        PartOutcome::Stored { have: 1 }
    ));
    assert!(store.receipt_pending(&r1).await.unwrap());
    assert!(matches!(
        store.put_part(part(2, 2, 2)).await.unwrap(),
        PartOutcome::Complete(_)
    ));
    let PartOutcome::Complete(parts) = store.put_part(part(2, 2, 3)).await.unwrap() else {
        panic!("a re-read last part must complete the message");
    };
    assert_eq!(parts.len(), 2);
    store.complete_message(key(2), ev()).await.unwrap();
    assert_eq!(store.stats().await.unwrap().sms_parts, 0);
    // The same two parts again (a second message with the same reference): a new message.
    store.put_part(part(1, 2, 10)).await.unwrap();
    assert!(matches!(
        store.put_part(part(2, 2, 11)).await.unwrap(),
        PartOutcome::Complete(_)
    ));
    store.add_receipt("rx|1|SR|0|bb".into()).await.unwrap();
    assert!(store.receipt_pending("rx|1|SR|0|bb").await.unwrap());
}
