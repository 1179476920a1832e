//! gsmgw-agent: the application — configuration, modem channels, uplink, console.

// No unwrap()/expect() outside tests: a run-time failure gets an error, not a panic.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod campaign;
pub mod channel;
pub mod clock;
pub mod commands;
pub mod config;
pub mod console;
pub mod events;
pub mod logfmt;
pub mod netwatch;
pub mod private;
pub mod quiet;
pub mod runtime;
pub mod sms_in;
pub mod sms_out;
pub mod state;
pub mod store;
pub mod tls;
pub mod uplink;
pub mod voice;

pub use runtime::{Agent, AgentError, AgentOptions};
