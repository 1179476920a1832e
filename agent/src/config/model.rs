//! The configuration types, their defaults and their serde shape.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Default path of the configuration file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/gsmgw/gsmgw.toml";
/// Default `gateway.data_dir`.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/gsmgw";
/// Default `gateway.log_level`.
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// Accepted values of `gateway.log_level`.
pub const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];
/// Default `mqtt.url`.
pub const DEFAULT_MQTT_URL: &str = "mqtt://127.0.0.1:1883";
/// Default `mqtt.keep_alive_secs`.
pub const DEFAULT_KEEP_ALIVE_SECS: u16 = 30;
/// Default `mqtt.max_command_mb`: the largest command accepted (a 100 000-recipient campaign
/// with a few fields each is about 15 MiB).
pub const DEFAULT_MAX_COMMAND_MB: u32 = 32;
/// Default serial speed of modems and the console.
pub const DEFAULT_BAUD: u32 = 115_200;
/// Serial speeds accepted for `modem.baud` and `console.baud`.
pub const STANDARD_BAUDS: &[u32] = &[
    9_600, 19_200, 38_400, 57_600, 115_200, 230_400, 460_800, 921_600,
];
/// Default `console.device`.
pub const DEFAULT_CONSOLE_DEVICE: &str = "/dev/ttyS0";
/// Default `console.idle_logout_secs`.
pub const DEFAULT_IDLE_LOGOUT_SECS: u32 = 600;

/// The whole gateway configuration (one TOML file).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[gateway]`: identity, storage and logging.
    pub gateway: GatewayConfig,
    /// `[mqtt]`: the uplink broker.
    #[serde(default)]
    pub mqtt: MqttConfig,
    /// `[[modem]]`: one entry per modem slot.
    #[serde(default, rename = "modem", skip_serializing_if = "Vec::is_empty")]
    pub modems: Vec<ModemConfig>,
    /// `[console]`: the local maintenance console.
    #[serde(default)]
    pub console: ConsoleConfig,
    /// `[sms]`: SMS handling.
    #[serde(default)]
    pub sms: SmsConfig,
    /// `[sip]`: the SIP trunk to the PBX; absent = no SIP (calls are still logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip: Option<SipConfig>,
    /// `[voice]`: call routing, records, the missed-call SMS and recordings.
    #[serde(default)]
    pub voice: VoiceConfig,
}

/// `[sip]`: the gateway registers to the PBX as a trunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    /// The PBX, `host:port` (UDP): REGISTER, OPTIONS and every INVITE go there.
    pub server: String,
    /// Host part of the gateway's address of record; default: `server`'s host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The trunk's user name (address of record and Contact user).
    pub username: String,
    /// Digest authentication user, when it differs from `username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_username: Option<String>,
    /// Digest password.
    #[serde(default)]
    pub password: String,
    /// Local UDP address for SIP.
    #[serde(default = "default_sip_bind")]
    pub bind: String,
    /// The address written into SDP for RTP; default: the address the box uses toward the PBX.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_address: Option<String>,
    /// Whether to REGISTER (false for a PBX that sends to a fixed IP).
    #[serde(default = "default_true")]
    pub register: bool,
    /// Registration lifetime asked for.
    #[serde(default = "default_register_expires")]
    pub register_expires_secs: u32,
    /// OPTIONS keep-alive to the PBX (0 = off).
    #[serde(default = "default_options_interval")]
    pub options_interval_secs: u32,
    /// First RTP port of the range (even).
    #[serde(default = "default_rtp_min")]
    pub rtp_port_min: u16,
    /// Last RTP port of the range.
    #[serde(default = "default_rtp_max")]
    pub rtp_port_max: u16,
    /// Codecs offered and accepted, in order of preference: `PCMU`, `PCMA`.
    #[serde(default = "default_codecs")]
    pub codecs: Vec<String>,
    /// IP addresses whose INVITEs may place calls through the SIMs; empty = the `server`'s
    /// address only. Anyone else gets 403 (toll fraud protection).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_peers: Vec<String>,
    /// How INVITEs from the PBX authenticate: `ip`, `contact-token` or `digest`; default
    /// `contact-token` when registering, else `digest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_auth: Option<String>,
    /// User the PBX answers our digest challenges with; default `auth_username`, else `username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_username: Option<String>,
    /// Password the PBX answers our digest challenges with; default `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_password: Option<String>,
    /// What requests from untrusted addresses get: `reject` (one stateless 403) or `drop`.
    #[serde(default = "default_untrusted")]
    pub untrusted: String,
    /// SIP datagrams per second allowed from one source address (bursts of twice that);
    /// more are dropped and counted. 0 = no limit.
    #[serde(default = "default_rate_limit")]
    pub rate_limit_per_source: u32,
}

/// The `sip.inbound_auth` values.
pub const INBOUND_AUTH_MODES: &[&str] = &["ip", "contact-token", "digest"];

impl SipConfig {
    /// `inbound_auth` as given, else its default: `contact-token` when registering, `digest`
    /// for a static trunk.
    pub fn inbound_auth_mode(&self) -> &str {
        match &self.inbound_auth {
            Some(m) => m,
            None if self.register => "contact-token",
            None => "digest",
        }
    }

    /// The digest credentials the PBX must answer with.
    pub fn inbound_credentials(&self) -> (String, String) {
        let user = self
            .inbound_username
            .clone()
            .or_else(|| self.auth_username.clone())
            .unwrap_or_else(|| self.username.clone());
        let password = self
            .inbound_password
            .clone()
            .unwrap_or_else(|| self.password.clone());
        (user, password)
    }
}

fn default_untrusted() -> String {
    "reject".into()
}
fn default_rate_limit() -> u32 {
    100
}

fn default_sip_bind() -> String {
    "0.0.0.0:5060".into()
}
fn default_register_expires() -> u32 {
    300
}
fn default_options_interval() -> u32 {
    30
}
fn default_rtp_min() -> u16 {
    10_000
}
fn default_rtp_max() -> u16 {
    10_999
}
fn default_codecs() -> Vec<String> {
    vec!["PCMU".into(), "PCMA".into()]
}

/// `[voice]`: calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceConfig {
    /// Seconds an outgoing leg (GSM or SIP) may ring before it counts as not answered.
    #[serde(default = "default_ring_timeout")]
    pub ring_timeout_secs: u32,
    /// Per-SIM limit of outgoing call minutes per day (0 = no limit).
    #[serde(default)]
    pub call_minutes_per_day: u32,
    /// A talking call whose SIP side sends no RTP for this long is ended (0 = never).
    #[serde(default = "default_rtp_timeout")]
    pub rtp_timeout_secs: u32,
    /// SMS text sent back to a caller after a missed call; `{from}` and `{slot}` are replaced.
    /// Empty = off.
    #[serde(default)]
    pub missed_call_sms: String,
    /// `unanswered` (default) or `any`: which incoming calls get the SMS.
    #[serde(default = "default_missed_on")]
    pub missed_call_sms_on: String,
    /// At most one such SMS per caller in this many seconds.
    #[serde(default = "default_missed_period")]
    pub missed_call_sms_period_secs: u32,
    /// Record calls that come from the PBX (SIP → GSM) too.
    #[serde(default)]
    pub record_sip_in: bool,
    /// Recordings older than this are deleted.
    #[serde(default = "default_rec_age")]
    pub recordings_max_age_days: u32,
    /// Recordings are deleted oldest first above this total size.
    #[serde(default = "default_rec_mb")]
    pub recordings_max_mb: u32,
    /// Hosts `cmd/dial`'s `bridge_to` may name (`pbx.local`, `*.office.example`, an IP);
    /// empty: any host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bridge_domains: Vec<String>,
    /// What an incoming GSM call does, per slot (`slot` omitted = the default rule).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<VoiceRoute>,
}

/// One `[[voice.route]]`: the rule for incoming GSM calls on a slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceRoute {
    /// The slot; omitted = every slot without a rule of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u16>,
    /// `forward` (to `target`), `reject`, or `answer-hangup`.
    pub action: String,
    /// The SIP URI to ring for `forward` (an extension or a queue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Record calls on this route (WAV in data_dir/recordings).
    #[serde(default)]
    pub record: bool,
}

fn default_ring_timeout() -> u32 {
    45
}
fn default_rtp_timeout() -> u32 {
    60
}
fn default_missed_on() -> String {
    "unanswered".into()
}
fn default_missed_period() -> u32 {
    86_400
}
fn default_rec_age() -> u32 {
    30
}
fn default_rec_mb() -> u32 {
    1024
}

impl Default for VoiceConfig {
    fn default() -> Self {
        Self {
            ring_timeout_secs: default_ring_timeout(),
            call_minutes_per_day: 0,
            rtp_timeout_secs: default_rtp_timeout(),
            record_sip_in: false,
            missed_call_sms: String::new(),
            missed_call_sms_on: default_missed_on(),
            missed_call_sms_period_secs: default_missed_period(),
            recordings_max_age_days: default_rec_age(),
            recordings_max_mb: default_rec_mb(),
            bridge_domains: Vec::new(),
            route: Vec::new(),
        }
    }
}

/// Default `sms.reassembly_timeout_secs`.
pub const DEFAULT_REASSEMBLY_TIMEOUT_SECS: u32 = 86_400;

/// `[sms]`: SMS handling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    /// Seconds a multipart message waits for its missing parts before it is delivered
    /// incomplete (`complete: false`) with the parts it has (1..=604800).
    #[serde(default = "default_reassembly_timeout")]
    pub reassembly_timeout_secs: u32,
    /// Per-SIM limit: messages per minute (0 = no limit).
    #[serde(default = "default_per_minute")]
    pub per_minute: u32,
    /// Per-SIM limit: messages per hour (0 = no limit).
    #[serde(default = "default_per_hour")]
    pub per_hour: u32,
    /// Per-SIM limit: messages per day (0 = no limit).
    #[serde(default = "default_per_day")]
    pub per_day: u32,
    /// Local-time window with no campaign traffic, `HH:MM-HH:MM` (may wrap midnight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<String>,
    /// What happens to a message caught mid-send by a crash: `report` (state `unknown`) or
    /// `retry` (queued again; the recipient may get it twice).
    #[serde(default = "default_on_unknown")]
    pub on_unknown: String,
    /// Seconds a SIM rests after 3 failed sends in a row.
    #[serde(default = "default_cooldown")]
    pub cooldown_secs: u32,
    /// Number prefix → modem group affinity (e.g. an operator's mobile codes → its SIMs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<SmsRoute>,
}

/// One `[[sms.route]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsRoute {
    /// Number prefix, e.g. `+38067`.
    pub prefix: String,
    /// The `group` of the modems that should send to it.
    pub group: String,
}

impl Default for SmsConfig {
    fn default() -> Self {
        Self {
            reassembly_timeout_secs: DEFAULT_REASSEMBLY_TIMEOUT_SECS,
            per_minute: default_per_minute(),
            per_hour: default_per_hour(),
            per_day: default_per_day(),
            quiet_hours: None,
            on_unknown: default_on_unknown(),
            cooldown_secs: default_cooldown(),
            route: Vec::new(),
        }
    }
}

fn default_per_minute() -> u32 {
    6
}
fn default_per_hour() -> u32 {
    120
}
fn default_per_day() -> u32 {
    600
}
fn default_on_unknown() -> String {
    "report".into()
}
fn default_cooldown() -> u32 {
    300
}

fn default_reassembly_timeout() -> u32 {
    DEFAULT_REASSEMBLY_TIMEOUT_SECS
}

/// `[gateway]`: identity, storage and logging.
///
/// `Default` leaves `id` empty: it is required and must be set before use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Gateway id, used as MQTT topic level and client id.
    pub id: String,
    /// Directory for the store and other state.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Log line format.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Log level: one of [`LOG_LEVELS`].
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// Board profile (TOML) with each slot's power pin, for hard resets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board_profile: Option<PathBuf>,
    /// Where to look for a modem whose port vanished or was renumbered (glob patterns with
    /// `*` in the file name), matched by the modem's `imei`.
    #[serde(default = "default_port_scan")]
    pub port_scan: Vec<String>,
    /// Seconds between modem health checks (1..=3600); two failed checks in a row start a
    /// recovery (soft reset, then power cycle).
    #[serde(default = "default_health_interval")]
    pub health_interval_secs: u32,
    /// Days a finished job (a command, a sent SMS) is kept, and with it its `request_id`
    /// (1..=3650).
    #[serde(default = "default_retention_days")]
    pub job_retention_days: u32,
    /// Days the receipt of a received SMS whose delete from the SIM was never confirmed is
    /// kept (1..=3650).
    #[serde(default = "default_retention_days")]
    pub sms_seen_retention_days: u32,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            id: String::new(),
            data_dir: default_data_dir(),
            log_format: LogFormat::default(),
            log_level: default_log_level(),
            board_profile: None,
            port_scan: default_port_scan(),
            health_interval_secs: default_health_interval(),
            job_retention_days: default_retention_days(),
            sms_seen_retention_days: default_retention_days(),
        }
    }
}

/// Default `gateway.health_interval_secs`.
pub const DEFAULT_HEALTH_INTERVAL_SECS: u32 = 30;

/// Default `gateway.job_retention_days` and `gateway.sms_seen_retention_days`.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

fn default_retention_days() -> u32 {
    DEFAULT_RETENTION_DAYS
}

fn default_health_interval() -> u32 {
    DEFAULT_HEALTH_INTERVAL_SECS
}

/// Default `gateway.port_scan`.
pub fn default_port_scan() -> Vec<String> {
    vec!["/dev/ttyUSB*".into(), "/dev/ttyACM*".into()]
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[mqtt]`: how to reach the broker.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker URL: `mqtt://HOST[:PORT]` or `mqtts://HOST[:PORT]`.
    #[serde(default = "default_mqtt_url")]
    pub url: String,
    /// User name for the broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password for the broker; needs `username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// CA certificate bundle (PEM) to verify the broker; mqtts only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; mqtts only, needs `key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS; mqtts only, needs `cert_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// MQTT keep-alive interval in seconds (5..=3600).
    #[serde(default = "default_keep_alive_secs")]
    pub keep_alive_secs: u16,
    /// Largest command payload accepted, in MiB (1..=256); a bigger one is answered
    /// `too-large` and acknowledged, never redelivered.
    #[serde(default = "default_max_command_mb")]
    pub max_command_mb: u32,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            url: default_mqtt_url(),
            username: None,
            password: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            keep_alive_secs: DEFAULT_KEEP_ALIVE_SECS,
            max_command_mb: DEFAULT_MAX_COMMAND_MB,
        }
    }
}

// Written by hand so that the password never reaches a log line.
impl fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttConfig")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &redacted(self.password.as_ref()))
            .field("ca_file", &self.ca_file)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("keep_alive_secs", &self.keep_alive_secs)
            .field("max_command_mb", &self.max_command_mb)
            .finish()
    }
}

/// `[[modem]]`: one modem slot.
///
/// `Default` leaves `slot` at 0 and `port` empty: both are required and must be set.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModemConfig {
    /// Slot number (1..=64), stable name of this modem in topics and commands.
    pub slot: u16,
    /// AT command port, e.g. `/dev/ttyUSB2`.
    pub port: String,
    /// PCM/voice port, if the modem carries voice over USB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_port: Option<String>,
    /// The modem's IMEI: when set, the modem answering on `port` must have it, and a modem
    /// whose port was renumbered is found again among `gateway.port_scan` by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imei: Option<String>,
    /// Serial speed of the AT port; one of [`STANDARD_BAUDS`].
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// SIM PIN (4-8 digits), entered when the SIM asks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// SMS service centre number to set (E.164, `+` and 6-15 digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smsc: Option<String>,
    /// Routing group, e.g. the operator (`[A-Za-z0-9_-]{1,32}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Vendor dialect, or `auto` to detect it.
    #[serde(default)]
    pub dialect: DialectChoice,
    /// Whether the agent drives this modem at all.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// USSD string that asks the operator for the balance (`*111#`); none: no balance checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_ussd: Option<String>,
    /// Seconds between balance checks (300 to 30 days; default 6 hours). The first check is
    /// made once the modem is ready.
    #[serde(default = "default_balance_interval")]
    pub balance_interval_secs: u64,
    /// An `alarm` `balance-low` is raised when the balance drops below this amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_low: Option<f64>,
    /// A regular expression that reads the balance instead of the built-in tables: a group
    /// `amount` (or its first group), optionally a group `currency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_regex: Option<String>,
}

/// Default `balance_interval_secs`: 6 hours.
pub const DEFAULT_BALANCE_INTERVAL_SECS: u64 = 6 * 3600;

fn default_balance_interval() -> u64 {
    DEFAULT_BALANCE_INTERVAL_SECS
}

impl Default for ModemConfig {
    fn default() -> Self {
        Self {
            slot: 0,
            port: String::new(),
            voice_port: None,
            imei: None,
            baud: DEFAULT_BAUD,
            pin: None,
            smsc: None,
            group: None,
            dialect: DialectChoice::default(),
            enabled: true,
            balance_ussd: None,
            balance_interval_secs: DEFAULT_BALANCE_INTERVAL_SECS,
            balance_low: None,
            balance_regex: None,
        }
    }
}

// Written by hand so that the SIM PIN never reaches a log line.
impl fmt::Debug for ModemConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModemConfig")
            .field("slot", &self.slot)
            .field("port", &self.port)
            .field("voice_port", &self.voice_port)
            .field("imei", &self.imei)
            .field("baud", &self.baud)
            .field("pin", &redacted(self.pin.as_ref()))
            .field("smsc", &self.smsc)
            .field("group", &self.group)
            .field("dialect", &self.dialect)
            .field("enabled", &self.enabled)
            .field("balance_ussd", &self.balance_ussd)
            .field("balance_interval_secs", &self.balance_interval_secs)
            .field("balance_low", &self.balance_low)
            .field("balance_regex", &self.balance_regex)
            .finish()
    }
}

/// `[console]`: the local maintenance console.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Serial device path, `"stdin"`, or `"none"` to disable the console.
    #[serde(default = "default_console_device")]
    pub device: String,
    /// Serial speed of `device`; one of [`STANDARD_BAUDS`].
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// argon2 or bcrypt hash of the console password; no password prompt when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// Log out after this many idle seconds (30..=86400).
    #[serde(default = "default_idle_logout_secs")]
    pub idle_logout_secs: u32,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            device: default_console_device(),
            baud: DEFAULT_BAUD,
            password_hash: None,
            idle_logout_secs: DEFAULT_IDLE_LOGOUT_SECS,
        }
    }
}

// Written by hand: a password hash is still worth keeping out of logs.
impl fmt::Debug for ConsoleConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleConfig")
            .field("device", &self.device)
            .field("baud", &self.baud)
            .field("password_hash", &redacted(self.password_hash.as_ref()))
            .field("idle_logout_secs", &self.idle_logout_secs)
            .finish()
    }
}

impl ConsoleConfig {
    /// Whether the console is switched off (`device = "none"`).
    pub fn is_disabled(&self) -> bool {
        self.device == "none"
    }

    /// Whether the console runs on the process's stdin/stdout (`device = "stdin"`).
    pub fn is_stdin(&self) -> bool {
        self.device == "stdin"
    }
}

fn redacted(secret: Option<&String>) -> Option<&'static str> {
    secret.map(|_| "<redacted>")
}

fn default_data_dir() -> PathBuf {
    PathBuf::from(DEFAULT_DATA_DIR)
}

fn default_log_level() -> String {
    DEFAULT_LOG_LEVEL.to_owned()
}

fn default_mqtt_url() -> String {
    DEFAULT_MQTT_URL.to_owned()
}

fn default_max_command_mb() -> u32 {
    DEFAULT_MAX_COMMAND_MB
}
fn default_keep_alive_secs() -> u16 {
    DEFAULT_KEEP_ALIVE_SECS
}

fn default_baud() -> u32 {
    DEFAULT_BAUD
}

fn default_true() -> bool {
    true
}

fn default_console_device() -> String {
    DEFAULT_CONSOLE_DEVICE.to_owned()
}

fn default_idle_logout_secs() -> u32 {
    DEFAULT_IDLE_LOGOUT_SECS
}

pub use super::dialect::DialectChoice;
