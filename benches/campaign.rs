//! Campaign scheduling benchmark (issue 6, item 5).
//!
//! `CARGO_TARGET_DIR=/work/target-campbench cargo bench --bench campaign`
//!
//! The whole agent runs in-process (channels, store, sender, uplink pointed at a closed port)
//! against N in-process simulated modems, each answering AT+CMGS after a fixed latency. For
//! each N the bench times one campaign from `campaign::submit` to the moment every job is
//! `sent` (the last job's `updated_ms`) and compares the rate with the ideal N ÷ latency,
//! and with the floor: the same simulators driven by bare AT engines with no agent and no
//! store (the simulator's timer and the pty cost ~1.5 ms per CMGS, so the floor itself is
//! ~0.96 of N ÷ 50 ms).
//! Then it times the validation and acceptance (`commands::parse` + `campaign::submit`) of a
//! 100 000-recipient campaign, and compares the peak RSS of sending from a 10 000- and a
//! 100 000-recipient campaign.
//!
//! Every measurement runs in a fresh child process (this binary, re-executed), so each has
//! its own store, its own tasks and its own peak RSS (VmHWM, reset through
//! `/proc/self/clear_refs` between phases).
//!
//! Environment:
//! - `GSMGW_BENCH_DIR`: where the stores go (default: the system temp dir); put it on the
//!   disk being measured, not a tmpfs — every job costs two durable commits.
//! - `GSMGW_CAMPAIGN_NS`: modem counts, default `1,4,8,16,32`.
//! - `GSMGW_CAMPAIGN_LATENCY_MS`: the simulated CMGS latency, default 50.
//! - `GSMGW_CAMPAIGN_SECS`: ideal seconds of sending per N (messages = min(10 000,
//!   secs × N ÷ latency)), default 15.
//! - `GSMGW_CAMPAIGN_SKIP`: `accept` and/or `rss` (comma-separated) to skip those phases.
//! - `GSMGW_CAMPAIGN_CPU`: also print the CPU used per thread during each run.
//! - `RUST_LOG`: the agent's logs on stderr (off by default: logging costs time per message).

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gsmgw_agent::state::ChannelState;
use gsmgw_agent::{Agent, AgentOptions, campaign, commands};
use gsmgw_drivers::at;
use gsmgw_drivers::modem::{self, Modem};
use gsmgw_drivers::pdu::{SubmitOptions, encode_submit};
use gsmgw_drivers::sim::{SimHandle, SimOptions, Simulator};
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const CHILD_ENV: &str = "GSMGW_CAMPAIGN_BENCH_CHILD";
const MAX_MESSAGES: usize = 10_000;
const BIG_CAMPAIGN: usize = 100_000;
const TARGET_RATIO: f64 = 0.97;
/// Seconds of sending sampled for the RSS comparison.
const RSS_SEND_SECS: u64 = 8;
const RSS_MODEMS: usize = 32;
/// Ideal seconds of sending for the floor (the simulators driven without the agent).
const FLOOR_SECS: f64 = 4.0;

fn main() -> Result<(), BoxError> {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return child(&spec);
    }
    parent()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn latency_ms() -> u64 {
    env_or("GSMGW_CAMPAIGN_LATENCY_MS", 50u64).max(1)
}

// ---------------------------------------------------------------------------------------------
// Parent: runs each phase in a child and prints the figures.

fn parent() -> Result<(), BoxError> {
    let ns: Vec<usize> = std::env::var("GSMGW_CAMPAIGN_NS")
        .unwrap_or_else(|_| "1,4,8,16,32".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|n| *n > 0)
        .collect();
    let secs: f64 = env_or("GSMGW_CAMPAIGN_SECS", 15.0f64);
    let skip = std::env::var("GSMGW_CAMPAIGN_SKIP").unwrap_or_default();
    let lat = latency_ms();
    let started = Instant::now();

    println!(
        "campaign scheduling: N simulated modems, AT+CMGS latency {lat} ms, no per-SIM limits"
    );
    println!(
        "messages per N = min({MAX_MESSAGES}, {secs} s of ideal sending = {secs} × N × 1000 ÷ {lat}); \
         time = submit → last job `sent`"
    );
    println!(
        "floor = the same simulators driven by bare AT engines (no agent, no store): what the \
         simulator, the pty and tokio's 1 ms timer allow"
    );
    println!();
    println!(
        "{:>3} {:>8} {:>8} {:>10} {:>8} {:>6} {:>8} {:>8} {:>8} {:>7} {:>8}",
        "N",
        "messages",
        "seconds",
        "achieved/s",
        "ideal/s",
        "ratio",
        "floor/s",
        "floor r",
        "vs floor",
        "ops/txn",
        "HWM kB"
    );
    let mut worst = f64::INFINITY;
    let mut worst_floor = f64::INFINITY;
    for &n in &ns {
        let ideal_rate = n as f64 * 1000.0 / lat as f64;
        let messages = ((secs * ideal_rate).round() as usize).clamp(n, MAX_MESSAGES);
        let per_modem = ((FLOOR_SECS * 1000.0 / lat as f64).round() as usize).max(1);
        let f = run_child(&format!("floor {n} {per_modem}"))?;
        let floor_rate = f["rate"].as_f64().unwrap_or(f64::NAN);
        let r = run_child(&format!("throughput {n} {messages}"))?;
        let seconds = r["seconds"].as_f64().unwrap_or(f64::NAN);
        let rate = messages as f64 / seconds;
        let ratio = rate / ideal_rate;
        worst = worst.min(ratio);
        worst_floor = worst_floor.min(rate / floor_rate);
        let txns = r["transactions"].as_f64().unwrap_or(0.0);
        let ops = r["operations"].as_f64().unwrap_or(0.0);
        println!(
            "{:>3} {:>8} {:>8.2} {:>10.1} {:>8.1} {:>6.3} {:>8.1} {:>8.3} {:>8.3} {:>7.2} {:>8}{}",
            n,
            messages,
            seconds,
            rate,
            ideal_rate,
            ratio,
            floor_rate,
            floor_rate / ideal_rate,
            rate / floor_rate,
            if txns > 0.0 { ops / txns } else { 0.0 },
            r["hwm_kb"].as_u64().unwrap_or(0),
            if ratio >= TARGET_RATIO {
                ""
            } else {
                "  < target"
            },
        );
        let slots: Vec<u64> = r["per_slot"]
            .as_array()
            .map(|v| v.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        println!(
            "      first sent after {} ms; {} store transactions; per-modem messages {}..{}",
            r["first_ms"].as_i64().unwrap_or(0),
            txns,
            slots.iter().min().copied().unwrap_or(0),
            slots.iter().max().copied().unwrap_or(0),
        );
        if std::env::var_os("GSMGW_CAMPAIGN_CPU").is_some() {
            println!("      CPU (cores): {}", r["cpu"]);
        }
    }
    if ns.is_empty() {
        worst = f64::NAN;
        worst_floor = f64::NAN;
    }
    println!(
        "worst ratio {worst:.3} (target ≥ {TARGET_RATIO}): {}; worst achieved/floor {worst_floor:.3}",
        if worst >= TARGET_RATIO {
            "met"
        } else {
            "NOT met"
        }
    );

    if !skip.contains("accept") {
        println!();
        let r = run_child(&format!("accept {BIG_CAMPAIGN}"))?;
        println!(
            "accept a {BIG_CAMPAIGN}-recipient campaign (median of {} runs, fresh store each): \
             parse and plan {:.0} ms (typed, from the {:.1} MB payload) + submit {:.0} ms = {:.0} ms",
            r["runs"],
            r["parse_ms"].as_f64().unwrap_or(0.0),
            r["payload_bytes"].as_f64().unwrap_or(0.0) / 1e6,
            r["submit_ms"].as_f64().unwrap_or(0.0),
            r["accept_ms"].as_f64().unwrap_or(0.0),
        );
        let m = &r["mem"];
        let kb = |k: &str| m[k].as_i64().unwrap_or(0);
        println!(
            "  RSS (first run, fresh process): {} kB with the payload bytes; planned +{} kB; \
             peak while submitting {} kB (+{} kB over the start); {} kB after everything was dropped",
            kb("before_kb"),
            kb("planned_kb") - kb("before_kb"),
            kb("peak_kb"),
            kb("peak_kb") - kb("before_kb"),
            kb("after_kb"),
        );
    }

    if !skip.contains("rss") {
        println!();
        println!(
            "peak RSS while sending ({RSS_MODEMS} modems, first {RSS_SEND_SECS} s of sending; \
             HWM reset after the campaign was accepted):"
        );
        let mut rows = Vec::new();
        for size in [MAX_MESSAGES, BIG_CAMPAIGN] {
            let r = run_child(&format!("rss {RSS_MODEMS} {size}"))?;
            println!(
                "  {size:>6}-recipient campaign: sent {:>5}, RSS after accept {} kB, \
                 peak while sending {} kB, RSS at the end {} kB",
                r["sent"], r["rss_after_accept_kb"], r["hwm_send_kb"], r["rss_end_kb"]
            );
            rows.push(
                r["hwm_send_kb"].as_f64().unwrap_or(0.0)
                    - r["rss_after_accept_kb"].as_f64().unwrap_or(0.0),
            );
        }
        if let [small, big] = rows[..] {
            println!(
                "  memory added while sending (peak − RSS after accept): {small:.0} kB with 10k \
                 recipients, {big:.0} kB with 100k"
            );
        }
    }
    println!();
    println!("bench time {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn run_child(spec: &str) -> Result<Value, BoxError> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .env(CHILD_ENV, spec)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("phase {spec:?} failed ({}): {text}", out.status).into());
    }
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| format!("phase {spec:?} printed no result: {text}"))?;
    Ok(serde_json::from_str(line)?)
}

// ---------------------------------------------------------------------------------------------
// Child: one phase, its result as one JSON line on stdout.

fn child(spec: &str) -> Result<(), BoxError> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let words: Vec<&str> = spec.split_whitespace().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let base = std::env::var_os("GSMGW_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("gsmgw-campaign-bench")
        .tempdir_in(&base)?;
    let arg = |i: usize| -> Result<usize, BoxError> {
        Ok(words.get(i).ok_or("missing argument")?.parse::<usize>()?)
    };
    let result = match words.first().copied() {
        Some("throughput") => rt.block_on(throughput(dir.path(), arg(1)?, arg(2)?))?,
        Some("floor") => rt.block_on(floor(dir.path(), arg(1)?, arg(2)?))?,
        Some("accept") => rt.block_on(accept(dir.path(), arg(1)?))?,
        Some("rss") => rt.block_on(rss(dir.path(), arg(1)?, arg(2)?))?,
        _ => return Err(format!("unknown phase {spec:?}").into()),
    };
    println!("{result}");
    Ok(())
}

/// The agent and its simulated modems.
struct Rig {
    agent: Agent,
    sims: Vec<SimHandle>,
    stop: tokio::sync::watch::Sender<bool>,
    slots: Vec<u16>,
}

impl Rig {
    async fn start(dir: &Path, n: usize) -> Result<Rig, BoxError> {
        let mut sims = Vec::new();
        let mut modems = String::new();
        for i in 1..=n {
            let link = dir.join(format!("modem{i}"));
            let sim = Simulator::spawn(SimOptions {
                link: link.clone(),
                control: None,
                imei: format!("86123456{i:07}"),
                imsi: format!("25501{i:010}"),
                sim_busy_secs: 0.0,
                register_delay_ms: 0,
                ..SimOptions::default()
            })
            .await?;
            sim.control_ok(json!({"op": "cmgs", "latency_ms": latency_ms()}))
                .await?;
            sims.push(sim);
            modems.push_str(&format!(
                "\n[[modem]]\nslot = {i}\nport = \"{}\"\n",
                link.display()
            ));
        }
        // A port nothing listens on: the uplink keeps retrying, events pile up in the outbox.
        let closed_port = gsmgw_testkit::free_port();
        let text = format!(
            "[gateway]\nid = \"bench\"\ndata_dir = \"{}\"\n\n[mqtt]\nurl = \"mqtt://127.0.0.1:{closed_port}\"\n\n\
             [sms]\nper_minute = 0\nper_hour = 0\nper_day = 0\n{modems}\n[console]\ndevice = \"none\"\n",
            dir.join("data").display()
        );
        let cfg = gsmgw_agent::config::parse_str(&text, "bench").map_err(|e| e.to_string())?;
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let agent = Agent::start(
            cfg,
            AgentOptions {
                version: "bench".into(),
                timings: Default::default(),
                console: false,
            },
            stop_rx,
        )?;
        let view = agent.view();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let snaps = view.snapshots();
            if snaps.iter().all(|s| s.state == ChannelState::Ready) {
                break;
            }
            if Instant::now() > deadline {
                let states: Vec<&str> = snaps.iter().map(|s| s.state.as_str()).collect();
                return Err(format!("modems not ready after 60 s: {states:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The channel is `ready` once registered; the SIM's SMS service follows shortly after
        // (sends before that fail with +CMS ERROR: 314 and cool the SIM down).
        for sim in &sims {
            while sim.control(json!({"op": "state"})).await?["sms"]["ready"] != true {
                if Instant::now() > deadline {
                    return Err("SMS service not ready after 60 s".into());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(Rig {
            agent,
            sims,
            stop,
            slots: (1..=n as u16).collect(),
        })
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.agent.wait().await;
        for s in self.sims {
            s.shutdown().await;
        }
    }
}

/// A `cmd/campaign` payload as it would arrive over MQTT (written as text: building it
/// through a `Value` would leave its memory in the allocator and blur the RSS figures).
fn campaign_bytes(id: &str, recipients: usize) -> Vec<u8> {
    let mut out = String::with_capacity(recipients * 56 + 200);
    out.push_str(&format!(
        r#"{{"request_id":"req-{id}","campaign_id":"{id}","text":"Hello {{name}}, your order is ready for pickup.","recipients":["#
    ));
    for i in 0..recipients {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            r#"{{"to":"+38050{i:07}","fields":{{"name":"Client {i}"}}}}"#
        ));
    }
    out.push_str("]}");
    out.into_bytes()
}

fn campaign_payload(id: &str, recipients: usize) -> Result<Value, BoxError> {
    Ok(serde_json::from_slice(&campaign_bytes(id, recipients))?)
}

/// `commands::parse` of a campaign payload, as the agent does it: its plan.
fn plan_of(bytes: &[u8], slots: &[u16]) -> Result<campaign::CampaignPlan, BoxError> {
    let ctx = commands::Context::with_slots(slots);
    let cmd = commands::parse("campaign", bytes, &ctx)
        .map_err(|r| format!("{}: {}", r.code, r.message))?;
    cmd.campaign.ok_or_else(|| "no plan".into())
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Plans and submits; (plan ms, submit ms).
async fn plan_and_submit(
    events: &gsmgw_agent::events::Events,
    payload: &Value,
    slots: &[u16],
) -> Result<(f64, f64), BoxError> {
    let t = Instant::now();
    let plan = plan_of(&serde_json::to_vec(payload)?, slots)?;
    let plan_ms = t.elapsed().as_secs_f64() * 1e3;
    let request_id = payload["request_id"].as_str().unwrap_or("req").to_string();
    let t = Instant::now();
    campaign::submit(events, &request_id, plan).await?;
    Ok((plan_ms, t.elapsed().as_secs_f64() * 1e3))
}

async fn throughput(dir: &Path, n: usize, messages: usize) -> Result<Value, BoxError> {
    let rig = Rig::start(dir, n).await?;
    let events = rig.agent.events();
    let payload = campaign_payload("bench", messages)?;
    let plan = plan_of(&serde_json::to_vec(&payload)?, &rig.slots)?;
    let before = events.store().stats().await?;
    reset_hwm();
    let cpu0 = cpu_by_thread();
    let start_ms = unix_ms();
    let t = Instant::now();
    campaign::submit(&events, "req-bench", plan).await?;
    let deadline = t + Duration::from_secs(30 + 4 * (messages as u64 * latency_ms()) / 1000);
    loop {
        let counts = events.store().campaign_counts("bench").await?;
        let sent = counts.get("sent").copied().unwrap_or(0) as usize;
        if sent >= messages {
            break;
        }
        let other: u64 = counts
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "queued" | "sending" | "sent"))
            .map(|(_, v)| *v)
            .sum();
        if other > 0 {
            return Err(format!("jobs ended other than sent: {counts:?}").into());
        }
        if Instant::now() > deadline {
            return Err(format!("not done in time: {counts:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hwm = hwm_kb();
    let cpu = cpu_by_thread();
    let wall = t.elapsed().as_secs_f64();
    let jobs = events
        .store()
        .jobs_in_state(gsmgw_agent::proto::JobState::Sent, messages + 10)
        .await?;
    let last = jobs.iter().map(|j| j.updated_ms).max().unwrap_or(start_ms);
    let first = jobs.iter().map(|j| j.updated_ms).min().unwrap_or(start_ms);
    let mut per_slot: BTreeMap<u64, u64> = BTreeMap::new();
    for j in &jobs {
        if let Some(s) = j.outcome.as_ref().and_then(|o| o["slot"].as_u64()) {
            *per_slot.entry(s).or_default() += 1;
        }
    }
    let after = events.store().stats().await?;
    drop(jobs);
    drop(events);
    rig.stop().await;
    Ok(json!({
        "n": n,
        "messages": messages,
        "seconds": (last - start_ms) as f64 / 1e3,
        "first_ms": first - start_ms,
        "transactions": after.transactions - before.transactions,
        "operations": after.operations - before.operations,
        "hwm_kb": hwm,
        "cpu": cpu_delta(&cpu0, &cpu, wall),
        "per_slot": per_slot.values().collect::<Vec<_>>(),
    }))
}

/// The simulators alone: each driven by its own AT engine sending the same PDU in a loop.
async fn floor(dir: &Path, n: usize, per_modem: usize) -> Result<Value, BoxError> {
    let mut sims = Vec::new();
    let mut modems = Vec::new();
    for i in 1..=n {
        let link = dir.join(format!("floor{i}"));
        let sim = Simulator::spawn(SimOptions {
            link: link.clone(),
            imei: format!("86123456{i:07}"),
            imsi: format!("25501{i:010}"),
            sim_busy_secs: 0.0,
            register_delay_ms: 0,
            ..SimOptions::default()
        })
        .await?;
        sim.control_ok(json!({"op": "cmgs", "latency_ms": latency_ms()}))
            .await?;
        while sim.control(json!({"op": "state"})).await?["sms"]["ready"] != true {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let port = modem::open_port(&link.display().to_string(), 115_200)?;
        let (at, _urcs) = at::spawn(port, gsmgw_drivers::modem::engine_config());
        at.send(at::Command::new("ATE0")).await?;
        at.send(at::Command::new("AT+CMGF=0")).await?;
        modems.push(Modem::new(at, modem::Dialect::Generic));
        sims.push(sim);
    }
    let part = encode_submit(&SubmitOptions {
        to: "+380500000001".into(),
        text: "Hello Client 1, your order is ready for pickup.".into(),
        ..SubmitOptions::default()
    })?
    .remove(0);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for m in modems {
        let p = part.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_modem {
                m.send_pdu(&p.pdu, p.tpdu_len).await?;
            }
            Ok::<(), modem::ModemError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let secs = t.elapsed().as_secs_f64();
    for s in sims {
        s.shutdown().await;
    }
    Ok(json!({"n": n, "messages": n * per_modem, "seconds": secs,
              "rate": (n * per_modem) as f64 / secs}))
}

async fn accept(dir: &Path, recipients: usize) -> Result<Value, BoxError> {
    let mut submit_ms = Vec::new();
    let mut parse_ms = Vec::new();
    let mut mem = json!({});
    let mut payload_bytes = 0;
    let runs = 3;
    for run in 0..runs {
        let sub = dir.join(format!("accept{run}"));
        std::fs::create_dir_all(&sub)?;
        let rig = Rig::start(&sub, 1).await?;
        let events = rig.agent.events();
        let id = format!("big{run}");
        let bytes = campaign_bytes(&id, recipients);
        payload_bytes = bytes.len();
        let rss_before = rss_kb();
        reset_hwm();
        // As in the agent: `commands::parse` reads the payload straight into the plan.
        let t = Instant::now();
        let plan = plan_of(&bytes, &rig.slots)?;
        parse_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let rss_planned = rss_kb();
        let t = Instant::now();
        campaign::submit(&events, &format!("req-{id}"), plan).await?;
        submit_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let hwm = hwm_kb();
        drop(bytes);
        let rss_after = rss_kb();
        if run == 0 {
            // The first run in a fresh process: nothing left over from an earlier one.
            mem = json!({
                "before_kb": rss_before, "planned_kb": rss_planned,
                "peak_kb": hwm, "after_kb": rss_after,
            });
        }
        let counts = events.store().campaign_counts(&id).await?;
        // (The one modem may have started sending already.)
        let stored = counts.values().sum::<u64>() as usize;
        if stored != recipients {
            return Err(format!("accepted {stored} of {recipients}").into());
        }
        drop(events);
        rig.stop().await;
    }
    let accept: Vec<f64> = parse_ms
        .iter()
        .zip(&submit_ms)
        .map(|(a, b)| a + b)
        .collect();
    Ok(json!({
        "runs": runs,
        "recipients": recipients,
        "payload_bytes": payload_bytes,
        "parse_ms": median(parse_ms),
        "submit_ms": median(submit_ms),
        "accept_ms": median(accept),
        "mem": mem,
    }))
}

async fn rss(dir: &Path, n: usize, recipients: usize) -> Result<Value, BoxError> {
    let rig = Rig::start(dir, n).await?;
    let events = rig.agent.events();
    // Paused right after it is accepted until the HWM is reset, so the accept's own peak is
    // not counted here.
    let payload = campaign_payload("rss", recipients)?;
    plan_and_submit(&events, &payload, &rig.slots).await?;
    drop(payload);
    let ctl = json!({"campaign_id": "rss", "action": "pause"});
    campaign::control(&events, ctl.as_object().ok_or("ctl")?)
        .await
        .map_err(|(c, m)| format!("{c}: {m}"))?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_after_accept = rss_kb();
    reset_hwm();
    let ctl = json!({"campaign_id": "rss", "action": "resume"});
    campaign::control(&events, ctl.as_object().ok_or("ctl")?)
        .await
        .map_err(|(c, m)| format!("{c}: {m}"))?;
    tokio::time::sleep(Duration::from_secs(RSS_SEND_SECS)).await;
    let hwm_send = hwm_kb();
    let rss_end = rss_kb();
    let counts = events.store().campaign_counts("rss").await?;
    drop(events);
    rig.stop().await;
    Ok(json!({
        "recipients": recipients,
        "sent": counts.get("sent").copied().unwrap_or(0),
        "rss_after_accept_kb": rss_after_accept,
        "hwm_send_kb": hwm_send,
        "rss_end_kb": rss_end,
    }))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn status_kb(key: &str) -> u64 {
    gsmgw_testkit::procfs::self_status_kib(key)
}

/// CPU seconds (user + system) per thread name, from /proc/self/task/*/stat.
fn cpu_by_thread() -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let tick = 100.0; // USER_HZ
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let ticks: f64 = fields
            .get(11..13)
            .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
            .unwrap_or(0.0);
        *out.entry(name).or_insert(0.0) += ticks / tick;
    }
    out
}

/// CPU use between two samples, as a share of one core, per thread name.
fn cpu_delta(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>, wall: f64) -> Value {
    let mut m = serde_json::Map::new();
    let mut total = 0.0;
    for (k, v) in b {
        let d = v - a.get(k).copied().unwrap_or(0.0);
        total += d;
        if d > 0.0 {
            m.insert(k.clone(), json!((d / wall * 100.0).round() / 100.0));
        }
    }
    m.insert(
        "total".into(),
        json!((total / wall * 100.0).round() / 100.0),
    );
    Value::Object(m)
}

fn hwm_kb() -> u64 {
    status_kb("VmHWM:")
}

fn rss_kb() -> u64 {
    status_kb("VmRSS:")
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0); harmless where unsupported.
fn reset_hwm() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
