//! Control messages (JSON objects with an "op" field): inject traffic, steer the network, inject
//! faults, read the state. Same handling for the Unix socket and `SimHandle::control`.

use serde_json::{Value, json};
use tokio::time::Instant;

use super::device::{AtError, Device, Event, UrcMode};
use super::sms::Mem;

type OpResult = Result<Value, String>;

fn field<'a>(msg: &'a Value, name: &str) -> Result<&'a Value, String> {
    msg.get(name).ok_or_else(|| format!("missing \"{name}\""))
}

fn str_field<'a>(msg: &'a Value, name: &str) -> Result<&'a str, String> {
    field(msg, name)?
        .as_str()
        .ok_or_else(|| format!("\"{name}\" must be a string"))
}

fn u64_field(msg: &Value, name: &str) -> Result<u64, String> {
    field(msg, name)?
        .as_u64()
        .ok_or_else(|| format!("\"{name}\" must be a non-negative integer"))
}

fn opt_u64(msg: &Value, name: &str) -> Result<Option<u64>, String> {
    match msg.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("\"{name}\" must be a non-negative integer")),
    }
}

fn bool_field(msg: &Value, name: &str) -> Result<bool, String> {
    field(msg, name)?
        .as_bool()
        .ok_or_else(|| format!("\"{name}\" must be true or false"))
}

/// The `commands` list of `reject` / `iccid-forms`: AT command strings (empty clears).
fn command_list(msg: &Value) -> Result<Vec<String>, String> {
    let list = field(msg, "commands")?
        .as_array()
        .ok_or("\"commands\" must be a list of AT commands")?;
    list.iter()
        .map(|c| match c.as_str() {
            Some(s) if s.trim().to_ascii_uppercase().starts_with("AT") && s.trim().len() > 2 => {
                Ok(s.trim().to_string())
            }
            _ => Err(format!(
                "{c} is not an AT command (\"AT+CGMR\", \"AT!ICCID?\")"
            )),
        })
        .collect()
}

fn ok() -> Value {
    json!({"ok": true})
}

fn with_ok(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.insert("ok".into(), Value::Bool(true));
    }
    v
}

/// Parse one control line; malformed JSON gives an error reply.
pub(crate) fn parse_line(line: &str) -> Result<Value, Value> {
    match serde_json::from_str::<Value>(line) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(error_reply("a control message must be a JSON object")),
        Err(e) => Err(error_reply(&format!("malformed JSON: {e}"))),
    }
}

/// `{"ok":false,"error":…}`
pub(crate) fn error_reply(why: &str) -> Value {
    json!({"ok": false, "error": why})
}

impl Device {
    /// Handle one control message; the reply always has "ok".
    pub(crate) fn control(&mut self, msg: &Value, now: Instant) -> Value {
        let Some(op) = msg.get("op").and_then(Value::as_str) else {
            return error_reply("missing \"op\"");
        };
        let r = self.control_op(op, msg, now);
        // Whatever the op changed may have made timers due or output ready.
        self.tick(now);
        match r {
            Ok(v) => with_ok(v),
            Err(e) => error_reply(&e),
        }
    }

    fn control_op(&mut self, op: &str, msg: &Value, now: Instant) -> OpResult {
        match op {
            "state" => Ok(self.snapshot()),
            "sms" => self.inject_sms(msg, now),
            "sms-pdu" => self.inject_pdu(msg, now),
            "report" => {
                let mr = u8::try_from(u64_field(msg, "mr")?).map_err(|_| "mr must be 0-255")?;
                let status = u8::try_from(opt_u64(msg, "status")?.unwrap_or(0))
                    .map_err(|_| "status must be 0-255")?;
                self.status_report(mr, status, now)
            }
            "auto-report" => {
                self.sms.auto_report.enabled = bool_field(msg, "enabled")?;
                if let Some(s) = opt_u64(msg, "status")? {
                    self.sms.auto_report.status =
                        u8::try_from(s).map_err(|_| "status must be 0-255")?;
                }
                if let Some(d) = opt_u64(msg, "delay_ms")? {
                    self.sms.auto_report.delay_ms = d;
                }
                Ok(ok())
            }
            "cmgs" => {
                if let Some(l) = opt_u64(msg, "latency_ms")? {
                    self.sms.send_latency_ms = l;
                }
                if let Some(mr) = opt_u64(msg, "next_mr")? {
                    self.sms.next_mr = u8::try_from(mr).map_err(|_| "next_mr must be 0-255")?;
                }
                if let Some(code) = opt_u64(msg, "error")? {
                    let code = u16::try_from(code).map_err(|_| "error must be a CMS code")?;
                    let count = opt_u64(msg, "count")?.unwrap_or(1) as u32;
                    self.sms.send_error = (count > 0).then_some((code, count));
                }
                Ok(ok())
            }
            "cnma-timeout" => {
                self.sms.cnma_timeout_ms = u64_field(msg, "ms")?;
                Ok(ok())
            }
            "call" => {
                let from = msg.get("from").and_then(Value::as_str).unwrap_or("");
                let validity = opt_u64(msg, "clip_validity")?.unwrap_or(0);
                let validity = u8::try_from(validity).map_err(|_| "clip_validity must be 0-2")?;
                let idx = self.incoming_call(from, validity.min(2), now)?;
                Ok(json!({"idx": idx}))
            }
            "hangup" => self.remote_hangup(now).map(|_| ok()),
            "dtmf" => {
                let digit = str_field(msg, "digit")?;
                self.far_end_dtmf(digit)
            }
            "answer" => self.remote_answer(now).map(|_| ok()),
            "dial-result" => {
                let result = str_field(msg, "result")?;
                if !matches!(
                    result,
                    "answer" | "busy" | "no-answer" | "no-carrier" | "ring"
                ) {
                    return Err("result must be answer, busy, no-answer, no-carrier or ring".into());
                }
                let delay_ms = opt_u64(msg, "delay_ms")?.unwrap_or(1000);
                self.calls.next_dial = Some(super::call::DialResult {
                    result: result.to_string(),
                    delay_ms,
                });
                Ok(ok())
            }
            "ring-interval" => {
                self.calls.ring_interval_ms = u64_field(msg, "ms")?.max(100);
                Ok(ok())
            }
            "ussd" => {
                let text = str_field(msg, "text")?.to_string();
                let more = msg.get("more").and_then(Value::as_bool).unwrap_or(false);
                let status = match opt_u64(msg, "status")? {
                    None => u8::from(more),
                    Some(s @ 0..=5) => s as u8,
                    Some(_) => return Err("status must be 0-5".into()),
                };
                let network = msg
                    .get("network_initiated")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if !network {
                    self.cancel(|e| matches!(e, Event::UssdReply(_)));
                }
                let was_pending = self.ussd.session.is_some();
                self.ussd_reply(&super::ussd::UssdAnswer { text, status });
                Ok(json!({"answered_request": was_pending && !network}))
            }
            "ussd-table" => self.ussd_table(msg),
            "registration" => {
                let stat = u64_field(msg, "stat")?;
                if stat > 5 {
                    return Err("stat must be 0-5".into());
                }
                if let Some(act) = opt_u64(msg, "act")? {
                    self.net.act = u8::try_from(act).map_err(|_| "act must be 0-255")?;
                }
                self.net.target_stat = stat as u8;
                self.cancel(|e| matches!(e, Event::Register));
                if self.powered {
                    self.set_stat(stat as u8);
                    self.deliver_network_queue(now);
                }
                Ok(ok())
            }
            "signal" => {
                let rssi = u64_field(msg, "rssi")?;
                if !(rssi <= 31 || rssi == 99) {
                    return Err("rssi must be 0-31 or 99".into());
                }
                let changed = self.net.rssi != rssi as u8;
                self.net.rssi = rssi as u8;
                if changed && self.dialect == super::dialect::Dialect::Huawei {
                    self.urc(self.dialect.signal_urc(rssi as u8));
                }
                Ok(ok())
            }
            "operator" => {
                let numeric = str_field(msg, "numeric")?;
                if !(5..=6).contains(&numeric.len()) || !numeric.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err("numeric must be MCC+MNC (5-6 digits)".into());
                }
                self.net.operator = numeric.to_string();
                Ok(ok())
            }
            "urc" => {
                let text = str_field(msg, "text")?;
                self.urc(text);
                Ok(ok())
            }
            "urc-mode" => {
                self.faults.urc_mode = match str_field(msg, "mode")? {
                    "inside" => UrcMode::Inside,
                    "between" => UrcMode::Between,
                    _ => return Err("mode must be inside or between".into()),
                };
                Ok(ok())
            }
            "latency" => {
                self.faults.latency_ms = u64_field(msg, "ms")?;
                Ok(ok())
            }
            "hang" => {
                self.faults.hang = bool_field(msg, "enabled")?;
                self.faults.hang_cure = match msg.get("cured_by").and_then(Value::as_str) {
                    None | Some("never") => super::device::HangCure::Never,
                    Some("reset") => super::device::HangCure::Reset,
                    Some("power") => super::device::HangCure::Power,
                    Some(other) => {
                        return Err(format!(
                            "cured_by must be never, reset or power, not {other:?}"
                        ));
                    }
                };
                Ok(ok())
            }
            "pin" | "power" => {
                let on = match (msg.get("level"), msg.get("on")) {
                    (Some(v), _) | (None, Some(v)) => {
                        v.as_bool().ok_or("level/on must be true or false")?
                    }
                    (None, None) => return Err("missing field level (or on)".into()),
                };
                self.set_power(on, now);
                Ok(json!({"ok": true, "powered": self.powered}))
            }
            "garbage" => {
                let bytes = match (msg.get("hex").and_then(Value::as_str), opt_u64(msg, "len")?) {
                    (Some(hex), _) => crate::pdu::from_hex(hex).map_err(|e| e.to_string())?,
                    (None, len) => {
                        let n = len.unwrap_or(16).min(65_536) as usize;
                        self.random_bytes(n)
                    }
                };
                let n = bytes.len();
                self.write_raw(&bytes);
                Ok(json!({"written": n}))
            }
            "errors" => {
                let count = u64_field(msg, "count")? as u32;
                let code = opt_u64(msg, "code")?;
                let e = match str_field(msg, "kind")? {
                    "cme" => AtError::Cme(code.unwrap_or(100) as u16),
                    "cms" => AtError::Cms(code.unwrap_or(500) as u16),
                    "error" => AtError::Error,
                    _ => return Err("kind must be cme, cms or error".into()),
                };
                self.faults.errors = (count > 0).then_some((e, count));
                Ok(ok())
            }
            "vendor-error" => {
                let text = str_field(msg, "text")?.to_string();
                let count = opt_u64(msg, "count")?.unwrap_or(1) as u32;
                self.faults.vendor_error = (count > 0).then_some((text, count));
                Ok(ok())
            }
            "reject" => {
                self.opts.reject = command_list(msg)?;
                Ok(json!({"rejecting": self.opts.reject}))
            }
            "iccid-forms" => {
                self.opts.iccid_forms = command_list(msg)?;
                Ok(json!({"iccid_forms": self.opts.iccid_forms}))
            }
            "drop-final-ok" => {
                self.faults.drop_final_ok = u64_field(msg, "count")? as u32;
                Ok(ok())
            }
            "sim-busy" => {
                let secs = field(msg, "seconds")?
                    .as_f64()
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .ok_or("seconds must be a non-negative number")?;
                self.sim.busy_until = Some(now + super::device::secs(secs));
                Ok(ok())
            }
            "sim" => {
                let inserted = bool_field(msg, "inserted")?;
                if inserted != self.sim.removed {
                    return Err(if inserted {
                        "the SIM is in already".to_string()
                    } else {
                        "the SIM is out already".to_string()
                    });
                }
                // Another card: its own IMSI and ICCID.
                if inserted {
                    if let Some(imsi) = msg.get("imsi").and_then(Value::as_str) {
                        self.opts.imsi = imsi.to_string();
                    }
                    if let Some(iccid) = msg.get("iccid").and_then(Value::as_str) {
                        self.opts.iccid = iccid.to_string();
                    }
                }
                self.sim_swap(inserted, now);
                Ok(ok())
            }
            "storage-full" => {
                let enabled = bool_field(msg, "enabled")?;
                let name = msg.get("storage").and_then(Value::as_str).unwrap_or("SM");
                let mem = Mem::parse(name)
                    .filter(|m| *m != Mem::Mt)
                    .ok_or("storage must be SM, ME or SR")?;
                match mem {
                    Mem::Me => self.sms.me.forced_full = enabled,
                    Mem::Sr => self.sms.sr.forced_full = enabled,
                    _ => self.sms.sm.forced_full = enabled,
                }
                if !enabled {
                    self.deliver_network_queue(now);
                }
                Ok(ok())
            }
            "unplug" => {
                if !self.plugged {
                    return Err("already unplugged".into());
                }
                self.unplug();
                Ok(ok())
            }
            "replug" => {
                if self.plugged {
                    return Err("already plugged".into());
                }
                if let Some(link) = msg.get("link") {
                    let link = link.as_str().ok_or("link must be a path")?;
                    if link.is_empty() {
                        return Err("link must not be empty".into());
                    }
                    self.actions
                        .push(super::device::Action::Relink(link.into()));
                }
                self.cancel(|e| matches!(e, Event::Replug));
                self.replug();
                Ok(ok())
            }
            "reboot" => {
                if !self.plugged {
                    return Err("unplugged".into());
                }
                self.reboot(now);
                Ok(ok())
            }
            _ => Err(format!("unknown op {op:?}")),
        }
    }

    /// The `state` snapshot.
    pub(crate) fn snapshot(&self) -> Value {
        let s = &self.set;
        let base = self.dialect.profile().first_index;
        let now = Instant::now();
        json!({
            "dialect": self.dialect.name(),
            "plugged": self.plugged,
            "powered": self.powered,
            "pty": self.pty_path.as_ref().map(|p| p.display().to_string()),
            "link": self.opts.link.display().to_string(),
            "echo": s.echo,
            "verbose": s.verbose,
            "cmee": s.cmee,
            "cmgf": s.cmgf,
            "cscs": s.cscs,
            "cnmi": s.cnmi,
            "csms": s.csms,
            "cpms": s.cpms.iter().map(|m| m.name()).collect::<Vec<_>>(),
            "cfun": s.cfun,
            "clip": s.clip,
            "crc": s.crc,
            "first_index": base,
            "registration": {
                "stat": self.net.stat,
                "act": self.net.act,
                "operator": self.net.operator,
                "rssi": self.net.rssi,
                "creg_n": s.creg_n,
                "cgreg_n": s.cgreg_n,
                "cereg_n": s.cereg_n,
            },
            "sim": {
                "state": self.sim.lock.name(),
                "busy": self.sim.is_busy(now),
                "removed": self.sim.removed,
                "pin_attempts_left": self.sim.pin_left,
                "puk_attempts_left": self.sim.puk_left,
                "imsi": self.opts.imsi,
                "iccid": self.opts.iccid,
            },
            "imei": self.opts.imei,
            "smsc": self.opts.smsc,
            "sms": self.sms.to_json(base),
            "calls": self.calls.to_json(),
            "ussd": {
                "requests": self.ussd.requests,
                "session": self.ussd.session.is_some(),
                "default_reply": self.ussd.default_reply.as_ref().map(|a| a.text.clone()),
            },
            "voice_commands": self.calls.voice_commands,
            "dtmf": self.calls.dtmf,
            "voice": {
                "path": self.calls.voice_path,
                "streaming": self.voice_streaming(),
                "dtmf_detect": self.calls.dtmf_detect,
                "far_dtmf": self.calls.far_dtmf,
            },
            "faults": {
                "latency_ms": self.faults.latency_ms,
                "hang": self.faults.hang,
                "errors_left": self.faults.errors.as_ref().map(|(_, n)| *n).unwrap_or(0),
                "vendor_errors_left": self.faults.vendor_error.as_ref().map(|(_, n)| *n).unwrap_or(0),
                "drop_final_ok": self.faults.drop_final_ok,
                "reject": self.opts.reject,
                "iccid_forms": self.opts.iccid_forms,
                "urc_mode": match self.faults.urc_mode { UrcMode::Inside => "inside", UrcMode::Between => "between" },
            },
            "counters": {
                "commands": self.counters.commands,
                "lines_while_hung": self.counters.lines_while_hung,
                "reboots": self.counters.reboots,
                "power_offs": self.counters.power_offs,
                "power_ons": self.counters.power_ons,
                "dropped_sms": self.counters.dropped_sms,
                "dropped_reports": self.counters.dropped_reports,
                "unacked": self.counters.unacked,
                "garbage_bytes_in": self.counters.garbage_bytes_in,
            },
            "commands": self.log,
        })
    }
}
