//! What the agent knows about each modem slot, as published on `…/modem/{slot}/state`.

use gsmgw_drivers::modem::{Dialect, Identity, Registration, SimState};
use serde::{Serialize, Serializer};

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

/// A slot's current picture, retained on the broker (`modem-state.json`; serialised through
/// [`StateWire`], field by field, so the payload stays what the schema names).
#[derive(Debug, Clone, PartialEq)]
pub struct ModemSnapshot {
    /// Configured 1-based slot.
    pub slot: u16,
    /// Channel state.
    pub state: ChannelState,
    /// Configured AT port.
    pub port: String,
    /// Dialect in use (detected or forced); None until the modem was identified (published as
    /// an empty string, and with `pcm_voice`: false for SIM800-class and data modules, which
    /// have no PCM voice port to bridge calls through).
    pub dialect: Option<Dialect>,
    /// Who the modem and its SIM are (strings empty until read).
    pub identity: Identity,
    /// SIM state; None until AT+CPIN? answered (published as `unknown`).
    pub sim: Option<SimState>,
    /// Registration (home, roaming, searching ...; `unknown` until read).
    pub registration: Registration,
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

/// The `modem/{slot}/state` payload: every field named here, none added by the drivers'
/// types (the schema has `additionalProperties: false`).
#[derive(Serialize)]
struct StateWire<'a> {
    slot: u16,
    state: ChannelState,
    port: &'a str,
    dialect: &'a str,
    /// Whether the dialect has a PCM voice port (null until identified).
    pcm_voice: Option<bool>,
    manufacturer: &'a str,
    model: &'a str,
    firmware: &'a str,
    imei: &'a str,
    imsi: &'a str,
    iccid: &'a str,
    sim: &'a str,
    registration: Registration,
    operator: &'a str,
    operator_numeric: &'a str,
    signal_dbm: Option<i32>,
    error: Option<&'a str>,
    balance: Option<&'a BalanceState>,
    ts: &'a str,
}

impl Serialize for ModemSnapshot {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // No `..`: a new Identity field does not reach the payload unseen.
        let Identity {
            manufacturer,
            model,
            firmware,
            imei,
            imsi,
            iccid,
        } = &self.identity;
        StateWire {
            slot: self.slot,
            state: self.state,
            port: &self.port,
            dialect: self.dialect.map_or("", Dialect::as_str),
            pcm_voice: self.dialect.map(|d| d.spec().voice.pcm_port),
            manufacturer,
            model,
            firmware,
            imei,
            imsi,
            iccid,
            sim: self.sim_name(),
            registration: self.registration,
            operator: &self.operator,
            operator_numeric: &self.operator_numeric,
            signal_dbm: self.signal_dbm,
            error: self.error.as_deref(),
            balance: self.balance.as_ref(),
            ts: &self.ts,
        }
        .serialize(s)
    }
}

impl ModemSnapshot {
    /// A slot nobody has seen yet.
    pub fn new(slot: u16, port: &str) -> Self {
        Self {
            slot,
            state: ChannelState::Absent,
            port: port.to_string(),
            dialect: None,
            identity: Identity::default(),
            sim: None,
            registration: Registration::Unknown,
            operator: String::new(),
            operator_numeric: String::new(),
            signal_dbm: None,
            error: None,
            balance: None,
            ts: crate::clock::now_rfc3339(),
        }
    }

    /// The SIM state's wire name (`unknown` until read).
    pub fn sim_name(&self) -> &str {
        self.sim.as_ref().map_or("unknown", SimState::as_str)
    }

    /// Equal apart from the timestamp (avoids republishing an unchanged picture).
    pub fn same_as(&self, other: &ModemSnapshot) -> bool {
        let mut a = self.clone();
        a.ts.clone_from(&other.ts);
        a == *other
    }

    /// The slots as an aligned table with a header (the console's `modems`, the demo): each
    /// column as wide as its longest value, so long model names do not shift the rest.
    pub fn table(snaps: &[ModemSnapshot]) -> String {
        let rows: Vec<[String; 10]> = snaps
            .iter()
            .map(|s| {
                [
                    s.slot.to_string(),
                    s.state.as_str().to_string(),
                    s.dialect.map_or("-", Dialect::as_str).to_string(),
                    dash(format!("{} {}", s.identity.manufacturer, s.identity.model).trim()),
                    dash(&s.identity.imei),
                    dash(&s.identity.imsi),
                    s.sim_name().to_string(),
                    s.registration.as_str().to_string(),
                    dash(&s.operator),
                    s.signal_dbm
                        .map(|d| format!("{d} dBm"))
                        .unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        let header = [
            "SLOT", "STATE", "DIALECT", "MODEM", "IMEI", "IMSI", "SIM", "NETWORK", "OPERATOR",
            "SIGNAL",
        ];
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for r in &rows {
            for (w, v) in widths.iter_mut().zip(r) {
                *w = (*w).max(v.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let mut l = String::new();
            for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
                if i + 1 == cells.len() {
                    l.push_str(c);
                } else {
                    l.push_str(c);
                    l.push_str(&" ".repeat(w - c.chars().count() + 2));
                }
            }
            l.trim_end().to_string() + "\n"
        };
        let mut out = line(header.to_vec());
        for r in &rows {
            out.push_str(&line(r.iter().map(String::as_str).collect()));
        }
        out
    }

    /// The slot's picture as aligned `name  value` lines (the console's `modem N`).
    pub fn details(&self) -> String {
        let balance = self.balance.as_ref().map_or_else(
            || "-".to_string(),
            |b| {
                let amount = b.amount.map_or("?".to_string(), |a| format!("{a:.2}"));
                let currency = b.currency.as_deref().unwrap_or("");
                format!(
                    "{amount} {currency} (checked {}: {:?})",
                    b.checked_at, b.text
                )
                .replace("  ", " ")
            },
        );
        let voice = match self.dialect {
            None => "-",
            Some(d) if d.spec().voice.pcm_port => "PCM port",
            Some(_) => "no PCM port (calls cannot be bridged to SIP)",
        };
        let rows: [(&str, String); 18] = [
            ("slot", self.slot.to_string()),
            ("state", self.state.as_str().to_string()),
            ("error", self.error.clone().unwrap_or_else(|| "-".into())),
            ("port", self.port.clone()),
            (
                "dialect",
                self.dialect.map_or("-", Dialect::as_str).to_string(),
            ),
            ("voice", voice.to_string()),
            ("manufacturer", dash(&self.identity.manufacturer)),
            ("model", dash(&self.identity.model)),
            ("firmware", dash(&self.identity.firmware)),
            ("imei", dash(&self.identity.imei)),
            ("imsi", dash(&self.identity.imsi)),
            ("iccid", dash(&self.identity.iccid)),
            ("sim", self.sim_name().to_string()),
            ("registration", self.registration.as_str().to_string()),
            (
                "operator",
                dash(format!("{} {}", self.operator, self.operator_numeric).trim()),
            ),
            (
                "signal",
                self.signal_dbm
                    .map(|d| format!("{d} dBm"))
                    .unwrap_or_else(|| "-".into()),
            ),
            ("balance", balance),
            ("updated", self.ts.clone()),
        ];
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:<width$}  {}\n", gsmgw_drivers::redact::printable(v)))
            .collect()
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
            format!("{} {}", self.identity.manufacturer, self.identity.model).trim(),
            self.identity.imei,
            self.identity.imsi,
            self.sim_name(),
            self.registration.as_str(),
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

/// `-` for an empty value (a table cell must not vanish).
fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_modem_table_stays_aligned_with_long_model_names() {
        let mut a = ModemSnapshot::new(1, "/dev/ttyUSB2");
        a.identity.manufacturer = "SIMCOM INCORPORATED".into();
        a.identity.model = "SIMCOM_SIM7600E-H-with-a-long-name".into();
        a.identity.imei = "861698041234567".into();
        a.state = ChannelState::Ready;
        let mut b = ModemSnapshot::new(2, "/dev/ttyUSB6");
        b.identity.model = "EC25".into();
        b.identity.imei = "352099001761481".into();
        let t = ModemSnapshot::table(&[a, b]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("SLOT  STATE"), "{t}");
        let col =
            |l: &str, needle: &str| l.find(needle).unwrap_or_else(|| panic!("{needle} in {l}"));
        assert_eq!(
            col(lines[0], "IMEI"),
            col(lines[1], "861698041234567"),
            "{t}"
        );
        assert_eq!(
            col(lines[0], "IMEI"),
            col(lines[2], "352099001761481"),
            "{t}"
        );
        assert!(
            lines[1].split_whitespace().take(2).eq(["1", "ready"]),
            "{t}"
        );
        assert!(!t.contains("Some(") && !t.contains("None"), "{t}");
    }

    #[test]
    fn modem_details_read_for_people() {
        let mut s = ModemSnapshot::new(3, "/dev/ttyUSB9");
        s.error = Some("port /dev/ttyUSB9 does not exist; waiting for it".into());
        s.balance = Some(BalanceState {
            amount: Some(45.67),
            currency: Some("UAH".into()),
            checked_at: "2026-12-02T10:00:00.000Z".into(),
            text: "Na rahunku 45.67 grn".into(),
        });
        let d = s.details();
        assert!(d.contains("slot          3\n"), "{d}");
        assert!(d.contains("state         absent\n"), "{d}");
        assert!(
            d.contains("error         port /dev/ttyUSB9 does not exist; waiting for it\n"),
            "{d}"
        );
        assert!(d.contains("balance       45.67 UAH (checked 2026-12-02T10:00:00.000Z: \"Na rahunku 45.67 grn\")"), "{d}");
        assert!(d.contains("imei          -\n"), "{d}");
        assert!(!d.contains("Some(") && !d.contains("null"), "{d}");
    }

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
    fn the_state_payload_is_the_documented_one() {
        let mut s = ModemSnapshot::new(2, "/dev/ttyUSB2");
        s.ts = "2026-12-02T05:00:00Z".into();
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"slot":2,"state":"absent","port":"/dev/ttyUSB2","dialect":"","pcm_voice":null,"manufacturer":"","model":"","firmware":"","imei":"","imsi":"","iccid":"","sim":"unknown","registration":"unknown","operator":"","operator_numeric":"","signal_dbm":null,"error":null,"balance":null,"ts":"2026-12-02T05:00:00Z"}"#
        );
        s.state = ChannelState::Degraded;
        s.dialect = Some(Dialect::Simcom);
        s.identity = Identity {
            manufacturer: "SIMCOM".into(),
            model: "SIM7600".into(),
            firmware: "LE20B04".into(),
            imei: "860000000000001".into(),
            imsi: "255010000000001".into(),
            iccid: "8938000000000000001F".into(),
        };
        s.sim = Some(SimState::Other("ph-net pin".into()));
        s.registration = Registration::NotRegistered;
        s.operator = "Op".into();
        s.operator_numeric = "25501".into();
        s.signal_dbm = Some(-71);
        s.error = Some("sim ph-net pin, registration not-registered".into());
        s.balance = Some(BalanceState {
            amount: Some(-1.5),
            currency: Some("UAH".into()),
            checked_at: "2026-12-02T04:00:00Z".into(),
            text: "Balance -1.50 UAH".into(),
        });
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"slot":2,"state":"degraded","port":"/dev/ttyUSB2","dialect":"simcom","pcm_voice":true,"manufacturer":"SIMCOM","model":"SIM7600","firmware":"LE20B04","imei":"860000000000001","imsi":"255010000000001","iccid":"8938000000000000001F","sim":"ph-net pin","registration":"not-registered","operator":"Op","operator_numeric":"25501","signal_dbm":-71,"error":"sim ph-net pin, registration not-registered","balance":{"amount":-1.5,"currency":"UAH","checked_at":"2026-12-02T04:00:00Z","text":"Balance -1.50 UAH"},"ts":"2026-12-02T05:00:00Z"}"#
        );
        s.sim = Some(SimState::PinRequired);
        assert_eq!(serde_json::to_value(&s).unwrap()["sim"], "pin-required");
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
        assert!(
            s.details()
                .contains("voice         no PCM port (calls cannot be bridged to SIP)\n"),
            "{}",
            s.details()
        );
    }
}
