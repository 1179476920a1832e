//! The command line: --version, config check, at and probe against a simulated modem.

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
        .arg("AT+CGSN")
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{s}");
    assert!(s.contains("866155039876540") && s.contains("OK"), "{s}");

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
