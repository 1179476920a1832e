//! The channel: one task per modem slot that owns its AT port.
//!
//! Nobody else writes to the port. The channel finds the port (configured path, or by IMEI
//! among `port_scan` when the kernel renumbered it), brings the modem up (sync, identify, SIM,
//! settings), keeps its picture current from URCs and a periodic health check, and recovers
//! a modem that stops answering: soft reset (AT+CFUN=1,1), then a power cycle through the
//! board, then reopen — without restarting the process. Every state change and every
//! recovery step becomes a [`ModemEvent`].

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gsmgw_board::{ModemPower, PowerPin};
use gsmgw_drivers::at::{self, AtError, Command, Urc};
use gsmgw_drivers::modem::{Dialect, Identity, Modem, ModemError, NetworkStatus};
use gsmgw_drivers::pdu::EncodedPart;
use gsmgw_drivers::ussd::session::{Exchange, UssdFailure};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::config::ModemConfig;
use crate::events::Events;
use crate::sms_in::{Inbox, InboxError};
use crate::state::{ChannelState, ModemEvent, ModemSnapshot};

mod ports;
mod recovery;
mod session;
mod ussd;

pub use ports::{PortClaims, probe_imei, scan_candidates};

/// Timings of a channel.
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
    /// Consecutive unanswered health checks before a recovery starts.
    pub failures_before_reset: u32,
    /// How long a reset modem is given to come back before the next step.
    pub reset_wait: Duration,
}

impl Default for ChannelTimings {
    fn default() -> Self {
        Self {
            health_interval: Duration::from_secs(30),
            reopen_min: Duration::from_millis(500),
            reopen_max: Duration::from_secs(10),
            sim_busy_timeout: Duration::from_secs(60),
            failures_before_reset: 2,
            reset_wait: Duration::from_secs(30),
        }
    }
}

/// A request to a channel (the only writer of its port).
pub enum ChannelRequest {
    /// A raw AT command (technician's console), serialised with the agent's own commands.
    At {
        /// The command line, e.g. `AT+CSQ`.
        command: String,
        /// Seconds to wait for the final result.
        timeout: Duration,
        /// The response lines and final result as text, or the error.
        reply: oneshot::Sender<Result<Vec<String>, String>>,
    },
    /// Reset the modem now: a soft reset (AT+CFUN=1,1) as recovery does, or (`power`) a
    /// power cycle through the board profile's pin.
    Reset {
        /// A power cycle instead of a soft reset.
        power: bool,
        /// Acknowledged once the reset command was sent.
        reply: oneshot::Sender<Result<(), ResetRefused>>,
    },
    /// A voice-call operation; the reply carries the call list for `List` (empty otherwise).
    Voice {
        /// What to do.
        op: VoiceOp,
        /// The outcome.
        reply: oneshot::Sender<Result<Vec<gsmgw_drivers::modem::CallInfo>, String>>,
    },
    /// One USSD exchange (request, menu replies); nothing else uses the port meanwhile.
    Ussd {
        /// The USSD string (`*111#`), validated again before it is written.
        code: String,
        /// Answers to the menus that follow.
        replies: Vec<String>,
        /// The wait for each answer of the network.
        timeout: Duration,
        /// The exchange and the balance read from its last answer (if it names one), or why
        /// it gave no answer.
        reply: oneshot::Sender<Result<(Exchange, Option<crate::balance::Balance>), UssdFailure>>,
    },
    /// Send these SMS-SUBMIT parts in order; the reply carries each part's TP-MR.
    SendSms {
        /// The parts.
        parts: Vec<EncodedPart>,
        /// Where the outcome goes.
        reply: oneshot::Sender<Result<Vec<u8>, SendFailure>>,
    },
}

/// The request queues of every running channel, by slot (cheap to clone).
#[derive(Clone, Default)]
pub struct ChannelSenders(Arc<Vec<(u16, mpsc::Sender<ChannelRequest>)>>);

impl ChannelSenders {
    /// Queues by slot.
    pub fn new(senders: Vec<(u16, mpsc::Sender<ChannelRequest>)>) -> Self {
        Self(Arc::new(senders))
    }

    /// The slots with a channel.
    pub fn slots(&self) -> Vec<u16> {
        self.0.iter().map(|(s, _)| *s).collect()
    }

    /// The queue of `slot`'s channel, if one runs.
    pub fn get(&self, slot: u16) -> Option<&mpsc::Sender<ChannelRequest>> {
        self.0.iter().find(|(s, _)| *s == slot).map(|(_, tx)| tx)
    }
}

impl std::fmt::Debug for ChannelSenders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ChannelSenders")
            .field(&self.slots())
            .finish()
    }
}

/// What a channel needs besides its modem's config.
pub struct ChannelContext {
    /// Timings.
    pub timings: ChannelTimings,
    /// Where to search a renumbered port.
    pub port_scan: Vec<String>,
    /// Ports in use by all channels.
    pub claims: PortClaims,
    /// Power control for hard resets, if the board has one for this slot.
    pub power: Option<ModemPower<PowerPin>>,
    /// Where modem events go.
    pub events: mpsc::Sender<ModemEvent>,
    /// The store-backed event sink (received SMS, reports).
    pub sink: Events,
    /// Requests from the rest of the agent (send SMS ...), served while the modem is ready.
    pub requests: mpsc::Receiver<ChannelRequest>,
    /// Where call URCs go (RING, +CLIP, call progress, DTMF): the voice manager.
    pub calls: Option<mpsc::Sender<(u16, Urc)>>,
    /// Turns true on shutdown.
    pub shutdown: watch::Receiver<bool>,
    /// Beaten while the channel turns: in its serving loop and in every wait. An AT command
    /// waits at most its timeout (the SIM-busy wait at most `sim_busy_timeout`).
    pub heartbeat: crate::actor::Heartbeat,
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
pub fn spawn(cfg: ModemConfig, ctx: ChannelContext) -> ChannelHandle {
    let (tx, rx) = watch::channel(ModemSnapshot::new(cfg.slot, &cfg.port));
    let slot = cfg.slot;
    let task = tokio::spawn(async move {
        let port = cfg.port.clone();
        let inbox = Inbox::new(cfg.slot, ctx.sink.clone());
        let pulse = ctx.heartbeat.pulse();
        let mut ch = Channel {
            pulse,
            cfg,
            inbox,
            ctx,
            tx,
            port,
            escalation: 0,
            trouble_since: None,
            balance: ussd::BalanceCheck::default(),
            sim_out: false,
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
    pulse: crate::actor::Pulse,
    cfg: ModemConfig,
    ctx: ChannelContext,
    inbox: Inbox,
    tx: watch::Sender<ModemSnapshot>,
    /// The port in use (the configured one, or where the modem was found by IMEI).
    port: String,
    /// Recovery steps taken since the modem was last ready: 0 none, 1 soft reset, 2 power.
    escalation: u8,
    /// When the current trouble started, for the recovery time.
    trouble_since: Option<Instant>,
    /// The periodic balance check (`balance_ussd`).
    balance: ussd::BalanceCheck,
    /// The SIM was seen out of its holder (a hot-swap report or AT+CPIN? saying so): the
    /// next "inserted" brings the slot up again.
    sim_out: bool,
}

/// Why a session with an open port ended.
enum SessionEnd {
    /// The port went away (unplug, USB reset, reboot).
    PortGone(String),
    /// The modem stopped answering; the modem handle is handed back for a soft reset.
    Unresponsive(Modem, String),
    /// Another modem answers on this port.
    WrongModem(String),
    /// Stop requested.
    Shutdown,
}

fn is_silence(e: &ModemError) -> bool {
    matches!(
        e,
        ModemError::At {
            source: AtError::Timeout(_),
            ..
        }
    )
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

    fn event(&self, kind: &str, from: Option<ChannelState>, reason: Option<String>) {
        let snap = self.tx.borrow().clone();
        let ev = ModemEvent {
            slot: self.cfg.slot,
            kind: kind.to_string(),
            from,
            state: snap.state,
            reason,
            port: self.port.clone(),
            imei: snap.identity.imei.clone(),
            recovery_ms: None,
        };
        self.send_event(ev);
    }

    fn send_event(&self, ev: ModemEvent) {
        if let Err(e) = self.ctx.events.try_send(ev) {
            tracing::warn!(slot = self.cfg.slot, error = %e, "modem event not queued");
        }
    }

    fn set_state(&mut self, state: ChannelState, error: Option<String>) {
        let before = self.tx.borrow().state;
        self.update(|s| {
            s.state = state;
            s.error.clone_from(&error);
            s.port.clone_from(&self.port);
        });
        if state != before {
            let why = error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            tracing::info!(
                slot = self.cfg.slot,
                state = state.as_str(),
                "slot {} is {}{why}",
                self.cfg.slot,
                state.as_str()
            );
            self.event("state", Some(before), error);
            if state == ChannelState::Ready {
                if let Some(t) = self.trouble_since.take() {
                    let snap = self.tx.borrow().clone();
                    let ms = u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX);
                    tracing::info!(slot = self.cfg.slot, recovery_ms = ms, "modem recovered");
                    self.send_event(ModemEvent {
                        slot: self.cfg.slot,
                        kind: "recovered".into(),
                        from: None,
                        state,
                        reason: None,
                        port: self.port.clone(),
                        imei: snap.identity.imei,
                        recovery_ms: Some(ms),
                    });
                }
                self.escalation = 0;
            } else if self.trouble_since.is_none()
                && matches!(
                    state,
                    ChannelState::Absent | ChannelState::Degraded | ChannelState::Resetting
                )
                && before == ChannelState::Ready
            {
                self.trouble_since = Some(Instant::now());
            }
        }
    }

    fn stopping(&self) -> bool {
        *self.ctx.shutdown.borrow()
    }

    /// Sleeps, returning true if shutdown was requested meanwhile.
    async fn pause(&mut self, d: Duration) -> bool {
        let until = Instant::now() + d;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return self.stopping(),
                _ = self.ctx.shutdown.changed() => return true,
                _ = self.pulse.tick() => {}
            }
        }
    }

    /// The channel is turning.
    fn beat(&self) {
        self.pulse.heartbeat().beat();
    }

    /// Answers every queued request with an error while there is no session (the port is gone
    /// or being reset): a message waiting here was not written, so it can go through another
    /// SIM instead of waiting for this one to come back.
    fn fail_queued_requests(&mut self, why: &str) {
        while let Ok(req) = self.ctx.requests.try_recv() {
            match req {
                ChannelRequest::SendSms { reply, .. } => {
                    let _ = reply.send(Err(SendFailure {
                        sent: Vec::new(),
                        error: ModemError::At {
                            command: "AT+CMGS".into(),
                            source: AtError::PortClosed(why.to_string()),
                        },
                    }));
                }
                ChannelRequest::At { reply, .. } => {
                    let _ = reply.send(Err(format!("modem not available: {why}")));
                }
                ChannelRequest::Voice { reply, .. } => {
                    let _ = reply.send(Err(why.to_string()));
                }
                ChannelRequest::Reset { reply, .. } => {
                    let _ = reply.send(Err(ResetRefused::Unavailable(why.to_string())));
                }
                ChannelRequest::Ussd { reply, .. } => {
                    let _ = reply.send(Err(UssdFailure::Port(AtError::PortClosed(format!(
                        "modem not available: {why}"
                    )))));
                }
            }
        }
    }

    async fn run(&mut self) {
        let mut backoff = self.ctx.timings.reopen_min;
        while !self.stopping() {
            self.fail_queued_requests("no session with the modem");
            let Some(path) = self.locate_port().await else {
                let why = match &self.cfg.imei {
                    Some(imei) => format!(
                        "port {} does not exist; waiting for it (or for IMEI {imei} on gateway.port_scan)",
                        self.cfg.port
                    ),
                    None => format!("port {} does not exist; waiting for it", self.cfg.port),
                };
                // Said once, and again only when something else happened in between.
                if self.tx.borrow().error.as_deref() != Some(why.as_str()) {
                    tracing::warn!(slot = self.cfg.slot, "slot {}: {why}", self.cfg.slot);
                }
                self.set_state(ChannelState::Absent, Some(why));
                if self.pause(backoff).await {
                    break;
                }
                backoff = (backoff * 2).min(self.ctx.timings.reopen_max);
                continue;
            };
            let port = match gsmgw_drivers::modem::open_port(&path, self.cfg.baud) {
                Ok(p) => p,
                Err(e) => {
                    self.set_state(
                        ChannelState::Absent,
                        Some(format!("cannot open {path}: {e}")),
                    );
                    if self.pause(backoff).await {
                        break;
                    }
                    backoff = (backoff * 2).min(self.ctx.timings.reopen_max);
                    continue;
                }
            };
            backoff = self.ctx.timings.reopen_min;
            if path != self.port {
                self.port = path.clone();
            }
            self.ctx.claims.claim(&path);
            self.set_state(ChannelState::Initializing, None);
            let (handle, urcs) = at::spawn(port, gsmgw_drivers::modem::engine_config());
            let modem = Modem::new(handle, Dialect::Generic);
            let end = self.session(modem, urcs).await;
            match end {
                SessionEnd::Shutdown => {
                    self.ctx.claims.release(&path);
                    break;
                }
                SessionEnd::PortGone(why) => {
                    self.ctx.claims.release(&path);
                    tracing::warn!(slot = self.cfg.slot, %why, "modem port gone");
                    self.set_state(ChannelState::Absent, Some(why));
                    if self.pause(self.ctx.timings.reopen_min).await {
                        break;
                    }
                }
                SessionEnd::WrongModem(why) => {
                    self.ctx.claims.release(&path);
                    tracing::warn!(slot = self.cfg.slot, %why, "wrong modem on port");
                    self.set_state(ChannelState::Absent, Some(why.clone()));
                    self.event("wrong-modem", None, Some(why));
                    // Forget the port: search by IMEI next time.
                    self.port = self.cfg.port.clone();
                    if self.pause(self.ctx.timings.reopen_min).await {
                        break;
                    }
                }
                SessionEnd::Unresponsive(modem, why) => {
                    let stop = self.recover(modem, &path, why).await;
                    self.ctx.claims.release(&path);
                    if stop {
                        break;
                    }
                }
            }
        }
    }
}

/// Why a reset was not started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResetRefused {
    /// A power cycle asked for a slot whose power the board profile does not wire.
    #[error("slot {0} has no power control in the board profile")]
    NoPowerControl(u16),
    /// No session with the modem (absent, being reset).
    #[error("modem not available: {0}")]
    Unavailable(String),
}

/// A voice-call operation on a modem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoiceOp {
    /// ATD<number>;
    Dial(String),
    /// ATA.
    Answer,
    /// AT+CHUP (ATH).
    HangUp,
    /// AT+VTS.
    Dtmf(char),
    /// The dialect's voice-port command.
    VoiceOn,
    /// The dialect's voice-port off command.
    VoiceOff,
    /// AT+CLCC.
    List,
}

/// A send that stopped at some part.
#[derive(Debug, Clone)]
pub struct SendFailure {
    /// Message references of the parts that did go out.
    pub sent: Vec<u8>,
    /// What the modem said.
    pub error: ModemError,
}
