//! A SIP URI a call may be bridged to (`[voice] bridge_domains` checks, `cmd/dial`'s
//! `bridge_to`): parsed, not pattern-matched, because it goes into an INVITE's Request-URI.
//! `sip:` or `sips:`, a user, `@`, a host name or IP address and an optional port; nothing else.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest `bridge_to` accepted.
pub const MAX_URI: usize = 256;

/// A `bridge_to` taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeUri {
    /// `sip` or `sips`.
    pub scheme: String,
    /// The user part (an extension).
    pub user: String,
    /// Host name or IP address (IPv6 without brackets), lower case.
    pub host: String,
    /// The port, if given.
    pub port: Option<u16>,
}

fn user_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'+' | b'#')
}

fn valid_user(u: &str) -> bool {
    let b = u.as_bytes();
    if b.is_empty() || b.len() > 64 {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok =
                b.len() > i + 2 && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit();
            if !ok {
                return false;
            }
            i += 3;
        } else if user_char(b[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Parses `sip[s]:user@host[:port]`; the reason when it is not one.
pub fn parse_bridge_uri(s: &str) -> Result<BridgeUri, String> {
    if s.len() > MAX_URI {
        return Err(format!("longer than {MAX_URI} characters"));
    }
    let (scheme, rest) = if let Some(r) = s.strip_prefix("sip:") {
        ("sip", r)
    } else if let Some(r) = s.strip_prefix("sips:") {
        ("sips", r)
    } else {
        return Err("must start with sip: or sips:".into());
    };
    if let Some(c) = rest.chars().find(|c| {
        matches!(c, ';' | '?' | '<' | '>' | ',' | '"' | '\'') || c.is_whitespace() || c.is_control()
    }) {
        return Err(format!(
            "{c:?} is not allowed: only user@host[:port], no parameters or headers"
        ));
    }
    let Some((user, hostport)) = rest.split_once('@') else {
        return Err("needs a user: sip:extension@host".into());
    };
    if !valid_user(user) {
        return Err(format!(
            "user {user:?} must be 1-64 letters, digits or -_.!~*+# (or %XX)"
        ));
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err("an IPv6 address needs its closing ]".into());
        };
        if addr.parse::<Ipv6Addr>().is_err() {
            return Err(format!("{addr:?} is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("junk after the IPv6 address")?),
        };
        (addr.to_ascii_lowercase(), port)
    } else {
        let (h, p) = match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        };
        let ipv4_like = h.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if ipv4_like && h.parse::<Ipv4Addr>().is_err() {
            return Err(format!("{h:?} is not an IPv4 address"));
        }
        if !ipv4_like && !valid_hostname(h) {
            return Err(format!("{h:?} is not a host name"));
        }
        (h.to_ascii_lowercase(), p)
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err(format!("port {p:?} must be 1-65535")),
        },
    };
    Ok(BridgeUri {
        scheme: scheme.into(),
        user: user.into(),
        host,
        port,
    })
}

/// Whether `host` is allowed by `[voice] bridge_domains` (`name`, or `*.suffix`; empty: any).
pub fn domain_allowed(host: &str, allowed: &[String]) -> bool {
    allowed.is_empty()
        || allowed.iter().any(|d| {
            let d = d.to_ascii_lowercase();
            let d = d.trim_start_matches('[').trim_end_matches(']');
            match d.strip_prefix("*.") {
                Some(suffix) => host.len() > suffix.len() && host.ends_with(&format!(".{suffix}")),
                None => host == d,
            }
        })
}
