//! SMS-SUBMIT (MS → SC): an outgoing message, and the relative validity period.

use super::{
    Address, Concat, EncodedPart, Encoding, PduError, Reader, dcs, encoded_part, split_text,
    udh::Udh, user_data,
};

/// TP-MTI of SMS-SUBMIT.
const MTI: u8 = 0b01;
/// TP-RD: reject duplicates.
const RD: u8 = 0x04;
/// TP-VPF = 10: relative validity period present.
const VPF_RELATIVE: u8 = 0b10;
/// TP-SRR: status report requested.
const SRR: u8 = 0x20;
/// TP-UDHI: the user data starts with a header.
const UDHI: u8 = 0x40;

/// A decoded (or to-be-encoded) SMS-SUBMIT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    /// Service centre to send through (from the SMSC field); `None` = the modem's default.
    pub smsc: Option<Address>,
    /// Destination address (TP-DA).
    pub to: Address,
    /// Message reference (TP-MR).
    pub mr: u8,
    /// Status report requested (TP-SRR).
    pub srr: bool,
    /// Relative validity period byte (TP-VP with VPF = 10); `None` when absent or not relative.
    pub validity: Option<u8>,
    /// Reject duplicates (TP-RD).
    pub reject_duplicates: bool,
    /// Data coding scheme byte (TP-DCS).
    pub dcs: u8,
    /// Alphabet given by the DCS.
    pub encoding: Encoding,
    /// Message class given by the DCS.
    pub class: Option<u8>,
    /// Concatenation info, when this is one part of a longer message.
    pub concat: Option<Concat>,
    /// Text for GSM 7-bit and UCS-2; empty for 8-bit.
    pub text: String,
    /// Raw user data (header stripped) for 8-bit; empty otherwise.
    pub data: Vec<u8>,
}

impl Submit {
    /// Reads the TPDU (first octet onwards); the SMSC field was read by the caller.
    ///
    /// TP-PID is read and not kept; enhanced and absolute validity periods are skipped.
    pub(crate) fn read(r: &mut Reader<'_>, smsc: Option<Address>) -> Result<Submit, PduError> {
        let first = r.u8("first octet")?;
        let mr = r.u8("message reference")?;
        let to = Address::read_tp(r, "destination address")?;
        let _pid = r.u8("protocol identifier")?;
        let dcs_byte = r.u8("data coding scheme")?;
        let dcs = dcs::Dcs::parse(dcs_byte);
        let validity = match (first >> 3) & 0b11 {
            0b00 => None,
            VPF_RELATIVE => Some(r.u8("validity period")?),
            _ => {
                r.take(7, "validity period")?;
                None
            }
        };
        let ud = user_data::read(r, first & UDHI != 0, dcs.encoding)?;
        Ok(Submit {
            smsc,
            to,
            mr,
            srr: first & SRR != 0,
            validity,
            reject_duplicates: first & RD != 0,
            dcs: dcs_byte,
            encoding: dcs.encoding,
            class: dcs.class,
            concat: ud.udh.as_ref().and_then(Udh::concat),
            text: ud.text,
            data: ud.data,
        })
    }

    /// The TPDU bytes (without the SMSC field). `dcs` must agree with `encoding` and `class`.
    pub fn to_tpdu(&self) -> Result<Vec<u8>, PduError> {
        dcs::check_matches(self.dcs, self.encoding, self.class)?;
        let udh = self.concat.map(Udh::with_concat);
        let mut first = MTI;
        if self.reject_duplicates {
            first |= RD;
        }
        if self.validity.is_some() {
            first |= VPF_RELATIVE << 3;
        }
        if self.srr {
            first |= SRR;
        }
        if udh.is_some() {
            first |= UDHI;
        }
        let mut out = vec![first, self.mr];
        self.to.write_tp(&mut out)?;
        out.push(0x00); // TP-PID: plain short message
        out.push(self.dcs);
        if let Some(vp) = self.validity {
            out.push(vp);
        }
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

/// What to send: the input of [`encode_submit`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmitOptions {
    /// Destination: "+digits" international, digits/short code, or alphanumeric.
    pub to: String,
    /// Message text; split into parts when long.
    pub text: String,
    /// Service centre address; `None` writes "00" (the modem's default SMSC).
    pub smsc: Option<String>,
    /// Request a status report (TP-SRR).
    pub report: bool,
    /// Use UCS-2 even when the text fits GSM 7-bit.
    pub force_ucs2: bool,
    /// Validity in minutes, rounded up to the next relative TP-VP step (capped at 63 weeks).
    pub validity_minutes: Option<u32>,
    /// Concatenation reference used when the text needs several parts.
    pub concat_ref: u8,
    /// Message reference of the first part (later parts count up from it).
    pub mr: u8,
    /// Message class 0-3 (0 = flash), if any.
    pub class: Option<u8>,
}

/// Encodes a text as one or more SMS-SUBMIT PDUs (concatenated with an 8-bit reference when long).
pub fn encode_submit(opts: &SubmitOptions) -> Result<Vec<EncodedPart>, PduError> {
    let to = Address::parse(&opts.to)?;
    let smsc = opts.smsc.as_deref().map(Address::parse).transpose()?;
    let (encoding, parts) = split_text(&opts.text, opts.force_ucs2);
    let dcs = dcs::Dcs::build(encoding, opts.class)?;
    let total = u8::try_from(parts.len()).map_err(|_| PduError::TooManyParts(parts.len()))?;
    let validity = opts.validity_minutes.map(validity_from_minutes);
    let mut out = Vec::with_capacity(parts.len());
    for (seq, text) in (1..=total).zip(parts) {
        let submit = Submit {
            smsc: smsc.clone(),
            to: to.clone(),
            mr: opts.mr.wrapping_add(seq - 1),
            srr: opts.report,
            validity,
            reject_duplicates: false,
            dcs,
            encoding,
            class: opts.class,
            concat: (total > 1).then_some(Concat {
                reference: u16::from(opts.concat_ref),
                total,
                seq,
            }),
            text,
            data: Vec::new(),
        };
        out.push(submit.encode()?);
    }
    Ok(out)
}

/// Minutes a relative TP-VP byte stands for (23.040 §9.2.3.12.1).
pub fn validity_to_minutes(vp: u8) -> u32 {
    let v = u32::from(vp);
    match vp {
        0..=143 => (v + 1) * 5,
        144..=167 => 12 * 60 + (v - 143) * 30,
        168..=196 => (v - 166) * 24 * 60,
        197..=255 => (v - 192) * 7 * 24 * 60,
    }
}

/// The smallest relative TP-VP byte covering at least `minutes` (255 = 63 weeks when longer).
pub fn validity_from_minutes(minutes: u32) -> u8 {
    (0..=u8::MAX)
        .find(|&vp| validity_to_minutes(vp) >= minutes)
        .unwrap_or(u8::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::{AddressKind, Pdu, decode};

    fn submit(hex: &str) -> Submit {
        match decode(hex) {
            Ok(Pdu::Submit(s)) => s,
            other => panic!("expected a submit, got {other:?}"),
        }
    }

    fn opts(to: &str, text: &str) -> SubmitOptions {
        SubmitOptions {
            to: to.into(),
            text: text.into(),
            ..SubmitOptions::default()
        }
    }

    #[test]
    fn hellohello_from_the_tutorial() {
        let hex = "0011000B916407281553F80000AA0AE8329BFD4697D9EC37";
        let s = submit(hex);
        assert_eq!(s.smsc, None);
        assert_eq!(s.to.number, "+46708251358");
        assert_eq!(s.text, "hellohello");
        assert_eq!(s.validity, Some(0xAA));
        assert_eq!(validity_to_minutes(0xAA), 4 * 24 * 60);
        assert!(!s.srr && !s.reject_duplicates);
        // And our encoder produces exactly the same PDU.
        let mut o = opts("+46708251358", "hellohello");
        o.validity_minutes = Some(4 * 24 * 60);
        let parts = encode_submit(&o).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].pdu, hex);
        assert_eq!(parts[0].tpdu_len, 23);
    }

    #[test]
    fn minimal_submit_exact_hex() {
        // No SMSC, no VP, MR 0, short code, "Hi".
        let parts = encode_submit(&opts("7726", "Hi")).unwrap();
        assert_eq!(parts[0].pdu, "000100048177620000 02C834".replace(' ', ""));
        assert_eq!(parts[0].tpdu_len, 11);
    }

    #[test]
    fn report_smsc_mr_class_ucs2() {
        let mut o = opts("+380501234567", "Привіт");
        o.report = true;
        o.smsc = Some("+380672000500".into());
        o.mr = 7;
        o.class = Some(1);
        let parts = encode_submit(&o).unwrap();
        // SMSC 07 91 836027005000; first 0x21 (SUBMIT|SRR), MR 07, DA, PID 00, DCS 0x19.
        assert!(
            parts[0].pdu.starts_with("07918360270050002107"),
            "{}",
            parts[0].pdu
        );
        assert_eq!(parts[0].tpdu_len, parts[0].pdu.len() / 2 - 8);
        let s = submit(&parts[0].pdu);
        assert!(s.srr);
        assert_eq!(
            (s.mr, s.dcs, s.class, s.encoding),
            (7, 0x19, Some(1), Encoding::Ucs2)
        );
        assert_eq!(s.text, "Привіт");
        assert_eq!(s.to.kind, AddressKind::International);
        assert_eq!(s.smsc.map(|a| a.number), Some("+380672000500".into()));
    }

    #[test]
    fn force_ucs2_and_alphanumeric_destination() {
        let mut o = opts("Info", "abc");
        o.force_ucs2 = true;
        let s = submit(&encode_submit(&o).unwrap()[0].pdu);
        assert_eq!((s.encoding, s.text.as_str()), (Encoding::Ucs2, "abc"));
        assert_eq!(s.to.kind, AddressKind::Alphanumeric);
        assert_eq!(s.to.number, "Info");
    }

    #[test]
    fn multipart_gsm7_with_extension_chars() {
        let text = format!("{}€ and {{braces}} ~ {}", "x".repeat(150), "y".repeat(200));
        let mut o = opts("+46708251358", &text);
        o.concat_ref = 0xAB;
        o.mr = 254;
        let parts = encode_submit(&o).unwrap();
        assert_eq!(parts.len(), 3);
        let mut joined = String::new();
        for (i, p) in parts.iter().enumerate() {
            let s = submit(&p.pdu);
            assert_eq!(s.encoding, Encoding::Gsm7);
            let c = s.concat.unwrap();
            assert_eq!((c.reference, c.total, usize::from(c.seq)), (0xAB, 3, i + 1));
            assert_eq!(s.mr, 254u8.wrapping_add(i as u8));
            joined.push_str(&s.text);
        }
        assert_eq!(joined, text);
        // First part: 0x41 = SUBMIT|UDHI, header 050003AB0301.
        assert!(
            parts[0]
                .pdu
                .starts_with("0041FE0B916407281553F80000A0050003AB0301")
        );
    }

    #[test]
    fn validity_steps() {
        assert_eq!(validity_from_minutes(0), 0);
        assert_eq!(validity_from_minutes(5), 0);
        assert_eq!(validity_from_minutes(6), 1);
        assert_eq!(validity_from_minutes(60), 11);
        assert_eq!(validity_from_minutes(720), 143);
        assert_eq!(validity_from_minutes(721), 144);
        assert_eq!(validity_from_minutes(24 * 60), 167);
        assert_eq!(validity_from_minutes(24 * 60 + 1), 168);
        assert_eq!(validity_from_minutes(30 * 24 * 60), 196);
        assert_eq!(validity_from_minutes(31 * 24 * 60), 197);
        assert_eq!(validity_from_minutes(63 * 7 * 24 * 60), 255);
        assert_eq!(validity_from_minutes(u32::MAX), 255);
        for vp in 0..=255u8 {
            assert_eq!(validity_from_minutes(validity_to_minutes(vp)), vp);
        }
    }

    #[test]
    fn other_validity_formats_are_skipped() {
        // VPF 11 (absolute): 7 octets, then UDL.
        let s = submit(
            "0019000B916407281553F8000062116222513080 0AE8329BFD4697D9EC37"
                .replace(' ', "")
                .as_str(),
        );
        assert_eq!((s.validity, s.text.as_str()), (None, "hellohello"));
        assert!(decode("0019000B916407281553F80000621126").is_err());
    }

    #[test]
    fn bad_options() {
        assert!(encode_submit(&opts("", "x")).is_err());
        assert!(encode_submit(&opts("+380;501", "x")).is_err());
        let mut o = opts("123", "x");
        o.class = Some(4);
        assert!(encode_submit(&o).is_err());
        let mut o = opts("123", "x");
        o.smsc = Some("not a number!".into());
        assert!(encode_submit(&o).is_err());
        assert!(matches!(
            encode_submit(&opts("123", &"x".repeat(153 * 256))),
            Err(PduError::TooManyParts(256))
        ));
    }
}
