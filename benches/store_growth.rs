//! How much the store grows per 1 000 SMS, whole agent (`cargo bench --bench store_growth`).
//!
//! The real binary (`gsmgw run`) against a simulated modem and a real mosquitto on a free
//! loopback port: N SMS are received, then M are sent with delivery reports, every event is
//! taken by a subscriber (so the outbox drains), the agent stops cleanly, and the size of
//! `gsmgw.db` (plus WAL) is compared with the size before. Last, the store is opened once
//! with a zero job retention, as it is when the retention has passed, to show what the
//! pruning and the incremental vacuum give back.
//!
//! Environment:
//! - `GSMGW_BIN`: the gsmgw binary to measure (default: this build's), e.g. an older build to
//!   compare with; the last step always uses this build's store.
//! - `GSMGW_GROWTH_RECEIVED` (default 2000) and `GSMGW_GROWTH_SENT` (default 1000).
//! - `GSMGW_BENCH_DIR`: where the data goes (default: the system temp dir).

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Broker, Central, SimModem, write_config_with};
use serde_json::json;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const T: Duration = Duration::from_secs(120);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The store's size once its WAL is checkpointed into it (the agent is stopped): what the
/// data really takes, without the WAL the agent may leave at up to its size limit.
fn file_bytes(data: &Path) -> u64 {
    if let Ok(c) = rusqlite::Connection::open(data.join("gsmgw.db")) {
        let _ = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        });
    }
    let size = |f: &str| {
        std::fs::metadata(data.join(f))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let (db, wal) = (size("gsmgw.db"), size("gsmgw.db-wal"));
    if std::env::var_os("GSMGW_GROWTH_DEBUG").is_some() {
        eprintln!("gsmgw.db {db} bytes, -wal {wal} bytes");
    }
    db + wal
}

/// Rows per table and free pages (GSMGW_GROWTH_DEBUG).
fn describe(data: &Path) {
    if std::env::var_os("GSMGW_GROWTH_DEBUG").is_none() {
        return;
    }
    let Ok(c) = rusqlite::Connection::open_with_flags(
        data.join("gsmgw.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) else {
        return;
    };
    for q in [
        "SELECT COUNT(*) FROM outbox",
        "SELECT COUNT(*) FROM jobs",
        "SELECT COUNT(*) FROM sms_seen",
        "SELECT COUNT(*) FROM campaigns",
        "SELECT COUNT(*) FROM counters",
        "PRAGMA freelist_count",
        "PRAGMA page_count",
        "PRAGMA auto_vacuum",
    ] {
        let v: i64 = c.query_row(q, [], |r| r.get(0)).unwrap_or(-1);
        eprintln!("{q}: {v}");
    }
}

fn main() -> Result<(), BoxError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run())
}

struct Agent(std::process::Child);

impl Agent {
    fn start(bin: &str, cfg: &Path) -> Result<Agent, BoxError> {
        Ok(Agent(
            std::process::Command::new(bin)
                .args(["run", "--config"])
                .arg(cfg)
                .env(
                    "GSMGW_LOG",
                    std::env::var("GSMGW_GROWTH_LOG").unwrap_or_else(|_| "warn".into()),
                )
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .spawn()?,
        ))
    }

    fn stop(mut self) -> Result<(), BoxError> {
        let pid = self.0.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()?;
        self.0.wait()?;
        Ok(())
    }
}

async fn run() -> Result<(), BoxError> {
    let bin = std::env::var("GSMGW_BIN").unwrap_or_else(|_| common::gsmgw_bin().to_string());
    let received = env_usize("GSMGW_GROWTH_RECEIVED", 2000);
    let sent = env_usize("GSMGW_GROWTH_SENT", 1000);
    let base = std::env::var_os("GSMGW_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base)?;
    let data = dir.path().join("data");
    let broker = Broker::start();
    let sim = SimModem::start(dir.path(), "modem1", &["--dialect", "quectel"]);
    sim.control(json!({"op": "auto-report", "enabled": true, "status": 0, "delay_ms": 50}));
    sim.control(json!({"op": "cmgs", "latency_ms": 50}));
    let cfg = write_config_with(
        dir.path(),
        "gw-growth",
        &broker.url(),
        "",
        &[(1, &sim.link, "")],
    );
    // Per-SIM limits out of the way: this measures the store, not the pacing.
    let mut text = std::fs::read_to_string(&cfg)?;
    text.push_str("\n[sms]\nper_minute = 100000\nper_hour = 100000\nper_day = 100000\n");
    std::fs::write(&cfg, text)?;
    let mut central = Central::connect(broker.port, "gsmgw/gw-growth/#").await;
    let agent = Agent::start(&bin, &cfg)?;
    central
        .expect("gsmgw/gw-growth/modem/1/state", T, |v| {
            v["state"] == "ready"
        })
        .await;
    agent.stop()?;
    let empty = file_bytes(&data);
    let agent = Agent::start(&bin, &cfg)?;
    central
        .expect("gsmgw/gw-growth/modem/1/state", T, |v| {
            v["state"] == "ready"
        })
        .await;

    let t0 = Instant::now();
    for i in 0..received {
        let text = format!("growth {i} {}", "x".repeat(40));
        sim.control(json!({"op": "sms", "from": "+380671112233", "text": text}));
        if i % 50 == 49 {
            let want = format!("growth {i} ");
            central
                .expect("gsmgw/gw-growth/event/sms-received", T, |v| {
                    v["text"].as_str().is_some_and(|t| t.starts_with(&want))
                })
                .await;
        }
    }
    let rx_secs = t0.elapsed().as_secs_f64();
    agent.stop()?;
    let after_rx = file_bytes(&data);

    let agent = Agent::start(&bin, &cfg)?;
    central
        .expect("gsmgw/gw-growth/modem/1/state", T, |v| {
            v["state"] == "ready"
        })
        .await;
    for i in 0..sent {
        let cmd = json!({"request_id": format!("growth-{i}"), "to": "+380501234567",
                         "text": format!("out {i}"), "report": true});
        central
            .send("gsmgw/gw-growth/cmd/sms-send", &cmd.to_string())
            .await;
    }
    // Every job sent (most also delivered) and every event acknowledged by the broker (the outbox is empty):
    // read from the agent's own store, read-only.
    let db = rusqlite::Connection::open_with_flags(
        data.join("gsmgw.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done: i64 = db.query_row(
            "SELECT COUNT(*) FROM jobs WHERE state IN ('sent', 'delivered')",
            [],
            |r| r.get(0),
        )?;
        let outbox: i64 = db.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))?;
        if done as usize >= sent && outbox == 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err(
                format!("{done} of {sent} sent, {outbox} events not yet acknowledged").into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(db);
    agent.stop()?;
    let after_tx = file_bytes(&data);
    describe(&data);

    // Retention passed: what the store gives back.
    let opts = gsmgw_agent::store::StoreOptions {
        job_retention: Duration::ZERO,
        ..gsmgw_agent::store::StoreOptions::in_dir(&data)
    };
    let (store, _) = gsmgw_agent::store::Store::open(opts, "gw-growth")?;
    store.close().await?;
    let pruned = file_bytes(&data);
    describe(&data);

    let per_k = |bytes: i64, n: usize| bytes as f64 * 1000.0 / n.max(1) as f64 / 1024.0;
    println!("store growth, agent {bin}");
    println!("  empty store after start:               {empty} bytes");
    println!(
        "  {received} SMS received ({:.0}/s), all published: {after_rx} bytes = {:+.1} KiB per 1000 received",
        received as f64 / rx_secs,
        per_k(after_rx as i64 - empty as i64, received)
    );
    println!(
        "  {sent} SMS sent (with reports), all published: {after_tx} bytes = {:+.1} KiB per 1000 sent (jobs kept for their retention)",
        per_k(after_tx as i64 - after_rx as i64, sent)
    );
    println!(
        "  after the job retention passed: {pruned} bytes ({:+.1} KiB per 1000 SMS of either kind)",
        per_k(pruned as i64 - empty as i64, received + sent)
    );
    drop(broker);
    Ok(())
}
