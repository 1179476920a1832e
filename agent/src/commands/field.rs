//! Reading command payloads in bounded memory.
//!
//! Every verb's payload is a `#[serde(deny_unknown_fields)]` struct whose fields are
//! [`Field`]s: a field of the wrong kind is not a parse error (the verb answers it with its own
//! code, e.g. `bad-number` for a `to` that is not a string), and an array or object where a
//! scalar belongs is skipped with [`serde::de::IgnoredAny`] instead of being built as a tree.
//! So a 30 MiB payload costs its own bytes plus what the verb keeps, never a `Value` tree of
//! ten times that.
//!
//! Errors a verb raises from inside deserialisation (a campaign's bad recipient) carry their
//! reply code in the message ([`tagged`]); [`classify`] turns a serde error back into
//! (code, message).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One JSON value where the command expects a scalar.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// A string.
    Str(String),
    /// true or false.
    Bool(bool),
    /// An integer that fits i64.
    Int(i64),
    /// Any other number (fractional or beyond i64).
    Float(f64),
    /// null (only where the field is not optional: `Option<Field>` reads null as None).
    Null,
    /// An array (skipped, not kept).
    Array,
    /// An object (skipped, not kept).
    Object,
}

impl Field {
    /// What kind of value this is, for messages ("a string", "an array" …).
    pub fn kind(&self) -> &'static str {
        match self {
            Field::Str(_) => "a string",
            Field::Bool(_) => "a boolean",
            Field::Int(_) | Field::Float(_) => "a number",
            Field::Null => "null",
            Field::Array => "an array",
            Field::Object => "an object",
        }
    }

    /// The string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Field::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if it is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Field::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The boolean, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Field::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The value as personalisation text: strings as they are, numbers and booleans
    /// printed; None for null, arrays and objects.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Field::Str(s) => Some(s.clone()),
            Field::Bool(b) => Some(b.to_string()),
            Field::Int(i) => Some(i.to_string()),
            Field::Float(f) => Some(f.to_string()),
            Field::Null | Field::Array | Field::Object => None,
        }
    }

    /// A short, printable rendering for messages (strings cut at 40 characters).
    pub fn shown(&self) -> String {
        match self {
            Field::Str(s) => {
                let cut: String = s.chars().take(40).collect();
                if cut.len() < s.len() {
                    format!("{cut:?}…")
                } else {
                    format!("{cut:?}")
                }
            }
            Field::Bool(b) => b.to_string(),
            Field::Int(i) => i.to_string(),
            Field::Float(f) => f.to_string(),
            Field::Null => "null".into(),
            Field::Array => "an array".into(),
            Field::Object => "an object".into(),
        }
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Field, E> {
        Ok(Field::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Field, E> {
        Ok(Field::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Field, E> {
        Ok(i64::try_from(v).map_or(Field::Float(v as f64), Field::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Field, E> {
        Ok(Field::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Field, E> {
        Ok(Field::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Field, E> {
        Ok(Field::Str(v))
    }
    fn visit_unit<E>(self) -> Result<Field, E> {
        Ok(Field::Null)
    }
    fn visit_none<E>(self) -> Result<Field, E> {
        Ok(Field::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Field, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Field::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Field, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Field::Object)
    }
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor)
    }
}

/// The first pass over any payload: only `request_id`, everything else skipped unread.
#[derive(Debug, Deserialize)]
pub struct Head {
    /// The request id, of whatever kind it was sent.
    pub request_id: Option<Field>,
}

const TAG: char = '\u{1f}';

/// A deserialisation error that carries its reply code.
pub fn tagged<E: de::Error>(code: &'static str, message: impl fmt::Display) -> E {
    E::custom(format!("{code}{TAG}{message}"))
}

/// (code, message) for a serde error met while reading a verb's payload.
pub fn classify(e: &serde_json::Error) -> (&'static str, String) {
    let text = e.to_string();
    // serde_json appends " at line L column C"; the payload is one line of JSON anyway.
    let bare = match text.rsplit_once(" at line ") {
        Some((head, _)) => head.to_string(),
        None => text.clone(),
    };
    if let Some((code, message)) = bare.split_once(TAG) {
        return (code_of(code), message.to_string());
    }
    if bare.starts_with("unknown field") || bare.starts_with("duplicate field") {
        return ("bad-field", bare);
    }
    ("bad-json", format!("payload is not valid JSON: {text}"))
}

/// Maps a tag back to its static code (tags are only ever made from these).
fn code_of(code: &str) -> &'static str {
    match code {
        "bad-recipient" => "bad-recipient",
        "bad-field" => "bad-field",
        "bad-number" => "bad-number",
        "bad-text" => "bad-text",
        _ => "bad-json",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Probe {
        a: Option<Field>,
    }

    #[test]
    fn fields_keep_scalars_and_skip_trees() {
        let p: Probe = serde_json::from_str(r#"{"a":"x"}"#).unwrap();
        assert_eq!(p.a, Some(Field::Str("x".into())));
        let p: Probe = serde_json::from_str(r#"{"a":[1,[2,{"b":3}]]}"#).unwrap();
        assert_eq!(p.a, Some(Field::Array));
        let p: Probe = serde_json::from_str(r#"{"a":{"b":[1]}}"#).unwrap();
        assert_eq!(p.a, Some(Field::Object));
        let p: Probe = serde_json::from_str(r#"{"a":null}"#).unwrap();
        assert_eq!(p.a, None);
        let p: Probe = serde_json::from_str(r#"{"a":18446744073709551615}"#).unwrap();
        assert!(matches!(p.a, Some(Field::Float(_))));
        let p: Probe = serde_json::from_str(r#"{"a":-3}"#).unwrap();
        assert_eq!(p.a.and_then(|f| f.as_i64()), Some(-3));
    }

    #[test]
    fn errors_are_classified() {
        let e = serde_json::from_str::<Probe>(r#"{"a":1,"zz":2}"#).unwrap_err();
        let (code, msg) = classify(&e);
        assert_eq!(code, "bad-field");
        assert!(msg.contains("zz"), "{msg}");
        let e = serde_json::from_str::<Probe>(r#"{"a":1,"a":2}"#).unwrap_err();
        assert_eq!(classify(&e).0, "bad-field");
        let e = serde_json::from_str::<Probe>(r#"{"a":1"#).unwrap_err();
        assert_eq!(classify(&e).0, "bad-json");
        let e: serde_json::Error = tagged("bad-recipient", "recipients[3]: no");
        assert_eq!(
            classify(&e),
            ("bad-recipient", "recipients[3]: no".to_string())
        );
    }

    #[test]
    fn deep_nesting_is_skipped_without_recursion() {
        // serde_json skips ignored values with a loop, not recursion: no stack to overflow.
        let deep = format!(r#"{{"a":{}1{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        let p: Probe = serde_json::from_str(&deep).unwrap();
        assert_eq!(p.a, Some(Field::Array));
        let unbalanced = format!(r#"{{"a":{}1}}"#, "[".repeat(1000));
        let e = serde_json::from_str::<Probe>(&unbalanced).unwrap_err();
        assert_eq!(classify(&e).0, "bad-json");
    }
}
