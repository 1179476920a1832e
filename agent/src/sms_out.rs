//! Sending SMS: queued `sms-send` jobs → a ready SIM → AT+CMGS per part → `sms-status`.
//!
//! Durability: a job is marked `sending` (committed) before the first AT+CMGS is written, and
//! `sent` with the message reference of every part after the modem answered. A job found in
//! `sending` at start (the agent died mid-send) is not re-sent blindly — the SMS may have gone
//! out — it becomes `unknown` and an `sms-status` event says so (policy: report; the central
//! server decides whether to send again with a new request_id).
//!
//! Errors: +CMS codes that mean "try again later" (network or SIM congestion, no service)
//! put the job back in the queue with a growing delay, up to [`MAX_ATTEMPTS`]; the others
//! (bad number, barred, unknown subscriber) fail it with the reason.

use std::collections::BTreeMap;
use std::time::Duration;

use gsmgw_drivers::at::AtError;
use gsmgw_drivers::modem::ModemError;
use gsmgw_drivers::pdu::{self, EncodedPart, SubmitOptions};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use crate::events::Events;
use crate::state::{ChannelState, ModemSnapshot};
use crate::store::{EventClass, Job, NewEvent, StoreError};

/// Attempts for transient failures before a job fails.
pub const MAX_ATTEMPTS: u32 = 4;

/// A request to a channel (the only writer of its port).
pub enum ChannelRequest {
    /// A raw AT command (technician's console), serialised with the agent's own commands.
    At {
        /// The command line, e.g. `AT+CSQ`.
        command: String,
        /// Seconds to wait for the final result.
        timeout: Duration,
        /// The response lines and final result as text, or the error.
        reply: oneshot::Sender<Result<Vec<String>, String>>,
    },
    /// Reset the modem now (soft reset, as recovery does).
    Reset {
        /// Acknowledged once the reset command was sent.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Send these SMS-SUBMIT parts in order; the reply carries each part's TP-MR.
    SendSms {
        /// The parts.
        parts: Vec<EncodedPart>,
        /// Where the outcome goes.
        reply: oneshot::Sender<Result<Vec<u8>, SendFailure>>,
    },
}

/// A send that stopped at some part.
#[derive(Debug, Clone)]
pub struct SendFailure {
    /// Message references of the parts that did go out.
    pub sent: Vec<u8>,
    /// What the modem said.
    pub error: ModemError,
}

/// How a failed send is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Try again later.
    Transient,
    /// Give up: the reason will not go away by retrying.
    Permanent,
}

/// Classifies a send failure by its +CMS ERROR code (27.005 3.2.5, 24.011 E.2).
pub fn classify(e: &ModemError) -> (FailureKind, String) {
    match e {
        ModemError::At {
            source: AtError::Cms(c),
            ..
        } => {
            let kind = match c.code {
                // Network out of order, temporary failure, congestion, resources unavailable,
                // no network service, network timeout, SIM busy, unknown error.
                Some(38 | 41 | 42 | 47 | 331 | 332 | 314 | 500 | 512 | 513 | 514 | 515) => {
                    FailureKind::Transient
                }
                // Unassigned number, barred, call rejected, unidentified/unknown subscriber,
                // invalid PDU/number, SM rejected, and everything else.
                _ => FailureKind::Permanent,
            };
            (kind, format!("+CMS ERROR: {}", c.text))
        }
        ModemError::At {
            source: AtError::Timeout(_) | AtError::PortClosed(_) | AtError::EngineGone,
            ..
        } => (FailureKind::Transient, e.to_string()),
        other => (FailureKind::Permanent, other.to_string()),
    }
}

/// A channel as the sender sees it.
#[derive(Clone)]
pub struct SlotHandle {
    /// Slot number.
    pub slot: u16,
    /// Its picture (state, IMSI).
    pub snapshot: watch::Receiver<ModemSnapshot>,
    /// Its request queue.
    pub requests: mpsc::Sender<ChannelRequest>,
}

fn status_event(job: &Job, state: &str, extra: Value) -> NewEvent {
    let mut body = json!({
        "request_id": job.request_id,
        "msg_id": job.job_id,
        "to": job.payload["to"],
        "state": state,
        "parts": job.payload["parts"],
    });
    if let (Some(obj), Value::Object(more)) = (body.as_object_mut(), extra) {
        obj.extend(more);
    }
    NewEvent::new("sms-status", EventClass::Critical, body)
}

/// Marks jobs caught in `sending` by a crash as `unknown` (see the module docs).
pub async fn recover_interrupted(events: &Events) -> Result<usize, StoreError> {
    let jobs = events.store().jobs_in_state("sending", 10_000).await?;
    for job in &jobs {
        let ev = status_event(
            job,
            "unknown",
            json!({"slot": job.slot, "error": "the agent stopped while sending; the SMS may or may not have gone out"}),
        );
        events
            .store()
            .update_job(job.job_id, "unknown", job.outcome.clone(), Some(ev))
            .await?;
        tracing::warn!(job_id = job.job_id, request_id = %job.request_id, "interrupted send marked unknown");
    }
    if !jobs.is_empty() {
        events.committed();
    }
    Ok(jobs.len())
}

/// Runs the sender until shutdown.
pub async fn run(events: Events, slots: Vec<SlotHandle>, mut shutdown: watch::Receiver<bool>) {
    if let Err(e) = recover_interrupted(&events).await {
        tracing::error!(error = %e, "cannot check for interrupted sends");
    }
    let mut next_try: BTreeMap<i64, tokio::time::Instant> = BTreeMap::new();
    let mut rr = 0usize;
    let wake = events.jobs_wake();
    loop {
        let queued = match events.store().jobs_in_state("queued", 64).await {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the send queue");
                Vec::new()
            }
        };
        let now = tokio::time::Instant::now();
        for job in queued.into_iter().filter(|j| j.verb == "sms-send") {
            if next_try.get(&job.job_id).is_some_and(|t| *t > now) {
                continue;
            }
            let Some(handle) = pick_slot(&slots, &job, &mut rr) else {
                continue;
            };
            let job_id = job.job_id;
            next_try.remove(&job_id);
            // One job at a time for now; spreading a campaign over the SIMs in parallel comes
            // with the send-queue work.
            if let Some(delay) = send_job(&events, &handle, job).await {
                next_try.insert(job_id, tokio::time::Instant::now() + delay);
            }
        }
        // Wake on a new job, or to retry, or to notice a slot that became ready.
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// The slot for a job: the one it names, else the least recently used ready one.
fn pick_slot(slots: &[SlotHandle], job: &Job, rr: &mut usize) -> Option<SlotHandle> {
    let ready = |h: &&SlotHandle| h.snapshot.borrow().state == ChannelState::Ready;
    if let Some(want) = job.slot {
        return slots.iter().filter(ready).find(|h| h.slot == want).cloned();
    }
    let candidates: Vec<&SlotHandle> = slots.iter().filter(ready).collect();
    if candidates.is_empty() {
        return None;
    }
    *rr = rr.wrapping_add(1);
    candidates.get(*rr % candidates.len()).map(|h| (*h).clone())
}

/// Sends one job; returns a delay when it should be retried.
async fn send_job(events: &Events, handle: &SlotHandle, job: Job) -> Option<Duration> {
    let to = job.payload["to"].as_str().unwrap_or("").to_string();
    let text = job.payload["text"].as_str().unwrap_or("").to_string();
    let report = job.payload["report"].as_bool().unwrap_or(false);
    let attempts = job
        .outcome
        .as_ref()
        .and_then(|o| o["attempts"].as_u64())
        .unwrap_or(0) as u32
        + 1;
    let parts = match pdu::encode_submit(&SubmitOptions {
        to: to.clone(),
        text,
        report,
        concat_ref: (job.job_id & 0xff) as u8,
        ..SubmitOptions::default()
    }) {
        Ok(p) => p,
        Err(e) => {
            finish(
                events,
                &job,
                "failed",
                json!({"error": e.to_string(), "attempts": attempts}),
                handle.slot,
            )
            .await;
            return None;
        }
    };
    // Committed before the first AT+CMGS is written.
    let outcome = json!({"slot": handle.slot, "attempts": attempts});
    if let Err(e) = events
        .store()
        .update_job(job.job_id, "sending", Some(outcome), None)
        .await
    {
        tracing::error!(job_id = job.job_id, error = %e, "cannot mark the job sending; not sent");
        return Some(Duration::from_secs(5));
    }
    let (tx, rx) = oneshot::channel();
    if handle
        .requests
        .send(ChannelRequest::SendSms { parts, reply: tx })
        .await
        .is_err()
    {
        requeue(events, &job, attempts, "channel stopped", handle.slot).await;
        return Some(Duration::from_secs(5));
    }
    match rx.await {
        Ok(Ok(mrs)) => {
            tracing::info!(
                job_id = job.job_id,
                slot = handle.slot,
                parts = mrs.len(),
                "SMS sent"
            );
            finish(
                events,
                &job,
                "sent",
                json!({"slot": handle.slot, "mr": mrs, "attempts": attempts, "report": report, "delivered": []}),
                handle.slot,
            )
            .await;
            None
        }
        Ok(Err(f)) => {
            let (kind, reason) = classify(&f.error);
            if !f.sent.is_empty() {
                // Some parts are out: sending again would duplicate them.
                finish(events, &job, "failed", json!({"slot": handle.slot, "mr": f.sent, "error": reason, "attempts": attempts}), handle.slot).await;
                return None;
            }
            if kind == FailureKind::Transient && attempts < MAX_ATTEMPTS {
                tracing::warn!(job_id = job.job_id, %reason, attempts, "transient send failure; retrying");
                requeue(events, &job, attempts, &reason, handle.slot).await;
                return Some(Duration::from_secs(2u64.pow(attempts.min(6))));
            }
            tracing::warn!(job_id = job.job_id, %reason, "send failed");
            finish(
                events,
                &job,
                "failed",
                json!({"slot": handle.slot, "error": reason, "attempts": attempts}),
                handle.slot,
            )
            .await;
            None
        }
        Err(_) => {
            // The channel dropped the request (shutdown) before answering: it was not written.
            requeue(events, &job, attempts, "channel stopped", handle.slot).await;
            Some(Duration::from_secs(5))
        }
    }
}

async fn requeue(events: &Events, job: &Job, attempts: u32, reason: &str, slot: u16) {
    let outcome = json!({"attempts": attempts, "last_error": reason, "last_slot": slot});
    if let Err(e) = events
        .store()
        .update_job(job.job_id, "queued", Some(outcome), None)
        .await
    {
        tracing::error!(job_id = job.job_id, error = %e, "cannot requeue");
    }
}

async fn finish(events: &Events, job: &Job, state: &str, outcome: Value, slot: u16) {
    let mut extra = json!({"slot": slot});
    if let (Some(obj), Value::Object(o)) = (extra.as_object_mut(), outcome.clone()) {
        for k in ["mr", "error"] {
            if let Some(v) = o.get(k) {
                obj.insert(k.into(), v.clone());
            }
        }
    }
    let ev = status_event(job, state, extra);
    match events
        .store()
        .update_job(job.job_id, state, Some(outcome), Some(ev))
        .await
    {
        Ok(_) => events.committed(),
        Err(e) => {
            tracing::error!(job_id = job.job_id, error = %e, "cannot record the send outcome")
        }
    }
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
    let sent = events.store().jobs_in_state("sent", 10_000).await?;
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
        "failed"
    } else if done.len() >= total {
        "delivered"
    } else {
        "sent"
    };
    if let Some(o) = outcome.as_object_mut() {
        o.insert("delivered".into(), json!(done));
    }
    let ev = (state != "sent").then(|| status_event(&job, state, report));
    events
        .store()
        .update_job(job.job_id, state, Some(outcome), ev)
        .await?;
    events.committed();
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gsmgw_drivers::at::ErrorCode;

    fn cms(code: u16) -> ModemError {
        ModemError::At {
            command: "AT+CMGS=20".into(),
            source: AtError::Cms(ErrorCode {
                code: Some(code),
                text: code.to_string(),
            }),
        }
    }

    #[test]
    fn cms_codes_are_classed() {
        for c in [38, 42, 331, 332, 500] {
            assert_eq!(classify(&cms(c)).0, FailureKind::Transient, "{c}");
        }
        for c in [1, 8, 10, 21, 29, 96, 304] {
            assert_eq!(classify(&cms(c)).0, FailureKind::Permanent, "{c}");
        }
    }
}
