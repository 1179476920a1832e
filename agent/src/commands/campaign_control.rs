//! `cmd/campaign-control` {request_id, campaign_id, action}: pause, resume or cancel.

use serde::Deserialize;
use serde_json::json;

use super::{Field, Parsed, Refusal, read};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CampaignControl {
    #[allow(dead_code)]
    request_id: Option<Field>,
    campaign_id: Option<Field>,
    action: Option<Field>,
}

/// Validates a control; the stored payload holds only `campaign_id` and `action`.
pub fn parse(payload: &[u8]) -> Result<Parsed, Refusal> {
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
    Ok(Parsed::plain(
        json!({"campaign_id": id, "action": action}),
        None,
    ))
}
