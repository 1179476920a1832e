use super::*;

const FILE: &str = "# the box\n[gateway]\nid = \"gw-1\" # name\ndata_dir = \"/tmp/x\"\n\n[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\nusername = \"u\"\npassword = \"hunter22\"\n\n[[modem]]\nslot = 1\nport = \"/dev/ttyUSB2\"\npin = \"1234\"\n\n[console]\ndevice = \"none\"\n";

fn editor(dir: &Path) -> ConfigEditor {
    let p = dir.join("gw.toml");
    std::fs::write(&p, FILE).unwrap();
    let cfg = config::parse_str(FILE, "gw.toml").unwrap();
    ConfigEditor::new(Some(p), &cfg)
}

#[test]
fn secrets_are_masked_and_comments_kept() {
    let d = tempfile::tempdir().unwrap();
    let e = editor(d.path());
    let s = e.show();
    assert!(!s.contains("hunter22") && !s.contains("1234"), "{s}");
    assert!(s.contains("# the box") && s.contains("# name"));
    assert_eq!(e.get("mqtt.password").unwrap(), "******** (set)");
    assert_eq!(e.get("modem[1].port").unwrap(), "\"/dev/ttyUSB2\"");
    assert!(
        e.get("mqtt.keep_alive_secs")
            .unwrap()
            .contains("default 30")
    );
}

#[test]
fn invalid_values_are_refused_with_the_reason_and_nothing_changes() {
    let d = tempfile::tempdir().unwrap();
    let mut e = editor(d.path());
    let err = e.set("mqtt.url", "http://x").unwrap_err();
    assert!(err.contains("mqtt.url"), "{err}");
    let err = e.set("modem[1].baud", "12345").unwrap_err();
    assert!(err.contains("modem[1].baud"), "{err}");
    assert!(e.set("mqtt.keep_alive_secs", "soon").is_err());
    assert!(e.set("mqtt.colour", "blue").is_err());
    assert!(e.set("modem[3].port", "/dev/x").is_err());
    assert!(!e.unsaved());
    assert_eq!(e.diff(), "no changes to save\n");
}

/// Only a secret changed: the diff says so (no "no changes"), without either value; the
/// pin of the second modem too, by its path.
#[test]
fn a_changed_secret_shows_in_the_diff_masked() {
    let d = tempfile::tempdir().unwrap();
    let mut e = editor(d.path());
    e.set("mqtt.password", "hunter23").unwrap();
    e.set("modem[1].pin", "4321").unwrap();
    let diff = e.diff();
    assert!(!diff.contains("no changes"), "{diff}");
    assert!(
        diff.contains("~mqtt.password = *** → *** (changed)")
            && diff.contains("~modem[1].pin = *** → *** (changed)"),
        "{diff}"
    );
    for secret in ["hunter22", "hunter23", "1234", "4321"] {
        assert!(!diff.contains(secret), "{secret} in {diff}");
    }
    // Set back to what the file says: no change.
    e.set("mqtt.password", "hunter22").unwrap();
    e.set("modem[1].pin", "1234").unwrap();
    assert_eq!(e.diff(), "no changes to save\n");
}

#[test]
fn set_diff_save_keeps_a_backup() {
    let d = tempfile::tempdir().unwrap();
    let mut e = editor(d.path());
    e.set("mqtt.username", "gw-7").unwrap();
    e.set("mqtt.password", "s3cret").unwrap();
    e.set("modem[2].port", "/dev/ttyUSB6").unwrap();
    e.set("gateway.port_scan", "/dev/ttyUSB*, /dev/ttyACM*")
        .unwrap();
    let diff = e.diff();
    assert!(
        diff.contains("-username = \"u\"") && diff.contains("+username = \"gw-7\""),
        "{diff}"
    );
    assert!(!diff.contains("s3cret"), "{diff}");
    assert!(
        diff.contains("~mqtt.password = *** → *** (changed)"),
        "{diff}"
    );
    assert!(!diff.contains("hunter22"), "{diff}");
    let cfg = e.pending_config().unwrap();
    assert_eq!(cfg.modems.len(), 2);
    assert_eq!(cfg.modems[1].slot, 2);
    let ch = e.changes(&cfg);
    assert!(ch.mqtt && ch.need_restart.contains(&"modem"));
    let p = e.save().unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains("username = \"gw-7\"") && text.contains("# name"));
    assert_eq!(
        std::fs::read_to_string(d.path().join("gw.toml.bak")).unwrap(),
        FILE
    );
    assert!(config::load(&p).is_ok());
    // A hand edit meanwhile is not overwritten.
    std::fs::write(&p, FILE).unwrap();
    e.set("mqtt.username", "other").unwrap();
    assert!(e.save().unwrap_err().contains("changed on disk"));
    e.revert().unwrap();
    assert!(!e.unsaved());
}

#[test]
fn inline_and_dotted_sections_can_be_edited() {
    let text = "gateway.id = \"gw-1\"\ngateway.data_dir = \"/tmp/x\"\nmqtt = { url = \"mqtt://127.0.0.1\" }\n[console]\ndevice = \"none\"\n";
    let cfg = config::parse_str(text, "t.toml").unwrap();
    let mut e = ConfigEditor::new(None, &cfg);
    // Without a file the working copy is the running config; edit it all the same.
    e.pending = text.parse().unwrap();
    e.set("mqtt.username", "u1").unwrap();
    e.set("gateway.log_level", "debug").unwrap();
    e.set("mqtt.password", "inline-secret").unwrap();
    assert!(!e.show().contains("inline-secret"), "{}", e.show());
    assert!(!e.diff().contains("inline-secret"));
    let c = e.pending_config().unwrap();
    assert_eq!(c.mqtt.username.as_deref(), Some("u1"));
    assert_eq!(c.gateway.log_level, "debug");
    assert!(e.save().is_err(), "no file to save to");
}

#[test]
fn password_hash_is_stored_without_other_edits() {
    let d = tempfile::tempdir().unwrap();
    let mut e = editor(d.path());
    e.set("mqtt.username", "pending-edit").unwrap();
    let h = crate::console::auth::hash_password("long enough").unwrap();
    e.store_password_hash(&h).unwrap();
    let text = std::fs::read_to_string(d.path().join("gw.toml")).unwrap();
    assert!(text.contains(&h) && !text.contains("pending-edit"));
    assert!(e.unsaved());
    assert!(e.show().contains("pending-edit"));
}

/// Every key takes the type of its own schema, in every section (the console's promise:
/// configure a box without touching a file).
#[test]
fn set_types_values_by_the_schema_in_every_section() {
    let d = tempfile::tempdir().unwrap();
    let mut e = editor(d.path());
    for (key, raw, shown) in [
        ("sms.per_day", "100", "100"),
        ("sms.quiet_hours", "21:00-09:00", "\"21:00-09:00\""),
        ("voice.record_sip_in", "true", "true"),
        ("voice.ring_timeout_secs", "30", "30"),
        (
            "gateway.port_scan",
            "/dev/ttyUSB*, /dev/ttyACM*",
            "[\"/dev/ttyUSB*\", \"/dev/ttyACM*\"]",
        ),
        ("gateway.id", "100", "\"100\""),
        ("mqtt.keep_alive_secs", "45", "45"),
        ("console.idle_logout_secs", "600", "600"),
        ("modem[1].enabled", "yes", "true"),
        ("modem[1].pin", "0042", "******** (set)"),
        ("modem[1].balance_ussd", "*111#", "\"*111#\""),
        ("modem[1].balance_low", "10.5", "10.5"),
        ("modem[1].balance_interval_secs", "3600", "3600"),
        ("modem[2].port", "/dev/ttyUSB6", "\"/dev/ttyUSB6\""),
        ("sms.route[1].prefix", "+38067", "\"+38067\""),
        ("voice.route[1].action", "reject", "\"reject\""),
    ] {
        if key == "sms.route[1].prefix" {
            // A route needs its group before it is valid.
            e.set("modem[1].group", "kyivstar").unwrap();
        }
        let r = e.set(key, raw);
        if key == "sms.route[1].prefix" {
            // Alone, the new route lacks its group: refused with config check's reason.
            let err = r.unwrap_err();
            assert!(err.contains("sms.route: missing field `group`"), "{err}");
            continue;
        }
        r.unwrap_or_else(|err| panic!("{key} {raw}: {err}"));
        assert_eq!(e.get(key).unwrap(), shown, "{key}");
    }
    let cfg = e.pending_config().unwrap();
    assert_eq!(cfg.sms.per_day, 100);
    assert!(cfg.voice.record_sip_in);
    assert_eq!(cfg.modems[0].balance_low, Some(10.5));
    assert_eq!(cfg.modems[1].slot, 2);
    assert_eq!(cfg.voice.route[0].action, "reject");
    // Wrong types and values are refused with config check's words; nothing changes.
    let before = e.show();
    let err = e.set("sms.per_day", "lots").unwrap_err();
    assert_eq!(err, "sms.per_day takes a whole number, not \"lots\"");
    let err = e.set("voice.record_sip_in", "maybe").unwrap_err();
    assert_eq!(
        err,
        "voice.record_sip_in takes true or false, not \"maybe\""
    );
    let err = e.set("modem[1].balance_low", "low").unwrap_err();
    assert_eq!(err, "modem[1].balance_low takes a number, not \"low\"");
    let err = e.set("modem[1].balance_interval_secs", "10").unwrap_err();
    assert!(err.contains("300"), "{err}");
    assert!(
        e.set("sip.colour", "blue")
            .unwrap_err()
            .contains("sip.colour")
    );
    assert!(
        e.set("weather.today", "sun")
            .unwrap_err()
            .contains("unknown section")
    );
    assert!(
        e.set("voice.route[3].action", "reject")
            .unwrap_err()
            .contains("voice.route[2] adds the next one")
    );
    assert_eq!(e.show(), before);
}
