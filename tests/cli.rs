//! The command line: --version, config check, at and probe against a simulated modem.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{SimModem, gsmgw_bin};

#[test]
fn version_names_version_git_target_and_profile() {
    let out = Command::new(gsmgw_bin()).arg("--version").output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains(env!("CARGO_PKG_VERSION")), "{s}");
    assert!(s.contains("git "), "{s}");
    assert!(s.contains("linux"), "target triple missing: {s}");
    assert!(s.contains("debug") || s.contains("release"), "{s}");
}

#[test]
fn config_check_reports_every_problem_with_lines() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[gateway]\nid = \"gw-1\"\ncolour = \"blue\"\n\n[[modem]]\nslot = 1\nport = \"/dev/ttyUSB0\"\n\n[[modem]]\nslot = 1\nport = \"/dev/ttyUSB1\"\n",
    )
    .unwrap();
    let out = Command::new(gsmgw_bin())
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("bad.toml:3:") && s.contains("gateway.colour"),
        "{s}"
    );
    assert!(
        s.contains("bad.toml:10:") && s.contains("modem[2].slot"),
        "{s}"
    );

    let good = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/gsmgw.example.toml");
    let out = Command::new(gsmgw_bin())
        .args(["config", "check", good])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let out = Command::new(gsmgw_bin())
        .args(["config", "check", "/nonexistent/gsmgw.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `inbound_auth = "ip"` is valid but warned about; the default (contact-token) is not.
#[test]
fn config_check_warns_about_ip_only_inbound_auth() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gw.toml");
    let check = |sip_extra: &str| {
        std::fs::write(
            &cfg,
            format!(
                "[gateway]\nid = \"gw-1\"\n\n[sip]\nserver = \"192.0.2.10:5060\"\nusername = \"gw\"\npassword = \"p\"\n{sip_extra}"
            ),
        )
        .unwrap();
        // Private, as a config with a password should be (else that is warned about too).
        std::fs::set_permissions(&cfg, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let out = Command::new(gsmgw_bin())
            .args(["config", "check"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let s = check("inbound_auth = \"ip\"\n");
    assert!(
        s.contains("gw.toml: warning: sip.inbound_auth: `ip` trusts the source address alone"),
        "{s}"
    );
    assert!(!check("").contains("warning"));
}

#[test]
fn at_and_probe_talk_to_a_simulated_modem() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimModem::start(
        dir.path(),
        "m",
        &[
            "--dialect",
            "simcom",
            "--imei",
            "866155039876540",
            "--sim-busy-secs",
            "0",
        ],
    );
    let out = Command::new(gsmgw_bin())
        .args(["at", "--port"])
        .arg(&sim.link)
        .args(["AT+CGSN", "AT+CGMI"])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{s}");
    assert!(s.contains("866155039876540") && s.contains("SIMCOM"), "{s}");
    assert_eq!(s.matches("OK").count(), 2, "{s}");

    let out = Command::new(gsmgw_bin())
        .args(["at", "--port"])
        .arg(&sim.link)
        .arg("AT+NOSUCHTHING")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));

    let out = Command::new(gsmgw_bin())
        .args(["probe", "--port"])
        .arg(&sim.link)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{s}");
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    assert_eq!(v["dialect"], "simcom");
    assert_eq!(v["identity"]["imei"], "866155039876540");
}

#[test]
fn probe_identifies_every_dialect() {
    let dir = tempfile::tempdir().unwrap();
    for (dialect, manufacturer, iccid) in [
        ("generic", "Generic", "89490200001234567890"),
        ("quectel", "Quectel", "89380030123456789012"),
        ("simcom", "SIMCOM", "89380010987654321098"),
        ("huawei", "huawei", "89380060555444333221"),
    ] {
        let sim = SimModem::start(
            dir.path(),
            dialect,
            &[
                "--dialect",
                dialect,
                "--imei",
                "352099001761481",
                "--imsi",
                "255030123456781",
                "--iccid",
                iccid,
                "--sim-busy-secs",
                "0",
            ],
        );
        let out = Command::new(gsmgw_bin())
            .args(["probe", "--port"])
            .arg(&sim.link)
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{dialect}: {s}");
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["dialect"], dialect, "{s}");
        assert!(
            v["identity"]["manufacturer"]
                .as_str()
                .unwrap()
                .contains(manufacturer),
            "{s}"
        );
        assert_eq!(v["identity"]["imei"], "352099001761481", "{s}");
        assert_eq!(v["identity"]["imsi"], "255030123456781", "{s}");
        assert_eq!(v["identity"]["iccid"], iccid, "{s}");
        assert_eq!(v["sim"], "ready", "{s}");
    }
}

#[test]
fn probe_says_so_in_one_line_when_no_modem_answers() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimModem::start(dir.path(), "mute", &["--sim-busy-secs", "0"]);
    assert_eq!(
        sim.control(serde_json::json!({"op": "hang", "enabled": true}))["ok"],
        true
    );
    let out = Command::new(gsmgw_bin())
        .args(["probe", "--port"])
        .arg(&sim.link)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("no modem answers"), "{err}");
    let out = Command::new(gsmgw_bin())
        .args(["probe", "--port", "/nonexistent/ttyUSB9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open"));
}
