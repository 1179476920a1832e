//! The service manager's notification protocol (`sd_notify(3)`): datagrams of `KEY=value`
//! lines to the socket systemd names in `$NOTIFY_SOCKET`, a path or an abstract name (`@…`).
//!
//! Written here instead of taken from a crate: it is one `sendto` on a Unix datagram socket,
//! and this way there is no libsystemd and no dependency to keep building for ARM.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A connection to the service manager (None of these when not started by one).
pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; None when it is unset or empty (not under systemd), an error
    /// when it names a socket that cannot be used.
    pub fn from_env() -> io::Result<Option<Self>> {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(p) if !p.is_empty() => Self::to(&p.to_string_lossy()).map(Some),
            _ => Ok(None),
        }
    }

    /// To the socket `path` (`@name` for an abstract one).
    pub fn to(path: &str) -> io::Result<Self> {
        let addr = match path.strip_prefix('@') {
            Some(name) => abstract_addr(name)?,
            None => SocketAddr::from_pathname(path)?,
        };
        let sock = UnixDatagram::unbound()?;
        // A full socket must never hold the agent up: a lost notification is retried.
        sock.set_nonblocking(true)?;
        Ok(Self { sock, addr })
    }

    /// Sends `state` (one or more `KEY=value` lines).
    pub fn notify(&self, state: &str) -> io::Result<()> {
        self.sock
            .send_to_addr(state.as_bytes(), &self.addr)
            .map(|_| ())
    }
}

#[cfg(target_os = "linux")]
fn abstract_addr(name: &str) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name.as_bytes())
}

#[cfg(not(target_os = "linux"))]
fn abstract_addr(_name: &str) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract sockets exist only on Linux",
    ))
}

/// How often to ping systemd's watchdog: half of `$WATCHDOG_USEC`, when it is set for this
/// process (`$WATCHDOG_PID` absent or ours).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_reach_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::to(path.to_str().unwrap()).unwrap();
        n.notify("READY=1\nSTATUS=up").unwrap();
        let mut buf = [0u8; 64];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=up");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn datagrams_reach_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("gsmgw-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
            .unwrap();
        let n = Notifier::to(&format!("@{name}")).unwrap();
        n.notify("WATCHDOG=1").unwrap();
        let mut buf = [0u8; 16];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
    }
}
