//! One call's life: the GSM leg through the slot's channel, the SIP leg through the user
//! agent, the media through a bridge, and at the end the `call` record (with the missed-call
//! SMS queued in the same transaction).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use gsmgw_drivers::at::Urc;
use gsmgw_drivers::modem::{CallInfo, CallStat, Dialect, VoiceWhen};
use gsmgw_drivers::sip::sdp;
use gsmgw_drivers::sip::ua::UaEvent;
use gsmgw_drivers::voice::bridge::{Bridge, BridgeConfig, BridgeEvent, BridgeStats};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};

use super::causes::Cause;
use super::recordings;
use super::{CallInput, Registry, Shared};
use crate::clock::{now_ms, now_rfc3339};
use crate::commands::Origin;
use crate::config::VoiceRoute;
use crate::sms_out::{ChannelRequest, VoiceOp};
use crate::store::{EventClass, NewEvent};

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
        let body = json!({
            "call_id": self.id,
            "direction": self.direction,
            "slot": self.slot,
            "from": self.from,
            "to": self.to,
            "sip_peer": self.sip_peer,
            "state": state,
        });
        if let Err(e) = self
            .sh
            .events
            .emit("call-state", EventClass::Telemetry, body)
            .await
        {
            tracing::warn!(call = %self.id, error = %e, "call-state event not stored");
        }
    }

    fn bind_slot(&mut self, slot: u16) {
        self.slot = Some(slot);
        if let Some(s) = self.sh.slot(slot) {
            let snap = s.snapshot.borrow();
            self.imsi = snap.imsi.clone();
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

    /// Takes an RTP port from the range for this call's SDP.
    fn alloc_rtp(&mut self) -> Result<u16, String> {
        let sock = match self.sh.rtp.lock() {
            Ok(mut p) => p.bind(self.sh.media_ip)?,
            Err(_) => return Err("RTP port allocator poisoned".into()),
        };
        let port = sock.local_addr().map_err(|e| e.to_string())?.port();
        self.rtp_sock = Some(sock);
        Ok(port)
    }

    /// Starts the media bridge on the allocated RTP socket (the voice port comes later).
    async fn start_bridge(
        &mut self,
        remote: Option<SocketAddr>,
        codec: gsmgw_drivers::voice::Codec,
        dtmf_pt: Option<u8>,
    ) -> Result<(), String> {
        let sock = self.rtp_sock.take().ok_or("no RTP port allocated")?;
        sock.set_nonblocking(true).map_err(|e| e.to_string())?;
        let sock = tokio::net::UdpSocket::from_std(sock).map_err(|e| e.to_string())?;
        let record = if self.record {
            let p = recordings::path_for(&self.sh.data_dir, &self.id);
            self.recording = Some(p.clone());
            Some(p)
        } else {
            None
        };
        let (bridge, events) = Bridge::start(BridgeConfig {
            voice_port: None,
            rtp: sock,
            remote,
            codec,
            dtmf_pt,
            record,
        })
        .await
        .map_err(|e| e.to_string())?;
        self.bridge = Some(bridge);
        self.bridge_events = Some(events);
        Ok(())
    }

    fn offer(&self, port: u16) -> String {
        sdp::offer(
            SocketAddr::new(self.sh.media_ip, port),
            &self.sh.codecs,
            now_ms().unsigned_abs(),
        )
    }

    /// The far end answered our offer: start the media with what it chose.
    async fn media_from_answer(&mut self, answer: Option<&str>) -> Result<(), String> {
        let neg = answer
            .ok_or("the answer has no SDP")
            .map_err(str::to_string)
            .and_then(|a| sdp::parse_answer(a, &self.sh.codecs).map_err(|e| e.to_string()))?;
        self.start_bridge(Some(neg.remote), neg.codec, neg.dtmf_pt)
            .await
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

    /// The GSM leg connected: route its audio into the bridge.
    async fn gsm_connected(&mut self) {
        self.gsm_up = true;
        self.voice_on(VoiceWhen::AfterDialOrAnswer).await;
        self.voice_on(VoiceWhen::AfterConnect).await;
        let port = self
            .slot
            .and_then(|s| self.sh.slot(s))
            .and_then(|s| s.voice_port.clone());
        if let Some(b) = &self.bridge {
            b.set_ringback(false);
            match port {
                Some(p) => b.attach_port(PathBuf::from(p)),
                None => tracing::warn!(call = %self.id, "no voice_port configured: no audio"),
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

    /// Waits for an outgoing GSM call to connect. Ok(()) when connected, Err(cause) else.
    async fn wait_gsm_connect(&mut self, sip_leg_is_caller: bool) -> Result<(), Cause> {
        let deadline =
            Instant::now() + Duration::from_secs(u64::from(self.sh.voice.ring_timeout_secs));
        let mut poll = tokio::time::interval(SETUP_POLL);
        let mut seen_call = false;
        let mut empty_polls = 0;
        let mut pending: Option<(Cause, Instant)> = None;
        loop {
            let pending_at = pending
                .map(|p| p.1)
                .unwrap_or(deadline + Duration::from_secs(3600));
            tokio::select! {
                _ = sleep_until(deadline) => {
                    self.hang_up_gsm().await;
                    return Err(Cause::NoAnswer);
                }
                _ = sleep_until(pending_at) => {
                    return Err(pending.map(|p| p.0).unwrap_or(Cause::Unreachable));
                }
                _ = poll.tick() => match self.modem(VoiceOp::List).await {
                    Ok(calls) => {
                        if calls.iter().any(|c| !c.incoming && c.stat == CallStat::Active) {
                            return Ok(());
                        }
                        if calls.iter().any(|c| !c.incoming) {
                            seen_call = true;
                            empty_polls = 0;
                        } else {
                            empty_polls += 1;
                            if (seen_call && empty_polls >= 2) || empty_polls >= 6 {
                                return Err(pending.map(|p| p.0).unwrap_or(Cause::Unreachable));
                            }
                        }
                    }
                    Err(e) => tracing::debug!(call = %self.id, error = %e, "call list failed"),
                },
                input = self.rx.recv() => match input {
                    None => return Err(Cause::Failed),
                    Some(CallInput::Gsm(Urc::CallConnected { .. })) => return Ok(()),
                    Some(CallInput::Gsm(Urc::CallEnded { reason })) => {
                        return Err(Cause::from_modem_word(&reason));
                    }
                    Some(CallInput::Gsm(Urc::CallCleared { cause })) => {
                        // A final word may follow with the real reason.
                        let c = cause.map(Cause::from_cc_cause).unwrap_or(Cause::Unreachable);
                        pending = Some((c, Instant::now() + Duration::from_millis(700)));
                    }
                    Some(CallInput::Gsm(_)) => {}
                    Some(CallInput::Sip(UaEvent::Cancelled { .. })) if sip_leg_is_caller => {
                        // The user agent answered the caller's CANCEL (or BYE) with 487.
                        self.sip_code = Some(487);
                        self.hang_up_gsm().await;
                        return Err(Cause::Cancelled);
                    }
                    Some(CallInput::Sip(UaEvent::Ended { .. })) => {
                        self.hang_up_gsm().await;
                        return Err(Cause::Cancelled);
                    }
                    Some(CallInput::Sip(_)) => {}
                    Some(CallInput::Hangup) => {
                        self.hang_up_gsm().await;
                        return Err(Cause::Cancelled);
                    }
                },
            }
        }
    }

    /// Dials `number` on the bound slot (voice port per dialect). Err(cause) when refused.
    async fn dial_gsm(&mut self, number: &str) -> Result<(), Cause> {
        self.voice_on(VoiceWhen::BeforeCall).await;
        match self.modem(VoiceOp::Dial(number.to_string())).await {
            Ok(_) => {}
            Err(e) => {
                tracing::info!(call = %self.id, error = %e, "dial refused");
                for w in ["BUSY", "NO ANSWER", "NO CARRIER", "NO DIALTONE"] {
                    if e.contains(w) {
                        return Err(Cause::from_modem_word(w));
                    }
                }
                return Err(Cause::Failed);
            }
        }
        Ok(())
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

    /// Stops the media, writes the record (and queues the missed-call SMS), frees the slot.
    async fn finish(mut self) {
        if let Ok(mut l) = self.sh.live.lock() {
            l.remove(&self.id);
        }
        if let Some(b) = self.bridge.take() {
            self.stats = Some(b.stop().await);
        }
        if self.gsm_up && self.slot.is_some() {
            let _ = self.modem(VoiceOp::VoiceOff).await;
        }
        let ended_at = now_rfc3339();
        let duration_s = self
            .answered
            .as_ref()
            .map(|(_, t)| t.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        if self.answered.is_none() {
            // Nothing was said: a recording of ringback only takes space.
            if let Some(p) = self.recording.take() {
                let _ = std::fs::remove_file(p);
            }
        }
        let recording = self.recording.as_ref().filter(|p| p.exists()).map(|p| {
            json!({
                "file": p.file_name().map(|f| f.to_string_lossy().to_string()),
                "bytes": std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            })
        });
        let media = self.stats.as_ref().map(|s| {
            json!({
                "rtp_sent": s.rtp_sent,
                "rtp_received": s.rtp_received,
                "rtp_lost": s.rtp_lost,
                "jitter_ms": (s.jitter_ms * 10.0).round() / 10.0,
                "frames_from_modem": s.frames_from_modem,
                "frames_to_modem": s.frames_to_modem,
            })
        });
        let body = json!({
            "call_id": self.id,
            "direction": self.direction,
            "slot": self.slot,
            "imsi": self.imsi,
            "from": self.from,
            "to": self.to,
            "sip_peer": self.sip_peer,
            "started_at": self.started_at,
            "answered_at": self.answered.as_ref().map(|a| a.0.clone()),
            "ended_at": ended_at,
            "duration_s": (duration_s * 10.0).round() / 10.0,
            "cause": self.cause.as_str(),
            "sip_code": self.sip_code,
            "recording": recording,
            "media": media,
        });
        tracing::info!(call = %self.id, direction = self.direction, cause = self.cause.as_str(), duration_s, "call ended");
        if let Some(slot) = self.slot {
            if self.direction != "gsm-in" && duration_s > 0.0 {
                let secs = duration_s.ceil() as i64;
                let _ = self
                    .sh
                    .events
                    .store()
                    .counter_add(&super::minutes_counter(&self.imsi), secs)
                    .await;
            }
            self.record_with_sms(slot, body).await;
            self.sh.release(slot);
        } else {
            self.emit(body).await;
        }
        let _ = self
            .sh
            .registry
            .send(Registry::Done {
                call_id: self.id.clone(),
            })
            .await;
    }

    async fn emit(&self, body: Value) {
        if let Err(e) = self
            .sh
            .events
            .emit("call", EventClass::Critical, body)
            .await
        {
            tracing::error!(call = %self.id, error = %e, "call record not stored");
        }
    }

    /// The call record, and for an incoming GSM call the missed-call SMS in the same commit.
    async fn record_with_sms(&self, slot: u16, body: Value) {
        let v = &self.sh.voice;
        let wants = self.direction == "gsm-in"
            && !v.missed_call_sms.is_empty()
            && (v.missed_call_sms_on == "any" || self.answered.is_none())
            && gsmgw_drivers::modem::dialable(&self.from);
        if !wants {
            return self.emit(body).await;
        }
        let store = self.sh.events.store();
        let key = format!("missed-sms:{}", self.from);
        let now = now_ms() / 1000;
        let last = store.counter_get(&key).await.unwrap_or(0);
        if last > 0 && now - last < i64::from(v.missed_call_sms_period_secs) {
            tracing::info!(call = %self.id, from = %gsmgw_drivers::redact::number(&self.from), "missed-call SMS already sent in this period");
            return self.emit(body).await;
        }
        let text = v
            .missed_call_sms
            .replace("{from}", &self.from)
            .replace("{slot}", &slot.to_string());
        // Through the command registry like any sms-send; the call record commits with it.
        let payload = json!({
            "request_id": format!("missed-call-{}", self.id),
            "to": self.from, "text": text, "slot": slot, "report": false,
        });
        let mut extra = serde_json::Map::new();
        extra.insert("reason".into(), json!("missed-call"));
        extra.insert("call_id".into(), json!(self.id));
        let origin = Origin::Internal {
            extra,
            event: Some(NewEvent::new("call", EventClass::Critical, body.clone())),
        };
        let out = self
            .sh
            .commands
            .submit("sms-send", payload.to_string().as_bytes(), origin)
            .await;
        match out.reply.error {
            None => {
                let _ = store.counter_add(&key, now - last).await;
                tracing::info!(call = %self.id, to = %gsmgw_drivers::redact::number(&self.from), "missed-call SMS queued");
            }
            Some(e) => {
                tracing::error!(call = %self.id, code = %e.code, error = %e.message, "missed-call SMS not queued");
                self.emit(body).await;
            }
        }
    }
}

/// An incoming GSM call on `slot` (first URC `first`): follows the slot's rule.
pub fn spawn_gsm_in(
    sh: Shared,
    slot: u16,
    route: Option<VoiceRoute>,
    first: Urc,
) -> (String, mpsc::Sender<CallInput>) {
    let mut c = Call::new(sh, "gsm-in");
    let id = c.id.clone();
    let tx = c.tx.clone();
    c.bind_slot(slot);
    c.sh.claim(slot, &id);
    c.to = c
        .slot
        .and_then(|s| c.sh.slot(s))
        .map(|s| format!("slot {}", s.slot))
        .unwrap_or_default();
    if let Urc::Clip { number } = &first {
        c.from = number.clone();
    }
    c.record = route.as_ref().is_some_and(|r| r.record);
    tokio::spawn(async move {
        gsm_in(&mut c, route).await;
        c.finish().await;
    });
    (id, tx)
}

async fn gsm_in(c: &mut Call, route: Option<VoiceRoute>) {
    // The caller's number follows RING in +CLIP.
    if c.from.is_empty() {
        let until = Instant::now() + Duration::from_millis(1500);
        loop {
            tokio::select! {
                _ = sleep_until(until) => break,
                i = c.rx.recv() => match i {
                    Some(CallInput::Gsm(Urc::Clip { number })) => { c.from = number; break; }
                    Some(CallInput::Gsm(Urc::CallEnded { .. } | Urc::CallCleared { .. })) | None => {
                        c.cause = Cause::Cancelled;
                        return;
                    }
                    _ => {}
                }
            }
        }
    }
    c.live("ringing").await;
    let action = route.as_ref().map(|r| r.action.as_str()).unwrap_or("");
    match action {
        "reject" => {
            c.hang_up_gsm().await;
            c.cause = Cause::Rejected;
        }
        "answer-hangup" => {
            c.voice_on(VoiceWhen::BeforeCall).await;
            match c.modem(VoiceOp::Answer).await {
                Ok(_) => {
                    c.mark_answered().await;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    c.hang_up_gsm().await;
                    c.cause = Cause::Normal;
                }
                Err(e) => {
                    tracing::warn!(call = %c.id, error = %e, "answer failed");
                    c.cause = Cause::Failed;
                }
            }
        }
        "forward" if c.sh.ua.is_some() => {
            let target = route.and_then(|r| r.target).unwrap_or_default();
            forward(c, &target).await;
        }
        _ => {
            // No rule (or no SIP): let it ring until the caller gives up.
            c.cause = wait_caller_gives_up(c).await;
        }
    }
}

/// Lets an incoming call ring; returns when the caller hung up (or a hangup was asked).
async fn wait_caller_gives_up(c: &mut Call) -> Cause {
    let mut last_ring = Instant::now();
    loop {
        tokio::select! {
            _ = sleep_until(last_ring + RING_SILENCE) => {
                match c.modem(VoiceOp::List).await {
                    Ok(calls) if !calls.iter().any(|x| x.incoming) => return Cause::Cancelled,
                    _ => last_ring = Instant::now(),
                }
            }
            i = c.rx.recv() => match i {
                Some(CallInput::Gsm(Urc::Ring | Urc::Clip { .. })) => last_ring = Instant::now(),
                Some(CallInput::Gsm(Urc::CallEnded { .. } | Urc::CallCleared { .. })) | None => {
                    return Cause::Cancelled;
                }
                Some(CallInput::Hangup) => {
                    c.hang_up_gsm().await;
                    return Cause::Rejected;
                }
                _ => {}
            }
        }
    }
}

async fn forward(c: &mut Call, target: &str) {
    let Some(ua) = c.sh.ua.clone() else {
        return;
    };
    c.sip_peer = Some(target.to_string());
    let port = match c.alloc_rtp() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(call = %c.id, error = %e, "no media for the call");
            c.hang_up_gsm().await;
            c.cause = Cause::Failed;
            return;
        }
    };
    let from_user = if c.from.is_empty() {
        "anonymous".to_string()
    } else {
        c.from.clone()
    };
    let sip_call = match ua.invite(target, &from_user, None, c.offer(port)).await {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(call = %c.id, error = %e, "INVITE failed");
            c.hang_up_gsm().await;
            c.cause = Cause::Failed;
            return;
        }
    };
    c.sip_call = Some(sip_call.clone());
    c.register_leg(&sip_call).await;
    let deadline = Instant::now() + Duration::from_secs(u64::from(c.sh.voice.ring_timeout_secs));
    let mut last_ring = Instant::now();
    loop {
        tokio::select! {
            _ = sleep_until(deadline) => {
                ua.cancel(&sip_call);
                c.hang_up_gsm().await;
                c.cause = Cause::NoAnswer;
                c.settle_cancel().await;
                return;
            }
            _ = sleep_until(last_ring + RING_SILENCE) => {
                match c.modem(VoiceOp::List).await {
                    Ok(calls) if !calls.iter().any(|x| x.incoming) => {
                        ua.cancel(&sip_call);
                        c.cause = Cause::Cancelled;
                        c.settle_cancel().await;
                        return;
                    }
                    _ => last_ring = Instant::now(),
                }
            }
            i = c.rx.recv() => match i {
                None => return,
                Some(CallInput::Gsm(Urc::Ring | Urc::Clip { .. })) => last_ring = Instant::now(),
                Some(CallInput::Gsm(Urc::CallEnded { .. } | Urc::CallCleared { .. })) => {
                    ua.cancel(&sip_call);
                    c.cause = Cause::Cancelled;
                    c.settle_cancel().await;
                    return;
                }
                Some(CallInput::Gsm(_)) => {}
                Some(CallInput::Sip(UaEvent::Answered { sdp: answer, .. })) => {
                    c.sip_code = Some(200);
                    if let Err(e) = c.media_from_answer(answer.as_deref()).await {
                        tracing::warn!(call = %c.id, error = %e, "unusable SDP answer");
                        c.bye();
                        c.hang_up_gsm().await;
                        c.cause = Cause::Failed;
                        return;
                    }
                    c.voice_on(VoiceWhen::BeforeCall).await;
                    if let Err(e) = c.modem(VoiceOp::Answer).await {
                        tracing::warn!(call = %c.id, error = %e, "the GSM caller is gone");
                        c.bye();
                        c.cause = Cause::Cancelled;
                        return;
                    }
                    c.mark_answered().await;
                    c.gsm_connected().await;
                    c.talk().await;
                    return;
                }
                Some(CallInput::Sip(UaEvent::Failed { code, .. })) => {
                    c.sip_code = Some(code);
                    c.hang_up_gsm().await;
                    c.cause = Cause::from_sip(code);
                    return;
                }
                Some(CallInput::Sip(_)) => {}
                Some(CallInput::Hangup) => {
                    ua.cancel(&sip_call);
                    c.hang_up_gsm().await;
                    c.cause = Cause::Rejected;
                    c.settle_cancel().await;
                    return;
                }
            }
        }
    }
}

/// An incoming SIP INVITE: pick a SIM by the SMS routing and dial the number.
pub fn spawn_sip_in(sh: Shared, ev: UaEvent) -> Option<(String, String, mpsc::Sender<CallInput>)> {
    let UaEvent::Incoming {
        call,
        from_user,
        to_user,
        sdp: offer,
        source,
        ..
    } = ev
    else {
        return None;
    };
    let mut c = Call::new(sh, "sip-in");
    let id = c.id.clone();
    let tx = c.tx.clone();
    c.from = from_user;
    c.to = to_user;
    c.record = c.sh.voice.record_sip_in;
    c.sip_peer = Some(source.to_string());
    c.sip_call = Some(call.clone());
    tokio::spawn(async move {
        sip_in(&mut c, offer).await;
        c.finish().await;
    });
    Some((id, call, tx))
}

fn reject(c: &mut Call, cause: Cause) {
    let (code, reason) = cause.sip_status();
    c.cause = cause;
    c.sip_code = Some(code);
    if let (Some(ua), Some(call)) = (&c.sh.ua, &c.sip_call) {
        ua.reject(call, code, reason);
    }
}

async fn sip_in(c: &mut Call, offer: Option<String>) {
    let Some(ua) = c.sh.ua.clone() else {
        return;
    };
    let Some(sip_call) = c.sip_call.clone() else {
        return;
    };
    let neg = match offer.as_deref().map(|o| sdp::negotiate(o, &c.sh.codecs)) {
        Some(Ok(n)) => n,
        _ => {
            c.cause = Cause::Failed;
            c.sip_code = Some(488);
            ua.reject(&sip_call, 488, "Not Acceptable Here");
            return;
        }
    };
    let number = c.to.clone();
    if !gsmgw_drivers::modem::dialable(&number) {
        reject(c, Cause::Unreachable);
        return;
    }
    let slot = match c.sh.pick_slot(&number, None).await {
        Ok(s) if c.sh.claim(s, &c.id) => s,
        _ => {
            reject(c, Cause::NoRoute);
            return;
        }
    };
    c.bind_slot(slot);
    c.register_slot(slot).await;
    c.live("dialing").await;
    let started = match c.alloc_rtp() {
        Ok(port) => c
            .start_bridge(Some(neg.remote), neg.codec, neg.dtmf_pt)
            .await
            .map(|()| port),
        Err(e) => Err(e),
    };
    let port = match started {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(call = %c.id, error = %e, "no media for the call");
            reject(c, Cause::Failed);
            return;
        }
    };
    let answer = sdp::answer(
        &neg,
        SocketAddr::new(c.sh.media_ip, port),
        now_ms().unsigned_abs(),
    );
    if let Err(cause) = c.dial_gsm(&number).await {
        reject(c, cause);
        return;
    }
    ua.ringing(&sip_call, Some(answer.clone()));
    if let Some(b) = &c.bridge {
        b.set_ringback(true);
    }
    match c.wait_gsm_connect(true).await {
        Ok(()) => {
            c.gsm_connected().await;
            ua.answer(&sip_call, answer);
            c.sip_code = Some(200);
            c.mark_answered().await;
            c.talk().await;
        }
        // The caller cancelled: the user agent already answered 487.
        Err(Cause::Cancelled) if c.sip_code.is_some() => c.cause = Cause::Cancelled,
        // Anything else (`cmd/hangup` included) still owes the caller a final response.
        Err(cause) => reject(c, cause),
    }
}

/// `cmd/dial`: ring the manager's SIP extension first, then call the lead through a SIM and
/// bridge them. The reply goes out once a SIM was chosen.
pub fn spawn_dial(
    sh: Shared,
    payload: &Value,
    reply: oneshot::Sender<Result<Value, (String, String)>>,
) -> (String, mpsc::Sender<CallInput>) {
    let mut c = Call::new(sh, "dial");
    let id = c.id.clone();
    let tx = c.tx.clone();
    c.to = payload
        .get("to")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    c.sip_peer = payload
        .get("bridge_to")
        .and_then(Value::as_str)
        .map(str::to_string);
    c.record = payload
        .get("record")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let want = payload
        .get("slot")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok());
    tokio::spawn(async move {
        if dial(&mut c, want, reply).await {
            c.finish().await;
        } else {
            let _ =
                c.sh.registry
                    .send(Registry::Done {
                        call_id: c.id.clone(),
                    })
                    .await;
        }
    });
    (id, tx)
}

/// Returns false when the call never started (refused: no record).
async fn dial(
    c: &mut Call,
    want: Option<u16>,
    reply: oneshot::Sender<Result<Value, (String, String)>>,
) -> bool {
    let Some(ua) = c.sh.ua.clone() else {
        let _ = reply.send(Err((
            "sip-not-configured".into(),
            "no [sip] section: calls cannot be bridged".into(),
        )));
        return false;
    };
    let slot = match c.sh.pick_slot(&c.to.clone(), want).await {
        Ok(s) if c.sh.claim(s, &c.id) => s,
        Ok(s) => {
            let _ = reply.send(Err((
                "slot-busy".into(),
                format!("slot {s} carries a call"),
            )));
            return false;
        }
        Err(e) => {
            let _ = reply.send(Err(("no-sim".into(), e)));
            return false;
        }
    };
    c.bind_slot(slot);
    c.register_slot(slot).await;
    c.from = String::new();
    c.live("dialing").await;
    let _ = reply.send(Ok(
        json!({"call_id": c.id, "slot": slot, "state": "ringing-extension"}),
    ));
    let port = match c.alloc_rtp() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(call = %c.id, error = %e, "no media for the call");
            c.cause = Cause::Failed;
            return true;
        }
    };
    let target = c.sip_peer.clone().unwrap_or_default();
    let sip_call = match ua
        .invite(&target, &c.to.clone(), Some("gsmgw"), c.offer(port))
        .await
    {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(call = %c.id, error = %e, "INVITE failed");
            c.cause = Cause::Failed;
            return true;
        }
    };
    c.sip_call = Some(sip_call.clone());
    c.register_leg(&sip_call).await;
    let deadline = Instant::now() + Duration::from_secs(u64::from(c.sh.voice.ring_timeout_secs));
    loop {
        tokio::select! {
            _ = sleep_until(deadline) => {
                ua.cancel(&sip_call);
                c.cause = Cause::NoAnswer;
                c.settle_cancel().await;
                return true;
            }
            i = c.rx.recv() => match i {
                None => return true,
                Some(CallInput::Sip(UaEvent::Answered { sdp: answer, .. })) => {
                    c.sip_code = Some(200);
                    if let Err(e) = c.media_from_answer(answer.as_deref()).await {
                        tracing::warn!(call = %c.id, error = %e, "unusable SDP answer");
                        c.bye();
                        c.cause = Cause::Failed;
                        return true;
                    }
                    break;
                }
                Some(CallInput::Sip(UaEvent::Failed { code, .. })) => {
                    c.sip_code = Some(code);
                    c.cause = Cause::from_sip(code);
                    return true;
                }
                Some(CallInput::Hangup) => {
                    ua.cancel(&sip_call);
                    c.cause = Cause::Cancelled;
                    c.settle_cancel().await;
                    return true;
                }
                Some(_) => {}
            }
        }
    }
    // The manager answered: ringback to them while the lead's phone rings.
    if let Some(b) = &c.bridge {
        b.set_ringback(true);
    }
    let number = c.to.clone();
    if let Err(cause) = c.dial_gsm(&number).await {
        c.bye();
        c.cause = cause;
        return true;
    }
    match c.wait_gsm_connect(false).await {
        Ok(()) => {
            c.mark_answered().await;
            c.gsm_connected().await;
            c.talk().await;
        }
        Err(cause) => {
            c.bye();
            c.cause = cause;
        }
    }
    true
}
