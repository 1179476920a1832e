//! The uplink to the central server over MQTT.
//!
//! - Birth and will on `gsmgw/{id}/status` (retained); each slot's picture on
//!   `gsmgw/{id}/modem/{slot}/state` (retained), republished after every reconnect.
//! - The publish pump: outbox rows go out in seq order on `gsmgw/{id}/event/{type}` at QoS 1
//!   with a bounded in-flight window. rumqttc keeps unacked publishes in memory only and reuses
//!   packet ids, so the pump maps packet ids to rows itself, deletes a row only when its PUBACK
//!   has arrived, and after a reconnect starts again from the oldest row not yet acknowledged.
//! - Commands on `gsmgw/{id}/cmd/{verb}` (QoS 1, manual acks): handed to the command worker
//!   (one at a time, in arrival order, through the command registry), acknowledged once the
//!   worker has committed them, then answered on `gsmgw/{id}/reply/{request_id}`. The event
//!   loop keeps turning while a command runs (keep-alives, PUBACKs, the pump).
//! - Requests the client's queue cannot take now (a burst of commands) wait in a backlog, in
//!   order, and go out as the queue drains: no ack or reply is dropped.
//!
//! The modems never wait on the broker: events are durable in the store while it is away.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use rumqttc::{Event, LastWill, MqttOptions, Outgoing, Packet, Publish, QoS};
use tokio::sync::{mpsc, watch};

use crate::actor::{Heartbeat, Pulse};
use crate::commands::{self, Followup, Origin, Outcome, Registry, Reply};
use crate::events::Events;
use crate::state::ModemSnapshot;

mod control;
#[cfg(test)]
mod tests;
mod transport;

pub use control::{UplinkBase, UplinkControl, supervise};
pub use transport::{Mqtt, Transport};

/// Outbox rows in flight (sent, not yet acknowledged) at most.
pub const WINDOW: usize = 500;
/// The outbox is read only once this many window slots are free: one query per half window
/// rather than one per PUBACK (the pump waits on each read).
const REFILL_AT: usize = WINDOW / 2;

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
    /// Longest wait between reconnect attempts ([`Backoff`]).
    pub max_backoff: Duration,
    /// What command validation needs (slots, groups, bridge domains).
    pub commands: commands::Context,
    /// Largest command payload handled; a bigger one is answered `too-large`.
    pub max_command_bytes: usize,
    /// TLS client configuration for `mqtts://` (see [`crate::tls`]); None for plain TCP.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// The voice manager (`cmd/dial`, `cmd/hangup`); None when voice is not running.
    pub voice: Option<tokio::sync::mpsc::Sender<crate::voice::VoiceCommand>>,
    /// data_dir (recordings for `cmd/recording-fetch`).
    pub data_dir: std::path::PathBuf,
    /// The channels' request queues (`cmd/ussd`).
    pub channels: crate::channel::ChannelSenders,
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
    /// Outbox rows acknowledged by the broker since start.
    pub acked: u64,
}

/// Topic root for a gateway.
pub fn topic_root(gateway_id: &str) -> String {
    format!("gsmgw/{gateway_id}")
}

/// Starts the uplink task.
pub fn spawn(
    opts: UplinkOptions,
    snapshots: Vec<watch::Receiver<ModemSnapshot>>,
    events: Events,
    shutdown: watch::Receiver<bool>,
) -> (tokio::task::JoinHandle<()>, watch::Receiver<UplinkStatus>) {
    spawn_with(
        opts,
        snapshots,
        events,
        shutdown,
        Heartbeat::detached("uplink"),
    )
}

/// Starts the uplink task beating `beat`.
pub fn spawn_with(
    opts: UplinkOptions,
    snapshots: Vec<watch::Receiver<ModemSnapshot>>,
    events: Events,
    shutdown: watch::Receiver<bool>,
    beat: Heartbeat,
) -> (tokio::task::JoinHandle<()>, watch::Receiver<UplinkStatus>) {
    let transport = Mqtt::new(mqtt_options(&opts), 1024);
    spawn_on(transport, opts, snapshots, events, shutdown, beat)
}

/// Starts the uplink over any [`Transport`] (a test plugs in its own).
pub fn spawn_on<T: Transport>(
    transport: T,
    opts: UplinkOptions,
    snapshots: Vec<watch::Receiver<ModemSnapshot>>,
    events: Events,
    shutdown: watch::Receiver<bool>,
    beat: Heartbeat,
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
    let task = tokio::spawn(async move {
        let mut up = Uplink::new(transport, opts, events, latest, status_tx, beat);
        up.run(snap_rx, shutdown).await;
    });
    (task, status_rx)
}

/// Waits between reconnect attempts: doubling from [`Backoff::FIRST`] up to the cap, each a
/// random point in the upper half of its step, so boxes that lost the same broker do not all
/// come back in the same instant, and no wait is longer than the cap.
#[derive(Debug, Clone)]
pub struct Backoff {
    step: Duration,
    cap: Duration,
}

impl Backoff {
    /// The first step.
    pub const FIRST: Duration = Duration::from_millis(500);

    /// Backoff up to `cap`.
    pub fn new(cap: Duration) -> Self {
        Self {
            step: Self::FIRST,
            cap: cap.max(Self::FIRST),
        }
    }

    /// The next wait.
    pub fn wait(&mut self) -> Duration {
        let step = self.step;
        self.step = (step * 2).min(self.cap);
        step / 2 + jitter(step / 2)
    }

    /// Back to the first step (connected, or the network changed).
    pub fn reset(&mut self) {
        self.step = Self::FIRST;
    }
}

fn jitter(max: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let ms = max.as_millis().max(1) as u64;
    Duration::from_millis(u64::from(nanos) % ms)
}

/// rumqttc's options for the uplink: persistent session, manual acks, our will.
fn mqtt_options(opts: &UplinkOptions) -> MqttOptions {
    let root = topic_root(&opts.gateway_id);
    let offline = crate::proto::Status::offline(&opts.boot_id).to_bytes();
    let mut mo = MqttOptions::new(opts.gateway_id.clone(), opts.host.clone(), opts.port);
    mo.set_keep_alive(opts.keep_alive)
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_inflight(u16::try_from(WINDOW * 2).unwrap_or(u16::MAX))
        // Any packet the broker may deliver is read: one over the client's limit would drop
        // the connection and come back with every reconnect. Size policy is ours
        // (`max_command_bytes`, answered `too-large`).
        .set_max_packet_size(MQTT_MAX_PACKET, 256 * 1024)
        .set_last_will(LastWill::new(
            format!("{root}/status"),
            offline,
            QoS::AtLeastOnce,
            true,
        ));
    if let Some(u) = &opts.username {
        mo.set_credentials(u.clone(), opts.password.clone().unwrap_or_default());
    }
    if let Some(tls) = &opts.tls {
        mo.set_transport(crate::tls::transport(tls.clone()));
    }
    mo
}

/// A request the client's queue could not take yet.
enum Held {
    /// The PUBACK of a handled command (payload already dropped).
    Ack(Publish),
    /// A reply or recording chunk.
    Publish { topic: String, payload: Vec<u8> },
}

/// A command the worker has handled: the message to acknowledge, what to send.
struct Handled {
    publish: Publish,
    outcome: Option<Outcome>,
}

struct Uplink<T: Transport> {
    opts: UplinkOptions,
    events: Events,
    root: String,
    transport: T,
    status_tx: watch::Sender<UplinkStatus>,
    latest: BTreeMap<u16, ModemSnapshot>,
    /// Slots whose picture is not yet handed to the client.
    dirty: std::collections::BTreeSet<u16>,
    connected: bool,
    /// Our publish requests in the order rumqttc will send them: Some(seq) for outbox rows.
    requested: VecDeque<Option<u64>>,
    /// Packet id → outbox seq, for rows sent and not yet acknowledged.
    inflight: HashMap<u16, u64>,
    /// Outbox rows handed to the client in this connection and not yet acknowledged.
    outbox_inflight: usize,
    /// Highest seq handed to the client in this connection.
    cursor: u64,
    /// Acknowledged seqs, deleted in batches by a helper task.
    acked_tx: mpsc::UnboundedSender<u64>,
    /// The store's health as last seen (for the birth's `storage`).
    storage: crate::store::StorageHealth,
    /// Commands to the worker, in arrival order.
    commands_tx: mpsc::UnboundedSender<Publish>,
    /// What the worker has handled, in the same order.
    handled_rx: mpsc::UnboundedReceiver<Handled>,
    /// Acks and replies waiting for room in the client's queue, in order.
    backlog: VecDeque<Held>,
    pulse: Pulse,
}

impl<T: Transport> Uplink<T> {
    fn new(
        transport: T,
        opts: UplinkOptions,
        events: Events,
        latest: BTreeMap<u16, ModemSnapshot>,
        status_tx: watch::Sender<UplinkStatus>,
        beat: Heartbeat,
    ) -> Self {
        let root = topic_root(&opts.gateway_id);
        let (acked_tx, acked_rx) = mpsc::unbounded_channel();
        tokio::spawn(delete_acked(events.clone(), acked_rx));
        let registry = Registry::new(commands::Env {
            events: events.clone(),
            version: opts.version.clone(),
            data_dir: opts.data_dir.clone(),
            voice: opts.voice.clone(),
            ctx: opts.commands.clone(),
            channels: opts.channels.clone(),
        });
        // The broker holds back further commands while these are unacknowledged (its
        // in-flight window), so the queue stays short.
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let (handled_tx, handled_rx) = mpsc::unbounded_channel();
        tokio::spawn(command_worker(
            registry,
            root.clone(),
            opts.max_command_bytes,
            commands_rx,
            handled_tx,
        ));
        let dirty = latest.keys().copied().collect();
        Self {
            opts,
            events,
            root,
            transport,
            status_tx,
            latest,
            dirty,
            connected: false,
            requested: VecDeque::new(),
            inflight: HashMap::new(),
            outbox_inflight: 0,
            cursor: 0,
            acked_tx,
            storage: crate::store::StorageHealth::default(),
            commands_tx,
            handled_rx,
            backlog: VecDeque::new(),
            pulse: beat.pulse(),
        }
    }

    /// Hands a publish to the client and records it for packet-id mapping.
    fn publish(&mut self, topic: String, retain: bool, payload: Vec<u8>, seq: Option<u64>) -> bool {
        if self.transport.publish(topic, retain, payload) {
            self.requested.push_back(seq);
            true
        } else {
            false
        }
    }

    /// Sends what waited for room, in order, while the client takes it.
    fn flush_backlog(&mut self) {
        while let Some(held) = self.backlog.pop_front() {
            let sent = match &held {
                Held::Ack(p) => self.transport.ack(p),
                Held::Publish { topic, payload } => {
                    self.publish(topic.clone(), false, payload.clone(), None)
                }
            };
            if !sent {
                self.backlog.push_front(held);
                return;
            }
        }
    }

    /// Queues a request behind any that wait already (order is kept).
    fn hold(&mut self, held: Held) {
        self.backlog.push_back(held);
        self.flush_backlog();
    }

    fn publish_states(&mut self) {
        let pending: Vec<u16> = self.dirty.iter().copied().collect();
        for slot in pending {
            let Some(s) = self.latest.get(&slot) else {
                self.dirty.remove(&slot);
                continue;
            };
            let payload = match serde_json::to_vec(s) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(slot, error = %e, "cannot encode modem state");
                    self.dirty.remove(&slot);
                    continue;
                }
            };
            let topic = format!("{}/modem/{slot}/state", self.root);
            if self.publish(topic, true, payload, None) {
                self.dirty.remove(&slot);
            } else {
                break;
            }
        }
    }

    /// Sends outbox rows after the cursor while the window has room.
    async fn refill(&mut self) {
        while self.connected && WINDOW.saturating_sub(self.outbox_inflight) >= REFILL_AT {
            let room = WINDOW - self.outbox_inflight;
            let rows = match self.events.store().pending(self.cursor, room).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox");
                    return;
                }
            };
            if rows.is_empty() {
                return;
            }
            for row in rows {
                let topic = format!("{}/event/{}", self.root, row.event_type);
                if !self.publish(topic, false, row.payload, Some(row.seq)) {
                    return;
                }
                self.cursor = row.seq;
                self.outbox_inflight += 1;
            }
        }
    }

    fn on_disconnect(&mut self, e: &rumqttc::ConnectionError) {
        let first_failure = self.status_tx.borrow().last_error.is_none();
        if self.connected {
            tracing::warn!(error = %e, "broker connection lost; events stay in the store");
        } else if first_failure {
            tracing::warn!(host = %self.opts.host, port = self.opts.port, error = %e, "broker not reachable; events stay in the store");
        } else {
            tracing::debug!(error = %e, "broker still not reachable");
        }
        self.connected = false;
        // rumqttc would retransmit its in-memory copies; the store is the source of truth,
        // and the pump resends from the oldest unacknowledged row after the reconnect.
        self.transport.clear_pending();
        self.requested.clear();
        self.inflight.clear();
        self.outbox_inflight = 0;
        self.cursor = 0;
        self.status_tx.send_modify(|s| {
            s.connected = false;
            s.last_error = Some(e.to_string());
        });
    }

    async fn on_connack(&mut self) {
        self.connected = true;
        self.requested.clear();
        self.inflight.clear();
        self.outbox_inflight = 0;
        self.cursor = 0;
        self.status_tx.send_modify(|s| {
            s.connected = true;
            s.connects += 1;
            s.last_error = None;
        });
        tracing::info!(host = %self.opts.host, port = self.opts.port, "connected to broker");
        if !self.transport.subscribe(format!("{}/cmd/#", self.root)) {
            tracing::error!("cannot subscribe to commands");
        }
        self.storage = self.events.store().health().borrow().clone();
        self.publish_birth();
        self.dirty.extend(self.latest.keys().copied());
        self.publish_states();
        self.refill().await;
    }

    /// The retained birth: online, version, boot id, and whether the store takes data.
    fn publish_birth(&mut self) {
        let birth = crate::proto::Status::online(
            &self.opts.version,
            &self.opts.boot_id,
            crate::clock::now_rfc3339(),
            self.storage.full,
        )
        .to_bytes();
        let topic = format!("{}/status", self.root);
        self.publish(topic, true, birth, None);
    }

    /// The store went into or out of full mode.
    async fn on_storage(&mut self, health: crate::store::StorageHealth) {
        self.storage = health;
        if !self.connected {
            return;
        }
        self.publish_birth();
        // The store's own alarm was just committed.
        self.refill().await;
    }

    async fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Incoming(Packet::ConnAck(_)) => self.on_connack().await,
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(Some(seq)) = self.requested.pop_front() {
                    self.inflight.insert(pkid, seq);
                }
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Some(seq) = self.inflight.remove(&ack.pkid) {
                    // From now on the row is never sent again, even if its delete fails.
                    self.events.store().mark_acked(seq);
                    self.outbox_inflight = self.outbox_inflight.saturating_sub(1);
                    self.status_tx.send_modify(|s| s.acked += 1);
                    let _ = self.acked_tx.send(seq);
                    self.refill().await;
                }
            }
            Event::Incoming(Packet::Publish(p)) => {
                if self.commands_tx.send(p).is_err() {
                    tracing::error!("the command worker has stopped; command left unacknowledged");
                }
            }
            _ => {
                if self.connected && !self.dirty.is_empty() {
                    self.publish_states();
                }
            }
        }
        self.flush_backlog();
    }

    /// The worker committed (or refused) a command: now the broker may forget it.
    fn on_handled(&mut self, h: Handled) {
        let Handled {
            mut publish,
            outcome,
        } = h;
        publish.payload.clear();
        self.hold(Held::Ack(publish));
        let Some(Outcome { reply, followup }) = outcome else {
            return;
        };
        self.hold(Held::Publish {
            topic: format!("{}/reply/{}", self.root, reply.topic_level()),
            payload: reply.to_bytes(),
        });
        if let Some(Followup::Recording { call_id, chunks }) = followup {
            for (i, c) in chunks.into_iter().enumerate() {
                self.hold(Held::Publish {
                    topic: format!("{}/recording/{call_id}/{i}", self.root),
                    payload: c.to_string().into_bytes(),
                });
            }
        }
    }

    async fn run(
        &mut self,
        mut snap_rx: mpsc::Receiver<ModemSnapshot>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let wake = self.events.wake();
        let mut health = self.events.store().health();
        let mut health_open = true;
        let mut backoff = Backoff::new(self.opts.max_backoff);
        let mut netwatch = match crate::netwatch::NetWatch::open() {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::debug!(error = %e, "no network change notifications; backoff only");
                None
            }
        };
        // Without modems every sender is gone at once: a closed channel is always ready, which
        // would spin this loop and cancel `poll()` (and with it a TLS handshake) over and over.
        let mut snaps_open = true;
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                ev = self.transport.poll() => match ev {
                    Ok(ev) => {
                        if matches!(ev, Event::Incoming(Packet::ConnAck(_))) {
                            backoff.reset();
                            // Pictures that changed while offline: only each slot's latest
                            // is published (retained state is a picture, not a history).
                            while let Ok(s) = snap_rx.try_recv() {
                                self.latest.insert(s.slot, s);
                            }
                        }
                        self.on_event(ev).await;
                    }
                    Err(e) => {
                        self.on_disconnect(&e);
                        let wait = backoff.wait();
                        // Some(true): the network changed; Some(false): the watch ended.
                        let woken = {
                            let net_changed = async {
                                match &netwatch {
                                    Some(w) => w.changed().await,
                                    None => std::future::pending().await,
                                }
                            };
                            tokio::pin!(net_changed);
                            let sleep = tokio::time::sleep(wait);
                            tokio::pin!(sleep);
                            loop {
                                tokio::select! {
                                    _ = &mut sleep => break None,
                                    r = &mut net_changed => {
                                        if let Err(e) = &r {
                                            tracing::debug!(error = %e, "network watch ended");
                                        }
                                        break Some(r.is_ok());
                                    }
                                    _ = self.pulse.tick() => {}
                                    _ = shutdown.changed() => {
                                        self.goodbye().await;
                                        return;
                                    }
                                }
                            }
                        };
                        match woken {
                            Some(true) => {
                                tracing::debug!("network changed; trying the broker now");
                                backoff.reset();
                            }
                            Some(false) => netwatch = None,
                            None => {}
                        }
                    }
                },
                Some(h) = self.handled_rx.recv() => self.on_handled(h),
                _ = self.pulse.tick() => {}
                _ = wake.notified(), if self.connected => self.refill().await,
                // Only while connected, like the pictures below; on_connack reads it afresh.
                r = health.changed(), if health_open && self.connected => {
                    if r.is_ok() {
                        let h = health.borrow_and_update().clone();
                        self.on_storage(h).await;
                    } else {
                        health_open = false;
                    }
                }
                // Not while connecting: waking here would cancel `poll()` mid-handshake (a
                // slow TLS handshake over a cellular link must not be restarted by every
                // signal change). Pictures wait in the channel and are sent after ConnAck.
                s = snap_rx.recv(), if snaps_open && self.connected => {
                    if let Some(s) = s {
                        self.dirty.insert(s.slot);
                        self.latest.insert(s.slot, s);
                        // Changes that queued meanwhile: the latest of each slot only.
                        while let Ok(s) = snap_rx.try_recv() {
                            self.dirty.insert(s.slot);
                            self.latest.insert(s.slot, s);
                        }
                        if self.connected {
                            self.publish_states();
                        }
                    } else {
                        snaps_open = false;
                    }
                }
            }
        }
        self.goodbye().await;
    }

    /// Says goodbye (retained offline), then lets the event loop deliver it.
    async fn goodbye(&mut self) {
        if self.connected {
            let offline = crate::proto::Status::offline(&self.opts.boot_id).to_bytes();
            let topic = format!("{}/status", self.root);
            if self.publish(topic, true, offline, None) {
                // The goodbye is the last publish queued: wait for the ack of the last one sent.
                let transport = &mut self.transport;
                let flush = async {
                    let mut last = None;
                    loop {
                        match transport.poll().await {
                            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => last = Some(pkid),
                            Ok(Event::Incoming(Packet::PubAck(ack))) if Some(ack.pkid) == last => {
                                break;
                            }
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(2), flush).await;
            }
            self.transport.disconnect();
            let transport = &mut self.transport;
            let _ = tokio::time::timeout(Duration::from_millis(500), async {
                while transport.poll().await.is_ok() {}
            })
            .await;
        }
        self.status_tx.send_modify(|s| s.connected = false);
    }
}

/// Runs commands one at a time in arrival order (PUBACKs go back in the same order, as MQTT
/// asks), so the uplink's event loop never waits on one.
async fn command_worker(
    registry: Registry,
    root: String,
    max_bytes: usize,
    mut rx: mpsc::UnboundedReceiver<Publish>,
    tx: mpsc::UnboundedSender<Handled>,
) {
    let prefix = format!("{root}/cmd/");
    while let Some(p) = rx.recv().await {
        let verb = p.topic.strip_prefix(&prefix).unwrap_or("").to_string();
        let size = p.payload.len();
        let outcome = if size > max_bytes {
            too_large(&registry, &verb, &p.payload, max_bytes).await
        } else {
            Some(registry.submit(&verb, &p.payload, Origin::Mqtt).await)
        };
        let mut publish = p;
        publish.payload.clear();
        if size > BIG_COMMAND {
            commands::registry::release_free_memory();
        }
        if tx.send(Handled { publish, outcome }).is_err() {
            return;
        }
    }
}

/// A command over `max_command_bytes`: refused `too-large` on its request id when one can
/// be read (the payload is scanned, not built), else dropped with an alarm.
async fn too_large(
    registry: &Registry,
    verb: &str,
    payload: &[u8],
    limit: usize,
) -> Option<Outcome> {
    let message = format!(
        "the command is {} bytes; this gateway accepts at most {limit} ([mqtt] max_command_mb)",
        payload.len()
    );
    match commands::request_id_of(payload) {
        Ok(rid) => {
            tracing::warn!(%verb, request_id = %rid, size = payload.len(), "command too large; refused");
            Some(Outcome {
                reply: Reply::refused(Some(&rid), "too-large", &message),
                followup: None,
            })
        }
        Err(_) => {
            tracing::warn!(%verb, size = payload.len(), "command too large and without a request_id; dropped");
            let text = format!("cmd/{verb} dropped: {message}, and it has no readable request_id");
            registry
                .env()
                .events
                .alarm("command-too-large", &text, None)
                .await;
            None
        }
    }
}

/// Largest packet MQTT 3.1.1 can carry (remaining length of 268,435,455 bytes).
const MQTT_MAX_PACKET: usize = 268_435_455;
/// Commands bigger than this hand their memory back to the system once handled.
const BIG_COMMAND: usize = 1024 * 1024;

/// Deletes acknowledged rows in batches (one transaction for many acks).
async fn delete_acked(events: Events, mut rx: mpsc::UnboundedReceiver<u64>) {
    let mut batch = Vec::new();
    while let Some(seq) = rx.recv().await {
        batch.push(seq);
        while batch.len() < 2048 {
            match rx.try_recv() {
                Ok(s) => batch.push(s),
                Err(_) => break,
            }
        }
        if let Err(e) = events.store().delete(std::mem::take(&mut batch)).await {
            // Not lost and not sent again: the store keeps them as acknowledged and retries
            // the delete itself (also after a restart).
            tracing::debug!(error = %e, "acknowledged rows not deleted yet; the store retries");
        }
    }
}
