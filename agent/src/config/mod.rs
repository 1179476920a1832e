//! Configuration: TOML schema, defaults, validation with file/line/key problems.
//!
//! [`load`] and [`parse_str`] report *every* problem of a file in one go (syntax errors,
//! unknown keys, type errors, missing keys, bad values, clashes between modems), each as a
//! [`Problem`] with file, 1-based line and key path such as `modem[2].slot`. See
//! `docs/config.md` for the schema.

mod dialect;
mod endpoint;
mod error;
mod model;
mod reader;
pub mod sip_uri;
mod validate;

use std::path::Path;

pub use endpoint::{MQTT_PORT, MQTTS_PORT, MqttEndpoint, host_port};
pub use error::{ConfigError, Problem};
pub use model::{
    Config, ConsoleConfig, DEFAULT_BALANCE_INTERVAL_SECS, DEFAULT_BAUD, DEFAULT_CONFIG_PATH,
    DEFAULT_CONSOLE_DEVICE, DEFAULT_DATA_DIR, DEFAULT_HEALTH_INTERVAL_SECS,
    DEFAULT_IDLE_LOGOUT_SECS, DEFAULT_KEEP_ALIVE_SECS, DEFAULT_LOG_LEVEL, DEFAULT_MQTT_URL,
    DEFAULT_REASSEMBLY_TIMEOUT_SECS, DialectChoice, GatewayConfig, LOG_LEVELS, LogFormat,
    ModemConfig, MqttConfig, STANDARD_BAUDS, SipConfig, SmsConfig, SmsRoute, VoiceConfig,
    VoiceRoute,
};
pub use validate::MAX_SLOT;

/// Read, parse and validate the configuration file at `path`.
///
/// An unreadable file gives [`ConfigError::Io`]; anything wrong inside it gives
/// [`ConfigError::Invalid`] with all problems, named after `path` as given.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_str(&text, &path.display().to_string())
}

/// Parse and validate TOML `text`; `origin` is the file name used in problems.
///
/// TLS files named in `[mqtt]` are checked relative to the process's current directory.
pub fn parse_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
    reader::read(text, origin).map_err(ConfigError::Invalid)
}

/// A warning when the file at `path` is readable by group or others and `cfg` holds secrets
/// (`mqtt.password`, `sip.password`, `console.password_hash`, `modem[N].pin`): which ones, the
/// mode, and the fix. `None` when the file is private or holds none.
pub fn secrets_exposed(path: &Path, cfg: &Config) -> Option<String> {
    let mut secrets: Vec<String> = Vec::new();
    if cfg.mqtt.password.is_some() {
        secrets.push("mqtt.password".into());
    }
    if cfg.sip.as_ref().is_some_and(|s| !s.password.is_empty()) {
        secrets.push("sip.password".into());
    }
    if cfg.console.password_hash.is_some() {
        secrets.push("console.password_hash".into());
    }
    for (i, m) in cfg.modems.iter().enumerate() {
        if m.pin.is_some() {
            secrets.push(format!("modem[{}].pin", i + 1));
        }
    }
    if secrets.is_empty() {
        return None;
    }
    let mode = crate::private::readable_by_others(path)?;
    Some(format!(
        "{} is readable by {} (mode {mode:04o}) and holds secrets ({}): chmod 600 {}",
        path.display(),
        if mode & 0o004 != 0 {
            "everyone"
        } else {
            "its group"
        },
        secrets.join(", "),
        path.display()
    ))
}

#[cfg(test)]
mod tests;
