//! Self-tests of the SIPp harness (testkit/src/sipp.rs, tests/common/sipp.rs, tests/sipp/*.xml), no agent needed:
//! the scenarios are played SIPp against SIPp, and the RTP helpers are checked against each
//! other and against SIPp's pcap playback.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::sipp::{
    self, RtpPacket, RtpSink, Sipp, SippProc, decode_dtmf, dominant_hz_of, dtmf_sequence_packets,
    pcmu_tone_packets, rfc4733_digit_packets, write_rtp_pcap,
};

const T: Duration = Duration::from_secs(60);

fn tone_pcap(dir: &Path, name: &str, hz: f64, seconds: f64) -> String {
    let path = dir.join(name);
    write_rtp_pcap(&path, &pcmu_tone_packets(hz, seconds, 0.5), 20);
    path.to_string_lossy().into_owned()
}

/// Waits for both ends and asserts both succeeded (the UAC first: it drives the call).
fn both_succeed(mut uac: SippProc, mut uas: SippProc) {
    let c = uac.wait(T);
    let s = uas.wait(T);
    assert!(
        c.success && s.success,
        "UAC exit {:?}, UAS exit {:?}\n{}\n{}",
        c.code,
        s.code,
        c.log,
        s.log
    );
}

fn packets(raw: &[Vec<u8>]) -> Vec<RtpPacket> {
    let from = "127.0.0.1:1".parse().unwrap();
    raw.iter()
        .map(|p| sipp::parse_rtp(from, p).expect("valid RTP"))
        .collect()
}

#[test]
fn g711_goertzel_and_dtmf_helpers_agree() {
    // μ-law round trip: within half a quantisation step (≤ 1/16 of the magnitude, ±8 near 0).
    for s in (-32768i32..=32767).step_by(7) {
        let s = s as i16;
        let back = sipp::ulaw_to_linear(sipp::linear_to_ulaw(s));
        let err = (i32::from(back) - i32::from(s)).abs();
        assert!(
            err <= 8.max(i32::from(s).abs() / 16) || i32::from(s).abs() > 32000,
            "{s} -> {back}"
        );
    }
    assert_eq!(sipp::linear_to_ulaw(0), 0xFF);
    assert_eq!(sipp::ulaw_to_linear(0xFF), 0);
    assert_eq!(sipp::ulaw_to_linear(0x80), 32124);
    assert_eq!(sipp::ulaw_to_linear(0x00), -32124);
    assert_eq!(sipp::alaw_to_linear(0xD5), 8);
    assert_eq!(sipp::alaw_to_linear(0x55), -8);
    assert_eq!(sipp::alaw_to_linear(0xAA), 32256);

    for hz in [300.0, 437.0, 1000.0, 1010.0, 1633.0, 2975.0, 3800.0] {
        let samples = sipp::decode_audio(&packets(&pcmu_tone_packets(hz, 1.5, 0.3)), 0);
        let found = dominant_hz_of(&samples).expect("a tone");
        assert!((found - hz).abs() <= 2.0, "{hz} Hz found as {found}");
    }
    assert_eq!(dominant_hz_of(&[0; 8000]), None);

    let one = packets(&rfc4733_digit_packets('5', 101));
    assert_eq!(one.len(), 8);
    assert!(one[0].marker && one[1..].iter().all(|p| !p.marker));
    assert!(one.iter().all(|p| p.ts == one[0].ts && p.pt == 101));
    let durations: Vec<u16> = one
        .iter()
        .map(|p| u16::from_be_bytes([p.payload[2], p.payload[3]]))
        .collect();
    assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800, 800]);
    assert_eq!(
        one.iter().filter(|p| p.payload[1] & 0x80 != 0).count(),
        3,
        "three end packets"
    );
    assert_eq!(
        decode_dtmf(
            &packets(&dtmf_sequence_packets("0123456789*#ABCD", 101)),
            101
        ),
        "0123456789*#ABCD"
    );

    // The pcap: global header, then one Ethernet/IPv4/UDP frame per packet, 20 ms apart.
    let dir = tempfile::tempdir().unwrap();
    let raw = pcmu_tone_packets(1000.0, 0.1, 0.5);
    let path = dir.path().join("t.pcap");
    write_rtp_pcap(&path, &raw, 20);
    let f = std::fs::read(&path).unwrap();
    assert_eq!(&f[..4], &[0xD4, 0xC3, 0xB2, 0xA1]);
    assert_eq!(f.len(), 24 + raw.len() * (16 + 14 + 20 + 8 + 12 + 160));
    let usec = |i: usize| {
        let o = 24 + i * (16 + 42 + 172);
        u64::from(u32::from_le_bytes(f[o..o + 4].try_into().unwrap())) * 1_000_000
            + u64::from(u32::from_le_bytes(f[o + 4..o + 8].try_into().unwrap()))
    };
    assert_eq!(usec(1) - usec(0), 20_000);
}

#[test]
fn busy_pbx_and_busy_caller() {
    let rtp = RtpSink::bind();
    let uas = Sipp::new("pbx_busy").start();
    let uac = Sipp::new("caller_busy")
        .remote(uas.addr())
        .service("100")
        .var("rtpsink", rtp.port())
        .start();
    both_succeed(uac, uas);
}

#[test]
fn answered_call_carries_a_tone_each_way() {
    let dir = tempfile::tempdir().unwrap();
    let to_pbx = RtpSink::bind(); // the PBX's SDP points here: the caller's tone arrives
    let to_caller = RtpSink::bind();
    let uas = Sipp::new("pbx_answer_bye_gsm")
        .var("rtpsink", to_pbx.port())
        .var("tonepcap", tone_pcap(dir.path(), "pbx.pcap", 1336.0, 2.0))
        .start();
    let uac = Sipp::new("caller_answered")
        .remote(uas.addr())
        .service("+380501234567")
        .var("rtpsink", to_caller.port())
        .var("talkms", 2500)
        .var("tonepcap", tone_pcap(dir.path(), "caller.pcap", 440.0, 2.0))
        .start();
    both_succeed(uac, uas);
    for (sink, hz) in [(&to_pbx, 440.0), (&to_caller, 1336.0)] {
        assert!(
            sink.wait_until(T, |s| s.packets() >= 100),
            "{} packets",
            sink.packets()
        );
        let found = sink.dominant_hz().expect("audio");
        assert!((found - hz).abs() <= 5.0, "expected {hz} Hz, found {found}");
        assert_eq!(sink.senders().len(), 1);
        assert_eq!(sink.dtmf_digits(), "");
    }
}

#[test]
fn pbx_hangs_up_an_answered_call() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (RtpSink::bind(), RtpSink::bind());
    let uas = Sipp::new("pbx_answer_bye_pbx")
        .var("rtpsink", a.port())
        .var("talkms", 1000)
        .var("tonepcap", tone_pcap(dir.path(), "pbx.pcap", 800.0, 0.5))
        .start();
    let uac = Sipp::new("caller_answered_bye_gsm")
        .remote(uas.addr())
        .service("100")
        .var("rtpsink", b.port())
        .var("tonepcap", tone_pcap(dir.path(), "caller.pcap", 600.0, 0.5))
        .start();
    both_succeed(uac, uas);
    assert!(b.wait_until(T, |s| s.packets() >= 20), "{}", b.packets());
}

#[test]
fn caller_cancels_a_ringing_call() {
    let rtp = RtpSink::bind();
    let uas = Sipp::new("pbx_noanswer").start();
    let uac = Sipp::new("caller_cancel")
        .remote(uas.addr())
        .service("100")
        .var("rtpsink", rtp.port())
        .start();
    both_succeed(uac, uas);
}

#[test]
fn unanswered_caller_gets_480() {
    let rtp = RtpSink::bind();
    let uas = Sipp::new("selftest_pbx_480").start();
    let uac = Sipp::new("caller_noanswer")
        .remote(uas.addr())
        .service("100")
        .var("rtpsink", rtp.port())
        .timeout(Duration::from_secs(100))
        .start();
    both_succeed(uac, uas);
}

#[test]
fn registrar_accepts_the_right_digest_only() {
    let uas = Sipp::new("pbx_register_auth").start();
    let uac = Sipp::new("selftest_register")
        .remote(uas.addr())
        .arg("-au")
        .arg("gsmgw")
        .arg("-ap")
        .arg("secret")
        .start();
    both_succeed(uac, uas);

    let mut uas = Sipp::new("pbx_register_auth").start();
    let mut uac = Sipp::new("selftest_register")
        .remote(uas.addr())
        .arg("-au")
        .arg("gsmgw")
        .arg("-ap")
        .arg("wrong")
        .arg("-nd")
        .start();
    let s = uas.wait(T);
    assert!(
        !s.success,
        "a wrong password must fail the registrar:\n{}",
        s.log
    );
    assert!(s.log.contains("not gsmgw/secret"), "{}", s.log);
    // The UAC (no default behaviours) would wait for its global timeout; its verdict is moot.
    uac.kill();
}

#[test]
fn dtmf_pcap_arrives_as_rfc4733_digits() {
    let dir = tempfile::tempdir().unwrap();
    let to_pbx = RtpSink::bind();
    let to_caller = RtpSink::bind();
    let dtmf = dir.path().join("dtmf.pcap");
    write_rtp_pcap(&dtmf, &dtmf_sequence_packets("159#*0", 101), 20);
    let uas = Sipp::new("pbx_answer_bye_gsm")
        .var("rtpsink", to_pbx.port())
        .var("tonepcap", tone_pcap(dir.path(), "pbx.pcap", 1000.0, 0.5))
        .start();
    let uac = Sipp::new("caller_dtmf")
        .remote(uas.addr())
        .service("100")
        .var("rtpsink", to_caller.port())
        .var("dtmfpcap", dtmf.to_string_lossy())
        .start();
    both_succeed(uac, uas);
    assert!(
        to_pbx.wait_until(T, |s| s.dtmf_digits() == "159#*0"),
        "digits {:?}",
        to_pbx.dtmf_digits()
    );
}

#[test]
fn eight_concurrent_answered_calls() {
    let dir = tempfile::tempdir().unwrap();
    let to_pbx = RtpSink::bind();
    let to_caller = RtpSink::bind();
    let uas = Sipp::new("pbx_answer_many")
        .calls(8)
        .var("rtpsink", to_pbx.port())
        .var("tonepcap", tone_pcap(dir.path(), "pbx.pcap", 1000.0, 1.0))
        .start();
    let uac = Sipp::new("caller_answered")
        .calls(8)
        .remote(uas.addr())
        .service("100")
        .var("rtpsink", to_caller.port())
        .var("talkms", 1500)
        .var("tonepcap", tone_pcap(dir.path(), "caller.pcap", 500.0, 1.0))
        .start();
    both_succeed(uac, uas);
    for sink in [&to_pbx, &to_caller] {
        assert!(
            sink.wait_until(T, |s| s.packets() >= 8 * 45),
            "{} packets",
            sink.packets()
        );
    }
}

#[test]
fn scenario_rendering_puts_pcap_paths_in_and_rejects_unset_ones() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = tone_pcap(dir.path(), "x.pcap", 1000.0, 0.1);
    let text = r#"<Global variables="rtpsink"/><exec play_pcap_audio="[$tonepcap]"/> [$rtpsink]"#;
    let out = sipp::render_scenario(text, &[("tonepcap".into(), pcap.clone())]).expect("rendered");
    assert!(
        out.contains(&format!("play_pcap_audio=\"{pcap}\"")),
        "{out}"
    );
    assert!(out.contains("[$rtpsink]"));
    assert!(sipp::render_scenario(text, &[]).is_err());
    assert_eq!(sipp::declared_globals(text), ["rtpsink"]);
    for f in std::fs::read_dir(sipp::scenario_dir()).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|e| e == "xml") {
            let t = std::fs::read_to_string(&p).unwrap();
            assert!(t.contains("<scenario name="), "{}", p.display());
        }
    }
}

#[test]
fn a_failed_run_reports_exit_code_and_sip_messages() {
    let rtp = RtpSink::bind();
    let mut uas = Sipp::new("pbx_busy")
        .timeout(Duration::from_secs(5))
        .start();
    let mut uac = Sipp::new("caller_noanswer")
        .remote(uas.addr())
        .service("100")
        .var("rtpsink", rtp.port())
        .start();
    let r = uac.wait(T);
    assert!(!r.success && r.code.is_some(), "{r:?}");
    assert!(r.log.contains("486 Busy Here"), "{}", r.log);
    assert!(r.log.contains("--- messages ---"), "{}", r.log);
    uas.kill();
}

/// The digest step the harness adds to a caller scenario: 407 taken, ACKed, the INVITE sent
/// again with CSeq 2 and credentials; the requests after it numbered on.
#[test]
fn caller_scenarios_get_a_digest_step() {
    let text = std::fs::read_to_string(sipp::scenario_dir().join("caller_answered.xml")).unwrap();
    let out = sipp::with_digest_answer(&text, "gsmgw", "secret").expect("transformed");
    let at = |s: &str| out.find(s).unwrap_or_else(|| panic!("no {s:?} in\n{out}"));
    assert!(at("CSeq: 1 INVITE") < at("<recv response=\"407\" auth=\"true\"/>"));
    assert!(at("<recv response=\"407\"") < at("CSeq: 1 ACK"));
    assert!(at("CSeq: 1 ACK") < at("CSeq: 2 INVITE"));
    assert!(at("CSeq: 2 INVITE") < at("[authentication username=gsmgw password=secret]"));
    assert!(at("CSeq: 2 INVITE") < at("CSeq: 2 ACK"));
    assert!(at("CSeq: 2 ACK") < at("CSeq: 3 BYE"));
    assert!(!out.contains("CSeq: 2 BYE"), "{out}");
    assert!(sipp::with_digest_answer("<scenario/>", "u", "p").is_err());
}
