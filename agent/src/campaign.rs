//! Campaigns: one text (with per-recipient fields) to many recipients, spread over the SIMs
//! by the sender within their limits, paused, resumed or cancelled from the central server,
//! with `campaign` progress events at a bounded rate and at the end.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::events::Events;
use crate::proto::events::{CampaignProgress, SendStatus};
use crate::proto::jobs::{SmsJob, merged, to_value};
use crate::proto::replies::{CampaignAccepted, CampaignControlled, JobRef};
use crate::proto::{CampaignState, EventBody, JobState};
use crate::store::{EventClass, NewCampaign, NewJob, StoreError, Submitted};

/// A validated campaign, ready to store (built by `cmd/campaign`).
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignPlan {
    /// The central server's id.
    pub campaign_id: String,
    /// What is stored as the campaign's spec (no recipient list).
    pub spec: Value,
    /// Priority (higher first).
    pub priority: i64,
    /// Not before (unix ms; 0 = now).
    pub not_before_ms: i64,
    /// (number, personalised text), one per distinct number, in the order given.
    pub recipients: Vec<(String, String)>,
    /// Numbers listed more than once (sent once).
    pub duplicates: usize,
}

/// Progress events at most this often per campaign.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Stores a validated campaign; the reply's `result` or the error.
pub async fn submit(
    events: &Events,
    request_id: &str,
    plan: CampaignPlan,
) -> Result<Value, StoreError> {
    let spec = plan.spec.clone();
    let (report, slot, group, expires_ms) = (
        spec["report"].as_bool().unwrap_or(false),
        spec["slot"].as_u64().and_then(|s| u16::try_from(s).ok()),
        spec["group"].as_str().map(str::to_string),
        spec["expires_ms"].as_i64(),
    );
    let campaign_id = plan.campaign_id.clone();
    let outcome = to_value(&CampaignAccepted {
        campaign_id: &plan.campaign_id,
        recipients: plan.recipients.len(),
        duplicates: plan.duplicates,
        state: CampaignState::Running,
    });
    let job_campaign = campaign_id.clone();
    let jobs = plan.recipients.into_iter().map(move |(to, text)| {
        let (encoding, parts) = gsmgw_drivers::pdu::split_text(&text, false);
        NewJob {
            request_id: format!("{job_campaign}:{to}"),
            verb: crate::proto::Verb::SmsSend,
            payload: to_value(&SmsJob {
                to,
                text,
                slot,
                report,
                parts: parts.len(),
                encoding: encoding.as_str().to_string(),
                group: group.clone(),
                campaign_id: Some(job_campaign.clone()),
                expires_at: None,
                expires_ms,
            }),
            slot,
            state: JobState::Queued,
            outcome: None,
            event: None,
        }
    });
    let command = NewJob {
        request_id: request_id.to_string(),
        verb: crate::proto::Verb::Campaign,
        payload: spec.clone(),
        slot: None,
        state: JobState::Done,
        outcome: Some(outcome.clone()),
        event: None,
    };
    let campaign = NewCampaign {
        campaign_id,
        spec,
        priority: plan.priority,
        not_before_ms: plan.not_before_ms,
    };
    match events
        .store()
        .submit_campaign(command, campaign, jobs)
        .await?
    {
        Submitted::New { job_id, .. } => {
            events.job_queued();
            Ok(merged(
                Some(outcome),
                &JobRef {
                    job_id,
                    duplicate: false,
                },
            ))
        }
        Submitted::Existing {
            job_id, outcome, ..
        } => Ok(merged(
            outcome,
            &JobRef {
                job_id,
                duplicate: true,
            },
        )),
    }
}

/// `cmd/campaign-control`: pause, resume or cancel. Returns the reply's result or an
/// (error code, message).
pub async fn control(
    events: &Events,
    obj: &Map<String, Value>,
) -> Result<Value, (&'static str, String)> {
    let id = obj
        .get("campaign_id")
        .and_then(Value::as_str)
        .ok_or(("bad-field", "campaign_id is required".to_string()))?;
    let action = obj.get("action").and_then(Value::as_str).ok_or((
        "bad-field",
        "action is required: pause, resume or cancel".to_string(),
    ))?;
    if !matches!(action, "pause" | "resume" | "cancel") {
        return Err((
            "bad-field",
            format!("action {action:?}: expected pause, resume or cancel"),
        ));
    }
    let internal = |e: StoreError| ("internal", e.to_string());
    let Some(c) = events.store().campaign(id).await.map_err(internal)? else {
        return Err(("unknown-campaign", format!("no campaign {id:?}")));
    };
    let final_state = c.state.is_final();
    let new_state = match (action, final_state) {
        (_, true) => c.state,
        ("pause", _) => CampaignState::Paused,
        ("resume", _) => CampaignState::Running,
        ("cancel", _) => CampaignState::Cancelled,
        (other, _) => {
            return Err((
                "bad-field",
                format!("action {other:?}: expected pause, resume or cancel"),
            ));
        }
    };
    events
        .store()
        .set_campaign_state(id, new_state)
        .await
        .map_err(internal)?;
    let mut cancelled = 0u64;
    if new_state == CampaignState::Cancelled && !final_state {
        // Every recipient ends in a final state, with its own sms-status event.
        loop {
            let batch = events
                .store()
                .campaign_queued(id, 1000)
                .await
                .map_err(internal)?;
            if batch.is_empty() {
                break;
            }
            // All of a batch at once: the store's writer commits them in a few transactions
            // instead of one per message (100 000 cancels took minutes one by one, and the
            // uplink waits for this reply).
            let mut updates = tokio::task::JoinSet::new();
            for job in batch {
                let ev = crate::sms_status::status_event(
                    &job,
                    JobState::Cancelled.as_str(),
                    &SendStatus {
                        campaign_id: Some(id),
                        ..SendStatus::default()
                    },
                );
                let store = events.store().clone();
                updates.spawn(async move {
                    store
                        .update_job(job.job_id, JobState::Cancelled, None, Some(ev))
                        .await
                });
            }
            while let Some(done) = updates.join_next().await {
                match done {
                    Ok(r) => {
                        r.map_err(internal)?;
                    }
                    Err(e) => return Err(("internal", format!("cancel task failed: {e}"))),
                }
                cancelled += 1;
            }
            events.committed();
        }
    }
    if new_state == CampaignState::Running {
        events.job_queued();
    }
    Ok(to_value(&CampaignControlled {
        campaign_id: id,
        state: new_state,
        cancelled,
    }))
}

/// Publishes `campaign` progress events for active campaigns (at most every
/// [`PROGRESS_EVERY`], only when something changed) and the final one when a campaign ends.
pub async fn progress_loop(events: Events, mut shutdown: watch::Receiver<bool>) {
    let mut last: BTreeMap<String, (CampaignState, BTreeMap<String, u64>)> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PROGRESS_EVERY) => {}
            _ = shutdown.changed() => return,
        }
        let campaigns = match events.store().campaigns().await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot read campaigns");
                continue;
            }
        };
        for c in campaigns {
            if c.state == CampaignState::Done {
                continue;
            }
            let counts = match events.store().campaign_counts(&c.campaign_id).await {
                Ok(x) => x,
                Err(e) => {
                    tracing::error!(error = %e, "cannot count a campaign");
                    continue;
                }
            };
            let get = |k: &str| counts.get(k).copied().unwrap_or(0);
            let remaining = get("queued") + get("sending");
            let expired = get("expired");
            let finished = remaining == 0 && c.state != CampaignState::Paused;
            let now = (c.state, counts.clone());
            if !finished && last.get(&c.campaign_id) == Some(&now) {
                continue;
            }
            let state = if finished {
                if c.state == CampaignState::Cancelled {
                    CampaignState::Cancelled
                } else {
                    CampaignState::Done
                }
            } else {
                c.state
            };
            let body = CampaignProgress {
                campaign_id: &c.campaign_id,
                state,
                total: counts.values().sum::<u64>(),
                queued: get("queued"),
                sending: get("sending"),
                sent: get("sent"),
                delivered: get("delivered"),
                failed: get("failed"),
                unknown: get("unknown"),
                cancelled: get("cancelled"),
                expired,
                remaining,
                finished,
            }
            .body();
            let class = if finished {
                EventClass::Critical
            } else {
                EventClass::Telemetry
            };
            if let Err(e) = events.emit(CampaignProgress::TYPE, class, body).await {
                tracing::error!(error = %e, "cannot record campaign progress");
                continue;
            }
            if finished {
                // The final event is sent once (also for a cancelled campaign): closed.
                if let Err(e) = events
                    .store()
                    .set_campaign_state(&c.campaign_id, CampaignState::Done)
                    .await
                {
                    tracing::error!(error = %e, "cannot close a campaign");
                }
                last.remove(&c.campaign_id);
            } else {
                last.insert(c.campaign_id.clone(), now);
            }
        }
    }
}
