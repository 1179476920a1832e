//! Draining a backlog from the store to a real MQTT broker through the real publish pump.
//!
//! `CARGO_TARGET_DIR=/work/target-bench cargo bench -p gsmgw-agent --bench uplink_drain`
//! Starts its own mosquitto on a free loopback port (127.0.0.1 only), appends a backlog of
//! `sms-received`-like events, then runs `uplink::spawn` against the broker while a QoS 1
//! subscriber (playing the central server) counts what arrives and checks seq order. The
//! database goes in `GSMGW_BENCH_DIR` (default: the system temp dir), which should be on the
//! disk being measured, not a tmpfs. `GSMGW_BENCH_EVENTS` overrides the backlog size.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gsmgw_agent::events::Events;
use gsmgw_agent::store::{EventClass, NewEvent, Store, StoreOptions};
use gsmgw_agent::uplink::{self, UplinkOptions};
use gsmgw_testkit::Mosquitto;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;
use tokio::sync::{Notify, oneshot, watch};

const EVENTS: usize = 100_000;
const PRODUCERS: usize = 8;
const BATCH: usize = 500;
const GATEWAY: &str = "bench";
/// Longest the drain may take before the bench gives up (it should take a few seconds).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    let events = std::env::var("GSMGW_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(EVENTS);
    let dir = gsmgw_testkit::bench_dir("gsmgw-uplink-bench")?;
    // Dropped in reverse order: the runtime (and its tasks) first, then the broker, then the
    // directory — also when `run` fails or panics.
    // Unbounded in-flight and queue toward the subscriber: the broker must not drop QoS 1
    // messages (its default queue is 1000 per client) nor be what is measured.
    let broker = Mosquitto::new()
        .line("max_inflight_messages 0")
        .line("max_queued_messages 0")
        .try_start()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(run(dir.path(), broker.port, events));
    drop(rt);
    if result.is_err() {
        eprintln!("mosquitto log:\n{}", broker.log_tail(20));
    }
    result
}

fn event(i: usize) -> NewEvent {
    // A single-part received SMS: ~300 bytes with the envelope.
    NewEvent::new(
        "sms-received",
        EventClass::Critical,
        json!({
            "slot": i % 8 + 1,
            "imsi": "255030123456781",
            "from": "+420601234567",
            "smsc": "+420603052000",
            "sent_ts": "2025-01-31T12:34:56+01:00",
            "parts": 1,
            "text": format!("Bench message {i:06}: your verification code is 482913. It expires in 10 minutes, do not share it."),
        }),
    )
}

/// What the subscriber saw.
#[derive(Default)]
struct Seen {
    received: AtomicU64,
    duplicates: AtomicU64,
    out_of_order: AtomicU64,
    foreign: AtomicU64,
}

/// A central-server stand-in: QoS 1, clean session, counts events and checks seq order.
async fn subscriber(
    port: u16,
    first_seq: u64,
    count: usize,
    seen: Arc<Seen>,
    all_in: Arc<Notify>,
) -> Result<(AsyncClient, tokio::task::JoinHandle<()>), BoxError> {
    let mut mo = MqttOptions::new("bench-central", "127.0.0.1", port);
    mo.set_clean_session(true)
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(256 * 1024, 256 * 1024);
    let (client, mut eventloop) = AsyncClient::new(mo, 64);
    client
        .subscribe(format!("gsmgw/{GATEWAY}/event/#"), QoS::AtLeastOnce)
        .await?;
    let (subscribed_tx, subscribed_rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        let mut got = vec![false; count];
        let mut last = 0u64;
        let mut received = 0usize;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(tx) = subscribed_tx.take() {
                        let _ = tx.send(Ok(()));
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let Some(seq) = seq_of(&p.payload) else {
                        seen.foreign.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let slot = seq
                        .checked_sub(first_seq)
                        .and_then(|i| got.get_mut(i as usize));
                    match slot {
                        None => {
                            seen.foreign.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(true) => {
                            seen.duplicates.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(s) => {
                            *s = true;
                            if seq < last {
                                seen.out_of_order.fetch_add(1, Ordering::Relaxed);
                            }
                            last = last.max(seq);
                            received += 1;
                            seen.received.store(received as u64, Ordering::Release);
                            if received == count {
                                all_in.notify_one();
                            }
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if let Some(tx) = subscribed_tx.take() {
                        let _ = tx.send(Err(e.to_string()));
                    }
                    break;
                }
            }
        }
    });
    match tokio::time::timeout(Duration::from_secs(10), subscribed_rx).await {
        Ok(Ok(Ok(()))) => Ok((client, task)),
        other => {
            task.abort();
            Err(format!("subscriber not subscribed: {other:?}").into())
        }
    }
}

/// The envelope's `seq`, without decoding the whole payload.
fn seq_of(payload: &[u8]) -> Option<u64> {
    let at = payload.windows(6).position(|w| w == b"\"seq\":")? + 6;
    let digits = payload[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&payload[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

async fn run(dir: &Path, port: u16, count: usize) -> Result<(), BoxError> {
    let (store, _) = Store::open(StoreOptions::in_dir(dir), GATEWAY)?;
    let events = Events::new(store.clone(), Arc::new(Notify::new()));

    // Ingest: a few producers, each committing batches of BATCH events (one transaction each,
    // or fewer when the writer groups them).
    // Batches are built by the producers as they go (encoding is the caller's share of the
    // cost), so the backlog is never held in memory twice.
    let next_batch = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..PRODUCERS {
        let store = store.clone();
        let next_batch = next_batch.clone();
        tasks.push(tokio::spawn(async move {
            let (mut lo, mut hi) = (u64::MAX, 0u64);
            loop {
                let start = next_batch.fetch_add(1, Ordering::Relaxed) * BATCH;
                if start >= count {
                    break;
                }
                let batch = (start..(start + BATCH).min(count)).map(event).collect();
                let rows = store.append_many(batch).await?;
                for r in &rows {
                    lo = lo.min(r.seq);
                    hi = hi.max(r.seq);
                }
            }
            Ok::<_, gsmgw_agent::store::StoreError>((lo, hi))
        }));
    }
    let (mut first_seq, mut last_seq) = (u64::MAX, 0u64);
    for task in tasks {
        let (lo, hi) = task.await??;
        first_seq = first_seq.min(lo);
        last_seq = last_seq.max(hi);
    }
    let ingest = t.elapsed();
    let backlog = store.stats().await?;
    if backlog.rows != count as u64 || last_seq + 1 - first_seq != count as u64 {
        return Err(format!(
            "backlog is {} rows, seq {first_seq}..={last_seq}; expected {count}",
            backlog.rows
        )
        .into());
    }

    let seen = Arc::new(Seen::default());
    let all_in = Arc::new(Notify::new());
    let (central, sub_task) =
        subscriber(port, first_seq, count, seen.clone(), all_in.clone()).await?;

    // Drain: the real uplink against the broker, no modem snapshots.
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let t = Instant::now();
    let (uplink_task, status) = uplink::spawn(
        UplinkOptions {
            gateway_id: GATEWAY.to_string(),
            host: "127.0.0.1".to_string(),
            port,
            username: None,
            password: None,
            keep_alive: Duration::from_secs(30),
            version: "bench".to_string(),
            boot_id: "bench".to_string(),
            max_backoff: Duration::from_secs(1),
            commands: Default::default(),
            max_command_bytes: 1024 * 1024,
            tls: None,
            voice: None,
            data_dir: std::env::temp_dir(),
            channels: Default::default(),
        },
        Vec::new(),
        events.clone(),
        shutdown_rx,
    );
    // Done when the subscriber has everything and the outbox is empty; the store is asked
    // only once the uplink has seen every PUBACK (deletes follow the acks by a batch); polled
    // every 10 ms so the watcher does not wake on every ack.
    let drained = async {
        let (mut emptied, mut received) = (None, None);
        loop {
            if received.is_none() && seen.received.load(Ordering::Acquire) >= count as u64 {
                received = Some(t.elapsed());
            }
            let acked = status.borrow().acked;
            if emptied.is_none() && acked >= count as u64 && store.stats().await?.rows == 0 {
                emptied = Some(t.elapsed());
            }
            if let (Some(e), Some(r)) = (emptied, received) {
                return Ok::<_, BoxError>((e, r));
            }
            tokio::select! {
                _ = all_in.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
        }
    };
    let outcome = tokio::time::timeout(DRAIN_TIMEOUT, drained).await;
    let total = t.elapsed();

    // Clean up in any case: uplink (goodbye), subscriber, store.
    let _ = shutdown_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), uplink_task).await;
    let up = status.borrow().clone();
    let _ = central.disconnect().await;
    if tokio::time::timeout(Duration::from_secs(2), sub_task)
        .await
        .is_err()
    {
        // The subscriber's loop ends on disconnect; a hung one is simply left to the runtime.
    }
    let left = store.stats().await?;
    store.close().await?;

    let received = seen.received.load(Ordering::Acquire);
    let duplicates = seen.duplicates.load(Ordering::Relaxed);
    let out_of_order = seen.out_of_order.load(Ordering::Relaxed);
    let foreign = seen.foreign.load(Ordering::Relaxed);
    let avg_payload = backlog.bytes as f64 / backlog.rows.max(1) as f64;

    println!(
        "uplink ingest (append_many x{BATCH}, {PRODUCERS} producers): {:.0} events/s ({count} events in {:.2} s, {avg_payload:.0} payload bytes/event)",
        count as f64 / ingest.as_secs_f64(),
        ingest.as_secs_f64()
    );
    let (emptied, all_received) = match outcome {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            return Err(format!(
                "drain incomplete after {:.1} s: subscriber got {received}/{count}, {} rows left in the outbox, uplink {up:?}",
                total.as_secs_f64(),
                left.rows
            )
            .into());
        }
    };
    let drain = emptied.max(all_received);
    println!(
        "uplink drain to mosquitto (QoS 1, window {}): {:.0} events/s ({count} events in {:.2} s; outbox empty at {:.2} s, subscriber complete at {:.2} s)",
        uplink::WINDOW,
        count as f64 / drain.as_secs_f64(),
        drain.as_secs_f64(),
        emptied.as_secs_f64(),
        all_received.as_secs_f64()
    );
    println!(
        "uplink subscriber: {received}/{count} received, seq order {} ({out_of_order} out of order), {duplicates} duplicates, {foreign} unexpected; uplink acked {} in {} connection(s), {} rows left",
        if out_of_order == 0 { "held" } else { "BROKEN" },
        up.acked,
        up.connects,
        left.rows
    );
    println!(
        "uplink peak RSS (VmHWM): {} kB",
        gsmgw_testkit::procfs::self_status_kib("VmHWM:")
    );
    if received != count as u64 || out_of_order != 0 || left.rows != 0 {
        return Err("the drain was not complete and in order".into());
    }
    Ok(())
}
