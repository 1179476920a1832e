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
            if s.imsi.len() >= 5 {
                s.imsi.get(..5).map(str::to_string)
            } else {
                Some(s.operator_numeric.clone())
            }
        };
        let parsed = self
            .balance
            .parser
            .as_ref()
            .and_then(|p| p.parse(&step.text, operator.as_deref()));
        if parsed.is_none() {
            tracing::warn!(slot = self.cfg.slot, text = %gsmgw_drivers::redact::printable(&step.text), "balance answer not understood (set balance_regex?)");
        }
        let state = BalanceState {
            amount: parsed.as_ref().map(|b| b.amount),
            currency: parsed.as_ref().and_then(|b| b.currency.clone()),
            checked_at: crate::clock::now_rfc3339(),
            text: step.text.clone(),
        };
        self.update(|s| s.balance = Some(state));
        if let (Some(b), Some(low)) = (parsed, self.cfg.balance_low) {
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
        end
    }
}
