//! SMS (27.005): storages SM/ME/SR/MT, CPMS, CNMI routing (+CMTI/+CMT/+CDS/+CDSI), CSMS/CNMA,
//! CMGR/CMGL/CMGD, CMGS with the `> ` prompt, status reports, storage full and the SMSC's retries.

use std::collections::VecDeque;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::clock;
use super::device::{AtError, CmdResult, Device, Event, Final, Post, Resp, later};
use super::parse::Form;
use crate::pdu::{self, Pdu, Timestamp};

/// Capacities of the storages (SIM, modem flash, status reports).
const SM_CAPACITY: usize = 30;
const ME_CAPACITY: usize = 100;
const SR_CAPACITY: usize = 20;
/// How long the network waits for +CNMA before treating the delivery as failed (TR2M-like).
const CNMA_TIMEOUT_MS: u64 = 15_000;
/// When the SMSC retries a message it could not deliver (storage full, no +CNMA).
const NETWORK_RETRY_MS: u64 = 2_000;
/// Reading one message from the SIM takes a little while (CMGL of many is slow).
const SIM_READ_MS_PER_MSG: u64 = 15;
/// Longest prompt input accepted (hex of a 176-octet PDU plus slack, or text).
const MAX_PROMPT: usize = 1024;
/// CNMI mode 0 buffer size.
const MAX_BUFFERED: usize = 32;

/// A message storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mem {
    Sm,
    Me,
    Sr,
    /// SM and ME together (SM indices first).
    Mt,
}

impl Mem {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mem::Sm => "SM",
            Mem::Me => "ME",
            Mem::Sr => "SR",
            Mem::Mt => "MT",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Mem> {
        match s.to_ascii_uppercase().as_str() {
            "SM" => Some(Mem::Sm),
            "ME" => Some(Mem::Me),
            "SR" => Some(Mem::Sr),
            "MT" => Some(Mem::Mt),
            _ => None,
        }
    }
}

/// One stored message.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    /// 0 received unread, 1 received read, 2 stored unsent, 3 stored sent.
    pub stat: u8,
    pub pdu: String,
    pub tpdu_len: usize,
}

/// A storage's slots.
#[derive(Debug, Clone)]
pub(crate) struct Storage {
    pub slots: Vec<Option<Stored>>,
    /// Injected "storage full" fault.
    pub forced_full: bool,
}

impl Storage {
    fn new(cap: usize) -> Storage {
        Storage {
            slots: vec![None; cap],
            forced_full: false,
        }
    }
    pub(crate) fn used(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }
    fn free_slot(&self) -> Option<usize> {
        if self.forced_full {
            return None;
        }
        self.slots.iter().position(Option::is_none)
    }
    fn to_json(&self, base: usize) -> Value {
        json!({
            "capacity": self.slots.len(),
            "used": self.used(),
            "full": self.forced_full || self.free_slot().is_none(),
            "messages": self.slots.iter().enumerate().filter_map(|(i, s)| s.as_ref().map(|m| json!({
                "index": i + base,
                "stat": m.stat,
                "pdu": m.pdu,
                "len": m.tpdu_len,
            }))).collect::<Vec<_>>(),
        })
    }
}

/// A message the network wants to deliver to the modem.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub pdu: String,
    pub tpdu_len: usize,
    pub class: Option<u8>,
    /// Explicit storage (the `storage` field of the control message).
    pub storage: Option<Mem>,
    /// A status report (+CDS) awaiting +CNMA: never retried.
    pub report: bool,
}

/// What became of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Received {
    Stored(Mem, usize),
    Direct,
    /// Not deliverable now (modem off, unregistered, storage full, +CNMA pending): the SMSC retries.
    Queued(&'static str),
}

/// A message sent with AT+CMGS.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub mr: u8,
    pub to: String,
    pub text: String,
    pub pdu: String,
    pub srr: bool,
    pub unix: u64,
}

/// The open `> ` prompt.
#[derive(Debug, Clone)]
pub(crate) struct Prompt {
    /// PDU mode: the announced TPDU length; text mode: the destination.
    pub kind: PromptKind,
    pub buf: Vec<u8>,
}

/// PDU or text mode prompt.
#[derive(Debug, Clone)]
pub(crate) enum PromptKind {
    Pdu(usize),
    Text(String),
}

/// Delivery-report behaviour for sent messages.
#[derive(Debug, Clone)]
pub(crate) struct AutoReport {
    pub enabled: bool,
    pub status: u8,
    pub delay_ms: u64,
}

/// All SMS state (storages persist across reboots; SM is on the SIM, ME in flash).
#[derive(Debug, Clone)]
pub(crate) struct SmsState {
    pub sm: Storage,
    pub me: Storage,
    pub sr: Storage,
    pub ready: bool,
    pub next_mr: u8,
    pub sent: Vec<Sent>,
    pub auto_report: AutoReport,
    pub send_latency_ms: u64,
    pub send_error: Option<(u16, u32)>,
    pub network_queue: VecDeque<Delivery>,
    pub cnma_pending: Option<(u64, Delivery)>,
    pub cnma_seq: u64,
    pub cnma_timeout_ms: u64,
    pub buffered: Vec<String>,
    pub concat_ref: u8,
    pub reports_not_routed: u64,
}

impl SmsState {
    pub(crate) fn new() -> SmsState {
        SmsState {
            sm: Storage::new(SM_CAPACITY),
            me: Storage::new(ME_CAPACITY),
            sr: Storage::new(SR_CAPACITY),
            ready: false,
            next_mr: 0,
            sent: Vec::new(),
            auto_report: AutoReport {
                enabled: true,
                status: 0,
                delay_ms: 1000,
            },
            send_latency_ms: 300,
            send_error: None,
            network_queue: VecDeque::new(),
            cnma_pending: None,
            cnma_seq: 0,
            cnma_timeout_ms: CNMA_TIMEOUT_MS,
            buffered: Vec::new(),
            concat_ref: 1,
            reports_not_routed: 0,
        }
    }

    pub(crate) fn on_boot(&mut self) {
        self.ready = false;
        self.buffered.clear();
        // An unacknowledged +CMT goes back to the SMSC, which retries after the reboot.
        if let Some((_, d)) = self.cnma_pending.take() {
            if !d.report {
                self.network_queue.push_front(d);
            }
        }
    }

    fn storage(&self, m: Mem) -> &Storage {
        match m {
            Mem::Me => &self.me,
            Mem::Sr => &self.sr,
            Mem::Sm | Mem::Mt => &self.sm,
        }
    }

    fn storage_mut(&mut self, m: Mem) -> &mut Storage {
        match m {
            Mem::Me => &mut self.me,
            Mem::Sr => &mut self.sr,
            Mem::Sm | Mem::Mt => &mut self.sm,
        }
    }

    /// (used, total) of a storage as CPMS reports it.
    fn counts(&self, m: Mem) -> (usize, usize) {
        match m {
            Mem::Mt => (
                self.sm.used() + self.me.used(),
                self.sm.slots.len() + self.me.slots.len(),
            ),
            _ => {
                let s = self.storage(m);
                (s.used(), s.slots.len())
            }
        }
    }

    /// (storage, slot) for an AT index in storage `m`.
    fn resolve(&self, m: Mem, index: i64, base: usize) -> Option<(Mem, usize)> {
        let i = usize::try_from(index).ok()?.checked_sub(base)?;
        match m {
            Mem::Mt if i < self.sm.slots.len() => Some((Mem::Sm, i)),
            Mem::Mt => {
                let j = i - self.sm.slots.len();
                (j < self.me.slots.len()).then_some((Mem::Me, j))
            }
            _ => (i < self.storage(m).slots.len()).then_some((m, i)),
        }
    }

    /// (storage, slot, AT index) of every slot of `m`, in index order.
    fn slots_of(&self, m: Mem, base: usize) -> Vec<(Mem, usize, usize)> {
        match m {
            Mem::Mt => {
                let sm = self.sm.slots.len();
                (0..sm)
                    .map(|i| (Mem::Sm, i, i + base))
                    .chain((0..self.me.slots.len()).map(|i| (Mem::Me, i, sm + i + base)))
                    .collect()
            }
            _ => (0..self.storage(m).slots.len())
                .map(|i| (m, i, i + base))
                .collect(),
        }
    }

    pub(crate) fn to_json(&self, base: usize) -> Value {
        json!({
            "storages": {
                "SM": self.sm.to_json(base),
                "ME": self.me.to_json(base),
                "SR": self.sr.to_json(base),
            },
            "sent": self.sent.iter().map(|s| json!({
                "mr": s.mr, "to": s.to, "text": s.text, "pdu": s.pdu, "srr": s.srr,
                "time": clock::iso(s.unix),
            })).collect::<Vec<_>>(),
            "next_mr": self.next_mr,
            "auto_report": {"enabled": self.auto_report.enabled, "status": self.auto_report.status, "delay_ms": self.auto_report.delay_ms},
            "send_latency_ms": self.send_latency_ms,
            "network_queue": self.network_queue.len(),
            "awaiting_cnma": self.cnma_pending.is_some(),
            "cnmi_buffered": self.buffered.len(),
            "reports_not_routed": self.reports_not_routed,
            "ready": self.ready,
        })
    }
}

/// The current time as an SMS timestamp (UTC).
pub(crate) fn now_timestamp() -> Timestamp {
    let c = clock::civil(clock::unix_now());
    let year = u16::try_from(c.year).unwrap_or(2000).clamp(1990, 2089);
    Timestamp::new(year, c.month, c.day, c.hour, c.minute, c.second, 0).unwrap_or(Timestamp {
        year: 2000,
        month: 1,
        day: 1,
        hour: 0,
        minute: 0,
        second: 0,
        tz_quarters: 0,
    })
}

/// "yy/MM/dd,hh:mm:ss±zz" as text mode shows timestamps.
fn text_ts(t: &Timestamp) -> String {
    let sign = if t.tz_quarters < 0 { '-' } else { '+' };
    format!(
        "{:02}/{:02}/{:02},{:02}:{:02}:{:02}{sign}{:02}",
        t.year % 100,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        t.tz_quarters.unsigned_abs()
    )
}

fn stat_text(stat: u8) -> &'static str {
    match stat {
        0 => "REC UNREAD",
        1 => "REC READ",
        2 => "STO UNSENT",
        3 => "STO SENT",
        _ => "ALL",
    }
}

fn stat_from_text(s: &str) -> Option<u8> {
    match s.to_ascii_uppercase().as_str() {
        "REC UNREAD" => Some(0),
        "REC READ" => Some(1),
        "STO UNSENT" => Some(2),
        "STO SENT" => Some(3),
        "ALL" => Some(4),
        _ => None,
    }
}

fn num_type(n: &str) -> u8 {
    if n.starts_with('+') { 145 } else { 129 }
}

/// TPDU length of a PDU given with its SMSC field.
pub(crate) fn tpdu_len(bytes: &[u8]) -> Option<usize> {
    let smsc = usize::from(*bytes.first()?);
    bytes.len().checked_sub(1 + smsc).filter(|n| *n > 0)
}

impl Device {
    fn sms_gate(&self, now: Instant) -> Result<(), AtError> {
        self.sim.check(now, true)?;
        if !self.sms.ready {
            return Err(AtError::Cms(314));
        }
        Ok(())
    }

    fn base(&self) -> usize {
        self.dialect.profile().first_index
    }

    pub(crate) fn exec_sms(&mut self, name: &str, form: &Form, now: Instant) -> CmdResult {
        match name {
            "+CMGF" => match form {
                Form::Set(a) => {
                    self.set.cmgf = a.int_in(0, 0, 1)?.unwrap_or(0) as u8;
                    Ok(Resp::ok())
                }
                Form::Read => Ok(Resp::line(format!("+CMGF: {}", self.set.cmgf))),
                Form::Test => Ok(Resp::line("+CMGF: (0-1)")),
                Form::Exec => {
                    self.set.cmgf = 0;
                    Ok(Resp::ok())
                }
            },
            "+CSCS" => match form {
                Form::Set(a) => {
                    let cs = a.text(0).ok_or(AtError::Cme(50))?.to_ascii_uppercase();
                    if !matches!(cs.as_str(), "GSM" | "IRA" | "UCS2" | "HEX" | "8859-1") {
                        return Err(AtError::Cme(50));
                    }
                    self.set.cscs = cs;
                    Ok(Resp::ok())
                }
                Form::Read => Ok(Resp::line(format!("+CSCS: \"{}\"", self.set.cscs))),
                Form::Test => Ok(Resp::line("+CSCS: (\"IRA\",\"GSM\",\"UCS2\")")),
                Form::Exec => Err(AtError::Error),
            },
            "+CSCA" => match form {
                Form::Read => {
                    self.sim.check(now, true)?;
                    let shown = if self.set.cscs == "UCS2" {
                        super::ussd::ucs2_hex(&self.opts.smsc)
                    } else {
                        self.opts.smsc.clone()
                    };
                    Ok(Resp::line(format!(
                        "+CSCA: \"{shown}\",{}",
                        num_type(&self.opts.smsc)
                    )))
                }
                Form::Set(a) => {
                    self.sim.check(now, true)?;
                    let raw = a.text(0).ok_or(AtError::Cms(304))?;
                    let sca = if self.set.cscs == "UCS2" {
                        super::ussd::from_ucs2_hex(raw).unwrap_or_else(|| raw.to_string())
                    } else {
                        raw.to_string()
                    };
                    self.opts.smsc = sca;
                    Ok(Resp::ok())
                }
                Form::Test => Ok(Resp::ok()),
                Form::Exec => Err(AtError::Error),
            },
            "+CSMP" => match form {
                Form::Read => Ok(Resp::line("+CSMP: 17,167,0,0")),
                Form::Set(_) | Form::Test => Ok(Resp::ok()),
                Form::Exec => Err(AtError::Error),
            },
            "+CSDH" => match form {
                Form::Read => Ok(Resp::line("+CSDH: 0")),
                Form::Set(_) | Form::Exec => Ok(Resp::ok()),
                Form::Test => Ok(Resp::line("+CSDH: (0,1)")),
            },
            "+CPMS" => self.cmd_cpms(form, now),
            "+CNMI" => self.cmd_cnmi(form),
            "+CSMS" => match form {
                Form::Set(a) => {
                    let s = a.int_in(0, 0, 1)?.ok_or(AtError::Error)? as u8;
                    self.set.csms = s;
                    Ok(Resp::line("+CSMS: 1,1,1"))
                }
                Form::Read => Ok(Resp::line(format!("+CSMS: {},1,1,1", self.set.csms))),
                Form::Test => Ok(Resp::line("+CSMS: (0,1)")),
                Form::Exec => Err(AtError::Error),
            },
            "+CNMA" => self.cmd_cnma(form, now),
            "+CMGR" => self.cmd_cmgr(form, now),
            "+CMGL" => self.cmd_cmgl(form, now),
            "+CMGD" => self.cmd_cmgd(form, now),
            "+CMGS" => self.cmd_cmgs(form, now),
            _ => Err(AtError::Error),
        }
    }

    fn cmd_cpms(&mut self, form: &Form, now: Instant) -> CmdResult {
        match form {
            Form::Test => Ok(Resp::line(
                "+CPMS: (\"SM\",\"ME\",\"SR\",\"MT\"),(\"SM\",\"ME\",\"MT\"),(\"SM\",\"ME\",\"MT\")",
            )),
            Form::Exec => Err(AtError::Error),
            Form::Read => {
                self.sms_gate(now)?;
                let parts: Vec<String> = self
                    .set
                    .cpms
                    .iter()
                    .map(|m| {
                        let (u, t) = self.sms.counts(*m);
                        format!("\"{}\",{u},{t}", m.name())
                    })
                    .collect();
                Ok(Resp::line(format!("+CPMS: {}", parts.join(","))))
            }
            Form::Set(a) => {
                self.sms_gate(now)?;
                let mut new = self.set.cpms;
                for (i, slot) in new.iter_mut().enumerate() {
                    if let Some(name) = a.text(i) {
                        let m = Mem::parse(name).ok_or(AtError::Cms(302))?;
                        if i > 0 && m == Mem::Sr {
                            return Err(AtError::Cms(302));
                        }
                        *slot = m;
                    }
                }
                if a.text(0).is_none() {
                    return Err(AtError::Cms(302));
                }
                self.set.cpms = new;
                let parts: Vec<String> = new
                    .iter()
                    .map(|m| {
                        let (u, t) = self.sms.counts(*m);
                        format!("{u},{t}")
                    })
                    .collect();
                Ok(Resp::line(format!("+CPMS: {}", parts.join(","))))
            }
        }
    }

    fn cmd_cnmi(&mut self, form: &Form) -> CmdResult {
        match form {
            Form::Read => {
                let c = self.set.cnmi;
                Ok(Resp::line(format!(
                    "+CNMI: {},{},{},{},{}",
                    c[0], c[1], c[2], c[3], c[4]
                )))
            }
            Form::Test => Ok(Resp::line("+CNMI: (0-3),(0-3),(0-3),(0-2),(0,1)")),
            Form::Exec => Err(AtError::Error),
            Form::Set(a) => {
                let limits = [3, 3, 3, 2, 1];
                let mut v = [0u8; 5];
                for (i, lim) in limits.iter().enumerate() {
                    v[i] = a
                        .int_in(i, 0, *lim)
                        .map_err(|_| AtError::Cms(303))?
                        .unwrap_or(0) as u8;
                }
                if a.len() > 5 {
                    return Err(AtError::Error);
                }
                self.set.cnmi = v;
                if v[0] != 0 {
                    let buffered = std::mem::take(&mut self.sms.buffered);
                    if v[4] == 0 {
                        for u in buffered {
                            self.urc(u);
                        }
                    }
                }
                Ok(Resp::ok())
            }
        }
    }

    fn cmd_cnma(&mut self, form: &Form, now: Instant) -> CmdResult {
        let n = match form {
            Form::Exec => 0,
            Form::Set(a) => {
                if a.len() > 1 {
                    // +CNMA=<n>,<length> with an RP-ACK/RP-ERROR TPDU: not modelled.
                    return Err(AtError::Cms(303));
                }
                a.int_in(0, 0, 2)?.unwrap_or(0)
            }
            Form::Test => return Ok(Resp::line("+CNMA: (0-2)")),
            Form::Read => return Err(AtError::Error),
        };
        if self.set.csms != 1 {
            return Err(AtError::Cms(340));
        }
        let Some((_, delivery)) = self.sms.cnma_pending.take() else {
            return Err(AtError::Cms(340));
        };
        self.cancel(|e| matches!(e, Event::CnmaTimeout(_)));
        if n == 2 && !delivery.report {
            // RP-ERROR: the SMSC keeps the message and retries later.
            self.sms.network_queue.push_front(delivery);
            self.schedule(later(now, NETWORK_RETRY_MS), Event::NetworkRetry);
        } else {
            self.deliver_network_queue(now);
        }
        Ok(Resp::ok())
    }

    pub(crate) fn cnma_timeout(&mut self, id: u64) {
        let Some((pending, _)) = &self.sms.cnma_pending else {
            return;
        };
        if *pending != id {
            return;
        }
        let Some((_, delivery)) = self.sms.cnma_pending.take() else {
            return;
        };
        // 27.005 +CNMA: no acknowledgement in time → the ME sets <mt> and <ds> of +CNMI to 0.
        self.set.cnmi[1] = 0;
        self.set.cnmi[3] = 0;
        self.counters.unacked += 1;
        if delivery.report {
            return;
        }
        self.sms.network_queue.push_front(delivery);
        let at = later(Instant::now(), NETWORK_RETRY_MS);
        self.schedule(at, Event::NetworkRetry);
    }

    fn cmd_cmgr(&mut self, form: &Form, now: Instant) -> CmdResult {
        let a = match form {
            Form::Set(a) => a,
            Form::Test => return Ok(Resp::ok()),
            _ => return Err(AtError::Error),
        };
        self.sms_gate(now)?;
        let index = a.int(0)?.ok_or(AtError::Cms(321))?;
        let base = self.base();
        let mem = self.set.cpms[0];
        let (m, slot) = self
            .sms
            .resolve(mem, index, base)
            .ok_or(AtError::Cms(321))?;
        let text_mode = self.set.cmgf == 1;
        let Some(msg) = self.sms.storage_mut(m).slots[slot].as_mut() else {
            return if self.dialect.profile().empty_read_ok {
                Ok(Resp::ok())
            } else {
                Err(AtError::Cms(321))
            };
        };
        let shown_stat = msg.stat;
        if msg.stat == 0 {
            msg.stat = 1;
        }
        let msg = msg.clone();
        let lines = if text_mode {
            self.text_entry("+CMGR: ", None, shown_stat, &msg.pdu)
        } else {
            vec![
                format!("+CMGR: {shown_stat},,{}", msg.tpdu_len),
                msg.pdu.clone(),
            ]
        };
        Ok(Resp {
            delay_ms: if m == Mem::Sm { SIM_READ_MS_PER_MSG } else { 0 },
            ..Resp::block(lines)
        })
    }

    /// Text-mode header and body of a stored message.
    fn text_entry(&self, tag: &str, index: Option<usize>, stat: u8, pdu_hex: &str) -> Vec<String> {
        let idx = index.map(|i| format!("{i},")).unwrap_or_default();
        let st = stat_text(stat);
        match pdu::decode(pdu_hex) {
            Ok(Pdu::Deliver(d)) => vec![
                format!(
                    "{tag}{idx}\"{st}\",\"{}\",,\"{}\"",
                    d.from.number,
                    text_ts(&d.scts)
                ),
                self.shown_text(&d.text),
            ],
            Ok(Pdu::StatusReport(r)) => vec![format!(
                "{tag}{idx}\"{st}\",6,{},\"{}\",{},\"{}\",\"{}\",{}",
                r.mr,
                r.recipient.number,
                num_type(&r.recipient.number),
                text_ts(&r.scts),
                text_ts(&r.discharge_time),
                r.status
            )],
            Ok(Pdu::Submit(s)) => vec![
                format!("{tag}{idx}\"{st}\",\"{}\",", s.to.number),
                self.shown_text(&s.text),
            ],
            Err(_) => vec![format!("{tag}{idx}\"{st}\",\"\",,"), String::new()],
        }
    }

    fn shown_text(&self, text: &str) -> String {
        if self.set.cscs == "UCS2" {
            super::ussd::ucs2_hex(text)
        } else {
            text.replace(['\r', '\n'], " ")
        }
    }

    fn cmd_cmgl(&mut self, form: &Form, now: Instant) -> CmdResult {
        let text_mode = self.set.cmgf == 1;
        let want = match form {
            Form::Test => {
                return Ok(Resp::line(if text_mode {
                    "+CMGL: (\"REC UNREAD\",\"REC READ\",\"STO UNSENT\",\"STO SENT\",\"ALL\")"
                } else {
                    "+CMGL: (0-4)"
                }));
            }
            Form::Exec if text_mode => 0,
            Form::Exec => 0,
            Form::Set(a) if text_mode => {
                stat_from_text(a.text(0).unwrap_or("REC UNREAD")).ok_or(AtError::Cms(305))?
            }
            Form::Set(a) => a
                .int_in(0, 0, 4)
                .map_err(|_| AtError::Cms(304))?
                .unwrap_or(0) as u8,
            Form::Read => return Err(AtError::Error),
        };
        self.sms_gate(now)?;
        let base = self.base();
        let mem = self.set.cpms[0];
        let mut blocks = Vec::new();
        let mut from_sim = 0;
        for (m, slot, index) in self.sms.slots_of(mem, base) {
            let Some(msg) = self.sms.storage(m).slots[slot].clone() else {
                continue;
            };
            if want != 4 && msg.stat != want {
                continue;
            }
            if m == Mem::Sm {
                from_sim += 1;
            }
            blocks.push(if text_mode {
                self.text_entry("+CMGL: ", Some(index), msg.stat, &msg.pdu)
            } else {
                vec![
                    format!("+CMGL: {index},{},,{}", msg.stat, msg.tpdu_len),
                    msg.pdu.clone(),
                ]
            });
            if msg.stat == 0 {
                if let Some(s) = self.sms.storage_mut(m).slots[slot].as_mut() {
                    s.stat = 1;
                }
            }
        }
        Ok(Resp {
            blocks,
            delay_ms: SIM_READ_MS_PER_MSG * from_sim,
            ..Resp::ok()
        })
    }

    fn cmd_cmgd(&mut self, form: &Form, now: Instant) -> CmdResult {
        let a = match form {
            Form::Set(a) => a,
            Form::Test => {
                let base = self.base();
                let used: Vec<String> = self
                    .sms
                    .slots_of(self.set.cpms[0], base)
                    .into_iter()
                    .filter(|(m, s, _)| self.sms.storage(*m).slots[*s].is_some())
                    .map(|(_, _, i)| i.to_string())
                    .collect();
                return Ok(Resp::line(format!("+CMGD: ({}),(0-4)", used.join(","))));
            }
            _ => return Err(AtError::Error),
        };
        self.sms_gate(now)?;
        let flag = a
            .int_in(1, 0, 4)
            .map_err(|_| AtError::Cms(302))?
            .unwrap_or(0);
        let base = self.base();
        let mem = self.set.cpms[0];
        if flag == 0 {
            let index = a.int(0)?.ok_or(AtError::Cms(321))?;
            let (m, slot) = self
                .sms
                .resolve(mem, index, base)
                .ok_or(AtError::Cms(321))?;
            self.sms.storage_mut(m).slots[slot] = None;
        } else {
            let doomed: &[u8] = match flag {
                1 => &[1],
                2 => &[1, 3],
                3 => &[1, 2, 3],
                _ => &[0, 1, 2, 3],
            };
            for (m, slot, _) in self.sms.slots_of(mem, base) {
                let s = &mut self.sms.storage_mut(m).slots[slot];
                if s.as_ref().is_some_and(|x| doomed.contains(&x.stat)) {
                    *s = None;
                }
            }
        }
        // Freed memory: the ME tells the network (RP-SMMA) and the SMSC delivers what it holds.
        self.deliver_network_queue(now);
        Ok(Resp::ok())
    }

    fn cmd_cmgs(&mut self, form: &Form, now: Instant) -> CmdResult {
        let a = match form {
            Form::Set(a) => a,
            Form::Test => return Ok(Resp::ok()),
            _ => return Err(AtError::Error),
        };
        self.sms_gate(now)?;
        let kind = if self.set.cmgf == 0 {
            let len = a
                .int(0)
                .map_err(|_| AtError::Cms(304))?
                .ok_or(AtError::Cms(304))?;
            if !(7..=176).contains(&len) {
                return Err(AtError::Cms(304));
            }
            PromptKind::Pdu(len as usize)
        } else {
            let to = a.text(0).ok_or(AtError::Cms(305))?;
            let to = if self.set.cscs == "UCS2" {
                super::ussd::from_ucs2_hex(to).unwrap_or_else(|| to.to_string())
            } else {
                to.to_string()
            };
            PromptKind::Text(to)
        };
        Ok(Resp {
            fin: Some(Final::None),
            post: Some(Post::Prompt(Prompt {
                kind,
                buf: Vec::new(),
            })),
            ..Resp::ok()
        })
    }

    /// One byte typed at the `> ` prompt.
    pub(crate) fn prompt_byte(&mut self, b: u8, now: Instant) {
        let Some(p) = self.prompt.as_mut() else {
            return;
        };
        match b {
            0x1A => {
                let p = p.clone();
                let resp = self.submit(&p, now);
                self.prompt_done(resp, now);
            }
            0x1B => self.prompt_done(Ok(Resp::ok()), now),
            0x08 if !p.buf.is_empty() => {
                p.buf.pop();
                self.prompt_echo(b);
            }
            // Text mode: a CR inside the text is a line break, and the prompt comes again.
            b'\r' if matches!(p.kind, PromptKind::Text(_)) => {
                p.buf.push(b'\n');
                self.prompt_echo(b'\r');
                self.write_prompt_again();
            }
            0x20..=0x7e if p.buf.len() < MAX_PROMPT => {
                p.buf.push(b);
                self.prompt_echo(b);
            }
            _ => {}
        }
    }

    fn write_prompt_again(&mut self) {
        self.prompt_echo(b'\n');
        self.prompt_echo(b'>');
        self.prompt_echo(b' ');
    }

    /// Send what was typed at the prompt.
    fn submit(&mut self, p: &Prompt, now: Instant) -> CmdResult {
        let typed = String::from_utf8_lossy(&p.buf).into_owned();
        let (to, text, pdu_hex, srr) = match &p.kind {
            PromptKind::Pdu(len) => {
                let hex: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
                let bytes = pdu::from_hex(&hex).map_err(|_| AtError::Cms(304))?;
                if tpdu_len(&bytes) != Some(*len) {
                    return Err(AtError::Cms(304));
                }
                let Ok(Pdu::Submit(s)) = pdu::decode(&hex) else {
                    return Err(AtError::Cms(304));
                };
                if s.smsc.is_none() && self.opts.smsc.is_empty() {
                    return Err(AtError::Cms(330));
                }
                (s.to.number, s.text, pdu::to_hex(&bytes), s.srr)
            }
            PromptKind::Text(to) => {
                let text = if self.set.cscs == "UCS2" {
                    super::ussd::from_ucs2_hex(&typed).unwrap_or(typed)
                } else {
                    typed
                };
                (to.clone(), text, String::new(), false)
            }
        };
        if let Some((code, n)) = &mut self.sms.send_error {
            let code = *code;
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.sms.send_error = None;
            }
            return Err(AtError::Cms(code));
        }
        if !self.net.registered() {
            return Err(AtError::Cms(331));
        }
        let mr = self.sms.next_mr;
        self.sms.next_mr = mr.wrapping_add(1);
        self.sms.sent.push(Sent {
            mr,
            to,
            text,
            pdu: pdu_hex,
            srr,
            unix: clock::unix_now(),
        });
        let latency = self.sms.send_latency_ms;
        if srr && self.sms.auto_report.enabled {
            let at = later(now, latency.saturating_add(self.sms.auto_report.delay_ms));
            let status = self.sms.auto_report.status;
            self.schedule(at, Event::StatusReport { mr, status });
        }
        Ok(Resp {
            delay_ms: latency,
            ..Resp::line(format!("+CMGS: {mr}"))
        })
    }

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
