//! Modem simulator on a pseudo-terminal (feature `sim`).
//!
//! A faithful 3GPP 27.007/27.005 modem, quirks included, used as the test double by every
//! end-to-end test: it lives on a pty whose slave is symlinked at [`SimOptions::link`], and is
//! steered through JSON-line control messages (a Unix socket and [`SimHandle::control`]).
//! With [`SimOptions::voice_link`] a second pty carries the call's PCM voice (sim/voice.rs).
//! See docs/modemsim.md for the commands, the control messages and what is not modelled.

mod call;
mod clock;
mod control;
mod device;
mod dialect;
mod identity;
mod network;
mod parse;
mod pty;
mod runner;
mod sms;
mod ussd;
mod voice;

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use dialect::Dialect;

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A pseudo-terminal operation failed.
    #[error("pty: {0}")]
    Pty(#[from] nix::Error),
    /// File-system or socket I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The simulator task has stopped.
    #[error("simulator stopped")]
    Stopped,
    /// A control message was answered with `{"ok":false}`.
    #[error("control message rejected: {0}")]
    Rejected(String),
    /// An option is invalid.
    #[error("invalid option: {0}")]
    Option(String),
}

impl SimError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        SimError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Unknown dialect name.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown dialect {0:?} (expected generic, quectel, simcom, huawei, zte, simcom2g, telit, \
     ublox, sierra or fibocom)"
)]
pub struct UnknownDialect(pub String);

impl UnknownDialect {
    /// Parses a dialect name as the simulator's command line takes it (any case).
    pub fn parse(s: &str) -> Result<Dialect, UnknownDialect> {
        s.parse::<Dialect>()
            .map_err(|_| UnknownDialect(s.to_string()))
    }
}

/// Options of one simulated modem.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Symlink to the pty slave; replaced atomically on every (re)plug.
    pub link: PathBuf,
    /// Unix socket for JSON-line control messages.
    pub control: Option<PathBuf>,
    /// Vendor dialect (identity strings, URCs, quirks).
    pub dialect: Dialect,
    /// IMEI (15 digits).
    pub imei: String,
    /// IMSI of the SIM.
    pub imsi: String,
    /// ICCID of the SIM (as printed on the card).
    pub iccid: String,
    /// Numeric MCC+MNC of the home network, e.g. "25501".
    pub operator: String,
    /// SIM PIN; None = no PIN required.
    pub pin: Option<String>,
    /// SIM-related commands answer "SIM busy" for this long after each start.
    pub sim_busy_secs: f64,
    /// Network registration delay after the SIM is ready.
    pub register_delay_ms: u64,
    /// CSQ rssi (0-31, 99 unknown).
    pub rssi: u8,
    /// SMS service centre address (+CSCA).
    pub smsc: String,
    /// Period of unsolicited signal reports (None = off).
    pub signal_urc_interval_ms: Option<u64>,
    /// Time the port is gone after AT+CFUN=1,1 or a `reboot`.
    pub reboot_ms: u64,
    /// Symlink to a second pty carrying the call's voice as 8 kHz 16-bit LE PCM (like a
    /// Quectel's /dev/ttyUSB4); None = no voice port.
    pub voice_link: Option<PathBuf>,
    /// Commands the firmware refuses with `ERROR` (`AT+CGMR`, `AT+CCID`; a name alone refuses
    /// all its forms), like a modem whose firmware lacks them. The `reject` op changes them.
    pub reject: Vec<String>,
    /// Other vendors' ICCID commands this modem answers as well as its dialect's own
    /// (`AT+ICCID`, `AT+CCID`, `AT+QCCID`, `AT+CICCID`, `AT^ICCID?`, `AT+ZGETICCID`, `AT#CCID`,
    /// `AT!ICCID?`, `AT+CRSM=176,12258,0,0,10`). The `iccid-forms` op changes them.
    pub iccid_forms: Vec<String>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            link: std::env::temp_dir().join("gsmgw-modemsim"),
            control: None,
            dialect: Dialect::Generic,
            imei: "861234567890128".into(),
            imsi: "255011234567890".into(),
            iccid: "8938001234567890123".into(),
            operator: "25501".into(),
            pin: None,
            sim_busy_secs: 1.0,
            register_delay_ms: 300,
            rssi: 20,
            smsc: "+380672021111".into(),
            signal_urc_interval_ms: None,
            reboot_ms: 1000,
            voice_link: None,
            reject: Vec::new(),
            iccid_forms: Vec::new(),
        }
    }
}

/// A request to the simulator task.
pub(crate) enum Request {
    /// A control message and where to send its reply.
    Control(Value, oneshot::Sender<Value>),
    /// Stop the simulator (removes the link and the control socket).
    Shutdown,
}

/// Entry point: spawns simulated modems.
pub struct Simulator;

impl Simulator {
    /// Start a simulated modem on the current tokio runtime.
    pub async fn spawn(opts: SimOptions) -> Result<SimHandle, SimError> {
        runner::spawn(opts).await
    }
}

/// Handle to a running simulated modem.
pub struct SimHandle {
    link: PathBuf,
    tx: mpsc::Sender<Request>,
    task: JoinHandle<()>,
    control_task: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// Send a control message; the reply is the same JSON the control socket gives.
    pub async fn control(&self, msg: Value) -> Result<Value, SimError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Request::Control(msg, tx))
            .await
            .map_err(|_| SimError::Stopped)?;
        rx.await.map_err(|_| SimError::Stopped)
    }

    /// Send a control message; a `{"ok":false}` reply becomes [`SimError::Rejected`].
    pub async fn control_ok(&self, msg: Value) -> Result<Value, SimError> {
        let reply = self.control(msg).await?;
        if reply.get("ok").and_then(Value::as_bool) == Some(true) {
            Ok(reply)
        } else {
            let why = reply
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown error");
            Err(SimError::Rejected(why.to_string()))
        }
    }

    /// The symlink to the current pty slave.
    pub fn link(&self) -> &Path {
        &self.link
    }

    /// Stop the simulator, removing the link and the control socket.
    pub async fn shutdown(self) {
        let _ = self.tx.send(Request::Shutdown).await;
        let _ = self.task.await;
        if let Some(t) = self.control_task {
            t.abort();
            let _ = t.await;
        }
    }
}

/// Run a simulator until SIGINT/SIGTERM (the `gsmgw modemsim` process), removing the link on exit.
pub async fn run(opts: SimOptions) -> Result<(), SimError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).map_err(|e| SimError::io("SIGINT handler", e))?;
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| SimError::io("SIGTERM handler", e))?;
    let handle = Simulator::spawn(opts).await?;
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    handle.shutdown().await;
    Ok(())
}
