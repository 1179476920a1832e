//! ZTE (MF626, MF627, MF636, MF190, MF110, MF180... USB sticks): AT+ZGETICCID, the `+ZPASR`
//! access-technology reports and the `+ZUSIMR`/`+ZDONR`/`+ZPSTM`/`+ZEND` chatter.
//!
//! Sources: "AT Command Set for ZTE Wireless Data Product" V1.8 (+ZGETICCID, +ZPAS); SparkFun's
//! MG2639 library (a ZTE module: `+ZGETICCID: 89860042190733578148`, ERROR without a SIM); public
//! notes on the MF656 stick, firmware BD_MF656V1.0.2B11 (no AT+ZGETICCID there: AT+ICCID answers
//! `ICCID: <value>`; `+ZRSSI` on every signal change); ModemManager
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
        // MF656-class firmwares (`ICCID: 89...`; the label is dropped whatever it reads).
        ("AT+ICCID", "+ICCID:"),
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
const URC_PREFIXES: &[&str] = &[
    "+ZPASR:", "+ZUSIMR:", "+ZDONR:", "+ZPSTM:", "+ZEND", "+ZRSSI:",
];

fn parse_urc(line: &str) -> Option<Urc> {
    // +ZRSSI: the signal changed (the agent reads AT+CSQ then). Nothing else of ZTE's own is
    // something the agent acts on: +ZPASR is the access technology (the health check reads
    // +COPS), the rest is chatter.
    line.starts_with("+ZRSSI:").then(|| Urc::Signal {
        line: line.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modem::dialect::urc;
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

    /// An MF656 as its public notes show it: no AT+ZGETICCID, AT+ICCID → `ICCID: <value>`,
    /// `+ZRSSI` when the signal changes.
    #[tokio::test]
    async fn replay_mf656() {
        let mut r = Replay::start(
            &[],
            &[
                ("AT+CGMI", &["ZTE INCORPORATED", "OK"]),
                ("AT+CGMM", &["MF656", "OK"]),
                ("AT+CGMR", &["BD_MF656V1.0.2B11", "OK"]),
                ("AT+CGSN", &["354869019876543", "OK"]),
                ("AT+CIMI", &["+ZRSSI: 64,4,0", "255030123456781", "OK"]),
                ("AT+ZGETICCID", &["ERROR"]),
                ("AT+ICCID", &["ICCID: 89380030123456789012", "OK"]),
            ],
        );
        let id = r.modem.identify(None).await.unwrap();
        assert_eq!(r.modem.dialect(), Dialect::Zte);
        assert_eq!(id.model, "MF656");
        assert_eq!(id.iccid, "89380030123456789012");
        assert_eq!(
            r.next_urc().await,
            Urc::Signal {
                line: "+ZRSSI: 64,4,0".into()
            }
        );
    }
}
