//! Reading TOML text into a [`Config`] while collecting every problem with its line.
//!
//! serde with `deny_unknown_fields` stops at the first error. Instead the text is parsed once
//! into a spanned tree (`toml::de::DeTable`), which is walked against the known keys of each
//! section; every known value is deserialized on its own, so one bad value does not hide the
//! next. Unknown keys, missing keys and type errors are collected on the way; afterwards
//! [`Config::validate`] runs on the result and its key paths are mapped back to lines.

use std::collections::HashMap;
use std::fmt::Display;
use std::ops::Range;

use serde::de::{DeserializeOwned, IntoDeserializer};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::Problem;
use super::model::{
    Config, ConsoleConfig, GatewayConfig, ModemConfig, MqttConfig, SipConfig, SmsConfig,
    VoiceConfig,
};

/// Key used for TOML syntax errors.
pub(crate) const SYNTAX_KEY: &str = "syntax";

const ROOT_KEYS: &[&str] = &["gateway", "mqtt", "modem", "console", "sms", "sip", "voice"];
const SIP_KEYS: &[&str] = &[
    "server",
    "domain",
    "username",
    "auth_username",
    "password",
    "bind",
    "media_address",
    "register",
    "register_expires_secs",
    "options_interval_secs",
    "rtp_port_min",
    "rtp_port_max",
    "codecs",
    "trusted_peers",
    "inbound_auth",
    "inbound_username",
    "inbound_password",
    "untrusted",
    "rate_limit_per_source",
];
const VOICE_KEYS: &[&str] = &[
    "ring_timeout_secs",
    "call_minutes_per_day",
    "rtp_timeout_secs",
    "record_sip_in",
    "missed_call_sms",
    "missed_call_sms_on",
    "missed_call_sms_period_secs",
    "recordings_max_age_days",
    "recordings_max_mb",
    "bridge_domains",
    "route",
];
const SMS_KEYS: &[&str] = &[
    "reassembly_timeout_secs",
    "per_minute",
    "per_hour",
    "per_day",
    "quiet_hours",
    "on_unknown",
    "cooldown_secs",
    "route",
];
const GATEWAY_KEYS: &[&str] = &[
    "id",
    "data_dir",
    "log_format",
    "log_level",
    "board_profile",
    "port_scan",
    "health_interval_secs",
    "job_retention_days",
    "sms_seen_retention_days",
];
const MQTT_KEYS: &[&str] = &[
    "url",
    "username",
    "password",
    "ca_file",
    "cert_file",
    "key_file",
    "keep_alive_secs",
    "max_command_mb",
];
const MODEM_KEYS: &[&str] = &[
    "slot",
    "port",
    "voice_port",
    "imei",
    "baud",
    "pin",
    "smsc",
    "group",
    "dialect",
    "enabled",
    "balance_ussd",
    "balance_interval_secs",
    "balance_low",
    "balance_regex",
];
const CONSOLE_KEYS: &[&str] = &["device", "baud", "password_hash", "idle_logout_secs"];

type Value<'i> = Spanned<DeValue<'i>>;

/// Parse and check `text`; on failure every problem is returned, sorted by line.
pub(crate) fn read(text: &str, origin: &str) -> Result<Config, Vec<Problem>> {
    let mut reader = Reader::new(text);
    let (doc, syntax_errors) = DeTable::parse_recoverable(text);
    let mut problems = if syntax_errors.is_empty() {
        let config = reader.root(doc.get_ref());
        reader.add_semantic_problems(&config);
        if reader.problems.is_empty() {
            return Ok(config);
        }
        reader.problems
    } else {
        // The recovered tree is a guess; checking it would report follow-on noise.
        syntax_errors
            .iter()
            .map(|e| {
                let line = e.span().map(|s| reader.line_of(s.start));
                Problem {
                    line,
                    ..Problem::new(SYNTAX_KEY, e.message().trim_end())
                }
            })
            .collect()
    };
    for p in &mut problems {
        p.file = origin.to_owned();
    }
    // Stable: problems on one line keep the order they were found in.
    problems.sort_by_key(|p| p.line);
    problems.dedup();
    Err(problems)
}

struct Reader {
    /// Byte offset at which each line starts.
    line_starts: Vec<usize>,
    problems: Vec<Problem>,
    /// Key path -> line where it is written (sections: their header).
    key_lines: HashMap<String, usize>,
}

impl Reader {
    fn new(text: &str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            line_starts,
            problems: Vec::new(),
            key_lines: HashMap::new(),
        }
    }

    /// 1-based line of a byte offset.
    fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset)
    }

    fn note(&mut self, key: &str, span: Range<usize>) {
        let line = self.line_of(span.start);
        self.key_lines.entry(key.to_owned()).or_insert(line);
    }

    fn problem(&mut self, span: Range<usize>, key: &str, message: impl Display) {
        let line = Some(self.line_of(span.start));
        self.problems.push(Problem {
            line,
            ..Problem::new(key, message.to_string())
        });
    }

    fn unknown(&mut self, parent: &str, name: &str, span: Range<usize>, known: &[&str]) {
        let key = if parent.is_empty() {
            name.to_owned()
        } else {
            format!("{parent}.{name}")
        };
        let list = known.join(", ");
        let message = match suggest(name, known) {
            Some(near) => format!("unknown key; did you mean `{near}`? Expected one of: {list}"),
            None => format!("unknown key; expected one of: {list}"),
        };
        self.problem(span, &key, message);
    }

    fn missing(&mut self, table_span: Range<usize>, key: &str) {
        self.problem(table_span, key, "required key is missing");
    }

    /// The table inside `value`, or a problem saying it is something else.
    fn table<'a, 'i>(&mut self, key: &str, value: &'a Value<'i>) -> Option<&'a DeTable<'i>> {
        self.note(key, value.span());
        match value.get_ref() {
            DeValue::Table(table) => Some(table),
            other => {
                self.problem(
                    value.span(),
                    key,
                    format!("expected a table, found {}", kind(other)),
                );
                None
            }
        }
    }

    /// Deserialize one value into `slot`; a type error becomes a problem and leaves `slot`.
    fn set<T: DeserializeOwned>(&mut self, key: &str, value: &Value<'_>, slot: &mut T) {
        match T::deserialize(value.clone().into_deserializer()) {
            Ok(parsed) => *slot = parsed,
            Err(e) => {
                let message = if is_secret(key) {
                    // serde's message would quote the value.
                    format!("expected a string, found {}", kind(value.get_ref()))
                } else {
                    e.message().to_owned()
                };
                self.problem(value.span(), key, message);
            }
        }
    }

    fn set_opt<T: DeserializeOwned>(&mut self, key: &str, value: &Value<'_>, slot: &mut Option<T>) {
        let mut parsed = None;
        self.set(key, value, &mut parsed);
        if parsed.is_some() {
            *slot = parsed;
        }
    }

    fn root(&mut self, doc: &DeTable<'_>) -> Config {
        let mut config = Config::default();
        let mut has_gateway = false;
        for (k, v) in doc.iter() {
            let name = k.get_ref().as_ref();
            match name {
                "gateway" => {
                    has_gateway = true;
                    config.gateway = self.gateway(v);
                }
                "mqtt" => config.mqtt = self.mqtt(v),
                "modem" => config.modems = self.modems(v),
                "console" => config.console = self.console(v),
                "sms" => config.sms = self.sms(v),
                "sip" => config.sip = self.sip(v),
                "voice" => config.voice = self.voice(v),
                _ => self.unknown("", name, k.span(), ROOT_KEYS),
            }
        }
        if !has_gateway {
            self.problems.push(Problem::new(
                "gateway",
                "required section [gateway] is missing",
            ));
        }
        config
    }

    fn gateway(&mut self, value: &Value<'_>) -> GatewayConfig {
        let mut out = GatewayConfig::default();
        let Some(table) = self.table("gateway", value) else {
            return out;
        };
        let mut has_id = false;
        for (k, v) in table.iter() {
            let name = k.get_ref().as_ref();
            let key = format!("gateway.{name}");
            self.note(&key, k.span());
            match name {
                "id" => {
                    has_id = true;
                    self.set(&key, v, &mut out.id);
                }
                "data_dir" => self.set(&key, v, &mut out.data_dir),
                "log_format" => self.set(&key, v, &mut out.log_format),
                "log_level" => self.set(&key, v, &mut out.log_level),
                "board_profile" => self.set_opt(&key, v, &mut out.board_profile),
                "port_scan" => self.set(&key, v, &mut out.port_scan),
                "health_interval_secs" => self.set(&key, v, &mut out.health_interval_secs),
                "job_retention_days" => self.set(&key, v, &mut out.job_retention_days),
                "sms_seen_retention_days" => self.set(&key, v, &mut out.sms_seen_retention_days),
                _ => self.unknown("gateway", name, k.span(), GATEWAY_KEYS),
            }
        }
        if !has_id {
            self.missing(value.span(), "gateway.id");
        }
        out
    }

    fn mqtt(&mut self, value: &Value<'_>) -> MqttConfig {
        let mut out = MqttConfig::default();
        let Some(table) = self.table("mqtt", value) else {
            return out;
        };
        for (k, v) in table.iter() {
            let name = k.get_ref().as_ref();
            let key = format!("mqtt.{name}");
            self.note(&key, k.span());
            match name {
                "url" => self.set(&key, v, &mut out.url),
                "username" => self.set_opt(&key, v, &mut out.username),
                "password" => self.set_opt(&key, v, &mut out.password),
                "ca_file" => self.set_opt(&key, v, &mut out.ca_file),
                "cert_file" => self.set_opt(&key, v, &mut out.cert_file),
                "key_file" => self.set_opt(&key, v, &mut out.key_file),
                "keep_alive_secs" => self.set(&key, v, &mut out.keep_alive_secs),
                "max_command_mb" => self.set(&key, v, &mut out.max_command_mb),
                _ => self.unknown("mqtt", name, k.span(), MQTT_KEYS),
            }
        }
        out
    }

    fn modems(&mut self, value: &Value<'_>) -> Vec<ModemConfig> {
        self.note("modem", value.span());
        match value.get_ref() {
            DeValue::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.modem(i + 1, item))
                .collect(),
            DeValue::Table(_) => {
                self.problem(
                    value.span(),
                    "modem",
                    "expected [[modem]] (an array of tables, double brackets), found [modem]",
                );
                Vec::new()
            }
            other => {
                self.problem(
                    value.span(),
                    "modem",
                    format!("expected [[modem]] tables, found {}", kind(other)),
                );
                Vec::new()
            }
        }
    }

    fn modem(&mut self, index: usize, value: &Value<'_>) -> ModemConfig {
        let mut out = ModemConfig::default();
        let path = format!("modem[{index}]");
        let Some(table) = self.table(&path, value) else {
            return out;
        };
        let (mut has_slot, mut has_port) = (false, false);
        for (k, v) in table.iter() {
            let name = k.get_ref().as_ref();
            let key = format!("{path}.{name}");
            self.note(&key, k.span());
            match name {
                "slot" => {
                    has_slot = true;
                    self.set(&key, v, &mut out.slot);
                }
                "port" => {
                    has_port = true;
                    self.set(&key, v, &mut out.port);
                }
                "voice_port" => self.set_opt(&key, v, &mut out.voice_port),
                "imei" => self.set_opt(&key, v, &mut out.imei),
                "baud" => self.set(&key, v, &mut out.baud),
                "pin" => self.set_opt(&key, v, &mut out.pin),
                "smsc" => self.set_opt(&key, v, &mut out.smsc),
                "group" => self.set_opt(&key, v, &mut out.group),
                "dialect" => self.set(&key, v, &mut out.dialect),
                "enabled" => self.set(&key, v, &mut out.enabled),
                "balance_ussd" => self.set_opt(&key, v, &mut out.balance_ussd),
                "balance_interval_secs" => self.set(&key, v, &mut out.balance_interval_secs),
                "balance_low" => self.set_opt(&key, v, &mut out.balance_low),
                "balance_regex" => self.set_opt(&key, v, &mut out.balance_regex),
                _ => self.unknown(&path, name, k.span(), MODEM_KEYS),
            }
        }
        if !has_slot {
            self.missing(value.span(), &format!("{path}.slot"));
        }
        if !has_port {
            self.missing(value.span(), &format!("{path}.port"));
        }
        out
    }

    fn console(&mut self, value: &Value<'_>) -> ConsoleConfig {
        let mut out = ConsoleConfig::default();
        let Some(table) = self.table("console", value) else {
            return out;
        };
        for (k, v) in table.iter() {
            let name = k.get_ref().as_ref();
            let key = format!("console.{name}");
            self.note(&key, k.span());
            match name {
                "device" => self.set(&key, v, &mut out.device),
                "baud" => self.set(&key, v, &mut out.baud),
                "password_hash" => self.set_opt(&key, v, &mut out.password_hash),
                "idle_logout_secs" => self.set(&key, v, &mut out.idle_logout_secs),
                _ => self.unknown("console", name, k.span(), CONSOLE_KEYS),
            }
        }
        out
    }

    fn sms(&mut self, value: &Value<'_>) -> SmsConfig {
        let mut out = SmsConfig::default();
        let Some(table) = self.table("sms", value) else {
            return out;
        };
        for (k, v) in table.iter() {
            let name = k.get_ref().as_ref();
            let key = format!("sms.{name}");
            self.note(&key, k.span());
            match name {
                "reassembly_timeout_secs" => self.set(&key, v, &mut out.reassembly_timeout_secs),
                "per_minute" => self.set(&key, v, &mut out.per_minute),
                "per_hour" => self.set(&key, v, &mut out.per_hour),
                "per_day" => self.set(&key, v, &mut out.per_day),
                "quiet_hours" => self.set_opt(&key, v, &mut out.quiet_hours),
                "on_unknown" => self.set(&key, v, &mut out.on_unknown),
                "cooldown_secs" => self.set(&key, v, &mut out.cooldown_secs),
                "route" => self.set(&key, v, &mut out.route),
                _ => self.unknown("sms", name, k.span(), SMS_KEYS),
            }
        }
        out
    }

    fn sip(&mut self, value: &Value<'_>) -> Option<SipConfig> {
        let table = self.table("sip", value)?;
        let mut out = SipConfig {
            server: String::new(),
            domain: None,
            username: String::new(),
            auth_username: None,
            password: String::new(),
            bind: "0.0.0.0:5060".into(),
            media_address: None,
            register: true,
            register_expires_secs: 300,
            options_interval_secs: 30,
            rtp_port_min: 10_000,
            rtp_port_max: 10_999,
            codecs: vec!["PCMU".into(), "PCMA".into()],
            trusted_peers: Vec::new(),
            inbound_auth: None,
            inbound_username: None,
            inbound_password: None,
            untrusted: "reject".into(),
            rate_limit_per_source: 100,
        };
        let (mut has_server, mut has_user) = (false, false);
        for (k, v) in table.iter() {
            let name = k.get_ref().as_ref();
            let key = format!("sip.{name}");
            self.note(&key, k.span());
            match name {
                "server" => {
                    has_server = true;
                    self.set(&key, v, &mut out.server)
                }
                "domain" => self.set_opt(&key, v, &mut out.domain),
                "username" => {
                    has_user = true;
                    self.set(&key, v, &mut out.username)
                }
                "auth_username" => self.set_opt(&key, v, &mut out.auth_username),
                "password" => self.set(&key, v, &mut out.password),
                "bind" => self.set(&key, v, &mut out.bind),
                "media_address" => self.set_opt(&key, v, &mut out.media_address),
                "register" => self.set(&key, v, &mut out.register),
                "register_expires_secs" => self.set(&key, v, &mut out.register_expires_secs),
                "options_interval_secs" => self.set(&key, v, &mut out.options_interval_secs),
                "rtp_port_min" => self.set(&key, v, &mut out.rtp_port_min),
                "rtp_port_max" => self.set(&key, v, &mut out.rtp_port_max),
                "codecs" => self.set(&key, v, &mut out.codecs),
                "trusted_peers" => self.set(&key, v, &mut out.trusted_peers),
                "inbound_auth" => self.set_opt(&key, v, &mut out.inbound_auth),
                "inbound_username" => self.set_opt(&key, v, &mut out.inbound_username),
                "inbound_password" => self.set_opt(&key, v, &mut out.inbound_password),
                "untrusted" => self.set(&key, v, &mut out.untrusted),
                "rate_limit_per_source" => self.set(&key, v, &mut out.rate_limit_per_source),
                _ => self.unknown("sip", name, k.span(), SIP_KEYS),
            }
        }
        for (has, key) in [(has_server, "sip.server"), (has_user, "sip.username")] {
            if !has {
                self.problems.push(Problem::new(
                    key,
                    format!("required key `{key}` is missing from [sip]"),
                ));
            }
        }
        Some(out)
    }

    fn voice(&mut self, value: &Value<'_>) -> VoiceConfig {
        let mut out = VoiceConfig::default();
        let Some(table) = self.table("voice", value) else {
            return out;
        };
        for (k, v) in table.iter() {
            let name = k.get_ref().as_ref();
            let key = format!("voice.{name}");
            self.note(&key, k.span());
            match name {
                "ring_timeout_secs" => self.set(&key, v, &mut out.ring_timeout_secs),
                "call_minutes_per_day" => self.set(&key, v, &mut out.call_minutes_per_day),
                "rtp_timeout_secs" => self.set(&key, v, &mut out.rtp_timeout_secs),
                "record_sip_in" => self.set(&key, v, &mut out.record_sip_in),
                "missed_call_sms" => self.set(&key, v, &mut out.missed_call_sms),
                "missed_call_sms_on" => self.set(&key, v, &mut out.missed_call_sms_on),
                "missed_call_sms_period_secs" => {
                    self.set(&key, v, &mut out.missed_call_sms_period_secs)
                }
                "recordings_max_age_days" => self.set(&key, v, &mut out.recordings_max_age_days),
                "recordings_max_mb" => self.set(&key, v, &mut out.recordings_max_mb),
                "bridge_domains" => self.set(&key, v, &mut out.bridge_domains),
                "route" => self.set(&key, v, &mut out.route),
                _ => self.unknown("voice", name, k.span(), VOICE_KEYS),
            }
        }
        out
    }

    /// Run [`Config::validate`] and place its problems on lines.
    ///
    /// A key that already has a problem (type error, missing) is left out: its value is a
    /// stand-in default and any further complaint about it would be noise.
    fn add_semantic_problems(&mut self, config: &Config) {
        let flagged: Vec<String> = self.problems.iter().map(|p| p.key.clone()).collect();
        for mut problem in config.validate() {
            if flagged.iter().any(|f| covers(f, &problem.key)) {
                continue;
            }
            problem.line = self.line_for(&problem.key);
            self.problems.push(problem);
        }
    }

    /// Line of `key`, else of its closest enclosing section that is written in the file.
    fn line_for(&self, key: &str) -> Option<usize> {
        let mut key = key;
        loop {
            if let Some(line) = self.key_lines.get(key) {
                return Some(*line);
            }
            key = &key[..key.rfind(['.', '['])?];
        }
    }
}

/// Whether a problem at key path `flagged` makes one at `key` redundant.
fn covers(flagged: &str, key: &str) -> bool {
    key == flagged
        || key
            .strip_prefix(flagged)
            .is_some_and(|rest| rest.starts_with(['.', '[']))
}

fn is_secret(key: &str) -> bool {
    key == "mqtt.password"
        || key == "sip.password"
        || key == "sip.inbound_password"
        || key == "console.password_hash"
        || key.ends_with(".pin")
}

fn kind(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// The known key closest to a misspelt `name`, if one is close enough.
fn suggest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    let normalized = name.to_ascii_lowercase().replace('-', "_");
    if let Some(exact) = known.iter().find(|k| **k == normalized) {
        return Some(exact);
    }
    let limit = if name.chars().count() <= 4 { 1 } else { 2 };
    known
        .iter()
        .map(|k| (edit_distance(&normalized, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance counting an adjacent swap as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j] = distance between a[..i] and b[..j]
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest("prot", MODEM_KEYS), Some("port"));
        assert_eq!(suggest("slto", MODEM_KEYS), Some("slot"));
        assert_eq!(suggest("data-dir", GATEWAY_KEYS), Some("data_dir"));
        assert_eq!(suggest("Baud", MODEM_KEYS), Some("baud"));
        assert_eq!(suggest("keepalive", MQTT_KEYS), None);
        assert_eq!(suggest("passwd", MQTT_KEYS), Some("password"));
        assert_eq!(suggest("user", MQTT_KEYS), None);
        assert_eq!(suggest("pasword", MQTT_KEYS), Some("password"));
        assert_eq!(suggest("colour", MODEM_KEYS), None);
    }

    #[test]
    fn line_numbers_are_one_based() {
        let r = Reader::new("a\nbb\n\nc");
        assert_eq!(r.line_of(0), 1);
        assert_eq!(r.line_of(1), 1);
        assert_eq!(r.line_of(2), 2);
        assert_eq!(r.line_of(5), 3);
        assert_eq!(r.line_of(6), 4);
        assert_eq!(r.line_of(100), 4);
    }

    #[test]
    fn covers_whole_segments_only() {
        assert!(covers("gateway", "gateway.id"));
        assert!(covers("modem[1]", "modem[1].slot"));
        assert!(covers("modem", "modem[1].slot"));
        assert!(!covers("modem[1]", "modem[10].slot"));
        assert!(covers("mqtt.url", "mqtt.url"));
    }
}
