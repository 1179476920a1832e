use super::*;
use crate::at::Urc;

#[test]
fn rssi_mapping() {
    assert_eq!(rssi_to_dbm(0), Some(-113));
    assert_eq!(rssi_to_dbm(20), Some(-73));
    assert_eq!(rssi_to_dbm(31), Some(-51));
    assert_eq!(rssi_to_dbm(99), None);
}

fn resp(lines: &[&str]) -> crate::at::Response {
    crate::at::Response {
        lines: lines.iter().map(|l| l.to_string()).collect(),
        final_result: crate::at::Final::Ok,
    }
}

/// The engine's vendor transcripts (at/engine_tests.rs) with the dialects' real hook.
#[tokio::test]
async fn engine_with_the_dialects_vendor_lines() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (a, b) = tokio::io::duplex(4096);
    let (h, mut urcs) = crate::at::spawn(a, engine_config());
    let (r, mut w) = tokio::io::split(b);
    let mut r = BufReader::new(r);
    let mut line = Vec::new();
    let h2 = h.clone();
    let task = tokio::spawn(async move { h2.cmd("AT+COPS?").await });
    r.read_until(b'\r', &mut line).await.unwrap();
    w.write_all(
            b"\r\nRDY\r\n\r\n^RSSI:17\r\n\r\n+COPS: 0,0,\"Kyivstar\",2\r\n\r\n^BOOT:12345678,0,0,0,72\r\n\r\nVOICE CALL: END: 000012\r\n\r\nOK\r\n",
        )
        .await
        .unwrap();
    let resp = task.await.unwrap().unwrap();
    assert_eq!(resp.lines, vec!["+COPS: 0,0,\"Kyivstar\",2"]);
    assert_eq!(urcs.recv().await, Some(Urc::Boot { line: "RDY".into() }));
    assert!(matches!(urcs.recv().await, Some(Urc::Signal { .. })));
    assert!(matches!(urcs.recv().await, Some(Urc::Other(l)) if l.starts_with("^BOOT")));
    assert_eq!(urcs.recv().await, Some(Urc::CallCleared { cause: None }));
    let task = tokio::spawn(async move { h.cmd("AT^FOO").await });
    line.clear();
    r.read_until(b'\r', &mut line).await.unwrap();
    w.write_all(b"\r\nCOMMAND NOT SUPPORT\r\n").await.unwrap();
    assert_eq!(
        task.await.unwrap().unwrap_err(),
        AtError::Vendor("COMMAND NOT SUPPORT".into())
    );
}

#[test]
fn iccid_answers_of_every_vendor_form() {
    let want = "89380062300517131234";
    for (lines, prefix) in [
        (vec!["+CCID: \"89380062300517131234\""], "+CCID:"),
        (vec!["89380062300517131234"], "+CCID:"),
        (vec!["+ICCID: 89380062300517131234"], "+ICCID:"),
        (vec!["+QCCID: 89380062300517131234"], "+QCCID:"),
        (vec!["^ICCID: 98830026035071312143"], "^ICCID:"),
        (vec!["+ZGETICCID: 89380062300517131234"], "+ZGETICCID:"),
        (vec!["#CCID: 89380062300517131234"], "#CCID:"),
        (vec!["ICCID: 89380062300517131234"], "ICCID:"),
        (vec!["+CRSM: 144,0,\"98830026035071312143\""], "+CRSM:"),
    ] {
        assert_eq!(
            iccid_from_answer(&resp(&lines), prefix).as_deref(),
            Some(want),
            "{lines:?}"
        );
    }
    // A failed EF read, a short or non-numeric answer, nothing at all.
    assert_eq!(
        iccid_from_answer(&resp(&["+CRSM: 148,4,\"\""]), "+CRSM:"),
        None
    );
    assert_eq!(
        iccid_from_answer(&resp(&["+CRSM: 106,130"]), "+CRSM:"),
        None
    );
    assert_eq!(iccid_from_answer(&resp(&["+CCID: 1234"]), "+CCID:"), None);
    assert_eq!(
        iccid_from_answer(&resp(&["+CCID: 8938ABCDEF0517131234"]), "+CCID:"),
        None
    );
    assert_eq!(iccid_from_answer(&resp(&[]), "+CCID:"), None);
    // 22 digits is still an ICCID, 23 is not.
    assert!(iccid_from_answer(&resp(&["8938006230051713123456"]), "+CCID:").is_some());
    assert!(iccid_from_answer(&resp(&["89380062300517131234567"]), "+CCID:").is_none());
    // Another label than the one asked for is dropped, not read as hex digits.
    for line in [
        "ICCID: 89380062300517131234",
        "!ICCID: 89380062300517131234",
    ] {
        assert_eq!(
            iccid_from_answer(&resp(&[line]), "+ICCID:").as_deref(),
            Some("89380062300517131234"),
            "{line}"
        );
    }
}

#[test]
fn known_iccid_commands_cover_every_dialects_own() {
    for d in Dialect::ALL {
        for c in d.spec().iccid_commands {
            assert!(ICCID_COMMANDS.contains(c), "{d}: {c:?}");
        }
    }
}

#[test]
fn ati_answers() {
    let lines = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        AtiIdentity::parse(&lines(&["Quectel", "EC25", "Revision: EC25EFAR06A06M4G"])),
        AtiIdentity {
            manufacturer: "Quectel".into(),
            model: "EC25".into(),
            revision: "EC25EFAR06A06M4G".into()
        }
    );
    assert_eq!(
        AtiIdentity::parse(&lines(&[
            "Manufacturer: huawei",
            "Model: E173",
            "Revision: 11.126.85.00.209",
            "IMEI: 861234567890128",
            "+GCAP: +CGSM,+DS,+ES",
        ])),
        AtiIdentity {
            manufacturer: "huawei".into(),
            model: "E173".into(),
            revision: "11.126.85.00.209".into()
        }
    );
    assert_eq!(AtiIdentity::parse(&[]), AtiIdentity::default());
}

#[test]
fn iccid_forms() {
    assert_eq!(
        normalize_iccid("\"89380062300517131234\""),
        "89380062300517131234"
    );
    assert_eq!(
        normalize_iccid("98830026035071312143"),
        "89380062300517131234"
    );
    assert_eq!(
        normalize_iccid("8938006230051713123F"),
        "8938006230051713123"
    );
}
