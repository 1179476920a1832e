//! A USSD answer as the network (through the modem) may send it: the text of `+CUSD` decoded
//! with any DCS and either hint, then read for a balance with and without an operator. Neither
//! may panic, whatever the bytes.
//!
//! Byte 0 is the DCS, byte 1 the hints (bit 0: CSCS is UCS2, bit 1: packed answers), the rest
//! the text (lossy UTF-8).
#![no_main]

use std::sync::OnceLock;

use gsmgw_agent::balance::BalanceParser;
use gsmgw_drivers::ussd::{DecodeHints, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (dcs, hints, text) = match data {
        [d, h, rest @ ..] => (Some(u32::from(*d)), *h, rest),
        _ => (None, 0, data),
    };
    let raw = String::from_utf8_lossy(text);
    let hints = DecodeHints {
        cscs_ucs2: hints & 1 != 0,
        packed_answers: hints & 2 != 0,
    };
    let decoded = decode(&raw, dcs, hints);
    // Built once: compiling its regexes per input would leave little time for the inputs.
    static PARSER: OnceLock<BalanceParser> = OnceLock::new();
    let parser = PARSER.get_or_init(|| BalanceParser::new(None).expect("built-in tables compile"));
    for op in [None, Some("25503"), Some("25001")] {
        if let Some(b) = parser.parse(&decoded.text, op) {
            assert!(b.amount.is_finite(), "{b:?}");
        }
    }
});
