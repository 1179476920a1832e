//! The end of a call: the `call` record, the SIM's minutes counter and the missed-call SMS
//! (through the command registry, committed with the record).

use serde_json::Value;

use super::{Call, LOG_TARGET};
use crate::clock::{now_ms, now_rfc3339};
use crate::commands::Origin;
use crate::proto::EventBody;
use crate::proto::events::{CallMedia, CallRecord, CallRecording};
use crate::sms_out::VoiceOp;
use crate::store::{EventClass, NewEvent};
use crate::voice::Registry;

impl Call {
    /// Stops the media, writes the record (and queues the missed-call SMS), frees the slot.
    pub(super) async fn finish(mut self) {
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
        let recording = self
            .recording
            .as_ref()
            .filter(|p| p.exists())
            .map(|p| CallRecording {
                file: p.file_name().map(|f| f.to_string_lossy().to_string()),
                bytes: std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            });
        let media = self.stats.as_ref().map(|s| CallMedia {
            rtp_sent: s.rtp_sent,
            rtp_received: s.rtp_received,
            rtp_lost: s.rtp_lost,
            jitter_ms: (s.jitter_ms * 10.0).round() / 10.0,
            frames_from_modem: s.frames_from_modem,
            frames_to_modem: s.frames_to_modem,
        });
        let body = CallRecord {
            call_id: &self.id,
            direction: self.direction,
            slot: self.slot,
            imsi: &self.imsi,
            from: &self.from,
            to: &self.to,
            sip_peer: self.sip_peer.as_deref(),
            started_at: &self.started_at,
            answered_at: self.answered.as_ref().map(|a| a.0.as_str()),
            ended_at: &ended_at,
            duration_s: (duration_s * 10.0).round() / 10.0,
            cause: self.cause.as_str(),
            sip_code: self.sip_code,
            recording,
            media,
        }
        .body();
        tracing::info!(target: LOG_TARGET, call = %self.id, direction = self.direction, cause = self.cause.as_str(), duration_s, "call ended");
        if let Some(slot) = self.slot {
            if self.direction != "gsm-in" && duration_s > 0.0 {
                let secs = duration_s.ceil() as i64;
                let _ = self
                    .sh
                    .events
                    .store()
                    .counter_add(&crate::voice::minutes_counter(&self.imsi), secs)
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

    pub(super) async fn emit(&self, body: Value) {
        if let Err(e) = self
            .sh
            .events
            .emit(crate::proto::EventType::Call, EventClass::Critical, body)
            .await
        {
            tracing::error!(target: LOG_TARGET, call = %self.id, error = %e, "call record not stored");
        }
    }

    /// The call record, and for an incoming GSM call the missed-call SMS in the same commit.
    pub(super) async fn record_with_sms(&self, slot: u16, body: Value) {
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
            tracing::info!(target: LOG_TARGET, call = %self.id, from = %gsmgw_drivers::redact::number(&self.from), "missed-call SMS already sent in this period");
            return self.emit(body).await;
        }
        let text = v
            .missed_call_sms
            .replace("{from}", &self.from)
            .replace("{slot}", &slot.to_string());
        // Through the command registry like any sms-send; the call record commits with it.
        let request_id = format!("missed-call-{}", self.id);
        let payload = crate::proto::jobs::to_value(&crate::proto::jobs::SmsSendRequest {
            request_id: &request_id,
            to: &self.from,
            text: &text,
            slot: Some(slot),
            report: Some(false),
        });
        let extra = crate::proto::jobs::to_map(&MissedCallOrigin {
            reason: "missed-call",
            call_id: &self.id,
        });
        let origin = Origin::Internal {
            extra,
            event: Some(NewEvent::new(
                crate::proto::EventType::Call,
                EventClass::Critical,
                body.clone(),
            )),
        };
        let out = self
            .sh
            .commands
            .submit("sms-send", payload.to_string().as_bytes(), origin)
            .await;
        match out.reply.error {
            None => {
                let _ = store.counter_add(&key, now - last).await;
                tracing::info!(target: LOG_TARGET, call = %self.id, to = %gsmgw_drivers::redact::number(&self.from), "missed-call SMS queued");
            }
            Some(e) => {
                tracing::error!(target: LOG_TARGET, call = %self.id, code = %e.code, error = %e.message, "missed-call SMS not queued");
                self.emit(body).await;
            }
        }
    }
}

/// What a missed-call SMS job adds to its `sms-status` events: why it was sent.
#[derive(serde::Serialize)]
struct MissedCallOrigin<'a> {
    reason: &'a str,
    call_id: &'a str,
}
