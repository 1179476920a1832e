//! SMS PDU codec (3GPP TS 23.040 / 23.038): SMS-DELIVER, SMS-SUBMIT and SMS-STATUS-REPORT.
//!
//! PDUs are handled as modems print and take them in PDU mode (`AT+CMGF=0`): hex text that
//! starts with the SMSC address field (`00` = none), followed by the TPDU. Every decoder works
//! on untrusted input: a malformed PDU gives a [`PduError`], never a panic.
//!
//! One file per PDU piece, each with its read/write and its tests: [`gsm7`], [`ucs2`],
//! [`address`], [`udh`], [`timestamp`], [`dcs`], [`deliver`], [`submit`], [`status_report`].

pub mod address;
pub mod dcs;
pub mod deliver;
pub mod gsm7;
pub mod status_report;
pub mod submit;
pub mod timestamp;
pub mod ucs2;
pub mod udh;
mod user_data;

#[cfg(test)]
mod tests;

use std::fmt;

pub use address::{Address, AddressKind};
pub use dcs::{Dcs, MessageWaiting};
pub use deliver::{Deliver, DeliverOptions, encode_deliver};
pub use status_report::{StatusClass, StatusReport, encode_status_report};
pub use submit::{
    Submit, SubmitOptions, encode_submit, validity_from_minutes, validity_to_minutes,
};
pub use timestamp::Timestamp;
pub use udh::{Concat, InformationElement, Udh};

/// Everything that can go wrong decoding or encoding a PDU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    /// The hex text is not valid hex (odd length or a non-hex character).
    #[error("invalid hex: {0}")]
    InvalidHex(&'static str),
    /// The PDU ends before the named field is complete.
    #[error("PDU truncated in {0}")]
    Truncated(&'static str),
    /// Bytes are left over after the last field the PDU declares.
    #[error("{0} unexpected byte(s) after the end of the PDU")]
    TrailingData(usize),
    /// The message type indicator is the reserved value 0b11.
    #[error("reserved message type indicator 0b11")]
    ReservedMti,
    /// An address field or an address string is malformed.
    #[error("invalid address: {0}")]
    InvalidAddress(String),
    /// A timestamp has bad BCD digits or an out-of-range field.
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),
    /// The user data header is malformed.
    #[error("invalid user data header: {0}")]
    InvalidUdh(&'static str),
    /// The user data (length or content) is malformed or too long.
    #[error("invalid user data: {0}")]
    InvalidUserData(String),
    /// The text holds a character the chosen alphabet cannot carry.
    #[error("character {0:?} is not in the GSM 7-bit alphabet")]
    NotGsm7(char),
    /// The text needs more than 255 concatenated parts.
    #[error("message needs {0} parts, at most 255 are possible")]
    TooManyParts(usize),
    /// An encoding option is out of range.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// A struct's `dcs` byte disagrees with its `encoding`/`class` fields.
    #[error("DCS {dcs:#04x} does not match encoding {encoding} / class {class:?}")]
    DcsMismatch {
        /// The DCS byte.
        dcs: u8,
        /// The encoding field.
        encoding: Encoding,
        /// The class field.
        class: Option<u8>,
    },
}

/// Alphabet of the user data (from the data coding scheme).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// GSM 03.38 default alphabet, septets packed.
    Gsm7,
    /// UCS-2 / UTF-16BE.
    Ucs2,
    /// 8-bit binary data.
    EightBit,
}

impl Encoding {
    /// Short name: "gsm7", "ucs2" or "8bit".
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm7",
            Encoding::Ucs2 => "ucs2",
            Encoding::EightBit => "8bit",
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoded PDU of one of the three supported types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pdu {
    /// SMS-DELIVER (SC → MS, an incoming message).
    Deliver(Deliver),
    /// SMS-SUBMIT (MS → SC, an outgoing message, e.g. read back from storage).
    Submit(Submit),
    /// SMS-STATUS-REPORT (SC → MS, a delivery report).
    StatusReport(StatusReport),
}

impl Pdu {
    /// The SMSC address from the PDU's leading SMSC field, if any.
    pub fn smsc(&self) -> Option<&Address> {
        match self {
            Pdu::Deliver(d) => d.smsc.as_ref(),
            Pdu::Submit(s) => s.smsc.as_ref(),
            Pdu::StatusReport(r) => r.smsc.as_ref(),
        }
    }
}

/// One encoded PDU, ready for `AT+CMGS=<tpdu_len>` followed by `pdu`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPart {
    /// Uppercase hex including the leading SMSC field.
    pub pdu: String,
    /// Octets after the SMSC field: the length `AT+CMGS=<n>` wants.
    pub tpdu_len: usize,
}

/// Decodes a PDU given as hex text with its leading SMSC field (as `+CMGR`/`+CMGL`/`+CMT`/`+CDS` print it).
pub fn decode(hex: &str) -> Result<Pdu, PduError> {
    decode_bytes(&from_hex(hex)?)
}

/// Decodes a PDU given as raw bytes with its leading SMSC field.
pub fn decode_bytes(bytes: &[u8]) -> Result<Pdu, PduError> {
    let mut r = Reader::new(bytes);
    let smsc = address::read_smsc(&mut r)?;
    let pdu = match r.peek("first octet")? & 0x03 {
        0b00 => Pdu::Deliver(Deliver::read(&mut r, smsc)?),
        0b01 => Pdu::Submit(Submit::read(&mut r, smsc)?),
        0b10 => Pdu::StatusReport(StatusReport::read(&mut r, smsc)?),
        _ => return Err(PduError::ReservedMti),
    };
    r.finish()?;
    Ok(pdu)
}

/// The most parts one message is sent in (`cmd/sms-send`, campaigns, `gsmgw pdu encode`): ten
/// concatenated parts, about 1530 GSM 7-bit or 670 UCS-2 characters.
pub const MAX_PARTS: usize = 10;

/// Splits a text into the parts' texts and picks the alphabet (GSM 7-bit when it fits, else UCS-2).
///
/// A single part holds 160 septets / 70 UTF-16 units; multipart messages hold 153 septets / 67
/// units per part (room for the 6-byte concatenation header). An escaped GSM character and a
/// surrogate pair are never cut in two.
pub fn split_text(text: &str, force_ucs2: bool) -> (Encoding, Vec<String>) {
    if !force_ucs2 {
        if let Some(septets) = gsm7::septet_count(text) {
            if septets <= 160 {
                return (Encoding::Gsm7, vec![text.to_owned()]);
            }
            return (
                Encoding::Gsm7,
                chunk(text, 153, |c| gsm7::char_septets(c).unwrap_or(2)),
            );
        }
    }
    if ucs2::unit_count(text) <= 70 {
        return (Encoding::Ucs2, vec![text.to_owned()]);
    }
    (Encoding::Ucs2, chunk(text, 67, char::len_utf16))
}

/// Cuts `text` into pieces whose summed character weights stay within `limit`.
fn chunk(text: &str, limit: usize, weight: impl Fn(char) -> usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = weight(c);
        if used + w > limit && !current.is_empty() {
            parts.push(std::mem::take(&mut current));
            used = 0;
        }
        current.push(c);
        used += w;
    }
    if !current.is_empty() || parts.is_empty() {
        parts.push(current);
    }
    parts
}

/// Builds an [`EncodedPart`] from the SMSC address and the TPDU bytes.
fn encoded_part(smsc: Option<&Address>, tpdu: &[u8]) -> Result<EncodedPart, PduError> {
    let mut bytes = Vec::with_capacity(tpdu.len() + 12);
    address::write_smsc(smsc, &mut bytes)?;
    bytes.extend_from_slice(tpdu);
    Ok(EncodedPart {
        pdu: to_hex(&bytes),
        tpdu_len: tpdu.len(),
    })
}

/// Parses hex text (either case, surrounding whitespace ignored) into bytes.
pub fn from_hex(hex: &str) -> Result<Vec<u8>, PduError> {
    let hex = hex.trim().as_bytes();
    if hex.len() % 2 != 0 {
        return Err(PduError::InvalidHex("odd number of digits"));
    }
    hex.chunks_exact(2)
        .map(|pair| match *pair {
            [hi, lo] => Ok((nibble(hi)? << 4) | nibble(lo)?),
            _ => Err(PduError::InvalidHex("odd number of digits")),
        })
        .collect()
}

/// Value of one hex digit.
fn nibble(c: u8) -> Result<u8, PduError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(PduError::InvalidHex("non-hex character")),
    }
}

/// Formats bytes as uppercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0F)]));
    }
    s
}

/// A bounds-checked cursor over PDU bytes: every read past the end is a [`PduError::Truncated`].
pub(crate) struct Reader<'a> {
    /// The whole PDU.
    buf: &'a [u8],
    /// Offset of the next unread byte.
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// The next byte without consuming it.
    pub(crate) fn peek(&self, what: &'static str) -> Result<u8, PduError> {
        self.buf
            .get(self.pos)
            .copied()
            .ok_or(PduError::Truncated(what))
    }

    /// Reads one byte.
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, PduError> {
        let b = self.peek(what)?;
        self.pos += 1;
        Ok(b)
    }

    /// Reads `n` bytes.
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], PduError> {
        let end = self.pos.checked_add(n).ok_or(PduError::Truncated(what))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(PduError::Truncated(what))?;
        self.pos = end;
        Ok(s)
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Fails when bytes are left over.
    pub(crate) fn finish(&self) -> Result<(), PduError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(PduError::TrailingData(n)),
        }
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        assert_eq!(from_hex(" 00aBfF\n"), Ok(vec![0x00, 0xAB, 0xFF]));
        assert_eq!(to_hex(&[0x00, 0xAB, 0xFF]), "00ABFF");
        assert!(matches!(from_hex("0"), Err(PduError::InvalidHex(_))));
        assert!(matches!(from_hex("0G"), Err(PduError::InvalidHex(_))));
        assert!(matches!(from_hex("é0"), Err(PduError::InvalidHex(_))));
    }

    #[test]
    fn reserved_mti_is_an_error() {
        assert_eq!(decode("0003"), Err(PduError::ReservedMti));
        assert_eq!(decode("00"), Err(PduError::Truncated("first octet")));
        assert!(matches!(decode(""), Err(PduError::Truncated(_))));
    }

    #[test]
    fn split_gsm7_single_and_multi() {
        let (enc, parts) = split_text(&"a".repeat(160), false);
        assert_eq!((enc, parts.len()), (Encoding::Gsm7, 1));
        let (enc, parts) = split_text(&"a".repeat(161), false);
        assert_eq!(enc, Encoding::Gsm7);
        assert_eq!(parts.iter().map(String::len).collect::<Vec<_>>(), [153, 8]);
        let (_, parts) = split_text("", false);
        assert_eq!(parts, [""]);
    }

    #[test]
    fn split_never_cuts_an_escape_sequence() {
        // 152 plain septets, then '€' (2 septets) would straddle the 153 boundary.
        let text = format!("{}€{}", "a".repeat(152), "b".repeat(10));
        let (enc, parts) = split_text(&text, false);
        assert_eq!(enc, Encoding::Gsm7);
        assert_eq!(parts[0], "a".repeat(152));
        assert!(parts[1].starts_with('€'));
        // 80 extension chars = 160 septets: still one part.
        let (_, parts) = split_text(&"{".repeat(80), false);
        assert_eq!(parts.len(), 1);
        let (_, parts) = split_text(&"{".repeat(81), false);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].chars().count(), 76);
    }

    #[test]
    fn split_ucs2_keeps_surrogate_pairs() {
        let (enc, parts) = split_text(&"я".repeat(70), false);
        assert_eq!((enc, parts.len()), (Encoding::Ucs2, 1));
        let text = format!("{}😀{}", "я".repeat(66), "я".repeat(5));
        let (enc, parts) = split_text(&text, false);
        assert_eq!(enc, Encoding::Ucs2);
        assert_eq!(parts[0], "я".repeat(66));
        assert!(parts[1].starts_with('😀'));
        let (enc, parts) = split_text("abc", true);
        assert_eq!((enc, parts.len()), (Encoding::Ucs2, 1));
    }
}
