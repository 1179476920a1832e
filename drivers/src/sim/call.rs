//! Voice calls: ATD/ATA/ATH/+CHUP, RING/+CRING/+CLIP, +CLCC, +VTS, vendor voice-port commands
//! (which decide when the voice PCM port streams) and DTMF heard from the far end.

use serde_json::{Value, json};
use tokio::time::Instant;

use super::device::{AtError, CmdResult, Device, Event, Final, Resp, later};
use super::dialect::VoicePathRule;
use super::parse::Form;

/// 27.007 +CLCC <stat>.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallStat {
    Active = 0,
    Alerting = 3,
    Incoming = 4,
}

/// One call.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub idx: usize,
    pub mt: bool,
    pub stat: CallStat,
    pub number: String,
    pub validity: u8,
    pub started: Option<Instant>,
}

/// What the network does with the next ATD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DialResult {
    pub result: String,
    pub delay_ms: u64,
}

impl Default for DialResult {
    fn default() -> Self {
        DialResult {
            result: "answer".into(),
            delay_ms: 1000,
        }
    }
}

/// Calls and call-related records.
#[derive(Debug, Clone)]
pub(crate) struct CallState {
    pub calls: Vec<Call>,
    pub next_dial: Option<DialResult>,
    pub dtmf: Vec<String>,
    pub voice_commands: Vec<String>,
    pub voice_mode: Option<String>,
    /// The dialect's voice-port command routed the call's audio to the voice PCM port.
    pub voice_path: bool,
    /// Reports of far-end DTMF are on (AT+QTONEDET=1 / AT+DDET=1).
    pub dtmf_detect: bool,
    /// Digits the far end pressed (the `dtmf` op).
    pub far_dtmf: Vec<String>,
    pub dialed: Vec<String>,
    pub ring_interval_ms: u64,
}

impl Default for CallState {
    fn default() -> Self {
        CallState {
            calls: Vec::new(),
            next_dial: None,
            dtmf: Vec::new(),
            voice_commands: Vec::new(),
            voice_mode: None,
            voice_path: false,
            dtmf_detect: false,
            far_dtmf: Vec::new(),
            dialed: Vec::new(),
            ring_interval_ms: 3000,
        }
    }
}

impl CallState {
    /// Reset at power-on, keeping the records (DTMF, voice commands) and settings for the tests.
    pub(crate) fn on_boot(&mut self) {
        self.calls.clear();
        self.voice_mode = None;
        self.voice_path = false;
        self.dtmf_detect = false;
    }

    /// Whether a call is connected (27.007 stat 0).
    pub(crate) fn any_active(&self) -> bool {
        self.calls.iter().any(|c| c.stat == CallStat::Active)
    }

    /// The last call is gone: a voice path tied to the call closes with it.
    fn calls_gone(&mut self, rule: VoicePathRule) {
        if self.calls.is_empty() && rule != VoicePathRule::Persistent {
            self.voice_path = false;
            self.voice_mode = None;
        }
    }

    /// +CPAS activity: 0 ready, 3 ringing, 4 call in progress.
    pub(crate) fn cpas(&self) -> u8 {
        if self.calls.iter().any(|c| c.stat == CallStat::Incoming) {
            3
        } else if self.calls.is_empty() {
            0
        } else {
            4
        }
    }

    fn free_idx(&self) -> usize {
        (1..)
            .find(|i| self.calls.iter().all(|c| c.idx != *i))
            .unwrap_or(1)
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "active": self.calls.iter().map(|c| json!({
                "idx": c.idx,
                "dir": if c.mt { "mt" } else { "mo" },
                "stat": c.stat as u8,
                "number": c.number,
            })).collect::<Vec<_>>(),
            "dialed": self.dialed,
            "dtmf": self.dtmf,
            "voice_commands": self.voice_commands,
            "voice_path": self.voice_path,
            "dtmf_detect": self.dtmf_detect,
            "far_dtmf": self.far_dtmf,
            "next_dial": self.next_dial.as_ref().map(|d| json!({"result": d.result, "delay_ms": d.delay_ms})),
            "ring_interval_ms": self.ring_interval_ms,
        })
    }
}

fn number_type(n: &str) -> u8 {
    if n.starts_with('+') { 145 } else { 129 }
}

impl Device {
    pub(crate) fn cmd_dial(&mut self, s: &str, now: Instant) -> CmdResult {
        let voice = s.ends_with(';');
        let number: String = s
            .trim_end_matches(';')
            .chars()
            .filter(|c| c.is_ascii_digit() || matches!(c, '+' | '*' | '#'))
            .collect();
        if s.starts_with('>') || number.is_empty() {
            return Err(AtError::Error);
        }
        self.sim.check(now, false)?;
        if !voice {
            // Circuit-switched data is not offered by the network (and not modelled).
            return Ok(Resp::ok().with_final(Final::Word("NO CARRIER".into())));
        }
        if !self.net.registered() {
            return Ok(Resp::ok().with_final(Final::Word("NO CARRIER".into())));
        }
        if !self.calls.calls.is_empty() {
            return Err(AtError::Cme(3));
        }
        let idx = self.calls.free_idx();
        self.calls.dialed.push(number.clone());
        self.calls.calls.push(Call {
            idx,
            mt: false,
            stat: CallStat::Alerting,
            number,
            validity: 0,
            started: None,
        });
        for u in self.dialect.call_origin_urcs(idx) {
            self.urc(u);
        }
        let plan = self.calls.next_dial.clone().unwrap_or_default();
        self.schedule(later(now, plan.delay_ms), Event::DialOutcome);
        Ok(Resp::ok())
    }

    pub(crate) fn dial_outcome(&mut self, now: Instant) {
        let plan = self.calls.next_dial.take().unwrap_or_default();
        let Some(pos) = self
            .calls
            .calls
            .iter()
            .position(|c| !c.mt && c.stat != CallStat::Active)
        else {
            return;
        };
        match plan.result.as_str() {
            "answer" => self.remote_answers(pos, now),
            "ring" => {}
            other => {
                let call = self.calls.calls.remove(pos);
                self.calls.calls_gone(self.dialect.voice_path_rule());
                // 24.008 causes: 17 user busy, 19 no answer, 3 no route.
                let cc = match other {
                    "busy" => 17,
                    "no-answer" => 19,
                    _ => 3,
                };
                for u in self.dialect.call_ended_urcs(call.idx, 0, cc) {
                    self.urc(u);
                }
                self.urc(match other {
                    "busy" => "BUSY",
                    "no-answer" => "NO ANSWER",
                    _ => "NO CARRIER",
                });
            }
        }
    }

    fn remote_answers(&mut self, pos: usize, now: Instant) {
        let Some(call) = self.calls.calls.get_mut(pos) else {
            return;
        };
        call.stat = CallStat::Active;
        call.started = Some(now);
        let (idx, number) = (call.idx, call.number.clone());
        if self.set.colp {
            self.urc(format!("+COLP: \"{number}\",{},,,", number_type(&number)));
        }
        for u in self.dialect.call_connected_urcs(idx) {
            self.urc(u);
        }
    }

    pub(crate) fn ring(&mut self, now: Instant) {
        let Some(call) = self
            .calls
            .calls
            .iter()
            .find(|c| c.stat == CallStat::Incoming)
            .cloned()
        else {
            return;
        };
        self.urc(if self.set.crc {
            "+CRING: VOICE"
        } else {
            "RING"
        });
        if self.set.clip {
            let line = if call.validity == 0 {
                format!(
                    "+CLIP: \"{}\",{},,,,0",
                    call.number,
                    number_type(&call.number)
                )
            } else {
                format!("+CLIP: \"\",128,,,,{}", call.validity)
            };
            self.urc(line);
        }
        let next = later(now, self.calls.ring_interval_ms.max(100));
        self.schedule(next, Event::Ring);
    }

    /// Control `call`: an incoming call.
    pub(crate) fn incoming_call(
        &mut self,
        from: &str,
        validity: u8,
        now: Instant,
    ) -> Result<usize, String> {
        if !self.powered {
            return Err("modem is off".into());
        }
        if !self.net.registered() {
            return Err("modem is not registered".into());
        }
        if !self.calls.calls.is_empty() {
            return Err("a call is already in progress (call waiting is not modelled)".into());
        }
        let idx = self.calls.free_idx();
        self.calls.calls.push(Call {
            idx,
            mt: true,
            stat: CallStat::Incoming,
            number: from.to_string(),
            validity,
            started: None,
        });
        self.cancel(|e| matches!(e, Event::Ring));
        self.schedule(now, Event::Ring);
        Ok(idx)
    }

    /// Control `hangup`: the remote party hangs up.
    pub(crate) fn remote_hangup(&mut self, now: Instant) -> Result<(), String> {
        if self.calls.calls.is_empty() {
            return Err("no call".into());
        }
        self.end_all_calls(now, true);
        Ok(())
    }

    /// Control `answer`: the remote party answers our outgoing call.
    pub(crate) fn remote_answer(&mut self, now: Instant) -> Result<(), String> {
        let pos = self
            .calls
            .calls
            .iter()
            .position(|c| !c.mt && c.stat != CallStat::Active)
            .ok_or("no outgoing call is ringing")?;
        self.cancel(|e| matches!(e, Event::DialOutcome));
        self.calls.next_dial = None;
        self.remote_answers(pos, now);
        Ok(())
    }

    fn end_all_calls(&mut self, now: Instant, no_carrier: bool) {
        let calls = std::mem::take(&mut self.calls.calls);
        self.calls.calls_gone(self.dialect.voice_path_rule());
        self.cancel(|e| matches!(e, Event::Ring | Event::DialOutcome));
        self.calls.next_dial = None;
        for c in &calls {
            let secs = c
                .started
                .map(|t| now.saturating_duration_since(t).as_secs())
                .unwrap_or(0);
            for u in self.dialect.call_ended_urcs(c.idx, secs, 16) {
                self.urc(u);
            }
        }
        if no_carrier && !calls.is_empty() {
            self.urc("NO CARRIER");
        }
    }

    /// The radio went off with calls up: they drop with NO CARRIER.
    pub(crate) fn drop_calls_silently(&mut self) {
        let now = Instant::now();
        self.end_all_calls(now, true);
    }

    pub(crate) fn cmd_answer(&mut self, now: Instant) -> CmdResult {
        let Some(call) = self
            .calls
            .calls
            .iter_mut()
            .find(|c| c.stat == CallStat::Incoming)
        else {
            return Ok(Resp::ok().with_final(Final::Word("NO CARRIER".into())));
        };
        call.stat = CallStat::Active;
        call.started = Some(now);
        let idx = call.idx;
        self.cancel(|e| matches!(e, Event::Ring));
        for u in self.dialect.call_connected_urcs(idx) {
            self.urc(u);
        }
        Ok(Resp::ok())
    }

    pub(crate) fn cmd_hangup(&mut self, now: Instant) -> CmdResult {
        self.end_all_calls(now, false);
        Ok(Resp::ok())
    }

    pub(crate) fn exec_call(&mut self, name: &str, form: &Form, now: Instant) -> CmdResult {
        match name {
            "+CLIP" | "+CRC" | "+COLP" => {
                let flag = match name {
                    "+CLIP" => &mut self.set.clip,
                    "+CRC" => &mut self.set.crc,
                    _ => &mut self.set.colp,
                };
                match form {
                    Form::Set(a) => {
                        *flag = a.int_in(0, 0, 1)?.unwrap_or(0) == 1;
                        Ok(Resp::ok())
                    }
                    Form::Read => Ok(Resp::line(if name == "+CRC" {
                        format!("+CRC: {}", u8::from(*flag))
                    } else {
                        format!("{name}: {},1", u8::from(*flag))
                    })),
                    Form::Test => Ok(Resp::line(format!("{name}: (0,1)"))),
                    Form::Exec => Err(AtError::Error),
                }
            }
            "+CLCC" => match form {
                Form::Exec => Ok(Resp::lines(
                    self.calls
                        .calls
                        .iter()
                        .map(|c| {
                            format!(
                                "+CLCC: {},{},{},0,0,\"{}\",{}",
                                c.idx,
                                u8::from(c.mt),
                                c.stat as u8,
                                c.number,
                                number_type(&c.number)
                            )
                        })
                        .collect(),
                )),
                Form::Test => Ok(Resp::ok()),
                _ => Err(AtError::Error),
            },
            "+CHUP" => match form {
                Form::Exec => self.cmd_hangup(now),
                Form::Test => Ok(Resp::ok()),
                _ => Err(AtError::Error),
            },
            "+VTS" => match form {
                Form::Set(a) => {
                    let digits = a.text(0).ok_or(AtError::Error)?.to_string();
                    let valid = !digits.is_empty()
                        && digits
                            .chars()
                            .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D'));
                    if !valid {
                        return Err(AtError::Cme(50));
                    }
                    if !self.calls.any_active() {
                        return Err(AtError::Cme(3));
                    }
                    self.calls.dtmf.push(digits);
                    Ok(Resp::ok())
                }
                Form::Test => Ok(Resp::line("+VTS: (0-9,*,#,A,B,C,D)")),
                _ => Err(AtError::Error),
            },
            "+QTONEDET" | "+DDET" | "+UDTMFD" => self.cmd_dtmf_detect(name, form),
            _ => self.cmd_voice_port(name, form),
        }
    }

    /// Whether the voice PCM port streams now: a call is active and its audio goes there.
    pub(crate) fn voice_streaming(&self) -> bool {
        self.powered
            && self.plugged
            && self.calls.any_active()
            && (self.dialect.voice_path_rule() == VoicePathRule::Always || self.calls.voice_path)
    }

    /// Quectel AT+QTONEDET=<0|1>, SIMCom AT+DDET=<0|1>[,…]: far-end DTMF reports on/off.
    fn cmd_dtmf_detect(&mut self, name: &str, form: &Form) -> CmdResult {
        if self.dialect.dtmf_detect_command() != Some(name) {
            return Err(AtError::Error);
        }
        match form {
            Form::Set(a) => {
                self.calls.dtmf_detect = a.int_in(0, 0, 1)?.ok_or(AtError::Error)? == 1;
                Ok(Resp::ok())
            }
            Form::Read => Ok(Resp::line(format!(
                "{name}: {}",
                u8::from(self.calls.dtmf_detect)
            ))),
            Form::Test => Ok(Resp::line(format!("{name}: (0,1)"))),
            Form::Exec => Err(AtError::Error),
        }
    }

    /// Control `dtmf`: the far end pressed a key; reported per dialect when detection is on.
    pub(crate) fn far_end_dtmf(&mut self, digit: &str) -> Result<Value, String> {
        let mut chars = digit.chars();
        let d = match (chars.next(), chars.next()) {
            (Some(d), None) if d.is_ascii_digit() || matches!(d, '*' | '#' | 'A'..='D') => d,
            _ => return Err("digit must be one of 0-9, *, #, A-D".into()),
        };
        let Some(urc) = self.dialect.dtmf_urc(d) else {
            return Err("generic modems report no DTMF".into());
        };
        if !self.calls.any_active() {
            return Err("no active call".into());
        }
        self.calls.far_dtmf.push(d.to_string());
        let reported = self.dialect.dtmf_detect_command().is_none() || self.calls.dtmf_detect;
        if reported {
            self.urc(urc.clone());
        }
        Ok(json!({"reported": reported, "urc": reported.then_some(urc)}))
    }

    /// Quectel +QPCMV, SIMCom +CPCMREG, Huawei ^DDSETEX: accepted in their own dialect only, and
    /// only when the dialect's rule allows (SIMCom: active call; Huawei: any call).
    fn cmd_voice_port(&mut self, name: &str, form: &Form) -> CmdResult {
        if self.dialect.voice_command() != Some(name) {
            return Err(AtError::Error);
        }
        match form {
            Form::Set(a) => {
                let on = self.dialect.voice_path_request(a).ok_or(AtError::Cme(50))?;
                let allowed = match self.dialect.voice_path_rule() {
                    VoicePathRule::WhileActive => !on || self.calls.any_active(),
                    VoicePathRule::WhileCall => !on || !self.calls.calls.is_empty(),
                    VoicePathRule::Always | VoicePathRule::Persistent => true,
                    VoicePathRule::NoPort => false,
                };
                if !allowed {
                    return Err(AtError::Cme(3));
                }
                let args: Vec<String> =
                    a.0.iter()
                        .map(|x| match x {
                            super::parse::Arg::Empty => String::new(),
                            super::parse::Arg::Raw(s) => s.clone(),
                            super::parse::Arg::Str(s) => format!("\"{s}\""),
                        })
                        .collect();
                let args = args.join(",");
                self.calls.voice_commands.push(format!("AT{name}={args}"));
                self.calls.voice_mode = Some(args);
                self.calls.voice_path = on;
                Ok(Resp::ok())
            }
            Form::Read => Ok(Resp::line(format!(
                "{name}: {}",
                self.calls.voice_mode.as_deref().unwrap_or("0")
            ))),
            Form::Test => Ok(Resp::ok()),
            Form::Exec => Err(AtError::Error),
        }
    }
}
