//! Scripted replay of a modem transcript for the dialect tests: the real AT engine over an
//! in-memory duplex, talking to a fake modem that answers each command with the lines a vendor's
//! manual or a public log shows for it (`ERROR` for any command the transcript lacks).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{Dialect, Modem, engine_config};
use crate::at::{Urc, spawn};

/// One command of a transcript and the lines the modem answers (final result included).
pub(crate) type Exchange<'a> = (&'a str, &'a [&'a str]);

/// A running replay: the modem under test, its URC stream, and what was sent to the fake.
pub(crate) struct Replay {
    /// The modem, on the generic dialect until `identify` detects one.
    pub modem: Modem,
    urcs: mpsc::Receiver<Urc>,
    sent: Arc<Mutex<Vec<String>>>,
}

impl Replay {
    /// Starts the fake modem: it prints `boot` at once, then answers commands from `script`.
    pub(crate) fn start(boot: &[&str], script: &[Exchange<'_>]) -> Replay {
        let (ours, theirs) = tokio::io::duplex(8192);
        let (at, urcs) = spawn(ours, engine_config());
        let script: Vec<(String, Vec<String>)> = script
            .iter()
            .map(|(c, lines)| (c.to_string(), lines.iter().map(|l| l.to_string()).collect()))
            .collect();
        let boot: Vec<String> = boot.iter().map(|l| l.to_string()).collect();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&sent);
        tokio::spawn(async move {
            let (mut rd, mut wr) = tokio::io::split(theirs);
            for l in &boot {
                if wr
                    .write_all(format!("\r\n{l}\r\n").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while let Ok(1) = rd.read(&mut byte).await {
                if byte[0] != b'\r' {
                    line.push(byte[0]);
                    continue;
                }
                let cmd = String::from_utf8_lossy(&line).trim().to_string();
                line.clear();
                if cmd.is_empty() {
                    continue;
                }
                if let Ok(mut v) = log.lock() {
                    v.push(cmd.clone());
                }
                let answer = script
                    .iter()
                    .find(|(c, _)| *c == cmd)
                    .map_or_else(|| vec!["ERROR".to_string()], |(_, a)| a.clone());
                let mut out = String::new();
                for l in answer {
                    out.push_str("\r\n");
                    out.push_str(&l);
                    out.push_str("\r\n");
                }
                if wr.write_all(out.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
        Replay {
            modem: Modem::new(at, Dialect::Generic),
            urcs,
            sent,
        }
    }

    /// The next URC the engine handed out (panics after 2 s without one: test only).
    pub(crate) async fn next_urc(&mut self) -> Urc {
        match tokio::time::timeout(Duration::from_secs(2), self.urcs.recv()).await {
            Ok(Some(u)) => u,
            other => panic!("no URC: {other:?}"),
        }
    }

    /// The commands the modem received, in order.
    pub(crate) fn sent(&self) -> Vec<String> {
        self.sent.lock().map(|v| v.clone()).unwrap_or_default()
    }
}
