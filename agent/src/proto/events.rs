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
