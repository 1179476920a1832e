//! The server call side: a new INVITE (authenticated per `inbound_auth`, 100 Trying, the
//! dialog created), our 18x / 2xx / error answers, re-INVITEs, ACK and CANCEL.

use std::net::SocketAddr;

use tokio::time::Instant;
use tracing::{debug, info};

use super::{ALLOW, Core, REALM, TOKEN_PARAM, UaEvent, new_tag, sdp_body};
use crate::sip::dialog::{
    Call, CallState, Role, copy_record_route, record_route, route_hop, same_dialog,
};
use crate::sip::digest::{Credentials, NonceCheck};
use crate::sip::guard::{InboundAuth, NONCE_LIFETIME_SECS, Refusal};
use crate::sip::msg::{Message, NameAddr, Uri};
use crate::sip::transaction::{Retx, T2, TIMEOUT};

impl Core {
    pub(in crate::sip) async fn ringing(&mut self, id: &str, sdp: Option<String>) {
        let Some(call) = self.calls.get(id) else {
            debug!(call = %id, "ringing: no such call");
            return;
        };
        if call.state != CallState::Incoming {
            debug!(call = %id, "ringing: call is not ringing");
            return;
        }
        let (code, reason) = if sdp.is_some() {
            (183, "Session Progress")
        } else {
            (180, "Ringing")
        };
        let tag = call.local.tag().map(str::to_string);
        let mut r = self.response_to(&call.invite, call.dest, code, reason, tag.as_deref());
        copy_record_route(&call.invite, &mut r);
        r.push("Contact", &self.contact_hdr());
        if let Some(s) = &sdp {
            r.push("Content-Type", "application/sdp");
            r.body = s.clone().into_bytes();
        }
        let dest = call.dest;
        let bytes = self.send_msg(&r, dest).await;
        if let Some(call) = self.calls.get_mut(id) {
            call.last_response = Some(bytes);
            if sdp.is_some() {
                call.local_sdp = sdp;
            }
        }
    }

    pub(in crate::sip) async fn answer(&mut self, id: &str, sdp: String) {
        let Some(call) = self.calls.get(id) else {
            debug!(call = %id, "answer: no such call");
            return;
        };
        if call.state != CallState::Incoming {
            debug!(call = %id, "answer: call is not ringing");
            return;
        }
        let tag = call.local.tag().map(str::to_string);
        let mut r = self.response_to(&call.invite, call.dest, 200, "OK", tag.as_deref());
        copy_record_route(&call.invite, &mut r);
        r.push("Contact", &self.contact_hdr());
        r.push("Allow", ALLOW);
        r.push("Content-Type", "application/sdp");
        r.body = sdp.clone().into_bytes();
        let dest = call.dest;
        let bytes = self.send_msg(&r, dest).await;
        if let Some(call) = self.calls.get_mut(id) {
            call.state = CallState::UasAnswered;
            call.last_response = Some(bytes.clone());
            call.retx = Some(Retx::new(bytes, dest, T2));
            call.deadline = Some(Instant::now() + TIMEOUT);
            call.local_sdp = Some(sdp);
        }
        self.arm_call(id);
        info!(call = %id, "SIP call answered");
    }

    /// A final error to an incoming INVITE, retransmitted until the ACK.
    pub(in crate::sip) async fn uas_final_error(&mut self, id: &str, code: u16, reason: &str) {
        let Some(call) = self.calls.get(id) else {
            debug!(call = %id, "reject: no such call");
            return;
        };
        if call.state != CallState::Incoming {
            debug!(call = %id, "reject: call is not ringing");
            return;
        }
        let tag = call.local.tag().map(str::to_string);
        let r = self.response_to(&call.invite, call.dest, code, reason, tag.as_deref());
        let dest = call.dest;
        let bytes = self.send_msg(&r, dest).await;
        if let Some(call) = self.calls.get_mut(id) {
            call.state = CallState::UasRejected;
            call.last_response = Some(bytes.clone());
            call.retx = Some(Retx::new(bytes, dest, T2));
            call.deadline = Some(Instant::now() + TIMEOUT);
        }
        self.arm_call(id);
    }

    pub(in crate::sip) async fn on_invite(&mut self, req: Message, src: SocketAddr) {
        let (Ok(call_id), Ok(to), Ok(from), Ok((cseq, _))) =
            (req.call_id(), req.to_hdr(), req.from_hdr(), req.cseq())
        else {
            return;
        };
        let call_id = call_id.to_string();
        let branch = req.branch().unwrap_or_default();
        if to.tag().is_some() {
            self.on_reinvite(&req, src, &call_id, cseq, &branch).await;
            return;
        }
        if let Some(call) = self.calls.get(&call_id) {
            if call.role == Role::Uas && call.invite_branch == branch && call.invite_cseq == cseq {
                // Retransmission: repeat our last response, no new event.
                if let Some(bytes) = call.last_response.clone() {
                    let dest = call.dest;
                    self.send(&bytes, dest).await;
                }
            } else {
                self.respond(&req, src, 482, "Loop Detected").await;
            }
            return;
        }
        if !self.authenticate(&req, src).await {
            return;
        }
        let route_set = match record_route(&req) {
            Ok(r) => r,
            Err(why) => {
                debug!(call = %call_id, src = %src, why, "INVITE refused");
                self.respond(&req, src, 400, why).await;
                return;
            }
        };
        let trying = self.response_to(&req, src, 100, "Trying", None);
        let trying = self.send_msg(&trying, src).await;
        let mut local = to.clone();
        local.set_param("tag", Some(&new_tag()));
        let remote_target = req
            .get_all("Contact")
            .first()
            .and_then(|c| NameAddr::parse(c).ok())
            .map(|n| n.uri.to_string())
            .unwrap_or_else(|| from.uri.to_string());
        let hop = route_hop(&route_set).unwrap_or(src);
        // The Request-URI's user, unless it is our own Contact user (a registrar that routes
        // to the registered Contact keeps the number in To only).
        let to_user = req
            .uri()
            .and_then(|u| Uri::parse(u).ok())
            .and_then(|u| u.user_name().map(str::to_string))
            .filter(|u| *u != self.cfg.username)
            .or_else(|| to.uri.user_name().map(str::to_string))
            .unwrap_or_default();
        let event = UaEvent::Incoming {
            call: call_id.clone(),
            from_user: from.uri.user_name().unwrap_or_default().to_string(),
            from_display: from.display.clone(),
            to_user,
            sdp: sdp_body(&req),
            source: src,
        };
        let call = Call {
            id: call_id.clone(),
            role: Role::Uas,
            state: CallState::Incoming,
            local,
            remote: from,
            local_cseq: 0,
            remote_target,
            route_set,
            dest: src,
            hop,
            invite: req,
            invite_branch: branch,
            invite_cseq: cseq,
            auth_tried: false,
            cancel_requested: false,
            retx: None,
            deadline: None,
            ack: None,
            last_response: Some(trying),
            local_sdp: None,
            reinvite: None,
            bye_after_ack: false,
        };
        self.calls.insert(call_id.clone(), call);
        info!(call = %crate::redact::printable(&call_id), src = %src, "SIP incoming INVITE");
        self.emit(event).await;
    }

    /// Whether a new INVITE proves it comes from the PBX (`inbound_auth`); when it does not, it
    /// has been answered statelessly (403, or 407 with a fresh challenge) and counted.
    pub(in crate::sip) async fn authenticate(&mut self, req: &Message, src: SocketAddr) -> bool {
        let now = Instant::now();
        match self.cfg.inbound.auth.clone() {
            InboundAuth::Ip => true,
            InboundAuth::ContactToken => {
                let ok = req
                    .uri()
                    .and_then(|u| Uri::parse(u).ok())
                    .and_then(|u| u.param(TOKEN_PARAM).flatten().map(str::to_string))
                    .is_some_and(|t| {
                        crate::sip::digest::constant_time_eq(t.as_bytes(), self.token.as_bytes())
                    });
                if !ok {
                    self.refused.count(Refusal::Unauthenticated, src.ip(), now);
                    self.respond_stateless(req, src, 403, "Forbidden", None)
                        .await;
                }
                ok
            }
            InboundAuth::Digest { username, password } => {
                let unix = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let r_user = req
                    .uri()
                    .and_then(|u| Uri::parse(u).ok())
                    .and_then(|u| u.user_name().map(str::to_string));
                let mut stale = false;
                let mut answered = false;
                for value in req
                    .get_all("Proxy-Authorization")
                    .into_iter()
                    .chain(req.get_all("Authorization"))
                {
                    let Ok(c) = Credentials::parse(value) else {
                        continue;
                    };
                    if c.realm != REALM {
                        continue;
                    }
                    answered = true;
                    let uri_user = Uri::parse(&c.uri)
                        .ok()
                        .and_then(|u| u.user_name().map(str::to_string));
                    // The digest-uri names the number dialled when the PBX copies the
                    // Request-URI (SIPp names only the host); replays are caught below.
                    let right = c.username == username
                        && c.qop_auth
                        && (uri_user.is_none() || uri_user == r_user)
                        && c.verify(&password, "INVITE");
                    if !right {
                        continue;
                    }
                    match self.nonces.check(&c.nonce, unix, NONCE_LIFETIME_SECS) {
                        NonceCheck::Fresh => {
                            let key = format!("{}:{}:{}", c.nonce, c.cnonce, c.nc);
                            if self.replay.first_use(key, now) {
                                return true;
                            }
                        }
                        NonceCheck::Stale => stale = true,
                        NonceCheck::Bad => {}
                    }
                }
                if answered && !stale {
                    self.refused.count(Refusal::Unauthenticated, src.ip(), now);
                    self.respond_stateless(req, src, 403, "Forbidden", None)
                        .await;
                } else {
                    if answered {
                        self.refused.count(Refusal::Unauthenticated, src.ip(), now);
                    }
                    let challenge = format!(
                        "Digest realm=\"{REALM}\", nonce=\"{}\", qop=\"auth\", algorithm=MD5{}",
                        self.nonces.issue(unix, &new_tag()),
                        if stale { ", stale=true" } else { "" }
                    );
                    self.respond_stateless(
                        req,
                        src,
                        407,
                        "Proxy Authentication Required",
                        Some(("Proxy-Authenticate", &challenge)),
                    )
                    .await;
                }
                false
            }
        }
    }

    /// A re-INVITE inside a dialog: answered 200 with the SDP we last sent.
    pub(in crate::sip) async fn on_reinvite(
        &mut self,
        req: &Message,
        src: SocketAddr,
        call_id: &str,
        cseq: u32,
        branch: &str,
    ) {
        let Some(call) = self.calls.get(call_id).filter(|c| same_dialog(c, req)) else {
            self.respond_stateless(req, src, 481, "Call/Transaction Does Not Exist", None)
                .await;
            return;
        };
        if let Some((b, _, bytes)) = &call.reinvite {
            if b == branch {
                let (bytes, dest) = (bytes.clone(), src);
                self.send(&bytes, dest).await;
                return;
            }
        }
        if call.state != CallState::Confirmed {
            let r = self.response_to(req, src, 491, "Request Pending", None);
            self.send_msg(&r, src).await;
            return;
        }
        // Hold: sendonly / inactive, or the old form c=0.0.0.0.
        let offer = req
            .body_str()
            .filter(|b| !b.trim().is_empty())
            .map(str::to_string);
        let parsed = offer
            .as_deref()
            .and_then(|o| crate::sip::sdp::Sdp::parse(o).ok());
        let (held, answer_dir) = match parsed.as_ref().and_then(|p| p.audio.as_ref()) {
            Some(a) => {
                let zero = a
                    .connection
                    .or(parsed.as_ref().and_then(|p| p.connection))
                    .is_some_and(|ip| ip.is_unspecified());
                match a.direction {
                    crate::sip::sdp::Direction::SendOnly => (true, "recvonly"),
                    crate::sip::sdp::Direction::Inactive => (true, "inactive"),
                    _ if zero => (true, "sendrecv"),
                    _ => (false, "sendrecv"),
                }
            }
            None => (false, "sendrecv"),
        };
        let mut r = self.response_to(req, src, 200, "OK", None);
        r.push("Contact", &self.contact_hdr());
        r.push("Allow", ALLOW);
        if let Some(sdp) = &call.local_sdp {
            r.push("Content-Type", "application/sdp");
            r.body = sdp
                .replace("a=sendrecv", &format!("a={answer_dir}"))
                .into_bytes();
        }
        let new_target = req
            .get_all("Contact")
            .first()
            .and_then(|c| NameAddr::parse(c).ok())
            .map(|n| n.uri.to_string());
        let bytes = self.send_msg(&r, src).await;
        if let Some(call) = self.calls.get_mut(call_id) {
            if let Some(t) = new_target {
                call.remote_target = t;
            }
            call.reinvite = Some((branch.to_string(), cseq, bytes.clone()));
            call.retx = Some(Retx::new(bytes, src, T2));
            call.deadline = Some(Instant::now() + TIMEOUT);
        }
        self.arm_call(call_id);
        info!(call = %call_id, held, "re-INVITE answered");
        self.emit(UaEvent::Reinvite {
            call: call_id.to_string(),
            held,
            sdp: offer,
        })
        .await;
    }

    pub(in crate::sip) async fn on_ack(&mut self, req: &Message) {
        let (Ok(call_id), Ok((cseq, _))) = (req.call_id(), req.cseq()) else {
            return;
        };
        let call_id = call_id.to_string();
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        if !same_dialog(call, req) {
            // An ACK with another dialog's tags changes nothing (a forged or stray one).
            debug!(call = %call_id, "ACK for another dialog ignored");
            return;
        }
        match call.state {
            CallState::UasAnswered if cseq == call.invite_cseq => {
                call.state = CallState::Confirmed;
                call.retx = None;
                call.deadline = None;
                debug!(call = %call_id, "ACK received; dialog confirmed");
                if call.bye_after_ack {
                    self.send_bye(&call_id).await;
                }
            }
            CallState::UasRejected => {
                self.calls.remove(&call_id);
            }
            CallState::Confirmed if call.reinvite.as_ref().is_some_and(|(_, c, _)| *c == cseq) => {
                call.retx = None;
                call.deadline = None;
            }
            _ => {}
        }
    }

    pub(in crate::sip) async fn on_cancel(&mut self, req: &Message, src: SocketAddr) {
        let (Ok(call_id), Ok((cseq, _))) = (req.call_id(), req.cseq()) else {
            return;
        };
        let call_id = call_id.to_string();
        // The INVITE's transaction (RFC 3261 §9.2): same branch, CSeq number and From tag.
        let branch = req.branch().unwrap_or_default();
        let from_tag = req
            .from_hdr()
            .ok()
            .and_then(|f| f.tag().map(str::to_string));
        let found = self
            .calls
            .get(&call_id)
            .filter(|c| {
                c.role == Role::Uas
                    && c.invite_cseq == cseq
                    && c.invite_branch == branch
                    && from_tag.as_deref() == c.remote.tag()
            })
            .map(|c| c.state);
        match found {
            None => {
                self.respond_stateless(req, src, 481, "Call/Transaction Does Not Exist", None)
                    .await
            }
            Some(CallState::Incoming) => {
                self.respond(req, src, 200, "OK").await;
                self.uas_final_error(&call_id, 487, "Request Terminated")
                    .await;
                info!(call = %call_id, "SIP incoming call cancelled");
                self.emit(UaEvent::Cancelled { call: call_id }).await;
            }
            Some(_) => self.respond(req, src, 200, "OK").await,
        }
    }
}
