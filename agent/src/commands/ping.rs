//! `cmd/ping` {request_id}: answered at once with the agent's version and clock.

use serde::Deserialize;
use serde_json::json;

use super::{Field, Parsed, Refusal, read};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ping {
    #[allow(dead_code)]
    request_id: Option<Field>,
}

/// Validates a ping: nothing but `request_id`.
pub fn parse(payload: &[u8]) -> Result<Parsed, Refusal> {
    let _: Ping = read(payload)?;
    Ok(Parsed::plain(json!({}), None))
}
