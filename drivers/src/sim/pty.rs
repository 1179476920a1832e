//! The simulated modem's port: a raw pseudo-terminal whose slave is symlinked at a fixed path.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::termios::{FlushArg, SetArg, cfmakeraw, tcflush, tcgetattr, tcsetattr};
use tokio::io::unix::AsyncFd;

use super::SimError;

/// One plugged-in port: pty master (async) plus a slave fd kept open by the simulator.
pub(crate) struct Pty {
    master: AsyncFd<OwnedFd>,
    /// Held so the master never sees EIO while no client has the port open.
    _slave: OwnedFd,
    path: PathBuf,
}

impl Pty {
    /// Open a new raw pty; `avoid` is a slave path not to reuse (USB-like renumbering).
    pub(crate) fn open(avoid: Option<&Path>) -> Result<Pty, SimError> {
        let first = Self::open_raw()?;
        let (master, slave, path) = match avoid {
            // Opening a second one while the first is still held forces a new number.
            Some(old) if first.2 == old => {
                let second = Self::open_raw()?;
                drop(first);
                second
            }
            _ => first,
        };
        let flags = OFlag::from_bits_truncate(fcntl(&master, FcntlArg::F_GETFL)?);
        fcntl(&master, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        // AsyncFd owns the OwnedFd, so the fd cannot be closed while registered; `new` is
        // kept (over the newer unsafe `register`) for tokio versions before 1.54.
        #[allow(deprecated)]
        let master = AsyncFd::new(master).map_err(|e| SimError::io("registering pty master", e))?;
        Ok(Pty {
            master,
            _slave: slave,
            path,
        })
    }

    fn open_raw() -> Result<(OwnedFd, OwnedFd, PathBuf), SimError> {
        let pair = nix::pty::openpty(None, None)?;
        let mut t = tcgetattr(&pair.slave)?;
        cfmakeraw(&mut t);
        tcsetattr(&pair.slave, SetArg::TCSANOW, &t)?;
        let path = nix::unistd::ttyname(&pair.slave)?;
        Ok((pair.master, pair.slave, path))
    }

    /// The slave device path, e.g. /dev/pts/7.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Wait until the master is readable and read; Ok(0) never happens while the slave is held.
    pub(crate) async fn read(&self, buf: &mut [u8]) -> Result<usize, SimError> {
        loop {
            let mut guard = self
                .master
                .readable()
                .await
                .map_err(|e| SimError::io("pty readable", e))?;
            match nix::unistd::read(self.master.get_ref().as_fd(), buf) {
                Ok(n) => return Ok(n),
                Err(Errno::EAGAIN) => guard.clear_ready(),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Write as much as possible without blocking; returns the number of bytes taken.
    pub(crate) fn try_write(&self, data: &[u8]) -> Result<usize, SimError> {
        match nix::unistd::write(self.master.get_ref().as_fd(), data) {
            Ok(n) => Ok(n),
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Discard what was written toward the client and not read yet (stale audio of an earlier
    /// call on the voice port).
    pub(crate) fn flush_toward_client(&self) {
        if let Err(e) = tcflush(&self._slave, FlushArg::TCIFLUSH) {
            tracing::debug!("pty flush: {e}");
        }
    }

    /// Wait until the master is writable.
    pub(crate) async fn writable(&self) -> Result<(), SimError> {
        let mut guard = self
            .master
            .writable()
            .await
            .map_err(|e| SimError::io("pty writable", e))?;
        guard.clear_ready();
        Ok(())
    }
}

/// Point `link` at `target` atomically (symlink to a temporary name, then rename).
pub(crate) fn replace_link(link: &Path, target: &Path) -> Result<(), SimError> {
    let name = link
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "modem".into());
    let tmp = link.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .map_err(|e| SimError::io(format!("symlink {}", tmp.display()), e))?;
    std::fs::rename(&tmp, link).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        SimError::io(format!("rename to {}", link.display()), e)
    })
}

/// Remove the link if it is a symlink (never a regular file someone else put there).
pub(crate) fn remove_link(link: &Path) {
    if let Ok(meta) = std::fs::symlink_metadata(link) {
        if meta.file_type().is_symlink() {
            let _ = std::fs::remove_file(link);
        }
    }
}
