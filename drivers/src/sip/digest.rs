//! HTTP digest authentication as SIP uses it (RFC 2617, RFC 3261 §22): parse a
//! WWW-Authenticate / Proxy-Authenticate challenge, build the Authorization answer (MD5,
//! MD5-sess, qop=auth or none).

use md5::{Digest, Md5};

use super::SipError;

/// Digest hash algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `MD5` (the default).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
}

/// A digest challenge from a 401 / 407.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Protection realm.
    pub realm: String,
    /// Server nonce.
    pub nonce: String,
    /// Opaque value to echo.
    pub opaque: Option<String>,
    /// Hash algorithm.
    pub algorithm: Algorithm,
    /// Whether the server offers qop=auth (then we use it).
    pub qop_auth: bool,
    /// `stale=true`: the nonce expired, the credentials were right.
    pub stale: bool,
}

/// Splits `a=b, c="d,e"` into (name, unquoted value) pairs.
fn auth_params(s: &str) -> Result<Vec<(String, String)>, SipError> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    loop {
        while let Some(&(_, c)) = chars.peek() {
            if c == ',' || c.is_whitespace() {
                chars.next();
            } else {
                break;
            }
        }
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut name_end = s.len();
        while let Some(&(i, c)) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                name_end = i;
                break;
            }
            chars.next();
        }
        let name = s[start..name_end.min(s.len())].to_string();
        while let Some(&(_, c)) = chars.peek() {
            if c.is_whitespace() {
                chars.next();
            } else {
                break;
            }
        }
        if chars.next().map(|(_, c)| c) != Some('=') {
            return Err(SipError::Auth(format!(
                "parameter without value: {name:.30}"
            )));
        }
        while let Some(&(_, c)) = chars.peek() {
            if c.is_whitespace() {
                chars.next();
            } else {
                break;
            }
        }
        let mut value = String::new();
        if chars.peek().map(|&(_, c)| c) == Some('"') {
            chars.next();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            value.push(e);
                        }
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    _ => value.push(c),
                }
            }
            if !closed {
                return Err(SipError::Auth("unterminated quoted string".into()));
            }
        } else {
            while let Some(&(_, c)) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((name, value));
    }
    Ok(out)
}

impl Challenge {
    /// Parses a `Digest realm=…, nonce=…` challenge header value.
    pub fn parse(value: &str) -> Result<Challenge, SipError> {
        let value = value.trim();
        let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(SipError::Auth(format!("scheme {scheme:.20} is not Digest")));
        }
        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut algorithm = Algorithm::Md5;
        let mut qop = None;
        let mut stale = false;
        for (name, v) in auth_params(rest)? {
            match name.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(v),
                "nonce" => nonce = Some(v),
                "opaque" => opaque = Some(v),
                "stale" => stale = v.eq_ignore_ascii_case("true"),
                "qop" => qop = Some(v),
                "algorithm" => {
                    algorithm = if v.eq_ignore_ascii_case("MD5") {
                        Algorithm::Md5
                    } else if v.eq_ignore_ascii_case("MD5-sess") {
                        Algorithm::Md5Sess
                    } else {
                        return Err(SipError::Auth(format!("unsupported algorithm {v:.20}")));
                    }
                }
                _ => {}
            }
        }
        let qop_auth = match qop {
            None => false,
            Some(q) => {
                if q.split(',').any(|o| o.trim().eq_ignore_ascii_case("auth")) {
                    true
                } else {
                    return Err(SipError::Auth(format!("unsupported qop {q:.30}")));
                }
            }
        };
        Ok(Challenge {
            realm: realm.ok_or_else(|| SipError::Auth("no realm".into()))?,
            nonce: nonce.ok_or_else(|| SipError::Auth("no nonce".into()))?,
            opaque,
            algorithm,
            qop_auth,
            stale,
        })
    }

    /// The request-digest (`response=`) for these credentials. `nc` and `cnonce` are used only
    /// with qop=auth or MD5-sess.
    pub fn response(
        &self,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> String {
        let mut ha1 = md5_hex(&format!("{username}:{}:{password}", self.realm));
        if self.algorithm == Algorithm::Md5Sess {
            ha1 = md5_hex(&format!("{ha1}:{}:{cnonce}", self.nonce));
        }
        let ha2 = md5_hex(&format!("{method}:{uri}"));
        if self.qop_auth {
            md5_hex(&format!(
                "{ha1}:{}:{nc:08x}:{cnonce}:auth:{ha2}",
                self.nonce
            ))
        } else {
            md5_hex(&format!("{ha1}:{}:{ha2}", self.nonce))
        }
    }

    /// The Authorization / Proxy-Authorization header value answering this challenge.
    pub fn authorization(
        &self,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> String {
        let response = self.response(username, password, method, uri, nc, cnonce);
        let mut out = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{response}\"",
            quote(username),
            quote(&self.realm),
            quote(&self.nonce),
            quote(uri)
        );
        out.push_str(match self.algorithm {
            Algorithm::Md5 => ", algorithm=MD5",
            Algorithm::Md5Sess => ", algorithm=MD5-sess",
        });
        if let Some(o) = &self.opaque {
            out.push_str(&format!(", opaque=\"{}\"", quote(o)));
        }
        if self.qop_auth || self.algorithm == Algorithm::Md5Sess {
            out.push_str(&format!(", cnonce=\"{}\"", quote(cnonce)));
        }
        if self.qop_auth {
            out.push_str(&format!(", qop=auth, nc={nc:08x}"));
        }
        out
    }
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn md5_hex(s: &str) -> String {
    let digest = Md5::digest(s.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc2617_example() {
        let ch = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert!(ch.qop_auth);
        assert_eq!(ch.algorithm, Algorithm::Md5);
        assert_eq!(
            ch.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
        let r = ch.response(
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            1,
            "0a4f113b",
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
        let h = ch.authorization(
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            1,
            "0a4f113b",
        );
        assert!(h.contains("response=\"6629fae49393a05397450978507c4ef1\""));
        assert!(h.contains("qop=auth, nc=00000001"));
        assert!(h.contains("cnonce=\"0a4f113b\""));
        assert!(h.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
    }

    #[test]
    fn without_qop_is_rfc2069() {
        let ch = Challenge::parse("digest realm=asterisk,nonce=\"abc\", algorithm=md5, stale=TRUE")
            .unwrap();
        assert!(!ch.qop_auth);
        assert!(ch.stale);
        let ha1 = md5_hex("u:asterisk:p");
        let ha2 = md5_hex("REGISTER:sip:example.com");
        assert_eq!(
            ch.response("u", "p", "REGISTER", "sip:example.com", 1, "x"),
            md5_hex(&format!("{ha1}:abc:{ha2}"))
        );
        let h = ch.authorization("u", "p", "REGISTER", "sip:example.com", 1, "x");
        assert!(!h.contains("qop"));
        assert!(!h.contains("cnonce"));
    }

    #[test]
    fn md5_sess() {
        let ch = Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess, qop=auth")
            .unwrap();
        let ha1 = md5_hex(&format!("{}:n:c", md5_hex("u:r:p")));
        let ha2 = md5_hex("INVITE:sip:x");
        assert_eq!(
            ch.response("u", "p", "INVITE", "sip:x", 2, "c"),
            md5_hex(&format!("{ha1}:n:00000002:c:auth:{ha2}"))
        );
    }

    #[test]
    fn rejects_unusable() {
        assert!(Challenge::parse("Basic realm=\"x\"").is_err());
        assert!(Challenge::parse("Digest nonce=\"x\"").is_err());
        assert!(Challenge::parse("Digest realm=\"x\", nonce=\"y\", algorithm=SHA-256").is_err());
        assert!(Challenge::parse("Digest realm=\"x\", nonce=\"y\", qop=\"auth-int\"").is_err());
        assert!(Challenge::parse("Digest realm=\"x, nonce=\"y\"").is_err());
        assert!(Challenge::parse("Digest realm").is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_challenges_never_panic(s in "Digest [ -~]{0,80}") {
            let _ = Challenge::parse(&s);
        }
    }
}
