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
use gsmgw_drivers::at::{self, AtError, Command, EngineConfig, Urc};
use gsmgw_drivers::modem::{Dialect, Identity, Modem, ModemError, NetworkStatus};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::ModemConfig;
use crate::events::Events;
use crate::sms_in::{Inbox, InboxError};
use crate::sms_out::{ChannelRequest, SendFailure, VoiceOp};
use crate::state::{ChannelState, ModemEvent, ModemSnapshot};

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

/// Ports held by channels, so a search by IMEI never takes another slot's port.
#[derive(Debug, Clone, Default)]
pub struct PortClaims(Arc<Mutex<HashSet<String>>>);

impl PortClaims {
    fn claim(&self, port: &str) {
        if let Ok(mut g) = self.0.lock() {
            g.insert(canonical(port));
        }
    }
    fn release(&self, port: &str) {
        if let Ok(mut g) = self.0.lock() {
            g.remove(&canonical(port));
        }
    }
    fn is_claimed(&self, port: &str) -> bool {
        self.0
            .lock()
            .map(|g| g.contains(&canonical(port)))
            .unwrap_or(false)
    }
}

fn canonical(port: &str) -> String {
    std::fs::canonicalize(port)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| port.to_string())
}

/// `*` wildcard match on a file name (`ttyUSB*`).
fn wildcard(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let middle: Vec<&str> = parts.collect();
    let Some((last, mids)) = middle.split_last() else {
        return rest.is_empty(); // no '*': exact match
    };
    for mid in mids {
        match rest.find(mid) {
            Some(i) => rest = rest.get(i + mid.len()..).unwrap_or(""),
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Expands `port_scan` patterns to existing paths, sorted.
pub fn scan_candidates(patterns: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for p in patterns {
        let Some((dir, file)) = p.rsplit_once('/') else {
            continue;
        };
        let dir = if dir.is_empty() { "/" } else { dir };
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if wildcard(file, &name) {
                out.push(Path::new(dir).join(&name).display().to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    out
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
        let mut ch = Channel {
            cfg,
            inbox,
            ctx,
            tx,
            port,
            escalation: 0,
            trouble_since: None,
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
    ctx: ChannelContext,
    inbox: Inbox,
    tx: watch::Sender<ModemSnapshot>,
    /// The port in use (the configured one, or where the modem was found by IMEI).
    port: String,
    /// Recovery steps taken since the modem was last ready: 0 none, 1 soft reset, 2 power.
    escalation: u8,
    /// When the current trouble started, for the recovery time.
    trouble_since: Option<Instant>,
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
            imei: snap.imei.clone(),
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
            tracing::info!(slot = self.cfg.slot, state = state.as_str(), error = ?error, "modem state");
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
                        imei: snap.imei,
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
        tokio::select! {
            _ = tokio::time::sleep(d) => self.stopping(),
            _ = self.ctx.shutdown.changed() => true,
        }
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
                ChannelRequest::Reset { reply } => {
                    let _ = reply.send(Err(format!("modem not available: {why}")));
                }
            }
        }
    }

    async fn run(&mut self) {
        let mut backoff = self.ctx.timings.reopen_min;
        while !self.stopping() {
            self.fail_queued_requests("no session with the modem");
            let Some(path) = self.locate_port().await else {
                let why = format!("port {} not found", self.cfg.port);
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
            let (handle, urcs) = at::spawn(port, EngineConfig::default());
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

    /// The port to open: the configured one when it exists (or the one the modem was last
    /// found at); else, with an IMEI configured, a port among `port_scan` whose modem has it.
    async fn locate_port(&mut self) -> Option<String> {
        for p in [&self.port, &self.cfg.port] {
            if Path::new(p).exists() {
                return Some(p.clone());
            }
        }
        let imei = self.cfg.imei.clone()?;
        for candidate in scan_candidates(&self.ctx.port_scan) {
            if self.ctx.claims.is_claimed(&candidate) || self.stopping() {
                continue;
            }
            if probe_imei(&candidate, self.cfg.baud).await.as_deref() == Some(imei.as_str()) {
                tracing::info!(slot = self.cfg.slot, port = %candidate, %imei, "modem found by IMEI");
                let from = self.port.clone();
                self.port = candidate.clone();
                self.event(
                    "port-found",
                    None,
                    Some(format!("IMEI {imei} found at {candidate} (was {from})")),
                );
                return Some(candidate);
            }
        }
        None
    }

    /// Soft reset, then power cycle, then give up for a while. Returns true on shutdown.
    async fn recover(&mut self, modem: Modem, path: &str, why: String) -> bool {
        if self.trouble_since.is_none() {
            self.trouble_since = Some(Instant::now());
        }
        self.escalation = self.escalation.saturating_add(1);
        let wait = self.ctx.timings.reset_wait;
        match self.escalation {
            1 => {
                self.set_state(ChannelState::Resetting, Some(format!("{why}; soft reset")));
                self.event("soft-reset", None, Some(why));
                let r = modem
                    .at()
                    .send(Command::new("AT+CFUN=1,1").timeout(Duration::from_secs(3)))
                    .await;
                tracing::info!(slot = self.cfg.slot, result = ?r, "soft reset sent");
                drop(modem);
                // A USB modem's port vanishes while it restarts; wait for that (briefly)
                // so the old port is not reopened.
                self.wait_gone(path, Duration::from_secs(3)).await
                    || self.wait_back(path, wait).await
            }
            2 if self.ctx.power.is_some() => {
                drop(modem);
                self.set_state(ChannelState::Resetting, Some(format!("{why}; power cycle")));
                self.event("power-cycle", None, Some(why));
                if let Some(power) = self.ctx.power.as_mut() {
                    if let Err(e) = power.pulse(tokio::time::sleep).await {
                        tracing::error!(slot = self.cfg.slot, error = %e, "power cycle failed");
                        self.set_state(
                            ChannelState::Degraded,
                            Some(format!("power cycle failed: {e}")),
                        );
                    }
                }
                self.wait_back(path, wait).await
            }
            _ => {
                drop(modem);
                let no_power = self.ctx.power.is_none();
                self.set_state(
                    ChannelState::Degraded,
                    Some(if no_power {
                        format!("{why}; soft reset did not help and no power control is configured")
                    } else {
                        format!("{why}; soft reset and power cycle did not help")
                    }),
                );
                // Try again from the start later.
                self.escalation = 0;
                self.pause(self.ctx.timings.reopen_max * 6).await
            }
        }
    }

    /// Waits until `path` disappears; true on shutdown.
    async fn wait_gone(&mut self, path: &str, max: Duration) -> bool {
        let until = Instant::now() + max;
        while Path::new(path).exists() && Instant::now() < until {
            if self.pause(Duration::from_millis(50)).await {
                return true;
            }
        }
        false
    }

    /// Waits until `path` (or, with an IMEI, any candidate) is there again; true on shutdown.
    async fn wait_back(&mut self, path: &str, max: Duration) -> bool {
        let until = Instant::now() + max;
        while !Path::new(path).exists() && Instant::now() < until {
            if self.cfg.imei.is_some() && !scan_candidates(&self.ctx.port_scan).is_empty() {
                break;
            }
            if self.pause(Duration::from_millis(50)).await {
                return true;
            }
        }
        false
    }

    /// Brings the modem up and serves it until the port goes away, the modem goes silent,
    /// or shutdown.
    async fn session(&mut self, mut modem: Modem, mut urcs: mpsc::Receiver<Urc>) -> SessionEnd {
        loop {
            match self.bring_up(&mut modem).await {
                Ok(()) => break,
                Err(BringUp::WrongModem(why)) => return SessionEnd::WrongModem(why),
                Err(BringUp::Modem(e)) if e.is_fatal() => {
                    return SessionEnd::PortGone(e.to_string());
                }
                Err(BringUp::Modem(e)) if is_silence(&e) => {
                    return SessionEnd::Unresponsive(modem, format!("no answer ({e})"));
                }
                Err(BringUp::Modem(e)) => {
                    self.set_state(ChannelState::Degraded, Some(e.to_string()));
                    // A refused PIN or a blocked SIM needs a person, not a retry loop.
                    let wait = match e {
                        ModemError::WrongPin(_) | ModemError::PukRequired => {
                            self.ctx.timings.reopen_max * 6
                        }
                        _ => self.ctx.timings.reopen_max,
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
        // the status was just read, and the sweep below reads every stored message.
        while urcs.try_recv().is_ok() {}
        self.inbox.reset();
        self.inbox.imsi = self.tx.borrow().imsi.clone();
        if let Some(end) = self.sweep(&modem).await {
            return end;
        }

        let mut failures = 0u32;
        let mut ticks = 0u64;
        let mut health = tokio::time::interval(self.ctx.timings.health_interval);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        health.tick().await;
        loop {
            tokio::select! {
                _ = self.ctx.shutdown.changed() => return SessionEnd::Shutdown,
                req = self.ctx.requests.recv() => {
                    if let Some(req) = req {
                        if let Some(end) = self.serve(&modem, req).await {
                            return end;
                        }
                    }
                }
                urc = urcs.recv() => match urc {
                    None => return SessionEnd::PortGone("port closed".into()),
                    Some(u) => match self.on_urc(&modem, u).await {
                        Ok(()) => {}
                        Err(e) if e.is_fatal() => return SessionEnd::PortGone(e.to_string()),
                        Err(e) => tracing::debug!(slot = self.cfg.slot, error = %e, "URC follow-up failed"),
                    },
                },
                _ = health.tick() => match self.health_check(&modem).await {
                    Ok(()) => {
                        failures = 0;
                        ticks += 1;
                        // A sweep about every minute catches messages whose +CMTI was lost.
                        let every = (60 / self.ctx.timings.health_interval.as_secs().max(1)).max(1);
                        if ticks % every == 0 || self.inbox.sweep_failed {
                            if let Some(end) = self.sweep(&modem).await {
                                return end;
                            }
                        }
                    }
                    Err(e) if e.is_fatal() => return SessionEnd::PortGone(e.to_string()),
                    Err(e) if is_silence(&e) => {
                        failures += 1;
                        if self.trouble_since.is_none() {
                            self.trouble_since = Some(Instant::now());
                        }
                        tracing::warn!(slot = self.cfg.slot, failures, error = %e, "modem did not answer the health check");
                        if failures >= self.ctx.timings.failures_before_reset {
                            return SessionEnd::Unresponsive(modem, format!("no answer to {failures} health checks"));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(slot = self.cfg.slot, error = %e, "health check failed");
                        self.set_state(ChannelState::Degraded, Some(e.to_string()));
                    }
                },
            }
        }
    }

    /// Serves one request; Some(end) when the session must end.
    async fn serve(&mut self, modem: &Modem, req: ChannelRequest) -> Option<SessionEnd> {
        match req {
            ChannelRequest::At {
                command,
                timeout,
                reply,
            } => {
                let r = modem
                    .at()
                    .send(Command::new(command.as_str()).timeout(timeout))
                    .await;
                let fatal = matches!(&r, Err(e) if e.is_fatal());
                let out = match r {
                    Ok(resp) => {
                        let mut lines = resp.lines;
                        lines.push(
                            match resp.final_result {
                                at::Final::Ok => "OK",
                                at::Final::Connect => "CONNECT",
                                at::Final::Implied => "(no final result)",
                            }
                            .to_string(),
                        );
                        Ok(lines)
                    }
                    Err(e) => Err(e.to_string()),
                };
                let _ = reply.send(out);
                fatal.then(|| SessionEnd::PortGone("port closed".into()))
            }
            ChannelRequest::Reset { reply } => {
                let _ = reply.send(Ok(()));
                Some(SessionEnd::Unresponsive(
                    modem.clone(),
                    "reset requested by a technician".into(),
                ))
            }
            ChannelRequest::Voice { op, reply } => {
                let r = match &op {
                    VoiceOp::Dial(n) => modem.dial(n).await.map(|_| Vec::new()),
                    VoiceOp::Answer => modem.answer().await.map(|_| Vec::new()),
                    VoiceOp::HangUp => modem.hang_up().await.map(|_| Vec::new()),
                    VoiceOp::Dtmf(d) => modem.send_dtmf(*d).await.map(|_| Vec::new()),
                    VoiceOp::VoiceOn => modem.voice_port_on().await.map(|_| Vec::new()),
                    VoiceOp::VoiceOff => {
                        modem.voice_port_off().await;
                        Ok(Vec::new())
                    }
                    VoiceOp::List => modem.calls().await,
                };
                let fatal = matches!(&r, Err(e) if e.is_fatal());
                let why = r.as_ref().err().map(|e| e.to_string());
                let _ = reply.send(r.map_err(|e| e.to_string()));
                fatal.then(|| SessionEnd::PortGone(why.unwrap_or_default()))
            }
            ChannelRequest::SendSms { parts, reply } => {
                let mut sent = Vec::with_capacity(parts.len());
                for p in &parts {
                    match modem.send_pdu(&p.pdu, p.tpdu_len).await {
                        Ok(mr) => sent.push(mr),
                        Err(error) => {
                            let fatal = error.is_fatal();
                            let why = error.to_string();
                            let _ = reply.send(Err(SendFailure { sent, error }));
                            return fatal.then_some(SessionEnd::PortGone(why));
                        }
                    }
                }
                let _ = reply.send(Ok(sent));
                None
            }
        }
    }

    /// Reads all stored messages; Some(end) when the session must end.
    async fn sweep(&mut self, modem: &Modem) -> Option<SessionEnd> {
        match self.inbox.sweep(modem).await {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(slot = self.cfg.slot, messages = n, "stored messages taken");
                }
                None
            }
            Err(e) => self.inbox_failed(e).await,
        }
    }

    /// What a failed receive means for the session.
    async fn inbox_failed(&mut self, e: InboxError) -> Option<SessionEnd> {
        match e {
            InboxError::Modem(e) if e.is_fatal() => Some(SessionEnd::PortGone(e.to_string())),
            InboxError::Modem(e) => {
                tracing::warn!(slot = self.cfg.slot, error = %e, "reading messages failed; retried at the next sweep");
                None
            }
            InboxError::Store(e) => {
                // The message stays on the SIM: nothing is lost, it is taken when the store can.
                let code = if matches!(e, crate::store::StoreError::DiskFull) {
                    "disk-full"
                } else {
                    "storage-full"
                };
                self.ctx
                    .sink
                    .alarm(
                        code,
                        &format!("received SMS left on the SIM: {e}"),
                        Some(self.cfg.slot),
                    )
                    .await;
                None
            }
        }
    }

    /// A liveness probe that a hung modem cannot pass quickly, then the full status.
    async fn health_check(&mut self, modem: &Modem) -> Result<(), ModemError> {
        modem
            .at()
            .send(Command::new("AT").timeout(Duration::from_secs(2)))
            .await
            .map_err(|source| ModemError::At {
                command: "AT".into(),
                source,
            })?;
        self.refresh(modem).await
    }

    /// Waits `d` while still consuming URCs; true if shutdown was requested.
    async fn drain_urcs_for(&mut self, urcs: &mut mpsc::Receiver<Urc>, d: Duration) -> bool {
        let until = Instant::now() + d;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return self.stopping(),
                _ = self.ctx.shutdown.changed() => return true,
                u = urcs.recv() => if u.is_none() { return self.stopping() },
            }
        }
    }

    async fn bring_up(&mut self, modem: &mut Modem) -> Result<(), BringUp> {
        self.set_state(ChannelState::Initializing, None);
        modem.sync().await?;
        let mut id = modem.identify(self.cfg.dialect.forced()).await?;
        if let Some(want) = &self.cfg.imei {
            if &id.imei != want {
                return Err(BringUp::WrongModem(format!(
                    "{} has modem IMEI {}, slot {} expects {want}",
                    self.port, id.imei, self.cfg.slot
                )));
            }
        }
        self.publish_identity(modem.dialect(), &id);
        modem
            .unlock_sim(self.cfg.pin.as_deref(), self.ctx.timings.sim_busy_timeout)
            .await?;
        if id.imsi.is_empty() || id.iccid.is_empty() {
            modem.read_sim_identity(&mut id).await?;
            self.publish_identity(modem.dialect(), &id);
        }
        modem.configure(self.cfg.smsc.as_deref()).await?;
        if let Err(e) = modem.configure_calls().await {
            if e.is_fatal() {
                return Err(e.into());
            }
            tracing::warn!(slot = self.cfg.slot, error = %e, "call settings refused");
        }
        self.refresh(modem).await?;
        Ok(())
    }

    fn publish_identity(&self, dialect: Dialect, id: &Identity) {
        self.update(|s| {
            s.dialect = Some(dialect);
            s.manufacturer.clone_from(&id.manufacturer);
            s.model.clone_from(&id.model);
            s.firmware.clone_from(&id.firmware);
            s.imei.clone_from(&id.imei);
            s.imsi.clone_from(&id.imsi);
            s.iccid.clone_from(&id.iccid);
        });
    }

    /// Re-reads the network status and derives the state from it.
    async fn refresh(&mut self, modem: &Modem) -> Result<(), ModemError> {
        let st = modem.network_status().await?;
        self.apply_status(&st);
        Ok(())
    }

    fn apply_status(&mut self, st: &NetworkStatus) {
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

    async fn on_urc(&mut self, modem: &Modem, urc: Urc) -> Result<(), ModemError> {
        let received = match &urc {
            Urc::NewMessage { storage, index } | Urc::NewReport { storage, index } => {
                Some(self.inbox.on_stored(modem, storage, *index).await)
            }
            Urc::DirectMessage { pdu } | Urc::DirectReport { pdu } => {
                Some(self.inbox.on_direct(pdu).await)
            }
            _ => None,
        };
        if let Some(r) = received {
            if let Err(e) = r {
                if let Some(SessionEnd::PortGone(why)) = self.inbox_failed(e).await {
                    return Err(ModemError::At {
                        command: "AT+CMGR".into(),
                        source: AtError::PortClosed(why),
                    });
                }
            }
            return Ok(());
        }
        if matches!(
            urc,
            Urc::Ring
                | Urc::Clip { .. }
                | Urc::CallEnded { .. }
                | Urc::CallConnected { .. }
                | Urc::CallCleared { .. }
                | Urc::Dtmf { .. }
        ) {
            if let Some(calls) = &self.ctx.calls {
                if let Err(e) = calls.try_send((self.cfg.slot, urc)) {
                    tracing::warn!(slot = self.cfg.slot, error = %e, "call URC dropped");
                }
            }
            return Ok(());
        }
        match urc {
            Urc::Registration { .. } | Urc::SimState { .. } => self.refresh(modem).await,
            Urc::Signal { .. } => {
                let dbm = modem.signal_dbm().await?;
                self.update(|s| s.signal_dbm = dbm);
                Ok(())
            }
            Urc::Boot { line } => {
                // The modem restarted by itself: its settings are gone; bring it up again.
                tracing::warn!(slot = self.cfg.slot, line = %gsmgw_drivers::redact::printable(&line), "modem restarted by itself");
                Err(ModemError::At {
                    command: "boot".into(),
                    source: AtError::PortClosed(format!("modem restarted ({line})")),
                })
            }
            other => {
                tracing::debug!(slot = self.cfg.slot, urc = ?other, "URC not handled yet");
                Ok(())
            }
        }
    }
}

/// Why bring-up failed.
enum BringUp {
    Modem(ModemError),
    WrongModem(String),
}

impl From<ModemError> for BringUp {
    fn from(e: ModemError) -> Self {
        BringUp::Modem(e)
    }
}

/// Opens `port` briefly and asks for the IMEI; None if nothing sensible answers.
pub async fn probe_imei(port: &str, baud: u32) -> Option<String> {
    let p = gsmgw_drivers::modem::open_port(port, baud).ok()?;
    let (h, _urcs) = at::spawn(p, EngineConfig::default());
    let cmd = |t: &str| Command::new(t).timeout(Duration::from_secs(1));
    h.send(cmd("AT")).await.ok()?;
    let r = h.send(cmd("AT+CGSN")).await.ok()?;
    let imei: String = r
        .field_line("+CGSN:")
        .or_else(|| r.first_line())?
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    (imei.len() == 15).then_some(imei)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard("ttyUSB*", "ttyUSB12"));
        assert!(wildcard("ttyUSB*", "ttyUSB"));
        assert!(!wildcard("ttyUSB*", "ttyACM0"));
        assert!(wildcard("modem*.tty", "modem-b.tty"));
        assert!(!wildcard("modem*.tty", "modem-b.sock"));
        assert!(wildcard("exact", "exact"));
        assert!(!wildcard("a*b*c", "ac"));
        assert!(wildcard("a*b*c", "a-b-c"));
    }

    #[test]
    fn scan_finds_matching_files() {
        let d = tempfile::tempdir().unwrap();
        for n in ["ttyX1", "ttyX2", "other"] {
            std::fs::write(d.path().join(n), "").unwrap();
        }
        let pat = format!("{}/ttyX*", d.path().display());
        let found = scan_candidates(&[pat]);
        assert_eq!(found.len(), 2);
        assert!(found[0].ends_with("ttyX1"));
    }
}
