//! Dialogs (RFC 3261 §12): a call's dialog state ([`Call`], [`CallState`]), matching a
//! request to its dialog by Call-ID and tags, route sets (Record-Route checked, copied into
//! our responses, the first hop found), requests inside a dialog, BYE in both directions, and
//! what a call does when its deadline passes.

use std::net::{IpAddr, SocketAddr};

use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::msg::{Message, NameAddr};
use super::transaction::{ClientTx, Retx, T2, TIMEOUT, TxKind, new_branch};
use super::ua::{CallId, Core, UaEvent};

/// Most Record-Route entries a dialog keeps; an INVITE with more is refused (400).
pub(super) const MAX_ROUTES: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Uac,
    Uas,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallState {
    /// UAC: INVITE sent, nothing heard (Timer A/B running).
    Calling,
    /// UAC: a provisional response arrived.
    Proceeding,
    /// UAC: final error ACKed; absorbing retransmissions (Timer D).
    UacFailed,
    /// UAS: INVITE received, no final response yet.
    Incoming,
    /// UAS: 2xx sent, waiting for the ACK (Timer G/H).
    UasAnswered,
    /// UAS: final error sent, waiting for the ACK.
    UasRejected,
    /// Dialog confirmed (either role).
    Confirmed,
    /// Our BYE is in flight.
    Terminating,
}

pub(super) struct Call {
    pub(super) id: CallId,
    pub(super) role: Role,
    pub(super) state: CallState,
    /// Our side of the dialog (From for UAC, To for UAS), with our tag.
    pub(super) local: NameAddr,
    /// The peer's side, with its tag once known.
    pub(super) remote: NameAddr,
    pub(super) local_cseq: u32,
    pub(super) remote_target: String,
    pub(super) route_set: Vec<String>,
    /// Where the INVITE went (UAC: the server) or came from (UAS): its transaction's peer.
    pub(super) dest: SocketAddr,
    /// Where in-dialog requests go: the first route's address, else `dest`.
    pub(super) hop: SocketAddr,
    /// The INVITE (ours for UAC — the last one sent —, the peer's for UAS).
    pub(super) invite: Message,
    pub(super) invite_branch: String,
    pub(super) invite_cseq: u32,
    pub(super) auth_tried: bool,
    pub(super) cancel_requested: bool,
    pub(super) retx: Option<Retx>,
    pub(super) deadline: Option<Instant>,
    /// ACK sent for the 2xx, resent when the 2xx is retransmitted.
    pub(super) ack: Option<Vec<u8>>,
    /// UAS: the last response to the INVITE, resent on INVITE retransmissions.
    pub(super) last_response: Option<Vec<u8>>,
    /// The SDP we last sent (offer or answer); reused for re-INVITEs.
    pub(super) local_sdp: Option<String>,
    /// UAS: the last re-INVITE (branch, CSeq) and our answer to it.
    pub(super) reinvite: Option<(String, u32, Vec<u8>)>,
    /// UAS: BYE requested while the ACK for our 2xx was outstanding.
    pub(super) bye_after_ack: bool,
}

/// Whether a request's dialog identifiers (Call-ID aside) are this call's: the To tag is ours,
/// the From tag the peer's (RFC 3261 §12.2.2).
pub(super) fn same_dialog(call: &Call, req: &Message) -> bool {
    let to_tag = req.to_hdr().ok().and_then(|t| t.tag().map(str::to_string));
    let from_tag = req
        .from_hdr()
        .ok()
        .and_then(|f| f.tag().map(str::to_string));
    to_tag.is_some()
        && to_tag.as_deref() == call.local.tag()
        && from_tag.as_deref() == call.remote.tag()
}

impl Core {
    /// A request inside `call`'s dialog (loose routing; strict routing when the first route
    /// lacks `;lr`).
    pub(super) fn dialog_request(
        &self,
        call: &Call,
        method: &str,
        cseq: u32,
        branch: &str,
    ) -> Message {
        let mut uri = call.remote_target.clone();
        let mut routes = call.route_set.clone();
        if let Some(first) = routes.first() {
            let loose = NameAddr::parse(first)
                .map(|n| n.uri.param("lr").is_some())
                .unwrap_or(true);
            if !loose {
                let first = routes.remove(0);
                routes.push(format!("<{uri}>"));
                uri = NameAddr::parse(&first)
                    .map(|n| n.uri.to_string())
                    .unwrap_or(first);
            }
        }
        let mut m = self.new_request(
            method,
            &uri,
            branch,
            &call.local,
            &call.remote,
            &call.id,
            cseq,
        );
        for r in &routes {
            m.push("Route", r);
        }
        m
    }

    pub(super) async fn bye(&mut self, id: &str) {
        let Some(call) = self.calls.get_mut(id) else {
            debug!(call = %id, "bye: no such call");
            return;
        };
        match call.state {
            CallState::Confirmed => self.send_bye(id).await,
            CallState::UasAnswered => call.bye_after_ack = true,
            CallState::Calling | CallState::Proceeding => self.cancel(id).await,
            CallState::Incoming => {
                self.uas_final_error(id, 480, "Temporarily Unavailable")
                    .await
            }
            _ => debug!(call = %id, "bye: call already ending"),
        }
    }

    pub(super) async fn send_bye(&mut self, id: &str) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        call.local_cseq += 1;
        call.state = CallState::Terminating;
        call.retx = None;
        call.deadline = None;
        let cseq = call.local_cseq;
        let dest = call.hop;
        let branch = new_branch();
        let Some(call) = self.calls.get(id) else {
            return;
        };
        let m = self.dialog_request(call, "BYE", cseq, &branch);
        let bytes = self.send_msg(&m, dest).await;
        info!(call = %id, "SIP BYE sent");
        self.push_tx(ClientTx {
            branch,
            method: "BYE",
            call: Some(id.to_string()),
            kind: TxKind::Bye,
            retx: Retx::new(bytes, dest, T2),
            deadline: Instant::now() + TIMEOUT,
        });
    }

    pub(super) async fn on_call_deadline(&mut self, id: &str) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        call.deadline = None;
        match call.state {
            CallState::Calling => {
                // Timer B: nothing answered our INVITE.
                self.calls.remove(id);
                warn!(call = %id, "SIP INVITE timed out");
                self.emit(UaEvent::Failed {
                    call: id.to_string(),
                    code: 408,
                    reason: "Request Timeout".into(),
                })
                .await;
            }
            CallState::Proceeding => {
                // CANCEL sent but the INVITE never completed.
                self.calls.remove(id);
                self.emit(UaEvent::Failed {
                    call: id.to_string(),
                    code: 487,
                    reason: "Request Terminated".into(),
                })
                .await;
            }
            CallState::UacFailed | CallState::UasRejected => {
                self.calls.remove(id);
            }
            CallState::UasAnswered => {
                // Timer H: our 2xx was never ACKed; end the dialog (RFC 3261 §13.3.1.4).
                let asked = call.bye_after_ack;
                warn!(call = %id, "no ACK for our 2xx; sending BYE");
                call.state = CallState::Confirmed;
                self.send_bye(id).await;
                if !asked {
                    self.emit(UaEvent::Ended {
                        call: id.to_string(),
                    })
                    .await;
                }
            }
            CallState::Confirmed => {
                // Our 2xx to a re-INVITE was never ACKed; stop retransmitting.
                call.retx = None;
            }
            CallState::Incoming | CallState::Terminating => {}
        }
    }

    /// Whether `req` belongs to one of our dialogs (Call-ID and both tags).
    pub(super) fn in_known_dialog(&self, req: &Message) -> bool {
        req.call_id()
            .ok()
            .and_then(|c| self.calls.get(c))
            .is_some_and(|c| same_dialog(c, req))
    }

    pub(super) async fn on_bye(&mut self, req: &Message, src: SocketAddr) {
        let Ok(call_id) = req.call_id() else {
            return;
        };
        let call_id = call_id.to_string();
        let state = self
            .calls
            .get(&call_id)
            .filter(|c| same_dialog(c, req))
            .map(|c| c.state);
        match state {
            Some(CallState::Confirmed) | Some(CallState::UasAnswered) => {
                self.respond(req, src, 200, "OK").await;
                self.calls.remove(&call_id);
                info!(call = %call_id, "SIP call ended by peer");
                self.emit(UaEvent::Ended { call: call_id }).await;
            }
            Some(CallState::Terminating) => {
                // Crossing BYEs: answer; our own BYE transaction finishes on its own.
                self.respond(req, src, 200, "OK").await;
            }
            Some(CallState::Incoming) => {
                self.respond(req, src, 200, "OK").await;
                self.uas_final_error(&call_id, 487, "Request Terminated")
                    .await;
                self.emit(UaEvent::Cancelled { call: call_id }).await;
            }
            _ => {
                self.respond_stateless(req, src, 481, "Call/Transaction Does Not Exist", None)
                    .await
            }
        }
    }
}

/// The Record-Route entries of `m` in order, at most [`MAX_ROUTES`], each a name-addr with a
/// SIP URI (RFC 3261 §20.30); Err with a reason phrase otherwise.
pub(super) fn record_route(m: &Message) -> Result<Vec<String>, &'static str> {
    let entries = m.get_all("Record-Route");
    if entries.len() > MAX_ROUTES {
        return Err("Too Many Record-Route Entries");
    }
    entries
        .into_iter()
        .map(|e| {
            let sip = NameAddr::parse(e).is_ok_and(|n| {
                n.uri.scheme.eq_ignore_ascii_case("sip")
                    || n.uri.scheme.eq_ignore_ascii_case("sips")
            });
            if sip && e.contains('<') && !e.contains(|c: char| c.is_control()) {
                Ok(e.to_string())
            } else {
                Err("Bad Record-Route")
            }
        })
        .collect()
}

/// The address of the first route when it names an IP address (and a usable port); hosts by
/// name are not resolved.
pub(super) fn route_hop(routes: &[String]) -> Option<SocketAddr> {
    let uri = NameAddr::parse(routes.first()?).ok()?.uri;
    let ip: IpAddr = uri
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    let port = uri.port.unwrap_or(5060);
    (!ip.is_unspecified() && port != 0).then_some(SocketAddr::new(ip, port))
}

/// Copies the request's Record-Route header lines, verbatim and in order, into a response that
/// creates the dialog (RFC 3261 §12.1.1), so the caller routes its ACK and BYE the same way.
pub(super) fn copy_record_route(req: &Message, resp: &mut Message) {
    for (n, v) in &req.headers {
        if super::msg::same_header(n, "Record-Route") {
            resp.push("Record-Route", v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_route_is_checked_and_the_first_hop_found() {
        let msg = |rr: &str| {
            Message::parse(format!("SIP/2.0 200 OK\r\n{rr}Content-Length: 0\r\n\r\n").as_bytes())
                .unwrap()
        };
        let m = msg(
            "Record-Route: <sip:127.0.0.5:5070;lr>, <sip:p2;lr>\r\nRecord-Route: <sip:[::1];lr>\r\n",
        );
        let rr = record_route(&m).unwrap();
        assert_eq!(
            rr,
            ["<sip:127.0.0.5:5070;lr>", "<sip:p2;lr>", "<sip:[::1];lr>"]
        );
        assert_eq!(route_hop(&rr), Some("127.0.0.5:5070".parse().unwrap()));
        assert_eq!(route_hop(&rr[2..]), Some("[::1]:5060".parse().unwrap()));
        assert_eq!(route_hop(&rr[1..2]), None, "names are not resolved");
        assert_eq!(route_hop(&["<sip:0.0.0.0;lr>".into()]), None);
        assert_eq!(route_hop(&["<sip:127.0.0.5:0;lr>".into()]), None);
        assert_eq!(route_hop(&[]), None);
        assert_eq!(record_route(&msg("")).unwrap(), Vec::<String>::new());
        for bad in [
            "<sip:",
            "sip:127.0.0.5;lr",
            "<tel:+1>",
            "<mailto:a@b>",
            "<sip:a\x01b;lr>",
        ] {
            assert!(
                record_route(&msg(&format!("Record-Route: {bad}\r\n"))).is_err(),
                "{bad}"
            );
        }
        let many: String = (0..=MAX_ROUTES)
            .map(|i| format!("Record-Route: <sip:h{i};lr>\r\n"))
            .collect();
        assert!(record_route(&msg(&many)).is_err());
        let enough: String = (0..MAX_ROUTES)
            .map(|i| format!("Record-Route: <sip:h{i};lr>\r\n"))
            .collect();
        assert_eq!(record_route(&msg(&enough)).unwrap().len(), MAX_ROUTES);
    }
}
