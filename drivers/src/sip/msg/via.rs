//! The Via header (RFC 3261 §20.42) with its parameters (branch, received, rport).

use std::fmt;

use super::headers::{Params, find_param, parse_params, set_param, write_params};
use crate::sip::SipError;

/// One Via entry: `SIP/2.0/UDP host:port;branch=z9hG4bK…;rport`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// `SIP/2.0/UDP`.
    pub protocol: String,
    /// sent-by host.
    pub host: String,
    /// sent-by port.
    pub port: Option<u16>,
    /// Parameters (branch, received, rport…).
    pub params: Params,
}

impl Via {
    /// Parses one Via value.
    pub fn parse(s: &str) -> Result<Via, SipError> {
        let s = s.trim();
        let bad = || SipError::Parse(format!("bad Via: {s:.60}"));
        let (protocol, rest) = s.split_once(|c: char| c.is_whitespace()).ok_or_else(bad)?;
        if protocol.matches('/').count() != 2 {
            return Err(bad());
        }
        let rest = rest.trim_start();
        let (sent_by, params) = match rest.split_once(';') {
            Some((h, p)) => (h.trim(), parse_params(p)),
            None => (rest.trim(), Vec::new()),
        };
        let (host, port) = if sent_by.starts_with('[') {
            let end = sent_by.find(']').ok_or_else(bad)?;
            let after = &sent_by[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p.parse::<u16>().map_err(|_| bad())?),
                None if after.is_empty() => None,
                None => return Err(bad()),
            };
            (&sent_by[..end + 1], port)
        } else {
            match sent_by.split_once(':') {
                Some((h, p)) => (h, Some(p.parse::<u16>().map_err(|_| bad())?)),
                None => (sent_by, None),
            }
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Via {
            protocol: protocol.to_string(),
            host: host.to_string(),
            port,
            params,
        })
    }

    /// Looks up a parameter.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// Sets a parameter.
    pub fn set_param(&mut self, name: &str, value: Option<&str>) {
        set_param(&mut self.params, name, value);
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.protocol, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write_params(f, &self.params)
    }
}
