//! The generic 3GPP 27.007 dialect: what any modem should understand, and the few lines that
//! several vendors print outside any standard (boot banners).

use crate::ussd::UssdSpec;
use super::{DialectSpec, VoiceSpec, VoiceWhen};
use crate::at::Urc;

/// Generic modem: ICCID via AT+CCID, falling back to reading EF_ICCID with AT+CRSM.
pub const SPEC: DialectSpec = DialectSpec {
    name: "generic",
    iccid_commands: &[
        ("AT+CCID", "+CCID:"),
        ("AT+CRSM=176,12258,0,0,10", "+CRSM:"),
    ],
    vendor_errors: &[],
    init: &[],
    voice: VoiceSpec {
        enable: None,
        when: VoiceWhen::BeforeCall,
        disable: None,
        dtmf_detect: None,
        pcm_port: true,
    },
    urc_prefixes: URC_PREFIXES,
    parse_urc,
    ussd: UssdSpec::PLAIN_FIRST,
};

/// Lines no 3GPP spec defines that more than one vendor prints: `RDY` (Quectel, SIMCom),
/// `^SYSSTART` (Cinterion and kin), `+PACSP` (Quectel, SIMCom).
const URC_PREFIXES: &[&str] = &["RDY", "^SYSSTART", "+PACSP"];

fn parse_urc(line: &str) -> Option<Urc> {
    // Huawei repeats ^BOOT periodically as chatter; only these mean the modem restarted.
    if line == "RDY" || line.starts_with("^SYSSTART") {
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

    #[test]
    fn boot_banners() {
        assert_eq!(parse_urc("RDY"), Some(Urc::Boot { line: "RDY".into() }));
        assert_eq!(
            urc::parse("^SYSSTART", None),
            Urc::Boot {
                line: "^SYSSTART".into()
            }
        );
        // +PACSP is taken out of a response but means nothing to the agent.
        assert!(urc::looks_unsolicited("+PACSP1"));
        assert_eq!(urc::parse("+PACSP1", None), Urc::Other("+PACSP1".into()));
        assert_eq!(parse_urc("RDY2"), None);
    }
}
