//! Sierra Wireless (AirPrime MC7304/MC7455/MC7710, EM7455, AirCard, WP76xx...): AT!ICCID?.
//!
//! Sources: Sierra Wireless AirPrime MC/EM Series AT Command Reference (!ICCID? returns the
//! SIM's ICCID); ModemManager src/plugins/sierra/mm-sim-sierra.c (sends `!ICCID?` and strips
//! `!ICCID:` from the answer) and mm-common-sierra.c (the only unsolicited line it handles is
//! `+PACSP`, which the generic dialect takes out already); networkmanager-list, July 2013, "Re:
//! AT!ICCID before PIN-entry fails" (firmwares that take the undocumented `AT+ICCID` and answer
//! `ICCID: 89...`; the raw AT+CRSM read as the way round a PIN-locked !ICCID).

use super::{DialectSpec, VoiceSpec};
use crate::at::Urc;
use crate::ussd::UssdSpec;

/// Sierra Wireless modules.
pub const SPEC: DialectSpec = DialectSpec {
    name: "sierra",
    iccid_commands: &[
        ("AT!ICCID?", "!ICCID:"),
        // Answers `ICCID: 89...`; the label is dropped whatever it reads.
        ("AT+ICCID", "+ICCID:"),
        ("AT+CRSM=176,12258,0,0,10", "+CRSM:"),
    ],
    vendor_errors: &[],
    init: &[],
    // Sierra's MC/EM cards are data cards: no PCM voice port the host can open.
    voice: VoiceSpec::NO_PCM_PORT,
    urc_prefixes: &[],
    parse_urc,
    ussd: UssdSpec::PLAIN_FIRST,
};

fn parse_urc(_line: &str) -> Option<Urc> {
    // Sierra's AT firmware prints the 27.007 URCs and +PACSP (generic) only.
    None
}

#[cfg(test)]
mod tests {
    use crate::modem::Dialect;
    use crate::modem::replay::Replay;

    /// A Sierra MC7710 as ModemManager's sierra plugin and the networkmanager-list thread show
    /// it: `Sierra Wireless, Incorporated`, AT!ICCID? → `!ICCID: <ICCID>`, `+PACSP0` during
    /// start-up.
    #[tokio::test]
    async fn replay_mc7710() {
        let mut r = Replay::start(
            &["+PACSP0"],
            &[
                ("AT+CGMI", &["Sierra Wireless, Incorporated", "OK"]),
                ("AT+CGMM", &["MC7710", "OK"]),
                ("AT+CGMR", &["SWI9200X_03.05.29.03ap r6485 CNSHZ-ED-XP0031 2014/12/02 17:53:15", "OK"]),
                ("AT+CGSN", &["358178040123456", "OK"]),
                ("AT+CIMI", &["262011234567890", "OK"]),
                ("AT!ICCID?", &["!ICCID: 89490200000863940628", "OK"]),
            ],
        );
        let id = r.modem.identify(None).await.unwrap();
        assert_eq!(r.modem.dialect(), Dialect::Sierra);
        assert_eq!(id.manufacturer, "Sierra Wireless, Incorporated");
        assert_eq!(id.model, "MC7710");
        assert_eq!(id.iccid, "89490200000863940628");
        assert_eq!(
            r.next_urc().await,
            crate::at::Urc::Other("+PACSP0".into())
        );
    }

    /// The firmware of the networkmanager-list thread: AT!ICCID? refused before the PIN, the
    /// undocumented AT+ICCID answering `ICCID: 89490200000863940628`.
    #[tokio::test]
    async fn replay_iccid_fallback() {
        let mut r = Replay::start(
            &[],
            &[
                ("AT+CGMI", &["Sierra Wireless, Incorporated", "OK"]),
                ("AT+CGMM", &["MC8705", "OK"]),
                ("AT+CGMR", &["T3_0_3_2AP R415 CARMD-EN-10527 2011/07/08 20:02:34", "OK"]),
                ("AT+CGSN", &["012773002123456", "OK"]),
                ("AT+CIMI", &["262011234567890", "OK"]),
                ("AT!ICCID?", &["ERROR"]),
                ("AT+ICCID", &["ICCID: 89490200000863940628", "", "OK"]),
            ],
        );
        let id = r.modem.identify(None).await.unwrap();
        assert_eq!(r.modem.dialect(), Dialect::Sierra);
        assert_eq!(id.iccid, "89490200000863940628");
        let sent = r.sent();
        let pos = |c: &str| sent.iter().position(|s| s == c);
        assert!(pos("AT!ICCID?") < pos("AT+ICCID"), "{sent:?}");
    }
}
