//! The command registry: one `submit` for every caller (MQTT, the console, the voice manager).
//!
//! A verb is one file beside this one exporting a [`VerbSpec`] (`VERB`): its parser and its
//! execution. The `verbs!` list in `commands/mod.rs` declares the module and registers it.
//! `submit` parses, refuses a request_id already used by another verb, executes, and hands
//! back the typed reply the caller sends on (MQTT: `reply/{request_id}`; console: a line).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::{Context, INVALID_REPLY, Parsed, Refusal, ValidCommand};
use crate::events::Events;
use crate::proto::{JobState, Verb};
use crate::store::{NewEvent, NewJob, StoreError, Submitted};

/// A verb's execution, boxed so verbs fit in one table.
pub type Exec<'a> = Pin<Box<dyn Future<Output = Result<Done, Failure>> + Send + 'a>>;

/// A refusal at execution: (code, message).
pub type Failure = (String, String);

/// One verb: its parser, its execution (its name is its [`Verb`] in the registry).
pub struct VerbSpec {
    /// Validates a payload.
    pub parse: fn(&[u8], &Context) -> Result<Parsed, Refusal>,
    /// Runs a validated command.
    pub execute: for<'a> fn(&'a Env, ValidCommand, Origin) -> Exec<'a>,
}

/// What a verb's execution hands back.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    /// The reply's `result`.
    pub result: Value,
    /// Something the transport sends after the reply (a recording's chunks).
    pub followup: Option<Followup>,
}

impl Done {
    /// A result and nothing after it.
    pub fn result(result: Value) -> Self {
        Self {
            result,
            followup: None,
        }
    }
}

/// What a transport sends after a reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Followup {
    /// `recording/{call_id}/{n}`: the chunks in order.
    Recording {
        /// The call.
        call_id: String,
        /// Chunk payloads, in order.
        chunks: Vec<Value>,
    },
}

/// Who submits a command.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Origin {
    /// The central server over MQTT.
    #[default]
    Mqtt,
    /// A technician at the console.
    Console,
    /// The agent itself (the voice manager's missed-call SMS): extra fields stored with the
    /// job, and an event committed in the same transaction.
    Internal {
        /// Stored beside the validated payload (e.g. `reason`, `call_id`).
        extra: Map<String, Value>,
        /// Committed with the job.
        event: Option<NewEvent>,
    },
}

/// What executions need from the agent.
pub struct Env {
    /// The store and its wake-ups.
    pub events: Events,
    /// The agent's version (ping).
    pub version: String,
    /// data_dir (recordings).
    pub data_dir: PathBuf,
    /// The voice manager (dial, hangup); None when voice is not running.
    pub voice: Option<mpsc::Sender<super::VoiceCommand>>,
    /// Slots, groups, bridge domains.
    pub ctx: Context,
    /// The channels' request queues (ussd).
    pub channels: crate::channel::ChannelSenders,
}

/// A command's reply: where it goes and what it says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reply {
    /// The request id (`null` when the command had no usable one).
    pub request_id: Option<String>,
    /// Whether the command was accepted.
    pub ok: bool,
    /// The result (accepted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The refusal (not accepted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ReplyError>,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplyError {
    /// Machine-readable code.
    pub code: String,
    /// Plain words.
    pub message: String,
}

impl Reply {
    /// An accepted command's reply.
    pub fn accepted(request_id: &str, result: Value) -> Self {
        Self {
            request_id: Some(request_id.to_string()),
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    /// A refusal.
    pub fn refused(request_id: Option<&str>, code: &str, message: &str) -> Self {
        Self {
            request_id: request_id.map(str::to_string),
            ok: false,
            result: None,
            error: Some(ReplyError {
                code: code.to_string(),
                message: message.to_string(),
            }),
        }
    }

    /// The reply topic's last level: the request id, or `_invalid`.
    pub fn topic_level(&self) -> &str {
        self.request_id.as_deref().unwrap_or(INVALID_REPLY)
    }

    /// The JSON body.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A submitted command's reply and what follows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The reply.
    pub reply: Reply,
    /// Sent after the reply.
    pub followup: Option<Followup>,
}

/// The registry: shared by every caller.
#[derive(Clone)]
pub struct Registry {
    env: Arc<Env>,
}

impl Registry {
    /// A registry over `env`.
    pub fn new(env: Env) -> Self {
        Self { env: Arc::new(env) }
    }

    /// What executions see.
    pub fn env(&self) -> &Env {
        &self.env
    }

    /// Parses, checks and runs one command.
    pub async fn submit(&self, verb: &str, payload: &[u8], origin: Origin) -> Outcome {
        let internal_ctx;
        let ctx = if matches!(origin, Origin::Internal { .. }) {
            internal_ctx = Context {
                internal: true,
                ..self.env.ctx.clone()
            };
            &internal_ctx
        } else {
            &self.env.ctx
        };
        let cmd = match super::parse(verb, payload, ctx) {
            Ok(cmd) => cmd,
            Err(rej) => {
                // The reason may quote numbers from the payload: in full at debug only.
                tracing::info!(%verb, code = rej.code, request_id = rej.request_id.as_deref().unwrap_or("-"), "command refused");
                tracing::debug!(%verb, reason = %rej.message, "command refused");
                return plain(Reply::refused(
                    rej.request_id.as_deref(),
                    rej.code,
                    &rej.message,
                ));
            }
        };
        let rid = cmd.request_id.clone();
        // A request_id names one command: reused by another verb it is refused, whatever
        // the verb (the earlier command's result is never passed off as this one's).
        match self.env.events.store().job_by_request(&rid).await {
            Ok(Some(job)) if job.verb != cmd.verb => {
                tracing::info!(%verb, request_id = %rid, earlier = %job.verb, "request_id reused by another verb");
                return plain(Reply::refused(
                    Some(&rid),
                    "bad-request-id",
                    &reused(&rid, job.verb),
                ));
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(request_id = %rid, error = %e, "cannot look up the request_id")
            }
        }
        let Some((_, spec)) = find(verb) else {
            // parse() refuses unknown verbs; kept total all the same.
            return plain(Reply::refused(Some(&rid), "unknown-verb", verb));
        };
        match (spec.execute)(&self.env, cmd, origin).await {
            Ok(done) => Outcome {
                reply: Reply::accepted(&rid, done.result),
                followup: done.followup,
            },
            Err((code, message)) => plain(Reply::refused(Some(&rid), &code, &message)),
        }
    }
}

fn plain(reply: Reply) -> Outcome {
    Outcome {
        reply,
        followup: None,
    }
}

/// The registered verb named `name`.
pub fn find(name: &str) -> Option<(Verb, &'static VerbSpec)> {
    let verb = Verb::parse(name)?;
    super::REGISTRY
        .iter()
        .find(|(v, _)| *v == verb)
        .map(|(v, spec)| (*v, spec))
}

/// The refusal text for a request_id used by another verb.
pub fn reused(rid: &str, earlier: Verb) -> String {
    format!("request_id {rid} was already used by a {earlier} command")
}

/// Commits a command as one job (a repeated request_id answered from the store): the
/// execution of `ping` and `sms-send`.
pub async fn store_job(
    env: &Env,
    cmd: ValidCommand,
    state: JobState,
    outcome: Option<Value>,
    origin: Origin,
) -> Result<Done, Failure> {
    let rid = cmd.request_id.clone();
    let (mut payload, event) = (cmd.payload, None);
    let event = match origin {
        Origin::Internal { extra, event: e } => {
            if let Some(obj) = payload.as_object_mut() {
                obj.extend(extra);
            }
            e
        }
        _ => event,
    };
    let job = NewJob {
        request_id: cmd.request_id,
        verb: cmd.verb,
        payload,
        slot: cmd.slot,
        state,
        outcome: outcome.clone(),
        event,
    };
    match env.events.store().submit_job(job).await {
        Ok(Submitted::New { job_id, .. }) => {
            tracing::info!(verb = %cmd.verb, request_id = %rid, job_id, "command accepted");
            env.events.committed();
            if state == JobState::Queued {
                env.events.job_queued();
            }
            let mut result = crate::proto::jobs::to_value(&crate::proto::replies::Accepted {
                job_id,
                state,
                duplicate: false,
            });
            merge(&mut result, outcome.as_ref());
            Ok(Done::result(result))
        }
        Ok(Submitted::Existing { verb, .. }) if verb != cmd.verb => {
            Err(("bad-request-id".into(), reused(&rid, verb)))
        }
        Ok(Submitted::Existing {
            job_id,
            state,
            outcome,
            ..
        }) => {
            tracing::info!(request_id = %rid, job_id, "repeated request_id answered from the store");
            let mut result = crate::proto::jobs::to_value(&crate::proto::replies::Accepted {
                job_id,
                state,
                duplicate: true,
            });
            merge(&mut result, outcome.as_ref());
            Ok(Done::result(result))
        }
        Err(e) => Err(store_refusal(env, &rid, e, "command").await),
    }
}

/// The refusal for a store that did not take a command (and the alarm it deserves).
pub async fn store_refusal(env: &Env, rid: &str, e: StoreError, what: &str) -> Failure {
    match e {
        StoreError::Full { rows, bytes } => {
            let msg = format!(
                "the gateway's store is full ({rows} events, {bytes} bytes waiting); {what} refused"
            );
            env.events.alarm("storage-full", &msg, None).await;
            ("storage-full".into(), msg)
        }
        StoreError::DiskFull => {
            let msg = format!("the gateway's data disk is full; {what} refused");
            tracing::warn!(request_id = %rid, "{what} refused: disk full");
            env.events.alarm("disk-full", &msg, None).await;
            ("disk-full".into(), msg)
        }
        e if what == "campaign" => ("campaign-refused".into(), e.to_string()),
        e => {
            tracing::error!(request_id = %rid, error = %e, "command not stored");
            ("internal".into(), e.to_string())
        }
    }
}

/// Returns freed heap memory to the system (glibc keeps it otherwise): after big commands.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists; it has no preconditions.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// Adds `from`'s fields to `into` where `into` has none of that name.
pub fn merge(into: &mut Value, from: Option<&Value>) {
    if let (Some(obj), Some(Value::Object(extra))) = (into.as_object_mut(), from) {
        for (k, v) in extra {
            obj.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}
