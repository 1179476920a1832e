//! One call's life: the GSM leg through the slot's channel, the SIP leg through the user
//! agent, the media through a bridge, and at the end the `call` record (with the missed-call
//! SMS queued in the same transaction).
//!
//! This file holds the `Call` and what every direction shares (the modem, the registry, the
//! talk loop, settling a CANCEL); `gsm_in` (incoming GSM calls and their rules) and `outbound`
//! (SIP callers, `cmd/dial`) drive the directions, `media` the RTP port and the bridge, `record`
//! the end of a call.

mod gsm_in;
mod media;
mod outbound;
mod record;
#[cfg(test)]
mod tests;

pub use gsm_in::spawn_gsm_in;
pub use outbound::{spawn_dial, spawn_sip_in};

use std::path::PathBuf;
use std::time::Duration;

use gsmgw_drivers::at::Urc;
use gsmgw_drivers::modem::{CallInfo, Dialect, VoiceWhen};
use gsmgw_drivers::sip::sdp;
use gsmgw_drivers::sip::ua::UaEvent;
use gsmgw_drivers::voice::bridge::{Bridge, BridgeEvent, BridgeStats};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};

use super::causes::Cause;
use super::{CallInput, Registry, Shared};
use crate::clock::now_rfc3339;
use crate::sms_out::{ChannelRequest, VoiceOp};
use crate::store::EventClass;

/// The log target of every part of a call: its lines read as they did when it was one file.
const LOG_TARGET: &str = module_path!();

/// How often the call list is read while a GSM leg is being set up.
const SETUP_POLL: Duration = Duration::from_millis(500);
/// How often the call list is read during a call (a lost NO CARRIER must not leave a call up).
const TALK_POLL: Duration = Duration::from_secs(5);
/// No RING for this long while an incoming call rings: check whether the caller gave up.
const RING_SILENCE: Duration = Duration::from_secs(8);
/// How long a cancelled INVITE's final response (the 487) is waited for: a live PBX answers a
/// CANCEL at once, and retransmits a lost 487 within 0.5 + 1 + 2 s (RFC 3261 Timer G).
const CANCEL_SETTLE: Duration = Duration::from_secs(5);

struct Call {
    sh: Shared,
    id: String,
    direction: &'static str,
    slot: Option<u16>,
    imsi: String,
    dialect: Dialect,
    from: String,
    to: String,
    sip_peer: Option<String>,
    sip_call: Option<String>,
    started_at: String,
    answered: Option<(String, Instant)>,
    cause: Cause,
    sip_code: Option<u16>,
    record: bool,
    recording: Option<PathBuf>,
    rx: mpsc::Receiver<CallInput>,
    tx: mpsc::Sender<CallInput>,
    rtp_sock: Option<std::net::UdpSocket>,
    bridge: Option<Bridge>,
    bridge_events: Option<mpsc::Receiver<BridgeEvent>>,
    stats: Option<BridgeStats>,
    gsm_up: bool,
    published_state: Option<&'static str>,
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl Call {
    fn new(sh: Shared, direction: &'static str) -> Call {
        let (tx, rx) = mpsc::channel(64);
        Call {
            sh,
            id: new_id(),
            direction,
            slot: None,
            imsi: String::new(),
            dialect: Dialect::Generic,
            from: String::new(),
            to: String::new(),
            sip_peer: None,
            sip_call: None,
            started_at: now_rfc3339(),
            answered: None,
            cause: Cause::Failed,
            sip_code: None,
            record: false,
            recording: None,
            rx,
            tx,
            rtp_sock: None,
            bridge: None,
            bridge_events: None,
            stats: None,
            gsm_up: false,
            published_state: None,
        }
    }

    /// Shows the call in the console's `calls` list and, on a change of state, tells the
    /// central server (`call-state`, telemetry) so it sees calls while they happen.
    async fn live(&mut self, state: &'static str) {
        if let Ok(mut l) = self.sh.live.lock() {
            let since = l
                .get(&self.id)
                .map(|c| c.since)
                .unwrap_or_else(std::time::Instant::now);
            l.insert(
                self.id.clone(),
                super::CallBrief {
                    direction: self.direction,
                    slot: self.slot,
                    from: self.from.clone(),
                    to: self.to.clone(),
                    state,
                    since,
                },
            );
        }
        if self.published_state == Some(state) {
            return;
        }
        self.published_state = Some(state);
        let body = crate::proto::events::CallState {
            call_id: &self.id,
            direction: self.direction,
            slot: self.slot,
            from: &self.from,
            to: &self.to,
            sip_peer: self.sip_peer.as_deref(),
            state,
        };
        let body = crate::proto::EventBody::body(&body);
        if let Err(e) = self
            .sh
            .events
            .emit(
                crate::proto::EventType::CallState,
                EventClass::Telemetry,
                body,
            )
            .await
        {
            tracing::warn!(call = %self.id, error = %e, "call-state event not stored");
        }
    }

    fn bind_slot(&mut self, slot: u16) {
        self.slot = Some(slot);
        if let Some(s) = self.sh.slot(slot) {
            let snap = s.snapshot.borrow();
            self.imsi = snap.identity.imsi.clone();
            // Not identified yet (no dialect known): the generic voice set-up, as before.
            self.dialect = snap.dialect.unwrap_or_default();
        }
    }

    async fn modem(&self, op: VoiceOp) -> Result<Vec<CallInfo>, String> {
        let slot = self.slot.ok_or("no slot")?;
        let requests = self
            .sh
            .slot(slot)
            .map(|s| s.requests.clone())
            .ok_or("unknown slot")?;
        let (reply, rx) = oneshot::channel();
        requests
            .send(ChannelRequest::Voice { op, reply })
            .await
            .map_err(|_| "the modem's channel stopped".to_string())?;
        rx.await
            .map_err(|_| "the modem's channel dropped the request".to_string())?
    }

    async fn register_leg(&self, sip_call: &str) {
        let _ = self
            .sh
            .registry
            .send(Registry::SipLeg(sip_call.to_string(), self.tx.clone()))
            .await;
    }

    async fn register_slot(&self, slot: u16) {
        let _ = self
            .sh
            .registry
            .send(Registry::Slot(slot, self.id.clone(), self.tx.clone()))
            .await;
    }

    fn voice_when(&self) -> Option<VoiceWhen> {
        let v = self.dialect.spec().voice;
        v.enable.map(|_| v.when)
    }

    async fn voice_on(&self, stage: VoiceWhen) {
        if self.voice_when() == Some(stage) {
            if let Err(e) = self.modem(VoiceOp::VoiceOn).await {
                tracing::warn!(call = %self.id, error = %e, "voice port not switched on");
            }
        }
    }

    async fn mark_answered(&mut self) {
        if self.answered.is_none() {
            self.answered = Some((now_rfc3339(), Instant::now()));
        }
        self.live("talking").await;
    }

    async fn hang_up_gsm(&mut self) {
        if self.slot.is_some() {
            if let Err(e) = self.modem(VoiceOp::HangUp).await {
                tracing::warn!(call = %self.id, error = %e, "hang-up failed");
            }
        }
    }

    /// Both legs up: shuttle DTMF, watch for either side hanging up.
    async fn talk(&mut self) {
        let rtp_timeout = Duration::from_secs(u64::from(self.sh.voice.rtp_timeout_secs));
        let every = if rtp_timeout.is_zero() {
            TALK_POLL
        } else {
            (rtp_timeout / 3).clamp(Duration::from_secs(1), TALK_POLL)
        };
        let mut poll = tokio::time::interval(every);
        poll.tick().await;
        let mut bridge_events = self.bridge_events.take();
        let mut list_failures = 0u32;
        let (mut rtp_seen, mut rtp_since) = (0u64, Instant::now());
        let mut on_hold = false;
        loop {
            tokio::select! {
                input = self.rx.recv() => match input {
                    None => break,
                    Some(CallInput::Gsm(Urc::CallEnded { .. } | Urc::CallCleared { .. })) => {
                        self.cause = Cause::Normal;
                        self.bye();
                        break;
                    }
                    Some(CallInput::Gsm(Urc::Dtmf { digit })) => {
                        if let Some(b) = &self.bridge {
                            b.send_dtmf(digit);
                        }
                    }
                    Some(CallInput::Gsm(_)) => {}
                    Some(CallInput::Sip(UaEvent::Ended { .. })) => {
                        self.cause = Cause::Normal;
                        self.hang_up_gsm().await;
                        break;
                    }
                    Some(CallInput::Sip(UaEvent::Reinvite { held, sdp, .. })) => {
                        // Hold: the PBX may send no RTP (no music on hold) — not a dead call.
                        on_hold = held;
                        rtp_since = Instant::now();
                        if !held {
                            let remote = sdp
                                .as_deref()
                                .and_then(|s| sdp::Sdp::parse(s).ok())
                                .and_then(|s| s.audio_addr().ok());
                            if let (Some(b), Some(r)) = (&self.bridge, remote) {
                                b.set_remote(r);
                            }
                        }
                        self.live(if held { "held" } else { "talking" }).await;
                    }
                    Some(CallInput::Sip(_)) => {}
                    Some(CallInput::Hangup) => {
                        self.cause = Cause::Normal;
                        self.bye();
                        self.hang_up_gsm().await;
                        break;
                    }
                },
                ev = async { match bridge_events.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => match ev {
                    Some(BridgeEvent::Dtmf(d)) => {
                        if let Err(e) = self.modem(VoiceOp::Dtmf(d)).await {
                            tracing::warn!(call = %self.id, digit = %d, error = %e, "DTMF not sent to the modem");
                        }
                    }
                    Some(BridgeEvent::PortError(e)) => {
                        tracing::warn!(call = %self.id, error = %e, "voice port failed");
                    }
                    Some(_) => {}
                    None => bridge_events = None,
                },
                _ = poll.tick() => {
                    if !rtp_timeout.is_zero() && !on_hold {
                        let received = match &self.bridge {
                            Some(b) => b.stats().await.map(|s| s.rtp_received).unwrap_or(rtp_seen),
                            None => rtp_seen,
                        };
                        if received != rtp_seen {
                            (rtp_seen, rtp_since) = (received, Instant::now());
                        } else if rtp_since.elapsed() >= rtp_timeout {
                            tracing::warn!(call = %self.id, secs = rtp_timeout.as_secs(), "no RTP from the SIP side: call ended");
                            self.cause = Cause::RtpTimeout;
                            self.bye();
                            self.hang_up_gsm().await;
                            break;
                        }
                    }
                    match self.modem(VoiceOp::List).await {
                    Ok(calls) => {
                        list_failures = 0;
                        if calls.is_empty() {
                            tracing::info!(call = %self.id, "the modem lists no call: ended");
                            self.cause = Cause::Normal;
                            self.bye();
                            break;
                        }
                    }
                    Err(e) => {
                        // The modem restarted or vanished: its call is gone with it.
                        list_failures += 1;
                        if list_failures >= 3 {
                            tracing::warn!(call = %self.id, error = %e, "the modem is not answering: call ended");
                            self.cause = Cause::Failed;
                            self.bye();
                            break;
                        }
                    }
                    }
                }
            }
        }
    }

    fn bye(&self) {
        if let (Some(ua), Some(c)) = (&self.sh.ua, &self.sip_call) {
            ua.bye(c);
        }
    }

    /// After cancelling our INVITE: waits (bounded) for its final response so the record has
    /// its SIP code (487, or whatever the PBX sent); a 2xx that crossed the CANCEL gets a BYE.
    async fn settle_cancel(&mut self) {
        let until = Instant::now() + CANCEL_SETTLE;
        loop {
            tokio::select! {
                _ = sleep_until(until) => {
                    tracing::debug!(call = %self.id, "no final response to the cancelled INVITE");
                    return;
                }
                input = self.rx.recv() => match input {
                    Some(CallInput::Sip(UaEvent::Failed { code, .. })) => {
                        self.sip_code = Some(code);
                        return;
                    }
                    Some(CallInput::Sip(UaEvent::Answered { .. })) => {
                        self.sip_code = Some(200);
                        self.bye();
                        return;
                    }
                    // Shutting down: no more waiting.
                    None | Some(CallInput::Hangup) => return,
                    Some(_) => {}
                },
            }
        }
    }
}
