//! Unsolicited result codes: recognising them among response lines and typing them.
//!
//! Only 27.007/27.005 lines are known here. Vendors' own lines come in through a
//! [`VendorUrcs`] hook in the engine's config, which the modem layer supplies
//! (`crate::modem::engine_config`): the AT layer knows nothing of dialects.

use super::fields::{parse_fields, unquote};

/// An unsolicited result code as the engine hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Urc {
    /// `RING` or `+CRING: <type>`.
    Ring,
    /// `+CLIP: "<number>",<type>,...` — the caller's number (empty when withheld).
    Clip {
        /// The caller's number as the network gave it.
        number: String,
    },
    /// `+CMTI: "<mem>",<index>` — a new SMS stored.
    NewMessage {
        /// Storage name (SM, ME, MT, SR...).
        storage: String,
        /// Index in that storage.
        index: u32,
    },
    /// `+CDSI: "<mem>",<index>` — a status report stored.
    NewReport {
        /// Storage name.
        storage: String,
        /// Index in that storage.
        index: u32,
    },
    /// `+CMT: [<alpha>],<len>` followed by the PDU line — an SMS routed directly.
    DirectMessage {
        /// The PDU in hex, SMSC field included.
        pdu: String,
    },
    /// `+CDS: <len>` followed by the PDU line — a status report routed directly.
    DirectReport {
        /// The PDU in hex, SMSC field included.
        pdu: String,
    },
    /// `+CREG` / `+CGREG` / `+CEREG` registration change.
    Registration {
        /// Which domain: "CREG", "CGREG" or "CEREG".
        domain: &'static str,
        /// 27.007 `<stat>`.
        stat: u8,
    },
    /// `+CUSD: <m>[,"<str>",<dcs>]`.
    Ussd {
        /// 0 no further action, 1 further action required, 2 terminated by network ...
        m: u8,
        /// The text as the modem printed it (hex when CSCS is UCS2).
        text: String,
        /// The data coding scheme, when given.
        dcs: Option<u32>,
    },
    /// A call ended: `NO CARRIER`, `BUSY`, `NO ANSWER` outside a dial command.
    CallEnded {
        /// The word the modem used.
        reason: String,
    },
    /// Signal report (vendor forms: `^RSSI:`, `+QIND: "csq"`, `+CSQ:` unsolicited).
    Signal {
        /// The raw line.
        line: String,
    },
    /// Modem (re)started: `RDY` (Quectel, SIMCom), `^SYSSTART`.
    Boot {
        /// The raw line.
        line: String,
    },
    /// `+CPIN: <code>` unsolicited (SIM state change).
    SimState {
        /// READY, SIM PIN, NOT INSERTED ...
        code: String,
    },
    /// The call was connected (Huawei `^CONN:`, SIMCom `VOICE CALL: BEGIN`, `+COLP:`).
    CallConnected {
        /// The raw line.
        line: String,
    },
    /// A call was cleared with vendor detail (Huawei `^CEND:<idx>,<dur>,<end>,<cc_cause>`,
    /// SIMCom `VOICE CALL: END: <hhmmss>`); a `NO CARRIER`/`BUSY` may follow or not.
    CallCleared {
        /// The 24.008 call-control cause when the modem gave one (16 normal, 17 busy, 19 no
        /// answer...).
        cause: Option<u16>,
    },
    /// A DTMF digit the far end sent (Quectel `+QTONEDET: <ascii>`, SIMCom `+RXDTMF: <d>`,
    /// Huawei `^DDTMF: <d>`).
    Dtmf {
        /// 0-9, *, #, A-D.
        digit: char,
    },
    /// A service became usable after start or a SIM change (SIMCom 2G `SMS Ready` /
    /// `Call Ready`, Telit `#QSS: 3`, u-blox `+PBREADY`...).
    Ready {
        /// Which service.
        service: Service,
    },
    /// Anything else the modem said unprompted.
    Other(String),
}

/// A modem service whose readiness vendors announce with their own lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// SMS can be sent, read and received.
    Sms,
    /// Voice calls can be made and taken.
    Calls,
    /// The SIM phonebook was read.
    Phonebook,
}

/// Prefixes that begin an unsolicited line on 27.007/27.005 modems. Vendors' own lines are in
/// their dialect files (`crate::modem::<vendor>`).
const URC_PREFIXES: &[&str] = &[
    "RING",
    "+CRING:",
    "+CLIP:",
    "+CMTI:",
    "+CDSI:",
    "+CMT:",
    "+CDS:",
    "+CBM:",
    "+CREG:",
    "+CGREG:",
    "+CEREG:",
    "+CUSD:",
    "+CPIN:",
    "+CSQ:",
    "+CIEV:",
    "+CCWA:",
    "+COLP:",
    "+CTZV:",
    "+CTZE:",
    "+CPINR:",
    "NO CARRIER",
    "BUSY",
    "NO ANSWER",
];

/// Lines outside 27.007/27.005 that the engine's user knows (vendors' own unsolicited lines),
/// as hooks: the engine calls them, the modem layer fills them in.
#[derive(Debug, Clone, Copy)]
pub struct VendorUrcs {
    /// True when `line` begins one of the vendor's unsolicited lines (so that one arriving
    /// inside a command's response is taken out of it).
    pub is_urc: fn(&str) -> bool,
    /// Types a vendor line; None when it is no vendor line (or one nothing acts on).
    pub parse: fn(&str) -> Option<Urc>,
}

fn no_vendor_urc(_: &str) -> bool {
    false
}

fn no_vendor_parse(_: &str) -> Option<Urc> {
    None
}

impl VendorUrcs {
    /// No vendor lines: 27.007/27.005 only.
    pub const NONE: VendorUrcs = VendorUrcs {
        is_urc: no_vendor_urc,
        parse: no_vendor_parse,
    };

    /// True when `line` looks like an unsolicited result code, standard or vendor.
    pub fn looks_unsolicited(&self, line: &str) -> bool {
        URC_PREFIXES.iter().any(|p| line.starts_with(p)) || (self.is_urc)(line)
    }

    /// Types an unsolicited line. `pdu` is the second line for `+CMT:`/`+CDS:`.
    pub fn parse(&self, line: &str, pdu: Option<&str>) -> Urc {
        parse_with(line, pdu, self)
    }
}

impl Default for VendorUrcs {
    fn default() -> Self {
        VendorUrcs::NONE
    }
}

/// True when the URC header announces a second line carrying a PDU (`+CMT:`, `+CDS:`, `+CBM:`).
pub fn has_pdu_line(line: &str) -> bool {
    line.starts_with("+CMT:") || line.starts_with("+CDS:") || line.starts_with("+CBM:")
}

/// Whether `line` can be the PDU line after a `+CMT:`/`+CDS:`/`+CBM:` header (PDU mode, the
/// only mode the agent uses): hex digits, an even number of them. Anything else — another URC,
/// a final result — means the modem left the PDU line out.
pub fn looks_like_pdu(line: &str) -> bool {
    let l = line.trim();
    !l.is_empty() && l.len() % 2 == 0 && l.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Types an unsolicited line: the 27.007/27.005 ones here, the rest with `vendor`.
fn parse_with(line: &str, pdu: Option<&str>, vendor: &VendorUrcs) -> Urc {
    let rest = |p: &str| line.get(p.len()..).unwrap_or("").trim();
    if line == "RING" || line.starts_with("+CRING:") {
        return Urc::Ring;
    }
    if line.starts_with("+CLIP:") {
        let f = parse_fields(rest("+CLIP:"));
        return Urc::Clip {
            number: f.first().map(|s| unquote(s)).unwrap_or_default(),
        };
    }
    for (prefix, report) in [("+CMTI:", false), ("+CDSI:", true)] {
        if line.starts_with(prefix) {
            let f = parse_fields(rest(prefix));
            let storage = f.first().map(|s| unquote(s)).unwrap_or_default();
            if let Some(index) = f.get(1).and_then(|s| s.trim().parse().ok()) {
                return if report {
                    Urc::NewReport { storage, index }
                } else {
                    Urc::NewMessage { storage, index }
                };
            }
            return Urc::Other(line.to_string());
        }
    }
    if line.starts_with("+CMT:") {
        return match pdu {
            Some(p) => Urc::DirectMessage { pdu: p.to_string() },
            None => Urc::Other(line.to_string()),
        };
    }
    if line.starts_with("+CDS:") {
        return match pdu {
            Some(p) => Urc::DirectReport { pdu: p.to_string() },
            None => Urc::Other(line.to_string()),
        };
    }
    for (prefix, domain) in [
        ("+CREG:", "CREG"),
        ("+CGREG:", "CGREG"),
        ("+CEREG:", "CEREG"),
    ] {
        if line.starts_with(prefix) {
            // Unsolicited form: <stat>[,<lac>,<ci>[,<act>]] (no leading <n>).
            let f = parse_fields(rest(prefix));
            if let Some(stat) = f.first().and_then(|s| s.trim().parse().ok()) {
                return Urc::Registration { domain, stat };
            }
            return Urc::Other(line.to_string());
        }
    }
    if line.starts_with("+CUSD:") {
        let f = parse_fields(rest("+CUSD:"));
        let m = f.first().and_then(|s| s.trim().parse().ok()).unwrap_or(2);
        return Urc::Ussd {
            m,
            text: f.get(1).map(|s| unquote(s)).unwrap_or_default(),
            dcs: f.get(2).and_then(|s| s.trim().parse().ok()),
        };
    }
    if line.starts_with("+CPIN:") {
        return Urc::SimState {
            code: rest("+CPIN:").to_string(),
        };
    }
    if line.starts_with("+CSQ:") {
        return Urc::Signal {
            line: line.to_string(),
        };
    }
    if line.starts_with("+COLP:") {
        return Urc::CallConnected {
            line: line.to_string(),
        };
    }
    if line == "NO CARRIER" || line == "BUSY" || line == "NO ANSWER" {
        return Urc::CallEnded {
            reason: line.to_string(),
        };
    }
    // Vendors' own lines (^RSSI, +QIND, VOICE CALL: ...): the hook types them.
    (vendor.parse)(line).unwrap_or_else(|| Urc::Other(line.to_string()))
}

/// A DTMF URC for `digit` when it is a DTMF key (0-9, *, #, A-D); else the line as
/// [`Urc::Other`]. For the dialects' DTMF reports.
pub fn dtmf(line: &str, digit: Option<char>) -> Urc {
    match digit {
        Some(d) if d.is_ascii_digit() || matches!(d, '*' | '#' | 'A'..='D') => {
            Urc::Dtmf { digit: d }
        }
        _ => Urc::Other(line.to_string()),
    }
}

/// What follows `prefix` in `line`, trimmed (empty when the line is only the prefix).
pub fn rest<'a>(line: &'a str, prefix: &str) -> &'a str {
    line.get(prefix.len()..).unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str, pdu: Option<&str>) -> Urc {
        VendorUrcs::NONE.parse(line, pdu)
    }

    #[test]
    fn types_common_urcs() {
        assert_eq!(
            parse("+CMTI: \"SM\",3", None),
            Urc::NewMessage {
                storage: "SM".into(),
                index: 3
            }
        );
        assert_eq!(
            parse("+CDSI: \"SR\",0", None),
            Urc::NewReport {
                storage: "SR".into(),
                index: 0
            }
        );
        assert_eq!(
            parse("+CLIP: \"+380501234567\",145,,,,0", None),
            Urc::Clip {
                number: "+380501234567".into()
            }
        );
        assert_eq!(
            parse("+CREG: 5,\"1A2B\",\"00C3D4E5\"", None),
            Urc::Registration {
                domain: "CREG",
                stat: 5
            }
        );
        assert_eq!(
            parse("+CDS: 25", Some("0006")),
            Urc::DirectReport { pdu: "0006".into() }
        );
        assert!(matches!(
            parse("+CUSD: 0,\"Balance 1\",15", None),
            Urc::Ussd {
                m: 0,
                dcs: Some(15),
                ..
            }
        ));
        // Vendors' lines are typed by the dialect files (crate::modem, whose tests check them
        // through the engine's hook); without a hook they are Other.
        for l in ["^RSSI: 17", "+QTONEDET: 53", "VOICE CALL: BEGIN"] {
            assert_eq!(parse(l, None), Urc::Other(l.into()));
            assert!(!VendorUrcs::NONE.looks_unsolicited(l));
        }
    }

    #[test]
    fn vendor_lines_go_through_the_hook_after_the_standard_ones() {
        let v = VendorUrcs {
            is_urc: |l| l.starts_with("^X"),
            parse: |l| {
                (l.starts_with("^X") || l.starts_with("+CMTI")).then(|| Urc::Signal {
                    line: l.to_string(),
                })
            },
        };
        assert!(v.looks_unsolicited("^X: 1"));
        assert!(v.looks_unsolicited("RING"));
        assert!(!v.looks_unsolicited("^Y: 1"));
        assert_eq!(
            v.parse("^X: 1", None),
            Urc::Signal {
                line: "^X: 1".into()
            }
        );
        // A standard line stays the standard's.
        assert_eq!(
            v.parse("+CMTI: \"SM\",3", None),
            Urc::NewMessage {
                storage: "SM".into(),
                index: 3
            }
        );
        assert_eq!(v.parse("^Y: 1", None), Urc::Other("^Y: 1".into()));
    }

    #[test]
    fn malformed_urcs_do_not_panic() {
        for l in [
            "+CMTI:",
            "+CMTI: \"SM\",x",
            "+CREG:",
            "+CUSD:",
            "+CLIP:",
            "+CMT: 3",
        ] {
            let _ = parse(l, None);
        }
    }

    #[test]
    fn pdu_lines_are_hex_of_even_length() {
        assert!(looks_like_pdu("0791AABB"));
        assert!(looks_like_pdu(" 07911326040000f0 "));
        for not in [
            "",
            "079",
            "+CMTI: \"SM\",3",
            "OK",
            "RING",
            "0791AABG",
            "ERROR",
        ] {
            assert!(!looks_like_pdu(not), "{not:?}");
        }
    }
}
