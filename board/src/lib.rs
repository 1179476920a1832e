//! gsmgw-board: the board's hardware — modem power/reset pins and board profiles — over
//! embedded-hal traits. Knows nothing of modem protocols.

pub mod led;
pub mod pin;
pub mod power;
pub mod profile;

pub use led::{LedError, LedRole, LedSpec, Pattern, SysfsLed};
pub use pin::{GpioPin, PinError, PowerPin, SocketPin};
pub use power::{ModemPower, PowerError, PulseStep};
pub use profile::{BoardProfile, ModemPins, ProfileError};
