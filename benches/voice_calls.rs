//! Whole-agent voice benchmark: the real `gsmgw run` (release build) bridging N simulated GSM
//! callers (`gsmgw modemsim` with a PCM voice port, each playing its own tone) to a PBX played
//! by gsmgw's own SIP user agent, which answers every INVITE and streams a 600 Hz tone back.
//!
//! Prints the agent's CPU per bridged call (agent process only, minus its idle rate), its peak
//! RSS with N calls up, and per call at the PBX: RTP packets, loss, RFC 3550 jitter and the
//! tone frequency heard. The added latency of one frame (modem frame in → RTP out) is measured
//! by the drivers' bench (`cargo bench -p gsmgw-drivers --bench voice_bridge`).
//!
//! `cargo bench --bench voice_calls` (GSMGW_BENCH_CALLS=8, GSMGW_BENCH_SECS=15).

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gsmgw_drivers::sip::guard::Inbound;
use gsmgw_drivers::sip::sdp;
use gsmgw_drivers::sip::ua::{Ua, UaConfig, UaEvent};
use gsmgw_drivers::voice::{Codec, g711, rtp, tone};
use serde_json::json;

mod support;
use support::{Kill, bin, control, cpu_secs, status_kib, wait};

#[derive(Default)]
struct CallStats {
    packets: u64,
    lost: u64,
    jitter_ms: f64,
    heard_hz: Option<f64>,
}

/// The PBX side of one call: streams a 600 Hz tone to the agent, measures what comes back.
async fn pbx_media(
    sock: tokio::net::UdpSocket,
    remote: SocketAddr,
    codec: Codec,
    out: Arc<Mutex<CallStats>>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut sender = rtp::RtpSender::new();
    let mut tone_gen = tone::ToneGenerator::new(600.0, 8000);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut stats = rtp::RtpReceiveStats::default();
    let mut samples: Vec<i16> = Vec::new();
    let start = Instant::now();
    let mut buf = [0u8; 2048];
    let mut pkt = Vec::new();
    let mut payload = Vec::new();
    loop {
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            _ = tick.tick() => {
                payload.clear();
                g711::encode(codec, &tone_gen.next_frame(), &mut payload);
                pkt.clear();
                sender.audio_packet(codec.payload_type(), &payload, &mut pkt);
                let _ = sock.send_to(&pkt, remote).await;
            }
            r = sock.recv_from(&mut buf) => {
                let Ok((n, _)) = r else { continue };
                let Ok(p) = rtp::parse(&buf[..n]) else { continue };
                let arrival = (start.elapsed().as_secs_f64() * 8000.0) as i64;
                let audio = Codec::from_payload_type(p.header.payload_type);
                stats.update(p.header.ssrc, p.header.sequence, p.header.timestamp, arrival, audio.is_some());
                if let Some(c) = audio {
                    g711::decode(c, p.payload, &mut samples);
                    if samples.len() > 16_000 {
                        samples.drain(..samples.len() - 8000);
                    }
                }
                if let Ok(mut o) = out.lock() {
                    o.packets = stats.received();
                    o.lost = stats.lost();
                    o.jitter_ms = stats.jitter_ms();
                    if samples.len() >= 8000 && o.packets % 50 == 0 {
                        o.heard_hz = tone::dominant_frequency(&samples[samples.len() - 8000..], 25.0);
                    }
                }
            }
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("GSMGW_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let secs: u64 = std::env::var("GSMGW_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();

    // The PBX.
    let (pbx, mut pbx_events) = Ua::start(UaConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        server: "127.0.0.1:9".parse().expect("addr"),
        domain: "127.0.0.1".into(),
        username: "pbx".into(),
        auth_username: None,
        password: String::new(),
        register: false,
        register_expires: 300,
        options_interval: None,
        user_agent: "bench-pbx".into(),
        inbound: Inbound::default(),
    })
    .await
    .expect("PBX user agent");
    let pbx_addr = pbx.local_addr();

    // The modems.
    let mut sims = Vec::new();
    let mut modems_toml = String::new();
    for i in 0..n {
        let link = d.join(format!("m{i}"));
        let pcm = d.join(format!("m{i}-pcm"));
        let ctl = d.join(format!("m{i}.sock"));
        let child = Command::new(bin())
            .args([
                "modemsim",
                "--dialect",
                ["quectel", "simcom", "huawei", "generic"][i % 4],
            ])
            .arg("--link")
            .arg(&link)
            .arg("--voice-link")
            .arg(&pcm)
            .arg("--control")
            .arg(&ctl)
            .arg("--imsi")
            .arg(format!("2550100000009{i:02}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("modemsim");
        sims.push((Kill(child), ctl.clone()));
        wait("a simulated modem", Duration::from_secs(10), || {
            link.exists() && ctl.exists()
        });
        control(
            &ctl,
            json!({"op": "voice-tone", "hz": 700 + 100 * i, "amplitude": 8000}),
        );
        modems_toml.push_str(&format!(
            "\n[[modem]]\nslot = {}\nport = \"{}\"\nvoice_port = \"{}\"\n",
            i + 1,
            link.display(),
            pcm.display()
        ));
    }
    let sip_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("port");
    let cfg = d.join("gsmgw.toml");
    std::fs::write(
        &cfg,
        format!(
            "[gateway]\nid = \"bench\"\ndata_dir = \"{}\"\nlog_level = \"warn\"\n\n[mqtt]\nurl = \"mqtt://127.0.0.1:9\"\n\n[sip]\nserver = \"{pbx_addr}\"\nusername = \"gsmgw\"\nbind = \"127.0.0.1:{sip_port}\"\nmedia_address = \"127.0.0.1\"\nregister = false\noptions_interval_secs = 0\nrtp_port_min = 30000\nrtp_port_max = 30999\n\n[[voice.route]]\naction = \"forward\"\ntarget = \"sip:queue@{pbx_addr}\"\n{modems_toml}\n[console]\ndevice = \"none\"\n",
            d.join("data").display()
        ),
    )
    .expect("config");
    let agent = Kill(
        Command::new(bin())
            .args(["run", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gsmgw run"),
    );
    let pid = agent.0.id();
    for (_, ctl) in &sims {
        wait(
            "the agent to set the modem up",
            Duration::from_secs(30),
            || {
                control(ctl, json!({"op": "state"}))["commands"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|x| x == "AT+CLIP=1"))
            },
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_window = Duration::from_secs(5);
    let c0 = cpu_secs(pid);
    tokio::time::sleep(idle_window).await;
    let idle_rate = (cpu_secs(pid) - c0) / idle_window.as_secs_f64();
    let rss_idle = status_kib(pid, "VmHWM:");

    // N callers at once; the PBX answers each.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let calls: Arc<Mutex<Vec<Arc<Mutex<CallStats>>>>> = Arc::new(Mutex::new(Vec::new()));
    {
        let calls = calls.clone();
        let pbx = pbx.clone();
        tokio::spawn(async move {
            let mut port = 31_000u16;
            while let Some(ev) = pbx_events.recv().await {
                if let UaEvent::Incoming {
                    call,
                    sdp: Some(offer),
                    ..
                } = ev
                {
                    let Ok(neg) = sdp::negotiate(&offer, &[Codec::Pcmu, Codec::Pcma]) else {
                        pbx.reject(&call, 488, "Not Acceptable Here");
                        continue;
                    };
                    port += 2;
                    let Ok(sock) = tokio::net::UdpSocket::bind(("127.0.0.1", port)).await else {
                        continue;
                    };
                    let local = sock.local_addr().expect("addr");
                    pbx.answer(&call, sdp::answer(&neg, local, 1));
                    let st = Arc::new(Mutex::new(CallStats::default()));
                    if let Ok(mut c) = calls.lock() {
                        c.push(st.clone());
                    }
                    tokio::spawn(pbx_media(sock, neg.remote, neg.codec, st, stop_rx.clone()));
                }
            }
        });
    }
    for (i, (_, ctl)) in sims.iter().enumerate() {
        control(
            ctl,
            json!({"op": "call", "from": format!("+3805000009{i:02}")}),
        );
    }
    wait("every call to be bridged", Duration::from_secs(30), || {
        calls
            .lock()
            .map(|c| {
                c.len() == n
                    && c.iter()
                        .all(|s| s.lock().map(|s| s.packets > 50).unwrap_or(false))
            })
            .unwrap_or(false)
    });
    let t0 = Instant::now();
    let c0 = cpu_secs(pid);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let busy_rate = (cpu_secs(pid) - c0) / t0.elapsed().as_secs_f64();
    let rss_calls = status_kib(pid, "VmHWM:");
    let mut heard_at_modems = Vec::new();
    for (_, ctl) in &sims {
        let st = control(ctl, json!({"op": "voice-stats"}));
        heard_at_modems.push(st["dominant_hz"].as_f64());
    }
    for (_, ctl) in &sims {
        control(ctl, json!({"op": "hangup"}));
    }
    let _ = stop_tx.send(true);

    println!(
        "voice_calls: the agent (release) bridging {n} simulated GSM callers to a SIP PBX, {secs} s measured"
    );
    println!(
        "  agent CPU, idle            : {:.2} % of one core",
        idle_rate * 100.0
    );
    println!(
        "  agent CPU, {n} calls up      : {:.2} % of one core",
        busy_rate * 100.0
    );
    println!(
        "  agent CPU per bridged call : {:.2} % of one core",
        (busy_rate - idle_rate) * 100.0 / n as f64
    );
    println!(
        "  agent peak RSS             : {:.1} MiB idle, {:.1} MiB with {n} calls (VmHWM)",
        rss_idle as f64 / 1024.0,
        rss_calls as f64 / 1024.0
    );
    let list = calls
        .lock()
        .map(|c| {
            c.iter()
                .map(|s| {
                    s.lock()
                        .map(|s| (s.packets, s.lost, s.jitter_ms, s.heard_hz))
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for (i, (packets, lost, jitter, hz)) in list.iter().enumerate() {
        println!(
            "  call {}: at the PBX {packets} RTP packets, {lost} lost, jitter {jitter:.2} ms, tone {} Hz; at the modem {} Hz",
            i + 1,
            hz.map(|h| format!("{h:.0}")).unwrap_or("-".into()),
            heard_at_modems
                .get(i)
                .copied()
                .flatten()
                .map(|h| format!("{h:.0}"))
                .unwrap_or("-".into())
        );
    }
    let worst = list.iter().map(|l| l.2).fold(0.0f64, f64::max);
    println!("  worst RTP jitter at the PBX: {worst:.2} ms");
    drop(agent);
}
