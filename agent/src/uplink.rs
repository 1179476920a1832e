//! The uplink to the central server over MQTT.
//!
//! Birth and will on `gsmgw/{id}/status` (retained), each slot's picture on
//! `gsmgw/{id}/modem/{slot}/state` (retained). The modems never wait on the broker: while it
//! is away the latest pictures are kept and published on the next connect, with exponential
//! backoff and jitter between attempts. (The durable event outbox joins this in the
//! store-and-forward work.)

use std::collections::BTreeMap;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::state::{ModemEvent, ModemSnapshot};

/// Events kept in memory while the broker is away (the durable outbox replaces this).
const MAX_PENDING_EVENTS: usize = 10_000;

/// What the uplink needs to know.
#[derive(Debug, Clone)]
pub struct UplinkOptions {
    /// Gateway id: client id and topic root `gsmgw/{id}`.
    pub gateway_id: String,
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Username, if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<String>,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// Version string for the birth message.
    pub version: String,
    /// This run's id, for the birth message.
    pub boot_id: String,
    /// Longest wait between reconnect attempts.
    pub max_backoff: Duration,
}

/// The uplink's state, for consoles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UplinkStatus {
    /// Connected to the broker now.
    pub connected: bool,
    /// Successful connects since start.
    pub connects: u32,
    /// The last connection error.
    pub last_error: Option<String>,
}

/// Topic root for a gateway.
pub fn topic_root(gateway_id: &str) -> String {
    format!("gsmgw/{gateway_id}")
}

/// Starts the uplink task.
pub fn spawn(
    opts: UplinkOptions,
    snapshots: Vec<watch::Receiver<ModemSnapshot>>,
    events: mpsc::Receiver<ModemEvent>,
    shutdown: watch::Receiver<bool>,
) -> (tokio::task::JoinHandle<()>, watch::Receiver<UplinkStatus>) {
    let (status_tx, status_rx) = watch::channel(UplinkStatus::default());
    let (snap_tx, snap_rx) = mpsc::channel(64);
    let mut latest = BTreeMap::new();
    for mut rx in snapshots {
        let s = rx.borrow_and_update().clone();
        latest.insert(s.slot, s);
        let tx = snap_tx.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let s = rx.borrow_and_update().clone();
                if tx.send(s).await.is_err() {
                    break;
                }
            }
        });
    }
    let task = tokio::spawn(run(opts, latest, snap_rx, events, status_tx, shutdown));
    (task, status_rx)
}

fn jitter(max: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let ms = max.as_millis().max(1) as u64;
    Duration::from_millis(u64::from(nanos) % ms)
}

async fn run(
    opts: UplinkOptions,
    mut latest: BTreeMap<u16, ModemSnapshot>,
    mut snap_rx: mpsc::Receiver<ModemSnapshot>,
    mut event_rx: mpsc::Receiver<ModemEvent>,
    status_tx: watch::Sender<UplinkStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    let root = topic_root(&opts.gateway_id);
    let status_topic = format!("{root}/status");
    let offline = json!({"online": false, "boot_id": opts.boot_id}).to_string();
    let mut mo = MqttOptions::new(opts.gateway_id.clone(), opts.host.clone(), opts.port);
    mo.set_keep_alive(opts.keep_alive)
        .set_clean_session(false)
        .set_last_will(LastWill::new(
            status_topic.clone(),
            offline.clone(),
            QoS::AtLeastOnce,
            true,
        ));
    if let Some(u) = &opts.username {
        mo.set_credentials(u.clone(), opts.password.clone().unwrap_or_default());
    }
    let (client, mut eventloop) = AsyncClient::new(mo, 256);
    let mut connected = false;
    let mut dirty: std::collections::BTreeSet<u16> = latest.keys().copied().collect();
    let mut backoff = Duration::from_millis(500);
    let mut pending_events: std::collections::VecDeque<(String, String)> = Default::default();
    let mut seq: u64 = 0;
    let gateway = opts.gateway_id.clone();
    let envelope = move |seq: u64, ev: &ModemEvent| -> Option<String> {
        let mut v = serde_json::to_value(ev).ok()?;
        let obj = v.as_object_mut()?;
        obj.insert("id".into(), json!(uuid::Uuid::now_v7().to_string()));
        obj.insert("seq".into(), json!(seq));
        obj.insert("ts".into(), json!(crate::clock::now_rfc3339()));
        obj.insert("gateway".into(), json!(gateway));
        obj.insert("type".into(), json!("modem"));
        Some(v.to_string())
    };
    let event_topic = format!("{root}/event/modem");
    let flush_events =
        |client: &AsyncClient, pending: &mut std::collections::VecDeque<(String, String)>| {
            while let Some((topic, payload)) = pending.front() {
                if client
                    .try_publish(topic.clone(), QoS::AtLeastOnce, false, payload.clone())
                    .is_err()
                {
                    break;
                }
                pending.pop_front();
            }
        };

    let publish_dirty = |client: &AsyncClient,
                         latest: &BTreeMap<u16, ModemSnapshot>,
                         dirty: &mut std::collections::BTreeSet<u16>| {
        let pending: Vec<u16> = dirty.iter().copied().collect();
        for slot in pending {
            let Some(s) = latest.get(&slot) else {
                dirty.remove(&slot);
                continue;
            };
            let payload = match serde_json::to_string(s) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(slot, error = %e, "cannot encode modem state");
                    dirty.remove(&slot);
                    continue;
                }
            };
            let topic = format!("{root}/modem/{slot}/state");
            if client
                .try_publish(topic, QoS::AtLeastOnce, true, payload)
                .is_ok()
            {
                dirty.remove(&slot);
            } else {
                break; // request queue full: try again after the next event
            }
        }
    };

    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            ev = eventloop.poll() => match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connected = true;
                    backoff = Duration::from_millis(500);
                    status_tx.send_modify(|s| { s.connected = true; s.connects += 1; s.last_error = None; });
                    tracing::info!(host = %opts.host, port = opts.port, "connected to broker");
                    let birth = json!({
                        "online": true,
                        "version": opts.version,
                        "boot_id": opts.boot_id,
                        "ts": crate::clock::now_rfc3339(),
                    }).to_string();
                    if let Err(e) = client.try_publish(status_topic.clone(), QoS::AtLeastOnce, true, birth) {
                        tracing::warn!(error = %e, "birth message not queued");
                    }
                    dirty.extend(latest.keys().copied());
                    publish_dirty(&client, &latest, &mut dirty);
                    flush_events(&client, &mut pending_events);
                }
                Ok(_) => {
                    if connected && !dirty.is_empty() {
                        publish_dirty(&client, &latest, &mut dirty);
                    }
                    if connected && !pending_events.is_empty() {
                        flush_events(&client, &mut pending_events);
                    }
                }
                Err(e) => {
                    let first_failure = status_tx.borrow().last_error.is_none();
                    if connected {
                        tracing::warn!(error = %e, "broker connection lost; keeping state until it is back");
                    } else if first_failure {
                        tracing::warn!(host = %opts.host, port = opts.port, error = %e, "broker not reachable; keeping state until it is");
                    } else {
                        tracing::debug!(error = %e, "broker still not reachable");
                    }
                    connected = false;
                    status_tx.send_modify(|s| { s.connected = false; s.last_error = Some(e.to_string()); });
                    let wait = backoff + jitter(backoff / 2);
                    backoff = (backoff * 2).min(opts.max_backoff);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => break,
                    }
                }
            },
            ev = event_rx.recv() => {
                if let Some(ev) = ev {
                    seq += 1;
                    if let Some(payload) = envelope(seq, &ev) {
                        if pending_events.len() >= MAX_PENDING_EVENTS {
                            pending_events.pop_front();
                            tracing::warn!("event buffer full; oldest modem event dropped");
                        }
                        pending_events.push_back((event_topic.clone(), payload));
                        if connected {
                            flush_events(&client, &mut pending_events);
                        }
                    }
                }
            }
            s = snap_rx.recv() => {
                if let Some(s) = s {
                    dirty.insert(s.slot);
                    latest.insert(s.slot, s);
                    if connected {
                        publish_dirty(&client, &latest, &mut dirty);
                    }
                }
            }
        }
    }

    // Say goodbye properly (retained offline), then let the event loop deliver it.
    if connected {
        if client
            .try_publish(status_topic, QoS::AtLeastOnce, true, offline)
            .is_ok()
        {
            // The goodbye is the last publish queued: wait for the ack of the last one sent.
            let flush = async {
                let mut last = None;
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) => last = Some(pkid),
                        Ok(Event::Incoming(Packet::PubAck(ack))) if Some(ack.pkid) == last => break,
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), flush).await;
        }
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while eventloop.poll().await.is_ok() {}
        })
        .await;
    }
    status_tx.send_modify(|s| s.connected = false);
}
