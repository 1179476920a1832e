//! The line framer and everything that reads a framed line: URC typing and field splitting.
//!
//! Input: the first byte seeds the chunk sizes (1..=64 bytes, varying per chunk, so line ends,
//! the `> ` prompt and UTF-8 sequences land on every possible read boundary); the rest is the
//! byte stream from the modem. Nothing may panic or hang, the framer never holds more than
//! MAX_LINE bytes, and a clean `OK` after the garbage is still recognised.
#![no_main]

use gsmgw_drivers::at::fields::{after_prefix, parse_fields, unquote};
use gsmgw_drivers::at::framer::{self, Frame, Framer};
use gsmgw_drivers::at::urc;
use gsmgw_drivers::modem::VENDOR_URCS;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let mut framer = Framer::new();
    let mut frames = Vec::new();
    let mut rng = u32::from(seed) | 0x100;
    let mut rest = stream;
    while !rest.is_empty() {
        // xorshift: cheap, deterministic chunk sizes from the seed byte.
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        let n = ((rng % 64) as usize + 1).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        framer.push(chunk, &mut frames);
        assert!(framer.pending() <= framer::MAX_LINE, "framer holds {} bytes", framer.pending());
        rest = tail;
    }

    let lines: Vec<&str> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Line(l) => Some(l.as_str()),
            _ => None,
        })
        .collect();
    for f in &frames {
        match f {
            Frame::Line(l) => {
                assert!(!l.is_empty(), "empty line frame");
                assert_eq!(l.trim(), l, "line frame not trimmed");
                assert!(!l.contains(['\r', '\n']), "line frame holds a line end: {l:?}");
                assert!(l.chars().count() <= framer::MAX_LINE, "line frame too long");
            }
            Frame::Overlong(start) => {
                assert!(start.chars().count() <= framer::MAX_LINE, "overlong start not bounded");
            }
            Frame::Prompt => {}
        }
    }

    for (i, &line) in lines.iter().enumerate() {
        let next = lines.get(i + 1).copied();
        let _ = VENDOR_URCS.parse(line, None);
        if let Some(next) = next {
            let _ = VENDOR_URCS.parse(line, Some(next));
        }
        let _ = VENDOR_URCS.looks_unsolicited(line);
        let _ = urc::has_pdu_line(line);
        // A line taken for a PDU can never be a URC or a final result left out of its place.
        if urc::looks_like_pdu(line) {
            assert!(
                !VENDOR_URCS.looks_unsolicited(line) && !urc::has_pdu_line(line) && line != "OK",
                "{line:?} taken for a PDU"
            );
        }

        let fields = parse_fields(line);
        // One field per unquoted comma, plus one.
        let mut quoted = false;
        let mut commas = 0;
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => commas += 1,
                _ => {}
            }
        }
        assert_eq!(fields.len(), commas + 1, "field count of {line:?}");
        for f in &fields {
            let u = unquote(f);
            assert!(u.len() <= f.len());
        }
        let _ = unquote(line);

        for prefix in ["+CSQ:", "+CMGL:", "^RSSI:", "+CME ERROR:"] {
            if let Some(rest) = after_prefix(line, prefix) {
                assert!(rest.len() <= line.len() - prefix.len());
            }
        }
        // A prefix taken from another line puts the cut on arbitrary (non-char) boundaries.
        if let Some(next) = next {
            let _ = after_prefix(line, next);
            let _ = after_prefix(next, line);
        }
    }

    // The framer is never wedged: a clean final result after any garbage is recognised.
    frames.clear();
    framer.push(b"\r\nOK\r\n", &mut frames);
    assert_eq!(frames.last(), Some(&Frame::Line("OK".into())), "OK after garbage lost");
});
