//! SIMCom 2G modules (SIM800, SIM800L/C/H, SIM808, SIM868, SIM900): their own dialect rather than
//! a quirk of `simcom`, because what differs is exactly what a dialect carries — the ICCID
//! command (bare AT+CCID, no AT+CICCID), the readiness lines (`Call Ready`, `SMS Ready`), the
//! DTMF report (`+DTMF:` instead of `+RXDTMF:`), and above all the voice spec: these modules
//! have analog audio pins only, no PCM port the host can open, so their calls can never be
//! bridged to SIP. A model quirk would have needed a second voice spec inside `simcom` and an
//! `if sim800` wherever it is read.
//!
//! Sources: SIM800 Series AT Command Manual V1.09 (AT+CCID prints the bare ICCID, AT+CCALR and
//! the `Call Ready` / `SMS Ready` URCs, AT+DDET → `+DTMF: <key>`, AT+CSMINS SIM-inserted reports,
//! the `UNDER-VOLTAGE WARNNING` / `NORMAL POWER DOWN` lines); SIM900 AT Commands Manual V1.11
//! (the same forms). Signal is AT+CSQ only: these firmwares have no signal URC of their own.
//! Quirks the generic code already copes with: they start in SMS text mode (AT+CMGF=1, set to
//! PDU by `configure`) and print `SMS Ready` only seconds after `+CPIN: READY`.

use super::{DialectSpec, VoiceSpec, VoiceWhen};
use crate::at::fields::{parse_fields, unquote};
use crate::at::urc::{dtmf, rest};
use crate::at::{Service, Urc};
use crate::ussd::UssdSpec;

/// SIMCom 2G modules.
pub const SPEC: DialectSpec = DialectSpec {
    name: "simcom2g",
    iccid_commands: &[
        ("AT+CCID", "+CCID:"),
        ("AT+CRSM=176,12258,0,0,10", "+CRSM:"),
    ],
    vendor_errors: &[],
    // Report SIM insertion and removal (+CSMINS: <n>,<inserted>).
    init: &["AT+CSMINS=1"],
    voice: VoiceSpec {
        enable: None,
        when: VoiceWhen::BeforeCall,
        disable: None,
        dtmf_detect: Some("AT+DDET=1"),
        pcm_port: false,
    },
    urc_prefixes: URC_PREFIXES,
    parse_urc,
    ussd: UssdSpec::PLAIN_FIRST,
};

/// SIMCom 2G's own unsolicited lines.
const URC_PREFIXES: &[&str] = &[
    "Call Ready",
    "SMS Ready",
    "+DTMF:",
    "+CSMINS:",
    "+CFUN:",
    "UNDER-VOLTAGE",
    "OVER-VOLTAGE",
    "NORMAL POWER DOWN",
];

fn parse_urc(line: &str) -> Option<Urc> {
    match line {
        "Call Ready" => {
            return Some(Urc::Ready {
                service: Service::Calls,
            });
        }
        "SMS Ready" => {
            return Some(Urc::Ready {
                service: Service::Sms,
            });
        }
        _ => {}
    }
    if line.starts_with("+DTMF:") {
        let v = unquote(rest(line, "+DTMF:"));
        return Some(dtmf(line, v.chars().next()));
    }
    if line.starts_with("+CSMINS:") {
        // +CSMINS: <n>,<SIM inserted 0|1>
        let f = parse_fields(rest(line, "+CSMINS:"));
        let code = match f.get(1).map(|s| s.trim()) {
            Some("0") => "NOT INSERTED",
            Some("1") => "INSERTED",
            _ => return Some(Urc::Other(line.to_string())),
        };
        return Some(Urc::SimState { code: code.into() });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modem::dialect::urc;
    use crate::modem::Dialect;
    use crate::modem::replay::Replay;

    #[test]
    fn simcom2g_lines() {
        assert_eq!(
            urc::parse("Call Ready", None),
            Urc::Ready {
                service: Service::Calls
            }
        );
        assert_eq!(
            urc::parse("SMS Ready", None),
            Urc::Ready {
                service: Service::Sms
            }
        );
        assert_eq!(urc::parse("+DTMF: 5", None), Urc::Dtmf { digit: '5' });
        assert_eq!(urc::parse("+DTMF: x", None), Urc::Other("+DTMF: x".into()));
        assert_eq!(
            urc::parse("+CSMINS: 1,0", None),
            Urc::SimState {
                code: "NOT INSERTED".into()
            }
        );
        assert_eq!(
            urc::parse("+CSMINS: 1,1", None),
            Urc::SimState {
                code: "INSERTED".into()
            }
        );
        for l in ["+CFUN: 1", "UNDER-VOLTAGE WARNNING", "NORMAL POWER DOWN"] {
            assert!(urc::looks_unsolicited(l), "{l}");
            assert_eq!(urc::parse(l, None), Urc::Other(l.into()));
        }
        assert!(!Dialect::Simcom2g.spec().voice.pcm_port);
    }

    /// A SIM800L right after power-on, as the SIM800 Series AT Command Manual V1.09 (AT+CGMI,
    /// AT+CGMM, AT+CGMR, AT+CCID §6.2.23) and countless public boot logs show it: `RDY`,
    /// `+CFUN: 1`, `+CPIN: READY`, then `Call Ready` and `SMS Ready`; AT+CCID answers the bare
    /// number; AT+CICCID (the SIM7xxx form) does not exist.
    #[tokio::test]
    async fn replay_sim800l() {
        let mut r = Replay::start(
            &["RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready", "SMS Ready"],
            &[
                ("AT+CGMI", &["SIMCOM_Ltd", "OK"]),
                ("AT+CGMM", &["SIMCOM_SIM800L", "OK"]),
                ("AT+CGMR", &["Revision:1418B04SIM800L24", "OK"]),
                ("AT+CGSN", &["866782042512345", "OK"]),
                ("AT+CIMI", &["255011234567890", "OK"]),
                ("AT+CCID", &["8938001234567890123F", "OK"]),
                ("AT+CSQ", &["+CSQ: 17,0", "OK"]),
            ],
        );
        assert_eq!(r.next_urc().await, Urc::Boot { line: "RDY".into() });
        assert_eq!(r.next_urc().await, Urc::Other("+CFUN: 1".into()));
        assert_eq!(
            r.next_urc().await,
            Urc::SimState {
                code: "READY".into()
            }
        );
        assert_eq!(
            r.next_urc().await,
            Urc::Ready {
                service: Service::Calls
            }
        );
        assert_eq!(
            r.next_urc().await,
            Urc::Ready {
                service: Service::Sms
            }
        );
        let id = r.modem.identify(None).await.unwrap();
        assert_eq!(r.modem.dialect(), Dialect::Simcom2g);
        assert_eq!(id.manufacturer, "SIMCOM_Ltd");
        assert_eq!(id.model, "SIMCOM_SIM800L");
        assert_eq!(id.firmware, "Revision:1418B04SIM800L24");
        assert_eq!(id.iccid, "8938001234567890123");
        assert_eq!(r.modem.signal_dbm().await.unwrap(), Some(-79));
        assert!(!r.sent().contains(&"AT+CICCID".to_string()));
    }
}
