//! Parsing tests: every problem of a file, each with its line and key.

use std::path::PathBuf;

use super::*;

const MINIMAL: &str = "[gateway]\nid = \"gw-01\"\n";

fn problems(text: &str) -> Vec<Problem> {
    match parse_str(text, "gw.toml") {
        Ok(config) => panic!("expected problems, got {config:?}"),
        Err(ConfigError::Invalid(problems)) => problems,
        Err(other) => panic!("expected Invalid, got {other}"),
    }
}

/// (line, key) of every problem, in reported order.
fn located(text: &str) -> Vec<(Option<usize>, String)> {
    problems(text)
        .into_iter()
        .map(|p| (p.line, p.key))
        .collect()
}

fn only(text: &str, key: &str) -> Problem {
    let mut all = problems(text);
    assert_eq!(all.len(), 1, "expected one problem, got {all:#?}");
    let p = all.remove(0);
    assert_eq!(p.key, key, "{p}");
    p
}

fn with_mqtt(lines: &str) -> String {
    format!("{MINIMAL}[mqtt]\n{lines}\n")
}

#[test]
fn defaults_applied() {
    let c = parse_str(MINIMAL, "gw.toml").unwrap();
    assert_eq!(c.gateway.id, "gw-01");
    assert_eq!(c.gateway.data_dir, PathBuf::from("/var/lib/gsmgw"));
    assert_eq!(c.gateway.log_format, LogFormat::Text);
    assert_eq!(c.gateway.log_level, "info");
    assert_eq!(c.mqtt, MqttConfig::default());
    assert_eq!(c.mqtt.url, "mqtt://127.0.0.1:1883");
    assert_eq!(c.mqtt.keep_alive_secs, 30);
    assert!(c.modems.is_empty());
    assert_eq!(c.console.device, "/dev/ttyS0");
    assert_eq!(c.console.baud, 115_200);
    assert_eq!(c.console.idle_logout_secs, 600);
    assert_eq!(c.console.password_hash, None);

    let c = parse_str(
        &format!("{MINIMAL}[[modem]]\nslot = 3\nport = \"/dev/ttyUSB2\"\n"),
        "gw.toml",
    )
    .unwrap();
    let m = &c.modems[0];
    assert_eq!((m.slot, m.port.as_str()), (3, "/dev/ttyUSB2"));
    assert_eq!(m.baud, 115_200);
    assert_eq!(m.dialect, DialectChoice::Auto);
    assert!(m.enabled);
    assert_eq!(
        (&m.voice_port, &m.pin, &m.smsc, &m.group),
        (&None, &None, &None, &None)
    );
}

#[test]
fn all_keys_parsed() {
    let text = r#"
[gateway]
id = "gw_7"
data_dir = "/srv/gw"
log_format = "json"
log_level = "debug"
[mqtt]
url = "mqtt://broker:1884"
username = "u"
password = "p"
keep_alive_secs = 60
[[modem]]
slot = 64
port = "/dev/ttyACM0"
voice_port = "/dev/ttyACM1"
baud = 921600
pin = "12345678"
smsc = "+123456"
group = "g-1"
dialect = "huawei"
enabled = false
[console]
device = "none"
baud = 9600
password_hash = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"
idle_logout_secs = 86400
"#;
    let c = parse_str(text, "gw.toml").unwrap();
    assert_eq!(c.gateway.log_format, LogFormat::Json);
    assert_eq!(c.mqtt.password.as_deref(), Some("p"));
    assert_eq!(
        c.modems[0].dialect,
        DialectChoice::Forced(gsmgw_drivers::modem::Dialect::Huawei)
    );
    assert!(!c.modems[0].enabled);
    assert!(c.console.is_disabled());
    // Secrets stay out of Debug output.
    let debug = format!("{c:?}");
    assert!(
        !debug.contains("12345678") && !debug.contains("R9h/"),
        "{debug}"
    );
    // What serde writes, the reader reads back identically.
    let written = toml::to_string(&c).unwrap();
    assert_eq!(parse_str(&written, "rt.toml").unwrap(), c);
    assert_eq!(toml::from_str::<Config>(&written).unwrap(), c);
}

#[test]
fn serde_path_applies_defaults_and_rejects_unknown_keys() {
    let c: Config = toml::from_str(MINIMAL).unwrap();
    assert_eq!(c, parse_str(MINIMAL, "x").unwrap());
    assert!(toml::from_str::<Config>("[gateway]\nid = \"a\"\nidd = 1\n").is_err());
}

#[test]
fn unknown_key_and_duplicate_slot_both_reported_with_lines() {
    let text = r#"[gateway]
id = "gw-01"

[[modem]]
slot = 1
port = "/dev/ttyUSB2"

[[modem]]
slot = 1
prot = "/dev/ttyUSB6"
port = "/dev/ttyUSB7"
"#;
    let all = problems(text);
    assert_eq!(
        all.iter()
            .map(|p| (p.line, p.key.as_str()))
            .collect::<Vec<_>>(),
        [(Some(9), "modem[2].slot"), (Some(10), "modem[2].prot")]
    );
    assert!(
        all[0].message.contains("already used by modem[1]"),
        "{}",
        all[0]
    );
    assert!(
        all[1].message.contains("did you mean `port`?"),
        "{}",
        all[1]
    );
    assert!(
        all[1]
            .message
            .contains("Expected one of: slot, port, voice_port"),
        "{}",
        all[1]
    );
    assert_eq!(
        all[1].to_string(),
        "gw.toml:10: modem[2].prot: unknown key; did you mean `port`? Expected one of: \
         slot, port, voice_port, imei, baud, pin, smsc, group, dialect, enabled, \
         balance_ussd, balance_interval_secs, balance_low, balance_regex"
    );
    // The error's Display lists both, one per line.
    let err = parse_str(text, "gw.toml").unwrap_err();
    let shown = err.to_string();
    assert_eq!(shown.lines().count(), 2, "{shown}");
    assert!(shown.starts_with("gw.toml:9: modem[2].slot: slot 1 is already used by modem[1]\n"));
}

#[test]
fn many_problems_in_one_run_sorted_by_line() {
    let text = r#"[gateway]
id = "gw 01"
log_level = "loud"
colour = "red"

[mqtt]
url = "http://broker"
password = "x"

[[modem]]
slot = "one"
port = "/dev/ttyUSB2"
pin = "12"

[[modem]]
slot = 2
port = "/dev/ttyUSB2"
smsc = "0800"

[console]
password_hash = "hunter2"
idle_logout_secs = 5
"#;
    assert_eq!(
        located(text),
        [
            (Some(2), "gateway.id".to_owned()),
            (Some(3), "gateway.log_level".to_owned()),
            (Some(4), "gateway.colour".to_owned()),
            (Some(7), "mqtt.url".to_owned()),
            (Some(8), "mqtt.password".to_owned()),
            (Some(11), "modem[1].slot".to_owned()),
            (Some(13), "modem[1].pin".to_owned()),
            (Some(17), "modem[2].port".to_owned()),
            (Some(18), "modem[2].smsc".to_owned()),
            (Some(21), "console.password_hash".to_owned()),
            (Some(22), "console.idle_logout_secs".to_owned()),
        ]
    );
}

#[test]
fn missing_required_keys_point_at_their_table() {
    let text = format!("{MINIMAL}\n[[modem]]\nslot = 1\n\n[[modem]]\nport = \"/dev/ttyUSB3\"\n");
    let all = problems(&text);
    assert_eq!(
        all.iter()
            .map(|p| (p.line, p.key.as_str()))
            .collect::<Vec<_>>(),
        [(Some(4), "modem[1].port"), (Some(7), "modem[2].slot")]
    );
    assert_eq!(all[0].message, "required key is missing");

    let p = only("[gateway]\nlog_level = \"warn\"\n", "gateway.id");
    assert_eq!(
        (p.line, p.message.as_str()),
        (Some(1), "required key is missing")
    );

    let p = only("[console]\ndevice = \"stdin\"\n", "gateway");
    assert_eq!(p.line, None);
    assert_eq!(
        p.to_string(),
        "gw.toml: gateway: required section [gateway] is missing"
    );
}

#[test]
fn empty_port_rejected() {
    let p = only(
        &format!("{MINIMAL}[[modem]]\nslot = 1\nport = \"\"\n"),
        "modem[1].port",
    );
    assert_eq!(p.line, Some(5));
}

#[test]
fn duplicate_port_rejected() {
    let text = format!(
        "{MINIMAL}[[modem]]\nslot = 1\nport = \"/dev/ttyUSB2\"\n[[modem]]\nslot = 2\nport = \"/dev/ttyUSB2\"\n"
    );
    let p = only(&text, "modem[2].port");
    assert_eq!(p.line, Some(8));
    assert_eq!(p.message, "/dev/ttyUSB2 is already used by modem[1].port");
}

#[test]
fn bad_mqtt_urls() {
    for (url, needle) in [
        ("http://broker:1883", "scheme `http` is not supported"),
        ("mqtt://", "host is missing"),
        ("mqtt://:1883", "host is missing"),
        ("mqtt://broker:99999", "not a port number"),
        ("mqtt://broker:abc", "not a port number"),
        ("broker", "expected mqtt://"),
    ] {
        let p = only(&with_mqtt(&format!("url = \"{url}\"")), "mqtt.url");
        assert_eq!(p.line, Some(4), "{url}");
        assert!(p.message.contains(needle), "{url}: {p}");
    }
    let c = parse_str(&with_mqtt("url = \"mqtts://broker.example\""), "gw.toml").unwrap();
    assert_eq!(
        c.mqtt.endpoint().unwrap(),
        MqttEndpoint {
            tls: true,
            host: "broker.example".into(),
            port: 8883
        }
    );
}

#[test]
fn tls_files_must_exist_and_be_readable() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "pem").unwrap();
    let missing = dir.path().join("nope.pem");
    let text = with_mqtt(&format!(
        "url = \"mqtts://broker\"\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"",
        ca.display(),
        missing.display(),
        dir.path().display(),
    ));
    let all = problems(&text);
    assert_eq!(
        all.iter()
            .map(|p| (p.line, p.key.as_str()))
            .collect::<Vec<_>>(),
        [(Some(6), "mqtt.cert_file"), (Some(7), "mqtt.key_file")]
    );
    assert!(all[0].message.ends_with("does not exist"), "{}", all[0]);
    assert!(
        all[1].message.ends_with("is not a regular file"),
        "{}",
        all[1]
    );

    // A file without read permission (meaningless when the tests run as root).
    let locked = dir.path().join("locked.pem");
    std::fs::write(&locked, "pem").unwrap();
    set_mode(&locked, 0o000);
    if std::fs::File::open(&locked).is_err() {
        let text = with_mqtt(&format!(
            "url = \"mqtts://broker\"\nca_file = \"{}\"",
            locked.display()
        ));
        let p = only(&text, "mqtt.ca_file");
        assert!(p.message.starts_with("cannot read"), "{p}");
    }
    set_mode(&locked, 0o600);
}

/// A private key others can read is an error (`gsmgw run` refuses it, like ssh); the same
/// file 0600 is fine. Certificates and the CA file may be world-readable.
#[cfg(unix)]
#[test]
fn a_key_file_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let cert = dir.path().join("c.pem");
    std::fs::write(&key, "pem").unwrap();
    std::fs::write(&cert, "pem").unwrap();
    set_mode(&cert, 0o644);
    set_mode(&key, 0o644);
    let text = with_mqtt(&format!(
        "url = \"mqtts://broker\"\ncert_file = \"{}\"\nkey_file = \"{}\"",
        cert.display(),
        key.display()
    ));
    let p = only(&text, "mqtt.key_file");
    assert!(
        p.message.contains("mode 0644") && p.message.contains("chmod 600"),
        "{p}"
    );
    set_mode(&key, 0o600);
    let e = parse_str(&text, "gw.toml").unwrap_err();
    assert!(
        e.problems().iter().all(|p| !p.message.contains("mode 0")),
        "{e}"
    );
}

/// A config file others can read is reported when it holds a secret, and only then.
#[cfg(unix)]
#[test]
fn a_readable_config_with_secrets_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    let text = with_mqtt("url = \"mqtt://broker\"\nusername = \"u\"\npassword = \"p\"");
    std::fs::write(&path, &text).unwrap();
    set_mode(&path, 0o644);
    let cfg = super::load(&path).unwrap();
    let w = super::secrets_exposed(&path, &cfg).unwrap();
    assert!(
        w.contains("mqtt.password") && w.contains("0644") && !w.contains("\"p\""),
        "{w}"
    );
    set_mode(&path, 0o600);
    assert_eq!(super::secrets_exposed(&path, &cfg), None);
    set_mode(&path, 0o644);
    let plain = super::parse_str(&with_mqtt("url = \"mqtt://broker\""), "gw.toml").unwrap();
    assert_eq!(super::secrets_exposed(&path, &plain), None);
}

#[cfg(unix)]
fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(not(unix))]
fn set_mode(_path: &std::path::Path, _mode: u32) {}

#[test]
fn tls_pairs_and_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("c.pem");
    std::fs::write(&cert, "pem").unwrap();
    set_mode(&cert, 0o600);
    let cert = cert.display();

    let p = only(
        &with_mqtt(&format!("url = \"mqtts://broker\"\ncert_file = \"{cert}\"")),
        "mqtt.cert_file",
    );
    assert!(p.message.contains("needs mqtt.key_file"), "{p}");
    let p = only(
        &with_mqtt(&format!("url = \"mqtts://broker\"\nkey_file = \"{cert}\"")),
        "mqtt.key_file",
    );
    assert!(p.message.contains("needs mqtt.cert_file"), "{p}");

    let p = only(
        &with_mqtt(&format!("url = \"mqtt://broker\"\nca_file = \"{cert}\"")),
        "mqtt.ca_file",
    );
    assert_eq!(p.line, Some(5));
    assert!(p.message.contains("only used with an mqtts:// url"), "{p}");

    let ok = with_mqtt(&format!(
        "url = \"mqtts://broker\"\nca_file = \"{cert}\"\ncert_file = \"{cert}\"\nkey_file = \"{cert}\""
    ));
    // Readable and paired, but not PEM: the contents are checked as `gsmgw run` loads them.
    let e = parse_str(&ok, "gw.toml").unwrap_err();
    assert!(
        e.problems()
            .iter()
            .any(|p| p.key.starts_with("mqtt.") && p.message.contains("PEM")),
        "{e}"
    );
}

#[test]
fn bad_pin_smsc_group_and_id() {
    let modem =
        |extra: &str| format!("{MINIMAL}[[modem]]\nslot = 1\nport = \"/dev/ttyUSB2\"\n{extra}\n");
    let p = only(&modem("pin = \"12a4\""), "modem[1].pin");
    assert_eq!(p.line, Some(6));
    assert!(!p.message.contains("12a4"));
    // An unquoted PIN is a type error, still without echoing it.
    let p = only(&modem("pin = 4321"), "modem[1].pin");
    assert!(
        !p.message.contains("4321") && p.message.contains("expected a string"),
        "{p}"
    );
    let p = only(&modem("smsc = \"380672021111\""), "modem[1].smsc");
    assert_eq!(p.line, Some(6));
    only(&modem("group = \"a b\""), "modem[1].group");
    only(&modem("baud = 100000"), "modem[1].baud");
    let p = only(&modem("dialect = \"nokia\""), "modem[1].dialect");
    assert!(p.message.contains("unknown variant `nokia`"), "{p}");

    let p = only("[gateway]\nid = \"gw/01\"\n", "gateway.id");
    assert_eq!(p.line, Some(2));
    let long = "x".repeat(65);
    only(&format!("[gateway]\nid = \"{long}\"\n"), "gateway.id");
    only("[gateway]\nid = \"\"\n", "gateway.id");
}

#[test]
fn plain_text_password_hash_rejected() {
    let p = only(
        &format!("{MINIMAL}[console]\ndevice = \"stdin\"\npassword_hash = \"s3cret!\"\n"),
        "console.password_hash",
    );
    assert_eq!(p.line, Some(5));
    assert!(p.message.contains("never a plain-text password"), "{p}");
    assert!(!p.to_string().contains("s3cret"), "{p}");
}

#[test]
fn type_errors_reported_with_line_and_all_of_them() {
    let text = format!(
        "{MINIMAL}keep = 1\n[mqtt]\nkeep_alive_secs = \"30\"\n[[modem]]\nslot = \"one\"\nport = \"/dev/ttyUSB2\"\nenabled = \"yes\"\nbaud = 1e5\n[console]\nidle_logout_secs = -1\n"
    );
    let all = problems(&text);
    let lines: Vec<_> = all.iter().map(|p| (p.line, p.key.as_str())).collect();
    assert_eq!(
        lines,
        [
            (Some(3), "gateway.keep"),
            (Some(5), "mqtt.keep_alive_secs"),
            (Some(7), "modem[1].slot"),
            (Some(9), "modem[1].enabled"),
            (Some(10), "modem[1].baud"),
            (Some(12), "console.idle_logout_secs"),
        ]
    );
    assert!(
        all[2]
            .message
            .contains("invalid type: string \"one\", expected u16"),
        "{}",
        all[2]
    );
    // Out-of-range integers for the field's type are type errors too.
    let p = only(
        &format!("{MINIMAL}[[modem]]\nslot = 70000\nport = \"/dev/x\"\n"),
        "modem[1].slot",
    );
    assert_eq!(p.line, Some(4));
}

#[test]
fn syntax_errors_reported_with_line() {
    let all = problems("[gateway]\nid = \"gw-01\"\nlog_level = info\n");
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!((all[0].line, all[0].key.as_str()), (Some(3), "syntax"));
    assert!(
        all[0].to_string().starts_with("gw.toml:3: syntax: "),
        "{}",
        all[0]
    );

    let all = problems("[gateway]\nid = \"gw\"\n[gateway]\nid = \"x\n");
    assert!(all.len() >= 2, "{all:#?}");
    assert!(all.iter().all(|p| p.key == "syntax"));
    assert_eq!(all[0].line, Some(3));
    assert!(all.iter().any(|p| p.line == Some(4)));
}

#[test]
fn section_shape_errors() {
    let p = only(
        &format!("{MINIMAL}[modem]\nslot = 1\nport = \"/dev/x\"\n"),
        "modem",
    );
    assert_eq!(p.line, Some(3));
    assert!(p.message.contains("[[modem]]"), "{p}");
    let p = only(&format!("mqtt = \"mqtt://x\"\n{MINIMAL}"), "mqtt");
    assert_eq!(p.line, Some(1));
    assert_eq!(p.message, "expected a table, found a string");
    let p = only(&format!("{MINIMAL}[modems]\n"), "modems");
    assert!(p.message.contains("did you mean `modem`?"), "{p}");
    // Inline tables and dotted keys work as well as [headers].
    let c = parse_str("gateway.id = \"a\"\nmqtt = { url = \"mqtt://b\" }\n", "x").unwrap();
    assert_eq!(
        (c.gateway.id.as_str(), c.mqtt.url.as_str()),
        ("a", "mqtt://b")
    );
}

#[test]
fn validate_problems_have_no_file_or_line() {
    let c = Config::default();
    let all = c.validate();
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].file.as_str(), all[0].line), ("", None));
    assert_eq!(all[0].to_string(), "gateway.id: must not be empty");
}

#[test]
fn load_reports_io_and_problems() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.toml");
    let err = load(&missing).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }));
    assert_eq!(err.exit_code(), 2);

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[gateway]\nid = \"a b\"\n").unwrap();
    let err = load(&bad).unwrap_err();
    assert_eq!(err.exit_code(), 1);
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2: gateway.id: `a b` contains ' '; only letters, digits, `_` and `-` are allowed",
            bad.display()
        )
    );
}

#[test]
fn sip_and_voice_problems_all_reported() {
    let text = r#"
[gateway]
id = "gw"

[[modem]]
slot = 1
port = "/dev/ttyUSB0"

[sip]
username = "gw user"
bind = "nowhere"
codecs = ["G729"]
rtp_port_min = 80

[voice]
ring_timeout_secs = 2
missed_call_sms_on = "sometimes"

[[voice.route]]
slot = 7
action = "forward"
target = "tel:100"

[[voice.route]]
slot = 7
action = "ring"
"#;
    let keys: Vec<String> = problems(text).into_iter().map(|p| p.key).collect();
    for want in [
        "sip.server",
        "sip.username",
        "sip.bind",
        "sip.codecs",
        "sip.rtp_port_min",
        "voice.ring_timeout_secs",
        "voice.missed_call_sms_on",
        "voice.route[1].slot",
        "voice.route[1].target",
        "voice.route[2].slot",
        "voice.route[2].action",
    ] {
        assert!(
            keys.iter().any(|k| k == want),
            "{want} not reported: {keys:?}"
        );
    }
}

#[test]
fn forwarding_needs_sip() {
    let text = r#"
[gateway]
id = "gw"

[[modem]]
slot = 1
port = "/dev/ttyUSB0"

[[voice.route]]
action = "forward"
target = "sip:100@pbx.local"
"#;
    let p = only(text, "voice.route[1].target");
    assert!(p.message.contains("[sip]"), "{}", p.message);
}

#[test]
fn inbound_auth_defaults_checks_and_warning() {
    let sip = |extra: &str| {
        format!("{MINIMAL}[sip]\nserver = \"127.0.0.1:5060\"\nusername = \"gw\"\n{extra}")
    };
    let c = parse_str(&sip("password = \"p\"\n"), "gw.toml").unwrap();
    let s = c.sip.as_ref().unwrap();
    assert_eq!(s.inbound_auth_mode(), "contact-token", "registering");
    assert_eq!(
        (s.untrusted.as_str(), s.rate_limit_per_source),
        ("reject", 100)
    );
    assert!(c.warnings().is_empty());
    let c = parse_str(&sip("password = \"p\"\nregister = false\n"), "gw.toml").unwrap();
    let s = c.sip.as_ref().unwrap();
    assert_eq!(s.inbound_auth_mode(), "digest", "static trunk");
    assert_eq!(s.inbound_credentials(), ("gw".to_string(), "p".to_string()));
    let c = parse_str(
        &sip("register = false\ninbound_auth = \"digest\"\ninbound_username = \"pbx\"\ninbound_password = \"q\"\nuntrusted = \"drop\"\n"),
        "gw.toml",
    )
    .unwrap();
    let s = c.sip.as_ref().unwrap();
    assert_eq!(
        s.inbound_credentials(),
        ("pbx".to_string(), "q".to_string())
    );
    // A static trunk without any password cannot challenge: refused, with a way out.
    let p = only(&sip("register = false\n"), "sip.inbound_auth");
    assert!(p.message.contains("inbound_password"), "{p}");
    let p = only(
        &sip("register = false\ninbound_auth = \"contact-token\"\n"),
        "sip.inbound_auth",
    );
    assert!(p.message.contains("register = true"), "{p}");
    only(&sip("inbound_auth = \"none\"\n"), "sip.inbound_auth");
    only(&sip("untrusted = \"ignore\"\n"), "sip.untrusted");
    // "ip" is an explicit, warned-about choice.
    let c = parse_str(&sip("register = false\ninbound_auth = \"ip\"\n"), "gw.toml").unwrap();
    let w = c.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].key, "sip.inbound_auth");
    assert!(w[0].message.contains("forged"), "{}", w[0]);
}
