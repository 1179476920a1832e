//! Call recordings on disk: where they live, the retention bound (age and total size), and
//! cutting a file into numbered chunks for `cmd/recording-fetch`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Bytes of WAV per published chunk.
pub const CHUNK_BYTES: usize = 48 * 1024;

/// The recordings folder under data_dir.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("recordings")
}

/// True for a call id that can name a file (ids are UUIDs; nothing else is accepted).
pub fn valid_call_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The WAV file of a call.
pub fn path_for(data_dir: &Path, call_id: &str) -> PathBuf {
    dir(data_dir).join(format!("{call_id}.wav"))
}

/// Deletes recordings older than `max_age`, then the oldest ones while the total exceeds
/// `max_bytes`. Returns how many files were removed.
pub fn enforce_retention(data_dir: &Path, max_age: Duration, max_bytes: u64) -> usize {
    let Ok(entries) = std::fs::read_dir(dir(data_dir)) else {
        return 0;
    };
    let now = SystemTime::now();
    let mut files: Vec<(SystemTime, u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "wav"))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((m.modified().unwrap_or(now), m.len(), e.path()))
        })
        .collect();
    files.sort();
    let mut removed = 0;
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    for (modified, len, path) in files {
        let too_old = now.duration_since(modified).unwrap_or_default() > max_age;
        if too_old || total > max_bytes {
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    removed += 1;
                    total = total.saturating_sub(len);
                    tracing::info!(file = %path.display(), too_old, "recording removed by retention");
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot remove recording")
                }
            }
        }
    }
    removed
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [
            c[0],
            c.get(1).copied().unwrap_or(0),
            c.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The chunk messages of a recording: `{call_id, n, last, size, data}` with the checksum of the
/// whole file on the last one (`sha256`). `n` starts at 0.
pub fn chunks(call_id: &str, data: &[u8]) -> Vec<serde_json::Value> {
    let total = data.len().div_ceil(CHUNK_BYTES).max(1);
    let sha = sha256_hex(data);
    (0..total)
        .map(|n| {
            let part = data
                .get(n * CHUNK_BYTES..((n + 1) * CHUNK_BYTES).min(data.len()))
                .unwrap_or(&[]);
            let last = n + 1 == total;
            crate::proto::jobs::to_value(&crate::proto::replies::RecordingChunk {
                call_id,
                n,
                chunks: total,
                last,
                size: data.len(),
                data: base64(part),
                sha256: last.then_some(sha.as_str()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn chunking_covers_the_file() {
        let data: Vec<u8> = (0..(CHUNK_BYTES * 2 + 10)).map(|i| i as u8).collect();
        let c = chunks("abc", &data);
        assert_eq!(c.len(), 3);
        assert_eq!(c[2]["last"], true);
        assert_eq!(c[0]["last"], false);
        assert!(c[2]["sha256"].as_str().is_some_and(|s| s.len() == 64));
        assert!(c[0].get("sha256").is_none());
    }

    #[test]
    fn retention_by_size() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir(d.path())).unwrap();
        for i in 0..5 {
            std::fs::write(path_for(d.path(), &format!("c{i}")), vec![0u8; 1000]).unwrap();
        }
        let removed = enforce_retention(d.path(), Duration::from_secs(3600), 2500);
        assert_eq!(removed, 3);
        assert!(!valid_call_id("../x"));
    }
}
