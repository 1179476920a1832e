//! Voice-call operations: dial, answer, hang up, DTMF, call list, and the dialect's voice port
//! switch (see [`super::VoiceSpec`]).

use std::time::Duration;

use super::{Modem, ModemError, at_err};
use crate::at::fields::{parse_fields, unquote};
use crate::at::{AtError, Command};

/// 27.007 +CLCC `<stat>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStat {
    /// Connected.
    Active,
    /// On hold.
    Held,
    /// Outgoing, network setting up.
    Dialing,
    /// Outgoing, far end ringing.
    Alerting,
    /// Incoming, ringing here.
    Incoming,
    /// Incoming while another call is up.
    Waiting,
}

impl CallStat {
    fn from_code(c: u8) -> Option<CallStat> {
        Some(match c {
            0 => CallStat::Active,
            1 => CallStat::Held,
            2 => CallStat::Dialing,
            3 => CallStat::Alerting,
            4 => CallStat::Incoming,
            5 => CallStat::Waiting,
            _ => return None,
        })
    }
}

/// One line of AT+CLCC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    /// The modem's call index.
    pub idx: u8,
    /// True for an incoming (mobile-terminated) call.
    pub incoming: bool,
    /// The call's state.
    pub stat: CallStat,
    /// The other party's number (may be empty).
    pub number: String,
}

/// Parses AT+CLCC's lines; lines that do not parse are skipped.
pub fn parse_clcc(lines: &[String]) -> Vec<CallInfo> {
    lines
        .iter()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("+CLCC:")?;
            let f = parse_fields(rest.trim());
            let idx = f.first()?.trim().parse().ok()?;
            let incoming = f.get(1)?.trim() == "1";
            let stat = CallStat::from_code(f.get(2)?.trim().parse().ok()?)?;
            // Voice calls only (mode 0).
            if f.get(3).map(|m| m.trim()) != Some("0") {
                return None;
            }
            let number = f.get(5).map(|s| unquote(s)).unwrap_or_default();
            Some(CallInfo {
                idx,
                incoming,
                stat,
                number,
            })
        })
        .collect()
}

/// True when `number` can be dialled (digits, an optional leading +, * and #).
pub fn dialable(number: &str) -> bool {
    let digits = number.strip_prefix('+').unwrap_or(number);
    !digits.is_empty()
        && digits.len() <= 32
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
}

impl Modem {
    /// Call-related settings, best effort: caller id (+CLIP), no extended RING, no +COLP (ATD
    /// then returns at once on every dialect), and the dialect's DTMF detection.
    pub async fn configure_calls(&self) -> Result<(), ModemError> {
        self.at
            .cmd("AT+CLIP=1")
            .await
            .map_err(at_err("AT+CLIP=1"))?;
        for cmd in ["AT+CRC=0", "AT+COLP=0"] {
            if let Err(e) = self.at.cmd(cmd).await {
                tracing::debug!(%cmd, error = %e, "call setting refused");
            }
        }
        if let Some(cmd) = self.dialect.spec().voice.dtmf_detect {
            if let Err(e) = self.at.cmd(cmd).await {
                tracing::debug!(%cmd, error = %e, "DTMF detection not available");
            }
        }
        Ok(())
    }

    /// Starts a voice call. Returns once the modem accepted the dial; progress comes from
    /// URCs and [`Modem::calls`]. BUSY / NO CARRIER / NO ANSWER here are the call's outcome.
    pub async fn dial(&self, number: &str) -> Result<(), ModemError> {
        if !dialable(number) {
            return Err(ModemError::Unexpected {
                command: "ATD".into(),
                answer: format!("not a dialable number: {number:?}"),
            });
        }
        let cmd = format!("ATD{number};");
        self.at
            .send(Command::new(cmd.as_str()).timeout(Duration::from_secs(30)))
            .await
            .map(|_| ())
            .map_err(at_err(&cmd))
    }

    /// Answers the ringing call.
    pub async fn answer(&self) -> Result<(), ModemError> {
        self.at
            .send(Command::new("ATA").timeout(Duration::from_secs(20)))
            .await
            .map(|_| ())
            .map_err(at_err("ATA"))
    }

    /// Hangs up every call (AT+CHUP, ATH where that is refused).
    pub async fn hang_up(&self) -> Result<(), ModemError> {
        match self.at.cmd("AT+CHUP").await {
            Ok(_) => Ok(()),
            Err(e) if e.is_fatal() => Err(at_err("AT+CHUP")(e)),
            Err(_) => self.at.cmd("ATH").await.map(|_| ()).map_err(at_err("ATH")),
        }
    }

    /// Sends one DTMF digit into the call (AT+VTS).
    pub async fn send_dtmf(&self, digit: char) -> Result<(), ModemError> {
        let cmd = format!("AT+VTS={digit}");
        self.at.cmd(&cmd).await.map(|_| ()).map_err(at_err(&cmd))
    }

    /// The current calls (AT+CLCC).
    pub async fn calls(&self) -> Result<Vec<CallInfo>, ModemError> {
        let r = self.at.cmd("AT+CLCC").await.map_err(at_err("AT+CLCC"))?;
        Ok(parse_clcc(&r.lines))
    }

    /// Switches call audio to the PCM voice port (the dialect's command; nothing to do on
    /// modems that need none).
    pub async fn voice_port_on(&self) -> Result<(), ModemError> {
        match self.dialect.spec().voice.enable {
            Some(cmd) => self.at.cmd(cmd).await.map(|_| ()).map_err(at_err(cmd)),
            None => Ok(()),
        }
    }

    /// Switches the voice port off after a call, best effort.
    pub async fn voice_port_off(&self) {
        if let Some(cmd) = self.dialect.spec().voice.disable {
            match self.at.cmd(cmd).await {
                Ok(_) | Err(AtError::Cme(_)) | Err(AtError::Error) => {}
                Err(e) => tracing::debug!(%cmd, error = %e, "voice port off failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clcc_lines() {
        let lines = vec![
            "+CLCC: 1,1,4,0,0,\"+380501234567\",145".to_string(),
            "+CLCC: 2,0,0,0,0,\"0441234567\",129,\"\"".to_string(),
            "+CLCC: 3,0,0,1,0".to_string(),
            "+CLCC: x".to_string(),
        ];
        let calls = parse_clcc(&lines);
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].stat, CallStat::Incoming);
        assert!(calls[0].incoming);
        assert_eq!(calls[0].number, "+380501234567");
        assert_eq!(calls[1].stat, CallStat::Active);
    }

    #[test]
    fn dialable_numbers() {
        assert!(dialable("+380501234567"));
        assert!(dialable("*101#"));
        assert!(!dialable("12;ATH"));
        assert!(!dialable(""));
        assert!(!dialable("+"));
    }
}
