//! The SIP user agent end to end on 127.0.0.1: two `Ua`s calling each other (directly and
//! through a lossy relay), and interop with SIPp as registrar and as called party.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gsmgw_drivers::sip::digest::Challenge;
use gsmgw_drivers::sip::guard::{Inbound, InboundAuth, MAX_DATAGRAM, Untrusted};
use gsmgw_drivers::sip::sdp;
use gsmgw_drivers::sip::{Ua, UaConfig, UaEvent};
use gsmgw_drivers::voice::Codec;
use tokio::net::UdpSocket;
use tokio::sync::mpsc::Receiver;

use gsmgw_testkit::free_udp_port as free_port;
use gsmgw_testkit::sipp::{Sipp, SippProc, SippResult};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn config(port: u16, server: SocketAddr, user: &str) -> UaConfig {
    UaConfig {
        bind: addr(port),
        server,
        domain: "127.0.0.1".into(),
        username: user.into(),
        auth_username: None,
        password: "secret".into(),
        register: false,
        register_expires: 300,
        options_interval: None,
        user_agent: format!("gsmgw-test-{user}"),
        inbound: Inbound::default(),
    }
}

async fn next(rx: &mut Receiver<UaEvent>, what: &str) -> UaEvent {
    match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
        Ok(Some(ev)) => ev,
        Ok(None) => panic!("event channel closed while waiting for {what}"),
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// No further event within `ms` milliseconds.
async fn quiet(rx: &mut Receiver<UaEvent>, ms: u64) {
    if let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(ms), rx.recv()).await {
        panic!("unexpected event {ev:?}");
    }
}

fn offer(port: u16) -> String {
    sdp::offer(addr(port), &[Codec::Pcmu, Codec::Pcma], 1)
}

/// Two agents, each the other's server.
async fn pair() -> ((Ua, Receiver<UaEvent>), (Ua, Receiver<UaEvent>)) {
    let (pa, pb) = (free_port(), free_port());
    let a = Ua::start(config(pa, addr(pb), "alice")).await.unwrap();
    let b = Ua::start(config(pb, addr(pa), "bob")).await.unwrap();
    (a, b)
}

/// A places a call to B, B rings and answers; returns the call ids (A's, B's — the same).
async fn establish(
    a: &Ua,
    ra: &mut Receiver<UaEvent>,
    b: &Ua,
    rb: &mut Receiver<UaEvent>,
    from_user: &str,
) -> String {
    let target = format!("sip:200@{}", b.local_addr());
    let call = a
        .invite(&target, from_user, Some("Caller \"X\""), offer(40000))
        .await
        .unwrap();
    let UaEvent::Incoming {
        call: incoming,
        from_user: fu,
        from_display,
        to_user,
        sdp: Some(sdp_offer),
        source,
    } = next(rb, "Incoming").await
    else {
        panic!("expected Incoming with SDP");
    };
    assert_eq!(incoming, call);
    assert_eq!(fu, from_user);
    assert_eq!(from_display.as_deref(), Some("Caller \"X\""));
    assert_eq!(to_user, "200");
    assert_eq!(source.ip(), a.local_addr().ip());
    let n = sdp::negotiate(&sdp_offer, &[Codec::Pcma]).unwrap();
    assert_eq!((n.codec, n.pt, n.dtmf_pt), (Codec::Pcma, 8, Some(101)));
    b.ringing(&call, None);
    assert_eq!(
        next(ra, "Progress").await,
        UaEvent::Progress {
            call: call.clone(),
            code: 180,
            sdp: None
        }
    );
    let answer = sdp::answer(&n, addr(41000), 2);
    b.answer(&call, answer.clone());
    assert_eq!(
        next(ra, "Answered").await,
        UaEvent::Answered {
            call: call.clone(),
            sdp: Some(answer.clone())
        }
    );
    let back = sdp::parse_answer(&answer, &[Codec::Pcmu, Codec::Pcma]).unwrap();
    assert_eq!(back.remote, addr(41000));
    call
}

#[tokio::test]
async fn call_and_hang_up_both_directions() {
    let ((a, mut ra), (b, mut rb)) = pair().await;

    // A calls B, A hangs up.
    let call = establish(&a, &mut ra, &b, &mut rb, "100").await;
    a.bye(&call);
    assert_eq!(next(&mut rb, "Ended").await, UaEvent::Ended { call });

    // B calls A, the callee (A) hangs up.
    let call = establish(&b, &mut rb, &a, &mut ra, "555").await;
    a.bye(&call);
    assert_eq!(next(&mut rb, "Ended").await, UaEvent::Ended { call });

    quiet(&mut ra, 300).await;
    quiet(&mut rb, 0).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn cancel_before_answer() {
    let ((a, mut ra), (b, mut rb)) = pair().await;
    let target = format!("sip:200@{}", b.local_addr());
    let call = a.invite(&target, "100", None, offer(40000)).await.unwrap();
    assert!(matches!(
        next(&mut rb, "Incoming").await,
        UaEvent::Incoming { .. }
    ));
    b.ringing(&call, Some(offer(41000)));
    let UaEvent::Progress { code, sdp, .. } = next(&mut ra, "Progress").await else {
        panic!("expected Progress");
    };
    assert_eq!(code, 183);
    assert!(sdp.is_some());
    a.cancel(&call);
    assert_eq!(
        next(&mut rb, "Cancelled").await,
        UaEvent::Cancelled { call: call.clone() }
    );
    let UaEvent::Failed {
        call: failed, code, ..
    } = next(&mut ra, "Failed").await
    else {
        panic!("expected Failed");
    };
    assert_eq!((failed, code), (call.clone(), 487));
    // Answering a cancelled call does nothing.
    b.answer(&call, offer(41000));
    quiet(&mut ra, 300).await;
}

#[tokio::test]
async fn cancel_before_any_response_waits_for_provisional() {
    // RFC 3261 §9.1: CANCEL only after a provisional; ours comes with the 100 Trying.
    let ((a, mut ra), (b, mut rb)) = pair().await;
    let target = format!("sip:200@{}", b.local_addr());
    let call = a.invite(&target, "100", None, offer(40000)).await.unwrap();
    a.cancel(&call);
    assert!(matches!(
        next(&mut rb, "Incoming").await,
        UaEvent::Incoming { .. }
    ));
    assert_eq!(
        next(&mut rb, "Cancelled").await,
        UaEvent::Cancelled { call: call.clone() }
    );
    let UaEvent::Failed { code, .. } = next(&mut ra, "Failed").await else {
        panic!("expected Failed");
    };
    assert_eq!(code, 487);
}

#[tokio::test]
async fn reject_busy() {
    let ((a, mut ra), (b, mut rb)) = pair().await;
    let target = format!("sip:200@{}", b.local_addr());
    let call = a.invite(&target, "100", None, offer(40000)).await.unwrap();
    assert!(matches!(
        next(&mut rb, "Incoming").await,
        UaEvent::Incoming { .. }
    ));
    b.reject(&call, 486, "Busy Here");
    assert_eq!(
        next(&mut ra, "Failed").await,
        UaEvent::Failed {
            call,
            code: 486,
            reason: "Busy Here".into()
        }
    );
    quiet(&mut ra, 300).await;
    quiet(&mut rb, 0).await;
}

#[tokio::test]
async fn options_and_unknown_requests() {
    let (a, _ra) = Ua::start(config(0, addr(9), "alice")).await.unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = sock.local_addr().unwrap();
    let req = |method: &str, to_tag: &str| {
        format!(
            "{method} sip:alice@{ua} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{method}1;rport\r\n\
             From: <sip:x@{me}>;tag=f\r\nTo: <sip:alice@{ua}>{to_tag}\r\nCall-ID: c-{method}\r\n\
             CSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            ua = a.local_addr()
        )
    };
    let mut buf = vec![0u8; 4096];
    for (method, tag, expect) in [
        ("OPTIONS", "", "SIP/2.0 200 "),
        ("MESSAGE", "", "SIP/2.0 405 "),
        ("FOO", "", "SIP/2.0 501 "),
        ("BYE", ";tag=nope", "SIP/2.0 481 "),
        ("INFO", ";tag=nope", "SIP/2.0 481 "),
    ] {
        sock.send_to(req(method, tag).as_bytes(), a.local_addr())
            .await
            .unwrap();
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
            .await
            .expect("response")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(text.starts_with(expect), "{method}: {text}");
        // RFC 3581: received and rport filled in on the top Via.
        assert!(text.contains("received=127.0.0.1"), "{text}");
        assert!(text.contains(&format!("rport={}", me.port())), "{text}");
        if method == "OPTIONS" {
            assert!(text.contains("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS"));
        }
    }
    // Garbage is dropped without an answer, and the agent keeps working.
    sock.send_to(b"\x00\xffnot sip\r\n\r\n", a.local_addr())
        .await
        .unwrap();
    sock.send_to(
        b"INVITE sip:x SIP/2.0\r\nContent-Length: 99\r\n\r\n",
        a.local_addr(),
    )
    .await
    .unwrap();
    sock.send_to(
        req("OPTIONS", "")
            .replace("OPTIONS1", "OPTIONS2")
            .as_bytes(),
        a.local_addr(),
    )
    .await
    .unwrap();
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("response after garbage")
        .unwrap();
    assert!(buf[..n].starts_with(b"SIP/2.0 200 "));
}

/// A UDP relay between `a` (the only address on one side) and `b`: it sends every INVITE
/// twice (a retransmission B must absorb) and drops the first 200 OK and the first BYE
/// (which the senders must retransmit).
async fn lossy_relay(a: SocketAddr, b: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let local = sock.local_addr().unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let counter = dropped.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        let (mut dropped_ok, mut dropped_bye) = (false, false);
        loop {
            let Ok((n, src)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let data = &buf[..n];
            let dest = if src == a { b } else { a };
            if data.starts_with(b"SIP/2.0 200") && !dropped_ok {
                dropped_ok = true;
                counter.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            if data.starts_with(b"BYE ") && !dropped_bye {
                dropped_bye = true;
                counter.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            let _ = sock.send_to(data, dest).await;
            if data.starts_with(b"INVITE ") {
                let _ = sock.send_to(data, dest).await;
            }
        }
    });
    (local, dropped)
}

#[tokio::test]
async fn retransmissions_through_lossy_relay() {
    let (pa, pb) = (free_port(), free_port());
    let (relay, dropped) = lossy_relay(addr(pa), addr(pb)).await;
    let (a, mut ra) = Ua::start(config(pa, relay, "alice")).await.unwrap();
    let (b, mut rb) = Ua::start(config(pb, relay, "bob")).await.unwrap();

    let call = establish(&a, &mut ra, &b, &mut rb, "100").await;
    // B's BYE is dropped once and retransmitted after T1.
    b.bye(&call);
    assert_eq!(next(&mut ra, "Ended").await, UaEvent::Ended { call });
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
    // The duplicated INVITE gave no second Incoming, the retransmitted 200 no second Answered.
    quiet(&mut ra, 1500).await;
    quiet(&mut rb, 0).await;
}

// ----- SIPp interop -----

/// A SIPp run of a scenario of drivers/tests/sipp/ (the testkit's runner), awaited without
/// blocking the runtime the `Ua` runs on.
struct SippRun(SippProc);

impl SippRun {
    fn start(scenario: &str, port: u16) -> SippRun {
        SippRun(
            Sipp::new(scenario)
                .scenarios(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp"))
                .local_port(port)
                .timeout(Duration::from_secs(20))
                .start(),
        )
    }

    async fn finish(mut self) -> SippResult {
        for _ in 0..300 {
            if let Some(r) = self.0.try_wait() {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.0.kill();
        panic!("sipp did not finish within 30 s:\n{}", self.0.log());
    }

    /// Waits for SIPp to exit and asserts it failed (a call in the scenario failed).
    async fn expect_failure(self) {
        let r = self.finish().await;
        assert!(!r.success, "sipp unexpectedly succeeded");
    }

    /// Waits for SIPp to exit and asserts it succeeded (exit status 0).
    async fn expect_success(self) {
        let r = self.finish().await;
        assert!(r.success, "sipp failed: exit {:?}\n{}", r.code, r.log);
    }
}

#[tokio::test]
async fn sipp_registrar_with_digest_auth() {
    let port = free_port();
    let run = SippRun::start("register_auth.xml", port);
    let mut cfg = config(0, addr(port), "gsmgw");
    cfg.register = true;
    cfg.register_expires = 120;
    let (ua, mut rx) = Ua::start(cfg).await.unwrap();
    // The registrar grants 60 s via the Contact's expires parameter.
    assert_eq!(
        next(&mut rx, "Registered").await,
        UaEvent::Registered { expires: 60 }
    );
    // Un-REGISTER, authenticated with the same nonce (nc=2), which SIPp verifies too.
    ua.shutdown().await;
    run.expect_success().await;
}

#[tokio::test]
async fn sipp_answers_and_hangs_up() {
    let port = free_port();
    let run = SippRun::start("uas_answer.xml", port);
    let (ua, mut rx) = Ua::start(config(0, addr(port), "gsmgw")).await.unwrap();
    let call = ua
        .invite(
            &format!("sip:service@127.0.0.1:{port}"),
            "100",
            Some("Gateway"),
            offer(40000),
        )
        .await
        .unwrap();
    assert_eq!(
        next(&mut rx, "Progress").await,
        UaEvent::Progress {
            call: call.clone(),
            code: 180,
            sdp: None
        }
    );
    let UaEvent::Answered {
        call: answered,
        sdp: Some(answer),
    } = next(&mut rx, "Answered").await
    else {
        panic!("expected Answered with SDP");
    };
    assert_eq!(answered, call);
    let n = sdp::parse_answer(&answer, &[Codec::Pcmu, Codec::Pcma]).unwrap();
    assert_eq!((n.codec, n.pt, n.dtmf_pt), (Codec::Pcma, 8, Some(101)));
    assert_eq!(next(&mut rx, "Ended").await, UaEvent::Ended { call });
    run.expect_success().await;
    ua.shutdown().await;
}

#[tokio::test]
async fn sipp_registrar_rejects_wrong_password() {
    // Proves the registrar scenario really verifies the digest.
    let port = free_port();
    let run = SippRun::start("register_auth.xml", port);
    let mut cfg = config(0, addr(port), "gsmgw");
    cfg.register = true;
    cfg.password = "wrong".into();
    let (ua, mut rx) = Ua::start(cfg).await.unwrap();
    assert_eq!(
        next(&mut rx, "RegistrationFailed").await,
        UaEvent::RegistrationFailed {
            code: 403,
            reason: "Forbidden".into()
        }
    );
    ua.shutdown().await;
    run.expect_failure().await;
}

#[tokio::test]
async fn sipp_challenges_invite_and_we_hang_up() {
    let port = free_port();
    let run = SippRun::start("uas_invite_auth.xml", port);
    let (ua, mut rx) = Ua::start(config(0, addr(port), "gsmgw")).await.unwrap();
    let call = ua
        .invite(
            &format!("sip:200@127.0.0.1:{port}"),
            "100",
            None,
            offer(40000),
        )
        .await
        .unwrap();
    let UaEvent::Answered {
        call: answered,
        sdp: Some(answer),
    } = next(&mut rx, "Answered").await
    else {
        panic!("expected Answered with SDP");
    };
    assert_eq!(answered, call);
    let n = sdp::parse_answer(&answer, &[Codec::Pcmu, Codec::Pcma]).unwrap();
    assert_eq!((n.codec, n.pt, n.dtmf_pt), (Codec::Pcmu, 0, None));
    ua.bye(&call);
    run.expect_success().await;
    quiet(&mut rx, 200).await;
    ua.shutdown().await;
}

/// Reads datagrams until one starts with `prefix` (skipping e.g. 100 Trying).
async fn recv_starting(sock: &UdpSocket, prefix: &str) -> String {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {prefix}"))
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if text.starts_with(prefix) {
            return text;
        }
        eprintln!("skipped: {text}");
    }
}

fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {msg}"))
}

#[tokio::test]
async fn reinvite_hold_and_resume() {
    let (ua, mut rx) = Ua::start(config(0, addr(9), "gw")).await.unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = peer.local_addr().unwrap();
    let target = ua.local_addr();
    let body = offer(42000);
    let invite = |cseq: u32, branch: &str, to_tag: &str, body: &str| {
        format!(
            "INVITE sip:7@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch}\r\n\
             f: \"Peer\" <sip:555@{me}>;tag=p1\r\nt: <sip:7@{target}>{to_tag}\r\ni: reinv-1\r\n\
             CSeq: {cseq} INVITE\r\nm: <sip:555@{me}>\r\nc: application/sdp\r\n\
             l: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let first = invite(1, "z9hG4bKinv1", "", &body);
    peer.send_to(first.as_bytes(), target).await.unwrap();
    let UaEvent::Incoming {
        call,
        from_user,
        from_display,
        to_user,
        ..
    } = next(&mut rx, "Incoming").await
    else {
        panic!("expected Incoming");
    };
    assert_eq!(
        (
            from_user.as_str(),
            from_display.as_deref(),
            to_user.as_str()
        ),
        ("555", Some("Peer"), "7")
    );
    // A retransmitted INVITE is absorbed (answered with the last response: 100 Trying).
    peer.send_to(first.as_bytes(), target).await.unwrap();
    recv_starting(&peer, "SIP/2.0 100").await; // to the first
    recv_starting(&peer, "SIP/2.0 100").await; // to the retransmission
    let ours = sdp::offer(addr(43000), &[Codec::Pcmu], 5);
    ua.answer(&call, ours.clone());
    let ok = recv_starting(&peer, "SIP/2.0 200").await;
    assert!(ok.ends_with(&ours));
    let to = header(&ok, "To").to_string();
    let ack = format!(
        "ACK sip:gw@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKack1\r\n\
         From: <sip:555@{me}>;tag=p1\r\nTo: {to}\r\nCall-ID: reinv-1\r\nCSeq: 1 ACK\r\n\r\n"
    );
    peer.send_to(ack.as_bytes(), target).await.unwrap();
    // Hold: re-INVITE with sendonly; we answer our last SDP as recvonly and report the hold.
    let tag = to.split(";tag=").nth(1).unwrap().to_string();
    let held_offer = body.replace("sendrecv", "sendonly");
    let reinvite = invite(2, "z9hG4bKinv2", &format!(";tag={tag}"), &held_offer);
    peer.send_to(reinvite.as_bytes(), target).await.unwrap();
    let ok2 = recv_starting(&peer, "SIP/2.0 200").await;
    assert!(ok2.contains("CSeq: 2 INVITE"), "{ok2}");
    assert!(
        ok2.ends_with(&ours.replace("a=sendrecv", "a=recvonly")),
        "{ok2}"
    );
    assert_eq!(
        next(&mut rx, "Reinvite").await,
        UaEvent::Reinvite {
            call: call.clone(),
            held: true,
            sdp: Some(held_offer)
        }
    );
    // Resume: sendrecv again.
    let resume = invite(3, "z9hG4bKinv3", &format!(";tag={tag}"), &body);
    peer.send_to(resume.as_bytes(), target).await.unwrap();
    let ok3 = recv_starting(&peer, "SIP/2.0 200").await;
    assert!(ok3.contains("CSeq: 3 INVITE"), "{ok3}");
    assert!(ok3.ends_with(&ours), "{ok3}");
    assert_eq!(
        next(&mut rx, "Reinvite").await,
        UaEvent::Reinvite {
            call,
            held: false,
            sdp: Some(body.clone())
        }
    );
    quiet(&mut rx, 200).await;
    ua.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn invite_timer_a_and_b_give_408() {
    // A silent server gets the INVITE retransmitted (Timer A doubling from 500 ms) until
    // Timer B (32 s) fails the call with 408.
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (ua, mut rx) = Ua::start(config(0, sink.local_addr().unwrap(), "gw"))
        .await
        .unwrap();
    let call = ua
        .invite("sip:1@127.0.0.1", "100", None, offer(40000))
        .await
        .unwrap();
    // Virtual time (tokio's paused clock advances when every task waits): 32 s take none.
    let start = tokio::time::Instant::now();
    let ev = tokio::time::timeout(Duration::from_secs(40), rx.recv())
        .await
        .expect("Failed within 40 s")
        .unwrap();
    assert_eq!(
        ev,
        UaEvent::Failed {
            call,
            code: 408,
            reason: "Request Timeout".into()
        }
    );
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(31) && elapsed <= Duration::from_secs(34),
        "{elapsed:?}"
    );
    // Sent at 0, 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s.
    sink.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let mut invites = 0;
    while let Ok(n) = sink.recv(&mut buf) {
        assert!(buf[..n].starts_with(b"INVITE "));
        invites += 1;
    }
    assert_eq!(invites, 7);
}

// ----- Record-Route and the route set (RFC 3261 §12.1, §16.12) -----

/// The next datagram on `sock` within `ms` milliseconds (text and source), if any.
async fn recv_within(sock: &UdpSocket, ms: u64) -> Option<(String, SocketAddr)> {
    let mut buf = vec![0u8; 65536];
    match tokio::time::timeout(Duration::from_millis(ms), sock.recv_from(&mut buf)).await {
        Ok(Ok((n, src))) => Some((String::from_utf8_lossy(&buf[..n]).to_string(), src)),
        _ => None,
    }
}

/// Reads datagrams on `sock` until one starts with `prefix`; panics if none does in 5 s.
async fn expect_on(sock: &UdpSocket, prefix: &str, what: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some((text, _)) = recv_within(sock, left.as_millis() as u64).await else {
            panic!(
                "{what}: no {prefix} arrived on {}",
                sock.local_addr().unwrap()
            );
        };
        if text.starts_with(prefix) {
            return text;
        }
    }
}

/// Nothing but `allowed` start lines arrives on `sock` within `ms` milliseconds.
async fn nothing_on(sock: &UdpSocket, ms: u64, allowed: &[&str], what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match recv_within(sock, left.as_millis() as u64).await {
            None => return,
            Some((text, _)) if allowed.iter().any(|a| text.starts_with(a)) => {}
            Some((text, _)) => panic!("{what}: unexpected datagram:\n{text}"),
        }
    }
}

/// The values of every line of header `name` (full name, case-insensitive), in order.
fn lines_of(msg: &str, name: &str) -> Vec<String> {
    gsmgw_testkit::sipp::header_lines(msg, name)
}

/// The Route entries of a request, one per name-addr, in order (lines and commas both split).
fn route_entries(msg: &str) -> Vec<String> {
    lines_of(msg, "Route")
        .iter()
        .flat_map(|v| v.split(", ").map(str::to_string).collect::<Vec<_>>())
        .collect()
}

fn request_uri(msg: &str) -> &str {
    msg.split(' ').nth(1).unwrap_or("")
}

/// Three loopback sockets: the caller or PBX, the proxy nearest to us, a farther proxy.
async fn peer_and_proxies() -> (UdpSocket, UdpSocket, UdpSocket) {
    (
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
    )
}

fn raw_invite(target: SocketAddr, me: SocketAddr, call_id: &str, extra: &str) -> String {
    let body = offer(42000);
    format!(
        "INVITE sip:7@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id}\r\n\
         From: <sip:555@{me}>;tag=p1\r\nTo: <sip:7@{target}>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:555@{me}>\r\n{extra}Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// As UAS: the 183 and the 200 carry the INVITE's Record-Route lines verbatim and in order; our
/// BYE goes to the first route's address (not to the caller) with the route set as Route
/// headers and the caller's Contact as Request-URI; the BYE's 200 comes back by Via.
#[tokio::test]
async fn uas_copies_record_route_and_sends_bye_through_the_route_set() {
    let (ua, mut rx) = Ua::start(config(0, addr(9), "gw")).await.unwrap();
    let target = ua.local_addr();
    let (peer, near, far) = peer_and_proxies().await;
    let (me, n, f) = (
        peer.local_addr().unwrap(),
        near.local_addr().unwrap().port(),
        far.local_addr().unwrap().port(),
    );
    let rr = [
        format!("<sip:127.0.0.1:{n};lr;rr=near>"),
        format!("<sip:127.0.0.1:{f};lr;rr=mid>, <sip:127.0.0.1:{f};lr;rr=far>"),
    ];
    let extra = format!("Record-Route: {}\r\nRecord-Route: {}\r\n", rr[0], rr[1]);
    let invite = raw_invite(target, me, "rr-uas-1", &extra);
    peer.send_to(invite.as_bytes(), target).await.unwrap();
    let UaEvent::Incoming { call, .. } = next(&mut rx, "Incoming").await else {
        panic!("expected Incoming");
    };
    ua.ringing(&call, Some(offer(43000)));
    let early = expect_on(&peer, "SIP/2.0 183", "183 to the caller").await;
    assert_eq!(lines_of(&early, "Record-Route"), rr, "{early}");
    ua.answer(&call, offer(43000));
    let ok = expect_on(&peer, "SIP/2.0 200", "200 to the caller").await;
    assert_eq!(lines_of(&ok, "Record-Route"), rr, "{ok}");
    let to = lines_of(&ok, "To").remove(0);
    // The caller's ACK arrives through the proxy in real life; from where does not matter.
    let ack = format!(
        "ACK sip:gw@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKack-rr1\r\n\
         From: <sip:555@{me}>;tag=p1\r\nTo: {to}\r\nCall-ID: rr-uas-1\r\nCSeq: 1 ACK\r\n\r\n"
    );
    peer.send_to(ack.as_bytes(), target).await.unwrap();
    ua.bye(&call);
    let bye = expect_on(&near, "BYE ", "BYE at the nearest proxy").await;
    assert_eq!(request_uri(&bye), format!("sip:555@{me}"), "{bye}");
    assert_eq!(
        route_entries(&bye),
        [
            format!("<sip:127.0.0.1:{n};lr;rr=near>"),
            format!("<sip:127.0.0.1:{f};lr;rr=mid>"),
            format!("<sip:127.0.0.1:{f};lr;rr=far>"),
        ],
        "{bye}"
    );
    nothing_on(
        &peer,
        300,
        &["SIP/2.0 200"],
        "the caller gets no BYE directly",
    )
    .await;
    nothing_on(&far, 0, &[], "the farther proxy").await;
    // The 200 to the BYE goes back by Via (here: from the proxy's socket).
    let via = lines_of(&bye, "Via").remove(0);
    let bye_ok = format!(
        "SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: rr-uas-1\r\n\
         CSeq: {}\r\nContent-Length: 0\r\n\r\n",
        lines_of(&bye, "From")[0],
        lines_of(&bye, "To")[0],
        lines_of(&bye, "CSeq")[0]
    );
    near.send_to(bye_ok.as_bytes(), target).await.unwrap();
    nothing_on(
        &near,
        1200,
        &[],
        "the BYE is not retransmitted once answered",
    )
    .await;
    quiet(&mut rx, 0).await;
    ua.shutdown().await;
}

/// A UAS answering our INVITE: what it sends back, with `rr` header lines.
fn response_to_invite(invite: &str, code: u16, reason: &str, contact: &str, rr: &[&str]) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for h in ["Via", "From", "Call-ID", "CSeq"] {
        for v in lines_of(invite, h) {
            out.push_str(&format!("{h}: {v}\r\n"));
        }
    }
    out.push_str(&format!("To: {};tag=pbx1\r\n", lines_of(invite, "To")[0]));
    for r in rr {
        out.push_str(&format!("Record-Route: {r}\r\n"));
    }
    if code < 300 {
        out.push_str(&format!("Contact: {contact}\r\n"));
    }
    if code == 200 {
        let body = sdp::answer(
            &sdp::negotiate(&offer(40000), &[Codec::Pcmu]).unwrap(),
            addr(41000),
            2,
        );
        out.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        out.push_str("Content-Length: 0\r\n\r\n");
    }
    out
}

/// As UAC: the route set is the 2xx's Record-Route reversed. The ACK (and its repeat for a
/// retransmitted 2xx) and our BYE go to the last Record-Route entry's address — the proxy next
/// to us, not the server — with Route headers in reversed order and the PBX's Contact as
/// Request-URI.
#[tokio::test]
async fn uac_routes_ack_and_bye_through_the_reversed_record_route() {
    let (pbx, near, far) = peer_and_proxies().await;
    let server = pbx.local_addr().unwrap();
    let (n, f) = (
        near.local_addr().unwrap().port(),
        far.local_addr().unwrap().port(),
    );
    let (ua, mut rx) = Ua::start(config(0, server, "gw")).await.unwrap();
    let call = ua
        .invite(&format!("sip:100@{server}"), "100", None, offer(40000))
        .await
        .unwrap();
    let invite = expect_on(&pbx, "INVITE ", "INVITE at the server").await;
    let contact = format!("<sip:pbx@{server};transport=udp>");
    let pbx_side = format!("<sip:127.0.0.1:{f};lr;rr=pbxside>");
    let gw_side = format!("<sip:127.0.0.1:{n};lr;rr=gwside>");
    let ok = response_to_invite(&invite, 200, "OK", &contact, &[&pbx_side, &gw_side]);
    pbx.send_to(ok.as_bytes(), ua.local_addr()).await.unwrap();
    assert!(matches!(
        next(&mut rx, "Answered").await,
        UaEvent::Answered { .. }
    ));
    for round in ["ACK", "ACK for the retransmitted 200"] {
        let ack = expect_on(&near, "ACK ", round).await;
        assert_eq!(
            request_uri(&ack),
            format!("sip:pbx@{server};transport=udp"),
            "{ack}"
        );
        assert_eq!(
            route_entries(&ack),
            [gw_side.clone(), pbx_side.clone()],
            "{ack}"
        );
        assert_eq!(lines_of(&ack, "CSeq"), ["1 ACK"], "{ack}");
        if round == "ACK" {
            pbx.send_to(ok.as_bytes(), ua.local_addr()).await.unwrap();
        }
    }
    ua.bye(&call);
    let bye = expect_on(&near, "BYE ", "BYE at the nearest proxy").await;
    assert_eq!(
        request_uri(&bye),
        format!("sip:pbx@{server};transport=udp"),
        "{bye}"
    );
    assert_eq!(route_entries(&bye), [gw_side, pbx_side], "{bye}");
    nothing_on(&pbx, 300, &[], "the server gets no ACK or BYE directly").await;
    nothing_on(&far, 0, &[], "the farther proxy").await;
    ua.shutdown().await;
}

/// The ACK for a non-2xx final response belongs to the INVITE transaction (RFC 3261
/// §17.1.1.3): it goes where the INVITE went, with the INVITE's Request-URI and no route set,
/// whatever Record-Route the response carries.
#[tokio::test]
async fn uac_ack_for_an_error_goes_where_the_invite_went() {
    let (pbx, near, _far) = peer_and_proxies().await;
    let server = pbx.local_addr().unwrap();
    let n = near.local_addr().unwrap().port();
    let (ua, mut rx) = Ua::start(config(0, server, "gw")).await.unwrap();
    let call = ua
        .invite(&format!("sip:100@{server}"), "100", None, offer(40000))
        .await
        .unwrap();
    let invite = expect_on(&pbx, "INVITE ", "INVITE at the server").await;
    let rr = format!("<sip:127.0.0.1:{n};lr>");
    let busy = response_to_invite(&invite, 486, "Busy Here", "", &[&rr]);
    pbx.send_to(busy.as_bytes(), ua.local_addr()).await.unwrap();
    assert_eq!(
        next(&mut rx, "Failed").await,
        UaEvent::Failed {
            call,
            code: 486,
            reason: "Busy Here".into()
        }
    );
    let ack = expect_on(&pbx, "ACK ", "ACK at the server").await;
    assert_eq!(request_uri(&ack), format!("sip:100@{server}"), "{ack}");
    assert!(lines_of(&ack, "Route").is_empty(), "{ack}");
    assert_eq!(lines_of(&ack, "Via"), lines_of(&invite, "Via"), "{ack}");
    nothing_on(&near, 300, &[], "the proxy named in Record-Route").await;
    ua.shutdown().await;
}

/// Hostile or odd Record-Route: more entries than we keep, or one that is not a SIP URI, is
/// refused (400) without a call; a strict router (no `;lr`) gets the request with its URI as
/// Request-URI and the remote target as the last Route; a route naming a host by DNS name
/// falls back to the server. Nothing panics, and the user agent keeps working.
#[tokio::test]
async fn odd_record_routes_are_refused_or_handled() {
    let (pbx, near, _far) = peer_and_proxies().await;
    let server = pbx.local_addr().unwrap();
    let n = near.local_addr().unwrap().port();
    let (ua, mut rx) = Ua::start(config(0, server, "gw")).await.unwrap();
    let target = ua.local_addr();
    let me = pbx.local_addr().unwrap();

    let many: String = (0..17)
        .map(|i| format!("Record-Route: <sip:127.0.0.1:{n};lr;hop={i}>\r\n"))
        .collect();
    for (id, extra) in [
        ("rr-many", many),
        ("rr-bad", "Record-Route: <sip:\r\n".to_string()),
        ("rr-tel", "Record-Route: <tel:+123>\r\n".to_string()),
        (
            "rr-list",
            format!(
                "Record-Route: {}\r\n",
                vec![format!("<sip:127.0.0.1:{n};lr>"); 17].join(", ")
            ),
        ),
    ] {
        pbx.send_to(raw_invite(target, me, id, &extra).as_bytes(), target)
            .await
            .unwrap();
        let r = expect_on(&pbx, "SIP/2.0 4", id).await;
        assert!(r.starts_with("SIP/2.0 400 "), "{id}: {r}");
    }
    quiet(&mut rx, 200).await;

    // Strict routing: the first route becomes the Request-URI.
    let call = ua
        .invite(&format!("sip:100@{server}"), "100", None, offer(40000))
        .await
        .unwrap();
    let invite = expect_on(&pbx, "INVITE ", "INVITE at the server").await;
    let contact = format!("<sip:pbx@{server}>");
    let strict = format!("<sip:127.0.0.1:{n};rr=strict>");
    let ok = response_to_invite(&invite, 200, "OK", &contact, &[&strict]);
    pbx.send_to(ok.as_bytes(), ua.local_addr()).await.unwrap();
    assert!(matches!(
        next(&mut rx, "Answered").await,
        UaEvent::Answered { .. }
    ));
    let ack = expect_on(&near, "ACK ", "ACK at the strict router").await;
    assert_eq!(
        request_uri(&ack),
        format!("sip:127.0.0.1:{n};rr=strict"),
        "{ack}"
    );
    assert_eq!(route_entries(&ack), std::slice::from_ref(&contact), "{ack}");
    ua.bye(&call);
    let bye = expect_on(&near, "BYE ", "BYE at the strict router").await;
    assert_eq!(
        request_uri(&bye),
        format!("sip:127.0.0.1:{n};rr=strict"),
        "{bye}"
    );

    // A route by DNS name is not resolved: the request goes to the server, Route kept.
    let call = ua
        .invite(&format!("sip:101@{server}"), "100", None, offer(40000))
        .await
        .unwrap();
    let invite = expect_on(&pbx, "INVITE ", "second INVITE at the server").await;
    let named = "<sip:proxy.example.invalid;lr>";
    let ok = response_to_invite(&invite, 200, "OK", &contact, &[named]);
    pbx.send_to(ok.as_bytes(), ua.local_addr()).await.unwrap();
    assert!(matches!(
        next(&mut rx, "Answered").await,
        UaEvent::Answered { .. }
    ));
    let ack = expect_on(&pbx, "ACK ", "ACK at the server").await;
    assert_eq!(route_entries(&ack), [named.to_string()], "{ack}");
    ua.bye(&call);
    let bye = expect_on(&pbx, "BYE ", "BYE at the server").await;
    assert_eq!(request_uri(&bye), format!("sip:pbx@{server}"), "{bye}");
    ua.shutdown().await;
}

// ----- hostile input: trust, inbound authentication, dialog matching, floods -----

/// An INVITE to Request-URI `uri` from `me` (tag `p1`), with `extra` header lines.
fn invite_to(uri: &str, me: SocketAddr, call_id: &str, cseq: u32, extra: &str) -> String {
    let body = offer(42000);
    format!(
        "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id}-{cseq}\r\n\
         From: <sip:555@{me}>;tag=p1\r\nTo: <sip:7@127.0.0.1>\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} INVITE\r\nContact: <sip:555@{me}>\r\n{extra}Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn with_inbound(mut cfg: UaConfig, inbound: Inbound) -> UaConfig {
    cfg.inbound = inbound;
    cfg
}

/// Every datagram `sock` receives within `ms` milliseconds, in order.
async fn all_within(sock: &UdpSocket, ms: u64) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match recv_within(sock, left.as_millis() as u64).await {
            Some((text, _)) => out.push(text),
            None => return out,
        }
    }
}

fn start_lines(msgs: &[String]) -> Vec<&str> {
    msgs.iter()
        .map(|m| m.split("\r\n").next().unwrap_or(""))
        .collect()
}

/// An INVITE from an untrusted address gets exactly one 403 (no 100 Trying, no retransmission
/// within 4·T1, no transaction, no event); with `untrusted = drop` nothing at all.
#[tokio::test]
async fn untrusted_invite_gets_one_stateless_403_or_nothing() {
    for untrusted in [Untrusted::Reject, Untrusted::Drop] {
        let inbound = Inbound {
            trusted: vec![[127, 0, 0, 1].into()],
            untrusted,
            ..Inbound::default()
        };
        let (ua, mut rx) = Ua::start(with_inbound(config(0, addr(9), "gw"), inbound))
            .await
            .unwrap();
        let target = ua.local_addr();
        let stranger = UdpSocket::bind("127.0.0.2:0").await.unwrap();
        let me = stranger.local_addr().unwrap();
        let invite = invite_to(&format!("sip:7@{target}"), me, "untrusted-1", 1, "");
        stranger.send_to(invite.as_bytes(), target).await.unwrap();
        let got = all_within(&stranger, 2000).await;
        let want: &[&str] = match untrusted {
            Untrusted::Reject => &["SIP/2.0 403 Forbidden"],
            Untrusted::Drop => &[],
        };
        assert_eq!(start_lines(&got), want, "{untrusted:?}: {got:?}");
        // Its ACK and an OPTIONS from there: nothing kept, nothing answered but the refusal.
        let options = format!(
            "OPTIONS sip:gw@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKo1\r\n\
             From: <sip:x@{me}>;tag=o\r\nTo: <sip:gw@{target}>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\n\r\n"
        );
        stranger.send_to(options.as_bytes(), target).await.unwrap();
        let got = all_within(&stranger, 300).await;
        assert_eq!(start_lines(&got), want, "{untrusted:?} OPTIONS: {got:?}");
        quiet(&mut rx, 0).await;
        ua.shutdown().await;
    }
}

/// Establishes an incoming call from `peer` (INVITE, 200, returns (call, the 200's To)).
async fn incoming_answered(
    ua: &Ua,
    rx: &mut Receiver<UaEvent>,
    peer: &UdpSocket,
    call_id: &str,
) -> (String, String) {
    let target = ua.local_addr();
    let me = peer.local_addr().unwrap();
    let invite = raw_invite(target, me, call_id, "");
    peer.send_to(invite.as_bytes(), target).await.unwrap();
    let UaEvent::Incoming { call, .. } = next(rx, "Incoming").await else {
        panic!("expected Incoming");
    };
    ua.answer(&call, offer(43000));
    let ok = expect_on(peer, "SIP/2.0 200", "200 to the caller").await;
    (call, lines_of(&ok, "To").remove(0))
}

fn in_dialog(
    method: &str,
    target: SocketAddr,
    me: SocketAddr,
    call_id: &str,
    from_tag: &str,
    to: &str,
    cseq: u32,
) -> String {
    format!(
        "{method} sip:gw@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{method}{cseq}{from_tag}\r\n\
         From: <sip:555@{me}>;tag={from_tag}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    )
}

/// An ACK with another To tag does not confirm the dialog: our 200 is still retransmitted
/// until the right ACK arrives.
#[tokio::test]
async fn ack_with_a_wrong_to_tag_does_not_confirm_the_call() {
    let (ua, mut rx) = Ua::start(config(0, addr(9), "gw")).await.unwrap();
    let target = ua.local_addr();
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = peer.local_addr().unwrap();
    let (_call, to) = incoming_answered(&ua, &mut rx, &peer, "ack-tag-1").await;
    let forged_to = format!("<sip:7@{target}>;tag=not-ours");
    let ack = in_dialog("ACK", target, me, "ack-tag-1", "p1", &forged_to, 1);
    peer.send_to(ack.as_bytes(), target).await.unwrap();
    expect_on(
        &peer,
        "SIP/2.0 200",
        "the 200 retransmitted after a forged ACK",
    )
    .await;
    let ack = in_dialog("ACK", target, me, "ack-tag-1", "p1", &to, 1);
    peer.send_to(ack.as_bytes(), target).await.unwrap();
    // Let a retransmission already on its way pass, then silence.
    let _ = recv_within(&peer, 100).await;
    nothing_on(&peer, 1500, &[], "no retransmission after the right ACK").await;
    quiet(&mut rx, 0).await;
    ua.shutdown().await;
}

/// A BYE with a wrong To tag or a wrong From tag gets 481 and the call stays up; the right
/// one ends it.
#[tokio::test]
async fn bye_with_wrong_dialog_tags_gets_481_and_the_call_stays() {
    let (ua, mut rx) = Ua::start(config(0, addr(9), "gw")).await.unwrap();
    let target = ua.local_addr();
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = peer.local_addr().unwrap();
    let (call, to) = incoming_answered(&ua, &mut rx, &peer, "bye-tag-1").await;
    let ack = in_dialog("ACK", target, me, "bye-tag-1", "p1", &to, 1);
    peer.send_to(ack.as_bytes(), target).await.unwrap();
    let forged_to = format!("<sip:7@{target}>;tag=not-ours");
    for (from_tag, to, what) in [
        ("p1", forged_to.as_str(), "wrong To tag"),
        ("intruder", to.as_str(), "wrong From tag"),
    ] {
        let bye = in_dialog("BYE", target, me, "bye-tag-1", from_tag, to, 2);
        peer.send_to(bye.as_bytes(), target).await.unwrap();
        let r = expect_on(&peer, "SIP/2.0 ", what).await;
        assert!(r.starts_with("SIP/2.0 481"), "{what}: {r}");
        quiet(&mut rx, 100).await;
    }
    let bye = in_dialog("BYE", target, me, "bye-tag-1", "p1", &to, 3);
    peer.send_to(bye.as_bytes(), target).await.unwrap();
    let r = expect_on(&peer, "SIP/2.0 ", "the right BYE").await;
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    assert_eq!(next(&mut rx, "Ended").await, UaEvent::Ended { call });
    ua.shutdown().await;
}

/// contact-token: the registered Contact carries the token; an INVITE from the PBX's own
/// address without it (or with another) gets one 403 and no event; with it, the call comes in.
#[tokio::test]
async fn contact_token_is_registered_and_required() {
    let pbx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut cfg = config(0, pbx.local_addr().unwrap(), "gw");
    cfg.register = true;
    cfg.inbound = Inbound {
        trusted: vec![[127, 0, 0, 1].into()],
        auth: InboundAuth::ContactToken,
        ..Inbound::default()
    };
    let (ua, mut rx) = Ua::start(cfg).await.unwrap();
    let target = ua.local_addr();
    let token = ua.contact_token().to_string();
    assert!(token.len() >= 16, "{token}");
    let reg = expect_on(&pbx, "REGISTER ", "REGISTER").await;
    let contact = lines_of(&reg, "Contact").remove(0);
    assert_eq!(contact, format!("<sip:gw@{target};gwtoken={token}>"));
    let mut ok = "SIP/2.0 200 OK\r\n".to_string();
    for h in ["Via", "From", "To", "Call-ID", "CSeq", "Contact"] {
        for v in lines_of(&reg, h) {
            ok.push_str(&format!("{h}: {v}\r\n"));
        }
    }
    ok.push_str("Expires: 300\r\nContent-Length: 0\r\n\r\n");
    pbx.send_to(ok.as_bytes(), target).await.unwrap();
    assert!(matches!(
        next(&mut rx, "Registered").await,
        UaEvent::Registered { .. }
    ));
    let me = pbx.local_addr().unwrap();
    for (i, uri) in [
        format!("sip:+380671234567@{target}"),
        format!("sip:+380671234567@{target};gwtoken=0123456789abcdef0123456789abcdef"),
        format!(
            "sip:+380671234567@{target};gwtoken={}",
            &token[..token.len() - 1]
        ),
    ]
    .iter()
    .enumerate()
    {
        let invite = invite_to(uri, me, &format!("tok-bad-{i}"), 1, "");
        pbx.send_to(invite.as_bytes(), target).await.unwrap();
        let got = all_within(&pbx, 1200).await;
        assert_eq!(
            start_lines(&got),
            ["SIP/2.0 403 Forbidden"],
            "{uri}: {got:?}"
        );
        quiet(&mut rx, 0).await;
    }
    let uri = format!("sip:+380671234567@{target};gwtoken={token}");
    let invite = invite_to(&uri, me, "tok-good", 1, "");
    pbx.send_to(invite.as_bytes(), target).await.unwrap();
    expect_on(
        &pbx,
        "SIP/2.0 100",
        "100 Trying for the INVITE with the token",
    )
    .await;
    let UaEvent::Incoming { to_user, .. } = next(&mut rx, "Incoming").await else {
        panic!("expected Incoming");
    };
    assert_eq!(to_user, "+380671234567");
    ua.shutdown().await;
}

/// digest: an INVITE without credentials gets a stateless 407 (qop=auth); a wrong password
/// 403; the right answer brings the call in; the same answer replayed with another Call-ID is
/// refused.
#[tokio::test]
async fn digest_inbound_challenges_and_checks_the_pbx() {
    let inbound = Inbound {
        trusted: vec![[127, 0, 0, 1].into()],
        auth: InboundAuth::Digest {
            username: "pbx".into(),
            password: "in-secret".into(),
        },
        ..Inbound::default()
    };
    let (ua, mut rx) = Ua::start(with_inbound(config(0, addr(9), "gw"), inbound))
        .await
        .unwrap();
    let target = ua.local_addr();
    let pbx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = pbx.local_addr().unwrap();
    let uri = format!("sip:+380671234567@{target}");
    pbx.send_to(invite_to(&uri, me, "dig-1", 1, "").as_bytes(), target)
        .await
        .unwrap();
    let got = all_within(&pbx, 1200).await;
    assert_eq!(
        start_lines(&got),
        ["SIP/2.0 407 Proxy Authentication Required"],
        "{got:?}"
    );
    let challenge = Challenge::parse(&lines_of(&got[0], "Proxy-Authenticate")[0]).unwrap();
    assert!(challenge.qop_auth);
    quiet(&mut rx, 0).await;
    let answer = |password: &str, cnonce: &str| {
        format!(
            "Proxy-Authorization: {}\r\n",
            challenge.authorization("pbx", password, "INVITE", &uri, 1, cnonce)
        )
    };
    pbx.send_to(
        invite_to(&uri, me, "dig-1", 2, &answer("wrong", "c1")).as_bytes(),
        target,
    )
    .await
    .unwrap();
    let got = all_within(&pbx, 1200).await;
    assert_eq!(start_lines(&got), ["SIP/2.0 403 Forbidden"], "{got:?}");
    quiet(&mut rx, 0).await;
    let good = answer("in-secret", "c2");
    pbx.send_to(invite_to(&uri, me, "dig-1", 3, &good).as_bytes(), target)
        .await
        .unwrap();
    expect_on(&pbx, "SIP/2.0 100", "100 Trying once authenticated").await;
    assert!(matches!(
        next(&mut rx, "Incoming").await,
        UaEvent::Incoming { .. }
    ));
    pbx.send_to(
        invite_to(&uri, me, "dig-replay", 1, &good).as_bytes(),
        target,
    )
    .await
    .unwrap();
    let got = all_within(&pbx, 1200).await;
    assert_eq!(
        start_lines(&got),
        ["SIP/2.0 403 Forbidden"],
        "replayed: {got:?}"
    );
    quiet(&mut rx, 0).await;
    ua.shutdown().await;
}

/// Over the per-source rate limit datagrams are dropped; over the size cap too.
#[tokio::test]
async fn rate_limit_and_size_cap() {
    let inbound = Inbound {
        rate_per_source: 5,
        ..Inbound::default()
    };
    let (ua, mut rx) = Ua::start(with_inbound(config(0, addr(9), "gw"), inbound))
        .await
        .unwrap();
    let target = ua.local_addr();
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = peer.local_addr().unwrap();
    for i in 0..40 {
        let options = format!(
            "OPTIONS sip:gw@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKrl{i}\r\n\
             From: <sip:x@{me}>;tag=o\r\nTo: <sip:gw@{target}>\r\nCall-ID: rl{i}\r\nCSeq: 1 OPTIONS\r\n\r\n"
        );
        peer.send_to(options.as_bytes(), target).await.unwrap();
    }
    let got = all_within(&peer, 500).await;
    assert!(
        (10..=13).contains(&got.len()),
        "a burst of 10 (twice the rate) and a few refilled: {}",
        got.len()
    );
    // Wait for the bucket to refill, then: one byte over the cap is ignored, at the cap taken.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let uri = format!("sip:7@{target}");
    let pad = |len: usize, id: &str| {
        let base = invite_to(&uri, me, id, 1, "X-Pad: \r\n").len();
        let pad = "p".repeat(len - base);
        invite_to(&uri, me, id, 1, &format!("X-Pad: {pad}\r\n"))
    };
    let big = pad(MAX_DATAGRAM + 1, "big");
    assert_eq!(big.len(), MAX_DATAGRAM + 1);
    peer.send_to(big.as_bytes(), target).await.unwrap();
    nothing_on(&peer, 500, &[], "an oversized INVITE").await;
    quiet(&mut rx, 0).await;
    let max = pad(MAX_DATAGRAM, "max");
    peer.send_to(max.as_bytes(), target).await.unwrap();
    expect_on(&peer, "SIP/2.0 100", "an INVITE of exactly the cap").await;
    assert!(matches!(
        next(&mut rx, "Incoming").await,
        UaEvent::Incoming { .. }
    ));
    ua.shutdown().await;
}
