//! `cmd/sms-send` {request_id, to, text, slot?, report?, expires_at?}: one SMS (up to 10
//! parts). Past `expires_at` it is refused on arrival (`expired`), and a queued one that was not
//! sent by then ends `expired` without being sent.

use serde::Deserialize;
use crate::proto::jobs::SmsJob;

use super::registry::{self, Env, Exec, VerbSpec};
use crate::proto::JobState;
use super::{
    Context, E164, Field, MAX_SMS_PARTS, Origin, Parsed, Refusal, ValidCommand, optional_bool,
    optional_slot, read,
};

/// `cmd/sms-send`.
pub const VERB: VerbSpec = VerbSpec {
    parse,
    execute,
};

/// Queued as a job; the sender picks it up.
fn execute(env: &Env, cmd: ValidCommand, origin: Origin) -> Exec<'_> {
    Box::pin(async move {
        // A repeat of an accepted command is answered from the store, expired or not.
        let known = matches!(env.events.store().job_by_request(&cmd.request_id).await, Ok(Some(_)));
        if !known {
            super::refuse_expired(&cmd.payload)?;
        }
        registry::store_job(env, cmd, JobState::Queued, None, origin).await
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SmsSend {
    #[allow(dead_code)]
    request_id: Option<Field>,
    to: Option<Field>,
    text: Option<Field>,
    slot: Option<Field>,
    report: Option<Field>,
    expires_at: Option<Field>,
}

/// Validates an SMS to send; the stored payload adds its parts and encoding.
pub fn parse(payload: &[u8], ctx: &Context) -> Result<Parsed, Refusal> {
    let m: SmsSend = read(payload)?;
    let to = match &m.to {
        Some(Field::Str(s)) if E164::parse(s).is_some() => s.clone(),
        Some(Field::Str(s)) if ctx.internal && gsmgw_drivers::modem::dialable(s) => s.clone(),
        Some(Field::Str(s)) => {
            return Err((
                "bad-number",
                format!(
                    "{} is not an E.164 number (+ and 7-15 digits)",
                    Field::Str(s.clone()).shown()
                ),
            ));
        }
        _ => return Err(("bad-number", "to is required (E.164 number)".into())),
    };
    let text = match m.text {
        Some(Field::Str(s)) if !s.is_empty() => s,
        Some(Field::Str(_)) => return Err(("bad-text", "text is empty".into())),
        _ => return Err(("bad-text", "text is required (a string)".into())),
    };
    let (encoding, parts) = gsmgw_drivers::pdu::split_text(&text, false);
    if parts.len() > MAX_SMS_PARTS {
        return Err((
            "text-too-long",
            format!(
                "text needs {} {} parts; at most {MAX_SMS_PARTS} are sent",
                parts.len(),
                encoding.as_str()
            ),
        ));
    }
    let slot = optional_slot(m.slot.as_ref(), &ctx.slots)?;
    let report = optional_bool("report", m.report.as_ref())?.unwrap_or(false);
    let expires = super::rfc3339("expires_at", m.expires_at.as_ref())?;
    let (expires_at, expires_ms) = match expires {
        Some((at, ms)) => (Some(at), Some(ms)),
        None => (None, None),
    };
    let payload = SmsJob {
        to,
        text,
        slot,
        report,
        parts: parts.len(),
        encoding: encoding.as_str().to_string(),
        group: None,
        campaign_id: None,
        expires_at,
        expires_ms,
    };
    Ok(Parsed::typed(&payload, slot))
}
