//! Pseudo-terminals: a fresh raw pair (the agent's console gets the slave's path), and opening
//! a simulated modem's port link in raw mode.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};

/// Puts a terminal in raw mode (no echo, no line discipline).
pub fn set_raw(fd: impl AsFd) {
    let mut t = tcgetattr(&fd).expect("tcgetattr");
    cfmakeraw(&mut t);
    tcsetattr(&fd, SetArg::TCSANOW, &t).expect("tcsetattr");
}

/// A new pseudo-terminal, raw from the start (so nothing written to it is echoed by the kernel
/// before the program on the other side configures the port).
pub struct PtyPair {
    /// The terminal side the test reads and writes.
    pub master: File,
    /// The other side, kept open so the pty stays up.
    pub slave: OwnedFd,
    /// The slave's path (`/dev/pts/N`), for the program under test.
    pub path: PathBuf,
}

/// Opens a raw pseudo-terminal pair.
pub fn open_pair() -> PtyPair {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    set_raw(&pty.slave);
    let path = nix::unistd::ttyname(&pty.slave).expect("ttyname");
    PtyPair {
        master: File::from(pty.master),
        slave: pty.slave,
        path,
    }
}

/// Opens a terminal (e.g. a simulated modem's port link) read-write without making it the
/// controlling terminal; the caller retries while it does not exist yet.
pub fn open_noctty(link: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(link)
}
