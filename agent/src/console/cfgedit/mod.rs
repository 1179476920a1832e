//! Editing the configuration from the console: keys set one at a time on a working copy that
//! is validated exactly like `gsmgw config check` after every change, shown with secrets
//! masked, compared with the file, and saved atomically (temp file, fsync, rename, `.bak`).
//!
//! The working copy is a `toml_edit` document, so the file keeps its comments and layout.

mod keys;
#[cfg(test)]
mod tests;
mod text;

use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item, Value};

use crate::config::{self, Config, ConfigError};
use keys::{KeyPath, SECRET_KEYS, candidates, default_of, set_in};
pub use text::write_atomic;
use text::{SHORT_MASK, line_diff, masked, secrets_of};

/// Shown instead of a secret.
pub const MASK: &str = "********";

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
            KeyPath::Listed { list, n, leaf } => {
                let mut at: Option<&Item> = self.pending.get(&list[0]);
                for name in &list[1..] {
                    at = at.and_then(|t| t.get(name));
                }
                at.and_then(Item::as_array_of_tables)
                    .and_then(|a| a.get(n - 1))
                    .and_then(|t| t.get(leaf))
            }
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
    ///
    /// The value takes the type the key has in the configuration (`sms.per_day 100` is a
    /// number, `voice.record_sip_in true` a boolean, `gateway.port_scan a,b` a list, `gateway.id
    /// 100` text): the readings of `raw` are tried in turn and the first valid one is kept.
    pub fn set(&mut self, key: &str, raw: &str) -> Result<(), String> {
        let path = KeyPath::parse(key)?;
        let mut refusals: Vec<String> = Vec::new();
        for value in candidates(raw) {
            match self.change(|doc| set_in(doc, &path, Some(value))) {
                Ok(()) => return Ok(()),
                Err(e) => refusals.push(e),
            }
        }
        // The reason that is not about the value's type says most (a range, a format);
        // otherwise the type the key wants.
        let best = refusals
            .iter()
            .find(|e| !e.contains("invalid type"))
            .or(refusals.last())
            .cloned();
        Err(best
            .map(|e| plain_type_words(&e, key, raw))
            .unwrap_or_else(|| format!("{key}: no value given")))
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

/// A type refusal in people's words: `modem[1].baud takes a whole number, not "fast"` rather
/// than serde's `invalid type: string "fast", expected u32`.
fn plain_type_words(refusal: &str, key: &str, raw: &str) -> String {
    let Some(expected) = refusal
        .find("invalid type")
        .and_then(|i| refusal[i..].split_once("expected "))
        .map(|(_, e)| e.lines().next().unwrap_or("").trim())
    else {
        return refusal.to_string();
    };
    let wants = match expected {
        e if e.starts_with('u') || e.starts_with('i') => "a whole number",
        e if e.starts_with('f') => "a number",
        "a boolean" => "true or false",
        e if e.contains("sequence") => "a list (a, b or [\"a\", \"b\"])",
        e if e.contains("string") => "text",
        _ => return refusal.to_string(),
    };
    format!("{key} takes {wants}, not {:?}", raw.trim())
}
