//! gsmgw-agent: the application — configuration, modem channels, uplink, console.

pub mod channel;
pub mod clock;
pub mod commands;
pub mod config;
pub mod console;
pub mod events;
pub mod runtime;
pub mod sms_in;
pub mod sms_out;
pub mod state;
pub mod store;
pub mod uplink;

pub use runtime::{Agent, AgentError, AgentOptions};
