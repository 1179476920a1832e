//! ZTE (MF626, MF627, MF636, MF190, MF110, MF180... USB sticks): AT+ZGETICCID, the `+ZPASR`
//! access-technology reports and the `+ZUSIMR`/`+ZDONR`/`+ZPSTM`/`+ZEND` chatter.
//!
//! Sources: "AT Command Set for ZTE Wireless Data Product" V1.8 (+ZGETICCID, +ZPAS); ModemManager
//! src/plugins/zte/mm-common-zte.c (the unsolicited lines: +ZPASR handled, +ZUSIMR "SMS related",
//! +ZDONR operator display, +ZPSTM/+ZEND SIM toolkit menus, all ignored) and
//! mm-broadband-modem-zte.c (the +ZUSIMR:2 flood that can crash a stick, quelled by a +CPMS?).
//! USSD: ModemManager's zte plugin keeps the generic 3GPP USSD (plain text in the current
//! character set), unlike its huawei plugin's packed GSM 7-bit hex, so plain comes first here
//! too; a stick that refuses it gets packed hex next ([`UssdSpec::PLAIN_FIRST`]).

use super::{DialectSpec, VoiceSpec};
use crate::at::Urc;
use crate::ussd::UssdSpec;

/// ZTE modems.
pub const SPEC: DialectSpec = DialectSpec {
    name: "zte",
    iccid_commands: &[
        ("AT+ZGETICCID", "+ZGETICCID:"),
        ("AT+CRSM=176,12258,0,0,10", "+CRSM:"),
    ],
    // ZTE firmwares end commands with the 27.007 words only.
    vendor_errors: &[],
    // ModemManager: a +CPMS? after the SIM is ready stops the +ZUSIMR:2 flood.
    init: &["AT+CPMS?"],
    // MF sticks are data sticks: no PCM voice port the host can open.
    voice: VoiceSpec::NO_PCM_PORT,
    urc_prefixes: URC_PREFIXES,
    parse_urc,
    ussd: UssdSpec::PLAIN_FIRST,
};

/// ZTE's own unsolicited lines (ModemManager mm-common-zte.c).
const URC_PREFIXES: &[&str] = &["+ZPASR:", "+ZUSIMR:", "+ZDONR:", "+ZPSTM:", "+ZEND"];

fn parse_urc(_line: &str) -> Option<Urc> {
    // None of ZTE's own lines is something the agent acts on: +ZPASR is the access technology
    // (the health check reads +COPS), the rest is chatter. Signal comes from AT+CSQ.
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::at::urc;
    use crate::modem::Dialect;
    use crate::modem::replay::Replay;

    #[test]
    fn zte_lines_are_chatter() {
        for l in [
            "+ZPASR: \"UMTS\"",
            "+ZUSIMR:2",
            "+ZDONR: \"Kyivstar\",255,03,\"CS_PS\",\"ROAM_OFF\"",
            "+ZPSTM: 1",
            "+ZEND",
        ] {
            assert_eq!(parse_urc(l), None, "{l}");
            assert!(urc::looks_unsolicited(l), "{l}");
            assert_eq!(urc::parse(l, None), Urc::Other(l.into()));
        }
    }

    /// A ZTE MF626 as the ZTE AT command set V1.8 and ModemManager's zte plugin show it:
    /// `ZTE CORPORATION` / `MF626`, the ICCID from AT+ZGETICCID, and the +ZUSIMR/+ZPASR chatter
    /// arriving inside answers.
    #[tokio::test]
    async fn replay_mf626() {
        let mut r = Replay::start(
            &[],
            &[
                ("AT+CGMI", &["ZTE CORPORATION", "OK"]),
                ("AT+CGMM", &["+ZUSIMR:2", "MF626", "OK"]),
                ("AT+CGMR", &["BD_MF626V1.0.0B02", "OK"]),
                ("AT+CGSN", &["354869012345678", "OK"]),
                ("AT+CIMI", &["255030123456781", "+ZPASR: \"UMTS\"", "OK"]),
                ("AT+ZGETICCID", &["+ZGETICCID: 89380030123456789012", "OK"]),
            ],
        );
        let id = r.modem.identify(None).await.unwrap();
        assert_eq!(r.modem.dialect(), Dialect::Zte);
        assert_eq!(id.manufacturer, "ZTE CORPORATION");
        assert_eq!(id.model, "MF626");
        assert_eq!(id.firmware, "BD_MF626V1.0.0B02");
        assert_eq!(id.imei, "354869012345678");
        assert_eq!(id.imsi, "255030123456781");
        assert_eq!(id.iccid, "89380030123456789012");
        assert_eq!(r.next_urc().await, Urc::Other("+ZUSIMR:2".into()));
        assert_eq!(r.next_urc().await, Urc::Other("+ZPASR: \"UMTS\"".into()));
        assert!(r.sent().contains(&"AT+ZGETICCID".to_string()));
    }
}
