//! SDP offers and answers from the network.
//!
//! Parsing never panics. An offer that negotiates names a usable unicast address and a port
//! other than 0; our answer to it parses back (as the peer would read it) to the same codec,
//! payload type and telephone-event type, pointing at our address.
#![no_main]

use gsmgw_drivers::sip::sdp::{self, Sdp};
use gsmgw_drivers::voice::Codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(s) = Sdp::parse(&text) {
        let _ = s.active_audio();
        let _ = s.audio_addr();
    }
    let prefs = [Codec::Pcmu, Codec::Pcma];
    if let Ok(n) = sdp::negotiate(&text, &prefs) {
        assert!(sdp::usable_media_ip(n.remote.ip()), "negotiated {n:?}");
        assert_ne!(n.remote.port(), 0, "negotiated {n:?}");
        let local = "127.0.0.1:40000".parse().expect("address");
        let answer = sdp::answer(&n, local, 1);
        let back = sdp::parse_answer(&answer, &[n.codec])
            .unwrap_or_else(|e| panic!("our answer does not parse: {e}\n{answer}"));
        assert_eq!(
            (back.codec, back.pt, back.dtmf_pt, back.remote),
            (n.codec, n.pt, n.dtmf_pt, local),
            "{answer}"
        );
    }
    let _ = sdp::parse_answer(&text, &prefs);
});
