//! Mobile-terminated traffic: delivering a message per +CNMI (store and +CMTI, route as
//! +CMT with +CNMA, buffer), the SMSC's retries, status reports (+CDS/+CDSI), and the
//! control socket's injections.

use serde_json::{Value, json};
use tokio::time::Instant;

use super::{
    Delivery, MAX_BUFFERED, Mem, Received, Stored, now_timestamp, num_type, text_ts, tpdu_len,
};
use crate::pdu::{self, Pdu};
use crate::sim::device::{Device, Event, later};

impl Device {
    /// An SMS URC: held in the modem while CNMI mode is 0, else written.
    fn sms_urc(&mut self, line: String) {
        if self.set.cnmi[0] == 0 {
            if self.sms.buffered.len() >= MAX_BUFFERED {
                self.sms.buffered.remove(0);
            }
            self.sms.buffered.push(line);
        } else {
            self.urc(line);
        }
    }

    fn can_receive(&self) -> bool {
        self.powered && self.net.registered() && self.sms.ready
    }

    /// The network delivers a message; routed per +CNMI <mt> and the message class.
    pub(crate) fn receive(&mut self, d: Delivery, now: Instant) -> Received {
        if !self.can_receive() {
            self.sms.network_queue.push_back(d);
            return Received::Queued("modem not registered or SMS not ready");
        }
        if self.sms.cnma_pending.is_some() {
            self.sms.network_queue.push_back(d);
            return Received::Queued("waiting for +CNMA of the previous message");
        }
        let mt = self.set.cnmi[1];
        let direct = d.class != Some(2) && (mt == 2 || (mt == 3 && d.class == Some(3)));
        if direct {
            let line = if self.set.cmgf == 1 {
                let mut l = self.text_entry("+CMT: ", None, 0, &d.pdu);
                if let Some(first) = l.first_mut() {
                    *first = first.replacen("\"REC UNREAD\",", "", 1);
                }
                l.join("\r\n")
            } else {
                format!("+CMT: ,{}\r\n{}", d.tpdu_len, d.pdu)
            };
            self.sms_urc(line);
            if self.set.csms == 1 {
                self.await_cnma(d, now);
            }
            return Received::Direct;
        }
        let mem = match (d.class, d.storage) {
            (Some(2), _) => Mem::Sm,
            (_, Some(m)) => m,
            _ => match self.set.cpms[2] {
                Mem::Mt | Mem::Sr => Mem::Sm,
                m => m,
            },
        };
        let Some(slot) = self.sms.storage(mem).free_slot() else {
            self.counters.dropped_sms += 1;
            if let Some(u) = self.dialect.storage_full_urc(mem.name()) {
                self.urc(u);
            }
            self.sms.network_queue.push_back(d);
            return Received::Queued("storage full");
        };
        self.sms.storage_mut(mem).slots[slot] = Some(Stored {
            stat: 0,
            pdu: d.pdu,
            tpdu_len: d.tpdu_len,
        });
        let index = slot + self.base();
        if mt != 0 {
            self.sms_urc(format!("+CMTI: \"{}\",{index}", mem.name()));
        }
        Received::Stored(mem, index)
    }

    fn await_cnma(&mut self, d: Delivery, now: Instant) {
        self.sms.cnma_seq += 1;
        let id = self.sms.cnma_seq;
        self.sms.cnma_pending = Some((id, d));
        let at = later(now, self.sms.cnma_timeout_ms);
        self.schedule(at, Event::CnmaTimeout(id));
    }

    /// The SMSC delivers what it held back (after registration, freed memory, +CNMA …).
    pub(crate) fn deliver_network_queue(&mut self, now: Instant) {
        let mut budget = self.sms.network_queue.len();
        while budget > 0 && self.can_receive() && self.sms.cnma_pending.is_none() {
            budget -= 1;
            let Some(d) = self.sms.network_queue.pop_front() else {
                break;
            };
            if let Received::Queued(_) = self.receive(d, now) {
                // Put it back in front (receive queued it at the back) and stop for now.
                if let Some(back) = self.sms.network_queue.pop_back() {
                    self.sms.network_queue.push_front(back);
                }
                break;
            }
        }
    }

    /// A delivery report for sent message `mr`, routed per +CNMI <ds>.
    pub(crate) fn status_report(
        &mut self,
        mr: u8,
        status: u8,
        now: Instant,
    ) -> Result<Value, String> {
        let sent = self
            .sms
            .sent
            .iter()
            .rev()
            .find(|s| s.mr == mr)
            .cloned()
            .ok_or_else(|| format!("no sent message with mr {mr}"))?;
        if !self.can_receive() {
            return Err("modem not registered".into());
        }
        let ts = now_timestamp();
        let smsc = (!self.opts.smsc.is_empty()).then_some(self.opts.smsc.as_str());
        let part = pdu::encode_status_report(smsc, mr, &sent.to, ts, ts, status)
            .map_err(|e| format!("encoding status report: {e}"))?;
        match self.set.cnmi[3] {
            1 => {
                let line = if self.set.cmgf == 1 {
                    format!(
                        "+CDS: 6,{mr},\"{}\",{},\"{}\",\"{}\",{status}",
                        sent.to,
                        num_type(&sent.to),
                        text_ts(&ts),
                        text_ts(&ts)
                    )
                } else {
                    format!("+CDS: {}\r\n{}", part.tpdu_len, part.pdu)
                };
                self.sms_urc(line);
                if self.set.csms == 1 && self.sms.cnma_pending.is_none() {
                    let d = Delivery {
                        pdu: part.pdu.clone(),
                        tpdu_len: part.tpdu_len,
                        class: None,
                        storage: Some(Mem::Sr),
                        report: true,
                    };
                    // A +CDS needs +CNMA too; an unacked report is simply lost (not retried).
                    self.sms.cnma_seq += 1;
                    let id = self.sms.cnma_seq;
                    self.sms.cnma_pending = Some((id, d));
                    let at = later(now, self.sms.cnma_timeout_ms);
                    self.schedule(at, Event::CnmaTimeout(id));
                }
                Ok(json!({"routed": "direct", "pdu": part.pdu}))
            }
            2 => {
                let Some(slot) = self.sms.sr.free_slot() else {
                    self.counters.dropped_reports += 1;
                    return Ok(json!({"routed": "dropped", "reason": "SR full"}));
                };
                self.sms.sr.slots[slot] = Some(Stored {
                    stat: 0,
                    pdu: part.pdu.clone(),
                    tpdu_len: part.tpdu_len,
                });
                let index = slot + self.base();
                self.sms_urc(format!("+CDSI: \"SR\",{index}"));
                Ok(json!({"routed": "SR", "index": index, "pdu": part.pdu}))
            }
            _ => {
                self.sms.reports_not_routed += 1;
                Ok(json!({"routed": "none", "pdu": part.pdu}))
            }
        }
    }

    /// Control `sms`: encode DELIVER part(s) and hand them to the modem.
    pub(crate) fn inject_sms(&mut self, msg: &Value, now: Instant) -> Result<Value, String> {
        let from = msg
            .get("from")
            .and_then(Value::as_str)
            .ok_or("missing \"from\"")?;
        let text = msg
            .get("text")
            .and_then(Value::as_str)
            .ok_or("missing \"text\"")?;
        let storage = match msg.get("storage").and_then(Value::as_str) {
            Some(s) => Some(match Mem::parse(s) {
                Some(m @ (Mem::Sm | Mem::Me)) => m,
                _ => return Err(format!("storage must be SM or ME, not {s:?}")),
            }),
            None => None,
        };
        let class = match msg.get("class") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().filter(|c| *c <= 3).ok_or("class must be 0-3")? as u8),
        };
        let smsc = msg
            .get("smsc")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| (!self.opts.smsc.is_empty()).then(|| self.opts.smsc.clone()));
        let reference = self.sms.concat_ref;
        self.sms.concat_ref = self.sms.concat_ref.wrapping_add(1);
        let opts = pdu::DeliverOptions {
            from: from.to_string(),
            text: text.to_string(),
            smsc,
            scts: now_timestamp(),
            force_ucs2: msg.get("ucs2").and_then(Value::as_bool).unwrap_or(false),
            concat_ref: reference,
            class,
            status_report_indication: false,
        };
        let parts = pdu::encode_deliver(&opts).map_err(|e| format!("encoding: {e}"))?;
        let order: Vec<usize> = match msg.get("parts_order").and_then(Value::as_array) {
            Some(list) => list
                .iter()
                .map(|v| {
                    v.as_u64()
                        .map(|n| n as usize)
                        .filter(|n| (1..=parts.len()).contains(n))
                        .ok_or_else(|| format!("parts_order entries must be 1..={}", parts.len()))
                })
                .collect::<Result<_, _>>()?,
            None => (1..=parts.len()).collect(),
        };
        let mut outcome = Vec::new();
        for n in order {
            let part = &parts[n - 1];
            let d = Delivery {
                pdu: part.pdu.clone(),
                tpdu_len: part.tpdu_len,
                class,
                storage,
                report: false,
            };
            outcome.push((n, part.pdu.clone(), self.receive(d, now)));
        }
        Ok(received_json(parts.len(), outcome))
    }

    /// Control `sms-pdu`: a raw SMS-DELIVER.
    pub(crate) fn inject_pdu(&mut self, msg: &Value, now: Instant) -> Result<Value, String> {
        let hex = msg
            .get("pdu")
            .and_then(Value::as_str)
            .ok_or("missing \"pdu\"")?;
        let hex: String = hex.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = pdu::from_hex(&hex).map_err(|e| e.to_string())?;
        let len = tpdu_len(&bytes).ok_or("PDU too short")?;
        let class = match pdu::decode(&hex) {
            Ok(Pdu::Deliver(d)) => d.class,
            Ok(_) => return Err("not an SMS-DELIVER".into()),
            Err(e) => return Err(format!("invalid PDU: {e}")),
        };
        let storage = match msg.get("storage").and_then(Value::as_str) {
            Some(s) => Some(
                Mem::parse(s)
                    .filter(|m| matches!(m, Mem::Sm | Mem::Me))
                    .ok_or("storage must be SM or ME")?,
            ),
            None => None,
        };
        let pdu_text = pdu::to_hex(&bytes);
        let d = Delivery {
            pdu: pdu_text.clone(),
            tpdu_len: len,
            class,
            storage,
            report: false,
        };
        let r = self.receive(d, now);
        Ok(received_json(1, vec![(1, pdu_text, r)]))
    }
}

fn received_json(total: usize, outcome: Vec<(usize, String, Received)>) -> Value {
    let mut indices = Vec::new();
    let mut storage = None;
    let mut direct = 0;
    let mut queued = 0;
    let parts: Vec<Value> = outcome
        .into_iter()
        .map(|(n, pdu, r)| match r {
            Received::Stored(m, i) => {
                indices.push(i);
                storage = Some(m.name());
                json!({"part": n, "pdu": pdu, "stored": m.name(), "index": i})
            }
            Received::Direct => {
                direct += 1;
                json!({"part": n, "pdu": pdu, "direct": true})
            }
            Received::Queued(why) => {
                queued += 1;
                json!({"part": n, "pdu": pdu, "queued": why})
            }
        })
        .collect();
    json!({
        "ok": true,
        "parts": total,
        "indices": indices,
        "storage": storage,
        "direct": direct,
        "queued": queued,
        "deliveries": parts,
    })
}
