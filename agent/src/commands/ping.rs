//! `cmd/ping` {request_id}: answered at once with the agent's version and clock.

use serde::Deserialize;
use crate::proto::jobs::to_value;
use crate::proto::replies::Pong;

use super::registry::{self, Env, Exec, VerbSpec};
use crate::proto::JobState;
use super::{Context, Field, Origin, Parsed, Refusal, ValidCommand, read};

/// `cmd/ping`.
pub const VERB: VerbSpec = VerbSpec {
    parse,
    execute,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ping {
    #[allow(dead_code)]
    request_id: Option<Field>,
}

/// Validates a ping: nothing but `request_id`.
pub fn parse(payload: &[u8], _ctx: &Context) -> Result<Parsed, Refusal> {
    let _: Ping = read(payload)?;
    Ok(Parsed::plain(serde_json::Value::Object(serde_json::Map::new()), None))
}

/// Answers at once; recorded as a done job (a repeated request_id gets the first answer).
fn execute(env: &Env, cmd: ValidCommand, origin: Origin) -> Exec<'_> {
    Box::pin(async move {
        let pong = to_value(&Pong {
            pong: true,
            version: &env.version,
            ts: crate::clock::now_rfc3339(),
        });
        registry::store_job(env, cmd, JobState::Done, Some(pong), origin).await
    })
}
