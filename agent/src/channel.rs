//! The channel: one task per modem slot that owns its AT port.
//!
//! Nobody else writes to the port. The channel opens it, brings the modem up (sync,
//! identify, SIM, settings), keeps its picture current from URCs and a periodic health check,
//! and starts over when the port disappears (USB modems vanish on reset and come back).

use std::time::Duration;

use gsmgw_drivers::at::{self, EngineConfig, Urc};
use gsmgw_drivers::modem::{Dialect, Identity, Modem, ModemError, NetworkStatus};
use tokio::sync::watch;

use crate::config::{DialectChoice, ModemConfig};
use crate::state::{ChannelState, ModemSnapshot};

/// Timings of a channel (shortened by tests).
#[derive(Debug, Clone)]
pub struct ChannelTimings {
    /// Between health checks while ready.
    pub health_interval: Duration,
    /// First delay before reopening a missing port; doubles up to `reopen_max`.
    pub reopen_min: Duration,
    /// Longest delay between reopen attempts.
    pub reopen_max: Duration,
    /// How long a busy SIM is waited for.
    pub sim_busy_timeout: Duration,
    /// Consecutive failed health checks before the slot is degraded.
    pub failures_before_degraded: u32,
}

impl Default for ChannelTimings {
    fn default() -> Self {
        Self {
            health_interval: Duration::from_secs(30),
            reopen_min: Duration::from_millis(500),
            reopen_max: Duration::from_secs(10),
            sim_busy_timeout: Duration::from_secs(60),
            failures_before_degraded: 3,
        }
    }
}

/// Maps the configured dialect choice to a forced dialect (None = detect).
pub fn forced_dialect(choice: &DialectChoice) -> Option<Dialect> {
    match choice {
        DialectChoice::Auto => None,
        DialectChoice::Generic => Some(Dialect::Generic),
        DialectChoice::Quectel => Some(Dialect::Quectel),
        DialectChoice::Simcom => Some(Dialect::Simcom),
        DialectChoice::Huawei => Some(Dialect::Huawei),
    }
}

/// A running channel's outputs.
pub struct ChannelHandle {
    /// The slot.
    pub slot: u16,
    /// The current picture of the slot; changes are published.
    pub snapshot: watch::Receiver<ModemSnapshot>,
    /// The task.
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts the channel task for one configured modem.
pub fn spawn(
    cfg: ModemConfig,
    timings: ChannelTimings,
    shutdown: watch::Receiver<bool>,
) -> ChannelHandle {
    let (tx, rx) = watch::channel(ModemSnapshot::new(cfg.slot, &cfg.port));
    let slot = cfg.slot;
    let task = tokio::spawn(async move {
        let mut ch = Channel {
            cfg,
            timings,
            tx,
            shutdown,
        };
        ch.run().await;
    });
    ChannelHandle {
        slot,
        snapshot: rx,
        task,
    }
}

struct Channel {
    cfg: ModemConfig,
    timings: ChannelTimings,
    tx: watch::Sender<ModemSnapshot>,
    shutdown: watch::Receiver<bool>,
}

/// Why a ready modem's session ended.
enum SessionEnd {
    PortGone(String),
    Shutdown,
}

impl Channel {
    fn update(&self, f: impl FnOnce(&mut ModemSnapshot)) {
        self.tx.send_if_modified(|s| {
            let before = s.clone();
            f(s);
            if s.same_as(&before) {
                false
            } else {
                s.ts = crate::clock::now_rfc3339();
                true
            }
        });
    }

    fn set_state(&self, state: ChannelState, error: Option<String>) {
        if state != self.tx.borrow().state {
            tracing::info!(slot = self.cfg.slot, state = state.as_str(), error = ?error, "modem state");
        }
        self.update(|s| {
            s.state = state;
            s.error = error;
        });
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Sleeps, returning true if shutdown was requested meanwhile.
    async fn pause(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => self.stopping(),
            _ = self.shutdown.changed() => true,
        }
    }

    async fn run(&mut self) {
        let mut backoff = self.timings.reopen_min;
        while !self.stopping() {
            let port = match gsmgw_drivers::modem::open_port(&self.cfg.port, self.cfg.baud) {
                Ok(p) => p,
                Err(e) => {
                    self.set_state(
                        ChannelState::Absent,
                        Some(format!("cannot open {}: {e}", self.cfg.port)),
                    );
                    if self.pause(backoff).await {
                        break;
                    }
                    backoff = (backoff * 2).min(self.timings.reopen_max);
                    continue;
                }
            };
            self.set_state(ChannelState::Initializing, None);
            let (handle, urcs) = at::spawn(port, EngineConfig::default());
            let modem = Modem::new(handle, Dialect::Generic);
            match self.session(modem, urcs).await {
                SessionEnd::Shutdown => break,
                SessionEnd::PortGone(why) => {
                    tracing::warn!(slot = self.cfg.slot, %why, "modem port gone");
                    self.set_state(ChannelState::Absent, Some(why));
                    backoff = self.timings.reopen_min;
                    if self.pause(backoff).await {
                        break;
                    }
                }
            }
        }
    }

    /// Brings the modem up and serves it until the port goes away or shutdown.
    async fn session(
        &mut self,
        mut modem: Modem,
        mut urcs: tokio::sync::mpsc::Receiver<Urc>,
    ) -> SessionEnd {
        // Bring-up, retried while the modem answers but is not usable yet.
        loop {
            match self.bring_up(&mut modem).await {
                Ok(()) => break,
                Err(e) if e.is_fatal() => return SessionEnd::PortGone(e.to_string()),
                Err(e) => {
                    self.set_state(ChannelState::Degraded, Some(e.to_string()));
                    // A refused PIN or a blocked SIM needs a person, not a retry loop.
                    let wait = match e {
                        ModemError::WrongPin(_) | ModemError::PukRequired => {
                            self.timings.reopen_max * 6
                        }
                        _ => self.timings.reopen_max,
                    };
                    if self.drain_urcs_for(&mut urcs, wait).await {
                        return SessionEnd::Shutdown;
                    }
                    if modem.at().is_closed() {
                        return SessionEnd::PortGone("engine stopped".into());
                    }
                }
            }
        }

        // URCs queued during bring-up (boot banners, the registration it caused) are stale:
        // the status was just read.
        while urcs.try_recv().is_ok() {}

        let mut failures = 0u32;
        let mut health = tokio::time::interval(self.timings.health_interval);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        health.tick().await;
        loop {
            tokio::select! {
                _ = self.shutdown.changed() => return SessionEnd::Shutdown,
                urc = urcs.recv() => match urc {
                    None => return SessionEnd::PortGone("port closed".into()),
                    Some(u) => {
                        if let Err(e) = self.on_urc(&modem, u).await {
                            if e.is_fatal() {
                                return SessionEnd::PortGone(e.to_string());
                            }
                        }
                    }
                },
                _ = health.tick() => match self.refresh(&modem).await {
                    Ok(()) => failures = 0,
                    Err(e) if e.is_fatal() => return SessionEnd::PortGone(e.to_string()),
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(slot = self.cfg.slot, failures, error = %e, "health check failed");
                        if failures >= self.timings.failures_before_degraded {
                            self.set_state(ChannelState::Degraded, Some(e.to_string()));
                        }
                    }
                },
            }
        }
    }

    /// Waits `d` while still consuming URCs; true if shutdown was requested.
    async fn drain_urcs_for(
        &mut self,
        urcs: &mut tokio::sync::mpsc::Receiver<Urc>,
        d: Duration,
    ) -> bool {
        let until = tokio::time::Instant::now() + d;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return self.stopping(),
                _ = self.shutdown.changed() => return true,
                u = urcs.recv() => if u.is_none() { return self.stopping() },
            }
        }
    }

    async fn bring_up(&mut self, modem: &mut Modem) -> Result<(), ModemError> {
        self.set_state(ChannelState::Initializing, None);
        modem.sync().await?;
        let mut id = modem.identify(forced_dialect(&self.cfg.dialect)).await?;
        self.publish_identity(modem.dialect(), &id);
        modem
            .unlock_sim(self.cfg.pin.as_deref(), self.timings.sim_busy_timeout)
            .await?;
        if id.imsi.is_empty() || id.iccid.is_empty() {
            modem.read_sim_identity(&mut id).await?;
            self.publish_identity(modem.dialect(), &id);
        }
        modem.configure(self.cfg.smsc.as_deref()).await?;
        self.refresh(modem).await
    }

    fn publish_identity(&self, dialect: Dialect, id: &Identity) {
        self.update(|s| {
            s.dialect = dialect.as_str().to_string();
            s.manufacturer.clone_from(&id.manufacturer);
            s.model.clone_from(&id.model);
            s.firmware.clone_from(&id.firmware);
            s.imei.clone_from(&id.imei);
            s.imsi.clone_from(&id.imsi);
            s.iccid.clone_from(&id.iccid);
        });
    }

    /// Re-reads the network status and derives the state from it.
    async fn refresh(&self, modem: &Modem) -> Result<(), ModemError> {
        let st = modem.network_status().await?;
        self.apply_status(&st);
        Ok(())
    }

    fn apply_status(&self, st: &NetworkStatus) {
        let ready =
            st.registration.is_registered() && st.sim == gsmgw_drivers::modem::SimState::Ready;
        let (state, error) = if ready {
            (ChannelState::Ready, None)
        } else if st.registration == gsmgw_drivers::modem::Registration::Searching {
            // Registering after start is normal; not yet degraded.
            (ChannelState::Initializing, None)
        } else {
            (
                ChannelState::Degraded,
                Some(format!(
                    "sim {}, registration {}",
                    st.sim.as_str(),
                    st.registration.as_str()
                )),
            )
        };
        self.update(|s| {
            s.sim = st.sim.as_str().to_string();
            s.registration = st.registration.as_str().to_string();
            s.operator.clone_from(&st.operator);
            s.operator_numeric.clone_from(&st.operator_numeric);
            s.signal_dbm = st.signal_dbm;
        });
        self.set_state(state, error);
    }

    async fn on_urc(&self, modem: &Modem, urc: Urc) -> Result<(), ModemError> {
        match urc {
            Urc::Registration { .. } | Urc::SimState { .. } => self.refresh(modem).await,
            Urc::Signal { .. } => {
                let dbm = modem.signal_dbm().await?;
                self.update(|s| s.signal_dbm = dbm);
                Ok(())
            }
            Urc::Boot { line } => {
                // The modem restarted by itself: settings are lost, bring it up again.
                tracing::warn!(slot = self.cfg.slot, %line, "modem rebooted");
                Err(ModemError::At {
                    command: "boot".into(),
                    source: at::AtError::PortClosed(format!("modem restarted ({line})")),
                })
            }
            other => {
                tracing::debug!(slot = self.cfg.slot, urc = ?other, "URC not handled yet");
                Ok(())
            }
        }
    }
}
