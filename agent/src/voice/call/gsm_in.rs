//! An incoming GSM call and its slot's rule: reject, answer-hangup, forward to SIP, or ring
//! until the caller gives up.

use std::time::Duration;

use gsmgw_drivers::at::Urc;
use gsmgw_drivers::modem::VoiceWhen;
use gsmgw_drivers::sip::ua::UaEvent;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::{Call, LOG_TARGET, RING_SILENCE};
use crate::config::VoiceRoute;
use crate::sms_out::VoiceOp;
use crate::voice::causes::Cause;
use crate::voice::{CallInput, Shared};

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
                    tracing::warn!(target: LOG_TARGET, call = %c.id, error = %e, "answer failed");
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
            tracing::error!(target: LOG_TARGET, call = %c.id, error = %e, "no media for the call");
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
            tracing::error!(target: LOG_TARGET, call = %c.id, error = %e, "INVITE failed");
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
                        tracing::warn!(target: LOG_TARGET, call = %c.id, error = %e, "unusable SDP answer");
                        c.bye();
                        c.hang_up_gsm().await;
                        c.cause = Cause::Failed;
                        return;
                    }
                    c.voice_on(VoiceWhen::BeforeCall).await;
                    if let Err(e) = c.modem(VoiceOp::Answer).await {
                        tracing::warn!(target: LOG_TARGET, call = %c.id, error = %e, "the GSM caller is gone");
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
