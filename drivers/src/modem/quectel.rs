//! Quectel (EC2x, EG9x, UC20, M95...): AT+QCCID, `+QIND` URCs.

use super::{DialectSpec, VoiceSpec, VoiceWhen};

/// Quectel modems.
pub const SPEC: DialectSpec = DialectSpec {
    name: "quectel",
    iccid_commands: &[("AT+QCCID", "+QCCID:"), ("AT+CCID", "+CCID:")],
    vendor_errors: &[],
    // Report SMS storage and "SMS DONE" through +QIND so init can wait for it.
    init: &["AT+QINDCFG=\"smsincoming\",1"],
    voice: VoiceSpec {
        enable: Some("AT+QPCMV=1,0"),
        when: VoiceWhen::BeforeCall,
        disable: Some("AT+QPCMV=0"),
        dtmf_detect: Some("AT+QTONEDET=1"),
    },
};
