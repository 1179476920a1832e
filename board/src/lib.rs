//! gsmgw-board: the board's hardware — modem power/reset pins and board profiles — over
//! embedded-hal traits. Knows nothing of modem protocols.

// No unwrap()/expect() outside tests: a run-time failure gets an error, not a panic.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod pin;
pub mod power;
pub mod profile;

pub use pin::{GpioPin, PinError, PowerPin, SocketPin};
pub use power::{ModemPower, PowerError, PulseStep};
pub use profile::{BoardProfile, ModemPins, ProfileError};
