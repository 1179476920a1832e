//! The agent's files are private to it: the database and its WAL hold SMS texts, numbers and
//! call records, the recordings hold calls. Everything under `data_dir` is created 0600 (files)
//! and 0700 (directories) explicitly, so it holds whatever the umask; [`restrict_umask`] covers
//! anything else the process creates, and [`tighten_tree`] fixes the modes a box upgraded from
//! an older version left behind (0644).
//!
//! A TLS private key must not be readable by others either ([`key_exposure`]), with the rule
//! PostgreSQL applies to its server key: a key owned by the user running the agent must have no
//! group or other permission bits (0600 or stricter); a key owned by root (the agent running as
//! another user, reading it through its group) may also be group-readable (0640).

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of every file the agent creates under `data_dir`.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every directory the agent creates under (and as) `data_dir`.
pub const DIR_MODE: u32 = 0o700;
/// How deep [`tighten_tree`] goes below `data_dir` (the store's files and `recordings/`).
const TIGHTEN_DEPTH: usize = 3;

/// Sets the process umask to 0077: nothing the agent creates is readable by group or others.
pub fn restrict_umask() {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
}

/// Creates `dir` (and missing parents) 0700; an existing `dir` with a looser mode is set to
/// 0700 (its parents are left as they are: they may be shared, like /var/lib). A directory the
/// agent may write but not chmod (another owner) is used as it is, with a warning.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    let meta = std::fs::metadata(dir)?;
    if meta.mode() & 0o077 != 0 {
        if let Err(e) = std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE)) {
            tracing::warn!(path = %dir.display(), mode = %format!("{:04o}", meta.mode() & 0o7777),
                error = %e, "cannot make the directory private");
        }
    }
    Ok(())
}

/// Creates `path` empty and 0600 if it does not exist (an existing file is left untouched but
/// for a looser mode, which is set to 0600).
pub fn create_file(path: &Path) -> io::Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)?;
    let meta = f.metadata()?;
    if meta.mode() & 0o077 != 0 {
        if let Err(e) = f.set_permissions(Permissions::from_mode(FILE_MODE)) {
            tracing::warn!(path = %path.display(), error = %e, "cannot make the file private");
        }
    }
    Ok(())
}

/// Sets `path` to 0600 if it exists with a mode open to group or others.
pub fn tighten_file(path: &Path) -> io::Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() && m.mode() & 0o077 != 0 => {
            std::fs::set_permissions(path, Permissions::from_mode(FILE_MODE))?;
            Ok(true)
        }
        Ok(_) => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Sets every regular file under `dir` to 0600 and every directory (`dir` included) to 0700
/// where they are looser, a few levels deep; symbolic links and special files are left alone.
/// Returns how many modes were changed; failures are logged and skipped.
pub fn tighten_tree(dir: &Path) -> usize {
    fn walk(dir: &Path, depth: usize, changed: &mut usize) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let wanted = if meta.is_dir() {
                DIR_MODE
            } else if meta.is_file() {
                FILE_MODE
            } else {
                continue;
            };
            if meta.mode() & 0o077 != 0 {
                match std::fs::set_permissions(&path, Permissions::from_mode(wanted)) {
                    Ok(()) => *changed += 1,
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "cannot make private")
                    }
                }
            }
            if meta.is_dir() && depth > 0 {
                walk(&path, depth - 1, changed);
            }
        }
    }
    let mut changed = 0;
    if let Ok(meta) = std::fs::symlink_metadata(dir) {
        if meta.is_dir() && meta.mode() & 0o077 != 0 {
            match std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE)) {
                Ok(()) => changed += 1,
                Err(e) => tracing::warn!(path = %dir.display(), error = %e, "cannot make private"),
            }
        }
    }
    walk(dir, TIGHTEN_DEPTH, &mut changed);
    changed
}

/// Why a private key file is open to others, or `None` when it is private enough (see the
/// module doc for the rule). A file that cannot be examined gives `None`: reading it reports
/// that error.
pub fn key_exposure(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let mode = meta.mode() & 0o7777;
    let root_owned = meta.uid() == 0 && !nix::unistd::geteuid().is_root();
    let (forbidden, allowed) = if root_owned {
        (0o037, "0640 for a key owned by root")
    } else {
        (0o077, "0600")
    };
    (mode & forbidden != 0).then(|| {
        format!(
            "{} is open to {} (mode {mode:04o}); a private key must be {allowed} or stricter: chmod 600 {}",
            path.display(),
            if mode & 0o007 != 0 {
                "everyone"
            } else {
                "its group"
            },
            path.display()
        )
    })
}

/// Whether others can read `path`; `Some(mode)` when they can: everyone, or its group unless
/// the file is owned by root (`root:gsmgw 0640` is how a service is given its config).
pub fn readable_by_others(path: &Path) -> Option<u32> {
    let meta = std::fs::metadata(path).ok()?;
    let mode = meta.mode() & 0o7777;
    let group_ok = meta.uid() == 0;
    (mode & 0o004 != 0 || (mode & 0o040 != 0 && !group_ok)).then_some(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn created_private_whatever_the_umask() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("a/b");
        create_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&d.path().join("a")), 0o700);
        let f = dir.join("db");
        create_file(&f).unwrap();
        assert_eq!(mode(&f), 0o600);
        // An existing loose file keeps its content and loses its loose mode.
        std::fs::write(&f, b"x").unwrap();
        std::fs::set_permissions(&f, Permissions::from_mode(0o644)).unwrap();
        create_file(&f).unwrap();
        assert_eq!(
            (mode(&f), std::fs::read(&f).unwrap()),
            (0o600, b"x".to_vec())
        );
    }

    #[test]
    fn tighten_tree_fixes_an_upgraded_data_dir() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("data");
        std::fs::create_dir_all(data.join("recordings")).unwrap();
        for (p, m) in [
            (data.clone(), 0o755),
            (data.join("recordings"), 0o775),
            (data.join("gsmgw.db"), 0o644),
            (data.join("recordings/c1.wav"), 0o664),
        ] {
            if !p.is_dir() {
                std::fs::write(&p, b"").unwrap();
            }
            std::fs::set_permissions(&p, Permissions::from_mode(m)).unwrap();
        }
        std::os::unix::fs::symlink("/etc/hostname", data.join("link")).unwrap();
        assert_eq!(tighten_tree(&data), 4);
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("recordings")), 0o700);
        assert_eq!(mode(&data.join("gsmgw.db")), 0o600);
        assert_eq!(mode(&data.join("recordings/c1.wav")), 0o600);
        assert_eq!(tighten_tree(&data), 0, "nothing left to fix");
    }

    #[test]
    fn key_exposure_follows_the_owner_rule() {
        let d = tempfile::tempdir().unwrap();
        let k = d.path().join("key.pem");
        std::fs::write(&k, b"k").unwrap();
        for (m, exposed) in [(0o600, false), (0o400, false), (0o640, true), (0o644, true)] {
            std::fs::set_permissions(&k, Permissions::from_mode(m)).unwrap();
            assert_eq!(key_exposure(&k).is_some(), exposed, "{m:o}");
        }
        std::fs::set_permissions(&k, Permissions::from_mode(0o644)).unwrap();
        let why = key_exposure(&k).unwrap();
        assert!(
            why.contains("mode 0644") && why.contains("chmod 600"),
            "{why}"
        );
        assert_eq!(readable_by_others(&k), Some(0o644));
        assert!(key_exposure(&d.path().join("missing")).is_none());
    }
}
