//! `E164`: a phone number in international form, the one number type every verb uses.

use std::fmt;

use serde::{Serialize, Serializer};

/// `+` and 7 to 15 digits, the first not 0 (ITU-T E.164).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct E164(String);

impl E164 {
    /// The number, if `s` is one.
    pub fn parse(s: &str) -> Option<Self> {
        let digits = s.strip_prefix('+')?;
        ((7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0'))
        .then(|| Self(s.to_string()))
    }

    /// The number as written (`+380501234567`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for E164 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(
            E164::parse("+380501234567").map(|n| n.to_string()),
            Some("+380501234567".into())
        );
        for bad in [
            "380501234567",
            "+0501234567",
            "+123456",
            "+1234567890123456",
            "+38050x234567",
            "",
        ] {
            assert!(E164::parse(bad).is_none(), "{bad}");
        }
        assert!(E164::parse("+1234567").is_some());
    }
}
