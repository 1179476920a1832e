//! The disk under the store: free space, the reserve file, and the acknowledged-rows log.
//!
//! A full file system must not silence the box. The store keeps a reserve file of
//! [`RESERVE_BYTES`] next to the database; when SQLite reports SQLITE_FULL (or free space
//! drops under [`LOW_WATER_BYTES`]) the store goes into *full* mode: it deletes the reserve so
//! that what must still happen can (the disk-full alarm, deletes of acknowledged rows, the WAL
//! checkpoint that gives space back) and refuses new data, which stays at its source (an SMS on
//! the SIM, a command at the broker). Once [`RECOVER_BYTES`] are free again the reserve is
//! written back and the store takes data again, without a restart.
//!
//! Rows whose PUBACK arrived but whose delete failed are written to a preallocated file
//! (overwritten in place, so it needs no new blocks on a full disk): after a restart they are
//! deleted first and never published again.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Size of the reserve file released when the disk is full.
pub const RESERVE_BYTES: u64 = 2 << 20;
/// Free space under which the store stops taking new data.
pub const LOW_WATER_BYTES: u64 = 512 << 10;
/// Free space needed to leave full mode (the reserve is written back out of it).
pub const RECOVER_BYTES: u64 = LOW_WATER_BYTES + (256 << 10);

/// Size of the acknowledged-rows log: a header and up to [`ACK_LOG_RANGES`] seq ranges.
const ACK_LOG_BYTES: usize = 64 << 10;
const ACK_LOG_MAGIC: &[u8; 8] = b"GSMGWACK";
const ACK_LOG_HEADER: usize = 16;
/// Seq ranges the acknowledged-rows log holds.
pub const ACK_LOG_RANGES: usize = (ACK_LOG_BYTES - ACK_LOG_HEADER) / 16;

/// Free bytes for unprivileged writers on the file system holding `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    Some((st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64))
}

/// The reserve file.
#[derive(Debug)]
pub struct Reserve {
    path: PathBuf,
}

impl Reserve {
    /// The reserve beside the database `db`.
    pub fn beside(db: &Path) -> Self {
        Self {
            path: super::schema::suffixed(db, ".reserve"),
        }
    }

    /// Whether the reserve file is there at its full size.
    pub fn present(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= RESERVE_BYTES)
    }

    /// Writes the reserve (real blocks: zeros written and synced, not a sparse file); on a
    /// disk without room it is removed again and the error returned.
    pub fn fill(&self) -> std::io::Result<()> {
        if self.present() {
            return Ok(());
        }
        let r = (|| {
            let mut f = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o600)
                .open(&self.path)?;
            let block = vec![0u8; 64 << 10];
            let mut left = RESERVE_BYTES;
            while left > 0 {
                let n = left.min(block.len() as u64) as usize;
                f.write_all(&block[..n])?;
                left -= n as u64;
            }
            f.sync_all()
        })();
        if r.is_err() {
            let _ = std::fs::remove_file(&self.path);
        }
        r
    }

    /// Deletes the reserve; true if there was one.
    pub fn release(&self) -> bool {
        std::fs::remove_file(&self.path).is_ok()
    }
}

/// The acknowledged-rows log: seqs the broker acknowledged whose delete did not commit.
#[derive(Debug)]
pub struct AckLog {
    path: PathBuf,
    file: Option<File>,
    /// Whether the file holds ranges now.
    dirty: bool,
}

impl AckLog {
    /// Opens (preallocating when needed) the log beside the database `db`. Best effort: with
    /// no room for it, acknowledged rows whose delete fails may be published again after a
    /// restart (with their old seq; the central server deduplicates by id).
    pub fn open(db: &Path) -> Self {
        let path = super::schema::suffixed(db, ".acked");
        let file = match Self::prepare(&path) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "acknowledged-rows log not available");
                None
            }
        };
        Self {
            path,
            file,
            dirty: true,
        }
    }

    fn prepare(path: &Path) -> std::io::Result<File> {
        let mut f = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        let len = f.metadata()?.len();
        if len < ACK_LOG_BYTES as u64 {
            // Zeros written, not set_len: the blocks must exist before the disk fills.
            f.seek(SeekFrom::Start(len))?;
            f.write_all(&vec![0u8; ACK_LOG_BYTES - len as usize])?;
            f.sync_all()?;
        }
        Ok(f)
    }

    /// The seqs recorded (from a run that stopped before it could delete them).
    pub fn load(&mut self) -> BTreeSet<u64> {
        let mut out = BTreeSet::new();
        let Some(f) = self.file.as_mut() else {
            return out;
        };
        let mut buf = vec![0u8; ACK_LOG_BYTES];
        if f.seek(SeekFrom::Start(0)).is_err() || f.read_exact(&mut buf).is_err() {
            return out;
        }
        if &buf[..8] != ACK_LOG_MAGIC {
            self.dirty = false;
            return out;
        }
        let n = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
        for i in 0..n.min(ACK_LOG_RANGES) {
            let at = ACK_LOG_HEADER + i * 16;
            let word = |o: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[at + o..at + o + 8]);
                u64::from_le_bytes(b)
            };
            let (start, end) = (word(0), word(8));
            // A damaged entry must not make us walk billions of seqs.
            if end >= start && end - start < 1 << 24 {
                out.extend(start..=end);
            }
        }
        out
    }

    /// Records `seqs` (replacing what was there), synced. Ranges beyond the file's room are
    /// left out.
    pub fn store(&mut self, seqs: &BTreeSet<u64>) -> std::io::Result<()> {
        if seqs.is_empty() {
            return self.clear();
        }
        let Some(f) = self.file.as_mut() else {
            return Err(std::io::Error::other(format!(
                "{}: not available",
                self.path.display()
            )));
        };
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for &s in seqs {
            match ranges.last_mut() {
                Some((_, end)) if *end + 1 == s => *end = s,
                _ => ranges.push((s, s)),
            }
        }
        if ranges.len() > ACK_LOG_RANGES {
            tracing::warn!(
                ranges = ranges.len(),
                kept = ACK_LOG_RANGES,
                "acknowledged-rows log full; the oldest ranges are not kept"
            );
            ranges.drain(..ranges.len() - ACK_LOG_RANGES);
        }
        let mut buf = Vec::with_capacity(ACK_LOG_HEADER + ranges.len() * 16);
        buf.extend_from_slice(ACK_LOG_MAGIC);
        buf.extend_from_slice(&(ranges.len() as u32).to_le_bytes());
        buf.extend_from_slice(&[0u8; 4]);
        for (s, e) in ranges {
            buf.extend_from_slice(&s.to_le_bytes());
            buf.extend_from_slice(&e.to_le_bytes());
        }
        f.seek(SeekFrom::Start(0))?;
        f.write_all(&buf)?;
        f.sync_data()?;
        self.dirty = true;
        Ok(())
    }

    /// Empties the log (its header only: the blocks stay allocated).
    pub fn clear(&mut self) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        if let Some(f) = self.file.as_mut() {
            f.seek(SeekFrom::Start(0))?;
            f.write_all(&[0u8; ACK_LOG_HEADER])?;
            f.sync_data()?;
        }
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_log_keeps_ranges_across_reopen_and_clears() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("gsmgw.db");
        let mut log = AckLog::open(&db);
        assert!(log.load().is_empty());
        let seqs: BTreeSet<u64> = [3, 4, 5, 9, 11, 12].into_iter().collect();
        log.store(&seqs).unwrap();
        drop(log);
        let mut log = AckLog::open(&db);
        assert_eq!(log.load(), seqs);
        log.clear().unwrap();
        drop(log);
        assert!(AckLog::open(&db).load().is_empty());
        let len = std::fs::metadata(super::super::schema::suffixed(&db, ".acked"))
            .unwrap()
            .len();
        assert_eq!(len, ACK_LOG_BYTES as u64, "preallocated");
    }

    #[test]
    fn ack_log_with_more_ranges_than_room_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("gsmgw.db");
        let mut log = AckLog::open(&db);
        let seqs: BTreeSet<u64> = (0..(ACK_LOG_RANGES as u64 + 10)).map(|i| i * 2).collect();
        log.store(&seqs).unwrap();
        let back = log.load();
        assert_eq!(back.len(), ACK_LOG_RANGES);
        assert_eq!(back.last(), seqs.last());
    }

    #[test]
    fn reserve_is_written_and_released() {
        let dir = tempfile::tempdir().unwrap();
        let r = Reserve::beside(&dir.path().join("gsmgw.db"));
        assert!(!r.present());
        r.fill().unwrap();
        assert!(r.present());
        assert!(r.release());
        assert!(!r.present());
        assert!(!r.release());
        assert!(free_bytes(dir.path()).is_some_and(|b| b > 0));
    }
}
