//! What a dialect is — data plus behaviour hooks ([`DialectSpec`]) — and what every dialect
//! shares: naming, parsing its name, detecting it, typing vendor URC lines.

use serde::{Serialize, Serializer};

use super::{DETECTION, Dialect};
use crate::at::{EngineConfig, Urc, VendorUrcs};
use crate::ussd::UssdSpec;

/// What differs between vendors: data, and hooks for the vendor's own lines.
#[derive(Debug, Clone, Copy)]
pub struct DialectSpec {
    /// The dialect's name as used in config (`quectel`...).
    pub name: &'static str,
    /// Commands that read the ICCID with their answer prefix, tried in order.
    pub iccid_commands: &'static [(&'static str, &'static str)],
    /// Vendor words that end a command as an error.
    pub vendor_errors: &'static [&'static str],
    /// Extra init commands, best effort.
    pub init: &'static [&'static str],
    /// How the modem's PCM voice port is switched on.
    pub voice: VoiceSpec,
    /// Beginnings of the vendor's own unsolicited lines (so that one arriving inside a
    /// command's response is taken out of it).
    pub urc_prefixes: &'static [&'static str],
    /// Types one of the vendor's own unsolicited lines; None when the line is not the vendor's
    /// (or means nothing the agent acts on).
    pub parse_urc: fn(&str) -> Option<Urc>,
    /// How the firmware takes USSD requests and prints answers.
    pub ussd: UssdSpec,
}

/// When a dialect's voice-port command must be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceWhen {
    /// Before ATD/ATA (Quectel AT+QPCMV: the port must be on when the call starts).
    BeforeCall,
    /// Once ATD/ATA was accepted, while the call is set up (Huawei AT^DDSETEX=2).
    AfterDialOrAnswer,
    /// Only after the call is connected (SIMCom AT+CPCMREG=1).
    AfterConnect,
}

/// The voice port's commands in one dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoiceSpec {
    /// The command that routes call audio to the PCM port; None when audio flows without one.
    pub enable: Option<&'static str>,
    /// When `enable` must be sent.
    pub when: VoiceWhen,
    /// The command that switches it off after the call, if any.
    pub disable: Option<&'static str>,
    /// The command that turns on DTMF detection URCs, if the dialect needs one.
    pub dtmf_detect: Option<&'static str>,
    /// False when the firmware has no PCM voice port the host can open (SIM800/SIM900: analog
    /// audio pins only): calls can be dialled and answered, never bridged to SIP.
    pub pcm_port: bool,
}

impl VoiceSpec {
    /// A modem without a PCM voice port: nothing to switch, no DTMF detection command.
    pub const NO_PCM_PORT: VoiceSpec = VoiceSpec {
        enable: None,
        when: VoiceWhen::BeforeCall,
        disable: None,
        dtmf_detect: None,
        pcm_port: false,
    };
}

impl Dialect {
    /// The name as in config.
    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// Picks the dialect from AT+CGMI / AT+CGMM answers.
    pub fn detect(manufacturer: &str, model: &str) -> Dialect {
        Dialect::detect_text(&format!("{manufacturer} {model}"))
    }

    /// Picks the dialect from any identity text (CGMI/CGMM answers, an ATI answer) with the
    /// [`DETECTION`] table.
    pub fn detect_text(identity: &str) -> Dialect {
        let m = identity.to_ascii_lowercase();
        DETECTION
            .iter()
            .find(|(word, _)| m.contains(word))
            .map_or(Dialect::Generic, |(_, d)| *d)
    }

    /// True when `line` begins one of the vendors' own unsolicited lines. The engine asks every
    /// dialect: it runs before the modem's dialect is known, and vendors' lines do not overlap.
    pub fn is_vendor_urc(line: &str) -> bool {
        Dialect::ALL
            .iter()
            .any(|d| d.spec().urc_prefixes.iter().any(|p| line.starts_with(p)))
    }

    /// Types a vendor's own unsolicited line with the dialect whose line it is.
    pub fn parse_vendor_urc(line: &str) -> Option<Urc> {
        Dialect::ALL.iter().find_map(|d| (d.spec().parse_urc)(line))
    }

    /// The vendor error words of every dialect (the engine runs before the dialect is known).
    pub fn all_vendor_errors() -> impl Iterator<Item = &'static str> {
        Dialect::ALL
            .iter()
            .flat_map(|d| d.spec().vendor_errors.iter().copied())
    }
}

/// Every dialect's own unsolicited lines, as the AT engine's hook (it runs before the modem's
/// dialect is known, and vendors' lines do not overlap).
pub const VENDOR_URCS: VendorUrcs = VendorUrcs {
    is_urc: Dialect::is_vendor_urc,
    parse: Dialect::parse_vendor_urc,
};

/// Engine settings for a modem: every dialect's error words and unsolicited lines.
pub fn engine_config() -> EngineConfig {
    EngineConfig {
        vendor_errors: Dialect::all_vendor_errors().map(String::from).collect(),
        vendor_urcs: VENDOR_URCS,
        ..EngineConfig::standard()
    }
}

/// `urc::parse` / `urc::looks_unsolicited` with every dialect's lines, for the dialect files'
/// tests.
#[cfg(test)]
pub(super) mod urc {
    use crate::at::Urc;

    pub(crate) fn parse(line: &str, pdu: Option<&str>) -> Urc {
        super::VENDOR_URCS.parse(line, pdu)
    }

    pub(crate) fn looks_unsolicited(line: &str) -> bool {
        super::VENDOR_URCS.looks_unsolicited(line)
    }
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Dialect {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl std::str::FromStr for Dialect {
    type Err = String;
    /// A dialect by its name, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        Dialect::ALL
            .iter()
            .copied()
            .find(|d| d.as_str() == lower)
            .ok_or_else(|| {
                let names: Vec<&str> = Dialect::ALL.iter().map(|d| d.as_str()).collect();
                format!("unknown dialect {lower:?} ({})", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_dialects() {
        assert_eq!(Dialect::detect("Quectel", "EC25"), Dialect::Quectel);
        assert_eq!(
            Dialect::detect("SIMCOM INCORPORATED", "SIMCOM_SIM7600E"),
            Dialect::Simcom
        );
        assert_eq!(Dialect::detect("huawei", "E173"), Dialect::Huawei);
        assert_eq!(Dialect::detect("Telit", "LE910"), Dialect::Telit);
        assert_eq!(
            Dialect::detect("SIMCOM_Ltd", "SIMCOM_SIM800L"),
            Dialect::Simcom2g
        );
        assert_eq!(Dialect::detect("Cinterion", "EHS6"), Dialect::Generic);
    }

    #[test]
    fn detection_table_rows() {
        // Every row is found from the identities its vendor prints (CGMI+CGMM, and ATI's
        // "Manufacturer:" lines), in any case.
        for (identity, want) in [
            ("Quectel EC25", Dialect::Quectel),
            ("QUECTEL EG91", Dialect::Quectel),
            ("SIMCOM INCORPORATED SIMCOM_SIM7600E", Dialect::Simcom),
            (
                "Manufacturer: SIMCOM INCORPORATED\nModel: SIMCOM_SIM7000E",
                Dialect::Simcom,
            ),
            (
                "Manufacturer: SIMCOM INCORPORATED\nModel: SIMCOM_SIM800",
                Dialect::Simcom2g,
            ),
            ("SIMCOM_Ltd SIMCOM_SIM800L", Dialect::Simcom2g),
            ("SIM800 R14.18", Dialect::Simcom2g),
            ("SIMCOM_Ltd SIMCOM_SIM900", Dialect::Simcom2g),
            ("SIMCOM_Ltd SIMCOM_SIM808", Dialect::Simcom2g),
            ("huawei E3372", Dialect::Huawei),
            ("Manufacturer: huawei\nModel: E173", Dialect::Huawei),
            ("ZTE CORPORATION MF626", Dialect::Zte),
            ("ZTEWelink ME3630", Dialect::Zte),
            ("Telit LE910", Dialect::Telit),
            ("Telit GE910-QUAD", Dialect::Telit),
            ("u-blox SARA-U201", Dialect::Ublox),
            ("u-blox LISA-U200", Dialect::Ublox),
            ("Sierra Wireless, Incorporated MC7710", Dialect::Sierra),
            ("Fibocom L610", Dialect::Fibocom),
            ("Fibocom Wireless Inc. FM150-AE", Dialect::Fibocom),
            ("Cinterion EHS6", Dialect::Generic),
            ("", Dialect::Generic),
        ] {
            assert_eq!(Dialect::detect_text(identity), want, "{identity:?}");
        }
        // Each row names a dialect that is not the fallback, and no dialect has two rows that
        // could disagree.
        for (word, d) in DETECTION {
            assert_ne!(*d, Dialect::Generic, "{word}");
            assert_eq!(Dialect::detect_text(word), *d, "{word}");
            assert_eq!(*word, word.to_ascii_lowercase(), "rows are lower-case");
        }
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for d in Dialect::ALL {
            assert_eq!(d.as_str().parse::<Dialect>(), Ok(*d));
            assert_eq!(d.as_str().to_ascii_uppercase().parse::<Dialect>(), Ok(*d));
            assert_eq!(d.to_string(), d.as_str());
        }
        assert_eq!(
            "Nokia".parse::<Dialect>(),
            Err(
                "unknown dialect \"nokia\" (generic, quectel, simcom, huawei, zte, simcom2g, \
                 telit, ublox, sierra, fibocom)"
                    .to_string()
            )
        );
        assert_eq!(Dialect::default(), Dialect::Generic);
    }

    #[test]
    fn vendor_lines_are_typed_whatever_the_dialect() {
        assert!(matches!(
            Dialect::parse_vendor_urc("^RSSI: 17"),
            Some(Urc::Signal { .. })
        ));
        assert_eq!(
            Dialect::parse_vendor_urc("+QTONEDET: 53"),
            Some(Urc::Dtmf { digit: '5' })
        );
        assert!(Dialect::is_vendor_urc("VOICE CALL: BEGIN"));
        assert!(!Dialect::is_vendor_urc("+CMTI: \"SM\",1"));
        assert_eq!(Dialect::parse_vendor_urc("+CMTI: \"SM\",1"), None);
        assert_eq!(
            Dialect::all_vendor_errors().collect::<Vec<_>>(),
            ["COMMAND NOT SUPPORT", "TOO MANY PARAMETERS"]
        );
        assert_eq!(
            engine_config().vendor_errors,
            ["COMMAND NOT SUPPORT", "TOO MANY PARAMETERS"]
        );
    }

    /// The vendor lines at/urc.rs's own test typed while the AT layer still knew the dialects:
    /// the engine's hook types them the same.
    #[test]
    fn vendor_urcs_through_the_engine_hook() {
        let parse = |l: &str, pdu: Option<&str>| engine_config().vendor_urcs.parse(l, pdu);
        assert!(matches!(parse("^RSSI: 17", None), Urc::Signal { .. }));
        assert_eq!(parse("+QTONEDET: 53", None), Urc::Dtmf { digit: '5' });
        assert_eq!(parse("+RXDTMF: #", None), Urc::Dtmf { digit: '#' });
        assert_eq!(parse("^DDTMF: 7", None), Urc::Dtmf { digit: '7' });
        assert_eq!(
            parse("^CEND:1,0,104,17", None),
            Urc::CallCleared { cause: Some(17) }
        );
        assert!(matches!(
            parse("VOICE CALL: BEGIN", None),
            Urc::CallConnected { .. }
        ));
        assert_eq!(
            parse("VOICE CALL: END: 000012", None),
            Urc::CallCleared { cause: None }
        );
        assert_eq!(
            parse("+CMTI: \"SM\",3", None),
            Urc::NewMessage {
                storage: "SM".into(),
                index: 3
            }
        );
    }
}
