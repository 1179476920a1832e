//! gsmgw-agent: the application — configuration, modem channels, uplink, console.

pub mod actor;
pub mod balance;
pub mod campaign;
pub mod channel;
pub mod clock;
pub mod commands;
pub mod config;
pub mod console;
pub mod events;
pub mod fault;
pub mod leds;
pub mod logfmt;
pub mod logring;
pub mod netwatch;
pub mod private;
pub mod proto;
pub mod quiet;
pub mod recordings;
pub mod runtime;
pub mod sdnotify;
pub mod sms_in;
pub mod sms_out;
pub mod sms_status;
pub mod state;
pub mod store;
pub mod tls;
pub mod uplink;
pub mod voice;
pub mod watchdog;

pub use runtime::{Agent, AgentError, AgentOptions};

/// Fixtures for unit tests of one actor: a real store in a temp dir.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::sync::Arc;

    use crate::events::Events;
    use crate::store::{Store, StoreOptions};

    /// Events over a fresh store in its own temp dir (kept alive by the returned guard).
    pub fn events() -> (tempfile::TempDir, Events) {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(StoreOptions::in_dir(dir.path()), "gw-test").unwrap();
        (
            dir,
            Events::new(store, Arc::new(tokio::sync::Notify::new())),
        )
    }
}
