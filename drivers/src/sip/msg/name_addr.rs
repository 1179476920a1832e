//! name-addr / addr-spec with header parameters (From, To, Contact, Route, Record-Route).

use std::fmt;

use super::Uri;
use super::headers::{Params, find_param, parse_params, set_param, write_params};
use crate::sip::SipError;

/// A name-addr or addr-spec with header parameters: `"Display" <sip:u@h;p>;tag=x` or
/// `sip:u@h;tag=x` (From, To, Contact, Route…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name (unquoted, unescaped).
    pub display: Option<String>,
    /// The URI.
    pub uri: Uri,
    /// Header parameters after the URI (tag, expires…).
    pub params: Params,
}

impl NameAddr {
    /// Parses one name-addr / addr-spec (not a comma list).
    pub fn parse(s: &str) -> Result<NameAddr, SipError> {
        let s = s.trim();
        let bad = || SipError::Uri(format!("bad name-addr: {s:.60}"));
        let (display, rest) = if let Some(q) = s.strip_prefix('"') {
            let mut out = String::new();
            let mut escaped = false;
            let mut end = None;
            for (i, c) in q.char_indices() {
                if escaped {
                    out.push(c);
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    end = Some(i);
                    break;
                } else {
                    out.push(c);
                }
            }
            let end = end.ok_or_else(bad)?;
            let rest = q[end + 1..].trim_start();
            if !rest.starts_with('<') {
                return Err(bad());
            }
            (if out.is_empty() { None } else { Some(out) }, rest)
        } else if let Some(i) = s.find('<') {
            let d = s[..i].trim();
            (
                if d.is_empty() {
                    None
                } else {
                    Some(d.to_string())
                },
                &s[i..],
            )
        } else {
            (None, s)
        };
        if let Some(inner) = rest.strip_prefix('<') {
            let end = inner.find('>').ok_or_else(bad)?;
            let uri = Uri::parse(&inner[..end])?;
            let params = parse_params(&inner[end + 1..]);
            Ok(NameAddr {
                display,
                uri,
                params,
            })
        } else {
            // addr-spec: parameters after the URI belong to the header (RFC 3261 §20).
            let (u, p) = match rest.split_once(';') {
                Some((u, p)) => (u, parse_params(p)),
                None => (rest, Vec::new()),
            };
            Ok(NameAddr {
                display: None,
                uri: Uri::parse(u)?,
                params: p,
            })
        }
    }

    /// A name-addr around `uri`.
    pub fn new(display: Option<&str>, uri: Uri) -> NameAddr {
        NameAddr {
            display: display.map(str::to_string),
            uri,
            params: Vec::new(),
        }
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&str> {
        find_param(&self.params, "tag").flatten()
    }

    /// Looks up a header parameter.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// Sets a header parameter.
    pub fn set_param(&mut self, name: &str, value: Option<&str>) {
        set_param(&mut self.params, name, value);
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            f.write_str("\"")?;
            for c in d.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\" ")?;
        }
        write!(f, "<{}>", self.uri)?;
        write_params(f, &self.params)
    }
}
