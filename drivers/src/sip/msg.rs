//! SIP messages (RFC 3261 §7): parse and serialize requests and responses, header access with
//! compact forms, parameters, URIs, name-addr, Via and CSeq.

use std::fmt;

use super::SipError;

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
const LIST_HEADERS: &[&str] = &[
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
    /// An empty request.
    pub fn request(method: &str, uri: &str) -> Message {
        Message {
            start: StartLine::Request {
                method: method.to_string(),
                uri: uri.to_string(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// An empty response.
    pub fn response(code: u16, reason: &str) -> Message {
        Message {
            start: StartLine::Response {
                code,
                reason: reason.to_string(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

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

    /// Serializes the message; Content-Length is set to the body length (kept in place if
    /// present, appended otherwise).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(512);
        match &self.start {
            StartLine::Request { method, uri } => {
                out.push_str(method);
                out.push(' ');
                out.push_str(uri);
                out.push_str(" SIP/2.0\r\n");
            }
            StartLine::Response { code, reason } => {
                out.push_str(&format!("SIP/2.0 {code} {reason}\r\n"));
            }
        }
        let mut wrote_length = false;
        for (name, value) in &self.headers {
            if same_header(name, "Content-Length") {
                if wrote_length {
                    continue;
                }
                wrote_length = true;
                out.push_str(&format!("{name}: {}\r\n", self.body.len()));
            } else {
                out.push_str(name);
                out.push_str(": ");
                out.push_str(value);
                out.push_str("\r\n");
            }
        }
        if !wrote_length {
            out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

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

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
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

fn write_params(f: &mut fmt::Formatter<'_>, params: &Params) -> fmt::Result {
    for (n, v) in params {
        match v {
            Some(v) => write!(f, ";{n}={v}")?,
            None => write!(f, ";{n}")?,
        }
    }
    Ok(())
}

/// A SIP URI: `sip:user@host:port;params?headers` (other schemes keep their text in `host`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    /// `sip`, `sips`, `tel`…
    pub scheme: String,
    /// The userinfo before `@` (user, possibly `:password`).
    pub user: Option<String>,
    /// Host name or address (IPv6 in brackets).
    pub host: String,
    /// Port, when given.
    pub port: Option<u16>,
    /// URI parameters.
    pub params: Params,
    /// Header part after `?`, verbatim.
    pub headers: Option<String>,
}

impl Uri {
    /// Parses a URI.
    pub fn parse(s: &str) -> Result<Uri, SipError> {
        let s = s.trim();
        let bad = || SipError::Uri(format!("{s:.60}"));
        let (scheme, rest) = s.split_once(':').ok_or_else(bad)?;
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+')
        {
            return Err(bad());
        }
        if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
            return Ok(Uri {
                scheme: scheme.to_string(),
                user: None,
                host: rest.to_string(),
                port: None,
                params: Vec::new(),
                headers: None,
            });
        }
        let (rest, headers) = match rest.split_once('?') {
            Some((r, h)) => (r, Some(h.to_string())),
            None => (rest, None),
        };
        let (user, hostpart) = match rest.rfind('@') {
            Some(i) => (Some(rest[..i].to_string()), &rest[i + 1..]),
            None => (None, rest),
        };
        if user.as_deref() == Some("") {
            return Err(bad());
        }
        let (hostport, params) = match hostpart.split_once(';') {
            Some((h, p)) => (h, parse_params(p)),
            None => (hostpart, Vec::new()),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let end = v6.find(']').ok_or_else(bad)?;
            let host = &hostport[..end + 2];
            let after = &v6[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p.parse::<u16>().map_err(|_| bad())?),
                None if after.is_empty() => None,
                None => return Err(bad()),
            };
            (host, port)
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p.parse::<u16>().map_err(|_| bad())?)),
                None => (hostport, None),
            }
        };
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '<' || c == '>') {
            return Err(bad());
        }
        Ok(Uri {
            scheme: scheme.to_string(),
            user,
            host: host.to_string(),
            port,
            params,
            headers,
        })
    }

    /// A `sip:` URI from parts.
    pub fn sip(user: Option<&str>, host: &str, port: Option<u16>) -> Uri {
        Uri {
            scheme: "sip".into(),
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
            params: Vec::new(),
            headers: None,
        }
    }

    /// The user part without any `:password`.
    pub fn user_name(&self) -> Option<&str> {
        self.user
            .as_deref()
            .map(|u| u.split_once(':').map_or(u, |(n, _)| n))
    }

    /// Looks up a URI parameter.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme)?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write_params(f, &self.params)?;
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const INVITE: &str = "INVITE sip:bob@biloxi.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds, SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKx\r\n\
        v: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKy;rport\r\n\
        Max-Forwards: 70\r\n\
        t: Bob <sip:bob@biloxi.com>\r\n\
        From: \"Alice \\\"A\\\"\" <sip:alice@atlanta.com:5062;transport=udp>;tag=1928301774\r\n\
        i: a84b4c76e66710@pc33.atlanta.com\r\n\
        CSeq: 314159 INVITE\r\n\
        m: <sip:alice@pc33.atlanta.com>\r\n\
        Subject: folded\r\n  line\r\n\
        c: application/sdp\r\n\
        l: 4\r\n\r\nv=0\r\nextra";

    #[test]
    fn parses_request() {
        let m = Message::parse(INVITE.as_bytes()).unwrap();
        assert_eq!(m.method(), Some("INVITE"));
        assert_eq!(m.uri(), Some("sip:bob@biloxi.com"));
        assert_eq!(m.body, b"v=0\r");
        assert_eq!(m.call_id().unwrap(), "a84b4c76e66710@pc33.atlanta.com");
        assert_eq!(m.cseq().unwrap(), (314159, "INVITE".to_string()));
        assert_eq!(m.get("subject"), Some("folded line"));
        assert_eq!(m.get("Content-Type"), Some("application/sdp"));
        let vias = m.get_all("via");
        assert_eq!(vias.len(), 3);
        assert_eq!(vias[2], "SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKy;rport");
        let from = m.from_hdr().unwrap();
        assert_eq!(from.display.as_deref(), Some("Alice \"A\""));
        assert_eq!(from.tag(), Some("1928301774"));
        assert_eq!(from.uri.user_name(), Some("alice"));
        assert_eq!(from.uri.port, Some(5062));
        assert_eq!(from.uri.param("transport"), Some(Some("udp")));
        let to = m.to_hdr().unwrap();
        assert_eq!(to.display.as_deref(), Some("Bob"));
        assert_eq!(to.tag(), None);
        assert_eq!(m.branch().as_deref(), Some("z9hG4bK776asdhds"));
    }

    #[test]
    fn edits_top_via_and_headers() {
        let mut m = Message::parse(INVITE.as_bytes()).unwrap();
        let mut via = m.top_via().unwrap();
        via.set_param("received", Some("1.2.3.4"));
        via.set_param("rport", Some("5099"));
        m.set_top_via(&via);
        let vias = m.get_all("Via");
        assert_eq!(
            vias[0],
            "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds;received=1.2.3.4;rport=5099"
        );
        assert_eq!(vias.len(), 3);
        m.set("Via", "SIP/2.0/UDP x;branch=z9hG4bKq");
        assert_eq!(m.get_all("v").len(), 1);
        m.remove("CSeq");
        assert!(m.cseq().is_err());
        let bytes = m.to_bytes();
        let again = Message::parse(&bytes).unwrap();
        assert_eq!(again, m);
    }

    #[test]
    fn parses_response_and_bare_uri() {
        let raw =
            "SIP/2.0 180 Ringing\r\nTo: sip:bob@[::1]:5060;tag=abc\r\nContent-Length: 0\r\n\r\n";
        let m = Message::parse(raw.as_bytes()).unwrap();
        assert_eq!(m.code(), Some(180));
        assert_eq!(m.reason(), Some("Ringing"));
        let to = m.to_hdr().unwrap();
        assert_eq!(to.tag(), Some("abc"));
        assert_eq!(to.uri.host, "[::1]");
        assert_eq!(to.uri.port, Some(5060));
        assert_eq!(m.to_bytes(), raw.as_bytes());
    }

    #[test]
    fn rejects_malformed() {
        for raw in [
            "",
            "\r\n\r\n",
            "INVITE sip:a SIP/2.0\r\n",
            "INVITE sip:a SIP/3.0\r\n\r\n",
            "SIP/2.0 99 x\r\n\r\n",
            "SIP/2.0 abc x\r\n\r\n",
            "INVITE sip:a SIP/2.0\r\nNoColon\r\n\r\n",
            "INVITE sip:a SIP/2.0\r\nContent-Length: 10\r\n\r\nabc",
            "INVITE sip:a SIP/2.0\r\nContent-Length: -1\r\n\r\n",
        ] {
            assert!(Message::parse(raw.as_bytes()).is_err(), "{raw:?}");
        }
        assert!(NameAddr::parse("\"unterminated <sip:a@b>").is_err());
        assert!(NameAddr::parse("<sip:a@b").is_err());
        assert!(Uri::parse("sip:a@b:99999").is_err());
        assert!(Via::parse("SIP/2.0/UDP").is_err());
        assert!(parse_cseq("x INVITE").is_err());
    }

    #[test]
    fn name_addr_round_trip() {
        for s in [
            "\"Bob\" <sip:bob@host:5080;transport=udp>;tag=123",
            "<sip:100@127.0.0.1:5080>",
            "<sip:h;lr>",
            "<tel:+123>",
        ] {
            let n = NameAddr::parse(s).unwrap();
            assert_eq!(n.to_string(), s);
        }
        let n = NameAddr::parse("sip:a@b;tag=9").unwrap();
        assert_eq!(n.tag(), Some("9"));
        assert_eq!(n.to_string(), "<sip:a@b>;tag=9");
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        let name = "[A-Za-z][A-Za-z0-9-]{1,12}"
            .prop_filter("not Content-Length", |n| !same_header(n, "Content-Length"));
        let value = "[ -~]{0,40}".prop_map(|v| v.trim().to_string());
        let headers = proptest::collection::vec((name, value), 0..8);
        let start = prop_oneof![
            ("[A-Z]{3,9}", "sip:[a-z0-9@.:;=]{1,30}")
                .prop_map(|(method, uri)| StartLine::Request { method, uri }),
            (100u16..700, "[A-Za-z ]{0,20}").prop_map(|(code, r)| StartLine::Response {
                code,
                reason: r.trim().to_string()
            }),
        ];
        (
            start,
            headers,
            proptest::collection::vec(any::<u8>(), 0..100),
        )
            .prop_map(|(start, headers, body)| Message {
                start,
                headers,
                body,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn round_trip(m in arb_message()) {
            let bytes = m.to_bytes();
            let parsed = Message::parse(&bytes).unwrap();
            prop_assert_eq!(&parsed.start, &m.start);
            prop_assert_eq!(&parsed.body, &m.body);
            let without_length: Vec<_> = parsed.headers.iter()
                .filter(|(n, _)| !same_header(n, "Content-Length")).cloned().collect();
            prop_assert_eq!(without_length, m.headers.clone());
            prop_assert_eq!(parsed.to_bytes(), bytes);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(m) = Message::parse(&bytes) {
                let _ = m.to_bytes();
                let _ = m.from_hdr();
                let _ = m.top_via();
                let _ = m.cseq();
                let _ = m.get_all("Via");
            }
        }

        #[test]
        fn sip_like_text_never_panics(s in "(INVITE|SIP/2.0|[A-Za-z:;<>\"@ =,\\\\\\[\\]0-9./-]|\r\n){0,80}") {
            if let Ok(m) = Message::parse(s.as_bytes()) {
                let _ = m.from_hdr();
                let _ = m.to_hdr();
                let _ = m.top_via();
                let _ = m.cseq();
            }
            let _ = NameAddr::parse(&s);
            let _ = Uri::parse(&s);
            let _ = Via::parse(&s);
        }
    }
}
