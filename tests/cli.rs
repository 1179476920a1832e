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
        ("zte", "ZTE", "89380030111222333444"),
        ("simcom2g", "SIMCOM", "8938001098765432109"),
        ("telit", "Telit", "89390100001234567890"),
        ("ublox", "u-blox", "8939107800023416395"),
        ("sierra", "Sierra", "89490200000863940628"),
        ("fibocom", "Fibocom", "89860117851023456789"),
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

/// A firmware that refuses optional identity queries (AT+CGMR; its dialect's ICCID commands)
/// is still probed: the fallbacks answer (AT+GMR, another vendor's ICCID form), exit 0.
#[test]
fn probe_succeeds_when_optional_identity_queries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimModem::start(
        dir.path(),
        "picky",
        &[
            "--dialect",
            "huawei",
            "--iccid",
            "89380060555444333221",
            "--sim-busy-secs",
            "0",
        ],
    );
    let r = sim.control(serde_json::json!({
        "op": "reject",
        "commands": ["AT+CGMR", "AT^ICCID?", "AT+CRSM"],
    }));
    assert_eq!(r["ok"], true, "{r}");
    let r = sim.control(serde_json::json!({"op": "iccid-forms", "commands": ["AT#CCID"]}));
    assert_eq!(r["ok"], true, "{r}");
    let out = Command::new(gsmgw_bin())
        .args(["probe", "--port"])
        .arg(&sim.link)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{s}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    assert_eq!(v["dialect"], "huawei", "{s}");
    assert_eq!(v["identity"]["iccid"], "89380060555444333221", "{s}");
    // AT+GMR answered for the refused AT+CGMR.
    assert!(
        !v["identity"]["firmware"].as_str().unwrap().is_empty(),
        "{s}"
    );
    assert_eq!(v["sim"], "ready", "{s}");
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

/// Polls the simulator until its modem is registered (USSD needs the network).
fn wait_registered(sim: &SimModem) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while sim.control(serde_json::json!({"op": "state"}))["registration"]["stat"] != 1 {
        assert!(std::time::Instant::now() < until, "not registered");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn ussd_works_on_every_dialect_with_each_encoding() {
    let dir = tempfile::tempdir().unwrap();
    for dialect in ["generic", "quectel", "simcom", "huawei", "zte", "simcom2g"] {
        let sim = SimModem::start(
            dir.path(),
            &format!("ussd-{dialect}"),
            &[
                "--dialect",
                dialect,
                "--imsi",
                "255030123456781",
                "--sim-busy-secs",
                "0",
            ],
        );
        wait_registered(&sim);
        let r = sim.control(
            serde_json::json!({"op": "ussd-table", "delay_ms": 50, "table": {
                "*111#": "Na rahunku 45.67 grn. Bonusy: 10.00 grn.",
                "*100#": {"text": "1 Balans 2 Taryf", "more": true},
                "*100#>1": "На рахунку 12,00 грн.",
                "*404#": {"status": 4},
                "*555#": null,
            }}),
        );
        assert_eq!(r["ok"], true, "{r}");
        let ussd = |args: &[&str]| {
            let out = Command::new(gsmgw_bin())
                .args(["ussd", "--port"])
                .arg(&sim.link)
                .args(args)
                .output()
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).to_string(),
                String::from_utf8_lossy(&out.stderr).to_string(),
            )
        };
        let last_json = |s: &str| -> serde_json::Value {
            serde_json::from_str(s.trim().lines().last().unwrap()).unwrap()
        };

        // A balance, in the dialect's request encoding (Huawei: packed GSM 7-bit hex).
        let (code, out, err) = ussd(&["*111#"]);
        assert_eq!(code, Some(0), "{dialect}: {out}{err}");
        let v = last_json(&out);
        assert_eq!(v["status"], "done", "{dialect}: {out}");
        assert_eq!(v["text"], "Na rahunku 45.67 grn. Bonusy: 10.00 grn.");
        assert_eq!(v["dcs"], 15);
        assert_eq!(v["balance"]["amount"], 45.67, "{dialect}: {out}");
        assert_eq!(v["balance"]["currency"], "UAH");
        assert!(out.starts_with("> *111#\n< [done] Na rahunku"), "{out}");
        let s = sim.control(serde_json::json!({"op": "state"}));
        let raw = s["ussd"]["requests"][0]["raw"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            raw,
            if dialect == "huawei" {
                "AA582C3602"
            } else {
                "*111#"
            },
            "{dialect}"
        );

        // A menu answered with a reply; the answer in UCS-2 (DCS 72).
        let (code, out, err) = ussd(&["*100#", "1"]);
        assert_eq!(code, Some(0), "{dialect}: {out}{err}");
        assert!(out.contains("< [menu] 1 Balans 2 Taryf\n> 1\n"), "{out}");
        let v = last_json(&out);
        assert_eq!(v["text"], "На рахунку 12,00 грн.");
        assert_eq!(v["dcs"], 72);
        assert_eq!(v["balance"]["amount"], 12.0);

        // A menu left unanswered: its text, no balance, the session ended on the modem.
        let (code, out, _) = ussd(&["*100#"]);
        assert_eq!(code, Some(0), "{out}");
        let v = last_json(&out);
        assert_eq!(
            (v["status"].as_str(), &v["balance"]),
            (Some("menu"), &serde_json::Value::Null)
        );
        assert_eq!(
            sim.control(serde_json::json!({"op": "state"}))["ussd"]["session"],
            false
        );

        // Refused by the network, no answer, not a USSD string: exit 1 and one clear line.
        for (args, words) in [
            (&["*404#"][..], "does not support"),
            (
                &["--timeout", "1", "*555#"][..],
                "no answer from the network within 1s",
            ),
            (&["*111#;+CFUN=0"][..], "may hold only digits"),
            (&["*100#", "1\"\r"][..], "reply"),
        ] {
            let (code, out, err) = ussd(args);
            assert_eq!(code, Some(1), "{dialect} {args:?}: {out}{err}");
            assert_eq!(err.trim().lines().count(), 1, "{err}");
            assert!(
                err.starts_with("gsmgw: ussd ") && err.contains(words),
                "{args:?}: {err}"
            );
        }
        let s = sim.control(serde_json::json!({"op": "state"}));
        let codes: Vec<&str> = s["ussd"]["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["code"].as_str().unwrap())
            .collect();
        assert_eq!(
            codes,
            ["*111#", "*100#", "1", "*100#", "*404#", "*555#"],
            "{dialect}"
        );
    }
}

/// A modem port that does not exist now is warned about, not refused: the modem may come later.
#[test]
fn config_check_warns_about_a_port_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gw.toml");
    let here = dir.path().join("ttyUSB0");
    std::fs::write(&here, "").unwrap();
    std::fs::write(
        &cfg,
        format!(
            "[gateway]\nid = \"gw-1\"\n\n[[modem]]\nslot = 1\nport = \"/nonexistent/ttyUSB9\"\n\n[[modem]]\nslot = 2\nport = \"{}\"\n\n[[modem]]\nslot = 3\nport = \"/nonexistent/ttyUSB8\"\nenabled = false\n",
            here.display()
        ),
    )
    .unwrap();
    let out = Command::new(gsmgw_bin())
        .args(["config", "check"])
        .arg(&cfg)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{s}");
    let warnings: Vec<&str> = s.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "only the enabled missing port: {s}");
    assert!(
        warnings[0].contains("modem[1].port: `/nonexistent/ttyUSB9` does not exist now"),
        "{s}"
    );
}

/// `pdu encode` splits like `cmd/sms-send` and refuses what it would refuse (over 10 parts).
#[test]
fn pdu_encode_shares_the_ten_part_limit_of_sms_send() {
    let encode = |text: &str| {
        Command::new(gsmgw_bin())
            .args(["pdu", "encode", "--to", "+380501234567", "--text", text])
            .output()
            .unwrap()
    };
    let ten = "a".repeat(153 * 10);
    let out = encode(&ten);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["parts"].as_array().unwrap().len(), 10);
    let out = encode(&"a".repeat(153 * 10 + 1));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("gsmgw: the text needs 11 gsm7 parts; at most 10"),
        "{err}"
    );
}

/// `modemsim` says on start where its modem is.
#[test]
fn modemsim_prints_its_pty_and_control_socket() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("modem");
    let control = dir.path().join("control.sock");
    let mut child = Command::new(gsmgw_bin())
        .args(["modemsim", "--dialect", "huawei", "--link"])
        .arg(&link)
        .arg("--control")
        .arg(&control)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with(&format!(
            "modemsim: huawei modem on {} (pty /dev/pts/",
            link.display()
        )),
        "{line}"
    );
    assert!(
        line.contains(&format!("control socket {}", control.display())),
        "{line}"
    );
}

/// Every verb's failure ends with one line that starts `gsmgw:` (what a script or a
/// technician greps for), whichever verb failed and why.
#[test]
fn every_verb_ends_a_failure_with_one_gsmgw_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[gateway]\nid = \"gw-1\"\ncolour = \"blue\"\n").unwrap();
    let bad = bad.to_str().unwrap().to_string();
    let cases: Vec<Vec<&str>> = vec![
        vec!["run", "--config", "/nonexistent/gsmgw.toml"],
        vec!["run", "--config", &bad],
        vec!["config", "check", "/nonexistent/gsmgw.toml"],
        vec!["config", "check", &bad],
        vec!["at", "--port", "/nonexistent/ttyUSB9", "AT"],
        vec!["probe", "--port", "/nonexistent/ttyUSB9"],
        vec!["ussd", "--port", "/nonexistent/ttyUSB9", "*111#"],
        vec!["ussd", "--port", "/nonexistent/ttyUSB9", "*111#;ATD"],
        vec!["pdu", "decode", "ZZ"],
    ];
    for args in cases {
        let out = Command::new(gsmgw_bin()).args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        assert!(
            last.starts_with("gsmgw: "),
            "{args:?}: the last stderr line does not start with `gsmgw: `:\n{err}"
        );
    }
}
