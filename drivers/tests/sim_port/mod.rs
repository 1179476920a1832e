//! Test helpers for the modem simulator: a raw client on the simulated port and a simulator
//! factory. Included by the other `sim_*` tests with `#[path]`; has no tests of its own.
#![cfg(feature = "sim")]
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use gsmgw_drivers::sim::{Dialect, SimHandle, SimOptions, Simulator};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Default wait for anything the simulator should do promptly.
pub const WAIT: Duration = Duration::from_secs(5);

/// What the reader thread saw.
pub enum Chunk {
    /// Bytes read.
    Data(Vec<u8>),
    /// The other side closed (or the read failed).
    Closed,
}

/// A raw, non-blocking client fd on a simulated pty, read by a thread into a channel (so tests
/// can await data with timeouts). Shared by the AT port client and the voice port client.
pub struct RawPty {
    file: Option<File>,
    /// What the reader thread saw.
    pub rx: mpsc::UnboundedReceiver<Chunk>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for RawPty {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.file = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl RawPty {
    /// Open the link (waiting for it to appear) in raw mode.
    pub async fn open(link: &Path) -> RawPty {
        let deadline = tokio::time::Instant::now() + WAIT;
        let file = loop {
            match gsmgw_testkit::pty::open_noctty(link) {
                Ok(f) => break f,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot open {}: {e}", link.display()),
            }
        };
        gsmgw_testkit::pty::set_raw(&file);
        // Non-blocking reads so the reader thread notices when the client is dropped and closes
        // its fd too (a real client closing the port closes every fd it has).
        let flags = fcntl(&file, FcntlArg::F_GETFL).expect("F_GETFL");
        fcntl(
            &file,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        )
        .expect("F_SETFL");
        let mut reader = file.try_clone().expect("clone fd");
        let stop = Arc::new(AtomicBool::new(false));
        let stop_reader = stop.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        let thread = std::thread::spawn(move || {
            let mut b = [0u8; 8192];
            while !stop_reader.load(Ordering::Relaxed) {
                match reader.read(&mut b) {
                    Ok(0) => {
                        let _ = tx.send(Chunk::Closed);
                        return;
                    }
                    Ok(n) => {
                        if tx.send(Chunk::Data(b[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(_) => {
                        let _ = tx.send(Chunk::Closed);
                        return;
                    }
                }
            }
        });
        RawPty {
            file: Some(file),
            rx,
            stop,
            thread: Some(thread),
        }
    }

    /// Write all of `b` (retrying while the pty is momentarily full).
    pub fn write_all(&mut self, b: &[u8]) {
        let file = self.file.as_mut().expect("port is open");
        let mut rest = b;
        while !rest.is_empty() {
            match file.write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("write to port: {e}"),
            }
        }
    }
}

/// A client on the simulated serial port (raw mode, like the agent opens it).
pub struct Port {
    raw: RawPty,
    buf: String,
    closed: bool,
    /// The pts the link pointed to when opened.
    pub path: PathBuf,
}

impl Port {
    /// Open the link (waiting for it to appear) in raw mode.
    pub async fn open(link: &Path) -> Port {
        let raw = RawPty::open(link).await;
        let path = std::fs::canonicalize(link).expect("canonicalize link");
        Port {
            raw,
            buf: String::new(),
            closed: false,
            path,
        }
    }

    /// Write raw bytes.
    pub fn send_bytes(&mut self, b: &[u8]) {
        self.raw.write_all(b);
    }

    /// Write text.
    pub fn send(&mut self, s: &str) {
        self.send_bytes(s.as_bytes());
    }

    async fn pull(&mut self, until: tokio::time::Instant) -> bool {
        match tokio::time::timeout_at(until, self.raw.rx.recv()).await {
            Ok(Some(Chunk::Data(d))) => {
                self.buf.push_str(&String::from_utf8_lossy(&d));
                true
            }
            Ok(Some(Chunk::Closed)) | Ok(None) => {
                self.closed = true;
                false
            }
            Err(_) => false,
        }
    }

    /// Wait until `needle` was received; return everything up to and including it (consumed).
    pub async fn expect(&mut self, needle: &str) -> String {
        self.expect_within(needle, WAIT).await
    }

    /// `expect` with an explicit timeout.
    pub async fn expect_within(&mut self, needle: &str, timeout: Duration) -> String {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(pos) = self.buf.find(needle) {
                let end = pos + needle.len();
                let out = self.buf[..end].to_string();
                self.buf.drain(..end);
                return out;
            }
            if self.closed || !self.pull(until).await && tokio::time::Instant::now() >= until {
                panic!(
                    "did not receive {needle:?} within {timeout:?} (closed={}); got {:?}",
                    self.closed, self.buf
                );
            }
        }
    }

    /// Whether `needle` arrives within `timeout` (does not panic).
    pub async fn sees(&mut self, needle: &str, timeout: Duration) -> bool {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(pos) = self.buf.find(needle) {
                self.buf.drain(..pos + needle.len());
                return true;
            }
            if self.closed || (!self.pull(until).await && tokio::time::Instant::now() >= until) {
                return false;
            }
        }
    }

    /// Collect whatever arrives within `d` (consumed).
    pub async fn collect_for(&mut self, d: Duration) -> String {
        let until = tokio::time::Instant::now() + d;
        while tokio::time::Instant::now() < until && !self.closed {
            self.pull(until).await;
        }
        std::mem::take(&mut self.buf)
    }

    /// Send a command line (CR-terminated) and return the response up to its final result.
    pub async fn cmd(&mut self, line: &str) -> String {
        self.send(&format!("{line}\r"));
        self.final_result().await
    }

    /// Wait for a final result code; returns all text up to and including it.
    pub async fn final_result(&mut self) -> String {
        let until = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(end) = final_end(&self.buf) {
                let out = self.buf[..end].to_string();
                self.buf.drain(..end);
                return out;
            }
            if self.closed || (!self.pull(until).await && tokio::time::Instant::now() >= until) {
                panic!("no final result; got {:?}", self.buf);
            }
        }
    }

    /// Wait until the port is gone (EOF/EIO).
    pub async fn wait_closed(&mut self, timeout: Duration) -> bool {
        let until = tokio::time::Instant::now() + timeout;
        while !self.closed {
            if !self.pull(until).await && tokio::time::Instant::now() >= until {
                break;
            }
        }
        self.closed
    }

    /// Text received and not consumed yet.
    pub fn pending(&self) -> &str {
        &self.buf
    }
}

/// End offset of the first final result code in `buf`, if any.
fn final_end(buf: &str) -> Option<usize> {
    const FINALS: [&str; 7] = [
        "\r\nOK\r\n",
        "\r\nERROR\r\n",
        "\r\nNO CARRIER\r\n",
        "\r\nBUSY\r\n",
        "\r\nNO ANSWER\r\n",
        "\r\n+CME ERROR:",
        "\r\n+CMS ERROR:",
    ];
    let mut best: Option<usize> = None;
    for f in FINALS {
        if let Some(pos) = buf.find(f) {
            let end = if f.ends_with(':') {
                match buf[pos + f.len()..].find("\r\n") {
                    Some(e) => pos + f.len() + e + 2,
                    None => continue,
                }
            } else {
                pos + f.len()
            };
            best = Some(best.map_or(end, |b: usize| b.min(end)));
        }
    }
    best
}

/// A private directory for one test's link and socket.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gsmgw-sim-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

/// Options for a fast-booting simulator in `dir`.
pub fn options(dir: &Path, dialect: Dialect) -> SimOptions {
    SimOptions {
        link: dir.join("modem"),
        control: Some(dir.join("control.sock")),
        dialect,
        sim_busy_secs: 0.0,
        register_delay_ms: 100,
        reboot_ms: 300,
        ..SimOptions::default()
    }
}

/// Start a simulator and open its port.
pub async fn start(opts: SimOptions) -> (SimHandle, Port) {
    let sim = Simulator::spawn(opts).await.expect("spawn simulator");
    let port = Port::open(sim.link()).await;
    (sim, port)
}

/// Start a simulator, open its port, switch echo off and wait until it is registered.
pub async fn start_ready(name: &str, dialect: Dialect) -> (SimHandle, Port, PathBuf) {
    let dir = test_dir(name);
    let (sim, mut port) = start(options(&dir, dialect)).await;
    wait_registered(&sim).await;
    port.cmd("ATE0").await;
    (sim, port, dir)
}

/// Poll `state` until the modem is registered and SMS is ready.
pub async fn wait_registered(sim: &SimHandle) {
    wait_state(sim, |s| {
        s["registration"]["stat"] == json!(1) && s["sms"]["ready"] == json!(true)
    })
    .await;
}

/// Poll `state` (every 20 ms) until `pred` holds; panics after WAIT.
pub async fn wait_state(sim: &SimHandle, pred: impl Fn(&Value) -> bool) -> Value {
    let until = tokio::time::Instant::now() + WAIT;
    loop {
        let s = sim.control(json!({"op": "state"})).await.expect("state");
        if pred(&s) {
            return s;
        }
        if tokio::time::Instant::now() >= until {
            panic!("state condition not met; last state {s}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
