//! Starting and stopping the whole agent: channels, uplink, console.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use tokio::sync::{mpsc, watch};

use crate::actor::Liveness;
use crate::channel::{self, ChannelContext, ChannelHandle, ChannelTimings, PortClaims};
use crate::config::{Config, MqttConfig};
use crate::console::{self, AgentView, ConsoleContext};
use crate::events::Events;
use crate::sms_out::{self, SlotHandle};
use crate::state::ModemEvent;
use crate::store::{EventClass, Store, StoreOptions};
use crate::uplink::{self, UplinkBase};

/// Restarts the uplink (the console holds one); defined with the uplink.
pub use crate::uplink::UplinkControl;

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The data directory cannot be created.
    #[error("cannot create data_dir {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The configuration is not usable.
    #[error("configuration: {0}")]
    Config(String),
    /// The store cannot be opened.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// Knobs of a run that are not configuration (version stamp, test timings).
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Version line for the birth message and console.
    pub version: String,
    /// Channel timings.
    pub timings: ChannelTimings,
    /// Serve the console as configured (off for embedding).
    pub console: bool,
}

/// A running agent.
pub struct Agent {
    view: AgentView,
    liveness: Liveness,
    events: Events,
    channels: Vec<ChannelHandle>,
    uplink: tokio::task::JoinHandle<()>,
    console: Option<tokio::task::JoinHandle<()>>,
    /// The status LEDs' task (the system LED goes dark when it ends).
    leds: Option<tokio::task::JoinHandle<()>>,
}

impl Agent {
    /// Starts everything on the current runtime; stops when `shutdown` turns true.
    pub fn start(
        cfg: Config,
        opts: AgentOptions,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Agent, AgentError> {
        Self::start_with_file(cfg, None, opts, shutdown)
    }

    /// Like [`Agent::start`], naming the file `cfg` was read from: the console's
    /// `config save` writes it, and a first password chosen at the console is stored in it.
    pub fn start_with_file(
        cfg: Config,
        config_path: Option<std::path::PathBuf>,
        opts: AgentOptions,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Agent, AgentError> {
        // Private (0700/0600) whatever the umask; a data_dir left 0644 by an older version is
        // tightened before anything is opened.
        let data_dir = &cfg.gateway.data_dir;
        crate::private::create_dir(data_dir)
            .and_then(|()| crate::private::create_dir(&crate::voice::recordings::dir(data_dir)))
            .map_err(|source| AgentError::DataDir {
                path: data_dir.display().to_string(),
                source,
            })?;
        let tightened = crate::private::tighten_tree(data_dir);
        if tightened > 0 {
            tracing::info!(data_dir = %data_dir.display(), files = tightened, "made files under data_dir private (0600/0700)");
        }
        let boot_id = uuid::Uuid::new_v4().to_string();
        let (voice_tx, voice_rx) = mpsc::channel::<crate::voice::VoiceCommand>(64);
        let (call_urc_tx, call_urc_rx) = mpsc::channel::<(u16, gsmgw_drivers::at::Urc)>(256);
        let liveness = Liveness::new();
        // The channels' queues exist before the channels, so the uplink's commands reach them.
        let mut channel_queues = std::collections::BTreeMap::new();
        let mut channel_senders = Vec::new();
        for m in cfg.modems.iter().filter(|m| m.enabled) {
            let (req_tx, req_rx) = tokio::sync::mpsc::channel(16);
            channel_queues.insert(m.slot, req_rx);
            channel_senders.push((m.slot, req_tx));
        }
        let channel_senders = crate::channel::ChannelSenders::new(channel_senders);
        let uplink_base = UplinkBase {
            gateway_id: cfg.gateway.id.clone(),
            version: opts.version.clone(),
            boot_id: boot_id.clone(),
            commands: crate::commands::Context {
                slots: cfg.modems.iter().map(|m| m.slot).collect(),
                groups: cfg
                    .modems
                    .iter()
                    .filter(|m| m.enabled)
                    .filter_map(|m| m.group.clone())
                    .collect(),
                bridge_domains: cfg.voice.bridge_domains.clone(),
                internal: false,
            },
            voice: Some(voice_tx),
            data_dir: cfg.gateway.data_dir.clone(),
            channels: channel_senders.clone(),
        };
        // Unreadable or invalid TLS files stop the start with a configuration error.
        let first_uplink = uplink_base.options(&cfg.mqtt).map_err(AgentError::Config)?;
        let days = |d: u32| Duration::from_secs(u64::from(d.max(1)) * 24 * 3600);
        let store_opts = StoreOptions {
            job_retention: days(cfg.gateway.job_retention_days),
            receipt_retention: days(cfg.gateway.sms_seen_retention_days),
            ..StoreOptions::in_dir(&cfg.gateway.data_dir)
        };
        let (store, store_alarms) = Store::open(store_opts, &cfg.gateway.id)?;
        liveness.track(store.heartbeat());
        let events = Events::new(store, Arc::new(Notify::new()));
        for alarm in store_alarms {
            let ev = events.clone();
            tokio::spawn(async move {
                ev.alarm("store-corrupt", &alarm.to_string(), None).await;
            });
        }
        tracing::info!(gateway = %cfg.gateway.id, %boot_id, version = %opts.version, "agent starting");

        let board = match &cfg.gateway.board_profile {
            Some(p) => Some(
                gsmgw_board::BoardProfile::load(p)
                    .map_err(|e| AgentError::Config(e.to_string()))?,
            ),
            None => None,
        };
        let mut timings = opts.timings.clone();
        timings.health_interval =
            Duration::from_secs(u64::from(cfg.gateway.health_interval_secs.max(1)));
        let claims = PortClaims::default();
        let (event_tx, mut event_rx) = tokio::sync::mpsc::channel::<ModemEvent>(1024);
        {
            // Modem events are committed to the outbox (telemetry: the retained state topic
            // always carries the latest picture, so these may go first when the store is full).
            let ev = events.clone();
            tokio::spawn(async move {
                while let Some(e) = event_rx.recv().await {
                    let body = serde_json::to_value(&e).unwrap_or_default();
                    if let Err(err) = ev
                        .emit(crate::proto::EventType::Modem, EventClass::Telemetry, body)
                        .await
                    {
                        tracing::warn!(slot = e.slot, error = %err, "modem event not stored");
                    }
                }
            });
        }
        let mut channels: Vec<ChannelHandle> = Vec::new();
        let mut senders = Vec::new();
        for m in cfg.modems.iter().filter(|m| m.enabled) {
            let (Some(req_tx), Some(req_rx)) = (
                channel_senders.get(m.slot).cloned(),
                channel_queues.remove(&m.slot),
            ) else {
                continue;
            };
            let power = match &board {
                Some(b) => b
                    .power_for(m.slot)
                    .map_err(|e| AgentError::Config(e.to_string()))?,
                None => None,
            };
            channels.push(channel::spawn(
                m.clone(),
                ChannelContext {
                    timings: timings.clone(),
                    port_scan: cfg.gateway.port_scan.clone(),
                    claims: claims.clone(),
                    power,
                    events: event_tx.clone(),
                    sink: events.clone(),
                    requests: req_rx,
                    calls: Some(call_urc_tx.clone()),
                    shutdown: shutdown.clone(),
                    heartbeat: liveness.register(&format!("channel {}", m.slot), true),
                },
            ));
            senders.push(req_tx);
        }
        let snapshots: Vec<_> = channels.iter().map(|c| c.snapshot.clone()).collect();
        let console_slots: Vec<_> = channels
            .iter()
            .zip(&senders)
            .map(|(c, s)| (c.slot, s.clone()))
            .collect();
        let voice_slots: Vec<crate::voice::VoiceSlot> = channels
            .iter()
            .zip(&senders)
            .map(|(c, s)| {
                let m = cfg.modems.iter().find(|m| m.slot == c.slot);
                crate::voice::VoiceSlot {
                    slot: c.slot,
                    snapshot: c.snapshot.clone(),
                    requests: s.clone(),
                    voice_port: m.and_then(|m| m.voice_port.clone()),
                    group: m.and_then(|m| m.group.clone()),
                }
            })
            .collect();
        drop(call_urc_tx);
        let (voice_view, sip_status) = crate::voice::VoiceView::new();
        let env = |voice| crate::commands::Env {
            events: events.clone(),
            version: opts.version.clone(),
            data_dir: cfg.gateway.data_dir.clone(),
            voice,
            ctx: uplink_base.commands.clone(),
            channels: channel_senders.clone(),
        };
        // One registry for the console, one for the voice manager's own commands (it does
        // not send to itself).
        let registry = crate::commands::Registry::new(env(uplink_base.voice.clone()));
        let voice_registry = crate::commands::Registry::new(env(None));
        tokio::spawn(crate::voice::run(crate::voice::VoiceContext {
            registry: voice_registry,
            heartbeat: liveness.register("voice", true),
            config: cfg.clone(),
            events: events.clone(),
            slots: voice_slots,
            urcs: call_urc_rx,
            commands: voice_rx,
            shutdown: shutdown.clone(),
            view: voice_view.clone(),
            sip_status,
        }));
        let slot_handles: Vec<SlotHandle> = channels
            .iter()
            .zip(senders)
            .map(|(c, requests)| SlotHandle {
                slot: c.slot,
                snapshot: c.snapshot.clone(),
                requests,
            })
            .collect();
        let policy = sms_out::SendPolicy {
            per_minute: cfg.sms.per_minute,
            per_hour: cfg.sms.per_hour,
            per_day: cfg.sms.per_day,
            quiet_hours: cfg
                .sms
                .quiet_hours
                .as_deref()
                .and_then(|q| crate::quiet::QuietHours::parse(q).ok()),
            on_unknown: cfg.sms.on_unknown.clone(),
            cooldown: Duration::from_secs(u64::from(cfg.sms.cooldown_secs)),
            routes: cfg
                .sms
                .route
                .iter()
                .map(|r| (r.prefix.clone(), r.group.clone()))
                .collect(),
            groups: cfg
                .modems
                .iter()
                .filter_map(|m| m.group.clone().map(|g| (m.slot, g)))
                .collect(),
        };
        tokio::spawn(sms_out::run_with(
            events.clone(),
            slot_handles,
            policy,
            shutdown.clone(),
            liveness.register("sender", true),
        ));
        tokio::spawn(crate::campaign::progress_loop(
            events.clone(),
            shutdown.clone(),
        ));
        {
            let ev = events.clone();
            let timeout = Duration::from_secs(u64::from(cfg.sms.reassembly_timeout_secs));
            let every = (timeout / 2).clamp(Duration::from_millis(500), Duration::from_secs(60));
            let mut sd = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = sd.changed() => return,
                    }
                    if let Err(e) = crate::sms_in::flush_stale(&ev, timeout).await {
                        tracing::error!(error = %e, "cannot deliver stale multipart messages");
                    }
                }
            });
        }
        let (uplink, uplink_status, uplink_control) = uplink::supervise(
            uplink_base,
            first_uplink,
            snapshots.clone(),
            events.clone(),
            shutdown.clone(),
            liveness.register("uplink", true),
        );
        let view = AgentView {
            gateway_id: cfg.gateway.id.clone(),
            version: opts.version.clone(),
            started: Instant::now(),
            modems: snapshots,
            uplink: uplink_status,
            broker: broker_name(&cfg.mqtt),
            voice: Some(voice_view),
        };
        let leds = board
            .as_ref()
            .and_then(|b| crate::leds::spawn(&b.led, &b.gpiochip, view.clone(), shutdown.clone()));
        let console = if opts.console {
            console::spawn(
                ConsoleContext {
                    view: view.clone(),
                    events: events.clone(),
                    slots: console_slots,
                    config: cfg.clone(),
                    config_path,
                    uplink: uplink_control,
                    commands: registry,
                    logs: console::log_ring(),
                },
                shutdown.clone(),
            )
        } else {
            None
        };
        Ok(Agent {
            view,
            liveness,
            events: events.clone(),
            channels,
            uplink,
            console,
            leds,
        })
    }

    /// The store-backed event sink (for embedding: benchmarks, tests of one module).
    pub fn events(&self) -> Events {
        self.events.clone()
    }

    /// Every task's heartbeat (the watchdog feeds systemd only while the essential ones are
    /// fresh).
    pub fn liveness(&self) -> Liveness {
        self.liveness.clone()
    }

    /// The read-only view (status, modems).
    pub fn view(&self) -> AgentView {
        self.view.clone()
    }

    /// Waits until every task has stopped after shutdown (bounded).
    pub async fn wait(self) {
        let all = async {
            for c in self.channels {
                let _ = c.task.await;
            }
            let _ = self.uplink.await;
            if let Some(l) = self.leds {
                let _ = l.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(5), all)
            .await
            .is_err()
        {
            tracing::warn!("some tasks did not stop within 5 s");
        }
        if let Some(c) = self.console {
            c.abort();
        }
    }
}

/// `host:port` of the broker, for the console.
fn broker_name(mqtt: &MqttConfig) -> String {
    match mqtt.endpoint() {
        Ok(e) => format!("{}:{}", e.host, e.port),
        Err(_) => mqtt.url.clone(),
    }
}

#[cfg(test)]
mod tests {
    //! The whole agent in-process, without modems or a broker: its tasks start, beat, stop.

    use super::*;

    fn config(dir: &std::path::Path) -> Config {
        // A loopback port nothing listens on: the uplink keeps trying, which is not a wedge.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let text = format!(
            "[gateway]\nid = \"gw-rt\"\ndata_dir = {:?}\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\n",
            dir.display().to_string()
        );
        crate::config::parse_str(&text, "gw.toml").unwrap()
    }

    #[tokio::test]
    async fn every_essential_task_beats_and_everything_stops_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let agent = Agent::start(
            config(dir.path()),
            AgentOptions {
                version: "test".into(),
                timings: ChannelTimings::default(),
                console: false,
            },
            stop_rx,
        )
        .unwrap();
        let live = agent.liveness();
        let names: Vec<String> = live
            .snapshot()
            .iter()
            .filter(|h| h.essential())
            .map(|h| h.name().to_string())
            .collect();
        for want in ["uplink", "sender", "voice", "store writer"] {
            assert!(
                names.iter().any(|n| n == want),
                "{want} not listed: {names:?}"
            );
        }
        // Each beats on its own while idle (and the broker is away).
        let t = Instant::now();
        while live.snapshot().iter().any(|h| h.beats() < 3) {
            assert!(t.elapsed() < Duration::from_secs(10), "{live:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(live.stale(Duration::from_secs(3)).is_empty(), "{live:?}");
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(6), agent.wait())
            .await
            .expect("the agent stops");
    }
}
