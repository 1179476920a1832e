//! What the agent knows about each modem slot, as published on `…/modem/{slot}/state`.

use gsmgw_drivers::modem::Dialect;
use serde::Serialize;

/// `dialect` by its name (empty until identified) and, beside it, `pcm_voice`: whether that
/// dialect has a PCM voice port calls can be bridged through (null until identified).
fn dialect_and_voice<S: serde::Serializer>(d: &Option<Dialect>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(2))?;
    m.serialize_entry("dialect", d.map_or("", Dialect::as_str))?;
    m.serialize_entry("pcm_voice", &d.map(|d| d.spec().voice.pcm_port))?;
    m.end()
}

/// The life cycle of a modem slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelState {
    /// The port is not there (unplugged, renumbering, powered off).
    Absent,
    /// Port open; syncing, identifying, unlocking the SIM.
    Initializing,
    /// SIM ready and registered: can send and receive.
    Ready,
    /// Answers, but something is wrong (SIM, registration, repeated timeouts).
    Degraded,
    /// A reset is in progress.
    Resetting,
}

impl ChannelState {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelState::Absent => "absent",
            ChannelState::Initializing => "initializing",
            ChannelState::Ready => "ready",
            ChannelState::Degraded => "degraded",
            ChannelState::Resetting => "resetting",
        }
    }
}

/// The last balance check of a slot's SIM.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BalanceState {
    /// The main balance (negative when the SIM owes); null when the answer could not be read.
    pub amount: Option<f64>,
    /// ISO 4217 code, when the answer or the operator names it.
    pub currency: Option<String>,
    /// When the answer came (RFC 3339).
    pub checked_at: String,
    /// The operator's answer as it came.
    pub text: String,
}

/// A slot's current picture, retained on the broker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModemSnapshot {
    /// Configured 1-based slot.
    pub slot: u16,
    /// Channel state.
    pub state: ChannelState,
    /// Configured AT port.
    pub port: String,
    /// Dialect in use (detected or forced); None until the modem was identified (published as
    /// an empty string), published with `pcm_voice` (false for SIM800-class and data modules:
    /// no PCM voice port, calls cannot be bridged to SIP).
    #[serde(flatten, serialize_with = "dialect_and_voice")]
    pub dialect: Option<Dialect>,
    /// AT+CGMI.
    pub manufacturer: String,
    /// AT+CGMM.
    pub model: String,
    /// AT+CGMR.
    pub firmware: String,
    /// IMEI.
    pub imei: String,
    /// IMSI (empty until the SIM is readable).
    pub imsi: String,
    /// ICCID.
    pub iccid: String,
    /// SIM state (ready, pin-required, busy, absent ...).
    pub sim: String,
    /// Registration (home, roaming, searching ...).
    pub registration: String,
    /// Operator long name.
    pub operator: String,
    /// Operator MCC+MNC.
    pub operator_numeric: String,
    /// Signal in dBm, when known.
    pub signal_dbm: Option<i32>,
    /// The last problem seen, for technicians.
    pub error: Option<String>,
    /// The last balance check (`balance_ussd`); None until one answered.
    pub balance: Option<BalanceState>,
    /// When this picture was taken (RFC 3339).
    pub ts: String,
}

impl ModemSnapshot {
    /// A slot nobody has seen yet.
    pub fn new(slot: u16, port: &str) -> Self {
        Self {
            slot,
            state: ChannelState::Absent,
            port: port.to_string(),
            dialect: None,
            manufacturer: String::new(),
            model: String::new(),
            firmware: String::new(),
            imei: String::new(),
            imsi: String::new(),
            iccid: String::new(),
            sim: "unknown".into(),
            registration: "unknown".into(),
            operator: String::new(),
            operator_numeric: String::new(),
            signal_dbm: None,
            error: None,
            balance: None,
            ts: crate::clock::now_rfc3339(),
        }
    }

    /// Equal apart from the timestamp (avoids republishing an unchanged picture).
    pub fn same_as(&self, other: &ModemSnapshot) -> bool {
        let mut a = self.clone();
        a.ts.clone_from(&other.ts);
        a == *other
    }

    /// One human line for consoles and logs.
    pub fn summary(&self) -> String {
        let signal = self
            .signal_dbm
            .map(|d| format!("{d} dBm"))
            .unwrap_or_else(|| "-".into());
        format!(
            "slot {:<2} {:<12} {:<8} {:<22} IMEI {:<15} IMSI {:<15} SIM {:<12} {:<10} {:<14} {}",
            self.slot,
            self.state.as_str(),
            self.dialect.map_or("", Dialect::as_str),
            format!("{} {}", self.manufacturer, self.model).trim(),
            self.imei,
            self.imsi,
            self.sim,
            self.registration,
            self.operator,
            signal
        )
    }
}

/// Something that happened to a modem slot, published as a `modem` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModemEvent {
    /// The slot.
    pub slot: u16,
    /// What happened: `state` (a state change), `soft-reset`, `power-cycle`, `port-found`,
    /// `wrong-modem`, `recovered`.
    pub kind: String,
    /// State before (for `state`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<ChannelState>,
    /// State now.
    pub state: ChannelState,
    /// Why, in plain words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The port in use.
    pub port: String,
    /// The modem's IMEI, when known.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub imei: String,
    /// For `recovered`: milliseconds from the first sign of trouble to ready again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialect_is_published_by_its_name_and_empty_before_identification() {
        let mut s = ModemSnapshot::new(1, "/dev/ttyUSB2");
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["dialect"], "");
        s.dialect = Some(Dialect::Quectel);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["dialect"], "quectel");
        assert!(s.summary().contains(" quectel  "), "{}", s.summary());
    }

    #[test]
    fn pcm_voice_says_whether_calls_can_be_bridged() {
        let mut s = ModemSnapshot::new(1, "/dev/ttyUSB2");
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["pcm_voice"], serde_json::Value::Null);
        s.dialect = Some(Dialect::Quectel);
        assert_eq!(serde_json::to_value(&s).unwrap()["pcm_voice"], true);
        s.dialect = Some(Dialect::Simcom2g);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            (&v["dialect"], &v["pcm_voice"]),
            (&"simcom2g".into(), &false.into())
        );
        // In its place, right after the dialect.
        let text = serde_json::to_string(&s).unwrap();
        assert!(
            text.contains("\"dialect\":\"simcom2g\",\"pcm_voice\":false,\"manufacturer\""),
            "{text}"
        );
    }
}
