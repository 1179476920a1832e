//! The SIP message parser on untrusted datagrams, and what the user agent reads out of them.
//!
//! Parsing never panics; every accessor the user agent uses (Call-ID, CSeq, From/To with their
//! tags, Via and branch, list headers, the Request-URI and its parameters, digest headers) runs
//! on whatever parsed. A parsed message serialises and parses back to the same start line, the
//! same headers (Content-Length aside, which `to_bytes` rewrites) and the same body.
#![no_main]

use gsmgw_drivers::sip::digest::{Challenge, Credentials};
use gsmgw_drivers::sip::msg::{Message, NameAddr, Uri, same_header};
use libfuzzer_sys::fuzz_target;

fn without_length(m: &Message) -> Vec<(String, String)> {
    m.headers
        .iter()
        .filter(|(n, _)| !same_header(n, "Content-Length"))
        .cloned()
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::parse(data) else { return };
    let _ = m.call_id();
    let _ = m.cseq();
    for h in [m.from_hdr(), m.to_hdr()].into_iter().flatten() {
        let _ = h.tag();
        let _ = h.uri.user_name();
        let _ = h.to_string();
    }
    if let Ok(v) = m.top_via() {
        let _ = v.param("rport");
        let _ = v.to_string();
    }
    let _ = m.branch();
    for name in ["Via", "Contact", "Record-Route", "Route", "Allow"] {
        for v in m.get_all(name) {
            if let Ok(n) = NameAddr::parse(v) {
                let _ = n.uri.param("lr");
            }
        }
    }
    if let Some(u) = m.uri() {
        if let Ok(uri) = Uri::parse(u) {
            let _ = uri.param("gwtoken");
            let _ = uri.user_name();
            let _ = uri.to_string();
        }
    }
    for v in m.get_all("Proxy-Authorization") {
        if let Ok(c) = Credentials::parse(v) {
            let _ = c.verify("secret", "INVITE");
        }
    }
    for v in m.get_all("Proxy-Authenticate") {
        if let Ok(ch) = Challenge::parse(v) {
            let _ = ch.authorization("u", "p", "INVITE", "sip:x", 1, "c");
        }
    }
    let _ = m.body_str();

    let bytes = m.to_bytes();
    let again = Message::parse(&bytes)
        .unwrap_or_else(|e| panic!("our serialisation does not parse: {e}\n{m:?}"));
    assert_eq!(again.start, m.start, "start line changed");
    assert_eq!(without_length(&again), without_length(&m), "headers changed");
    assert_eq!(again.body, m.body, "body changed");
});
