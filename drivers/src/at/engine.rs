//! The AT engine: one task owns the port, runs one command at a time, and hands out URCs.
//!
//! Lines are sorted as they arrive: the echo of the command, information lines of the
//! command in flight, its final result, and unsolicited result codes — which may arrive at any
//! moment, also between two lines of another command's response. A command's timeout is fixed
//! when it is written; URCs never extend it.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::framer::{Frame, Framer};
use super::urc::{self, Urc, VendorUrcs};

/// Ctrl-Z ends an SMS body after the prompt.
const CTRL_Z: u8 = 0x1a;
/// ESC cancels a prompt nobody asked for.
const ESC: u8 = 0x1b;
/// After a timeout, wait this long before the next command so a late answer is not taken
/// for the next command's.
const RESYNC_GUARD: Duration = Duration::from_millis(300);
/// How long a `+CMT:`/`+CDS:` header waits for its PDU line (modems send both at once).
pub const PDU_LINE_WAIT: Duration = Duration::from_secs(1);

/// A command to send.
#[derive(Debug, Clone)]
pub struct Command {
    /// The command line without its terminator, e.g. `AT+CSQ`.
    pub text: String,
    /// How long to wait for the final result.
    pub timeout: Duration,
    /// Sent after the `> ` prompt, followed by Ctrl-Z (the SMS PDU for AT+CMGS).
    pub body: Option<String>,
    /// Prefix of the information lines this command answers with (`+CSQ:`); lines with other
    /// URC-looking prefixes go to the URC stream. None: derived from the command.
    pub expect: Option<String>,
}

impl Command {
    /// A command with the default short timeout (queries, settings).
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            timeout: Duration::from_secs(5),
            body: None,
            expect: None,
        }
    }

    /// Sets the timeout (long for CMGS, ATD, CUSD, COPS=?).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Sets the body sent after the prompt.
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// The information-line prefix this command answers with, if any.
    pub fn expected_prefix(&self) -> Option<String> {
        if let Some(e) = &self.expect {
            return Some(e.clone());
        }
        let upper = self.text.to_ascii_uppercase();
        let rest = upper.strip_prefix("AT")?;
        // Extended commands: 27.007 `+`, and the vendors' `^` (Huawei), `$`, `#` (Telit), `!`
        // (Sierra).
        if !rest.starts_with(['+', '^', '$', '#', '!']) {
            return None;
        }
        let name: String = rest
            .chars()
            .take_while(|c| !matches!(c, '=' | '?' | ';'))
            .collect();
        // USSD answers arrive later as a URC, even when the modem sends them before OK.
        if name == "+CUSD" && rest.contains('=') && !rest.contains("=?") {
            return None;
        }
        Some(format!("{name}:"))
    }

    fn is_dial(&self) -> bool {
        let u = self.text.to_ascii_uppercase();
        u.starts_with("ATD") || u.starts_with("ATA")
    }
}

/// How a command's response ended successfully.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    /// `OK`.
    Ok,
    /// `CONNECT` (data calls).
    Connect,
    /// No final result came, but the expected information line did (modems that omit OK).
    Implied,
}

/// A successful response: information lines and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Information lines, in order, without echo, URCs or the final result.
    pub lines: Vec<String>,
    /// The final result.
    pub final_result: Final,
}

impl Response {
    /// The first line that starts with `prefix`, with the prefix removed and trimmed.
    pub fn field_line(&self, prefix: &str) -> Option<&str> {
        self.lines
            .iter()
            .find_map(|l| super::fields::after_prefix(l, prefix))
    }

    /// The first information line, trimmed (for commands like AT+CGSN that print a bare value).
    pub fn first_line(&self) -> Option<&str> {
        self.lines.first().map(|s| s.trim())
    }
}

/// An error code from `+CME ERROR` / `+CMS ERROR`, numeric or verbose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorCode {
    /// The numeric code, when the modem gave one.
    pub code: Option<u16>,
    /// The text as the modem printed it.
    pub text: String,
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl ErrorCode {
    fn parse(s: &str) -> Self {
        let text = s.trim().to_string();
        Self {
            code: text.parse().ok(),
            text,
        }
    }
}

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AtError {
    /// Plain `ERROR`.
    #[error("ERROR")]
    Error,
    /// `+CME ERROR: <err>`.
    #[error("+CME ERROR: {0}")]
    Cme(ErrorCode),
    /// `+CMS ERROR: <err>`.
    #[error("+CMS ERROR: {0}")]
    Cms(ErrorCode),
    /// `NO CARRIER` to a dial/answer.
    #[error("NO CARRIER")]
    NoCarrier,
    /// `BUSY`.
    #[error("BUSY")]
    Busy,
    /// `NO ANSWER`.
    #[error("NO ANSWER")]
    NoAnswer,
    /// `NO DIALTONE`.
    #[error("NO DIALTONE")]
    NoDialtone,
    /// A vendor's own error word (e.g. `COMMAND NOT SUPPORT`).
    #[error("vendor error: {0}")]
    Vendor(String),
    /// No final result within the command's timeout.
    #[error("timeout after {0:?}")]
    Timeout(Duration),
    /// The port closed or failed (USB modem gone, reset).
    #[error("port closed: {0}")]
    PortClosed(String),
    /// The engine task has stopped.
    #[error("AT engine stopped")]
    EngineGone,
}

impl AtError {
    /// The CME error code, if this is one.
    pub fn cme_code(&self) -> Option<u16> {
        match self {
            AtError::Cme(c) => c.code,
            _ => None,
        }
    }

    /// True when the port is gone and the engine must be rebuilt.
    pub fn is_fatal(&self) -> bool {
        matches!(self, AtError::PortClosed(_) | AtError::EngineGone)
    }
}

/// Engine settings. The AT layer knows only 27.007/27.005; what vendors add (error words,
/// unsolicited lines) comes in here — `crate::modem::engine_config()` fills it from the dialects.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Vendor words that end a command as an error, besides the standard ones.
    pub vendor_errors: Vec<String>,
    /// Recognises and types vendors' own unsolicited lines.
    pub vendor_urcs: VendorUrcs,
    /// Capacity of the URC stream; when the consumer lags, the oldest are not kept.
    pub urc_capacity: usize,
}

impl EngineConfig {
    /// 27.007/27.005 only: no vendor error words, no vendor lines.
    pub fn standard() -> Self {
        Self {
            vendor_errors: Vec::new(),
            vendor_urcs: VendorUrcs::NONE,
            urc_capacity: 512,
        }
    }
}

type Reply = oneshot::Sender<Result<Response, AtError>>;

/// A cloneable handle to send commands to the engine.
#[derive(Debug, Clone)]
pub struct AtHandle {
    tx: mpsc::Sender<(Command, Reply)>,
}

impl AtHandle {
    /// Sends a command and waits for its response.
    pub async fn send(&self, cmd: Command) -> Result<Response, AtError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((cmd, tx))
            .await
            .map_err(|_| AtError::EngineGone)?;
        rx.await.map_err(|_| AtError::EngineGone)?
    }

    /// Sends `text` with the default timeout.
    pub async fn cmd(&self, text: &str) -> Result<Response, AtError> {
        self.send(Command::new(text)).await
    }

    /// True once the engine task has ended (port gone).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Starts an engine over `io` on the current tokio runtime.
/// Returns the command handle and the URC stream (which ends when the port is gone).
pub fn spawn<IO>(io: IO, config: EngineConfig) -> (AtHandle, mpsc::Receiver<Urc>)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (cmd_tx, cmd_rx) = mpsc::channel(32);
    let (urc_tx, urc_rx) = mpsc::channel(config.urc_capacity.max(1));
    tokio::spawn(run(io, config, cmd_rx, urc_tx));
    (AtHandle { tx: cmd_tx }, urc_rx)
}

struct InFlight {
    cmd: Command,
    expect: Option<String>,
    reply: Reply,
    lines: Vec<String>,
    deadline: Instant,
    echo_seen: bool,
    body_sent: bool,
    /// The next line is a message body (after `+CMGR:`/`+CMGL:`), whatever it reads.
    body_line_next: bool,
}

struct State {
    config: EngineConfig,
    urc_tx: mpsc::Sender<Urc>,
    inflight: Option<InFlight>,
    /// A `+CMT:`/`+CDS:` header waiting for its PDU line, and until when.
    urc_header: Option<(String, Instant)>,
    dropped_urcs: u64,
}

async fn run<IO>(
    io: IO,
    config: EngineConfig,
    mut cmd_rx: mpsc::Receiver<(Command, Reply)>,
    urc_tx: mpsc::Sender<Urc>,
) where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut framer = Framer::new();
    let mut frames = Vec::new();
    let mut buf = [0u8; 1024];
    let mut st = State {
        config,
        urc_tx,
        inflight: None,
        urc_header: None,
        dropped_urcs: 0,
    };
    let mut resync_until: Option<Instant> = None;
    let far = Instant::now() + Duration::from_secs(86400 * 365);

    let close_reason = loop {
        let deadline = st.inflight.as_ref().map(|f| f.deadline).unwrap_or(far);
        let guard = resync_until.unwrap_or(far);
        let header_until = st.urc_header.as_ref().map(|(_, t)| *t).unwrap_or(far);
        let accepting = st.inflight.is_none() && resync_until.is_none();
        tokio::select! {
            biased;
            r = rd.read(&mut buf) => match r {
                Ok(0) => break "end of file".to_string(),
                Err(e) => break e.to_string(),
                Ok(n) => {
                    frames.clear();
                    framer.push(&buf[..n], &mut frames);
                    for frame in frames.drain(..) {
                        if let Some(bytes) = st.on_frame(frame) {
                            if let Err(e) = wr.write_all(&bytes).await {
                                st.fail(AtError::PortClosed(e.to_string()));
                            }
                        }
                    }
                }
            },
            _ = tokio::time::sleep_until(deadline), if st.inflight.is_some() => {
                if let Some(f) = st.inflight.take() {
                    let result = match &f.expect {
                        Some(p) if f.lines.iter().any(|l| super::fields::after_prefix(l, p).is_some()) => {
                            Ok(Response { lines: f.lines, final_result: Final::Implied })
                        }
                        _ => {
                            tracing::debug!(command = %f.cmd.text, "AT command timed out");
                            Err(AtError::Timeout(f.cmd.timeout))
                        }
                    };
                    let _ = f.reply.send(result);
                    framer.reset();
                    resync_until = Some(Instant::now() + RESYNC_GUARD);
                }
            },
            _ = tokio::time::sleep_until(guard), if resync_until.is_some() => {
                resync_until = None;
            },
            _ = tokio::time::sleep_until(header_until), if st.urc_header.is_some() => {
                if let Some((header, _)) = st.urc_header.take() {
                    tracing::warn!(header = %crate::redact::printable(&header), "URC without its PDU line within 1 s; discarded");
                }
            },
            req = cmd_rx.recv(), if accepting => match req {
                None => return,
                Some((cmd, reply)) => {
                    let mut line = cmd.text.clone().into_bytes();
                    line.push(b'\r');
                    let expect = cmd.expected_prefix();
                    let deadline = Instant::now() + cmd.timeout;
                    if let Err(e) = wr.write_all(&line).await {
                        let _ = reply.send(Err(AtError::PortClosed(e.to_string())));
                        break e.to_string();
                    }
                    st.inflight = Some(InFlight {
                        cmd, expect, reply, lines: Vec::new(), deadline,
                        echo_seen: false, body_sent: false, body_line_next: false,
                    });
                }
            },
        }
    };
    tracing::debug!(reason = %close_reason, dropped_urcs = st.dropped_urcs, "AT port closed");
    st.fail(AtError::PortClosed(close_reason.clone()));
    // Everything queued behind fails too, so callers learn at once.
    cmd_rx.close();
    while let Some((_, reply)) = cmd_rx.recv().await {
        let _ = reply.send(Err(AtError::PortClosed(close_reason.clone())));
    }
}

impl State {
    fn fail(&mut self, e: AtError) {
        if let Some(f) = self.inflight.take() {
            let _ = f.reply.send(Err(e));
        }
    }

    fn emit(&mut self, u: Urc) {
        match self.urc_tx.try_send(u) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped_urcs += 1;
                tracing::warn!(
                    dropped = self.dropped_urcs,
                    "URC consumer lags; URC dropped"
                );
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn unsolicited(&mut self, line: String) {
        if urc::has_pdu_line(&line) {
            self.urc_header = Some((line, Instant::now() + PDU_LINE_WAIT));
        } else {
            let u = self.config.vendor_urcs.parse(&line, None);
            self.emit(u);
        }
    }

    /// Handles one frame; returns bytes to write back (the body after a prompt).
    fn on_frame(&mut self, frame: Frame) -> Option<Vec<u8>> {
        let line = match frame {
            Frame::Prompt => {
                return match self.inflight.as_mut() {
                    Some(f) if !f.body_sent && f.cmd.body.is_some() => {
                        f.body_sent = true;
                        let mut b = f.cmd.body.clone().unwrap_or_default().into_bytes();
                        b.push(CTRL_Z);
                        Some(b)
                    }
                    _ => Some(vec![ESC]),
                };
            }
            Frame::Overlong(start) => {
                tracing::warn!(start = %crate::redact::printable(&start.chars().take(40).collect::<String>()), "overlong line from modem dropped");
                return None;
            }
            Frame::Line(l) => l,
        };

        // The PDU line of a +CMT:/+CDS: URC comes right after its header. A line that is no
        // PDU (another URC, a final result) means it was left out: the header goes, and the
        // line is taken for what it is.
        if let Some((header, _)) = self.urc_header.take() {
            if urc::looks_like_pdu(&line) {
                let u = self.config.vendor_urcs.parse(&header, Some(&line));
                self.emit(u);
                return None;
            }
            tracing::warn!(
                header = %crate::redact::printable(&header),
                next = %crate::redact::printable(&line),
                "URC without its PDU line; discarded"
            );
        }

        let Some(f) = self.inflight.as_mut() else {
            if is_final(&line, &self.config.vendor_errors) {
                tracing::debug!(line = %crate::redact::printable(&line), "final result with no command in flight dropped");
            } else {
                self.unsolicited(line);
            }
            return None;
        };

        if f.body_line_next {
            f.body_line_next = false;
            f.lines.push(line);
            return None;
        }
        if !f.echo_seen && line.eq_ignore_ascii_case(f.cmd.text.trim()) {
            f.echo_seen = true;
            return None;
        }
        if f.body_sent
            && f.cmd
                .body
                .as_deref()
                .is_some_and(|b| line.ends_with(b.trim()))
        {
            return None; // echo of the body
        }

        if let Some(result) = classify_final(&line, f.cmd.is_dial(), &self.config.vendor_errors) {
            if let Some(f) = self.inflight.take() {
                let _ = f.reply.send(result.map(|final_result| Response {
                    lines: f.lines,
                    final_result,
                }));
            }
            return None;
        }

        let expected = f
            .expect
            .as_deref()
            .is_some_and(|p| super::fields::after_prefix(&line, p).is_some());
        if !expected && self.config.vendor_urcs.looks_unsolicited(&line) {
            self.unsolicited(line);
            return None;
        }
        if line.starts_with("+CMGR:") || line.starts_with("+CMGL:") {
            f.body_line_next = true;
        }
        f.lines.push(line);
        None
    }
}

/// Recognises a final result line; `dial` makes call-progress words finals.
fn classify_final(line: &str, dial: bool, vendor: &[String]) -> Option<Result<Final, AtError>> {
    let l = line.trim();
    if l == "OK" {
        return Some(Ok(Final::Ok));
    }
    if l.starts_with("CONNECT") {
        return Some(Ok(Final::Connect));
    }
    if l == "ERROR" {
        return Some(Err(AtError::Error));
    }
    if let Some(rest) = l.strip_prefix("+CME ERROR:") {
        return Some(Err(AtError::Cme(ErrorCode::parse(rest))));
    }
    if let Some(rest) = l.strip_prefix("+CMS ERROR:") {
        return Some(Err(AtError::Cms(ErrorCode::parse(rest))));
    }
    if dial {
        match l {
            "NO CARRIER" => return Some(Err(AtError::NoCarrier)),
            "BUSY" => return Some(Err(AtError::Busy)),
            "NO ANSWER" => return Some(Err(AtError::NoAnswer)),
            "NO DIALTONE" | "NO DIAL TONE" => return Some(Err(AtError::NoDialtone)),
            _ => {}
        }
    }
    if vendor.iter().any(|v| l == v) {
        return Some(Err(AtError::Vendor(l.to_string())));
    }
    None
}

fn is_final(line: &str, vendor: &[String]) -> bool {
    // Call-progress words outside a dial are URCs (a call ended), not stray finals.
    classify_final(line, false, vendor).is_some()
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
