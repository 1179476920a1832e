//! Modem simulator voice side on real ptys: the voice PCM port per dialect's streaming rule, the
//! far end's tone, what the agent sends, far-end DTMF reports.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "sim")]

mod sim_port;

use std::path::Path;
use std::time::Duration;

use gsmgw_drivers::sim::{Dialect, SimHandle};
use gsmgw_drivers::voice::tone::{ToneGenerator, dominant_frequency};
use gsmgw_drivers::voice::{FRAME_BYTES, frame_to_le};
use serde_json::{Value, json};
use sim_port::{Chunk, Port, RawPty, WAIT, options, start, test_dir, wait_registered};
use tokio::time::Instant;

/// The agent's end of the voice port: raw, non-blocking, read by a thread.
struct VoicePort {
    raw: RawPty,
    buf: Vec<u8>,
}

impl VoicePort {
    async fn open(link: &Path) -> VoicePort {
        VoicePort {
            raw: RawPty::open(link).await,
            buf: Vec::new(),
        }
    }

    /// Wait until `n` frames arrived; returns them (consumed).
    async fn frames(&mut self, n: usize) -> Vec<u8> {
        let until = Instant::now() + WAIT;
        while self.buf.len() < n * FRAME_BYTES {
            match tokio::time::timeout_at(until, self.raw.rx.recv()).await {
                Ok(Some(Chunk::Data(d))) => self.buf.extend(d),
                _ => panic!(
                    "only {} of {} frame bytes within {WAIT:?}",
                    self.buf.len(),
                    n * FRAME_BYTES
                ),
            }
        }
        self.buf.drain(..n * FRAME_BYTES).collect()
    }

    /// Read until nothing arrives for `quiet`; false if data keeps coming until `timeout`.
    async fn drain_until_quiet(&mut self, quiet: Duration, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        loop {
            self.buf.clear();
            match tokio::time::timeout(quiet, self.raw.rx.recv()).await {
                Err(_) => return true,
                Ok(None | Some(Chunk::Closed)) => return true,
                Ok(Some(_)) if Instant::now() >= until => return false,
                Ok(Some(_)) => {}
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        self.raw.write_all(bytes);
    }
}

fn samples(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

fn tone_frames(hz: f64, n: usize) -> Vec<u8> {
    let mut g = ToneGenerator::new(hz, 6000);
    (0..n).flat_map(|_| frame_to_le(&g.next_frame())).collect()
}

async fn stats(sim: &SimHandle) -> Value {
    sim.control_ok(json!({"op": "voice-stats"}))
        .await
        .expect("voice-stats")
}

/// Poll `voice-stats` every 20 ms until `pred` holds; panics after WAIT.
async fn wait_stats(sim: &SimHandle, pred: impl Fn(&Value) -> bool) -> Value {
    let until = Instant::now() + WAIT;
    loop {
        let s = stats(sim).await;
        if pred(&s) {
            return s;
        }
        if Instant::now() >= until {
            panic!("voice-stats condition not met; last {s}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn start_voice(name: &str, dialect: Dialect) -> (SimHandle, Port, std::path::PathBuf) {
    let dir = test_dir(name);
    let mut opts = options(&dir, dialect);
    opts.voice_link = Some(dir.join("voice"));
    let (sim, mut port) = start(opts).await;
    wait_registered(&sim).await;
    port.cmd("ATE0").await;
    port.cmd("AT+CMEE=1").await;
    (sim, port, dir)
}

/// Incoming call, answered, voice enabled per dialect; the far end's tone arrives, the agent's
/// tone is measured, DTMF is reported the dialect's way, hang-up stops the stream.
async fn voice_call(name: &str, dialect: Dialect) {
    let (sim, mut port, dir) = start_voice(name, dialect).await;
    sim.control_ok(json!({"op": "voice-tone", "hz": 1000, "amplitude": 8000}))
        .await
        .unwrap();
    match dialect {
        // Quectel: the path may be set before the call and stays set.
        Dialect::Quectel => assert_eq!(port.cmd("AT+QPCMV=1,0").await, "\r\nOK\r\n"),
        Dialect::Simcom => {
            assert_eq!(port.cmd("AT+CPCMREG=1").await, "\r\n+CME ERROR: 3\r\n")
        }
        Dialect::Huawei => {
            assert_eq!(port.cmd("AT^DDSETEX=2").await, "\r\n+CME ERROR: 3\r\n")
        }
        Dialect::Generic => {}
        other => panic!("{other} has no PCM port: see call_without_pcm_port_never_streams"),
    }
    sim.control_ok(json!({"op": "call", "from": "+380501234567"}))
        .await
        .unwrap();
    port.expect("\r\nRING\r\n").await;
    assert_eq!(stats(&sim).await["streaming"], json!(false));
    if dialect == Dialect::Huawei {
        // Accepted while the call exists, even before it is answered.
        assert_eq!(port.cmd("AT^DDSETEX=2").await, "\r\nOK\r\n");
    }
    if dialect == Dialect::Simcom {
        assert_eq!(port.cmd("AT+CPCMREG=1").await, "\r\n+CME ERROR: 3\r\n");
    }
    assert_eq!(port.cmd("ATA").await, "\r\nOK\r\n");
    match dialect {
        Dialect::Simcom => drop(port.expect("\r\nVOICE CALL: BEGIN\r\n").await),
        Dialect::Huawei => drop(port.expect("\r\n^CONN:1,0\r\n").await),
        _ => {}
    }
    let r = port.cmd("AT+CLCC").await;
    assert!(
        r.contains("+CLCC: 1,1,0,0,0,\"+380501234567\",145"),
        "{r:?}"
    );
    if dialect == Dialect::Simcom {
        assert_eq!(stats(&sim).await["streaming"], json!(false));
        assert_eq!(port.cmd("AT+CPCMREG=1").await, "\r\nOK\r\n");
    }
    assert_eq!(stats(&sim).await["streaming"], json!(true));

    // The far end's tone, 50 frames/s.
    let link = dir.join("voice");
    let mut voice = VoicePort::open(&link).await;
    let first = voice.frames(10).await;
    assert_eq!(first.len(), 10 * FRAME_BYTES);
    let t0 = Instant::now();
    let s0 = stats(&sim).await["frames_sent"].as_u64().unwrap();
    let heard = voice.frames(50).await;
    let hz = dominant_frequency(&samples(&heard), 25.0).expect("a tone, not silence");
    assert!((hz - 1000.0).abs() <= 5.0, "far end heard at {hz} Hz");
    let s1 = stats(&sim).await["frames_sent"].as_u64().unwrap();
    let expected = t0.elapsed().as_secs_f64() * 50.0;
    assert!(
        ((s1 - s0) as f64 - expected).abs() <= 4.0,
        "{} frames in {:?}",
        s1 - s0,
        t0.elapsed()
    );

    // The agent's voice: another tone.
    voice.write(&tone_frames(440.0, 60));
    let s = wait_stats(&sim, |s| s["frames_received"].as_u64() >= Some(60)).await;
    let hz = s["dominant_hz"].as_f64().expect("dominant_hz");
    assert!((hz - 440.0).abs() <= 5.0, "{s}");
    assert!(s["rms"].as_f64().unwrap() > 3000.0, "{s}");
    assert_eq!(s["bytes_received"], json!(60 * FRAME_BYTES));

    // The far end presses 5.
    match dialect {
        Dialect::Quectel => {
            let r = sim
                .control_ok(json!({"op": "dtmf", "digit": "5"}))
                .await
                .unwrap();
            assert_eq!(r["reported"], json!(false), "off until AT+QTONEDET=1");
            assert_eq!(port.cmd("AT+QTONEDET=1").await, "\r\nOK\r\n");
            sim.control_ok(json!({"op": "dtmf", "digit": "5"}))
                .await
                .unwrap();
            port.expect("\r\n+QTONEDET: 53\r\n").await;
            sim.control_ok(json!({"op": "dtmf", "digit": "#"}))
                .await
                .unwrap();
            port.expect("\r\n+QTONEDET: 35\r\n").await;
        }
        Dialect::Simcom => {
            assert_eq!(port.cmd("AT+DDET=1").await, "\r\nOK\r\n");
            sim.control_ok(json!({"op": "dtmf", "digit": "5"}))
                .await
                .unwrap();
            port.expect("\r\n+RXDTMF: 5\r\n").await;
        }
        Dialect::Huawei => {
            sim.control_ok(json!({"op": "dtmf", "digit": "5"}))
                .await
                .unwrap();
            port.expect("\r\n^DDTMF: 5\r\n").await;
        }
        Dialect::Generic => {
            let r = sim
                .control(json!({"op": "dtmf", "digit": "5"}))
                .await
                .unwrap();
            assert_eq!(r["ok"], json!(false));
            assert_eq!(r["error"], json!("generic modems report no DTMF"));
        }
        other => panic!("{other} has no PCM port"),
    }

    // Hang-up (remote for half of them) stops the stream.
    if matches!(dialect, Dialect::Quectel | Dialect::Huawei) {
        sim.control_ok(json!({"op": "hangup"})).await.unwrap();
        if dialect == Dialect::Huawei {
            port.expect("\r\n^CEND:1,").await;
        }
        port.expect("\r\nNO CARRIER\r\n").await;
    } else {
        assert_eq!(port.cmd("ATH").await, "\r\nOK\r\n");
        if dialect == Dialect::Simcom {
            port.expect("\r\nVOICE CALL: END: ").await;
            port.expect("\r\n").await;
        }
    }
    assert_eq!(stats(&sim).await["streaming"], json!(false));
    assert!(
        voice
            .drain_until_quiet(Duration::from_millis(150), WAIT)
            .await,
        "frames keep coming after the hang-up"
    );
    let before = stats(&sim).await;
    // Bytes the agent writes now are read and dropped: counted, but not as frames.
    voice.write(&tone_frames(440.0, 2));
    let after = wait_stats(&sim, |s| {
        s["bytes_received"].as_u64() == Some(62 * FRAME_BYTES as u64)
    })
    .await;
    assert_eq!(after["frames_received"], json!(60));
    assert_eq!(after["frames_sent"], before["frames_sent"]);
    assert!(
        voice
            .drain_until_quiet(Duration::from_millis(150), WAIT)
            .await
    );
    match dialect {
        // The path ends with the call.
        Dialect::Simcom | Dialect::Huawei => {
            let cmd = if dialect == Dialect::Simcom {
                "AT+CPCMREG=1"
            } else {
                "AT^DDSETEX=2"
            };
            assert_eq!(port.cmd(cmd).await, "\r\n+CME ERROR: 3\r\n");
        }
        // Quectel's stays until AT+QPCMV=0.
        Dialect::Quectel => {
            assert_eq!(port.cmd("AT+QPCMV?").await, "\r\n+QPCMV: 1,0\r\n\r\nOK\r\n");
        }
        Dialect::Generic => {}
        other => panic!("{other} has no PCM port"),
    }
    sim.control_ok(json!({"op": "voice-reset"})).await.unwrap();
    let s = stats(&sim).await;
    assert_eq!(
        (&s["frames_sent"], &s["bytes_received"], &s["dominant_hz"]),
        (&json!(0), &json!(0), &Value::Null)
    );
    drop(voice);
    sim.shutdown().await;
    assert!(!link.exists(), "voice link removed on shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quectel_voice_call() {
    voice_call("voice-quectel", Dialect::Quectel).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simcom_voice_call() {
    voice_call("voice-simcom", Dialect::Simcom).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huawei_voice_call() {
    voice_call("voice-huawei", Dialect::Huawei).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_voice_call() {
    voice_call("voice-generic", Dialect::Generic).await;
}

/// A SIM800 (dialect simcom2g) has analog audio only: with a voice link configured anyway, an
/// answered call never streams, no voice-port command exists, and DTMF still comes as `+DTMF:`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_without_pcm_port_never_streams() {
    let (sim, mut port, _dir) = start_voice("voice-sim800", Dialect::Simcom2g).await;
    sim.control_ok(json!({"op": "call", "from": "+380501234567"}))
        .await
        .unwrap();
    port.expect("\r\nRING\r\n").await;
    assert_eq!(port.cmd("ATA").await, "\r\nOK\r\n");
    let r = port.cmd("AT+CLCC").await;
    assert!(r.contains("+CLCC: 1,1,0,0,0,"), "{r:?}");
    for cmd in ["AT+CPCMREG=1", "AT+QPCMV=1,0", "AT^DDSETEX=2"] {
        assert_eq!(port.cmd(cmd).await, "\r\nERROR\r\n", "{cmd}");
    }
    assert_eq!(stats(&sim).await["streaming"], json!(false));
    assert_eq!(port.cmd("AT+DDET=1").await, "\r\nOK\r\n");
    sim.control_ok(json!({"op": "dtmf", "digit": "5"}))
        .await
        .unwrap();
    port.expect("\r\n+DTMF: 5\r\n").await;
    assert_eq!(port.cmd("ATH").await, "\r\nOK\r\n");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_call_outcomes_and_quectel_path_off() {
    let (sim, mut port, _dir) = start_voice("voice-out", Dialect::Quectel).await;
    port.cmd("AT+COLP=1").await;
    for (result, word) in [("busy", "BUSY"), ("no-answer", "NO ANSWER")] {
        sim.control_ok(json!({"op": "dial-result", "result": result, "delay_ms": 50}))
            .await
            .unwrap();
        assert_eq!(port.cmd("ATD+380501234567;").await, "\r\nOK\r\n");
        port.expect(&format!("\r\n{word}\r\n")).await;
        assert_eq!(port.cmd("AT+CLCC").await, "\r\nOK\r\n");
    }
    sim.control_ok(json!({"op": "dial-result", "result": "answer", "delay_ms": 50}))
        .await
        .unwrap();
    assert_eq!(port.cmd("ATD+380501234567;").await, "\r\nOK\r\n");
    port.expect("\r\n+COLP: \"+380501234567\",145,,,\r\n").await;
    let r = port.cmd("AT+CLCC").await;
    assert!(
        r.contains("+CLCC: 1,0,0,0,0,\"+380501234567\",145"),
        "{r:?}"
    );
    // Active, but Quectel streams only with AT+QPCMV=1.
    assert_eq!(stats(&sim).await["streaming"], json!(false));
    assert_eq!(port.cmd("AT+QPCMV=1,2").await, "\r\nOK\r\n");
    assert_eq!(stats(&sim).await["streaming"], json!(true));
    assert_eq!(port.cmd("AT+QPCMV=0").await, "\r\nOK\r\n");
    assert_eq!(stats(&sim).await["streaming"], json!(false));
    // Port 1 is the UART PCM interface: accepted, but nothing on the USB voice port.
    assert_eq!(port.cmd("AT+QPCMV=1,1").await, "\r\nOK\r\n");
    assert_eq!(stats(&sim).await["streaming"], json!(false));
    assert_eq!(port.cmd("AT+QPCMV=1,3").await, "\r\n+CME ERROR: 50\r\n");
    sim.control_ok(json!({"op": "hangup"})).await.unwrap();
    port.expect("\r\nNO CARRIER\r\n").await;
    let r = sim
        .control(json!({"op": "dtmf", "digit": "5"}))
        .await
        .unwrap();
    assert_eq!(r["error"], json!("no active call"));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_are_dropped_not_queued_when_nobody_reads() {
    let (sim, mut port, dir) = start_voice("voice-drop", Dialect::Generic).await;
    sim.control_ok(json!({"op": "call", "from": "+380501234567"}))
        .await
        .unwrap();
    port.expect("\r\nRING\r\n").await;
    assert_eq!(port.cmd("ATA").await, "\r\nOK\r\n");
    // Nobody reads the voice port: the pty fills, then frames are dropped.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let s = stats(&sim).await;
        if s["frames_dropped"].as_u64() > Some(0) {
            break;
        }
        assert!(Instant::now() < until, "no frame dropped: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The modem is still responsive, and a reader gets frames again.
    assert_eq!(port.cmd("AT").await, "\r\nOK\r\n");
    let mut voice = VoicePort::open(&dir.join("voice")).await;
    voice.frames(200).await;
    let sent = stats(&sim).await["frames_sent"].as_u64().unwrap();
    voice.frames(10).await;
    wait_stats(&sim, |s| s["frames_sent"].as_u64() > Some(sent)).await;
    drop(voice);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_port_is_renumbered_with_the_at_port_on_reboot() {
    let (sim, _port, dir) = start_voice("voice-reboot", Dialect::Quectel).await;
    let link = dir.join("voice");
    let before = std::fs::read_link(&link).expect("voice link");
    let r = sim.control_ok(json!({"op": "reboot"})).await.unwrap();
    assert_eq!(r["voice_pty"], Value::Null);
    assert!(!link.exists());
    let until = Instant::now() + WAIT;
    let after = loop {
        if let Ok(p) = std::fs::read_link(&link) {
            break p;
        }
        assert!(Instant::now() < until, "voice link did not come back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_ne!(before, after);
    let s = stats(&sim).await;
    assert_eq!(s["pty"], json!(after.display().to_string()));
    // Without a voice link the voice ops say so.
    let (plain, _p, _d) = sim_port::start_ready("voice-none", Dialect::Generic).await;
    let r = plain.control(json!({"op": "voice-stats"})).await.unwrap();
    assert_eq!(r["ok"], json!(false));
    plain.shutdown().await;
    sim.shutdown().await;
}
