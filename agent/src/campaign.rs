//! Campaigns: one text (with per-recipient fields) to many recipients, spread over the SIMs
//! by the sender within their limits, paused, resumed or cancelled from the central server,
//! with `campaign` progress events at a bounded rate and at the end.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::commands::{MAX_SMS_PARTS, valid_e164};
use crate::events::Events;
use crate::store::{EventClass, NewCampaign, NewEvent, NewJob, StoreError, Submitted};

/// Most recipients in one campaign.
pub const MAX_RECIPIENTS: usize = 100_000;
/// Progress events at most this often per campaign.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// A validated campaign, ready to store.
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

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Fills `{field}` placeholders; an unknown field becomes empty.
pub fn personalise(template: &str, fields: Option<&Map<String, Value>>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close)
                if after[..close]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && close > 0 =>
            {
                let name = &after[..close];
                let v = fields.and_then(|f| f.get(name));
                match v {
                    Some(Value::String(s)) => out.push_str(s),
                    Some(Value::Null) | None => {}
                    Some(other) => out.push_str(&other.to_string()),
                }
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Validates a `cmd/campaign` payload.
pub fn plan(
    obj: &Map<String, Value>,
    slots: &[u16],
) -> Result<CampaignPlan, (&'static str, String)> {
    let known = [
        "request_id",
        "campaign_id",
        "text",
        "recipients",
        "priority",
        "start_at",
        "expires_at",
        "quiet_hours",
        "report",
        "slot",
        "group",
    ];
    if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(("bad-field", format!("unknown field {k:?}")));
    }
    let campaign_id = match obj.get("campaign_id") {
        Some(Value::String(s)) if valid_id(s) => s.clone(),
        _ => {
            return Err((
                "bad-field",
                "campaign_id must be 1-64 characters of letters, digits and ._:-".into(),
            ));
        }
    };
    let template = match obj.get("text") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(("bad-text", "text is required (a non-empty string)".into())),
    };
    let priority = match obj.get("priority") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_i64().filter(|p| (-100..=100).contains(p)).ok_or((
            "bad-field",
            "priority must be an integer -100..100".to_string(),
        ))?,
    };
    let not_before_ms = match obj.get("start_at") {
        None | Some(Value::Null) => 0,
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .map_err(|e| ("bad-field", format!("start_at {s:?}: {e}")))?,
        Some(_) => return Err(("bad-field", "start_at must be an RFC 3339 time".into())),
    };
    let expires_ms = match obj.get("expires_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.timestamp_millis())
                .map_err(|e| ("bad-field", format!("expires_at {s:?}: {e}")))?,
        ),
        Some(_) => return Err(("bad-field", "expires_at must be an RFC 3339 time".into())),
    };
    if let Some(q) = obj.get("quiet_hours").filter(|v| !v.is_null()) {
        let ok = q
            .as_str()
            .is_some_and(|s| crate::quiet::QuietHours::parse(s).is_ok());
        if !ok {
            return Err(("bad-field", "quiet_hours must look like 21:00-09:00".into()));
        }
    }
    let report = match obj.get("report") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(("bad-field", "report must be true or false".into())),
    };
    let slot = match obj.get("slot") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64().and_then(|s| u16::try_from(s).ok()) {
            Some(s) if slots.contains(&s) => Some(s),
            _ => return Err(("unknown-slot", format!("slot {v} is not configured"))),
        },
    };
    let group = obj.get("group").and_then(Value::as_str).map(str::to_string);
    let Some(list) = obj.get("recipients").and_then(Value::as_array) else {
        return Err(("bad-field", "recipients must be an array".into()));
    };
    if list.is_empty() || list.len() > MAX_RECIPIENTS {
        return Err((
            "bad-field",
            format!("recipients: 1 to {MAX_RECIPIENTS}, got {}", list.len()),
        ));
    }
    let mut seen = HashSet::with_capacity(list.len());
    let mut recipients = Vec::with_capacity(list.len());
    let mut bad = Vec::new();
    let mut duplicates = 0;
    for (i, r) in list.iter().enumerate() {
        let to = r.get("to").and_then(Value::as_str).unwrap_or("");
        if !valid_e164(to) {
            bad.push(format!("#{i} {to:?}: not an E.164 number"));
            continue;
        }
        if !seen.insert(to.to_string()) {
            duplicates += 1;
            continue;
        }
        let text = personalise(&template, r.get("fields").and_then(Value::as_object));
        if text.is_empty() {
            bad.push(format!("#{i} {to}: the text is empty"));
            continue;
        }
        let (_, parts) = gsmgw_drivers::pdu::split_text(&text, false);
        if parts.len() > MAX_SMS_PARTS {
            bad.push(format!(
                "#{i} {to}: {} parts (at most {MAX_SMS_PARTS})",
                parts.len()
            ));
            continue;
        }
        recipients.push((to.to_string(), text));
    }
    if !bad.is_empty() {
        let shown: Vec<String> = bad.iter().take(10).cloned().collect();
        return Err((
            "bad-recipient",
            format!("{} bad recipient(s): {}", bad.len(), shown.join("; ")),
        ));
    }
    let spec = json!({
        "campaign_id": campaign_id,
        "text": template,
        "priority": priority,
        "start_at": obj.get("start_at").cloned().unwrap_or(Value::Null),
        "expires_at": obj.get("expires_at").cloned().unwrap_or(Value::Null),
        "expires_ms": expires_ms,
        "quiet_hours": obj.get("quiet_hours").cloned().unwrap_or(Value::Null),
        "report": report,
        "slot": slot,
        "group": group,
        "recipients": recipients.len(),
        "duplicates": duplicates,
    });
    Ok(CampaignPlan {
        campaign_id,
        spec,
        priority,
        not_before_ms,
        recipients,
        duplicates,
    })
}

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
        spec["group"].clone(),
        spec["expires_ms"].clone(),
    );
    let jobs: Vec<NewJob> = plan
        .recipients
        .iter()
        .map(|(to, text)| {
            let (encoding, parts) = gsmgw_drivers::pdu::split_text(text, false);
            NewJob {
                request_id: format!("{}:{to}", plan.campaign_id),
                verb: "sms-send".into(),
                payload: json!({
                    "to": to, "text": text, "report": report, "slot": slot, "group": group,
                    "campaign_id": plan.campaign_id, "parts": parts.len(), "encoding": encoding.as_str(),
                    "expires_ms": expires_ms,
                }),
                slot,
                state: "queued".into(),
                outcome: None,
                event: None,
            }
        })
        .collect();
    let outcome = json!({
        "campaign_id": plan.campaign_id,
        "recipients": plan.recipients.len(),
        "duplicates": plan.duplicates,
        "state": "running",
    });
    let command = NewJob {
        request_id: request_id.to_string(),
        verb: "campaign".into(),
        payload: spec.clone(),
        slot: None,
        state: "done".into(),
        outcome: Some(outcome.clone()),
        event: None,
    };
    let campaign = NewCampaign {
        campaign_id: plan.campaign_id.clone(),
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
            let mut r = outcome;
            if let Some(o) = r.as_object_mut() {
                o.insert("job_id".into(), json!(job_id));
            }
            Ok(r)
        }
        Submitted::Existing {
            job_id, outcome, ..
        } => {
            let mut r = outcome.unwrap_or_else(|| json!({}));
            if let Some(o) = r.as_object_mut() {
                o.insert("job_id".into(), json!(job_id));
                o.insert("duplicate".into(), json!(true));
            }
            Ok(r)
        }
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
    let final_state = matches!(c.state.as_str(), "cancelled" | "done");
    let new_state = match (action, final_state) {
        (_, true) => c.state.clone(),
        ("pause", _) => "paused".into(),
        ("resume", _) => "running".into(),
        ("cancel", _) => "cancelled".into(),
        (other, _) => {
            return Err((
                "bad-field",
                format!("action {other:?}: expected pause, resume or cancel"),
            ));
        }
    };
    events
        .store()
        .set_campaign_state(id, &new_state)
        .await
        .map_err(internal)?;
    let mut cancelled = 0u64;
    if new_state == "cancelled" && !final_state {
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
            for job in batch {
                let ev = NewEvent::new(
                    "sms-status",
                    EventClass::Critical,
                    json!({
                        "request_id": job.request_id, "msg_id": job.job_id, "to": job.payload["to"],
                        "state": "cancelled", "parts": job.payload["parts"], "campaign_id": id,
                    }),
                );
                events
                    .store()
                    .update_job(job.job_id, "cancelled", None, Some(ev))
                    .await
                    .map_err(internal)?;
                cancelled += 1;
            }
            events.committed();
        }
    }
    if new_state == "running" {
        events.job_queued();
    }
    Ok(json!({"campaign_id": id, "state": new_state, "cancelled": cancelled}))
}

/// Publishes `campaign` progress events for active campaigns (at most every
/// [`PROGRESS_EVERY`], only when something changed) and the final one when a campaign ends.
pub async fn progress_loop(events: Events, mut shutdown: watch::Receiver<bool>) {
    let mut last: BTreeMap<String, (String, BTreeMap<String, u64>)> = BTreeMap::new();
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
            if c.state == "done" {
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
            let finished = remaining == 0 && c.state != "paused";
            let now = (c.state.clone(), counts.clone());
            if !finished && last.get(&c.campaign_id) == Some(&now) {
                continue;
            }
            let state = if finished {
                if c.state == "cancelled" {
                    "cancelled"
                } else {
                    "done"
                }
            } else {
                c.state.as_str()
            };
            let body = json!({
                "campaign_id": c.campaign_id,
                "state": state,
                "total": counts.values().sum::<u64>(),
                "queued": get("queued"),
                "sending": get("sending"),
                "sent": get("sent"),
                "delivered": get("delivered"),
                "failed": get("failed"),
                "unknown": get("unknown"),
                "cancelled": get("cancelled"),
                "expired": expired,
                "remaining": remaining,
                "final": finished,
            });
            let class = if finished {
                EventClass::Critical
            } else {
                EventClass::Telemetry
            };
            if let Err(e) = events.emit("campaign", class, body).await {
                tracing::error!(error = %e, "cannot record campaign progress");
                continue;
            }
            if finished {
                // The final event is sent once (also for a cancelled campaign): closed.
                if let Err(e) = events
                    .store()
                    .set_campaign_state(&c.campaign_id, "done")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        let f = json!({"name": "Олена", "n": 3});
        assert_eq!(
            personalise(
                "Привіт, {name}! У вас {n} бонуси. {missing}{",
                f.as_object()
            ),
            "Привіт, Олена! У вас 3 бонуси. {"
        );
        assert_eq!(personalise("{ not a field }", None), "{ not a field }");
    }

    #[test]
    fn plans_dedup_and_reject_bad_recipients() {
        let obj = json!({
            "request_id": "c1", "campaign_id": "spring-1", "text": "Hi {name}",
            "recipients": [
                {"to": "+380501111111", "fields": {"name": "A"}},
                {"to": "+380501111111", "fields": {"name": "A again"}},
                {"to": "+380502222222"}
            ]
        });
        let p = plan(obj.as_object().unwrap(), &[1]).unwrap();
        assert_eq!(p.recipients.len(), 2);
        assert_eq!(p.duplicates, 1);
        assert_eq!(p.recipients[0].1, "Hi A");
        assert_eq!(p.recipients[1].1, "Hi ");
        let bad = json!({"campaign_id": "x", "text": "t", "recipients": [{"to": "123"}]});
        assert_eq!(
            plan(bad.as_object().unwrap(), &[1]).unwrap_err().0,
            "bad-recipient"
        );
        let bad =
            json!({"campaign_id": "a/b", "text": "t", "recipients": [{"to": "+380501111111"}]});
        assert_eq!(
            plan(bad.as_object().unwrap(), &[1]).unwrap_err().0,
            "bad-field"
        );
    }
}
