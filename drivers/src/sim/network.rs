//! Radio and network: CFUN, CSQ, CREG/CGREG/CEREG (with URCs), COPS, CPAS.

use tokio::time::Instant;

use super::SimOptions;
use super::device::{AtError, CmdResult, Device, Event, Post, Resp, later};
use super::dialect::{Dialect, operator_name};
use super::identity::Lock;
use super::parse::Form;

/// How long AT+COPS=? takes (a real network scan takes seconds).
const COPS_SCAN_MS: u64 = 1500;

/// Serving network as the modem sees it.
#[derive(Debug, Clone)]
pub(crate) struct Network {
    /// Current registration status (27.007 <stat>).
    pub stat: u8,
    /// Status registration ends in (1 home, 5 roaming, 3 denied …).
    pub target_stat: u8,
    pub act: u8,
    pub operator: String,
    pub rssi: u8,
    pub lac: u16,
    pub ci: u32,
    /// AT+COPS=2: deregistered by the user.
    pub deregistered: bool,
}

impl Network {
    pub(crate) fn new(opts: &SimOptions, d: Dialect) -> Network {
        Network {
            stat: 0,
            target_stat: 1,
            act: d.profile().act,
            operator: opts.operator.clone(),
            rssi: opts.rssi,
            lac: 0x2F1A,
            ci: 0x0C8B_1A03,
            deregistered: false,
        }
    }

    pub(crate) fn on_boot(&mut self) {
        self.stat = 0;
        self.deregistered = false;
    }

    pub(crate) fn registered(&self) -> bool {
        self.stat == 1 || self.stat == 5
    }

    /// rssi as reported: 99 (unknown) while the radio is off.
    pub(crate) fn current_rssi(&self, cfun: u8) -> u8 {
        if cfun == 1 { self.rssi } else { 99 }
    }
}

impl Device {
    fn may_register(&self) -> bool {
        self.powered
            && self.set.cfun == 1
            && self.sim.initialized
            && self.sim.lock == Lock::Ready
            && !self.net.deregistered
    }

    /// Start registering if everything allows it: searching now, registered after the delay.
    pub(crate) fn maybe_register(&mut self, now: Instant) {
        if !self.may_register() || self.net.registered() {
            return;
        }
        self.set_stat(2);
        self.cancel(|e| matches!(e, Event::Register));
        let at = later(now, self.opts.register_delay_ms);
        self.schedule(at, Event::Register);
    }

    pub(crate) fn register_done(&mut self, now: Instant) {
        if !self.may_register() {
            return;
        }
        let target = self.net.target_stat;
        self.set_stat(target);
        if self.dialect == Dialect::Huawei {
            let rssi = self.net.current_rssi(self.set.cfun);
            self.urc(self.dialect.signal_urc(rssi));
        }
        self.deliver_network_queue(now);
    }

    /// Change the registration status, emitting +CREG/+CGREG/+CEREG URCs per their <n>.
    pub(crate) fn set_stat(&mut self, stat: u8) {
        if self.net.stat == stat {
            return;
        }
        self.net.stat = stat;
        for (name, n) in [
            ("+CREG", self.set.creg_n),
            ("+CGREG", self.set.cgreg_n),
            ("+CEREG", self.set.cereg_n),
        ] {
            match n {
                0 => {}
                1 => self.urc(format!("{name}: {stat}")),
                _ => {
                    let line = if self.net.registered() {
                        format!("{name}: {stat},{}", self.cell_info())
                    } else {
                        format!("{name}: {stat}")
                    };
                    self.urc(line);
                }
            }
        }
    }

    fn cell_info(&self) -> String {
        format!(
            "\"{:04X}\",\"{:08X}\",{}",
            self.net.lac, self.net.ci, self.net.act
        )
    }

    /// Radio off (CFUN=0/4): deregister, drop calls.
    fn radio_off(&mut self) {
        self.cancel(|e| matches!(e, Event::Register));
        self.set_stat(0);
        self.drop_calls_silently();
    }

    pub(crate) fn cmd_cfun(&mut self, form: &Form, now: Instant) -> CmdResult {
        match form {
            Form::Read => Ok(Resp::line(format!("+CFUN: {}", self.set.cfun))),
            Form::Test => Ok(Resp::line("+CFUN: (0,1,4),(0-1)")),
            Form::Exec => Err(AtError::Error),
            Form::Set(a) => {
                let fun = a.int(0)?.ok_or(AtError::Cme(50))?;
                let rst = a.int_in(1, 0, 1)?.unwrap_or(0);
                if !matches!(fun, 0 | 1 | 4) {
                    return Err(AtError::Cme(50));
                }
                if rst == 1 {
                    return Ok(Resp {
                        post: Some(Post::Reboot),
                        ..Resp::ok()
                    });
                }
                self.set.cfun = fun as u8;
                if fun == 1 {
                    self.maybe_register(now);
                } else {
                    self.radio_off();
                }
                Ok(Resp::ok())
            }
        }
    }

    pub(crate) fn cmd_csq(&mut self, form: &Form) -> CmdResult {
        match form {
            Form::Exec => Ok(Resp::line(format!(
                "+CSQ: {},99",
                self.net.current_rssi(self.set.cfun)
            ))),
            Form::Test => Ok(Resp::line("+CSQ: (0-31,99),(0-7,99)")),
            _ => Err(AtError::Error),
        }
    }

    pub(crate) fn cmd_creg(&mut self, name: &str, form: &Form) -> CmdResult {
        let max = if name == "+CEREG" { 5 } else { 2 };
        let n = match name {
            "+CREG" => &mut self.set.creg_n,
            "+CGREG" => &mut self.set.cgreg_n,
            _ => &mut self.set.cereg_n,
        };
        match form {
            Form::Set(a) => {
                *n = a.int_in(0, 0, max)?.unwrap_or(0) as u8;
                Ok(Resp::ok())
            }
            Form::Exec => {
                *n = 0;
                Ok(Resp::ok())
            }
            Form::Test => Ok(Resp::line(format!("{name}: (0-{max})"))),
            Form::Read => {
                let n = *n;
                let stat = self.net.stat;
                let line = if n >= 2 && self.net.registered() {
                    format!("{name}: {n},{stat},{}", self.cell_info())
                } else {
                    format!("{name}: {n},{stat}")
                };
                Ok(Resp::line(line))
            }
        }
    }

    pub(crate) fn cmd_cops(&mut self, form: &Form, now: Instant) -> CmdResult {
        let (long, short) = operator_name(&self.net.operator);
        match form {
            Form::Read => {
                let mode = if self.net.deregistered { 2 } else { 0 };
                if !self.net.registered() {
                    return Ok(Resp::line(format!("+COPS: {mode}")));
                }
                let name = match self.set.cops_format {
                    0 => long,
                    1 => short,
                    _ => self.net.operator.clone(),
                };
                Ok(Resp::line(format!(
                    "+COPS: {mode},{},\"{name}\",{}",
                    self.set.cops_format, self.net.act
                )))
            }
            Form::Test => {
                if self.set.cfun != 1 {
                    return Err(AtError::Cme(30));
                }
                let mut list = Vec::new();
                let cur = self.net.operator.clone();
                let act = self.net.act;
                let stat = if self.net.registered() { 2 } else { 1 };
                list.push(format!("({stat},\"{long}\",\"{short}\",\"{cur}\",{act})"));
                for other in ["25501", "25503", "25506"] {
                    if other != cur {
                        let (l, s) = operator_name(other);
                        list.push(format!("(3,\"{l}\",\"{s}\",\"{other}\",{act})"));
                    }
                }
                let line = format!("+COPS: {},,(0,1,2,3,4),(0,1,2)", list.join(","));
                Ok(Resp {
                    delay_ms: COPS_SCAN_MS,
                    ..Resp::line(line)
                })
            }
            Form::Exec => Err(AtError::Error),
            Form::Set(a) => {
                let mode = a.int_in(0, 0, 4)?.ok_or(AtError::Cme(50))?;
                if let Some(f) = a.int_in(1, 0, 2)? {
                    self.set.cops_format = f as u8;
                }
                match mode {
                    0 => {
                        self.net.deregistered = false;
                        self.maybe_register(now);
                    }
                    1 | 4 => {
                        let want = a.text(2).unwrap_or("");
                        let matches = want == self.net.operator || want == long || want == short;
                        if !matches && mode == 1 {
                            return Err(AtError::Cme(32));
                        }
                        self.net.deregistered = false;
                        self.maybe_register(now);
                    }
                    2 => {
                        self.net.deregistered = true;
                        self.cancel(|e| matches!(e, Event::Register));
                        self.set_stat(0);
                    }
                    _ => {}
                }
                Ok(Resp::ok())
            }
        }
    }

    pub(crate) fn cmd_cpas(&mut self, form: &Form) -> CmdResult {
        match form {
            Form::Exec => Ok(Resp::line(format!("+CPAS: {}", self.calls.cpas()))),
            Form::Test => Ok(Resp::line("+CPAS: (0-5)")),
            _ => Err(AtError::Error),
        }
    }
}
