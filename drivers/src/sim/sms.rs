//! SMS (27.005): storages SM/ME/SR/MT, CPMS, CNMI routing (+CMTI/+CMT/+CDS/+CDSI), CSMS/CNMA,
//! CMGR/CMGL/CMGD, CMGS with the `> ` prompt, status reports, storage full and the SMSC's retries.
//!
//! Here the storages and the SMS state; [`commands`] holds the AT commands, [`delivery`] the
//! mobile-terminated side (routing, retries, status reports, injections).

mod commands;
mod delivery;

use std::collections::VecDeque;

use serde_json::{Value, json};

use super::clock;
use crate::pdu::Timestamp;

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
