//! The test harness of the gsmgw workspace, one copy of each piece: a mosquitto of our own
//! (plain, with users, with TLS), SIPp and Kamailio runners, free loopback ports,
//! pseudo-terminals, waiting with a timeout, installing a missing tool with apt-get, store
//! fixtures, and per-test log files that are printed only when the test fails.
//!
//! Dev-only (`publish = false`): a dev-dependency of the root package, the agent and the
//! drivers. Everything here stays on 127.0.0.1.

// A harness for tests: when it cannot start a broker or open a pty, the test fails right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod kamailio;
pub mod logs;
pub mod mosquitto;
pub mod procfs;
pub mod pty;
pub mod sipp;
#[cfg(feature = "store")]
pub mod store;

use std::net::{TcpListener, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use kamailio::Kamailio;
pub use logs::ProcLog;
pub use mosquitto::{Broker, Mosquitto};
pub use sipp::{Sipp, SippProc, SippResult};

/// Polls `f` until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` every 20 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    wait_for(timeout, what, || f().then_some(()))
}

/// `apt-get install -y PACKAGE` (after an `apt-get update` if the first try fails): for the
/// third-party programs the tests drive when `tests/run` did not install them. True on success.
pub fn apt_install(package: &str) -> bool {
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    apt(&["install", "-y", "--no-install-recommends", package])
        || (apt(&["update"]) && apt(&["install", "-y", "--no-install-recommends", package]))
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A free UDP port on 127.0.0.1 (bound and released: free now, very likely still free later).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind a UDP port")
        .port()
}

/// An even UDP port `p` on 127.0.0.1 with `p + 1` free as well (an RTP/RTCP pair).
pub fn free_even_udp_port_pair() -> u16 {
    free_even_udp_ports(2)
}

/// An even port `p` with `p .. p + n` all free on 127.0.0.1.
pub fn free_even_udp_ports(n: u16) -> u16 {
    for _ in 0..200 {
        let first = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
        let p = first.local_addr().expect("local addr").port();
        if p % 2 != 0 || p > u16::MAX - n {
            continue;
        }
        let rest: Vec<_> = (1..n)
            .map(|i| UdpSocket::bind(("127.0.0.1", p + i)))
            .collect();
        if rest.iter().all(|r| r.is_ok()) {
            return p;
        }
    }
    panic!("no {n} consecutive free UDP ports on 127.0.0.1");
}

/// The last `max` bytes of `s` (at a char boundary).
pub fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut i = s.len() - max;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

/// The last `lines` lines of `s`.
pub fn tail_lines(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Stops a child: SIGTERM (a clean exit: mosquitto saves its sessions, kamailio stops its
/// workers), then SIGKILL if it is still there after `grace`. Reaps it either way.
pub fn terminate(child: &mut std::process::Child, grace: Duration) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Finds `name` in $PATH, then in `extra` directories.
pub fn find_program(name: &str, extra: &[&str]) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().map(std::path::PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Where a bench puts its files: `GSMGW_BENCH_DIR` (which should be on the disk being
/// measured, not a tmpfs), else the system temp dir.
pub fn bench_base() -> std::path::PathBuf {
    std::env::var_os("GSMGW_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// A new temp dir under [`bench_base`], named `prefix…`.
pub fn bench_dir(prefix: &str) -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(bench_base())
}
