use super::*;

const ARGON: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
const BCRYPT: &str = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";

fn valid() -> Config {
    Config {
        gateway: GatewayConfig {
            id: "gw-01".into(),
            ..GatewayConfig::default()
        },
        modems: vec![
            ModemConfig {
                slot: 1,
                port: "/dev/ttyUSB2".into(),
                ..ModemConfig::default()
            },
            ModemConfig {
                slot: 2,
                port: "/dev/ttyUSB6".into(),
                ..ModemConfig::default()
            },
        ],
        ..Config::default()
    }
}

fn keys(c: &Config) -> Vec<String> {
    c.validate().into_iter().map(|p| p.key).collect()
}

#[test]
fn valid_config_has_no_problems() {
    assert_eq!(valid().validate(), vec![]);
}

#[test]
fn default_config_lacks_only_gateway_id() {
    assert_eq!(keys(&Config::default()), ["gateway.id"]);
}

#[test]
fn gateway_id_rules() {
    for bad in ["", "gw 01", "gw/01", "gw.01", &"x".repeat(65)] {
        let mut c = valid();
        c.gateway.id = bad.to_owned();
        assert_eq!(keys(&c), ["gateway.id"], "{bad:?}");
    }
    let mut c = valid();
    c.gateway.id = "A_b-9".repeat(12) + "1234";
    assert_eq!(c.gateway.id.len(), 64);
    assert!(c.validate().is_empty());
}

#[test]
fn log_level_must_be_known() {
    let mut c = valid();
    c.gateway.log_level = "verbose".into();
    assert_eq!(keys(&c), ["gateway.log_level"]);
}

#[test]
fn pin_rules() {
    for (pin, ok) in [
        ("1234", true),
        ("12345678", true),
        ("123", false),
        ("123456789", false),
        ("12a4", false),
    ] {
        let mut c = valid();
        c.modems[0].pin = Some(pin.into());
        assert_eq!(c.validate().is_empty(), ok, "{pin}");
    }
    let mut c = valid();
    c.modems[0].pin = Some("98x7".into());
    assert!(
        !c.validate()[0].message.contains("98x7"),
        "PIN must not be echoed"
    );
}

#[test]
fn smsc_rules() {
    for (smsc, ok) in [
        ("+380672021111", true),
        ("+123456", true),
        ("380672021111", false),
        ("+12345", false),
        ("+1234567890123456", false),
        ("+38 067", false),
    ] {
        let mut c = valid();
        c.modems[0].smsc = Some(smsc.into());
        assert_eq!(c.validate().is_empty(), ok, "{smsc}");
    }
}

#[test]
fn balance_rules() {
    let keys = |c: &Config| -> Vec<String> { c.validate().into_iter().map(|p| p.key).collect() };
    let mut c = valid();
    c.modems[0].balance_ussd = Some("*111#".into());
    c.modems[0].balance_low = Some(10.0);
    c.modems[0].balance_regex = Some(r"Credit (?P<amount>[0-9.]+)".into());
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    c.modems[0].balance_ussd = Some("*111#;+CFUN=0".into());
    c.modems[0].balance_interval_secs = 60;
    c.modems[0].balance_regex = Some("(".into());
    assert_eq!(
        keys(&c),
        [
            "modem[1].balance_ussd",
            "modem[1].balance_interval_secs",
            "modem[1].balance_regex"
        ]
    );
    let mut c = valid();
    c.modems[0].balance_low = Some(5.0);
    let p = c.validate();
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].message.contains("without balance_ussd"),
        "{}",
        p[0].message
    );
}

#[test]
fn group_and_baud_rules() {
    let mut c = valid();
    c.modems[0].group = Some("kyiv star".into());
    c.modems[1].baud = 12345;
    c.console.baud = 300;
    assert_eq!(
        keys(&c),
        ["modem[1].group", "modem[2].baud", "console.baud"]
    );
}

#[test]
fn slots_in_range_and_unique() {
    let mut c = valid();
    c.modems[1].slot = 1;
    let p = c.validate();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].key, "modem[2].slot");
    assert!(p[0].message.contains("already used by modem[1]"));
    c.modems[0].slot = 0;
    c.modems[1].slot = 65;
    assert_eq!(keys(&c), ["modem[1].slot", "modem[2].slot"]);
}

#[test]
fn a_dialect_without_pcm_port_takes_no_voice_port_nor_forward_route() {
    use super::super::{DialectChoice, VoiceRoute};
    use gsmgw_drivers::modem::Dialect;
    let mut c = valid();
    c.modems[0].dialect = DialectChoice::Forced(Dialect::Simcom2g);
    c.modems[0].voice_port = Some("/dev/ttyUSB3".into());
    let route = |slot, action: &str, record| VoiceRoute {
        slot: Some(slot),
        action: action.into(),
        target: Some("sip:100@pbx.local".into()),
        record,
    };
    c.voice.route = vec![route(1, "forward", false), route(2, "forward", false)];
    let p = c.validate();
    let mine: Vec<_> = p
        .iter()
        .filter(|p| p.key.ends_with(".action") || p.key.ends_with(".voice_port"))
        .collect();
    assert_eq!(mine.len(), 2, "{p:?}");
    let msg = |k: &str| {
        mine.iter()
            .find(|p| p.key == k)
            .map(|p| p.message.clone())
            .unwrap_or_default()
    };
    assert!(msg("voice.route[1].action").contains("simcom2g, which has no PCM voice port"));
    assert!(msg("modem[1].voice_port").contains("dialect simcom2g has no PCM voice port"));
    // Rejecting or answering and hanging up needs no audio; auto and PCM dialects pass.
    c.voice.route = vec![
        route(1, "reject", false),
        route(1 + 1, "answer-hangup", true),
    ];
    c.modems[0].voice_port = None;
    assert!(
        !c.validate()
            .iter()
            .any(|p| p.key.ends_with(".action") || p.key.ends_with(".voice_port")),
        "{:?}",
        c.validate()
    );
    c.voice.route = vec![route(1, "answer-hangup", true)];
    assert_eq!(
        c.validate()
            .iter()
            .filter(|p| p.key == "voice.route[1].action")
            .count(),
        1
    );
}

#[test]
fn ports_unique_across_port_and_voice_port() {
    let mut c = valid();
    c.modems[1].port = "/dev/ttyUSB2".into();
    assert_eq!(keys(&c), ["modem[2].port"]);
    let mut c = valid();
    c.modems[1].voice_port = Some("/dev/ttyUSB2".into());
    assert_eq!(keys(&c), ["modem[2].voice_port"]);
    let mut c = valid();
    c.modems[0].port = " ".into();
    assert_eq!(keys(&c), ["modem[1].port"]);
}

#[test]
fn mqtt_rules() {
    let mut c = valid();
    c.mqtt.password = Some("secret".into());
    c.mqtt.keep_alive_secs = 4;
    assert_eq!(keys(&c), ["mqtt.password", "mqtt.keep_alive_secs"]);
    let mut c = valid();
    c.mqtt.url = "http://broker".into();
    assert_eq!(keys(&c), ["mqtt.url"]);
}

#[test]
fn password_hash_shapes() {
    assert!(is_password_hash(ARGON));
    assert!(is_password_hash(
        "$argon2i$m=4096,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"
    ));
    assert!(is_password_hash(BCRYPT));
    assert!(is_password_hash(&BCRYPT.replacen("$2b$", "$2y$", 1)));
    for bad in [
        "hunter2",
        "$argon2id$",
        "$argon2x$v=19$m=1,t=1,p=1$a$b",
        "$2b$12$short",
        "$1$abc$def",
        "",
    ] {
        assert!(!is_password_hash(bad), "{bad}");
    }
    let mut c = valid();
    c.console.password_hash = Some("hunter2".into());
    let p = c.validate();
    assert_eq!(p.len(), 1);
    assert!(!p[0].message.contains("hunter2"));
}

#[test]
fn console_device_and_idle() {
    for (dev, ok) in [
        ("stdin", true),
        ("none", true),
        ("/dev/ttyAMA0", true),
        ("ttyS0", false),
        ("", false),
    ] {
        let mut c = valid();
        c.console.device = dev.into();
        assert_eq!(c.validate().is_empty(), ok, "{dev}");
    }
    let mut c = valid();
    c.console.idle_logout_secs = 29;
    assert_eq!(keys(&c), ["console.idle_logout_secs"]);
}
