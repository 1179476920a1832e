//! The technician console: a login and a small command language on a serial port (picocom,
//! minicom, PuTTY), a pseudo-terminal, or stdin.
//!
//! - Login: the password is checked against `console.password_hash` (argon2 or bcrypt).
//!   Failures cost a growing delay and then a lockout that outlives the session. A box with
//!   no password asks for a new one at the first login on a serial console and stores its
//!   hash in the configuration file. Idle sessions are logged out.
//! - Input is edited here (the console echoes; BS/DEL, Ctrl-C, Ctrl-U, CR/LF/CRLF), bounded
//!   per line and never trusted: binary garbage yields "unknown command".
//! - Commands see the running agent through [`ConsoleContext`]: raw AT and resets go through
//!   the slot's channel (serialised with the agent's own commands), SMS are queued as jobs
//!   exactly like the MQTT `sms-send` command, configuration changes are validated like
//!   `gsmgw config check` and applied by restarting only what they touch.

pub mod auth;
pub mod cfgedit;
mod commands;
pub mod line;
mod session;
mod terminal;
mod views;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc, watch};

pub use crate::logring::{LogRing, LogRingLayer, log_ring};
pub use views::AgentView;

use crate::channel::ChannelRequest;
use crate::config::Config;
use crate::events::Events;
use crate::uplink::UplinkControl;
use auth::{LoginGuard, LoginPolicy};
use cfgedit::ConfigEditor;
use terminal::Term;

/// The log target of every part of the console: its lines read as they did when it was one file.
const LOG_TARGET: &str = module_path!();

/// Longest accepted input line; a longer one is refused whole ("line too long, nothing done";
/// the terminal's bell rings once when it goes past).
pub const MAX_LINE: usize = 512;

/// What the console needs of the running agent.
pub struct ConsoleContext {
    /// Status and modem pictures.
    pub view: AgentView,
    /// The store (jobs, stats) and its wake-ups.
    pub events: Events,
    /// Each enabled slot's request queue.
    pub slots: Vec<(u16, mpsc::Sender<ChannelRequest>)>,
    /// The configuration the agent started with.
    pub config: Config,
    /// The file it was read from, if any.
    pub config_path: Option<PathBuf>,
    /// Restarts the uplink with new MQTT settings.
    pub uplink: UplinkControl,
    /// The command registry: the console's `sms` and `campaign` go through it like MQTT's.
    pub commands: crate::commands::Registry,
    /// Recent log lines.
    pub logs: Arc<LogRing>,
}

/// Notified when a technician asks for a restart of the agent (`restart`); the process's
/// main loop stops the agent and starts it again with the saved configuration.
pub fn restart_requested() -> &'static tokio::sync::Notify {
    static RESTART: std::sync::OnceLock<tokio::sync::Notify> = std::sync::OnceLock::new();
    RESTART.get_or_init(tokio::sync::Notify::new)
}

/// Serves the console as `[console] device` says; None when it is `none`.
pub fn spawn(
    ctx: ConsoleContext,
    shutdown: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let device = ctx.config.console.device.clone();
    let baud = ctx.config.console.baud;
    let console = Console::new(ctx, LoginPolicy::default());
    match device.as_str() {
        "none" => None,
        "stdin" => Some(tokio::spawn(async move {
            let mut term = Term::new(tokio::io::stdin(), tokio::io::stdout(), false);
            term.local_tty = std::io::IsTerminal::is_terminal(&std::io::stdin());
            let mut sd = shutdown;
            tokio::select! {
                r = console.serve(&mut term) => if let Err(e) = r {
                    tracing::warn!(error = %e, "console ended");
                },
                _ = sd.changed() => {}
            }
        })),
        dev => {
            let dev = dev.to_string();
            Some(tokio::spawn(async move {
                let mut sd = shutdown;
                tokio::select! {
                    _ = serve_tty(console, &dev, baud) => {}
                    _ = sd.changed() => {}
                }
            }))
        }
    }
}

/// Serves a serial device for good: opened again after it fails or vanishes (USB-serial).
async fn serve_tty(console: Console, device: &str, baud: u32) {
    let mut warned = false;
    loop {
        match gsmgw_drivers::modem::open_port(device, baud) {
            Ok(port) => {
                warned = false;
                tracing::info!(%device, baud, "console serving");
                let (r, w) = tokio::io::split(port);
                let mut term = Term::new(r, w, true);
                if let Err(e) = console.serve(&mut term).await {
                    tracing::warn!(%device, error = %e, "console port failed; opening it again");
                }
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(%device, error = %e, "cannot open the console port; retrying");
                    warned = true;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// State shared by all sessions of one console.
struct Shared {
    guard: LoginGuard,
    editor: ConfigEditor,
    /// The guard was loaded from the store.
    guard_restored: bool,
}

/// One console: its context and the state that outlives sessions.
#[derive(Clone)]
struct Console {
    ctx: Arc<ConsoleContext>,
    shared: Arc<Mutex<Shared>>,
}

enum Login {
    In,
    Closed,
}

impl Console {
    fn new(ctx: ConsoleContext, policy: LoginPolicy) -> Self {
        let editor = ConfigEditor::new(ctx.config_path.clone(), &ctx.config);
        Self {
            ctx: Arc::new(ctx),
            shared: Arc::new(Mutex::new(Shared {
                guard: LoginGuard::new(policy),
                editor,
                guard_restored: false,
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::commands::{COMMANDS, HELP, rest_after};
    use super::views::{human_bytes, ms_to_rfc3339, uptime};
    use std::time::Duration;

    #[test]
    fn helpers() {
        assert_eq!(
            rest_after("sms send 1 +380501234567  hello  world ", 4),
            "hello  world"
        );
        assert_eq!(rest_after("at 1 AT+CSQ", 2), "AT+CSQ");
        assert_eq!(rest_after("at 1", 2), "");
        assert_eq!(uptime(Duration::from_secs(93_784)), "1d 02:03:04");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(ms_to_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(ms_to_rfc3339(1_764_198_000_000), "2025-11-26T23:00:00Z");
        for (cmd, _, _) in COMMANDS {
            assert!(HELP.contains(cmd));
        }
    }
}
