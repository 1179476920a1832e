//! Commands from the central server: parsing and validation.
//!
//! A command arrives on `gsmgw/{id}/cmd/{verb}` as a JSON object with a `request_id`. It is
//! validated here; the uplink commits the resulting job before it acknowledges the message and
//! replies on `gsmgw/{id}/reply/{request_id}`.

use serde_json::{Map, Value, json};

/// Where replies go when a command has no usable `request_id`.
pub const INVALID_REPLY: &str = "_invalid";

/// Longest text accepted for an SMS (at most 10 UCS-2 parts).
pub const MAX_SMS_PARTS: usize = 10;

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
    pub verb: String,
    /// The normalised payload to store.
    pub payload: Value,
    /// The slot it targets, if any.
    pub slot: Option<u16>,
    /// For `campaign`: the validated campaign.
    pub campaign: Option<crate::campaign::CampaignPlan>,
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
    let Some(digits) = n.strip_prefix('+') else {
        return false;
    };
    (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// Parses and validates a command for `verb` with `payload`, given the configured slots.
pub fn parse(verb: &str, payload: &[u8], slots: &[u16]) -> Result<ValidCommand, Rejection> {
    let value: Value = serde_json::from_slice(payload)
        .map_err(|e| reject(None, "bad-json", format!("payload is not JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(reject(None, "bad-json", "payload must be a JSON object"));
    };
    let request_id = match obj.get("request_id") {
        None => return Err(reject(None, "missing-request-id", "request_id is required")),
        Some(Value::String(s)) if valid_request_id(s) => s.clone(),
        Some(_) => {
            return Err(reject(
                None,
                "bad-request-id",
                "request_id must be 1-128 characters of letters, digits and ._:-",
            ));
        }
    };
    let rid = Some(request_id.as_str());
    match verb {
        "ping" => Ok(ValidCommand {
            request_id: request_id.clone(),
            verb: verb.into(),
            payload: json!({}),
            slot: None,
            campaign: None,
        }),
        "campaign" => {
            let plan =
                crate::campaign::plan(&obj, slots).map_err(|(code, m)| reject(rid, code, m))?;
            Ok(ValidCommand {
                request_id: request_id.clone(),
                verb: verb.into(),
                payload: plan.spec.clone(),
                slot: None,
                campaign: Some(plan),
            })
        }
        "campaign-control" => Ok(ValidCommand {
            request_id: request_id.clone(),
            verb: verb.into(),
            payload: Value::Object(obj.clone()),
            slot: None,
            campaign: None,
        }),
        "sms-send" => {
            let out = sms_send(&obj, slots).map_err(|(code, m)| reject(rid, code, m))?;
            Ok(ValidCommand {
                request_id: request_id.clone(),
                verb: verb.into(),
                slot: out.get("slot").and_then(Value::as_u64).map(|s| s as u16),
                payload: Value::Object(out),
                campaign: None,
            })
        }
        "dial" | "hangup" | "recording-fetch" => {
            let out = voice_command(verb, &obj, slots).map_err(|(code, m)| reject(rid, code, m))?;
            Ok(ValidCommand {
                request_id: request_id.clone(),
                verb: verb.into(),
                slot: out.get("slot").and_then(Value::as_u64).map(|s| s as u16),
                payload: Value::Object(out),
                campaign: None,
            })
        }
        other => Err(reject(
            rid,
            "unknown-verb",
            format!(
                "unknown command {other:?}; known: ping, sms-send, campaign, campaign-control, dial, hangup, recording-fetch"
            ),
        )),
    }
}

/// The optional `slot` field: absent/null, or one of the configured slots.
fn optional_slot(
    obj: &Map<String, Value>,
    slots: &[u16],
) -> Result<Option<u16>, (&'static str, String)> {
    match obj.get("slot") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64().and_then(|s| u16::try_from(s).ok()) {
            Some(s) if slots.contains(&s) => Ok(Some(s)),
            _ => Err(("unknown-slot", format!("slot {v} is not configured"))),
        },
    }
}

/// `dial` {to, slot?, bridge_to, record?}, `hangup` {call_id}, `recording-fetch` {call_id}.
fn voice_command(
    verb: &str,
    obj: &Map<String, Value>,
    slots: &[u16],
) -> Result<Map<String, Value>, (&'static str, String)> {
    let known: &[&str] = match verb {
        "dial" => &["request_id", "to", "slot", "bridge_to", "record"],
        _ => &["request_id", "call_id"],
    };
    if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(("bad-field", format!("unknown field {k:?}")));
    }
    let mut out = Map::new();
    if verb != "dial" {
        match obj.get("call_id") {
            Some(Value::String(s)) if crate::voice::recordings::valid_call_id(s) => {
                out.insert("call_id".into(), json!(s));
            }
            _ => return Err(("bad-field", "call_id is required (a call's id)".into())),
        }
        return Ok(out);
    }
    match obj.get("to") {
        Some(Value::String(s)) if gsmgw_drivers::modem::dialable(s) && s.len() >= 3 => {
            out.insert("to".into(), json!(s));
        }
        _ => {
            return Err((
                "bad-number",
                "to is required: a dialable number (+ and digits)".into(),
            ));
        }
    }
    match obj.get("bridge_to") {
        Some(Value::String(s))
            if s.starts_with("sip:") && s.len() > 4 && !s.contains(char::is_whitespace) =>
        {
            out.insert("bridge_to".into(), json!(s));
        }
        _ => {
            return Err((
                "bad-field",
                "bridge_to is required: a SIP URI like sip:101@pbx.local".into(),
            ));
        }
    }
    if let Some(slot) = optional_slot(obj, slots)? {
        out.insert("slot".into(), json!(slot));
    }
    match obj.get("record") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => {
            out.insert("record".into(), json!(b));
        }
        Some(_) => return Err(("bad-field", "record must be true or false".into())),
    }
    Ok(out)
}

fn sms_send(
    obj: &Map<String, Value>,
    slots: &[u16],
) -> Result<Map<String, Value>, (&'static str, String)> {
    let known = ["request_id", "to", "text", "slot", "report"];
    if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(("bad-field", format!("unknown field {k:?}")));
    }
    let to = match obj.get("to") {
        Some(Value::String(s)) if valid_e164(s) => s.clone(),
        Some(Value::String(s)) => {
            return Err((
                "bad-number",
                format!("{s:?} is not an E.164 number (+ and 7-15 digits)"),
            ));
        }
        _ => return Err(("bad-number", "to is required (E.164 number)".into())),
    };
    let text = match obj.get("text") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) => return Err(("bad-text", "text is empty".into())),
        _ => return Err(("bad-text", "text is required (a string)".into())),
    };
    let (encoding, parts) = gsmgw_drivers::pdu::split_text(&text, false);
    if parts.len() > MAX_SMS_PARTS {
        return Err((
            "text-too-long",
            format!(
                "text needs {} {} parts; at most {MAX_SMS_PARTS} are sent",
                parts.len(),
                encoding.as_str()
            ),
        ));
    }
    let slot = optional_slot(obj, slots)?;
    let report = match obj.get("report") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(("bad-field", "report must be true or false".into())),
    };
    let mut out = Map::new();
    out.insert("to".into(), json!(to));
    out.insert("text".into(), json!(text));
    out.insert("slot".into(), json!(slot));
    out.insert("report".into(), json!(report));
    out.insert("parts".into(), json!(parts.len()));
    out.insert("encoding".into(), json!(encoding.as_str()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(verb: &str, v: Value) -> Result<ValidCommand, Rejection> {
        parse(verb, v.to_string().as_bytes(), &[1, 2])
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
            let e = parse(verb, payload, &[1, 2]).unwrap_err();
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
}
