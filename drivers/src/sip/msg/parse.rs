//! Parsing a datagram into a [`Message`]: the head/body split, the start line, header lines
//! (folding, compact names, Content-Length).

use super::{Message, StartLine};
use crate::sip::SipError;

impl Message {
    /// Parses one message from a datagram. Leading blank lines (keep-alives) are skipped; the
    /// body is Content-Length bytes (the rest of the datagram when absent).
    pub fn parse(buf: &[u8]) -> Result<Message, SipError> {
        let mut start = 0;
        while start < buf.len() && (buf[start] == b'\r' || buf[start] == b'\n') {
            start += 1;
        }
        let buf = &buf[start..];
        if buf.is_empty() {
            return Err(SipError::Parse("empty message".into()));
        }
        let (head_end, body_start) = find_head_end(buf)
            .ok_or_else(|| SipError::Parse("no blank line after the headers".into()))?;
        let head = std::str::from_utf8(&buf[..head_end])
            .map_err(|_| SipError::Parse("headers are not UTF-8".into()))?;
        let mut lines: Vec<String> = Vec::new();
        for raw in head.split('\n') {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.starts_with(' ') || line.starts_with('\t') {
                // Folded continuation of the previous header line (RFC 3261 §7.3.1).
                let has_header = lines.len() > 1;
                match lines.last_mut() {
                    Some(prev) if has_header => {
                        prev.push(' ');
                        prev.push_str(line.trim());
                    }
                    _ => return Err(SipError::Parse("continuation without a header".into())),
                }
            } else {
                lines.push(line.to_string());
            }
        }
        let mut it = lines.into_iter();
        let first = it
            .next()
            .ok_or_else(|| SipError::Parse("no start line".into()))?;
        let start = parse_start_line(&first)?;
        let mut headers = Vec::new();
        for line in it {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| SipError::Parse(format!("header without colon: {line:.40}")))?;
            let name = name.trim();
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(SipError::Parse(format!("bad header name: {name:.40}")));
            }
            headers.push((name.to_string(), value.trim().to_string()));
        }
        let rest = &buf[body_start.min(buf.len())..];
        let mut msg = Message {
            start,
            headers,
            body: Vec::new(),
        };
        let body = match msg.get("Content-Length") {
            Some(v) => {
                let n: usize = v
                    .parse()
                    .map_err(|_| SipError::Parse(format!("bad Content-Length: {v:.20}")))?;
                if n > rest.len() {
                    return Err(SipError::Parse("body shorter than Content-Length".into()));
                }
                rest[..n].to_vec()
            }
            None => rest.to_vec(),
        };
        msg.body = body;
        Ok(msg)
    }
}

fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some((i, i + 2));
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some((i, i + 3));
            }
        }
        i += 1;
    }
    None
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn parse_start_line(line: &str) -> Result<StartLine, SipError> {
    let bad = || SipError::Parse(format!("bad start line: {line:.60}"));
    if let Some(rest) = strip_prefix_ci(line, "SIP/2.0 ") {
        let rest = rest.trim_start();
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let code: u16 = code.parse().map_err(|_| bad())?;
        if !(100..=699).contains(&code) {
            return Err(bad());
        }
        return Ok(StartLine::Response {
            code,
            reason: reason.trim().to_string(),
        });
    }
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if !version.eq_ignore_ascii_case("SIP/2.0") || !method.bytes().all(is_token_byte) {
        return Err(bad());
    }
    Ok(StartLine::Request {
        method: method.to_string(),
        uri: uri.to_string(),
    })
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
    {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}
