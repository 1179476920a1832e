//! USSD: AT+CUSD requests, answers after a delay from a table (menus as paths), refusals,
//! network-initiated +CUSD — written the way each dialect's firmware writes them.
//!
//! - Generic, Quectel, SIMCom: the request is text in the TE character set (hex of UCS-2 under
//!   `AT+CSCS="UCS2"`); answers likewise, DCS 15.
//! - Huawei (E173/E1550-style firmware): the request must be the packed GSM 7-bit septets in hex
//!   (plain text answers ERROR), and GSM 7-bit answers come back packed in hex.
//! - Text outside the GSM alphabet always comes as UCS-2 hex with DCS 72.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::device::{AtError, CmdResult, Device, Event, Resp, later};
use super::dialect::Dialect;
use super::parse::Form;
use crate::pdu::{from_hex, gsm7, to_hex, ucs2};
use crate::ussd::{pack_gsm7, unpack_gsm7, validate_code};

/// One answer of the simulated network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UssdAnswer {
    pub text: String,
    /// `+CUSD: <m>`: 0 done, 1 menu (the next request answers it), 2 terminated, 4 not
    /// supported, 5 network timeout.
    pub status: u8,
}

impl UssdAnswer {
    pub(crate) fn done(text: impl Into<String>) -> Self {
        UssdAnswer {
            text: text.into(),
            status: 0,
        }
    }
}

/// USSD service state and records.
#[derive(Debug, Clone)]
pub(crate) struct UssdState {
    /// Request path → answer; `None` = no automatic answer (answer with the `ussd` op). A menu
    /// reply's path is the menu's path, `>` and the reply (`*100#>1`); a reply whose path is
    /// not in the table is looked up by itself.
    pub table: BTreeMap<String, Option<UssdAnswer>>,
    /// Answer to codes not in the table; `None` = no automatic answer.
    pub default_reply: Option<UssdAnswer>,
    pub delay_ms: u64,
    /// An empty `+CUSD: 0,""` comes before each real answer (a firmware quirk).
    pub empty_first: bool,
    /// The open session's path: a request is waiting for its answer or a menu is open.
    pub session: Option<String>,
    pub requests: Vec<Value>,
}

impl Default for UssdState {
    fn default() -> Self {
        UssdState {
            table: BTreeMap::new(),
            default_reply: Some(UssdAnswer::done("Balance: 42.00 UAH")),
            delay_ms: 1000,
            empty_first: false,
            session: None,
            requests: Vec::new(),
        }
    }
}

impl UssdState {
    pub(crate) fn on_boot(&mut self) {
        self.session = None;
    }
}

/// Text of UCS-2 hex, if it is valid.
pub(crate) fn from_ucs2_hex(hex: &str) -> Option<String> {
    if hex.len() % 4 != 0 {
        return None;
    }
    ucs2::decode(&from_hex(hex).ok()?).ok()
}

/// Hex of the UCS-2 units of `text`.
pub(crate) fn ucs2_hex(text: &str) -> String {
    to_hex(&ucs2::encode(text))
}

/// One table entry: a string (done), null (no automatic answer), or
/// `{"text", "more"?, "status"?}`.
pub(crate) fn parse_entry(code: &str, v: &Value) -> Result<Option<UssdAnswer>, String> {
    match v {
        Value::String(s) => Ok(Some(UssdAnswer::done(s.clone()))),
        Value::Null => Ok(None),
        Value::Object(o) => {
            let text = o
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let more = o.get("more").and_then(Value::as_bool).unwrap_or(false);
            let status = match o.get("status") {
                None => u8::from(more),
                Some(s) => s
                    .as_u64()
                    .filter(|s| *s <= 5)
                    .map(|s| s as u8)
                    .ok_or_else(|| format!("status for {code:?} must be 0-5"))?,
            };
            Ok(Some(UssdAnswer { text, status }))
        }
        _ => Err(format!(
            "answer for {code:?} must be a string, null or {{\"text\",\"more\",\"status\"}}"
        )),
    }
}

impl Device {
    /// The request string as the firmware reads it; None when this firmware refuses it.
    fn ussd_request_text(&self, raw: &str) -> Option<String> {
        if self.dialect == Dialect::Huawei {
            // Packed septets in hex only.
            let octets = from_hex(raw).ok()?;
            let code = unpack_gsm7(&octets);
            return validate_code(&code).is_ok().then_some(code);
        }
        if self.set.cscs == "UCS2" {
            return Some(from_ucs2_hex(raw).unwrap_or_else(|| raw.to_string()));
        }
        Some(raw.to_string())
    }

    pub(crate) fn cmd_cusd(&mut self, form: &Form, now: Instant) -> CmdResult {
        match form {
            Form::Read => Ok(Resp::line(format!("+CUSD: {}", self.set.cusd_n))),
            Form::Test => Ok(Resp::line("+CUSD: (0-2)")),
            Form::Exec => {
                self.set.cusd_n = 0;
                Ok(Resp::ok())
            }
            Form::Set(a) => {
                let n = a.int_in(0, 0, 2)?.unwrap_or(0) as u8;
                if n == 2 {
                    self.ussd.session = None;
                    self.cancel(|e| matches!(e, Event::UssdReply(_)));
                    return Ok(Resp::ok());
                }
                self.set.cusd_n = n;
                let Some(raw) = a.text(1) else {
                    return Ok(Resp::ok());
                };
                let dcs = a.int(2)?.unwrap_or(15);
                self.sim.check(now, false)?;
                if !self.net.registered() {
                    return Err(AtError::Cme(30));
                }
                if self.scheduled(|e| matches!(e, Event::UssdReply(_))) {
                    return Err(AtError::Cme(3));
                }
                let Some(code) = self.ussd_request_text(raw) else {
                    return Err(AtError::Error);
                };
                self.ussd.requests.push(json!({
                    "code": code,
                    "raw": raw,
                    "dcs": dcs,
                    "unix": super::clock::unix_now(),
                }));
                let path = match &self.ussd.session {
                    Some(open) => format!("{open}>{code}"),
                    None => code.clone(),
                };
                let reply = match self.ussd.table.get(&path) {
                    Some(r) => r.clone(),
                    None => match self.ussd.table.get(&code) {
                        Some(r) => r.clone(),
                        None => self.ussd.default_reply.clone(),
                    },
                };
                self.ussd.session = Some(path);
                if let Some(answer) = reply {
                    let at = later(now, self.ussd.delay_ms);
                    if self.ussd.empty_first {
                        self.schedule(
                            later(now, self.ussd.delay_ms / 2),
                            Event::UssdReply(UssdAnswer::done("")),
                        );
                    }
                    self.schedule(at, Event::UssdReply(answer));
                }
                Ok(Resp::ok())
            }
        }
    }

    /// Writes a +CUSD answer (to a request, or network-initiated).
    pub(crate) fn ussd_reply(&mut self, answer: &UssdAnswer) {
        let empty_quirk = answer.status == 0 && answer.text.is_empty();
        if !empty_quirk && answer.status != 1 {
            self.ussd.session = None;
        }
        if self.set.cusd_n != 1 {
            return;
        }
        let text = &answer.text;
        // Networks send non-GSM text as UCS-2 (DCS 72); modems then print it as hex whatever
        // CSCS is.
        let (body, dcs) = if !gsm7::fits_gsm7(text) {
            (ucs2_hex(text), 72)
        } else if self.set.cscs == "UCS2" {
            (ucs2_hex(text), 15)
        } else if self.dialect == Dialect::Huawei && !text.is_empty() {
            (pack_gsm7(text).map(|o| to_hex(&o)).unwrap_or_default(), 15)
        } else {
            (text.replace('"', "'"), 15)
        };
        let line = if answer.status >= 2 && text.is_empty() {
            format!("+CUSD: {}", answer.status)
        } else {
            format!("+CUSD: {},\"{body}\",{dcs}", answer.status)
        };
        self.urc(line);
    }

    /// The `ussd-table` control op.
    pub(crate) fn ussd_table(&mut self, msg: &Value) -> Result<Value, String> {
        let entries: serde_json::Map<String, Value> = match msg.get("table") {
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err("\"table\" must be an object".into()),
            None => msg
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| {
                            !matches!(k.as_str(), "op" | "default" | "delay_ms" | "empty_first")
                        })
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
        };
        let mut parsed = Vec::new();
        for (code, v) in &entries {
            parsed.push((code.clone(), parse_entry(code, v)?));
        }
        let default = match msg.get("default") {
            None => None,
            Some(v) => Some(parse_entry("default", v)?),
        };
        let delay = match msg.get("delay_ms") {
            None => None,
            Some(v) => Some(v.as_u64().ok_or("\"delay_ms\" must be a number")?),
        };
        let empty_first = match msg.get("empty_first") {
            None => None,
            Some(v) => Some(v.as_bool().ok_or("\"empty_first\" must be true or false")?),
        };
        self.ussd.table.extend(parsed);
        if let Some(d) = default {
            self.ussd.default_reply = d;
        }
        if let Some(d) = delay {
            self.ussd.delay_ms = d;
        }
        if let Some(e) = empty_first {
            self.ussd.empty_first = e;
        }
        Ok(json!({"ok": true}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ucs2_round_trip() {
        assert_eq!(ucs2_hex("Hi"), "00480069");
        assert_eq!(
            from_ucs2_hex("002A0031003000300023").as_deref(),
            Some("*100#")
        );
        assert_eq!(from_ucs2_hex("zz"), None);
    }

    #[test]
    fn table_entries() {
        assert_eq!(
            parse_entry("*1#", &json!("x")),
            Ok(Some(UssdAnswer::done("x")))
        );
        assert_eq!(parse_entry("*1#", &json!(null)), Ok(None));
        assert_eq!(
            parse_entry("*1#", &json!({"text": "Menu", "more": true})),
            Ok(Some(UssdAnswer {
                text: "Menu".into(),
                status: 1
            }))
        );
        assert_eq!(
            parse_entry("*1#", &json!({"status": 4})),
            Ok(Some(UssdAnswer {
                text: String::new(),
                status: 4
            }))
        );
        assert!(parse_entry("*1#", &json!({"status": 9})).is_err());
        assert!(parse_entry("*1#", &json!(3)).is_err());
    }
}
