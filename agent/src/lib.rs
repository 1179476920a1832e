//! gsmgw-agent: the application — configuration, modem channels, uplink, console.

pub mod channel;
pub mod clock;
pub mod config;
pub mod console;
pub mod runtime;
pub mod state;
pub mod uplink;

pub use runtime::{Agent, AgentError, AgentOptions};
