//! Status LEDs: a sysfs LED (`/sys/class/leds/NAME`, driven through the kernel's triggers so
//! a blink goes on without the agent) or a GPIO line (the agent blinks it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// What an LED shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// Dark.
    Off,
    /// Lit.
    On,
    /// 1 s on, 1 s off: something is on its way (a modem starting, a reset).
    SlowBlink,
    /// 100 ms on, 100 ms off: needs a look (a modem degraded or absent).
    FastBlink,
    /// The kernel's heartbeat (double flash): the agent runs.
    Heartbeat,
}

impl Pattern {
    /// (on, off) of a blink.
    pub fn blink(self) -> Option<(Duration, Duration)> {
        match self {
            Pattern::SlowBlink => Some((Duration::from_millis(1000), Duration::from_millis(1000))),
            Pattern::FastBlink => Some((Duration::from_millis(100), Duration::from_millis(100))),
            _ => None,
        }
    }

    /// Lower-case name (logs, docs).
    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::Off => "off",
            Pattern::On => "on",
            Pattern::SlowBlink => "slow blink",
            Pattern::FastBlink => "fast blink",
            Pattern::Heartbeat => "heartbeat",
        }
    }
}

/// What an LED of the board profile stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LedRole {
    /// The agent itself: heartbeat while it runs.
    System,
    /// The MQTT uplink: on while connected.
    Uplink,
    /// One modem slot: on while ready.
    Modem,
}

/// One `[[led]]` of a board profile.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedSpec {
    /// What it shows.
    pub role: LedRole,
    /// The slot, for a modem LED.
    #[serde(default)]
    pub slot: Option<u16>,
    /// A sysfs LED directory, e.g. `/sys/class/leds/green:status`.
    #[serde(default)]
    pub sysfs: Option<PathBuf>,
    /// A GPIO line on the profile's `gpiochip` (the agent blinks it).
    #[serde(default)]
    pub line: Option<u32>,
}

/// Why an LED could not be set.
#[derive(Debug, thiserror::Error)]
pub enum LedError {
    /// A sysfs file did not take the value.
    #[error("{}: {source}", path.display())]
    Sysfs {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The GPIO line is not usable.
    #[error("GPIO: {0}")]
    Gpio(String),
}

/// A sysfs LED: patterns through `trigger` (`none`, `timer` with `delay_on`/`delay_off`,
/// `heartbeat`) and `brightness`.
#[derive(Debug, Clone)]
pub struct SysfsLed {
    dir: PathBuf,
}

impl SysfsLed {
    /// The LED in `dir` (not touched until a pattern is set).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn write(&self, file: &str, value: &str) -> Result<(), LedError> {
        let path = self.dir.join(file);
        std::fs::write(&path, value).map_err(|source| LedError::Sysfs { path, source })
    }

    fn max_brightness(&self) -> String {
        std::fs::read_to_string(self.dir.join("max_brightness"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| s.parse::<u32>().is_ok_and(|v| v > 0))
            .unwrap_or_else(|| "1".into())
    }

    /// Shows `p`; a blink is the kernel's timer trigger, so it goes on without the agent.
    pub fn set(&self, p: Pattern) -> Result<(), LedError> {
        match p {
            Pattern::Off => {
                self.write("trigger", "none")?;
                self.write("brightness", "0")
            }
            Pattern::On => {
                self.write("trigger", "none")?;
                self.write("brightness", &self.max_brightness())
            }
            Pattern::Heartbeat => self.write("trigger", "heartbeat"),
            Pattern::SlowBlink | Pattern::FastBlink => {
                let (on, off) = p.blink().unwrap_or_default();
                // The kernel creates delay_on/delay_off when the timer trigger is set.
                self.write("trigger", "timer")?;
                self.write("delay_on", &on.as_millis().to_string())?;
                self.write("delay_off", &off.as_millis().to_string())
            }
        }
    }
}

/// The levels a GPIO LED goes through for a pattern: (level, how long), repeated; a steady
/// pattern is one step.
pub fn gpio_steps(p: Pattern) -> Vec<(bool, Option<Duration>)> {
    match p {
        Pattern::Off => vec![(false, None)],
        Pattern::On => vec![(true, None)],
        Pattern::SlowBlink | Pattern::FastBlink => {
            let (on, off) = p.blink().unwrap_or_default();
            vec![(true, Some(on)), (false, Some(off))]
        }
        // The kernel's heartbeat: two short flashes, then a pause.
        Pattern::Heartbeat => vec![
            (true, Some(Duration::from_millis(70))),
            (false, Some(Duration::from_millis(180))),
            (true, Some(Duration::from_millis(70))),
            (false, Some(Duration::from_millis(680))),
        ],
    }
}

/// Checks the `[[led]]` entries of a profile.
pub fn check(leds: &[LedSpec]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for (i, l) in leds.iter().enumerate() {
        let n = i + 1;
        if l.sysfs.is_some() == l.line.is_some() {
            return Err(format!("led #{n}: give exactly one of sysfs and line"));
        }
        match (l.role, l.slot) {
            (LedRole::Modem, None) => {
                return Err(format!("led #{n}: a modem LED needs its slot"));
            }
            (LedRole::System | LedRole::Uplink, Some(_)) => {
                return Err(format!("led #{n}: only a modem LED has a slot"));
            }
            _ => {}
        }
        if !seen.insert((l.role as u8, l.slot)) {
            return Err(format!("led #{n}: a second LED for the same role and slot"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_led(dir: &Path) -> SysfsLed {
        for f in ["trigger", "brightness", "delay_on", "delay_off"] {
            std::fs::write(dir.join(f), "").unwrap();
        }
        std::fs::write(dir.join("max_brightness"), "255\n").unwrap();
        SysfsLed::new(dir)
    }

    fn read(dir: &Path, f: &str) -> String {
        std::fs::read_to_string(dir.join(f)).unwrap()
    }

    #[test]
    fn every_pattern_is_written_as_the_kernel_wants_it() {
        let d = tempfile::tempdir().unwrap();
        let led = fake_led(d.path());
        led.set(Pattern::On).unwrap();
        assert_eq!(
            (read(d.path(), "trigger"), read(d.path(), "brightness")),
            ("none".into(), "255".into())
        );
        led.set(Pattern::SlowBlink).unwrap();
        assert_eq!(
            (
                read(d.path(), "trigger"),
                read(d.path(), "delay_on"),
                read(d.path(), "delay_off")
            ),
            ("timer".into(), "1000".into(), "1000".into())
        );
        led.set(Pattern::FastBlink).unwrap();
        assert_eq!(read(d.path(), "delay_on"), "100");
        led.set(Pattern::Heartbeat).unwrap();
        assert_eq!(read(d.path(), "trigger"), "heartbeat");
        led.set(Pattern::Off).unwrap();
        assert_eq!(
            (read(d.path(), "trigger"), read(d.path(), "brightness")),
            ("none".into(), "0".into())
        );
    }

    #[test]
    fn a_missing_led_is_an_error_not_a_panic() {
        let led = SysfsLed::new("/nonexistent/leds/x");
        assert!(led.set(Pattern::On).is_err());
    }

    #[test]
    fn profiles_name_one_led_per_role_and_slot() {
        let l = |role, slot, sysfs: bool| LedSpec {
            role,
            slot,
            sysfs: sysfs.then(|| PathBuf::from("/sys/class/leds/a")),
            line: (!sysfs).then_some(3),
        };
        assert!(
            check(&[
                l(LedRole::System, None, true),
                l(LedRole::Modem, Some(1), false)
            ])
            .is_ok()
        );
        assert!(check(&[l(LedRole::Modem, None, true)]).is_err());
        assert!(check(&[l(LedRole::Uplink, Some(1), true)]).is_err());
        assert!(
            check(&[
                l(LedRole::Uplink, None, true),
                l(LedRole::Uplink, None, false)
            ])
            .is_err()
        );
        assert_eq!(gpio_steps(Pattern::FastBlink).len(), 2);
    }
}
