//! gsmgw — the agent of a GSM/SIP gateway box. This file is the command line.

mod demo;
mod pdu_cli;
mod ussd_cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use gsmgw_agent::config::{self, ConfigError, LogFormat};
use gsmgw_drivers::at::{self, Command};
use gsmgw_drivers::modem::{Dialect, Modem};

/// The full version line: version, git describe, target triple, build profile.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("GSMGW_GIT_DESCRIBE"),
    ", ",
    env!("GSMGW_TARGET"),
    ", ",
    env!("GSMGW_PROFILE"),
    ")"
);

#[derive(Parser)]
#[command(name = "gsmgw", version = VERSION, about = "Agent of a GSM/SIP gateway box")]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the agent with a configuration file.
    Run {
        /// Configuration file.
        #[arg(long, short, default_value = config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Run the agent against 4 simulated modems (data in ./gsmgw-demo/).
    Demo(demo::DemoArgs),
    /// Identify a modem and print its status as JSON.
    Probe {
        #[command(flatten)]
        port: PortArgs,
        /// Force a dialect instead of detecting it.
        #[arg(long)]
        dialect: Option<Dialect>,
    },
    /// Send one AT command and print the answer.
    At {
        #[command(flatten)]
        port: PortArgs,
        /// Seconds to wait for each command's final result.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
        /// One or more commands, sent in order, e.g. AT+CSQ AT+COPS?.
        #[arg(required = true)]
        commands: Vec<String>,
    },
    /// Send a USSD string (e.g. *111#), answer its menus, print the exchange and a JSON line.
    Ussd(ussd_cli::UssdArgs),
    /// SMS PDU tools: decode and encode, as JSON.
    Pdu {
        #[command(subcommand)]
        cmd: pdu_cli::PduCmd,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Run a simulated modem on a pseudo-terminal.
    Modemsim(Box<SimArgs>),
    /// Print an argon2id hash of a console password for `[console] password_hash`; the
    /// password is read from the terminal without echo, or as one line of stdin.
    PasswdHash,
}

#[derive(Args)]
pub(crate) struct PortArgs {
    /// The modem's AT port (serial device or pseudo-terminal link).
    #[arg(long)]
    pub(crate) port: String,
    /// Baud rate.
    #[arg(long, default_value_t = 115200)]
    pub(crate) baud: u32,
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Check a configuration file; prints every problem with file, line and key.
    Check {
        /// The file.
        file: PathBuf,
    },
}

#[derive(Args)]
struct SimArgs {
    /// Where to put the symlink to the pseudo-terminal.
    #[arg(long)]
    link: PathBuf,
    /// Unix socket for JSON-line control messages.
    #[arg(long)]
    control: Option<PathBuf>,
    /// generic, quectel, simcom, huawei, zte, simcom2g, telit, ublox, sierra or fibocom.
    #[arg(long, default_value = "generic")]
    dialect: String,
    /// IMEI.
    #[arg(long)]
    imei: Option<String>,
    /// IMSI.
    #[arg(long)]
    imsi: Option<String>,
    /// ICCID.
    #[arg(long)]
    iccid: Option<String>,
    /// Operator MCC+MNC, e.g. 25501.
    #[arg(long)]
    operator: Option<String>,
    /// SIM PIN (none: no PIN asked).
    #[arg(long)]
    pin: Option<String>,
    /// Seconds the SIM answers "busy" (+CME ERROR: 14) after each start.
    #[arg(long)]
    sim_busy_secs: Option<f64>,
    /// Milliseconds until network registration after the SIM is ready.
    #[arg(long)]
    register_delay_ms: Option<u64>,
    /// Send unsolicited signal reports every this many milliseconds.
    #[arg(long)]
    signal_urc_interval_ms: Option<u64>,
    /// Where to put the symlink to the voice PCM pty (8 kHz 16-bit LE mono, 20 ms frames).
    #[arg(long)]
    voice_link: Option<PathBuf>,
    /// A command the firmware refuses with ERROR (repeatable), e.g. AT+CGMR.
    #[arg(long, value_name = "COMMAND")]
    reject: Vec<String>,
    /// Another vendor's ICCID command the modem answers too (repeatable), e.g. AT#CCID.
    #[arg(long, value_name = "COMMAND")]
    iccid_form: Vec<String>,
}

/// The log's rate limiter, for the last report of what it held back at exit.
static LOG_LIMIT: std::sync::OnceLock<gsmgw_agent::logfmt::RateLimit> = std::sync::OnceLock::new();

fn init_logging(json: bool) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("GSMGW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // Repeated lines are limited (with their count reported) before any layer writes them.
    let limit = LOG_LIMIT.get_or_init(gsmgw_agent::logfmt::RateLimit::default);
    if let Err(e) = limit.spawn_reporter() {
        eprintln!("gsmgw: log limiter without its reporter: {e}");
    }
    // The console's `log` command reads the last lines from this ring.
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(limit.clone())
        .with(gsmgw_agent::console::LogRingLayer);
    if json {
        registry.with(fmt.json()).init();
    } else {
        // Every value escaped: bytes from modems and the network reach the log printable.
        registry
            .with(fmt.fmt_fields(gsmgw_agent::logfmt::EscapedFields))
            .init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gsmgw: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match cli.cmd {
        Cmd::Config {
            cmd: ConfigCmd::Check { file },
        } => config_check(&file),
        Cmd::PasswdHash => passwd_hash(),
        Cmd::Pdu { cmd } => match pdu_cli::run(cmd) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("gsmgw: {e:#}");
                ExitCode::from(1)
            }
        },
        cmd => {
            let json = cli.log_json;
            let code = match rt.block_on(dispatch(cmd, json)) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("gsmgw: {e:#}");
                    ExitCode::from(1)
                }
            };
            // What the limiter held back is reported before the process ends.
            if let Some(limit) = LOG_LIMIT.get() {
                limit.flush(true);
            }
            code
        }
    }
}

async fn dispatch(cmd: Cmd, log_json: bool) -> Result<ExitCode> {
    if matches!(cmd, Cmd::Run { .. } | Cmd::Demo(_)) {
        // Nothing the agent creates (database, WAL, recordings, a saved config) is for others.
        gsmgw_agent::private::restrict_umask();
    }
    match cmd {
        Cmd::Run { config } => {
            let cfg = match config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    if let ConfigError::Invalid(problems) = &e {
                        for p in problems {
                            eprintln!("{p}");
                        }
                    }
                    eprintln!("gsmgw: {}; not started", config_failure(&config, &e));
                    return Ok(ExitCode::from(1));
                }
            };
            init_logging(log_json || cfg.gateway.log_format == LogFormat::Json);
            if let Some(w) = config::secrets_exposed(&config, &cfg) {
                tracing::warn!("{w}");
            }
            run_agent(cfg, config).await
        }
        Cmd::Demo(args) => {
            init_logging(log_json);
            demo::run(args).await
        }
        Cmd::Probe { port, dialect } => probe(&port, dialect).await,
        Cmd::At {
            port,
            timeout,
            commands,
        } => at_command(&port, timeout, &commands).await,
        Cmd::Ussd(args) => ussd_cli::run(args).await,
        Cmd::Modemsim(args) => {
            init_logging(log_json);
            modemsim(*args).await
        }
        Cmd::Config { .. } | Cmd::Pdu { .. } | Cmd::PasswdHash => Ok(ExitCode::from(2)),
    }
}

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn run_agent(cfg: config::Config, path: PathBuf) -> Result<ExitCode> {
    let mut cfg = cfg;
    let mut previous: Option<config::Config> = None;
    // Under systemd (Type=notify): READY, STATUS, watchdog pings while every task turns.
    let hardware = gsmgw_agent::watchdog::HardwareWatchdog::from_config(&cfg);
    let watchdog = gsmgw_agent::watchdog::Watchdog::from_env(hardware).map(std::sync::Arc::new);
    loop {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let started = gsmgw_agent::Agent::start_with_file(
            cfg.clone(),
            Some(path.clone()),
            gsmgw_agent::AgentOptions {
                version: VERSION.to_string(),
                timings: Default::default(),
                console: true,
            },
            stop_rx,
        );
        let agent = match (started, previous.take()) {
            (Ok(a), _) => a,
            (Err(e), Some(prev)) => {
                // A restart from the console with a file that does not start: keep the box
                // reachable with what ran before.
                tracing::error!(error = %e, "the saved configuration does not start; starting with the previous one");
                cfg = prev;
                continue;
            }
            (Err(e), None) => return Err(e.into()),
        };
        if let Some(w) = watchdog.clone() {
            let (view, events, live) = (agent.view(), agent.events(), agent.liveness());
            let stop = stop_tx.subscribe();
            tokio::spawn(async move { w.serve(view, events, live, stop).await });
        }
        let restart = tokio::select! {
            _ = termination() => false,
            _ = gsmgw_agent::console::restart_requested().notified() => true,
        };
        if let Some(w) = &watchdog {
            if restart {
                w.notify("RELOADING=1\nSTATUS=restarting");
            } else {
                w.stopping();
            }
        }
        tracing::info!(restart, "stopping");
        let _ = stop_tx.send(true);
        let events = agent.events();
        agent.wait().await;
        if !restart {
            return Ok(ExitCode::SUCCESS);
        }
        // One writer per database: the old store is closed before the new agent opens it.
        if let Err(e) = events.store().close().await {
            tracing::warn!(error = %e, "store did not close cleanly");
        }
        drop(events);
        match config::load(&path) {
            Ok(c) => previous = Some(std::mem::replace(&mut cfg, c)),
            Err(e) => {
                tracing::error!(error = %e, "the configuration file does not load; restarting with the previous one");
            }
        }
    }
}

/// `gsmgw passwd-hash`: reads a password (twice, without echo, on a terminal) and prints
/// its argon2id hash.
fn passwd_hash() -> ExitCode {
    use gsmgw_agent::console::auth;
    let pw = if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let first = match auth::read_password_no_echo("New console password: ") {
            Ok(p) => p,
            Err(e) => {
                eprintln!("gsmgw: cannot read the password: {e}");
                return ExitCode::from(1);
            }
        };
        match auth::read_password_no_echo("Again: ") {
            Ok(p) if p == first => first,
            Ok(_) => {
                eprintln!("gsmgw: the two passwords differ");
                return ExitCode::from(1);
            }
            Err(e) => {
                eprintln!("gsmgw: cannot read the password: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        let mut line = String::new();
        if let Err(e) = std::io::stdin().read_line(&mut line) {
            eprintln!("gsmgw: cannot read the password: {e}");
            return ExitCode::from(1);
        }
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if let Err(e) = auth::check_new_password(&pw) {
        eprintln!("gsmgw: password refused: {e}");
        return ExitCode::from(1);
    }
    match auth::hash_password(&pw) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gsmgw: {e}");
            ExitCode::from(1)
        }
    }
}

/// A config that cannot be used, in one line (the problems themselves are listed before it).
fn config_failure(file: &std::path::Path, e: &ConfigError) -> String {
    match e {
        ConfigError::Invalid(problems) => {
            format!("{}: {} problem(s)", file.display(), problems.len())
        }
        other => other.to_string(),
    }
}

fn config_check(file: &std::path::Path) -> ExitCode {
    match config::load(file) {
        Ok(cfg) => {
            // Warnings, not errors: `gsmgw run` starts with such a config (and warns too).
            if let Some(w) = config::secrets_exposed(file, &cfg) {
                println!("warning: {w}");
            }
            for w in cfg.warnings().into_iter().chain(cfg.missing_ports()) {
                println!("{}: warning: {w}", file.display());
            }
            println!(
                "{}: ok (gateway {}, {} modem(s))",
                file.display(),
                cfg.gateway.id,
                cfg.modems.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            if let ConfigError::Invalid(problems) = &e {
                for p in problems {
                    println!("{p}");
                }
            }
            eprintln!("gsmgw: {}", config_failure(file, &e));
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

pub(crate) async fn open_engine(
    port: &PortArgs,
) -> Result<(at::AtHandle, tokio::sync::mpsc::Receiver<at::Urc>)> {
    let p = gsmgw_drivers::modem::open_port(&port.port, port.baud)
        .with_context(|| format!("cannot open {}", port.port))?;
    Ok(at::spawn(p, gsmgw_drivers::modem::engine_config()))
}

async fn probe(port: &PortArgs, dialect: Option<Dialect>) -> Result<ExitCode> {
    let (h, _urcs) = open_engine(port).await?;
    let mut modem = Modem::new(h, Dialect::Generic);
    if let Err(e) = modem.sync().await {
        bail!("no modem answers on {} ({e})", port.port);
    }
    let id = modem.identify(dialect).await?;
    let sim = modem.sim_state().await?;
    let status = if sim == gsmgw_drivers::modem::SimState::Ready {
        Some(modem.network_status().await?)
    } else {
        None
    };
    /// What `probe` prints.
    #[derive(serde::Serialize)]
    struct Probed<'a, D: serde::Serialize, I: serde::Serialize> {
        port: &'a str,
        dialect: D,
        identity: I,
        sim: &'a str,
        registration: Option<&'a str>,
        operator: Option<&'a str>,
        operator_numeric: Option<&'a str>,
        signal_dbm: Option<i32>,
    }
    let out = Probed {
        port: &port.port,
        dialect: modem.dialect(),
        identity: &id,
        sim: sim.as_str(),
        registration: status.as_ref().map(|s| s.registration.as_str()),
        operator: status.as_ref().map(|s| s.operator.as_str()),
        operator_numeric: status.as_ref().map(|s| s.operator_numeric.as_str()),
        signal_dbm: status.as_ref().and_then(|s| s.signal_dbm),
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

async fn at_command(port: &PortArgs, timeout: f64, commands: &[String]) -> Result<ExitCode> {
    if !(0.0..=600.0).contains(&timeout) {
        bail!("--timeout must be between 0 and 600 seconds");
    }
    let (h, mut urcs) = open_engine(port).await?;
    for command in commands {
        let result = h
            .send(Command::new(command.as_str()).timeout(Duration::from_secs_f64(timeout)))
            .await;
        while let Ok(u) = urcs.try_recv() {
            eprintln!("URC {u:?}");
        }
        match result {
            Ok(r) => {
                for l in &r.lines {
                    println!("{l}");
                }
                println!(
                    "{}",
                    match r.final_result {
                        at::Final::Ok => "OK",
                        at::Final::Connect => "CONNECT",
                        at::Final::Implied => "(no final result)",
                    }
                );
            }
            Err(e) => {
                println!("{e}");
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn modemsim(a: SimArgs) -> Result<ExitCode> {
    use gsmgw_drivers::sim::{self, SimOptions};
    let mut o = SimOptions {
        link: a.link,
        control: a.control,
        dialect: sim::UnknownDialect::parse(&a.dialect).map_err(|e| anyhow::anyhow!("{e}"))?,
        ..SimOptions::default()
    };
    if let Some(v) = a.imei {
        o.imei = v;
    }
    if let Some(v) = a.imsi {
        o.imsi = v;
    }
    if let Some(v) = a.iccid {
        o.iccid = v;
    }
    if let Some(v) = a.operator {
        o.operator = v;
    }
    o.pin = a.pin;
    if let Some(v) = a.sim_busy_secs {
        o.sim_busy_secs = v;
    }
    if let Some(v) = a.register_delay_ms {
        o.register_delay_ms = v;
    }
    o.signal_urc_interval_ms = a.signal_urc_interval_ms;
    o.voice_link = a.voice_link;
    o.reject = a.reject;
    o.iccid_forms = a.iccid_form;
    let control = o.control.clone();
    let dialect = o.dialect;
    let sim = sim::Simulator::spawn(o).await?;
    // Say where it is: the link, the pty behind it, the control socket.
    let pty = std::fs::read_link(sim.link())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "?".into());
    println!(
        "modemsim: {} modem on {} (pty {pty}){}; Ctrl-C stops it",
        dialect.name(),
        sim.link().display(),
        control
            .map(|c| format!(", control socket {}", c.display()))
            .unwrap_or_default()
    );
    termination().await;
    sim.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
