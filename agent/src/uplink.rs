//! The uplink to the central server over MQTT.
//!
//! - Birth and will on `gsmgw/{id}/status` (retained); each slot's picture on
//!   `gsmgw/{id}/modem/{slot}/state` (retained), republished after every reconnect.
//! - The publish pump: outbox rows go out in seq order on `gsmgw/{id}/event/{type}` at QoS 1
//!   with a bounded in-flight window. rumqttc keeps unacked publishes in memory only and reuses
//!   packet ids, so the pump maps packet ids to rows itself, deletes a row only when its PUBACK
//!   has arrived, and after a reconnect starts again from the oldest row not yet acknowledged.
//! - Commands on `gsmgw/{id}/cmd/{verb}` (QoS 1, manual acks): validated, committed as a job,
//!   then acknowledged, then answered on `gsmgw/{id}/reply/{request_id}`.
//!
//! The modems never wait on the broker: events are durable in the store while it is away.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, Publish, QoS};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::commands::{self, INVALID_REPLY};
use crate::events::Events;
use crate::state::ModemSnapshot;
use crate::store::{NewJob, StoreError, Submitted};

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
        let mut up = Uplink::new(opts, events, latest, status_tx);
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

struct Uplink {
    opts: UplinkOptions,
    events: Events,
    root: String,
    client: AsyncClient,
    eventloop: rumqttc::EventLoop,
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
}

impl Uplink {
    fn new(
        opts: UplinkOptions,
        events: Events,
        latest: BTreeMap<u16, ModemSnapshot>,
        status_tx: watch::Sender<UplinkStatus>,
    ) -> Self {
        let root = topic_root(&opts.gateway_id);
        let offline = json!({"online": false, "boot_id": opts.boot_id}).to_string();
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
        let (client, eventloop) = AsyncClient::new(mo, 1024);
        let (acked_tx, acked_rx) = mpsc::unbounded_channel();
        tokio::spawn(delete_acked(events.clone(), acked_rx));
        let dirty = latest.keys().copied().collect();
        Self {
            opts,
            events,
            root,
            client,
            eventloop,
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
        }
    }

    /// Hands a publish to the client and records it for packet-id mapping.
    fn publish(&mut self, topic: String, retain: bool, payload: Vec<u8>, seq: Option<u64>) -> bool {
        match self
            .client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
        {
            Ok(()) => {
                self.requested.push_back(seq);
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "publish not queued");
                false
            }
        }
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
        self.eventloop.pending.clear();
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
        if let Err(e) = self
            .client
            .try_subscribe(format!("{}/cmd/#", self.root), QoS::AtLeastOnce)
        {
            tracing::error!(error = %e, "cannot subscribe to commands");
        }
        self.storage = self.events.store().health().borrow().clone();
        self.publish_birth();
        self.dirty.extend(self.latest.keys().copied());
        self.publish_states();
        self.refill().await;
    }

    /// The retained birth: online, version, boot id, and whether the store takes data.
    fn publish_birth(&mut self) {
        let birth = json!({
            "online": true,
            "version": self.opts.version,
            "boot_id": self.opts.boot_id,
            "ts": crate::clock::now_rfc3339(),
            "storage": if self.storage.full { "full" } else { "ok" },
        })
        .to_string()
        .into_bytes();
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
                ev = self.eventloop.poll() => match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        backoff.reset();
                        self.on_connack().await;
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        if let Some(Some(seq)) = self.requested.pop_front() {
                            self.inflight.insert(pkid, seq);
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        if let Some(seq) = self.inflight.remove(&ack.pkid) {
                            // From now on the row is never sent again, even if its delete fails.
                            self.events.store().mark_acked(seq);
                            self.outbox_inflight = self.outbox_inflight.saturating_sub(1);
                            self.status_tx.send_modify(|s| s.acked += 1);
                            let _ = self.acked_tx.send(seq);
                            self.refill().await;
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => self.on_command(p).await,
                    Ok(_) => {
                        if self.connected && !self.dirty.is_empty() {
                            self.publish_states();
                        }
                    }
                    Err(e) => {
                        self.on_disconnect(&e);
                        let wait = backoff.wait();
                        let net_changed = async {
                            match &netwatch {
                                Some(w) => w.changed().await,
                                None => std::future::pending().await,
                            }
                        };
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            r = net_changed => {
                                if let Err(e) = r {
                                    tracing::debug!(error = %e, "network watch ended");
                                    netwatch = None;
                                } else {
                                    tracing::debug!("network changed; trying the broker now");
                                    backoff.reset();
                                }
                            }
                            _ = shutdown.changed() => break,
                        }
                    }
                },
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

    /// Validates a command, commits its job, acknowledges the message, replies.
    async fn on_command(&mut self, p: Publish) {
        let prefix = format!("{}/cmd/", self.root);
        let verb = p.topic.strip_prefix(&prefix).unwrap_or("").to_string();
        let size = p.payload.len();
        let reply = if size > self.opts.max_command_bytes {
            self.too_large(&verb, &p.payload).await
        } else {
            Some(self.command(&verb, &p.payload).await)
        };
        // Committed (or refused): now the broker may forget the command.
        if let Err(e) = self.client.try_ack(&p) {
            tracing::warn!(error = %e, "command ack not queued");
        }
        drop(p);
        if size > BIG_COMMAND {
            release_free_memory();
        }
        if let Some((rid, body)) = reply {
            let topic = format!("{}/reply/{rid}", self.root);
            self.publish(topic, false, body.to_string().into_bytes(), None);
        }
    }

    /// A command over `max_command_bytes`: refused `too-large` on its request id when one can
    /// be read (the payload is scanned, not built), else dropped with an alarm.
    async fn too_large(&mut self, verb: &str, payload: &[u8]) -> Option<(String, Value)> {
        let limit = self.opts.max_command_bytes;
        let message = format!(
            "the command is {} bytes; this gateway accepts at most {limit} ([mqtt] max_command_mb)",
            payload.len()
        );
        match commands::request_id_of(payload) {
            Ok(rid) => {
                tracing::warn!(%verb, request_id = %rid, size = payload.len(), "command too large; refused");
                Some(refused(&rid, "too-large", &message))
            }
            Err(_) => {
                tracing::warn!(%verb, size = payload.len(), "command too large and without a request_id; dropped");
                let text =
                    format!("cmd/{verb} dropped: {message}, and it has no readable request_id");
                self.events.alarm("command-too-large", &text, None).await;
                None
            }
        }
    }

    /// Validates and runs one command; (reply topic level, reply body).
    async fn command(&mut self, verb: &str, payload: &[u8]) -> (String, Value) {
        let cmd = match commands::parse(verb, payload, &self.opts.commands) {
            Ok(cmd) => cmd,
            Err(rej) => {
                // The reason may quote numbers from the payload: in full at debug only.
                tracing::info!(%verb, code = rej.code, request_id = rej.request_id.as_deref().unwrap_or("-"), "command refused");
                tracing::debug!(%verb, reason = %rej.message, "command refused");
                let rid = rej.request_id.clone();
                return (
                    rid.clone().unwrap_or_else(|| INVALID_REPLY.to_string()),
                    json!({"request_id": rid, "ok": false, "error": {"code": rej.code, "message": rej.message}}),
                );
            }
        };
        let rid = cmd.request_id.clone();
        // A request_id names one command: reused by another verb it is refused, whatever
        // the verb (the earlier command's result is never passed off as this one's).
        match self.events.store().job_by_request(&rid).await {
            Ok(Some(job)) if job.verb != cmd.verb => {
                tracing::info!(%verb, request_id = %rid, earlier = %job.verb, "request_id reused by another verb");
                return refused(
                    &rid,
                    "bad-request-id",
                    &format!(
                        "request_id {rid} was already used by a {} command",
                        job.verb
                    ),
                );
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(request_id = %rid, error = %e, "cannot look up the request_id")
            }
        }
        let outcome = match cmd.verb.as_str() {
            "campaign" => match cmd.campaign {
                Some(plan) => self.campaign(&rid, plan).await,
                None => Err(("internal".into(), "campaign without a plan".into())),
            },
            "dial" | "hangup" => self.voice_command(&cmd).await,
            "recording-fetch" => self.recording_fetch(&cmd.payload).await,
            "campaign-control" => self.campaign_control(&cmd).await,
            _ => self.submit(cmd).await,
        };
        match outcome {
            Ok(result) => (
                rid.clone(),
                json!({"request_id": rid, "ok": true, "result": result}),
            ),
            Err((code, message)) => refused(&rid, &code, &message),
        }
    }

    /// `cmd/campaign`: stores the plan (one job per recipient).
    async fn campaign(
        &mut self,
        rid: &str,
        plan: commands::CampaignPlan,
    ) -> Result<Value, (String, String)> {
        let recipients = plan.recipients.len();
        let submitted = crate::campaign::submit(&self.events, rid, plan).await;
        release_free_memory();
        match submitted {
            Ok(result) => {
                tracing::info!(request_id = %rid, recipients, "campaign accepted");
                Ok(result)
            }
            Err(e) => Err(self.store_refusal(rid, e, "campaign").await),
        }
    }

    /// `cmd/campaign-control`: applied, then recorded for idempotency (repeating a control
    /// is harmless anyway).
    async fn campaign_control(
        &mut self,
        cmd: &commands::ValidCommand,
    ) -> Result<Value, (String, String)> {
        let obj = cmd.payload.as_object().cloned().unwrap_or_default();
        let result = crate::campaign::control(&self.events, &obj)
            .await
            .map_err(|(c, m)| (c.to_string(), m))?;
        let job = NewJob {
            request_id: cmd.request_id.clone(),
            verb: cmd.verb.clone(),
            payload: cmd.payload.clone(),
            slot: None,
            state: "done".into(),
            outcome: Some(result.clone()),
            event: None,
        };
        Ok(match self.events.store().submit_job(job).await {
            Ok(Submitted::Existing {
                outcome: Some(o), ..
            }) => o,
            _ => result,
        })
    }

    /// `cmd/ping`, `cmd/sms-send`: committed as a job (a repeated request_id answered from it).
    async fn submit(&mut self, cmd: commands::ValidCommand) -> Result<Value, (String, String)> {
        let (state, outcome) = match cmd.verb.as_str() {
            "ping" => (
                "done",
                Some(
                    json!({"pong": true, "version": self.opts.version, "ts": crate::clock::now_rfc3339()}),
                ),
            ),
            _ => ("queued", None),
        };
        let rid = cmd.request_id.clone();
        let job = NewJob {
            request_id: cmd.request_id,
            verb: cmd.verb.clone(),
            payload: cmd.payload,
            slot: cmd.slot,
            state: state.to_string(),
            outcome: outcome.clone(),
            event: None,
        };
        match self.events.store().submit_job(job).await {
            Ok(Submitted::New { job_id, .. }) => {
                tracing::info!(verb = %cmd.verb, request_id = %rid, job_id, "command accepted");
                self.events.committed();
                if state == "queued" {
                    self.events.job_queued();
                }
                let mut result = json!({"job_id": job_id, "state": state});
                merge(&mut result, outcome.as_ref());
                Ok(result)
            }
            Ok(Submitted::Existing { verb, .. }) if verb != cmd.verb => Err((
                "bad-request-id".into(),
                format!("request_id {rid} was already used by a {verb} command"),
            )),
            Ok(Submitted::Existing {
                job_id,
                state,
                outcome,
                ..
            }) => {
                tracing::info!(request_id = %rid, job_id, "repeated request_id answered from the store");
                let mut result = json!({"job_id": job_id, "state": state, "duplicate": true});
                merge(&mut result, outcome.as_ref());
                Ok(result)
            }
            Err(e) => Err(self.store_refusal(&rid, e, "command").await),
        }
    }

    /// The reply for a store that refused a command (and the alarm it deserves).
    async fn store_refusal(&mut self, rid: &str, e: StoreError, what: &str) -> (String, String) {
        match e {
            StoreError::Full { rows, bytes } => {
                let msg = format!(
                    "the gateway's store is full ({rows} events, {bytes} bytes waiting); {what} refused"
                );
                self.events.alarm("storage-full", &msg, None).await;
                ("storage-full".into(), msg)
            }
            StoreError::DiskFull => {
                let msg = format!("the gateway's data disk is full; {what} refused");
                tracing::warn!(request_id = %rid, "{what} refused: disk full");
                self.events.alarm("disk-full", &msg, None).await;
                ("disk-full".into(), msg)
            }
            e if what == "campaign" => ("campaign-refused".into(), e.to_string()),
            e => {
                tracing::error!(request_id = %rid, error = %e, "command not stored");
                ("internal".into(), e.to_string())
            }
        }
    }

    /// `cmd/dial`, `cmd/hangup`: handed to the voice manager; a repeated request_id is answered
    /// from the store (a call is never dialled twice).
    async fn voice_command(
        &mut self,
        cmd: &commands::ValidCommand,
    ) -> Result<Value, (String, String)> {
        let store = self.events.store().clone();
        if let Ok(Some(job)) = store.job_by_request(&cmd.request_id).await {
            if job.verb != cmd.verb {
                return Err((
                    "bad-request-id".into(),
                    format!(
                        "request_id {} was already used by a {} command",
                        cmd.request_id, job.verb
                    ),
                ));
            }
            let mut r = json!({"state": job.state, "duplicate": true});
            merge(&mut r, job.outcome.as_ref());
            return Ok(r);
        }
        let Some(voice) = self.opts.voice.clone() else {
            return Err(("voice-unavailable".into(), "voice is not running".into()));
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        voice
            .send(crate::voice::VoiceCommand {
                verb: cmd.verb.clone(),
                payload: cmd.payload.clone(),
                reply: tx,
            })
            .await
            .map_err(|_| {
                (
                    "voice-unavailable".to_string(),
                    "voice manager stopped".to_string(),
                )
            })?;
        let result = match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(r)) => r,
            _ => Err((
                "voice-unavailable".into(),
                "the voice manager did not answer".into(),
            )),
        }?;
        let job = NewJob {
            request_id: cmd.request_id.clone(),
            verb: cmd.verb.clone(),
            payload: cmd.payload.clone(),
            slot: cmd.slot,
            state: "done".into(),
            outcome: Some(result.clone()),
            event: None,
        };
        if let Err(e) = store.submit_job(job).await {
            tracing::warn!(request_id = %cmd.request_id, error = %e, "voice command not recorded");
        }
        Ok(result)
    }

    /// `cmd/recording-fetch`: publishes the call's WAV in numbered chunks on
    /// `…/recording/{call_id}/{n}` (QoS 1), the last one with the file's SHA-256.
    async fn recording_fetch(&mut self, payload: &Value) -> Result<Value, (String, String)> {
        let call_id = payload.get("call_id").and_then(Value::as_str).unwrap_or("");
        let path = crate::voice::recordings::path_for(&self.opts.data_dir, call_id);
        let data = tokio::fs::read(&path).await.map_err(|e| {
            (
                "no-recording".to_string(),
                format!("no recording for call {call_id}: {e}"),
            )
        })?;
        let chunks = crate::voice::recordings::chunks(call_id, &data);
        let n = chunks.len();
        let sha = crate::voice::recordings::sha256_hex(&data);
        let client = self.client.clone();
        let root = self.root.clone();
        let call = call_id.to_string();
        tokio::spawn(async move {
            for (i, c) in chunks.into_iter().enumerate() {
                let topic = format!("{root}/recording/{call}/{i}");
                if let Err(e) = client
                    .publish(topic, QoS::AtLeastOnce, false, c.to_string().into_bytes())
                    .await
                {
                    tracing::warn!(call = %call, chunk = i, error = %e, "recording chunk not published");
                    return;
                }
            }
        });
        Ok(json!({"call_id": call_id, "chunks": n, "size": data.len(), "sha256": sha}))
    }

    /// Says goodbye (retained offline), then lets the event loop deliver it.
    async fn goodbye(&mut self) {
        if self.connected {
            let offline = json!({"online": false, "boot_id": self.opts.boot_id})
                .to_string()
                .into_bytes();
            let topic = format!("{}/status", self.root);
            if self.publish(topic, true, offline, None) {
                // The goodbye is the last publish queued: wait for the ack of the last one sent.
                let eventloop = &mut self.eventloop;
                let flush = async {
                    let mut last = None;
                    loop {
                        match eventloop.poll().await {
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
            let _ = self.client.try_disconnect();
            let eventloop = &mut self.eventloop;
            let _ = tokio::time::timeout(Duration::from_millis(500), async {
                while eventloop.poll().await.is_ok() {}
            })
            .await;
        }
        self.status_tx.send_modify(|s| s.connected = false);
    }
}

/// Largest packet MQTT 3.1.1 can carry (remaining length of 268,435,455 bytes).
const MQTT_MAX_PACKET: usize = 268_435_455;
/// Commands bigger than this hand their memory back to the system once handled.
const BIG_COMMAND: usize = 1024 * 1024;

/// A refusal reply: (reply topic level, body).
fn refused(rid: &str, code: &str, message: &str) -> (String, Value) {
    (
        rid.to_string(),
        json!({"request_id": rid, "ok": false, "error": {"code": code, "message": message}}),
    )
}

fn merge(into: &mut Value, from: Option<&Value>) {
    if let (Some(obj), Some(Value::Object(extra))) = (into.as_object_mut(), from) {
        for (k, v) in extra {
            obj.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

/// Returns freed heap memory to the system (glibc keeps it otherwise).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists; it has no preconditions.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(10));
        let waits: Vec<Duration> = (0..12).map(|_| b.wait()).collect();
        assert!(waits[0] <= Duration::from_millis(500), "{waits:?}");
        assert!(
            waits.iter().all(|w| *w <= Duration::from_secs(10)),
            "{waits:?}"
        );
        assert!(
            waits[8..].iter().all(|w| *w >= Duration::from_secs(5)),
            "{waits:?}"
        );
        b.reset();
        assert!(b.wait() <= Duration::from_millis(500));
    }
}
