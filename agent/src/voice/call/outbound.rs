//! Calls out through a SIM: a SIP caller's INVITE (`sip-in`) and `cmd/dial` from the central
//! server, both dialling the GSM number and waiting for it to connect.

use std::net::SocketAddr;
use std::time::Duration;

use gsmgw_drivers::at::Urc;
use gsmgw_drivers::modem::{CallStat, VoiceWhen};
use gsmgw_drivers::sip::sdp;
use gsmgw_drivers::sip::ua::UaEvent;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};

use super::{Call, LOG_TARGET, SETUP_POLL};
use crate::clock::now_ms;
use crate::sms_out::VoiceOp;
use crate::voice::causes::Cause;
use crate::voice::{CallInput, Registry, Shared};

impl Call {
    /// Waits for an outgoing GSM call to connect. Ok(()) when connected, Err(cause) else.
    pub(super) async fn wait_gsm_connect(&mut self, sip_leg_is_caller: bool) -> Result<(), Cause> {
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
                    Err(e) => tracing::debug!(target: LOG_TARGET, call = %self.id, error = %e, "call list failed"),
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
    pub(super) async fn dial_gsm(&mut self, number: &str) -> Result<(), Cause> {
        self.voice_on(VoiceWhen::BeforeCall).await;
        match self.modem(VoiceOp::Dial(number.to_string())).await {
            Ok(_) => {}
            Err(e) => {
                tracing::info!(target: LOG_TARGET, call = %self.id, error = %e, "dial refused");
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
            tracing::error!(target: LOG_TARGET, call = %c.id, error = %e, "no media for the call");
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
    let _ = reply.send(Ok(crate::proto::jobs::to_value(
        &crate::proto::replies::CallProgress {
            call_id: &c.id,
            slot: Some(slot),
            state: "ringing-extension",
        },
    )));
    let port = match c.alloc_rtp() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(target: LOG_TARGET, call = %c.id, error = %e, "no media for the call");
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
            tracing::error!(target: LOG_TARGET, call = %c.id, error = %e, "INVITE failed");
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
                        tracing::warn!(target: LOG_TARGET, call = %c.id, error = %e, "unusable SDP answer");
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
