//! Receiving SMS on a channel: read from the modem's storage, commit, only then delete.
//!
//! A message announced by +CMTI (any storage), found by the periodic AT+CMGL sweep (URCs get
//! lost), or routed directly (+CMT) is decoded; a single-part message becomes an
//! `sms-received` event, a part of a longer one is kept in the store until all its parts are
//! there (across reboots), and only once that is committed is the message deleted from the
//! modem (AT+CMGD). Status reports (SR storage, +CDSI, +CDS) become `sms-status` events and
//! never touch a real SMS.

use crate::proto::events::{PartMeta, ReportStatus, SmsReceived, SmsUndecodable};
use crate::proto::jobs::{to_map, to_value};
use gsmgw_drivers::modem::{Modem, ModemError, StoredMessage};
use gsmgw_drivers::pdu::{self, Deliver, Pdu, StatusReport};
use gsmgw_drivers::redact::number;

use crate::clock::now_ms;
use crate::events::Events;
use crate::proto::EventBody;
use crate::proto::events::SmsStatus;
use crate::store::{EventClass, NewEvent, PartOutcome, StoreError, StoredPart};

/// Why a stored message was left on the modem.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    /// Talking to the modem failed.
    #[error(transparent)]
    Modem(#[from] ModemError),
    /// The store refused (full, disk full): the message stays on the SIM until it takes it.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Per-channel receiving state.
pub struct Inbox {
    slot: u16,
    events: Events,
    /// IMSI of the SIM, for the events.
    pub imsi: String,
    /// The storage AT+CMGR/CMGD currently work on.
    selected: Option<String>,
    /// The last sweep failed (SIM still busy after start, say): sweep again soon.
    pub sweep_failed: bool,
}

impl Inbox {
    /// An inbox for `slot`.
    pub fn new(slot: u16, events: Events) -> Self {
        Self {
            slot,
            events,
            imsi: String::new(),
            selected: None,
            sweep_failed: false,
        }
    }

    /// Forgets per-session state (after the port was reopened).
    pub fn reset(&mut self) {
        self.selected = None;
    }

    async fn select(&mut self, modem: &Modem, storage: &str) -> Result<(), ModemError> {
        if self.selected.as_deref() != Some(storage) {
            self.selected = None;
            modem.select_read_storage(storage).await?;
            self.selected = Some(storage.to_string());
        }
        Ok(())
    }

    /// +CMTI / +CDSI: read that index of that storage, commit, delete.
    pub async fn on_stored(
        &mut self,
        modem: &Modem,
        storage: &str,
        index: u32,
    ) -> Result<(), InboxError> {
        self.select(modem, storage).await?;
        if let Some(msg) = modem.read_message(index).await? {
            self.take(modem, storage, msg).await?;
        }
        Ok(())
    }

    /// Reads every message of every storage (at start and periodically: URCs get lost).
    pub async fn sweep(&mut self, modem: &Modem) -> Result<usize, InboxError> {
        self.sweep_failed = true;
        let n = self.sweep_all(modem).await?;
        self.sweep_failed = false;
        Ok(n)
    }

    async fn sweep_all(&mut self, modem: &Modem) -> Result<usize, InboxError> {
        let mut storages = match modem.read_storages().await {
            Ok(s) => s,
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(_) => vec!["SM".to_string()],
        };
        // "MT" is SM and ME together: reading it as well would see messages twice.
        storages.retain(|s| matches!(s.as_str(), "SM" | "ME" | "SR"));
        let mut taken = 0;
        for storage in storages {
            self.select(modem, &storage).await?;
            for msg in modem.list_messages().await? {
                if self.take(modem, &storage, msg).await? {
                    taken += 1;
                }
            }
        }
        Ok(taken)
    }

    /// +CMT / +CDS: a message routed to us without storage (nothing to read again later, so
    /// nothing to de-duplicate).
    pub async fn on_direct(&mut self, pdu_hex: &str) -> Result<(), InboxError> {
        self.commit(pdu_hex, None).await.map(|_| ())
    }

    /// Commits one stored message and deletes it; returns true if it was taken.
    ///
    /// The commit records a receipt for (slot, storage, index, PDU) in its transaction and
    /// the receipt goes once AT+CMGD is confirmed. A message found with its receipt still
    /// there was committed before a crash or a failed delete: it is only deleted again. Any
    /// other message is new, even when it is identical to one taken before.
    async fn take(
        &mut self,
        modem: &Modem,
        storage: &str,
        msg: StoredMessage,
    ) -> Result<bool, InboxError> {
        let store = self.events.store().clone();
        let receipt = receipt(self.slot, storage, msg.index, &msg.pdu);
        if store.receipt_pending(&receipt).await? {
            tracing::info!(slot = self.slot, %storage, index = msg.index,
                "message committed before its delete was confirmed; deleting it again");
        } else if !self.commit(&msg.pdu, Some(&receipt)).await? {
            return Ok(false);
        } else {
            tracing::debug!(slot = self.slot, %storage, index = msg.index, "message committed; deleting from modem");
        }
        modem.delete_message(msg.index).await?;
        if let Err(e) = store.forget_receipt(receipt).await {
            // The receipt stays until it ages out; only an identical PDU at this very index
            // would be mistaken for a re-read in the meantime.
            tracing::warn!(slot = self.slot, %storage, index = msg.index, error = %e,
                "deleted message's receipt not cleared");
        }
        Ok(true)
    }

    /// Commits the message's meaning (with `receipt`, when it came from storage); false when
    /// it is not ours to take (a stored outgoing message).
    async fn commit(&mut self, pdu_hex: &str, receipt: Option<&str>) -> Result<bool, InboxError> {
        match pdu::decode(pdu_hex) {
            Ok(Pdu::Deliver(d)) => self.deliver(d, receipt).await.map(|_| true),
            Ok(Pdu::StatusReport(r)) => {
                self.report(r).await?;
                if let Some(r) = receipt {
                    // Its own transaction: a crash in between may report it twice, which a
                    // delivery state shrugs off.
                    self.events.store().add_receipt(r.to_string()).await?;
                }
                Ok(true)
            }
            Ok(Pdu::Submit(_)) => Ok(false),
            Err(e) => {
                // Kept as an event with the raw PDU: nothing is lost, and it does not sit on
                // the SIM forever being read again.
                tracing::warn!(slot = self.slot, error = %e, "undecodable PDU");
                let body = SmsUndecodable {
                    slot: self.slot,
                    imsi: &self.imsi,
                    pdu: pdu_hex,
                    error: e.to_string(),
                    received_at: crate::clock::now_rfc3339(),
                    complete: false,
                    parts: 1,
                };
                self.append(body.body(), receipt).await?;
                Ok(true)
            }
        }
    }

    /// Commits one `sms-received` event, with its receipt when it has one.
    async fn append(
        &self,
        body: serde_json::Value,
        receipt: Option<&str>,
    ) -> Result<(), InboxError> {
        let ev = NewEvent::new(
            crate::proto::EventType::SmsReceived,
            EventClass::Critical,
            body,
        );
        let store = self.events.store();
        let row = match receipt {
            Some(r) => store.append_once(r.to_string(), ev).await?,
            None => Some(store.append(ev).await?),
        };
        match row {
            Some(row) => {
                self.events.committed();
                tracing::info!(slot = self.slot, seq = row.seq, "SMS received");
            }
            None => tracing::info!(
                slot = self.slot,
                "SMS already received; not published again"
            ),
        }
        Ok(())
    }

    /// The event of a message whose parts are all here (`first` is the first part's stored
    /// form, for a multipart message: its TP-SCTS is the message's).
    fn body(
        &self,
        d: &Deliver,
        text: &str,
        parts: usize,
        multipart: Option<(u16, Option<&PartMeta>)>,
    ) -> serde_json::Value {
        let from = d.from.to_string();
        let smsc = d.smsc.as_ref().map(|a| a.to_string());
        let own_sent_at = d.scts.to_rfc3339();
        let sent_at = match multipart {
            Some((_, Some(first))) => first.sent_at.as_deref(),
            _ => Some(own_sent_at.as_str()),
        };
        SmsReceived {
            slot: self.slot,
            imsi: Some(&self.imsi),
            from: &from,
            text,
            data: Some((d.encoding == pdu::Encoding::EightBit).then(|| pdu::to_hex(&d.data))),
            encoding: Some(d.encoding.as_str()),
            class: Some(d.class),
            smsc: smsc.as_deref(),
            sent_at,
            received_at: crate::clock::now_rfc3339(),
            parts,
            parts_received: None,
            reference: multipart.map(|(r, _)| r),
            complete: true,
        }
        .body()
    }

    async fn deliver(&mut self, d: Deliver, receipt: Option<&str>) -> Result<(), InboxError> {
        let Some(c) = d.concat.filter(|c| c.total > 1) else {
            let body = self.body(&d, &d.text, 1, None);
            return self.append(body, receipt).await;
        };
        let part = StoredPart {
            slot: self.slot,
            sender: d.from.to_string(),
            reference: c.reference,
            total: c.total,
            seq: c.seq,
            part: to_value(&PartMeta {
                text: d.text.clone(),
                encoding: Some(d.encoding.as_str().to_string()),
                smsc: d.smsc.as_ref().map(|a| a.to_string()),
                sent_at: Some(d.scts.to_rfc3339()),
                class: d.class,
            }),
            received_ms: now_ms(),
        };
        let key = part.key();
        match self
            .events
            .store()
            .put_part_taken(part, receipt.map(str::to_string))
            .await?
        {
            PartOutcome::Stored { have } => {
                tracing::info!(slot = self.slot, reference = key.reference, from = %number(&key.sender), have, total = c.total, "SMS part stored");
            }
            PartOutcome::Duplicate => {
                tracing::info!(slot = self.slot, reference = key.reference, from = %number(&key.sender), seq = c.seq, "duplicate SMS part");
            }
            PartOutcome::Complete(parts) => {
                let metas: Vec<PartMeta> = parts.iter().map(|p| p.meta()).collect();
                let text: String = metas.iter().map(|m| m.text.as_str()).collect();
                let body = self.body(&d, &text, parts.len(), Some((c.reference, metas.first())));
                let row = self
                    .events
                    .store()
                    .complete_message(
                        key,
                        NewEvent::new(
                            crate::proto::EventType::SmsReceived,
                            EventClass::Critical,
                            body,
                        ),
                    )
                    .await?;
                self.events.committed();
                tracing::info!(
                    slot = self.slot,
                    seq = row.seq,
                    parts = parts.len(),
                    "multipart SMS received"
                );
            }
        }
        Ok(())
    }

    async fn report(&mut self, r: StatusReport) -> Result<(), InboxError> {
        let (state, delivered) = match r.status_class() {
            pdu::StatusClass::Delivered => ("delivered", Some(true)),
            pdu::StatusClass::Pending => ("pending", None),
            pdu::StatusClass::Failed => ("failed", Some(false)),
        };
        let to = r.recipient.to_string();
        let mut details = ReportStatus {
            slot: self.slot,
            // A list like in `sent` events (one element: the part this report is about).
            mr: [r.mr],
            status: r.status,
            status_text: status_text(r.status),
            submitted_at: r.scts.to_rfc3339(),
            discharged_at: r.discharge_time.to_rfc3339(),
            imsi: None,
        };
        let matched = crate::sms_status::match_report(
            &self.events,
            self.slot,
            r.mr,
            &to,
            delivered,
            &details,
        )
        .await?;
        if !matched {
            // A report for a message this agent did not send (or sent long ago): kept anyway.
            details.imsi = Some(self.imsi.clone());
            let extra = to_map(&details);
            let to = serde_json::Value::from(to);
            let body = SmsStatus {
                request_id: None,
                msg_id: None,
                to: &to,
                state,
                parts: None,
                extra,
            };
            self.events
                .emit(SmsStatus::TYPE, EventClass::Critical, body.body())
                .await?;
        }
        Ok(())
    }
}

/// The receipt of a message at `index` of `storage` on `slot` (its PDU hashed, case-blind:
/// AT+CMGR and AT+CMGL must agree).
fn receipt(slot: u16, storage: &str, index: u32, pdu_hex: &str) -> String {
    let pdu = pdu_hex.trim().to_ascii_uppercase();
    format!(
        "rx|{slot}|{storage}|{index}|{:016x}",
        crate::store::fnv1a(pdu.as_bytes())
    )
}

/// TP-Status in words (23.040 9.2.3.15).
pub fn status_text(st: u8) -> &'static str {
    match st {
        0x00 => "delivered",
        0x01 => "forwarded, delivery not confirmed",
        0x02 => "replaced",
        0x20 => "congestion, still trying",
        0x21 => "recipient busy, still trying",
        0x22 => "no response from recipient, still trying",
        0x23 => "service rejected, still trying",
        0x24 => "quality of service not available, still trying",
        0x25 => "error in recipient, still trying",
        0x40 => "remote procedure error",
        0x41 => "incompatible destination",
        0x42 => "connection rejected by recipient",
        0x43 => "not obtainable",
        0x44 => "quality of service not available",
        0x45 => "no interworking available",
        0x46 => "validity period expired",
        0x47 => "deleted by sender",
        0x48 => "deleted by service centre",
        0x49 => "message does not exist",
        0x60..=0x7f => "permanent or temporary error, no longer trying",
        0x03..=0x1f => "delivered (service centre specific)",
        0x26..=0x3f => "temporary error, still trying",
        _ => "error, no longer trying",
    }
}

/// How long a message with all its parts stored is left to the inbox to complete.
const COMPLETION_GRACE_MS: i64 = 30_000;

/// Delivers multipart messages whose missing parts did not come within `timeout`, as
/// `complete: false` with the parts that did, and messages whose parts are all stored but
/// whose completion did not commit (a crash, a full disk) as whole ones. Returns how many
/// were delivered.
pub async fn flush_stale(
    events: &Events,
    timeout: std::time::Duration,
) -> Result<usize, StoreError> {
    let deadline = now_ms() - i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
    // Complete ones only once the inbox had ample time to finish them itself.
    let grace = now_ms() - COMPLETION_GRACE_MS;
    let mut stale: Vec<_> = events
        .store()
        .complete_parts()
        .await?
        .into_iter()
        .filter(|(_, parts)| parts.iter().all(|p| p.received_ms < grace))
        .collect();
    stale.extend(events.store().stale_parts(deadline).await?);
    let n = stale.len();
    for (key, parts) in stale {
        let complete = parts.len() >= usize::from(key.total);
        let mut text = String::new();
        let mut received = Vec::new();
        for seq in 1..=key.total {
            match parts.iter().find(|p| p.seq == seq) {
                Some(p) => {
                    text.push_str(&p.meta().text);
                    received.push(seq);
                }
                None => text.push_str("[…]"),
            }
        }
        let first = parts.first().map(|p| p.meta()).unwrap_or_default();
        let body = SmsReceived {
            slot: key.slot,
            imsi: None,
            from: &key.sender,
            text: &text,
            data: None,
            encoding: first.encoding.as_deref(),
            class: None,
            smsc: first.smsc.as_deref(),
            sent_at: first.sent_at.as_deref(),
            received_at: crate::clock::now_rfc3339(),
            parts: usize::from(key.total),
            parts_received: Some(received),
            reference: Some(key.reference),
            complete,
        }
        .body();
        if complete {
            tracing::info!(slot = key.slot, reference = key.reference, from = %number(&key.sender), "multipart SMS whose completion was interrupted delivered");
        } else {
            tracing::warn!(slot = key.slot, reference = key.reference, from = %number(&key.sender), have = parts.len(), "multipart SMS incomplete after the timeout; delivered as is");
        }
        events
            .store()
            .complete_message(
                key,
                NewEvent::new(
                    crate::proto::EventType::SmsReceived,
                    EventClass::Critical,
                    body,
                ),
            )
            .await?;
        events.committed();
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    //! The inbox alone over a real store: what a routed (+CMT/+CDS) message commits.
    use serde_json::{Value, json};

    use std::time::Duration;

    use gsmgw_drivers::pdu::{DeliverOptions, Timestamp, encode_deliver, encode_status_report};

    use super::*;

    fn ts() -> Timestamp {
        Timestamp::new(2026, 12, 2, 10, 30, 0, 8).unwrap()
    }

    fn deliver(from: &str, text: &str, concat_ref: u8) -> Vec<String> {
        encode_deliver(&DeliverOptions {
            from: from.into(),
            text: text.into(),
            smsc: Some("+380672021111".into()),
            scts: ts(),
            force_ucs2: false,
            concat_ref,
            class: None,
            status_report_indication: false,
        })
        .unwrap()
        .into_iter()
        .map(|p| p.pdu)
        .collect()
    }

    /// Every event committed so far: (type, body).
    async fn committed(events: &Events) -> Vec<(String, Value)> {
        events
            .store()
            .pending(0, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.event_type, serde_json::from_slice(&r.payload).unwrap()))
            .collect()
    }

    #[tokio::test]
    async fn a_single_message_is_one_sms_received_event() {
        let (_dir, events) = crate::fixtures::events();
        let mut inbox = Inbox::new(2, events.clone());
        inbox.imsi = "255010000000001".into();
        let pdus = deliver("+380501234567", "Привіт, це тест", 0);
        assert_eq!(pdus.len(), 1);
        inbox.on_direct(&pdus[0]).await.unwrap();
        let evs = committed(&events).await;
        assert_eq!(evs.len(), 1, "{evs:?}");
        let (t, body) = &evs[0];
        assert_eq!(t, "sms-received");
        assert_eq!(body["from"], "+380501234567");
        assert_eq!(body["text"], "Привіт, це тест");
        assert_eq!(body["slot"], 2);
        assert_eq!(body["imsi"], "255010000000001");
    }

    #[tokio::test]
    async fn parts_wait_in_the_store_until_the_last_one_in_any_order() {
        let (_dir, events) = crate::fixtures::events();
        let mut inbox = Inbox::new(1, events.clone());
        let text = "Long message ".repeat(30);
        let pdus = deliver("+380501234567", &text, 77);
        assert_eq!(pdus.len(), 3);
        inbox.on_direct(&pdus[2]).await.unwrap();
        inbox.on_direct(&pdus[0]).await.unwrap();
        assert!(
            committed(&events).await.is_empty(),
            "nothing before the last part"
        );
        // A restart in between: a new inbox over the same store finishes the message.
        let mut again = Inbox::new(1, events.clone());
        again.on_direct(&pdus[1]).await.unwrap();
        let evs = committed(&events).await;
        assert_eq!(evs.len(), 1, "{evs:?}");
        assert_eq!(evs[0].1["text"], text.as_str());
        assert_eq!(evs[0].1["parts"], 3);
    }

    #[tokio::test]
    async fn an_incomplete_message_is_delivered_as_such_after_the_timeout() {
        let (_dir, events) = crate::fixtures::events();
        let mut inbox = Inbox::new(1, events.clone());
        let pdus = deliver("+380501234567", &"x".repeat(400), 9);
        inbox.on_direct(&pdus[0]).await.unwrap();
        assert_eq!(
            flush_stale(&events, Duration::from_secs(3600))
                .await
                .unwrap(),
            0
        );
        assert_eq!(flush_stale(&events, Duration::ZERO).await.unwrap(), 1);
        let evs = committed(&events).await;
        assert_eq!(evs.len(), 1, "{evs:?}");
        let body = &evs[0].1;
        assert_eq!(body["complete"], false);
        assert_eq!(body["parts_received"], serde_json::json!([1]));
        assert!(body["text"].as_str().unwrap().ends_with("[…]"), "{body}");
    }

    #[tokio::test]
    async fn a_status_report_is_an_sms_status_event() {
        let (_dir, events) = crate::fixtures::events();
        let mut inbox = Inbox::new(1, events.clone());
        let sr = encode_status_report(None, 42, "+380501234567", ts(), ts(), 0).unwrap();
        inbox.on_direct(&sr.pdu).await.unwrap();
        let evs = committed(&events).await;
        assert_eq!(evs.len(), 1, "{evs:?}");
        assert_eq!(evs[0].0, "sms-status");
        assert_eq!(evs[0].1["mr"], json!([42]), "{}", evs[0].1);
    }

    #[tokio::test]
    async fn an_undecodable_pdu_is_kept_raw_not_lost() {
        let (_dir, events) = crate::fixtures::events();
        let mut inbox = Inbox::new(1, events.clone());
        inbox.on_direct("ZZ00").await.unwrap();
        let evs = committed(&events).await;
        assert_eq!(evs.len(), 1, "{evs:?}");
        let body = &evs[0].1;
        assert_eq!(
            (evs[0].0.as_str(), &body["pdu"]),
            ("sms-received", &Value::from("ZZ00"))
        );
        assert_eq!(body["complete"], false);
        assert!(!body["error"].as_str().unwrap_or("").is_empty(), "{body}");
    }
}
