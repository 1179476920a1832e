//! Voice end to end: simulated modems with a PCM voice port, the agent, mosquitto, and SIPp as
//! the PBX and as the SIP caller.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::kamailio::Kamailio;
use common::{AgentProc, Broker, Central, SimModem, write_config_with};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);
const CALLER: &str = "+380501112233";

fn sent_to(sim: &SimModem, to: &str) -> Vec<Value> {
    let st = sim.control(json!({"op": "state"}));
    st["sms"]["sent"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m["to"] == to)
        .collect()
}

/// An unanswered call to the advertising number gets one SMS back; a second call from the same
/// caller within the period gets none. Without [sip] the call is still recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_call_gets_one_sms_back_per_period() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sim = SimModem::start(
        dir.path(),
        "modem1",
        &["--dialect", "simcom", "--imsi", "255010000000001"],
    );
    sim.control(json!({"op": "ring-interval", "ms": 300}));
    let voice = "\n[voice]\nmissed_call_sms = \"Sorry we missed your call ({from}). We call back soon.\"\nmissed_call_sms_period_secs = 3600\n";
    let cfg = write_config_with(
        dir.path(),
        "gw-missed",
        &broker.url(),
        voice,
        &[(1, &sim.link, "")],
    );
    let mut central = Central::connect(broker.port, "gsmgw/gw-missed/#").await;
    let _agent = AgentProc::start(&cfg);
    central
        .expect("gsmgw/gw-missed/modem/1/state", T, |v| {
            v["state"] == "ready"
        })
        .await;

    for round in 0..2 {
        let r = sim.control(json!({"op": "call", "from": CALLER}));
        assert_eq!(r["ok"], true, "{r}");
        // The caller lets it ring until the gateway has seen the call, then gives up.
        central
            .expect("gsmgw/gw-missed/event/call-state", T, |v| {
                v["state"] == "ringing" && v["from"] == CALLER
            })
            .await;
        let r = sim.control(json!({"op": "hangup"}));
        assert_eq!(r["ok"], true, "{r}");
        let ev = central
            .expect("gsmgw/gw-missed/event/call", T, |v| v["from"] == CALLER)
            .await;
        assert_eq!(ev["direction"], "gsm-in");
        assert_eq!(ev["slot"], 1);
        assert_eq!(ev["imsi"], "255010000000001");
        assert_eq!(ev["cause"], "cancelled");
        assert!(ev["answered_at"].is_null(), "{ev}");
        assert_eq!(ev["duration_s"], 0.0);
        if round == 0 {
            let st = central
                .expect("gsmgw/gw-missed/event/sms-status", T, |v| {
                    v["state"] == "sent" && v["to"] == CALLER
                })
                .await;
            assert!(
                st["request_id"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("missed-call-")),
                "{st}"
            );
            let sent = sent_to(&sim, CALLER);
            assert_eq!(sent.len(), 1, "{sent:?}");
            assert_eq!(
                sent[0]["text"],
                format!("Sorry we missed your call ({CALLER}). We call back soon.")
            );
        }
    }
    // Barrier: an ordinary SMS queued after the second call goes out; the second missed call
    // must not have added another message to the caller.
    central
        .send(
            "gsmgw/gw-missed/cmd/sms-send",
            &json!({"request_id": "after-calls", "to": "+380509998877", "text": "barrier"})
                .to_string(),
        )
        .await;
    central
        .expect("gsmgw/gw-missed/event/sms-status", T, |v| {
            v["request_id"] == "after-calls" && v["state"] == "sent"
        })
        .await;
    assert_eq!(sent_to(&sim, CALLER).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// With SIPp as the PBX and as the SIP caller.

use common::sipp::{
    ProxyStandIn, RtpSink, Sipp, dominant_hz_of, dtmf_sequence_packets, free_udp_port,
    pcmu_tone_packets, write_rtp_pcap,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The agent's SIP side for a test: its port, the PBX (SIPp UAS) port, an RTP range.
struct SipSetup {
    agent_port: u16,
    pbx_port: u16,
}

impl SipSetup {
    fn new() -> SipSetup {
        SipSetup {
            agent_port: free_udp_port(),
            pbx_port: free_udp_port(),
        }
    }

    fn agent_addr(&self) -> String {
        format!("127.0.0.1:{}", self.agent_port)
    }

    fn target(&self, ext: &str) -> String {
        format!("sip:{ext}@127.0.0.1:{}", self.pbx_port)
    }

    /// `[sip]` + `[voice]` text (goes into the config after `[gateway]`'s keys).
    fn sections(&self, register: bool, voice: &str) -> String {
        let rtp = common::sipp::free_even_udp_port_pair();
        format!(
            "\n[sip]\nserver = \"127.0.0.1:{}\"\nusername = \"gsmgw\"\npassword = \"secret\"\nbind = \"127.0.0.1:{}\"\nmedia_address = \"127.0.0.1\"\nregister = {register}\noptions_interval_secs = 0\nrtp_port_min = {rtp}\nrtp_port_max = {}\n\n[voice]\n{voice}\n",
            self.pbx_port,
            self.agent_port,
            rtp + 40
        )
    }
}

fn voice_modem(dir: &Path, name: &str, dialect: &str, imsi: &str) -> (SimModem, PathBuf) {
    let voice = dir.join(format!("{name}-pcm"));
    let sim = SimModem::start(
        dir,
        name,
        &[
            "--dialect",
            dialect,
            "--imsi",
            imsi,
            "--voice-link",
            voice.to_str().unwrap(),
        ],
    );
    (sim, voice)
}

fn near(v: &Value, hz: f64) -> bool {
    v.as_f64().is_some_and(|f| (f - hz).abs() <= 8.0)
}

fn wait_modem_hears(sim: &SimModem, hz: f64, what: &str) {
    common::wait_for(T, what, || {
        let st = sim.control(json!({"op": "voice-stats"}));
        near(&st["dominant_hz"], hz).then_some(())
    });
}

fn wait_sink_hears(sink: &RtpSink, hz: f64, what: &str) {
    assert!(
        sink.wait_until(T, |s| s
            .dominant_hz()
            .is_some_and(|f| (f - hz).abs() <= 8.0)),
        "{what}: RTP never carried {hz} Hz (last: {:?}, {} packets)",
        sink.dominant_hz(),
        sink.packets()
    );
}

/// SIPp as the PBX running `scenario`, answering with SDP toward `sink` and playing a 600 Hz
/// tone of `secs` seconds.
fn answering_pbx(
    scenario: &str,
    net: &SipSetup,
    sink: &RtpSink,
    dir: &Path,
    secs: f64,
    with: impl FnOnce(Sipp) -> Sipp,
) -> common::sipp::SippProc {
    let pcap = tone_pcap(dir, 600.0, secs);
    with(
        Sipp::new(scenario)
            .local_port(net.pbx_port)
            .var("rtpsink", sink.port())
            .var("tonepcap", pcap.display()),
    )
    .start()
}

/// Writes the config (one modem with its voice port, `extra` sections), connects the central
/// subscriber, starts the agent and waits for the modem to be ready.
async fn one_modem_agent(
    dir: &Path,
    broker: &Broker,
    gw: &str,
    extra: &str,
    sim: &SimModem,
    pcm: &Path,
) -> (Central, AgentProc) {
    let modem_extra = format!("voice_port = \"{}\"", pcm.display());
    let cfg = write_config_with(
        dir,
        gw,
        &broker.url(),
        extra,
        &[(1, &sim.link, &modem_extra)],
    );
    let mut central = Central::connect(broker.port, &format!("gsmgw/{gw}/#")).await;
    let agent = AgentProc::start(&cfg);
    central
        .expect(&format!("gsmgw/{gw}/modem/1/state"), T, |v| {
            v["state"] == "ready"
        })
        .await;
    (central, agent)
}

fn tone_pcap(dir: &Path, hz: f64, secs: f64) -> PathBuf {
    let p = dir.join(format!("tone-{hz}.pcap"));
    write_rtp_pcap(&p, &pcmu_tone_packets(hz, secs, 0.3), 20);
    p
}

fn b64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            _ => 63,
        }
    };
    let mut out = Vec::new();
    for chunk in s.as_bytes().chunks(4) {
        let pad = chunk.iter().filter(|&&c| c == b'=').count();
        let n = chunk.iter().fold(0u32, |acc, &c| {
            (acc << 6) | if c == b'=' { 0 } else { val(c) }
        });
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    out
}

fn sha256_of(data: &[u8], dir: &Path) -> String {
    let p = dir.join("fetched.wav");
    std::fs::write(&p, data).unwrap();
    let out = std::process::Command::new("sha256sum")
        .arg(&p)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// GSM caller → the slot's rule forwards to the PBX (SIPp) → answered; a tone from the modem
/// reaches RTP and a tone from the PBX reaches the modem; the PBX hangs up; the call is
/// recorded, and the recording is fetched over MQTT in chunks whose checksum matches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gsm_call_forwarded_to_sip_audio_both_ways_recorded_pbx_hangs_up() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let net = SipSetup::new();
    let sink = RtpSink::bind();
    let mut pbx = answering_pbx("pbx_answer_bye_pbx", &net, &sink, dir.path(), 5.0, |s| {
        s.var("talkms", 5000)
    });
    let (sim, pcm) = voice_modem(dir.path(), "modem1", "quectel", "255010000000011");
    sim.control(json!({"op": "voice-tone", "hz": 1000, "amplitude": 8000}));
    let extra = net.sections(
        false,
        &format!(
            "[[voice.route]]\nslot = 1\naction = \"forward\"\ntarget = \"{}\"\nrecord = true\n",
            net.target("100")
        ),
    );
    let (mut central, _agent) =
        one_modem_agent(dir.path(), &broker, "gw-fwd", &extra, &sim, &pcm).await;

    assert_eq!(
        sim.control(json!({"op": "call", "from": CALLER}))["ok"],
        true
    );
    wait_sink_hears(&sink, 1000.0, "the modem's tone at the PBX");
    wait_modem_hears(&sim, 600.0, "the PBX's tone at the modem");
    // The central server saw the call while it happened.
    for state in ["ringing", "talking"] {
        let cs = central
            .expect("gsmgw/gw-fwd/event/call-state", T, |v| v["state"] == state)
            .await;
        assert_eq!(cs["from"], CALLER, "{cs}");
        assert_eq!(cs["slot"], 1);
    }
    pbx.wait(Duration::from_secs(40))
        .assert_success("PBX answers, hears, hangs up");

    let ev = central
        .expect("gsmgw/gw-fwd/event/call", T, |v| v["from"] == CALLER)
        .await;
    assert_eq!(ev["direction"], "gsm-in");
    assert_eq!(ev["cause"], "normal", "{ev}");
    assert_eq!(ev["sip_code"], 200);
    assert_eq!(ev["sip_peer"], net.target("100"));
    assert!(ev["answered_at"].is_string(), "{ev}");
    assert!(ev["duration_s"].as_f64().unwrap_or(0.0) >= 2.0, "{ev}");
    assert!(ev["media"]["rtp_sent"].as_u64().unwrap_or(0) > 100, "{ev}");
    let st = sim.control(json!({"op": "state"}));
    assert!(
        st["voice_commands"]
            .as_array()
            .is_some_and(|c| c.iter().any(|x| x == "AT+QPCMV=1,0")),
        "Quectel's voice port was switched on: {}",
        st["voice_commands"]
    );
    assert_eq!(st["calls"]["active"].as_array().map(Vec::len), Some(0));

    // The recording, fetched in chunks.
    let call_id = ev["call_id"].as_str().unwrap().to_string();
    assert!(ev["recording"]["bytes"].as_u64().unwrap_or(0) > 44, "{ev}");
    central
        .send(
            "gsmgw/gw-fwd/cmd/recording-fetch",
            &json!({"request_id": "rec-1", "call_id": call_id}).to_string(),
        )
        .await;
    let reply = central
        .expect("gsmgw/gw-fwd/reply/rec-1", T, |_| true)
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let chunks = reply["result"]["chunks"].as_u64().unwrap() as usize;
    let mut data = Vec::new();
    let mut sha = String::new();
    for n in 0..chunks {
        let c = central
            .expect(&format!("gsmgw/gw-fwd/recording/{call_id}/{n}"), T, |_| {
                true
            })
            .await;
        assert_eq!(c["n"], n);
        assert_eq!(c["last"], n + 1 == chunks);
        data.extend(b64_decode(c["data"].as_str().unwrap()));
        if n + 1 == chunks {
            sha = c["sha256"].as_str().unwrap().to_string();
        }
    }
    assert_eq!(data.len() as u64, reply["result"]["size"].as_u64().unwrap());
    assert_eq!(sha256_of(&data, dir.path()), sha);
    let (channels, rate, samples) = gsmgw_drivers::voice::wav::parse_wav(&data).unwrap();
    assert_eq!((channels, rate), (2, 8000));
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    let mid = |v: &[i16]| v[v.len() / 4..v.len() / 4 + 8000.min(v.len() / 2)].to_vec();
    assert!(
        near(&json!(dominant_hz_of(&mid(&left))), 1000.0),
        "left (GSM side) {:?}",
        dominant_hz_of(&mid(&left))
    );
    assert!(
        near(&json!(dominant_hz_of(&mid(&right))), 600.0),
        "right (SIP side) {:?}",
        dominant_hz_of(&mid(&right))
    );
}

/// A PBX that stops sending RTP without a BYE (crashed, lost its network): the gateway ends
/// the call after `rtp_timeout_secs`, sends BYE and frees the SIM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sip_side_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let net = SipSetup::new();
    let sink = RtpSink::bind();
    let mut pbx = answering_pbx("pbx_answer_bye_gsm", &net, &sink, dir.path(), 1.0, |s| s);
    let (sim, pcm) = voice_modem(dir.path(), "modem1", "generic", "255010000000051");
    let extra = net.sections(
        false,
        &format!(
            "rtp_timeout_secs = 2\n[[voice.route]]\naction = \"forward\"\ntarget = \"{}\"\n",
            net.target("100")
        ),
    );
    let (mut central, _agent) =
        one_modem_agent(dir.path(), &broker, "gw-rtpto", &extra, &sim, &pcm).await;
    assert_eq!(
        sim.control(json!({"op": "call", "from": CALLER}))["ok"],
        true
    );
    pbx.wait(T)
        .assert_success("the gateway hangs up (BYE) once the PBX's RTP stops");
    let ev = central
        .expect("gsmgw/gw-rtpto/event/call", T, |v| v["from"] == CALLER)
        .await;
    assert_eq!(ev["cause"], "rtp-timeout", "{ev}");
    assert!(ev["answered_at"].is_string(), "{ev}");
    common::wait_for(T, "the GSM leg to be hung up", || {
        let st = sim.control(json!({"op": "state"}));
        (st["calls"]["active"].as_array().map(Vec::len) == Some(0)).then_some(())
    });
}

/// The PBX puts the call on hold (re-INVITE sendonly) and sends no RTP for longer than
/// `rtp_timeout_secs`: the gateway answers recvonly, keeps the call, and resumes with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_and_resume_keep_the_call() {
    hold_and_resume("gw-hold", &[]).await;
}

/// The old form of hold (RFC 2543): the re-INVITE's address is 0.0.0.0 (sendrecv). Refused on
/// a new INVITE, it is a hold inside an established dialog: answered sendrecv, the call kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_with_address_0_0_0_0_keeps_the_call() {
    hold_and_resume(
        "gw-hold0",
        &[
            (
                "o=pbx 53655765 2353687638 IN IP4 127.0.0.1\n      s=-\n      c=IN IP4 127.0.0.1",
                "o=pbx 53655765 2353687638 IN IP4 127.0.0.1\n      s=-\n      c=IN IP4 0.0.0.0",
            ),
            (
                "a=ptime:20\n      a=sendonly",
                "a=ptime:20\n      a=sendrecv",
            ),
            ("regexp=\"a=recvonly\"", "regexp=\"a=sendrecv\""),
        ],
    )
    .await;
}

async fn hold_and_resume(gw: &str, edits: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let net = SipSetup::new();
    let sink = RtpSink::bind();
    let mut pbx = answering_pbx("pbx_hold", &net, &sink, dir.path(), 2.0, |s| {
        edits
            .iter()
            .fold(s.var("holdms", 4000), |s, (from, to)| s.edit(from, to))
    });
    let (sim, pcm) = voice_modem(dir.path(), "modem1", "quectel", "255010000000061");
    let extra = net.sections(
        false,
        &format!(
            "rtp_timeout_secs = 2\n[[voice.route]]\naction = \"forward\"\ntarget = \"{}\"\n",
            net.target("100")
        ),
    );
    let (mut central, _agent) = one_modem_agent(dir.path(), &broker, gw, &extra, &sim, &pcm).await;
    assert_eq!(
        sim.control(json!({"op": "call", "from": CALLER}))["ok"],
        true
    );
    for state in ["talking", "held", "talking"] {
        central
            .expect(&format!("gsmgw/{gw}/event/call-state"), T, |v| {
                v["state"] == state
            })
            .await;
    }
    pbx.wait(T)
        .assert_success("hold answered, resume sendrecv, BYE from the PBX");
    let ev = central
        .expect(&format!("gsmgw/{gw}/event/call"), T, |v| {
            v["from"] == CALLER
        })
        .await;
    assert_eq!(
        ev["cause"], "normal",
        "held without RTP is not a dead call: {ev}"
    );
    assert!(ev["duration_s"].as_f64().unwrap_or(0.0) >= 7.0, "{ev}");
}

/// SIP → GSM through a SIMCom modem: busy → 486, no answer → 480, CANCEL → 487, and an answered
/// call with audio both ways, DTMF both ways, the SIP caller hanging up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_calls_out_through_a_sim_with_outcomes_mapped_and_dtmf_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let net = SipSetup::new();
    let sink = RtpSink::bind();
    let (sim, pcm) = voice_modem(dir.path(), "modem1", "simcom", "255010000000021");
    sim.control(json!({"op": "voice-tone", "hz": 1000, "amplitude": 8000}));
    let extra = net.sections(false, "ring_timeout_secs = 5\nrecord_sip_in = true\n");
    let (mut central, _agent) =
        one_modem_agent(dir.path(), &broker, "gw-out", &extra, &sim, &pcm).await;

    // The PBX on this static trunk answers the gateway's digest challenge (the default
    // inbound_auth without registration).
    let unauthenticated = |scenario: &str, number: &str| {
        Sipp::new(scenario)
            .remote(net.agent_addr())
            .service(number)
            .var("rtpsink", sink.port())
    };
    let caller =
        |scenario: &str, number: &str| unauthenticated(scenario, number).digest("gsmgw", "secret");
    let dialed = || {
        let st = sim.control(json!({"op": "state"}));
        st["calls"]["dialed"].as_array().map(Vec::len)
    };
    let outcome = async |central: &mut Central, number: &str| -> Value {
        central
            .expect("gsmgw/gw-out/event/call", T, |v| v["to"] == number)
            .await
    };

    // An INVITE from another address than the PBX: 403, no call placed (toll fraud).
    unauthenticated("caller_forbidden", "+380671000000")
        .local_ip("127.0.0.2")
        .start()
        .wait(T)
        .assert_success("403 for an untrusted caller");
    let st = sim.control(json!({"op": "state"}));
    assert_eq!(
        st["calls"]["dialed"].as_array().map(Vec::len),
        Some(0),
        "{}",
        st["calls"]
    );
    // A forged INVITE from the PBX's own address: no credentials (challenged with 407) or a
    // wrong password (403): SIPp's scenario cannot go on, and no SIM is dialled.
    let r = unauthenticated("caller_busy", "+380671000010")
        .timeout(Duration::from_secs(5))
        .start()
        .wait(T);
    assert!(
        !r.success,
        "an INVITE without credentials went through:\n{}",
        r.log
    );
    assert!(r.log.contains("407"), "{}", r.log);
    let r = unauthenticated("caller_busy", "+380671000011")
        .digest("gsmgw", "guessed")
        .timeout(Duration::from_secs(5))
        .start()
        .wait(T);
    assert!(
        !r.success,
        "an INVITE with a wrong password went through:\n{}",
        r.log
    );
    assert!(r.log.contains("403"), "{}", r.log);
    assert_eq!(dialed(), Some(0), "a forged INVITE dialled a SIM");
    // A new offer whose audio cannot flow: 488 Not Acceptable Here, no SIM dialled.
    for (what, line) in [
        ("0.0.0.0", "c=IN IP4 0.0.0.0"),
        ("broadcast", "c=IN IP4 255.255.255.255"),
        ("multicast", "c=IN IP4 224.0.1.1"),
        ("no address", ""),
    ] {
        caller("caller_forbidden", "+380671000012")
            .edit("c=IN IP4 127.0.0.1", line)
            .edit("<recv response=\"403\"/>", "<recv response=\"488\"/>")
            .start()
            .wait(T)
            .assert_success(&format!("488 for an offer with {what}"));
    }
    assert_eq!(
        dialed(),
        Some(0),
        "an offer without usable media dialled a SIM"
    );

    // Busy.
    sim.control(json!({"op": "dial-result", "result": "busy", "delay_ms": 300}));
    caller("caller_busy", "+380671000001")
        .start()
        .wait(T)
        .assert_success("486 for a busy number");
    let ev = outcome(&mut central, "+380671000001").await;
    assert_eq!(
        (ev["cause"].as_str(), ev["sip_code"].as_u64()),
        (Some("busy"), Some(486))
    );
    assert!(
        ev["recording"].is_null(),
        "an unanswered call keeps no recording: {ev}"
    );
    assert_eq!(ev["direction"], "sip-in");
    assert_eq!(ev["slot"], 1);

    // Nobody answers within ring_timeout_secs.
    sim.control(json!({"op": "dial-result", "result": "ring"}));
    sink.clear();
    let mut ringing = caller("caller_noanswer", "+380671000002").start();
    // Early media: the caller hears the gateway's ringback (425 Hz) while the SIM rings.
    wait_sink_hears(&sink, 425.0, "ringback as early media");
    ringing
        .wait(Duration::from_secs(60))
        .assert_success("480 for no answer");
    let ev = outcome(&mut central, "+380671000002").await;
    assert_eq!(
        (ev["cause"].as_str(), ev["sip_code"].as_u64()),
        (Some("no-answer"), Some(480))
    );

    // The SIP caller gives up while the GSM side rings.
    sim.control(json!({"op": "dial-result", "result": "ring"}));
    caller("caller_cancel", "+380671000003")
        .start()
        .wait(T)
        .assert_success("CANCEL → 487");
    let ev = outcome(&mut central, "+380671000003").await;
    assert_eq!(ev["cause"], "cancelled", "{ev}");
    assert_eq!(ev["sip_code"], 487, "the 487 the caller's CANCEL got: {ev}");
    common::wait_for(T, "the cancelled GSM call to be hung up", || {
        let st = sim.control(json!({"op": "state"}));
        (st["calls"]["active"].as_array().map(Vec::len) == Some(0)).then_some(())
    });

    // Answered, with DTMF both ways; the SIP caller hangs up.
    let dtmf = dir.path().join("dtmf.pcap");
    write_rtp_pcap(&dtmf, &dtmf_sequence_packets("19#", 101), 20);
    sim.control(json!({"op": "dial-result", "result": "answer", "delay_ms": 500}));
    let mut call = caller("caller_dtmf", "+380671000004")
        .var("dtmfpcap", dtmf.display())
        .var("talkms", 6000)
        .start();
    wait_sink_hears(&sink, 1000.0, "the GSM side's tone at the SIP caller");
    let r = sim.control(json!({"op": "dtmf", "digit": "5"}));
    assert_eq!(r["ok"], true, "{r}");
    assert!(
        sink.wait_until(T, |s| s.dtmf_digits().contains('5')),
        "the GSM side's DTMF 5 as RFC 4733: got {:?}",
        sink.dtmf_digits()
    );
    common::wait_for(T, "the SIP caller's DTMF at the modem (AT+VTS)", || {
        let st = sim.control(json!({"op": "state"}));
        let got: String = st["calls"]["dtmf"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        (got == "19#").then_some(())
    });
    call.wait(T)
        .assert_success("answered call, BYE from the SIP side");
    let ev = outcome(&mut central, "+380671000004").await;
    assert_eq!(ev["cause"], "normal", "{ev}");
    assert!(
        ev["recording"]["bytes"].as_u64().unwrap_or(0) > 8000,
        "recorded: {ev}"
    );
    assert_eq!(ev["sip_code"], 200);
    assert!(ev["answered_at"].is_string());
    let st = sim.control(json!({"op": "state"}));
    assert!(
        st["voice_commands"]
            .as_array()
            .is_some_and(|c| c.iter().any(|x| x == "AT+CPCMREG=1")),
        "{}",
        st["voice_commands"]
    );
    assert_eq!(st["calls"]["active"].as_array().map(Vec::len), Some(0));
}

/// The trunk registers with digest authentication (SIPp checks the response).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_to_the_pbx_with_digest_auth() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let net = SipSetup::new();
    let mut pbx = Sipp::new("pbx_register_auth")
        .local_port(net.pbx_port)
        .start();
    let sim = SimModem::start(dir.path(), "modem1", &["--dialect", "generic"]);
    let cfg = write_config_with(
        dir.path(),
        "gw-reg",
        &broker.url(),
        &net.sections(true, ""),
        &[(1, &sim.link, "")],
    );
    let _agent = AgentProc::start(&cfg);
    pbx.wait(T)
        .assert_success("REGISTER → 401 → REGISTER with a valid digest → 200");
}

/// A SIM over its call minutes for today is not used: with no other SIM the SIP caller gets
/// 503 and the record says `no-route`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_over_its_call_minutes_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let net = SipSetup::new();
    let sink = RtpSink::bind();
    let imsi = "255010000000041";
    let (sim, pcm) = voice_modem(dir.path(), "modem1", "quectel", imsi);
    {
        // 60 s of outgoing calls already counted today for this SIM.
        let (store, _) = gsmgw_agent::store::Store::open(
            gsmgw_agent::store::StoreOptions::in_dir(&dir.path().join("data")),
            "gw-min",
        )
        .unwrap();
        let today = chrono::Local::now().format("%Y-%m-%d");
        store
            .counter_add(&format!("call-secs:{imsi}:{today}"), 60)
            .await
            .unwrap();
    }
    let (mut central, _agent) = one_modem_agent(
        dir.path(),
        &broker,
        "gw-min",
        // This one trusts the PBX's address alone (inbound_auth = "ip", chosen explicitly).
        &net.sections(false, "call_minutes_per_day = 1\n").replace(
            "register = false\n",
            "register = false\ninbound_auth = \"ip\"\n",
        ),
        &sim,
        &pcm,
    )
    .await;
    Sipp::new("caller_unavailable")
        .remote(net.agent_addr())
        .service("+380671000009")
        .var("rtpsink", sink.port())
        .start()
        .wait(T)
        .assert_success("503 when no SIM may call");
    let ev = central
        .expect("gsmgw/gw-min/event/call", T, |v| v["to"] == "+380671000009")
        .await;
    assert_eq!(ev["cause"], "no-route", "{ev}");
    assert_eq!(ev["sip_code"], 503);
    assert!(ev["slot"].is_null(), "{ev}");
    let st = sim.control(json!({"op": "state"}));
    assert_eq!(st["calls"]["dialed"].as_array().map(Vec::len), Some(0));
}

/// A wrong trunk password: the PBX refuses the registration and the gateway raises one alarm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_registration_raises_an_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let net = SipSetup::new();
    let mut pbx = Sipp::new("pbx_register_auth")
        .local_port(net.pbx_port)
        .start();
    let sim = SimModem::start(dir.path(), "modem1", &["--dialect", "generic"]);
    let sections = net
        .sections(true, "")
        .replace("password = \"secret\"", "password = \"wrong\"");
    let cfg = write_config_with(
        dir.path(),
        "gw-regfail",
        &broker.url(),
        &sections,
        &[(1, &sim.link, "")],
    );
    let mut central = Central::connect(broker.port, "gsmgw/gw-regfail/#").await;
    let _agent = AgentProc::start(&cfg);
    let alarm = central
        .expect("gsmgw/gw-regfail/event/alarm", T, |v| {
            v["code"] == "sip-registration"
        })
        .await;
    assert!(
        alarm["message"].as_str().unwrap_or("").contains("403"),
        "{alarm}"
    );
    let r = pbx.wait(T);
    assert!(!r.success, "SIPp accepted a wrong password:\n{}", r.log);
}

/// Eight GSM callers at once, each forwarded to the PBX and bridged with audio both ways; the
/// GSM side hangs up (the agent sends BYE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_bridged_calls() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let net = SipSetup::new();
    let sink = RtpSink::bind();
    let mut pbx = answering_pbx("pbx_answer_many", &net, &sink, dir.path(), 8.0, |s| {
        s.calls(8).timeout(Duration::from_secs(90))
    });
    let dialects = ["quectel", "simcom", "huawei", "generic"];
    let sims: Vec<(SimModem, PathBuf)> = (0..8)
        .map(|i| {
            voice_modem(
                dir.path(),
                &format!("modem{}", i + 1),
                dialects[i % 4],
                &format!("2550100000001{i:02}"),
            )
        })
        .collect();
    let extras: Vec<String> = sims
        .iter()
        .map(|(_, pcm)| format!("voice_port = \"{}\"", pcm.display()))
        .collect();
    let modems: Vec<(u16, &Path, &str)> = sims
        .iter()
        .enumerate()
        .map(|(i, (s, _))| (i as u16 + 1, s.link.as_path(), extras[i].as_str()))
        .collect();
    let extra = net.sections(
        false,
        &format!(
            "[[voice.route]]\naction = \"forward\"\ntarget = \"{}\"\n",
            net.target("queue")
        ),
    );
    let cfg = write_config_with(dir.path(), "gw-8", &broker.url(), &extra, &modems);
    let mut central = Central::connect(broker.port, "gsmgw/gw-8/#").await;
    let _agent = AgentProc::start(&cfg);
    // Eight simulated modems start at once: on a loaded 2-core machine that takes a while.
    for i in 1..=8 {
        central
            .expect(&format!("gsmgw/gw-8/modem/{i}/state"), 2 * T, |v| {
                v["state"] == "ready"
            })
            .await;
    }
    for (i, (sim, _)) in sims.iter().enumerate() {
        sim.control(json!({"op": "voice-tone", "hz": 700 + 100 * i, "amplitude": 8000}));
        let r = sim.control(json!({"op": "call", "from": format!("+38050000000{i}")}));
        assert_eq!(r["ok"], true, "{r}");
    }
    // Every call's modem tone arrives as its own RTP stream; every modem hears the PBX.
    assert!(
        sink.wait_until(Duration::from_secs(60), |s| s.ssrcs().len() >= 8),
        "8 RTP streams, got {}",
        sink.ssrcs().len()
    );
    for (i, (sim, _)) in sims.iter().enumerate() {
        wait_modem_hears(sim, 600.0, &format!("the PBX's tone at modem {}", i + 1));
    }
    let want: Vec<f64> = (0..8).map(|i| 700.0 + 100.0 * i as f64).collect();
    let heard = |s: &RtpSink| -> Vec<f64> {
        s.ssrcs()
            .iter()
            .filter_map(|x| dominant_hz_of(&s.audio_samples_ssrc(0, *x)))
            .collect()
    };
    let all_heard = |s: &RtpSink| {
        let h = heard(s);
        want.iter().all(|w| h.iter().any(|f| (f - w).abs() <= 8.0))
    };
    assert!(
        sink.wait_until(T, all_heard),
        "every modem's tone in its own stream: want {want:?}, heard {:?}",
        heard(&sink)
    );
    for (sim, _) in &sims {
        assert_eq!(sim.control(json!({"op": "hangup"}))["ok"], true);
    }
    let mut ended = 0;
    while ended < 8 {
        let ev = central.expect("gsmgw/gw-8/event/call", T, |_| true).await;
        assert_eq!(ev["cause"], "normal", "{ev}");
        assert!(ev["answered_at"].is_string(), "{ev}");
        ended += 1;
    }
    pbx.wait(Duration::from_secs(60))
        .assert_success("8 calls answered, BYE from the gateway");
}

/// `cmd/dial`: the manager's extension rings first, then the lead through a SIM; bridged;
/// `cmd/hangup` ends both legs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn click_to_call_bridges_extension_and_lead_then_hangup_command() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let net = SipSetup::new();
    let sink = RtpSink::bind();
    let mut pbx = answering_pbx("pbx_answer_bye_gsm", &net, &sink, dir.path(), 6.0, |s| s);
    let (sim, pcm) = voice_modem(dir.path(), "modem1", "huawei", "255010000000031");
    sim.control(json!({"op": "voice-tone", "hz": 1000, "amplitude": 8000}));
    sim.control(json!({"op": "dial-result", "result": "answer", "delay_ms": 800}));
    let (mut central, _agent) = one_modem_agent(
        dir.path(),
        &broker,
        "gw-dial",
        &net.sections(false, ""),
        &sim,
        &pcm,
    )
    .await;

    let lead = "+380671234567";
    central
        .send(
            "gsmgw/gw-dial/cmd/dial",
            &json!({"request_id": "dial-1", "to": lead, "bridge_to": net.target("101")})
                .to_string(),
        )
        .await;
    let reply = central
        .expect("gsmgw/gw-dial/reply/dial-1", T, |_| true)
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let call_id = reply["result"]["call_id"].as_str().unwrap().to_string();
    assert_eq!(reply["result"]["slot"], 1);
    wait_sink_hears(&sink, 1000.0, "the lead's side at the manager");
    wait_modem_hears(&sim, 600.0, "the manager's side at the lead");
    let st = sim.control(json!({"op": "state"}));
    assert!(
        st["calls"]["dialed"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x == lead)),
        "{}",
        st["calls"]
    );
    central
        .send(
            "gsmgw/gw-dial/cmd/hangup",
            &json!({"request_id": "hang-1", "call_id": call_id}).to_string(),
        )
        .await;
    let reply = central
        .expect("gsmgw/gw-dial/reply/hang-1", T, |_| true)
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    pbx.wait(T).assert_success("the extension gets BYE");
    let ev = central
        .expect("gsmgw/gw-dial/event/call", T, |v| {
            v["call_id"] == call_id.as_str()
        })
        .await;
    assert_eq!(ev["direction"], "dial");
    assert_eq!(ev["to"], lead);
    assert_eq!(ev["cause"], "normal");
    assert!(ev["answered_at"].is_string());
    common::wait_for(T, "the lead's call to be hung up", || {
        let st = sim.control(json!({"op": "state"}));
        (st["calls"]["active"].as_array().map(Vec::len) == Some(0)).then_some(())
    });
    // The same request_id again: answered from the store, nobody is dialled twice.
    central
        .send(
            "gsmgw/gw-dial/cmd/dial",
            &json!({"request_id": "dial-1", "to": lead, "bridge_to": net.target("101")})
                .to_string(),
        )
        .await;
    let again = central
        .expect("gsmgw/gw-dial/reply/dial-1", T, |_| true)
        .await;
    assert_eq!(again["result"]["duplicate"], true, "{again}");
    assert_eq!(again["result"]["call_id"], call_id.as_str());
}

// ---------------------------------------------------------------------------------------------
// Record-routing proxies in the path (RFC 3261 §12.1, §16.12) and the SIP code of cancelled calls.

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A SIP caller behind record-routing proxies dials through a SIM: the 183 and the 200 carry
/// the INVITE's Record-Route entries in order (SIPp checks), and when the GSM side hangs up the
/// gateway's BYE arrives at the socket of the proxy next to it — not at the caller — with the
/// route set as Route headers and the caller's Contact as Request-URI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_caller_behind_a_record_routing_proxy_gets_our_bye_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let net = SipSetup::new();
    let sink = RtpSink::bind();
    let (sim, pcm) = voice_modem(dir.path(), "modem1", "simcom", "255010000000071");
    sim.control(json!({"op": "dial-result", "result": "answer", "delay_ms": 500}));
    let (mut central, _agent) = one_modem_agent(
        dir.path(),
        &broker,
        "gw-rrin",
        &net.sections(false, ""),
        &sim,
        &pcm,
    )
    .await;
    let agent = loopback(net.agent_port);
    let caller_port = free_udp_port();
    let near = ProxyStandIn::start(Some(loopback(caller_port)), Some(agent));
    let far = ProxyStandIn::start(None, None);
    let number = "+380671000071";
    let mut caller = Sipp::new("caller_record_route")
        .digest("gsmgw", "secret")
        .local_port(caller_port)
        .remote(net.agent_addr())
        .service(number)
        .var("rtpsink", sink.port())
        .var("nearport", near.port())
        .var("farport", far.port())
        .start();
    central
        .expect("gsmgw/gw-rrin/event/call-state", T, |v| {
            v["state"] == "talking"
        })
        .await;
    assert_eq!(sim.control(json!({"op": "hangup"}))["ok"], true);
    let bye = near.wait_request("BYE", T);
    assert_eq!(bye.from, agent, "{}", bye.text);
    assert_eq!(
        bye.request_uri(),
        format!("sip:sipp@127.0.0.1:{caller_port};transport=UDP"),
        "{}",
        bye.text
    );
    assert_eq!(
        bye.routes(),
        [
            format!("<sip:127.0.0.1:{};lr;rr=near>", near.port()),
            format!("<sip:127.0.0.1:{};lr;rr=mid>", far.port()),
            format!("<sip:127.0.0.1:{};lr;rr=far>", far.port()),
        ],
        "{}",
        bye.text
    );
    caller
        .wait(T)
        .assert_success("Record-Route in 183 and 200, BYE relayed by the proxy");
    assert!(far.received().is_empty(), "{:?}", far.received());
    let ev = central
        .expect("gsmgw/gw-rrin/event/call", T, |v| v["to"] == number)
        .await;
    assert_eq!(
        (ev["cause"].as_str(), ev["sip_code"].as_u64()),
        (Some("normal"), Some(200))
    );
}

/// A GSM call forwarded to a PBX behind record-routing proxies: the route set is the 200's
/// Record-Route reversed, so the gateway's ACK and, when the GSM caller hangs up, its BYE
/// arrive at the socket of the proxy next to the gateway (the last Record-Route entry) — not at
/// the PBX, the configured server — with Route headers in reversed order and the PBX's Contact
/// as Request-URI (the PBX checks the Route headers too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gsm_call_to_a_record_routed_pbx_sends_ack_and_bye_through_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let net = SipSetup::new();
    let sink = RtpSink::bind();
    let agent = loopback(net.agent_port);
    let near = ProxyStandIn::start(Some(loopback(net.pbx_port)), Some(agent));
    let far = ProxyStandIn::start(None, None);
    let mut pbx = Sipp::new("pbx_record_route")
        .local_port(net.pbx_port)
        .var("rtpsink", sink.port())
        .var("nearport", near.port())
        .var("farport", far.port())
        .start();
    let (sim, pcm) = voice_modem(dir.path(), "modem1", "quectel", "255010000000072");
    let extra = net.sections(
        false,
        &format!(
            "[[voice.route]]\nslot = 1\naction = \"forward\"\ntarget = \"{}\"\n",
            net.target("100")
        ),
    );
    let (mut central, _agent) =
        one_modem_agent(dir.path(), &broker, "gw-rrout", &extra, &sim, &pcm).await;
    assert_eq!(
        sim.control(json!({"op": "call", "from": CALLER}))["ok"],
        true
    );
    let contact = format!("sip:pbx@127.0.0.1:{};transport=UDP", net.pbx_port);
    let routes = [
        format!("<sip:127.0.0.1:{};lr;rr=gwside>", near.port()),
        format!("<sip:127.0.0.1:{};lr;rr=pbxside>", far.port()),
    ];
    let ack = near.wait_request("ACK", T);
    assert_eq!(ack.from, agent, "{}", ack.text);
    assert_eq!(ack.request_uri(), contact, "{}", ack.text);
    assert_eq!(ack.routes(), routes, "{}", ack.text);
    central
        .expect("gsmgw/gw-rrout/event/call-state", T, |v| {
            v["state"] == "talking"
        })
        .await;
    assert_eq!(sim.control(json!({"op": "hangup"}))["ok"], true);
    let bye = near.wait_request("BYE", T);
    assert_eq!(bye.from, agent, "{}", bye.text);
    assert_eq!(bye.request_uri(), contact, "{}", bye.text);
    assert_eq!(bye.routes(), routes, "{}", bye.text);
    pbx.wait(T)
        .assert_success("ACK and BYE relayed by the proxy, with Route headers");
    assert!(far.received().is_empty(), "{:?}", far.received());
    let ev = central
        .expect("gsmgw/gw-rrout/event/call", T, |v| v["from"] == CALLER)
        .await;
    assert_eq!(
        (ev["cause"].as_str(), ev["sip_code"].as_u64()),
        (Some("normal"), Some(200))
    );
}

/// When the gateway cancels its own INVITE — the GSM caller hangs up while the PBX extension
/// rings, then `cmd/hangup` of a click-to-call whose extension rings — the PBX's 487 is the
/// `sip_code` of the call record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_the_gateway_cancels_record_sip_code_487() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let net = SipSetup::new();
    let mut pbx = Sipp::new("pbx_noanswer")
        .local_port(net.pbx_port)
        .calls(2)
        .start();
    let (sim, pcm) = voice_modem(dir.path(), "modem1", "generic", "255010000000073");
    let extra = net.sections(
        false,
        &format!(
            "[[voice.route]]\naction = \"forward\"\ntarget = \"{}\"\n",
            net.target("100")
        ),
    );
    let (mut central, _agent) =
        one_modem_agent(dir.path(), &broker, "gw-c487", &extra, &sim, &pcm).await;

    assert_eq!(
        sim.control(json!({"op": "call", "from": CALLER}))["ok"],
        true
    );
    central
        .expect("gsmgw/gw-c487/event/call-state", T, |v| {
            v["state"] == "ringing"
        })
        .await;
    assert_eq!(sim.control(json!({"op": "hangup"}))["ok"], true);
    let ev = central
        .expect("gsmgw/gw-c487/event/call", T, |v| v["from"] == CALLER)
        .await;
    assert_eq!(
        (ev["cause"].as_str(), ev["sip_code"].as_u64()),
        (Some("cancelled"), Some(487)),
        "{ev}"
    );

    let lead = "+380671000073";
    central
        .send(
            "gsmgw/gw-c487/cmd/dial",
            &json!({"request_id": "dial-487", "to": lead, "bridge_to": net.target("101")})
                .to_string(),
        )
        .await;
    let reply = central
        .expect("gsmgw/gw-c487/reply/dial-487", T, |_| true)
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let call_id = reply["result"]["call_id"].as_str().unwrap().to_string();
    central
        .send(
            "gsmgw/gw-c487/cmd/hangup",
            &json!({"request_id": "hang-487", "call_id": call_id}).to_string(),
        )
        .await;
    let ev = central
        .expect("gsmgw/gw-c487/event/call", T, |v| {
            v["call_id"] == call_id.as_str()
        })
        .await;
    assert_eq!(
        (ev["cause"].as_str(), ev["sip_code"].as_u64()),
        (Some("cancelled"), Some(487)),
        "{ev}"
    );
    pbx.wait(T)
        .assert_success("two INVITEs cancelled, 487 ACKed");
}

/// Through a real Kamailio that record-routes with another address than the one calls reach
/// it on, and relays in-dialog requests only there: a SIP caller's call through a SIM gets
/// Record-Route in the 183 and the 200 (its ACK then reaches us through Kamailio), and the
/// gateway's BYE when the GSM side hangs up reaches the caller only because it went to the
/// record-routed address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_caller_through_kamailio_record_route_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let net = SipSetup::new();
    let sink = RtpSink::bind();
    let kamailio = Kamailio::start(net.agent_port);
    let (sim, pcm) = voice_modem(dir.path(), "modem1", "simcom", "255010000000074");
    sim.control(json!({"op": "dial-result", "result": "answer", "delay_ms": 500}));
    let (mut central, _agent) = one_modem_agent(
        dir.path(),
        &broker,
        "gw-kamin",
        &net.sections(false, ""),
        &sim,
        &pcm,
    )
    .await;
    let number = "+380671000074";
    let mut caller = Sipp::new("caller_via_proxy")
        .digest("gsmgw", "secret")
        .remote(kamailio.addr())
        .service(number)
        .var("rtpsink", sink.port())
        .var("routeport", kamailio.route_port)
        .start();
    central
        .expect("gsmgw/gw-kamin/event/call-state", T, |v| {
            v["state"] == "talking"
        })
        .await;
    assert_eq!(sim.control(json!({"op": "hangup"}))["ok"], true);
    let r = caller.wait(T);
    assert!(
        r.success,
        "SIPp caller through Kamailio failed (exit {:?}):\n{}\n{}",
        r.code,
        r.log,
        kamailio.log()
    );
    let ev = central
        .expect("gsmgw/gw-kamin/event/call", T, |v| v["to"] == number)
        .await;
    assert_eq!(
        (ev["cause"].as_str(), ev["sip_code"].as_u64()),
        (Some("normal"), Some(200)),
        "{ev}"
    );
}

/// A GSM call forwarded to the PBX through the same Kamailio (the gateway's `server`): the
/// gateway's ACK and BYE reach the PBX only because they went to the record-routed address
/// with a Route header; Kamailio refuses them on the address the INVITE used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gsm_call_through_kamailio_acks_and_hangs_up_via_the_record_route() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let net = SipSetup::new();
    let sink = RtpSink::bind();
    let kamailio = Kamailio::start(net.agent_port);
    let mut pbx = Sipp::new("pbx_via_proxy")
        .local_port(net.pbx_port)
        .var("rtpsink", sink.port())
        .start();
    let (sim, pcm) = voice_modem(dir.path(), "modem1", "quectel", "255010000000075");
    let extra = net
        .sections(
            false,
            &format!(
                "[[voice.route]]\nslot = 1\naction = \"forward\"\ntarget = \"{}\"\n",
                net.target("100")
            ),
        )
        .replace(
            &format!("server = \"127.0.0.1:{}\"", net.pbx_port),
            &format!("server = \"{}\"", kamailio.addr()),
        );
    let (mut central, _agent) =
        one_modem_agent(dir.path(), &broker, "gw-kamout", &extra, &sim, &pcm).await;
    assert_eq!(
        sim.control(json!({"op": "call", "from": CALLER}))["ok"],
        true
    );
    central
        .expect("gsmgw/gw-kamout/event/call-state", T, |v| {
            v["state"] == "talking"
        })
        .await;
    assert_eq!(sim.control(json!({"op": "hangup"}))["ok"], true);
    let r = pbx.wait(T);
    assert!(
        r.success,
        "SIPp PBX behind Kamailio failed (exit {:?}):\n{}\n{}",
        r.code,
        r.log,
        kamailio.log()
    );
    let ev = central
        .expect("gsmgw/gw-kamout/event/call", T, |v| v["from"] == CALLER)
        .await;
    assert_eq!(
        (ev["cause"].as_str(), ev["sip_code"].as_u64()),
        (Some("normal"), Some(200)),
        "{ev}"
    );
}

/// Every datagram on `sock` within `ms` milliseconds.
fn raw_recv_all(sock: &std::net::UdpSocket, ms: u64) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_millis(ms);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return out;
        }
        sock.set_read_timeout(Some(left)).unwrap();
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => out.push(String::from_utf8_lossy(&buf[..n]).to_string()),
            Err(_) => return out,
        }
    }
}

fn header_of(msg: &str, name: &str) -> String {
    common::sipp::header_lines(msg, name)
        .into_iter()
        .next()
        .unwrap_or_default()
}

/// contact-token, the default when the gateway registers: the registered Contact carries the
/// token; an INVITE from the PBX's own address without it, or with a guessed one, gets one 403
/// and dials nothing; the INVITE with it dials the SIM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_trunk_takes_only_invites_carrying_the_contact_token() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let net = SipSetup::new();
    let sink = RtpSink::bind();
    // The PBX (registrar) is this socket.
    let pbx = std::net::UdpSocket::bind(("127.0.0.1", net.pbx_port)).unwrap();
    let (sim, pcm) = voice_modem(dir.path(), "modem1", "simcom", "255010000000081");
    sim.control(json!({"op": "dial-result", "result": "ring"}));
    let (_central, _agent) = one_modem_agent(
        dir.path(),
        &broker,
        "gw-token",
        &net.sections(true, ""),
        &sim,
        &pcm,
    )
    .await;
    let register = common::wait_for(T, "the gateway's REGISTER", || {
        raw_recv_all(&pbx, 500)
            .into_iter()
            .find(|m| m.starts_with("REGISTER "))
    });
    let contact = header_of(&register, "Contact");
    let token = contact
        .split(";gwtoken=")
        .nth(1)
        .map(|t| t.trim_end_matches('>').to_string())
        .unwrap_or_else(|| panic!("no token in the registered Contact {contact}"));
    assert!(token.len() >= 16, "{contact}");
    let mut ok = "SIP/2.0 200 OK\r\n".to_string();
    for h in ["Via", "From", "To", "Call-ID", "CSeq", "Contact"] {
        ok.push_str(&format!("{h}: {}\r\n", header_of(&register, h)));
    }
    ok.push_str("Expires: 300\r\nContent-Length: 0\r\n\r\n");
    let agent = loopback(net.agent_port);
    pbx.send_to(ok.as_bytes(), agent).unwrap();

    let me = pbx.local_addr().unwrap();
    let invite = |uri: &str, call_id: &str| {
        let body = format!(
            "v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
            sink.port()
        );
        format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id}\r\n\
             From: <sip:100@{me}>;tag=pbx-{call_id}\r\nTo: <sip:+380671000081@{agent}>\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:100@{me}>\r\nMax-Forwards: 70\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let number = "+380671000081";
    for (i, uri) in [
        format!("sip:{number}@{agent}"),
        format!("sip:{number}@{agent};gwtoken=00112233445566778899aabbccddeeff"),
        format!("sip:gsmgw@{agent};gwtoken={}", &token[1..]),
    ]
    .iter()
    .enumerate()
    {
        pbx.send_to(invite(uri, &format!("forged-{i}")).as_bytes(), agent)
            .unwrap();
        let got: Vec<String> = raw_recv_all(&pbx, 1500)
            .into_iter()
            .filter(|m| !m.starts_with("OPTIONS "))
            .map(|m| m.lines().next().unwrap_or("").to_string())
            .collect();
        assert_eq!(got, ["SIP/2.0 403 Forbidden"], "{uri}");
    }
    let uri = format!("sip:{number}@{agent};gwtoken={token}");
    pbx.send_to(invite(&uri, "with-token").as_bytes(), agent)
        .unwrap();
    let dialed = common::wait_for(T, "the SIM dialled for the INVITE with the token", || {
        let st = sim.control(json!({"op": "state"}));
        st["calls"]["dialed"]
            .as_array()
            .filter(|d| !d.is_empty())
            .cloned()
    });
    assert_eq!(
        dialed.len(),
        1,
        "only the INVITE with the token dials: {dialed:?}"
    );
    assert!(dialed[0].to_string().contains(number), "{dialed:?}");
}

/// While 2,000 INVITEs from untrusted loopback addresses arrive (about 1,500/s), a call from
/// the PBX is answered as usual; the flood gets no 100 Trying and at most one 403 per INVITE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_call_connects_during_an_untrusted_invite_flood() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let net = SipSetup::new();
    let sink = RtpSink::bind();
    let (sim, pcm) = voice_modem(dir.path(), "modem1", "simcom", "255010000000091");
    sim.control(json!({"op": "dial-result", "result": "answer", "delay_ms": 300}));
    let (mut central, _agent) = one_modem_agent(
        dir.path(),
        &broker,
        "gw-flood",
        &net.sections(false, ""),
        &sim,
        &pcm,
    )
    .await;
    let agent = loopback(net.agent_port);
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let flood = std::thread::spawn(move || {
        let socks: Vec<std::net::UdpSocket> = (2..12)
            .map(|i| std::net::UdpSocket::bind((format!("127.0.0.{i}"), 0)).unwrap())
            .collect();
        let t0 = std::time::Instant::now();
        for n in 0..2000u32 {
            let s = &socks[n as usize % socks.len()];
            let me = s.local_addr().unwrap();
            let invite = format!(
                "INVITE sip:+380671000091@{agent} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-f{n}\r\n\
                 From: <sip:scan@{me}>;tag=f{n}\r\nTo: <sip:+380671000091@{agent}>\r\n\
                 Call-ID: flood-{n}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            );
            s.send_to(invite.as_bytes(), agent).unwrap();
            if n == 200 {
                let _ = started_tx.send(());
            }
            // About 1,500/s: wait until this INVITE's slot.
            let due = Duration::from_micros(u64::from(n) * 666);
            if let Some(left) = due.checked_sub(t0.elapsed()) {
                std::thread::sleep(left);
            }
        }
        // What came back (nothing is retransmitted, so a short read after the end is enough).
        let (mut forbidden, mut other) = (0u32, Vec::new());
        let mut buf = vec![0u8; 65536];
        for s in &socks {
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            while let Ok((n, _)) = s.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                if text.starts_with("SIP/2.0 403") {
                    forbidden += 1;
                } else {
                    other.push(text.lines().next().unwrap_or("").to_string());
                }
            }
        }
        (forbidden, other)
    });
    started_rx.recv_timeout(T).unwrap();
    let number = "+380671000091";
    let pcap = tone_pcap(dir.path(), 600.0, 1.0);
    Sipp::new("caller_answered")
        .digest("gsmgw", "secret")
        .remote(net.agent_addr())
        .service(number)
        .var("rtpsink", sink.port())
        .var("talkms", 500)
        .var("tonepcap", pcap.display())
        .start()
        .wait(T)
        .assert_success("a trusted call during the flood");
    let (forbidden, other) = flood.join().unwrap();
    let ev = central
        .expect("gsmgw/gw-flood/event/call", T, |v| v["to"] == number)
        .await;
    assert_eq!(ev["cause"], "normal", "{ev}");
    assert!(other.is_empty(), "the flood got more than 403s: {other:?}");
    assert!(forbidden <= 2000, "{forbidden} answers to 2000 INVITEs");
    let st = sim.control(json!({"op": "state"}));
    assert_eq!(
        st["calls"]["dialed"].as_array().map(Vec::len),
        Some(1),
        "only the trusted call dials: {}",
        st["calls"]
    );
}
