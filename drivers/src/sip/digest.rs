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

/// The credentials in an Authorization / Proxy-Authorization header (the server side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Realm the client answered for.
    pub realm: String,
    /// The nonce it answers.
    pub nonce: String,
    /// The digest-uri.
    pub uri: String,
    /// The request-digest.
    pub response: String,
    /// Hash algorithm.
    pub algorithm: Algorithm,
    /// `qop=auth` was used (with `nc` and `cnonce`).
    pub qop_auth: bool,
    /// Nonce count as written (8 hex digits), with qop.
    pub nc: String,
    /// Client nonce, with qop.
    pub cnonce: String,
}

impl Credentials {
    /// Parses a `Digest username=…, response=…` header value.
    pub fn parse(value: &str) -> Result<Credentials, SipError> {
        let value = value.trim();
        let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(SipError::Auth(format!("scheme {scheme:.20} is not Digest")));
        }
        let mut c = Credentials {
            username: String::new(),
            realm: String::new(),
            nonce: String::new(),
            uri: String::new(),
            response: String::new(),
            algorithm: Algorithm::Md5,
            qop_auth: false,
            nc: String::new(),
            cnonce: String::new(),
        };
        for (name, v) in auth_params(rest)? {
            match name.to_ascii_lowercase().as_str() {
                "username" => c.username = v,
                "realm" => c.realm = v,
                "nonce" => c.nonce = v,
                "uri" => c.uri = v,
                "response" => c.response = v,
                "nc" => c.nc = v,
                "cnonce" => c.cnonce = v,
                "qop" => {
                    if !v.eq_ignore_ascii_case("auth") {
                        return Err(SipError::Auth(format!("unsupported qop {v:.20}")));
                    }
                    c.qop_auth = true;
                }
                "algorithm" => {
                    c.algorithm = if v.eq_ignore_ascii_case("MD5") {
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
        if c.username.is_empty() || c.nonce.is_empty() || c.response.is_empty() {
            return Err(SipError::Auth("username, nonce or response missing".into()));
        }
        if c.qop_auth && (c.nc.is_empty() || c.cnonce.is_empty()) {
            return Err(SipError::Auth("qop=auth without nc or cnonce".into()));
        }
        Ok(c)
    }

    /// Whether the request-digest is right for `password` and `method` (compared in constant
    /// time); realm, nonce and user are the caller's to check.
    pub fn verify(&self, password: &str, method: &str) -> bool {
        let ch = Challenge {
            realm: self.realm.clone(),
            nonce: self.nonce.clone(),
            opaque: None,
            algorithm: self.algorithm,
            qop_auth: self.qop_auth,
            stale: false,
        };
        let Ok(nc) = u32::from_str_radix(if self.qop_auth { &self.nc } else { "1" }, 16) else {
            return false;
        };
        if self.qop_auth && self.nc.len() != 8 {
            return false;
        }
        let want = ch.response(
            &self.username,
            password,
            method,
            &self.uri,
            nc,
            &self.cnonce,
        );
        constant_time_eq(
            want.as_bytes(),
            self.response.to_ascii_lowercase().as_bytes(),
        )
    }
}

/// Equality that takes the same time wherever the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Stateless nonces for the digest challenges we send: `<unix seconds hex>.<MD5 of secret and
/// time>`, good for a lifetime, checkable without keeping anything per challenge.
#[derive(Clone)]
pub struct NonceSource {
    secret: String,
}

/// What a nonce turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Ours and fresh.
    Fresh,
    /// Ours but older than the lifetime (answer `stale=true`).
    Stale,
    /// Not ours.
    Bad,
}

impl NonceSource {
    /// A source with this secret (random per process).
    pub fn new(secret: String) -> NonceSource {
        NonceSource { secret }
    }

    /// A nonce for time `now` (unix seconds), made unique by `salt` (hex, e.g. random): two
    /// challenges never share a nonce, even within a second.
    pub fn issue(&self, now: u64, salt: &str) -> String {
        let ts = format!("{now:x}.{salt}");
        let mac = md5_hex(&format!("{}:{ts}", self.secret));
        format!("{ts}.{mac}")
    }

    /// Checks `nonce` at time `now` against a lifetime of `lifetime` seconds.
    pub fn check(&self, nonce: &str, now: u64, lifetime: u64) -> NonceCheck {
        let Some((stamp, mac)) = nonce.rsplit_once('.') else {
            return NonceCheck::Bad;
        };
        let want = md5_hex(&format!("{}:{stamp}", self.secret));
        if stamp.len() > 64 || !constant_time_eq(want.as_bytes(), mac.as_bytes()) {
            return NonceCheck::Bad;
        }
        let ts = stamp.split('.').next().unwrap_or("");
        let Ok(t) = u64::from_str_radix(ts, 16) else {
            return NonceCheck::Bad;
        };
        if t > now.saturating_add(5) || now.saturating_sub(t) > lifetime {
            NonceCheck::Stale
        } else {
            NonceCheck::Fresh
        }
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

    #[test]
    fn server_verifies_what_the_client_builds() {
        let nonces = NonceSource::new("k".into());
        let nonce = nonces.issue(1000, "ab12");
        assert_ne!(nonce, nonces.issue(1000, "cd34"), "unique within a second");
        assert_eq!(nonces.check(&nonce, 1010, 60), NonceCheck::Fresh);
        assert_eq!(nonces.check(&nonce, 1100, 60), NonceCheck::Stale);
        assert_eq!(
            NonceSource::new("other".into()).check(&nonce, 1010, 60),
            NonceCheck::Bad
        );
        assert_eq!(nonces.check("3e8.00", 1010, 60), NonceCheck::Bad);
        assert_eq!(nonces.check("3e8.ab12.00", 1010, 60), NonceCheck::Bad);
        assert_eq!(nonces.check("nonce", 1010, 60), NonceCheck::Bad);
        let ch = Challenge::parse(&format!(
            "Digest realm=\"gsmgw\", nonce=\"{nonce}\", qop=\"auth\", algorithm=MD5"
        ))
        .unwrap();
        let h = ch.authorization("pbx", "pw", "INVITE", "sip:+1@gw", 1, "cn");
        let c = Credentials::parse(&h).unwrap();
        assert_eq!((c.username.as_str(), c.realm.as_str()), ("pbx", "gsmgw"));
        assert_eq!(c.nonce, nonce);
        assert!(c.verify("pw", "INVITE"));
        assert!(!c.verify("wrong", "INVITE"));
        assert!(!c.verify("pw", "BYE"));
        let mut forged = c.clone();
        forged.uri = "sip:+2@gw".into();
        assert!(!forged.verify("pw", "INVITE"));
        assert!(Credentials::parse("Digest username=\"a\"").is_err());
        assert!(Credentials::parse("Basic abc").is_err());
        assert!(
            Credentials::parse("Digest username=a, nonce=n, response=r, qop=auth").is_err(),
            "qop without nc/cnonce"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_credentials_never_panic(s in "Digest [ -~]{0,120}") {
            if let Ok(c) = Credentials::parse(&s) {
                let _ = c.verify("p", "INVITE");
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_challenges_never_panic(s in "Digest [ -~]{0,80}") {
            let _ = Challenge::parse(&s);
        }
    }
}
