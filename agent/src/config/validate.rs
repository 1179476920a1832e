//! Semantic checks on a [`Config`], independent of how it was built.

use std::collections::HashMap;
use std::path::Path;

use super::endpoint::parse_mqtt_url;
use super::error::Problem;
use super::model::{
    Config, ConsoleConfig, GatewayConfig, LOG_LEVELS, ModemConfig, MqttConfig, STANDARD_BAUDS,
};

/// Highest allowed `modem.slot`.
pub const MAX_SLOT: u16 = 64;

/// The dialect a modem is forced to when that dialect has no PCM voice port (SIM800/SIM900,
/// the data modules): its calls can be dialled and answered, never bridged to SIP or recorded.
fn without_pcm_port(m: &ModemConfig) -> Option<gsmgw_drivers::modem::Dialect> {
    m.dialect.forced().filter(|d| !d.spec().voice.pcm_port)
}

/// `[sip]` and `[voice]`.
fn check_voice(cfg: &Config, out: &mut Vec<Problem>) {
    if let Some(sip) = &cfg.sip {
        if super::endpoint::host_port(&sip.server, 5060).is_err() {
            out.push(Problem::new(
                "sip.server",
                format!("`{}` is not host:port, e.g. 192.168.1.10:5060", sip.server),
            ));
        }
        if sip.bind.parse::<std::net::SocketAddr>().is_err() {
            out.push(Problem::new(
                "sip.bind",
                format!("`{}` is not ip:port, e.g. 0.0.0.0:5060", sip.bind),
            ));
        }
        if let Some(m) = &sip.media_address {
            if m.parse::<std::net::IpAddr>().is_err() {
                out.push(Problem::new(
                    "sip.media_address",
                    format!("`{m}` is not an IP address"),
                ));
            }
        }
        for (i, peer) in sip.trusted_peers.iter().enumerate() {
            if peer.parse::<std::net::IpAddr>().is_err() {
                out.push(Problem::new(
                    format!("sip.trusted_peers[{}]", i + 1),
                    format!("`{peer}` is not an IP address"),
                ));
            }
        }
        if sip.username.is_empty() || sip.username.contains([' ', '@', ':', ';']) {
            out.push(Problem::new(
                "sip.username",
                format!("`{}` is not a SIP user name", sip.username),
            ));
        }
        if sip.rtp_port_min < 1024 || sip.rtp_port_max < sip.rtp_port_min.saturating_add(1) {
            out.push(Problem::new(
                "sip.rtp_port_min",
                format!(
                    "RTP range {}..{} must start at 1024 or above and hold at least 2 ports",
                    sip.rtp_port_min, sip.rtp_port_max
                ),
            ));
        }
        if !(60..=86_400).contains(&sip.register_expires_secs) {
            out.push(Problem::new(
                "sip.register_expires_secs",
                format!("{} is out of range 60..=86400", sip.register_expires_secs),
            ));
        }
        let mode = sip.inbound_auth_mode();
        if !super::model::INBOUND_AUTH_MODES.contains(&mode) {
            out.push(Problem::new(
                "sip.inbound_auth",
                format!("`{mode}`: expected ip, contact-token or digest"),
            ));
        } else if mode == "contact-token" && !sip.register {
            out.push(Problem::new(
                "sip.inbound_auth",
                "contact-token needs register = true (the token travels in the registered \
                 Contact); use digest for a static trunk",
            ));
        } else if mode == "digest" && sip.inbound_credentials().1.is_empty() {
            out.push(Problem::new(
                "sip.inbound_auth",
                format!(
                    "digest{} needs a password the PBX answers with: set sip.inbound_password \
                     (or sip.password)",
                    if sip.inbound_auth.is_none() {
                        " (the default without registration)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        if !matches!(sip.untrusted.as_str(), "reject" | "drop") {
            out.push(Problem::new(
                "sip.untrusted",
                format!("`{}`: expected reject or drop", sip.untrusted),
            ));
        }
        if sip.codecs.is_empty()
            || sip
                .codecs
                .iter()
                .any(|c| gsmgw_drivers::voice::Codec::from_name(c).is_none())
        {
            out.push(Problem::new(
                "sip.codecs",
                format!("{:?}: expected a list of PCMU and/or PCMA", sip.codecs),
            ));
        }
    }
    let v = &cfg.voice;
    if !(5..=300).contains(&v.ring_timeout_secs) {
        out.push(Problem::new(
            "voice.ring_timeout_secs",
            format!("{} is out of range 5..=300", v.ring_timeout_secs),
        ));
    }
    for (i, d) in v.bridge_domains.iter().enumerate() {
        let host = d.strip_prefix("*.").unwrap_or(d);
        let probe = format!("sip:x@{host}");
        if let Err(e) = super::sip_uri::parse_bridge_uri(&probe) {
            out.push(Problem::new(
                format!("voice.bridge_domains[{}]", i + 1),
                format!("`{d}` is not a host name, IP address or *.domain: {e}"),
            ));
        }
    }
    if !matches!(v.missed_call_sms_on.as_str(), "unanswered" | "any") {
        out.push(Problem::new(
            "voice.missed_call_sms_on",
            format!("`{}`: expected unanswered or any", v.missed_call_sms_on),
        ));
    }
    let mut seen = Vec::new();
    for (i, r) in v.route.iter().enumerate() {
        let at = |k: &str| format!("voice.route[{}].{k}", i + 1);
        if seen.contains(&r.slot) {
            out.push(Problem::new(
                at("slot"),
                "a rule for this slot is already given",
            ));
        }
        seen.push(r.slot);
        if let Some(slot) = r.slot {
            match cfg.modems.iter().find(|m| m.slot == slot) {
                None => out.push(Problem::new(
                    at("slot"),
                    format!("no modem has slot {slot}"),
                )),
                Some(m) => {
                    if let Some(d) = without_pcm_port(m) {
                        if r.action == "forward" || r.record {
                            out.push(Problem::new(
                                at("action"),
                                format!(
                                    "slot {slot} uses dialect {d}, which has no PCM voice port: its \
                                     calls cannot be forwarded to SIP or recorded; use reject or \
                                     answer-hangup without record"
                                ),
                            ));
                        }
                    }
                }
            }
        }
        match r.action.as_str() {
            "forward" => match &r.target {
                Some(t) if t.starts_with("sip:") && t.len() > 4 => {
                    if cfg.sip.is_none() {
                        out.push(Problem::new(
                            at("target"),
                            "forwarding needs a [sip] section",
                        ));
                    }
                }
                Some(t) => out.push(Problem::new(
                    at("target"),
                    format!("`{t}` is not a SIP URI like sip:100@pbx.local"),
                )),
                None => out.push(Problem::new(at("target"), "forward needs a target")),
            },
            "reject" | "answer-hangup" => {}
            other => out.push(Problem::new(
                at("action"),
                format!("`{other}`: expected forward, reject or answer-hangup"),
            )),
        }
    }
}

impl Config {
    /// Settings that are valid but risky (`config check` prints them as warnings, `run` logs
    /// them): keys with no line or file.
    pub fn warnings(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if let Some(sip) = &self.sip {
            if sip.inbound_auth_mode() == "ip" {
                out.push(Problem::new(
                    "sip.inbound_auth",
                    "`ip` trusts the source address alone: on UDP it can be forged, and a \
                     forged INVITE dials a SIM (toll fraud). Prefer contact-token (registering) \
                     or digest (static trunk)",
                ));
            }
        }
        out
    }

    /// Enabled modems whose AT port does not exist now (`config check` warns: the agent
    /// starts all the same and waits for the port, which may appear once the modem is up).
    pub fn missing_ports(&self) -> Vec<Problem> {
        self.modems
            .iter()
            .enumerate()
            .filter(|(_, m)| m.enabled && !std::path::Path::new(&m.port).exists())
            .map(|(i, m)| {
                Problem::new(
                    format!("modem[{}].port", i + 1),
                    format!(
                        "`{}` does not exist now; the agent will wait for it (is the modem plugged in and powered, is it another ttyUSB?)",
                        m.port
                    ),
                )
            })
            .collect()
    }

    /// Check every value and cross-reference; returns all problems found (none = valid).
    ///
    /// Problems carry key paths but no file or line. TLS files are looked up relative to the
    /// process's current directory.
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        check_gateway(&self.gateway, &mut out);
        check_mqtt(&self.mqtt, &mut out);
        check_modems(&self.modems, &mut out);
        check_console(&self.console, &mut out);
        if let Some(q) = &self.sms.quiet_hours {
            if crate::quiet::QuietHours::parse(q).is_err() {
                out.push(Problem::new(
                    "sms.quiet_hours",
                    format!("`{q}` is not a window like 21:00-09:00"),
                ));
            }
        }
        if !matches!(self.sms.on_unknown.as_str(), "report" | "retry") {
            out.push(Problem::new(
                "sms.on_unknown",
                format!("`{}`: expected report or retry", self.sms.on_unknown),
            ));
        }
        for (i, r) in self.sms.route.iter().enumerate() {
            let ok = r.prefix.strip_prefix('+').unwrap_or(&r.prefix);
            if ok.is_empty() || !ok.bytes().all(|b| b.is_ascii_digit()) {
                out.push(Problem::new(
                    format!("sms.route[{}].prefix", i + 1),
                    format!("`{}` is not a number prefix like +38067", r.prefix),
                ));
            }
            if !self
                .modems
                .iter()
                .any(|m| m.group.as_deref() == Some(r.group.as_str()))
            {
                out.push(Problem::new(
                    format!("sms.route[{}].group", i + 1),
                    format!("no modem has group `{}`", r.group),
                ));
            }
        }
        check_voice(self, &mut out);
        if !(1..=604_800).contains(&self.sms.reassembly_timeout_secs) {
            out.push(Problem::new(
                "sms.reassembly_timeout_secs",
                format!(
                    "{} is out of range 1..=604800",
                    self.sms.reassembly_timeout_secs
                ),
            ));
        }
        out
    }
}

fn check_gateway(g: &GatewayConfig, out: &mut Vec<Problem>) {
    if let Err(msg) = check_name(&g.id, 64) {
        out.push(Problem::new("gateway.id", msg));
    }
    if g.data_dir.as_os_str().is_empty() {
        out.push(Problem::new("gateway.data_dir", "must not be empty"));
    }
    if let Some(p) = &g.board_profile {
        match gsmgw_board::BoardProfile::load(p) {
            Ok(_) => {}
            Err(e) => out.push(Problem::new("gateway.board_profile", e.to_string())),
        }
    }
    if !(1..=3600).contains(&g.health_interval_secs) {
        out.push(Problem::new(
            "gateway.health_interval_secs",
            format!("{} is out of range 1..=3600", g.health_interval_secs),
        ));
    }
    for (key, days) in [
        ("gateway.job_retention_days", g.job_retention_days),
        ("gateway.sms_seen_retention_days", g.sms_seen_retention_days),
    ] {
        if !(1..=3650).contains(&days) {
            out.push(Problem::new(
                key,
                format!("{days} is out of range 1..=3650"),
            ));
        }
    }
    for pattern in &g.port_scan {
        if !pattern.starts_with('/') {
            out.push(Problem::new(
                "gateway.port_scan",
                format!("`{pattern}` must be an absolute path pattern such as /dev/ttyUSB*"),
            ));
        } else if pattern
            .rsplit_once('/')
            .is_some_and(|(dir, _)| dir.contains('*'))
        {
            out.push(Problem::new(
                "gateway.port_scan",
                format!("`{pattern}`: `*` is only allowed in the file name"),
            ));
        }
    }
    if !LOG_LEVELS.contains(&g.log_level.as_str()) {
        out.push(Problem::new(
            "gateway.log_level",
            format!(
                "`{}` is not a log level; expected one of: {}",
                g.log_level,
                LOG_LEVELS.join(", ")
            ),
        ));
    }
}

fn check_mqtt(m: &MqttConfig, out: &mut Vec<Problem>) {
    let tls = match parse_mqtt_url(&m.url) {
        Ok(endpoint) => Some(endpoint.tls),
        Err(msg) => {
            out.push(Problem::new("mqtt.url", msg));
            None
        }
    };
    if m.username.as_deref() == Some("") {
        out.push(Problem::new("mqtt.username", "must not be empty"));
    }
    if m.password.is_some() && m.username.is_none() {
        out.push(Problem::new(
            "mqtt.password",
            "a password needs mqtt.username too",
        ));
    }
    let files = [
        ("mqtt.ca_file", &m.ca_file),
        ("mqtt.cert_file", &m.cert_file),
        ("mqtt.key_file", &m.key_file),
    ];
    for (key, file) in files {
        let Some(path) = file else { continue };
        if tls == Some(false) {
            out.push(Problem::new(
                key,
                "TLS files are only used with an mqtts:// url; change mqtt.url or remove this key",
            ));
        }
        if let Err(msg) = check_readable_file(path) {
            out.push(Problem::new(key, msg));
        } else if key == "mqtt.key_file" {
            // An error, like ssh: `gsmgw run` refuses a private key others can read.
            if let Some(why) = crate::private::key_exposure(path) {
                out.push(Problem::new(key, format!("{why}; `gsmgw run` refuses it")));
            }
        }
    }
    match (&m.cert_file, &m.key_file) {
        (Some(_), None) => out.push(Problem::new(
            "mqtt.cert_file",
            "a client certificate needs mqtt.key_file too",
        )),
        (None, Some(_)) => out.push(Problem::new(
            "mqtt.key_file",
            "a client key needs mqtt.cert_file too",
        )),
        _ => {}
    }
    // Readable and paired: now check the contents, exactly as `gsmgw run` will load them.
    let paired = m.cert_file.is_some() == m.key_file.is_some();
    if tls == Some(true) && paired && out.iter().all(|p| !p.key.starts_with("mqtt.")) {
        if let Err(e) = crate::tls::client_config(
            m.ca_file.as_deref(),
            m.cert_file.as_deref(),
            m.key_file.as_deref(),
        ) {
            let key = if m.ca_file.is_some() && e.to_string().contains("CA") {
                "mqtt.ca_file"
            } else if m.cert_file.is_some() {
                "mqtt.cert_file"
            } else {
                "mqtt.ca_file"
            };
            out.push(Problem::new(key, e.to_string()));
        }
    }
    if !(5..=3600).contains(&m.keep_alive_secs) {
        out.push(Problem::new(
            "mqtt.keep_alive_secs",
            format!("{} is out of range 5..=3600", m.keep_alive_secs),
        ));
    }
    if !(1..=256).contains(&m.max_command_mb) {
        out.push(Problem::new(
            "mqtt.max_command_mb",
            format!("{} is out of range 1..=256", m.max_command_mb),
        ));
    }
}

fn check_modems(modems: &[ModemConfig], out: &mut Vec<Problem>) {
    // slot -> first modem index using it; device path -> (index, key) first using it.
    let mut slots: HashMap<u16, usize> = HashMap::new();
    let mut devices: HashMap<&str, String> = HashMap::new();
    for (i, m) in modems.iter().enumerate() {
        let at = |field: &str| format!("modem[{}].{field}", i + 1);
        if !(1..=MAX_SLOT).contains(&m.slot) {
            out.push(Problem::new(
                at("slot"),
                format!("{} is out of range 1..={MAX_SLOT}", m.slot),
            ));
        } else if let Some(first) = slots.get(&m.slot) {
            out.push(Problem::new(
                at("slot"),
                format!("slot {} is already used by modem[{}]", m.slot, first + 1),
            ));
        } else {
            slots.insert(m.slot, i);
        }

        if let Some(imei) = &m.imei {
            if !(imei.len() == 15 && imei.bytes().all(|b| b.is_ascii_digit())) {
                out.push(Problem::new(at("imei"), "an IMEI is 15 digits"));
            }
        }

        let ports = [
            ("port", Some(&m.port)),
            ("voice_port", m.voice_port.as_ref()),
        ];
        for (field, port) in ports {
            let Some(port) = port else { continue };
            if port.trim().is_empty() {
                out.push(Problem::new(at(field), "must not be empty"));
                continue;
            }
            if let Some(first) = devices.get(port.as_str()) {
                out.push(Problem::new(
                    at(field),
                    format!("{port} is already used by {first}"),
                ));
            } else {
                devices.insert(port, at(field));
            }
        }

        if let (Some(_), Some(d)) = (&m.voice_port, without_pcm_port(m)) {
            out.push(Problem::new(
                at("voice_port"),
                format!(
                    "dialect {d} has no PCM voice port (audio only on the module's pins); remove \
                     voice_port, or set dialect to the modem's real vendor"
                ),
            ));
        }

        if let Err(msg) = check_baud(m.baud) {
            out.push(Problem::new(at("baud"), msg));
        }
        if let Some(pin) = &m.pin {
            // Never echo the PIN itself.
            if !(4..=8).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
                out.push(Problem::new(at("pin"), "a SIM PIN is 4 to 8 digits"));
            }
        }
        if let Some(smsc) = &m.smsc {
            let digits = smsc.strip_prefix('+').unwrap_or("");
            if !(6..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                out.push(Problem::new(
                    at("smsc"),
                    format!(
                        "`{smsc}` is not an E.164 number; expected + and 6 to 15 digits, e.g. +380672021111"
                    ),
                ));
            }
        }
        if let Some(group) = &m.group {
            if let Err(msg) = check_name(group, 32) {
                out.push(Problem::new(at("group"), msg));
            }
        }
        check_balance(m, &at, out);
    }
}

/// The balance-check keys of one `[[modem]]`.
fn check_balance(m: &ModemConfig, at: &dyn Fn(&str) -> String, out: &mut Vec<Problem>) {
    if let Some(code) = &m.balance_ussd {
        if let Err(e) = gsmgw_drivers::ussd::validate_code(code) {
            out.push(Problem::new(
                at("balance_ussd"),
                format!("`{code}`: {e}, e.g. \"*111#\""),
            ));
        }
    }
    if !(300..=30 * 86_400).contains(&m.balance_interval_secs) {
        out.push(Problem::new(
            at("balance_interval_secs"),
            "must be 300 (5 minutes) to 2592000 (30 days): operators do not like USSD every minute",
        ));
    }
    if let Some(low) = m.balance_low {
        if !low.is_finite() {
            out.push(Problem::new(at("balance_low"), "must be a number"));
        }
    }
    if m.balance_ussd.is_none() {
        for (key, set) in [
            ("balance_low", m.balance_low.is_some()),
            ("balance_regex", m.balance_regex.is_some()),
        ] {
            if set {
                out.push(Problem::new(
                    at(key),
                    "has no effect without balance_ussd (the USSD string that asks for the balance)",
                ));
            }
        }
    }
    if let Some(re) = &m.balance_regex {
        if let Err(e) = crate::balance::BalanceParser::new(Some(re)) {
            out.push(Problem::new(at("balance_regex"), e.to_string()));
        }
    }
}

fn check_console(c: &ConsoleConfig, out: &mut Vec<Problem>) {
    if !(c.is_disabled() || c.is_stdin() || c.device.starts_with('/')) {
        out.push(Problem::new(
            "console.device",
            format!(
                "`{}` is not usable; expected \"stdin\", \"none\" or an absolute device path like /dev/ttyS0",
                c.device
            ),
        ));
    }
    if let Err(msg) = check_baud(c.baud) {
        out.push(Problem::new("console.baud", msg));
    }
    if let Some(hash) = &c.password_hash {
        // Never echo the value: it may be a plain-text password put there by mistake.
        if !is_password_hash(hash) {
            out.push(Problem::new(
                "console.password_hash",
                "must be an argon2 ($argon2id$v=19$m=…) or bcrypt ($2b$NN$…) hash, never a plain-text password",
            ));
        }
    }
    if !(30..=86_400).contains(&c.idle_logout_secs) {
        out.push(Problem::new(
            "console.idle_logout_secs",
            format!("{} is out of range 30..=86400", c.idle_logout_secs),
        ));
    }
}

/// 1..=`max` chars of `[A-Za-z0-9_-]`.
fn check_name(value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if value.chars().count() > max {
        return Err(format!(
            "is {} characters long; at most {max} are allowed",
            value.chars().count()
        ));
    }
    match value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-')))
    {
        Some(bad) => Err(format!(
            "`{value}` contains {bad:?}; only letters, digits, `_` and `-` are allowed"
        )),
        None => Ok(()),
    }
}

fn check_baud(baud: u32) -> Result<(), String> {
    if STANDARD_BAUDS.contains(&baud) {
        Ok(())
    } else {
        let list: Vec<String> = STANDARD_BAUDS.iter().map(u32::to_string).collect();
        Err(format!(
            "{baud} is not a standard rate; expected one of: {}",
            list.join(", ")
        ))
    }
}

fn check_readable_file(path: &Path) -> Result<(), String> {
    if path.as_os_str().is_empty() {
        return Err("must not be empty".to_owned());
    }
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{shown} does not exist"),
        _ => format!("cannot access {shown}: {e}"),
    })?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    std::fs::File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    Ok(())
}

/// Shape check for PHC argon2 strings and bcrypt (`$2a$`/`$2b$`/`$2y$`) hashes.
fn is_password_hash(hash: &str) -> bool {
    if hash.starts_with("$argon2") {
        is_argon2(hash)
    } else if hash.starts_with("$2") {
        is_bcrypt(hash)
    } else {
        false
    }
}

fn is_argon2(hash: &str) -> bool {
    // $argon2id$v=19$m=19456,t=2,p=1$SALT$HASH  (the v= part is optional)
    let mut parts = hash.split('$');
    if parts.next() != Some("") {
        return false;
    }
    if !matches!(parts.next(), Some("argon2id" | "argon2i" | "argon2d")) {
        return false;
    }
    let rest: Vec<&str> = parts.collect();
    let rest = match rest.first() {
        Some(v) if v.starts_with("v=") => &rest[1..],
        _ => &rest[..],
    };
    let b64 = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    };
    match rest {
        [params, salt, digest] => params.contains("m=") && b64(salt) && b64(digest),
        _ => false,
    }
}

fn is_bcrypt(hash: &str) -> bool {
    // $2b$12$ + 22 chars salt + 31 chars hash, bcrypt's own base64 alphabet.
    let bytes = hash.as_bytes();
    bytes.len() == 60
        && matches!(&hash[..4], "$2a$" | "$2b$" | "$2y$")
        && bytes[4].is_ascii_digit()
        && bytes[5].is_ascii_digit()
        && bytes[6] == b'$'
        && bytes[7..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'/')
}

#[cfg(test)]
mod tests;
