//! The `result` of a reply on `reply/{request_id}` (docs/schema/reply.json), verb by verb,
//! and the chunks a `recording-fetch` publishes after it.

use serde::Serialize;

use super::{CampaignState, JobState};

/// A job the registry took (or found already taken under that request_id); the job's
/// recorded outcome is merged in after these fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accepted {
    /// The job.
    pub job_id: i64,
    /// Its state now.
    pub state: JobState,
    /// The request_id had been seen: nothing was done again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// The job a `campaign` was stored as, on top of its [`CampaignAccepted`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobRef {
    /// The job.
    pub job_id: i64,
    /// The request_id had been seen: nothing was done again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// An answer from the store only (a repeated request_id of a verb that ran at once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repeated {
    /// The job's state.
    pub state: JobState,
    /// Always true.
    pub duplicate: bool,
}

/// `ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pong<'a> {
    /// Always true.
    pub pong: bool,
    /// The agent's version.
    pub version: &'a str,
    /// Now (RFC 3339).
    pub ts: String,
}

/// `campaign`: the campaign was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CampaignAccepted<'a> {
    /// The campaign.
    pub campaign_id: &'a str,
    /// Distinct recipients.
    pub recipients: usize,
    /// Numbers listed more than once.
    pub duplicates: usize,
    /// Running.
    pub state: CampaignState,
}

/// `campaign-control`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CampaignControlled<'a> {
    /// The campaign.
    pub campaign_id: &'a str,
    /// Its state now.
    pub state: CampaignState,
    /// Queued messages cancelled by this request.
    pub cancelled: u64,
}

/// `hangup`, and `dial` once the call is placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallProgress<'a> {
    /// The call.
    pub call_id: &'a str,
    /// The slot (dial only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<u16>,
    /// ringing-extension, hanging-up …
    pub state: &'a str,
}

/// `modem-reset`: the reset started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModemReset<'a> {
    /// The modem.
    pub slot: u16,
    /// soft or power.
    pub kind: &'a str,
    /// resetting.
    pub state: &'a str,
}

/// `log-fetch`: the agent's last log lines, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLines {
    /// The lines.
    pub lines: Vec<String>,
    /// How many.
    pub count: usize,
    /// The most the agent keeps.
    pub capacity: usize,
}

/// `recording-fetch`: what the chunks after the reply will carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordingOffer<'a> {
    /// The call.
    pub call_id: &'a str,
    /// Chunks that follow.
    pub chunks: usize,
    /// Bytes.
    pub size: usize,
    /// SHA-256 of the file, hex.
    pub sha256: &'a str,
}

/// One chunk of a recording on `recording/{call_id}/{n}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordingChunk<'a> {
    /// The call.
    pub call_id: &'a str,
    /// Chunk number, from 0.
    pub n: usize,
    /// Chunks in all.
    pub chunks: usize,
    /// The last chunk.
    pub last: bool,
    /// Bytes of the whole file.
    pub size: usize,
    /// This chunk, base64.
    pub data: String,
    /// SHA-256 of the whole file (last chunk only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<&'a str>,
}

/// `ussd`: the answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UssdAnswer<'a, S: Serialize, B: Serialize> {
    /// The modem.
    pub slot: u16,
    /// The last answer's status.
    pub status: S,
    /// The last answer's text.
    pub text: &'a str,
    /// The last answer's DCS.
    pub dcs: Option<u32>,
    /// The balance read from it, if it held one.
    pub balance: Option<B>,
    /// Every request and its answer.
    pub steps: Vec<UssdStep<'a, S>>,
}

/// One request and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UssdStep<'a, S: Serialize> {
    /// What was sent.
    pub sent: &'a str,
    /// The answer's status.
    pub status: S,
    /// The answer's text.
    pub text: &'a str,
}

/// A refusal kept with the job (answered again for a repeated request_id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refused<'a> {
    /// The modem.
    pub slot: u16,
    /// The refusal.
    pub error: ErrorBody<'a>,
}

/// A reply's `error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorBody<'a> {
    /// Machine-readable (common.json error codes).
    pub code: &'a str,
    /// Plain words.
    pub message: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::jobs::to_value;
    use serde_json::json;

    #[test]
    fn results_are_the_documented_ones() {
        let a = Accepted {
            job_id: 3,
            state: JobState::Queued,
            duplicate: false,
        };
        assert_eq!(to_value(&a), json!({"job_id": 3, "state": "queued"}));
        let a = Accepted {
            duplicate: true,
            ..a
        };
        assert_eq!(
            to_value(&a),
            json!({"job_id": 3, "state": "queued", "duplicate": true})
        );
        let c = CallProgress {
            call_id: "c",
            slot: None,
            state: "hanging-up",
        };
        assert_eq!(to_value(&c), json!({"call_id": "c", "state": "hanging-up"}));
        let chunk = RecordingChunk {
            call_id: "c",
            n: 0,
            chunks: 1,
            last: true,
            size: 3,
            data: "YWJj".into(),
            sha256: Some("ff"),
        };
        assert_eq!(
            to_value(&chunk),
            json!({"call_id": "c", "n": 0, "chunks": 1, "last": true, "size": 3,
                   "data": "YWJj", "sha256": "ff"})
        );
    }
}
