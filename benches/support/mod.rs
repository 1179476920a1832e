//! Helpers shared by the whole-process benches: the binary, a child killed on drop, the
//! simulated modem's control socket; polling with a timeout and /proc readings are the
//! testkit's.
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

pub use gsmgw_testkit::procfs::{cpu_secs, status_kib};
