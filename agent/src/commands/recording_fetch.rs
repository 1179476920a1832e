//! `cmd/recording-fetch` {request_id, call_id}: publishes a call's recording in chunks.

use serde::Deserialize;
use serde_json::json;

use super::{Field, Parsed, Refusal, call_id, read};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordingFetch {
    #[allow(dead_code)]
    request_id: Option<Field>,
    call_id: Option<Field>,
}

/// Validates a recording fetch.
pub fn parse(payload: &[u8]) -> Result<Parsed, Refusal> {
    let r: RecordingFetch = read(payload)?;
    let id = call_id(r.call_id.as_ref())?;
    Ok(Parsed::plain(json!({"call_id": id}), None))
}
