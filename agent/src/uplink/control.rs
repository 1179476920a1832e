//! Restarting the uplink with new `[mqtt]` settings (the console's `config apply`) while the
//! modems keep running; its status adds up over restarts.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::{UplinkOptions, UplinkStatus};
use crate::actor::Heartbeat;
use crate::config::MqttConfig;
use crate::events::Events;

/// What every uplink of this run shares; `[mqtt]` supplies the rest.
pub struct UplinkBase {
    /// `[gateway] id`.
    pub gateway_id: String,
    /// The agent's version.
    pub version: String,
    /// This run's id.
    pub boot_id: String,
    /// What command validation needs.
    pub commands: crate::commands::Context,
    /// The voice manager.
    pub voice: Option<mpsc::Sender<crate::voice::VoiceCommand>>,
    /// data_dir.
    pub data_dir: std::path::PathBuf,
    /// The channels' request queues (commands that talk to a modem: ussd).
    pub channels: crate::channel::ChannelSenders,
}

impl UplinkBase {
    /// The uplink's options for these `[mqtt]` settings (TLS files are read here).
    pub fn options(&self, mqtt: &MqttConfig) -> Result<UplinkOptions, String> {
        let endpoint = mqtt.endpoint().map_err(|e| e.to_string())?;
        let tls = if endpoint.tls {
            let tls = crate::tls::client_config(
                mqtt.ca_file.as_deref(),
                mqtt.cert_file.as_deref(),
                mqtt.key_file.as_deref(),
            )
            .map_err(|e| format!("mqtt TLS: {e}"))?;
            Some(Arc::new(tls))
        } else {
            None
        };
        Ok(UplinkOptions {
            gateway_id: self.gateway_id.clone(),
            host: endpoint.host.clone(),
            port: endpoint.port,
            username: mqtt.username.clone(),
            password: mqtt.password.clone(),
            keep_alive: Duration::from_secs(u64::from(mqtt.keep_alive_secs)),
            version: self.version.clone(),
            boot_id: self.boot_id.clone(),
            max_backoff: Duration::from_secs(10),
            commands: self.commands.clone(),
            max_command_bytes: usize::try_from(mqtt.max_command_mb)
                .unwrap_or(usize::MAX)
                .saturating_mul(1024 * 1024),
            tls,
            voice: self.voice.clone(),
            data_dir: self.data_dir.clone(),
            channels: self.channels.clone(),
        })
    }
}

type RestartRequest = (MqttConfig, oneshot::Sender<Result<(), String>>);

/// Restarts the uplink with new `[mqtt]` settings; the modems are not touched.
#[derive(Clone)]
pub struct UplinkControl {
    tx: mpsc::Sender<RestartRequest>,
    broker: watch::Receiver<String>,
}

impl UplinkControl {
    /// Stops the uplink (it says goodbye if connected) and starts it with `mqtt`; resolves
    /// once the new uplink runs (connecting), or with the reason it cannot.
    pub async fn restart(&self, mqtt: MqttConfig) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((mqtt, reply))
            .await
            .map_err(|_| "the uplink is stopping".to_string())?;
        rx.await.map_err(|_| "the uplink is stopping".to_string())?
    }

    /// `host:port` of the broker the uplink uses now.
    pub fn broker(&self) -> String {
        self.broker.borrow().clone()
    }
}

/// Runs the uplink, restarting it on request; its status is carried over restarts
/// (connect and ack counts add up).
pub fn supervise(
    base: UplinkBase,
    first: UplinkOptions,
    snapshots: Vec<watch::Receiver<crate::state::ModemSnapshot>>,
    events: Events,
    mut shutdown: watch::Receiver<bool>,
    beat: Heartbeat,
) -> (
    tokio::task::JoinHandle<()>,
    watch::Receiver<UplinkStatus>,
    UplinkControl,
) {
    let (status_tx, status_rx) = watch::channel(UplinkStatus::default());
    let (broker_tx, broker_rx) = watch::channel(format!("{}:{}", first.host, first.port));
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<RestartRequest>(4);
    let task = tokio::spawn(async move {
        let mut opts = first;
        let (mut connects, mut acked) = (0u32, 0u64);
        let mut ctl_open = true;
        loop {
            let (stop_tx, stop_rx) = watch::channel(false);
            let (mut task, mut st) = super::spawn_with(
                opts.clone(),
                snapshots.clone(),
                events.clone(),
                stop_rx,
                beat.clone(),
            );
            let mut alive = true;
            let next = loop {
                tokio::select! {
                    _ = shutdown.changed() => break None,
                    r = st.changed(), if alive => match r {
                        Ok(()) => {
                            let s = st.borrow_and_update().clone();
                            status_tx.send_replace(UplinkStatus {
                                connects: connects + s.connects,
                                acked: acked + s.acked,
                                ..s
                            });
                        }
                        Err(_) => alive = false,
                    },
                    req = ctl_rx.recv(), if ctl_open => match req {
                        Some((mqtt, reply)) => match base.options(&mqtt) {
                            Ok(o) => break Some((o, reply)),
                            Err(e) => {
                                let _ = reply.send(Err(e));
                            }
                        },
                        None => ctl_open = false,
                    },
                }
            };
            let _ = stop_tx.send(true);
            let _ = (&mut task).await;
            let last = st.borrow().clone();
            connects += last.connects;
            acked += last.acked;
            status_tx.send_modify(|s| s.connected = false);
            match next {
                None => return,
                Some((o, reply)) => {
                    tracing::info!(host = %o.host, port = o.port, "uplink restarting with new MQTT settings");
                    broker_tx.send_replace(format!("{}:{}", o.host, o.port));
                    opts = o;
                    let _ = reply.send(Ok(()));
                }
            }
        }
    });
    (
        task,
        status_rx,
        UplinkControl {
            tx: ctl_tx,
            broker: broker_rx,
        },
    )
}
