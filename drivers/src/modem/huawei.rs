//! Huawei (E173, E1550, E3372 in stick mode...): AT^ICCID?, `^RSSI`/`^MODE` URC chatter, `^CONN`
//! / `^CEND` call progress, `^DDTMF`, the `COMMAND NOT SUPPORT` error word.

use crate::ussd::UssdSpec;
use super::{DialectSpec, VoiceSpec, VoiceWhen};
use crate::at::Urc;
use crate::at::fields::{parse_fields, unquote};
use crate::at::urc::{dtmf, rest};

/// Huawei modems.
pub const SPEC: DialectSpec = DialectSpec {
    name: "huawei",
    iccid_commands: &[
        ("AT^ICCID?", "^ICCID:"),
        ("AT+CRSM=176,12258,0,0,10", "+CRSM:"),
    ],
    vendor_errors: &["COMMAND NOT SUPPORT", "TOO MANY PARAMETERS"],
    // Silence the periodic ^RSSI/^MODE/^DSFLOWRPT reports; the health check polls instead.
    init: &["AT^CURC=0"],
    voice: VoiceSpec {
        enable: Some("AT^DDSETEX=2"),
        when: VoiceWhen::AfterDialOrAnswer,
        disable: None,
        dtmf_detect: None,
        pcm_port: true,
    },
    urc_prefixes: URC_PREFIXES,
    parse_urc,
    ussd: UssdSpec::PACKED_FIRST,
};

/// Huawei's own unsolicited lines.
const URC_PREFIXES: &[&str] = &[
    "^RSSI:",
    "^HCSQ:",
    "^BOOT:",
    "^MODE:",
    "^SRVST:",
    "^SIMST:",
    "^ORIG:",
    "^CONF:",
    "^CONN:",
    "^CEND:",
    "^DDTMF:",
    "^DSFLOWRPT:",
];

fn parse_urc(line: &str) -> Option<Urc> {
    // ^SIMST: <sim_state>: 255 = no card (Huawei MU709/ME909 AT manual); 1 = a valid card.
    if line.starts_with("^SIMST:") {
        let code = match rest(line, "^SIMST:").split(',').next().map(str::trim) {
            Some("255") => "NOT INSERTED",
            Some("1") => "INSERTED",
            _ => return Some(Urc::Other(line.to_string())),
        };
        return Some(Urc::SimState { code: code.into() });
    }
    if line.starts_with("^RSSI:") || line.starts_with("^HCSQ:") {
        return Some(Urc::Signal {
            line: line.to_string(),
        });
    }
    if line.starts_with("^CONN:") {
        return Some(Urc::CallConnected {
            line: line.to_string(),
        });
    }
    if line.starts_with("^CEND:") {
        // ^CEND:<idx>,<duration>,<end_status>,<cc_cause>
        let f = parse_fields(rest(line, "^CEND:"));
        return Some(Urc::CallCleared {
            cause: f.get(3).and_then(|s| s.trim().parse().ok()),
        });
    }
    if line.starts_with("^DDTMF:") {
        let v = unquote(rest(line, "^DDTMF:"));
        return Some(dtmf(line, v.chars().next()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modem::dialect::urc;

    #[test]
    fn huawei_lines() {
        assert!(matches!(parse_urc("^RSSI: 17"), Some(Urc::Signal { .. })));
        assert!(matches!(
            parse_urc("^HCSQ:\"LTE\",50,40,120,30"),
            Some(Urc::Signal { .. })
        ));
        assert!(matches!(
            parse_urc("^CONN:1,0"),
            Some(Urc::CallConnected { .. })
        ));
        assert_eq!(
            parse_urc("^CEND:1,0,104,17"),
            Some(Urc::CallCleared { cause: Some(17) })
        );
        assert_eq!(
            parse_urc("^CEND:1"),
            Some(Urc::CallCleared { cause: None })
        );
        assert_eq!(parse_urc("^DDTMF: 7"), Some(Urc::Dtmf { digit: '7' }));
        assert_eq!(
            parse_urc("^SIMST: 255"),
            Some(Urc::SimState {
                code: "NOT INSERTED".into()
            })
        );
        assert_eq!(
            parse_urc("^SIMST: 1,0"),
            Some(Urc::SimState {
                code: "INSERTED".into()
            })
        );
        assert_eq!(parse_urc("^DDTMF: z"), Some(Urc::Other("^DDTMF: z".into())));
        // Chatter: taken out of responses, not acted on; ^BOOT is no restart.
        for l in [
            "^BOOT:20841248,0,0,0,72",
            "^MODE:5,4",
            "^ORIG:1,0",
            "^CONF:1",
            "^DSFLOWRPT:00000001,0,0",
        ] {
            assert_eq!(parse_urc(l), None, "{l}");
            assert!(urc::looks_unsolicited(l), "{l}");
            assert_eq!(urc::parse(l, None), Urc::Other(l.into()));
        }
        assert_eq!(urc::parse("^CEND:1,0,104,16", None), Urc::CallCleared { cause: Some(16) });
    }
}
