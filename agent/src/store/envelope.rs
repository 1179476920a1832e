//! The event envelope `{"id","seq","ts","gateway","type",…body}`.
//!
//! Everything but `seq` is encoded by the caller's task, so the single writer only splices
//! the number in: JSON work runs in parallel and the writer stays on SQLite.

use serde_json::Value;

use super::error::StoreError;
use super::types::{EventClass, NewEvent};

/// Keys the envelope owns; a body cannot override them.
pub const ENVELOPE_KEYS: [&str; 5] = ["id", "seq", "ts", "gateway", "type"];

/// An event encoded up to its seq.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// UUID v7.
    pub id: String,
    /// Event type.
    pub event_type: String,
    /// Drop class.
    pub class: EventClass,
    /// `{"id":"…"`.
    head: Vec<u8>,
    /// `,"ts":…,"gateway":…,"type":…,<body>}`.
    tail: Vec<u8>,
    /// Creation time (unix ms).
    pub created_ms: i64,
}

impl Prepared {
    /// Encodes `ev` for gateway `gateway_json` (the id already as a JSON string).
    pub fn new(ev: NewEvent, gateway_json: &str) -> Result<Self, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        let ts = crate::clock::now_rfc3339();
        let enc = |v: &str| serde_json::to_string(v).map_err(|e| StoreError::Encode(e.to_string()));

        let mut head = Vec::with_capacity(48);
        head.extend_from_slice(b"{\"id\":");
        head.extend_from_slice(enc(&id)?.as_bytes());

        let mut tail = Vec::with_capacity(96 + ev.body.len() * 24);
        tail.extend_from_slice(b",\"ts\":");
        tail.extend_from_slice(enc(&ts)?.as_bytes());
        tail.extend_from_slice(b",\"gateway\":");
        tail.extend_from_slice(gateway_json.as_bytes());
        tail.extend_from_slice(b",\"type\":");
        tail.extend_from_slice(enc(&ev.event_type)?.as_bytes());
        for (k, v) in &ev.body {
            if ENVELOPE_KEYS.contains(&k.as_str()) {
                continue;
            }
            tail.push(b',');
            tail.extend_from_slice(enc(k)?.as_bytes());
            tail.push(b':');
            serde_json::to_writer(&mut tail, v).map_err(|e| StoreError::Encode(e.to_string()))?;
        }
        tail.push(b'}');

        Ok(Self {
            id,
            event_type: ev.event_type,
            class: ev.class,
            head,
            tail,
            created_ms: unix_ms(),
        })
    }

    /// Whether this is an `alarm`, which may use the reserve beyond the bound.
    pub fn is_alarm(&self) -> bool {
        self.event_type == "alarm"
    }

    /// The complete envelope with `seq`.
    pub fn payload(&self, seq: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + self.tail.len() + 28);
        out.extend_from_slice(&self.head);
        out.extend_from_slice(b",\"seq\":");
        out.extend_from_slice(seq.to_string().as_bytes());
        out.extend_from_slice(&self.tail);
        out
    }
}

/// Now in unix milliseconds.
pub(crate) fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The gateway id encoded as a JSON string.
pub(crate) fn gateway_json(gateway_id: &str) -> Result<String, StoreError> {
    serde_json::to_string(&Value::from(gateway_id)).map_err(|e| StoreError::Encode(e.to_string()))
}
