//! `cmd/dial` {request_id, to, bridge_to, slot?, record?}: click-to-call. The gateway rings
//! `bridge_to` (a manager's extension) and then dials `to` through a SIM.
//!
//! `bridge_to` goes into the INVITE's Request-URI and To header, so it is parsed, not
//! pattern-matched: `sip:` or `sips:`, a user, `@`, a host name or IP address and an optional
//! port; nothing else. Parameters (`;maddr=`, `;transport=`), headers (`?Subject=`), a second
//! URI (`>,<sip:…`), quotes and spaces are refused, and with `[voice] bridge_domains` set the
//! host must be one of them.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Context, Field, Parsed, Refusal, optional_bool, optional_slot, read, ValidCommand, Origin};
use super::registry::{Env, Exec, VerbSpec};

/// `cmd/dial`.
pub const VERB: VerbSpec = VerbSpec {
    name: "dial",
    parse,
    execute,
};

/// Places a call through the voice manager.
fn execute(env: &Env, cmd: ValidCommand, _origin: Origin) -> Exec<'_> {
    Box::pin(super::voice_command(env, cmd))
}

/// Longest `bridge_to` accepted.
pub const MAX_URI: usize = 256;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Dial {
    #[allow(dead_code)]
    request_id: Option<Field>,
    to: Option<Field>,
    slot: Option<Field>,
    bridge_to: Option<Field>,
    record: Option<Field>,
}

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

/// Validates a dial.
pub fn parse(payload: &[u8], ctx: &Context) -> Result<Parsed, Refusal> {
    let d: Dial = read(payload)?;
    let mut out = Map::new();
    match d.to.as_ref().and_then(Field::as_str) {
        Some(s) if gsmgw_drivers::modem::dialable(s) && s.len() >= 3 => {
            out.insert("to".into(), json!(s));
        }
        _ => {
            return Err((
                "bad-number",
                "to is required: a dialable number (+ and digits)".into(),
            ));
        }
    }
    let Some(uri) = d.bridge_to.as_ref().and_then(Field::as_str) else {
        return Err((
            "bad-field",
            "bridge_to is required: a SIP URI like sip:101@pbx.local".into(),
        ));
    };
    let parsed = parse_bridge_uri(uri).map_err(|why| {
        (
            "bad-field",
            format!("bridge_to {}: {why}", Field::Str(uri.to_string()).shown()),
        )
    })?;
    if !domain_allowed(&parsed.host, &ctx.bridge_domains) {
        return Err((
            "bad-field",
            format!(
                "bridge_to host {:?} is not in [voice] bridge_domains",
                parsed.host
            ),
        ));
    }
    out.insert("bridge_to".into(), json!(uri));
    let slot = optional_slot(d.slot.as_ref(), &ctx.slots)?;
    if let Some(s) = slot {
        out.insert("slot".into(), json!(s));
    }
    if let Some(r) = optional_bool("record", d.record.as_ref())? {
        out.insert("record".into(), json!(r));
    }
    Ok(Parsed::plain(Value::Object(out), slot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_uris_pass() {
        for ok in [
            "sip:101@pbx.local",
            "sip:101@10.0.0.5:5060",
            "sips:manager.olena@pbx.example.com",
            "sip:*97@[2001:db8::1]:5070",
            "sip:%2B380501234567@pbx",
        ] {
            assert!(parse_bridge_uri(ok).is_ok(), "{ok}");
        }
        let u = parse_bridge_uri("sip:101@PBX.Local:5062").unwrap();
        assert_eq!(
            (u.user.as_str(), u.host.as_str(), u.port),
            ("101", "pbx.local", Some(5062))
        );
    }

    #[test]
    fn injections_are_refused() {
        for bad in [
            "sip:101@host>,<sip:evil@10.9.9.9",
            "sip:101@host;maddr=10.9.9.9;transport=tcp",
            "sip:101@host?Subject=hi",
            "sip:101@host\r\nX-Evil: 1",
            "sip:101 @host",
            "sip:\"101\"@host",
            "sip:host",
            "sip:101@",
            "sip:101@host:0",
            "sip:101@host:99999",
            "sip:101@host:50a",
            "sip:101@999.1.1.1",
            "sip:101@-host",
            "sip:101@[::1",
            "tel:+380501234567",
            "sip:101%4@host",
        ] {
            assert!(parse_bridge_uri(bad).is_err(), "{bad:?} passed");
        }
        assert!(parse_bridge_uri(&format!("sip:1@{}", "a".repeat(300))).is_err());
    }

    #[test]
    fn allow_list() {
        let list = vec![
            "pbx.local".to_string(),
            "*.office.example".to_string(),
            "[::1]".to_string(),
        ];
        assert!(domain_allowed("pbx.local", &list));
        assert!(domain_allowed("a.office.example", &list));
        assert!(domain_allowed("::1", &list));
        assert!(!domain_allowed("office.example", &list));
        assert!(!domain_allowed("evil.example", &list));
        assert!(!domain_allowed("xoffice.example", &list));
        assert!(domain_allowed("anything", &[]));
    }
}
