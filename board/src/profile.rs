//! Board profiles (TOML): which GPIO lines drive each modem slot's power, and how to pulse.

use serde::Deserialize;

use crate::pin::{GpioPin, PowerPin, SocketPin};
use crate::power::{ModemPower, PulseStep};

/// A board: its name and one entry per modem slot.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardProfile {
    /// Board name, e.g. "gw4-rpi".
    pub name: String,
    /// GPIO character device, e.g. "/dev/gpiochip0".
    #[serde(default = "default_chip")]
    pub gpiochip: String,
    /// Per-slot pins.
    #[serde(default)]
    pub modem: Vec<ModemPins>,
    /// Status LEDs.
    #[serde(default)]
    pub led: Vec<crate::led::LedSpec>,
    /// A hardware watchdog device (e.g. "/dev/watchdog") the agent feeds while it turns.
    #[serde(default)]
    pub watchdog: Option<std::path::PathBuf>,
}

/// Power wiring of one modem slot: a GPIO line, or (simulated boards) a pin socket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModemPins {
    /// The 1-based slot.
    pub slot: u16,
    /// GPIO line offset of the modem's power enable / power key on `gpiochip`.
    #[serde(default)]
    pub power_line: Option<u32>,
    /// A Unix socket that takes pin levels (the modem simulator's control socket).
    #[serde(default)]
    pub power_socket: Option<std::path::PathBuf>,
    /// Sequence for a power cycle (hard reset), e.g. low 2000 ms then high.
    pub power_cycle: Vec<PulseStep>,
}

fn default_chip() -> String {
    "/dev/gpiochip0".into()
}

/// Why a profile is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// Not valid TOML or not the schema.
    #[error("board profile: {0}")]
    Parse(String),
    /// Two entries for one slot, or an empty sequence.
    #[error("board profile: {0}")]
    Invalid(String),
}

impl BoardProfile {
    /// Parses and checks a profile.
    pub fn parse(text: &str) -> Result<Self, ProfileError> {
        let p: BoardProfile =
            toml::from_str(text).map_err(|e| ProfileError::Parse(e.to_string()))?;
        let mut seen = std::collections::BTreeSet::new();
        for m in &p.modem {
            if !seen.insert(m.slot) {
                return Err(ProfileError::Invalid(format!(
                    "slot {} listed twice",
                    m.slot
                )));
            }
            if m.power_line.is_some() == m.power_socket.is_some() {
                return Err(ProfileError::Invalid(format!(
                    "slot {}: give exactly one of power_line and power_socket",
                    m.slot
                )));
            }
            if m.power_cycle.is_empty() {
                return Err(ProfileError::Invalid(format!(
                    "slot {}: empty power_cycle",
                    m.slot
                )));
            }
        }
        crate::led::check(&p.led).map_err(ProfileError::Invalid)?;
        Ok(p)
    }

    /// The pins of a slot.
    pub fn slot(&self, slot: u16) -> Option<&ModemPins> {
        self.modem.iter().find(|m| m.slot == slot)
    }

    /// Reads and checks a profile file.
    pub fn load(path: &std::path::Path) -> Result<Self, ProfileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ProfileError::Parse(format!("{}: {e}", path.display())))?;
        Self::parse(&text)
    }

    /// The power control of a slot, if the board wires one. The pin is requested now (high:
    /// powered) so a missing GPIO line shows at start, not at the first reset.
    pub fn power_for(&self, slot: u16) -> Result<Option<ModemPower<PowerPin>>, ProfileError> {
        let Some(m) = self.slot(slot) else {
            return Ok(None);
        };
        let pin = match (&m.power_socket, m.power_line) {
            (Some(sock), _) => PowerPin::Socket(SocketPin::new(sock)),
            (None, Some(line)) => PowerPin::Gpio(
                GpioPin::open(&self.gpiochip, line, true)
                    .map_err(|e| ProfileError::Invalid(e.to_string()))?,
            ),
            (None, None) => return Ok(None),
        };
        ModemPower::new(pin, m.power_cycle.clone())
            .map(Some)
            .map_err(|e| ProfileError::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_profile_and_rejects_duplicates() {
        let text = r#"
name = "gw4"
[[modem]]
slot = 1
power_line = 17
power_cycle = [{ high = true, hold_ms = 1200 }, { high = false, hold_ms = 3000 }]
"#;
        let p = BoardProfile::parse(text).unwrap();
        assert_eq!(p.gpiochip, "/dev/gpiochip0");
        assert_eq!(p.slot(1).unwrap().power_line, Some(17));
        let dup = format!(
            "{text}\n[[modem]]\nslot = 1\npower_line = 18\npower_cycle = [{{ high = true, hold_ms = 1 }}]\n"
        );
        assert!(BoardProfile::parse(&dup).is_err());
        assert!(BoardProfile::parse("name = 1").is_err());
    }
}
