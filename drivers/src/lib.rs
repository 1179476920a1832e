//! gsmgw-drivers: the protocols a gateway speaks — the AT engine, modem dialects, the SMS PDU
//! codec — and (feature `sim`) a faithful modem simulator on a pseudo-terminal.
//!
//! This crate knows nothing of SQLite, MQTT or policy: those live in gsmgw-agent.

// No unwrap()/expect() outside tests: a run-time failure gets an error, not a panic.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod at;
pub mod modem;
pub mod pdu;
pub mod redact;
#[cfg(feature = "sim")]
pub mod sim;
pub mod sip;
pub mod voice;
