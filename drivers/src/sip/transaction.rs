//! SIP transactions over UDP (RFC 3261 §17): the timers T1, T2 and 64·T1; retransmission
//! (Timers A, E, G) and timeouts (B, D, F, H) of the INVITE transactions kept in each call
//! and of the non-INVITE client transactions (REGISTER, OPTIONS, BYE, CANCEL); the cache of
//! our responses to non-INVITE server transactions; the timer heap that drives them all;
//! matching responses to their client transaction; and the ACK of a non-2xx final response.
//! The user agent's `Core` owns the state; this file holds its transaction layer.

use std::cmp::Reverse;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, warn};

use super::dialog::CallState;
use super::msg::Message;
use super::ua::{CallId, Core, new_tag, uuid_hex};

/// RTT estimate (RFC 3261 T1).
pub(super) const T1: Duration = Duration::from_millis(500);
/// Maximum retransmit interval for non-INVITE requests and INVITE responses (T2).
pub(super) const T2: Duration = Duration::from_secs(4);
/// Transaction timeout, 64·T1 (Timers B, F, H, J).
pub(super) const TIMEOUT: Duration = Duration::from_secs(32);

/// A fresh branch with the RFC 3261 magic cookie.
pub(super) fn new_branch() -> String {
    format!("z9hG4bK{}", uuid_hex())
}

/// A retransmission timer (A for our INVITE, G for our final responses, E for non-INVITE).
pub(super) struct Retx {
    pub(super) bytes: Vec<u8>,
    pub(super) dest: SocketAddr,
    pub(super) next: Instant,
    pub(super) interval: Duration,
    pub(super) cap: Duration,
}

impl Retx {
    pub(super) fn new(bytes: Vec<u8>, dest: SocketAddr, cap: Duration) -> Retx {
        Retx {
            bytes,
            dest,
            next: Instant::now() + T1,
            interval: T1,
            cap,
        }
    }
}

pub(super) enum TxKind {
    Register { expires: u32, auth_round: u8 },
    Options,
    Bye,
    Cancel,
}

/// A non-INVITE client transaction (Timers E and F).
pub(super) struct ClientTx {
    pub(super) branch: String,
    pub(super) method: &'static str,
    pub(super) call: Option<CallId>,
    pub(super) kind: TxKind,
    pub(super) retx: Retx,
    pub(super) deadline: Instant,
}

pub(super) struct Cached {
    pub(super) bytes: Vec<u8>,
    pub(super) dest: SocketAddr,
    pub(super) until: Instant,
}

/// What a timer in the heap belongs to; checked against the owner's own times when it fires
/// (an entry whose owner is gone or was re-armed is stale and skipped).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerKey {
    Call(CallId),
    Tx(String),
    Cache(String),
}

impl Core {
    /// Puts a timer for `key` at `at` into the heap.
    pub(super) fn arm(&mut self, at: Instant, key: TimerKey) {
        self.timers.push(Reverse((at, key)));
    }

    /// Arms the call's retransmission and deadline timers (after either was set).
    pub(super) fn arm_call(&mut self, id: &str) {
        let Some(c) = self.calls.get(id) else {
            return;
        };
        let times = [c.retx.as_ref().map(|r| r.next), c.deadline];
        for t in times.into_iter().flatten() {
            self.arm(t, TimerKey::Call(id.to_string()));
        }
    }

    /// Starts a non-INVITE client transaction and arms its timers.
    pub(super) fn push_tx(&mut self, tx: ClientTx) {
        let (next, deadline, key) = (tx.retx.next, tx.deadline, tx.branch.clone());
        self.client_txs.push(tx);
        self.arm(next, TimerKey::Tx(key.clone()));
        self.arm(deadline, TimerKey::Tx(key));
    }

    /// Keeps our response to a non-INVITE request for its retransmissions.
    pub(super) fn cache_response(&mut self, key: String, bytes: Vec<u8>, dest: SocketAddr) {
        let until = Instant::now() + TIMEOUT;
        self.server_cache
            .insert(key.clone(), Cached { bytes, dest, until });
        self.arm(until, TimerKey::Cache(key));
    }

    // ----- timers -----

    pub(super) async fn on_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, key))) = self.timers.pop() else {
                break;
            };
            match key {
                TimerKey::Tx(branch) => self.tx_timer(&branch, now).await,
                TimerKey::Call(id) => self.call_timer(&id, now).await,
                TimerKey::Cache(k) => {
                    if self.server_cache.get(&k).is_some_and(|c| c.until <= now) {
                        self.server_cache.remove(&k);
                    }
                }
            }
        }
        if self.timers.is_empty() && self.timers.capacity() > 1024 {
            // A burst is over: give its memory back.
            self.timers.shrink_to_fit();
            self.server_cache.shrink_to_fit();
            self.calls.shrink_to_fit();
        }
        // Registration refresh / retry.
        if self.reg.next.is_some_and(|t| now >= t) {
            self.reg.next = None;
            if !self.reg.in_flight {
                let expires = self.reg.expires;
                self.send_register(expires, 0).await;
            }
        }
        if self.options_next.is_some_and(|t| now >= t) {
            self.options_next = self.cfg.options_interval.map(|i| now + i);
            self.send_options().await;
        }
        if self.refused.report_at.is_some_and(|t| now >= t) {
            if let Some(line) = self.refused.take_report() {
                warn!("{line}");
            }
            self.limiter.sweep(now);
        }
    }

    /// Timer E (retransmit) and F (timeout) of a non-INVITE client transaction.
    pub(super) async fn tx_timer(&mut self, branch: &str, now: Instant) {
        let Some(i) = self.client_txs.iter().position(|t| t.branch == branch) else {
            return;
        };
        if now >= self.client_txs[i].deadline {
            let tx = self.client_txs.remove(i);
            self.on_client_final(tx, None).await;
            return;
        }
        let r = &mut self.client_txs[i].retx;
        if now >= r.next {
            r.interval = (r.interval * 2).min(r.cap);
            r.next = now + r.interval;
            let (bytes, dest, next) = (r.bytes.clone(), r.dest, r.next);
            self.arm(next, TimerKey::Tx(branch.to_string()));
            self.send(&bytes, dest).await;
        }
    }

    /// A call's retransmission and deadline.
    pub(super) async fn call_timer(&mut self, id: &str, now: Instant) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let mut resend = None;
        if let Some(r) = call.retx.as_mut() {
            if now >= r.next {
                r.interval = r.interval.saturating_mul(2).min(r.cap);
                r.next = now + r.interval;
                resend = Some((r.bytes.clone(), r.dest, r.next));
            }
        }
        let expired = call.deadline.is_some_and(|d| now >= d);
        if let Some((bytes, dest, next)) = resend {
            self.arm(next, TimerKey::Call(id.to_string()));
            self.send(&bytes, dest).await;
        }
        if expired {
            self.on_call_deadline(id).await;
        }
    }

    /// Answers `req` once and keeps nothing (no transaction, no cache): for refusals, where a
    /// retransmitted request simply gets the same answer again.
    pub(super) async fn respond_stateless(
        &self,
        req: &Message,
        src: SocketAddr,
        code: u16,
        reason: &str,
        extra: Option<(&str, &str)>,
    ) {
        if req.top_via().is_err() {
            return; // nowhere to answer
        }
        let mut r = self.response_to(req, src, code, reason, Some(&new_tag()));
        if let Some((name, value)) = extra {
            r.push(name, value);
        }
        // To the source address (RFC 3581), like every response we send.
        self.send(&r.to_bytes(), src).await;
    }

    pub(super) async fn respond(
        &mut self,
        req: &Message,
        src: SocketAddr,
        code: u16,
        reason: &str,
    ) {
        let r = self.response_to(req, src, code, reason, Some(&new_tag()));
        let bytes = self.send_msg(&r, src).await;
        if let (Some(branch), Some(method)) = (req.branch(), req.method()) {
            if method != "INVITE" {
                self.cache_response(format!("{branch} {method}"), bytes, src);
            }
        }
    }

    pub(super) async fn on_response(&mut self, resp: Message) {
        let (Some(branch), Ok((_, method))) = (resp.branch(), resp.cseq()) else {
            return;
        };
        if method == "INVITE" {
            self.on_invite_response(resp, &branch).await;
            return;
        }
        let Some(i) = self
            .client_txs
            .iter()
            .position(|t| t.branch == branch && t.method == method)
        else {
            debug!(branch = %branch, "response matches no transaction");
            return;
        };
        let code = resp.code().unwrap_or(500);
        if code < 200 {
            // Proceeding: keep retransmitting at T2 (RFC 3261 §17.1.2.2).
            let r = &mut self.client_txs[i].retx;
            r.interval = T2;
            r.next = Instant::now() + T2;
            let next = r.next;
            self.arm(next, TimerKey::Tx(branch));
            return;
        }
        let tx = self.client_txs.remove(i);
        self.on_client_final(tx, Some(&resp)).await;
    }

    /// A non-INVITE client transaction ended: final response, or timeout when `resp` is None.
    pub(super) async fn on_client_final(&mut self, tx: ClientTx, resp: Option<&Message>) {
        match tx.kind {
            TxKind::Register {
                expires,
                auth_round,
            } => self.on_register_response(resp, expires, auth_round).await,
            TxKind::Options => match resp.and_then(Message::code) {
                Some(code) => debug!(code, "OPTIONS keep-alive answered"),
                None => warn!(server = %self.cfg.server, "OPTIONS keep-alive: no answer"),
            },
            TxKind::Bye => {
                if let Some(id) = &tx.call {
                    if resp.is_none() {
                        warn!(call = %id, "BYE got no answer");
                    }
                    if self
                        .calls
                        .get(id)
                        .is_some_and(|c| c.state == CallState::Terminating)
                    {
                        self.calls.remove(id);
                    }
                }
            }
            TxKind::Cancel => {}
        }
    }
}

/// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): same Request-URI, top Via,
/// From, Call-ID, Route as the INVITE, To from the response.
pub(super) fn non2xx_ack(invite: &Message, resp: &Message, user_agent: &str) -> Message {
    let mut m = Message::request("ACK", invite.uri().unwrap_or_default());
    if let Some(v) = invite.get_all("Via").first() {
        m.push("Via", v);
    }
    m.push("Max-Forwards", "70");
    for h in ["From", "Call-ID"] {
        if let Some(v) = invite.get(h) {
            m.push(h, v);
        }
    }
    if let Some(v) = resp.get("To") {
        m.push("To", v);
    }
    if let Ok((n, _)) = invite.cseq() {
        m.push("CSeq", &format!("{n} ACK"));
    }
    for r in invite.get_all("Route") {
        m.push("Route", r);
    }
    m.push("User-Agent", user_agent);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non2xx_ack_reuses_invite_branch() {
        let invite = Message::parse(
            b"INVITE sip:100@pbx SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bKabc;rport\r\n\
              From: <sip:a@pbx>;tag=1\r\nTo: <sip:100@pbx>\r\nCall-ID: x\r\nCSeq: 2 INVITE\r\n\
              Route: <sip:proxy;lr>\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let resp = Message::parse(
            b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bKabc;rport=5060\r\n\
              From: <sip:a@pbx>;tag=1\r\nTo: <sip:100@pbx>;tag=9\r\nCall-ID: x\r\nCSeq: 2 INVITE\r\n\r\n",
        )
        .unwrap();
        let ack = non2xx_ack(&invite, &resp, "ua");
        assert_eq!(ack.method(), Some("ACK"));
        assert_eq!(ack.uri(), Some("sip:100@pbx"));
        assert_eq!(ack.branch().as_deref(), Some("z9hG4bKabc"));
        assert_eq!(ack.to_hdr().unwrap().tag(), Some("9"));
        assert_eq!(ack.cseq().unwrap(), (2, "ACK".into()));
        assert_eq!(ack.get("Route"), Some("<sip:proxy;lr>"));
    }
}
