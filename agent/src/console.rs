//! The technician console (first slice): read-only status commands over a line stream.
//!
//! Runs over any async reader/writer: stdin/stdout for `gsmgw demo`, a serial port later.
//! Input is bounded per line and never trusted: binary garbage yields "unknown command".

use std::time::Instant;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::state::ModemSnapshot;
use crate::uplink::UplinkStatus;

/// Longest accepted input line; longer input is cut.
const MAX_LINE: usize = 512;

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
}

impl AgentView {
    /// Current pictures of all slots.
    pub fn snapshots(&self) -> Vec<ModemSnapshot> {
        self.modems.iter().map(|r| r.borrow().clone()).collect()
    }

    /// The `status` text.
    pub fn status_text(&self) -> String {
        let up = self.uplink.borrow().clone();
        let mqtt = if up.connected {
            format!("connected to {} ({} connects)", self.broker, up.connects)
        } else {
            format!(
                "not connected to {} ({})",
                self.broker,
                up.last_error.unwrap_or_else(|| "connecting".into())
            )
        };
        let snaps = self.snapshots();
        let ready = snaps
            .iter()
            .filter(|s| s.state == crate::state::ChannelState::Ready)
            .count();
        format!(
            "gateway {}\nversion {}\nuptime  {}s\nmqtt    {}\nmodems  {} configured, {} ready\n",
            self.gateway_id,
            self.version,
            self.started.elapsed().as_secs(),
            mqtt,
            snaps.len(),
            ready
        )
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

const HELP: &str = "commands:\n  status     gateway, uplink and modem summary\n  modems     one line per modem slot\n  modem N    everything known about slot N\n  help       this text\n  exit       leave the console (the agent keeps running)\n";

/// Answers one command line; None means the session ends.
pub fn execute(view: &AgentView, line: &str) -> Option<String> {
    let mut words = line.split_whitespace();
    let Some(cmd) = words.next() else {
        return Some(String::new());
    };
    Some(match cmd {
        "help" | "?" => HELP.to_string(),
        "status" => view.status_text(),
        "modems" => view.modems_text(),
        "modem" => match words.next().and_then(|w| w.parse::<u16>().ok()) {
            Some(n) => match view.snapshots().into_iter().find(|s| s.slot == n) {
                Some(s) => serde_json::to_string_pretty(&s)
                    .map(|j| j + "\n")
                    .unwrap_or_else(|e| format!("error: {e}\n")),
                None => format!("error: no modem in slot {n}\n"),
            },
            None => "usage: modem N\n".to_string(),
        },
        "exit" | "quit" | "logout" => return None,
        other => {
            let shown: String = other.chars().filter(|c| !c.is_control()).take(32).collect();
            format!("unknown command {shown:?}; try help\n")
        }
    })
}

/// Serves the console until `exit`, end of input, or shutdown.
pub async fn serve<R, W>(
    view: AgentView,
    reader: R,
    mut writer: W,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reader = reader;
    let prompt = format!("{}> ", view.gateway_id);
    writer
        .write_all(format!("gsmgw console — type help\n{prompt}").as_bytes())
        .await?;
    writer.flush().await?;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            r = read_bounded_line(&mut reader, &mut buf) => r?,
        };
        if n == 0 {
            return Ok(());
        }
        let line = String::from_utf8_lossy(&buf);
        match execute(&view, line.trim()) {
            Some(out) => {
                writer.write_all(out.as_bytes()).await?;
                writer.write_all(prompt.as_bytes()).await?;
                writer.flush().await?;
            }
            None => {
                writer.write_all(b"bye\n").await?;
                writer.flush().await?;
                return Ok(());
            }
        }
    }
}

/// Reads up to a line end, keeping at most MAX_LINE bytes; returns bytes consumed.
async fn read_bounded_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    out: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut total = 0;
    loop {
        let available = r.fill_buf().await?;
        if available.is_empty() {
            return Ok(total);
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n' || b == b'\r') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let room = MAX_LINE.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len();
        r.consume(used);
        total += used;
        if done {
            return Ok(total);
        }
    }
}
