//! Voice: GSM calls bridged to a SIP PBX both ways, call records, the missed-call SMS and
//! recordings.
//!
//! One manager task owns the SIP user agent and routes what happens to the call tasks: modem
//! call URCs (forwarded by the channels), SIP events, and commands (`cmd/dial`,
//! `cmd/hangup`). Each call is its own task ([`call`]) driving the modem through its channel
//! and the media through a [`gsmgw_drivers::voice::bridge::Bridge`].

pub mod call;
pub mod causes;
mod early;
/// Call recordings (WAV files under data_dir), kept below both voice and commands.
pub use crate::recordings;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gsmgw_drivers::at::Urc;
use gsmgw_drivers::sip::guard::{Inbound, InboundAuth, Untrusted};
use gsmgw_drivers::sip::ua::{Ua, UaConfig, UaEvent};
use gsmgw_drivers::voice::Codec;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::channel::ChannelRequest;
pub use crate::config::host_port;
use crate::config::{Config, VoiceConfig, VoiceRoute};
use crate::events::Events;
use crate::state::{ChannelState, ModemSnapshot};

/// Resolves `host:port` (a missing port is `default_port`).
pub fn resolve_addr(s: &str, default_port: u16) -> Result<SocketAddr, String> {
    let (host, port) = host_port(s, default_port)?;
    (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("`{s}`: {e}"))?
        .next()
        .ok_or_else(|| format!("`{s}` has no address"))
}

/// A call in progress, as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallBrief {
    /// `gsm-in`, `sip-in`, `dial`.
    pub direction: &'static str,
    /// The slot, once chosen.
    pub slot: Option<u16>,
    /// Caller.
    pub from: String,
    /// Called.
    pub to: String,
    /// `ringing`, `dialing`, `talking`.
    pub state: &'static str,
    /// When it started.
    pub since: std::time::Instant,
}

/// What the console sees of voice: the SIP trunk's state and the calls in progress.
#[derive(Clone)]
pub struct VoiceView {
    /// `off`, `not registering`, `registering`, `registered (expires N s)`, `failed: …`.
    pub sip: watch::Receiver<String>,
    /// Calls in progress by call id.
    pub calls: Arc<Mutex<std::collections::BTreeMap<String, CallBrief>>>,
}

impl VoiceView {
    /// A view and the sender that updates its SIP line.
    pub fn new() -> (VoiceView, watch::Sender<String>) {
        let (tx, rx) = watch::channel("off".to_string());
        (
            VoiceView {
                sip: rx,
                calls: Arc::new(Mutex::new(std::collections::BTreeMap::new())),
            },
            tx,
        )
    }

    /// The console's `calls` text.
    pub fn calls_text(&self) -> String {
        let calls = self.calls.lock().map(|c| c.clone()).unwrap_or_default();
        let mut out = format!(
            "sip     {}
",
            self.sip.borrow().as_str()
        );
        if calls.is_empty() {
            out.push_str(
                "no calls in progress
",
            );
        }
        for (id, c) in calls {
            out.push_str(&format!(
                "{id}  {:<7} slot {:<4} {:<8} {} -> {}  {} s\n",
                c.direction,
                c.slot.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                c.state,
                if c.from.is_empty() {
                    "(withheld)"
                } else {
                    c.from.as_str()
                },
                c.to,
                c.since.elapsed().as_secs()
            ));
        }
        out
    }
}

/// A command for the voice manager (`dial`, `hangup`), defined by the commands that send it.
pub use crate::commands::VoiceCommand;

/// One slot as the voice manager sees it.
#[derive(Clone)]
pub struct VoiceSlot {
    /// The slot.
    pub slot: u16,
    /// Its channel's picture.
    pub snapshot: watch::Receiver<ModemSnapshot>,
    /// Its channel's request queue.
    pub requests: mpsc::Sender<ChannelRequest>,
    /// The modem's PCM voice port, if configured.
    pub voice_port: Option<String>,
    /// The modem's group.
    pub group: Option<String>,
}

/// What a call task receives.
#[derive(Debug)]
pub enum CallInput {
    /// A call URC from the slot's modem.
    Gsm(Urc),
    /// A SIP event for one of the call's SIP legs.
    Sip(UaEvent),
    /// Hang up now (`cmd/hangup`, shutdown).
    Hangup,
}

/// Shared pieces every call task uses.
#[derive(Clone)]
pub struct Shared {
    /// Voice settings.
    pub voice: VoiceConfig,
    /// The SIP user agent, when `[sip]` is configured.
    pub ua: Option<Ua>,
    /// The address written into SDP.
    pub media_ip: IpAddr,
    /// Codecs in order of preference.
    pub codecs: Vec<Codec>,
    /// RTP port allocator.
    pub rtp: Arc<Mutex<RtpPorts>>,
    /// Events and the store.
    pub events: Events,
    /// The command registry (the missed-call SMS is an sms-send like any other).
    pub commands: crate::commands::Registry,
    /// data_dir.
    pub data_dir: PathBuf,
    /// The slots.
    pub slots: Vec<VoiceSlot>,
    /// Number prefix → group (from `[[sms.route]]`).
    pub routes: Vec<(String, String)>,
    /// Registry the manager routes SIP events with.
    pub registry: mpsc::Sender<Registry>,
    /// Slots with a call in progress (a SIM carries one call).
    pub busy: Arc<Mutex<HashMap<u16, String>>>,
    /// The calls in progress, for the console.
    pub live: Arc<Mutex<std::collections::BTreeMap<String, CallBrief>>>,
}

/// Messages from call tasks to the manager.
pub enum Registry {
    /// SIP events for this Call-ID go to this call.
    SipLeg(String, mpsc::Sender<CallInput>),
    /// Modem URCs of this slot go to this call (call id, its input).
    Slot(u16, String, mpsc::Sender<CallInput>),
    /// The call ended: forget it.
    Done {
        /// The call id.
        call_id: String,
    },
}

/// Even RTP ports handed out round-robin.
#[derive(Debug)]
pub struct RtpPorts {
    min: u16,
    max: u16,
    next: u16,
}

impl RtpPorts {
    /// A range `min..=max`.
    pub fn new(min: u16, max: u16) -> Self {
        let min = min + (min % 2);
        RtpPorts {
            min,
            max: max.max(min + 1),
            next: min,
        }
    }

    /// Binds the next free even port on `ip`.
    pub fn bind(&mut self, ip: IpAddr) -> Result<std::net::UdpSocket, String> {
        let span = u32::from(self.max - self.min) / 2 + 1;
        for _ in 0..span {
            let port = self.next;
            self.next = if self.next + 2 > self.max {
                self.min
            } else {
                self.next + 2
            };
            if let Ok(s) = std::net::UdpSocket::bind((ip, port)) {
                return Ok(s);
            }
        }
        Err(format!(
            "no free RTP port in {}..{} on {ip}",
            self.min, self.max
        ))
    }
}

/// Inputs of the voice manager.
pub struct VoiceContext {
    /// The whole configuration.
    pub config: Config,
    /// Events and the store.
    pub events: Events,
    /// The slots.
    pub slots: Vec<VoiceSlot>,
    /// Call URCs from the channels.
    pub urcs: mpsc::Receiver<(u16, Urc)>,
    /// Commands from the uplink.
    pub commands: mpsc::Receiver<VoiceCommand>,
    /// Turns true on shutdown.
    pub shutdown: watch::Receiver<bool>,
    /// The command registry (without the voice manager itself).
    pub registry: crate::commands::Registry,
    /// Beaten while the manager's loop turns.
    pub heartbeat: crate::actor::Heartbeat,
    /// The console's view (calls in progress).
    pub view: VoiceView,
    /// Updates the view's SIP line.
    pub sip_status: watch::Sender<String>,
}

/// The address the box uses toward `server` (no packet is sent).
fn local_ip_toward(server: SocketAddr) -> IpAddr {
    let unspecified: IpAddr = if server.is_ipv4() {
        IpAddr::from([0, 0, 0, 0])
    } else {
        IpAddr::from([0u16; 8])
    };
    std::net::UdpSocket::bind((unspecified, 0))
        .and_then(|s| {
            s.connect(server)?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(unspecified)
}

/// Runs the voice manager until shutdown.
pub async fn run(mut ctx: VoiceContext) {
    let data_dir = ctx.config.gateway.data_dir.clone();
    let voice = ctx.config.voice.clone();
    if let Err(e) = std::fs::create_dir_all(recordings::dir(&data_dir)) {
        tracing::error!(error = %e, "cannot create the recordings folder");
    }
    retention(&data_dir, &voice);

    let trusted: Vec<IpAddr> = match &ctx.config.sip {
        Some(sip) if !sip.trusted_peers.is_empty() => sip
            .trusted_peers
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect(),
        Some(sip) => resolve_addr(&sip.server, 5060)
            .map(|a| vec![a.ip()])
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let sip_cfg = match &ctx.config.sip {
        Some(sip) => match resolve_addr(&sip.server, 5060) {
            Ok(server) => Some((sip, server)),
            Err(e) => {
                let msg = format!("[sip] server {e}: calls are logged but not bridged");
                ctx.events.alarm("sip-config", &msg, None).await;
                None
            }
        },
        None => None,
    };
    let (ua, mut ua_events, media_ip, codecs, rtp) = match sip_cfg {
        Some((sip, server)) => {
            let bind: SocketAddr = sip
                .bind
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 5060)));
            let media_ip = sip
                .media_address
                .as_deref()
                .and_then(|m| m.parse().ok())
                .unwrap_or_else(|| {
                    if bind.ip().is_unspecified() {
                        local_ip_toward(server)
                    } else {
                        bind.ip()
                    }
                });
            let domain = sip.domain.clone().unwrap_or_else(|| {
                sip.server
                    .rsplit_once(':')
                    .map(|(h, _)| h.to_string())
                    .unwrap_or_else(|| sip.server.clone())
            });
            let cfg = UaConfig {
                bind,
                server,
                domain,
                username: sip.username.clone(),
                auth_username: sip.auth_username.clone(),
                password: sip.password.clone(),
                register: sip.register,
                register_expires: sip.register_expires_secs,
                options_interval: (sip.options_interval_secs > 0)
                    .then(|| Duration::from_secs(u64::from(sip.options_interval_secs))),
                user_agent: format!("gsmgw/{}", env!("CARGO_PKG_VERSION")),
                inbound: inbound_policy(sip, trusted.clone()),
            };
            if sip.inbound_auth_mode() == "ip" {
                tracing::warn!(
                    "sip.inbound_auth = \"ip\": INVITEs are trusted by their source address alone, which UDP lets anyone forge"
                );
            }
            match Ua::start(cfg).await {
                Ok((ua, rx)) => {
                    tracing::info!(local = %ua.local_addr(), %server, "SIP user agent started");
                    let codecs: Vec<Codec> = sip
                        .codecs
                        .iter()
                        .filter_map(|c| Codec::from_name(c))
                        .collect();
                    (
                        Some(ua),
                        Some(rx),
                        media_ip,
                        codecs,
                        RtpPorts::new(sip.rtp_port_min, sip.rtp_port_max),
                    )
                }
                Err(e) => {
                    ctx.events
                        .alarm("sip-start", &format!("SIP could not start: {e}"), None)
                        .await;
                    (
                        None,
                        None,
                        media_ip,
                        vec![Codec::Pcmu],
                        RtpPorts::new(10_000, 10_999),
                    )
                }
            }
        }
        None => (
            None,
            None,
            IpAddr::from([127, 0, 0, 1]),
            vec![Codec::Pcmu, Codec::Pcma],
            RtpPorts::new(10_000, 10_999),
        ),
    };

    let (reg_tx, mut reg_rx) = mpsc::channel::<Registry>(256);
    let shared = Shared {
        voice: voice.clone(),
        ua: ua.clone(),
        media_ip,
        codecs,
        rtp: Arc::new(Mutex::new(rtp)),
        events: ctx.events.clone(),
        commands: ctx.registry.clone(),
        data_dir: data_dir.clone(),
        slots: ctx.slots.clone(),
        routes: ctx
            .config
            .sms
            .route
            .iter()
            .map(|r| (r.prefix.clone(), r.group.clone()))
            .collect(),
        registry: reg_tx,
        busy: Arc::new(Mutex::new(HashMap::new())),
        live: ctx.view.calls.clone(),
    };
    let _ = ctx.sip_status.send(match (&ctx.config.sip, &ua) {
        (None, _) => "off (no [sip] section)".to_string(),
        (Some(_), None) => "failed to start".to_string(),
        (Some(s), Some(_)) if s.register => format!("registering to {}", s.server),
        (Some(s), Some(_)) => format!("not registering (trunk to {})", s.server),
    });
    let mut registration_ok = true;

    // call id → input; slot → call id; SIP Call-ID → input; early SIP events.
    let mut calls: HashMap<String, mpsc::Sender<CallInput>> = HashMap::new();
    let mut by_slot: HashMap<u16, String> = HashMap::new();
    let mut legs: HashMap<String, mpsc::Sender<CallInput>> = HashMap::new();
    let mut early: early::Early<UaEvent> = early::Early::default();
    let mut tidy = tokio::time::interval(Duration::from_secs(3600));
    tidy.tick().await;

    let mut pulse = ctx.heartbeat.pulse();
    loop {
        tokio::select! {
            _ = pulse.tick() => {}
            _ = ctx.shutdown.changed() => break,
            _ = tidy.tick() => retention(&data_dir, &voice),
            Some((slot, urc)) = ctx.urcs.recv() => {
                let existing = by_slot.get(&slot).and_then(|id| calls.get(id)).cloned();
                match existing {
                    Some(tx) => { let _ = tx.send(CallInput::Gsm(urc)).await; }
                    None => {
                        if matches!(urc, Urc::Ring | Urc::Clip { .. }) {
                            let route = route_for(&voice.route, slot);
                            let (id, tx) = call::spawn_gsm_in(shared.clone(), slot, route, urc);
                            by_slot.insert(slot, id.clone());
                            calls.insert(id, tx);
                        }
                    }
                }
            }
            Some(ev) = async { match ua_events.as_mut() { Some(rx) => rx.recv().await, None => None } } => {
                match ev {
                    UaEvent::Incoming { .. } => {
                        if let Some((id, sip_call, tx)) = call::spawn_sip_in(shared.clone(), ev) {
                            legs.insert(sip_call, tx.clone());
                            calls.insert(id, tx);
                        }
                    }
                    UaEvent::Registered { expires } => {
                        if !registration_ok {
                            tracing::info!(expires, "registered to the PBX again");
                        }
                        registration_ok = true;
                        let _ = ctx.sip_status.send(format!("registered (expires {expires} s)"));
                    }
                    UaEvent::RegistrationFailed { code, reason } => {
                        tracing::warn!(code, reason = %gsmgw_drivers::redact::printable(&reason), "registration to the PBX failed");
                        let _ = ctx.sip_status.send(format!("failed: {code} {reason}"));
                        // One alarm per outage, not one per retry.
                        if registration_ok {
                            registration_ok = false;
                            let msg = format!("registration to the PBX failed: {code} {reason}; calls from the PBX cannot reach the SIMs");
                            ctx.events.alarm("sip-registration", &msg, None).await;
                        }
                    }
                    other => {
                        let key = sip_call_of(&other).to_string();
                        match legs.get(&key) {
                            Some(tx) => { let _ = tx.send(CallInput::Sip(other)).await; }
                            None => early.push(key, other),
                        }
                    }
                }
            }
            Some(r) = reg_rx.recv() => match r {
                Registry::SipLeg(sip_call, tx) => {
                    for ev in early.take(&sip_call) {
                        let _ = tx.send(CallInput::Sip(ev)).await;
                    }
                    legs.insert(sip_call, tx);
                }
                Registry::Slot(slot, call_id, tx) => {
                    by_slot.insert(slot, call_id.clone());
                    calls.entry(call_id).or_insert(tx);
                }
                Registry::Done { call_id } => {
                    if let Some(tx) = calls.remove(&call_id) {
                        legs.retain(|_, t| !t.same_channel(&tx));
                    }
                    by_slot.retain(|_, id| *id != call_id);
                }
            },
            Some(cmd) = ctx.commands.recv() => {
                if cmd.verb == crate::proto::Verb::Dial {
                    let (id, tx) = call::spawn_dial(shared.clone(), &cmd.payload, cmd.reply);
                    calls.insert(id, tx);
                    continue;
                }
                let result = match cmd.verb {
                    crate::proto::Verb::Hangup => {
                        let id = cmd.payload.get("call_id").and_then(Value::as_str).unwrap_or("");
                        match calls.get(id) {
                            Some(tx) => {
                                let _ = tx.send(CallInput::Hangup).await;
                                Ok(crate::proto::jobs::to_value(&crate::proto::replies::CallProgress {
                                    call_id: id,
                                    slot: None,
                                    state: "hanging-up",
                                }))
                            }
                            None => Err(("unknown-call".to_string(), format!("no call {id:?} in progress"))),
                        }
                    }
                    other => Err(("unknown-verb".to_string(), format!("{other} is not a voice command"))),
                };
                let _ = cmd.reply.send(result);
            }
        }
    }
    for tx in calls.values() {
        let _ = tx.try_send(CallInput::Hangup);
    }
    // Each call hangs up both legs and writes its record; wait for them (bounded), then
    // un-register while the user agent can still send the BYEs' retransmissions.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while !calls.is_empty() {
        match tokio::time::timeout_at(deadline, reg_rx.recv()).await {
            Ok(Some(Registry::Done { call_id })) => {
                calls.remove(&call_id);
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    if let Some(ua) = ua {
        ua.shutdown().await;
    }
}

/// What the user agent lets in: the trusted addresses (never empty: the server's address when
/// `trusted_peers` is not given), the inbound authentication mode, the untrusted action and
/// the rate limit.
fn inbound_policy(sip: &crate::config::SipConfig, trusted: Vec<IpAddr>) -> Inbound {
    let auth = match sip.inbound_auth_mode() {
        "ip" => InboundAuth::Ip,
        "contact-token" => InboundAuth::ContactToken,
        _ => {
            let (username, password) = sip.inbound_credentials();
            InboundAuth::Digest { username, password }
        }
    };
    Inbound {
        // Nothing resolved (no server address): trust nobody rather than everybody.
        trusted: if trusted.is_empty() {
            vec![IpAddr::from([0, 0, 0, 0])]
        } else {
            trusted
        },
        auth,
        untrusted: if sip.untrusted == "drop" {
            Untrusted::Drop
        } else {
            Untrusted::Reject
        },
        rate_per_source: sip.rate_limit_per_source,
    }
}

fn sip_call_of(ev: &UaEvent) -> &str {
    match ev {
        UaEvent::Incoming { call, .. }
        | UaEvent::Progress { call, .. }
        | UaEvent::Answered { call, .. }
        | UaEvent::Failed { call, .. }
        | UaEvent::Cancelled { call }
        | UaEvent::Reinvite { call, .. }
        | UaEvent::Ended { call } => call,
        _ => "",
    }
}

/// The rule for incoming calls on `slot`: its own, else the default (no `slot`).
pub fn route_for(routes: &[VoiceRoute], slot: u16) -> Option<VoiceRoute> {
    routes
        .iter()
        .find(|r| r.slot == Some(slot))
        .or_else(|| routes.iter().find(|r| r.slot.is_none()))
        .cloned()
}

fn retention(data_dir: &std::path::Path, v: &VoiceConfig) {
    let age = Duration::from_secs(u64::from(v.recordings_max_age_days) * 86_400);
    let bytes = u64::from(v.recordings_max_mb) * 1024 * 1024;
    recordings::enforce_retention(data_dir, age, bytes);
}

impl Shared {
    /// A ready slot for an outgoing call to `to`: the one asked for, else by prefix group,
    /// then the least used today within `call_minutes_per_day`.
    pub async fn pick_slot(&self, to: &str, want: Option<u16>) -> Result<u16, String> {
        let group = self
            .routes
            .iter()
            .filter(|(p, _)| to.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, g)| g.clone());
        let busy: Vec<u16> = self
            .busy
            .lock()
            .map(|b| b.keys().copied().collect())
            .unwrap_or_default();
        let mut candidates = Vec::new();
        for s in &self.slots {
            let snap = s.snapshot.borrow().clone();
            if want.is_some_and(|w| w != s.slot)
                || snap.state != ChannelState::Ready
                || busy.contains(&s.slot)
                || s.voice_port.is_none()
            {
                continue;
            }
            let used = self
                .events
                .store()
                .counter_get(&minutes_counter(&snap.identity.imsi))
                .await
                .unwrap_or(0);
            let limit = i64::from(self.voice.call_minutes_per_day) * 60;
            if limit > 0 && used >= limit {
                continue;
            }
            let in_group = group.is_some() && s.group == group;
            candidates.push((!in_group, used, s.slot));
        }
        candidates.sort();
        candidates.first().map(|c| c.2).ok_or_else(|| match want {
            Some(w) => format!("slot {w} is not ready, is busy or has no voice_port"),
            None => "no SIM is ready for a call (all busy, not ready, without a voice_port, or over their call minutes)"
                .to_string(),
        })
    }

    /// Marks `slot` busy with `call_id`; false when it already carries a call.
    pub fn claim(&self, slot: u16, call_id: &str) -> bool {
        match self.busy.lock() {
            Ok(mut b) => match b.entry(slot) {
                std::collections::hash_map::Entry::Occupied(_) => false,
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(call_id.to_string());
                    true
                }
            },
            Err(_) => false,
        }
    }

    /// Frees `slot`.
    pub fn release(&self, slot: u16) {
        if let Ok(mut b) = self.busy.lock() {
            b.remove(&slot);
        }
    }

    /// The slot's handle.
    pub fn slot(&self, slot: u16) -> Option<&VoiceSlot> {
        self.slots.iter().find(|s| s.slot == slot)
    }
}

/// The store counter of a SIM's call seconds today.
pub fn minutes_counter(imsi: &str) -> String {
    format!(
        "call-secs:{imsi}:{}",
        chrono::Local::now().format("%Y-%m-%d")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_text_lists_calls() {
        let (view, sip) = VoiceView::new();
        let _ = sip.send("registered (expires 300 s)".into());
        assert!(view.calls_text().contains("no calls in progress"));
        view.calls.lock().unwrap().insert(
            "c1".into(),
            CallBrief {
                direction: "gsm-in",
                slot: Some(2),
                from: String::new(),
                to: "slot 2".into(),
                state: "ringing",
                since: std::time::Instant::now(),
            },
        );
        let t = view.calls_text();
        assert!(t.contains("registered (expires 300 s)"), "{t}");
        assert!(t.contains("c1  gsm-in  slot 2"), "{t}");
        assert!(t.contains("(withheld) -> slot 2"), "{t}");
    }

    #[test]
    fn addresses_and_ports() {
        assert_eq!(
            resolve_addr("127.0.0.1:5070", 5060).unwrap(),
            "127.0.0.1:5070".parse().unwrap()
        );
        assert_eq!(resolve_addr("127.0.0.1", 5060).unwrap().port(), 5060);
        assert!(resolve_addr("not a host", 5060).is_err());
        assert_eq!(
            host_port("pbx.example.invalid:5080", 5060).unwrap(),
            ("pbx.example.invalid".to_string(), 5080)
        );
        assert!(host_port("pbx:0", 5060).is_err());
        assert!(host_port("pbx:port", 5060).is_err());
        let mut ports = RtpPorts::new(41_001, 41_010);
        let a = ports.bind(IpAddr::from([127, 0, 0, 1])).unwrap();
        let b = ports.bind(IpAddr::from([127, 0, 0, 1])).unwrap();
        let (pa, pb) = (
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        );
        assert_eq!(pa % 2, 0);
        assert_ne!(pa, pb);
        assert!((41_002..=41_010).contains(&pa));
    }

    #[test]
    fn route_lookup_prefers_the_slot_rule() {
        let r = |slot: Option<u16>, action: &str| VoiceRoute {
            slot,
            action: action.into(),
            target: None,
            record: false,
        };
        let routes = vec![r(None, "reject"), r(Some(2), "answer-hangup")];
        assert_eq!(route_for(&routes, 2).unwrap().action, "answer-hangup");
        assert_eq!(route_for(&routes, 1).unwrap().action, "reject");
        assert!(route_for(&[], 1).is_none());
    }
}
