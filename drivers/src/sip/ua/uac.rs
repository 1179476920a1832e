//! The client call side: placing a call (INVITE, one digest round), CANCEL, and the INVITE
//! client transaction's responses (provisional, 2xx with its ACK, final errors).

use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{ALLOW, CallId, Core, UaEvent, new_tag, sdp_body, uuid_hex};
use crate::sip::dialog::{Call, CallState, Role, record_route, route_hop};
use crate::sip::digest::Challenge;
use crate::sip::msg::{Message, NameAddr, Uri};
use crate::sip::registration::pick_challenge;
use crate::sip::transaction::{ClientTx, Retx, T2, TIMEOUT, TxKind, new_branch, non2xx_ack};

impl Core {
    pub(in crate::sip) async fn start_invite(
        &mut self,
        target: Uri,
        from_user: &str,
        display: Option<&str>,
        sdp: String,
    ) -> CallId {
        let id = format!("{}@{}", uuid_hex(), self.contact.ip());
        let mut local = NameAddr::new(display, Uri::sip(Some(from_user), &self.cfg.domain, None));
        local.set_param("tag", Some(&new_tag()));
        let remote = NameAddr::new(None, target.clone());
        let branch = new_branch();
        let uri = target.to_string();
        let mut m = self.new_request("INVITE", &uri, &branch, &local, &remote, &id, 1);
        m.push("Contact", &self.contact_hdr());
        m.push("Allow", ALLOW);
        m.push("Content-Type", "application/sdp");
        m.body = sdp.clone().into_bytes();
        let dest = self.cfg.server;
        let bytes = self.send_msg(&m, dest).await;
        let call = Call {
            id: id.clone(),
            role: Role::Uac,
            state: CallState::Calling,
            local,
            remote,
            local_cseq: 1,
            remote_target: uri,
            route_set: Vec::new(),
            dest,
            hop: dest,
            invite: m,
            invite_branch: branch,
            invite_cseq: 1,
            auth_tried: false,
            cancel_requested: false,
            retx: Some(Retx::new(bytes, dest, Duration::MAX)),
            deadline: Some(Instant::now() + TIMEOUT),
            ack: None,
            last_response: None,
            local_sdp: Some(sdp),
            reinvite: None,
            bye_after_ack: false,
        };
        info!(call = %id, "SIP INVITE sent");
        self.calls.insert(id.clone(), call);
        self.arm_call(&id);
        id
    }

    pub(in crate::sip) async fn cancel(&mut self, id: &str) {
        let Some(call) = self.calls.get_mut(id) else {
            debug!(call = %id, "cancel: no such call");
            return;
        };
        if call.role != Role::Uac {
            debug!(call = %id, "cancel: not an outgoing call");
            return;
        }
        match call.state {
            CallState::Calling => {
                // RFC 3261 §9.1: no CANCEL before a provisional response; sent on the first one.
                call.cancel_requested = true;
            }
            CallState::Proceeding if !call.cancel_requested => {
                call.cancel_requested = true;
                self.send_cancel(id).await;
            }
            _ => debug!(call = %id, "cancel: call is past its answer"),
        }
    }

    pub(in crate::sip) async fn send_cancel(&mut self, id: &str) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let inv = &call.invite;
        let mut m = Message::request("CANCEL", inv.uri().unwrap_or_default());
        for (n, v) in &inv.headers {
            let keep = ["Via", "From", "To", "Call-ID", "Route", "Max-Forwards"]
                .iter()
                .any(|h| crate::sip::msg::same_header(n, h));
            if keep {
                m.push(n, v);
            }
        }
        m.set("CSeq", &format!("{} CANCEL", call.invite_cseq));
        m.push("User-Agent", &self.cfg.user_agent);
        // No final answer within 64·T1 after CANCEL ends the INVITE transaction (RFC 3261 §9.1).
        call.deadline = Some(Instant::now() + TIMEOUT);
        let branch = call.invite_branch.clone();
        let dest = call.dest;
        self.arm_call(id);
        let bytes = self.send_msg(&m, dest).await;
        self.push_tx(ClientTx {
            branch,
            method: "CANCEL",
            call: Some(id.to_string()),
            kind: TxKind::Cancel,
            retx: Retx::new(bytes, dest, T2),
            deadline: Instant::now() + TIMEOUT,
        });
    }

    pub(in crate::sip) async fn on_invite_response(&mut self, resp: Message, branch: &str) {
        let (Ok(call_id), Some(code)) = (resp.call_id(), resp.code()) else {
            return;
        };
        let call_id = call_id.to_string();
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        if call.role != Role::Uac {
            return;
        }
        let current = call.invite_branch == branch;
        match code {
            100..=199 => {
                if !current || !matches!(call.state, CallState::Calling | CallState::Proceeding) {
                    return;
                }
                let first = call.state == CallState::Calling;
                call.state = CallState::Proceeding;
                call.retx = None;
                if first && !call.cancel_requested {
                    call.deadline = None;
                }
                let cancel_now = first && call.cancel_requested;
                if code > 100 {
                    let sdp = sdp_body(&resp);
                    self.emit(UaEvent::Progress {
                        call: call_id.clone(),
                        code,
                        sdp,
                    })
                    .await;
                }
                if cancel_now {
                    self.send_cancel(&call_id).await;
                }
            }
            200..=299 => match call.state {
                CallState::Calling | CallState::Proceeding if current => {
                    if let Ok(to) = resp.to_hdr() {
                        call.remote = to;
                    }
                    if let Some(t) = resp
                        .get_all("Contact")
                        .first()
                        .and_then(|c| NameAddr::parse(c).ok())
                    {
                        call.remote_target = t.uri.to_string();
                    }
                    call.route_set = match record_route(&resp) {
                        Ok(mut r) => {
                            r.reverse();
                            r
                        }
                        Err(why) => {
                            // The dialog exists at the peer all the same: route as if there
                            // were no proxies (through the server).
                            warn!(call = %call_id, why, "2xx Record-Route ignored");
                            Vec::new()
                        }
                    };
                    call.hop = route_hop(&call.route_set).unwrap_or(call.dest);
                    call.state = CallState::Confirmed;
                    call.retx = None;
                    call.deadline = None;
                    let cancelled = call.cancel_requested;
                    let cseq = call.invite_cseq;
                    let dest = call.hop;
                    let Some(call) = self.calls.get(&call_id) else {
                        return;
                    };
                    let ack = self.dialog_request(call, "ACK", cseq, &new_branch());
                    let bytes = self.send_msg(&ack, dest).await;
                    if let Some(call) = self.calls.get_mut(&call_id) {
                        call.ack = Some(bytes);
                    }
                    if cancelled {
                        // Answered while our CANCEL was under way: hang up at once.
                        self.send_bye(&call_id).await;
                        self.emit(UaEvent::Failed {
                            call: call_id,
                            code: 487,
                            reason: "Request Terminated (answered during CANCEL; BYE sent)".into(),
                        })
                        .await;
                    } else {
                        info!(call = %call_id, "SIP call answered by peer");
                        self.emit(UaEvent::Answered {
                            call: call_id,
                            sdp: sdp_body(&resp),
                        })
                        .await;
                    }
                }
                _ => {
                    // A retransmitted 2xx: repeat our ACK.
                    if let Some(bytes) = call.ack.clone() {
                        let dest = call.hop;
                        self.send(&bytes, dest).await;
                    }
                }
            },
            _ => {
                // Final error: ACK it within its own transaction (same branch).
                let ack = non2xx_ack(&call.invite, &resp, &self.cfg.user_agent);
                let dest = call.dest;
                let pending = matches!(call.state, CallState::Calling | CallState::Proceeding);
                let auth_tried = call.auth_tried;
                self.send_msg(&ack, dest).await;
                if !current || !pending {
                    return;
                }
                if (code == 401 || code == 407) && !auth_tried {
                    if let Some(ch) = pick_challenge(&resp, code) {
                        if let Some(call) = self.calls.get_mut(&call_id) {
                            call.auth_tried = true;
                        }
                        self.resend_invite_with_auth(&call_id, &ch, code == 407)
                            .await;
                        return;
                    }
                }
                let Some(call) = self.calls.get_mut(&call_id) else {
                    return;
                };
                call.state = CallState::UacFailed;
                call.retx = None;
                call.deadline = Some(Instant::now() + TIMEOUT); // Timer D
                let reason = resp.reason().unwrap_or("").to_string();
                self.arm_call(&call_id);
                info!(call = %call_id, code, "SIP call failed");
                self.emit(UaEvent::Failed {
                    call: call_id,
                    code,
                    reason,
                })
                .await;
            }
        }
    }

    pub(in crate::sip) async fn resend_invite_with_auth(
        &mut self,
        call_id: &str,
        ch: &Challenge,
        proxy: bool,
    ) {
        let branch = new_branch();
        let via = self.via(&branch);
        let user = self
            .cfg
            .auth_username
            .clone()
            .unwrap_or_else(|| self.cfg.username.clone());
        let password = self.cfg.password.clone();
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.local_cseq += 1;
        call.invite_cseq = call.local_cseq;
        call.invite_branch = branch;
        let mut m = call.invite.clone();
        let uri = m.uri().unwrap_or_default().to_string();
        m.set("Via", &via);
        m.set("CSeq", &format!("{} INVITE", call.invite_cseq));
        let value = ch.authorization(&user, &password, "INVITE", &uri, 1, &new_tag());
        m.set(
            if proxy {
                "Proxy-Authorization"
            } else {
                "Authorization"
            },
            &value,
        );
        let dest = call.dest;
        let bytes = m.to_bytes();
        call.invite = m;
        call.state = CallState::Calling;
        call.retx = Some(Retx::new(bytes.clone(), dest, Duration::MAX));
        call.deadline = Some(Instant::now() + TIMEOUT);
        self.arm_call(call_id);
        debug!(call = %call_id, "INVITE re-sent with credentials");
        self.send(&bytes, dest).await;
    }
}
