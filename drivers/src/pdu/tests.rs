//! Property tests across the codec: decoding never panics, encode → decode gives the text back.

use proptest::prelude::*;

use super::*;

/// Characters from every corner that matters: ASCII, GSM specials and extension, Cyrillic, emoji.
fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => prop::char::range(' ', '~'),
        2 => prop::sample::select(vec![
            '€', '[', ']', '{', '}', '\\', '~', '^', '|', '\u{0C}', '@', '£', 'Δ', '\n', '\r', 'ß',
            'é', 'Ñ', '¿', '\u{1B}',
        ]),
        2 => prop::char::range('А', 'я'),
        1 => prop::sample::select(vec!['і', 'ї', 'є', 'ґ', 'І', 'Ї', 'Є', 'Ґ', '’']),
        1 => prop::sample::select(vec!['😀', '🎉', '👍', '𝄞', '🇺', '\u{FEFF}', '\u{0}']),
        1 => any::<char>(),
    ]
}

/// Characters of the GSM 7-bit alphabet only (so long texts stay GSM 7-bit and go multipart).
fn gsm_char() -> impl Strategy<Value = char> {
    prop_oneof![
        8 => prop::char::range(' ', '~'),
        2 => prop::sample::select(vec!['€', '[', ']', '{', '}', '\\', '^', '|', '\u{0C}', 'Δ', 'à']),
    ]
}

fn text(ch: impl Strategy<Value = char>) -> impl Strategy<Value = String> {
    prop::collection::vec(ch, 0..2000).prop_map(|v| v.into_iter().collect())
}

/// Octets of the SMSC field at the start of a PDU's bytes.
fn smsc_field_len(bytes: &[u8]) -> usize {
    1 + usize::from(bytes[0])
}

/// TP-UD octets of a TPDU: everything after the UDL byte at `udl_at`.
fn ud_octets(tpdu: &[u8], udl_at: usize) -> usize {
    tpdu.len() - udl_at - 1
}

/// Position of the UDL in a SUBMIT / DELIVER TPDU (address length in semi-octets at index).
fn udl_index(tpdu: &[u8], addr_len_at: usize, after_addr: usize) -> usize {
    let semi = usize::from(tpdu[addr_len_at]);
    addr_len_at + 2 + semi.div_ceil(2) + after_addr
}

/// Checks the invariants shared by every encoded part and returns the TPDU bytes.
fn check_part(part: &EncodedPart) -> Vec<u8> {
    assert_eq!(part.pdu, part.pdu.to_uppercase());
    let bytes = from_hex(&part.pdu).unwrap();
    assert_eq!(part.tpdu_len, part.pdu.len() / 2 - smsc_field_len(&bytes));
    bytes[smsc_field_len(&bytes)..].to_vec()
}

/// Joins decoded parts in sequence order after checking their concatenation headers.
fn join(parts: Vec<(Option<Concat>, String)>) -> String {
    let total = parts.len();
    let mut parts = parts;
    if total > 1 {
        for (c, _) in &parts {
            let c = c.unwrap();
            assert_eq!(usize::from(c.total), total);
            assert_eq!(c.reference, 0x5A);
        }
        parts.reverse(); // sort must restore order whatever it was
        parts.sort_by_key(|(c, _)| c.map(|c| c.seq));
    } else {
        assert!(parts[0].0.is_none());
    }
    parts.into_iter().map(|(_, t)| t).collect()
}

fn submit_round_trip(text: &str, force_ucs2: bool, smsc: Option<&str>) {
    let opts = SubmitOptions {
        to: "+380501234567".into(),
        text: text.into(),
        smsc: smsc.map(str::to_owned),
        report: true,
        force_ucs2,
        validity_minutes: Some(1440),
        concat_ref: 0x5A,
        mr: 3,
        class: None,
    };
    let parts = encode_submit(&opts).unwrap();
    let mut decoded = Vec::new();
    for part in &parts {
        let tpdu = check_part(part);
        // first, MR, DA, PID, DCS, VP, UDL
        let udl_at = udl_index(&tpdu, 2, 3);
        assert!(ud_octets(&tpdu, udl_at) <= 140);
        let Ok(Pdu::Submit(s)) = decode(&part.pdu) else {
            panic!("not a submit: {}", part.pdu)
        };
        assert_eq!(s.to.number, "+380501234567");
        assert!(s.srr);
        decoded.push((s.concat, s.text));
    }
    assert_eq!(join(decoded), text);
}

fn deliver_round_trip(text: &str, force_ucs2: bool, from: &str) {
    let opts = DeliverOptions {
        from: from.into(),
        text: text.into(),
        smsc: Some("+31624000000".into()),
        scts: Timestamp::new(2026, 11, 26, 22, 15, 3, -14).unwrap(),
        force_ucs2,
        concat_ref: 0x5A,
        class: Some(1),
        status_report_indication: false,
    };
    let parts = encode_deliver(&opts).unwrap();
    let mut decoded = Vec::new();
    for part in &parts {
        let tpdu = check_part(part);
        // first, OA, PID, DCS, SCTS(7), UDL
        let udl_at = udl_index(&tpdu, 1, 9);
        assert!(ud_octets(&tpdu, udl_at) <= 140);
        let Ok(Pdu::Deliver(d)) = decode(&part.pdu) else {
            panic!("not a deliver: {}", part.pdu)
        };
        assert_eq!(d.from.number, from);
        assert_eq!(d.class, Some(1));
        assert_eq!(d.scts, opts.scts);
        decoded.push((d.concat, d.text));
    }
    assert_eq!(join(decoded), text);
}

proptest! {
    #[test]
    fn decode_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_bytes(&bytes);
    }

    #[test]
    fn decode_hex_never_panics(s in "[0-9A-Fa-f ]{0,300}|\\PC{0,100}") {
        let _ = decode(&s);
    }

    #[test]
    fn decode_of_damaged_pdus_never_panics(
        which in 0usize..4,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let samples = [
            "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07",
            "0011000B916407281553F80000AA0AE8329BFD4697D9EC37",
            "07911326040000F006D60B911326880736F4111011719551401110117195714000070004067265706F7274",
            "00440B911346610089F6000862116222513080 0B 06080412340302 0041D83D",
        ];
        let mut bytes = from_hex(&samples[which].replace(' ', "")).unwrap();
        for (i, x) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= x;
        }
        let _ = decode_bytes(&bytes);
        let _ = decode_bytes(&bytes[..cut.index(bytes.len() + 1)]);
    }

    #[test]
    fn submit_round_trips_mixed(text in text(any_char()), force in any::<bool>()) {
        submit_round_trip(&text, force, None);
    }

    #[test]
    fn submit_round_trips_gsm7(text in text(gsm_char()), force in any::<bool>()) {
        submit_round_trip(&text, force, Some("+380672000500"));
    }

    #[test]
    fn deliver_round_trips_mixed(text in text(any_char()), force in any::<bool>()) {
        deliver_round_trip(&text, force, "+31641600986");
    }

    #[test]
    fn deliver_round_trips_gsm7(text in text(gsm_char()), force in any::<bool>(), alpha in any::<bool>()) {
        deliver_round_trip(&text, force, if alpha { "Bank{24}" } else { "7726" });
    }
}
