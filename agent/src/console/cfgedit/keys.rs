//! Key paths (`section.key`, `modem[N].key`), typed values, defaults, and setting a key in the document.

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, TableLike, Value};

use crate::config::{self, Config};

/// Keys (last path element) whose values are never shown.
pub(super) const SECRET_KEYS: &[&str] = &["password", "pin", "password_hash"];
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
pub(super) enum KeyPath {
    Section(String, String),
    Modem(usize, String),
}

impl KeyPath {
    pub(super) fn parse(key: &str) -> Result<KeyPath, String> {
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

    pub(super) fn leaf(&self) -> &str {
        match self {
            KeyPath::Section(_, l) | KeyPath::Modem(_, l) => l,
        }
    }
}

/// The value typed after `config set KEY`, as TOML.
pub(super) fn typed_value(leaf: &str, raw: &str) -> Result<Value, String> {
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

pub(super) fn default_of(path: &KeyPath) -> Option<String> {
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

pub(super) fn set_in(
    doc: &mut DocumentMut,
    path: &KeyPath,
    value: Option<Value>,
) -> Result<(), String> {
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
