//! The JSON Schemas in docs/schema against REAL messages: the agent binary, a real mosquitto
//! and a simulated modem, driven so that every message kind (and every form of it that is
//! cheap to provoke) goes over the broker; each one is validated against the schema of its
//! topic, and every schema must have been exercised.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{AgentProc, Broker, Central, SimModem, write_config, write_config_with};
use gsmgw_drivers::pdu::{self, DeliverOptions, Timestamp};
use jsonschema::{Draft, Registry, Resource, Validator};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);
const GW: &str = "gw-schema";
const FROM: &str = "+380671112233";
const TO: &str = "+380501234567";
/// A call id as the gateway makes them (UUID v7).
const CALL_ID: &str = "0193a5c2-7b1e-7c3d-9a2b-0123456789ab";
/// The base of every schema's `$id`; `$ref`s between the files resolve against it.
const BASE: &str = "https://example.invalid/gsmgw/schema/";

/// Every file of docs/schema (envelope.json and common.json are referenced by the others).
const ALL_SCHEMAS: [&str; 24] = [
    "status.json",
    "modem-state.json",
    "envelope.json",
    "event-modem.json",
    "event-sms-received.json",
    "event-sms-status.json",
    "event-alarm.json",
    "event-campaign.json",
    "event-call.json",
    "event-call-state.json",
    "event-ussd.json",
    "recording-chunk.json",
    "cmd-ping.json",
    "cmd-sms-send.json",
    "cmd-campaign.json",
    "cmd-campaign-control.json",
    "cmd-dial.json",
    "cmd-hangup.json",
    "cmd-recording-fetch.json",
    "cmd-ussd.json",
    "cmd-modem-reset.json",
    "cmd-log-fetch.json",
    "reply.json",
    "common.json",
];

/// The schemas of the voice interface: exercised by `every_real_voice_message_matches_its_schema`
/// (its own agent, with two SIMs and a `[voice]` section), not by the SMS test.
const VOICE_SCHEMAS: [&str; 6] = [
    "event-call.json",
    "event-call-state.json",
    "recording-chunk.json",
    "cmd-dial.json",
    "cmd-hangup.json",
    "cmd-recording-fetch.json",
];

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/schema")
}

/// Every schema of docs/schema, compiled (draft 2020-12, formats asserted), by file name.
struct Schemas {
    validators: BTreeMap<String, Validator>,
}

impl Schemas {
    fn load() -> Schemas {
        let mut docs = BTreeMap::new();
        for entry in std::fs::read_dir(schema_dir()).expect("docs/schema") {
            let path = entry.expect("dir entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let text = std::fs::read_to_string(&path).expect("read schema");
            let doc: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
            assert_eq!(
                doc["$id"],
                format!("{BASE}{name}"),
                "{name}: $id must be {BASE}{name}"
            );
            assert_eq!(
                doc["$schema"], "https://json-schema.org/draft/2020-12/schema",
                "{name}: draft 2020-12"
            );
            if let Err(e) = jsonschema::meta::validate(&doc) {
                panic!("{name} is not a valid JSON Schema: {e}");
            }
            docs.insert(name, doc);
        }
        let registry = Registry::new()
            .extend(
                docs.iter()
                    .map(|(n, d)| (format!("{BASE}{n}"), Resource::from_contents(d.clone()))),
            )
            .expect("schema URIs")
            .prepare()
            .expect("schema registry");
        let validators = docs
            .iter()
            .map(|(name, doc)| {
                let v = jsonschema::options()
                    .with_draft(Draft::Draft202012)
                    .should_validate_formats(true)
                    .with_registry(&registry)
                    .build(doc)
                    .unwrap_or_else(|e| panic!("{name} does not compile: {e}"));
                (name.clone(), v)
            })
            .collect();
        Schemas { validators }
    }

    /// The schema's complaints about `msg` (empty when valid).
    fn errors(&self, schema: &str, msg: &Value) -> Vec<String> {
        let v = self
            .validators
            .get(schema)
            .unwrap_or_else(|| panic!("no schema {schema}"));
        v.iter_errors(msg)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    fn assert_valid(&self, schema: &str, what: &str, msg: &Value) {
        let errs = self.errors(schema, msg);
        assert!(
            errs.is_empty(),
            "{what} does not match {schema}:\n  {}\nmessage: {msg}",
            errs.join("\n  ")
        );
    }

    fn assert_invalid(&self, schema: &str, what: &str, msg: &Value) {
        assert!(
            !self.validators[schema].is_valid(msg),
            "{what} should NOT match {schema}, but does: {msg}"
        );
    }
}

/// The schema for a topic under `gsmgw/{GW}/`; None for topics without one (a command verb
/// the gateway does not know).
fn schema_for(topic: &str) -> Option<&'static str> {
    let rest = topic
        .strip_prefix(&format!("gsmgw/{GW}/"))
        .unwrap_or_else(|| panic!("topic outside the gateway's root: {topic}"));
    let levels: Vec<&str> = rest.split('/').collect();
    Some(match levels.as_slice() {
        ["status"] => "status.json",
        ["modem", slot, "state"] if slot.parse::<u16>().is_ok() => "modem-state.json",
        ["event", "modem"] => "event-modem.json",
        ["event", "sms-received"] => "event-sms-received.json",
        ["event", "sms-status"] => "event-sms-status.json",
        ["event", "alarm"] => "event-alarm.json",
        ["event", "campaign"] => "event-campaign.json",
        ["event", "call"] => "event-call.json",
        ["event", "call-state"] => "event-call-state.json",
        ["event", "ussd"] => "event-ussd.json",
        ["recording", _, n] if n.parse::<u32>().is_ok() => "recording-chunk.json",
        ["cmd", "ping"] => "cmd-ping.json",
        ["cmd", "sms-send"] => "cmd-sms-send.json",
        ["cmd", "campaign"] => "cmd-campaign.json",
        ["cmd", "campaign-control"] => "cmd-campaign-control.json",
        ["cmd", "dial"] => "cmd-dial.json",
        ["cmd", "hangup"] => "cmd-hangup.json",
        ["cmd", "recording-fetch"] => "cmd-recording-fetch.json",
        ["cmd", "ussd"] => "cmd-ussd.json",
        ["cmd", "modem-reset"] => "cmd-modem-reset.json",
        ["cmd", "log-fetch"] => "cmd-log-fetch.json",
        ["cmd", _] => return None,
        ["reply", _] => "reply.json",
        _ => panic!("a topic the interface does not document: {topic}"),
    })
}

/// A short name for the form of a message, to check that every form was seen.
fn form_of(schema: &str, topic: &str, v: &Value) -> String {
    let s = |k: &str| v[k].as_str().unwrap_or("?").to_string();
    match schema {
        "status.json" => {
            if v["online"] == true {
                "birth".into()
            } else {
                "offline".into()
            }
        }
        "modem-state.json" => format!("state {}", s("state")),
        "event-modem.json" => format!("kind {}", s("kind")),
        "event-alarm.json" => s("code"),
        "event-ussd.json" => s("status"),
        "event-call-state.json" => format!("{} {}", s("direction"), s("state")),
        "event-call.json" => {
            let answered = if v["answered_at"].is_null() {
                ""
            } else {
                " answered"
            };
            let withheld = if v["from"] == "" { " withheld" } else { "" };
            format!("{} {}{answered}{withheld}", s("direction"), s("cause"))
        }
        "recording-chunk.json" => {
            if v["size"] == 0 {
                "empty".into()
            } else if v["last"] == true {
                "last".into()
            } else {
                "not last".into()
            }
        }
        "event-campaign.json" => {
            if v["final"] == true {
                format!("final {}", s("state"))
            } else {
                format!("progress {}", s("state"))
            }
        }
        "event-sms-received.json" => {
            if v.get("pdu").is_some() {
                "undecodable".into()
            } else if v.get("parts_received").is_some() {
                "incomplete".into()
            } else if v["parts"].as_u64() > Some(1) {
                "multipart".into()
            } else {
                "single".into()
            }
        }
        "event-sms-status.json" => {
            let rid = if v["request_id"].is_null() {
                " (no job)"
            } else {
                ""
            };
            format!("{}{rid}", s("state"))
        }
        "reply.json" => {
            if topic.ends_with("/_invalid") {
                format!("_invalid {}", v["error"]["code"].as_str().unwrap_or("?"))
            } else if v["ok"] == true && v["result"].get("recipients").is_some() {
                let dup = if v["result"]["duplicate"] == true {
                    " duplicate"
                } else {
                    ""
                };
                format!("ok campaign{dup}")
            } else if v["ok"] == true && v["result"].get("cancelled").is_some() {
                format!(
                    "ok campaign-control {}",
                    v["result"]["state"].as_str().unwrap_or("?")
                )
            } else if v["ok"] == true && v["result"].get("steps").is_some() {
                let dup = if v["result"]["duplicate"] == true {
                    " duplicate"
                } else {
                    ""
                };
                format!(
                    "ok ussd {}{dup}",
                    v["result"]["status"].as_str().unwrap_or("?")
                )
            } else if v["ok"] == true && v["result"].get("capacity").is_some() {
                "ok log-fetch".into()
            } else if v["ok"] == true && v["result"].get("kind").is_some() {
                let dup = if v["result"]["duplicate"] == true {
                    " duplicate"
                } else {
                    ""
                };
                format!("ok modem-reset{dup}")
            } else if v["ok"] == true && v["result"].get("sha256").is_some() {
                "ok recording-fetch".into()
            } else if v["ok"] == true && v["result"]["duplicate"] == true {
                "ok duplicate".into()
            } else if v["ok"] == true {
                format!("ok {}", v["result"]["state"].as_str().unwrap_or("?"))
            } else {
                format!("error {}", v["error"]["code"].as_str().unwrap_or("?"))
            }
        }
        _ => "command".into(),
    }
}

#[test]
fn every_schema_compiles_and_is_listed_in_the_readme() {
    let schemas = Schemas::load();
    let readme = std::fs::read_to_string(schema_dir().join("README.md")).expect("README.md");
    let mut names: Vec<&String> = schemas.validators.keys().collect();
    names.sort();
    let mut expected = ALL_SCHEMAS.to_vec();
    expected.sort();
    assert_eq!(names, expected, "docs/schema holds exactly these schemas");
    for name in names {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README.md lists {name}"
        );
    }
}

/// How many broken messages there are under [`fixture_dir`]: a file lost does not silently
/// drop a check.
const BROKEN_CASES: usize = 43;

/// The broken messages each schema must reject: `tests/fixtures/schemas/<schema>/<case>.json`,
/// one message a file, the file name saying what is wrong with it.
fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schemas")
}

/// (schema file, what is wrong, message) for every file under [`fixture_dir`], in name order.
fn broken_fixtures() -> Vec<(String, String, Value)> {
    let sorted = |dir: &Path| {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    let mut out = Vec::new();
    for dir in sorted(&fixture_dir()).into_iter().filter(|d| d.is_dir()) {
        let schema = format!("{}.json", dir.file_name().unwrap().to_string_lossy());
        for file in sorted(&dir) {
            assert_eq!(
                file.extension().and_then(|e| e.to_str()),
                Some("json"),
                "{}: only .json cases here",
                file.display()
            );
            let what = file
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .replace('-', " ");
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
            let msg = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", file.display()));
            out.push((schema.clone(), format!("{what} ({})", file.display()), msg));
        }
    }
    out
}

/// Messages as the code builds them (see agent/src), and broken copies that must fail (from
/// [`fixture_dir`]).
#[test]
fn broken_messages_are_rejected() {
    let schemas = Schemas::load();
    let env = |ty: &str, body: Value| {
        let mut v = json!({"id": "0193a5c2-7b1e-7c3d-9a2b-0123456789ab", "seq": 41,
            "ts": "2026-11-26T22:30:01.120Z", "gateway": "gw-01", "type": ty});
        v.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        v
    };
    let good = vec![
        (
            "status.json",
            json!({"online": true, "version": "0.1.0 (git 5145507, x86_64-unknown-linux-gnu, release)",
                "boot_id": "6f1c1f7e-5b3a-4d0e-9d1b-2f6d9b1d7a10", "ts": "2026-11-26T22:15:03.120Z",
                "storage": "ok"}),
        ),
        (
            "status.json",
            json!({"online": true, "version": "0.1.0", "boot_id": "6f1c1f7e-5b3a-4d0e-9d1b-2f6d9b1d7a10",
                "ts": "2026-11-26T22:15:03.120Z", "storage": "full"}),
        ),
        (
            "status.json",
            json!({"online": false, "boot_id": "6f1c1f7e-5b3a-4d0e-9d1b-2f6d9b1d7a10"}),
        ),
        (
            "event-modem.json",
            env(
                "modem",
                json!({"slot": 1, "kind": "state", "from": "ready", "state": "resetting",
                "reason": "no answer to 2 health checks; soft reset", "port": "/dev/ttyUSB2",
                "imei": "861698041234567"}),
            ),
        ),
        (
            "event-sms-status.json",
            env(
                "sms-status",
                json!({"request_id": "out-1", "msg_id": 12, "to": TO, "state": "sent",
                "parts": 2, "slot": 1, "mr": [17, 18]}),
            ),
        ),
        (
            "event-sms-status.json",
            env(
                "sms-status",
                json!({"request_id": "spring-2026:+380501234567", "msg_id": 40, "to": TO,
                "state": "cancelled", "parts": 1, "campaign_id": "spring-2026"}),
            ),
        ),
        (
            "event-sms-status.json",
            env(
                "sms-status",
                json!({"request_id": "out-9", "msg_id": 13, "to": TO, "state": "unknown",
                "parts": 1, "slot": null,
                "error": "the agent stopped while sending; the SMS may or may not have gone out"}),
            ),
        ),
        (
            "reply.json",
            json!({"request_id": null, "ok": false,
                "error": {"code": "missing-request-id", "message": "request_id is required"}}),
        ),
        (
            "cmd-sms-send.json",
            json!({"request_id": "out-1", "to": TO, "text": "Вітаємо!", "slot": 1, "report": true}),
        ),
        (
            "cmd-campaign.json",
            json!({"request_id": "camp-1", "campaign_id": "spring-2026",
                "text": "Вітаємо, {name}! Знижка 20% до неділі.",
                "recipients": [{"to": TO, "fields": {"name": "Олена"}}, {"to": FROM}],
                "priority": 0, "start_at": "2026-11-27T09:00:00+02:00",
                "expires_at": "2026-11-28T00:00:00Z", "quiet_hours": "21:00-09:00",
                "report": true, "slot": 1, "group": "kyiv"}),
        ),
        (
            "cmd-campaign-control.json",
            json!({"request_id": "c-7", "campaign_id": "spring-2026", "action": "pause"}),
        ),
        (
            "event-campaign.json",
            env(
                "campaign",
                json!({"campaign_id": "spring-2026", "state": "running", "total": 2,
                "queued": 1, "sending": 1, "sent": 0, "delivered": 0, "failed": 0, "unknown": 0,
                "cancelled": 0, "expired": 0, "remaining": 2, "final": false}),
            ),
        ),
        (
            "reply.json",
            json!({"request_id": "camp-1", "ok": true, "result": {"job_id": 20,
                "campaign_id": "spring-2026", "recipients": 2, "duplicates": 0,
                "state": "running"}}),
        ),
        (
            "reply.json",
            json!({"request_id": "c-7", "ok": true,
                "result": {"campaign_id": "spring-2026", "state": "paused", "cancelled": 0}}),
        ),
        (
            "event-call.json",
            env(
                "call",
                json!({"call_id": CALL_ID, "direction": "gsm-in", "slot": 1,
                "imsi": "255010123456789", "from": "+380501234567", "to": "slot 1",
                "sip_peer": "sip:100@pbx.local", "started_at": "2026-11-27T10:00:01.120Z",
                "answered_at": "2026-11-27T10:00:05.400Z", "ended_at": "2026-11-27T10:01:10.030Z",
                "duration_s": 64.6, "cause": "normal", "sip_code": 200,
                "recording": {"file": format!("{CALL_ID}.wav"), "bytes": 2068524},
                "media": {"rtp_sent": 3230, "rtp_received": 3228, "rtp_lost": 0,
                    "jitter_ms": 0.4, "frames_from_modem": 3231, "frames_to_modem": 3229}}),
            ),
        ),
        (
            "event-call.json",
            env(
                "call",
                json!({"call_id": CALL_ID, "direction": "sip-in", "slot": null, "imsi": "",
                "from": "100", "to": "+380501234567", "sip_peer": "192.0.2.10:5060",
                "started_at": "2026-11-27T10:00:01.120Z", "answered_at": null,
                "ended_at": "2026-11-27T10:00:01.150Z", "duration_s": 0.0, "cause": "no-route",
                "sip_code": 503, "recording": null, "media": null}),
            ),
        ),
        (
            "event-call.json",
            env(
                "call",
                json!({"call_id": CALL_ID, "direction": "dial", "slot": 2,
                "imsi": "255010123456789", "from": "", "to": "*101#",
                "sip_peer": "sip:101@pbx.local", "started_at": "2026-11-27T10:00:01.120Z",
                "answered_at": null, "ended_at": "2026-11-27T10:00:31.150Z", "duration_s": 0.0,
                "cause": "busy", "sip_code": 486, "recording": null, "media": null}),
            ),
        ),
        (
            "cmd-dial.json",
            json!({"request_id": "d-1", "to": TO, "bridge_to": "sip:101@pbx.local", "slot": 2,
                "record": false}),
        ),
        (
            "cmd-hangup.json",
            json!({"request_id": "h-1", "call_id": CALL_ID}),
        ),
        (
            "cmd-recording-fetch.json",
            json!({"request_id": "r-1", "call_id": CALL_ID}),
        ),
        (
            "reply.json",
            json!({"request_id": "d-1", "ok": true,
                "result": {"call_id": CALL_ID, "slot": 2, "state": "ringing-extension"}}),
        ),
        (
            "reply.json",
            json!({"request_id": "d-1", "ok": true,
                "result": {"state": "done", "duplicate": true, "call_id": CALL_ID, "slot": 2}}),
        ),
        (
            "reply.json",
            json!({"request_id": "h-1", "ok": true,
                "result": {"call_id": CALL_ID, "state": "hanging-up"}}),
        ),
        (
            "reply.json",
            json!({"request_id": "h-1", "ok": true,
                "result": {"state": "done", "duplicate": true, "call_id": CALL_ID}}),
        ),
        (
            "reply.json",
            json!({"request_id": "r-1", "ok": true, "result": {"call_id": CALL_ID, "chunks": 3,
                "size": 120044, "sha256": "ab".repeat(32)}}),
        ),
        (
            "reply.json",
            json!({"request_id": "d-1", "ok": false, "error": {"code": "slot-busy",
                "message": "slot 2 carries a call"}}),
        ),
        (
            "recording-chunk.json",
            json!({"call_id": CALL_ID, "n": 2, "chunks": 3, "last": true, "size": 120044,
                "data": "UklGRg==", "sha256": "ab".repeat(32)}),
        ),
    ];
    for (schema, msg) in &good {
        schemas.assert_valid(schema, "a well-formed example", msg);
    }
    let bad = broken_fixtures();
    assert_eq!(
        bad.len(),
        BROKEN_CASES,
        "broken messages under {}: a case added or removed? (update BROKEN_CASES)",
        fixture_dir().display()
    );
    for (schema, what, msg) in &bad {
        assert!(
            ALL_SCHEMAS.contains(&schema.as_str()),
            "{}: no schema {schema}",
            fixture_dir().display()
        );
        schemas.assert_invalid(schema, what, msg);
    }
}

/// Validates every message of `log` against the schema of its topic (our own commands: valid
/// exactly when the gateway was expected to accept them) and checks what topic levels repeat
/// in the payload; returns the forms seen, per schema.
fn check_log(
    schemas: &Schemas,
    log: &[(String, Value)],
    sent: &[(String, Value, bool)],
) -> BTreeMap<&'static str, BTreeSet<String>> {
    let root = format!("gsmgw/{GW}");
    let mut seen: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    let mut commands_checked = 0;
    for (topic, msg) in log {
        let Some(schema) = schema_for(topic) else {
            assert!(
                sent.iter()
                    .any(|(t, v, valid)| t == topic && v == msg && !valid),
                "a command on {topic} nobody sent: {msg}"
            );
            commands_checked += 1;
            continue;
        };
        if topic.contains("/cmd/") {
            // Our own commands, echoed by the broker: the schema must agree with the gateway.
            let valid = sent
                .iter()
                .find(|(t, v, _)| t == topic && v == msg)
                .map(|(_, _, valid)| *valid)
                .unwrap_or_else(|| panic!("a command on {topic} nobody sent: {msg}"));
            if valid {
                schemas.assert_valid(schema, "an accepted command", msg);
            } else {
                schemas.assert_invalid(schema, "a command the gateway refused", msg);
            }
            commands_checked += 1;
        } else {
            schemas.assert_valid(schema, topic, msg);
        }
        if let Some(rest) = topic.strip_prefix(&format!("{root}/event/")) {
            assert_eq!(msg["type"], rest, "event type = topic level: {msg}");
            assert_eq!(msg["gateway"], GW, "{msg}");
        }
        if let Some(rid) = topic.strip_prefix(&format!("{root}/reply/")) {
            let want = if rid == "_invalid" {
                Value::Null
            } else {
                json!(rid)
            };
            assert_eq!(msg["request_id"], want, "reply topic and request_id: {msg}");
        }
        if let Some(rest) = topic.strip_prefix(&format!("{root}/recording/")) {
            let (call, n) = rest.split_once('/').expect("recording/{call_id}/{n}");
            assert_eq!(msg["call_id"], call, "chunk topic and call_id: {msg}");
            assert_eq!(msg["n"].to_string(), n, "chunk topic and n: {msg}");
            assert!(
                msg["n"].as_u64() < msg["chunks"].as_u64(),
                "n below chunks: {msg}"
            );
            assert_eq!(
                msg["last"] == true,
                msg["n"].as_u64().map(|n| n + 1) == msg["chunks"].as_u64(),
                "last on the last chunk only: {msg}"
            );
        }
        seen.entry(schema)
            .or_default()
            .insert(form_of(schema, topic, msg));
    }
    assert_eq!(commands_checked, sent.len(), "every command came back");
    seen
}

/// Every form in `want` was seen.
fn assert_forms(seen: &BTreeMap<&'static str, BTreeSet<String>>, want: &[(&str, &[&str])]) {
    for (schema, forms) in want {
        let got = seen.get(schema).cloned().unwrap_or_default();
        for f in *forms {
            assert!(
                got.contains(*f),
                "{schema}: no {f:?} message seen; saw {got:?}"
            );
        }
    }
}

/// Sends a command and remembers whether its payload should satisfy the command's schema.
async fn command(
    central: &Central,
    sent: &mut Vec<(String, Value, bool)>,
    verb: &str,
    payload: &str,
    valid: bool,
) {
    let topic = format!("gsmgw/{GW}/cmd/{verb}");
    central.send(&topic, payload).await;
    let v = serde_json::from_str(payload).unwrap_or(Value::String(payload.into()));
    sent.push((topic, v, valid));
}

async fn reply(central: &mut Central, rid: &str, pred: impl Fn(&Value) -> bool) -> Value {
    central
        .expect(&format!("gsmgw/{GW}/reply/{rid}"), T, pred)
        .await
}

async fn status_event(central: &mut Central, rid: Value, state: &str) -> Value {
    central
        .expect(&format!("gsmgw/{GW}/event/sms-status"), T, |v| {
            v["request_id"] == rid && v["state"] == state
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_real_message_matches_its_schema() {
    let schemas = Schemas::load();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sim = SimModem::start(
        dir.path(),
        "modem1",
        &["--dialect", "quectel", "--imsi", "255030123456781"],
    );
    let cfg = write_config(dir.path(), GW, &broker.url(), &[(1, &sim.link)]);
    // Incomplete multipart messages are delivered after 2 s.
    let mut text_cfg = std::fs::read_to_string(&cfg).unwrap();
    // No per-SIM minute limit: the campaigns below come on top of the single messages.
    text_cfg.push_str("\n[sms]\nreassembly_timeout_secs = 2\nper_minute = 0\n");
    std::fs::write(&cfg, text_cfg).unwrap();
    // A damaged database: moved aside at start, with a store-corrupt alarm.
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(
        dir.path().join("data/gsmgw.db"),
        "this is not an SQLite database\n".repeat(200),
    )
    .unwrap();

    let root = format!("gsmgw/{GW}");
    let t = |s: &str| format!("{root}/{s}");
    let mut central = Central::connect(broker.port, &format!("{root}/#")).await;
    let agent = AgentProc::start(&cfg);
    let birth = central
        .expect(&t("status"), T, |v| v["online"] == true)
        .await;
    central
        .expect(&t("modem/1/state"), T, |v| v["state"] == "ready")
        .await;
    central
        .expect(&t("event/modem"), T, |v| {
            v["kind"] == "state" && v["state"] == "ready"
        })
        .await;
    central
        .expect(&t("event/alarm"), T, |v| v["code"] == "store-corrupt")
        .await;

    // SMS in: single, single of class 1, multipart out of order, multipart missing a part,
    // and a PDU nobody can decode.
    let received = t("event/sms-received");
    let r = sim.control(json!({"op": "sms", "from": FROM, "text": "Hello [OK] {€}"}));
    assert_eq!(r["ok"], true, "{r}");
    central
        .expect(&received, T, |v| v["text"] == "Hello [OK] {€}")
        .await;
    let r = sim.control(json!({"op": "sms", "from": FROM, "text": "class one", "class": 1}));
    assert_eq!(r["ok"], true, "{r}");
    let ev = central
        .expect(&received, T, |v| v["text"] == "class one")
        .await;
    assert_eq!(ev["class"], 1, "{ev}");
    let long = "Доброго дня! Ваше замовлення № 4711 прийнято. Кур'єр зателефонує за годину \
        до доставки. Дякуємо, що обрали нас.";
    let r = sim.control(json!({"op": "sms", "from": FROM, "text": long, "parts_order": [2, 1]}));
    assert_eq!(r["parts"], 2, "{r}");
    let ev = central.expect(&received, T, |v| v["text"] == long).await;
    assert_eq!(ev["parts"], 2, "{ev}");
    let parts = pdu::encode_deliver(&DeliverOptions {
        from: FROM.into(),
        text: "One two three four five six seven eight nine ten. ".repeat(8),
        smsc: Some("+380672021111".into()),
        scts: Timestamp::new(2026, 11, 26, 22, 15, 3, 8).unwrap(),
        force_ucs2: false,
        concat_ref: 9,
        class: None,
        status_report_indication: false,
    })
    .unwrap();
    assert_eq!(parts.len(), 3);
    sim.control(json!({"op": "sms-pdu", "pdu": parts[0].pdu}));
    sim.control(json!({"op": "sms-pdu", "pdu": parts[2].pdu}));
    let ev = central
        .expect(&received, T, |v| v["complete"] == false)
        .await;
    assert_eq!(ev["parts_received"], json!([1, 3]), "{ev}");
    let r = sim.control(json!({"op": "urc", "text": "+CMT: ,4\r\n00FFFFFFFF"}));
    assert_eq!(r["ok"], true, "{r}");
    let ev = central
        .expect(&received, T, |v| v.get("pdu").is_some())
        .await;
    assert_eq!(ev["complete"], false, "{ev}");

    // Commands: good ones, a repeated request_id, and refused ones.
    let mut sent = Vec::new();
    let c = &mut central;
    command(c, &mut sent, "ping", r#"{"request_id":"p-1"}"#, true).await;
    let r = reply(c, "p-1", |_| true).await;
    assert_eq!(r["result"]["pong"], true, "{r}");

    let s1 =
        json!({"request_id": "s-1", "to": TO, "text": "please report", "report": true}).to_string();
    command(c, &mut sent, "sms-send", &s1, true).await;
    let r = reply(c, "s-1", |_| true).await;
    assert_eq!(r["result"]["state"], "queued", "{r}");
    status_event(c, json!("s-1"), "sent").await;
    status_event(c, json!("s-1"), "delivered").await;
    command(c, &mut sent, "sms-send", &s1, true).await;
    let r = reply(c, "s-1", |v| v["result"]["duplicate"] == true).await;
    assert_eq!(r["result"]["state"], "delivered", "{r}");

    // No report asked: the reports come by hand — still trying, delivered, and one more
    // that matches no job any more.
    let s2 = json!({"request_id": "s-2", "to": TO, "text": "no report", "slot": 1}).to_string();
    command(c, &mut sent, "sms-send", &s2, true).await;
    reply(c, "s-2", |_| true).await;
    let ev = status_event(c, json!("s-2"), "sent").await;
    let mr = ev["mr"][0].as_u64().expect("mr");
    let r = sim.control(json!({"op": "report", "mr": mr, "status": 32}));
    assert_eq!(r["ok"], true, "{r}");
    status_event(c, json!("s-2"), "pending").await;
    sim.control(json!({"op": "report", "mr": mr, "status": 0}));
    status_event(c, json!("s-2"), "delivered").await;
    sim.control(json!({"op": "report", "mr": mr, "status": 0}));
    status_event(c, Value::Null, "delivered").await;

    // A permanent network error: failed.
    let r = sim.control(json!({"op": "cmgs", "error": 1, "count": 1}));
    assert_eq!(r["ok"], true, "{r}");
    let s3 = json!({"request_id": "s-3", "to": "+380509999999", "text": "nobody"}).to_string();
    command(c, &mut sent, "sms-send", &s3, true).await;
    reply(c, "s-3", |_| true).await;
    let ev = status_event(c, json!("s-3"), "failed").await;
    assert!(
        ev["error"].as_str().unwrap_or("").contains("CMS ERROR: 1"),
        "{ev}"
    );

    // A campaign (a number listed twice, fields, no reports), paused and resumed at once,
    // repeated, and run to its final progress event.
    let campaign = t("event/campaign");
    let camp = json!({"request_id": "camp-1", "campaign_id": "spring-1",
        "text": "Вітаємо, {name}! Бонусів: {n}.",
        "recipients": [
            {"to": "+380501110001", "fields": {"name": "Олена", "n": 3}},
            {"to": "+380501110002", "fields": {"name": "Петро"}},
            {"to": "+380501110001"}
        ],
        "report": false})
    .to_string();
    command(c, &mut sent, "campaign", &camp, true).await;
    let r = reply(c, "camp-1", |_| true).await;
    assert_eq!(r["result"]["state"], "running", "{r}");
    assert_eq!(r["result"]["recipients"], 2, "{r}");
    assert_eq!(r["result"]["duplicates"], 1, "{r}");
    for (rid, action, state) in [("cc-1", "pause", "paused"), ("cc-2", "resume", "running")] {
        let p = json!({"request_id": rid, "campaign_id": "spring-1", "action": action});
        command(c, &mut sent, "campaign-control", &p.to_string(), true).await;
        let r = reply(c, rid, |_| true).await;
        assert_eq!(r["result"]["state"], state, "{r}");
    }
    command(c, &mut sent, "campaign", &camp, true).await;
    reply(c, "camp-1", |v| v["result"]["duplicate"] == true).await;
    // Two messages may be in flight on the SIM: their events can come in either order.
    let mut got = std::collections::BTreeSet::new();
    while got.len() < 2 {
        let ev = c
            .expect(&t("event/sms-status"), T, |v| {
                v["state"] == "sent"
                    && v["request_id"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("spring-1:"))
            })
            .await;
        got.insert(ev["request_id"].as_str().unwrap_or("").to_string());
    }
    let ev = c
        .expect(&campaign, T, |v| {
            v["campaign_id"] == "spring-1" && v["final"] == true
        })
        .await;
    assert_eq!(ev["state"], "done", "{ev}");
    assert_eq!(ev["sent"], 2, "{ev}");

    // A second one that would start in 2099, cancelled: its messages end cancelled.
    let camp2 = json!({"request_id": "camp-2", "campaign_id": "spring-2", "text": "Later",
        "recipients": [{"to": "+380501110003"}, {"to": "+380501110004"}],
        "start_at": "2099-01-01T00:00:00Z", "report": false})
    .to_string();
    command(c, &mut sent, "campaign", &camp2, true).await;
    reply(c, "camp-2", |_| true).await;
    let p = json!({"request_id": "cc-3", "campaign_id": "spring-2", "action": "cancel"});
    command(c, &mut sent, "campaign-control", &p.to_string(), true).await;
    let r = reply(c, "cc-3", |_| true).await;
    assert_eq!(r["result"]["state"], "cancelled", "{r}");
    assert_eq!(r["result"]["cancelled"], 2, "{r}");
    status_event(c, json!("spring-2:+380501110004"), "cancelled").await;
    let ev = c
        .expect(&campaign, T, |v| {
            v["campaign_id"] == "spring-2" && v["final"] == true
        })
        .await;
    assert_eq!(ev["state"], "cancelled", "{ev}");
    assert_eq!(ev["cancelled"], 2, "{ev}");

    // Refused, though the command matches its schema: what only the gateway knows.
    let camp3 = json!({"request_id": "camp-3", "campaign_id": "spring-1", "text": "again",
        "recipients": [{"to": "+380501110005"}]})
    .to_string();
    let refused_valid = [
        ("campaign", camp3.as_str(), "camp-3", "campaign-refused"),
        (
            "campaign-control",
            r#"{"request_id":"cc-4","campaign_id":"nope","action":"pause"}"#,
            "cc-4",
            "unknown-campaign",
        ),
    ];
    for (verb, payload, rid, code) in refused_valid {
        command(c, &mut sent, verb, payload, true).await;
        let r = reply(c, rid, |_| true).await;
        assert_eq!(r["ok"], false, "{r}");
        assert_eq!(r["error"]["code"], code, "{r}");
    }

    // USSD: an answer with a balance, a menu answered, the same request_id again (from the
    // store), a code the network does not know, a string that is not USSD, and a message
    // the network sends by itself.
    let r = sim.control(json!({"op": "ussd-table", "delay_ms": 50, "table": {
        "*111#": "Na rahunku 45.67 grn.",
        "*100#": {"text": "1 Balans 2 Taryf", "more": true},
        "*100#>1": "Balans 45,67 grn",
        "*404#": {"status": 4},
    }}));
    assert_eq!(r["ok"], true, "{r}");
    for (payload, rid) in [
        (r#"{"request_id":"u-1","slot":1,"code":"*111#"}"#, "u-1"),
        (
            r#"{"request_id":"u-2","slot":1,"code":"*100#","replies":["1"],"timeout_secs":20}"#,
            "u-2",
        ),
        (r#"{"request_id":"u-1","slot":1,"code":"*111#"}"#, "u-1"),
    ] {
        command(c, &mut sent, "ussd", payload, true).await;
        let r = reply(c, rid, |_| true).await;
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["result"]["balance"]["amount"], 45.67, "{r}");
    }
    command(
        c,
        &mut sent,
        "ussd",
        r#"{"request_id":"u-3","slot":1,"code":"*404#"}"#,
        true,
    )
    .await;
    let r = reply(c, "u-3", |_| true).await;
    assert_eq!(r["error"]["code"], "ussd-network", "{r}");
    command(
        c,
        &mut sent,
        "ussd",
        r#"{"request_id":"u-4","slot":1,"code":"*111#\r\nAT+CFUN=0"}"#,
        false,
    )
    .await;
    let r = reply(c, "u-4", |_| true).await;
    assert_eq!(r["error"]["code"], "bad-field", "{r}");
    let codes: Vec<Value> = sim.control(json!({"op": "state"}))["ussd"]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].clone())
        .collect();
    assert_eq!(
        codes,
        [json!("*111#"), json!("*100#"), json!("1"), json!("*404#")]
    );
    let r = sim.control(json!({"op": "ussd", "text": "Vash rahunok popovneno na 50 grn", "network_initiated": true}));
    assert_eq!(r["ok"], true, "{r}");
    let ev = c
        .expect(&format!("gsmgw/{GW}/event/ussd"), T, |_| true)
        .await;
    assert_eq!(ev["text"], "Vash rahunok popovneno na 50 grn", "{ev}");
    assert_eq!(
        (ev["slot"].clone(), ev["status"].clone()),
        (json!(1), json!("done"))
    );

    let refused = [
        (
            "sms-send",
            r#"{"request_id":"b-1","to":"12ab","text":"hi"}"#,
            "b-1",
            "bad-number",
        ),
        (
            "sms-send",
            r#"{"request_id":"b-2","to":"+380501234567","text":""}"#,
            "b-2",
            "bad-text",
        ),
        (
            "sms-send",
            r#"{"request_id":"b-3","to":"+380501234567","text":"hi","colour":1}"#,
            "b-3",
            "bad-field",
        ),
        (
            "campaign",
            r#"{"request_id":"b-5","campaign_id":"bad-1","text":"hi","recipients":[{"to":"12ab"}]}"#,
            "b-5",
            "bad-recipient",
        ),
        (
            "campaign-control",
            r#"{"request_id":"b-6","campaign_id":"spring-1"}"#,
            "b-6",
            "bad-field",
        ),
        (
            "reboot-everything",
            r#"{"request_id":"b-4"}"#,
            "b-4",
            "unknown-verb",
        ),
        (
            "ping",
            r#"{"to":"nobody"}"#,
            "_invalid",
            "missing-request-id",
        ),
        ("ping", "not json", "_invalid", "bad-json"),
        (
            "ping",
            r#"{"request_id":"a b"}"#,
            "_invalid",
            "bad-request-id",
        ),
    ];
    for (verb, payload, rid, code) in refused {
        command(c, &mut sent, verb, payload, false).await;
        let r = reply(c, rid, |_| true).await;
        assert_eq!(r["ok"], false, "{r}");
        assert_eq!(r["error"]["code"], code, "{r}");
    }

    // A modem reset: a power cycle the board cannot do, a soft one, the same again (from the
    // store: not reset twice); the modem comes back before the agent stops.
    command(
        c,
        &mut sent,
        "modem-reset",
        r#"{"request_id":"mr-1","slot":1,"kind":"power"}"#,
        true,
    )
    .await;
    let r = reply(c, "mr-1", |_| true).await;
    assert_eq!(r["error"]["code"], "no-power-control", "{r}");
    for _ in 0..2 {
        command(
            c,
            &mut sent,
            "modem-reset",
            r#"{"request_id":"mr-2","slot":1}"#,
            true,
        )
        .await;
        let r = reply(c, "mr-2", |_| true).await;
        assert_eq!(r["result"]["kind"], "soft", "{r}");
    }
    c.expect(&t("modem/1/state"), T, |v| v["state"] == "resetting")
        .await;
    c.expect(&t("modem/1/state"), T, |v| v["state"] == "ready")
        .await;
    assert_eq!(
        sim.control(json!({"op": "state"}))["counters"]["reboots"],
        1,
        "reset once, not twice"
    );

    // The agent's log from afar: the reset above is in it; nonsense is refused.
    command(
        c,
        &mut sent,
        "log-fetch",
        r#"{"request_id":"l-1","lines":500,"since":"2020-01-01T00:00:00Z"}"#,
        true,
    )
    .await;
    let r = reply(c, "l-1", |_| true).await;
    let lines = r["result"]["lines"].as_array().unwrap();
    assert!(
        lines.iter().any(|l| l
            .as_str()
            .unwrap()
            .contains("modem reset requested over MQTT")),
        "{r}"
    );
    command(
        c,
        &mut sent,
        "log-fetch",
        r#"{"request_id":"l-2","lines":0}"#,
        false,
    )
    .await;
    let r = reply(c, "l-2", |_| true).await;
    assert_eq!(r["error"]["code"], "bad-field", "{r}");

    // Goodbye on a clean stop.
    let status = agent.terminate();
    assert!(status.success(), "agent exit: {status}");
    let bye = central
        .expect(&t("status"), T, |v| v["online"] == false)
        .await;
    assert_eq!(bye["boot_id"], birth["boot_id"]);

    // Every message seen, against its schema.
    let seen = check_log(&schemas, &central.log, &sent);

    // Every schema, and every form worth telling apart, was exercised.
    let want: &[(&str, &[&str])] = &[
        ("status.json", &["birth", "offline"]),
        ("modem-state.json", &["state ready"]),
        ("event-modem.json", &["kind state"]),
        ("event-alarm.json", &["store-corrupt"]),
        ("event-ussd.json", &["done"]),
        ("cmd-ussd.json", &["command"]),
        ("event-campaign.json", &["final done", "final cancelled"]),
        (
            "event-sms-received.json",
            &["single", "multipart", "incomplete", "undecodable"],
        ),
        (
            "event-sms-status.json",
            &[
                "sent",
                "delivered",
                "pending",
                "failed",
                "delivered (no job)",
                "cancelled",
            ],
        ),
        ("cmd-ping.json", &["command"]),
        ("cmd-sms-send.json", &["command"]),
        ("cmd-campaign.json", &["command"]),
        ("cmd-campaign-control.json", &["command"]),
        ("cmd-modem-reset.json", &["command"]),
        ("cmd-log-fetch.json", &["command"]),
        (
            "reply.json",
            &[
                "ok modem-reset",
                "ok log-fetch",
                "ok modem-reset duplicate",
                "error no-power-control",
                "ok done",
                "ok queued",
                "ok duplicate",
                "error bad-number",
                "error bad-text",
                "error bad-field",
                "error unknown-verb",
                "error bad-recipient",
                "error unknown-campaign",
                "error campaign-refused",
                "ok campaign",
                "ok campaign duplicate",
                "ok campaign-control paused",
                "ok campaign-control running",
                "ok campaign-control cancelled",
                "ok ussd done",
                "ok ussd done duplicate",
                "error ussd-network",
                "_invalid missing-request-id",
                "_invalid bad-json",
                "_invalid bad-request-id",
            ],
        ),
    ];
    assert_forms(&seen, want);
    let exercised: BTreeSet<&str> = seen.keys().copied().collect();
    let all: BTreeSet<&str> = ALL_SCHEMAS
        .iter()
        .copied()
        .filter(|s| !matches!(*s, "common.json" | "envelope.json"))
        .filter(|s| !VOICE_SCHEMAS.contains(s))
        .collect();
    assert_eq!(
        exercised, all,
        "every message schema but the voice ones exercised (those: the voice test)"
    );
    eprintln!("validated {} messages: {seen:?}", central.log.len());

    // The check bites: real messages, broken, are rejected.
    let (_, real) = central
        .log
        .iter()
        .find(|(t, _)| t.ends_with("/event/sms-received"))
        .unwrap();
    let mut broken = real.clone();
    broken.as_object_mut().unwrap().remove("received_at");
    schemas.assert_invalid(
        "event-sms-received.json",
        "sms-received without received_at",
        &broken,
    );
    let (_, real) = central
        .log
        .iter()
        .find(|(t, _)| t.ends_with("/modem/1/state"))
        .unwrap();
    let mut broken = real.clone();
    broken["state"] = json!("happy");
    schemas.assert_invalid("modem-state.json", "modem state \"happy\"", &broken);
    let (_, real) = central
        .log
        .iter()
        .find(|(t, v)| t.ends_with("/event/campaign") && v["final"] == true)
        .unwrap();
    let mut broken = real.clone();
    broken["remaining"] = json!(1);
    schemas.assert_invalid(
        "event-campaign.json",
        "a final campaign event with a message left",
        &broken,
    );
    let (_, real) = central
        .log
        .iter()
        .find(|(t, _)| t.ends_with("/cmd/campaign"))
        .unwrap();
    let mut broken = real.clone();
    broken["recipients"][0]["fields"] = json!("name=Олена");
    schemas.assert_invalid("cmd-campaign.json", "fields as a string", &broken);
}

/// The chunks of a recording as `recordings::chunks` builds them (what `recording-fetch`
/// publishes): several, one, and an empty file; and broken copies.
#[test]
fn recording_chunks_match_their_schema() {
    use gsmgw_agent::voice::recordings::{CHUNK_BYTES, chunks, sha256_hex};
    let schemas = Schemas::load();
    let wav: Vec<u8> = (0..CHUNK_BYTES * 2 + 10).map(|i| (i * 7) as u8).collect();
    for data in [&wav[..], &wav[..100], &wav[..CHUNK_BYTES], &[][..]] {
        let all = chunks(CALL_ID, data);
        assert_eq!(all.len(), data.len().div_ceil(CHUNK_BYTES).max(1));
        for c in &all {
            schemas.assert_valid("recording-chunk.json", "a chunk of chunks()", c);
        }
        let last = all.last().unwrap();
        assert_eq!(last["sha256"], sha256_hex(data), "{last}");
    }
    let all = chunks(CALL_ID, &wav);
    let mut broken = all[0].clone();
    broken.as_object_mut().unwrap().remove("data");
    schemas.assert_invalid("recording-chunk.json", "a chunk without data", &broken);
    let mut broken = all[2].clone();
    broken.as_object_mut().unwrap().remove("sha256");
    schemas.assert_invalid(
        "recording-chunk.json",
        "the last one without sha256",
        &broken,
    );
    let mut broken = all[1].clone();
    broken["sha256"] = all[2]["sha256"].clone();
    schemas.assert_invalid("recording-chunk.json", "sha256 before the last", &broken);
    let mut broken = all[1].clone();
    broken["data"] = json!(format!("{}=", broken["data"].as_str().unwrap()));
    schemas.assert_invalid("recording-chunk.json", "base64 with a stray pad", &broken);
}

/// Voice without SIP (SIPp is not needed): incoming GSM calls rejected by their route (with the
/// missed-call SMS back, and withheld: none), answered and hung up by their route; `dial`
/// refused (no `[sip]`), `hangup` and `recording-fetch` of calls that are over or have no
/// recording, a `recording-fetch` of a file put in place, and malformed voice commands. Every
/// message seen is validated against its schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_real_voice_message_matches_its_schema() {
    use gsmgw_agent::voice::recordings::sha256_hex;
    const CALLER: &str = "+380501112233";
    let schemas = Schemas::load();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sim1 = SimModem::start(
        dir.path(),
        "modem1",
        &["--dialect", "quectel", "--imsi", "255030123456781"],
    );
    let sim2 = SimModem::start(
        dir.path(),
        "modem2",
        &["--dialect", "simcom", "--imsi", "255010000000002"],
    );
    let voice = "\n[voice]\nmissed_call_sms = \"Sorry we missed your call ({from}).\"\n\
        missed_call_sms_period_secs = 3600\n\
        \n[[voice.route]]\nslot = 1\naction = \"reject\"\n\
        \n[[voice.route]]\nslot = 2\naction = \"answer-hangup\"\n";
    let cfg = write_config_with(
        dir.path(),
        GW,
        &broker.url(),
        voice,
        &[(1, &sim1.link, ""), (2, &sim2.link, "")],
    );
    let root = format!("gsmgw/{GW}");
    let t = |s: &str| format!("{root}/{s}");
    let mut central = Central::connect(broker.port, &format!("{root}/#")).await;
    let agent = AgentProc::start(&cfg);
    central
        .expect(&t("status"), T, |v| v["online"] == true)
        .await;
    for slot in [1, 2] {
        central
            .expect(&t(&format!("modem/{slot}/state")), T, |v| {
                v["state"] == "ready"
            })
            .await;
    }
    let calls = t("event/call");

    // Slot 1 rejects: a missed call, with the SMS back to the caller.
    let r = sim1.control(json!({"op": "call", "from": CALLER}));
    assert!(r["idx"].is_u64(), "{r}");
    let missed = central.expect(&calls, T, |v| v["from"] == CALLER).await;
    assert_eq!(missed["direction"], "gsm-in", "{missed}");
    assert_eq!(missed["slot"], 1, "{missed}");
    assert_eq!(missed["to"], "slot 1", "{missed}");
    assert_eq!(missed["imsi"], "255030123456781", "{missed}");
    assert_eq!(missed["cause"], "rejected", "{missed}");
    assert!(missed["answered_at"].is_null(), "{missed}");
    assert!(missed["sip_peer"].is_null(), "{missed}");
    let missed_id = missed["call_id"].as_str().expect("call_id").to_string();
    status_event(
        &mut central,
        json!(format!("missed-call-{missed_id}")),
        "sent",
    )
    .await;

    // A withheld caller: from is empty, no SMS.
    let r = sim1.control(json!({"op": "call", "from": "", "clip_validity": 1}));
    assert!(r["idx"].is_u64(), "{r}");
    let withheld = central.expect(&calls, T, |v| v["from"] == "").await;
    assert_eq!(withheld["cause"], "rejected", "{withheld}");
    let withheld_id = withheld["call_id"].as_str().expect("call_id").to_string();

    // Slot 2 answers and hangs up: answered, talk time.
    let r = sim2.control(json!({"op": "call", "from": FROM}));
    assert!(r["idx"].is_u64(), "{r}");
    let answered = central.expect(&calls, T, |v| v["from"] == FROM).await;
    assert_eq!(answered["slot"], 2, "{answered}");
    assert_eq!(answered["cause"], "normal", "{answered}");
    assert!(answered["answered_at"].is_string(), "{answered}");
    assert!(
        answered["duration_s"].as_f64().is_some_and(|d| d > 0.0),
        "{answered}"
    );
    let answered_id = answered["call_id"].as_str().expect("call_id").to_string();

    // Voice commands the gateway takes but refuses for what only it knows.
    let mut sent = Vec::new();
    let c = &mut central;
    let refused_valid = [
        (
            "dial",
            json!({"request_id": "d-1", "to": TO, "bridge_to": "sip:101@pbx.local", "slot": 1,
                "record": true}),
            "sip-not-configured",
        ),
        (
            "dial",
            json!({"request_id": "d-2", "to": "*101#", "bridge_to": "sip:101@pbx.local"}),
            "sip-not-configured",
        ),
        (
            "dial",
            json!({"request_id": "d-3", "to": TO, "bridge_to": "sip:101@pbx.local", "slot": 9}),
            "unknown-slot",
        ),
        (
            "hangup",
            json!({"request_id": "h-1", "call_id": missed_id}),
            "unknown-call",
        ),
        (
            "recording-fetch",
            json!({"request_id": "r-1", "call_id": missed_id}),
            "no-recording",
        ),
    ];
    for (verb, payload, code) in refused_valid {
        let rid = payload["request_id"].as_str().unwrap().to_string();
        command(c, &mut sent, verb, &payload.to_string(), true).await;
        let r = reply(c, &rid, |_| true).await;
        assert_eq!(r["ok"], false, "{r}");
        assert_eq!(r["error"]["code"], code, "{r}");
    }
    // A dial refused is not stored: asked again, it is refused again (not a duplicate).
    let d1 = json!({"request_id": "d-1", "to": TO, "bridge_to": "sip:101@pbx.local"});
    command(c, &mut sent, "dial", &d1.to_string(), true).await;
    let r = reply(c, "d-1", |_| true).await;
    assert_eq!(r["error"]["code"], "sip-not-configured", "{r}");

    // Recordings put in place by hand (a recorded call would leave them): three chunks, and an
    // empty file in one.
    let recs = dir.path().join("data/recordings");
    std::fs::create_dir_all(&recs).unwrap();
    let wav: Vec<u8> = (0..120_044u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(recs.join(format!("{answered_id}.wav")), &wav).unwrap();
    std::fs::write(recs.join(format!("{withheld_id}.wav")), b"").unwrap();
    for (rid, call, data) in [
        ("r-2", &answered_id, &wav[..]),
        ("r-3", &withheld_id, &[][..]),
    ] {
        let p = json!({"request_id": rid, "call_id": call});
        command(c, &mut sent, "recording-fetch", &p.to_string(), true).await;
        let r = reply(c, rid, |_| true).await;
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["result"]["size"], data.len(), "{r}");
        assert_eq!(r["result"]["sha256"], sha256_hex(data), "{r}");
        let n = r["result"]["chunks"].as_u64().expect("chunks");
        assert_eq!(n, data.len().div_ceil(48 * 1024).max(1) as u64, "{r}");
        for i in 0..n {
            let chunk = c
                .expect(&t(&format!("recording/{call}/{i}")), T, |_| true)
                .await;
            assert_eq!(chunk["last"], i + 1 == n, "{chunk}");
        }
    }

    // Malformed voice commands.
    let refused = [
        (
            "dial",
            r#"{"request_id":"b-1","to":"12ab","bridge_to":"sip:101@pbx.local"}"#,
            "b-1",
            "bad-number",
        ),
        (
            "dial",
            r#"{"request_id":"b-2","to":"+1","bridge_to":"sip:101@pbx.local"}"#,
            "b-2",
            "bad-number",
        ),
        (
            "dial",
            r#"{"request_id":"b-3","to":"+380501234567"}"#,
            "b-3",
            "bad-field",
        ),
        (
            "dial",
            r#"{"request_id":"b-4","to":"+380501234567","bridge_to":"tel:101"}"#,
            "b-4",
            "bad-field",
        ),
        (
            "dial",
            r#"{"request_id":"b-5","to":"+380501234567","bridge_to":"sip:101@pbx.local","record":"yes"}"#,
            "b-5",
            "bad-field",
        ),
        ("hangup", r#"{"request_id":"b-6"}"#, "b-6", "bad-field"),
        (
            "hangup",
            r#"{"request_id":"b-7","call_id":"../gsmgw"}"#,
            "b-7",
            "bad-field",
        ),
        (
            "recording-fetch",
            r#"{"request_id":"b-8","call_id":"abc","colour":1}"#,
            "b-8",
            "bad-field",
        ),
    ];
    for (verb, payload, rid, code) in refused {
        command(c, &mut sent, verb, payload, false).await;
        let r = reply(c, rid, |_| true).await;
        assert_eq!(r["ok"], false, "{r}");
        assert_eq!(r["error"]["code"], code, "{r}");
    }

    // Everything delivered before the goodbye.
    let status = agent.terminate();
    assert!(status.success(), "agent exit: {status}");
    central
        .expect(&t("status"), T, |v| v["online"] == false)
        .await;

    let seen = check_log(&schemas, &central.log, &sent);
    let want: &[(&str, &[&str])] = &[
        (
            "event-call.json",
            &[
                "gsm-in rejected",
                "gsm-in rejected withheld",
                "gsm-in normal answered",
            ],
        ),
        ("event-sms-status.json", &["sent"]),
        ("cmd-dial.json", &["command"]),
        ("cmd-hangup.json", &["command"]),
        ("cmd-recording-fetch.json", &["command"]),
        ("recording-chunk.json", &["not last", "last", "empty"]),
        (
            "reply.json",
            &[
                "ok recording-fetch",
                "error sip-not-configured",
                "error unknown-slot",
                "error unknown-call",
                "error no-recording",
                "error bad-number",
                "error bad-field",
            ],
        ),
    ];
    assert_forms(&seen, want);
    for s in VOICE_SCHEMAS {
        assert!(seen.contains_key(s), "{s} exercised; saw {seen:?}");
    }
    eprintln!("validated {} messages: {seen:?}", central.log.len());

    // The check bites: the real call event, broken, is rejected.
    let (_, real) = central
        .log
        .iter()
        .find(|(t, v)| t.ends_with("/event/call") && v["from"] == CALLER)
        .unwrap();
    let mut broken = real.clone();
    broken.as_object_mut().unwrap().remove("cause");
    schemas.assert_invalid("event-call.json", "a call event without cause", &broken);
    let mut broken = real.clone();
    broken["duration_s"] = json!(12.5);
    schemas.assert_invalid("event-call.json", "talk time without an answer", &broken);
    let (_, state) = central
        .log
        .iter()
        .find(|(t, _)| t.ends_with("/event/call-state"))
        .unwrap();
    let mut broken = state.clone();
    broken["state"] = json!("on-hold");
    schemas.assert_invalid("event-call-state.json", "an unknown call state", &broken);
    let mut broken = state.clone();
    broken.as_object_mut().unwrap().remove("call_id");
    schemas.assert_invalid(
        "event-call-state.json",
        "a call state without its call",
        &broken,
    );
}
