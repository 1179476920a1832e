//! gsmgw-drivers: the protocols a gateway speaks — the AT engine, modem dialects, the SMS PDU
//! codec — and (feature `sim`) a faithful modem simulator on a pseudo-terminal.
//!
//! This crate knows nothing of SQLite, MQTT or policy: those live in gsmgw-agent.

pub mod at;
pub mod modem;
pub mod pdu;
pub mod redact;
#[cfg(feature = "sim")]
pub mod sim;
pub mod sip;
pub mod ussd;
pub mod voice;
