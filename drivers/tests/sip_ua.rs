//! The SIP user agent end to end on 127.0.0.1: two `Ua`s calling each other (directly and
//! through a lossy relay), and interop with SIPp as registrar and as called party.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gsmgw_drivers::sip::sdp;
use gsmgw_drivers::sip::{Ua, UaConfig, UaEvent};
use gsmgw_drivers::voice::Codec;
use tokio::net::UdpSocket;
use tokio::sync::mpsc::Receiver;

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

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

fn find_sipp() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SIPP") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("sipp"))
        .find(|p| p.is_file())
}

/// The sipp binary: installed from Debian's sip-tester when missing; the test fails with a
/// clear message when that is impossible.
fn sipp() -> PathBuf {
    static SIPP: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    SIPP.get_or_init(|| {
        find_sipp().or_else(|| {
            eprintln!("sipp not found; trying `apt-get install -y sip-tester`");
            let _ = Command::new("apt-get")
                .args(["install", "-y", "sip-tester"])
                .stdout(Stdio::null())
                .status();
            find_sipp()
        })
    })
    .clone()
    .expect(
        "SIPp is required for the interop tests and could not be found or installed: \
         install it (Debian: `apt-get install sip-tester`) or set SIPP=/path/to/sipp",
    )
}

struct SippRun {
    child: std::process::Child,
    dir: PathBuf,
}

impl SippRun {
    fn start(scenario: &str, port: u16) -> SippRun {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/sipp")
            .join(scenario);
        let dir = std::env::temp_dir().join(format!("gsmgw-sipp-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new(sipp())
            .arg("-sf")
            .arg(&file)
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-m", "1", "-timeout", "20s", "-timeout_error", "-nostdin"])
            .args(["-trace_err", "-trace_msg"])
            .arg("-error_file")
            .arg(dir.join("errors.log"))
            .arg("-message_file")
            .arg(dir.join("messages.log"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sipp");
        SippRun { child, dir }
    }

    /// Waits for SIPp to exit and asserts it failed (a call in the scenario failed).
    async fn expect_failure(mut self) {
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(!status.success(), "sipp unexpectedly succeeded");
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("sipp did not finish within 30 s");
    }

    /// Waits for SIPp to exit and asserts it succeeded (exit status 0).
    async fn expect_success(mut self) {
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                if !status.success() {
                    let read =
                        |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
                    panic!(
                        "sipp failed: {status}\n--- errors ---\n{}\n--- messages ---\n{}",
                        read("errors.log"),
                        read("messages.log")
                    );
                }
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.child.kill();
        panic!("sipp did not finish within 30 s");
    }
}

impl Drop for SippRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
