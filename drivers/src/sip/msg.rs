//! SIP messages (RFC 3261 §7): parse and serialize requests and responses, header access with
//! compact forms, parameters, URIs, name-addr, Via and CSeq.
//!
//! One file per layer: `parse` (datagram to message), `build` (constructors, serialising),
//! `headers` (names, lists, CSeq, parameters), and the structured headers `uri`, `name_addr`
//! and `via`.

mod build;
mod headers;
mod name_addr;
mod parse;
#[cfg(test)]
mod tests;
mod uri;
mod via;

pub use headers::{
    Params, canonical_name, find_param, parse_cseq, parse_params, remove_param, same_header,
    set_param, split_list,
};
pub use name_addr::NameAddr;
pub use uri::Uri;
pub use via::Via;

use super::SipError;
use headers::LIST_HEADERS;

/// The first line of a SIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// `METHOD Request-URI SIP/2.0`.
    Request {
        /// The method, e.g. `INVITE`.
        method: String,
        /// The Request-URI as text.
        uri: String,
    },
    /// `SIP/2.0 code reason`.
    Response {
        /// The status code (100..=699).
        code: u16,
        /// The reason phrase (may be empty).
        reason: String,
    },
}

/// A SIP request or response: start line, headers in order, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Request line or status line.
    pub start: StartLine,
    /// Headers in wire order as (name as written, trimmed value); one entry per header line.
    pub headers: Vec<(String, String)>,
    /// The body (Content-Length bytes).
    pub body: Vec<u8>,
}

impl Message {
    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The request method, for requests.
    pub fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI, for requests.
    pub fn uri(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code, for responses.
    pub fn code(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase, for responses.
    pub fn reason(&self) -> Option<&str> {
        match &self.start {
            StartLine::Response { reason, .. } => Some(reason),
            StartLine::Request { .. } => None,
        }
    }

    /// The value of the first header line called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| same_header(n, name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` in order; list headers (Via, Route, Contact…) are split at
    /// top-level commas.
    pub fn get_all(&self, name: &str) -> Vec<&str> {
        let list = LIST_HEADERS
            .iter()
            .any(|l| l.eq_ignore_ascii_case(canonical_name(name)));
        let mut out = Vec::new();
        for (n, v) in &self.headers {
            if same_header(n, name) {
                if list {
                    out.extend(split_list(v));
                } else {
                    out.push(v.as_str());
                }
            }
        }
        out
    }

    /// Replaces every line of header `name` by one line with `value` (at the first one's place).
    pub fn set(&mut self, name: &str, value: &str) {
        match self.headers.iter().position(|(n, _)| same_header(n, name)) {
            Some(i) => {
                self.headers[i] = (name.to_string(), value.to_string());
                let mut j = 0;
                self.headers.retain(|(n, _)| {
                    let keep = j <= i || !same_header(n, name);
                    j += 1;
                    keep
                });
            }
            None => self.push(name, value),
        }
    }

    /// Appends a header line.
    pub fn push(&mut self, name: &str, value: &str) {
        self.headers.push((name.to_string(), value.to_string()));
    }

    /// Removes every line of header `name`.
    pub fn remove(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !same_header(n, name));
    }

    /// The body as text, when it is UTF-8 and not empty.
    pub fn body_str(&self) -> Option<&str> {
        if self.body.is_empty() {
            None
        } else {
            std::str::from_utf8(&self.body).ok()
        }
    }

    /// The Call-ID header.
    pub fn call_id(&self) -> Result<&str, SipError> {
        self.get("Call-ID")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| SipError::Parse("no Call-ID".into()))
    }

    /// The CSeq header as (number, method).
    pub fn cseq(&self) -> Result<(u32, String), SipError> {
        let v = self
            .get("CSeq")
            .ok_or_else(|| SipError::Parse("no CSeq".into()))?;
        parse_cseq(v)
    }

    /// The From header.
    pub fn from_hdr(&self) -> Result<NameAddr, SipError> {
        NameAddr::parse(
            self.get("From")
                .ok_or_else(|| SipError::Parse("no From".into()))?,
        )
    }

    /// The To header.
    pub fn to_hdr(&self) -> Result<NameAddr, SipError> {
        NameAddr::parse(
            self.get("To")
                .ok_or_else(|| SipError::Parse("no To".into()))?,
        )
    }

    /// The topmost Via.
    pub fn top_via(&self) -> Result<Via, SipError> {
        let v = self
            .get_all("Via")
            .into_iter()
            .next()
            .ok_or_else(|| SipError::Parse("no Via".into()))?;
        Via::parse(v)
    }

    /// Replaces the topmost Via value (the first entry of the first Via line).
    pub fn set_top_via(&mut self, via: &Via) {
        let Some(i) = self.headers.iter().position(|(n, _)| same_header(n, "Via")) else {
            self.push("Via", &via.to_string());
            return;
        };
        let mut parts: Vec<String> = split_list(&self.headers[i].1)
            .into_iter()
            .map(str::to_string)
            .collect();
        if parts.is_empty() {
            parts.push(via.to_string());
        } else {
            parts[0] = via.to_string();
        }
        self.headers[i].1 = parts.join(", ");
    }

    /// The branch parameter of the topmost Via, if any.
    pub fn branch(&self) -> Option<String> {
        self.top_via()
            .ok()
            .and_then(|v| v.param("branch").flatten().map(str::to_string))
    }
}
