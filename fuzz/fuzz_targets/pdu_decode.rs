//! The SMS PDU decoder on untrusted input, as bytes and as the hex text a modem prints.
//!
//! Decoding never panics; a decoded SMS-DELIVER / SMS-SUBMIT / SMS-STATUS-REPORT re-encodes
//! without panicking, and when it re-encodes, the result decodes back to the same message.
#![no_main]

use gsmgw_drivers::pdu::{self, Pdu};
use libfuzzer_sys::fuzz_target;

fn reencode(p: &Pdu) {
    let encoded = match p {
        Pdu::Deliver(d) => {
            let _ = d.to_tpdu();
            d.encode()
        }
        Pdu::Submit(s) => {
            let _ = s.to_tpdu();
            s.encode()
        }
        Pdu::StatusReport(r) => {
            let _ = r.to_tpdu();
            r.encode()
        }
    };
    let Ok(part) = encoded else { return };
    let hex_len = part.pdu.len();
    assert!(hex_len % 2 == 0 && part.tpdu_len * 2 <= hex_len, "bad EncodedPart {part:?}");
    let again = pdu::decode(&part.pdu)
        .unwrap_or_else(|e| panic!("re-encoded PDU {} does not decode: {e}\n{p:#?}", part.pdu));
    assert_eq!(&again, p, "decode(encode(x)) != x for {}", part.pdu);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = pdu::decode_bytes(data) {
        reencode(&p);
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(p) = pdu::decode(&text) {
        reencode(&p);
    }
});
