//! Commands: one file per verb, one registry, one `submit` for MQTT, the console and voice.
//!
//! A command arrives (on `gsmgw/{id}/cmd/{verb}`, or from the console) as a JSON object with a
//! `request_id`. Its verb's file parses and validates it and executes it (usually: commits a
//! job); the uplink acknowledges the MQTT message only after that and replies on
//! `gsmgw/{id}/reply/{request_id}`.
//!
//! Adding a verb: a file here exporting `pub const VERB: VerbSpec` (parser + execution), one
//! line in `proto::for_each_verb!` (its `Verb`, wire name and module: the list below expands
//! it), and its schema in docs/schema.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::proto::Verb;

pub mod e164;
pub mod field;
pub mod registry;

pub use crate::campaign::CampaignPlan;
pub use e164::E164;
pub use field::Field;
pub use registry::{Done, Env, Followup, Origin, Outcome, Registry, Reply, VerbSpec};

/// Declares each verb's module and registers its `VERB` under its [`Verb`], in the order
/// `unknown-verb` lists them (the order of `proto::for_each_verb!`).
macro_rules! verbs {
    ($($(#[$vdoc:meta])* $variant:ident = $text:literal => $module:ident),* $(,)?) => {
        $(pub mod $module;)*
        /// Every verb this agent executes.
        pub const REGISTRY: &[(Verb, VerbSpec)] = &[$((Verb::$variant, $module::VERB)),*];
    };
}

crate::proto::for_each_verb!(verbs);

/// Where replies go when a command has no usable `request_id`.
pub const INVALID_REPLY: &str = "_invalid";

/// Longest text accepted for an SMS (at most 10 UCS-2 parts).
pub const MAX_SMS_PARTS: usize = gsmgw_drivers::pdu::MAX_PARTS;

/// A command refused, with the code the central server can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The request id, when one could be read.
    pub request_id: Option<String>,
    /// Machine-readable code: bad-json, missing-request-id, bad-request-id, unknown-verb,
    /// bad-number, bad-text, text-too-long, unknown-slot, bad-field, bad-recipient (the voice
    /// manager adds sip-not-configured, no-sim, slot-busy, unknown-call; the uplink
    /// no-recording, voice-unavailable, storage-full).
    pub code: &'static str,
    /// Plain words.
    pub message: String,
}

/// A valid command, ready to be committed as a job.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidCommand {
    /// The request id (also the reply topic's last level).
    pub request_id: String,
    /// The verb.
    pub verb: Verb,
    /// The normalised payload to store.
    pub payload: Value,
    /// The slot it targets, if any.
    pub slot: Option<u16>,
    /// For `campaign`: the validated campaign.
    pub campaign: Option<CampaignPlan>,
}

fn reject(request_id: Option<&str>, code: &'static str, message: impl Into<String>) -> Rejection {
    Rejection {
        request_id: request_id.map(str::to_string),
        code,
        message: message.into(),
    }
}

/// Checks a request id: 1-128 characters, letters, digits and `._:-` (it becomes a topic level).
pub fn valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Checks an E.164 number: `+` and 7 to 15 digits, the first not 0.
pub fn valid_e164(n: &str) -> bool {
    E164::parse(n).is_some()
}

/// What validation needs to know about this gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// Configured slots (commands naming another slot are refused).
    pub slots: Vec<u16>,
    /// The modems' groups (a campaign for a group no SIM has is refused).
    pub groups: BTreeSet<String>,
    /// `[voice] bridge_domains`: the hosts `dial.bridge_to` may name (empty: any).
    pub bridge_domains: Vec<String>,
    /// Submitted by the agent itself (`Origin::Internal`): a number it took from the network
    /// (a caller's CLIP, maybe national format) is sent to as it is, not only E.164.
    pub internal: bool,
}

impl Context {
    /// A context with these slots and nothing else (tests, the console).
    pub fn with_slots(slots: &[u16]) -> Self {
        Self {
            slots: slots.to_vec(),
            ..Self::default()
        }
    }
}

/// The verbs' names, in the order the `unknown-verb` message lists them.
pub fn verb_names() -> Vec<&'static str> {
    REGISTRY.iter().map(|(v, _)| v.as_str()).collect()
}

/// Reads the request id of any payload (however big) without building it: the first pass.
pub fn request_id_of(payload: &[u8]) -> Result<String, Rejection> {
    if !is_object(payload) {
        return Err(reject(None, "bad-json", "payload must be a JSON object"));
    }
    let head: field::Head = serde_json::from_slice(payload).map_err(|e| {
        if e.is_data() {
            // Valid JSON, wrong shape (e.g. `request_id` given twice).
            reject(None, "bad-json", format!("payload: {e}"))
        } else {
            reject(None, "bad-json", format!("payload is not JSON: {e}"))
        }
    })?;
    match head.request_id {
        None | Some(Field::Null) => {
            Err(reject(None, "missing-request-id", "request_id is required"))
        }
        Some(Field::Str(s)) if valid_request_id(&s) => Ok(s),
        Some(_) => Err(reject(
            None,
            "bad-request-id",
            "request_id must be 1-128 characters of letters, digits and ._:-",
        )),
    }
}

/// Parses and validates a command for `verb` with `payload`.
pub fn parse(verb: &str, payload: &[u8], ctx: &Context) -> Result<ValidCommand, Rejection> {
    let request_id = request_id_of(payload)?;
    let rid = Some(request_id.as_str());
    let Some((verb, spec)) = registry::find(verb) else {
        return Err(reject(
            rid,
            "unknown-verb",
            format!(
                "unknown command {verb:?}; known: {}",
                verb_names().join(", ")
            ),
        ));
    };
    let p = (spec.parse)(payload, ctx).map_err(|(code, m)| reject(rid, code, m))?;
    Ok(ValidCommand {
        request_id,
        verb,
        payload: p.payload,
        slot: p.slot,
        campaign: p.campaign,
    })
}

/// What a verb's parser hands back.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The normalised payload to store (only known fields).
    pub payload: Value,
    /// The slot it targets, if any.
    pub slot: Option<u16>,
    /// For `campaign`: the plan.
    pub campaign: Option<CampaignPlan>,
}

impl Parsed {
    fn plain(payload: Value, slot: Option<u16>) -> Self {
        Self {
            payload,
            slot,
            campaign: None,
        }
    }

    /// A verb's typed payload, stored as its JSON.
    fn typed(payload: &impl serde::Serialize, slot: Option<u16>) -> Self {
        Self::plain(crate::proto::jobs::to_value(payload), slot)
    }
}

/// A verb's refusal: (code, message).
pub type Refusal = (&'static str, String);

/// Whether the payload is (at least at its start) a JSON object: serde would read a struct
/// from an array too.
fn is_object(payload: &[u8]) -> bool {
    payload.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Reads a verb's struct; unknown fields and malformed JSON become refusals.
fn read<'a, T: serde::Deserialize<'a>>(payload: &'a [u8]) -> Result<T, Refusal> {
    if !is_object(payload) {
        return Err(("bad-json", "payload must be a JSON object".into()));
    }
    serde_json::from_slice(payload).map_err(|e| field::classify(&e))
}

/// An optional RFC 3339 time field: its text and its Unix milliseconds.
pub(crate) fn rfc3339(name: &str, v: Option<&Field>) -> Result<Option<(String, i64)>, Refusal> {
    match v {
        None | Some(Field::Null) => Ok(None),
        Some(Field::Str(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Some((s.clone(), t.timestamp_millis())))
            .map_err(|e| ("bad-field", format!("{name} {s:?}: {e}"))),
        Some(_) => Err(("bad-field", format!("{name} must be an RFC 3339 time"))),
    }
}

/// The optional `slot` field: absent/null, or one of the configured slots.
fn optional_slot(v: Option<&Field>, slots: &[u16]) -> Result<Option<u16>, Refusal> {
    match v {
        None | Some(Field::Null) => Ok(None),
        Some(f) => match f.as_i64().and_then(|s| u16::try_from(s).ok()) {
            Some(s) if slots.contains(&s) => Ok(Some(s)),
            _ => Err((
                "unknown-slot",
                format!("slot {} is not configured", f.shown()),
            )),
        },
    }
}

/// An optional boolean field (default false).
fn optional_bool(name: &str, v: Option<&Field>) -> Result<Option<bool>, Refusal> {
    match v {
        None | Some(Field::Null) => Ok(None),
        Some(Field::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(("bad-field", format!("{name} must be true or false"))),
    }
}

/// A command for the voice manager (`dial`, `hangup`): the voice manager owns calls, the
/// command layer only hands it these.
pub struct VoiceCommand {
    /// `dial` or `hangup`.
    pub verb: Verb,
    /// The validated payload.
    pub payload: Value,
    /// The result or a refusal `(code, message)`.
    pub reply: tokio::sync::oneshot::Sender<Result<Value, (String, String)>>,
}

/// `dial`, `hangup`: handed to the voice manager; a repeated request_id is answered from the
/// store (a call is never dialled twice).
async fn voice_command(env: &Env, cmd: ValidCommand) -> Result<Done, registry::Failure> {
    let store = env.events.store().clone();
    if let Ok(Some(job)) = store.job_by_request(&cmd.request_id).await {
        if job.verb != cmd.verb {
            return Err((
                "bad-request-id".into(),
                registry::reused(&cmd.request_id, job.verb),
            ));
        }
        let mut r = crate::proto::jobs::to_value(&crate::proto::replies::Repeated {
            state: job.state,
            duplicate: true,
        });
        registry::merge(&mut r, job.outcome.as_ref());
        return Ok(Done::result(r));
    }
    let Some(voice) = env.voice.clone() else {
        return Err(("voice-unavailable".into(), "voice is not running".into()));
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    voice
        .send(VoiceCommand {
            verb: cmd.verb,
            payload: cmd.payload.clone(),
            reply: tx,
        })
        .await
        .map_err(|_| {
            (
                "voice-unavailable".to_string(),
                "voice manager stopped".to_string(),
            )
        })?;
    let result = match tokio::time::timeout(std::time::Duration::from_secs(10), rx).await {
        Ok(Ok(r)) => r,
        _ => Err((
            "voice-unavailable".into(),
            "the voice manager did not answer".into(),
        )),
    }?;
    let job = crate::store::NewJob {
        request_id: cmd.request_id.clone(),
        verb: cmd.verb,
        payload: cmd.payload.clone(),
        slot: cmd.slot,
        state: crate::proto::JobState::Done,
        outcome: Some(result.clone()),
        event: None,
    };
    if let Err(e) = store.submit_job(job).await {
        tracing::warn!(request_id = %cmd.request_id, error = %e, "voice command not recorded");
    }
    Ok(Done::result(result))
}

/// The refusal of a command whose `expires_at` (in `payload`, as `expires_ms`) has passed
/// when it arrives: a command the broker held while the box was offline is not sent hours
/// late.
pub(crate) fn refuse_expired(payload: &Value) -> Result<(), registry::Failure> {
    match payload["expires_ms"].as_i64() {
        Some(t) if t <= crate::clock::now_ms() => Err((
            "expired".into(),
            format!(
                "the command expired at {} before it arrived; nothing is sent",
                payload["expires_at"].as_str().unwrap_or("its expires_at")
            ),
        )),
        _ => Ok(()),
    }
}

/// A call id field (`hangup`, `recording-fetch`).
fn call_id(v: Option<&Field>) -> Result<String, Refusal> {
    match v {
        Some(Field::Str(s)) if crate::recordings::valid_call_id(s) => Ok(s.clone()),
        _ => Err(("bad-field", "call_id is required (a call's id)".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(verb: &str, v: Value) -> Result<ValidCommand, Rejection> {
        parse(
            verb,
            v.to_string().as_bytes(),
            &Context::with_slots(&[1, 2]),
        )
    }

    #[test]
    fn good_commands() {
        let c = p("ping", json!({"request_id": "r-1"})).unwrap();
        assert_eq!(c.verb, "ping");
        let c = p(
            "sms-send",
            json!({"request_id": "r-2", "to": "+380501234567", "text": "Привіт", "slot": 2, "report": true}),
        )
        .unwrap();
        assert_eq!(c.slot, Some(2));
        assert_eq!(c.payload["encoding"], "ucs2");
    }

    #[test]
    fn every_malformed_command_gets_a_reason() {
        let cases: Vec<(&[u8], &str, &str)> = vec![
            (b"not json", "ping", "bad-json"),
            (b"[1,2]", "ping", "bad-json"),
            (
                br#"{"to":"+380501234567"}"#,
                "sms-send",
                "missing-request-id",
            ),
            (br#"{"request_id":"a/b"}"#, "ping", "bad-request-id"),
            (
                br#"{"request_id":"x"}"#,
                "reboot-everything",
                "unknown-verb",
            ),
            (
                br#"{"request_id":"x","to":"0501234567","text":"hi"}"#,
                "sms-send",
                "bad-number",
            ),
            (
                br#"{"request_id":"x","to":"+380501234567","text":""}"#,
                "sms-send",
                "bad-text",
            ),
            (
                br#"{"request_id":"x","to":"+380501234567","text":"hi","slot":7}"#,
                "sms-send",
                "unknown-slot",
            ),
            (
                br#"{"request_id":"x","to":"+380501234567","text":"hi","colour":1}"#,
                "sms-send",
                "bad-field",
            ),
        ];
        for (payload, verb, code) in cases {
            let e = parse(verb, payload, &Context::with_slots(&[1, 2])).unwrap_err();
            assert_eq!(e.code, code, "{}", String::from_utf8_lossy(payload));
            assert!(!e.message.is_empty());
        }
        let long = "ы".repeat(10_000);
        let e = p(
            "sms-send",
            json!({"request_id": "x", "to": "+380501234567", "text": long}),
        )
        .unwrap_err();
        assert_eq!(e.code, "text-too-long");
    }

    #[test]
    fn unknown_fields_are_refused_on_every_verb() {
        let good: Vec<(&str, Value)> = vec![
            ("ping", json!({"request_id": "u"})),
            (
                "sms-send",
                json!({"request_id": "u", "to": "+380501234567", "text": "hi"}),
            ),
            (
                "campaign",
                json!({"request_id": "u", "campaign_id": "c", "text": "t", "recipients": [{"to": "+380501234567"}]}),
            ),
            (
                "campaign-control",
                json!({"request_id": "u", "campaign_id": "c", "action": "pause"}),
            ),
            (
                "dial",
                json!({"request_id": "u", "to": "+380501234567", "bridge_to": "sip:101@pbx"}),
            ),
            (
                "hangup",
                json!({"request_id": "u", "call_id": "0190a0b0-aaaa-7bbb-8ccc-123456789abc"}),
            ),
            (
                "recording-fetch",
                json!({"request_id": "u", "call_id": "0190a0b0-aaaa-7bbb-8ccc-123456789abc"}),
            ),
            (
                "ussd",
                json!({"request_id": "u", "slot": 1, "code": "*111#"}),
            ),
            (
                "modem-reset",
                json!({"request_id": "u", "slot": 1, "kind": "power"}),
            ),
            (
                "log-fetch",
                json!({"request_id": "u", "lines": 20, "since": "2026-12-02T10:00:00Z"}),
            ),
        ];
        assert_eq!(good.len(), verb_names().len());
        for (verb, v) in good {
            p(verb, v.clone()).unwrap_or_else(|e| panic!("{verb}: {e:?}"));
            let mut bad = v.clone();
            bad["junk"] = json!("x".repeat(1000));
            let e = p(verb, bad).unwrap_err();
            assert_eq!(e.code, "bad-field", "{verb}: {e:?}");
            assert_eq!(e.request_id.as_deref(), Some("u"));
            assert!(e.message.contains("junk"), "{verb}: {}", e.message);
        }
    }

    #[test]
    fn campaign_control_keeps_only_what_it_needs() {
        let c = p(
            "campaign-control",
            json!({"request_id": "cc", "campaign_id": "c1", "action": "cancel"}),
        )
        .unwrap();
        assert_eq!(c.payload, json!({"campaign_id": "c1", "action": "cancel"}));
        let e = p(
            "campaign-control",
            json!({"request_id": "cc", "campaign_id": "c1", "action": "explode"}),
        )
        .unwrap_err();
        assert_eq!(e.code, "bad-field");
    }

    #[test]
    fn the_request_id_is_read_from_a_big_payload_without_its_tree() {
        let mut big = String::from(r#"{"junk":["#);
        for i in 0..200_000 {
            if i > 0 {
                big.push(',');
            }
            big.push_str("[1,{\"a\":2}]");
        }
        big.push_str(r#"],"request_id":"late"}"#);
        assert_eq!(request_id_of(big.as_bytes()).unwrap(), "late");
        assert_eq!(request_id_of(b"[1]").unwrap_err().code, "bad-json");
        assert_eq!(
            request_id_of(b"{\"request_id\":7}").unwrap_err().code,
            "bad-request-id"
        );
        assert_eq!(
            request_id_of(b"{\"a\":1}").unwrap_err().code,
            "missing-request-id"
        );
        let twice = request_id_of(br#"{"request_id":"a","request_id":"b"}"#).unwrap_err();
        assert_eq!(twice.code, "bad-json");
        assert!(twice.message.contains("duplicate"), "{}", twice.message);
    }

    #[test]
    fn dial_bridge_to_is_parsed_and_allow_listed() {
        let ctx = Context {
            slots: vec![1],
            groups: BTreeSet::new(),
            internal: false,
            bridge_domains: vec!["pbx.local".into()],
        };
        let d = |b: &str| {
            parse(
                "dial",
                json!({"request_id": "d", "to": "+380501234567", "bridge_to": b})
                    .to_string()
                    .as_bytes(),
                &ctx,
            )
        };
        assert!(d("sip:101@pbx.local").is_ok());
        for bad in [
            "sip:101@pbx.local>,<sip:evil@10.9.9.9",
            "sip:101@pbx.local;maddr=10.9.9.9;transport=tcp",
            "sip:101@pbx.local?Subject=x",
            "sip:101@other.host",
        ] {
            assert_eq!(d(bad).unwrap_err().code, "bad-field", "{bad}");
        }
    }
}
