//! gsmgw-agent: the application — configuration, modem channels, uplink, console.

pub mod config;
