//! Huawei (E173, E1550, E3372 in stick mode...): AT^ICCID?, `^RSSI`/`^MODE` URC chatter, the
//! `COMMAND NOT SUPPORT` error word.

use super::{DialectSpec, VoiceSpec, VoiceWhen};

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
    },
};
