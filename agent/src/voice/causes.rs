//! Cause mapping between GSM (modem words, 24.008 call-control causes) and SIP status codes.

/// Why a call (or one leg) ended, as written in the `call` event's `cause`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Answered and hung up by someone.
    Normal,
    /// The called party was busy.
    Busy,
    /// Nobody answered in time.
    NoAnswer,
    /// The number or the network could not be reached.
    Unreachable,
    /// The called party (or a rule) rejected the call.
    Rejected,
    /// The caller gave up before an answer.
    Cancelled,
    /// No SIM could take the call (none ready, limits reached).
    NoRoute,
    /// Something failed on the way (modem error, SIP timeout...).
    Failed,
    /// The SIP side stopped sending RTP during the call.
    RtpTimeout,
}

impl Cause {
    /// The word in the `call` event.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Normal => "normal",
            Cause::Busy => "busy",
            Cause::NoAnswer => "no-answer",
            Cause::Unreachable => "unreachable",
            Cause::Rejected => "rejected",
            Cause::Cancelled => "cancelled",
            Cause::NoRoute => "no-route",
            Cause::Failed => "failed",
            Cause::RtpTimeout => "rtp-timeout",
        }
    }

    /// The SIP final response for a GSM leg that ended this way before an answer.
    pub fn sip_status(self) -> (u16, &'static str) {
        match self {
            Cause::Busy => (486, "Busy Here"),
            Cause::NoAnswer => (480, "Temporarily Unavailable"),
            Cause::Unreachable => (404, "Not Found"),
            Cause::Rejected => (603, "Decline"),
            Cause::Cancelled => (487, "Request Terminated"),
            Cause::NoRoute | Cause::Failed | Cause::Normal | Cause::RtpTimeout => {
                (503, "Service Unavailable")
            }
        }
    }

    /// The cause for a modem's final word to a dial (BUSY, NO ANSWER, NO CARRIER...).
    pub fn from_modem_word(word: &str) -> Cause {
        match word {
            "BUSY" => Cause::Busy,
            "NO ANSWER" => Cause::NoAnswer,
            "NO DIALTONE" => Cause::Unreachable,
            // NO CARRIER before an answer: the call could not be set up.
            _ => Cause::Unreachable,
        }
    }

    /// The cause for a 24.008 call-control cause (Huawei ^CEND).
    pub fn from_cc_cause(cc: u16) -> Cause {
        match cc {
            17 => Cause::Busy,
            18 | 19 => Cause::NoAnswer,
            21 => Cause::Rejected,
            1 | 3 | 22 | 28 => Cause::Unreachable,
            16 | 31 => Cause::Normal,
            _ => Cause::Unreachable,
        }
    }

    /// The cause for a SIP final error to our INVITE.
    pub fn from_sip(code: u16) -> Cause {
        match code {
            486 | 600 => Cause::Busy,
            408 | 480 => Cause::NoAnswer,
            404 | 484 | 604 => Cause::Unreachable,
            403 | 603 => Cause::Rejected,
            487 => Cause::Cancelled,
            _ => Cause::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_mapping() {
        assert_eq!(Cause::from_modem_word("BUSY").sip_status().0, 486);
        assert_eq!(Cause::from_modem_word("NO ANSWER").sip_status().0, 480);
        assert_eq!(Cause::from_modem_word("NO CARRIER").sip_status().0, 404);
        assert_eq!(Cause::from_cc_cause(17), Cause::Busy);
        assert_eq!(Cause::from_sip(486), Cause::Busy);
        assert_eq!(Cause::from_sip(408), Cause::NoAnswer);
        assert_eq!(Cause::from_sip(503), Cause::Failed);
    }
}
