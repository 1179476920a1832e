//! Key paths (`section.key`, `modem[N].key`), typed values, defaults, and setting a key in the document.

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, TableLike, Value};

use crate::config::{self, Config};

/// Keys (last path element) whose values are never shown.
pub(super) const SECRET_KEYS: &[&str] = &["password", "pin", "password_hash"];
/// Sections that are plain tables (`[[modem]]`, `[[sms.route]]`, `[[voice.route]]` are lists
/// of tables, addressed as `modem[N].key`, `sms.route[N].key`, `voice.route[N].key`).
const SECTIONS: &[&str] = &["gateway", "mqtt", "console", "sms", "sip", "voice"];
/// Lists of tables inside a section: (section, key).
const TABLE_LISTS: &[(&str, &str)] = &[("sms", "route"), ("voice", "route")];

/// A parsed key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum KeyPath {
    /// `section.key`.
    Section(String, String),
    /// `modem[N].key`, `sms.route[N].key`, `voice.route[N].key`: the N-th (1-based) table of
    /// the list at `list` (`["modem"]`, `["sms", "route"]` …).
    Listed {
        list: Vec<String>,
        n: usize,
        leaf: String,
    },
}

/// `name[N]` → (name, N).
fn indexed(s: &str) -> Option<(&str, usize)> {
    let (name, rest) = s.split_once('[')?;
    let n: usize = rest.strip_suffix(']')?.parse().ok()?;
    (n > 0 && !name.is_empty()).then_some((name, n))
}

impl KeyPath {
    pub(super) fn parse(key: &str) -> Result<KeyPath, String> {
        let bad = || {
            format!(
                "bad key {key:?}: write section.key (gateway.id, sms.per_day, voice.record_sip_in …), modem[N].key (modem[1].port), or sms.route[N].key / voice.route[N].key"
            )
        };
        let parts: Vec<&str> = key.split('.').collect();
        let leaf_ok = |l: &str| !l.is_empty() && !l.contains('[');
        match parts.as_slice() {
            [first, leaf] if first.contains('[') => {
                let (name, n) = indexed(first).ok_or_else(bad)?;
                if name != "modem" || !leaf_ok(leaf) {
                    return Err(bad());
                }
                Ok(KeyPath::Listed {
                    list: vec!["modem".into()],
                    n,
                    leaf: leaf.to_string(),
                })
            }
            [section, second, leaf] if second.contains('[') => {
                let (name, n) = indexed(second).ok_or_else(bad)?;
                if !TABLE_LISTS.contains(&(*section, name)) || !leaf_ok(leaf) {
                    return Err(bad());
                }
                Ok(KeyPath::Listed {
                    list: vec![section.to_string(), name.to_string()],
                    n,
                    leaf: leaf.to_string(),
                })
            }
            [section, leaf] => {
                if !SECTIONS.contains(section) {
                    return Err(format!(
                        "unknown section {section:?}; sections: {}, modem[N]",
                        SECTIONS.join(", ")
                    ));
                }
                if !leaf_ok(leaf) {
                    return Err(bad());
                }
                Ok(KeyPath::Section(section.to_string(), leaf.to_string()))
            }
            _ => Err(bad()),
        }
    }

    pub(super) fn leaf(&self) -> &str {
        match self {
            KeyPath::Section(_, l) | KeyPath::Listed { leaf: l, .. } => l,
        }
    }

    /// The `[[modem]]` table number, for a modem key.
    pub(super) fn modem(&self) -> Option<usize> {
        match self {
            KeyPath::Listed { list, n, .. } if list.len() == 1 && list[0] == "modem" => Some(*n),
            _ => None,
        }
    }
}

/// The values `raw` (typed after `config set KEY`) may mean, most specific first: a TOML value
/// as typed (`100`, `1.5`, `true`, `["a", "b"]`, `"text"`), yes/no/on/off as a boolean, a
/// comma-separated list of strings, and the text itself. The first one the configuration
/// takes wins, so every key gets the type of its own schema.
pub(super) fn candidates(raw: &str) -> Vec<Value> {
    let raw = raw.trim();
    let mut out = Vec::new();
    match raw.to_ascii_lowercase().as_str() {
        "yes" | "on" => out.push(Value::from(true)),
        "no" | "off" => out.push(Value::from(false)),
        _ => {}
    }
    if let Ok(mut v) = raw.parse::<Value>() {
        // Default spacing when written (`key = 100`), not the typed text's.
        v.decor_mut().clear();
        out.push(v);
    }
    if raw.contains(',') && !raw.starts_with('[') {
        let mut a = toml_edit::Array::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            a.push(part);
        }
        out.push(Value::Array(a));
    }
    if !(raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"')) {
        out.push(Value::from(raw));
    }
    out
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
        KeyPath::Listed { leaf: l, .. } if path.modem().is_some() => match l.as_str() {
            "baud" => config::DEFAULT_BAUD.to_string(),
            "dialect" => "auto".into(),
            "enabled" => "true".into(),
            "balance_interval_secs" => config::DEFAULT_BALANCE_INTERVAL_SECS.to_string(),
            _ => return None,
        },
        KeyPath::Listed { .. } => return None,
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
        KeyPath::Listed { list, n, .. } => {
            let shown = key_of(list, *n);
            let (parent, name): (&mut dyn TableLike, &str) = match list.as_slice() {
                [name] => (doc.as_table_mut(), name.as_str()),
                [section, name] => {
                    let root = doc.as_table_mut();
                    if !root.contains_key(section) {
                        if value.is_none() {
                            return Ok(());
                        }
                        root.insert(section, Item::Table(Table::new()));
                    }
                    let t = root
                        .get_mut(section)
                        .and_then(Item::as_table_like_mut)
                        .ok_or_else(|| format!("[{section}] is not a table in the file"))?;
                    (t, name.as_str())
                }
                _ => return Err(format!("bad key {shown}")),
            };
            if !parent.contains_key(name) {
                if value.is_none() {
                    return Ok(());
                }
                parent.insert(name, Item::ArrayOfTables(ArrayOfTables::new()));
            }
            let tables = parent
                .get_mut(name)
                .and_then(Item::as_array_of_tables_mut)
                .ok_or_else(|| {
                    format!(
                        "{} is not a list of [[{}]] tables in the file",
                        list.join("."),
                        list.join(".")
                    )
                })?;
            let len = tables.len();
            if *n == len + 1 && value.is_some() {
                let mut t = Table::new();
                if list.len() == 1 {
                    // A new [[modem]] table; its slot defaults to its position.
                    t.insert("slot", toml_edit::value(i64::try_from(*n).unwrap_or(0)));
                }
                tables.push(t);
            } else if *n > len {
                return Err(format!(
                    "there are {len} [[{}]] tables; {} adds the next one",
                    list.join("."),
                    key_of(list, len + 1)
                ));
            }
            tables
                .get_mut(n - 1)
                .map(|t| t as &mut dyn TableLike)
                .ok_or_else(|| format!("no {shown}"))?
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

/// `modem[2]`, `voice.route[1]`.
pub(super) fn key_of(list: &[String], n: usize) -> String {
    format!("{}[{n}]", list.join("."))
}
