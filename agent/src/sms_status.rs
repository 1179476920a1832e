//! `sms-status` events, and matching a status report to the job that sent the message.
//! Shared by the sender (sent, failed, expired) and the inbox (reports), below both.

use serde_json::{Map, Value, json};

use crate::events::Events;
use crate::proto::events::SmsStatus;
use crate::proto::{EventBody, JobState};
use crate::store::{EventClass, Job, NewEvent, StoreError};

/// An `sms-status` event for `job` in `state`, with `extra` fields.
pub fn status_event(job: &Job, state: &str, extra: Value) -> NewEvent {
    let body = SmsStatus {
        request_id: Some(&job.request_id),
        msg_id: Some(job.job_id),
        to: &job.payload["to"],
        state,
        parts: Some(&job.payload["parts"]),
        extra: match extra {
            Value::Object(more) => more,
            _ => Map::new(),
        },
    };
    NewEvent::new(SmsStatus::TYPE, EventClass::Critical, body.body())
}

/// Matches a status report to the job that sent it (slot, MR, recipient); updates the job
/// and returns true when it was ours.
pub async fn match_report(
    events: &Events,
    slot: u16,
    mr: u8,
    recipient: &str,
    delivered: Option<bool>,
    report: Value,
) -> Result<bool, StoreError> {
    let sent = events.store().jobs_in_state(JobState::Sent, 10_000).await?;
    let Some(job) = sent.into_iter().rev().find(|j| {
        j.payload["to"].as_str() == Some(recipient)
            && j.outcome.as_ref().is_some_and(|o| {
                o["slot"].as_u64() == Some(u64::from(slot))
                    && o["mr"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|m| m.as_u64() == Some(u64::from(mr))))
            })
    }) else {
        return Ok(false);
    };
    let mut outcome = job.outcome.clone().unwrap_or_else(|| json!({}));
    let Some(delivered_now) = delivered else {
        // Still pending at the SMSC: an event for the record, no state change.
        events
            .store()
            .append(status_event(&job, "pending", report))
            .await?;
        events.committed();
        return Ok(true);
    };
    let total = outcome["mr"].as_array().map(Vec::len).unwrap_or(1);
    let mut done: Vec<Value> = outcome["delivered"].as_array().cloned().unwrap_or_default();
    if !done.iter().any(|m| m.as_u64() == Some(u64::from(mr))) {
        done.push(json!(mr));
    }
    let state = if !delivered_now {
        JobState::Failed
    } else if done.len() >= total {
        JobState::Delivered
    } else {
        JobState::Sent
    };
    if let Some(o) = outcome.as_object_mut() {
        o.insert("delivered".into(), json!(done));
    }
    let ev = (state != JobState::Sent).then(|| status_event(&job, state.as_str(), report));
    events
        .store()
        .update_job(job.job_id, state, Some(outcome), ev)
        .await?;
    events.committed();
    Ok(true)
}
