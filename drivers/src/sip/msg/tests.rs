//! Tests of the SIP message codec: parsing, editing, round trips (property tests).

use super::*;
use proptest::prelude::*;

const INVITE: &str = "INVITE sip:bob@biloxi.com SIP/2.0\r\n\
    Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds, SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKx\r\n\
    v: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKy;rport\r\n\
    Max-Forwards: 70\r\n\
    t: Bob <sip:bob@biloxi.com>\r\n\
    From: \"Alice \\\"A\\\"\" <sip:alice@atlanta.com:5062;transport=udp>;tag=1928301774\r\n\
    i: a84b4c76e66710@pc33.atlanta.com\r\n\
    CSeq: 314159 INVITE\r\n\
    m: <sip:alice@pc33.atlanta.com>\r\n\
    Subject: folded\r\n  line\r\n\
    c: application/sdp\r\n\
    l: 4\r\n\r\nv=0\r\nextra";

#[test]
fn parses_request() {
    let m = Message::parse(INVITE.as_bytes()).unwrap();
    assert_eq!(m.method(), Some("INVITE"));
    assert_eq!(m.uri(), Some("sip:bob@biloxi.com"));
    assert_eq!(m.body, b"v=0\r");
    assert_eq!(m.call_id().unwrap(), "a84b4c76e66710@pc33.atlanta.com");
    assert_eq!(m.cseq().unwrap(), (314159, "INVITE".to_string()));
    assert_eq!(m.get("subject"), Some("folded line"));
    assert_eq!(m.get("Content-Type"), Some("application/sdp"));
    let vias = m.get_all("via");
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[2], "SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKy;rport");
    let from = m.from_hdr().unwrap();
    assert_eq!(from.display.as_deref(), Some("Alice \"A\""));
    assert_eq!(from.tag(), Some("1928301774"));
    assert_eq!(from.uri.user_name(), Some("alice"));
    assert_eq!(from.uri.port, Some(5062));
    assert_eq!(from.uri.param("transport"), Some(Some("udp")));
    let to = m.to_hdr().unwrap();
    assert_eq!(to.display.as_deref(), Some("Bob"));
    assert_eq!(to.tag(), None);
    assert_eq!(m.branch().as_deref(), Some("z9hG4bK776asdhds"));
}

#[test]
fn edits_top_via_and_headers() {
    let mut m = Message::parse(INVITE.as_bytes()).unwrap();
    let mut via = m.top_via().unwrap();
    via.set_param("received", Some("1.2.3.4"));
    via.set_param("rport", Some("5099"));
    m.set_top_via(&via);
    let vias = m.get_all("Via");
    assert_eq!(
        vias[0],
        "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds;received=1.2.3.4;rport=5099"
    );
    assert_eq!(vias.len(), 3);
    m.set("Via", "SIP/2.0/UDP x;branch=z9hG4bKq");
    assert_eq!(m.get_all("v").len(), 1);
    m.remove("CSeq");
    assert!(m.cseq().is_err());
    let bytes = m.to_bytes();
    let again = Message::parse(&bytes).unwrap();
    assert_eq!(again, m);
}

#[test]
fn parses_response_and_bare_uri() {
    let raw = "SIP/2.0 180 Ringing\r\nTo: sip:bob@[::1]:5060;tag=abc\r\nContent-Length: 0\r\n\r\n";
    let m = Message::parse(raw.as_bytes()).unwrap();
    assert_eq!(m.code(), Some(180));
    assert_eq!(m.reason(), Some("Ringing"));
    let to = m.to_hdr().unwrap();
    assert_eq!(to.tag(), Some("abc"));
    assert_eq!(to.uri.host, "[::1]");
    assert_eq!(to.uri.port, Some(5060));
    assert_eq!(m.to_bytes(), raw.as_bytes());
}

#[test]
fn rejects_malformed() {
    for raw in [
        "",
        "\r\n\r\n",
        "INVITE sip:a SIP/2.0\r\n",
        "INVITE sip:a SIP/3.0\r\n\r\n",
        "SIP/2.0 99 x\r\n\r\n",
        "SIP/2.0 abc x\r\n\r\n",
        "INVITE sip:a SIP/2.0\r\nNoColon\r\n\r\n",
        "INVITE sip:a SIP/2.0\r\nContent-Length: 10\r\n\r\nabc",
        "INVITE sip:a SIP/2.0\r\nContent-Length: -1\r\n\r\n",
    ] {
        assert!(Message::parse(raw.as_bytes()).is_err(), "{raw:?}");
    }
    assert!(NameAddr::parse("\"unterminated <sip:a@b>").is_err());
    assert!(NameAddr::parse("<sip:a@b").is_err());
    assert!(Uri::parse("sip:a@b:99999").is_err());
    assert!(Via::parse("SIP/2.0/UDP").is_err());
    assert!(parse_cseq("x INVITE").is_err());
}

#[test]
fn name_addr_round_trip() {
    for s in [
        "\"Bob\" <sip:bob@host:5080;transport=udp>;tag=123",
        "<sip:100@127.0.0.1:5080>",
        "<sip:h;lr>",
        "<tel:+123>",
    ] {
        let n = NameAddr::parse(s).unwrap();
        assert_eq!(n.to_string(), s);
    }
    let n = NameAddr::parse("sip:a@b;tag=9").unwrap();
    assert_eq!(n.tag(), Some("9"));
    assert_eq!(n.to_string(), "<sip:a@b>;tag=9");
}

fn arb_message() -> impl Strategy<Value = Message> {
    let name = "[A-Za-z][A-Za-z0-9-]{1,12}"
        .prop_filter("not Content-Length", |n| !same_header(n, "Content-Length"));
    let value = "[ -~]{0,40}".prop_map(|v| v.trim().to_string());
    let headers = proptest::collection::vec((name, value), 0..8);
    let start = prop_oneof![
        ("[A-Z]{3,9}", "sip:[a-z0-9@.:;=]{1,30}")
            .prop_map(|(method, uri)| StartLine::Request { method, uri }),
        (100u16..700, "[A-Za-z ]{0,20}").prop_map(|(code, r)| StartLine::Response {
            code,
            reason: r.trim().to_string()
        }),
    ];
    (
        start,
        headers,
        proptest::collection::vec(any::<u8>(), 0..100),
    )
        .prop_map(|(start, headers, body)| Message {
            start,
            headers,
            body,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn round_trip(m in arb_message()) {
        let bytes = m.to_bytes();
        let parsed = Message::parse(&bytes).unwrap();
        prop_assert_eq!(&parsed.start, &m.start);
        prop_assert_eq!(&parsed.body, &m.body);
        let without_length: Vec<_> = parsed.headers.iter()
            .filter(|(n, _)| !same_header(n, "Content-Length")).cloned().collect();
        prop_assert_eq!(without_length, m.headers.clone());
        prop_assert_eq!(parsed.to_bytes(), bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(m) = Message::parse(&bytes) {
            let _ = m.to_bytes();
            let _ = m.from_hdr();
            let _ = m.top_via();
            let _ = m.cseq();
            let _ = m.get_all("Via");
        }
    }

    #[test]
    fn sip_like_text_never_panics(s in "(INVITE|SIP/2.0|[A-Za-z:;<>\"@ =,\\\\\\[\\]0-9./-]|\r\n){0,80}") {
        if let Ok(m) = Message::parse(s.as_bytes()) {
            let _ = m.from_hdr();
            let _ = m.to_hdr();
            let _ = m.top_via();
            let _ = m.cseq();
        }
        let _ = NameAddr::parse(&s);
        let _ = Uri::parse(&s);
        let _ = Via::parse(&s);
    }
}
