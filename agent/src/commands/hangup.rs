//! `cmd/hangup` {request_id, call_id}: ends a call in progress (both legs).

use serde::Deserialize;
use crate::proto::jobs::CallRef;

use super::{Context, Field, Parsed, Refusal, call_id, read, ValidCommand, Origin};
use super::registry::{Env, Exec, VerbSpec};

/// `cmd/hangup`.
pub const VERB: VerbSpec = VerbSpec {
    parse,
    execute,
};

/// Ends a call through the voice manager.
fn execute(env: &Env, cmd: ValidCommand, _origin: Origin) -> Exec<'_> {
    Box::pin(super::voice_command(env, cmd))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Hangup {
    #[allow(dead_code)]
    request_id: Option<Field>,
    call_id: Option<Field>,
}

/// Validates a hangup.
pub fn parse(payload: &[u8], _ctx: &Context) -> Result<Parsed, Refusal> {
    let h: Hangup = read(payload)?;
    let id = call_id(h.call_id.as_ref())?;
    Ok(Parsed::typed(&CallRef { call_id: &id }, None))
}
