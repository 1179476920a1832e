//! `cmd/campaign-control` {request_id, campaign_id, action}: pause, resume or cancel.

use serde::Deserialize;
use crate::proto::jobs::CampaignControlJob;

use super::registry::{Done, Env, Exec, Failure, VerbSpec};
use super::{Context, Field, Origin, Parsed, Refusal, ValidCommand, read};
use crate::store::{NewJob, Submitted};

/// `cmd/campaign-control`.
pub const VERB: VerbSpec = VerbSpec {
    parse,
    execute,
};

fn execute(env: &Env, cmd: ValidCommand, _origin: Origin) -> Exec<'_> {
    Box::pin(run(env, cmd))
}

/// Applied, then recorded for idempotency (repeating a control is harmless anyway).
async fn run(env: &Env, cmd: ValidCommand) -> Result<Done, Failure> {
    let obj = cmd.payload.as_object().cloned().unwrap_or_default();
    let result = crate::campaign::control(&env.events, &obj)
        .await
        .map_err(|(c, m)| (c.to_string(), m))?;
    let job = NewJob {
        request_id: cmd.request_id.clone(),
        verb: cmd.verb,
        payload: cmd.payload.clone(),
        slot: None,
        state: crate::proto::JobState::Done,
        outcome: Some(result.clone()),
        event: None,
    };
    Ok(Done::result(match env.events.store().submit_job(job).await {
        Ok(Submitted::Existing {
            outcome: Some(o), ..
        }) => o,
        _ => result,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CampaignControl {
    #[allow(dead_code)]
    request_id: Option<Field>,
    campaign_id: Option<Field>,
    action: Option<Field>,
}

/// Validates a control; the stored payload holds only `campaign_id` and `action`.
pub fn parse(payload: &[u8], _ctx: &Context) -> Result<Parsed, Refusal> {
    let c: CampaignControl = read(payload)?;
    let id = match c.campaign_id.as_ref().and_then(Field::as_str) {
        Some(s) if super::campaign::valid_id(s) => s.to_string(),
        _ => {
            return Err((
                "bad-field",
                "campaign_id is required: 1-64 characters of letters, digits and ._:-".into(),
            ));
        }
    };
    let action = match c.action.as_ref().and_then(Field::as_str) {
        Some(a @ ("pause" | "resume" | "cancel")) => a.to_string(),
        Some(a) => {
            return Err((
                "bad-field",
                format!("action {a:?}: expected pause, resume or cancel"),
            ));
        }
        None => {
            return Err((
                "bad-field",
                "action is required: pause, resume or cancel".into(),
            ));
        }
    };
    Ok(Parsed::typed(
        &CampaignControlJob {
            campaign_id: &id,
            action: &action,
        },
        None,
    ))
}
