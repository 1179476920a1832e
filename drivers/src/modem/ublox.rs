//! u-blox (SARA-G3, SARA-U2, LISA-U2, TOBY-L2, SARA-R4/R5...): AT+CCID, `+UCALLSTAT` call
//! states, `+UUDTMFD` DTMF reports, `+PBREADY`.
//!
//! Sources: u-blox AT Commands Manual UBX-13002752 (+CCID → `+CCID: <ICCID>`; +UCALLSTAT
//! `<call_id>,<stat>` with 0 active, 1 held, 2 dialling, 3 alerting, 4 ringing, 5 waiting, 6
//! disconnected, 7 connected; +UDTMFD=1,2 → `+UUDTMFD: <key>`; the `+PBREADY` URC); ModemManager
//! src/plugins/ublox/mm-sim-ublox.c (ICCID by AT+CCID), mm-broadband-modem-ublox.c (AT+UCALLSTAT=1,
//! AT+UDTMFD=1,2, the +UCALLSTAT state table, +PBREADY) and mm-plugin-ublox.c (`+AT: READY` once
//! the module has booted).

use super::{DialectSpec, VoiceSpec, VoiceWhen};
use crate::at::fields::{parse_fields, unquote};
use crate::at::urc::{dtmf, rest};
use crate::at::{Service, Urc};
use crate::ussd::UssdSpec;

/// u-blox modules.
pub const SPEC: DialectSpec = DialectSpec {
    name: "ublox",
    iccid_commands: &[
        ("AT+CCID", "+CCID:"),
        ("AT+CRSM=176,12258,0,0,10", "+CRSM:"),
    ],
    vendor_errors: &[],
    // Call state reports (+UCALLSTAT), as ModemManager sets them.
    init: &["AT+UCALLSTAT=1"],
    // u-blox audio leaves on the module's analog or I2S pins: no PCM port the host can open.
    voice: VoiceSpec {
        enable: None,
        when: VoiceWhen::BeforeCall,
        disable: None,
        dtmf_detect: Some("AT+UDTMFD=1,2"),
        pcm_port: false,
    },
    urc_prefixes: URC_PREFIXES,
    parse_urc,
    ussd: UssdSpec::PLAIN_FIRST,
};

/// u-blox's own unsolicited lines.
const URC_PREFIXES: &[&str] = &["+UCALLSTAT:", "+UUDTMFD:", "+PBREADY", "+AT: READY"];

fn parse_urc(line: &str) -> Option<Urc> {
    if line.starts_with("+UCALLSTAT:") {
        let f = parse_fields(rest(line, "+UCALLSTAT:"));
        return match f.get(1).map(|s| s.trim()) {
            Some("0" | "7") => Some(Urc::CallConnected {
                line: line.to_string(),
            }),
            Some("6") => Some(Urc::CallCleared { cause: None }),
            // Dialling, alerting, ringing, held, waiting: +CLCC, RING and +CLIP say as much.
            _ => None,
        };
    }
    if line.starts_with("+UUDTMFD:") {
        let v = unquote(rest(line, "+UUDTMFD:"));
        return Some(dtmf(line, v.chars().next()));
    }
    if line == "+PBREADY" {
        return Some(Urc::Ready {
            service: Service::Phonebook,
        });
    }
    if line.starts_with("+AT: READY") {
        return Some(Urc::Boot {
            line: line.to_string(),
        });
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
    fn ublox_lines() {
        assert!(matches!(
            urc::parse("+UCALLSTAT: 1,0", None),
            Urc::CallConnected { .. }
        ));
        assert!(matches!(
            urc::parse("+UCALLSTAT: 1,7", None),
            Urc::CallConnected { .. }
        ));
        assert_eq!(
            urc::parse("+UCALLSTAT: 1,6", None),
            Urc::CallCleared { cause: None }
        );
        assert_eq!(
            urc::parse("+UCALLSTAT: 1,2", None),
            Urc::Other("+UCALLSTAT: 1,2".into())
        );
        assert_eq!(urc::parse("+UUDTMFD: #", None), Urc::Dtmf { digit: '#' });
        assert_eq!(
            urc::parse("+PBREADY", None),
            Urc::Ready {
                service: Service::Phonebook
            }
        );
        assert_eq!(
            urc::parse("+AT: READY", None),
            Urc::Boot {
                line: "+AT: READY".into()
            }
        );
    }

    /// A u-blox SARA-U201 as the u-blox AT Commands Manual shows it (AT+CGMI `u-blox`, AT+CGMM,
    /// AT+CGMR, AT+CCID → `+CCID: <ICCID>`), `+PBREADY` once the SIM was read, and a call that
    /// connects and ends with +UCALLSTAT while the health check polls +CSQ.
    #[tokio::test]
    async fn replay_sara_u201() {
        let mut r = Replay::start(
            &["+PBREADY"],
            &[
                ("AT+CGMI", &["u-blox", "OK"]),
                ("AT+CGMM", &["SARA-U201", "OK"]),
                ("AT+CGMR", &["23.60", "OK"]),
                ("AT+CGSN", &["357520071234567", "OK"]),
                ("AT+CIMI", &["222107701772423", "OK"]),
                ("AT+CCID", &["+CCID: 8939107800023416395", "OK"]),
                (
                    "AT+CSQ",
                    &["+UCALLSTAT: 1,0", "+CSQ: 22,99", "+UCALLSTAT: 1,6", "OK"],
                ),
            ],
        );
        let id = r.modem.identify(None).await.unwrap();
        assert_eq!(r.modem.dialect(), Dialect::Ublox);
        assert_eq!(id.manufacturer, "u-blox");
        assert_eq!(id.model, "SARA-U201");
        assert_eq!(id.iccid, "8939107800023416395");
        assert_eq!(r.modem.signal_dbm().await.unwrap(), Some(-69));
        assert_eq!(
            r.next_urc().await,
            Urc::Ready {
                service: Service::Phonebook
            }
        );
        assert!(matches!(r.next_urc().await, Urc::CallConnected { .. }));
        assert_eq!(r.next_urc().await, Urc::CallCleared { cause: None });
    }
}
