//! Quectel (EC2x, EG9x, UC20, M95...): AT+QCCID, `+QIND` URCs, `+QTONEDET` DTMF reports.

use crate::ussd::UssdSpec;
use super::{DialectSpec, VoiceSpec, VoiceWhen};
use crate::at::{Service, Urc};
use crate::at::fields::unquote;
use crate::at::urc::{dtmf, rest};

/// Quectel modems.
pub const SPEC: DialectSpec = DialectSpec {
    name: "quectel",
    iccid_commands: &[("AT+QCCID", "+QCCID:"), ("AT+CCID", "+CCID:")],
    vendor_errors: &[],
    // Report SMS storage and "SMS DONE" through +QIND so init can wait for it.
    // Report SIM hot swap (+QSIMSTAT: <enable>,<inserted>; EC2x AT manual, AT+QSIMSTAT).
    init: &["AT+QINDCFG=\"smsincoming\",1", "AT+QSIMSTAT=1"],
    voice: VoiceSpec {
        enable: Some("AT+QPCMV=1,0"),
        when: VoiceWhen::BeforeCall,
        disable: Some("AT+QPCMV=0"),
        dtmf_detect: Some("AT+QTONEDET=1"),
        pcm_port: true,
    },
    urc_prefixes: URC_PREFIXES,
    parse_urc,
    ussd: UssdSpec::PLAIN_FIRST,
};

/// Quectel's own unsolicited lines.
const URC_PREFIXES: &[&str] = &["+QIND:", "+QUSIM:", "+QTONEDET:", "+QSIMSTAT:"];

fn parse_urc(line: &str) -> Option<Urc> {
    if line.starts_with("+QIND: \"csq\"") {
        return Some(Urc::Signal {
            line: line.to_string(),
        });
    }
    // Readiness once the SIM was read (EC2x manual, AT+QINDCFG / "+QIND: SMS DONE").
    match line {
        "+QIND: SMS DONE" => {
            return Some(Urc::Ready {
                service: Service::Sms,
            });
        }
        "+QIND: PB DONE" => {
            return Some(Urc::Ready {
                service: Service::Phonebook,
            });
        }
        _ => {}
    }
    if line.starts_with("+QSIMSTAT:") {
        // +QSIMSTAT: <enable>,<inserted 0|1>
        let inserted = rest(line, "+QSIMSTAT:").split(',').nth(1).map(str::trim);
        let code = match inserted {
            Some("0") => "NOT INSERTED",
            Some("1") => "INSERTED",
            _ => return Some(Urc::Other(line.to_string())),
        };
        return Some(Urc::SimState { code: code.into() });
    }
    if line.starts_with("+QTONEDET:") {
        // The key as its ASCII code ('5' → 53).
        let v = unquote(rest(line, "+QTONEDET:"));
        return Some(dtmf(line, v.parse::<u8>().ok().map(char::from)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modem::dialect::urc;

    #[test]
    fn quectel_lines() {
        assert!(matches!(
            parse_urc("+QIND: \"csq\",17,99"),
            Some(Urc::Signal { .. })
        ));
        assert_eq!(parse_urc("+QTONEDET: 53"), Some(Urc::Dtmf { digit: '5' }));
        assert_eq!(
            urc::parse("+QSIMSTAT: 1,0", None),
            Urc::SimState {
                code: "NOT INSERTED".into()
            }
        );
        assert_eq!(
            urc::parse("+QSIMSTAT: 1,1", None),
            Urc::SimState {
                code: "INSERTED".into()
            }
        );
        assert_eq!(parse_urc("+QTONEDET: 35"), Some(Urc::Dtmf { digit: '#' }));
        assert_eq!(
            parse_urc("+QTONEDET: 120"),
            Some(Urc::Other("+QTONEDET: 120".into()))
        );
        assert_eq!(
            parse_urc("+QTONEDET:"),
            Some(Urc::Other("+QTONEDET:".into()))
        );
        assert_eq!(
            parse_urc("+QIND: SMS DONE"),
            Some(Urc::Ready {
                service: Service::Sms
            })
        );
        assert_eq!(
            urc::parse("+QIND: PB DONE", None),
            Urc::Ready {
                service: Service::Phonebook
            }
        );
        // +QIND lines the agent does not act on are taken out of responses, typed as Other.
        assert!(urc::looks_unsolicited("+QIND: SMS DONE"));
        assert!(urc::looks_unsolicited("+QUSIM: 1"));
        assert_eq!(
            urc::parse("+QIND: \"smsfull\",\"SM\"", None),
            Urc::Other("+QIND: \"smsfull\",\"SM\"".into())
        );
        assert_eq!(urc::parse("+QTONEDET: 53", None), Urc::Dtmf { digit: '5' });
    }
}
