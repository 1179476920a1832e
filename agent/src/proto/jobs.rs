//! What the store keeps for a job: the normalised payload a verb's validation produced, and
//! the outcome the executor recorded. Commands arrive as JSON and leave as reply results
//! (see [`super::replies`]); in between they live in the `jobs` table in these forms.
//!
//! Readers are lenient (a field missing in an older row reads as its default), writers
//! produce exactly the fields below, so a row written by this version reads back the same.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A value's JSON. These types cannot fail to serialise (their maps have string keys); an
/// empty object stands in if one ever did.
pub fn to_value<T: Serialize + ?Sized>(x: &T) -> Value {
    serde_json::to_value(x).unwrap_or_else(|_| Value::Object(Map::new()))
}

/// A value's JSON object (empty when it is not an object).
pub fn to_map<T: Serialize + ?Sized>(x: &T) -> Map<String, Value> {
    match to_value(x) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// `base` (an object, or nothing) with the fields of `over` set on it.
pub fn merged(base: Option<Value>, over: &impl Serialize) -> Value {
    let mut m = match base {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    m.extend(to_map(over));
    Value::Object(m)
}

/// An `sms-send` command as the console and the voice manager submit it (the MQTT form is
/// the same JSON, docs/schema/cmd-sms-send.json).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmsSendRequest<'a> {
    /// The caller's id.
    pub request_id: &'a str,
    /// The recipient.
    pub to: &'a str,
    /// The text.
    pub text: &'a str,
    /// A slot, or `null` for any SIM.
    pub slot: Option<u16>,
    /// A delivery report, when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<bool>,
}

/// The stored payload of an `sms-send` job: a command's, a campaign message's or a
/// missed-call SMS's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SmsJob {
    /// The recipient.
    #[serde(default)]
    pub to: String,
    /// The (personalised) text.
    #[serde(default)]
    pub text: String,
    /// The slot asked for, if any.
    #[serde(default)]
    pub slot: Option<u16>,
    /// A delivery report asked for.
    #[serde(default)]
    pub report: bool,
    /// The parts the text splits into.
    #[serde(default)]
    pub parts: usize,
    /// gsm7 or ucs2.
    #[serde(default)]
    pub encoding: String,
    /// The SIM group asked for (campaigns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The campaign it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    /// Not sent after this (RFC 3339, as given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// The same instant in unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<i64>,
}

/// What the sender records about an `sms-send` job, state by state: `sending` (slot,
/// attempts), back in the queue (attempts, last_error, last_slot), `sent` (slot, mr,
/// attempts, report, delivered), `failed` (error, maybe slot and the mr of parts that went).
/// Fields it does not know are kept as they were.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SendOutcome {
    /// The slot that sent (or is sending) it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u16>,
    /// TP-MR of each part the network took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mr: Option<Vec<u8>>,
    /// Attempts so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// A delivery report was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<bool>,
    /// TP-MR of each part a report said was delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered: Option<Vec<u8>>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the last attempt failed (while it waits to be tried again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The slot of the last failed attempt (the next one avoids it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_slot: Option<u16>,
    /// Anything else a row holds.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl SendOutcome {
    /// Reads a stored outcome (an unreadable or missing one reads as empty).
    pub fn read(v: Option<&Value>) -> Self {
        v.and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }

    /// Its JSON.
    pub fn value(&self) -> Value {
        to_value(self)
    }
}

/// The stored spec of a campaign (everything but the recipient list).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CampaignSpec {
    /// The campaign.
    pub campaign_id: String,
    /// The template.
    pub text: String,
    /// Higher first.
    pub priority: i64,
    /// Not before (RFC 3339).
    pub start_at: Option<String>,
    /// Not after (RFC 3339).
    pub expires_at: Option<String>,
    /// Not after (unix ms).
    pub expires_ms: Option<i64>,
    /// Local hours without sending, like 21:00-09:00.
    pub quiet_hours: Option<String>,
    /// Delivery reports asked for.
    pub report: bool,
    /// The slot asked for.
    pub slot: Option<u16>,
    /// The SIM group asked for.
    pub group: Option<String>,
    /// Distinct recipients.
    pub recipients: usize,
    /// Numbers listed more than once (sent once).
    pub duplicates: usize,
}

/// The stored payload of a `dial`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DialJob<'a> {
    /// The GSM number to call.
    pub to: &'a str,
    /// The SIP extension to bridge it to.
    pub bridge_to: &'a str,
    /// The slot asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<u16>,
    /// Record it (overrides the config).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<bool>,
}

/// The stored payload of `hangup` and `recording-fetch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRef<'a> {
    /// The call.
    pub call_id: &'a str,
}

/// The stored payload of `campaign-control`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CampaignControlJob<'a> {
    /// The campaign.
    pub campaign_id: &'a str,
    /// pause, resume or cancel.
    pub action: &'a str,
}

/// The stored payload of `ussd` (and the console's request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UssdJob<'a> {
    /// The caller's id (only in a request the console submits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a str>,
    /// The modem.
    pub slot: u16,
    /// The USSD string.
    pub code: &'a str,
    /// Menu answers, in order.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub replies: &'a [String],
    /// Seconds per answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<i64>,
}

/// The stored payload of `modem-reset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModemResetJob<'a> {
    /// The modem.
    pub slot: u16,
    /// soft or power.
    pub kind: &'a str,
}

/// The normalised payload of `log-fetch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogFetchJob {
    /// Lines at most.
    pub lines: usize,
    /// Only lines at or after this instant (unix ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
}

/// A `campaign-control` request as the console submits it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CampaignControlRequest<'a> {
    /// The caller's id.
    pub request_id: &'a str,
    /// The campaign.
    pub campaign_id: &'a str,
    /// pause, resume or cancel.
    pub action: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_outcome_keeps_what_it_does_not_know_and_writes_only_what_it_has() {
        let stored = json!({"slot": 2, "mr": [7, 8], "attempts": 1, "report": true,
                            "delivered": [], "note": "kept"});
        let mut o = SendOutcome::read(Some(&stored));
        assert_eq!(o.mr.as_deref(), Some(&[7u8, 8][..]));
        o.delivered = Some(vec![7]);
        assert_eq!(
            o.value(),
            json!({"slot": 2, "mr": [7, 8], "attempts": 1, "report": true,
                   "delivered": [7], "note": "kept"})
        );
        assert_eq!(SendOutcome::read(None).value(), json!({}));
        assert_eq!(SendOutcome::read(Some(&json!("junk"))).value(), json!({}));
    }

    #[test]
    fn an_sms_job_reads_what_older_rows_hold() {
        let j: SmsJob = serde_json::from_value(json!({"to": "+380501234567", "text": "hi",
            "slot": null, "report": false, "parts": 1, "encoding": "gsm7", "group": null,
            "campaign_id": "c", "expires_ms": null}))
        .unwrap();
        assert_eq!(
            (j.campaign_id.as_deref(), j.group.as_deref(), j.expires_ms),
            (Some("c"), None, None)
        );
        assert_eq!(
            to_value(&j),
            json!({"to": "+380501234567", "text": "hi", "slot": null, "report": false,
                   "parts": 1, "encoding": "gsm7", "campaign_id": "c"})
        );
    }
}
