//! Helpers shared by the whole-process benches: the binary, a child killed on drop, the
//! simulated modem's control socket, polling with a timeout, and /proc readings.
#![allow(dead_code, unused_imports)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use serde_json::Value;

/// This build's gsmgw binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_gsmgw")
}

/// A child process killed (and reaped) when dropped.
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One request on a simulated modem's control socket; Null when it does not answer.
pub fn control(sock: &Path, msg: Value) -> Value {
    let Ok(mut s) = UnixStream::connect(sock) else {
        return Value::Null;
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let _ = writeln!(s, "{msg}");
    let mut line = String::new();
    let _ = BufReader::new(&s).read_line(&mut line);
    serde_json::from_str(&line).unwrap_or(Value::Null)
}

/// Polls `f` every 20 ms until it holds; panics naming `what` after `timeout`.
pub use gsmgw_testkit::wait_until as wait;

/// utime + stime of a process in seconds (clock ticks of 100 Hz).
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// A `/proc/PID/status` figure in KiB (`field` with its colon, e.g. `"VmHWM:"`); 0 if absent.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}
