//! Telling the service manager how the agent is: `READY=1` once config, store and tasks are
//! up, a `STATUS=` line (modems ready, uplink, outbox), `WATCHDOG=1` only while every
//! essential task's heartbeat is fresh, `STOPPING=1` on the way out. A hardware watchdog
//! named in the board profile is fed on the same condition and closed with the magic `V` on a
//! clean stop.
//!
//! A modem that is down or a broker that is away is not a reason to stop the pings: the
//! channel and the uplink recover those themselves and keep beating. A task stuck inside one
//! message (a lock that never comes, a wedged store) stops beating; after `stale_after` the
//! pings stop and systemd restarts the agent one `WatchdogSec` later.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

use crate::actor::Liveness;
use crate::console::AgentView;
use crate::events::Events;
use crate::sdnotify::Notifier;
use crate::state::ChannelState;

/// The shortest time an essential task may be silent before the pings stop: the longest
/// single wait inside a task (a SIM that stays busy, a modem's slowest answer) is well below.
pub const MIN_STALE_AFTER: Duration = Duration::from_secs(90);

/// A Linux watchdog device (`/dev/watchdog`): every write feeds it; a `V` before closing
/// disarms it (magic close), so a clean stop does not reboot the board.
#[derive(Debug)]
pub struct HardwareWatchdog {
    file: std::fs::File,
    path: PathBuf,
}

impl HardwareWatchdog {
    /// Opens (and so arms) the device.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The board profile's watchdog, opened (armed) only when the profile names one; a device
    /// that cannot be opened is a warning (the agent runs without it).
    pub fn from_config(cfg: &crate::config::Config) -> Option<Self> {
        let profile = cfg.gateway.board_profile.as_ref()?;
        let device = gsmgw_board::BoardProfile::load(profile).ok()?.watchdog?;
        match Self::open(&device) {
            Ok(w) => {
                tracing::info!(device = %device.display(), "hardware watchdog armed; fed while every essential task turns");
                Some(w)
            }
            Err(e) => {
                tracing::warn!(device = %device.display(), error = %e, "cannot open the hardware watchdog; running without it");
                None
            }
        }
    }

    fn feed(&mut self) -> std::io::Result<()> {
        self.file.write_all(b"1")
    }

    fn close(mut self) {
        if let Err(e) = self.file.write_all(b"V") {
            tracing::warn!(device = %self.path.display(), error = %e, "hardware watchdog not disarmed");
        }
    }
}

/// How the agent reports to the service manager and feeds a hardware watchdog.
#[derive(Debug)]
pub struct Watchdog {
    notifier: Option<Notifier>,
    hardware: Mutex<Option<HardwareWatchdog>>,
    /// Ping interval (half of `WATCHDOG_USEC`); None: no watchdog asked for.
    interval: Option<Duration>,
    /// An essential task silent for longer than this stops the pings.
    stale_after: Duration,
}

impl Watchdog {
    /// From the environment systemd gives a `Type=notify` service and the board's hardware
    /// watchdog, if any; None when there is neither. `GSMGW_STALE_AFTER_SECS` overrides the
    /// silence allowed (tests; a board with unusually slow modems).
    pub fn from_env(hardware: Option<HardwareWatchdog>) -> Option<Self> {
        let notifier = match Notifier::from_env() {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "NOTIFY_SOCKET is not usable; not reporting to the service manager");
                None
            }
        };
        if notifier.is_none() && hardware.is_none() {
            return None;
        }
        let interval = crate::sdnotify::watchdog_interval();
        let stale_after = std::env::var("GSMGW_STALE_AFTER_SECS")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .unwrap_or_else(|| {
                interval
                    .map(|i| i * 6)
                    .unwrap_or_default()
                    .max(MIN_STALE_AFTER)
            });
        Some(Self {
            notifier,
            hardware: Mutex::new(hardware),
            interval,
            stale_after,
        })
    }

    fn feed_hardware(&self) {
        if let Ok(mut hw) = self.hardware.lock() {
            if let Some(h) = hw.as_mut() {
                if let Err(e) = h.feed() {
                    tracing::warn!(device = %h.path.display(), error = %e, "hardware watchdog not fed");
                }
            }
        }
    }

    /// A clean stop: `STOPPING=1`, and the hardware watchdog disarmed.
    pub fn stopping(&self) {
        self.notify("STOPPING=1\nSTATUS=stopping");
        if let Ok(mut hw) = self.hardware.lock() {
            if let Some(h) = hw.take() {
                h.close();
            }
        }
    }

    /// Sends `state`; a failure is logged at debug (the next one is tried all the same).
    pub fn notify(&self, state: &str) {
        if let Some(n) = &self.notifier {
            if let Err(e) = n.notify(state) {
                tracing::debug!(error = %e, "service manager notification not sent");
            }
        }
    }

    /// `READY=1` with the first status, then status and pings until `shutdown`.
    pub async fn serve(
        &self,
        view: AgentView,
        events: Events,
        liveness: Liveness,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let status = status_line(&view, &events).await;
        self.notify(&format!("READY=1\nSTATUS={status}"));
        if let Some(i) = self.interval {
            tracing::info!(
                ping_every_ms = i.as_millis() as u64,
                stale_after_s = self.stale_after.as_secs(),
                "systemd watchdog fed while every essential task turns"
            );
        }
        // A hardware watchdog's timeout is often 10-15 s: it is fed every second.
        let has_hw = self.hardware.lock().is_ok_and(|h| h.is_some());
        let most = Duration::from_secs(if has_hw { 1 } else { 5 });
        let tick = self.interval.unwrap_or(most).min(most);
        let mut last_status = status;
        let mut wedged = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = shutdown.changed() => return,
            }
            let stale = liveness.stale(self.stale_after);
            let mut msg = String::new();
            if stale.is_empty() {
                if wedged {
                    tracing::warn!("every essential task turns again; feeding the watchdog");
                    wedged = false;
                }
                if self.interval.is_some() {
                    msg.push_str("WATCHDOG=1\n");
                }
                self.feed_hardware();
            } else if !wedged {
                let names: Vec<String> = stale.iter().map(ToString::to_string).collect();
                tracing::error!(
                    "not feeding the watchdog: {} (the service manager restarts the agent)",
                    names.join(", ")
                );
                wedged = true;
            }
            let status = if wedged {
                let names: Vec<&str> = stale.iter().map(|s| s.name.as_str()).collect();
                format!("wedged: {} silent", names.join(", "))
            } else {
                status_line(&view, &events).await
            };
            if status != last_status {
                msg.push_str(&format!("STATUS={status}\n"));
                last_status = status;
            }
            if !msg.is_empty() {
                self.notify(msg.trim_end());
            }
        }
    }
}

/// One line for `systemctl status`: modems ready of configured, the uplink, the outbox.
pub async fn status_line(view: &AgentView, events: &Events) -> String {
    let snaps = view.snapshots();
    let ready = snaps
        .iter()
        .filter(|s| s.state == ChannelState::Ready)
        .count();
    let uplink = if view.uplink.borrow().connected {
        "uplink connected"
    } else {
        "uplink not connected"
    };
    // Bounded: a wedged store must not hold the pings' loop (its own heartbeat tells).
    let outbox = match tokio::time::timeout(Duration::from_secs(1), events.store().stats()).await {
        Ok(Ok(s)) => format!("{} event(s) in the outbox", s.rows),
        _ => "outbox unknown".to_string(),
    };
    format!("{ready}/{} modems ready, {uplink}, {outbox}", snaps.len())
}
