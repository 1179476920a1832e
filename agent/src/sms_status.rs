//! `sms-status` events, and matching a status report to the job that sent the message.
//! Shared by the sender (sent, failed, expired) and the inbox (reports), below both.

use serde::Serialize;

use crate::events::Events;
use crate::proto::events::{ReportStatus, SmsStatus};
use crate::proto::jobs::{SendOutcome, to_map};
use crate::proto::{EventBody, JobState};
use crate::store::{EventClass, Job, NewEvent, StoreError};

/// An `sms-status` event for `job` in `state`, with the fields of `extra` (an object).
pub fn status_event(job: &Job, state: &str, extra: &impl Serialize) -> NewEvent {
    let body = SmsStatus {
        request_id: Some(&job.request_id),
        msg_id: Some(job.job_id),
        to: &job.payload["to"],
        state,
        parts: Some(&job.payload["parts"]),
        extra: to_map(extra),
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
    report: &ReportStatus,
) -> Result<bool, StoreError> {
    let sent = events.store().jobs_in_state(JobState::Sent, 10_000).await?;
    let Some(job) = sent.into_iter().rev().find(|j| {
        j.payload["to"].as_str() == Some(recipient) && {
            let o = SendOutcome::read(j.outcome.as_ref());
            o.slot == Some(slot) && o.mr.is_some_and(|m| m.contains(&mr))
        }
    }) else {
        return Ok(false);
    };
    let mut outcome = SendOutcome::read(job.outcome.as_ref());
    let Some(delivered_now) = delivered else {
        // Still pending at the SMSC: an event for the record, no state change.
        events
            .store()
            .append(status_event(&job, "pending", report))
            .await?;
        events.committed();
        return Ok(true);
    };
    let total = outcome.mr.as_ref().map_or(1, Vec::len);
    let mut done = outcome.delivered.take().unwrap_or_default();
    if !done.contains(&mr) {
        done.push(mr);
    }
    let delivered_parts = done.len();
    let state = if !delivered_now {
        JobState::Failed
    } else if delivered_parts >= total {
        JobState::Delivered
    } else {
        JobState::Sent
    };
    outcome.delivered = Some(done);
    let ev = (state != JobState::Sent).then(|| status_event(&job, state.as_str(), report));
    events
        .store()
        .update_job(job.job_id, state, Some(outcome.value()), ev)
        .await?;
    events.committed();
    Ok(true)
}
