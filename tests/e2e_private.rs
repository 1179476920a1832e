//! What the box keeps is private to the agent, and what it logs gives away no numbers: file
//! modes under data_dir after a real run (an SMS received, a call recorded), `config check` on a
//! readable config holding a password, `run` refusing a private key others can read, and the
//! agent's log at its default level.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::sipp::{RtpSink, Sipp, free_udp_port, pcmu_tone_packets, write_rtp_pcap};
use common::{AgentProc, Broker, Central, SimModem, gsmgw_bin, write_config_with};
use serde_json::json;

const T: Duration = Duration::from_secs(30);
const SENDER: &str = "+380501234567";
const CALLER: &str = "+380671112233";

/// Every entry under `dir` (itself included) with its mode, not following links.
fn modes_under(dir: &Path) -> Vec<(PathBuf, bool, u32)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let m = std::fs::symlink_metadata(&d).unwrap();
        out.push((d.clone(), m.is_dir(), m.mode() & 0o7777));
        if m.is_dir() {
            for e in std::fs::read_dir(&d).unwrap() {
                todo.push(e.unwrap().path());
            }
        }
    }
    out
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// After a run in which an SMS arrived and a call was recorded, every file under data_dir is
/// 0600 and every directory 0700 — the agent started with the test's umask (022) and a data_dir
/// an older version left 0755 with a 0644 recording in it. The sender's number is not in the
/// log in full at the default level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_dir_is_private_after_an_sms_and_a_recorded_call() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // What an upgraded box has: world-readable data from before.
    std::fs::create_dir_all(data.join("recordings")).unwrap();
    set_mode(&data, 0o755);
    set_mode(&data.join("recordings"), 0o755);
    let old = data.join("recordings/0190e0e0-0000-7000-8000-000000000000.wav");
    std::fs::write(&old, b"RIFF").unwrap();
    set_mode(&old, 0o644);

    let broker = Broker::start();
    let sink = RtpSink::bind();
    let (agent_port, pbx_port) = (free_udp_port(), free_udp_port());
    let pcap = dir.path().join("tone.pcap");
    write_rtp_pcap(&pcap, &pcmu_tone_packets(600.0, 3.0, 0.3), 20);
    let mut pbx = Sipp::new("pbx_answer_bye_pbx")
        .local_port(pbx_port)
        .var("rtpsink", sink.port())
        .var("tonepcap", pcap.display())
        .var("talkms", 2000)
        .start();
    let pcm = dir.path().join("modem1-pcm");
    let sim = SimModem::start(
        dir.path(),
        "modem1",
        &[
            "--dialect",
            "quectel",
            "--imsi",
            "255010000000077",
            "--voice-link",
            pcm.to_str().unwrap(),
        ],
    );
    sim.control(json!({"op": "voice-tone", "hz": 1000, "amplitude": 8000}));
    let rtp = common::sipp::free_even_udp_port_pair();
    let extra = format!(
        "\n[sip]\nserver = \"127.0.0.1:{pbx_port}\"\nusername = \"gsmgw\"\npassword = \"secret\"\nbind = \"127.0.0.1:{agent_port}\"\nmedia_address = \"127.0.0.1\"\nregister = false\noptions_interval_secs = 0\nrtp_port_min = {rtp}\nrtp_port_max = {}\n\n[voice]\n[[voice.route]]\nslot = 1\naction = \"forward\"\ntarget = \"sip:100@127.0.0.1:{pbx_port}\"\nrecord = true\n",
        rtp + 40
    );
    let modem_extra = format!("voice_port = \"{}\"", pcm.display());
    let cfg = write_config_with(
        dir.path(),
        "gw-priv",
        &broker.url(),
        &extra,
        &[(1, &sim.link, &modem_extra)],
    );
    let mut central = Central::connect(broker.port, "gsmgw/gw-priv/#").await;
    let mut agent = AgentProc::start_default_level(&cfg);
    central
        .expect("gsmgw/gw-priv/modem/1/state", T, |v| v["state"] == "ready")
        .await;

    // Long enough for three parts: each part is logged as it is stored.
    let text = "private text, ".repeat(30);
    let r = sim.control(json!({"op": "sms", "from": SENDER, "text": text}));
    assert_eq!(r["ok"], true, "{r}");
    central
        .expect("gsmgw/gw-priv/event/sms-received", T, |v| {
            v["from"] == SENDER
        })
        .await;
    assert_eq!(
        sim.control(json!({"op": "call", "from": CALLER}))["ok"],
        true
    );
    let ev = central
        .expect("gsmgw/gw-priv/event/call", T, |v| v["from"] == CALLER)
        .await;
    assert!(ev["recording"]["bytes"].as_u64().unwrap_or(0) > 44, "{ev}");
    pbx.wait(Duration::from_secs(40))
        .assert_success("PBX answers and hangs up");
    // While the agent runs, SQLite's own files are there, as private as the database.
    for side in ["gsmgw.db-wal", "gsmgw.db-shm"] {
        let m = std::fs::metadata(data.join(side)).unwrap().mode() & 0o7777;
        assert_eq!(m, 0o600, "{side} {m:04o}");
    }
    agent.stop();

    let all = modes_under(&data);
    let names: Vec<String> = all
        .iter()
        .map(|(p, _, _)| p.strip_prefix(&data).unwrap().display().to_string())
        .collect();
    for wanted in [
        "gsmgw.db",
        "gsmgw.db.reserve",
        "gsmgw.db.acked",
        "recordings",
    ] {
        assert!(names.iter().any(|n| n == wanted), "{wanted} in {names:?}");
    }
    let call_id = ev["call_id"].as_str().unwrap();
    assert!(
        names.iter().any(|n| n.contains(call_id)),
        "the recording in {names:?}"
    );
    let loose: Vec<_> = all
        .iter()
        .filter(|(_, is_dir, mode)| *mode != if *is_dir { 0o700 } else { 0o600 })
        .map(|(p, _, m)| format!("{} {m:04o}", p.display()))
        .collect();
    assert!(loose.is_empty(), "not private: {loose:?}");

    // At the default log level the log tells of the SMS and the call but never whose.
    let log = agent.log();
    assert!(log.contains("SMS part stored"), "{log}");
    assert!(log.contains("call ended"), "{log}");
    for number in [SENDER, CALLER, &SENDER[1..], &CALLER[1..]] {
        assert!(!log.contains(number), "{number} in full in the log:\n{log}");
    }
}

/// `config check` on a config others can read that holds a password: a warning naming the key
/// and the fix (the check still passes: `run` starts with it); none once the file is 0600.
#[test]
fn config_check_warns_about_a_readable_config_with_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config_with(dir.path(), "gw-check", "mqtt://127.0.0.1:1883", "", &[]);
    let text = std::fs::read_to_string(&cfg).unwrap().replacen(
        "keep_alive_secs = 5\n",
        "keep_alive_secs = 5\nusername = \"gw\"\npassword = \"hunter2\"\n",
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    set_mode(&cfg, 0o644);
    let check = || {
        Command::new(gsmgw_bin())
            .args(["config", "check"])
            .arg(&cfg)
            .output()
            .unwrap()
    };
    let out = check();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let warning = stdout
        .lines()
        .find(|l| l.starts_with("warning: "))
        .unwrap_or_else(|| panic!("no warning in:\n{stdout}"));
    assert!(
        warning.contains("mqtt.password")
            && warning.contains("0644")
            && warning.contains("chmod 600"),
        "{warning}"
    );
    assert!(!stdout.contains("hunter2"), "{stdout}");

    set_mode(&cfg, 0o600);
    let out = check();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(!stdout.contains("warning"), "{stdout}");
}

/// `run` refuses a TLS private key others can read, with one line naming the file, and exits
/// non-zero; `config check` reports it as an error.
#[test]
fn run_refuses_a_private_key_others_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = (
        dir.path().join("ca.pem"),
        dir.path().join("client.pem"),
        dir.path().join("client.key"),
    );
    for f in [&ca, &cert, &key] {
        std::fs::write(f, "not checked before the mode").unwrap();
        set_mode(f, 0o644);
    }
    let cfg = write_config_with(dir.path(), "gw-key", "mqtts://127.0.0.1:8883", "", &[]);
    let text = std::fs::read_to_string(&cfg).unwrap().replacen(
        "keep_alive_secs = 5\n",
        &format!(
            "keep_alive_secs = 5\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            ca.display(),
            cert.display(),
            key.display()
        ),
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    set_mode(&cfg, 0o600);

    let out = Command::new(gsmgw_bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("mqtt.key_file"))
        .unwrap_or_else(|| panic!("no line about the key in:\n{stderr}"));
    assert!(
        line.contains(&key.display().to_string())
            && line.contains("0644")
            && line.contains("refuses"),
        "{line}"
    );
    assert!(
        !data_exists(dir.path()),
        "nothing started: no data_dir made"
    );

    let out = Command::new(gsmgw_bin())
        .args(["config", "check"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("mqtt.key_file"), "{stdout}");

    // The same key 0600: run gets past the mode (and stops at the contents, which are junk).
    set_mode(&key, 0o600);
    let out = Command::new(gsmgw_bin())
        .args(["config", "check"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("0644"), "{stdout}");
}

fn data_exists(dir: &Path) -> bool {
    dir.join("data").exists()
}
