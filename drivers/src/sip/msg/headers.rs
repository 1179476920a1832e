//! Header names (compact forms, list headers, case-insensitive comparison), comma-separated
//! lists, CSeq, and `;name=value` parameters shared by URIs, name-addr and Via.

use std::fmt;

use crate::sip::SipError;

/// Compact header forms (RFC 3261 §7.3.3 and extensions) and their full names.
const COMPACT: &[(&str, &str)] = &[
    ("v", "Via"),
    ("f", "From"),
    ("t", "To"),
    ("i", "Call-ID"),
    ("m", "Contact"),
    ("l", "Content-Length"),
    ("c", "Content-Type"),
    ("k", "Supported"),
    ("s", "Subject"),
    ("e", "Content-Encoding"),
    ("o", "Event"),
    ("r", "Refer-To"),
    ("u", "Allow-Events"),
    ("x", "Session-Expires"),
];

/// Headers whose comma-separated values are separate entries (RFC 3261 §7.3.1).
pub(super) const LIST_HEADERS: &[&str] = &[
    "Via",
    "Route",
    "Record-Route",
    "Contact",
    "Allow",
    "Supported",
    "Require",
    "Proxy-Require",
    "Unsupported",
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Allow-Events",
    "Content-Encoding",
    "In-Reply-To",
];

/// The full header name for `name` (expands compact forms; other names are returned as is).
pub fn canonical_name(name: &str) -> &str {
    if name.len() == 1 {
        for (short, long) in COMPACT {
            if short.eq_ignore_ascii_case(name) {
                return long;
            }
        }
    }
    name
}

/// Whether two header names denote the same header (case-insensitive, compact forms).
pub fn same_header(a: &str, b: &str) -> bool {
    canonical_name(a).eq_ignore_ascii_case(canonical_name(b))
}

/// Parses a CSeq value `"<number> <METHOD>"`.
pub fn parse_cseq(v: &str) -> Result<(u32, String), SipError> {
    let mut it = v.split_whitespace();
    let (Some(n), Some(m), None) = (it.next(), it.next(), it.next()) else {
        return Err(SipError::Parse(format!("bad CSeq: {v:.40}")));
    };
    let n: u32 = n
        .parse()
        .map_err(|_| SipError::Parse(format!("bad CSeq number: {n:.20}")))?;
    Ok((n, m.to_string()))
}

/// Splits `s` at `sep` outside double quotes (with backslash escapes) and angle brackets.
fn split_outside(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_quote = false;
    let mut escaped = false;
    let mut angle = 0u32;
    let mut begin = 0;
    for (i, c) in s.char_indices() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
            continue;
        }
        match c {
            '"' => in_quote = true,
            '<' => angle += 1,
            '>' => angle = angle.saturating_sub(1),
            _ if c == sep && angle == 0 => {
                out.push(&s[begin..i]);
                begin = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[begin..]);
    out
}

/// Splits a list header value at top-level commas; empty entries are dropped.
pub fn split_list(s: &str) -> Vec<&str> {
    split_outside(s, ',')
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// `;name=value` parameters in order; a value is `None` for a flag such as `;lr` or `;rport`.
pub type Params = Vec<(String, Option<String>)>;

/// Parses `;a=b;c` (the text after the main part, leading `;` optional).
pub fn parse_params(s: &str) -> Params {
    split_outside(s, ';')
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((n, v)) => (n.trim().to_string(), Some(v.trim().to_string())),
            None => (p.to_string(), None),
        })
        .collect()
}

/// Looks up a parameter (case-insensitive name): `Some(None)` for a flag.
pub fn find_param<'a>(params: &'a Params, name: &str) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_deref())
}

/// Sets (replaces or appends) a parameter.
pub fn set_param(params: &mut Params, name: &str, value: Option<&str>) {
    let value = value.map(str::to_string);
    match params
        .iter_mut()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
    {
        Some(p) => p.1 = value,
        None => params.push((name.to_string(), value)),
    }
}

/// Removes a parameter.
pub fn remove_param(params: &mut Params, name: &str) {
    params.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
}

pub(super) fn write_params(f: &mut fmt::Formatter<'_>, params: &Params) -> fmt::Result {
    for (n, v) in params {
        match v {
            Some(v) => write!(f, ";{n}={v}")?,
            None => write!(f, ";{n}")?,
        }
    }
    Ok(())
}
