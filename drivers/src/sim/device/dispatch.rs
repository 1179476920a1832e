//! What the modem reads: line input with echo and the buffer limits, command lines split
//! into commands and dispatched (basic, extended, per subsystem), injected faults (forced
//! errors), the `> ` prompt, and the `garbage` op's bytes.

use tokio::time::Instant;

use super::{
    AtError, CmdResult, Device, Final, HangCure, LOG_LINES, MAX_LINE, MAX_QUEUED, Pending, Resp,
    Settings, later,
};
use crate::sim::parse::{self, Cmd, Form};

impl Device {
    // ----- input -------------------------------------------------------------------------------

    /// Bytes arrived from the port.
    pub(crate) fn input(&mut self, bytes: &[u8], now: Instant) {
        if !self.powered {
            return;
        }
        for &b in bytes {
            if self.prompt.is_some() {
                self.prompt_byte(b, now);
                continue;
            }
            match b {
                b'\r' => {
                    self.echo(&[b]);
                    self.end_of_line(now);
                    self.last_cr = true;
                }
                b'\n' => {
                    if !self.last_cr && !self.line.is_empty() {
                        self.echo(&[b]);
                        self.end_of_line(now);
                    } else if self.last_cr {
                        self.echo(&[b]);
                    }
                    self.last_cr = false;
                }
                0x08 | 0x7f => {
                    self.last_cr = false;
                    if self.line.pop().is_some() {
                        self.echo(&[b]);
                    }
                }
                0x20..=0x7e => {
                    self.last_cr = false;
                    if self.line.len() < MAX_LINE {
                        self.line.push(b);
                    }
                    self.echo(&[b]);
                }
                _ => {
                    self.counters.garbage_bytes_in += 1;
                }
            }
        }
    }

    fn echo(&mut self, b: &[u8]) {
        if self.set.echo {
            self.write(b);
        }
    }

    fn end_of_line(&mut self, now: Instant) {
        let raw = std::mem::take(&mut self.line);
        let text = String::from_utf8_lossy(&raw).into_owned();
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return;
        }
        let line = if trimmed.eq_ignore_ascii_case("A/") {
            match &self.last_line {
                Some(l) => l.clone(),
                None => return,
            }
        } else {
            trimmed.to_string()
        };
        if self.faults.hang {
            let reset = line.replace(' ', "").eq_ignore_ascii_case("AT+CFUN=1,1");
            if reset && self.faults.hang_cure == HangCure::Reset {
                // The firmware's watchdog still takes a reset: it reboots and the hang is gone.
                self.faults.hang = false;
            } else {
                self.counters.lines_while_hung += 1;
                self.log_line(format!("{line} (hung)"));
                return;
            }
        }
        if self.pending.is_some() || self.prompt.is_some() {
            if self.queued.len() < MAX_QUEUED {
                self.queued.push_back(line);
            }
            return;
        }
        self.execute_line(&line, now);
    }

    fn log_line(&mut self, line: String) {
        if self.log.len() >= LOG_LINES {
            self.log.pop_front();
        }
        self.log.push_back(line);
    }

    /// Run one command line and schedule (or write) its response.
    pub(super) fn execute_line(&mut self, line: &str, now: Instant) {
        // Anything before "AT" is noise a real modem discards; a line without AT is ignored.
        let Some(body) = parse::strip_at(line) else {
            return;
        };
        self.counters.commands += 1;
        self.log_line(line.to_string());
        self.last_line = Some(line.to_string());

        let mut chunks = Vec::new();
        let mut urc_slot = None;
        let mut delay = self.faults.latency_ms;
        let mut fin = Final::Ok;
        let mut post = None;

        let forced = self.take_forced_error();
        match (forced, parse::parse_line(body)) {
            (Some(e), _) => fin = Final::Err(e),
            (None, Err(_)) => fin = Final::Err(AtError::Error),
            // The firmware lacks the command (the `reject` option): plain ERROR, as unknown.
            (None, Ok(_)) if self.rejects(body) => fin = Final::Err(AtError::Error),
            (None, Ok(cmds)) => {
                for cmd in &cmds {
                    self.executing = true;
                    let r = self.exec_cmd(cmd, now);
                    self.executing = false;
                    match r {
                        Ok(resp) => {
                            delay = delay.saturating_add(resp.delay_ms);
                            if !resp.blocks.is_empty() {
                                if self.set.verbose {
                                    chunks.push("\r\n".to_string());
                                }
                                for b in &resp.blocks {
                                    let mut s = String::new();
                                    for l in b {
                                        s.push_str(l);
                                        s.push_str("\r\n");
                                    }
                                    chunks.push(s);
                                    if urc_slot.is_none() {
                                        urc_slot = Some(chunks.len());
                                    }
                                }
                            }
                            if let Some(f) = resp.fin {
                                fin = f;
                            }
                            if resp.post.is_some() {
                                post = resp.post;
                                break;
                            }
                            if fin != Final::Ok {
                                break;
                            }
                        }
                        Err(e) => {
                            fin = Final::Err(e);
                            break;
                        }
                    }
                }
            }
        }
        let ready_at = later(now, delay);
        let slot = urc_slot.unwrap_or(chunks.len());
        self.pending = Some(Pending {
            ready_at,
            chunks,
            urc_slot: slot,
            fin,
            post,
        });
        if delay == 0 {
            self.flush_pending(now);
        }
    }

    /// Whether a command of the line is one the `reject` option refuses.
    fn rejects(&self, body: &str) -> bool {
        if self.opts.reject.is_empty() {
            return false;
        }
        body.split(';').any(|c| {
            let c: String = c
                .chars()
                .filter(|ch| !ch.is_whitespace())
                .collect::<String>()
                .to_ascii_uppercase();
            self.opts
                .reject
                .iter()
                .any(|p| parse::command_matches(&parse::normalize_command(p), &c))
        })
    }

    fn take_forced_error(&mut self) -> Option<AtError> {
        if let Some((text, n)) = &mut self.faults.vendor_error {
            if *n > 0 {
                *n -= 1;
                let e = AtError::Vendor(text.clone());
                if *n == 0 {
                    self.faults.vendor_error = None;
                }
                return Some(e);
            }
        }
        if let Some((e, n)) = &mut self.faults.errors {
            if *n > 0 {
                *n -= 1;
                let e = e.clone();
                if *n == 0 {
                    self.faults.errors = None;
                }
                return Some(e);
            }
        }
        None
    }

    /// Dispatch one command.
    fn exec_cmd(&mut self, cmd: &Cmd, now: Instant) -> CmdResult {
        match cmd {
            Cmd::Basic { name, num } => self.exec_basic(name, *num, now),
            Cmd::Dial(s) => self.cmd_dial(s, now),
            Cmd::SReg { reg, value } => match value {
                None => Ok(Resp::line(format!(
                    "{:03}",
                    self.set.sregs.get(reg).copied().unwrap_or(0)
                ))),
                Some(v) if *reg < 256 && *v < 256 => {
                    self.set.sregs.insert(*reg, *v);
                    Ok(Resp::ok())
                }
                Some(_) => Err(AtError::Error),
            },
            Cmd::Ext { name, form } => self.exec_ext(name, form, now),
        }
    }

    fn exec_basic(&mut self, name: &str, num: Option<u32>, now: Instant) -> CmdResult {
        let n = num.unwrap_or(0);
        match name {
            "E" if n <= 1 => {
                self.set.echo = n == 1;
                Ok(Resp::ok())
            }
            "V" if n <= 1 => {
                self.set.verbose = n == 1;
                Ok(Resp::ok())
            }
            "Q" if n <= 1 => {
                self.set.quiet = n == 1;
                Ok(Resp::ok())
            }
            "Z" | "&F" if n == 0 => {
                // Back to the stored profile: echo on, verbose, CMEE 0 (the factory profile).
                let keep_cfun = self.set.cfun;
                self.set = Settings::defaults(self.dialect);
                self.set.cfun = keep_cfun;
                Ok(Resp::ok())
            }
            "I" => Ok(Resp::block(self.dialect.ati(&self.opts.imei))),
            "H" => self.cmd_hangup(now),
            "A" => self.cmd_answer(now),
            "X" | "L" | "M" | "&C" | "&D" | "&W" | "&V" | "&K" => Ok(Resp::ok()),
            _ => Err(AtError::Error),
        }
    }

    fn exec_ext(&mut self, name: &str, form: &Form, now: Instant) -> CmdResult {
        match name {
            "+CMEE" => self.cmd_cmee(form),
            "+CFUN" => self.cmd_cfun(form, now),
            "+CSQ" => self.cmd_csq(form),
            "+CREG" | "+CGREG" | "+CEREG" => self.cmd_creg(name, form),
            "+COPS" => self.cmd_cops(form, now),
            "+CPAS" => self.cmd_cpas(form),
            "+CGMI" | "+GMI" | "+CGMM" | "+GMM" | "+CGMR" | "+GMR" | "+CGSN" | "+GSN" => {
                self.cmd_identity(name, form)
            }
            "+CIMI" => self.cmd_cimi(form, now),
            "+CCID" | "+QCCID" | "+CICCID" | "^ICCID" | "+ICCID" | "+ZGETICCID" | "#CCID"
            | "!ICCID" | "+CRSM" => self.cmd_iccid(name, form, now),
            "+CPIN" => self.cmd_cpin(form, now),
            "+CPINR" => self.cmd_cpinr(form, now),
            "+QPINC" | "+SPIC" | "^CPIN" => self.cmd_pin_counts(name, form, now),
            "+CMGF" | "+CSCS" | "+CSCA" | "+CPMS" | "+CNMI" | "+CSMS" | "+CNMA" | "+CMGR"
            | "+CMGL" | "+CMGD" | "+CMGS" | "+CSMP" | "+CSDH" => self.exec_sms(name, form, now),
            "+CLIP" | "+CRC" | "+COLP" | "+CLCC" | "+CHUP" | "+VTS" | "+QPCMV" | "+CPCMREG"
            | "^DDSETEX" | "+QTONEDET" | "+DDET" | "+UDTMFD" => self.exec_call(name, form, now),
            "+CUSD" => self.cmd_cusd(form, now),
            _ => Err(AtError::Error),
        }
    }

    fn cmd_cmee(&mut self, form: &Form) -> CmdResult {
        match form {
            Form::Read => Ok(Resp::line(format!("+CMEE: {}", self.set.cmee))),
            Form::Test => Ok(Resp::line("+CMEE: (0-2)")),
            Form::Set(a) => {
                self.set.cmee = a.int_in(0, 0, 2)?.unwrap_or(0) as u8;
                Ok(Resp::ok())
            }
            Form::Exec => {
                self.set.cmee = 0;
                Ok(Resp::ok())
            }
        }
    }

    // ----- random bytes (the `garbage` op) -----------------------------------------------------

    /// Pseudo-random bytes (xorshift; no security use).
    pub(crate) fn random_bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                (self.rng >> 24) as u8
            })
            .collect()
    }

    /// Finish the prompt: write the response (after latency) and leave prompt mode.
    pub(crate) fn prompt_done(&mut self, resp: Result<Resp, AtError>, now: Instant) {
        self.prompt = None;
        let (blocks, delay, fin) = match resp {
            Ok(r) => (r.blocks, r.delay_ms, r.fin.unwrap_or(Final::Ok)),
            Err(e) => (vec![], 0, Final::Err(e)),
        };
        let mut chunks = Vec::new();
        if !blocks.is_empty() && self.set.verbose {
            chunks.push("\r\n".to_string());
        }
        let mut slot = None;
        for b in blocks {
            chunks.push(b.iter().map(|l| format!("{l}\r\n")).collect());
            if slot.is_none() {
                slot = Some(chunks.len());
            }
        }
        let delay = delay.saturating_add(self.faults.latency_ms);
        self.pending = Some(Pending {
            ready_at: later(now, delay),
            urc_slot: slot.unwrap_or(chunks.len()),
            chunks,
            fin,
            post: None,
        });
        if delay == 0 {
            self.flush_pending(now);
        }
    }

    /// Echo a prompt byte (the modem echoes typed PDU/text when ATE1).
    pub(crate) fn prompt_echo(&mut self, b: u8) {
        self.echo(&[b]);
    }
}
