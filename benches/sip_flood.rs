//! SIP flood benchmark: the real `gsmgw run` (release build) with one simulated modem on a
//! static trunk (`inbound_auth` digest, the PBX trusted at 127.0.0.1) while 1,500 INVITE/s from
//! untrusted loopback addresses (127.0.0.2–127.0.0.21) arrive for 30 s, then 300/s oversized
//! (60 KB) INVITEs for 10 s.
//!
//! Prints the set-up time of a call from the trusted PBX (gsmgw's own SIP user agent, which
//! answers the digest challenge) without and during the flood, the agent's CPU before, during
//! and after the flood (from /proc/PID/stat), its RSS before and after (VmRSS, VmHWM), and
//! what the flooding sockets got back (403s, 100 Trying) — the reflection factor.
//!
//! `cargo bench --bench sip_flood` (GSMGW_FLOOD_RATE=1500, GSMGW_FLOOD_SECS=30). Every socket is
//! on 127.0.0.0/8.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gsmgw_drivers::sip::guard::Inbound;
use gsmgw_drivers::sip::sdp;
use gsmgw_drivers::sip::ua::{Ua, UaConfig, UaEvent};
use gsmgw_drivers::voice::Codec;
use serde_json::json;

mod support;
use support::{Kill, bin, control, cpu_secs, status_kib, wait};

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// What the flood got back.
#[derive(Default)]
struct Reflected {
    sent: AtomicU64,
    forbidden: AtomicU64,
    trying: AtomicU64,
    other: AtomicU64,
}

/// Sends `rate` INVITEs per second for `secs` seconds from 20 untrusted loopback addresses,
/// each `size` bytes or more, counting the answers.
fn flood(target: SocketAddr, rate: u64, secs: u64, pad: usize, out: Arc<Reflected>) {
    let socks: Vec<UdpSocket> = (2..22)
        .map(|i| {
            let s = UdpSocket::bind(("127.0.0.".to_string() + &i.to_string(), 0)).expect("bind");
            s.set_nonblocking(true).expect("nonblocking");
            s
        })
        .collect();
    let padding = "x".repeat(pad);
    let start = Instant::now();
    let mut n = 0u64;
    let mut buf = vec![0u8; 65536];
    while start.elapsed() < Duration::from_secs(secs) {
        // Paced in 10 ms slices.
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        while n < due {
            let s = &socks[(n % socks.len() as u64) as usize];
            let me = s.local_addr().expect("addr");
            let msg = format!(
                "INVITE sip:+380671234567@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-fl{n}\r\n\
                 From: <sip:scanner@{me}>;tag=f{n}\r\nTo: <sip:+380671234567@{target}>\r\n\
                 Call-ID: flood-{n}\r\nCSeq: 1 INVITE\r\nContact: <sip:scanner@{me}>\r\nMax-Forwards: 70\r\n\
                 X-Pad: {padding}\r\nContent-Type: application/sdp\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = s.send_to(msg.as_bytes(), target);
            n += 1;
        }
        out.sent.store(n, Ordering::Relaxed);
        for s in &socks {
            while let Ok((len, _)) = s.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..len]);
                let counter = if text.starts_with("SIP/2.0 403") {
                    &out.forbidden
                } else if text.starts_with("SIP/2.0 100") {
                    &out.trying
                } else {
                    &out.other
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Late answers (retransmissions would come within 32 s; 2 s shows whether any start).
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        for s in &socks {
            while let Ok((len, _)) = s.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..len]);
                let counter = if text.starts_with("SIP/2.0 403") {
                    &out.forbidden
                } else if text.starts_with("SIP/2.0 100") {
                    &out.trying
                } else {
                    &out.other
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A call from the trusted PBX: INVITE (answering the digest challenge) until 200; returns the
/// set-up time, then hangs up and waits until the modem's call is gone.
async fn trusted_call(
    pbx: &Ua,
    events: &mut tokio::sync::mpsc::Receiver<UaEvent>,
    agent: SocketAddr,
    ctl: &Path,
) -> Option<Duration> {
    // The simulated network answers the next ATD at once (its default is after 1 s).
    control(
        ctl,
        json!({"op": "dial-result", "result": "answer", "delay_ms": 0}),
    );
    let rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.ok()?;
    let offer = sdp::offer(rtp.local_addr().ok()?, &[Codec::Pcmu], 7);
    let t0 = Instant::now();
    let call = pbx
        .invite(&format!("sip:+380671234567@{agent}"), "100", None, offer)
        .await
        .ok()?;
    let answered = tokio::time::timeout(Duration::from_secs(40), async {
        while let Some(ev) = events.recv().await {
            match ev {
                UaEvent::Answered { call: c, .. } if c == call => return true,
                UaEvent::Failed { call: c, code, .. } if c == call => {
                    eprintln!("trusted call failed: {code}");
                    return false;
                }
                _ => {}
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    let setup = t0.elapsed();
    pbx.bye(&call);
    wait("the modem's call to end", Duration::from_secs(30), || {
        control(ctl, json!({"op": "state"}))["calls"]["active"]
            .as_array()
            .is_some_and(|a| a.is_empty())
    });
    answered.then_some(setup)
}

fn ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.0} ms", d.as_secs_f64() * 1000.0))
        .unwrap_or_else(|| "FAILED".into())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rate: u64 = std::env::var("GSMGW_FLOOD_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    let secs: u64 = std::env::var("GSMGW_FLOOD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let agent_port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("port");
    let agent_addr: SocketAddr = ([127, 0, 0, 1], agent_port).into();

    // The PBX: sends its INVITEs to the agent, answers its challenge as "pbx".
    let (pbx, mut pbx_events) = Ua::start(UaConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        server: agent_addr,
        domain: "127.0.0.1".into(),
        username: "pbx".into(),
        auth_username: None,
        password: "bench-inbound".into(),
        register: false,
        register_expires: 300,
        options_interval: None,
        user_agent: "bench-pbx".into(),
        inbound: Inbound::default(),
    })
    .await
    .expect("PBX user agent");
    let pbx_addr = pbx.local_addr();

    let link = d.join("m1");
    let pcm = d.join("m1-pcm");
    let ctl = d.join("m1.sock");
    let _sim = Kill(
        Command::new(bin())
            .args(["modemsim", "--dialect", "quectel"])
            .arg("--link")
            .arg(&link)
            .arg("--voice-link")
            .arg(&pcm)
            .arg("--control")
            .arg(&ctl)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("modemsim"),
    );
    wait("the simulated modem", Duration::from_secs(10), || {
        link.exists() && ctl.exists()
    });
    let cfg = d.join("gsmgw.toml");
    std::fs::write(
        &cfg,
        format!(
            "[gateway]\nid = \"bench\"\ndata_dir = \"{}\"\nlog_level = \"warn\"\n\n[mqtt]\nurl = \"mqtt://127.0.0.1:9\"\n\n[sip]\nserver = \"{pbx_addr}\"\nusername = \"gsmgw\"\nbind = \"{agent_addr}\"\nmedia_address = \"127.0.0.1\"\nregister = false\ninbound_username = \"pbx\"\ninbound_password = \"bench-inbound\"\noptions_interval_secs = 0\nrtp_port_min = 32000\nrtp_port_max = 32999\n\n[[modem]]\nslot = 1\nport = \"{}\"\nvoice_port = \"{}\"\n\n[console]\ndevice = \"none\"\n",
            d.join("data").display(),
            link.display(),
            pcm.display()
        ),
    )
    .expect("config");
    let log = std::fs::File::create(d.join("agent.log")).expect("log");
    let agent = Kill(
        Command::new(bin())
            .args(["run", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("gsmgw run"),
    );
    let pid = agent.0.id();
    wait(
        "the agent to set the modem up",
        Duration::from_secs(30),
        || {
            control(&ctl, json!({"op": "state"}))["commands"]
                .as_array()
                .is_some_and(|c| c.iter().any(|x| x == "AT+CLIP=1"))
        },
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    let baseline = trusted_call(&pbx, &mut pbx_events, agent_addr, &ctl).await;
    let window = Duration::from_secs(5);
    let c0 = cpu_secs(pid);
    tokio::time::sleep(window).await;
    let idle = (cpu_secs(pid) - c0) / window.as_secs_f64();
    let rss_before = status_kib(pid, "VmRSS:");

    // The flood, with trusted calls during it.
    let reflected = Arc::new(Reflected::default());
    let done = Arc::new(AtomicBool::new(false));
    let flooder = {
        let (r, done) = (reflected.clone(), done.clone());
        std::thread::spawn(move || {
            flood(agent_addr, rate, secs, 0, r);
            done.store(true, Ordering::Relaxed);
        })
    };
    let t0 = Instant::now();
    let c0 = cpu_secs(pid);
    let mut during = Vec::new();
    for at in [secs / 6, secs / 2, secs * 5 / 6] {
        let due = Duration::from_secs(at.max(1));
        if let Some(left) = due.checked_sub(t0.elapsed()) {
            tokio::time::sleep(left).await;
        }
        during.push(trusted_call(&pbx, &mut pbx_events, agent_addr, &ctl).await);
    }
    while !done.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = flooder.join();
    let flood_cpu = (cpu_secs(pid) - c0) / t0.elapsed().as_secs_f64();
    let c0 = cpu_secs(pid);
    tokio::time::sleep(window).await;
    let after_cpu = (cpu_secs(pid) - c0) / window.as_secs_f64();
    let rss_after_flood = status_kib(pid, "VmRSS:");

    // Oversized INVITEs: 60 KB at 300/s for 10 s.
    let big = Arc::new(Reflected::default());
    let big_flooder = {
        let r = big.clone();
        std::thread::spawn(move || flood(agent_addr, 300, 10, 60_000, r))
    };
    let _ = big_flooder.join();
    let rss_after_big = status_kib(pid, "VmRSS:");
    let hwm = status_kib(pid, "VmHWM:");
    let after_big_call = trusted_call(&pbx, &mut pbx_events, agent_addr, &ctl).await;
    let summaries = std::fs::read_to_string(d.join("agent.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("refused "))
        .count();
    drop(agent);

    let sent = reflected.sent.load(Ordering::Relaxed);
    println!(
        "sip_flood: the agent (release), {rate} untrusted INVITE/s from 20 loopback addresses for {secs} s ({sent} sent)"
    );
    println!("  trusted call set-up, no flood      : {}", ms(baseline));
    println!(
        "  trusted call set-up, during flood  : {}",
        during.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(", ")
    );
    println!(
        "  agent CPU                          : {:.1} % idle, {:.1} % during the flood, {:.1} % in the 5 s after (of one core)",
        idle * 100.0,
        flood_cpu * 100.0,
        after_cpu * 100.0
    );
    println!(
        "  answers to the flood               : {} x 403, {} x 100 Trying, {} other ({:.2} datagrams per INVITE)",
        reflected.forbidden.load(Ordering::Relaxed),
        reflected.trying.load(Ordering::Relaxed),
        reflected.other.load(Ordering::Relaxed),
        (reflected.forbidden.load(Ordering::Relaxed)
            + reflected.trying.load(Ordering::Relaxed)
            + reflected.other.load(Ordering::Relaxed)) as f64
            / sent.max(1) as f64
    );
    println!(
        "  60 KB INVITEs, 300/s for 10 s      : {} sent, {} answered; trusted call after: {}",
        big.sent.load(Ordering::Relaxed),
        big.forbidden.load(Ordering::Relaxed)
            + big.trying.load(Ordering::Relaxed)
            + big.other.load(Ordering::Relaxed),
        ms(after_big_call)
    );
    println!(
        "  agent RSS                          : {:.1} MiB before, {:.1} MiB after the flood, {:.1} MiB after the 60 KB INVITEs (peak {:.1} MiB)",
        mib(rss_before),
        mib(rss_after_flood),
        mib(rss_after_big),
        mib(hwm)
    );
    println!("  log lines about refused datagrams  : {summaries}");
}
