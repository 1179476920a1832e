//! A session with an open port: bring-up (sync, identify, SIM, settings), serving requests,
//! URCs, the periodic health check and the SIM sweep.

use super::*;

impl Channel {
    /// Brings the modem up and serves it until the port goes away, the modem goes silent,
    /// or shutdown.
    pub(super) async fn session(
        &mut self,
        mut modem: Modem,
        mut urcs: mpsc::Receiver<Urc>,
    ) -> SessionEnd {
        loop {
            match self.bring_up(&mut modem).await {
                Ok(()) => break,
                Err(BringUp::WrongModem(why)) => return SessionEnd::WrongModem(why),
                Err(BringUp::Modem(e)) if e.is_fatal() => {
                    return SessionEnd::PortGone(e.to_string());
                }
                Err(BringUp::Modem(e)) if is_silence(&e) => {
                    return SessionEnd::Unresponsive(modem, format!("no answer ({e})"));
                }
                Err(BringUp::Modem(e)) => {
                    self.set_state(ChannelState::Degraded, Some(e.to_string()));
                    // A refused PIN or a blocked SIM needs a person, not a retry loop.
                    let wait = match e {
                        ModemError::WrongPin(_) | ModemError::PukRequired => {
                            self.ctx.timings.reopen_max * 6
                        }
                        _ => self.ctx.timings.reopen_max,
                    };
                    if self.drain_urcs_for(&mut urcs, wait).await {
                        return SessionEnd::Shutdown;
                    }
                    if modem.at().is_closed() {
                        return SessionEnd::PortGone("engine stopped".into());
                    }
                }
            }
        }

        // URCs queued during bring-up (boot banners, the registration it caused) are stale:
        // the status was just read, and the sweep below reads every stored message.
        while urcs.try_recv().is_ok() {}
        self.inbox.reset();
        self.sim_out = false;
        self.inbox.imsi = self.tx.borrow().identity.imsi.clone();
        if let Some(end) = self.sweep(&modem).await {
            return end;
        }

        let mut failures = 0u32;
        let mut ticks = 0u64;
        let mut health = tokio::time::interval(self.ctx.timings.health_interval);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        health.tick().await;
        loop {
            tokio::select! {
                _ = self.ctx.shutdown.changed() => return SessionEnd::Shutdown,
                _ = self.pulse.tick() => {}
                req = self.ctx.requests.recv() => {
                    if let Some(req) = req {
                        if let Some(end) = self.serve(&modem, &mut urcs, req).await {
                            return end;
                        }
                    }
                }
                urc = urcs.recv() => match urc {
                    None => return SessionEnd::PortGone("port closed".into()),
                    Some(u) => match self.on_urc(&modem, u).await {
                        Ok(()) => {}
                        Err(e) if e.is_fatal() => return SessionEnd::PortGone(e.to_string()),
                        Err(e) => tracing::debug!(slot = self.cfg.slot, error = %e, "URC follow-up failed"),
                    },
                },
                _ = tokio::time::sleep_until(self.balance.next_due(&self.cfg)), if self.cfg.balance_ussd.is_some() && self.tx.borrow().state == ChannelState::Ready => {
                    if let Some(end) = self.check_balance(&modem, &mut urcs).await {
                        return end;
                    }
                }
                _ = health.tick() => match self.health_check(&modem).await {
                    Ok(()) => {
                        failures = 0;
                        ticks += 1;
                        // A sweep about every minute catches messages whose +CMTI was lost.
                        let every = (60 / self.ctx.timings.health_interval.as_secs().max(1)).max(1);
                        if ticks % every == 0 || self.inbox.sweep_failed {
                            if let Some(end) = self.sweep(&modem).await {
                                return end;
                            }
                        }
                    }
                    Err(e) if e.is_fatal() => return SessionEnd::PortGone(e.to_string()),
                    Err(e) if is_silence(&e) => {
                        failures += 1;
                        if self.trouble_since.is_none() {
                            self.trouble_since = Some(Instant::now());
                        }
                        tracing::warn!(slot = self.cfg.slot, failures, error = %e, "modem did not answer the health check");
                        if failures >= self.ctx.timings.failures_before_reset {
                            return SessionEnd::Unresponsive(modem, format!("no answer to {failures} health checks"));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(slot = self.cfg.slot, error = %e, "health check failed");
                        self.set_state(ChannelState::Degraded, Some(e.to_string()));
                    }
                },
            }
        }
    }

    /// Serves one request; Some(end) when the session must end.
    async fn serve(
        &mut self,
        modem: &Modem,
        urcs: &mut mpsc::Receiver<Urc>,
        req: ChannelRequest,
    ) -> Option<SessionEnd> {
        match req {
            ChannelRequest::Ussd {
                code,
                replies,
                timeout,
                reply,
            } => {
                let (r, end) = self.ussd(modem, urcs, &code, &replies, timeout).await;
                let r = match r {
                    Ok(x) => {
                        let answer = x
                            .last()
                            .filter(|s| s.status != gsmgw_drivers::ussd::UssdStatus::Menu)
                            .map(|s| s.text.clone());
                        // Asked for the balance code by hand: the state shows it too.
                        let balance_code = replies.is_empty()
                            && self.cfg.balance_ussd.as_deref() == Some(code.as_str());
                        let balance = match answer {
                            Some(text) if balance_code => self.record_balance(&text).await,
                            Some(text) => self.read_balance(&text),
                            None => None,
                        };
                        Ok((x, balance))
                    }
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
                end
            }
            ChannelRequest::At {
                command,
                timeout,
                reply,
            } => {
                let r = modem
                    .at()
                    .send(Command::new(command.as_str()).timeout(timeout))
                    .await;
                let fatal = matches!(&r, Err(e) if e.is_fatal());
                let out = match r {
                    Ok(resp) => {
                        let mut lines = resp.lines;
                        lines.push(
                            match resp.final_result {
                                at::Final::Ok => "OK",
                                at::Final::Connect => "CONNECT",
                                at::Final::Implied => "(no final result)",
                            }
                            .to_string(),
                        );
                        Ok(lines)
                    }
                    Err(e) => Err(e.to_string()),
                };
                let _ = reply.send(out);
                fatal.then(|| SessionEnd::PortGone("port closed".into()))
            }
            ChannelRequest::Reset { power, reply } => {
                if power && self.ctx.power.is_none() {
                    let _ = reply.send(Err(super::ResetRefused::NoPowerControl(self.cfg.slot)));
                    return None;
                }
                let _ = reply.send(Ok(()));
                // Recovery steps up from here: 0 → soft reset, 1 → power cycle.
                self.escalation = u8::from(power);
                Some(SessionEnd::Unresponsive(
                    modem.clone(),
                    if power {
                        "power cycle requested by a technician".into()
                    } else {
                        "reset requested by a technician".into()
                    },
                ))
            }
            ChannelRequest::Voice { op, reply } => {
                let r = match &op {
                    VoiceOp::Dial(n) => modem.dial(n).await.map(|_| Vec::new()),
                    VoiceOp::Answer => modem.answer().await.map(|_| Vec::new()),
                    VoiceOp::HangUp => modem.hang_up().await.map(|_| Vec::new()),
                    VoiceOp::Dtmf(d) => modem.send_dtmf(*d).await.map(|_| Vec::new()),
                    VoiceOp::VoiceOn => modem.voice_port_on().await.map(|_| Vec::new()),
                    VoiceOp::VoiceOff => {
                        modem.voice_port_off().await;
                        Ok(Vec::new())
                    }
                    VoiceOp::List => modem.calls().await,
                };
                let fatal = matches!(&r, Err(e) if e.is_fatal());
                let why = r.as_ref().err().map(|e| e.to_string());
                let _ = reply.send(r.map_err(|e| e.to_string()));
                fatal.then(|| SessionEnd::PortGone(why.unwrap_or_default()))
            }
            ChannelRequest::SendSms { parts, reply } => {
                let mut sent = Vec::with_capacity(parts.len());
                for p in &parts {
                    match modem.send_pdu(&p.pdu, p.tpdu_len).await {
                        Ok(mr) => sent.push(mr),
                        Err(error) => {
                            let fatal = error.is_fatal();
                            let why = error.to_string();
                            let _ = reply.send(Err(SendFailure { sent, error }));
                            return fatal.then_some(SessionEnd::PortGone(why));
                        }
                    }
                }
                let _ = reply.send(Ok(sent));
                None
            }
        }
    }

    /// Reads all stored messages; Some(end) when the session must end.
    async fn sweep(&mut self, modem: &Modem) -> Option<SessionEnd> {
        match self.inbox.sweep(modem).await {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(slot = self.cfg.slot, messages = n, "stored messages taken");
                }
                None
            }
            Err(e) => self.inbox_failed(e).await,
        }
    }

    /// What a failed receive means for the session.
    async fn inbox_failed(&mut self, e: InboxError) -> Option<SessionEnd> {
        match e {
            InboxError::Modem(e) if e.is_fatal() => Some(SessionEnd::PortGone(e.to_string())),
            InboxError::Modem(e) if sim_starting(&e) => {
                // +CMS ERROR: 314 / +CME ERROR: 14 "SIM busy": the SIM is still loading its
                // messages after a start; the next sweep reads them.
                tracing::debug!(slot = self.cfg.slot, error = %e, "SIM still starting; messages read at the next sweep");
                None
            }
            InboxError::Modem(e) => {
                tracing::warn!(slot = self.cfg.slot, error = %e, "reading messages failed; retried at the next sweep");
                None
            }
            InboxError::Store(e) => {
                // The message stays on the SIM: nothing is lost, it is taken when the store can.
                let code = if matches!(e, crate::store::StoreError::DiskFull) {
                    "disk-full"
                } else {
                    "storage-full"
                };
                self.ctx
                    .sink
                    .alarm(
                        code,
                        &format!("received SMS left on the SIM: {e}"),
                        Some(self.cfg.slot),
                    )
                    .await;
                None
            }
        }
    }

    /// A liveness probe that a hung modem cannot pass quickly, then the full status.
    async fn health_check(&mut self, modem: &Modem) -> Result<(), ModemError> {
        modem
            .at()
            .send(Command::new("AT").timeout(Duration::from_secs(2)))
            .await
            .map_err(|source| ModemError::At {
                command: "AT".into(),
                source,
            })?;
        self.refresh(modem).await
    }

    /// Waits `d` while still consuming URCs; true if shutdown was requested.
    async fn drain_urcs_for(&mut self, urcs: &mut mpsc::Receiver<Urc>, d: Duration) -> bool {
        let until = Instant::now() + d;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return self.stopping(),
                _ = self.ctx.shutdown.changed() => return true,
                _ = self.pulse.tick() => {}
                u = urcs.recv() => if u.is_none() { return self.stopping() },
            }
        }
    }

    async fn bring_up(&mut self, modem: &mut Modem) -> Result<(), BringUp> {
        self.set_state(ChannelState::Initializing, None);
        modem.sync().await?;
        self.beat();
        let mut id = modem.identify(self.cfg.dialect.forced()).await?;
        self.beat();
        if let Some(want) = &self.cfg.imei {
            if &id.imei != want {
                return Err(BringUp::WrongModem(format!(
                    "{} has modem IMEI {}, slot {} expects {want}",
                    self.port, id.imei, self.cfg.slot
                )));
            }
        }
        self.publish_identity(modem.dialect(), &id);
        modem
            .unlock_sim(self.cfg.pin.as_deref(), self.ctx.timings.sim_busy_timeout)
            .await?;
        self.beat();
        if id.imsi.is_empty() || id.iccid.is_empty() {
            modem.read_sim_identity(&mut id).await?;
            self.publish_identity(modem.dialect(), &id);
        }
        modem.configure(self.cfg.smsc.as_deref()).await?;
        if let Err(e) = modem.configure_calls().await {
            if e.is_fatal() {
                return Err(e.into());
            }
            tracing::warn!(slot = self.cfg.slot, error = %e, "call settings refused");
        }
        self.refresh(modem).await?;
        Ok(())
    }

    fn publish_identity(&self, dialect: Dialect, id: &Identity) {
        self.update(|s| {
            s.dialect = Some(dialect);
            s.identity.clone_from(id);
        });
    }

    /// Re-reads the network status and derives the state from it.
    async fn refresh(&mut self, modem: &Modem) -> Result<(), ModemError> {
        let st = modem.network_status().await?;
        self.apply_status(&st);
        Ok(())
    }

    fn apply_status(&mut self, st: &NetworkStatus) {
        if st.sim == gsmgw_drivers::modem::SimState::Absent {
            self.sim_out = true;
        }
        let ready =
            st.registration.is_registered() && st.sim == gsmgw_drivers::modem::SimState::Ready;
        let (state, error) = if ready {
            (ChannelState::Ready, None)
        } else if st.registration == gsmgw_drivers::modem::Registration::Searching {
            // Registering after start is normal; not yet degraded.
            (ChannelState::Initializing, None)
        } else {
            (
                ChannelState::Degraded,
                Some(format!(
                    "sim {}, registration {}",
                    st.sim.as_str(),
                    st.registration.as_str()
                )),
            )
        };
        self.update(|s| {
            s.sim = Some(st.sim.clone());
            s.registration = st.registration;
            s.operator.clone_from(&st.operator);
            s.operator_numeric.clone_from(&st.operator_numeric);
            s.signal_dbm = st.signal_dbm;
        });
        self.set_state(state, error);
    }

    pub(super) async fn on_urc(&mut self, modem: &Modem, urc: Urc) -> Result<(), ModemError> {
        let received = match &urc {
            Urc::NewMessage { storage, index } | Urc::NewReport { storage, index } => {
                Some(self.inbox.on_stored(modem, storage, *index).await)
            }
            Urc::DirectMessage { pdu } | Urc::DirectReport { pdu } => {
                Some(self.inbox.on_direct(pdu).await)
            }
            _ => None,
        };
        if let Some(r) = received {
            if let Err(e) = r {
                if let Some(SessionEnd::PortGone(why)) = self.inbox_failed(e).await {
                    return Err(ModemError::At {
                        command: "AT+CMGR".into(),
                        source: AtError::PortClosed(why),
                    });
                }
            }
            return Ok(());
        }
        if matches!(
            urc,
            Urc::Ring
                | Urc::Clip { .. }
                | Urc::CallEnded { .. }
                | Urc::CallConnected { .. }
                | Urc::CallCleared { .. }
                | Urc::Dtmf { .. }
        ) {
            if let Some(calls) = &self.ctx.calls {
                if let Err(e) = calls.try_send((self.cfg.slot, urc)) {
                    tracing::warn!(slot = self.cfg.slot, error = %e, "call URC dropped");
                }
            }
            return Ok(());
        }
        match urc {
            Urc::SimState { code } => {
                // A card back in: announced as inserted, or only as ready (SIMCom A76xx).
                if (code == "INSERTED" || code == "READY") && self.sim_out {
                    self.sim_out = false;
                    // Another card, maybe: PIN, IMSI and ICCID are read again by a new bring-up.
                    tracing::warn!(
                        slot = self.cfg.slot,
                        "SIM inserted; bringing the slot up again"
                    );
                    return Err(ModemError::At {
                        command: "SIM hot swap".into(),
                        source: AtError::PortClosed("SIM inserted".into()),
                    });
                }
                if code == "NOT INSERTED" {
                    tracing::warn!(slot = self.cfg.slot, "SIM removed");
                    self.sim_out = true;
                }
                self.refresh(modem).await
            }
            Urc::Registration { .. } => self.refresh(modem).await,
            Urc::Signal { .. } => {
                let dbm = modem.signal_dbm().await?;
                self.update(|s| s.signal_dbm = dbm);
                Ok(())
            }
            Urc::Ussd { m, text, dcs } => {
                self.network_ussd(modem, m, &text, dcs).await;
                Ok(())
            }
            Urc::Boot { line } => {
                // The modem restarted by itself: its settings are gone; bring it up again.
                tracing::warn!(slot = self.cfg.slot, line = %gsmgw_drivers::redact::printable(&line), "modem restarted by itself");
                Err(ModemError::At {
                    command: "boot".into(),
                    source: AtError::PortClosed(format!("modem restarted ({line})")),
                })
            }
            other => {
                tracing::debug!(slot = self.cfg.slot, urc = ?other, "URC not handled yet");
                Ok(())
            }
        }
    }
}

/// Why bring-up failed.
enum BringUp {
    Modem(ModemError),
    WrongModem(String),
}

impl From<ModemError> for BringUp {
    fn from(e: ModemError) -> Self {
        BringUp::Modem(e)
    }
}

/// An error that only says the SIM is still starting (busy): +CMS ERROR: 314, +CME ERROR: 14.
fn sim_starting(e: &ModemError) -> bool {
    match e {
        ModemError::At { source, .. } => match source {
            AtError::Cms(c) => c.code == Some(314) || c.text.eq_ignore_ascii_case("SIM busy"),
            AtError::Cme(c) => c.code == Some(14) || c.text.eq_ignore_ascii_case("SIM busy"),
            _ => false,
        },
        _ => false,
    }
}
