//! SMS storage operations (PDU mode): selecting a storage, listing, reading, deleting, sending.

use std::time::Duration;

use super::{Modem, ModemError, at_err};
use crate::at::fields::{after_prefix, parse_fields, unquote};
use crate::at::{AtError, Command};

/// A message as a modem's storage holds it (PDU mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Index in the storage.
    pub index: u32,
    /// 27.005 `<stat>`: 0 unread, 1 read, 2 stored unsent, 3 stored sent.
    pub stat: u8,
    /// The PDU in hex, SMSC field included.
    pub pdu: String,
}

fn looks_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Pairs `+CMGL:`/`+CMGR:` headers with the PDU line that follows each.
fn parse_listing(lines: &[String], prefix: &str, index: Option<u32>) -> Vec<StoredMessage> {
    let mut out = Vec::new();
    let mut it = lines.iter().peekable();
    while let Some(line) = it.next() {
        let Some(rest) = after_prefix(line, prefix) else {
            continue;
        };
        let f = parse_fields(rest);
        // +CMGL: <index>,<stat>,[<alpha>],<length>   +CMGR: <stat>,[<alpha>],<length>
        let (idx, stat) = match index {
            None => (
                f.first().and_then(|v| v.parse::<u32>().ok()),
                f.get(1).and_then(|v| v.parse::<u8>().ok()),
            ),
            Some(i) => (Some(i), f.first().and_then(|v| v.parse::<u8>().ok())),
        };
        let pdu = match it.peek() {
            Some(next) if looks_hex(next.trim()) => it.next().map(|s| s.trim().to_string()),
            _ => None,
        };
        if let (Some(index), Some(stat), Some(pdu)) = (idx, stat, pdu) {
            out.push(StoredMessage { index, stat, pdu });
        }
    }
    out
}

impl Modem {
    /// Selects the storage that AT+CMGR/CMGL/CMGD work on (`SM`, `ME`, `SR` ...).
    pub async fn select_read_storage(&self, storage: &str) -> Result<(), ModemError> {
        self.run(&format!("AT+CPMS=\"{storage}\""))
            .await
            .map(|_| ())
    }

    /// The storages the modem offers for reading (first list of AT+CPMS=?).
    pub async fn read_storages(&self) -> Result<Vec<String>, ModemError> {
        let r = self.run("AT+CPMS=?").await?;
        let line = r.field_line("+CPMS:").unwrap_or("");
        // +CPMS: ("SM","ME","SR"),("SM","ME"),("SM","ME")
        let first = line
            .split(')')
            .next()
            .unwrap_or("")
            .trim_start_matches(['(', ' ']);
        Ok(parse_fields(first)
            .iter()
            .map(|s| unquote(s))
            .filter(|s| !s.is_empty())
            .collect())
    }

    /// All messages in the selected storage (AT+CMGL=4, PDU mode).
    pub async fn list_messages(&self) -> Result<Vec<StoredMessage>, ModemError> {
        let cmd = "AT+CMGL=4";
        let r = self
            .at
            .send(Command::new(cmd).timeout(Duration::from_secs(60)))
            .await
            .map_err(at_err(cmd))?;
        Ok(parse_listing(&r.lines, "+CMGL:", None))
    }

    /// One message of the selected storage; None for an empty index.
    pub async fn read_message(&self, index: u32) -> Result<Option<StoredMessage>, ModemError> {
        let cmd = format!("AT+CMGR={index}");
        match self.at.cmd(&cmd).await {
            Ok(r) => Ok(parse_listing(&r.lines, "+CMGR:", Some(index)).pop()),
            // 321: invalid memory index (empty);
            Err(AtError::Cms(c)) if c.code == Some(321) => Ok(None),
            Err(e) => Err(at_err(&cmd)(e)),
        }
    }

    /// Deletes one message of the selected storage.
    pub async fn delete_message(&self, index: u32) -> Result<(), ModemError> {
        self.run(&format!("AT+CMGD={index}")).await.map(|_| ())
    }

    /// Sends one SMS-SUBMIT part; returns the message reference the network gave it.
    pub async fn send_pdu(&self, pdu: &str, tpdu_len: usize) -> Result<u8, ModemError> {
        let cmd = format!("AT+CMGS={tpdu_len}");
        let r = self
            .at
            .send(
                Command::new(cmd.as_str())
                    .body(pdu)
                    .timeout(Duration::from_secs(60)),
            )
            .await
            .map_err(at_err(&cmd))?;
        let mr = r.field_line("+CMGS:").unwrap_or("");
        parse_fields(mr)
            .first()
            .and_then(|v| v.parse::<u8>().ok())
            .ok_or_else(|| ModemError::Unexpected {
                command: cmd.clone(),
                answer: mr.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_pairs_headers_with_pdus() {
        let lines: Vec<String> = [
            "+CMGL: 0,1,,24",
            "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07",
            "+CMGL: 3,0,,5",
            "not hex",
            "+CMGL: 4,0,,5",
            "0011",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let m = parse_listing(&lines, "+CMGL:", None);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].index, m[0].stat), (0, 1));
        assert_eq!((m[1].index, m[1].pdu.as_str()), (4, "0011"));
        let r = parse_listing(
            &["+CMGR: 0,,24".to_string(), "00AB".to_string()],
            "+CMGR:",
            Some(7),
        );
        assert_eq!(r[0].index, 7);
    }
}
