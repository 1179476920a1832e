//! Fibocom (L610, L716, L850/L860, NL668, FM150...): AT+CCID / AT+ICCID, `+SIM READY` and the
//! `+SIM: Inserted` / `+SIM: Removed` / `+SIM DROP` hot-swap lines.
//!
//! Sources: Fibocom L610 AT Commands Manual (AT+CCID → `+CCID: <ICCID>`), Fibocom FM150/NL668 AT
//! Commands User Manual (AT+ICCID → `+ICCID: <ICCID>`); ModemManager
//! src/plugins/fibocom/mm-shared-fibocom.c (the `+SIM READY` URC, and `+SIM: Inserted`,
//! `+SIM: Removed`, `+SIM DROP` for SIM hot swap).

use super::{DialectSpec, VoiceSpec};
use crate::at::Urc;
use crate::ussd::UssdSpec;

/// Fibocom modules.
pub const SPEC: DialectSpec = DialectSpec {
    name: "fibocom",
    iccid_commands: &[
        ("AT+CCID", "+CCID:"),
        ("AT+ICCID", "+ICCID:"),
        ("AT+CRSM=176,12258,0,0,10", "+CRSM:"),
    ],
    vendor_errors: &[],
    init: &[],
    // Fibocom's LTE modules carry data; their audio, where there is any, is on module pins.
    voice: VoiceSpec::NO_PCM_PORT,
    urc_prefixes: URC_PREFIXES,
    parse_urc,
    ussd: UssdSpec::PLAIN_FIRST,
};

/// Fibocom's own unsolicited lines.
const URC_PREFIXES: &[&str] = &["+SIM READY", "+SIM: ", "+SIM DROP"];

fn parse_urc(line: &str) -> Option<Urc> {
    let code = match line {
        "+SIM READY" => "READY",
        "+SIM: Inserted" => "INSERTED",
        "+SIM: Removed" | "+SIM DROP" => "NOT INSERTED",
        _ => return None,
    };
    Some(Urc::SimState { code: code.into() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modem::dialect::urc;
    use crate::modem::Dialect;
    use crate::modem::replay::Replay;

    #[test]
    fn fibocom_lines() {
        for (l, code) in [
            ("+SIM READY", "READY"),
            ("+SIM: Inserted", "INSERTED"),
            ("+SIM: Removed", "NOT INSERTED"),
            ("+SIM DROP", "NOT INSERTED"),
        ] {
            assert!(urc::looks_unsolicited(l), "{l}");
            assert_eq!(urc::parse(l, None), Urc::SimState { code: code.into() });
        }
        assert_eq!(urc::parse("+SIM: 7", None), Urc::Other("+SIM: 7".into()));
    }

    /// A Fibocom L610 as its AT Commands Manual and ModemManager's fibocom plugin show it:
    /// `Fibocom` / `L610`, `+SIM READY` at start, AT+CCID → `+CCID: <ICCID>`; a SIM pulled and
    /// put back while the modem is asked for its signal.
    #[tokio::test]
    async fn replay_l610() {
        let mut r = Replay::start(
            &["+SIM READY"],
            &[
                ("AT+CGMI", &["Fibocom", "OK"]),
                ("AT+CGMM", &["L610", "OK"]),
                ("AT+CGMR", &["16000.1000.00.01.02.09", "OK"]),
                ("AT+CGSN", &["864861040123456", "OK"]),
                ("AT+CIMI", &["460011234567890", "OK"]),
                ("AT+CCID", &["+CCID: 89860117851023456789", "OK"]),
                (
                    "AT+CSQ",
                    &["+SIM DROP", "+CSQ: 99,99", "+SIM: Inserted", "OK"],
                ),
            ],
        );
        assert_eq!(
            r.next_urc().await,
            Urc::SimState {
                code: "READY".into()
            }
        );
        let id = r.modem.identify(None).await.unwrap();
        assert_eq!(r.modem.dialect(), Dialect::Fibocom);
        assert_eq!(id.model, "L610");
        assert_eq!(id.iccid, "89860117851023456789");
        assert_eq!(r.modem.signal_dbm().await.unwrap(), None);
        assert_eq!(
            r.next_urc().await,
            Urc::SimState {
                code: "NOT INSERTED".into()
            }
        );
        assert_eq!(
            r.next_urc().await,
            Urc::SimState {
                code: "INSERTED".into()
            }
        );
    }

    /// FM150-style firmwares answer AT+ICCID only.
    #[tokio::test]
    async fn replay_iccid_form() {
        let mut r = Replay::start(
            &[],
            &[
                ("AT+CGMI", &["Fibocom Wireless Inc.", "OK"]),
                ("AT+CGMM", &["FM150-AE", "OK"]),
                ("AT+CGMR", &["89602.1000.00.01.01.07", "OK"]),
                ("AT+CGSN", &["864861040654321", "OK"]),
                ("AT+CIMI", &["310260123456789", "OK"]),
                ("AT+ICCID", &["+ICCID: 8901260487759545390F", "OK"]),
            ],
        );
        let id = r.modem.identify(None).await.unwrap();
        assert_eq!(r.modem.dialect(), Dialect::Fibocom);
        assert_eq!(id.iccid, "8901260487759545390");
    }
}
