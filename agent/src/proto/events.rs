//! The bodies of the events the agent builds field by field (the envelope — id, seq, ts,
//! gateway, type — is the store's). Each serialises to exactly what its schema in
//! docs/schema names; [`EventBody::body`] turns one into the value `NewEvent` takes.

use serde::Serialize;
use serde_json::{Map, Value};

use super::{CampaignState, EventType};

/// An event body: its type and its JSON.
pub trait EventBody: Serialize {
    /// The event's `type` (and topic level).
    const TYPE: EventType;

    /// The JSON body (an object; `null` only if serialisation failed, which these types
    /// cannot: their maps have string keys).
    fn body(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// `sms-status` (`event-sms-status.json`): a job's message changed state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SmsStatus<'a> {
    /// The job's request id (`null` for a report nobody's job matched).
    pub request_id: Option<&'a str>,
    /// The job id (absent for an unmatched report).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<i64>,
    /// The recipient.
    pub to: &'a Value,
    /// The state (a job state, or `pending` for a report).
    pub state: &'a str,
    /// The message's parts (absent for an unmatched report).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parts: Option<&'a Value>,
    /// Fields this state adds (campaign_id, error, report details …); they win over the
    /// fields above, as they did when merged by hand.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl EventBody for SmsStatus<'_> {
    const TYPE: EventType = EventType::SmsStatus;
}

/// `campaign` (`event-campaign.json`): a campaign's progress, counted by job state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CampaignProgress<'a> {
    /// The campaign.
    pub campaign_id: &'a str,
    /// Its state (done or cancelled on the final event).
    pub state: CampaignState,
    /// Recipients.
    pub total: u64,
    /// Waiting.
    pub queued: u64,
    /// Being sent.
    pub sending: u64,
    /// Taken by the network.
    pub sent: u64,
    /// Delivered.
    pub delivered: u64,
    /// Failed.
    pub failed: u64,
    /// Interrupted mid-send.
    pub unknown: u64,
    /// Cancelled.
    pub cancelled: u64,
    /// Not sent in time.
    pub expired: u64,
    /// queued + sending.
    pub remaining: u64,
    /// The last event of this campaign.
    #[serde(rename = "final")]
    pub finished: bool,
}

impl EventBody for CampaignProgress<'_> {
    const TYPE: EventType = EventType::Campaign;
}

/// `call-state` (`event-call-state.json`): a call in progress changed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallState<'a> {
    /// The call.
    pub call_id: &'a str,
    /// gsm-in, gsm-out, sip-in …
    pub direction: &'a str,
    /// The slot, once bound.
    pub slot: Option<u16>,
    /// Caller.
    pub from: &'a str,
    /// Callee.
    pub to: &'a str,
    /// The SIP side, when there is one.
    pub sip_peer: Option<&'a str>,
    /// ringing, answered, hanging-up …
    pub state: &'a str,
}

impl EventBody for CallState<'_> {
    const TYPE: EventType = EventType::CallState;
}

/// `call` (`event-call.json`): a finished call's record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRecord<'a> {
    /// The call.
    pub call_id: &'a str,
    /// gsm-in, gsm-out, sip-in …
    pub direction: &'a str,
    /// The slot, if one was bound.
    pub slot: Option<u16>,
    /// The SIM's IMSI.
    pub imsi: &'a str,
    /// Caller.
    pub from: &'a str,
    /// Callee.
    pub to: &'a str,
    /// The SIP side, when there was one.
    pub sip_peer: Option<&'a str>,
    /// RFC 3339.
    pub started_at: &'a str,
    /// RFC 3339, if answered.
    pub answered_at: Option<&'a str>,
    /// RFC 3339.
    pub ended_at: &'a str,
    /// Seconds from answer to end, one decimal.
    pub duration_s: f64,
    /// Why it ended.
    pub cause: &'a str,
    /// The SIP final status, if any.
    pub sip_code: Option<u16>,
    /// The recording, if one was kept.
    pub recording: Option<CallRecording>,
    /// The audio path's counters, if a bridge ran.
    pub media: Option<CallMedia>,
}

impl EventBody for CallRecord<'_> {
    const TYPE: EventType = EventType::Call;
}

/// A call's recording file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRecording {
    /// File name under data_dir/recordings.
    pub file: Option<String>,
    /// Size.
    pub bytes: u64,
}

/// A call's audio counters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallMedia {
    /// RTP packets sent.
    pub rtp_sent: u64,
    /// RTP packets received.
    pub rtp_received: u64,
    /// RTP packets lost.
    pub rtp_lost: u64,
    /// Jitter, one decimal.
    pub jitter_ms: f64,
    /// PCM frames read from the modem.
    pub frames_from_modem: u64,
    /// PCM frames written to the modem.
    pub frames_to_modem: u64,
}

/// Fields an `sms-status` event adds to a job's (the sender's view of a send).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SendStatus<'a> {
    /// The slot; `Some(None)` is an explicit `null` (expired before any SIM took it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<Option<u16>>,
    /// TP-MR of each part the network took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mr: Option<&'a [u8]>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    /// The campaign (a cancelled campaign message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<&'a str>,
}

/// A delivery report's fields in an `sms-status` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportStatus {
    /// The slot it arrived on.
    pub slot: u16,
    /// The part it is about, as a one-element list (the form of `sent` events).
    pub mr: [u8; 1],
    /// TP-Status.
    pub status: u8,
    /// TP-Status in words.
    pub status_text: &'static str,
    /// TP-SCTS.
    pub submitted_at: String,
    /// TP-DT.
    pub discharged_at: String,
    /// The SIM's IMSI, in a report that matched no job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imsi: Option<String>,
}

/// `sms-received` (`event-sms-received.json`): a message, whole or (after an interrupted
/// reassembly) as far as it came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmsReceived<'a> {
    /// The slot.
    pub slot: u16,
    /// The SIM's IMSI (absent in a message completed after a restart).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imsi: Option<&'a str>,
    /// The sender.
    pub from: &'a str,
    /// The text.
    pub text: &'a str,
    /// 8-bit data as hex (`null` for text); absent in a message completed after a restart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Option<String>>,
    /// gsm7, ucs2, 8bit.
    pub encoding: Option<&'a str>,
    /// Message class (absent in a message completed after a restart).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<Option<u8>>,
    /// The service centre.
    pub smsc: Option<&'a str>,
    /// TP-SCTS of the (first) part.
    pub sent_at: Option<&'a str>,
    /// When the agent read it.
    pub received_at: String,
    /// Parts.
    pub parts: usize,
    /// Part numbers that arrived (an incomplete message only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parts_received: Option<Vec<u8>>,
    /// The concatenation reference (multipart only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<u16>,
    /// Every part arrived.
    pub complete: bool,
}

impl EventBody for SmsReceived<'_> {
    const TYPE: EventType = EventType::SmsReceived;
}

/// `sms-received` for a PDU that did not decode: kept raw, nothing is lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmsUndecodable<'a> {
    /// The slot.
    pub slot: u16,
    /// The SIM's IMSI.
    pub imsi: &'a str,
    /// The PDU as read.
    pub pdu: &'a str,
    /// Why it did not decode.
    pub error: String,
    /// When the agent read it.
    pub received_at: String,
    /// Always false.
    pub complete: bool,
    /// Always 1.
    pub parts: usize,
}

impl EventBody for SmsUndecodable<'_> {
    const TYPE: EventType = EventType::SmsReceived;
}

/// What the store keeps of one part of a multipart message until the rest arrives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PartMeta {
    /// The part's text.
    #[serde(default)]
    pub text: String,
    /// Its encoding.
    #[serde(default)]
    pub encoding: Option<String>,
    /// Its service centre.
    #[serde(default)]
    pub smsc: Option<String>,
    /// Its TP-SCTS.
    #[serde(default)]
    pub sent_at: Option<String>,
    /// Its class.
    #[serde(default)]
    pub class: Option<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_are_the_documented_ones() {
        let to = json!("+380501234567");
        let parts = json!(1);
        let mut extra = Map::new();
        extra.insert("campaign_id".into(), json!("c-1"));
        let s = SmsStatus {
            request_id: Some("r-1"),
            msg_id: Some(7),
            to: &to,
            state: "cancelled",
            parts: Some(&parts),
            extra,
        };
        assert_eq!(
            s.body(),
            json!({"request_id": "r-1", "msg_id": 7, "to": "+380501234567",
                   "state": "cancelled", "parts": 1, "campaign_id": "c-1"})
        );
        let mut extra = Map::new();
        extra.insert("state".into(), json!("failed"));
        let s = SmsStatus {
            request_id: None,
            msg_id: None,
            to: &to,
            state: "pending",
            parts: None,
            extra,
        };
        assert_eq!(
            s.body(),
            json!({"request_id": null, "to": "+380501234567", "state": "failed"})
        );
        let c = CampaignProgress {
            campaign_id: "c-1",
            state: CampaignState::Done,
            total: 3,
            queued: 0,
            sending: 0,
            sent: 1,
            delivered: 1,
            failed: 1,
            unknown: 0,
            cancelled: 0,
            expired: 0,
            remaining: 0,
            finished: true,
        };
        assert_eq!(
            c.body(),
            json!({"campaign_id": "c-1", "state": "done", "total": 3, "queued": 0,
                   "sending": 0, "sent": 1, "delivered": 1, "failed": 1, "unknown": 0,
                   "cancelled": 0, "expired": 0, "remaining": 0, "final": true})
        );
    }
}
