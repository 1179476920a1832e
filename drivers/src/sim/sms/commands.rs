//! The SMS commands of 27.005: CSMS/CPMS/CNMI/CNMA, CMGR/CMGL/CMGD, and CMGS with its `> `
//! prompt (PDU and text mode) and the submission to the network.

use tokio::time::Instant;

use super::{
    MAX_PROMPT, Mem, NETWORK_RETRY_MS, Prompt, PromptKind, SIM_READ_MS_PER_MSG, Sent, num_type,
    stat_from_text, stat_text, text_ts, tpdu_len,
};
use crate::pdu::{self, Pdu};
use crate::sim::clock;
use crate::sim::device::{AtError, CmdResult, Device, Event, Final, Post, Resp, later};
use crate::sim::parse::Form;

impl Device {
    fn sms_gate(&self, now: Instant) -> Result<(), AtError> {
        self.sim.check(now, true)?;
        if !self.sms.ready {
            return Err(AtError::Cms(314));
        }
        Ok(())
    }

    pub(super) fn base(&self) -> usize {
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
                        crate::sim::ussd::ucs2_hex(&self.opts.smsc)
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
                        crate::sim::ussd::from_ucs2_hex(raw).unwrap_or_else(|| raw.to_string())
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
    pub(super) fn text_entry(
        &self,
        tag: &str,
        index: Option<usize>,
        stat: u8,
        pdu_hex: &str,
    ) -> Vec<String> {
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
            crate::sim::ussd::ucs2_hex(text)
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
                crate::sim::ussd::from_ucs2_hex(to).unwrap_or_else(|| to.to_string())
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
                    crate::sim::ussd::from_ucs2_hex(&typed).unwrap_or(typed)
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
}
