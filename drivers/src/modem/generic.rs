//! The generic 3GPP 27.007 dialect: what any modem should understand.

use super::{DialectSpec, VoiceSpec, VoiceWhen};

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
    },
};
