//! Starting and stopping the whole agent: channels, uplink, console.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use tokio::sync::watch;

use crate::channel::{self, ChannelContext, ChannelHandle, ChannelTimings, PortClaims};
use crate::config::Config;
use crate::console::{self, AgentView};
use crate::events::Events;
use crate::sms_out::{self, SlotHandle};
use crate::state::ModemEvent;
use crate::store::{EventClass, Store, StoreOptions};
use crate::uplink::{self, UplinkOptions};

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
    channels: Vec<ChannelHandle>,
    uplink: tokio::task::JoinHandle<()>,
    console: Option<tokio::task::JoinHandle<()>>,
}

impl Agent {
    /// Starts everything on the current runtime; stops when `shutdown` turns true.
    pub fn start(
        cfg: Config,
        opts: AgentOptions,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Agent, AgentError> {
        std::fs::create_dir_all(&cfg.gateway.data_dir).map_err(|source| AgentError::DataDir {
            path: cfg.gateway.data_dir.display().to_string(),
            source,
        })?;
        let endpoint = cfg
            .mqtt
            .endpoint()
            .map_err(|e| AgentError::Config(e.to_string()))?;
        if endpoint.tls {
            return Err(AgentError::Config(
                "mqtts:// (TLS) is not supported by this build yet; use mqtt://".into(),
            ));
        }
        let (store, store_alarms) =
            Store::open(StoreOptions::in_dir(&cfg.gateway.data_dir), &cfg.gateway.id)?;
        let events = Events::new(store, Arc::new(Notify::new()));
        for alarm in store_alarms {
            let ev = events.clone();
            tokio::spawn(async move {
                ev.alarm("store-corrupt", &alarm.to_string(), None).await;
            });
        }
        let boot_id = uuid::Uuid::new_v4().to_string();
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
                    if let Err(err) = ev.emit("modem", EventClass::Telemetry, body).await {
                        tracing::warn!(slot = e.slot, error = %err, "modem event not stored");
                    }
                }
            });
        }
        let mut channels: Vec<ChannelHandle> = Vec::new();
        let mut senders = Vec::new();
        for m in cfg.modems.iter().filter(|m| m.enabled) {
            let (req_tx, req_rx) = tokio::sync::mpsc::channel(16);
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
                    shutdown: shutdown.clone(),
                },
            ));
            senders.push(req_tx);
        }
        let snapshots: Vec<_> = channels.iter().map(|c| c.snapshot.clone()).collect();
        let slot_handles: Vec<SlotHandle> = channels
            .iter()
            .zip(senders)
            .map(|(c, requests)| SlotHandle {
                slot: c.slot,
                snapshot: c.snapshot.clone(),
                requests,
            })
            .collect();
        tokio::spawn(sms_out::run(events.clone(), slot_handles, shutdown.clone()));
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
        let (uplink, uplink_status) = uplink::spawn(
            UplinkOptions {
                gateway_id: cfg.gateway.id.clone(),
                host: endpoint.host.clone(),
                port: endpoint.port,
                username: cfg.mqtt.username.clone(),
                password: cfg.mqtt.password.clone(),
                keep_alive: Duration::from_secs(u64::from(cfg.mqtt.keep_alive_secs)),
                version: opts.version.clone(),
                boot_id,
                max_backoff: Duration::from_secs(30),
                slots: cfg.modems.iter().map(|m| m.slot).collect(),
            },
            snapshots.clone(),
            events.clone(),
            shutdown.clone(),
        );
        let view = AgentView {
            gateway_id: cfg.gateway.id.clone(),
            version: opts.version.clone(),
            started: Instant::now(),
            modems: snapshots,
            uplink: uplink_status,
            broker: format!("{}:{}", endpoint.host, endpoint.port),
        };
        let console = if opts.console {
            match cfg.console.device.as_str() {
                "none" => None,
                "stdin" => {
                    let v = view.clone();
                    let sd = shutdown.clone();
                    Some(tokio::spawn(async move {
                        let stdin = tokio::io::BufReader::new(tokio::io::stdin());
                        if let Err(e) = console::serve(v, stdin, tokio::io::stdout(), sd).await {
                            tracing::warn!(error = %e, "console ended");
                        }
                    }))
                }
                dev => {
                    tracing::warn!(device = %dev, "serial console with login is not available in this build; console disabled");
                    None
                }
            }
        } else {
            None
        };
        Ok(Agent {
            view,
            channels,
            uplink,
            console,
        })
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
