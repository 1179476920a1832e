//! The simulated modem's state machine: line input, echo, command dispatch, response framing,
//! URC placement, timers and power/plug lifecycle. Pure logic (no I/O): the runner feeds it bytes,
//! control messages and clock ticks, and drains its output and actions.
//!
//! Here the state and its lifecycle and timers; [`dispatch`] reads and executes command lines,
//! [`output`] frames what goes back.

mod dispatch;
mod output;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use super::SimOptions;
use super::call::CallState;
use super::dialect::Dialect;
use super::identity::SimCard;
use super::network::Network;
use super::parse::Syntax;
use super::sms::{Mem, Prompt, SmsState};
use super::ussd::UssdState;

/// How many command lines the `state` snapshot keeps.
const LOG_LINES: usize = 200;
/// Longest command line accepted (longer lines are discarded, like a modem's buffer overflow).
const MAX_LINE: usize = 1024;
/// Command lines buffered while a response is still pending.
const MAX_QUEUED: usize = 32;

/// Longest delay anything is scheduled with (control values beyond are capped, never overflow).
const MAX_DELAY_MS: u64 = 7 * 24 * 3600 * 1000;

/// `now` plus `ms` milliseconds, capped at a week.
pub(crate) fn later(now: Instant, ms: u64) -> Instant {
    now + Duration::from_millis(ms.min(MAX_DELAY_MS))
}

/// A duration of `secs` seconds; NaN, negative and huge values are made sane.
pub(crate) fn secs(secs: f64) -> Duration {
    if secs.is_finite() && secs > 0.0 {
        Duration::from_secs_f64(secs.min(86_400.0))
    } else {
        Duration::ZERO
    }
}

/// A failing final result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AtError {
    /// Plain "ERROR" (syntax, unknown command).
    Error,
    /// 27.007 equipment error (+CME ERROR).
    Cme(u16),
    /// 27.005 message service error (+CMS ERROR).
    Cms(u16),
    /// A vendor word instead of ERROR.
    Vendor(String),
}

impl From<Syntax> for AtError {
    fn from(_: Syntax) -> Self {
        AtError::Error
    }
}

/// Final result of a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Final {
    Ok,
    Err(AtError),
    /// Another result word (NO CARRIER, BUSY …).
    Word(String),
    /// No final result (the `> ` prompt follows instead).
    None,
}

/// What runs after a response has been written.
#[derive(Debug)]
pub(crate) enum Post {
    /// Enter the SMS text/PDU prompt.
    Prompt(Prompt),
    /// Restart the modem (AT+CFUN=1,1).
    Reboot,
}

/// The outcome of one command.
#[derive(Debug, Default)]
pub(crate) struct Resp {
    /// Information text: blocks of lines kept together (URCs go only between blocks).
    pub blocks: Vec<Vec<String>>,
    /// Extra time before the response is written (slow commands).
    pub delay_ms: u64,
    /// A final result other than OK.
    pub fin: Option<Final>,
    /// Something to do after the response is written.
    pub post: Option<Post>,
}

impl Resp {
    pub(crate) fn ok() -> Resp {
        Resp::default()
    }
    pub(crate) fn line(s: impl Into<String>) -> Resp {
        Resp {
            blocks: vec![vec![s.into()]],
            ..Resp::default()
        }
    }
    /// Each line its own block (URCs may go between them).
    pub(crate) fn lines(v: Vec<String>) -> Resp {
        Resp {
            blocks: v.into_iter().map(|l| vec![l]).collect(),
            ..Resp::default()
        }
    }
    /// All lines one block.
    pub(crate) fn block(v: Vec<String>) -> Resp {
        Resp {
            blocks: if v.is_empty() { vec![] } else { vec![v] },
            ..Resp::default()
        }
    }
    pub(crate) fn with_final(mut self, f: Final) -> Resp {
        self.fin = Some(f);
        self
    }
}

/// Result type of command handlers.
pub(crate) type CmdResult = Result<Resp, AtError>;

/// Timed events.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    SimReady,
    SmsReady,
    Register,
    Signal,
    Ring,
    DialOutcome,
    UssdReply(super::ussd::UssdAnswer),
    StatusReport { mr: u8, status: u8 },
    CnmaTimeout(u64),
    NetworkRetry,
    Unplug,
    Replug,
}

/// Requests from the device to the runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Close the pty and remove the link.
    Unplug,
    /// Open a new pty, point the link at it and boot.
    Plug,
    /// From now on the port appears under this link (a USB port renumbered).
    Relink(std::path::PathBuf),
}

/// Where URCs due during a response go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UrcMode {
    /// Between the response's lines (real modems do this).
    Inside,
    /// Only after the final result.
    Between,
}

/// Settings reset at every boot (ATZ/AT&F reset a subset).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub echo: bool,
    pub verbose: bool,
    pub quiet: bool,
    pub cmee: u8,
    pub cmgf: u8,
    pub cscs: String,
    pub cnmi: [u8; 5],
    pub csms: u8,
    pub creg_n: u8,
    pub cgreg_n: u8,
    pub cereg_n: u8,
    pub cops_format: u8,
    pub clip: bool,
    pub crc: bool,
    pub colp: bool,
    pub cusd_n: u8,
    pub cpms: [Mem; 3],
    pub cfun: u8,
    pub sregs: BTreeMap<u32, u32>,
}

impl Settings {
    pub(crate) fn defaults(d: Dialect) -> Settings {
        let p = d.profile();
        let mut sregs = BTreeMap::new();
        sregs.insert(0, 0);
        sregs.insert(3, 13);
        sregs.insert(4, 10);
        sregs.insert(5, 8);
        sregs.insert(7, 60);
        Settings {
            echo: true,
            verbose: true,
            quiet: false,
            cmee: 0,
            cmgf: 0,
            cscs: p.cscs.to_string(),
            cnmi: p.cnmi,
            csms: 0,
            creg_n: 0,
            cgreg_n: 0,
            cereg_n: 0,
            cops_format: 0,
            clip: false,
            crc: false,
            colp: false,
            cusd_n: 0,
            cpms: [Mem::Sm, Mem::Sm, Mem::Sm],
            cfun: 1,
            sregs,
        }
    }
}

/// Injected faults.
#[derive(Debug, Clone)]
pub(crate) struct Faults {
    pub latency_ms: u64,
    pub hang: bool,
    /// What ends the hang besides the `hang` op: nothing, a soft reset, or a power cycle.
    pub hang_cure: HangCure,
    pub errors: Option<(AtError, u32)>,
    pub drop_final_ok: u32,
    pub vendor_error: Option<(String, u32)>,
    pub urc_mode: UrcMode,
}

/// What a hang gives way to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HangCure {
    /// Only the `hang` op ends it.
    Never,
    /// AT+CFUN=1,1 still gets through and the reboot ends it (or a power cycle).
    Reset,
    /// Only a power cycle ends it.
    Power,
}

/// Counters shown in the `state` snapshot.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    pub commands: u64,
    pub lines_while_hung: u64,
    pub reboots: u64,
    pub power_offs: u64,
    pub power_ons: u64,
    pub dropped_sms: u64,
    pub dropped_reports: u64,
    pub garbage_bytes_in: u64,
    pub unacked: u64,
}

struct Pending {
    ready_at: Instant,
    chunks: Vec<String>,
    urc_slot: usize,
    fin: Final,
    post: Option<Post>,
}

/// The simulated modem.
pub(crate) struct Device {
    pub opts: SimOptions,
    pub dialect: Dialect,
    pub plugged: bool,
    pub powered: bool,
    pub pty_path: Option<PathBuf>,
    pub set: Settings,
    pub sim: SimCard,
    pub net: Network,
    pub sms: SmsState,
    pub calls: CallState,
    pub ussd: UssdState,
    pub faults: Faults,
    pub counters: Counters,
    pub log: VecDeque<String>,
    pub prompt: Option<Prompt>,
    out: Vec<u8>,
    line: Vec<u8>,
    last_cr: bool,
    last_line: Option<String>,
    pending: Option<Pending>,
    queued: VecDeque<String>,
    held: Vec<String>,
    /// URCs caused by the command being executed: reported after its final result.
    after: Vec<String>,
    executing: bool,
    timers: BTreeMap<(Instant, u64), Event>,
    seq: u64,
    pub(crate) actions: Vec<Action>,
    rng: u64,
}

impl Device {
    /// A modem that is not plugged in yet (the runner plugs it).
    pub(crate) fn new(opts: SimOptions) -> Device {
        let dialect = opts.dialect;
        let seed = (super::clock::unix_now() ^ (u64::from(std::process::id()) << 32)) | 1;
        Device {
            sim: SimCard::new(opts.pin.clone()),
            net: Network::new(&opts, dialect),
            sms: SmsState::new(),
            calls: CallState::default(),
            ussd: UssdState::default(),
            set: Settings::defaults(dialect),
            faults: Faults {
                latency_ms: 0,
                hang: false,
                hang_cure: HangCure::Never,
                errors: None,
                drop_final_ok: 0,
                vendor_error: None,
                urc_mode: UrcMode::Inside,
            },
            counters: Counters::default(),
            log: VecDeque::new(),
            prompt: None,
            opts,
            dialect,
            plugged: false,
            powered: false,
            pty_path: None,
            out: Vec::new(),
            line: Vec::new(),
            last_cr: false,
            last_line: None,
            pending: None,
            queued: VecDeque::new(),
            held: Vec::new(),
            after: Vec::new(),
            executing: false,
            timers: BTreeMap::new(),
            seq: 0,
            actions: Vec::new(),
            rng: seed,
        }
    }

    // ----- lifecycle -------------------------------------------------------------------------

    /// The runner opened a new pty at `path`: power on and boot.
    pub(crate) fn plugged_in(&mut self, path: PathBuf, now: Instant) {
        self.plugged = true;
        self.pty_path = Some(path);
        self.boot(now);
    }

    /// Power-on: settings back to defaults, SIM re-initialises, registration is redone.
    fn boot(&mut self, now: Instant) {
        self.powered = true;
        self.set = Settings::defaults(self.dialect);
        self.reset_io();
        self.sim.on_boot(now, self.opts.sim_busy_secs);
        self.net.on_boot();
        self.sms.on_boot();
        self.calls.on_boot();
        self.ussd.on_boot();
        for u in self.dialect.boot_urcs() {
            self.urc(u);
        }
        let busy = secs(self.opts.sim_busy_secs);
        self.schedule(now + busy, Event::SimReady);
        if let Some(ms) = self.opts.signal_urc_interval_ms {
            self.schedule(later(now, ms.max(10)), Event::Signal);
        }
    }

    fn reset_io(&mut self) {
        self.line.clear();
        self.last_cr = false;
        self.pending = None;
        self.prompt = None;
        self.queued.clear();
        self.held.clear();
        self.after.clear();
        self.timers.clear();
    }

    /// Pull the plug: the port disappears until `replug`.
    pub(crate) fn unplug(&mut self) {
        self.plugged = false;
        self.powered = false;
        self.pty_path = None;
        self.reset_io();
        self.out.clear();
        self.net.stat = 0;
        self.actions.push(Action::Unplug);
    }

    /// Plug back in (after `unplug`); no-op when plugged.
    pub(crate) fn replug(&mut self) {
        if !self.plugged {
            self.actions.push(Action::Plug);
        }
    }

    /// The power-enable line: low cuts the supply (the port vanishes), high restores it (the
    /// modem boots and its port appears after `reboot_ms`). A power cycle ends any hang
    /// except one set with `cured_by: "never"`.
    pub(crate) fn set_power(&mut self, on: bool, now: Instant) {
        if on {
            if self.powered || self.scheduled(|e| matches!(e, Event::Replug)) {
                return;
            }
            self.counters.power_ons += 1;
            if self.faults.hang_cure != HangCure::Never {
                self.faults.hang = false;
            }
            let ms = self.opts.reboot_ms;
            self.schedule(later(now, ms), Event::Replug);
        } else {
            self.cancel(|e| matches!(e, Event::Replug));
            if self.powered || self.plugged {
                self.counters.power_offs += 1;
                if self.plugged {
                    self.unplug();
                }
                self.powered = false;
            }
        }
    }

    /// Restart: the port goes away now and comes back after `reboot_ms` under a new pts.
    pub(crate) fn reboot(&mut self, now: Instant) {
        self.counters.reboots += 1;
        self.unplug();
        let ms = self.opts.reboot_ms;
        self.schedule(later(now, ms), Event::Replug);
    }

    /// Actions for the runner.
    pub(crate) fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// Bytes to write to the port.
    pub(crate) fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    // ----- timers ------------------------------------------------------------------------------

    pub(crate) fn schedule(&mut self, at: Instant, ev: Event) {
        self.seq += 1;
        self.timers.insert((at, self.seq), ev);
    }

    /// Remove timers matching `pred`.
    pub(crate) fn cancel(&mut self, pred: impl Fn(&Event) -> bool) {
        self.timers.retain(|_, ev| !pred(ev));
    }

    /// Whether a timer matching `pred` is scheduled.
    pub(crate) fn scheduled(&self, pred: impl Fn(&Event) -> bool) -> bool {
        self.timers.values().any(pred)
    }

    /// Next time `tick` has work to do.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let t = self.timers.keys().next().map(|(t, _)| *t);
        match (t, self.pending.as_ref().map(|p| p.ready_at)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Run everything due at `now`.
    pub(crate) fn tick(&mut self, now: Instant) {
        for _ in 0..10_000 {
            if self.pending.as_ref().is_some_and(|p| p.ready_at <= now) {
                self.flush_pending(now);
                continue;
            }
            let due = match self.timers.keys().next() {
                Some(&(t, s)) if t <= now => (t, s),
                _ => break,
            };
            if let Some(ev) = self.timers.remove(&due) {
                self.on_event(ev, now);
            }
        }
    }

    fn on_event(&mut self, ev: Event, now: Instant) {
        match ev {
            Event::SimReady => self.sim_ready(now),
            Event::SmsReady => {
                self.sms.ready = true;
                for u in self.dialect.sms_ready_urcs() {
                    self.urc(u);
                }
                self.deliver_network_queue(now);
            }
            Event::Register => self.register_done(now),
            Event::Signal => {
                if self.powered {
                    let rssi = self.net.current_rssi(self.set.cfun);
                    let line = self.dialect.signal_urc(rssi);
                    self.urc(line);
                    // Huawei sticks also repeat their ^BOOT line with the periodic reports:
                    // it is chatter, not a restart.
                    if self.dialect == super::dialect::Dialect::Huawei {
                        self.urc("^BOOT:20841248,0,0,0,72");
                    }
                }
                if let Some(ms) = self.opts.signal_urc_interval_ms {
                    self.schedule(later(now, ms.max(10)), Event::Signal);
                }
            }
            Event::Ring => self.ring(now),
            Event::DialOutcome => self.dial_outcome(now),
            Event::UssdReply(answer) => self.ussd_reply(&answer),
            Event::StatusReport { mr, status } => {
                if let Err(e) = self.status_report(mr, status, now) {
                    tracing::debug!(mr, "auto status report not sent: {e}");
                }
            }
            Event::CnmaTimeout(id) => self.cnma_timeout(id),
            Event::NetworkRetry => self.deliver_network_queue(now),
            Event::Unplug => self.unplug_for_reboot(now),
            Event::Replug => self.replug(),
        }
    }

    fn unplug_for_reboot(&mut self, now: Instant) {
        self.reboot(now);
    }
}

/// +CME ERROR verbose texts (27.007 9.2).
pub(crate) fn cme_text(n: u16) -> &'static str {
    match n {
        0 => "phone failure",
        3 => "operation not allowed",
        4 => "operation not supported",
        10 => "SIM not inserted",
        11 => "SIM PIN required",
        12 => "SIM PUK required",
        13 => "SIM failure",
        14 => "SIM busy",
        15 => "SIM wrong",
        16 => "incorrect password",
        20 => "memory full",
        21 => "invalid index",
        22 => "not found",
        23 => "memory failure",
        30 => "no network service",
        31 => "network timeout",
        32 => "network not allowed - emergency calls only",
        50 => "incorrect parameters",
        _ => "unknown",
    }
}

/// +CMS ERROR verbose texts (27.005 3.2.5).
pub(crate) fn cms_text(n: u16) -> &'static str {
    match n {
        300 => "ME failure",
        301 => "SMS service of ME reserved",
        302 => "operation not allowed",
        303 => "operation not supported",
        304 => "invalid PDU mode parameter",
        305 => "invalid text mode parameter",
        310 => "SIM not inserted",
        311 => "SIM PIN required",
        312 => "PH-SIM PIN required",
        313 => "SIM failure",
        314 => "SIM busy",
        315 => "SIM wrong",
        316 => "SIM PUK required",
        320 => "memory failure",
        321 => "invalid memory index",
        322 => "memory full",
        330 => "SMSC address unknown",
        331 => "no network service",
        332 => "network timeout",
        340 => "no +CNMA acknowledgement expected",
        _ => "unknown error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn device() -> (Device, Instant) {
        let now = Instant::now();
        let mut d = Device::new(SimOptions::default());
        d.plugged_in(PathBuf::from("/dev/pts/test"), now);
        d.tick(now + Duration::from_secs(2));
        d.take_output();
        (d, now + Duration::from_secs(2))
    }

    fn run(d: &mut Device, now: Instant, line: &str) -> String {
        d.input(line.as_bytes(), now);
        d.tick(now + Duration::from_secs(5));
        String::from_utf8_lossy(&d.take_output()).into_owned()
    }

    #[test]
    fn urc_goes_between_blocks_while_a_response_is_pending() {
        let (mut d, now) = device();
        run(&mut d, now, "ATE0\r");
        d.faults.latency_ms = 100;
        d.input(b"ATI\r", now);
        d.urc("+CMTI: \"SM\",1");
        d.tick(now + Duration::from_millis(100));
        let out = String::from_utf8_lossy(&d.take_output()).into_owned();
        assert_eq!(
            out,
            "\r\nGeneric\r\nGSM Modem\r\n1.0.0\r\n\r\n+CMTI: \"SM\",1\r\n\r\nOK\r\n"
        );
    }

    #[test]
    fn numeric_results_with_atv0() {
        let (mut d, now) = device();
        run(&mut d, now, "ATE0V0\r");
        assert_eq!(run(&mut d, now, "AT\r"), "0\r");
        assert_eq!(run(&mut d, now, "AT+NOPE\r"), "4\r");
    }

    proptest! {
        #[test]
        fn garbage_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let (mut d, now) = device();
            d.input(&bytes, now);
            d.input(b"\x1a\x1b\rAT+CMGS=20\r0011\x1a\r", now);
            d.tick(now + Duration::from_secs(60));
            d.input(b"AT\r", now + Duration::from_secs(60));
        }

        #[test]
        fn any_printable_command_line_is_answered(line in "[ -~]{0,80}") {
            let (mut d, now) = device();
            run(&mut d, now, "ATE0\r");
            let out = run(&mut d, now, &format!("AT{line}\r"));
            // Every AT line gets a final result unless it opened the prompt; ATV0 in the line
            // makes it numeric ("ATVA": NO CARRIER is 3), ATQ1 suppresses it.
            let numeric = ["0\r", "3\r", "4\r"].iter().any(|c| out.ends_with(c));
            prop_assert!(out.contains("OK") || out.contains("ERROR") || out.contains("> ")
                || out.contains("NO CARRIER") || numeric || d.set.quiet, "{out:?}");
        }

        #[test]
        fn any_control_message_gets_a_reply(
            op in proptest::sample::select(vec![
                "state", "sms", "sms-pdu", "report", "auto-report", "cmgs", "cnma-timeout", "call",
                "hangup", "answer", "dial-result", "ring-interval", "ussd", "ussd-table",
                "registration", "signal", "operator", "urc", "urc-mode", "latency", "hang",
                "garbage", "errors", "vendor-error", "drop-final-ok", "sim-busy", "storage-full",
                "unplug", "replug", "reboot", "dtmf", "nonsense",
            ]),
            n in any::<i64>(),
            s in "\\PC{0,20}",
        ) {
            let (mut d, now) = device();
            for msg in [
                serde_json::json!({"op": op, "ms": n, "count": n, "stat": n, "rssi": n, "mr": n,
                    "seconds": n, "delay_ms": n, "text": s, "from": s, "pdu": s, "hex": s,
                    "enabled": true, "kind": "cme", "result": "busy", "numeric": s, "digit": s}),
                serde_json::json!({"op": op, "ms": 5, "count": 2, "stat": 1, "rssi": 10, "mr": 0,
                    "seconds": 0.5, "delay_ms": 1, "text": "hi", "from": "+380501234567",
                    "enabled": false, "kind": "cms", "result": "answer", "numeric": "25503",
                    "digit": "5"}),
                serde_json::json!({"op": op}),
            ] {
                let r = d.control(&msg, now);
                prop_assert!(r.get("ok").is_some());
            }
        }
    }
}
