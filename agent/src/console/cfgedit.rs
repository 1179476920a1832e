//! Editing the configuration from the console: keys set one at a time on a working copy that
//! is validated exactly like `gsmgw config check` after every change, shown with secrets
//! masked, compared with the file, and saved atomically (temp file, fsync, rename, `.bak`).
//!
//! The working copy is a `toml_edit` document, so the file keeps its comments and layout.

use std::io::Write;
use std::path::{Path, PathBuf};

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, TableLike, Value};

use crate::config::{self, Config, ConfigError};

/// Shown instead of a secret.
pub const MASK: &str = "********";

/// Keys (last path element) whose values are never shown.
const SECRET_KEYS: &[&str] = &["password", "pin", "password_hash"];
/// Keys holding whole numbers.
const INT_KEYS: &[&str] = &[
    "slot",
    "baud",
    "keep_alive_secs",
    "max_command_mb",
    "health_interval_secs",
    "job_retention_days",
    "sms_seen_retention_days",
    "idle_logout_secs",
    "reassembly_timeout_secs",
];
/// Keys holding true/false.
const BOOL_KEYS: &[&str] = &["enabled"];
/// Keys holding a list of strings.
const LIST_KEYS: &[&str] = &["port_scan"];
/// Sections that are plain tables.
const SECTIONS: &[&str] = &["gateway", "mqtt", "console", "sms"];

/// A parsed key path: `section.key` or `modem[N].key` (N: 1-based position of the table).
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyPath {
    Section(String, String),
    Modem(usize, String),
}

impl KeyPath {
    fn parse(key: &str) -> Result<KeyPath, String> {
        let bad = || {
            format!(
                "bad key {key:?}: write section.key (gateway.id, mqtt.url, console.idle_logout_secs …) or modem[N].key (modem[1].port)"
            )
        };
        if let Some(rest) = key.strip_prefix("modem[") {
            let (n, leaf) = rest.split_once("].").ok_or_else(bad)?;
            let n: usize = n.parse().map_err(|_| bad())?;
            if n == 0 || leaf.is_empty() || leaf.contains('.') {
                return Err(bad());
            }
            return Ok(KeyPath::Modem(n, leaf.to_string()));
        }
        let (section, leaf) = key.split_once('.').ok_or_else(bad)?;
        if !SECTIONS.contains(&section) {
            return Err(format!(
                "unknown section {section:?}; sections: gateway, mqtt, console, sms, modem[N]"
            ));
        }
        if leaf.is_empty() || leaf.contains('.') {
            return Err(bad());
        }
        Ok(KeyPath::Section(section.to_string(), leaf.to_string()))
    }

    fn leaf(&self) -> &str {
        match self {
            KeyPath::Section(_, l) | KeyPath::Modem(_, l) => l,
        }
    }
}

/// The value typed after `config set KEY`, as TOML.
fn typed_value(leaf: &str, raw: &str) -> Result<Value, String> {
    let raw = raw.trim();
    if INT_KEYS.contains(&leaf) {
        return raw
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("{leaf} takes a whole number, not {raw:?}"));
    }
    if BOOL_KEYS.contains(&leaf) {
        return match raw.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(Value::from(true)),
            "false" | "no" | "off" | "0" => Ok(Value::from(false)),
            _ => Err(format!("{leaf} takes true or false, not {raw:?}")),
        };
    }
    if LIST_KEYS.contains(&leaf) {
        if raw.starts_with('[') {
            return raw
                .parse::<Value>()
                .map_err(|e| format!("{leaf}: not a TOML list: {}", e.to_string().trim()));
        }
        let mut a = toml_edit::Array::new();
        for part in raw.split([',', ' ']).filter(|p| !p.is_empty()) {
            a.push(part);
        }
        return Ok(Value::Array(a));
    }
    // Strings: quotes are optional; quoted text is read as a TOML string (escapes allowed).
    if raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"') {
        return raw
            .parse::<Value>()
            .map_err(|e| format!("bad quoted string: {}", e.to_string().trim()));
    }
    Ok(Value::from(raw))
}

/// The console's working copy of the configuration.
#[derive(Debug)]
pub struct ConfigEditor {
    path: Option<PathBuf>,
    /// The file's text as last read or written (or the running config when there is no file).
    saved: String,
    /// The working copy.
    pending: DocumentMut,
    /// What the agent runs with now.
    running: Config,
}

/// What `config apply` would change, by section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// `[mqtt]` differs.
    pub mqtt: bool,
    /// `console.password_hash` or `console.idle_logout_secs` differ.
    pub console_live: bool,
    /// Sections that need a restart of the agent (gateway, modem, console device/baud, sms).
    pub need_restart: Vec<&'static str>,
}

impl Changes {
    /// Nothing to apply.
    pub fn is_empty(&self) -> bool {
        !self.mqtt && !self.console_live && self.need_restart.is_empty()
    }
}

impl ConfigEditor {
    /// A working copy of the file at `path` (or of `running` when there is none or it is
    /// unreadable).
    pub fn new(path: Option<PathBuf>, running: &Config) -> Self {
        let from_file = path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| t.parse::<DocumentMut>().ok().map(|d| (t, d)));
        let (saved, pending) = match from_file {
            Some(x) => x,
            None => {
                let t = toml::to_string(running).unwrap_or_default();
                let d = t.parse::<DocumentMut>().unwrap_or_default();
                (t, d)
            }
        };
        Self {
            path,
            saved,
            pending,
            running: running.clone(),
        }
    }

    /// The file saved to, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// What the agent runs with now.
    pub fn running(&self) -> &Config {
        &self.running
    }

    /// Records what is running after an apply.
    pub fn set_running(&mut self, cfg: Config) {
        self.running = cfg;
    }

    fn origin(&self) -> String {
        self.path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(console)".into())
    }

    /// Parses and validates the working copy like `gsmgw config check`.
    pub fn pending_config(&self) -> Result<Config, String> {
        validate(&self.pending.to_string(), &self.origin())
    }

    /// The working copy with secrets masked.
    pub fn show(&self) -> String {
        let mut out = masked(&self.pending).to_string();
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out
    }

    /// One value (secrets masked).
    pub fn get(&self, key: &str) -> Result<String, String> {
        let path = KeyPath::parse(key)?;
        let item = match &path {
            KeyPath::Section(s, l) => self.pending.get(s).and_then(|t| t.get(l)),
            KeyPath::Modem(n, l) => self
                .pending
                .get("modem")
                .and_then(Item::as_array_of_tables)
                .and_then(|a| a.get(n - 1))
                .and_then(|t| t.get(l)),
        };
        match item.and_then(Item::as_value) {
            Some(_) if SECRET_KEYS.contains(&path.leaf()) => Ok(format!("{MASK} (set)")),
            Some(v) => Ok(v.clone().decorated("", "").to_string()),
            None => Ok(format!(
                "(not set: {})",
                default_of(&path).unwrap_or_else(|| "no default".into())
            )),
        }
    }

    /// Sets `key` to `raw` if the result is a valid configuration; otherwise nothing changes
    /// and every problem is returned.
    pub fn set(&mut self, key: &str, raw: &str) -> Result<(), String> {
        let path = KeyPath::parse(key)?;
        let value = typed_value(path.leaf(), raw)?;
        self.change(|doc| set_in(doc, &path, Some(value)))
    }

    /// Removes `key` (back to its default) if the result is valid.
    pub fn unset(&mut self, key: &str) -> Result<(), String> {
        let path = KeyPath::parse(key)?;
        self.change(|doc| set_in(doc, &path, None))
    }

    fn change(
        &mut self,
        f: impl FnOnce(&mut DocumentMut) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut doc = self.pending.clone();
        f(&mut doc)?;
        validate(&doc.to_string(), &self.origin())?;
        self.pending = doc;
        Ok(())
    }

    /// Lines that differ between the file and the working copy (secrets masked).
    pub fn diff(&self) -> String {
        let old = match self.saved.parse::<DocumentMut>() {
            Ok(d) => masked(&d).to_string(),
            Err(_) => self.saved.clone(),
        };
        let new = masked(&self.pending).to_string();
        let mut lines = line_diff(&old, &new);
        // A secret changed in place looks the same masked: say so, never showing a value.
        if let Ok(saved) = self.saved.parse::<DocumentMut>() {
            let before = secrets_of(&saved);
            for (key, value) in secrets_of(&self.pending) {
                if before.get(&key).is_some_and(|old| *old != value) {
                    lines.push(format!("~{key} = {SHORT_MASK} → {SHORT_MASK} (changed)"));
                }
            }
        }
        if lines.is_empty() {
            return "no changes to save\n".into();
        }
        let mut out = format!(
            "--- {}\n+++ working copy\n",
            self.path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "running configuration".into())
        );
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
        out
    }

    /// Whether the working copy differs from the file.
    pub fn unsaved(&self) -> bool {
        self.pending.to_string() != self.saved
    }

    /// What applying the working copy would change.
    pub fn changes(&self, new: &Config) -> Changes {
        let old = &self.running;
        let mut c = Changes {
            mqtt: old.mqtt != new.mqtt,
            console_live: old.console.password_hash != new.console.password_hash
                || old.console.idle_logout_secs != new.console.idle_logout_secs,
            need_restart: Vec::new(),
        };
        if old.gateway != new.gateway {
            c.need_restart.push("gateway");
        }
        if old.modems != new.modems {
            c.need_restart.push("modem");
        }
        if old.console.device != new.console.device || old.console.baud != new.console.baud {
            c.need_restart.push("console (device, baud)");
        }
        if old.sms != new.sms {
            c.need_restart.push("sms");
        }
        c
    }

    /// Throws the working copy away and reads the file again.
    pub fn revert(&mut self) -> Result<(), String> {
        if let Some(p) = &self.path {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            self.pending = text
                .parse()
                .map_err(|e| format!("{} is not TOML: {e}", p.display()))?;
            self.saved = text;
        } else {
            self.pending = self.saved.parse().unwrap_or_default();
        }
        Ok(())
    }

    /// Writes the working copy to the file: temp file, fsync, the old file kept as `.bak`,
    /// rename, fsync of the directory. Refused when the file changed on disk meanwhile.
    pub fn save(&mut self) -> Result<PathBuf, String> {
        let path = self
            .path
            .clone()
            .ok_or("the agent was started without a configuration file; nothing to save to")?;
        self.pending_config()?;
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        if on_disk != self.saved {
            return Err(format!(
                "{} changed on disk since the console read it; `config revert` reads it again (your edits are lost)",
                path.display()
            ));
        }
        let text = self.pending.to_string();
        write_atomic(&path, &text).map_err(|e| format!("cannot save {}: {e}", path.display()))?;
        self.saved = text;
        Ok(path)
    }

    /// Stores a new console password hash in the working copy and — without the other
    /// unsaved edits — in the file. Returns where it was stored.
    pub fn store_password_hash(&mut self, hash: &str) -> Result<String, String> {
        let key = KeyPath::Section("console".into(), "password_hash".into());
        set_in(&mut self.pending, &key, Some(Value::from(hash)))?;
        self.running.console.password_hash = Some(hash.to_string());
        let Some(path) = self.path.clone() else {
            return Ok(format!(
                "not stored: the agent runs without a configuration file; put this line in its [console] section:\npassword_hash = \"{hash}\""
            ));
        };
        let on_disk = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut doc: DocumentMut = on_disk
            .parse()
            .map_err(|e| format!("{} is not TOML: {e}", path.display()))?;
        set_in(&mut doc, &key, Some(Value::from(hash)))?;
        let text = doc.to_string();
        validate(&text, &path.display().to_string())?;
        write_atomic(&path, &text).map_err(|e| format!("cannot save {}: {e}", path.display()))?;
        // Edits made before stay pending: the baseline is now the file with the new hash.
        let was_clean = !self.unsaved_against(&on_disk);
        self.saved = text;
        if was_clean {
            self.pending = self.saved.parse().unwrap_or_default();
        }
        Ok(format!("stored in {}", path.display()))
    }

    fn unsaved_against(&self, baseline: &str) -> bool {
        let mut pending = self.pending.clone();
        // Compare without the hash just written.
        if let Ok(mut base) = baseline.parse::<DocumentMut>() {
            let key = KeyPath::Section("console".into(), "password_hash".into());
            let _ = set_in(&mut base, &key, None);
            let _ = set_in(&mut pending, &key, None);
            return base.to_string() != pending.to_string();
        }
        true
    }
}

fn default_of(path: &KeyPath) -> Option<String> {
    let d = Config::default();
    let v = match path {
        KeyPath::Section(s, l) => match (s.as_str(), l.as_str()) {
            ("gateway", "data_dir") => d.gateway.data_dir.display().to_string(),
            ("gateway", "log_level") => d.gateway.log_level,
            ("gateway", "health_interval_secs") => d.gateway.health_interval_secs.to_string(),
            ("gateway", "job_retention_days") => d.gateway.job_retention_days.to_string(),
            ("gateway", "sms_seen_retention_days") => d.gateway.sms_seen_retention_days.to_string(),
            ("mqtt", "url") => d.mqtt.url,
            ("mqtt", "keep_alive_secs") => d.mqtt.keep_alive_secs.to_string(),
            ("mqtt", "max_command_mb") => d.mqtt.max_command_mb.to_string(),
            ("console", "device") => d.console.device,
            ("console", "baud") => d.console.baud.to_string(),
            ("console", "idle_logout_secs") => d.console.idle_logout_secs.to_string(),
            ("sms", "reassembly_timeout_secs") => d.sms.reassembly_timeout_secs.to_string(),
            _ => return None,
        },
        KeyPath::Modem(_, l) => match l.as_str() {
            "baud" => config::DEFAULT_BAUD.to_string(),
            "dialect" => "auto".into(),
            "enabled" => "true".into(),
            _ => return None,
        },
    };
    Some(format!("default {v}"))
}

/// Validation exactly as `gsmgw config check` does it; problems one per line.
fn validate(text: &str, origin: &str) -> Result<Config, String> {
    config::parse_str(text, origin).map_err(|e| match e {
        ConfigError::Invalid(problems) => problems
            .iter()
            .map(|p| {
                let mut p = p.clone();
                // Line numbers of a working copy mean little on a console.
                p.file.clear();
                p.line = None;
                p.to_string()
            })
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    })
}

fn set_in(doc: &mut DocumentMut, path: &KeyPath, value: Option<Value>) -> Result<(), String> {
    // Sections may be written as [headers], dotted keys or inline tables.
    let table: &mut dyn TableLike = match path {
        KeyPath::Section(s, _) => {
            let root = doc.as_table_mut();
            if !root.contains_key(s) {
                if value.is_none() {
                    return Ok(());
                }
                root.insert(s, Item::Table(Table::new()));
            }
            root.get_mut(s)
                .and_then(Item::as_table_like_mut)
                .ok_or_else(|| format!("[{s}] is not a table in the file"))?
        }
        KeyPath::Modem(n, _) => {
            let root = doc.as_table_mut();
            if !root.contains_key("modem") {
                root.insert("modem", Item::ArrayOfTables(ArrayOfTables::new()));
            }
            let modems = root
                .get_mut("modem")
                .and_then(Item::as_array_of_tables_mut)
                .ok_or("modem is not a list of [[modem]] tables in the file")?;
            let len = modems.len();
            if *n == len + 1 && value.is_some() {
                // A new [[modem]] table; its slot defaults to its position.
                let mut t = Table::new();
                t.insert("slot", toml_edit::value(i64::try_from(*n).unwrap_or(0)));
                modems.push(t);
            } else if *n > len {
                return Err(format!(
                    "there are {len} [[modem]] tables; modem[{}] adds the next one",
                    len + 1
                ));
            }
            modems
                .get_mut(n - 1)
                .map(|t| t as &mut dyn TableLike)
                .ok_or_else(|| format!("no modem[{n}]"))?
        }
    };
    let leaf = path.leaf();
    match value {
        None => {
            table.remove(leaf);
        }
        Some(mut v) => {
            if let Some(old) = table.get(leaf).and_then(Item::as_value) {
                let d = old.decor();
                let (pre, suf) = (
                    d.prefix()
                        .and_then(|r| r.as_str())
                        .unwrap_or(" ")
                        .to_string(),
                    d.suffix()
                        .and_then(|r| r.as_str())
                        .unwrap_or("")
                        .to_string(),
                );
                v = v.decorated(pre, suf);
            }
            table.insert(leaf, Item::Value(v));
        }
    }
    Ok(())
}

/// Shown for each side of a changed secret in `config diff`.
const SHORT_MASK: &str = "***";

/// Every secret value in `doc` by its key path (`mqtt.password`, `modem[2].pin`), in order.
fn secrets_of(doc: &DocumentMut) -> std::collections::BTreeMap<String, String> {
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
fn masked(doc: &DocumentMut) -> DocumentMut {
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
fn line_diff(old: &str, new: &str) -> Vec<String> {
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
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(format!("+{}", b[j]));
            j += 1;
        } else {
            out.push(format!("-{}", a[i]));
            i += 1;
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
mod tests {
    use super::*;

    const FILE: &str = "# the box\n[gateway]\nid = \"gw-1\" # name\ndata_dir = \"/tmp/x\"\n\n[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\nusername = \"u\"\npassword = \"hunter22\"\n\n[[modem]]\nslot = 1\nport = \"/dev/ttyUSB2\"\npin = \"1234\"\n\n[console]\ndevice = \"none\"\n";

    fn editor(dir: &Path) -> ConfigEditor {
        let p = dir.join("gw.toml");
        std::fs::write(&p, FILE).unwrap();
        let cfg = config::parse_str(FILE, "gw.toml").unwrap();
        ConfigEditor::new(Some(p), &cfg)
    }

    #[test]
    fn secrets_are_masked_and_comments_kept() {
        let d = tempfile::tempdir().unwrap();
        let e = editor(d.path());
        let s = e.show();
        assert!(!s.contains("hunter22") && !s.contains("1234"), "{s}");
        assert!(s.contains("# the box") && s.contains("# name"));
        assert_eq!(e.get("mqtt.password").unwrap(), "******** (set)");
        assert_eq!(e.get("modem[1].port").unwrap(), "\"/dev/ttyUSB2\"");
        assert!(
            e.get("mqtt.keep_alive_secs")
                .unwrap()
                .contains("default 30")
        );
    }

    #[test]
    fn invalid_values_are_refused_with_the_reason_and_nothing_changes() {
        let d = tempfile::tempdir().unwrap();
        let mut e = editor(d.path());
        let err = e.set("mqtt.url", "http://x").unwrap_err();
        assert!(err.contains("mqtt.url"), "{err}");
        let err = e.set("modem[1].baud", "12345").unwrap_err();
        assert!(err.contains("modem[1].baud"), "{err}");
        assert!(e.set("mqtt.keep_alive_secs", "soon").is_err());
        assert!(e.set("mqtt.colour", "blue").is_err());
        assert!(e.set("modem[3].port", "/dev/x").is_err());
        assert!(!e.unsaved());
        assert_eq!(e.diff(), "no changes to save\n");
    }

    /// Only a secret changed: the diff says so (no "no changes"), without either value; the
    /// pin of the second modem too, by its path.
    #[test]
    fn a_changed_secret_shows_in_the_diff_masked() {
        let d = tempfile::tempdir().unwrap();
        let mut e = editor(d.path());
        e.set("mqtt.password", "hunter23").unwrap();
        e.set("modem[1].pin", "4321").unwrap();
        let diff = e.diff();
        assert!(!diff.contains("no changes"), "{diff}");
        assert!(
            diff.contains("~mqtt.password = *** → *** (changed)")
                && diff.contains("~modem[1].pin = *** → *** (changed)"),
            "{diff}"
        );
        for secret in ["hunter22", "hunter23", "1234", "4321"] {
            assert!(!diff.contains(secret), "{secret} in {diff}");
        }
        // Set back to what the file says: no change.
        e.set("mqtt.password", "hunter22").unwrap();
        e.set("modem[1].pin", "1234").unwrap();
        assert_eq!(e.diff(), "no changes to save\n");
    }

    #[test]
    fn set_diff_save_keeps_a_backup() {
        let d = tempfile::tempdir().unwrap();
        let mut e = editor(d.path());
        e.set("mqtt.username", "gw-7").unwrap();
        e.set("mqtt.password", "s3cret").unwrap();
        e.set("modem[2].port", "/dev/ttyUSB6").unwrap();
        e.set("gateway.port_scan", "/dev/ttyUSB*, /dev/ttyACM*")
            .unwrap();
        let diff = e.diff();
        assert!(
            diff.contains("-username = \"u\"") && diff.contains("+username = \"gw-7\""),
            "{diff}"
        );
        assert!(!diff.contains("s3cret"), "{diff}");
        assert!(
            diff.contains("~mqtt.password = *** → *** (changed)"),
            "{diff}"
        );
        assert!(!diff.contains("hunter22"), "{diff}");
        let cfg = e.pending_config().unwrap();
        assert_eq!(cfg.modems.len(), 2);
        assert_eq!(cfg.modems[1].slot, 2);
        let ch = e.changes(&cfg);
        assert!(ch.mqtt && ch.need_restart.contains(&"modem"));
        let p = e.save().unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("username = \"gw-7\"") && text.contains("# name"));
        assert_eq!(
            std::fs::read_to_string(d.path().join("gw.toml.bak")).unwrap(),
            FILE
        );
        assert!(config::load(&p).is_ok());
        // A hand edit meanwhile is not overwritten.
        std::fs::write(&p, FILE).unwrap();
        e.set("mqtt.username", "other").unwrap();
        assert!(e.save().unwrap_err().contains("changed on disk"));
        e.revert().unwrap();
        assert!(!e.unsaved());
    }

    #[test]
    fn inline_and_dotted_sections_can_be_edited() {
        let text = "gateway.id = \"gw-1\"\ngateway.data_dir = \"/tmp/x\"\nmqtt = { url = \"mqtt://127.0.0.1\" }\n[console]\ndevice = \"none\"\n";
        let cfg = config::parse_str(text, "t.toml").unwrap();
        let mut e = ConfigEditor::new(None, &cfg);
        // Without a file the working copy is the running config; edit it all the same.
        e.pending = text.parse().unwrap();
        e.set("mqtt.username", "u1").unwrap();
        e.set("gateway.log_level", "debug").unwrap();
        e.set("mqtt.password", "inline-secret").unwrap();
        assert!(!e.show().contains("inline-secret"), "{}", e.show());
        assert!(!e.diff().contains("inline-secret"));
        let c = e.pending_config().unwrap();
        assert_eq!(c.mqtt.username.as_deref(), Some("u1"));
        assert_eq!(c.gateway.log_level, "debug");
        assert!(e.save().is_err(), "no file to save to");
    }

    #[test]
    fn password_hash_is_stored_without_other_edits() {
        let d = tempfile::tempdir().unwrap();
        let mut e = editor(d.path());
        e.set("mqtt.username", "pending-edit").unwrap();
        let h = crate::console::auth::hash_password("long enough").unwrap();
        e.store_password_hash(&h).unwrap();
        let text = std::fs::read_to_string(d.path().join("gw.toml")).unwrap();
        assert!(text.contains(&h) && !text.contains("pending-edit"));
        assert!(e.unsaved());
        assert!(e.show().contains("pending-edit"));
    }
}
