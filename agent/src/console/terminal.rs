//! The terminal: bytes in through the line editor, text out, echo off for passwords.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::MAX_LINE;
use super::line::{Edit, LineEditor};

/// A Ctrl-D logs out only when it is a key on its own: the first byte after the prompt, with
/// nothing after it for this long. Inside a burst of bytes (garbage, a device talking on the
/// wrong port) it is garbage like any control byte.
const LONE_KEY: Duration = Duration::from_millis(150);

/// What a read at a prompt gave.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Input {
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
pub(super) struct Term<R, W> {
    r: R,
    w: W,
    pub(super) serial: bool,
    /// stdin is a terminal: its own echo is switched off for passwords.
    pub(super) local_tty: bool,
    pending: VecDeque<u8>,
    ed: LineEditor,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Term<R, W> {
    pub(super) fn new(r: R, w: W, serial: bool) -> Self {
        Self {
            r,
            w,
            serial,
            local_tty: false,
            pending: VecDeque::new(),
            ed: LineEditor::new(MAX_LINE, serial),
        }
    }

    pub(super) async fn write(&mut self, text: &str) -> std::io::Result<()> {
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
    pub(super) fn discard_typeahead(&mut self) {
        self.pending.clear();
        self.ed.clear();
    }

    /// Reads one line; `echo` is off for passwords; `idle` ends the wait.
    pub(super) async fn read_line(
        &mut self,
        echo: bool,
        idle: Option<Duration>,
    ) -> std::io::Result<Input> {
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
