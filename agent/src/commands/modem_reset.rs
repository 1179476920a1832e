//! `cmd/modem-reset` {request_id, slot, kind?}: a soft reset (`AT+CFUN=1,1`, the default) or
//! a power cycle (`kind: "power"`, through the board profile's power pin) of one modem, as
//! recovery does it; the modem's state topic shows it going and coming back. A repeated
//! request_id is answered from the store and resets nothing again.

use std::time::Duration;

use serde::Deserialize;
use tokio::sync::oneshot;

use super::registry::{Done, Env, Exec, Failure, VerbSpec};
use super::{Context, Field, Origin, Parsed, Refusal, ValidCommand, read};
use crate::channel::{ChannelRequest, ResetRefused};
use crate::proto::JobState;
use crate::proto::jobs::{ModemResetJob, to_value};
use crate::proto::replies::{ModemReset, Repeated};

/// `cmd/modem-reset`.
pub const VERB: VerbSpec = VerbSpec { parse, execute };

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reset {
    #[allow(dead_code)]
    request_id: Option<Field>,
    slot: Option<Field>,
    kind: Option<Field>,
}

/// Validates a reset: a configured slot, `soft` or `power`.
pub fn parse(payload: &[u8], ctx: &Context) -> Result<Parsed, Refusal> {
    let r: Reset = read(payload)?;
    let slot = match super::optional_slot(r.slot.as_ref(), &ctx.slots)? {
        Some(s) => s,
        None => return Err(("unknown-slot", "slot is required (the modem to reset)".into())),
    };
    let kind = match r.kind.as_ref() {
        None | Some(Field::Null) => "soft",
        Some(Field::Str(k)) if k == "soft" || k == "power" => k.as_str(),
        Some(f) => {
            return Err((
                "bad-field",
                format!("kind {}: expected soft or power", f.shown()),
            ));
        }
    };
    Ok(Parsed::typed(&ModemResetJob { slot, kind }, Some(slot)))
}

fn execute(env: &Env, cmd: ValidCommand, _origin: Origin) -> Exec<'_> {
    Box::pin(run(env, cmd))
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
        let mut r = to_value(&Repeated {
            state: job.state,
            duplicate: true,
        });
        super::registry::merge(&mut r, job.outcome.as_ref());
        return Ok(Done::result(r));
    }
    let slot = cmd.slot.unwrap_or(0);
    let power = cmd.payload["kind"].as_str() == Some("power");
    let unavailable = |why: String| ("modem-unavailable".to_string(), format!("slot {slot}: {why}"));
    let Some(tx) = env.channels.get(slot).cloned() else {
        return Err(unavailable("no running modem channel".into()));
    };
    let (reply, rx) = oneshot::channel();
    tracing::warn!(slot, power, request_id = %cmd.request_id, "modem reset requested over MQTT");
    tokio::time::timeout(
        Duration::from_secs(5),
        tx.send(ChannelRequest::Reset { power, reply }),
    )
    .await
    .map_err(|_| unavailable("the modem's channel is busy".into()))?
    .map_err(|_| unavailable("the modem's channel is not running".into()))?;
    tokio::time::timeout(Duration::from_secs(15), rx)
        .await
        .map_err(|_| unavailable("no answer from the modem's channel".into()))?
        .map_err(|_| unavailable("the modem's channel dropped the request".into()))?
        .map_err(|e| match e {
            ResetRefused::NoPowerControl(_) => ("no-power-control".to_string(), e.to_string()),
            ResetRefused::Unavailable(_) => ("modem-unavailable".to_string(), e.to_string()),
        })?;
    let result = to_value(&ModemReset {
        slot,
        kind: if power { "power" } else { "soft" },
        state: "resetting",
    });
    let job = crate::store::NewJob {
        request_id: cmd.request_id.clone(),
        verb: cmd.verb,
        payload: cmd.payload.clone(),
        slot: cmd.slot,
        state: JobState::Done,
        outcome: Some(result.clone()),
        event: None,
    };
    if let Err(e) = store.submit_job(job).await {
        tracing::warn!(request_id = %cmd.request_id, error = %e, "modem reset not recorded");
    }
    Ok(Done::result(result))
}
