//! Voice bridge benchmark: N concurrent calls, each a pty pair as the modem's voice port (fed a
//! 1 kHz tone frame every 20 ms) and a UDP socket as the far end (receiving the bridge's RTP
//! and sending it tone RTP every 20 ms).
//!
//! `cargo bench -p gsmgw-drivers --bench voice_bridge`
//!
//! Prints, per N: CPU per bridged call (process CPU over the run minus a baseline run of the
//! same feeders without bridges, ÷ N, in % of one core), the added one-way latency from modem
//! frame written to RTP packet received (k-th frame vs k-th packet by sequence offset), the
//! RFC 3550 interarrival jitter at the far end, and the peak RSS (VmHWM).
//!
//! Environment: `GSMGW_VOICE_SECS` (bridged run length, default 10; baselines run half as
//! long), `GSMGW_VOICE_NS` (default `1,8`).

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::error::Error;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use gsmgw_drivers::voice::rtp::{self, RtpSender};
use gsmgw_drivers::voice::tone::ToneGenerator;
use gsmgw_drivers::voice::{
    Bridge, BridgeConfig, BridgeStats, Codec, FRAME_SAMPLES, frame_to_le, g711,
};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio_serial::{SerialPort, SerialStream};

type BoxError = Box<dyn Error + Send + Sync>;

/// Process CPU time so far: the sum of every thread's run time from schedstat (ns), or
/// utime + stime from /proc/self/stat (100 Hz ticks) when schedstat is missing.
fn cpu_time() -> Duration {
    let mut total_ns: u128 = 0;
    let mut ok = false;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for entry in dir.flatten() {
            let p = entry.path().join("schedstat");
            if let Ok(s) = std::fs::read_to_string(p) {
                if let Some(ns) = s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u128>().ok())
                {
                    total_ns += ns;
                    ok = true;
                }
            }
        }
    }
    if ok {
        return Duration::from_nanos(total_ns as u64);
    }
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat; the split starts at field 3.
    let ticks: u64 = [11usize, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    Duration::from_millis(ticks * 10)
}

fn vm_hwm_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What one call's feeders saw.
#[derive(Default)]
struct CallResult {
    /// When the k-th modem frame was written.
    written: Vec<Instant>,
    /// When the RTP packet with sequence offset k arrived.
    received: Vec<Option<Instant>>,
    /// RFC 3550 interarrival jitter of the bridge's RTP at the far end, ms.
    jitter_ms: f64,
    rtp_in: u64,
}

/// The modem side: writes a tone frame every 20 ms, drains what the bridge plays.
fn spawn_modem_feeder(
    mut master: SerialStream,
    deadline: tokio::time::Instant,
) -> JoinHandle<Vec<Instant>> {
    tokio::spawn(async move {
        let mut tone = ToneGenerator::new(1000.0, 8000);
        let mut iv = tokio::time::interval(Duration::from_millis(20));
        let mut written = Vec::with_capacity(1024);
        let mut sink = [0u8; 4096];
        loop {
            let t = iv.tick().await;
            if t >= deadline {
                break;
            }
            let bytes = frame_to_le(&tone.next_frame());
            // Never block: without a bridge (baseline) nobody reads the slave.
            if let Ok(n) = master.try_write(&bytes) {
                if n == bytes.len() {
                    written.push(Instant::now());
                }
            }
            while let Ok(n) = master.try_read(&mut sink) {
                if n == 0 {
                    break;
                }
            }
        }
        written
    })
}

/// The far end: receives the bridge's RTP, sends tone RTP every 20 ms.
fn spawn_far_end(
    far: UdpSocket,
    to: std::net::SocketAddr,
    deadline: tokio::time::Instant,
) -> JoinHandle<(Vec<Option<Instant>>, f64, u64)> {
    tokio::spawn(async move {
        let mut tone = ToneGenerator::new(700.0, 8000);
        let mut sender = RtpSender::new();
        let mut iv = tokio::time::interval(Duration::from_millis(20));
        let mut buf = [0u8; 2048];
        let mut enc = Vec::with_capacity(FRAME_SAMPLES);
        let mut pkt = Vec::with_capacity(200);
        let mut received: Vec<Option<Instant>> = Vec::with_capacity(1024);
        let mut first_seq: Option<u16> = None;
        let epoch = Instant::now();
        let mut transit: Option<i64> = None;
        let mut jitter = 0.0f64;
        let mut count = 0u64;
        let sleep = tokio::time::sleep_until(deadline);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                r = far.recv_from(&mut buf) => {
                    let Ok((n, _)) = r else { continue };
                    let now = Instant::now();
                    let Ok(p) = rtp::parse(&buf[..n]) else { continue };
                    count += 1;
                    let first = *first_seq.get_or_insert(p.header.sequence);
                    let k = usize::from(p.header.sequence.wrapping_sub(first));
                    if k >= received.len() {
                        received.resize(k + 1, None);
                    }
                    received[k] = Some(now);
                    let arrival = (now.duration_since(epoch).as_micros() * 8 / 1000) as i64;
                    let t = arrival - i64::from(p.header.timestamp);
                    if let Some(prev) = transit {
                        let d = f64::from(((t - prev) as i32).unsigned_abs());
                        jitter += (d - jitter) / 16.0;
                    }
                    transit = Some(t);
                }
                _ = iv.tick() => {
                    enc.clear();
                    g711::encode(Codec::Pcmu, &tone.next_frame(), &mut enc);
                    sender.audio_packet(Codec::Pcmu.payload_type(), &enc, &mut pkt);
                    let _ = far.try_send_to(&pkt, to);
                }
            }
        }
        (received, jitter / 8.0, count)
    })
}

struct Run {
    cpu: Duration,
    wall: Duration,
    calls: Vec<CallResult>,
    stats: Vec<BridgeStats>,
}

async fn run(n: usize, secs: f64, with_bridges: bool) -> Result<Run, BoxError> {
    // Set everything up first so setup cost stays out of the measurement.
    let mut keep_slaves = Vec::new();
    let mut keep_sinks = Vec::new();
    let mut bridges = Vec::new();
    let mut parts = Vec::new();
    for _ in 0..n {
        let (master, slave) = SerialStream::pair()?;
        let path = slave.name().ok_or("pty without a name")?;
        let far = UdpSocket::bind("127.0.0.1:0").await?;
        let to = if with_bridges {
            let (bridge, events) = Bridge::start(BridgeConfig {
                voice_port: Some(PathBuf::from(path)),
                rtp: UdpSocket::bind("127.0.0.1:0").await?,
                remote: Some(far.local_addr()?),
                codec: Codec::Pcmu,
                dtmf_pt: Some(101),
                record: None,
            })
            .await?;
            let to = bridge.local_rtp_addr();
            bridges.push((bridge, events));
            to
        } else {
            // A socket nobody reads: the feeder's send costs the same.
            let sink = UdpSocket::bind("127.0.0.1:0").await?;
            let to = sink.local_addr()?;
            keep_sinks.push(sink);
            to
        };
        keep_slaves.push(slave);
        parts.push((master, far, to));
    }
    let start_wall = Instant::now();
    let start_cpu = cpu_time();
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for (master, far, to) in parts {
        let m = spawn_modem_feeder(master, deadline);
        let f = spawn_far_end(far, to, deadline);
        tasks.push((m, f));
    }
    let mut calls = Vec::new();
    for (m, f) in tasks {
        let written = m.await?;
        let (received, jitter_ms, rtp_in) = f.await?;
        calls.push(CallResult {
            written,
            received,
            jitter_ms,
            rtp_in,
        });
    }
    let cpu = cpu_time().saturating_sub(start_cpu);
    let wall = start_wall.elapsed();
    let mut stats = Vec::new();
    for (b, _events) in bridges {
        stats.push(b.stop().await);
    }
    drop(keep_slaves);
    drop(keep_sinks);
    Ok(Run {
        cpu,
        wall,
        calls,
        stats,
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> Result<(), BoxError> {
    let secs: f64 = std::env::var("GSMGW_VOICE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10.0);
    let ns: Vec<usize> = std::env::var("GSMGW_VOICE_NS")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 8]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "voice_bridge: {} s per bridged run, {} s per baseline, tokio multi-thread on {} CPUs",
        secs,
        secs / 2.0,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    for n in ns {
        let base = rt.block_on(run(n, secs / 2.0, false))?;
        let bridged = rt.block_on(run(n, secs, true))?;
        let base_rate = base.cpu.as_secs_f64() / base.wall.as_secs_f64();
        let bridged_rate = bridged.cpu.as_secs_f64() / bridged.wall.as_secs_f64();
        let per_call = (bridged_rate - base_rate) / n as f64 * 100.0;

        let mut lat = Vec::new();
        let mut missing = 0usize;
        for c in &bridged.calls {
            for (k, w) in c.written.iter().enumerate() {
                match c.received.get(k).copied().flatten() {
                    Some(r) => lat.push(r.saturating_duration_since(*w).as_secs_f64() * 1000.0),
                    None => missing += 1,
                }
            }
        }
        lat.sort_by(f64::total_cmp);
        let jitters: Vec<f64> = bridged.calls.iter().map(|c| c.jitter_ms).collect();
        let jitter_mean = jitters.iter().sum::<f64>() / jitters.len().max(1) as f64;
        let jitter_max = jitters.iter().copied().fold(0.0, f64::max);
        let frames: u64 = bridged.calls.iter().map(|c| c.written.len() as u64).sum();
        let rtp_in: u64 = bridged.calls.iter().map(|c| c.rtp_in).sum();
        let st = |f: fn(&BridgeStats) -> u64| bridged.stats.iter().map(f).sum::<u64>();

        println!();
        println!("N = {n} bridged calls");
        println!(
            "  CPU per bridged call : {per_call:.3} % of one core  (bridged {:.2} % total, baseline {:.2} % total)",
            bridged_rate * 100.0,
            base_rate * 100.0
        );
        println!(
            "  modem frame -> RTP   : median {:.3} ms, p99 {:.3} ms, max {:.3} ms  ({} frames, {} not received)",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            lat.last().copied().unwrap_or(f64::NAN),
            lat.len(),
            missing
        );
        println!(
            "  RTP jitter at far end: mean {jitter_mean:.3} ms, worst call {jitter_max:.3} ms (RFC 3550)"
        );
        println!(
            "  traffic              : {frames} modem frames in, {rtp_in} RTP packets at far end; bridges: {} from modem, {} to modem, {} RTP sent, {} received, {} lost, {} late, {} concealed, {} drift drops",
            st(|s| s.frames_from_modem),
            st(|s| s.frames_to_modem),
            st(|s| s.rtp_sent),
            st(|s| s.rtp_received),
            st(|s| s.rtp_lost),
            st(|s| s.late),
            st(|s| s.concealed),
            st(|s| s.drift_drops),
        );
        if let Some(kb) = vm_hwm_kb() {
            println!(
                "  peak RSS (VmHWM)     : {:.1} MiB (process, after N = {n})",
                kb as f64 / 1024.0
            );
        }
    }
    Ok(())
}
