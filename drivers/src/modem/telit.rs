//! Telit (GE910, HE910, UE910, LE910, LE910Cx, ME910...): AT#CCID, `#QSS` SIM status reports.
//!
//! Sources: Telit AT Commands Reference Guide 80407ST10116A (#CCID → `#CCID: <ICCID>`; #QSS
//! `<status>` 0 SIM not inserted, 1 inserted, 2 inserted and PIN unlocked, 3 inserted and ready
//! for SMS and phonebook); ModemManager src/plugins/telit/mm-broadband-modem-telit.c (AT#QSS=1,
//! the unsolicited `#QSS: <0-3>` and its SIM-swap handling). Signal: AT+CSQ (Telit prints no
//! signal URC unless +CIND/+CMER indicators are set up, which the agent does not do).

use super::{DialectSpec, VoiceSpec};
use crate::at::urc::rest;
use crate::at::{Service, Urc};
use crate::ussd::UssdSpec;

/// Telit modules.
pub const SPEC: DialectSpec = DialectSpec {
    name: "telit",
    iccid_commands: &[
        ("AT#CCID", "#CCID:"),
        ("AT+CRSM=176,12258,0,0,10", "+CRSM:"),
    ],
    vendor_errors: &[],
    // SIM status reports (#QSS: <status>), as ModemManager sets them.
    init: &["AT#QSS=1"],
    // Telit audio leaves on the module's analog or DVI (PCM pins) interface: no host port.
    voice: VoiceSpec::NO_PCM_PORT,
    urc_prefixes: URC_PREFIXES,
    parse_urc,
    ussd: UssdSpec::PLAIN_FIRST,
};

/// Telit's own unsolicited lines.
const URC_PREFIXES: &[&str] = &["#QSS:"];

fn parse_urc(line: &str) -> Option<Urc> {
    if line.starts_with("#QSS:") {
        // The query's answer is `#QSS: <mode>,<status>`: the status is the last field.
        let status = rest(line, "#QSS:").rsplit(',').next().map(str::trim);
        let code = match status {
            Some("0") => "NOT INSERTED",
            Some("1") => "INSERTED",
            Some("2") => "READY",
            Some("3") => {
                return Some(Urc::Ready {
                    service: Service::Sms,
                });
            }
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
    fn telit_lines() {
        assert_eq!(
            urc::parse("#QSS: 0", None),
            Urc::SimState {
                code: "NOT INSERTED".into()
            }
        );
        assert_eq!(
            urc::parse("#QSS: 2", None),
            Urc::SimState {
                code: "READY".into()
            }
        );
        assert_eq!(
            urc::parse("#QSS: 3", None),
            Urc::Ready {
                service: Service::Sms
            }
        );
        assert_eq!(urc::parse("#QSS: 9", None), Urc::Other("#QSS: 9".into()));
        assert!(urc::looks_unsolicited("#QSS: 1"));
    }

    /// The answer to a `#` query is the query's, even where its prefix is also a URC's
    /// (Telit AT Commands Reference Guide, #QSS?: `#QSS: <mode>,<status>`).
    #[tokio::test]
    async fn qss_query_answer_stays_in_the_response() {
        let mut r = Replay::start(&[], &[("AT#QSS?", &["#QSS: 1,2", "OK"]), ("AT", &["#QSS: 0", "OK"])]);
        let a = r.modem.at().cmd("AT#QSS?").await.unwrap();
        assert_eq!(a.lines, ["#QSS: 1,2"]);
        // Unasked, the same line is the URC.
        let a = r.modem.at().cmd("AT").await.unwrap();
        assert!(a.lines.is_empty(), "{a:?}");
        assert_eq!(
            r.next_urc().await,
            Urc::SimState {
                code: "NOT INSERTED".into()
            }
        );
    }

    /// A Telit LE910C1-EU as the Telit AT Commands Reference Guide shows it (AT+CGMI `Telit`,
    /// AT+CGMM, AT+CGMR, AT#CCID → `#CCID: <ICCID>`), with the #QSS reports ModemManager's telit
    /// plugin handles arriving around the answers: the SIM taken out and put back.
    #[tokio::test]
    async fn replay_le910c1() {
        let mut r = Replay::start(
            &["#QSS: 3"],
            &[
                ("AT+CGMI", &["Telit", "OK"]),
                ("AT+CGMM", &["LE910C1-EU", "OK"]),
                ("AT+CGMR", &["25.21.662  1  [Jun 22 2020 07:00:00]", "OK"]),
                ("AT+CGSN", &["#QSS: 0", "351234567890128", "OK"]),
                ("AT+CIMI", &["#QSS: 2", "222013456789012", "OK"]),
                ("AT#CCID", &["#CCID: 89390100001234567890", "OK"]),
            ],
        );
        let id = r.modem.identify(None).await.unwrap();
        assert_eq!(r.modem.dialect(), Dialect::Telit);
        assert_eq!(id.manufacturer, "Telit");
        assert_eq!(id.model, "LE910C1-EU");
        assert_eq!(id.imei, "351234567890128");
        assert_eq!(id.imsi, "222013456789012");
        assert_eq!(id.iccid, "89390100001234567890");
        assert_eq!(
            r.next_urc().await,
            Urc::Ready {
                service: Service::Sms
            }
        );
        assert_eq!(
            r.next_urc().await,
            Urc::SimState {
                code: "NOT INSERTED".into()
            }
        );
        assert_eq!(
            r.next_urc().await,
            Urc::SimState {
                code: "READY".into()
            }
        );
    }
}
