//! SIMCom (SIM7000, SIM7500, SIM7600...): AT+CICCID on LTE models, bare AT+CCID on older ones;
//! `VOICE CALL:` progress lines, `+RXDTMF` DTMF reports. The 2G SIM800/SIM900 have their own
//! dialect (`simcom2g`).

use crate::ussd::UssdSpec;
use super::{DialectSpec, VoiceSpec, VoiceWhen};
use crate::at::{Service, Urc};
use crate::at::fields::unquote;
use crate::at::urc::{dtmf, rest};

/// SIMCom modems.
pub const SPEC: DialectSpec = DialectSpec {
    name: "simcom",
    iccid_commands: &[("AT+CICCID", "+ICCID:"), ("AT+CCID", "+CCID:")],
    vendor_errors: &[],
    init: &[],
    voice: VoiceSpec {
        enable: Some("AT+CPCMREG=1"),
        when: VoiceWhen::AfterConnect,
        disable: Some("AT+CPCMREG=0"),
        dtmf_detect: Some("AT+DDET=1"),
        pcm_port: true,
    },
    urc_prefixes: URC_PREFIXES,
    parse_urc,
    ussd: UssdSpec::PLAIN_FIRST,
};

/// SIMCom's own unsolicited lines.
const URC_PREFIXES: &[&str] = &[
    "+RXDTMF:",
    "VOICE CALL:",
    "MISSED_CALL:",
    "Call Ready",
    "SMS Ready",
    "SMS DONE",
    "PB DONE",
    "+SIMCARD:",
];

fn parse_urc(line: &str) -> Option<Urc> {
    // SIM7500/7600 AT manual: the card was pulled (hot swap).
    if line == "+SIMCARD: NOT AVAILABLE" {
        return Some(Urc::SimState {
            code: "NOT INSERTED".into(),
        });
    }
    // SIM7xxx readiness (ModemManager plugins/simtech: "PB DONE" / "SMS DONE").
    match line {
        "SMS DONE" => {
            return Some(Urc::Ready {
                service: Service::Sms,
            });
        }
        "PB DONE" => {
            return Some(Urc::Ready {
                service: Service::Phonebook,
            });
        }
        _ => {}
    }
    if line == "VOICE CALL: BEGIN" {
        return Some(Urc::CallConnected {
            line: line.to_string(),
        });
    }
    if line.starts_with("VOICE CALL: END") {
        return Some(Urc::CallCleared { cause: None });
    }
    if line.starts_with("+RXDTMF:") {
        let v = unquote(rest(line, "+RXDTMF:"));
        return Some(dtmf(line, v.chars().next()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modem::dialect::urc;

    #[test]
    fn a_pulled_sim_is_reported() {
        assert_eq!(
            urc::parse("+SIMCARD: NOT AVAILABLE", None),
            Urc::SimState {
                code: "NOT INSERTED".into()
            }
        );
    }

    #[test]
    fn simcom_lines() {
        assert!(matches!(
            parse_urc("VOICE CALL: BEGIN"),
            Some(Urc::CallConnected { .. })
        ));
        assert_eq!(
            parse_urc("VOICE CALL: END: 000012"),
            Some(Urc::CallCleared { cause: None })
        );
        assert_eq!(parse_urc("+RXDTMF: #"), Some(Urc::Dtmf { digit: '#' }));
        assert_eq!(parse_urc("+RXDTMF: x"), Some(Urc::Other("+RXDTMF: x".into())));
        assert_eq!(parse_urc("+RXDTMF:"), Some(Urc::Other("+RXDTMF:".into())));
        assert_eq!(parse_urc("MISSED_CALL: 10:02AM 0441234567"), None);
        // `Call Ready` / `SMS Ready` are the 2G models' lines: simcom2g types them.
        assert_eq!(
            urc::parse("SMS DONE", None),
            Urc::Ready {
                service: Service::Sms
            }
        );
        assert_eq!(
            urc::parse("PB DONE", None),
            Urc::Ready {
                service: Service::Phonebook
            }
        );
        let l = "MISSED_CALL: 10:02AM 0441234567";
        assert!(urc::looks_unsolicited(l), "{l}");
        assert_eq!(urc::parse(l, None), Urc::Other(l.into()));
        assert!(matches!(
            urc::parse("VOICE CALL: BEGIN", None),
            Urc::CallConnected { .. }
        ));
    }
}
