//! Status LEDs of the board profile (`[[led]]`), so a technician reads the box without a
//! laptop:
//!
//! | LED | pattern |
//! |---|---|
//! | system | heartbeat while the agent runs, off once it stopped |
//! | uplink | on while connected to the broker, slow blink while not |
//! | modem N | on when ready, slow blink while initializing or resetting, fast blink when degraded or absent |
//!
//! A sysfs LED blinks through the kernel's `timer` trigger (it goes on without the agent); a
//! GPIO line is blinked by a task of its own. An LED never blocks or fails the agent: one
//! that cannot be set is one warning, and it is tried again at its next change.

use std::time::Duration;

use gsmgw_board::led::{Pattern, SysfsLed, gpio_steps};
use gsmgw_board::{GpioPin, LedRole, LedSpec};
use tokio::sync::watch;

use crate::console::AgentView;
use crate::state::ChannelState;

/// How often the wanted patterns are compared with the shown ones.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// What a modem's state looks like on its LED.
pub fn modem_pattern(state: ChannelState) -> Pattern {
    match state {
        ChannelState::Ready => Pattern::On,
        ChannelState::Initializing | ChannelState::Resetting => Pattern::SlowBlink,
        ChannelState::Degraded | ChannelState::Absent => Pattern::FastBlink,
    }
}

enum Driver {
    Sysfs(SysfsLed),
    /// The blinking task's wish.
    Gpio(watch::Sender<Pattern>),
}

struct Led {
    spec: LedSpec,
    driver: Driver,
    shown: Option<Pattern>,
    warned: bool,
}

impl Led {
    fn name(&self) -> String {
        match (&self.spec.sysfs, self.spec.line) {
            (Some(p), _) => p.display().to_string(),
            (None, Some(l)) => format!("GPIO line {l}"),
            _ => "LED".into(),
        }
    }

    fn show(&mut self, p: Pattern) {
        if self.shown == Some(p) {
            return;
        }
        let result = match &self.driver {
            Driver::Sysfs(led) => led.set(p).map_err(|e| e.to_string()),
            Driver::Gpio(tx) => tx.send(p).map_err(|_| "its task stopped".to_string()),
        };
        match result {
            Ok(()) => self.shown = Some(p),
            Err(e) => {
                if !self.warned {
                    tracing::warn!(led = %self.name(), "status LED cannot be set: {e}");
                    self.warned = true;
                }
            }
        }
    }
}

/// Drives `leds` from `view` until `shutdown`; then the system LED goes off.
pub fn spawn(
    leds: &[LedSpec],
    gpiochip: &str,
    view: AgentView,
    mut shutdown: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    if leds.is_empty() {
        return None;
    }
    let mut all: Vec<Led> = Vec::new();
    for spec in leds {
        let driver = match (&spec.sysfs, spec.line) {
            (Some(dir), _) => Driver::Sysfs(SysfsLed::new(dir)),
            (None, Some(line)) => match GpioPin::open(gpiochip, line, false) {
                Ok(pin) => {
                    let (tx, rx) = watch::channel(Pattern::Off);
                    tokio::spawn(blink(pin, rx, shutdown.clone()));
                    Driver::Gpio(tx)
                }
                Err(e) => {
                    tracing::warn!(line, "status LED not available: {e}");
                    continue;
                }
            },
            (None, None) => continue,
        };
        all.push(Led {
            spec: spec.clone(),
            driver,
            shown: None,
            warned: false,
        });
    }
    Some(tokio::spawn(async move {
        loop {
            let snaps = view.snapshots();
            let connected = view.uplink.borrow().connected;
            for led in &mut all {
                let want = match led.spec.role {
                    LedRole::System => Pattern::Heartbeat,
                    LedRole::Uplink if connected => Pattern::On,
                    LedRole::Uplink => Pattern::SlowBlink,
                    LedRole::Modem => snaps
                        .iter()
                        .find(|s| Some(s.slot) == led.spec.slot)
                        .map_or(Pattern::Off, |s| modem_pattern(s.state)),
                };
                led.show(want);
            }
            tokio::select! {
                _ = tokio::time::sleep(LOOK_EVERY) => {}
                _ = shutdown.changed() => break,
            }
        }
        for led in &mut all {
            if led.spec.role == LedRole::System {
                led.show(Pattern::Off);
            }
        }
    }))
}

/// Blinks a GPIO LED as `want` says, until `shutdown` or the driver is gone (then dark).
async fn blink(
    mut pin: GpioPin,
    mut want: watch::Receiver<Pattern>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut warned = false;
    loop {
        let steps = gpio_steps(*want.borrow_and_update());
        // Repeats the pattern's steps until the wish changes.
        let changed = 'pattern: loop {
            for (level, hold) in &steps {
                let r = pin.set(*level);
                if let Err(e) = r {
                    if !warned {
                        tracing::warn!("status LED cannot be set: {e}");
                        warned = true;
                    }
                }
                let wait = async {
                    match hold {
                        Some(d) => tokio::time::sleep(*d).await,
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = wait => {}
                    r = want.changed() => break 'pattern r.is_ok(),
                    _ = shutdown.changed() => break 'pattern false,
                }
            }
        };
        if !changed {
            let _ = pin.set(false);
            return;
        }
    }
}
