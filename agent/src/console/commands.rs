//! The verbs of the console's command line and their dispatch.

use std::time::Duration;

use serde_json::Value;

use crate::proto::jobs::{CampaignControlRequest, SmsSendRequest, UssdJob, to_value};
use tokio::sync::{mpsc, oneshot};

use super::{Console, LOG_TARGET};
use crate::channel::ChannelRequest;
use crate::commands::Origin;
use crate::state::ModemSnapshot;

/// How long `at` waits for the modem's final result.
const AT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `config apply` waits for the uplink to connect with new settings.
const APPLY_WAIT: Duration = Duration::from_secs(20);

impl Console {
    /// Runs one command line (everything but `exit` and `passwd`) and returns its output.
    pub(super) async fn execute(&self, line: &str) -> String {
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap_or("");
        let args: Vec<&str> = words.collect();
        match (cmd, args.as_slice()) {
            ("help" | "?", _) => HELP.to_string(),
            ("status", []) => self.status().await,
            ("modems", []) => self.ctx.view.modems_text(),
            ("calls", []) => match &self.ctx.view.voice {
                Some(v) => v.calls_text(),
                None => "voice is not running\n".to_string(),
            },
            ("modem", [n]) => match self.snapshot(n) {
                Ok(s) => s.details(),
                Err(e) => e,
            },
            ("modem", [n, "--json"]) => match self.snapshot(n) {
                Ok(s) => serde_json::to_string_pretty(&s)
                    .map(|j| j + "\n")
                    .unwrap_or_else(|e| format!("error: {e}\n")),
                Err(e) => e,
            },
            ("at", [n, _, ..]) => {
                let command = rest_after(line, 2);
                self.at(n, command).await
            }
            ("sms", ["send", target, number, _, ..]) => {
                let text = rest_after(line, 4);
                self.sms_send(target, number, text).await
            }
            ("sms", ["recent"]) => self.sms_recent().await,
            ("ussd", [n, code, replies @ ..]) => self.ussd(n, code, replies).await,
            ("queue", []) => self.queue().await,
            ("reset", ["modem", n]) => self.reset(n).await,
            ("restart", []) => self.restart().await,
            ("log", []) => self.log("20"),
            ("log", [n]) => self.log(n),
            ("config", [sub, ..]) => self.config(sub, line).await,
            ("campaign", ["list"]) => self.campaign_list().await,
            ("campaign", [action @ ("pause" | "resume" | "cancel"), id]) => {
                self.campaign_control(action, id).await
            }
            (
                "status" | "modems" | "modem" | "at" | "sms" | "ussd" | "queue" | "reset" | "log"
                | "campaign",
                _,
            ) => {
                format!("usage: {}\n", usage(cmd))
            }
            (other, _) => {
                let shown: String = other.chars().filter(|c| !c.is_control()).take(32).collect();
                format!("unknown command {shown:?}; try help\n")
            }
        }
    }

    fn snapshot(&self, n: &str) -> Result<ModemSnapshot, String> {
        let slot: u16 = n
            .parse()
            .map_err(|_| format!("error: {n:?} is not a slot number\n"))?;
        self.ctx
            .view
            .snapshots()
            .into_iter()
            .find(|s| s.slot == slot)
            .ok_or_else(|| format!("error: no modem in slot {slot}\n"))
    }

    fn sender(&self, n: &str) -> Result<(u16, mpsc::Sender<ChannelRequest>), String> {
        let slot: u16 = n
            .parse()
            .map_err(|_| format!("error: {n:?} is not a slot number\n"))?;
        self.ctx
            .slots
            .iter()
            .find(|(s, _)| *s == slot)
            .map(|(s, tx)| (*s, tx.clone()))
            .ok_or_else(|| format!("error: no enabled modem in slot {slot}\n"))
    }

    async fn at(&self, n: &str, command: &str) -> String {
        let (slot, tx) = match self.sender(n) {
            Ok(x) => x,
            Err(e) => return e,
        };
        if !command
            .get(..2)
            .is_some_and(|p| p.eq_ignore_ascii_case("AT"))
        {
            return "error: the command must start with AT\n".into();
        }
        let (reply, rx) = oneshot::channel();
        let req = ChannelRequest::At {
            command: command.to_string(),
            timeout: AT_TIMEOUT,
            reply,
        };
        tracing::info!(target: LOG_TARGET, slot, "console AT command");
        match ask(&tx, req, rx, AT_TIMEOUT + Duration::from_secs(5)).await {
            Ok(Ok(lines)) => lines.join("\n") + "\n",
            Ok(Err(e)) => format!("error: {e}\n"),
            Err(e) => format!("error: slot {slot}: {e}\n"),
        }
    }

    async fn reset(&self, n: &str) -> String {
        let (slot, tx) = match self.sender(n) {
            Ok(x) => x,
            Err(e) => return e,
        };
        let (reply, rx) = oneshot::channel();
        tracing::warn!(target: LOG_TARGET, slot, "modem reset requested at the console");
        match ask(
            &tx,
            ChannelRequest::Reset {
                power: false,
                reply,
            },
            rx,
            Duration::from_secs(15),
        )
        .await
        {
            Ok(Ok(())) => format!("slot {slot}: reset started; `modems` shows it coming back\n"),
            Ok(Err(e)) => format!("error: {e}\n"),
            Err(e) => format!("error: slot {slot}: {e}\n"),
        }
    }

    async fn sms_send(&self, target: &str, number: &str, text: &str) -> String {
        let slot = if target == "auto" {
            None
        } else {
            match target.parse::<u16>() {
                Ok(s) => Some(s),
                Err(_) => return format!("usage: {}\n", usage("sms")),
            }
        };
        let request_id = console_request_id();
        let payload = to_value(&SmsSendRequest {
            request_id: &request_id,
            to: number,
            text,
            slot,
            report: None,
        });
        match self.submit("sms-send", &payload).await {
            Ok(r) => {
                let job_id = r["job_id"].as_i64().unwrap_or_default();
                let (_, parts) = gsmgw_drivers::pdu::split_text(text, false);
                tracing::info!(target: LOG_TARGET, %request_id, job_id, "SMS queued at the console");
                format!(
                    "queued as job {job_id} (request {request_id}, {} part(s)); `sms recent` shows its state\n",
                    parts.len()
                )
            }
            Err(refusal) => refusal,
        }
    }

    /// `ussd N CODE [REPLY...]`, exactly as `cmd/ussd` does it.
    async fn ussd(&self, n: &str, code: &str, replies: &[&str]) -> String {
        let Ok(slot) = n.parse::<u16>() else {
            return format!("usage: {}\n", usage("ussd"));
        };
        let request_id = console_request_id();
        let payload = to_value(&UssdJob {
            request_id: Some(&request_id),
            slot,
            code,
            replies: &replies.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            timeout_secs: None,
        });
        tracing::info!(target: LOG_TARGET, slot, "console USSD request");
        match self.submit("ussd", &payload).await {
            Ok(r) => {
                let mut out = String::new();
                for s in r["steps"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    out.push_str(&format!(
                        "> {}\n< [{}] {}\n",
                        s["sent"].as_str().unwrap_or(""),
                        s["status"].as_str().unwrap_or(""),
                        gsmgw_drivers::redact::printable(s["text"].as_str().unwrap_or(""))
                    ));
                }
                if let Some(amount) = r["balance"]["amount"].as_f64() {
                    let currency = r["balance"]["currency"].as_str().unwrap_or("");
                    out.push_str(&format!("balance: {amount:.2} {currency}\n"));
                }
                out
            }
            Err(refusal) => refusal,
        }
    }

    /// Submits a command through the registry, like MQTT does: its result, or the refusal as
    /// the console prints it.
    async fn submit(&self, verb: &str, payload: &Value) -> Result<Value, String> {
        let out = self
            .ctx
            .commands
            .submit(verb, payload.to_string().as_bytes(), Origin::Console)
            .await;
        match (out.reply.result, out.reply.error) {
            (Some(r), _) => Ok(r),
            (None, Some(e)) => Err(format!("refused ({}): {}\n", e.code, e.message)),
            (None, None) => Err("error: no answer\n".into()),
        }
    }

    /// `restart`: the agent stops and starts again with the saved configuration.
    async fn restart(&self) -> String {
        let shared = self.shared.lock().await;
        if shared.editor.path().is_none() {
            return "restart is not available: the agent runs without a configuration file\n"
                .into();
        }
        if shared.editor.unsaved() {
            return "the working copy has unsaved changes: `config save` them (or `config revert`) first\n".into();
        }
        drop(shared);
        tracing::warn!(target: LOG_TARGET, "agent restart requested at the console");
        super::restart_requested().notify_one();
        "restarting the agent with the saved configuration; log in again in a few seconds\n".into()
    }

    /// `campaign pause|resume|cancel ID`, exactly as `cmd/campaign-control` does it.
    async fn campaign_control(&self, action: &str, id: &str) -> String {
        let request_id = console_request_id();
        let payload = to_value(&CampaignControlRequest {
            request_id: &request_id,
            campaign_id: id,
            action,
        });
        match self.submit("campaign-control", &payload).await {
            Ok(r) => {
                tracing::info!(target: LOG_TARGET, campaign_id = %id, %action, "campaign changed at the console");
                format!(
                    "campaign {id}: {}{}\n",
                    r["state"].as_str().unwrap_or("?"),
                    match r["cancelled"].as_u64() {
                        Some(n) if n > 0 => format!(" ({n} queued messages cancelled)"),
                        _ => String::new(),
                    }
                )
            }
            Err(refusal) => refusal,
        }
    }

    async fn config(&self, sub: &str, line: &str) -> String {
        let mut shared = self.shared.lock().await;
        let ed = &mut shared.editor;
        match sub {
            "show" => ed.show(),
            "get" => match line.split_whitespace().nth(2) {
                Some(key) => ed.get(key).map(|v| v + "\n").unwrap_or_else(|e| e + "\n"),
                None => "usage: config get KEY\n".into(),
            },
            "set" => {
                let Some(key) = line.split_whitespace().nth(2) else {
                    return "usage: config set KEY VALUE\n".into();
                };
                let value = rest_after(line, 3);
                if value.is_empty() {
                    return "usage: config set KEY VALUE (config unset KEY removes it)\n".into();
                }
                match ed.set(key, value) {
                    Ok(()) => format!(
                        "{key} set (not saved; `config diff`, `config save`, `config apply`)\n"
                    ),
                    Err(e) => format!("refused, nothing changed:\n{e}\n"),
                }
            }
            "unset" => match line.split_whitespace().nth(2) {
                Some(key) => match ed.unset(key) {
                    Ok(()) => format!("{key} removed (not saved)\n"),
                    Err(e) => format!("refused, nothing changed:\n{e}\n"),
                },
                None => "usage: config unset KEY\n".into(),
            },
            "diff" => ed.diff(),
            "save" => match ed.save() {
                Ok(p) => format!("saved to {} (previous file kept as .bak)\n", p.display()),
                Err(e) => format!("not saved: {e}\n"),
            },
            "revert" => match ed.revert() {
                Ok(()) => "working copy thrown away; it is the saved file again\n".into(),
                Err(e) => format!("error: {e}\n"),
            },
            "apply" => {
                let new = match ed.pending_config() {
                    Ok(c) => c,
                    Err(e) => return format!("not applied:\n{e}\n"),
                };
                let changes = ed.changes(&new);
                if changes.is_empty() {
                    return "nothing to apply: the agent runs with this configuration\n".into();
                }
                let mut out = String::new();
                let mut running = ed.running().clone();
                if changes.console_live {
                    running.console.password_hash = new.console.password_hash.clone();
                    running.console.idle_logout_secs = new.console.idle_logout_secs;
                    out.push_str("console: password and idle logout in effect now\n");
                }
                let unsaved = ed.unsaved();
                if changes.mqtt {
                    // Restarting the uplink must not hold the console's state.
                    let previous = running.mqtt.clone();
                    running.mqtt = new.mqtt.clone();
                    ed.set_running(running.clone());
                    drop(shared);
                    let (restarted, text) =
                        self.apply_mqtt(new.mqtt.clone(), previous.clone()).await;
                    out.push_str(&text);
                    if !restarted {
                        running.mqtt = previous;
                    }
                    self.shared.lock().await.editor.set_running(running);
                } else {
                    ed.set_running(running);
                }
                if !changes.need_restart.is_empty() {
                    out.push_str(&format!(
                        "needs a restart of the agent to take effect: {} (`config save`, then `restart`)\n",
                        changes.need_restart.join(", ")
                    ));
                }
                if unsaved {
                    out.push_str("not saved yet: `config save` keeps it across restarts\n");
                }
                out
            }
            _ => format!("usage: {}\n", usage("config")),
        }
    }

    /// Restarts the uplink with `mqtt` and waits a while for it to connect.
    /// Restarts the uplink with `mqtt` and waits a while for it to connect. If it was
    /// connected before and the new settings do not connect, it goes back to `previous` (a
    /// typo must not cut the box off). True when `mqtt` is what runs afterwards.
    async fn apply_mqtt(
        &self,
        mqtt: crate::config::MqttConfig,
        previous: crate::config::MqttConfig,
    ) -> (bool, String) {
        let was_connected = self.ctx.view.uplink.borrow().connected;
        if let Err(e) = self.ctx.uplink.restart(mqtt).await {
            return (false, format!("mqtt: not applied: {e}\n"));
        }
        let broker = self.ctx.uplink.broker();
        match self.wait_connected().await {
            Ok(()) => (
                true,
                format!("mqtt: applied; uplink reconnected to {broker}\n"),
            ),
            Err(err) if was_connected => {
                tracing::warn!(target: LOG_TARGET, error = %err, "new MQTT settings did not connect; going back");
                let back = match self.ctx.uplink.restart(previous).await {
                    Ok(()) => match self.wait_connected().await {
                        Ok(()) => "reconnected with them".to_string(),
                        Err(e) => format!("not connected yet: {e}"),
                    },
                    Err(e) => format!("cannot restart the uplink: {e}"),
                };
                (
                    false,
                    format!(
                        "mqtt: NOT applied: the uplink did not connect to {broker} within {} s with the new settings ({err}); went back to the previous MQTT settings ({back}). The working copy still has the new ones: fix them, or `config revert`\n",
                        APPLY_WAIT.as_secs()
                    ),
                )
            }
            Err(err) => (
                true,
                format!(
                    "mqtt: applied, but the uplink has not connected to {broker} within {} s ({err}); it keeps trying (it was not connected before either)\n",
                    APPLY_WAIT.as_secs()
                ),
            ),
        }
    }

    /// Waits up to [`APPLY_WAIT`] for a new connection of the uplink; the last error if none.
    async fn wait_connected(&self) -> Result<(), String> {
        let mut status = self.ctx.view.uplink.clone();
        // The restarted uplink starts disconnected: any connection seen now is a new one.
        let connected = tokio::time::timeout(APPLY_WAIT, async {
            loop {
                if status.borrow_and_update().connected {
                    return;
                }
                if status.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await
        .is_ok();
        if connected {
            return Ok(());
        }
        Err(status
            .borrow()
            .last_error
            .clone()
            .unwrap_or_else(|| "no answer".into()))
    }
}

/// Sends a request to a channel and waits for its answer, both bounded.
async fn ask<T>(
    tx: &mpsc::Sender<ChannelRequest>,
    req: ChannelRequest,
    rx: oneshot::Receiver<T>,
    timeout: Duration,
) -> Result<T, String> {
    tokio::time::timeout(Duration::from_secs(2), tx.send(req))
        .await
        .map_err(|_| "the modem's channel is busy".to_string())?
        .map_err(|_| "the modem's channel is not running".to_string())?;
    tokio::time::timeout(timeout, rx)
        .await
        .map_err(|_| "no answer in time (is the modem present? see `modems`)".to_string())?
        .map_err(|_| "the modem's channel dropped the request (port lost?)".to_string())
}

/// The text after the first `n` words of `line`, as typed (inner spaces kept).
pub(super) fn rest_after(line: &str, n: usize) -> &str {
    let mut rest = line.trim_start();
    for _ in 0..n {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = rest[end..].trim_start();
    }
    rest.trim_end()
}

pub(super) const COMMANDS: &[(&str, &str, &str)] = &[
    (
        "status",
        "status",
        "gateway, version, uptime, MQTT, outbox, free disk, modems, SIP, calls",
    ),
    (
        "modems",
        "modems",
        "one line per slot: state, model, IMEI, IMSI, SIM, network, signal",
    ),
    ("modem", "modem N [--json]", "everything known about slot N"),
    (
        "calls",
        "calls",
        "the SIP trunk's state and the calls in progress",
    ),
    (
        "at",
        "at N CMD",
        "send a raw AT command to slot N (queued behind the agent's own)",
    ),
    (
        "sms",
        "sms send N|auto NUMBER TEXT | sms recent",
        "queue an SMS (E.164 number) / the last SMS jobs",
    ),
    (
        "ussd",
        "ussd N CODE [REPLY...]",
        "send a USSD string (e.g. *111#) on slot N and answer its menus, like cmd/ussd",
    ),
    ("queue", "queue", "outbox depth and jobs by state"),
    ("reset", "reset modem N", "reset the modem in slot N"),
    (
        "restart",
        "restart",
        "stop the agent and start it again with the saved configuration",
    ),
    ("log", "log [N]", "the last N log lines (default 20)"),
    (
        "config",
        "config show|get KEY|set KEY VALUE|unset KEY|diff|save|revert|apply",
        "view and change the configuration (see below)",
    ),
    (
        "campaign",
        "campaign list | campaign pause|resume|cancel ID",
        "campaigns with their progress / control one, like cmd/campaign-control",
    ),
    ("passwd", "passwd", "change the console password"),
    ("help", "help", "this text"),
    ("exit", "exit", "log out (the agent keeps running)"),
];

pub(super) fn usage(cmd: &str) -> &'static str {
    COMMANDS
        .iter()
        .find(|(c, _, _)| *c == cmd)
        .map(|(_, u, _)| *u)
        .unwrap_or("help")
}

pub(super) static HELP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let mut s = String::from("commands:\n");
    for (_, usage, what) in COMMANDS {
        s.push_str(&format!("  {usage}\n      {what}\n"));
    }
    s.push_str(
        "config keys: section.key (gateway.id, mqtt.url, sms.per_day, sip.server, voice.record_sip_in …),\n\
         modem[N].key (N-th [[modem]] table: modem[1].port, modem[1].pin; modem[N+1] adds one),\n\
         sms.route[N].key, voice.route[N].key. Values take the key's type (100, true, 10.5, a,b, text).\n\
         Every change is checked like `gsmgw config check`; a refused change leaves everything as it was.\n\
         `config apply` restarts only what changed (MQTT: the uplink reconnects, modems keep running);\n\
         `config save` writes the file atomically and keeps the old one as .bak.\n\
         Keys: Enter, Backspace, Ctrl-U (erase line), Ctrl-C (cancel line), Ctrl-D (log out).\n",
    );
    s
});

/// A request id for a command typed at the console.
fn console_request_id() -> String {
    format!("console-{}", uuid::Uuid::now_v7().simple())
}
