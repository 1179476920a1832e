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
pub mod line;
mod logring;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Mutex, mpsc, oneshot, watch};

pub use logring::{LogRing, LogRingLayer, log_ring};

use crate::config::Config;
use crate::events::Events;
use crate::runtime::UplinkControl;
use crate::sms_out::ChannelRequest;
use crate::state::{ChannelState, ModemSnapshot};
use crate::store::{NewJob, StoreError, Submitted};
use crate::uplink::UplinkStatus;
use auth::{LoginGuard, LoginPolicy, Penalty};
use cfgedit::ConfigEditor;
use line::{Edit, LineEditor};

/// Longest accepted input line; a longer one is refused whole ("line too long, nothing done";
/// the terminal's bell rings once when it goes past).
pub const MAX_LINE: usize = 512;
/// A Ctrl-D logs out only when it is a key on its own: the first byte after the prompt, with
/// nothing after it for this long. Inside a burst of bytes (garbage, a device talking on the
/// wrong port) it is garbage like any control byte.
const LONE_KEY: Duration = Duration::from_millis(150);
/// How long `at` waits for the modem's final result.
const AT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `config apply` waits for the uplink to connect with new settings.
const APPLY_WAIT: Duration = Duration::from_secs(20);

/// Read-only view of the running agent.
#[derive(Clone)]
pub struct AgentView {
    /// Gateway id.
    pub gateway_id: String,
    /// Version line.
    pub version: String,
    /// When the agent started.
    pub started: Instant,
    /// Every slot's picture.
    pub modems: Vec<watch::Receiver<ModemSnapshot>>,
    /// The uplink's state.
    pub uplink: watch::Receiver<UplinkStatus>,
    /// Where the broker is.
    pub broker: String,
    /// SIP trunk and calls in progress (None in views built without voice).
    pub voice: Option<crate::voice::VoiceView>,
}

impl AgentView {
    /// Current pictures of all slots.
    pub fn snapshots(&self) -> Vec<ModemSnapshot> {
        self.modems.iter().map(|r| r.borrow().clone()).collect()
    }

    /// The uplink line of `status`.
    fn mqtt_text(&self, broker: &str) -> String {
        let up = self.uplink.borrow().clone();
        if up.connected {
            format!("connected to {broker} ({} connects)", up.connects)
        } else {
            format!(
                "not connected to {broker} ({})",
                up.last_error.unwrap_or_else(|| "connecting".into())
            )
        }
    }

    /// The `status` text (without store and disk figures).
    pub fn status_text(&self) -> String {
        let snaps = self.snapshots();
        let ready = snaps
            .iter()
            .filter(|s| s.state == ChannelState::Ready)
            .count();
        let mut out = format!(
            "gateway {}\nversion {}\nuptime  {}\nmqtt    {}\nmodems  {} configured, {} ready\n",
            self.gateway_id,
            self.version,
            uptime(self.started.elapsed()),
            self.mqtt_text(&self.broker),
            snaps.len(),
            ready
        );
        out.push_str(&self.voice_text());
        out
    }

    /// The `sip` and `calls` lines of `status`.
    pub fn voice_text(&self) -> String {
        match &self.voice {
            Some(v) => {
                let calls = v.calls.lock().map(|c| c.len()).unwrap_or(0);
                format!(
                    "sip     {}\ncalls   {calls} in progress\n",
                    v.sip.borrow().as_str()
                )
            }
            None => String::new(),
        }
    }

    /// The `modems` text: one line per slot.
    pub fn modems_text(&self) -> String {
        let mut out = String::new();
        for s in self.snapshots() {
            out.push_str(&s.summary());
            out.push('\n');
        }
        if out.is_empty() {
            out.push_str("no modems configured\n");
        }
        out
    }
}

fn uptime(d: Duration) -> String {
    let s = d.as_secs();
    let (days, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d {h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

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

/// What a read at a prompt gave.
#[derive(Debug, PartialEq, Eq)]
enum Input {
    Line(String),
    /// A line that carried control bytes or escape sequences (see `line::Edit::Garbled`).
    Garbled(String),
    /// A line over [`MAX_LINE`]: refused whole.
    TooLong,
    Cancelled,
    /// Ctrl-D on an empty line.
    CtrlD,
    /// The input ended (stdin closed).
    Eof,
    Idle,
}

/// A terminal: bytes in through the line editor, text out (LF as CRLF on serial lines).
struct Term<R, W> {
    r: R,
    w: W,
    serial: bool,
    /// stdin is a terminal: its own echo is switched off for passwords.
    local_tty: bool,
    pending: VecDeque<u8>,
    ed: LineEditor,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Term<R, W> {
    fn new(r: R, w: W, serial: bool) -> Self {
        Self {
            r,
            w,
            serial,
            local_tty: false,
            pending: VecDeque::new(),
            ed: LineEditor::new(MAX_LINE, serial),
        }
    }

    async fn write(&mut self, text: &str) -> std::io::Result<()> {
        if self.serial {
            let mut out = Vec::with_capacity(text.len() + 16);
            for b in text.bytes() {
                if b == b'\n' {
                    out.push(b'\r');
                }
                out.push(b);
            }
            self.w.write_all(&out).await?;
        } else {
            self.w.write_all(text.as_bytes()).await?;
        }
        self.w.flush().await
    }

    /// Drops what was typed ahead (after a failed login, nothing typed meanwhile counts).
    fn discard_typeahead(&mut self) {
        self.pending.clear();
        self.ed.clear();
    }

    /// Reads one line; `echo` is off for passwords; `idle` ends the wait.
    async fn read_line(&mut self, echo: bool, idle: Option<Duration>) -> std::io::Result<Input> {
        let _quiet = (!echo && self.local_tty).then(StdinEchoOff::new).flatten();
        self.read_line_inner(echo, idle).await
    }

    async fn read_line_inner(
        &mut self,
        echo: bool,
        idle: Option<Duration>,
    ) -> std::io::Result<Input> {
        self.ed.set_echo(echo && self.serial);
        let mut echoed = Vec::new();
        // Nothing typed ahead of the prompt: a Ctrl-D now may be a key on its own.
        let fresh = self.pending.is_empty() && self.ed.is_empty();
        let mut fed = 0usize;
        loop {
            while let Some(b) = self.pending.pop_front() {
                fed += 1;
                let Some(edit) = self.ed.feed(b, &mut echoed) else {
                    continue;
                };
                if !echoed.is_empty() && self.serial {
                    self.w.write_all(&echoed).await?;
                    self.w.flush().await?;
                }
                echoed.clear();
                return Ok(match edit {
                    Edit::Line(l) => Input::Line(l),
                    Edit::Garbled(l) => Input::Garbled(l),
                    Edit::TooLong => Input::TooLong,
                    Edit::Cancelled => Input::Cancelled,
                    Edit::Eof => {
                        if fresh && fed == 1 && self.pending.is_empty() {
                            match self.quiet_for(LONE_KEY).await? {
                                Some(true) => return Ok(Input::CtrlD),
                                None => return Ok(Input::Eof),
                                Some(false) => {}
                            }
                        }
                        // Part of a burst: garbage on this line, not a logout.
                        self.ed.taint();
                        continue;
                    }
                });
            }
            if !echoed.is_empty() && self.serial {
                self.w.write_all(&echoed).await?;
                self.w.flush().await?;
            }
            echoed.clear();
            let mut buf = [0u8; 256];
            let n = match idle {
                Some(d) => match tokio::time::timeout(d, self.r.read(&mut buf)).await {
                    Ok(r) => r?,
                    Err(_) => return Ok(Input::Idle),
                },
                None => self.r.read(&mut buf).await?,
            };
            if n == 0 {
                return Ok(Input::Eof);
            }
            self.pending.extend(&buf[..n]);
        }
    }

    /// Waits up to `d` for input: `Some(true)` when none came, `Some(false)` when some did
    /// (kept for the line editor), `None` when the input ended.
    async fn quiet_for(&mut self, d: Duration) -> std::io::Result<Option<bool>> {
        let mut buf = [0u8; 256];
        match tokio::time::timeout(d, self.r.read(&mut buf)).await {
            Err(_) => Ok(Some(true)),
            Ok(Ok(0)) => Ok(None),
            Ok(Ok(n)) => {
                self.pending.extend(&buf[..n]);
                Ok(Some(false))
            }
            Ok(Err(e)) => Err(e),
        }
    }
}

/// Switches the echo of the terminal on stdin off until dropped.
struct StdinEchoOff(nix::sys::termios::Termios);

impl StdinEchoOff {
    fn new() -> Option<Self> {
        use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        quiet.local_flags.insert(LocalFlags::ECHONL);
        tcsetattr(&stdin, SetArg::TCSANOW, &quiet).ok()?;
        Some(Self(saved))
    }
}

impl Drop for StdinEchoOff {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.0,
        );
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

    async fn password_hash(&self) -> Option<String> {
        self.shared
            .lock()
            .await
            .editor
            .running()
            .console
            .password_hash
            .clone()
    }

    async fn idle(&self) -> Duration {
        let secs = self
            .shared
            .lock()
            .await
            .editor
            .running()
            .console
            .idle_logout_secs;
        Duration::from_secs(u64::from(secs.max(1)))
    }

    /// Loads the failed-login guard from the store once (a restart does not end a lockout).
    async fn restore_guard(&self) {
        let mut shared = self.shared.lock().await;
        if shared.guard_restored {
            return;
        }
        match self.ctx.events.store().console_auth().await {
            Ok(stored) => {
                shared.guard.restore(stored, unix_ms_now());
                shared.guard_restored = true;
                if let Some(left) = shared.guard.locked_for() {
                    tracing::warn!(
                        lock_secs = left.as_secs() + 1,
                        "console still locked after repeated failed logins"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "console login guard not loaded"),
        }
    }

    /// Counts a failed login, stores the guard and says what the failure costs.
    async fn login_failed(&self) -> Penalty {
        let (penalty, stored) = {
            let mut shared = self.shared.lock().await;
            let p = shared.guard.failed();
            (p, shared.guard.to_stored(unix_ms_now()))
        };
        self.store_guard(stored).await;
        penalty
    }

    /// A successful login: the guard forgives everything (stored when it had anything).
    async fn login_succeeded(&self) {
        let before = {
            let mut shared = self.shared.lock().await;
            let before = shared.guard.to_stored(unix_ms_now());
            shared.guard.succeeded();
            before
        };
        if before != crate::store::ConsoleAuth::default() {
            self.store_guard(crate::store::ConsoleAuth::default()).await;
        }
    }

    async fn store_guard(&self, state: crate::store::ConsoleAuth) {
        if let Err(e) = self.ctx.events.store().set_console_auth(state).await {
            tracing::warn!(error = %e, "console login guard not stored");
        }
    }

    /// Sessions one after another until the input ends.
    async fn serve<R, W>(&self, term: &mut Term<R, W>) -> std::io::Result<()>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        self.restore_guard().await;
        loop {
            match self.login(term).await? {
                Login::Closed => return Ok(()),
                Login::In => {}
            }
            if !self.session(term).await? {
                return Ok(());
            }
        }
    }

    async fn banner<R, W>(&self, term: &mut Term<R, W>) -> std::io::Result<()>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        term.write(&format!(
            "\n{} console (gsmgw {})\n",
            self.ctx.view.gateway_id, self.ctx.view.version
        ))
        .await
    }

    async fn login<R, W>(&self, term: &mut Term<R, W>) -> std::io::Result<Login>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        self.banner(term).await?;
        loop {
            let Some(hash) = self.password_hash().await else {
                if !term.serial {
                    // stdin: the operator already has the machine.
                    return Ok(Login::In);
                }
                return self.first_password(term).await;
            };
            let locked = self.shared.lock().await.guard.locked_for();
            if let Some(left) = locked {
                term.write(&format!(
                    "console locked after repeated failed logins; try again in {} s\n",
                    left.as_secs() + 1
                ))
                .await?;
                // Wait for the lock to end or for a key; nothing typed now is checked.
                match tokio::time::timeout(left, term.read_line(false, None)).await {
                    Ok(Ok(Input::Eof)) => return Ok(Login::Closed),
                    Ok(Err(e)) => return Err(e),
                    _ => {}
                }
                term.discard_typeahead();
                continue;
            }
            // Only a line typed at this prompt is an attempt: what arrived before it is not.
            term.discard_typeahead();
            term.write("Password: ").await?;
            let pw = match term.read_line(false, None).await? {
                Input::Line(l) => l,
                Input::Eof => return Ok(Login::Closed),
                // Control bytes or an overlong line cannot be a password (none can hold
                // them): garbage, not a guess, so not counted.
                Input::Garbled(_) => {
                    term.write("\ngarbled input ignored\n").await?;
                    continue;
                }
                Input::TooLong => {
                    term.write("\nline too long, nothing done\n").await?;
                    continue;
                }
                Input::Cancelled | Input::Idle | Input::CtrlD => continue,
            };
            term.write("\n").await?;
            if pw.is_empty() {
                continue;
            }
            if verify(pw, hash).await {
                self.login_succeeded().await;
                tracing::info!("console login");
                term.write("logged in; type help\n").await?;
                return Ok(Login::In);
            }
            let penalty = self.login_failed().await;
            match penalty {
                Penalty::Delay(d) => {
                    tracing::warn!("console login failed");
                    tokio::time::sleep(d).await;
                    term.discard_typeahead();
                    term.write("wrong password\n").await?;
                }
                Penalty::Locked(d) => {
                    tracing::warn!(
                        lock_secs = d.as_secs(),
                        "console locked after repeated failed logins"
                    );
                    term.discard_typeahead();
                    term.write("wrong password\n").await?;
                }
            }
        }
    }

    /// A box with no password: the first technician on the serial line chooses one.
    async fn first_password<R, W>(&self, term: &mut Term<R, W>) -> std::io::Result<Login>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        term.write(&format!(
            "No console password is set on this box. Choose one now (at least {} characters).\n",
            auth::MIN_PASSWORD_LEN
        ))
        .await?;
        loop {
            match self.choose_password(term).await? {
                Some(Ok(where_)) => {
                    term.write(&format!("password set ({where_}); type help\n"))
                        .await?;
                    return Ok(Login::In);
                }
                Some(Err(e)) => term.write(&format!("{e}\n")).await?,
                None => return Ok(Login::Closed),
            }
        }
    }

    /// Asks for a new password twice and stores its hash. None: input ended.
    async fn choose_password<R, W>(
        &self,
        term: &mut Term<R, W>,
    ) -> std::io::Result<Option<Result<String, String>>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut answers = Vec::new();
        for prompt in ["New password: ", "Again: "] {
            term.write(prompt).await?;
            match term.read_line(false, None).await? {
                Input::Line(l) => answers.push(l),
                Input::Eof => return Ok(None),
                Input::Garbled(_) => {
                    return Ok(Some(Err("\ngarbled input ignored; nothing changed".into())));
                }
                Input::TooLong => return Ok(Some(Err("\nline too long, nothing done".into()))),
                Input::Cancelled | Input::Idle | Input::CtrlD => {
                    return Ok(Some(Err("cancelled".into())));
                }
            }
            term.write("\n").await?;
        }
        if answers[0] != answers[1] {
            return Ok(Some(
                Err("the two passwords differ; nothing changed".into()),
            ));
        }
        if let Err(e) = auth::check_new_password(&answers[0]) {
            return Ok(Some(Err(format!("password refused: {e}"))));
        }
        let pw = answers.swap_remove(0);
        let hash = match tokio::task::spawn_blocking(move || auth::hash_password(&pw)).await {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => return Ok(Some(Err(format!("cannot hash the password: {e}")))),
            Err(e) => return Ok(Some(Err(format!("cannot hash the password: {e}")))),
        };
        let stored = self.shared.lock().await.editor.store_password_hash(&hash);
        tracing::info!("console password changed");
        Ok(Some(Ok(stored.unwrap_or_else(|e| {
            format!("in effect now, but not stored: {e}")
        }))))
    }

    /// Commands until exit, idle logout or end of input; false when the input ended.
    async fn session<R, W>(&self, term: &mut Term<R, W>) -> std::io::Result<bool>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let prompt = format!("{}> ", self.ctx.view.gateway_id);
        loop {
            // Without a password (stdin) an idle logout would only print noise.
            let idle = match self.password_hash().await {
                Some(_) => Some(self.idle().await),
                None if term.serial => Some(self.idle().await),
                None => None,
            };
            term.write(&prompt).await?;
            let line = match term.read_line(true, idle).await? {
                // Arrow keys and stray control bytes were dropped from the line: it runs.
                Input::Line(l) | Input::Garbled(l) => l,
                Input::TooLong => {
                    term.write(&format!(
                        "line too long, nothing done (at most {MAX_LINE} bytes)\n"
                    ))
                    .await?;
                    continue;
                }
                Input::Cancelled => continue,
                Input::CtrlD => {
                    term.write("bye\n").await?;
                    return Ok(true);
                }
                Input::Eof => return Ok(false),
                Input::Idle => {
                    term.write(&format!(
                        "\nidle for {} s: logged out\n",
                        idle.unwrap_or_default().as_secs()
                    ))
                    .await?;
                    return Ok(true);
                }
            };
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.first().copied() {
                None => continue,
                Some("exit" | "quit" | "logout") => {
                    term.write("bye\n").await?;
                    // A serial line gets a login prompt again; stdin's console ends.
                    return Ok(term.serial);
                }
                Some("passwd") => {
                    let out = self.passwd(term).await?;
                    term.write(&out).await?;
                }
                Some(_) => {
                    let out = self.execute(line.trim()).await;
                    term.write(&out).await?;
                }
            }
        }
    }

    /// `passwd`: the current password (if any), then the new one twice.
    async fn passwd<R, W>(&self, term: &mut Term<R, W>) -> std::io::Result<String>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        if let Some(hash) = self.password_hash().await {
            term.write("Current password: ").await?;
            let pw = match term.read_line(false, None).await? {
                Input::Line(l) => l,
                _ => return Ok("\ncancelled\n".into()),
            };
            term.write("\n").await?;
            if !verify(pw, hash).await {
                let penalty = self.login_failed().await;
                if let Penalty::Delay(d) = penalty {
                    tokio::time::sleep(d).await;
                }
                term.discard_typeahead();
                return Ok("wrong password; nothing changed\n".into());
            }
        }
        Ok(match self.choose_password(term).await? {
            Some(Ok(where_)) => format!("password changed ({where_})\n"),
            Some(Err(e)) => format!("{e}\n"),
            None => "cancelled\n".into(),
        })
    }

    /// Runs one command line (everything but `exit` and `passwd`) and returns its output.
    async fn execute(&self, line: &str) -> String {
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap_or("");
        let args: Vec<&str> = words.collect();
        match (cmd, args.as_slice()) {
            ("help" | "?", _) => HELP.to_string(),
            ("status", []) => self.status().await,
            ("modems", []) => self.ctx.view.modems_text(),
            ("calls", []) => match &self.ctx.view.voice {
                Some(v) => v.calls_text(),
                None => "voice is not running\n".to_string(),
            },
            ("modem", [n]) => match self.snapshot(n) {
                Ok(s) => serde_json::to_string_pretty(&s)
                    .map(|j| j + "\n")
                    .unwrap_or_else(|e| format!("error: {e}\n")),
                Err(e) => e,
            },
            ("at", [n, _, ..]) => {
                let command = rest_after(line, 2);
                self.at(n, command).await
            }
            ("sms", ["send", target, number, _, ..]) => {
                let text = rest_after(line, 4);
                self.sms_send(target, number, text).await
            }
            ("sms", ["recent"]) => self.sms_recent().await,
            ("queue", []) => self.queue().await,
            ("reset", ["modem", n]) => self.reset(n).await,
            ("restart", []) => self.restart().await,
            ("log", []) => self.log("20"),
            ("log", [n]) => self.log(n),
            ("config", [sub, ..]) => self.config(sub, line).await,
            ("campaign", ["list"]) => self.campaign_list().await,
            ("campaign", [action @ ("pause" | "resume" | "cancel"), id]) => {
                self.campaign_control(action, id).await
            }
            (
                "status" | "modems" | "modem" | "at" | "sms" | "queue" | "reset" | "log"
                | "campaign",
                _,
            ) => {
                format!("usage: {}\n", usage(cmd))
            }
            (other, _) => {
                let shown: String = other.chars().filter(|c| !c.is_control()).take(32).collect();
                format!("unknown command {shown:?}; try help\n")
            }
        }
    }

    fn snapshot(&self, n: &str) -> Result<ModemSnapshot, String> {
        let slot: u16 = n
            .parse()
            .map_err(|_| format!("error: {n:?} is not a slot number\n"))?;
        self.ctx
            .view
            .snapshots()
            .into_iter()
            .find(|s| s.slot == slot)
            .ok_or_else(|| format!("error: no modem in slot {slot}\n"))
    }

    fn sender(&self, n: &str) -> Result<(u16, mpsc::Sender<ChannelRequest>), String> {
        let slot: u16 = n
            .parse()
            .map_err(|_| format!("error: {n:?} is not a slot number\n"))?;
        self.ctx
            .slots
            .iter()
            .find(|(s, _)| *s == slot)
            .map(|(s, tx)| (*s, tx.clone()))
            .ok_or_else(|| format!("error: no enabled modem in slot {slot}\n"))
    }

    async fn status(&self) -> String {
        let v = &self.ctx.view;
        let snaps = v.snapshots();
        let ready = snaps
            .iter()
            .filter(|s| s.state == ChannelState::Ready)
            .count();
        let outbox = match self.ctx.events.store().stats().await {
            Ok(s) => {
                let jobs: Vec<String> = s
                    .jobs_by_state
                    .iter()
                    .filter(|(state, _)| matches!(state.as_str(), "queued" | "sending"))
                    .map(|(state, n)| format!("{n} {state}"))
                    .collect();
                format!(
                    "{} events waiting ({} bytes){}",
                    s.rows,
                    s.bytes,
                    if jobs.is_empty() {
                        String::new()
                    } else {
                        format!("; jobs {}", jobs.join(", "))
                    }
                )
            }
            Err(e) => format!("store error: {e}"),
        };
        let data_dir = &self.ctx.config.gateway.data_dir;
        let disk = match nix::sys::statvfs::statvfs(data_dir.as_path()) {
            // fsblkcnt_t and c_ulong are 32 bits on armv7: widen explicitly.
            #[allow(clippy::useless_conversion)]
            Ok(st) => {
                let free = u64::from(st.blocks_available()) * u64::from(st.fragment_size());
                let total = u64::from(st.blocks()) * u64::from(st.fragment_size());
                format!(
                    "{} free of {} in {}",
                    human_bytes(free),
                    human_bytes(total),
                    data_dir.display()
                )
            }
            Err(e) => format!("unknown for {} ({e})", data_dir.display()),
        };
        format!(
            "gateway {}\nversion {}\nuptime  {}\nmqtt    {}\noutbox  {}\ndisk    {}\nmodems  {} configured, {} ready\n",
            v.gateway_id,
            v.version,
            uptime(v.started.elapsed()),
            v.mqtt_text(&self.ctx.uplink.broker()),
            outbox,
            disk,
            snaps.len(),
            ready
        ) + &v.voice_text()
    }

    async fn at(&self, n: &str, command: &str) -> String {
        let (slot, tx) = match self.sender(n) {
            Ok(x) => x,
            Err(e) => return e,
        };
        if !command
            .get(..2)
            .is_some_and(|p| p.eq_ignore_ascii_case("AT"))
        {
            return "error: the command must start with AT\n".into();
        }
        let (reply, rx) = oneshot::channel();
        let req = ChannelRequest::At {
            command: command.to_string(),
            timeout: AT_TIMEOUT,
            reply,
        };
        tracing::info!(slot, "console AT command");
        match ask(&tx, req, rx, AT_TIMEOUT + Duration::from_secs(5)).await {
            Ok(Ok(lines)) => lines.join("\n") + "\n",
            Ok(Err(e)) => format!("error: {e}\n"),
            Err(e) => format!("error: slot {slot}: {e}\n"),
        }
    }

    async fn reset(&self, n: &str) -> String {
        let (slot, tx) = match self.sender(n) {
            Ok(x) => x,
            Err(e) => return e,
        };
        let (reply, rx) = oneshot::channel();
        tracing::warn!(slot, "modem reset requested at the console");
        match ask(
            &tx,
            ChannelRequest::Reset { reply },
            rx,
            Duration::from_secs(15),
        )
        .await
        {
            Ok(Ok(())) => format!("slot {slot}: reset started; `modems` shows it coming back\n"),
            Ok(Err(e)) => format!("error: {e}\n"),
            Err(e) => format!("error: slot {slot}: {e}\n"),
        }
    }

    async fn sms_send(&self, target: &str, number: &str, text: &str) -> String {
        let slots: Vec<u16> = self.ctx.config.modems.iter().map(|m| m.slot).collect();
        let slot = if target == "auto" {
            Value::Null
        } else {
            match target.parse::<u64>() {
                Ok(s) => json!(s),
                Err(_) => return format!("usage: {}\n", usage("sms")),
            }
        };
        let request_id = format!("console-{}", uuid::Uuid::now_v7().simple());
        let payload = json!({"request_id": request_id, "to": number, "text": text, "slot": slot});
        let cmd = match crate::commands::parse(
            "sms-send",
            payload.to_string().as_bytes(),
            &crate::commands::Context::with_slots(&slots),
        ) {
            Ok(c) => c,
            Err(rej) => return format!("refused ({}): {}\n", rej.code, rej.message),
        };
        let parts = cmd.payload["parts"].clone();
        let job = NewJob {
            request_id: cmd.request_id.clone(),
            verb: cmd.verb.clone(),
            payload: cmd.payload,
            slot: cmd.slot,
            state: "queued".into(),
            outcome: None,
            event: None,
        };
        match self.ctx.events.store().submit_job(job).await {
            Ok(Submitted::New { job_id, .. }) | Ok(Submitted::Existing { job_id, .. }) => {
                tracing::info!(request_id = %cmd.request_id, job_id, "SMS queued at the console");
                self.ctx.events.committed();
                self.ctx.events.job_queued();
                format!(
                    "queued as job {job_id} (request {}, {parts} part(s)); `sms recent` shows its state\n",
                    cmd.request_id
                )
            }
            Err(StoreError::Full { rows, bytes }) => format!(
                "refused: the store is full ({rows} events, {bytes} bytes waiting for the broker)\n"
            ),
            Err(e) => format!("error: {e}\n"),
        }
    }

    /// The most recently changed `sms-send` jobs, newest first.
    async fn sms_recent(&self) -> String {
        let store = self.ctx.events.store();
        let states = match store.stats().await {
            Ok(s) => s.jobs_by_state.into_keys().collect::<Vec<_>>(),
            Err(e) => return format!("error: {e}\n"),
        };
        let mut jobs = Vec::new();
        for state in states {
            match store.jobs_in_state(&state, 10_000).await {
                Ok(j) => jobs.extend(j.into_iter().filter(|j| j.verb == "sms-send")),
                Err(e) => return format!("error: {e}\n"),
            }
        }
        if jobs.is_empty() {
            return "no SMS sent or queued\n".into();
        }
        jobs.sort_by_key(|j| std::cmp::Reverse((j.updated_ms, j.job_id)));
        let mut out = String::from("job    state     slot  to                parts  changed\n");
        for j in jobs.iter().take(15) {
            let slot = j
                .outcome
                .as_ref()
                .and_then(|o| o["slot"].as_u64())
                .or(j.slot.map(u64::from))
                .map(|s| s.to_string())
                .unwrap_or_else(|| "auto".into());
            let err = j
                .outcome
                .as_ref()
                .and_then(|o| o["error"].as_str())
                .map(|e| format!("  ({e})"))
                .unwrap_or_default();
            out.push_str(&format!(
                "{:<6} {:<9} {:<5} {:<17} {:<6} {}{}\n",
                j.job_id,
                j.state,
                slot,
                j.payload["to"].as_str().unwrap_or("?"),
                j.payload["parts"],
                ms_to_rfc3339(j.updated_ms),
                err
            ));
        }
        out.push_str("(received SMS go to the central server; see `log` for their arrival)\n");
        out
    }

    /// `restart`: the agent stops and starts again with the saved configuration.
    async fn restart(&self) -> String {
        let shared = self.shared.lock().await;
        if shared.editor.path().is_none() {
            return "restart is not available: the agent runs without a configuration file\n"
                .into();
        }
        if shared.editor.unsaved() {
            return "the working copy has unsaved changes: `config save` them (or `config revert`) first\n".into();
        }
        drop(shared);
        tracing::warn!("agent restart requested at the console");
        restart_requested().notify_one();
        "restarting the agent with the saved configuration; log in again in a few seconds\n".into()
    }

    /// Campaigns, newest first, with their recipients counted by state.
    async fn campaign_list(&self) -> String {
        let store = self.ctx.events.store();
        let campaigns = match store.campaigns().await {
            Ok(c) => c,
            Err(e) => return format!("error: {e}\n"),
        };
        if campaigns.is_empty() {
            return "no campaigns\n".into();
        }
        let mut out = String::new();
        for c in campaigns.iter().take(20) {
            let counts = match store.campaign_counts(&c.campaign_id).await {
                Ok(n) => n
                    .iter()
                    .map(|(state, n)| format!("{state} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                Err(e) => format!("error: {e}"),
            };
            out.push_str(&format!(
                "{:<24} {:<9} created {}  {}\n",
                c.campaign_id,
                c.state,
                ms_to_rfc3339(c.created_ms),
                counts
            ));
        }
        if campaigns.len() > 20 {
            out.push_str(&format!("… and {} older\n", campaigns.len() - 20));
        }
        out
    }

    /// `campaign pause|resume|cancel ID`, exactly as `cmd/campaign-control` does it.
    async fn campaign_control(&self, action: &str, id: &str) -> String {
        let mut obj = serde_json::Map::new();
        obj.insert("campaign_id".into(), json!(id));
        obj.insert("action".into(), json!(action));
        match crate::campaign::control(&self.ctx.events, &obj).await {
            Ok(r) => {
                tracing::info!(campaign_id = %id, %action, "campaign changed at the console");
                format!(
                    "campaign {id}: {}{}\n",
                    r["state"].as_str().unwrap_or("?"),
                    match r["cancelled"].as_u64() {
                        Some(n) if n > 0 => format!(" ({n} queued messages cancelled)"),
                        _ => String::new(),
                    }
                )
            }
            Err((code, message)) => format!("refused ({code}): {message}\n"),
        }
    }

    async fn queue(&self) -> String {
        let store = self.ctx.events.store();
        let stats = match store.stats().await {
            Ok(s) => s,
            Err(e) => return format!("error: {e}\n"),
        };
        let mut out = format!(
            "outbox: {} events ({} bytes) waiting for the broker\njobs by state:\n",
            stats.rows, stats.bytes
        );
        if stats.jobs_by_state.is_empty() {
            out.push_str("  (none)\n");
        }
        for (state, n) in &stats.jobs_by_state {
            out.push_str(&format!("  {state:<10} {n}\n"));
        }
        for state in ["sending", "queued"] {
            if let Ok(jobs) = store.jobs_in_state(state, 10).await {
                for j in jobs {
                    out.push_str(&format!(
                        "  {state} job {} {} {} (request {})\n",
                        j.job_id,
                        j.verb,
                        j.payload["to"].as_str().unwrap_or(""),
                        j.request_id
                    ));
                }
            }
        }
        out
    }

    fn log(&self, n: &str) -> String {
        let Ok(n) = n.parse::<usize>() else {
            return format!("usage: {}\n", usage("log"));
        };
        let lines = self.ctx.logs.last(n.clamp(1, logring::CAPACITY));
        if lines.is_empty() {
            return "no log lines yet\n".into();
        }
        lines.join("\n") + "\n"
    }

    async fn config(&self, sub: &str, line: &str) -> String {
        let mut shared = self.shared.lock().await;
        let ed = &mut shared.editor;
        match sub {
            "show" => ed.show(),
            "get" => match line.split_whitespace().nth(2) {
                Some(key) => ed.get(key).map(|v| v + "\n").unwrap_or_else(|e| e + "\n"),
                None => "usage: config get KEY\n".into(),
            },
            "set" => {
                let Some(key) = line.split_whitespace().nth(2) else {
                    return "usage: config set KEY VALUE\n".into();
                };
                let value = rest_after(line, 3);
                if value.is_empty() {
                    return "usage: config set KEY VALUE (config unset KEY removes it)\n".into();
                }
                match ed.set(key, value) {
                    Ok(()) => format!(
                        "{key} set (not saved; `config diff`, `config save`, `config apply`)\n"
                    ),
                    Err(e) => format!("refused, nothing changed:\n{e}\n"),
                }
            }
            "unset" => match line.split_whitespace().nth(2) {
                Some(key) => match ed.unset(key) {
                    Ok(()) => format!("{key} removed (not saved)\n"),
                    Err(e) => format!("refused, nothing changed:\n{e}\n"),
                },
                None => "usage: config unset KEY\n".into(),
            },
            "diff" => ed.diff(),
            "save" => match ed.save() {
                Ok(p) => format!("saved to {} (previous file kept as .bak)\n", p.display()),
                Err(e) => format!("not saved: {e}\n"),
            },
            "revert" => match ed.revert() {
                Ok(()) => "working copy thrown away; it is the saved file again\n".into(),
                Err(e) => format!("error: {e}\n"),
            },
            "apply" => {
                let new = match ed.pending_config() {
                    Ok(c) => c,
                    Err(e) => return format!("not applied:\n{e}\n"),
                };
                let changes = ed.changes(&new);
                if changes.is_empty() {
                    return "nothing to apply: the agent runs with this configuration\n".into();
                }
                let mut out = String::new();
                let mut running = ed.running().clone();
                if changes.console_live {
                    running.console.password_hash = new.console.password_hash.clone();
                    running.console.idle_logout_secs = new.console.idle_logout_secs;
                    out.push_str("console: password and idle logout in effect now\n");
                }
                let unsaved = ed.unsaved();
                if changes.mqtt {
                    // Restarting the uplink must not hold the console's state.
                    let previous = running.mqtt.clone();
                    running.mqtt = new.mqtt.clone();
                    ed.set_running(running.clone());
                    drop(shared);
                    let (restarted, text) =
                        self.apply_mqtt(new.mqtt.clone(), previous.clone()).await;
                    out.push_str(&text);
                    if !restarted {
                        running.mqtt = previous;
                    }
                    self.shared.lock().await.editor.set_running(running);
                } else {
                    ed.set_running(running);
                }
                if !changes.need_restart.is_empty() {
                    out.push_str(&format!(
                        "needs a restart of the agent to take effect: {} (`config save`, then `restart`)\n",
                        changes.need_restart.join(", ")
                    ));
                }
                if unsaved {
                    out.push_str("not saved yet: `config save` keeps it across restarts\n");
                }
                out
            }
            _ => format!("usage: {}\n", usage("config")),
        }
    }

    /// Restarts the uplink with `mqtt` and waits a while for it to connect.
    /// Restarts the uplink with `mqtt` and waits a while for it to connect. If it was
    /// connected before and the new settings do not connect, it goes back to `previous` (a
    /// typo must not cut the box off). True when `mqtt` is what runs afterwards.
    async fn apply_mqtt(
        &self,
        mqtt: crate::config::MqttConfig,
        previous: crate::config::MqttConfig,
    ) -> (bool, String) {
        let was_connected = self.ctx.view.uplink.borrow().connected;
        if let Err(e) = self.ctx.uplink.restart(mqtt).await {
            return (false, format!("mqtt: not applied: {e}\n"));
        }
        let broker = self.ctx.uplink.broker();
        match self.wait_connected().await {
            Ok(()) => (
                true,
                format!("mqtt: applied; uplink reconnected to {broker}\n"),
            ),
            Err(err) if was_connected => {
                tracing::warn!(error = %err, "new MQTT settings did not connect; going back");
                let back = match self.ctx.uplink.restart(previous).await {
                    Ok(()) => match self.wait_connected().await {
                        Ok(()) => "reconnected with them".to_string(),
                        Err(e) => format!("not connected yet: {e}"),
                    },
                    Err(e) => format!("cannot restart the uplink: {e}"),
                };
                (
                    false,
                    format!(
                        "mqtt: NOT applied: the uplink did not connect to {broker} within {} s with the new settings ({err}); went back to the previous MQTT settings ({back}). The working copy still has the new ones: fix them, or `config revert`\n",
                        APPLY_WAIT.as_secs()
                    ),
                )
            }
            Err(err) => (
                true,
                format!(
                    "mqtt: applied, but the uplink has not connected to {broker} within {} s ({err}); it keeps trying (it was not connected before either)\n",
                    APPLY_WAIT.as_secs()
                ),
            ),
        }
    }

    /// Waits up to [`APPLY_WAIT`] for a new connection of the uplink; the last error if none.
    async fn wait_connected(&self) -> Result<(), String> {
        let mut status = self.ctx.view.uplink.clone();
        // The restarted uplink starts disconnected: any connection seen now is a new one.
        let connected = tokio::time::timeout(APPLY_WAIT, async {
            loop {
                if status.borrow_and_update().connected {
                    return;
                }
                if status.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await
        .is_ok();
        if connected {
            return Ok(());
        }
        Err(status
            .borrow()
            .last_error
            .clone()
            .unwrap_or_else(|| "no answer".into()))
    }
}

fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

async fn verify(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
        .await
        .unwrap_or(false)
}

/// Sends a request to a channel and waits for its answer, both bounded.
async fn ask<T>(
    tx: &mpsc::Sender<ChannelRequest>,
    req: ChannelRequest,
    rx: oneshot::Receiver<T>,
    timeout: Duration,
) -> Result<T, String> {
    tokio::time::timeout(Duration::from_secs(2), tx.send(req))
        .await
        .map_err(|_| "the modem's channel is busy".to_string())?
        .map_err(|_| "the modem's channel is not running".to_string())?;
    tokio::time::timeout(timeout, rx)
        .await
        .map_err(|_| "no answer in time (is the modem present? see `modems`)".to_string())?
        .map_err(|_| "the modem's channel dropped the request (port lost?)".to_string())
}

/// The text after the first `n` words of `line`, as typed (inner spaces kept).
fn rest_after(line: &str, n: usize) -> &str {
    let mut rest = line.trim_start();
    for _ in 0..n {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = rest[end..].trim_start();
    }
    rest.trim_end()
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn ms_to_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

const COMMANDS: &[(&str, &str, &str)] = &[
    (
        "status",
        "status",
        "gateway, version, uptime, MQTT, outbox, free disk, modems, SIP, calls",
    ),
    (
        "modems",
        "modems",
        "one line per slot: state, model, IMEI, IMSI, SIM, network, signal",
    ),
    ("modem", "modem N", "everything known about slot N"),
    (
        "calls",
        "calls",
        "the SIP trunk's state and the calls in progress",
    ),
    (
        "at",
        "at N CMD",
        "send a raw AT command to slot N (queued behind the agent's own)",
    ),
    (
        "sms",
        "sms send N|auto NUMBER TEXT | sms recent",
        "queue an SMS (E.164 number) / the last SMS jobs",
    ),
    ("queue", "queue", "outbox depth and jobs by state"),
    ("reset", "reset modem N", "reset the modem in slot N"),
    (
        "restart",
        "restart",
        "stop the agent and start it again with the saved configuration",
    ),
    ("log", "log [N]", "the last N log lines (default 20)"),
    (
        "config",
        "config show|get KEY|set KEY VALUE|unset KEY|diff|save|revert|apply",
        "view and change the configuration (see below)",
    ),
    (
        "campaign",
        "campaign list | campaign pause|resume|cancel ID",
        "campaigns with their progress / control one, like cmd/campaign-control",
    ),
    ("passwd", "passwd", "change the console password"),
    ("help", "help", "this text"),
    ("exit", "exit", "log out (the agent keeps running)"),
];

fn usage(cmd: &str) -> &'static str {
    COMMANDS
        .iter()
        .find(|(c, _, _)| *c == cmd)
        .map(|(_, u, _)| *u)
        .unwrap_or("help")
}

static HELP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let mut s = String::from("commands:\n");
    for (_, usage, what) in COMMANDS {
        s.push_str(&format!("  {usage}\n      {what}\n"));
    }
    s.push_str(
        "config keys: section.key (gateway.id, mqtt.url, mqtt.username, mqtt.password, console.idle_logout_secs …)\n\
         or modem[N].key (N-th [[modem]] table: modem[1].port, modem[1].pin; modem[N+1] adds one).\n\
         Every change is checked like `gsmgw config check`; a refused change leaves everything as it was.\n\
         `config apply` restarts only what changed (MQTT: the uplink reconnects, modems keep running);\n\
         `config save` writes the file atomically and keeps the old one as .bak.\n\
         Keys: Enter, Backspace, Ctrl-U (erase line), Ctrl-C (cancel line), Ctrl-D (log out).\n",
    );
    s
});

#[cfg(test)]
mod tests {
    use super::*;

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
