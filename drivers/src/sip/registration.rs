//! Registration (RFC 3261 §10): the REGISTER client with digest authentication, 423
//! Min-Expires, refresh at half the granted lifetime, retry with backoff and the un-REGISTER
//! on shutdown; and the OPTIONS keep-alives to the same server.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::digest::Challenge;
use super::msg::{Message, NameAddr, Uri};
use super::transaction::{ClientTx, Retx, T2, TIMEOUT, TxKind, new_branch};
use super::ua::{ALLOW, Core, UaEvent, new_tag, uuid_hex};

/// First re-REGISTER delay after a failure; doubles up to [`MAX_BACKOFF`].
pub(super) const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// Longest re-REGISTER delay after failures.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub(super) struct Registration {
    pub(super) call_id: String,
    pub(super) from_tag: String,
    pub(super) cseq: u32,
    pub(super) expires: u32,
    /// The last challenge, whether it came in a 407, and its nonce count.
    pub(super) challenge: Option<(Challenge, bool, u32)>,
    pub(super) registered: bool,
    pub(super) in_flight: bool,
    pub(super) next: Option<Instant>,
    pub(super) backoff: Duration,
}

impl Core {
    // ----- registration -----

    pub(super) async fn send_register(&mut self, expires: u32, auth_round: u8) {
        self.reg.cseq += 1;
        self.reg.in_flight = true;
        let uri = format!("sip:{}", self.cfg.domain);
        let mut from = NameAddr::new(None, self.aor());
        from.set_param("tag", Some(&self.reg.from_tag));
        let to = NameAddr::new(None, self.aor());
        let branch = new_branch();
        let mut m = self.new_request(
            "REGISTER",
            &uri,
            &branch,
            &from,
            &to,
            &self.reg.call_id,
            self.reg.cseq,
        );
        m.push("Contact", &self.contact_hdr());
        m.push("Expires", &expires.to_string());
        m.push("Allow", ALLOW);
        if let Some((ch, proxy, nc)) = self.reg.challenge.as_mut() {
            *nc += 1;
            let user = self
                .cfg
                .auth_username
                .as_deref()
                .unwrap_or(&self.cfg.username);
            let value =
                ch.authorization(user, &self.cfg.password, "REGISTER", &uri, *nc, &new_tag());
            let name = if *proxy {
                "Proxy-Authorization"
            } else {
                "Authorization"
            };
            m.push(name, &value);
        }
        let dest = self.cfg.server;
        let bytes = self.send_msg(&m, dest).await;
        self.push_tx(ClientTx {
            branch,
            method: "REGISTER",
            call: None,
            kind: TxKind::Register {
                expires,
                auth_round,
            },
            retx: Retx::new(bytes, dest, T2),
            deadline: Instant::now() + TIMEOUT,
        });
    }

    pub(super) async fn on_register_response(
        &mut self,
        resp: Option<&Message>,
        expires: u32,
        auth_round: u8,
    ) {
        self.reg.in_flight = false;
        let (code, reason) = match resp {
            Some(r) => (
                r.code().unwrap_or(500),
                r.reason().unwrap_or("").to_string(),
            ),
            None => (408, "Request Timeout".to_string()),
        };
        if (code == 401 || code == 407) && auth_round < 2 {
            if let Some(r) = resp {
                if let Some(ch) = pick_challenge(r, code) {
                    self.reg.challenge = Some((ch, code == 407, 0));
                    self.send_register(expires, auth_round + 1).await;
                    return;
                }
            }
        }
        if code == 423 && auth_round < 2 {
            if let Some(min) = resp
                .and_then(|r| r.get("Min-Expires"))
                .and_then(|v| v.trim().parse::<u32>().ok())
            {
                if min > expires {
                    self.reg.expires = min;
                    self.send_register(min, auth_round + 1).await;
                    return;
                }
            }
        }
        if expires == 0 {
            debug!(code, "un-REGISTER finished");
            return;
        }
        if (200..300).contains(&code) {
            let granted = resp.map_or(expires, |r| self.granted_expires(r, expires));
            self.reg.registered = true;
            self.reg.backoff = MIN_BACKOFF;
            let refresh = Duration::from_secs(u64::from((granted / 2).max(1)));
            self.reg.next = Some(Instant::now() + refresh);
            info!(expires = granted, "SIP registered");
            self.emit(UaEvent::Registered { expires: granted }).await;
        } else {
            self.reg.registered = false;
            let backoff = self.reg.backoff;
            self.reg.next = Some(Instant::now() + backoff);
            self.reg.backoff = (backoff * 2).min(MAX_BACKOFF);
            warn!(code, reason = %crate::redact::printable(&reason), retry_in_secs = backoff.as_secs(), "SIP registration failed");
            self.emit(UaEvent::RegistrationFailed { code, reason })
                .await;
        }
    }

    /// The lifetime the registrar granted our contact: its `expires` parameter, else the
    /// Expires header, else what we asked for.
    pub(super) fn granted_expires(&self, resp: &Message, asked: u32) -> u32 {
        for c in resp.get_all("Contact") {
            let Ok(na) = NameAddr::parse(c) else { continue };
            let ours = na.uri.user_name() == Some(self.cfg.username.as_str())
                && na.uri.host.trim_matches(|c| c == '[' || c == ']')
                    == self.contact.ip().to_string()
                && na.uri.port.unwrap_or(5060) == self.contact.port();
            if ours {
                if let Some(e) = na.param("expires").flatten().and_then(|v| v.parse().ok()) {
                    return e;
                }
            }
        }
        resp.get("Expires")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(asked)
    }

    pub(super) async fn send_options(&mut self) {
        let uri = format!("sip:{}", self.cfg.domain);
        let mut from = NameAddr::new(None, self.aor());
        from.set_param("tag", Some(&new_tag()));
        let to = NameAddr::new(None, Uri::sip(None, &self.cfg.domain, None));
        let branch = new_branch();
        let call_id = format!("{}@{}", uuid_hex(), self.contact.ip());
        let mut m = self.new_request("OPTIONS", &uri, &branch, &from, &to, &call_id, 1);
        m.push("Contact", &self.contact_hdr());
        m.push("Accept", "application/sdp");
        let dest = self.cfg.server;
        let bytes = self.send_msg(&m, dest).await;
        self.push_tx(ClientTx {
            branch,
            method: "OPTIONS",
            call: None,
            kind: TxKind::Options,
            retx: Retx::new(bytes, dest, T2),
            deadline: Instant::now() + TIMEOUT,
        });
    }
}

/// The first usable Digest challenge of a 401 (WWW-Authenticate) or 407 (Proxy-Authenticate).
pub(super) fn pick_challenge(resp: &Message, code: u16) -> Option<Challenge> {
    let header = if code == 407 {
        "Proxy-Authenticate"
    } else {
        "WWW-Authenticate"
    };
    resp.get_all(header)
        .into_iter()
        .find_map(|v| Challenge::parse(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_digest_challenge() {
        let resp = Message::parse(
            b"SIP/2.0 407 Proxy Authentication Required\r\n\
              Proxy-Authenticate: Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256\r\n\
              Proxy-Authenticate: Digest realm=\"r\", nonce=\"m\", algorithm=MD5\r\n\r\n",
        )
        .unwrap();
        assert_eq!(pick_challenge(&resp, 407).unwrap().nonce, "m");
        assert!(pick_challenge(&resp, 401).is_none());
    }
}
