//! The shipped example config validates, and docs/config.md documents every key.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use gsmgw_agent::config::{self, DialectChoice, LogFormat};
use gsmgw_drivers::modem::Dialect;

fn docs(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("docs")
        .join(file)
}

#[test]
fn config_example_file_validates() {
    let cfg = match config::load(&docs("gsmgw.example.toml")) {
        Ok(cfg) => cfg,
        Err(e) => panic!("docs/gsmgw.example.toml must be valid:\n{e}"),
    };
    assert_eq!(cfg.gateway.id, "gw-01");
    assert_eq!(cfg.gateway.log_format, LogFormat::Text);
    let endpoint = cfg.mqtt.endpoint().unwrap();
    assert!(!endpoint.tls, "the example uses plain mqtt://");
    assert_eq!(cfg.modems.len(), 2);
    assert_eq!(
        cfg.modems[0].dialect,
        DialectChoice::Forced(Dialect::Quectel)
    );
    assert_eq!(
        cfg.modems[1].dialect,
        DialectChoice::Forced(Dialect::Simcom)
    );
    assert!(cfg.console.is_stdin());
    assert!(cfg.validate().is_empty());
}

#[test]
fn config_docs_describe_every_key() {
    let text = std::fs::read_to_string(docs("config.md")).unwrap();
    let keys = [
        "gateway.id",
        "gateway.data_dir",
        "gateway.log_format",
        "gateway.log_level",
        "mqtt.url",
        "mqtt.username",
        "mqtt.password",
        "mqtt.ca_file",
        "mqtt.cert_file",
        "mqtt.key_file",
        "mqtt.keep_alive_secs",
        "mqtt.max_command_mb",
        "modem.slot",
        "modem.port",
        "modem.voice_port",
        "modem.baud",
        "modem.pin",
        "modem.smsc",
        "modem.group",
        "modem.dialect",
        "modem.enabled",
        "modem.balance_ussd",
        "modem.balance_interval_secs",
        "modem.balance_low",
        "modem.balance_regex",
        "gateway.board_profile",
        "gateway.port_scan",
        "gateway.health_interval_secs",
        "gateway.job_retention_days",
        "gateway.sms_seen_retention_days",
        "modem.imei",
        "sms.reassembly_timeout_secs",
        "sms.per_minute",
        "sms.per_hour",
        "sms.per_day",
        "sms.quiet_hours",
        "sms.on_unknown",
        "sms.cooldown_secs",
        "sms.route",
        "console.device",
        "console.baud",
        "console.password_hash",
        "console.idle_logout_secs",
        "sip.server",
        "sip.domain",
        "sip.username",
        "sip.auth_username",
        "sip.password",
        "sip.bind",
        "sip.media_address",
        "sip.register",
        "sip.register_expires_secs",
        "sip.options_interval_secs",
        "sip.rtp_port_min",
        "sip.rtp_port_max",
        "sip.codecs",
        "sip.trusted_peers",
        "sip.inbound_auth",
        "sip.inbound_username",
        "sip.inbound_password",
        "sip.untrusted",
        "sip.rate_limit_per_source",
        "voice.ring_timeout_secs",
        "voice.call_minutes_per_day",
        "voice.rtp_timeout_secs",
        "voice.record_sip_in",
        "voice.missed_call_sms",
        "voice.missed_call_sms_on",
        "voice.missed_call_sms_period_secs",
        "voice.recordings_max_age_days",
        "voice.recordings_max_mb",
        "voice.bridge_domains",
        "voice.route",
    ];
    for key in keys {
        assert!(
            text.contains(&format!("### `{key}`")),
            "docs/config.md lacks a section for {key}"
        );
    }
    // And every key the parser accepts is one of those: a config using them all is valid.
    let serialized = toml::to_string(&config::Config {
        gateway: config::GatewayConfig {
            id: "gw".into(),
            ..Default::default()
        },
        mqtt: config::MqttConfig {
            username: Some("u".into()),
            password: Some("p".into()),
            ..Default::default()
        },
        modems: vec![config::ModemConfig {
            slot: 1,
            port: "/dev/ttyUSB0".into(),
            voice_port: Some("/dev/ttyUSB1".into()),
            imei: Some("861698041234567".into()),
            pin: Some("1234".into()),
            smsc: Some("+1234567".into()),
            group: Some("g".into()),
            balance_ussd: Some("*111#".into()),
            balance_low: Some(10.0),
            balance_regex: Some("(?P<amount>[0-9.]+)".into()),
            ..Default::default()
        }],
        console: config::ConsoleConfig {
            password_hash: Some(
                "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW".into(),
            ),
            ..Default::default()
        },
        sms: config::SmsConfig::default(),
        sip: Some(config::SipConfig {
            server: "127.0.0.1:5060".into(),
            domain: Some("pbx.local".into()),
            username: "gw".into(),
            auth_username: Some("gw-auth".into()),
            password: "secret".into(),
            bind: "0.0.0.0:5060".into(),
            media_address: Some("127.0.0.1".into()),
            register: true,
            register_expires_secs: 300,
            options_interval_secs: 30,
            rtp_port_min: 10_000,
            rtp_port_max: 10_999,
            codecs: vec!["PCMU".into()],
            trusted_peers: vec!["127.0.0.1".into()],
            inbound_auth: Some("digest".into()),
            inbound_username: Some("pbx".into()),
            inbound_password: Some("in-secret".into()),
            untrusted: "drop".into(),
            rate_limit_per_source: 50,
        }),
        voice: config::VoiceConfig {
            route: vec![config::VoiceRoute {
                slot: Some(1),
                action: "forward".into(),
                target: Some("sip:100@pbx.local".into()),
                record: true,
            }],
            missed_call_sms: "Sorry".into(),
            bridge_domains: vec!["pbx.local".into()],
            ..Default::default()
        },
    })
    .unwrap();
    let doc: toml::Table = toml::from_str(&serialized).unwrap();
    for (section, value) in &doc {
        let tables: Vec<&toml::Table> = match value {
            toml::Value::Table(t) => vec![t],
            toml::Value::Array(items) => items.iter().filter_map(|v| v.as_table()).collect(),
            other => panic!("unexpected top-level value {other:?}"),
        };
        for table in tables {
            for key in table.keys() {
                let path = format!("{section}.{key}");
                assert!(keys.contains(&path.as_str()), "{path} is not documented");
            }
        }
    }
}

#[test]
fn config_load_of_missing_file_is_io_error() {
    let err = config::load(&docs("no-such-file.toml")).unwrap_err();
    assert!(matches!(err, config::ConfigError::Io { .. }), "{err}");
    assert_eq!(err.exit_code(), 2);
}
