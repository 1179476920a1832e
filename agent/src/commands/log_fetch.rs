//! `cmd/log-fetch` {request_id, lines?, since?}: the agent's last log lines (the in-memory ring
//! the console's `log` shows, as the process's log filter let them through), for a technician
//! at the centre. Not stored as a job: asking again answers with the log as it is then.

use serde::Deserialize;

use super::registry::{Done, Env, Exec, Failure, VerbSpec};
use super::{Context, Field, Origin, Parsed, Refusal, ValidCommand, read};
use crate::logring::{CAPACITY, log_ring};
use crate::proto::jobs::{LogFetchJob, to_value};
use crate::proto::replies::LogLines;

/// `cmd/log-fetch`.
pub const VERB: VerbSpec = VerbSpec { parse, execute };

/// Lines when the request names no number.
const DEFAULT_LINES: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogFetch {
    #[allow(dead_code)]
    request_id: Option<Field>,
    lines: Option<Field>,
    since: Option<Field>,
}

/// Validates a log fetch: `lines` 1..=500, `since` an RFC 3339 instant.
pub fn parse(payload: &[u8], _ctx: &Context) -> Result<Parsed, Refusal> {
    let l: LogFetch = read(payload)?;
    let lines = match l.lines.as_ref() {
        None | Some(Field::Null) => DEFAULT_LINES,
        Some(f) => match f.as_i64().and_then(|n| usize::try_from(n).ok()) {
            Some(n) if (1..=CAPACITY).contains(&n) => n,
            _ => {
                return Err((
                    "bad-field",
                    format!("lines must be 1 to {CAPACITY} (got {})", f.shown()),
                ));
            }
        },
    };
    let since = super::rfc3339("since", l.since.as_ref())?;
    Ok(Parsed::typed(
        &LogFetchJob {
            lines,
            since_ms: since.map(|(_, ms)| ms),
        },
        None,
    ))
}

fn execute(_env: &Env, cmd: ValidCommand, _origin: Origin) -> Exec<'_> {
    Box::pin(async move { run(&cmd) })
}

fn run(cmd: &ValidCommand) -> Result<Done, Failure> {
    let want = cmd.payload["lines"].as_u64().unwrap_or(DEFAULT_LINES as u64) as usize;
    let since_ms = cmd.payload["since_ms"].as_i64();
    let all = log_ring().last(CAPACITY);
    let kept: Vec<String> = all
        .into_iter()
        .filter(|l| match since_ms {
            // Each line starts with its RFC 3339 timestamp.
            Some(ms) => l
                .split(' ')
                .next()
                .and_then(|ts| chrono::DateTime::parse_from_rfc3339(ts).ok())
                .is_none_or(|t| t.timestamp_millis() >= ms),
            None => true,
        })
        .collect();
    let skip = kept.len().saturating_sub(want);
    let lines: Vec<String> = kept.into_iter().skip(skip).collect();
    tracing::info!(request_id = %cmd.request_id, lines = lines.len(), "log fetched over MQTT");
    Ok(Done::result(to_value(&LogLines {
        count: lines.len(),
        lines,
        capacity: CAPACITY,
    })))
}
