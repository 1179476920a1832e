//! What is shown and written: secrets masked, the line diff, the atomic file write.

use std::io::Write;
use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item, TableLike, Value};

use super::MASK;
use super::keys::SECRET_KEYS;

/// Shown for each side of a changed secret in `config diff`.
pub(super) const SHORT_MASK: &str = "***";

/// Every secret value in `doc` by its key path (`mqtt.password`, `modem[2].pin`), in order.
pub(super) fn secrets_of(doc: &DocumentMut) -> std::collections::BTreeMap<String, String> {
    fn walk_table(
        t: &dyn TableLike,
        prefix: &str,
        out: &mut std::collections::BTreeMap<String, String>,
    ) {
        for (k, item) in t.iter() {
            let path = if prefix.is_empty() {
                k.to_string()
            } else {
                format!("{prefix}.{k}")
            };
            match item {
                Item::Value(v) if SECRET_KEYS.contains(&k) => {
                    let raw = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                    out.insert(path, raw.trim().to_owned());
                }
                Item::ArrayOfTables(a) => {
                    for (i, t) in a.iter().enumerate() {
                        walk_table(t, &format!("{path}[{}]", i + 1), out);
                    }
                }
                Item::Value(Value::Array(a)) => {
                    for (i, v) in a.iter().enumerate() {
                        if let Value::InlineTable(t) = v {
                            walk_table(t, &format!("{path}[{}]", i + 1), out);
                        }
                    }
                }
                other => {
                    if let Some(t) = other.as_table_like() {
                        walk_table(t, &path, out);
                    }
                }
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk_table(doc.as_table(), "", &mut out);
    out
}

/// A copy with secret values replaced by [`MASK`].
pub(super) fn masked(doc: &DocumentMut) -> DocumentMut {
    // Every form a section can take: [headers], dotted keys, inline tables, [[arrays]].
    fn mask_table(t: &mut dyn TableLike) {
        for (k, item) in t.iter_mut() {
            if SECRET_KEYS.contains(&k.get()) {
                if let Some(v) = item.as_value_mut() {
                    let decor = v.decor().clone();
                    *v = Value::from(MASK);
                    *v.decor_mut() = decor;
                }
            } else {
                mask_item(item);
            }
        }
    }
    fn mask_item(item: &mut Item) {
        match item {
            Item::ArrayOfTables(a) => a.iter_mut().for_each(|t| mask_table(t)),
            Item::Value(Value::Array(a)) => {
                for v in a.iter_mut() {
                    if let Value::InlineTable(t) = v {
                        mask_table(t);
                    }
                }
            }
            other => {
                if let Some(t) = other.as_table_like_mut() {
                    mask_table(t);
                }
            }
        }
    }
    let mut d = doc.clone();
    mask_table(d.as_table_mut());
    d
}

/// A minimal line diff (longest common subsequence): `-old` / `+new` lines only.
pub(super) fn line_diff(old: &str, new: &str) -> Vec<String> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a.len().saturating_mul(b.len()) > 4_000_000 {
        let mut out: Vec<String> = a.iter().map(|l| format!("-{l}")).collect();
        out.extend(b.iter().map(|l| format!("+{l}")));
        return out;
    }
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // The old line first, as diff(1) shows a change.
            out.push(format!("-{}", a[i]));
            i += 1;
        } else {
            out.push(format!("+{}", b[j]));
            j += 1;
        }
    }
    out
}

/// Replaces `path` with `text` atomically, keeping the previous file as `<path>.bak`.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    let tmp = dir.join(format!(".{name}.tmp"));
    // The file holds secrets: keep the old file's mode, or owner-only for a new one.
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o600);
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    if path.exists() {
        let mut bak = path.as_os_str().to_owned();
        bak.push(".bak");
        let bak = PathBuf::from(bak);
        std::fs::copy(path, &bak)?;
        std::fs::File::open(&bak)?.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(&dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod diff_tests {
    use super::line_diff;

    #[test]
    fn a_change_reads_old_then_new() {
        assert_eq!(line_diff("a\nb\nc", "a\nB\nc"), ["-b", "+B"]);
        assert_eq!(line_diff("a\nc", "a\nb\nc"), ["+b"]);
        assert_eq!(line_diff("a\nb\nc", "a\nc"), ["-b"]);
        assert_eq!(
            line_diff("x = 1\ny = 2", "x = 3\ny = 4"),
            ["-x = 1", "-y = 2", "+x = 3", "+y = 4"]
        );
        assert!(line_diff("same", "same").is_empty());
    }
}
