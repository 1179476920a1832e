//! Login, failed-login lockout, first password, and the command session.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use super::auth::{self, Penalty};
use super::terminal::{Input, Term};
use super::{Console, LOG_TARGET, Login, MAX_LINE};

impl Console {
    async fn password_hash(&self) -> Option<String> {
        self.shared
            .lock()
            .await
            .editor
            .running()
            .console
            .password_hash
            .clone()
    }

    async fn idle(&self) -> Duration {
        let secs = self
            .shared
            .lock()
            .await
            .editor
            .running()
            .console
            .idle_logout_secs;
        Duration::from_secs(u64::from(secs.max(1)))
    }

    /// Loads the failed-login guard from the store once (a restart does not end a lockout).
    async fn restore_guard(&self) {
        let mut shared = self.shared.lock().await;
        if shared.guard_restored {
            return;
        }
        match self.ctx.events.store().console_auth().await {
            Ok(stored) => {
                shared.guard.restore(stored, unix_ms_now());
                shared.guard_restored = true;
                if let Some(left) = shared.guard.locked_for() {
                    tracing::warn!(target: LOG_TARGET,
                        lock_secs = left.as_secs() + 1,
                        "console still locked after repeated failed logins"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(target: LOG_TARGET, error = %e, "console login guard not loaded")
            }
        }
    }

    /// Counts a failed login, stores the guard and says what the failure costs.
    async fn login_failed(&self) -> Penalty {
        let (penalty, stored) = {
            let mut shared = self.shared.lock().await;
            let p = shared.guard.failed();
            (p, shared.guard.to_stored(unix_ms_now()))
        };
        self.store_guard(stored).await;
        penalty
    }

    /// A successful login: the guard forgives everything (stored when it had anything).
    async fn login_succeeded(&self) {
        let before = {
            let mut shared = self.shared.lock().await;
            let before = shared.guard.to_stored(unix_ms_now());
            shared.guard.succeeded();
            before
        };
        if before != crate::store::ConsoleAuth::default() {
            self.store_guard(crate::store::ConsoleAuth::default()).await;
        }
    }

    async fn store_guard(&self, state: crate::store::ConsoleAuth) {
        if let Err(e) = self.ctx.events.store().set_console_auth(state).await {
            tracing::warn!(target: LOG_TARGET, error = %e, "console login guard not stored");
        }
    }

    /// Sessions one after another until the input ends.
    pub(super) async fn serve<R, W>(&self, term: &mut Term<R, W>) -> std::io::Result<()>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        self.restore_guard().await;
        loop {
            match self.login(term).await? {
                Login::Closed => return Ok(()),
                Login::In => {}
            }
            if !self.session(term).await? {
                return Ok(());
            }
        }
    }

    async fn banner<R, W>(&self, term: &mut Term<R, W>) -> std::io::Result<()>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        term.write(&format!(
            "\n{} console (gsmgw {})\n",
            self.ctx.view.gateway_id, self.ctx.view.version
        ))
        .await
    }

    async fn login<R, W>(&self, term: &mut Term<R, W>) -> std::io::Result<Login>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        self.banner(term).await?;
        loop {
            let Some(hash) = self.password_hash().await else {
                if !term.serial {
                    // stdin: the operator already has the machine.
                    return Ok(Login::In);
                }
                return self.first_password(term).await;
            };
            let locked = self.shared.lock().await.guard.locked_for();
            if let Some(left) = locked {
                term.write(&format!(
                    "console locked after repeated failed logins; try again in {} s\n",
                    left.as_secs() + 1
                ))
                .await?;
                // Wait for the lock to end or for a key; nothing typed now is checked.
                match tokio::time::timeout(left, term.read_line(false, None)).await {
                    Ok(Ok(Input::Eof)) => return Ok(Login::Closed),
                    Ok(Err(e)) => return Err(e),
                    _ => {}
                }
                term.discard_typeahead();
                continue;
            }
            // Only a line typed at this prompt is an attempt: what arrived before it is not.
            term.discard_typeahead();
            term.write("Password: ").await?;
            let pw = match term.read_line(false, None).await? {
                Input::Line(l) => l,
                Input::Eof => return Ok(Login::Closed),
                // Control bytes or an overlong line cannot be a password (none can hold
                // them): garbage, not a guess, so not counted.
                Input::Garbled(_) => {
                    term.write("\ngarbled input ignored\n").await?;
                    continue;
                }
                Input::TooLong => {
                    term.write("\nline too long, nothing done\n").await?;
                    continue;
                }
                Input::Cancelled | Input::Idle | Input::CtrlD => continue,
            };
            term.write("\n").await?;
            if pw.is_empty() {
                continue;
            }
            if verify(pw, hash).await {
                self.login_succeeded().await;
                tracing::info!(target: LOG_TARGET, "console login");
                term.write("logged in; type help\n").await?;
                return Ok(Login::In);
            }
            let penalty = self.login_failed().await;
            match penalty {
                Penalty::Delay(d) => {
                    tracing::warn!(target: LOG_TARGET, "console login failed");
                    tokio::time::sleep(d).await;
                    term.discard_typeahead();
                    term.write("wrong password\n").await?;
                }
                Penalty::Locked(d) => {
                    tracing::warn!(target: LOG_TARGET,
                        lock_secs = d.as_secs(),
                        "console locked after repeated failed logins"
                    );
                    term.discard_typeahead();
                    term.write("wrong password\n").await?;
                }
            }
        }
    }

    /// A box with no password: the first technician on the serial line chooses one.
    async fn first_password<R, W>(&self, term: &mut Term<R, W>) -> std::io::Result<Login>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        term.write(&format!(
            "No console password is set on this box. Choose one now (at least {} characters).\n",
            auth::MIN_PASSWORD_LEN
        ))
        .await?;
        loop {
            match self.choose_password(term).await? {
                Some(Ok(where_)) => {
                    term.write(&format!("password set ({where_}); type help\n"))
                        .await?;
                    return Ok(Login::In);
                }
                Some(Err(e)) => term.write(&format!("{e}\n")).await?,
                None => return Ok(Login::Closed),
            }
        }
    }

    /// Asks for a new password twice and stores its hash. None: input ended.
    async fn choose_password<R, W>(
        &self,
        term: &mut Term<R, W>,
    ) -> std::io::Result<Option<Result<String, String>>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut answers = Vec::new();
        for prompt in ["New password: ", "Again: "] {
            term.write(prompt).await?;
            match term.read_line(false, None).await? {
                Input::Line(l) => answers.push(l),
                Input::Eof => return Ok(None),
                Input::Garbled(_) => {
                    return Ok(Some(Err("\ngarbled input ignored; nothing changed".into())));
                }
                Input::TooLong => return Ok(Some(Err("\nline too long, nothing done".into()))),
                Input::Cancelled | Input::Idle | Input::CtrlD => {
                    return Ok(Some(Err("cancelled".into())));
                }
            }
            term.write("\n").await?;
        }
        if answers[0] != answers[1] {
            return Ok(Some(
                Err("the two passwords differ; nothing changed".into()),
            ));
        }
        if let Err(e) = auth::check_new_password(&answers[0]) {
            return Ok(Some(Err(format!("password refused: {e}"))));
        }
        let pw = answers.swap_remove(0);
        let hash = match tokio::task::spawn_blocking(move || auth::hash_password(&pw)).await {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => return Ok(Some(Err(format!("cannot hash the password: {e}")))),
            Err(e) => return Ok(Some(Err(format!("cannot hash the password: {e}")))),
        };
        let stored = self.shared.lock().await.editor.store_password_hash(&hash);
        tracing::info!(target: LOG_TARGET, "console password changed");
        Ok(Some(Ok(stored.unwrap_or_else(|e| {
            format!("in effect now, but not stored: {e}")
        }))))
    }

    /// Commands until exit, idle logout or end of input; false when the input ended.
    async fn session<R, W>(&self, term: &mut Term<R, W>) -> std::io::Result<bool>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let prompt = format!("{}> ", self.ctx.view.gateway_id);
        loop {
            // Without a password (stdin) an idle logout would only print noise.
            let idle = match self.password_hash().await {
                Some(_) => Some(self.idle().await),
                None if term.serial => Some(self.idle().await),
                None => None,
            };
            term.write(&prompt).await?;
            let line = match term.read_line(true, idle).await? {
                // Arrow keys and stray control bytes were dropped from the line: it runs.
                Input::Line(l) | Input::Garbled(l) => l,
                Input::TooLong => {
                    term.write(&format!(
                        "line too long, nothing done (at most {MAX_LINE} bytes)\n"
                    ))
                    .await?;
                    continue;
                }
                Input::Cancelled => continue,
                Input::CtrlD => {
                    term.write("bye\n").await?;
                    return Ok(true);
                }
                Input::Eof => return Ok(false),
                Input::Idle => {
                    term.write(&format!(
                        "\nidle for {} s: logged out\n",
                        idle.unwrap_or_default().as_secs()
                    ))
                    .await?;
                    return Ok(true);
                }
            };
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.first().copied() {
                None => continue,
                Some("exit" | "quit" | "logout") if term.serial => {
                    // A serial line gets a login prompt again.
                    term.write("bye\n").await?;
                    return Ok(true);
                }
                Some("exit" | "quit" | "logout") => {
                    // stdin is the process's own input: leaving it would leave a terminal
                    // that ignores everything while the agent runs on.
                    term.write(
                        "this console is the agent's own input and stays open; Ctrl-C stops the agent (and the demo)\n",
                    )
                    .await?;
                }
                Some("passwd") => {
                    let out = self.passwd(term).await?;
                    term.write(&out).await?;
                }
                Some(_) => {
                    let out = self.execute(line.trim()).await;
                    term.write(&out).await?;
                }
            }
        }
    }

    /// `passwd`: the current password (if any), then the new one twice.
    async fn passwd<R, W>(&self, term: &mut Term<R, W>) -> std::io::Result<String>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        if let Some(hash) = self.password_hash().await {
            term.write("Current password: ").await?;
            let pw = match term.read_line(false, None).await? {
                Input::Line(l) => l,
                _ => return Ok("\ncancelled\n".into()),
            };
            term.write("\n").await?;
            if !verify(pw, hash).await {
                let penalty = self.login_failed().await;
                if let Penalty::Delay(d) = penalty {
                    tokio::time::sleep(d).await;
                }
                term.discard_typeahead();
                return Ok("wrong password; nothing changed\n".into());
            }
        }
        Ok(match self.choose_password(term).await? {
            Some(Ok(where_)) => format!("password changed ({where_})\n"),
            Some(Err(e)) => format!("{e}\n"),
            None => "cancelled\n".into(),
        })
    }
}

fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

async fn verify(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
        .await
        .unwrap_or(false)
}
