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
use gsmgw_drivers::pdu::{self, SubmitOptions};
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::now_ms;
use crate::events::Events;
use crate::state::{ChannelState, ModemSnapshot};
use crate::store::{Job, StoreError};

/// Attempts for transient failures before a job fails.
pub const MAX_ATTEMPTS: u32 = 4;

/// Messages in flight per SIM: the next one is committed as `sending` and waits in the
/// channel's queue while the current AT+CMGS runs, so no store commit sits between two sends
/// (after a crash up to this many messages per SIM are `unknown`).
pub const DEPTH: usize = 2;

pub use crate::channel::{ChannelRequest, SendFailure, VoiceOp};
use crate::proto::JobState;
use crate::proto::events::SendStatus;
use crate::proto::jobs::SendOutcome;
pub use crate::sms_status::match_report;
use crate::sms_status::status_event;

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

/// Jobs caught in `sending` by a crash: `report` marks them `unknown` (see the module
/// docs); `retry` queues them again (the recipient may get the message twice).
pub async fn recover_interrupted(events: &Events, policy: &str) -> Result<usize, StoreError> {
    let jobs = events
        .store()
        .jobs_in_state(JobState::Sending, 10_000)
        .await?;
    if policy == "retry" {
        for job in &jobs {
            events
                .store()
                .requeue(
                    job.job_id,
                    job.outcome
                        .clone()
                        .unwrap_or_else(|| SendOutcome::default().value()),
                    0,
                )
                .await?;
        }
        return Ok(jobs.len());
    }
    for job in &jobs {
        let ev = status_event(
            job,
            "unknown",
            &SendStatus {
                slot: Some(job.slot),
                error: Some(
                    "the agent stopped while sending; the SMS may or may not have gone out",
                ),
                ..SendStatus::default()
            },
        );
        events
            .store()
            .update_job(job.job_id, JobState::Unknown, job.outcome.clone(), Some(ev))
            .await?;
        tracing::warn!(job_id = job.job_id, request_id = %job.request_id, "interrupted send marked unknown");
    }
    if !jobs.is_empty() {
        events.committed();
    }
    Ok(jobs.len())
}

/// Routing and limits, from `[sms]` and the modems' groups.
#[derive(Debug, Clone)]
pub struct SendPolicy {
    /// Per-SIM messages per minute / hour / day (0 = unlimited).
    pub per_minute: u32,
    /// Per hour.
    pub per_hour: u32,
    /// Per day (local calendar day).
    pub per_day: u32,
    /// Campaign quiet hours (a campaign's own window wins).
    pub quiet_hours: Option<crate::quiet::QuietHours>,
    /// `report` or `retry` for sends interrupted by a crash.
    pub on_unknown: String,
    /// Rest after 3 failures in a row.
    pub cooldown: Duration,
    /// Number prefix → group.
    pub routes: Vec<(String, String)>,
    /// Slot → group.
    pub groups: BTreeMap<u16, String>,
}

impl Default for SendPolicy {
    fn default() -> Self {
        Self {
            per_minute: 0,
            per_hour: 0,
            per_day: 0,
            quiet_hours: None,
            on_unknown: "report".into(),
            cooldown: Duration::from_secs(300),
            routes: Vec::new(),
            groups: BTreeMap::new(),
        }
    }
}

/// The persistent counter names of a SIM's current minute, hour and local day.
pub fn limit_counters(imsi: &str, now_ms: i64) -> [String; 3] {
    let minute = now_ms / 60_000;
    let hour = now_ms / 3_600_000;
    let day = chrono::Local::now().format("%Y%m%d");
    [
        format!("sms:{imsi}:m:{minute}"),
        format!("sms:{imsi}:h:{hour}"),
        format!("sms:{imsi}:d:{day}"),
    ]
}

/// How a send ended, for the dispatcher.
struct Done {
    slot: u16,
    job_id: i64,
    failed_here: bool,
}

#[derive(Default)]
struct SlotHealth {
    failures_in_row: u32,
    cooling_until: Option<tokio::time::Instant>,
}

/// Runs the sender until shutdown: at most one message in flight per SIM, all SIMs in
/// parallel.
pub async fn run(
    events: Events,
    slots: Vec<SlotHandle>,
    policy: SendPolicy,
    shutdown: watch::Receiver<bool>,
) {
    run_with(
        events,
        slots,
        policy,
        shutdown,
        crate::actor::Heartbeat::detached("sender"),
    )
    .await
}

/// [`run`], beating `beat` on every turn of the loop (at least every half second).
pub async fn run_with(
    events: Events,
    slots: Vec<SlotHandle>,
    policy: SendPolicy,
    mut shutdown: watch::Receiver<bool>,
    beat: crate::actor::Heartbeat,
) {
    if let Err(e) = recover_interrupted(&events, &policy.on_unknown).await {
        tracing::error!(error = %e, "cannot check for interrupted sends");
    }
    let wake = events.jobs_wake();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    // Slot → the jobs in flight on it (at most DEPTH).
    let mut busy: BTreeMap<u16, Vec<i64>> = BTreeMap::new();
    let mut health: BTreeMap<u16, SlotHealth> = BTreeMap::new();
    // Messages counted per counter name, cached (persisted by mark_sending).
    let mut counts: std::collections::HashMap<String, i64> = Default::default();
    let mut campaign_quiet: std::collections::HashMap<String, Option<crate::quiet::QuietHours>> =
        Default::default();
    loop {
        beat.beat();
        crate::fault::wedge_point("sender").await;
        let now = tokio::time::Instant::now();
        let free = slots
            .iter()
            .filter(|h| available(h, &busy, &health, now))
            .count();
        if free > 0 {
            let jobs = match events
                .store()
                .next_jobs(
                    now_ms(),
                    busy.values().map(Vec::len).sum::<usize>() + free * 4 + 8,
                )
                .await
            {
                Ok(j) => j,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the send queue");
                    Vec::new()
                }
            };
            for job in jobs {
                if busy.values().any(|jobs| jobs.contains(&job.job_id)) {
                    continue;
                }
                // Not sent by its deadline: a final state of its own, never sent late.
                if job.payload["expires_ms"]
                    .as_i64()
                    .is_some_and(|t| t <= now_ms())
                {
                    let ev = status_event(
                        &job,
                        "expired",
                        &SendStatus {
                            slot: Some(None),
                            ..SendStatus::default()
                        },
                    );
                    match events
                        .store()
                        .update_job(job.job_id, JobState::Expired, None, Some(ev))
                        .await
                    {
                        Ok(_) => events.committed(),
                        Err(e) => {
                            tracing::error!(job_id = job.job_id, error = %e, "cannot expire a job")
                        }
                    }
                    continue;
                }
                if let Some(cid) = job.payload["campaign_id"].as_str() {
                    let q = match campaign_quiet.get(cid) {
                        Some(q) => *q,
                        None => {
                            let own = match events.store().campaign(cid).await {
                                Ok(Some(c)) => c.spec["quiet_hours"]
                                    .as_str()
                                    .and_then(|s| crate::quiet::QuietHours::parse(s).ok()),
                                _ => None,
                            };
                            let q = own.or(policy.quiet_hours);
                            campaign_quiet.insert(cid.to_string(), q);
                            q
                        }
                    };
                    if q.is_some_and(|q| q.now()) {
                        continue;
                    }
                }
                let Some(handle) =
                    route(&slots, &job, &policy, &busy, &health, &mut counts, &events).await
                else {
                    continue;
                };
                busy.entry(handle.slot).or_default().push(job.job_id);
                let imsi = handle.snapshot.borrow().identity.imsi.clone();
                let names = limit_counters(&imsi, now_ms());
                for n in &names {
                    *counts.entry(n.clone()).or_insert(0) += 1;
                }
                let (ev, tx) = (events.clone(), done_tx.clone());
                tokio::spawn(async move {
                    let slot = handle.slot;
                    let job_id = job.job_id;
                    let failed_here = send_job(&ev, &handle, job, names.to_vec()).await;
                    ev.job_queued();
                    let _ = tx.send(Done {
                        slot,
                        job_id,
                        failed_here,
                    });
                });
                if busy.values().map(Vec::len).sum::<usize>() >= slots.len() * DEPTH {
                    break;
                }
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            d = done_rx.recv() => {
                if let Some(d) = d {
                    if let Some(jobs) = busy.get_mut(&d.slot) {
                        jobs.retain(|j| *j != d.job_id);
                        if jobs.is_empty() {
                            busy.remove(&d.slot);
                        }
                    }
                    let h = health.entry(d.slot).or_default();
                    if d.failed_here {
                        h.failures_in_row += 1;
                        if h.failures_in_row >= 3 {
                            tracing::warn!(slot = d.slot, "SIM keeps failing; cooling down");
                            h.cooling_until = Some(tokio::time::Instant::now() + policy.cooldown);
                            h.failures_in_row = 0;
                        }
                    } else {
                        h.failures_in_row = 0;
                    }
                    tracing::debug!(slot = d.slot, job_id = d.job_id, "send finished");
                }
            }
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                // Counters of past windows are not needed in memory.
                if counts.len() > 10_000 {
                    counts.clear();
                }
            }
        }
    }
}

/// A SIM that can take a message now: ready, fewer than DEPTH in flight, not cooling down.
fn available(
    h: &SlotHandle,
    busy: &BTreeMap<u16, Vec<i64>>,
    health: &BTreeMap<u16, SlotHealth>,
    now: tokio::time::Instant,
) -> bool {
    busy.get(&h.slot).map_or(0, Vec::len) < DEPTH
        && h.snapshot.borrow().state == ChannelState::Ready
        && health
            .get(&h.slot)
            .and_then(|x| x.cooling_until)
            .is_none_or(|t| t <= now)
}

/// The SIM for a job: the slot it names, else its group, else the group its number's prefix
/// maps to (falling back to any SIM), least used today among those within their limits.
async fn route(
    slots: &[SlotHandle],
    job: &Job,
    policy: &SendPolicy,
    busy: &BTreeMap<u16, Vec<i64>>,
    health: &BTreeMap<u16, SlotHealth>,
    counts: &mut std::collections::HashMap<String, i64>,
    events: &Events,
) -> Option<SlotHandle> {
    let now = tokio::time::Instant::now();
    let avoid = SendOutcome::read(job.outcome.as_ref()).last_slot;
    let usable: Vec<&SlotHandle> = slots
        .iter()
        .filter(|h| available(h, busy, health, now))
        .collect();
    let to = job.payload["to"].as_str().unwrap_or("");
    let explicit_group = job.payload["group"].as_str().map(str::to_string);
    let prefix_group = policy
        .routes
        .iter()
        .filter(|(p, _)| to.starts_with(p.as_str()))
        .max_by_key(|(p, _)| p.len())
        .map(|(_, g)| g.clone());
    let in_group =
        |g: &str, h: &&&SlotHandle| policy.groups.get(&h.slot).map(String::as_str) == Some(g);
    let mut candidates: Vec<&SlotHandle> = if let Some(want) = job.slot {
        usable.iter().copied().filter(|h| h.slot == want).collect()
    } else if let Some(g) = &explicit_group {
        usable.iter().filter(|h| in_group(g, h)).copied().collect()
    } else {
        let preferred: Vec<&SlotHandle> = match &prefix_group {
            Some(g) => usable.iter().filter(|h| in_group(g, h)).copied().collect(),
            None => Vec::new(),
        };
        if preferred.is_empty() {
            usable.clone()
        } else {
            preferred
        }
    };
    // Failover: after a failure on one SIM, another one if there is one.
    if let Some(a) = avoid {
        if candidates.len() > 1 {
            candidates.retain(|h| h.slot != a);
        }
    }
    // Least loaded first (spreads a campaign over every SIM), then least used today.
    let mut best: Option<(&SlotHandle, (usize, i64))> = None;
    for h in candidates {
        let imsi = h.snapshot.borrow().identity.imsi.clone();
        let names = limit_counters(&imsi, now_ms());
        let mut used = [0i64; 3];
        for (i, n) in names.iter().enumerate() {
            used[i] = match counts.get(n) {
                Some(v) => *v,
                None => {
                    let v = events
                        .store()
                        .counters(vec![n.clone()])
                        .await
                        .ok()
                        .and_then(|v| v.first().copied())
                        .unwrap_or(0);
                    counts.insert(n.clone(), v);
                    v
                }
            };
        }
        let limits = [policy.per_minute, policy.per_hour, policy.per_day];
        if used
            .iter()
            .zip(limits)
            .any(|(u, l)| l > 0 && *u >= i64::from(l))
        {
            continue;
        }
        let key = (busy.get(&h.slot).map_or(0, Vec::len), used[2]);
        if best.is_none_or(|(_, b)| key < b) {
            best = Some((h, key));
        }
    }
    best.map(|(h, _)| h.clone())
}

/// Sends one job; returns true when it failed because of this SIM (for cooling down).
async fn send_job(events: &Events, handle: &SlotHandle, job: Job, counters: Vec<String>) -> bool {
    let to = job.payload["to"].as_str().unwrap_or("").to_string();
    let text = job.payload["text"].as_str().unwrap_or("").to_string();
    let report = job.payload["report"].as_bool().unwrap_or(false);
    let attempts = SendOutcome::read(job.outcome.as_ref())
        .attempts
        .unwrap_or(0)
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
                JobState::Failed,
                SendOutcome {
                    error: Some(e.to_string()),
                    attempts: Some(attempts),
                    ..SendOutcome::default()
                },
                handle.slot,
            )
            .await;
            return false;
        }
    };
    // Committed, and counted against the SIM's limits, before the first AT+CMGS is written.
    let outcome = SendOutcome {
        slot: Some(handle.slot),
        attempts: Some(attempts),
        ..SendOutcome::default()
    }
    .value();
    match events
        .store()
        .mark_sending(job.job_id, outcome, counters)
        .await
    {
        Ok(()) => {}
        Err(StoreError::NoSuchJob(_)) => return false, // cancelled meanwhile
        Err(e) => {
            tracing::error!(job_id = job.job_id, error = %e, "cannot mark the job sending; not sent");
            return false;
        }
    }
    let (tx, rx) = oneshot::channel();
    if handle
        .requests
        .send(ChannelRequest::SendSms { parts, reply: tx })
        .await
        .is_err()
    {
        requeue(
            events,
            &job,
            attempts,
            "channel stopped",
            handle.slot,
            Duration::from_secs(5),
        )
        .await;
        return true;
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
                JobState::Sent,
                SendOutcome {
                    slot: Some(handle.slot),
                    mr: Some(mrs),
                    attempts: Some(attempts),
                    report: Some(report),
                    delivered: Some(Vec::new()),
                    ..SendOutcome::default()
                },
                handle.slot,
            )
            .await;
            false
        }
        Ok(Err(f)) => {
            let (kind, reason) = classify(&f.error);
            if !f.sent.is_empty() {
                // Some parts are out: sending again would duplicate them.
                let outcome = SendOutcome {
                    slot: Some(handle.slot),
                    mr: Some(f.sent),
                    error: Some(reason),
                    attempts: Some(attempts),
                    ..SendOutcome::default()
                };
                finish(events, &job, JobState::Failed, outcome, handle.slot).await;
                return true;
            }
            if kind == FailureKind::Transient && attempts < MAX_ATTEMPTS {
                tracing::warn!(job_id = job.job_id, %reason, attempts, "transient send failure; retrying");
                let delay = Duration::from_secs(2u64.pow(attempts.min(6)));
                requeue(events, &job, attempts, &reason, handle.slot, delay).await;
                return true;
            }
            tracing::warn!(job_id = job.job_id, %reason, "send failed");
            finish(
                events,
                &job,
                JobState::Failed,
                SendOutcome {
                    slot: Some(handle.slot),
                    error: Some(reason),
                    attempts: Some(attempts),
                    ..SendOutcome::default()
                },
                handle.slot,
            )
            .await;
            kind == FailureKind::Transient
        }
        Err(_) => {
            // The channel dropped the request before answering (port gone): not written.
            requeue(
                events,
                &job,
                attempts,
                "channel stopped",
                handle.slot,
                Duration::from_secs(1),
            )
            .await;
            true
        }
    }
}

async fn requeue(
    events: &Events,
    job: &Job,
    attempts: u32,
    reason: &str,
    slot: u16,
    delay: Duration,
) {
    let outcome = SendOutcome {
        attempts: Some(attempts),
        last_error: Some(reason.to_string()),
        last_slot: Some(slot),
        ..SendOutcome::default()
    }
    .value();
    let due = now_ms() + i64::try_from(delay.as_millis()).unwrap_or(0);
    if let Err(e) = events.store().requeue(job.job_id, outcome, due).await {
        tracing::error!(job_id = job.job_id, error = %e, "cannot requeue");
    }
}

async fn finish(events: &Events, job: &Job, state: JobState, outcome: SendOutcome, slot: u16) {
    let extra = SendStatus {
        slot: Some(Some(slot)),
        mr: outcome.mr.as_deref(),
        error: outcome.error.as_deref(),
        campaign_id: None,
    };
    let ev = status_event(job, state.as_str(), &extra);
    match events
        .store()
        .update_job(job.job_id, state, Some(outcome.value()), Some(ev))
        .await
    {
        Ok(_) => events.committed(),
        Err(e) => {
            tracing::error!(job_id = job.job_id, error = %e, "cannot record the send outcome")
        }
    }
}

#[cfg(test)]
mod tests;
