//! Network changes (a link coming up, an address or a route added), read from the kernel's
//! rtnetlink multicast groups: the uplink tries the broker at once instead of sleeping out
//! its backoff when a cellular or Ethernet link comes back.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, socket,
};
use tokio::io::unix::AsyncFd;

/// rtnetlink groups: links, IPv4/IPv6 addresses and routes (linux/rtnetlink.h).
const GROUPS: u32 = 0x1 | 0x10 | 0x40 | 0x100 | 0x400;

/// A subscription to network changes.
pub struct NetWatch {
    fd: AsyncFd<OwnedFd>,
}

impl NetWatch {
    /// Subscribes; fails where netlink is not available (then the uplink only backs off).
    pub fn open() -> io::Result<Self> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, GROUPS))?;
        // SAFETY: the socket is owned here and moved into the AsyncFd, which keeps it open
        // and registered for as long as it lives; nothing else closes or replaces it.
        let fd = unsafe { AsyncFd::register(fd)? };
        Ok(Self { fd })
    }

    /// Resolves at the next change (a burst of messages counts once).
    pub async fn changed(&self) -> io::Result<()> {
        let mut buf = [0u8; 8192];
        loop {
            let mut guard = self.fd.readable().await?;
            let mut got = false;
            loop {
                match recv(
                    self.fd.get_ref().as_raw_fd(),
                    &mut buf,
                    MsgFlags::MSG_DONTWAIT,
                ) {
                    Ok(0) => break,
                    Ok(_) => got = true,
                    Err(nix::errno::Errno::EAGAIN) => break,
                    // Messages lost to a full socket buffer: something changed all the same.
                    Err(nix::errno::Errno::ENOBUFS) => got = true,
                    Err(e) => return Err(e.into()),
                }
            }
            guard.clear_ready();
            if got {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::Duration;

    /// Runs in a network namespace of its own (see below): bringing its loopback up is a
    /// network change the watcher must see.
    #[tokio::test]
    async fn netwatch_in_own_namespace() {
        if std::env::var_os("GSMGW_NETWATCH_CHILD").is_none() {
            return; // only meaningful inside the namespace the parent test makes
        }
        let watch = NetWatch::open().expect("netlink socket");
        let changed = watch.changed();
        let st = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .expect("run ip");
        assert!(st.success());
        tokio::time::timeout(Duration::from_secs(5), changed)
            .await
            .expect("a change within 5 s")
            .expect("netlink read");
    }

    /// A link coming up is reported: the test above, in a fresh user + network namespace
    /// (`unshare -rn`), so the host's network is never touched.
    #[test]
    fn a_link_coming_up_is_reported() {
        let exe = std::env::current_exe().expect("test binary");
        let out = Command::new("unshare")
            .args(["-rn", "--"])
            .arg(exe)
            .args([
                "--exact",
                "netwatch::tests::netwatch_in_own_namespace",
                "--nocapture",
            ])
            .env("GSMGW_NETWATCH_CHILD", "1")
            .output()
            .expect("run unshare (util-linux)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "child failed: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
