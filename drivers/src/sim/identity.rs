//! Identity (CGMI/CGMM/CGMR/CGSN/CIMI/ICCID) and the SIM card: busy window, PIN/PUK.

use tokio::time::Instant;

use super::device::{AtError, CmdResult, Device, Resp, later};
use super::dialect::Dialect;
use super::parse::{self, Form};

/// PIN attempts a SIM allows before asking for the PUK.
const PIN_TRIES: u8 = 3;
/// PUK attempts before the SIM is blocked for good.
const PUK_TRIES: u8 = 10;

/// Lock state of the SIM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lock {
    Ready,
    Pin,
    Puk,
    Blocked,
}

impl Lock {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Lock::Ready => "READY",
            Lock::Pin => "SIM PIN",
            Lock::Puk => "SIM PUK",
            Lock::Blocked => "BLOCKED",
        }
    }
}

/// The SIM card (its PIN counters survive reboots, like a real card).
#[derive(Debug, Clone)]
pub(crate) struct SimCard {
    pub pin: Option<String>,
    pub puk: String,
    pub lock: Lock,
    pub pin_left: u8,
    pub puk_left: u8,
    /// Finished initialising after power-on.
    pub initialized: bool,
    /// SIM-related commands answer "SIM busy" until then.
    pub busy_until: Option<Instant>,
    /// Pulled out of its holder (the `sim` control op).
    pub removed: bool,
}

impl SimCard {
    pub(crate) fn new(pin: Option<String>) -> SimCard {
        SimCard {
            lock: if pin.is_some() {
                Lock::Pin
            } else {
                Lock::Ready
            },
            pin,
            puk: "12345678".into(),
            pin_left: PIN_TRIES,
            puk_left: PUK_TRIES,
            initialized: false,
            busy_until: None,
            removed: false,
        }
    }

    /// Power-on: the card asks for its PIN again and is busy initialising for `busy_secs`.
    pub(crate) fn on_boot(&mut self, now: Instant, busy_secs: f64) {
        self.initialized = false;
        self.busy_until = Some(now + super::device::secs(busy_secs));
        if self.lock == Lock::Ready && self.pin.is_some() {
            self.lock = Lock::Pin;
        }
    }

    /// Whether the SIM answers "busy" now.
    pub(crate) fn is_busy(&self, now: Instant) -> bool {
        !self.initialized || self.busy_until.is_some_and(|t| t > now)
    }

    /// Gate for commands that read the card: "SIM not inserted" (CME 10) while it is out,
    /// "SIM busy" (CME 14) while it starts.
    pub(crate) fn gate(&self, now: Instant) -> Result<(), AtError> {
        if self.removed {
            Err(AtError::Cme(10))
        } else if self.is_busy(now) {
            Err(AtError::Cme(14))
        } else {
            Ok(())
        }
    }

    /// Gate for SIM-related commands: Ok when the SIM is ready, else the matching error.
    pub(crate) fn check(&self, now: Instant, sms: bool) -> Result<(), AtError> {
        let (cme, cms) = if self.removed {
            (10, 310)
        } else if self.is_busy(now) {
            (14, 314)
        } else {
            match self.lock {
                Lock::Ready => return Ok(()),
                Lock::Pin => (11, 311),
                Lock::Puk => (12, 316),
                Lock::Blocked => (13, 313),
            }
        };
        Err(if sms {
            AtError::Cms(cms)
        } else {
            AtError::Cme(cme)
        })
    }
}

/// The answer of another vendor's ICCID command, when `forms` lists it, as that vendor prints
/// it (Sierra's `AT!ICCID?` prints `ICCID: `; `AT+CRSM` reads EF_ICCID raw: nibble-swapped,
/// F-padded, status 144).
fn foreign_iccid_line(forms: &[String], name: &str, form: &Form, iccid: &str) -> Option<String> {
    let listed = forms
        .iter()
        .any(|f| parse::command_name(&parse::normalize_command(f)) == name);
    if !listed {
        return None;
    }
    let prefix = match (name, form) {
        ("+CCID", Form::Exec | Form::Read) => "+CCID: ",
        ("+ICCID", Form::Exec | Form::Read) | ("+CICCID", Form::Exec) => "+ICCID: ",
        ("+QCCID", Form::Exec) => "+QCCID: ",
        ("^ICCID", Form::Read) => "^ICCID: ",
        ("+ZGETICCID", Form::Exec) => "+ZGETICCID: ",
        ("#CCID", Form::Exec | Form::Read) => "#CCID: ",
        ("!ICCID", Form::Read) => "ICCID: ",
        ("+CRSM", Form::Set(a))
            if a.int(0).ok().flatten() == Some(176) && a.int(1).ok().flatten() == Some(12258) =>
        {
            return Some(format!("+CRSM: 144,0,\"{}\"", ef_iccid(iccid)));
        }
        _ => return None,
    };
    Some(format!("{prefix}{iccid}"))
}

/// EF_ICCID as stored on the card: BCD with swapped nibbles, padded with F to 10 bytes.
fn ef_iccid(iccid: &str) -> String {
    let mut digits: Vec<char> = iccid.chars().collect();
    while digits.len() < 20 || digits.len() % 2 == 1 {
        digits.push('F');
    }
    digits.chunks(2).flat_map(|p| [p[1], p[0]]).collect()
}

impl Device {
    /// The `sim` control op: the card pulled out of its holder or pushed back in. Out, every
    /// SIM command answers "SIM not inserted" and the modem leaves the network; back in, the
    /// card starts again (busy, then its PIN asked again) as after power-on.
    pub(crate) fn sim_swap(&mut self, inserted: bool, now: Instant) {
        for u in self.dialect.sim_swap_urcs(inserted) {
            self.urc(u);
        }
        if inserted {
            self.sim.removed = false;
            self.sim.on_boot(now, self.opts.sim_busy_secs);
            let busy = super::device::secs(self.opts.sim_busy_secs);
            self.schedule(now + busy, super::device::Event::SimReady);
        } else {
            self.sim.removed = true;
            self.sim.initialized = false;
            self.set_stat(0);
        }
    }

    /// The SIM finished initialising after power-on.
    pub(crate) fn sim_ready(&mut self, now: Instant) {
        self.sim.initialized = true;
        let locked = self.sim.lock != Lock::Ready;
        for u in self.dialect.sim_ready_urcs(locked) {
            self.urc(u);
        }
        if !locked {
            self.sim_unlocked(now);
        }
    }

    /// The SIM is usable: SMS initialises, network registration starts.
    fn sim_unlocked(&mut self, now: Instant) {
        self.schedule(later(now, 100), super::device::Event::SmsReady);
        self.maybe_register(now);
    }

    pub(crate) fn cmd_identity(&mut self, name: &str, form: &Form) -> CmdResult {
        if !matches!(form, Form::Exec) {
            return if matches!(form, Form::Test) {
                Ok(Resp::ok())
            } else {
                Err(AtError::Error)
            };
        }
        let p = self.dialect.profile();
        let line = match name {
            "+CGMI" | "+GMI" => p.manufacturer.to_string(),
            "+CGMM" | "+GMM" => p.model.to_string(),
            "+CGMR" | "+GMR" => format!("{}{}", p.cgmr_prefix, p.revision),
            _ => self.opts.imei.clone(),
        };
        Ok(Resp::line(line))
    }

    pub(crate) fn cmd_cimi(&mut self, form: &Form, now: Instant) -> CmdResult {
        match form {
            Form::Exec => {
                self.sim.check(now, false)?;
                Ok(Resp::line(self.opts.imsi.clone()))
            }
            Form::Test => Ok(Resp::ok()),
            _ => Err(AtError::Error),
        }
    }

    /// ICCID: readable without PIN (EF_ICCID is always readable), not while the SIM initialises.
    /// The dialect's own commands, plus the other vendors' forms the `iccid_forms` option lists.
    pub(crate) fn cmd_iccid(&mut self, name: &str, form: &Form, now: Instant) -> CmdResult {
        let d = self.dialect;
        let iccid = &self.opts.iccid;
        let native = match (d, name, form) {
            (Dialect::Generic, "+CCID", Form::Exec | Form::Read) => Some("+CCID: "),
            (Dialect::Quectel, "+QCCID", Form::Exec) => Some("+QCCID: "),
            (Dialect::Quectel, "+CCID", Form::Exec) => Some("+CCID: "),
            // SIM800-family AT+CCID prints the bare number; SIM7600 AT+CICCID prints +ICCID:.
            (Dialect::Simcom, "+CCID", Form::Exec) => Some(""),
            (Dialect::Simcom, "+CICCID", Form::Exec) => Some("+ICCID: "),
            (Dialect::Huawei, "^ICCID", Form::Read) => Some("^ICCID: "),
            (Dialect::Zte, "+ZGETICCID", Form::Exec) => Some("+ZGETICCID: "),
            (Dialect::Zte, "+ICCID", Form::Exec) => Some("ICCID: "),
            // SIM800 and SIM900 AT+CCID print the bare number.
            (Dialect::Simcom2g, "+CCID", Form::Exec) => Some(""),
            (Dialect::Telit, "#CCID", Form::Exec | Form::Read) => Some("#CCID: "),
            (Dialect::Ublox, "+CCID", Form::Exec | Form::Read) => Some("+CCID: "),
            // ModemManager's sierra plugin strips `!ICCID:`; the undocumented AT+ICCID of some
            // firmwares answers `ICCID:` (networkmanager-list, July 2013).
            (Dialect::Sierra, "!ICCID", Form::Read) => Some("!ICCID: "),
            (Dialect::Sierra, "+ICCID", Form::Exec) => Some("ICCID: "),
            (Dialect::Fibocom, "+CCID", Form::Exec | Form::Read) => Some("+CCID: "),
            (Dialect::Fibocom, "+ICCID", Form::Exec) => Some("+ICCID: "),
            _ => None,
        };
        let line = match native {
            Some(prefix) => format!("{prefix}{iccid}"),
            None => match foreign_iccid_line(&self.opts.iccid_forms, name, form, iccid) {
                Some(line) => line,
                None if matches!(form, Form::Test) && name != "+ICCID" => return Ok(Resp::ok()),
                None => return Err(AtError::Error),
            },
        };
        self.sim.gate(now)?;
        if self.sim.lock == Lock::Blocked {
            return Err(AtError::Cme(13));
        }
        Ok(Resp::line(line))
    }

    pub(crate) fn cmd_cpin(&mut self, form: &Form, now: Instant) -> CmdResult {
        match form {
            Form::Test => Ok(Resp::ok()),
            Form::Read => {
                self.sim.gate(now)?;
                match self.sim.lock {
                    Lock::Blocked => Err(AtError::Cme(13)),
                    l => Ok(Resp::line(format!("+CPIN: {}", l.name()))),
                }
            }
            Form::Set(a) => {
                self.sim.gate(now)?;
                let code = a.text(0).ok_or(AtError::Cme(50))?.to_string();
                let new_pin = a.text(1).map(str::to_string);
                match self.sim.lock {
                    Lock::Ready => Err(AtError::Cme(3)),
                    Lock::Blocked => Err(AtError::Cme(13)),
                    Lock::Pin => {
                        if self.sim.pin.as_deref() == Some(code.as_str()) {
                            self.sim.pin_left = PIN_TRIES;
                            self.unlock(now);
                            Ok(Resp::ok())
                        } else {
                            self.sim.pin_left = self.sim.pin_left.saturating_sub(1);
                            if self.sim.pin_left == 0 {
                                self.sim.lock = Lock::Puk;
                                if matches!(
                                    self.dialect,
                                    Dialect::Quectel | Dialect::Simcom | Dialect::Simcom2g
                                ) {
                                    self.urc("+CPIN: SIM PUK");
                                }
                            }
                            Err(AtError::Cme(16))
                        }
                    }
                    Lock::Puk => {
                        let Some(new_pin) = new_pin else {
                            return Err(AtError::Cme(50));
                        };
                        if code == self.sim.puk {
                            self.sim.pin = Some(new_pin);
                            self.sim.pin_left = PIN_TRIES;
                            self.sim.puk_left = PUK_TRIES;
                            self.unlock(now);
                            Ok(Resp::ok())
                        } else {
                            self.sim.puk_left = self.sim.puk_left.saturating_sub(1);
                            if self.sim.puk_left == 0 {
                                self.sim.lock = Lock::Blocked;
                            }
                            Err(AtError::Cme(16))
                        }
                    }
                }
            }
            Form::Exec => Err(AtError::Error),
        }
    }

    fn unlock(&mut self, now: Instant) {
        self.sim.lock = Lock::Ready;
        if matches!(
            self.dialect,
            Dialect::Quectel | Dialect::Simcom | Dialect::Simcom2g
        ) {
            self.urc("+CPIN: READY");
        }
        if self.dialect == Dialect::Fibocom {
            self.urc("+SIM READY");
        }
        if self.dialect == Dialect::Telit {
            self.urc("#QSS: 2");
        }
        if self.dialect == Dialect::Huawei {
            self.urc("^SIMST: 1");
        }
        self.sim_unlocked(now);
    }

    /// 27.007 +CPINR: remaining attempts.
    pub(crate) fn cmd_cpinr(&mut self, form: &Form, now: Instant) -> CmdResult {
        match form {
            Form::Test => Ok(Resp::ok()),
            Form::Exec | Form::Set(_) => {
                self.sim.gate(now)?;
                Ok(Resp::lines(vec![
                    format!("+CPINR: SIM PIN,{},{PIN_TRIES}", self.sim.pin_left),
                    format!("+CPINR: SIM PUK,{},{PUK_TRIES}", self.sim.puk_left),
                ]))
            }
            Form::Read => Err(AtError::Error),
        }
    }

    /// Vendor PIN counters: Quectel +QPINC, SIMCom +SPIC, Huawei ^CPIN.
    pub(crate) fn cmd_pin_counts(&mut self, name: &str, form: &Form, now: Instant) -> CmdResult {
        let ok = matches!(
            (self.dialect, name),
            (Dialect::Quectel, "+QPINC") | (Dialect::Simcom, "+SPIC") | (Dialect::Huawei, "^CPIN")
        );
        if !ok {
            return Err(AtError::Error);
        }
        if matches!(form, Form::Test) {
            return Ok(Resp::ok());
        }
        self.sim.gate(now)?;
        let (pin, puk) = (self.sim.pin_left, self.sim.puk_left);
        match (name, form) {
            ("+QPINC", Form::Read) => Ok(Resp::lines(vec![
                format!("+QPINC: \"SC\",{pin},{puk}"),
                format!("+QPINC: \"P2\",{PIN_TRIES},{PUK_TRIES}"),
            ])),
            ("+QPINC", Form::Set(a)) => match a.text(0) {
                Some(f) if f.eq_ignore_ascii_case("SC") => {
                    Ok(Resp::line(format!("+QPINC: \"SC\",{pin},{puk}")))
                }
                Some(f) if f.eq_ignore_ascii_case("P2") => Ok(Resp::line(format!(
                    "+QPINC: \"P2\",{PIN_TRIES},{PUK_TRIES}"
                ))),
                _ => Err(AtError::Cme(50)),
            },
            ("+SPIC", Form::Exec) => Ok(Resp::line(format!(
                "+SPIC: {pin},{puk},{PIN_TRIES},{PUK_TRIES}"
            ))),
            ("^CPIN", Form::Read) => {
                let (code, times) = match self.sim.lock {
                    Lock::Ready => ("READY", String::new()),
                    Lock::Pin => ("SIM PIN", pin.to_string()),
                    Lock::Puk => ("SIM PUK", puk.to_string()),
                    Lock::Blocked => return Err(AtError::Cme(13)),
                };
                Ok(Resp::line(format!(
                    "^CPIN: {code},{times},{puk},{pin},{PUK_TRIES},{PIN_TRIES}"
                )))
            }
            _ => Err(AtError::Error),
        }
    }
}
