//! The SIP user agent: one task owns the UDP socket and runs the transactions (RFC 3261 §17,
//! UDP timers), the dialogs, registration and keep-alives; [`Ua`] is a cheap handle that sends it
//! commands, and [`UaEvent`]s come back on a channel.
//!
//! Scope, deliberately small: UDP only; every out-of-dialog request goes to `UaConfig::server`
//! (outbound proxy). Dialogs keep a route set (RFC 3261 §12.1: the INVITE's Record-Route when
//! we answer, copied into our 18x/2xx; the 2xx's Record-Route reversed when we call), and
//! in-dialog requests carry it as Route headers and go to the first route's address (loose
//! routing; a strict router gets its URI as Request-URI). Without a route set, or when the first
//! route names a host rather than an IP address (no DNS here), they go to the server for a call
//! we placed and back to the INVITE's source for a call we received. No forking (a second 2xx
//! with another To tag is ACKed like a retransmission); no 100rel, no UPDATE; a re-INVITE inside
//! a dialog is answered 200 with the SDP we last sent (that keeps calls alive through hold
//! attempts but does not follow the peer's media changes).
//!
//! The layers live beside this file: `transaction` (timers, retransmissions, client and
//! server transactions), `dialog` (dialog state, matching, route sets, BYE), `registration`
//! (REGISTER and keep-alives); the two call sides are `uac` (calls we place) and `uas` (calls
//! we receive). One `Core` owns the state of all of them; each layer adds its methods to it.

mod uac;
mod uas;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::SipError;
use super::dialog::{Call, CallState};
use super::digest::NonceSource;
use super::guard::{
    Counters, Inbound, InboundAuth, MAX_DATAGRAM, RateLimiter, Refusal, ReplayGuard, Untrusted,
};
use super::msg::{Message, NameAddr, Uri, Via};
use super::registration::{MIN_BACKOFF, Registration};
use super::transaction::{Cached, ClientTx, TimerKey, TxKind};

/// How long `shutdown` waits for the un-REGISTER to complete.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// The Contact URI parameter carrying the inbound token (`inbound_auth = contact-token`).
pub const TOKEN_PARAM: &str = "gwtoken";
/// The realm of our digest challenges.
pub const REALM: &str = "gsmgw";

/// What we accept (Allow header).
pub(super) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS";

/// Methods we know but do not take (405 rather than 501).
const KNOWN_METHODS: &[&str] = &[
    "REGISTER",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "MESSAGE",
    "REFER",
    "INFO",
    "UPDATE",
    "PRACK",
];

/// User agent configuration.
#[derive(Clone)]
pub struct UaConfig {
    /// Local UDP address; port 0 picks a free port (see [`Ua::local_addr`]).
    pub bind: SocketAddr,
    /// The PBX: REGISTER, OPTIONS keep-alives and every INVITE go to this address.
    pub server: SocketAddr,
    /// Host part for the AOR, From/To and REGISTER's Request-URI (`sip:<domain>`).
    pub domain: String,
    /// AOR user and Contact user.
    pub username: String,
    /// Digest user name when it differs from `username`.
    pub auth_username: Option<String>,
    /// Digest password.
    pub password: String,
    /// Whether to REGISTER with the server.
    pub register: bool,
    /// Requested registration lifetime in seconds; refreshed at about half of what is granted.
    pub register_expires: u32,
    /// Interval of OPTIONS keep-alives to the server, if any.
    pub options_interval: Option<Duration>,
    /// User-Agent / Server header value.
    pub user_agent: String,
    /// Who may send us requests and how new INVITEs authenticate.
    pub inbound: Inbound,
}

impl fmt::Debug for UaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UaConfig")
            .field("bind", &self.bind)
            .field("server", &self.server)
            .field("domain", &self.domain)
            .field("username", &self.username)
            .field("auth_username", &self.auth_username)
            .field("password", &"<hidden>")
            .field("register", &self.register)
            .field("register_expires", &self.register_expires)
            .field("options_interval", &self.options_interval)
            .field("user_agent", &self.user_agent)
            .field("inbound", &self.inbound)
            .finish()
    }
}

/// A call, named by its SIP Call-ID.
pub type CallId = String;

/// What the user agent reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UaEvent {
    /// The registrar accepted our REGISTER for `expires` seconds.
    Registered {
        /// Granted lifetime in seconds.
        expires: u32,
    },
    /// REGISTER failed (final error, or 408 on timeout); retried with backoff.
    RegistrationFailed {
        /// Status code.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// A new incoming INVITE (100 Trying already sent).
    Incoming {
        /// The call.
        call: CallId,
        /// Caller's user part (From URI).
        from_user: String,
        /// Caller's display name.
        from_display: Option<String>,
        /// Called user (Request-URI user, else To user).
        to_user: String,
        /// The SDP offer, if the INVITE had one.
        sdp: Option<String>,
        /// Where the INVITE came from.
        source: SocketAddr,
    },
    /// A provisional response (180/183…) to our INVITE.
    Progress {
        /// The call.
        call: CallId,
        /// Status code.
        code: u16,
        /// Early-media SDP, if any.
        sdp: Option<String>,
    },
    /// A 2xx to our INVITE (already ACKed).
    Answered {
        /// The call.
        call: CallId,
        /// The SDP answer.
        sdp: Option<String>,
    },
    /// Our INVITE failed: a final non-2xx (ACKed), or 408 when nothing answered (Timer B).
    Failed {
        /// The call.
        call: CallId,
        /// Status code.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// The caller cancelled an incoming INVITE before our answer (we sent 200 and 487).
    Cancelled {
        /// The call.
        call: CallId,
    },
    /// The peer sent a re-INVITE inside a confirmed call (answered 200: recvonly to a
    /// sendonly offer, inactive to inactive, else our last SDP): hold, resume, or new media.
    Reinvite {
        /// The call.
        call: CallId,
        /// True when the peer put the call on hold (sendonly, inactive, or address 0.0.0.0).
        held: bool,
        /// The peer's new SDP, if any.
        sdp: Option<String>,
    },
    /// The peer ended a confirmed call with BYE (answered 200), or never ACKed our 2xx.
    Ended {
        /// The call.
        call: CallId,
    },
}

/// Handle to the user agent task.
#[derive(Clone)]
pub struct Ua {
    cmd: mpsc::UnboundedSender<Cmd>,
    local: SocketAddr,
    contact: SocketAddr,
    token: String,
}

enum Cmd {
    Invite {
        target: Uri,
        from_user: String,
        display: Option<String>,
        sdp: String,
        reply: oneshot::Sender<CallId>,
    },
    Cancel(CallId),
    Bye(CallId),
    Ringing(CallId, Option<String>),
    Answer(CallId, String),
    Reject(CallId, u16, String),
    Shutdown(oneshot::Sender<()>),
}

impl Ua {
    /// Binds the socket and starts the task (and registration, when configured).
    pub async fn start(cfg: UaConfig) -> Result<(Ua, mpsc::Receiver<UaEvent>), SipError> {
        let sock = UdpSocket::bind(cfg.bind).await?;
        let local = sock.local_addr()?;
        let contact = SocketAddr::new(contact_ip(local.ip(), cfg.server), local.port());
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::channel(256);
        let now = Instant::now();
        // 128 random bits, stable for the life of the process (every REGISTER carries it).
        let token = uuid_hex();
        let core = Core {
            reg: Registration {
                call_id: format!("{}@{}", uuid_hex(), contact.ip()),
                from_tag: new_tag(),
                cseq: 0,
                expires: cfg.register_expires,
                challenge: None,
                registered: false,
                in_flight: false,
                next: if cfg.register { Some(now) } else { None },
                backoff: MIN_BACKOFF,
            },
            options_next: cfg.options_interval.map(|i| now + i),
            limiter: RateLimiter::new(cfg.inbound.rate_per_source),
            cfg,
            token: token.clone(),
            nonces: NonceSource::new(uuid_hex()),
            replay: ReplayGuard::default(),
            refused: Counters::default(),
            timers: BinaryHeap::new(),
            sock: Arc::new(sock),
            contact,
            events: ev_tx,
            calls: HashMap::new(),
            client_txs: Vec::new(),
            server_cache: HashMap::new(),
            stopping: None,
        };
        info!(local = %local, contact = %contact, "SIP user agent started");
        tokio::spawn(core.run(cmd_rx));
        Ok((
            Ua {
                cmd: cmd_tx,
                local,
                contact,
                token,
            },
            ev_rx,
        ))
    }

    /// The bound UDP address (with the real port when `bind` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The address we put in Contact and Via (the bound address, or the interface toward the
    /// server when bound to a wildcard address).
    pub fn contact_addr(&self) -> SocketAddr {
        self.contact
    }

    /// The token in our Contact that INVITEs must carry with `inbound_auth = contact-token`
    /// (random, 128 bits, stable for the life of the user agent).
    pub fn contact_token(&self) -> &str {
        &self.token
    }

    /// Places a call: INVITE `target` (a `sip:` URI; the request goes to the server) from
    /// `from_user` with an optional display name and our SDP offer. Answers one 401/407 with
    /// digest credentials.
    pub async fn invite(
        &self,
        target: &str,
        from_user: &str,
        display: Option<&str>,
        sdp: String,
    ) -> Result<CallId, SipError> {
        let target = Uri::parse(target)?;
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Invite {
                target,
                from_user: from_user.to_string(),
                display: display.map(str::to_string),
                sdp,
                reply,
            })
            .map_err(|_| SipError::Closed)?;
        rx.await.map_err(|_| SipError::Closed)
    }

    /// Cancels our INVITE before its final answer (CANCEL; the 487 that follows is ACKed and
    /// reported as `Failed`).
    pub fn cancel(&self, call: &str) {
        let _ = self.cmd.send(Cmd::Cancel(call.to_string()));
    }

    /// Ends an answered call (either direction) with BYE. On a call still ringing it cancels
    /// (outgoing) or rejects with 480 (incoming).
    pub fn bye(&self, call: &str) {
        let _ = self.cmd.send(Cmd::Bye(call.to_string()));
    }

    /// Incoming call: 180 Ringing, or 183 Session Progress with SDP (early media).
    pub fn ringing(&self, call: &str, sdp: Option<String>) {
        let _ = self.cmd.send(Cmd::Ringing(call.to_string(), sdp));
    }

    /// Incoming call: 200 OK with our SDP, retransmitted until the ACK.
    pub fn answer(&self, call: &str, sdp: String) {
        let _ = self.cmd.send(Cmd::Answer(call.to_string(), sdp));
    }

    /// Incoming call: a final error response (486, 480, 404, 503…); its ACK is absorbed.
    pub fn reject(&self, call: &str, code: u16, reason: &str) {
        let _ = self
            .cmd
            .send(Cmd::Reject(call.to_string(), code, reason.to_string()));
    }

    /// Un-REGISTERs (Expires: 0) when registered, sends BYE on answered calls, then stops.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Cmd::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// The address to advertise: the bound one, or for a wildcard bind the local address the
/// kernel would use toward the server.
fn contact_ip(bound: IpAddr, server: SocketAddr) -> IpAddr {
    if !bound.is_unspecified() {
        return bound;
    }
    let probe_bind: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    std::net::UdpSocket::bind(probe_bind)
        .and_then(|s| {
            s.connect(server)?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

pub(super) fn uuid_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub(super) fn new_tag() -> String {
    uuid_hex()[..16].to_string()
}

pub(super) struct Core {
    pub(super) cfg: UaConfig,
    pub(super) sock: Arc<UdpSocket>,
    pub(super) contact: SocketAddr,
    /// The Contact token (see [`Ua::contact_token`]).
    pub(super) token: String,
    /// Issues and checks the nonces of our digest challenges.
    pub(super) nonces: NonceSource,
    /// Digest answers seen, against replay.
    pub(super) replay: ReplayGuard,
    /// Per-source token buckets.
    pub(super) limiter: RateLimiter,
    /// Refused traffic, reported once per interval.
    pub(super) refused: Counters,
    /// Retransmission and timeout timers of calls, transactions and cached responses.
    pub(super) timers: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    pub(super) events: mpsc::Sender<UaEvent>,
    pub(super) calls: HashMap<CallId, Call>,
    pub(super) client_txs: Vec<ClientTx>,
    /// Non-INVITE server transactions: our response by "branch method", for retransmissions.
    pub(super) server_cache: HashMap<String, Cached>,
    pub(super) reg: Registration,
    /// When the next OPTIONS keep-alive is due.
    pub(super) options_next: Option<Instant>,
    /// Shutdown requested: who to tell, and the latest moment to stop.
    pub(super) stopping: Option<(oneshot::Sender<()>, Instant)>,
}

enum Input {
    Datagram(std::io::Result<(usize, SocketAddr)>),
    Cmd(Option<Cmd>),
    Timer,
}

impl Core {
    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
        let sock = self.sock.clone();
        // One byte more than we take, to tell an oversized datagram from a full one.
        let mut buf = vec![0u8; MAX_DATAGRAM + 1];
        loop {
            let wake = self
                .next_deadline()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let input = tokio::select! {
                r = sock.recv_from(&mut buf) => Input::Datagram(r),
                c = cmds.recv(), if self.stopping.is_none() => Input::Cmd(c),
                _ = tokio::time::sleep_until(wake) => Input::Timer,
            };
            match input {
                Input::Datagram(Ok((n, src))) => {
                    if n > MAX_DATAGRAM {
                        self.refused
                            .count(Refusal::Oversized, src.ip(), Instant::now());
                    } else {
                        self.on_datagram(&buf[..n], src).await
                    }
                }
                Input::Datagram(Err(e)) => {
                    debug!(error = %e, "SIP socket receive error");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Input::Cmd(Some(c)) => self.on_cmd(c).await,
                Input::Cmd(None) => break,
                Input::Timer => self.on_timers().await,
            }
            if let Some((_, until)) = &self.stopping {
                let unregistering = self
                    .client_txs
                    .iter()
                    .any(|t| matches!(t.kind, TxKind::Register { .. }));
                if !unregistering || Instant::now() >= *until {
                    break;
                }
            }
        }
        if let Some((tx, _)) = self.stopping.take() {
            let _ = tx.send(());
        }
        info!("SIP user agent stopped");
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.timers.peek().map(|Reverse((t, _))| *t),
            self.reg.next,
            self.options_next,
            self.stopping.as_ref().map(|(_, t)| *t),
            self.refused.report_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(super) async fn send(&self, bytes: &[u8], dest: SocketAddr) {
        if let Err(e) = self.sock.send_to(bytes, dest).await {
            warn!(error = %e, dest = %dest, "SIP send failed");
        }
    }

    pub(super) async fn send_msg(&self, msg: &Message, dest: SocketAddr) -> Vec<u8> {
        let bytes = msg.to_bytes();
        debug!(dest = %dest, start = %crate::redact::printable(&start_line(msg)), "SIP send");
        self.send(&bytes, dest).await;
        bytes
    }

    pub(super) async fn emit(&self, ev: UaEvent) {
        debug!(event = ?ev, "SIP event");
        let _ = self.events.send(ev).await;
    }

    // ----- message building -----

    pub(super) fn via(&self, branch: &str) -> String {
        format!("SIP/2.0/UDP {};branch={branch};rport", self.contact)
    }

    pub(super) fn contact_hdr(&self) -> String {
        if self.cfg.inbound.auth == InboundAuth::ContactToken {
            format!(
                "<sip:{}@{};{TOKEN_PARAM}={}>",
                self.cfg.username, self.contact, self.token
            )
        } else {
            format!("<sip:{}@{}>", self.cfg.username, self.contact)
        }
    }

    pub(super) fn aor(&self) -> Uri {
        Uri::sip(Some(&self.cfg.username), &self.cfg.domain, None)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn new_request(
        &self,
        method: &str,
        uri: &str,
        branch: &str,
        from: &NameAddr,
        to: &NameAddr,
        call_id: &str,
        cseq: u32,
    ) -> Message {
        let mut m = Message::request(method, uri);
        m.push("Via", &self.via(branch));
        m.push("Max-Forwards", "70");
        m.push("From", &from.to_string());
        m.push("To", &to.to_string());
        m.push("Call-ID", call_id);
        m.push("CSeq", &format!("{cseq} {method}"));
        m.push("User-Agent", &self.cfg.user_agent);
        m
    }

    /// A response to `req`: Vias copied (top one with received/rport filled in, RFC 3581),
    /// From, To (with `to_tag` added when it has none), Call-ID, CSeq.
    pub(super) fn response_to(
        &self,
        req: &Message,
        src: SocketAddr,
        code: u16,
        reason: &str,
        to_tag: Option<&str>,
    ) -> Message {
        let mut r = Message::response(code, reason);
        for (i, v) in req.get_all("Via").into_iter().enumerate() {
            if i == 0 {
                if let Ok(mut via) = Via::parse(v) {
                    via.set_param("received", Some(&src.ip().to_string()));
                    if via.param("rport").is_some() {
                        via.set_param("rport", Some(&src.port().to_string()));
                    }
                    r.push("Via", &via.to_string());
                    continue;
                }
            }
            r.push("Via", v);
        }
        if let Some(f) = req.get("From") {
            r.push("From", f);
        }
        if let Some(t) = req.get("To") {
            let to = match (to_tag, NameAddr::parse(t)) {
                (Some(tag), Ok(mut na)) if na.tag().is_none() => {
                    na.set_param("tag", Some(tag));
                    na.to_string()
                }
                _ => t.to_string(),
            };
            r.push("To", &to);
        }
        if let Some(c) = req.get("Call-ID") {
            r.push("Call-ID", c);
        }
        if let Some(c) = req.get("CSeq") {
            r.push("CSeq", c);
        }
        r.push("Server", &self.cfg.user_agent);
        r
    }

    // ----- commands -----

    async fn on_cmd(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Invite {
                target,
                from_user,
                display,
                sdp,
                reply,
            } => {
                let id = self
                    .start_invite(target, &from_user, display.as_deref(), sdp)
                    .await;
                let _ = reply.send(id);
            }
            Cmd::Cancel(id) => self.cancel(&id).await,
            Cmd::Bye(id) => self.bye(&id).await,
            Cmd::Ringing(id, sdp) => self.ringing(&id, sdp).await,
            Cmd::Answer(id, sdp) => self.answer(&id, sdp).await,
            Cmd::Reject(id, code, reason) => {
                let code = if (300..=699).contains(&code) {
                    code
                } else {
                    500
                };
                self.uas_final_error(&id, code, &reason).await;
            }
            Cmd::Shutdown(reply) => self.shutdown(reply).await,
        }
    }

    async fn shutdown(&mut self, reply: oneshot::Sender<()>) {
        let confirmed: Vec<CallId> = self
            .calls
            .values()
            .filter(|c| c.state == CallState::Confirmed)
            .map(|c| c.id.clone())
            .collect();
        for id in confirmed {
            self.send_bye(&id).await;
        }
        self.options_next = None;
        self.reg.next = None;
        self.client_txs
            .retain(|t| !matches!(t.kind, TxKind::Register { .. }));
        if self.reg.registered {
            self.reg.registered = false;
            self.send_register(0, 0).await;
        }
        self.stopping = Some((reply, Instant::now() + SHUTDOWN_WAIT));
    }

    // ----- incoming -----

    async fn on_datagram(&mut self, data: &[u8], src: SocketAddr) {
        if data.iter().all(|b| b.is_ascii_whitespace()) {
            return; // CRLF keep-alive
        }
        let now = Instant::now();
        if !self.limiter.allow(src.ip(), now) {
            self.refused.count(Refusal::RateLimited, src.ip(), now);
            return;
        }
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(_) => {
                self.refused.count(Refusal::Malformed, src.ip(), now);
                return;
            }
        };
        if msg.is_request() && !self.cfg.inbound.is_trusted(src.ip()) && !self.in_known_dialog(&msg)
        {
            // Stateless: no transaction, no 100 Trying, no retransmission, one summary line
            // per interval.
            self.refused.count(Refusal::Untrusted, src.ip(), now);
            if self.cfg.inbound.untrusted == Untrusted::Reject && msg.method() != Some("ACK") {
                self.respond_stateless(&msg, src, 403, "Forbidden", None)
                    .await;
            }
            return;
        }
        debug!(src = %src, start = %crate::redact::printable(&start_line(&msg)), "SIP recv");
        if msg.is_request() {
            self.on_request(msg, src).await;
        } else {
            self.on_response(msg).await;
        }
    }

    async fn on_request(&mut self, req: Message, src: SocketAddr) {
        let method = req.method().unwrap_or_default().to_string();
        let valid = req.top_via().is_ok()
            && req.call_id().is_ok()
            && req.from_hdr().is_ok()
            && req.to_hdr().is_ok()
            && req.cseq().is_ok_and(|(_, m)| m == method);
        if !valid {
            if method != "ACK" {
                self.respond_stateless(&req, src, 400, "Bad Request", None)
                    .await;
            }
            return;
        }
        if method == "ACK" {
            self.on_ack(&req).await;
            return;
        }
        if method != "INVITE" {
            if let Some(branch) = req.branch() {
                if let Some(c) = self.server_cache.get(&format!("{branch} {method}")) {
                    let (bytes, dest) = (c.bytes.clone(), c.dest);
                    self.send(&bytes, dest).await;
                    return;
                }
            }
        }
        match method.as_str() {
            "INVITE" => self.on_invite(req, src).await,
            "CANCEL" => self.on_cancel(&req, src).await,
            "BYE" => self.on_bye(&req, src).await,
            "OPTIONS" => {
                let mut r = self.response_to(&req, src, 200, "OK", Some(&new_tag()));
                r.push("Allow", ALLOW);
                r.push("Accept", "application/sdp");
                let bytes = self.send_msg(&r, src).await;
                if let Some(branch) = req.branch() {
                    self.cache_response(format!("{branch} OPTIONS"), bytes, src);
                }
            }
            m => {
                let in_dialog = req.to_hdr().is_ok_and(|t| t.tag().is_some());
                let known_dialog = req.call_id().is_ok_and(|c| self.calls.contains_key(c));
                if in_dialog && !known_dialog {
                    self.respond_stateless(&req, src, 481, "Call/Transaction Does Not Exist", None)
                        .await;
                } else if KNOWN_METHODS.contains(&m) {
                    let mut r =
                        self.response_to(&req, src, 405, "Method Not Allowed", Some(&new_tag()));
                    r.push("Allow", ALLOW);
                    self.send_msg(&r, src).await;
                } else {
                    self.respond(&req, src, 501, "Not Implemented").await;
                }
            }
        }
    }
}

/// The body when it is SDP (Content-Type application/sdp, or none given).
fn sdp_body(m: &Message) -> Option<String> {
    let is_sdp = m.get("Content-Type").is_none_or(|t| {
        t.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp"))
    });
    if is_sdp {
        m.body_str().map(str::to_string)
    } else {
        None
    }
}

fn start_line(m: &Message) -> String {
    match &m.start {
        super::msg::StartLine::Request { method, uri } => format!("{method} {uri}"),
        super::msg::StartLine::Response { code, reason } => format!("{code} {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_debug_hides_password() {
        let cfg = UaConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            server: "127.0.0.1:5060".parse().unwrap(),
            domain: "pbx".into(),
            username: "gw".into(),
            auth_username: None,
            password: "s3cret".into(),
            register: false,
            register_expires: 300,
            options_interval: None,
            user_agent: "gsmgw".into(),
            inbound: Inbound {
                auth: InboundAuth::Digest {
                    username: "pbx".into(),
                    password: "in-s3cret".into(),
                },
                ..Inbound::default()
            },
        };
        let text = format!("{cfg:?}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}
