//! `cmd/hangup` {request_id, call_id}: ends a call in progress (both legs).

use serde::Deserialize;
use serde_json::json;

use super::{Field, Parsed, Refusal, call_id, read};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Hangup {
    #[allow(dead_code)]
    request_id: Option<Field>,
    call_id: Option<Field>,
}

/// Validates a hangup.
pub fn parse(payload: &[u8]) -> Result<Parsed, Refusal> {
    let h: Hangup = read(payload)?;
    let id = call_id(h.call_id.as_ref())?;
    Ok(Parsed::plain(json!({"call_id": id}), None))
}
