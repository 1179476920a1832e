//! Generic 27.007/27.005 modem operations and one file per vendor dialect.
//!
//! Vendor quirks live in the dialect files as data plus behaviour hooks ([`DialectSpec`]); the
//! operations here are the generic 3GPP ones and consult the spec where vendors differ.
//!
//! A new vendor is one file (`modem/<vendor>.rs` with its `SPEC`), one row in the
//! `dialects!` list below (which makes the [`Dialect`] variant) and, if it can be recognised from
//! its identity, one row in [`DETECTION`].

mod dialect;
#[cfg(test)]
mod replay;
mod storage;
mod voice;

pub use dialect::{DialectSpec, VENDOR_URCS, VoiceSpec, VoiceWhen, engine_config};
pub use storage::StoredMessage;
pub use voice::{CallInfo, CallStat, dialable, parse_clcc};

use std::time::Duration;

use serde::Serialize;

use crate::at::fields::{after_prefix, parse_fields, unquote};
use crate::at::{AtError, AtHandle, Command};

/// Declares the dialect files, the [`Dialect`] enum with one variant per file, and the
/// variant → spec table.
macro_rules! dialects {
    ($($(#[$attr:meta])* $variant:ident => $file:ident,)+) => {
        $(pub mod $file;)+

        /// A modem vendor dialect.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub enum Dialect {
            $($(#[$attr])* $variant,)+
        }

        impl Dialect {
            /// Every dialect, in declaration order.
            pub const ALL: &'static [Dialect] = &[$(Dialect::$variant),+];

            /// The dialect's spec: its data and behaviour hooks.
            pub fn spec(self) -> &'static DialectSpec {
                match self {
                    $(Dialect::$variant => &$file::SPEC,)+
                }
            }
        }
    };
}

dialects! {
    /// Plain 3GPP.
    #[default]
    Generic => generic,
    /// Quectel.
    Quectel => quectel,
    /// SIMCom.
    Simcom => simcom,
    /// Huawei.
    Huawei => huawei,
    /// ZTE (MF-series USB sticks).
    Zte => zte,
    /// SIMCom 2G (SIM800, SIM900): no PCM voice port.
    Simcom2g => simcom2g,
    /// Telit.
    Telit => telit,
    /// u-blox.
    Ublox => ublox,
    /// Sierra Wireless.
    Sierra => sierra,
    /// Fibocom.
    Fibocom => fibocom,
}

/// Words in a modem's identity (AT+CGMI / AT+CGMM, or ATI, answers; case-insensitive) that name
/// its dialect. The first row that matches wins; none means [`Dialect::Generic`].
pub const DETECTION: &[(&str, Dialect)] = &[
    ("quectel", Dialect::Quectel),
    // SIMCom's 2G models before the SIMCom row: `SIMCOM_Ltd` / `SIMCOM_SIM800L`.
    ("sim800", Dialect::Simcom2g),
    ("sim808", Dialect::Simcom2g),
    ("sim868", Dialect::Simcom2g),
    ("sim900", Dialect::Simcom2g),
    ("simcom", Dialect::Simcom),
    ("huawei", Dialect::Huawei),
    // `ZTE CORPORATION`, `ZTEWelink`.
    ("zte", Dialect::Zte),
    ("telit", Dialect::Telit),
    ("u-blox", Dialect::Ublox),
    // `Sierra Wireless, Incorporated`.
    ("sierra", Dialect::Sierra),
    ("fibocom", Dialect::Fibocom),
];

/// Who the modem and its SIM are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// AT+CGMI.
    pub manufacturer: String,
    /// AT+CGMM.
    pub model: String,
    /// AT+CGMR.
    pub firmware: String,
    /// AT+CGSN.
    pub imei: String,
    /// AT+CIMI (empty when the SIM is not usable).
    pub imsi: String,
    /// The SIM's ICCID (dialect command).
    pub iccid: String,
}

/// SIM state from AT+CPIN?.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SimState {
    /// Ready.
    Ready,
    /// Waiting for the PIN.
    PinRequired,
    /// Waiting for the PUK (PIN blocked).
    PukRequired,
    /// No SIM.
    Absent,
    /// SIM busy (+CME ERROR: 14), typically for seconds after start.
    Busy,
    /// Anything else the modem said.
    Other(String),
}

impl SimState {
    /// Short name for status payloads.
    pub fn as_str(&self) -> &str {
        match self {
            SimState::Ready => "ready",
            SimState::PinRequired => "pin-required",
            SimState::PukRequired => "puk-required",
            SimState::Absent => "absent",
            SimState::Busy => "busy",
            SimState::Other(s) => s,
        }
    }
}

/// Network registration (27.007 `<stat>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Registration {
    /// 0: not registered, not searching.
    NotRegistered,
    /// 1: home network.
    Home,
    /// 2: searching.
    Searching,
    /// 3: registration denied.
    Denied,
    /// 4: unknown.
    Unknown,
    /// 5: roaming.
    Roaming,
}

impl Registration {
    /// From 27.007 `<stat>`.
    pub fn from_stat(stat: u8) -> Self {
        match stat {
            0 => Registration::NotRegistered,
            1 => Registration::Home,
            2 => Registration::Searching,
            3 => Registration::Denied,
            5 => Registration::Roaming,
            _ => Registration::Unknown,
        }
    }

    /// Short name for status payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            Registration::NotRegistered => "not-registered",
            Registration::Home => "home",
            Registration::Searching => "searching",
            Registration::Denied => "denied",
            Registration::Unknown => "unknown",
            Registration::Roaming => "roaming",
        }
    }

    /// True when the modem can send and receive.
    pub fn is_registered(self) -> bool {
        matches!(self, Registration::Home | Registration::Roaming)
    }
}

/// The modem's network status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkStatus {
    /// SIM state.
    pub sim: SimState,
    /// Circuit-switched registration.
    pub registration: Registration,
    /// Operator long name (empty when unknown).
    pub operator: String,
    /// Operator MCC+MNC (empty when unknown).
    pub operator_numeric: String,
    /// Signal in dBm, None when unknown (CSQ 99).
    pub signal_dbm: Option<i32>,
}

/// Why a modem operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModemError {
    /// An AT command failed.
    #[error("{command}: {source}")]
    At {
        /// The command.
        command: String,
        /// The failure.
        source: AtError,
    },
    /// The SIM needs a PIN and none is configured.
    #[error("SIM PIN required and no pin configured")]
    PinRequired,
    /// The configured PIN was refused; it is not tried again (the SIM's attempts are precious).
    #[error("SIM PIN refused ({0}); not retried to keep the SIM's remaining attempts")]
    WrongPin(String),
    /// The SIM is blocked and needs its PUK.
    #[error("SIM blocked: PUK required")]
    PukRequired,
    /// No SIM inserted.
    #[error("no SIM inserted")]
    SimAbsent,
    /// The SIM stayed busy longer than allowed.
    #[error("SIM still busy after {0:?}")]
    SimBusyTimeout(Duration),
    /// An answer could not be understood.
    #[error("unexpected answer to {command}: {answer:?}")]
    Unexpected {
        /// The command.
        command: String,
        /// What the modem said.
        answer: String,
    },
}

impl ModemError {
    /// True when the port is gone.
    pub fn is_fatal(&self) -> bool {
        matches!(self, ModemError::At { source, .. } if source.is_fatal())
    }
}

fn at_err(command: &str) -> impl FnOnce(AtError) -> ModemError + '_ {
    move |source| ModemError::At {
        command: command.to_string(),
        source,
    }
}

/// CSQ `<rssi>` to dBm (27.007 8.5); None for 99 (unknown).
pub fn rssi_to_dbm(rssi: u8) -> Option<i32> {
    match rssi {
        0..=31 => Some(-113 + 2 * i32::from(rssi)),
        _ => None,
    }
}

/// Every known vendor's ICCID command with its answer prefix, tried after the dialect's own
/// (vendors without a dialect file are here only for this).
pub const ICCID_COMMANDS: &[(&str, &str)] = &[
    ("AT+CCID", "+CCID:"),
    ("AT+ICCID", "+ICCID:"),
    ("AT+CICCID", "+ICCID:"),
    ("AT+QCCID", "+QCCID:"),
    ("AT^ICCID?", "^ICCID:"),
    // ZTE.
    ("AT+ZGETICCID", "+ZGETICCID:"),
    // Telit.
    ("AT#CCID", "#CCID:"),
    // Sierra Wireless prints `!ICCID: 89...` (ModemManager plugins/sierra/mm-sim-sierra.c).
    ("AT!ICCID?", "!ICCID:"),
    // Any 3GPP modem: EF_ICCID (2FE2) read raw through the SIM.
    ("AT+CRSM=176,12258,0,0,10", "+CRSM:"),
];

/// True for a firmware's refusal of a command (it lacks it, or rejects it now), as opposed to a
/// modem that stopped answering.
fn is_refusal(e: &AtError) -> bool {
    matches!(
        e,
        AtError::Error | AtError::Cme(_) | AtError::Cms(_) | AtError::Vendor(_)
    )
}

/// The ICCID in an answer to one of the [`ICCID_COMMANDS`]; None when the answer holds none
/// (18-22 digits once normalised; `+CRSM` only with status 144).
fn iccid_from_answer(r: &crate::at::Response, prefix: &str) -> Option<String> {
    // Firmwares of one vendor disagree on the label (Sierra's AT!ICCID? prints `!ICCID:`, its
    // undocumented AT+ICCID `ICCID:`): an unexpected label is dropped, never read as digits.
    let raw = match r.field_line(prefix) {
        Some(v) => v,
        None => {
            let line = r.first_line()?;
            match line.split_once(':') {
                Some((label, v)) if !label.bytes().any(|b| b.is_ascii_digit()) => v.trim(),
                _ => line,
            }
        }
    };
    let raw = if prefix == "+CRSM:" {
        // +CRSM: 144,0,"98..." — sw1 144 is success; the data is the third field.
        let f = parse_fields(raw);
        if f.first().map(|s| s.trim()) != Some("144") {
            return None;
        }
        f.get(2).cloned()?
    } else {
        raw.to_string()
    };
    let iccid = normalize_iccid(&raw);
    ((18..=22).contains(&iccid.len()) && iccid.bytes().all(|b| b.is_ascii_digit())).then_some(iccid)
}

/// Manufacturer, model and revision from an ATI answer: `Manufacturer:`/`Model:`/`Revision:`
/// lines (SIMCom, Huawei), else the unlabelled lines in that order (Quectel, generic).
#[derive(Debug, Default, PartialEq, Eq)]
struct AtiIdentity {
    manufacturer: String,
    model: String,
    revision: String,
}

impl AtiIdentity {
    fn parse(lines: &[String]) -> Self {
        let mut out = AtiIdentity::default();
        let mut plain = Vec::new();
        for l in lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
            let lower = l.to_ascii_lowercase();
            let label = |name: &str| {
                lower
                    .strip_prefix(name)
                    .map(|_| l.get(name.len()..).unwrap_or("").trim().to_string())
            };
            if let Some(v) = label("manufacturer:") {
                out.manufacturer = v;
            } else if let Some(v) = label("model:") {
                out.model = v;
            } else if let Some(v) = label("revision:") {
                out.revision = v;
            } else if !l.contains(':') {
                plain.push(l.to_string());
            }
        }
        let mut plain = plain.into_iter();
        for field in [&mut out.manufacturer, &mut out.model, &mut out.revision] {
            if field.is_empty() {
                if let Some(v) = plain.next() {
                    *field = v;
                }
            }
        }
        out
    }
}

/// Normalises an ICCID as modems print it: quotes, trailing F padding, and the nibble-swapped
/// form some firmwares (and EF_ICCID read raw) give (`98...` instead of `89...`).
pub fn normalize_iccid(raw: &str) -> String {
    let s: String = unquote(raw)
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect();
    let s = if s.starts_with("98") {
        let b = s.as_bytes();
        let mut out = String::with_capacity(b.len());
        for pair in b.chunks(2) {
            match pair {
                [a, c] => {
                    out.push(char::from(*c));
                    out.push(char::from(*a));
                }
                [a] => out.push(char::from(*a)),
                _ => {}
            }
        }
        out
    } else {
        s
    };
    s.trim_end_matches(['F', 'f']).to_string()
}

/// Generic modem operations over an AT handle, with the dialect's differences applied.
#[derive(Debug, Clone)]
pub struct Modem {
    at: AtHandle,
    dialect: Dialect,
}

impl Modem {
    /// Wraps an engine handle; the dialect may be refined later by [`Modem::identify`].
    pub fn new(at: AtHandle, dialect: Dialect) -> Self {
        Self { at, dialect }
    }

    /// The AT handle.
    pub fn at(&self) -> &AtHandle {
        &self.at
    }

    /// The dialect in use.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Sets the dialect (forced by config, or detected).
    pub fn set_dialect(&mut self, d: Dialect) {
        self.dialect = d;
    }

    async fn run(&self, cmd: &str) -> Result<crate::at::Response, ModemError> {
        self.at.cmd(cmd).await.map_err(at_err(cmd))
    }

    /// Bare-value query such as AT+CGSN: the first line, without a `+XXX:` prefix if present.
    async fn value(&self, cmd: &str, prefix: &str) -> Result<String, ModemError> {
        let r = self.run(cmd).await?;
        let v = r
            .field_line(prefix)
            .or_else(|| r.first_line())
            .map(unquote)
            .unwrap_or_default();
        Ok(v)
    }

    /// An optional query or setting: `Ok(None)` when the firmware refuses it (ERROR, +CME/+CMS
    /// ERROR, a vendor error word), logged once at debug; a timeout or a gone port is an error.
    async fn optional(&self, cmd: &str) -> Result<Option<crate::at::Response>, ModemError> {
        match self.at.cmd(cmd).await {
            Ok(r) => Ok(Some(r)),
            Err(e) if is_refusal(&e) => {
                tracing::debug!(command = %cmd, error = %e, "optional command refused");
                Ok(None)
            }
            Err(e) => Err(at_err(cmd)(e)),
        }
    }

    /// The first of `queries` (command, answer prefix) that answers with a value; empty when
    /// every one is refused or answers nothing.
    async fn first_value(&self, queries: &[(&str, &str)]) -> Result<String, ModemError> {
        for (cmd, prefix) in queries {
            if let Some(r) = self.optional(cmd).await? {
                let v = r
                    .field_line(prefix)
                    .or_else(|| r.first_line())
                    .map(unquote)
                    .unwrap_or_default();
                if !v.is_empty() {
                    return Ok(v);
                }
            }
        }
        Ok(String::new())
    }

    /// Gets the modem into a known state: in sync, echo off, numeric errors on. Only `AT` must
    /// answer; a firmware refusing ATE0 or AT+CMEE=1 is used as it is.
    pub async fn sync(&self) -> Result<(), ModemError> {
        let mut last = None;
        for _ in 0..3 {
            match self
                .at
                .send(Command::new("AT").timeout(Duration::from_secs(2)))
                .await
            {
                Ok(_) => {
                    last = None;
                    break;
                }
                Err(e) if e.is_fatal() => return Err(at_err("AT")(e)),
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            return Err(at_err("AT")(e));
        }
        self.optional("ATE0").await?;
        self.optional("AT+CMEE=1").await?;
        Ok(())
    }

    /// Reads manufacturer, model, firmware, IMEI; detects the dialect unless `forced`; then
    /// IMSI and ICCID when the SIM allows (left empty otherwise). Best effort: each value falls
    /// back to the older command forms and ATI, and is empty when nothing answers; only a
    /// modem that stops answering (timeout, port gone) is an error.
    pub async fn identify(&mut self, forced: Option<Dialect>) -> Result<Identity, ModemError> {
        let mut manufacturer = self
            .first_value(&[("AT+CGMI", "+CGMI:"), ("AT+GMI", "+GMI:")])
            .await?;
        let mut model = self
            .first_value(&[("AT+CGMM", "+CGMM:"), ("AT+GMM", "+GMM:")])
            .await?;
        let mut firmware = self
            .first_value(&[("AT+CGMR", "+CGMR:"), ("AT+GMR", "+GMR:")])
            .await?;
        let mut ati_text = String::new();
        if manufacturer.is_empty() || model.is_empty() || firmware.is_empty() {
            if let Some(r) = self.optional("ATI").await? {
                let ati = AtiIdentity::parse(&r.lines);
                for (field, from_ati) in [
                    (&mut manufacturer, ati.manufacturer),
                    (&mut model, ati.model),
                    (&mut firmware, ati.revision),
                ] {
                    if field.is_empty() {
                        *field = from_ati;
                    }
                }
                ati_text = r.lines.join("\n");
            }
        }
        let imei = self
            .first_value(&[
                ("AT+CGSN", "+CGSN:"),
                ("AT+GSN", "+GSN:"),
                ("AT+CGSN=1", "+CGSN:"),
            ])
            .await?;
        self.dialect = forced.unwrap_or_else(|| match Dialect::detect(&manufacturer, &model) {
            Dialect::Generic => Dialect::detect_text(&ati_text),
            d => d,
        });
        let mut id = Identity {
            manufacturer,
            model,
            firmware,
            imei,
            ..Identity::default()
        };
        self.read_sim_identity(&mut id).await?;
        Ok(id)
    }

    /// Fills IMSI and ICCID (best effort: a busy or absent SIM leaves them empty). The ICCID
    /// commands are the dialect's, in its order, then every other known vendor form.
    pub async fn read_sim_identity(&self, id: &mut Identity) -> Result<(), ModemError> {
        match self.value("AT+CIMI", "+CIMI:").await {
            Ok(v) => id.imsi = v,
            Err(e) if e.is_fatal() => return Err(e),
            Err(_) => {}
        }
        if !id.iccid.is_empty() {
            return Ok(());
        }
        let own = self.dialect.spec().iccid_commands;
        let others = ICCID_COMMANDS.iter().filter(|c| !own.contains(*c));
        for (cmd, prefix) in own.iter().chain(others) {
            match self.run(cmd).await {
                Ok(r) => {
                    if let Some(iccid) = iccid_from_answer(&r, prefix) {
                        id.iccid = iccid;
                        break;
                    }
                }
                Err(e) if e.is_fatal() => return Err(e),
                // The command exists but the SIM cannot be read now (busy, absent, failed):
                // other forms would say the same; the caller reads again once it is ready.
                Err(ModemError::At {
                    source: AtError::Cme(c),
                    ..
                }) if matches!(c.code, Some(10 | 13 | 14)) => break,
                Err(e) => {
                    tracing::debug!(command = %cmd, error = %e, "ICCID command refused");
                    continue;
                }
            }
        }
        Ok(())
    }

    /// AT+CPIN? as a SIM state.
    pub async fn sim_state(&self) -> Result<SimState, ModemError> {
        match self.at.cmd("AT+CPIN?").await {
            Ok(r) => {
                let code = r.field_line("+CPIN:").unwrap_or("").to_ascii_uppercase();
                Ok(match code.as_str() {
                    "READY" => SimState::Ready,
                    "SIM PIN" => SimState::PinRequired,
                    "SIM PUK" => SimState::PukRequired,
                    other => SimState::Other(other.to_string()),
                })
            }
            Err(AtError::Cme(c)) if c.code == Some(14) || c.text.contains("busy") => {
                Ok(SimState::Busy)
            }
            Err(AtError::Cme(c))
                if c.code == Some(10) || c.text.to_ascii_lowercase().contains("not inserted") =>
            {
                Ok(SimState::Absent)
            }
            Err(e) => Err(at_err("AT+CPIN?")(e)),
        }
    }

    /// Waits while the SIM is busy, then enters the PIN once if needed. A refused PIN is never
    /// retried: a blind retry loop would burn the SIM's three attempts.
    pub async fn unlock_sim(
        &self,
        pin: Option<&str>,
        busy_timeout: Duration,
    ) -> Result<(), ModemError> {
        let start = tokio::time::Instant::now();
        let mut pin_sent = false;
        loop {
            match self.sim_state().await? {
                SimState::Ready => return Ok(()),
                SimState::Busy | SimState::Other(_) => {
                    if start.elapsed() > busy_timeout {
                        return Err(ModemError::SimBusyTimeout(busy_timeout));
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                SimState::PinRequired => {
                    let Some(pin) = pin else {
                        return Err(ModemError::PinRequired);
                    };
                    if pin_sent {
                        return Err(ModemError::WrongPin("SIM still asks for PIN".into()));
                    }
                    pin_sent = true;
                    let cmd = format!("AT+CPIN=\"{pin}\"");
                    match self.at.cmd(&cmd).await {
                        Ok(_) => {}
                        Err(AtError::Cme(c)) if c.code == Some(14) => {
                            // Busy, not refused: the PIN was not consumed.
                            pin_sent = false;
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        Err(e) if e.is_fatal() => return Err(at_err("AT+CPIN")(e)),
                        Err(e) => return Err(ModemError::WrongPin(e.to_string())),
                    }
                }
                SimState::PukRequired => return Err(ModemError::PukRequired),
                SimState::Absent => return Err(ModemError::SimAbsent),
            }
        }
    }

    /// Turns on registration URCs and PDU-mode SMS settings (best effort where optional).
    pub async fn configure(&self, smsc: Option<&str>) -> Result<(), ModemError> {
        for cmd in self.dialect.spec().init {
            if let Err(e) = self.run(cmd).await {
                if e.is_fatal() {
                    return Err(e);
                }
                tracing::debug!(%cmd, error = %e, "optional init command refused");
            }
        }
        if self.run("AT+CREG=2").await.is_err() {
            self.run("AT+CREG=1").await?;
        }
        for cmd in ["AT+CGREG=2", "AT+CEREG=2"] {
            if let Err(e) = self.run(cmd).await {
                if e.is_fatal() {
                    return Err(e);
                }
            }
        }
        self.run("AT+CMGF=0").await?;
        // Best effort: the engine and the PDU codec do not depend on the character set.
        self.optional("AT+CSCS=\"GSM\"").await?;
        // New SMS stored with +CMTI, status reports stored with +CDSI; modems without
        // stored reports route them directly (+CDS).
        if self.run("AT+CNMI=2,1,0,2,0").await.is_err() {
            self.run("AT+CNMI=2,1,0,1,0").await?;
        }
        if let Some(smsc) = smsc {
            self.run(&format!("AT+CSCA=\"{smsc}\",145")).await?;
        }
        Ok(())
    }

    /// AT+CSQ as dBm.
    pub async fn signal_dbm(&self) -> Result<Option<i32>, ModemError> {
        let r = self.run("AT+CSQ").await?;
        let f = parse_fields(r.field_line("+CSQ:").unwrap_or(""));
        Ok(f.first()
            .and_then(|s| s.parse::<u8>().ok())
            .and_then(rssi_to_dbm))
    }

    /// AT+CREG? as a registration state.
    pub async fn registration(&self) -> Result<Registration, ModemError> {
        let r = self.run("AT+CREG?").await?;
        let line = r.field_line("+CREG:").unwrap_or("");
        let f = parse_fields(line);
        // Query form is <n>,<stat>[,...].
        match f.get(1).and_then(|s| s.parse::<u8>().ok()) {
            Some(stat) => Ok(Registration::from_stat(stat)),
            None => Err(ModemError::Unexpected {
                command: "AT+CREG?".into(),
                answer: line.to_string(),
            }),
        }
    }

    /// Operator long name and numeric code (empty when not registered).
    pub async fn operator(&self) -> Result<(String, String), ModemError> {
        let mut names = (String::new(), String::new());
        for (fmt, slot) in [(0, 0), (2, 1)] {
            self.run(&format!("AT+COPS=3,{fmt}")).await?;
            let r = self.run("AT+COPS?").await?;
            let f = parse_fields(r.field_line("+COPS:").unwrap_or(""));
            let v = f.get(2).map(|s| unquote(s)).unwrap_or_default();
            if slot == 0 {
                names.0 = v;
            } else {
                names.1 = v;
            }
        }
        Ok(names)
    }

    /// SIM, registration, operator and signal in one go.
    pub async fn network_status(&self) -> Result<NetworkStatus, ModemError> {
        let sim = self.sim_state().await?;
        let registration = self.registration().await?;
        let (operator, operator_numeric) = if registration.is_registered() {
            self.operator().await?
        } else {
            (String::new(), String::new())
        };
        let signal_dbm = self.signal_dbm().await?;
        Ok(NetworkStatus {
            sim,
            registration,
            operator,
            operator_numeric,
            signal_dbm,
        })
    }
}

/// Opens a serial port (or a pseudo-terminal) for AT commands: 8N1, no flow control,
/// exclusive so no other program writes to the same modem.
pub fn open_port(path: &str, baud: u32) -> Result<tokio_serial::SerialStream, std::io::Error> {
    use tokio_serial::SerialPortBuilderExt;
    let mut port = tokio_serial::new(path, baud)
        .data_bits(tokio_serial::DataBits::Eight)
        .parity(tokio_serial::Parity::None)
        .stop_bits(tokio_serial::StopBits::One)
        .flow_control(tokio_serial::FlowControl::None)
        .open_native_async()
        .map_err(std::io::Error::from)?;
    port.set_exclusive(true).map_err(std::io::Error::from)?;
    Ok(port)
}

/// Prefix helper re-exported for parsing dialect answers.
pub fn field(line: &str, prefix: &str) -> Option<String> {
    after_prefix(line, prefix).map(str::to_string)
}

#[cfg(test)]
mod tests;
