//! Modem simulator on a real pty: echo, syntax, CMEE, PIN, registration, identity, reboot,
//! unplug/replug and fault injection.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "sim")]

mod sim_port;

use std::time::Duration;

use gsmgw_drivers::sim::{Dialect, SimOptions};
use serde_json::{Value, json};
use sim_port::{Port, WAIT, options, start, start_ready, test_dir, wait_registered, wait_state};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_until_ate0_and_line_handling() {
    let dir = test_dir("echo");
    let (sim, mut port) = start(options(&dir, Dialect::Generic)).await;
    assert_eq!(port.cmd("AT").await, "AT\r\r\nOK\r\n");
    // Case-insensitive, LF-only line end, CRLF, stray NUL/garbage bytes.
    port.send("at+csq\n");
    let r = port.final_result().await;
    assert!(r.starts_with("at+csq\n\r\n+CSQ: "), "{r:?}");
    port.send_bytes(b"\x00\xff\x07AT\r\n");
    let r = port.final_result().await;
    assert!(r.ends_with("\r\nOK\r\n"), "{r:?}");
    // Several commands on one line.
    let r = port.cmd("AT+CMGF=0;+CNMI=2,1,0,1,0").await;
    assert!(r.ends_with("\r\nOK\r\n"), "{r:?}");
    let r = port.cmd("AT+CNMI?;+CMGF?").await;
    assert!(
        r.contains("\r\n+CNMI: 2,1,0,1,0\r\n\r\n+CMGF: 0\r\n\r\nOK\r\n"),
        "{r:?}"
    );
    // ATE0: its own echo still comes, then no more echo.
    assert_eq!(port.cmd("ATE0").await, "ATE0\r\r\nOK\r\n");
    assert_eq!(port.cmd("AT").await, "\r\nOK\r\n");
    assert_eq!(port.cmd("AT+NOSUCH").await, "\r\nERROR\r\n");
    assert_eq!(
        port.cmd("ATI").await,
        "\r\nGeneric\r\nGSM Modem\r\n1.0.0\r\n\r\nOK\r\n"
    );
    // A line without AT is ignored; the next command still works.
    port.send("hello\r");
    assert_eq!(port.cmd("AT").await, "\r\nOK\r\n");
    // ATZ restores echo.
    port.cmd("ATZ").await;
    assert_eq!(port.cmd("AT").await, "AT\r\r\nOK\r\n");
    // Closing and reopening the port is harmless (the simulator holds the slave open).
    drop(port);
    let mut port = Port::open(&dir.join("modem")).await;
    assert_eq!(port.cmd("AT").await, "AT\r\r\nOK\r\n");
    sim.shutdown().await;
    assert!(!dir.join("modem").exists(), "link removed on shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmee_forms() {
    let (sim, mut port, _dir) = start_ready("cmee", Dialect::Generic).await;
    // No PIN is pending: +CPIN=<pin> is "operation not allowed".
    assert_eq!(port.cmd("AT+CPIN=\"1234\"").await, "\r\nERROR\r\n");
    port.cmd("AT+CMEE=1").await;
    assert_eq!(port.cmd("AT+CPIN=\"1234\"").await, "\r\n+CME ERROR: 3\r\n");
    port.cmd("AT+CMEE=2").await;
    assert_eq!(
        port.cmd("AT+CPIN=\"1234\"").await,
        "\r\n+CME ERROR: operation not allowed\r\n"
    );
    assert_eq!(port.cmd("AT+CMEE?").await, "\r\n+CMEE: 2\r\n\r\nOK\r\n");
    assert_eq!(
        port.cmd("AT+CMEE=?").await,
        "\r\n+CMEE: (0-2)\r\n\r\nOK\r\n"
    );
    // SMS errors are +CMS ERROR (text with CMEE=2).
    assert_eq!(
        port.cmd("AT+CMGR=999").await,
        "\r\n+CMS ERROR: invalid memory index\r\n"
    );
    port.cmd("AT+CMEE=1").await;
    assert_eq!(port.cmd("AT+CMGR=999").await, "\r\n+CMS ERROR: 321\r\n");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_flow_with_sim_busy_window() {
    let dir = test_dir("pin");
    let opts = SimOptions {
        pin: Some("1234".into()),
        sim_busy_secs: 0.6,
        ..options(&dir, Dialect::Quectel)
    };
    let (sim, mut port) = start(opts).await;
    port.expect("RDY").await;
    port.cmd("ATE0").await;
    port.cmd("AT+CMEE=1").await;
    assert_eq!(port.cmd("AT+CPIN?").await, "\r\n+CME ERROR: 14\r\n");
    assert_eq!(port.cmd("AT+CIMI").await, "\r\n+CME ERROR: 14\r\n");
    assert_eq!(port.cmd("AT+CPMS?").await, "\r\n+CMS ERROR: 314\r\n");
    port.expect("\r\n+CPIN: SIM PIN\r\n").await;
    assert_eq!(
        port.cmd("AT+CPIN?").await,
        "\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n"
    );
    assert_eq!(port.cmd("AT+CIMI").await, "\r\n+CME ERROR: 11\r\n");
    assert_eq!(port.cmd("AT+CPIN=\"0000\"").await, "\r\n+CME ERROR: 16\r\n");
    let r = port.cmd("AT+QPINC?").await;
    assert!(r.contains("+QPINC: \"SC\",2,10"), "{r:?}");
    // The ICCID is readable without the PIN.
    let r = port.cmd("AT+QCCID").await;
    assert!(r.contains("+QCCID: 8938001234567890123"), "{r:?}");
    assert_eq!(port.cmd("AT+CPIN=\"1234\"").await, "\r\nOK\r\n");
    port.expect("\r\n+CPIN: READY\r\n").await;
    port.expect("\r\n+QIND: SMS DONE\r\n").await;
    port.expect("\r\n+QIND: PB DONE\r\n").await;
    assert_eq!(
        port.cmd("AT+CIMI").await,
        "\r\n255011234567890\r\n\r\nOK\r\n"
    );
    wait_registered(&sim).await;
    // The `sim-busy` op makes the SIM busy again for a while.
    sim.control_ok(json!({"op": "sim-busy", "seconds": 30}))
        .await
        .unwrap();
    assert_eq!(port.cmd("AT+CIMI").await, "\r\n+CME ERROR: 14\r\n");
    sim.control_ok(json!({"op": "sim-busy", "seconds": 0}))
        .await
        .unwrap();
    assert!(port.cmd("AT+CIMI").await.contains("255011234567890"));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pin_three_times_asks_for_puk() {
    let dir = test_dir("puk");
    let opts = SimOptions {
        pin: Some("1234".into()),
        ..options(&dir, Dialect::Simcom)
    };
    let (sim, mut port) = start(opts).await;
    port.expect("+CPIN: SIM PIN").await;
    port.cmd("ATE0").await;
    port.cmd("AT+CMEE=1").await;
    for _ in 0..3 {
        assert_eq!(port.cmd("AT+CPIN=\"9999\"").await, "\r\n+CME ERROR: 16\r\n");
    }
    assert!(port.cmd("AT+CPIN?").await.contains("+CPIN: SIM PUK"));
    assert!(port.cmd("AT+SPIC").await.contains("+SPIC: 0,10,3,10"));
    assert_eq!(
        port.cmd("AT+CPIN=\"12345678\",\"4321\"").await,
        "\r\nOK\r\n"
    );
    port.expect("\r\n+CPIN: READY\r\n").await;
    assert!(port.cmd("AT+CPIN?").await.contains("+CPIN: READY"));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_urcs_and_operator() {
    let dir = test_dir("creg");
    let opts = SimOptions {
        register_delay_ms: 800,
        ..options(&dir, Dialect::Generic)
    };
    let (sim, mut port) = start(opts).await;
    port.cmd("ATE0").await;
    assert_eq!(port.cmd("AT+CREG=2").await, "\r\nOK\r\n");
    port.cmd("AT+CEREG=1").await;
    port.expect("\r\n+CREG: 1,\"2F1A\",\"0C8B1A03\",0\r\n")
        .await;
    port.expect("\r\n+CEREG: 1\r\n").await;
    assert_eq!(
        port.cmd("AT+CREG?").await,
        "\r\n+CREG: 2,1,\"2F1A\",\"0C8B1A03\",0\r\n\r\nOK\r\n"
    );
    assert_eq!(
        port.cmd("AT+COPS?").await,
        "\r\n+COPS: 0,0,\"Vodafone UA\",0\r\n\r\nOK\r\n"
    );
    port.cmd("AT+COPS=3,2").await;
    assert_eq!(
        port.cmd("AT+COPS?").await,
        "\r\n+COPS: 0,2,\"25501\",0\r\n\r\nOK\r\n"
    );
    sim.control_ok(json!({"op": "registration", "stat": 5}))
        .await
        .unwrap();
    port.expect("\r\n+CREG: 5,\"2F1A\",\"0C8B1A03\",0\r\n")
        .await;
    sim.control_ok(json!({"op": "registration", "stat": 0}))
        .await
        .unwrap();
    port.expect("\r\n+CREG: 0\r\n").await;
    port.expect("\r\n+CEREG: 0\r\n").await;
    assert_eq!(port.cmd("AT+COPS?").await, "\r\n+COPS: 0\r\n\r\nOK\r\n");
    sim.control_ok(json!({"op": "signal", "rssi": 7}))
        .await
        .unwrap();
    assert_eq!(port.cmd("AT+CSQ").await, "\r\n+CSQ: 7,99\r\n\r\nOK\r\n");
    // COPS=? is slow, like a real network scan.
    let t = tokio::time::Instant::now();
    let r = port.cmd("AT+COPS=?").await;
    assert!(
        t.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
    assert!(
        r.contains("\"Vodafone UA\",\"Vodafone\",\"25501\""),
        "{r:?}"
    );
    sim.shutdown().await;
}

async fn identity(dialect: Dialect, name: &str) -> Vec<String> {
    let (sim, mut port, _dir) = start_ready(name, dialect).await;
    let mut out = Vec::new();
    for c in ["AT+CGMI", "AT+CGMM", "AT+CGSN"] {
        out.push(port.cmd(c).await);
    }
    let iccid = match dialect {
        Dialect::Generic => "AT+CCID",
        Dialect::Quectel => "AT+QCCID",
        Dialect::Simcom => "AT+CICCID",
        Dialect::Huawei => "AT^ICCID?",
        Dialect::Zte => "AT+ZGETICCID",
        Dialect::Simcom2g | Dialect::Ublox | Dialect::Fibocom => "AT+CCID",
        Dialect::Telit => "AT#CCID",
        Dialect::Sierra => "AT!ICCID?",
    };
    out.push(port.cmd(iccid).await);
    sim.shutdown().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_per_dialect() {
    let ok = |s: &str| format!("\r\n{s}\r\n\r\nOK\r\n");
    assert_eq!(
        identity(Dialect::Quectel, "id-q").await,
        vec![
            ok("Quectel"),
            ok("EC25"),
            ok("861234567890128"),
            ok("+QCCID: 8938001234567890123")
        ]
    );
    assert_eq!(
        identity(Dialect::Simcom, "id-s").await,
        vec![
            ok("SIMCOM INCORPORATED"),
            ok("SIMCOM_SIM7600E"),
            ok("861234567890128"),
            ok("+ICCID: 8938001234567890123")
        ]
    );
    assert_eq!(
        identity(Dialect::Huawei, "id-h").await,
        vec![
            ok("huawei"),
            ok("E3372"),
            ok("861234567890128"),
            ok("^ICCID: 8938001234567890123")
        ]
    );
    assert_eq!(
        identity(Dialect::Generic, "id-g").await,
        vec![
            ok("Generic"),
            ok("GSM Modem"),
            ok("861234567890128"),
            ok("+CCID: 8938001234567890123")
        ]
    );
    for (dialect, name, manufacturer, model, iccid) in [
        (
            Dialect::Zte,
            "id-z",
            "ZTE CORPORATION",
            "MF626",
            "+ZGETICCID: 8938001234567890123",
        ),
        (
            Dialect::Simcom2g,
            "id-s2",
            "SIMCOM_Ltd",
            "SIMCOM_SIM800L",
            "8938001234567890123",
        ),
        (
            Dialect::Telit,
            "id-t",
            "Telit",
            "LE910C1-EU",
            "#CCID: 8938001234567890123",
        ),
        (
            Dialect::Ublox,
            "id-u",
            "u-blox",
            "SARA-U201",
            "+CCID: 8938001234567890123",
        ),
        (
            Dialect::Sierra,
            "id-sw",
            "Sierra Wireless, Incorporated",
            "MC7710",
            "!ICCID: 8938001234567890123",
        ),
        (
            Dialect::Fibocom,
            "id-f",
            "Fibocom",
            "L610",
            "+CCID: 8938001234567890123",
        ),
    ] {
        assert_eq!(
            identity(dialect, name).await,
            vec![
                ok(manufacturer),
                ok(model),
                ok("861234567890128"),
                ok(iccid)
            ],
            "{dialect}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cfun_reset_port_disappears_and_comes_back_renumbered() {
    let (sim, mut port, dir) = start_ready("reboot", Dialect::Quectel).await;
    port.cmd("AT+CMEE=2").await;
    let old = port.path.clone();
    assert_eq!(port.cmd("AT+CFUN=1,1").await, "\r\nOK\r\n");
    assert!(port.wait_closed(WAIT).await, "port should vanish");
    drop(port);
    let s = wait_state(&sim, |s| s["plugged"] == json!(true)).await;
    assert_eq!(s["counters"]["reboots"], json!(1));
    let mut port = Port::open(&dir.join("modem")).await;
    assert_ne!(port.path, old, "new pts after reboot");
    port.expect("\r\nRDY\r\n").await;
    port.expect("\r\n+CPIN: READY\r\n").await;
    port.expect("\r\n+QIND: PB DONE\r\n").await;
    // Back to boot defaults: echo on, CMEE 0.
    assert_eq!(port.cmd("AT").await, "AT\r\r\nOK\r\n");
    port.cmd("ATE0").await;
    assert_eq!(port.cmd("AT+CMEE?").await, "\r\n+CMEE: 0\r\n\r\nOK\r\n");
    wait_registered(&sim).await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplug_and_replug() {
    let (sim, mut port, dir) = start_ready("unplug", Dialect::Generic).await;
    let link = dir.join("modem");
    let old = port.path.clone();
    let r = sim.control_ok(json!({"op": "unplug"})).await.unwrap();
    assert_eq!(r["pty"], Value::Null);
    assert!(port.wait_closed(WAIT).await);
    assert!(std::fs::symlink_metadata(&link).is_err(), "link removed");
    assert!(sim.control(json!({"op": "unplug"})).await.unwrap()["ok"] == json!(false));
    let r = sim.control_ok(json!({"op": "replug"})).await.unwrap();
    let new = r["pty"].as_str().unwrap().to_string();
    assert_ne!(std::path::PathBuf::from(&new), old);
    assert_eq!(
        std::fs::read_link(&link).unwrap().display().to_string(),
        new
    );
    let mut port = Port::open(&link).await;
    assert_eq!(port.cmd("AT").await, "AT\r\r\nOK\r\n");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_hang_garbage_errors_latency() {
    let (sim, mut port, _dir) = start_ready("faults", Dialect::Generic).await;
    // Hang: reads, answers nothing.
    sim.control_ok(json!({"op": "hang", "enabled": true}))
        .await
        .unwrap();
    port.send("AT\r");
    assert!(!port.sees("OK", Duration::from_millis(400)).await);
    sim.control_ok(json!({"op": "hang", "enabled": false}))
        .await
        .unwrap();
    assert_eq!(port.cmd("AT").await, "\r\nOK\r\n");
    let s = sim.control_ok(json!({"op": "state"})).await.unwrap();
    assert_eq!(s["counters"]["lines_while_hung"], json!(1));

    // Garbage written by the modem.
    let r = sim
        .control_ok(json!({"op": "garbage", "hex": "00FE4142"}))
        .await
        .unwrap();
    assert_eq!(r["written"], json!(4));
    port.expect("AB").await;
    sim.control_ok(json!({"op": "garbage", "len": 64}))
        .await
        .unwrap();
    assert_eq!(port.cmd("AT").await.rsplit("\r\nOK").count(), 2);

    // The next N commands fail.
    port.cmd("AT+CMEE=1").await;
    sim.control_ok(json!({"op": "errors", "kind": "cme", "code": 100, "count": 2}))
        .await
        .unwrap();
    assert_eq!(port.cmd("AT").await, "\r\n+CME ERROR: 100\r\n");
    assert_eq!(port.cmd("AT+CSQ").await, "\r\n+CME ERROR: 100\r\n");
    assert_eq!(port.cmd("AT").await, "\r\nOK\r\n");
    sim.control_ok(json!({"op": "vendor-error", "text": "COMMAND NOT SUPPORT", "count": 1}))
        .await
        .unwrap();
    port.send("AT+CSQ\r");
    port.expect("\r\nCOMMAND NOT SUPPORT\r\n").await;
    assert_eq!(port.cmd("AT").await, "\r\nOK\r\n");

    // A response without its final OK.
    sim.control_ok(json!({"op": "drop-final-ok", "count": 1}))
        .await
        .unwrap();
    port.send("AT+CSQ\r");
    port.expect("+CSQ: 20,99\r\n").await;
    assert!(!port.sees("OK", Duration::from_millis(300)).await);
    assert_eq!(port.cmd("AT").await, "\r\nOK\r\n");

    // Latency before every answer.
    sim.control_ok(json!({"op": "latency", "ms": 300}))
        .await
        .unwrap();
    let t = tokio::time::Instant::now();
    assert_eq!(port.cmd("AT").await, "\r\nOK\r\n");
    assert!(t.elapsed() >= Duration::from_millis(300));
    sim.shutdown().await;
}

async fn ask(
    wr: &mut tokio::net::unix::OwnedWriteHalf,
    lines: &mut tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    line: &str,
) -> Value {
    wr.write_all(format!("{line}\n").as_bytes()).await.unwrap();
    let reply = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    serde_json::from_str(&reply).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_socket_errors_keep_the_connection() {
    let dir = test_dir("ctl");
    let (sim, _port) = start(options(&dir, Dialect::Huawei)).await;
    let stream = tokio::net::UnixStream::connect(dir.join("control.sock"))
        .await
        .unwrap();
    let (rd, mut wr) = stream.into_split();
    let mut lines = BufReader::new(rd).lines();
    let r = ask(&mut wr, &mut lines, "this is not json").await;
    assert_eq!(r["ok"], json!(false));
    assert!(r["error"].as_str().unwrap().contains("malformed JSON"));
    let r = ask(&mut wr, &mut lines, "{\"op\":\"fly\"}").await;
    assert_eq!(r["ok"], json!(false));
    let r = ask(&mut wr, &mut lines, "[1,2]").await;
    assert_eq!(r["ok"], json!(false));
    let r = ask(&mut wr, &mut lines, "{\"op\":\"signal\",\"rssi\":\"x\"}").await;
    assert_eq!(r["ok"], json!(false));
    let r = ask(&mut wr, &mut lines, "{\"op\":\"state\"}").await;
    assert_eq!(r["ok"], json!(true));
    assert_eq!(r["dialect"], json!("huawei"));
    sim.shutdown().await;
    assert!(!dir.join("control.sock").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_signal_urcs_per_dialect() {
    for (dialect, urc, name) in [
        (Dialect::Quectel, "\r\n+QIND: \"csq\",20,99\r\n", "sig-q"),
        (Dialect::Huawei, "\r\n^RSSI:20\r\n", "sig-h"),
        (Dialect::Generic, "\r\n+CSQ: 20,99\r\n", "sig-g"),
    ] {
        let dir = test_dir(name);
        let opts = SimOptions {
            signal_urc_interval_ms: Some(150),
            ..options(&dir, dialect)
        };
        let (sim, mut port) = start(opts).await;
        port.expect(urc).await;
        port.expect(urc).await;
        sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_and_other_vendors_iccid_forms() {
    let dir = test_dir("reject");
    let opts = SimOptions {
        iccid: "89380062300517131234".into(),
        reject: vec!["AT+CGMR".into()],
        ..options(&dir, Dialect::Generic)
    };
    let (sim, mut port) = start(opts).await;
    wait_registered(&sim).await;
    port.cmd("ATE0").await;
    // The configured refusal, and one set through the control op (a full form refuses only
    // itself, a bare name every form).
    assert_eq!(port.cmd("AT+CGMR").await, "\r\nERROR\r\n");
    assert!(port.cmd("AT+GMR").await.ends_with("\r\nOK\r\n"));
    let r = sim
        .control_ok(json!({"op": "reject", "commands": ["AT+CGMR", "AT+CCID", "at+cpin?"]}))
        .await
        .unwrap();
    assert_eq!(r["rejecting"], json!(["AT+CGMR", "AT+CCID", "at+cpin?"]));
    assert_eq!(port.cmd("AT+CCID").await, "\r\nERROR\r\n");
    assert_eq!(port.cmd("AT+CCID?").await, "\r\nERROR\r\n");
    assert_eq!(port.cmd("AT+CPIN?").await, "\r\nERROR\r\n");
    assert!(port.cmd("AT+CPIN=?").await.ends_with("\r\nOK\r\n"));
    assert_eq!(port.cmd("AT+CSQ;+CGMR").await, "\r\nERROR\r\n");
    // Other vendors' forms answer only once listed, each as its vendor prints it.
    assert_eq!(port.cmd("AT#CCID").await, "\r\nERROR\r\n");
    sim.control_ok(json!({"op": "iccid-forms", "commands": [
        "AT#CCID", "AT!ICCID?", "AT+ZGETICCID", "AT+CRSM=176,12258,0,0,10"
    ]}))
    .await
    .unwrap();
    for (cmd, answer) in [
        ("AT#CCID", "#CCID: 89380062300517131234"),
        ("AT!ICCID?", "ICCID: 89380062300517131234"),
        ("AT+ZGETICCID", "+ZGETICCID: 89380062300517131234"),
        (
            "AT+CRSM=176,12258,0,0,10",
            "+CRSM: 144,0,\"98830026035071312143\"",
        ),
    ] {
        assert_eq!(
            port.cmd(cmd).await,
            format!("\r\n{answer}\r\n\r\nOK\r\n"),
            "{cmd}"
        );
    }
    assert_eq!(port.cmd("AT+CRSM=176,28423,0,0,9").await, "\r\nERROR\r\n");
    // Clearing, and what is no AT command.
    sim.control_ok(json!({"op": "reject", "commands": []}))
        .await
        .unwrap();
    assert!(port.cmd("AT+CGMR").await.ends_with("\r\nOK\r\n"));
    let r = sim
        .control(json!({"op": "reject", "commands": ["CGMR"]}))
        .await
        .unwrap();
    assert_eq!(r["ok"], false, "{r}");
    let r = sim
        .control(json!({"op": "iccid-forms", "commands": "AT#CCID"}))
        .await
        .unwrap();
    assert_eq!(r["ok"], false, "{r}");
    sim.shutdown().await;
}
