//! SIMCom (SIM800, SIM7600...): AT+CICCID on LTE models, bare AT+CCID on 2G ones.

use super::{DialectSpec, VoiceSpec, VoiceWhen};

/// SIMCom modems.
pub const SPEC: DialectSpec = DialectSpec {
    name: "simcom",
    iccid_commands: &[("AT+CICCID", "+ICCID:"), ("AT+CCID", "+CCID:")],
    vendor_errors: &[],
    init: &[],
    voice: VoiceSpec {
        enable: Some("AT+CPCMREG=1"),
        when: VoiceWhen::AfterConnect,
        disable: Some("AT+CPCMREG=0"),
        dtmf_detect: Some("AT+DDET=1"),
    },
};
