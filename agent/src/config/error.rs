//! Problems found in a configuration and the module's error type.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with a configuration, located by file, line and key path.
///
/// Key paths look like `gateway.id`, `mqtt.url`, `modem[2].slot` (1-based index of the
/// `[[modem]]` table) or `console.password_hash`; TOML syntax errors use the key `syntax`
/// and a missing `[gateway]` section the key `gateway` with no line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Problem {
    /// File name as given to [`parse_str`](super::parse_str) / [`load`](super::load); empty
    /// for problems from [`Config::validate`](super::Config::validate).
    pub file: String,
    /// 1-based line the problem is on, when known.
    pub line: Option<usize>,
    /// Key path of the offending value.
    pub key: String,
    /// What is wrong, and where possible what would be right.
    pub message: String,
}

impl Problem {
    /// A problem with no file or line yet (they are filled in by the parser).
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: String::new(),
            line: None,
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.file.is_empty(), self.line) {
            (false, Some(line)) => write!(f, "{}:{}: ", self.file, line)?,
            (false, None) => write!(f, "{}: ", self.file)?,
            (true, Some(line)) => write!(f, "line {line}: ")?,
            (true, None) => {}
        }
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why a configuration could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file that was being read.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file was read but has problems; every one of them is listed.
    #[error("{}", ProblemList(.0))]
    Invalid(Vec<Problem>),
    /// `mqtt.url` is not a usable `mqtt://` / `mqtts://` URL.
    #[error("mqtt.url: {0}")]
    MqttUrl(String),
}

impl ConfigError {
    /// Exit code for `gsmgw config check`: 1 for problems in the file, 2 when it is unreadable.
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::Io { .. } => 2,
            ConfigError::Invalid(_) | ConfigError::MqttUrl(_) => 1,
        }
    }

    /// The problems carried by this error (an unreadable file yields none).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid(problems) => problems,
            ConfigError::Io { .. } | ConfigError::MqttUrl(_) => &[],
        }
    }
}

/// Formats problems one per line, without a trailing newline.
struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_display_with_and_without_line() {
        let mut p = Problem::new("modem[2].slot", "slot 1 is already used by modem[1]");
        p.file = "gw.toml".into();
        p.line = Some(12);
        assert_eq!(
            p.to_string(),
            "gw.toml:12: modem[2].slot: slot 1 is already used by modem[1]"
        );
        p.line = None;
        assert_eq!(
            p.to_string(),
            "gw.toml: modem[2].slot: slot 1 is already used by modem[1]"
        );
        p.file.clear();
        assert_eq!(
            p.to_string(),
            "modem[2].slot: slot 1 is already used by modem[1]"
        );
    }

    #[test]
    fn invalid_lists_one_problem_per_line() {
        let err = ConfigError::Invalid(vec![Problem::new("a", "x"), Problem::new("b", "y")]);
        assert_eq!(err.to_string(), "a: x\nb: y");
        assert_eq!(err.exit_code(), 1);
        assert_eq!(err.problems().len(), 2);
    }
}
