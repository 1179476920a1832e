//! Recovering a modem that stopped answering: soft reset (AT+CFUN=1,1), then a power cycle
//! through the board, then a pause before starting over.

use super::*;

impl Channel {
    /// Soft reset, then power cycle, then give up for a while. Returns true on shutdown.
    pub(super) async fn recover(&mut self, modem: Modem, path: &str, why: String) -> bool {
        if self.trouble_since.is_none() {
            self.trouble_since = Some(Instant::now());
        }
        self.escalation = self.escalation.saturating_add(1);
        let wait = self.ctx.timings.reset_wait;
        match self.escalation {
            1 => {
                self.set_state(ChannelState::Resetting, Some(format!("{why}; soft reset")));
                self.event("soft-reset", None, Some(why));
                let r = modem
                    .at()
                    .send(Command::new("AT+CFUN=1,1").timeout(Duration::from_secs(3)))
                    .await;
                match &r {
                    Ok(_) => tracing::info!(slot = self.cfg.slot, "soft reset sent (AT+CFUN=1,1)"),
                    // Modems often restart before they answer: not a failure in itself.
                    Err(e) => {
                        tracing::info!(slot = self.cfg.slot, answer = %e, "soft reset sent (AT+CFUN=1,1)")
                    }
                }
                drop(modem);
                // A USB modem's port vanishes while it restarts; wait for that (briefly)
                // so the old port is not reopened.
                self.wait_gone(path, Duration::from_secs(3)).await
                    || self.wait_back(path, wait).await
            }
            2 if self.ctx.power.is_some() => {
                drop(modem);
                self.set_state(ChannelState::Resetting, Some(format!("{why}; power cycle")));
                self.event("power-cycle", None, Some(why));
                if let Some(power) = self.ctx.power.as_mut() {
                    if let Err(e) = power.pulse(tokio::time::sleep).await {
                        tracing::error!(slot = self.cfg.slot, error = %e, "power cycle failed");
                        self.set_state(
                            ChannelState::Degraded,
                            Some(format!("power cycle failed: {e}")),
                        );
                    }
                }
                self.wait_back(path, wait).await
            }
            _ => {
                drop(modem);
                let no_power = self.ctx.power.is_none();
                self.set_state(
                    ChannelState::Degraded,
                    Some(if no_power {
                        format!("{why}; soft reset did not help and no power control is configured")
                    } else {
                        format!("{why}; soft reset and power cycle did not help")
                    }),
                );
                // Try again from the start later.
                self.escalation = 0;
                self.pause(self.ctx.timings.reopen_max * 6).await
            }
        }
    }

    /// Waits until `path` disappears; true on shutdown.
    async fn wait_gone(&mut self, path: &str, max: Duration) -> bool {
        let until = Instant::now() + max;
        while Path::new(path).exists() && Instant::now() < until {
            if self.pause(Duration::from_millis(50)).await {
                return true;
            }
        }
        false
    }

    /// Waits until `path` (or, with an IMEI, any candidate) is there again; true on shutdown.
    async fn wait_back(&mut self, path: &str, max: Duration) -> bool {
        let until = Instant::now() + max;
        while !Path::new(path).exists() && Instant::now() < until {
            if self.cfg.imei.is_some() && !scan_candidates(&self.ctx.port_scan).is_empty() {
                break;
            }
            if self.pause(Duration::from_millis(50)).await {
                return true;
            }
        }
        false
    }
}
