//! Tests of the AT engine over an in-memory duplex stream.

use super::*;
use tokio::io::{AsyncBufReadExt, BufReader, DuplexStream};

/// A scripted fake modem for unit tests of the engine only (end-to-end tests use the
/// simulator on a real pseudo-terminal).
async fn modem_reads_line(r: &mut BufReader<tokio::io::ReadHalf<DuplexStream>>) -> String {
    let mut v = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), r.read_until(b'\r', &mut v)).await;
    String::from_utf8_lossy(&v).trim().to_string()
}

/// The vendor lines and words these transcripts hold (SIMCom's RDY, Huawei's ^RSSI, ^BOOT and
/// COMMAND NOT SUPPORT), as a test hook: the real ones are the dialects' (crate::modem), whose
/// tests run the same transcripts through `modem::engine_config()`.
fn config() -> EngineConfig {
    EngineConfig {
        vendor_errors: vec!["COMMAND NOT SUPPORT".into()],
        vendor_urcs: VendorUrcs {
            is_urc: |l| ["RDY", "^RSSI:", "^BOOT:"].iter().any(|p| l.starts_with(p)),
            parse: |l| {
                if l == "RDY" {
                    Some(Urc::Boot { line: l.into() })
                } else if l.starts_with("^RSSI:") {
                    Some(Urc::Signal { line: l.into() })
                } else {
                    None
                }
            },
        },
        ..EngineConfig::standard()
    }
}

fn setup() -> (
    AtHandle,
    mpsc::Receiver<Urc>,
    BufReader<tokio::io::ReadHalf<DuplexStream>>,
    tokio::io::WriteHalf<DuplexStream>,
) {
    let (a, b) = tokio::io::duplex(4096);
    let (h, urcs) = spawn(a, config());
    let (r, w) = tokio::io::split(b);
    (h, urcs, BufReader::new(r), w)
}

#[tokio::test]
async fn query_with_echo_and_urc_inside_response() {
    let (h, mut urcs, mut mr, mut mw) = setup();
    let task = tokio::spawn(async move { h.cmd("AT+CMGL=4").await });
    assert_eq!(modem_reads_line(&mut mr).await, "AT+CMGL=4");
    mw.write_all(b"AT+CMGL=4\r\r\n+CMGL: 1,0,,3\r\nOK\r\n+CMTI: \"SM\",2\r\n+CMGL: 2,1,,4\r\nERROR\r\n\r\nOK\r\n")
        .await
        .unwrap();
    let resp = task.await.unwrap().unwrap();
    // "OK" and "ERROR" right after a +CMGL header are message bodies, not finals.
    assert_eq!(
        resp.lines,
        vec!["+CMGL: 1,0,,3", "OK", "+CMGL: 2,1,,4", "ERROR"]
    );
    assert_eq!(
        urcs.recv().await,
        Some(Urc::NewMessage {
            storage: "SM".into(),
            index: 2
        })
    );
}

#[tokio::test]
async fn query_response_is_not_taken_for_urc() {
    let (h, mut urcs, mut mr, mut mw) = setup();
    let task = tokio::spawn(async move { h.cmd("AT+CREG?").await });
    modem_reads_line(&mut mr).await;
    mw.write_all(b"\r\n+CREG: 5,\"AB\",\"CD\"\r\n\r\n+CREG: 2,1\r\n\r\nOK\r\n")
        .await
        .unwrap();
    let resp = task.await.unwrap().unwrap();
    assert_eq!(resp.lines.len(), 2);
    assert!(urcs.try_recv().is_err());
}

#[tokio::test]
async fn cme_error_and_vendor_word() {
    let (h, _urcs, mut mr, mut mw) = setup();
    let h2 = h.clone();
    let task = tokio::spawn(async move { h2.cmd("AT+CPIN?").await });
    modem_reads_line(&mut mr).await;
    mw.write_all(b"\r\n+CME ERROR: 14\r\n").await.unwrap();
    let e = task.await.unwrap().unwrap_err();
    assert_eq!(e.cme_code(), Some(14));
    let task = tokio::spawn(async move { h.cmd("AT+QFOO").await });
    modem_reads_line(&mut mr).await;
    mw.write_all(b"\r\nCOMMAND NOT SUPPORT\r\n").await.unwrap();
    assert_eq!(
        task.await.unwrap().unwrap_err(),
        AtError::Vendor("COMMAND NOT SUPPORT".into())
    );
}

/// Transcript of a SIMCom right after power-on: echo still on, boot URCs, SIM busy.
#[tokio::test]
async fn transcript_echo_on_sim_busy_at_start_with_boot_urcs() {
    let (h, mut urcs, mut mr, mut mw) = setup();
    let task = tokio::spawn(async move { h.cmd("AT+CPIN?").await });
    modem_reads_line(&mut mr).await;
    mw.write_all(b"AT+CPIN?\r\r\nRDY\r\n\r\n+CME ERROR: 14\r\n")
        .await
        .unwrap();
    let e = task.await.unwrap().unwrap_err();
    assert_eq!(e.cme_code(), Some(14));
    assert_eq!(urcs.recv().await, Some(Urc::Boot { line: "RDY".into() }));
}

/// Transcript of a Huawei E173 that reports its signal every two seconds: ^RSSI and
/// the periodic ^BOOT chatter land inside a +COPS? answer and must not disturb it.
#[tokio::test]
async fn transcript_huawei_rssi_and_boot_inside_response() {
    let (h, mut urcs, mut mr, mut mw) = setup();
    let task = tokio::spawn(async move { h.cmd("AT+COPS?").await });
    modem_reads_line(&mut mr).await;
    mw.write_all(
        b"\r\n^RSSI:17\r\n\r\n+COPS: 0,0,\"Kyivstar\",2\r\n\r\n^BOOT:12345678,0,0,0,72\r\n\r\nOK\r\n",
    )
    .await
    .unwrap();
    let r = task.await.unwrap().unwrap();
    assert_eq!(r.lines, vec!["+COPS: 0,0,\"Kyivstar\",2"]);
    assert!(matches!(urcs.recv().await, Some(Urc::Signal { .. })));
    assert!(matches!(urcs.recv().await, Some(Urc::Other(l)) if l.starts_with("^BOOT")));
}

#[tokio::test]
async fn prompt_gets_body_and_ctrl_z() {
    let (h, _urcs, mut mr, mut mw) = setup();
    let task = tokio::spawn(async move {
        h.send(
            Command::new("AT+CMGS=5")
                .body("0011AA")
                .timeout(Duration::from_secs(5)),
        )
        .await
    });
    assert_eq!(modem_reads_line(&mut mr).await, "AT+CMGS=5");
    mw.write_all(b"\r\n> ").await.unwrap();
    let mut v = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), mr.read_until(CTRL_Z, &mut v))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v, b"0011AA\x1a");
    mw.write_all(b"\r\n+CMGS: 7\r\n\r\nOK\r\n").await.unwrap();
    let resp = task.await.unwrap().unwrap();
    assert_eq!(resp.field_line("+CMGS:"), Some("7"));
}

#[tokio::test]
async fn missing_final_ok_is_implied_when_info_arrived_and_timeout_otherwise() {
    let (h, _urcs, mut mr, mut mw) = setup();
    let h2 = h.clone();
    let task = tokio::spawn(async move {
        h2.send(Command::new("AT+CSQ").timeout(Duration::from_millis(200)))
            .await
    });
    modem_reads_line(&mut mr).await;
    mw.write_all(b"\r\n+CSQ: 20,99\r\n").await.unwrap();
    let resp = task.await.unwrap().unwrap();
    assert_eq!(resp.final_result, Final::Implied);
    let e = h
        .send(Command::new("AT").timeout(Duration::from_millis(100)))
        .await
        .unwrap_err();
    assert!(matches!(e, AtError::Timeout(_)));
}

#[tokio::test]
async fn direct_sms_urc_with_pdu_line_and_call_end_outside_dial() {
    let (_h, mut urcs, _mr, mut mw) = setup();
    mw.write_all(b"\r\n+CMT: ,24\r\n0791AABB\r\nNO CARRIER\r\n")
        .await
        .unwrap();
    assert_eq!(
        urcs.recv().await,
        Some(Urc::DirectMessage {
            pdu: "0791AABB".into()
        })
    );
    assert_eq!(
        urcs.recv().await,
        Some(Urc::CallEnded {
            reason: "NO CARRIER".into()
        })
    );
}

/// A `+CMT:`/`+CDS:` whose PDU line is missing: the next URC is that URC, not a PDU.
#[tokio::test]
async fn cmt_without_its_pdu_line_is_discarded_and_the_next_urc_kept() {
    let (_h, mut urcs, _mr, mut mw) = setup();
    mw.write_all(
        b"\r\n+CMT: ,24\r\n+CMTI: \"SM\",3\r\n+CDS: 25\r\nRING\r\n+CMT: ,24\r\n0791AABB\r\n",
    )
    .await
    .unwrap();
    assert_eq!(
        urcs.recv().await,
        Some(Urc::NewMessage {
            storage: "SM".into(),
            index: 3
        })
    );
    assert_eq!(urcs.recv().await, Some(Urc::Ring));
    // A complete one still works.
    assert_eq!(
        urcs.recv().await,
        Some(Urc::DirectMessage {
            pdu: "0791AABB".into()
        })
    );
}

/// A header without its PDU inside a command's response: the final result that follows
/// ends the command (it used to be swallowed as the PDU, and the command timed out).
#[tokio::test]
async fn cmt_without_pdu_before_a_final_result_does_not_eat_it() {
    let (h, mut urcs, mut mr, mut mw) = setup();
    let task = tokio::spawn(async move {
        h.send(Command::new("AT+CSQ").timeout(Duration::from_secs(3)))
            .await
    });
    assert_eq!(modem_reads_line(&mut mr).await, "AT+CSQ");
    mw.write_all(b"\r\n+CSQ: 20,99\r\n+CMT: ,24\r\nOK\r\n")
        .await
        .unwrap();
    let r = task.await.unwrap().unwrap();
    assert_eq!(r.lines, vec!["+CSQ: 20,99".to_string()]);
    assert_eq!(r.final_result, Final::Ok);
    assert!(urcs.try_recv().is_err(), "no URC from a header alone");
}

/// A header whose PDU line does not come within [`PDU_LINE_WAIT`] is dropped: a hex line
/// after that is not taken as its PDU. (Paused clock: no real time passes.)
#[tokio::test(start_paused = true)]
async fn cmt_header_waits_for_its_pdu_only_briefly() {
    let (_h, mut urcs, _mr, mut mw) = setup();
    mw.write_all(b"\r\n+CMT: ,24\r\n").await.unwrap();
    tokio::time::sleep(PDU_LINE_WAIT + Duration::from_millis(100)).await;
    mw.write_all(b"0791AABB\r\n+CMTI: \"SM\",4\r\n")
        .await
        .unwrap();
    let first = urcs.recv().await;
    assert!(
        !matches!(first, Some(Urc::DirectMessage { .. })),
        "{first:?}"
    );
    let next = if matches!(first, Some(Urc::NewMessage { .. })) {
        first
    } else {
        urcs.recv().await
    };
    assert_eq!(
        next,
        Some(Urc::NewMessage {
            storage: "SM".into(),
            index: 4
        })
    );
}

#[tokio::test]
async fn port_gone_fails_pending_and_ends_urc_stream() {
    let (h, mut urcs, mr, mw) = setup();
    let task = tokio::spawn(async move { h.cmd("AT").await });
    drop(mr);
    drop(mw);
    let e = task.await.unwrap().unwrap_err();
    assert!(e.is_fatal(), "{e:?}");
    assert_eq!(urcs.recv().await, None);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Whatever garbage and URC-looking lines a modem sends before the final OK, the
    /// command completes (never hangs, never panics) and the engine stays usable.
    #[test]
    fn garbage_before_final_result_never_wedges(noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let (h, _urcs, mut mr, mut mw) = setup();
            let h2 = h.clone();
            let task = tokio::spawn(async move {
                h2.send(Command::new("AT+CSQ").timeout(Duration::from_secs(2))).await
            });
            modem_reads_line(&mut mr).await;
            mw.write_all(&noise).await.unwrap();
            mw.write_all(b"\r\nOK\r\n").await.unwrap();
            // Noise may itself contain a final result (ERROR, OK...): any outcome is fine
            // as long as it came and the engine still answers the next command.
            let _ = task.await.unwrap();
            let task = tokio::spawn(async move {
                h.send(Command::new("AT").timeout(Duration::from_secs(2))).await
            });
            loop {
                let l = modem_reads_line(&mut mr).await;
                if l.ends_with("AT") { break; }
                if l.is_empty() { break; }
            }
            mw.write_all(b"\r\nOK\r\n").await.unwrap();
            let r2 = task.await.unwrap();
            assert!(r2.is_ok(), "{r2:?}");
        });
    }
}
