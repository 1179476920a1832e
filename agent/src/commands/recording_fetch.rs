//! `cmd/recording-fetch` {request_id, call_id}: publishes a call's recording in chunks.

use serde::Deserialize;
use crate::proto::jobs::{CallRef, to_value};
use crate::proto::replies::RecordingOffer;

use super::registry::{Done, Env, Exec, Failure, Followup, VerbSpec};
use super::{Context, Field, Origin, Parsed, Refusal, ValidCommand, call_id, read};

/// `cmd/recording-fetch`.
pub const VERB: VerbSpec = VerbSpec {
    parse,
    execute,
};

fn execute(env: &Env, cmd: ValidCommand, _origin: Origin) -> Exec<'_> {
    Box::pin(run(env, cmd))
}

/// The call's WAV in numbered chunks (sent after the reply on `…/recording/{call_id}/{n}`,
/// QoS 1), the last one with the file's SHA-256.
async fn run(env: &Env, cmd: ValidCommand) -> Result<Done, Failure> {
    let call_id = cmd.payload.get("call_id").and_then(serde_json::Value::as_str).unwrap_or("");
    let path = crate::recordings::path_for(&env.data_dir, call_id);
    let data = tokio::fs::read(&path).await.map_err(|e| {
        (
            "no-recording".to_string(),
            format!("no recording for call {call_id}: {e}"),
        )
    })?;
    let chunks = crate::recordings::chunks(call_id, &data);
    let n = chunks.len();
    let sha = crate::recordings::sha256_hex(&data);
    Ok(Done {
        result: to_value(&RecordingOffer {
            call_id,
            chunks: n,
            size: data.len(),
            sha256: &sha,
        }),
        followup: Some(Followup::Recording {
            call_id: call_id.to_string(),
            chunks,
        }),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordingFetch {
    #[allow(dead_code)]
    request_id: Option<Field>,
    call_id: Option<Field>,
}

/// Validates a recording fetch.
pub fn parse(payload: &[u8], _ctx: &Context) -> Result<Parsed, Refusal> {
    let r: RecordingFetch = read(payload)?;
    let id = call_id(r.call_id.as_ref())?;
    Ok(Parsed::typed(&CallRef { call_id: &id }, None))
}
