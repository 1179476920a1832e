//! Durable ingest into the store (WAL, synchronous=FULL, group commit) and the drain loop.
//!
//! `CARGO_TARGET_DIR=/work/target-store cargo bench -p gsmgw-agent --bench store_ingest`
//! The database goes in `GSMGW_BENCH_DIR` (default: the system temp dir), which should be on
//! the disk being measured, not a tmpfs.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use gsmgw_agent::store::{EventClass, NewEvent, Store, StoreOptions};
use serde_json::json;

const PRODUCERS: usize = 64;
const EVENTS: usize = 200_000;
const DRAIN_BATCH: usize = 1000;
const LATENCY_SAMPLES: usize = 2000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = gsmgw_testkit::bench_dir("gsmgw-store-bench")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(dir.path()))
}

fn event(producer: usize, i: usize) -> NewEvent {
    // ~200 bytes of body, like a modem state change or a short SMS.
    NewEvent::new(
        "modem",
        EventClass::Telemetry,
        json!({
            "slot": producer % 8 + 1,
            "n": i,
            "state": "registered",
            "operator": "Example Mobile",
            "signal_dbm": -71,
            "registration": "home",
            "text": "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnop",
        }),
    )
}

async fn run(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let (store, _) = Store::open(StoreOptions::in_dir(dir), "gw-bench")?;

    // Durable latency of a lone producer: one commit (one fsync) per event.
    let t = Instant::now();
    for i in 0..LATENCY_SAMPLES {
        store.append(event(0, i)).await?;
    }
    let lone = t.elapsed();
    let warm = store.stats().await?;

    // Ingest: many producers, each awaiting its own append before the next.
    let per = EVENTS / PRODUCERS;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..PRODUCERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                store.append(event(p, i)).await?;
            }
            Ok::<_, gsmgw_agent::store::StoreError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let ingest = t.elapsed();
    let stats = store.stats().await?;
    let appended = (per * PRODUCERS) as f64;
    let txns = (stats.transactions - warm.transactions).max(1) as f64;
    let db_bytes = std::fs::metadata(store.path())?.len();

    // Drain: read a page, delete it, as the publish pump does on PUBACK.
    let t = Instant::now();
    let mut after = 0;
    let mut drained = 0usize;
    loop {
        let rows = store.pending(after, DRAIN_BATCH).await?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        drained += rows.len();
        store.delete(rows.iter().map(|r| r.seq).collect()).await?;
    }
    let drain = t.elapsed();
    let end = store.stats().await?;
    store.close().await?;

    println!(
        "store durable append latency, 1 producer: {:.3} ms/event ({:.0} events/s)",
        lone.as_secs_f64() * 1e3 / LATENCY_SAMPLES as f64,
        LATENCY_SAMPLES as f64 / lone.as_secs_f64()
    );
    println!(
        "store durable ingest, {PRODUCERS} producers: {:.0} events/s ({} events in {:.2} s)",
        appended / ingest.as_secs_f64(),
        per * PRODUCERS,
        ingest.as_secs_f64()
    );
    println!(
        "store group commit: {:.1} events/transaction ({} transactions)",
        appended / txns,
        txns
    );
    println!(
        "store outbox after ingest: {} rows, {} payload bytes, db file {} bytes",
        stats.rows, stats.bytes, db_bytes
    );
    println!(
        "store drain (pending {DRAIN_BATCH} + delete): {:.0} rows/s ({drained} rows in {:.2} s, {} left)",
        drained as f64 / drain.as_secs_f64(),
        drain.as_secs_f64(),
        end.rows
    );
    println!(
        "store peak RSS (VmHWM): {} kB",
        gsmgw_testkit::procfs::self_status_kib("VmHWM:")
    );
    Ok(())
}
