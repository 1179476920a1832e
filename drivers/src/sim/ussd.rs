//! USSD: AT+CUSD requests, replies after a delay from a table, network-initiated +CUSD.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::device::{AtError, CmdResult, Device, Event, Resp, later};
use super::parse::Form;

/// USSD service state and records.
#[derive(Debug, Clone)]
pub(crate) struct UssdState {
    /// Code → reply; `None` = no automatic reply (answer with the `ussd` op).
    pub table: BTreeMap<String, Option<String>>,
    /// Reply to codes not in the table; `None` = no automatic reply.
    pub default_reply: Option<String>,
    pub delay_ms: u64,
    /// A request is waiting for its reply (or a menu is open).
    pub session: bool,
    pub requests: Vec<Value>,
}

impl Default for UssdState {
    fn default() -> Self {
        UssdState {
            table: BTreeMap::new(),
            default_reply: Some("Balance: 42.00 UAH".into()),
            delay_ms: 1000,
            session: false,
            requests: Vec::new(),
        }
    }
}

impl UssdState {
    pub(crate) fn on_boot(&mut self) {
        self.session = false;
    }
}

/// Hex of the UTF-16BE units of `text` (what CSCS="UCS2" shows).
pub(crate) fn ucs2_hex(text: &str) -> String {
    text.encode_utf16().map(|u| format!("{u:04X}")).collect()
}

/// Text of UCS2 hex, if it is valid.
pub(crate) fn from_ucs2_hex(hex: &str) -> Option<String> {
    if hex.len() % 4 != 0 || hex.is_empty() {
        return None;
    }
    let units: Option<Vec<u16>> = (0..hex.len() / 4)
        .map(|i| {
            hex.get(i * 4..i * 4 + 4)
                .and_then(|h| u16::from_str_radix(h, 16).ok())
        })
        .collect();
    String::from_utf16(&units?).ok()
}

impl Device {
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
                    self.ussd.session = false;
                    self.cancel(|e| matches!(e, Event::UssdReply { .. }));
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
                if self.scheduled(|e| matches!(e, Event::UssdReply { .. })) {
                    return Err(AtError::Cme(3));
                }
                let code = if self.set.cscs == "UCS2" {
                    from_ucs2_hex(raw).unwrap_or_else(|| raw.to_string())
                } else {
                    raw.to_string()
                };
                self.ussd.requests.push(json!({
                    "code": code,
                    "dcs": dcs,
                    "unix": super::clock::unix_now(),
                }));
                self.ussd.session = true;
                let reply = match self.ussd.table.get(&code) {
                    Some(r) => r.clone(),
                    None => self.ussd.default_reply.clone(),
                };
                if let Some(text) = reply {
                    let at = later(now, self.ussd.delay_ms);
                    self.schedule(at, Event::UssdReply { text, more: false });
                }
                Ok(Resp::ok())
            }
        }
    }

    /// Write a +CUSD result (reply to a request or network-initiated).
    pub(crate) fn ussd_reply(&mut self, text: &str, more: bool) {
        self.ussd.session = more;
        if self.set.cusd_n != 1 {
            return;
        }
        // Networks send non-GSM text as UCS2 (dcs 72); modems then print it as hex whatever CSCS is.
        let (body, dcs) = if !text.is_ascii() {
            (ucs2_hex(text), 72)
        } else if self.set.cscs == "UCS2" {
            (ucs2_hex(text), 15)
        } else {
            (text.replace('"', "'"), 15)
        };
        self.urc(format!("+CUSD: {},\"{body}\",{dcs}", u8::from(more)));
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
}
