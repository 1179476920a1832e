//! SMS-DELIVER (SC → MS): an incoming message.

use super::{
    Address, Concat, EncodedPart, Encoding, PduError, Reader, Timestamp, dcs, encoded_part,
    split_text, udh::Udh, user_data,
};

/// TP-MTI of SMS-DELIVER.
const MTI: u8 = 0b00;
/// TP-MMS: set means "no more messages are waiting".
const NO_MORE_MESSAGES: u8 = 0x04;
/// TP-SRI: a status report will be returned to the sender.
const SRI: u8 = 0x20;
/// TP-UDHI: the user data starts with a header.
const UDHI: u8 = 0x40;

/// A decoded SMS-DELIVER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deliver {
    /// Service centre that delivered it (from the SMSC field).
    pub smsc: Option<Address>,
    /// Originating address (TP-OA).
    pub from: Address,
    /// Protocol identifier (TP-PID).
    pub pid: u8,
    /// Data coding scheme byte (TP-DCS).
    pub dcs: u8,
    /// Alphabet given by the DCS.
    pub encoding: Encoding,
    /// Message class given by the DCS.
    pub class: Option<u8>,
    /// Service centre timestamp (TP-SCTS).
    pub scts: Timestamp,
    /// Concatenation info from the UDH, when this is one part of a longer message.
    pub concat: Option<Concat>,
    /// Decoded text for GSM 7-bit and UCS-2; empty for 8-bit.
    pub text: String,
    /// Raw user data (header stripped) for 8-bit; empty otherwise.
    pub data: Vec<u8>,
    /// TP-SRI: the sender asked for a status report.
    pub status_report_indication: bool,
    /// More messages are waiting at the SC (TP-MMS clear).
    pub more_messages: bool,
}

impl Deliver {
    /// Reads the TPDU (first octet onwards); the SMSC field was read by the caller.
    pub(crate) fn read(r: &mut Reader<'_>, smsc: Option<Address>) -> Result<Deliver, PduError> {
        let first = r.u8("first octet")?;
        let from = Address::read_tp(r, "originating address")?;
        let pid = r.u8("protocol identifier")?;
        let dcs_byte = r.u8("data coding scheme")?;
        let dcs = dcs::Dcs::parse(dcs_byte);
        let scts = Timestamp::read(r, "service centre timestamp")?;
        let ud = user_data::read(r, first & UDHI != 0, dcs.encoding)?;
        Ok(Deliver {
            smsc,
            from,
            pid,
            dcs: dcs_byte,
            encoding: dcs.encoding,
            class: dcs.class,
            scts,
            concat: ud.udh.as_ref().and_then(Udh::concat),
            text: ud.text,
            data: ud.data,
            status_report_indication: first & SRI != 0,
            more_messages: first & NO_MORE_MESSAGES == 0,
        })
    }

    /// The TPDU bytes (without the SMSC field). `dcs` must agree with `encoding` and `class`.
    pub fn to_tpdu(&self) -> Result<Vec<u8>, PduError> {
        dcs::check_matches(self.dcs, self.encoding, self.class)?;
        let udh = self.concat.map(Udh::with_concat);
        let mut first = MTI;
        if !self.more_messages {
            first |= NO_MORE_MESSAGES;
        }
        if self.status_report_indication {
            first |= SRI;
        }
        if udh.is_some() {
            first |= UDHI;
        }
        let mut out = vec![first];
        self.from.write_tp(&mut out)?;
        out.push(self.pid);
        out.push(self.dcs);
        self.scts.write(&mut out)?;
        user_data::write(
            &mut out,
            udh.as_ref(),
            self.encoding,
            &self.text,
            &self.data,
        )?;
        Ok(out)
    }

    /// Encodes this message as one PDU with its SMSC field.
    pub fn encode(&self) -> Result<EncodedPart, PduError> {
        encoded_part(self.smsc.as_ref(), &self.to_tpdu()?)
    }
}

/// What to put in SMS-DELIVER PDUs (e.g. for the modem simulator's incoming messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverOptions {
    /// Sender: "+digits", digits, or alphanumeric text.
    pub from: String,
    /// Message text; split into parts when long.
    pub text: String,
    /// Service centre address, if any.
    pub smsc: Option<String>,
    /// Service centre timestamp.
    pub scts: Timestamp,
    /// Use UCS-2 even when the text fits GSM 7-bit.
    pub force_ucs2: bool,
    /// Concatenation reference used when the text needs several parts.
    pub concat_ref: u8,
    /// Message class 0-3 (0 = flash), if any.
    pub class: Option<u8>,
    /// Set TP-SRI (the sender asked for a status report).
    pub status_report_indication: bool,
}

/// Encodes a text as one or more SMS-DELIVER PDUs (concatenated with an 8-bit reference when long).
pub fn encode_deliver(opts: &DeliverOptions) -> Result<Vec<EncodedPart>, PduError> {
    let from = Address::parse(&opts.from)?;
    let smsc = opts.smsc.as_deref().map(Address::parse).transpose()?;
    let (encoding, parts) = split_text(&opts.text, opts.force_ucs2);
    let dcs = dcs::Dcs::build(encoding, opts.class)?;
    let total = u8::try_from(parts.len()).map_err(|_| PduError::TooManyParts(parts.len()))?;
    let mut out = Vec::with_capacity(parts.len());
    for (seq, text) in (1..=total).zip(parts) {
        let deliver = Deliver {
            smsc: smsc.clone(),
            from: from.clone(),
            pid: 0,
            dcs,
            encoding,
            class: opts.class,
            scts: opts.scts,
            concat: (total > 1).then_some(Concat {
                reference: u16::from(opts.concat_ref),
                total,
                seq,
            }),
            text,
            data: Vec::new(),
            status_report_indication: opts.status_report_indication,
            more_messages: false,
        };
        out.push(deliver.encode()?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::{AddressKind, Pdu, decode, from_hex};

    fn deliver(hex: &str) -> Deliver {
        match decode(hex) {
            Ok(Pdu::Deliver(d)) => d,
            other => panic!("expected a deliver, got {other:?}"),
        }
    }

    fn ts(hex: &str) -> Timestamp {
        let b = from_hex(hex).unwrap();
        Timestamp::read(&mut Reader::new(&b), "ts").unwrap()
    }

    fn opts(from: &str, text: &str) -> DeliverOptions {
        DeliverOptions {
            from: from.into(),
            text: text.into(),
            smsc: None,
            scts: ts("62116222513080"),
            force_ucs2: false,
            concat_ref: 0x42,
            class: None,
            status_report_indication: false,
        }
    }

    #[test]
    fn how_are_you_from_the_tutorial() {
        let hex = "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07";
        let d = deliver(hex);
        assert_eq!(
            d.smsc.as_ref().map(|a| a.number.as_str()),
            Some("+31624000000")
        );
        assert_eq!(d.from.number, "+31641600986");
        assert_eq!(d.from.kind, AddressKind::International);
        assert_eq!(d.text, "How are you?");
        assert_eq!((d.encoding, d.class, d.pid), (Encoding::Gsm7, None, 0));
        assert_eq!(d.scts.to_rfc3339(), "2002-08-26T19:37:41+00:00"); // "-0" zone
        assert_eq!(d.concat, None);
        assert!(!d.more_messages && !d.status_report_indication);
        // Re-encoding gives the same bytes except the "-0" zone, written as "+0".
        assert_eq!(d.encode().unwrap().pdu, hex.replace("731408", "731400"));
    }

    #[test]
    fn subscriber_sender_from_the_tutorial() {
        let d = deliver("07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37");
        assert_eq!(d.from.kind, AddressKind::Subscriber);
        assert_eq!(d.from.number, "27838890001");
        assert_eq!(d.text, "hellohello");
        assert_eq!(d.scts.to_rfc3339(), "1999-03-29T15:16:59+02:00");
    }

    #[test]
    fn alphanumeric_sender_ucs2_cyrillic() {
        // Hand-built: from "Google", UCS-2 "Привіт", SCTS 2026-11-26 22:15:03 +02:00.
        let hex = "0004 0BD0C7F7FBCC2E03 00 08 62116222513080 0C 041F04400438043204560442"
            .replace(' ', "");
        let d = deliver(&hex);
        assert_eq!(d.from.kind, AddressKind::Alphanumeric);
        assert_eq!(d.from.number, "Google");
        assert_eq!(d.encoding, Encoding::Ucs2);
        assert_eq!(d.text, "Привіт");
        assert_eq!(d.smsc, None);
        let mut o = opts("Google", "Привіт");
        o.smsc = None;
        let parts = encode_deliver(&o).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].pdu, hex);
        assert_eq!(parts[0].tpdu_len, hex.len() / 2 - 1);
    }

    #[test]
    fn alphanumeric_sender_with_digits_and_a_trailing_septet() {
        // 7 septets = 49 bits → 13 semi-octets (not 14, which would read an extra '@').
        let parts = encode_deliver(&opts("D00000X", "x")).unwrap();
        assert!(parts[0].pdu.starts_with("00040DD0"));
        let d = deliver(&parts[0].pdu);
        assert_eq!(d.from.number, "D00000X");
    }

    #[test]
    fn emoji_travel_as_surrogate_pairs() {
        let parts = encode_deliver(&opts("+380501234567", "Hi 😀")).unwrap();
        assert!(parts[0].pdu.ends_with("0A004800690020D83DDE00"));
        assert_eq!(deliver(&parts[0].pdu).text, "Hi 😀");
    }

    #[test]
    fn concatenated_8bit_reference() {
        // Part 1 of 2, ref 0xCC, GSM 7-bit "Hi" after the header with one fill bit.
        let d = deliver(
            "00440B911346610089F6000062116222513080 09050003CC02019069"
                .replace(' ', "")
                .as_str(),
        );
        assert_eq!(
            d.concat,
            Some(Concat {
                reference: 0xCC,
                total: 2,
                seq: 1
            })
        );
        assert_eq!(d.text, "Hi");
    }

    #[test]
    fn concatenated_16bit_reference_ucs2() {
        let hex =
            "00440B911346610089F6000862116222513080 0B 06080412340302 0041D83D".replace(' ', "");
        let d = deliver(&hex);
        assert_eq!(
            d.concat,
            Some(Concat {
                reference: 0x1234,
                total: 3,
                seq: 2
            })
        );
        // A surrogate cut by a foreign sender becomes U+FFFD instead of failing the message.
        assert_eq!(d.text, "A\u{FFFD}");
    }

    #[test]
    fn eight_bit_data_and_class() {
        // DCS F5: 8-bit, class 1. UDH with a port element (kept out of the data).
        let hex =
            "00440B911346610089F600F562116222513080 0B 060504158A0000 DEADBEEF".replace(' ', "");
        let d = deliver(&hex);
        assert_eq!((d.encoding, d.class), (Encoding::EightBit, Some(1)));
        assert_eq!(d.text, "");
        assert_eq!(d.data, [0xDE, 0xAD, 0xBE, 0xEF]);
        assert_eq!(d.concat, None);
    }

    #[test]
    fn flags_and_class_round_trip() {
        let mut o = opts("7726", "flash!");
        o.class = Some(0);
        o.status_report_indication = true;
        o.smsc = Some("+380672000500".into());
        let parts = encode_deliver(&o).unwrap();
        let d = deliver(&parts[0].pdu);
        assert_eq!(d.dcs, 0x10);
        assert_eq!(d.class, Some(0));
        assert!(d.status_report_indication);
        assert_eq!(d.smsc.map(|a| a.number), Some("+380672000500".into()));
        assert_eq!(d.from.number, "7726");
    }

    #[test]
    fn long_text_splits_with_same_reference() {
        let text = "0123456789".repeat(40);
        let parts = encode_deliver(&opts("+31641600986", &text)).unwrap();
        assert_eq!(parts.len(), 3);
        let mut joined = String::new();
        for (i, p) in parts.iter().enumerate() {
            let d = deliver(&p.pdu);
            let c = d.concat.unwrap();
            assert_eq!((c.reference, c.total, usize::from(c.seq)), (0x42, 3, i + 1));
            joined.push_str(&d.text);
        }
        assert_eq!(joined, text);
    }

    #[test]
    fn malformed() {
        let good = "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07";
        assert!(decode(&good[..good.len() - 2]).is_err()); // short user data
        assert!(matches!(
            decode(&format!("{good}00")),
            Err(PduError::TrailingData(1))
        ));
        assert!(decode(&good.replace("0CC8F7", "0DC8F7")).is_err()); // UDL one too many
        assert!(decode(&good.replace("20806291", "20806293")).is_err()); // hour 39
        assert!(decode("0004").is_err());
        let mut d = deliver(good);
        d.dcs = 0x08;
        assert!(matches!(d.encode(), Err(PduError::DcsMismatch { .. })));
    }
}
