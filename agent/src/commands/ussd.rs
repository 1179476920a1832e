//! `cmd/ussd` {request_id, slot, code, replies?, timeout_secs?}: one USSD exchange on a SIM
//! (`*111#`, then the replies to the menus that follow), answered with what the network said.
//!
//! The code and every reply must be a USSD string (digits, `*`, `#`; at most 160): anything
//! else is refused before it reaches a modem, since it is written inside an AT command line.
//! A repeated request_id is answered from the store and never sent again (a USSD may order a
//! package or move money).

use std::time::Duration;

use serde::Deserialize;
use crate::proto::jobs::{UssdJob, to_value};
use serde_json::Value;
use crate::proto::replies::{ErrorBody, Refused, Repeated, UssdAnswer, UssdStep};
use tokio::sync::oneshot;

use super::registry::{Done, Env, Exec, Failure, VerbSpec};
use super::{Context, Field, Origin, Parsed, Refusal, ValidCommand, read};
use crate::channel::ChannelRequest;
use gsmgw_drivers::ussd::session::UssdFailure;
use gsmgw_drivers::ussd::{UssdStatus, validate_code};

/// `cmd/ussd`.
pub const VERB: VerbSpec = VerbSpec {
    parse,
    execute,
};

/// At most this many menu replies.
pub const MAX_REPLIES: usize = 10;

/// Default and longest wait for each answer of the network.
const DEFAULT_TIMEOUT_SECS: i64 = 30;
const MAX_TIMEOUT_SECS: i64 = 120;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ussd {
    #[allow(dead_code)]
    request_id: Option<Field>,
    slot: Option<Field>,
    code: Option<Field>,
    replies: Option<Value>,
    timeout_secs: Option<Field>,
}

/// Validates a USSD request.
pub fn parse(payload: &[u8], ctx: &Context) -> Result<Parsed, Refusal> {
    let u: Ussd = read(payload)?;
    let slot = match u.slot.as_ref() {
        None | Some(Field::Null) => {
            return Err(("unknown-slot", "slot is required (the SIM to ask)".into()));
        }
        Some(f) => match f.as_i64().and_then(|s| u16::try_from(s).ok()) {
            Some(s) if ctx.slots.contains(&s) => s,
            _ => {
                return Err((
                    "unknown-slot",
                    format!("slot {} is not configured", f.shown()),
                ));
            }
        },
    };
    let code = match u.code.as_ref() {
        Some(Field::Str(s)) => s.clone(),
        other => {
            return Err((
                "bad-field",
                format!(
                    "code is required: a USSD string like \"*111#\" (got {})",
                    other.map_or("nothing".to_string(), Field::shown)
                ),
            ));
        }
    };
    validate_code(&code).map_err(|e| ("bad-field", format!("code: {e}")))?;
    let replies: Vec<String> = match u.replies {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            if items.len() > MAX_REPLIES {
                return Err((
                    "bad-field",
                    format!("replies: at most {MAX_REPLIES} (got {})", items.len()),
                ));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let Some(s) = item.as_str() else {
                    return Err(("bad-field", format!("replies[{i}] must be a string")));
                };
                validate_code(s).map_err(|e| ("bad-field", format!("replies[{i}]: {e}")))?;
                out.push(s.to_string());
            }
            out
        }
        Some(_) => {
            return Err((
                "bad-field",
                "replies must be an array of USSD strings, e.g. [\"1\"]".into(),
            ));
        }
    };
    let timeout = match u.timeout_secs.as_ref() {
        None | Some(Field::Null) => DEFAULT_TIMEOUT_SECS,
        Some(f) => match f.as_i64() {
            Some(t) if (1..=MAX_TIMEOUT_SECS).contains(&t) => t,
            _ => {
                return Err((
                    "bad-field",
                    format!("timeout_secs must be 1 to {MAX_TIMEOUT_SECS} (got {})", f.shown()),
                ));
            }
        },
    };
    let job = UssdJob {
        request_id: None,
        slot,
        code: &code,
        replies: &replies,
        timeout_secs: Some(timeout),
    };
    Ok(Parsed::typed(&job, Some(slot)))
}

fn execute(env: &Env, cmd: ValidCommand, _origin: Origin) -> Exec<'_> {
    Box::pin(run(env, cmd))
}

/// The refusal for an exchange that gave no answer.
pub fn failure(e: &UssdFailure) -> Failure {
    let code = match e {
        UssdFailure::Invalid(_) => "bad-field",
        UssdFailure::Refused(_) => "ussd-refused",
        UssdFailure::Timeout(_) => "ussd-timeout",
        UssdFailure::Network { .. } => "ussd-network",
        UssdFailure::Port(_) => "modem-unavailable",
    };
    (code.to_string(), e.to_string())
}

async fn run(env: &Env, cmd: ValidCommand) -> Result<Done, Failure> {
    let store = env.events.store().clone();
    if let Ok(Some(job)) = store.job_by_request(&cmd.request_id).await {
        if job.verb != cmd.verb {
            return Err((
                "bad-request-id".into(),
                super::registry::reused(&cmd.request_id, job.verb),
            ));
        }
        // The first refusal again, or the first answer: never sent a second time.
        if let Some(err) = job.outcome.as_ref().and_then(|o| o.get("error")) {
            return Err((
                err["code"].as_str().unwrap_or("internal").to_string(),
                err["message"].as_str().unwrap_or("").to_string(),
            ));
        }
        let mut r = to_value(&Repeated {
            state: job.state,
            duplicate: true,
        });
        super::registry::merge(&mut r, job.outcome.as_ref());
        return Ok(Done::result(r));
    }
    let p = &cmd.payload;
    let slot = cmd.slot.unwrap_or(0);
    let code = p["code"].as_str().unwrap_or("").to_string();
    let replies: Vec<String> = p["replies"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let timeout = Duration::from_secs(p["timeout_secs"].as_u64().unwrap_or(30));
    let Some(tx) = env.channels.get(slot).cloned() else {
        return Err((
            "modem-unavailable".into(),
            format!("slot {slot} has no running modem channel"),
        ));
    };
    let (reply, rx) = oneshot::channel();
    tracing::info!(slot, request_id = %cmd.request_id, "USSD request");
    let req = ChannelRequest::Ussd {
        code,
        replies,
        timeout,
        reply,
    };
    let unavailable = |why: &str| ("modem-unavailable".to_string(), format!("slot {slot}: {why}"));
    tokio::time::timeout(Duration::from_secs(5), tx.send(req))
        .await
        .map_err(|_| unavailable("the modem's channel is busy"))?
        .map_err(|_| unavailable("the modem's channel is not running"))?;
    // Every answer may take `timeout`; the exchange has a few steps at most.
    let bound = timeout * (MAX_REPLIES as u32 + 1) + Duration::from_secs(30);
    let outcome = tokio::time::timeout(bound, rx)
        .await
        .map_err(|_| unavailable("no answer from the modem's channel"))?
        .map_err(|_| unavailable("the modem's channel dropped the request (port lost?)"))?;
    let result = match &outcome {
        Ok((x, balance)) => {
            let last = x.last();
            to_value(&UssdAnswer {
                slot,
                status: last.map_or(UssdStatus::Terminated, |s| s.status),
                text: last.map_or("", |s| s.text.as_str()),
                dcs: last.and_then(|s| s.dcs),
                balance: balance.as_ref(),
                steps: x
                    .steps
                    .iter()
                    .map(|s| UssdStep {
                        sent: &s.sent,
                        status: s.status,
                        text: &s.text,
                    })
                    .collect(),
            })
        }
        Err(e) => {
            let (code, message) = failure(e);
            to_value(&Refused {
                slot,
                error: ErrorBody {
                    code: &code,
                    message: &message,
                },
            })
        }
    };
    // Recorded either way: a repeated request_id is answered from the store, never re-sent.
    let job = crate::store::NewJob {
        request_id: cmd.request_id.clone(),
        verb: cmd.verb,
        payload: cmd.payload.clone(),
        slot: cmd.slot,
        state: if outcome.is_ok() {
            crate::proto::JobState::Done
        } else {
            crate::proto::JobState::Failed
        },
        outcome: Some(result.clone()),
        event: None,
    };
    if let Err(e) = store.submit_job(job).await {
        tracing::warn!(request_id = %cmd.request_id, error = %e, "USSD command not recorded");
    }
    match outcome {
        Ok(_) => Ok(Done::result(result)),
        Err(e) => Err(failure(&e)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use super::*;

    fn check(payload: &str) -> Result<Value, Refusal> {
        parse(payload.as_bytes(), &Context::with_slots(&[1, 2])).map(|p| p.payload)
    }

    #[test]
    fn good_requests_are_normalised() {
        assert_eq!(
            check(r#"{"request_id":"u1","slot":1,"code":"*111#"}"#),
            Ok(json!({"slot": 1, "code": "*111#", "timeout_secs": 30}))
        );
        assert_eq!(
            check(r#"{"request_id":"u1","slot":2,"code":"*100#","replies":["1","2"],"timeout_secs":60}"#),
            Ok(json!({"slot": 2, "code": "*100#", "replies": ["1", "2"], "timeout_secs": 60}))
        );
    }

    #[test]
    fn no_at_injection_and_clear_reasons() {
        for (payload, code, words) in [
            (r#"{"request_id":"u","slot":1,"code":"*111#\"\r\nAT+CMGS=1"}"#, "bad-field", "only digits"),
            (r#"{"request_id":"u","slot":1,"code":"*111#;+CFUN=0"}"#, "bad-field", "only digits"),
            (r#"{"request_id":"u","slot":1,"code":""}"#, "bad-field", "empty"),
            (r#"{"request_id":"u","slot":1}"#, "bad-field", "code is required"),
            (r#"{"request_id":"u","slot":1,"code":111}"#, "bad-field", "code is required"),
            (r#"{"request_id":"u","code":"*111#"}"#, "unknown-slot", "required"),
            (r#"{"request_id":"u","slot":7,"code":"*111#"}"#, "unknown-slot", "not configured"),
            (r#"{"request_id":"u","slot":1,"code":"*100#","replies":["1\r"]}"#, "bad-field", "replies[0]"),
            (r#"{"request_id":"u","slot":1,"code":"*100#","replies":[1]}"#, "bad-field", "replies[0]"),
            (r#"{"request_id":"u","slot":1,"code":"*100#","replies":"1"}"#, "bad-field", "array"),
            (r#"{"request_id":"u","slot":1,"code":"*100#","replies":["1","1","1","1","1","1","1","1","1","1","1"]}"#, "bad-field", "at most 10"),
            (r#"{"request_id":"u","slot":1,"code":"*100#","timeout_secs":0}"#, "bad-field", "timeout_secs"),
            (r#"{"request_id":"u","slot":1,"code":"*100#","pin":"1234"}"#, "bad-field", "pin"),
        ] {
            match check(payload) {
                Err((c, m)) => {
                    assert_eq!(c, code, "{payload}: {m}");
                    assert!(m.contains(words), "{payload}: {m}");
                }
                Ok(v) => panic!("{payload} accepted: {v}"),
            }
        }
        let long = format!(r#"{{"request_id":"u","slot":1,"code":"{}"}}"#, "1".repeat(161));
        assert!(check(&long).is_err());
    }
}
