//! USSD exchanges (drivers::ussd::session) against the simulated modem of every dialect, over a
//! real pty and the AT engine.

// A test fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "sim")]

mod sim_port;

use std::time::Duration;

use gsmgw_drivers::at;
use gsmgw_drivers::modem::open_port;
use gsmgw_drivers::sim::Dialect;
use gsmgw_drivers::ussd::session::{self, Request, UssdFailure};
use gsmgw_drivers::ussd::{DecodeHints, RequestEncoding, TextForm, UssdSpec, UssdStatus};
use serde_json::json;
use sim_port::{options, start, test_dir, wait_registered};

fn request<'a>(code: &'a str, replies: &'a [String]) -> Request<'a> {
    Request {
        code,
        replies,
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dialect_answers_menus_refusals_and_ucs2() {
    for dialect in [
        Dialect::Generic,
        Dialect::Quectel,
        Dialect::Simcom,
        Dialect::Huawei,
    ] {
        let dir = test_dir(&format!("ussd-{dialect}"));
        let (sim, port) = start(options(&dir, dialect)).await;
        drop(port);
        wait_registered(&sim).await;
        sim.control_ok(json!({"op": "ussd-table", "delay_ms": 50, "table": {
            "*111#": "Balance: 5,10 UAH",
            "*100#": {"text": "1 Balance 2 Tariff", "more": true},
            "*100#>1": "Zalyshok 3.00 grn",
            "*404#": {"status": 4},
            "*700#": "На рахунку 12,00 грн.",
            "*555#": null,
        }}))
        .await
        .unwrap();
        let p = open_port(sim.link().to_str().unwrap(), 115200).unwrap();
        let (h, mut urcs) = at::spawn(p, gsmgw_drivers::modem::engine_config());
        h.cmd("ATE0").await.unwrap();
        h.cmd("AT+CSCS=\"GSM\"").await.unwrap();
        let spec = if dialect == Dialect::Huawei {
            UssdSpec::PACKED_FIRST
        } else {
            UssdSpec::PLAIN_FIRST
        };
        let want_enc = if dialect == Dialect::Huawei {
            RequestEncoding::PackedHex
        } else {
            RequestEncoding::Plain
        };
        let hints = DecodeHints::default();
        let mut deferred = Vec::new();
        let run = async |code: &str,
                         replies: &[String],
                         spec: &UssdSpec,
                         urcs: &mut _,
                         deferred: &mut Vec<_>| {
            session::run(&h, urcs, deferred, &request(code, replies), spec, hints).await
        };

        // A plain answer.
        let x = run("*111#", &[], &spec, &mut urcs, &mut deferred)
            .await
            .unwrap();
        assert_eq!(x.encoding, want_enc, "{dialect}");
        let last = x.last().unwrap();
        assert_eq!(
            (last.status, last.text.as_str()),
            (UssdStatus::Done, "Balance: 5,10 UAH"),
            "{dialect}"
        );
        if dialect == Dialect::Huawei {
            assert_eq!(last.form, TextForm::PackedHex);
        }

        // A menu, answered.
        let x = run("*100#", &["1".to_string()], &spec, &mut urcs, &mut deferred)
            .await
            .unwrap();
        let texts: Vec<(UssdStatus, &str, &str)> = x
            .steps
            .iter()
            .map(|s| (s.status, s.sent.as_str(), s.text.as_str()))
            .collect();
        assert_eq!(
            texts,
            [
                (UssdStatus::Menu, "*100#", "1 Balance 2 Tariff"),
                (UssdStatus::Done, "1", "Zalyshok 3.00 grn")
            ],
            "{dialect}"
        );
        assert!(!x.cancelled_menu);

        // A menu nobody answers is ended with AT+CUSD=2.
        let x = run("*100#", &[], &spec, &mut urcs, &mut deferred)
            .await
            .unwrap();
        assert!(x.cancelled_menu, "{dialect}");
        let s = sim.control_ok(json!({"op": "state"})).await.unwrap();
        assert_eq!(s["ussd"]["session"], json!(false), "{dialect}");

        // Cyrillic comes as UCS-2 (DCS 72) whatever the dialect.
        let x = run("*700#", &[], &spec, &mut urcs, &mut deferred)
            .await
            .unwrap();
        let last = x.last().unwrap();
        assert_eq!(last.text, "На рахунку 12,00 грн.", "{dialect}");
        assert_eq!((last.form, last.dcs), (TextForm::Ucs2Hex, Some(72)));

        // The network does not know the code.
        let e = run("*404#", &[], &spec, &mut urcs, &mut deferred)
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                UssdFailure::Network {
                    status: UssdStatus::NotSupported,
                    ..
                }
            ),
            "{dialect}: {e:?}"
        );

        // No answer at all: a timeout, and the session is closed on the modem.
        let short = Request {
            code: "*555#",
            replies: &[],
            timeout: Duration::from_millis(500),
        };
        let e = session::run(&h, &mut urcs, &mut deferred, &short, &spec, hints)
            .await
            .unwrap_err();
        assert_eq!(
            e,
            UssdFailure::Timeout(Duration::from_millis(500)),
            "{dialect}"
        );

        // An empty `+CUSD: 0,""` before the real answer is not the answer.
        sim.control_ok(json!({"op": "ussd-table", "empty_first": true}))
            .await
            .unwrap();
        let x = run("*111#", &[], &spec, &mut urcs, &mut deferred)
            .await
            .unwrap();
        assert_eq!(x.last().unwrap().text, "Balance: 5,10 UAH", "{dialect}");

        // The other order of encodings still works: the refused one is skipped.
        let other = if dialect == Dialect::Huawei {
            UssdSpec::PLAIN_FIRST
        } else {
            UssdSpec::PACKED_FIRST
        };
        if dialect == Dialect::Huawei {
            let x = run("*111#", &[], &other, &mut urcs, &mut deferred)
                .await
                .unwrap();
            assert_eq!(x.encoding, RequestEncoding::PackedHex);
        }

        // Nothing that is not a USSD string reaches the modem.
        let before = sim.control_ok(json!({"op": "state"})).await.unwrap()["ussd"]["requests"]
            .as_array()
            .unwrap()
            .len();
        for bad in ["*111#\"\r\nAT+CMGS=1", "", "*1;#"] {
            let e = run(bad, &[], &spec, &mut urcs, &mut deferred)
                .await
                .unwrap_err();
            assert!(matches!(e, UssdFailure::Invalid(_)), "{bad:?}: {e:?}");
        }
        let e = run(
            "*100#",
            &["1\r".to_string()],
            &spec,
            &mut urcs,
            &mut deferred,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, UssdFailure::Invalid(_)));
        let s = sim.control_ok(json!({"op": "state"})).await.unwrap();
        assert_eq!(s["ussd"]["requests"].as_array().unwrap().len(), before);
        drop(h);
        sim.shutdown().await;
    }
}
