//! USSD on the channel: one exchange at a time (the channel owns the port, so it never runs
//! between the parts of an SMS send), the periodic balance check and the `balance-low` alarm.

use gsmgw_drivers::ussd::session::{self, Exchange, Request, UssdFailure};
use gsmgw_drivers::ussd::{DecodeHints, UssdStatus};

use super::*;
use crate::balance::BalanceParser;
use crate::state::BalanceState;

/// A failed balance check is tried again after this long (or the interval, if shorter).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(600);

/// The state of a slot's balance checks.
#[derive(Debug, Default)]
pub(super) struct BalanceCheck {
    /// When the next check is due; None: as soon as the modem is ready.
    next: Option<Instant>,
    /// The parser (built on first use from `balance_regex`).
    parser: Option<BalanceParser>,
    /// A `balance-low` alarm was raised and the balance has not been back above the threshold.
    low_alarmed: bool,
}

impl BalanceCheck {
    /// When the next check is due.
    pub(super) fn next_due(&self, _cfg: &ModemConfig) -> Instant {
        self.next.unwrap_or_else(Instant::now)
    }
}

impl Channel {
    /// Runs one USSD exchange; URCs that came meanwhile are handled afterwards. The second
    /// value is Some when the session must end (the port failed).
    pub(super) async fn ussd(
        &mut self,
        modem: &Modem,
        urcs: &mut mpsc::Receiver<Urc>,
        code: &str,
        replies: &[String],
        timeout: Duration,
    ) -> (Result<Exchange, UssdFailure>, Option<SessionEnd>) {
        let mut deferred = Vec::new();
        let request = Request {
            code,
            replies,
            timeout,
        };
        let spec = modem.dialect().spec().ussd;
        let hints = DecodeHints {
            // The channel sets AT+CSCS="GSM" at bring-up.
            cscs_ucs2: false,
            packed_answers: spec.packed_answers,
        };
        self.pulse.heartbeat().beat();
        let r = session::run(modem.at(), urcs, &mut deferred, &request, &spec, hints).await;
        self.pulse.heartbeat().beat();
        if let Err(UssdFailure::Port(e)) = &r {
            let why = e.to_string();
            return (r, Some(SessionEnd::PortGone(why)));
        }
        // What came in meanwhile (an SMS, a registration change) is handled now.
        for u in deferred {
            match self.on_urc(modem, u).await {
                Ok(()) => {}
                Err(e) if e.is_fatal() => return (r, Some(SessionEnd::PortGone(e.to_string()))),
                Err(e) => {
                    tracing::debug!(slot = self.cfg.slot, error = %e, "URC follow-up failed")
                }
            }
        }
        (r, None)
    }

    /// Asks the operator for the balance, publishes it in the state and raises `balance-low`.
    pub(super) async fn check_balance(
        &mut self,
        modem: &Modem,
        urcs: &mut mpsc::Receiver<Urc>,
    ) -> Option<SessionEnd> {
        let code = self.cfg.balance_ussd.clone()?;
        let interval = Duration::from_secs(self.cfg.balance_interval_secs.max(1));
        let (r, end) = self
            .ussd(modem, urcs, &code, &[], session::DEFAULT_TIMEOUT)
            .await;
        let answer = match r {
            Ok(x) => x.last().filter(|s| s.status != UssdStatus::Menu).cloned(),
            Err(e) => {
                tracing::warn!(slot = self.cfg.slot, %code, error = %e, "balance check failed");
                None
            }
        };
        let Some(step) = answer else {
            self.balance.next = Some(Instant::now() + interval.min(RETRY_AFTER_FAILURE));
            return end;
        };
        self.balance.next = Some(Instant::now() + interval);
        self.record_balance(&step.text).await;
        end
    }

    /// Publishes the balance in an answer to the balance code and raises `balance-low` when it
    /// dropped below the threshold. Returns what was read.
    pub(super) async fn record_balance(&mut self, text: &str) -> Option<crate::balance::Balance> {
        let parsed = self.read_balance(text);
        if parsed.is_none() {
            tracing::warn!(slot = self.cfg.slot, text = %gsmgw_drivers::redact::printable(text), "balance answer not understood (set balance_regex?)");
        }
        let state = BalanceState {
            amount: parsed.as_ref().map(|b| b.amount),
            currency: parsed.as_ref().and_then(|b| b.currency.clone()),
            checked_at: crate::clock::now_rfc3339(),
            text: text.to_string(),
        };
        self.update(|s| s.balance = Some(state));
        if let (Some(b), Some(low)) = (parsed.clone(), self.cfg.balance_low) {
            if b.amount < low && !self.balance.low_alarmed {
                self.balance.low_alarmed = true;
                let currency = b.currency.map(|c| format!(" {c}")).unwrap_or_default();
                let message = format!(
                    "slot {}: balance {:.2}{currency} is below {low:.2}",
                    self.cfg.slot, b.amount
                );
                self.ctx
                    .sink
                    .alarm("balance-low", &message, Some(self.cfg.slot))
                    .await;
            } else if b.amount >= low {
                self.balance.low_alarmed = false;
            }
        }
        parsed
    }

    /// The balance in an operator's answer, by `balance_regex` or the tables for the SIM's
    /// operator (MCC-MNC from the IMSI, else the serving network).
    pub(super) fn read_balance(&mut self, text: &str) -> Option<crate::balance::Balance> {
        if self.balance.parser.is_none() {
            match BalanceParser::new(self.cfg.balance_regex.as_deref()) {
                Ok(p) => self.balance.parser = Some(p),
                Err(e) => {
                    // `config check` refuses such a regex; a config written around it falls
                    // back to the built-in tables.
                    tracing::warn!(slot = self.cfg.slot, error = %e, "balance_regex ignored");
                    self.balance.parser = BalanceParser::new(None).ok();
                }
            }
        }
        let operator = {
            let s = self.tx.borrow();
            if s.identity.imsi.len() >= 5 {
                s.identity.imsi.get(..5).map(str::to_string)
            } else {
                Some(s.operator_numeric.clone())
            }
        };
        self.balance
            .parser
            .as_ref()
            .and_then(|p| p.parse(text, operator.as_deref()))
    }

    /// A `+CUSD` outside an exchange: the network sent it by itself (or it answers an
    /// exchange that already timed out). Published as `event/ussd`; a menu is closed, since
    /// nobody can answer it.
    pub(super) async fn network_ussd(&mut self, modem: &Modem, m: u8, raw: &str, dcs: Option<u32>) {
        let spec = modem.dialect().spec().ussd;
        let decoded = gsmgw_drivers::ussd::decode(
            raw,
            dcs,
            DecodeHints {
                cscs_ucs2: false,
                packed_answers: spec.packed_answers,
            },
        );
        let status = UssdStatus::from_m(m);
        if status == UssdStatus::Menu {
            if let Err(e) = modem
                .at()
                .send(Command::new(gsmgw_drivers::ussd::CANCEL_COMMAND))
                .await
            {
                tracing::debug!(slot = self.cfg.slot, error = %e, "AT+CUSD=2 after a network menu");
            }
        }
        if decoded.text.is_empty() && status == UssdStatus::Done {
            // The empty `+CUSD: 0,""` some firmwares print: nothing to tell.
            return;
        }
        let body = NetworkUssd {
            slot: self.cfg.slot,
            status,
            text: &decoded.text,
            dcs,
            network_initiated: true,
        };
        let body = serde_json::to_value(&body).unwrap_or_default();
        if let Err(e) = self
            .ctx
            .sink
            .emit(
                crate::proto::EventType::Ussd,
                crate::store::EventClass::Critical,
                body,
            )
            .await
        {
            tracing::warn!(slot = self.cfg.slot, error = %e, "USSD event not stored");
        }
    }
}

/// The body of `event/ussd`.
#[derive(serde::Serialize)]
struct NetworkUssd<'a> {
    slot: u16,
    status: UssdStatus,
    text: &'a str,
    dcs: Option<u32>,
    network_initiated: bool,
}
