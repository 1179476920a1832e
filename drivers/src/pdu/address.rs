//! TP addresses (originator, destination, recipient) and the SMSC address (3GPP TS 23.040 §9.1.2.5).
//!
//! Numbers are semi-octet BCD with an F filler; alphanumeric addresses (TON 5) are packed GSM
//! 7-bit. A TP address's length counts semi-octets, the SMSC field's length counts octets.

use std::fmt;

use super::{PduError, Reader, gsm7};

/// Most digits an address value holds (10 octets).
const MAX_DIGITS: usize = 20;
/// Most septets an alphanumeric address holds (10 octets = 80 bits).
const MAX_ALPHA_SEPTETS: usize = 11;

/// Type of number (TON) of an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKind {
    /// TON 0: unknown (also used for short codes).
    Unknown,
    /// TON 1: international, shown with a leading '+'.
    International,
    /// TON 2: national.
    National,
    /// TON 3: network specific.
    NetworkSpecific,
    /// TON 4: subscriber number.
    Subscriber,
    /// TON 5: alphanumeric text (GSM 7-bit packed).
    Alphanumeric,
    /// TON 6: abbreviated number.
    Abbreviated,
    /// TON 7: reserved.
    Reserved,
}

impl AddressKind {
    /// The 3-bit type-of-number value.
    pub fn ton(self) -> u8 {
        match self {
            AddressKind::Unknown => 0,
            AddressKind::International => 1,
            AddressKind::National => 2,
            AddressKind::NetworkSpecific => 3,
            AddressKind::Subscriber => 4,
            AddressKind::Alphanumeric => 5,
            AddressKind::Abbreviated => 6,
            AddressKind::Reserved => 7,
        }
    }

    /// The kind for a 3-bit type-of-number value (higher bits ignored).
    pub fn from_ton(ton: u8) -> AddressKind {
        match ton & 0x07 {
            0 => AddressKind::Unknown,
            1 => AddressKind::International,
            2 => AddressKind::National,
            3 => AddressKind::NetworkSpecific,
            4 => AddressKind::Subscriber,
            5 => AddressKind::Alphanumeric,
            6 => AddressKind::Abbreviated,
            _ => AddressKind::Reserved,
        }
    }

    /// The type-of-address octet we write: extension bit, TON, and NPI 1 (E.164) or 0 for text.
    fn toa(self) -> u8 {
        let npi = match self {
            AddressKind::Alphanumeric => 0x0,
            _ => 0x1,
        };
        0x80 | (self.ton() << 4) | npi
    }
}

/// An SMS address: a phone number, short code or alphanumeric sender.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// "+380501234567" for international, digits (and '*', '#') otherwise, text for alphanumeric.
    pub number: String,
    /// Type of number.
    pub kind: AddressKind,
}

impl Address {
    /// Parses user input: "+digits" is international, digits/'*'/'#' unknown (short codes too),
    /// anything with a letter alphanumeric (at most 11 GSM 7-bit septets).
    ///
    /// Spaces, dashes, dots and parentheses inside numbers are ignored.
    pub fn parse(s: &str) -> Result<Address, PduError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(PduError::InvalidAddress("empty".into()));
        }
        if s.chars().any(char::is_alphabetic) {
            let septets = gsm7::septet_count(s)
                .ok_or_else(|| PduError::InvalidAddress(format!("{s:?} is not GSM 7-bit text")))?;
            if septets > MAX_ALPHA_SEPTETS {
                return Err(PduError::InvalidAddress(format!(
                    "alphanumeric {s:?} is longer than 11 septets"
                )));
            }
            return Ok(Address {
                number: s.to_owned(),
                kind: AddressKind::Alphanumeric,
            });
        }
        let compact: String = s
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let (kind, digits) = match compact.strip_prefix('+') {
            Some(rest) if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) => {
                (AddressKind::International, rest)
            }
            Some(_) => {
                return Err(PduError::InvalidAddress(format!(
                    "{s:?}: '+' must be followed by digits only"
                )));
            }
            None if !compact.is_empty()
                && compact
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#') =>
            {
                (AddressKind::Unknown, compact.as_str())
            }
            None => {
                return Err(PduError::InvalidAddress(format!("{s:?} is not a number")));
            }
        };
        if digits.len() > MAX_DIGITS {
            return Err(PduError::InvalidAddress(format!(
                "{s:?} has more than {MAX_DIGITS} digits"
            )));
        }
        Ok(Address {
            number: compact.clone(),
            kind,
        })
    }

    /// The address value: semi-octets for numbers, packed septets for text; plus the count the
    /// TP length field wants (semi-octets used).
    fn value(&self) -> Result<(Vec<u8>, usize), PduError> {
        if self.kind == AddressKind::Alphanumeric {
            let septets =
                gsm7::encode(&self.number).map_err(|e| PduError::InvalidAddress(e.to_string()))?;
            if septets.len() > MAX_ALPHA_SEPTETS {
                return Err(PduError::InvalidAddress(format!(
                    "alphanumeric {:?} is longer than 11 septets",
                    self.number
                )));
            }
            let semi_octets = (septets.len() * 7).div_ceil(4);
            return Ok((gsm7::pack(&septets, 0), semi_octets));
        }
        let digits = match self.kind {
            AddressKind::International => self.number.strip_prefix('+').unwrap_or(&self.number),
            _ => self.number.as_str(),
        };
        if digits.len() > MAX_DIGITS {
            return Err(PduError::InvalidAddress(format!(
                "{:?} has more than {MAX_DIGITS} digits",
                self.number
            )));
        }
        let nibbles = digits
            .chars()
            .map(|c| match c {
                '0'..='9' => Ok(c as u8 - b'0'),
                '*' => Ok(0xA),
                '#' => Ok(0xB),
                'a' => Ok(0xC),
                'b' => Ok(0xD),
                'c' => Ok(0xE),
                _ => Err(PduError::InvalidAddress(format!(
                    "{:?}: {c:?} is not a digit",
                    self.number
                ))),
            })
            .collect::<Result<Vec<u8>, _>>()?;
        let bytes = nibbles
            .chunks(2)
            .map(|pair| match *pair {
                [lo, hi] => lo | (hi << 4),
                [lo] => lo | 0xF0,
                _ => 0xFF,
            })
            .collect();
        Ok((bytes, nibbles.len()))
    }

    /// Decodes an address value of `semi_octets` (numbers) / `septets` (text) with its TOA.
    fn from_value(toa: u8, value: &[u8], semi_octets: usize) -> Result<Address, PduError> {
        let kind = AddressKind::from_ton(toa >> 4);
        if kind == AddressKind::Alphanumeric {
            let septets = gsm7::unpack(value, 0, semi_octets * 4 / 7)?;
            return Ok(Address {
                number: gsm7::decode(&septets),
                kind,
            });
        }
        let mut number = String::with_capacity(semi_octets + 1);
        if kind == AddressKind::International {
            number.push('+');
        }
        let nibbles = value.iter().flat_map(|&b| [b & 0x0F, b >> 4]);
        for n in nibbles.take(semi_octets) {
            match n {
                0..=9 => number.push(char::from(b'0' + n)),
                0xA => number.push('*'),
                0xB => number.push('#'),
                0xC => number.push('a'),
                0xD => number.push('b'),
                0xE => number.push('c'),
                _ => {} // an F filler where a digit was announced: skip it
            }
        }
        Ok(Address { number, kind })
    }

    /// Reads a TP address (length in semi-octets, TOA, value).
    pub(crate) fn read_tp(r: &mut Reader<'_>, what: &'static str) -> Result<Address, PduError> {
        let len = usize::from(r.u8(what)?);
        if len > MAX_DIGITS {
            return Err(PduError::InvalidAddress(format!(
                "{what} length {len} exceeds {MAX_DIGITS} semi-octets"
            )));
        }
        let toa = r.u8(what)?;
        let value = r.take(len.div_ceil(2), what)?;
        Address::from_value(toa, value, len)
    }

    /// Writes a TP address (length in semi-octets, TOA, value).
    pub(crate) fn write_tp(&self, out: &mut Vec<u8>) -> Result<(), PduError> {
        let (value, semi_octets) = self.value()?;
        out.push(semi_octets as u8);
        out.push(self.kind.toa());
        out.extend_from_slice(&value);
        Ok(())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.number)
    }
}

/// Reads the leading SMSC field (length in octets incl. TOA; 0 = none).
pub(crate) fn read_smsc(r: &mut Reader<'_>) -> Result<Option<Address>, PduError> {
    let len = usize::from(r.u8("SMSC length")?);
    if len == 0 {
        return Ok(None);
    }
    if len > 1 + MAX_DIGITS / 2 {
        return Err(PduError::InvalidAddress(format!(
            "SMSC length {len} exceeds 11 octets"
        )));
    }
    let toa = r.u8("SMSC address")?;
    let value = r.take(len - 1, "SMSC address")?;
    // Every semi-octet of the value (an alphanumeric SMSC gets every whole septet).
    let addr = Address::from_value(toa, value, value.len() * 2)?;
    let empty = addr.number.is_empty() || addr.number == "+";
    Ok((!empty).then_some(addr))
}

/// Writes the leading SMSC field (`00` for none).
pub(crate) fn write_smsc(smsc: Option<&Address>, out: &mut Vec<u8>) -> Result<(), PduError> {
    match smsc {
        None => out.push(0),
        Some(a) => {
            let (value, _) = a.value()?;
            out.push((value.len() + 1) as u8);
            out.push(a.kind.toa());
            out.extend_from_slice(&value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::{from_hex, to_hex};

    fn tp(a: &Address) -> String {
        let mut out = Vec::new();
        a.write_tp(&mut out).unwrap();
        to_hex(&out)
    }

    fn read_tp(hex: &str) -> Result<Address, PduError> {
        let bytes = from_hex(hex).unwrap();
        let mut r = Reader::new(&bytes);
        let a = Address::read_tp(&mut r, "address")?;
        r.finish()?;
        Ok(a)
    }

    #[test]
    fn parse_kinds() {
        let a = Address::parse("+380501234567").unwrap();
        assert_eq!(a.kind, AddressKind::International);
        assert_eq!(a.number, "+380501234567");
        assert_eq!(
            Address::parse("0501234567").unwrap().kind,
            AddressKind::Unknown
        );
        assert_eq!(Address::parse("7726").unwrap().kind, AddressKind::Unknown);
        assert_eq!(Address::parse("*101#").unwrap().number, "*101#");
        assert_eq!(
            Address::parse("+38 (050) 123-45-67").unwrap().number,
            "+380501234567"
        );
        let a = Address::parse("Kyivstar").unwrap();
        assert_eq!(a.kind, AddressKind::Alphanumeric);
        assert_eq!(a.to_string(), "Kyivstar");
        assert!(Address::parse("").is_err());
        assert!(Address::parse("+").is_err());
        assert!(Address::parse("+12*3").is_err());
        assert!(Address::parse("VeryLongSender").is_err());
        assert!(Address::parse("Київ").is_err());
        assert!(Address::parse("123456789012345678901").is_err());
        assert!(Address::parse("12;3").is_err());
    }

    #[test]
    fn international_bcd_with_filler() {
        let a = Address::parse("+31641600986").unwrap();
        assert_eq!(tp(&a), "0B911346610089F6");
        assert_eq!(read_tp("0B911346610089F6").unwrap(), a);
    }

    #[test]
    fn short_code_and_star_hash() {
        assert_eq!(tp(&Address::parse("7726").unwrap()), "04817762");
        assert_eq!(tp(&Address::parse("*101#").unwrap()), "05811A10FB");
        assert_eq!(read_tp("05811A10FB").unwrap().number, "*101#");
    }

    #[test]
    fn subscriber_and_national_numbers_decode() {
        let a = read_tp("0BC87238880900F1").unwrap();
        assert_eq!(a.kind, AddressKind::Subscriber);
        assert_eq!(a.number, "27838890001");
        let a = read_tp("0AA10570123456").unwrap();
        assert_eq!(a.kind, AddressKind::National);
        assert_eq!(a.number, "5007214365");
    }

    #[test]
    fn alphanumeric_round_trip() {
        // "Google": 6 septets = 42 bits → 11 semi-octets, 6 octets.
        let a = Address::parse("Google").unwrap();
        assert_eq!(tp(&a), "0BD0C7F7FBCC2E03");
        assert_eq!(read_tp("0BD0C7F7FBCC2E03").unwrap(), a);
        // 11 septets is the most that fits: 20 semi-octets.
        let a = Address::parse("InfoService").unwrap();
        let hex = tp(&a);
        assert!(hex.starts_with("14D0"));
        assert_eq!(read_tp(&hex).unwrap(), a);
        // Extension characters take two septets.
        assert!(Address::parse("a{b}c[d]").is_err());
    }

    #[test]
    fn truncated_and_overlong() {
        assert!(matches!(read_tp("0B91134661"), Err(PduError::Truncated(_))));
        assert!(matches!(read_tp("0B91"), Err(PduError::Truncated(_))));
        assert!(matches!(
            read_tp("15911346610089F61346610089F6"),
            Err(PduError::InvalidAddress(_))
        ));
    }

    #[test]
    fn smsc_field() {
        let bytes = from_hex("07911326040000F0").unwrap();
        let mut r = Reader::new(&bytes);
        let smsc = read_smsc(&mut r).unwrap().unwrap();
        assert_eq!(smsc.number, "+31624000000");
        let mut out = Vec::new();
        write_smsc(Some(&smsc), &mut out).unwrap();
        assert_eq!(to_hex(&out), "07911326040000F0");
        let mut out = Vec::new();
        write_smsc(None, &mut out).unwrap();
        assert_eq!(out, [0]);
        assert_eq!(read_smsc(&mut Reader::new(&[0])).unwrap(), None);
        assert!(read_smsc(&mut Reader::new(&[0x0C])).is_err());
        assert!(read_smsc(&mut Reader::new(&[0x07, 0x91, 0x13])).is_err());
    }
}
