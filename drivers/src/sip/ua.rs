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
use super::digest::{Challenge, Credentials, NonceCheck, NonceSource};
use super::guard::{
    Counters, Inbound, InboundAuth, MAX_DATAGRAM, NONCE_LIFETIME_SECS, RateLimiter, Refusal,
    ReplayGuard, Untrusted,
};
use super::msg::{Message, NameAddr, Uri, Via};

/// RTT estimate (RFC 3261 T1).
const T1: Duration = Duration::from_millis(500);
/// Maximum retransmit interval for non-INVITE requests and INVITE responses (T2).
const T2: Duration = Duration::from_secs(4);
/// Transaction timeout, 64·T1 (Timers B, F, H, J).
const TIMEOUT: Duration = Duration::from_secs(32);
/// How long `shutdown` waits for the un-REGISTER to complete.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);
/// First re-REGISTER delay after a failure; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// Longest re-REGISTER delay after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Most Record-Route entries a dialog keeps; an INVITE with more is refused (400).
const MAX_ROUTES: usize = 16;
/// The Contact URI parameter carrying the inbound token (`inbound_auth = contact-token`).
pub const TOKEN_PARAM: &str = "gwtoken";
/// The realm of our digest challenges.
pub const REALM: &str = "gsmgw";
/// What we accept (Allow header).
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS";
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

fn uuid_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn new_tag() -> String {
    uuid_hex()[..16].to_string()
}

fn new_branch() -> String {
    format!("z9hG4bK{}", uuid_hex())
}

/// A retransmission timer (A for our INVITE, G for our final responses, E for non-INVITE).
struct Retx {
    bytes: Vec<u8>,
    dest: SocketAddr,
    next: Instant,
    interval: Duration,
    cap: Duration,
}

impl Retx {
    fn new(bytes: Vec<u8>, dest: SocketAddr, cap: Duration) -> Retx {
        Retx {
            bytes,
            dest,
            next: Instant::now() + T1,
            interval: T1,
            cap,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Uac,
    Uas,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// UAC: INVITE sent, nothing heard (Timer A/B running).
    Calling,
    /// UAC: a provisional response arrived.
    Proceeding,
    /// UAC: final error ACKed; absorbing retransmissions (Timer D).
    UacFailed,
    /// UAS: INVITE received, no final response yet.
    Incoming,
    /// UAS: 2xx sent, waiting for the ACK (Timer G/H).
    UasAnswered,
    /// UAS: final error sent, waiting for the ACK.
    UasRejected,
    /// Dialog confirmed (either role).
    Confirmed,
    /// Our BYE is in flight.
    Terminating,
}

struct Call {
    id: CallId,
    role: Role,
    state: CallState,
    /// Our side of the dialog (From for UAC, To for UAS), with our tag.
    local: NameAddr,
    /// The peer's side, with its tag once known.
    remote: NameAddr,
    local_cseq: u32,
    remote_target: String,
    route_set: Vec<String>,
    /// Where the INVITE went (UAC: the server) or came from (UAS): its transaction's peer.
    dest: SocketAddr,
    /// Where in-dialog requests go: the first route's address, else `dest`.
    hop: SocketAddr,
    /// The INVITE (ours for UAC — the last one sent —, the peer's for UAS).
    invite: Message,
    invite_branch: String,
    invite_cseq: u32,
    auth_tried: bool,
    cancel_requested: bool,
    retx: Option<Retx>,
    deadline: Option<Instant>,
    /// ACK sent for the 2xx, resent when the 2xx is retransmitted.
    ack: Option<Vec<u8>>,
    /// UAS: the last response to the INVITE, resent on INVITE retransmissions.
    last_response: Option<Vec<u8>>,
    /// The SDP we last sent (offer or answer); reused for re-INVITEs.
    local_sdp: Option<String>,
    /// UAS: the last re-INVITE (branch, CSeq) and our answer to it.
    reinvite: Option<(String, u32, Vec<u8>)>,
    /// UAS: BYE requested while the ACK for our 2xx was outstanding.
    bye_after_ack: bool,
}

enum TxKind {
    Register { expires: u32, auth_round: u8 },
    Options,
    Bye,
    Cancel,
}

/// A non-INVITE client transaction (Timers E and F).
struct ClientTx {
    branch: String,
    method: &'static str,
    call: Option<CallId>,
    kind: TxKind,
    retx: Retx,
    deadline: Instant,
}

struct Registration {
    call_id: String,
    from_tag: String,
    cseq: u32,
    expires: u32,
    /// The last challenge, whether it came in a 407, and its nonce count.
    challenge: Option<(Challenge, bool, u32)>,
    registered: bool,
    in_flight: bool,
    next: Option<Instant>,
    backoff: Duration,
}

struct Cached {
    bytes: Vec<u8>,
    dest: SocketAddr,
    until: Instant,
}

/// What a timer in the heap belongs to; checked against the owner's own times when it fires
/// (an entry whose owner is gone or was re-armed is stale and skipped).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Call(CallId),
    Tx(String),
    Cache(String),
}

/// Whether a request's dialog identifiers (Call-ID aside) are this call's: the To tag is ours,
/// the From tag the peer's (RFC 3261 §12.2.2).
fn same_dialog(call: &Call, req: &Message) -> bool {
    let to_tag = req.to_hdr().ok().and_then(|t| t.tag().map(str::to_string));
    let from_tag = req
        .from_hdr()
        .ok()
        .and_then(|f| f.tag().map(str::to_string));
    to_tag.is_some()
        && to_tag.as_deref() == call.local.tag()
        && from_tag.as_deref() == call.remote.tag()
}

struct Core {
    cfg: UaConfig,
    sock: Arc<UdpSocket>,
    contact: SocketAddr,
    /// The Contact token (see [`Ua::contact_token`]).
    token: String,
    /// Issues and checks the nonces of our digest challenges.
    nonces: NonceSource,
    /// Digest answers seen, against replay.
    replay: ReplayGuard,
    /// Per-source token buckets.
    limiter: RateLimiter,
    /// Refused traffic, reported once per interval.
    refused: Counters,
    /// Retransmission and timeout timers of calls, transactions and cached responses.
    timers: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    events: mpsc::Sender<UaEvent>,
    calls: HashMap<CallId, Call>,
    client_txs: Vec<ClientTx>,
    /// Non-INVITE server transactions: our response by "branch method", for retransmissions.
    server_cache: HashMap<String, Cached>,
    reg: Registration,
    /// When the next OPTIONS keep-alive is due.
    options_next: Option<Instant>,
    /// Shutdown requested: who to tell, and the latest moment to stop.
    stopping: Option<(oneshot::Sender<()>, Instant)>,
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

    /// Puts a timer for `key` at `at` into the heap.
    fn arm(&mut self, at: Instant, key: TimerKey) {
        self.timers.push(Reverse((at, key)));
    }

    /// Arms the call's retransmission and deadline timers (after either was set).
    fn arm_call(&mut self, id: &str) {
        let Some(c) = self.calls.get(id) else {
            return;
        };
        let times = [c.retx.as_ref().map(|r| r.next), c.deadline];
        for t in times.into_iter().flatten() {
            self.arm(t, TimerKey::Call(id.to_string()));
        }
    }

    /// Starts a non-INVITE client transaction and arms its timers.
    fn push_tx(&mut self, tx: ClientTx) {
        let (next, deadline, key) = (tx.retx.next, tx.deadline, tx.branch.clone());
        self.client_txs.push(tx);
        self.arm(next, TimerKey::Tx(key.clone()));
        self.arm(deadline, TimerKey::Tx(key));
    }

    /// Keeps our response to a non-INVITE request for its retransmissions.
    fn cache_response(&mut self, key: String, bytes: Vec<u8>, dest: SocketAddr) {
        let until = Instant::now() + TIMEOUT;
        self.server_cache
            .insert(key.clone(), Cached { bytes, dest, until });
        self.arm(until, TimerKey::Cache(key));
    }

    async fn send(&self, bytes: &[u8], dest: SocketAddr) {
        if let Err(e) = self.sock.send_to(bytes, dest).await {
            warn!(error = %e, dest = %dest, "SIP send failed");
        }
    }

    async fn send_msg(&self, msg: &Message, dest: SocketAddr) -> Vec<u8> {
        let bytes = msg.to_bytes();
        debug!(dest = %dest, start = %crate::redact::printable(&start_line(msg)), "SIP send");
        self.send(&bytes, dest).await;
        bytes
    }

    async fn emit(&self, ev: UaEvent) {
        debug!(event = ?ev, "SIP event");
        let _ = self.events.send(ev).await;
    }

    // ----- message building -----

    fn via(&self, branch: &str) -> String {
        format!("SIP/2.0/UDP {};branch={branch};rport", self.contact)
    }

    fn contact_hdr(&self) -> String {
        if self.cfg.inbound.auth == InboundAuth::ContactToken {
            format!(
                "<sip:{}@{};{TOKEN_PARAM}={}>",
                self.cfg.username, self.contact, self.token
            )
        } else {
            format!("<sip:{}@{}>", self.cfg.username, self.contact)
        }
    }

    fn aor(&self) -> Uri {
        Uri::sip(Some(&self.cfg.username), &self.cfg.domain, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn new_request(
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
    fn response_to(
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

    /// A request inside `call`'s dialog (loose routing; strict routing when the first route
    /// lacks `;lr`).
    fn dialog_request(&self, call: &Call, method: &str, cseq: u32, branch: &str) -> Message {
        let mut uri = call.remote_target.clone();
        let mut routes = call.route_set.clone();
        if let Some(first) = routes.first() {
            let loose = NameAddr::parse(first)
                .map(|n| n.uri.param("lr").is_some())
                .unwrap_or(true);
            if !loose {
                let first = routes.remove(0);
                routes.push(format!("<{uri}>"));
                uri = NameAddr::parse(&first)
                    .map(|n| n.uri.to_string())
                    .unwrap_or(first);
            }
        }
        let mut m = self.new_request(
            method,
            &uri,
            branch,
            &call.local,
            &call.remote,
            &call.id,
            cseq,
        );
        for r in &routes {
            m.push("Route", r);
        }
        m
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

    async fn start_invite(
        &mut self,
        target: Uri,
        from_user: &str,
        display: Option<&str>,
        sdp: String,
    ) -> CallId {
        let id = format!("{}@{}", uuid_hex(), self.contact.ip());
        let mut local = NameAddr::new(display, Uri::sip(Some(from_user), &self.cfg.domain, None));
        local.set_param("tag", Some(&new_tag()));
        let remote = NameAddr::new(None, target.clone());
        let branch = new_branch();
        let uri = target.to_string();
        let mut m = self.new_request("INVITE", &uri, &branch, &local, &remote, &id, 1);
        m.push("Contact", &self.contact_hdr());
        m.push("Allow", ALLOW);
        m.push("Content-Type", "application/sdp");
        m.body = sdp.clone().into_bytes();
        let dest = self.cfg.server;
        let bytes = self.send_msg(&m, dest).await;
        let call = Call {
            id: id.clone(),
            role: Role::Uac,
            state: CallState::Calling,
            local,
            remote,
            local_cseq: 1,
            remote_target: uri,
            route_set: Vec::new(),
            dest,
            hop: dest,
            invite: m,
            invite_branch: branch,
            invite_cseq: 1,
            auth_tried: false,
            cancel_requested: false,
            retx: Some(Retx::new(bytes, dest, Duration::MAX)),
            deadline: Some(Instant::now() + TIMEOUT),
            ack: None,
            last_response: None,
            local_sdp: Some(sdp),
            reinvite: None,
            bye_after_ack: false,
        };
        info!(call = %id, "SIP INVITE sent");
        self.calls.insert(id.clone(), call);
        self.arm_call(&id);
        id
    }

    async fn cancel(&mut self, id: &str) {
        let Some(call) = self.calls.get_mut(id) else {
            debug!(call = %id, "cancel: no such call");
            return;
        };
        if call.role != Role::Uac {
            debug!(call = %id, "cancel: not an outgoing call");
            return;
        }
        match call.state {
            CallState::Calling => {
                // RFC 3261 §9.1: no CANCEL before a provisional response; sent on the first one.
                call.cancel_requested = true;
            }
            CallState::Proceeding if !call.cancel_requested => {
                call.cancel_requested = true;
                self.send_cancel(id).await;
            }
            _ => debug!(call = %id, "cancel: call is past its answer"),
        }
    }

    async fn send_cancel(&mut self, id: &str) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let inv = &call.invite;
        let mut m = Message::request("CANCEL", inv.uri().unwrap_or_default());
        for (n, v) in &inv.headers {
            let keep = ["Via", "From", "To", "Call-ID", "Route", "Max-Forwards"]
                .iter()
                .any(|h| super::msg::same_header(n, h));
            if keep {
                m.push(n, v);
            }
        }
        m.set("CSeq", &format!("{} CANCEL", call.invite_cseq));
        m.push("User-Agent", &self.cfg.user_agent);
        // No final answer within 64·T1 after CANCEL ends the INVITE transaction (RFC 3261 §9.1).
        call.deadline = Some(Instant::now() + TIMEOUT);
        let branch = call.invite_branch.clone();
        let dest = call.dest;
        self.arm_call(id);
        let bytes = self.send_msg(&m, dest).await;
        self.push_tx(ClientTx {
            branch,
            method: "CANCEL",
            call: Some(id.to_string()),
            kind: TxKind::Cancel,
            retx: Retx::new(bytes, dest, T2),
            deadline: Instant::now() + TIMEOUT,
        });
    }

    async fn bye(&mut self, id: &str) {
        let Some(call) = self.calls.get_mut(id) else {
            debug!(call = %id, "bye: no such call");
            return;
        };
        match call.state {
            CallState::Confirmed => self.send_bye(id).await,
            CallState::UasAnswered => call.bye_after_ack = true,
            CallState::Calling | CallState::Proceeding => self.cancel(id).await,
            CallState::Incoming => {
                self.uas_final_error(id, 480, "Temporarily Unavailable")
                    .await
            }
            _ => debug!(call = %id, "bye: call already ending"),
        }
    }

    async fn send_bye(&mut self, id: &str) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        call.local_cseq += 1;
        call.state = CallState::Terminating;
        call.retx = None;
        call.deadline = None;
        let cseq = call.local_cseq;
        let dest = call.hop;
        let branch = new_branch();
        let Some(call) = self.calls.get(id) else {
            return;
        };
        let m = self.dialog_request(call, "BYE", cseq, &branch);
        let bytes = self.send_msg(&m, dest).await;
        info!(call = %id, "SIP BYE sent");
        self.push_tx(ClientTx {
            branch,
            method: "BYE",
            call: Some(id.to_string()),
            kind: TxKind::Bye,
            retx: Retx::new(bytes, dest, T2),
            deadline: Instant::now() + TIMEOUT,
        });
    }

    async fn ringing(&mut self, id: &str, sdp: Option<String>) {
        let Some(call) = self.calls.get(id) else {
            debug!(call = %id, "ringing: no such call");
            return;
        };
        if call.state != CallState::Incoming {
            debug!(call = %id, "ringing: call is not ringing");
            return;
        }
        let (code, reason) = if sdp.is_some() {
            (183, "Session Progress")
        } else {
            (180, "Ringing")
        };
        let tag = call.local.tag().map(str::to_string);
        let mut r = self.response_to(&call.invite, call.dest, code, reason, tag.as_deref());
        copy_record_route(&call.invite, &mut r);
        r.push("Contact", &self.contact_hdr());
        if let Some(s) = &sdp {
            r.push("Content-Type", "application/sdp");
            r.body = s.clone().into_bytes();
        }
        let dest = call.dest;
        let bytes = self.send_msg(&r, dest).await;
        if let Some(call) = self.calls.get_mut(id) {
            call.last_response = Some(bytes);
            if sdp.is_some() {
                call.local_sdp = sdp;
            }
        }
    }

    async fn answer(&mut self, id: &str, sdp: String) {
        let Some(call) = self.calls.get(id) else {
            debug!(call = %id, "answer: no such call");
            return;
        };
        if call.state != CallState::Incoming {
            debug!(call = %id, "answer: call is not ringing");
            return;
        }
        let tag = call.local.tag().map(str::to_string);
        let mut r = self.response_to(&call.invite, call.dest, 200, "OK", tag.as_deref());
        copy_record_route(&call.invite, &mut r);
        r.push("Contact", &self.contact_hdr());
        r.push("Allow", ALLOW);
        r.push("Content-Type", "application/sdp");
        r.body = sdp.clone().into_bytes();
        let dest = call.dest;
        let bytes = self.send_msg(&r, dest).await;
        if let Some(call) = self.calls.get_mut(id) {
            call.state = CallState::UasAnswered;
            call.last_response = Some(bytes.clone());
            call.retx = Some(Retx::new(bytes, dest, T2));
            call.deadline = Some(Instant::now() + TIMEOUT);
            call.local_sdp = Some(sdp);
        }
        self.arm_call(id);
        info!(call = %id, "SIP call answered");
    }

    /// A final error to an incoming INVITE, retransmitted until the ACK.
    async fn uas_final_error(&mut self, id: &str, code: u16, reason: &str) {
        let Some(call) = self.calls.get(id) else {
            debug!(call = %id, "reject: no such call");
            return;
        };
        if call.state != CallState::Incoming {
            debug!(call = %id, "reject: call is not ringing");
            return;
        }
        let tag = call.local.tag().map(str::to_string);
        let r = self.response_to(&call.invite, call.dest, code, reason, tag.as_deref());
        let dest = call.dest;
        let bytes = self.send_msg(&r, dest).await;
        if let Some(call) = self.calls.get_mut(id) {
            call.state = CallState::UasRejected;
            call.last_response = Some(bytes.clone());
            call.retx = Some(Retx::new(bytes, dest, T2));
            call.deadline = Some(Instant::now() + TIMEOUT);
        }
        self.arm_call(id);
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

    // ----- registration -----

    async fn send_register(&mut self, expires: u32, auth_round: u8) {
        self.reg.cseq += 1;
        self.reg.in_flight = true;
        let uri = format!("sip:{}", self.cfg.domain);
        let mut from = NameAddr::new(None, self.aor());
        from.set_param("tag", Some(&self.reg.from_tag));
        let to = NameAddr::new(None, self.aor());
        let branch = new_branch();
        let mut m = self.new_request(
            "REGISTER",
            &uri,
            &branch,
            &from,
            &to,
            &self.reg.call_id,
            self.reg.cseq,
        );
        m.push("Contact", &self.contact_hdr());
        m.push("Expires", &expires.to_string());
        m.push("Allow", ALLOW);
        if let Some((ch, proxy, nc)) = self.reg.challenge.as_mut() {
            *nc += 1;
            let user = self
                .cfg
                .auth_username
                .as_deref()
                .unwrap_or(&self.cfg.username);
            let value =
                ch.authorization(user, &self.cfg.password, "REGISTER", &uri, *nc, &new_tag());
            let name = if *proxy {
                "Proxy-Authorization"
            } else {
                "Authorization"
            };
            m.push(name, &value);
        }
        let dest = self.cfg.server;
        let bytes = self.send_msg(&m, dest).await;
        self.push_tx(ClientTx {
            branch,
            method: "REGISTER",
            call: None,
            kind: TxKind::Register {
                expires,
                auth_round,
            },
            retx: Retx::new(bytes, dest, T2),
            deadline: Instant::now() + TIMEOUT,
        });
    }

    async fn on_register_response(&mut self, resp: Option<&Message>, expires: u32, auth_round: u8) {
        self.reg.in_flight = false;
        let (code, reason) = match resp {
            Some(r) => (
                r.code().unwrap_or(500),
                r.reason().unwrap_or("").to_string(),
            ),
            None => (408, "Request Timeout".to_string()),
        };
        if (code == 401 || code == 407) && auth_round < 2 {
            if let Some(r) = resp {
                if let Some(ch) = pick_challenge(r, code) {
                    self.reg.challenge = Some((ch, code == 407, 0));
                    self.send_register(expires, auth_round + 1).await;
                    return;
                }
            }
        }
        if code == 423 && auth_round < 2 {
            if let Some(min) = resp
                .and_then(|r| r.get("Min-Expires"))
                .and_then(|v| v.trim().parse::<u32>().ok())
            {
                if min > expires {
                    self.reg.expires = min;
                    self.send_register(min, auth_round + 1).await;
                    return;
                }
            }
        }
        if expires == 0 {
            debug!(code, "un-REGISTER finished");
            return;
        }
        if (200..300).contains(&code) {
            let granted = resp.map_or(expires, |r| self.granted_expires(r, expires));
            self.reg.registered = true;
            self.reg.backoff = MIN_BACKOFF;
            let refresh = Duration::from_secs(u64::from((granted / 2).max(1)));
            self.reg.next = Some(Instant::now() + refresh);
            info!(expires = granted, "SIP registered");
            self.emit(UaEvent::Registered { expires: granted }).await;
        } else {
            self.reg.registered = false;
            let backoff = self.reg.backoff;
            self.reg.next = Some(Instant::now() + backoff);
            self.reg.backoff = (backoff * 2).min(MAX_BACKOFF);
            warn!(code, reason = %crate::redact::printable(&reason), retry_in = ?backoff, "SIP registration failed");
            self.emit(UaEvent::RegistrationFailed { code, reason })
                .await;
        }
    }

    /// The lifetime the registrar granted our contact: its `expires` parameter, else the
    /// Expires header, else what we asked for.
    fn granted_expires(&self, resp: &Message, asked: u32) -> u32 {
        for c in resp.get_all("Contact") {
            let Ok(na) = NameAddr::parse(c) else { continue };
            let ours = na.uri.user_name() == Some(self.cfg.username.as_str())
                && na.uri.host.trim_matches(|c| c == '[' || c == ']')
                    == self.contact.ip().to_string()
                && na.uri.port.unwrap_or(5060) == self.contact.port();
            if ours {
                if let Some(e) = na.param("expires").flatten().and_then(|v| v.parse().ok()) {
                    return e;
                }
            }
        }
        resp.get("Expires")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(asked)
    }

    async fn send_options(&mut self) {
        let uri = format!("sip:{}", self.cfg.domain);
        let mut from = NameAddr::new(None, self.aor());
        from.set_param("tag", Some(&new_tag()));
        let to = NameAddr::new(None, Uri::sip(None, &self.cfg.domain, None));
        let branch = new_branch();
        let call_id = format!("{}@{}", uuid_hex(), self.contact.ip());
        let mut m = self.new_request("OPTIONS", &uri, &branch, &from, &to, &call_id, 1);
        m.push("Contact", &self.contact_hdr());
        m.push("Accept", "application/sdp");
        let dest = self.cfg.server;
        let bytes = self.send_msg(&m, dest).await;
        self.push_tx(ClientTx {
            branch,
            method: "OPTIONS",
            call: None,
            kind: TxKind::Options,
            retx: Retx::new(bytes, dest, T2),
            deadline: Instant::now() + TIMEOUT,
        });
    }

    // ----- timers -----

    async fn on_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, key))) = self.timers.pop() else {
                break;
            };
            match key {
                TimerKey::Tx(branch) => self.tx_timer(&branch, now).await,
                TimerKey::Call(id) => self.call_timer(&id, now).await,
                TimerKey::Cache(k) => {
                    if self.server_cache.get(&k).is_some_and(|c| c.until <= now) {
                        self.server_cache.remove(&k);
                    }
                }
            }
        }
        if self.timers.is_empty() && self.timers.capacity() > 1024 {
            // A burst is over: give its memory back.
            self.timers.shrink_to_fit();
            self.server_cache.shrink_to_fit();
            self.calls.shrink_to_fit();
        }
        // Registration refresh / retry.
        if self.reg.next.is_some_and(|t| now >= t) {
            self.reg.next = None;
            if !self.reg.in_flight {
                let expires = self.reg.expires;
                self.send_register(expires, 0).await;
            }
        }
        if self.options_next.is_some_and(|t| now >= t) {
            self.options_next = self.cfg.options_interval.map(|i| now + i);
            self.send_options().await;
        }
        if self.refused.report_at.is_some_and(|t| now >= t) {
            if let Some(line) = self.refused.take_report() {
                warn!("{line}");
            }
            self.limiter.sweep(now);
        }
    }

    /// Timer E (retransmit) and F (timeout) of a non-INVITE client transaction.
    async fn tx_timer(&mut self, branch: &str, now: Instant) {
        let Some(i) = self.client_txs.iter().position(|t| t.branch == branch) else {
            return;
        };
        if now >= self.client_txs[i].deadline {
            let tx = self.client_txs.remove(i);
            self.on_client_final(tx, None).await;
            return;
        }
        let r = &mut self.client_txs[i].retx;
        if now >= r.next {
            r.interval = (r.interval * 2).min(r.cap);
            r.next = now + r.interval;
            let (bytes, dest, next) = (r.bytes.clone(), r.dest, r.next);
            self.arm(next, TimerKey::Tx(branch.to_string()));
            self.send(&bytes, dest).await;
        }
    }

    /// A call's retransmission and deadline.
    async fn call_timer(&mut self, id: &str, now: Instant) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let mut resend = None;
        if let Some(r) = call.retx.as_mut() {
            if now >= r.next {
                r.interval = r.interval.saturating_mul(2).min(r.cap);
                r.next = now + r.interval;
                resend = Some((r.bytes.clone(), r.dest, r.next));
            }
        }
        let expired = call.deadline.is_some_and(|d| now >= d);
        if let Some((bytes, dest, next)) = resend {
            self.arm(next, TimerKey::Call(id.to_string()));
            self.send(&bytes, dest).await;
        }
        if expired {
            self.on_call_deadline(id).await;
        }
    }

    async fn on_call_deadline(&mut self, id: &str) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        call.deadline = None;
        match call.state {
            CallState::Calling => {
                // Timer B: nothing answered our INVITE.
                self.calls.remove(id);
                warn!(call = %id, "SIP INVITE timed out");
                self.emit(UaEvent::Failed {
                    call: id.to_string(),
                    code: 408,
                    reason: "Request Timeout".into(),
                })
                .await;
            }
            CallState::Proceeding => {
                // CANCEL sent but the INVITE never completed.
                self.calls.remove(id);
                self.emit(UaEvent::Failed {
                    call: id.to_string(),
                    code: 487,
                    reason: "Request Terminated".into(),
                })
                .await;
            }
            CallState::UacFailed | CallState::UasRejected => {
                self.calls.remove(id);
            }
            CallState::UasAnswered => {
                // Timer H: our 2xx was never ACKed; end the dialog (RFC 3261 §13.3.1.4).
                let asked = call.bye_after_ack;
                warn!(call = %id, "no ACK for our 2xx; sending BYE");
                call.state = CallState::Confirmed;
                self.send_bye(id).await;
                if !asked {
                    self.emit(UaEvent::Ended {
                        call: id.to_string(),
                    })
                    .await;
                }
            }
            CallState::Confirmed => {
                // Our 2xx to a re-INVITE was never ACKed; stop retransmitting.
                call.retx = None;
            }
            CallState::Incoming | CallState::Terminating => {}
        }
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

    /// Whether `req` belongs to one of our dialogs (Call-ID and both tags).
    fn in_known_dialog(&self, req: &Message) -> bool {
        req.call_id()
            .ok()
            .and_then(|c| self.calls.get(c))
            .is_some_and(|c| same_dialog(c, req))
    }

    /// Answers `req` once and keeps nothing (no transaction, no cache): for refusals, where a
    /// retransmitted request simply gets the same answer again.
    async fn respond_stateless(
        &self,
        req: &Message,
        src: SocketAddr,
        code: u16,
        reason: &str,
        extra: Option<(&str, &str)>,
    ) {
        if req.top_via().is_err() {
            return; // nowhere to answer
        }
        let mut r = self.response_to(req, src, code, reason, Some(&new_tag()));
        if let Some((name, value)) = extra {
            r.push(name, value);
        }
        // To the source address (RFC 3581), like every response we send.
        self.send(&r.to_bytes(), src).await;
    }

    async fn respond(&mut self, req: &Message, src: SocketAddr, code: u16, reason: &str) {
        let r = self.response_to(req, src, code, reason, Some(&new_tag()));
        let bytes = self.send_msg(&r, src).await;
        if let (Some(branch), Some(method)) = (req.branch(), req.method()) {
            if method != "INVITE" {
                self.cache_response(format!("{branch} {method}"), bytes, src);
            }
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

    async fn on_invite(&mut self, req: Message, src: SocketAddr) {
        let (Ok(call_id), Ok(to), Ok(from), Ok((cseq, _))) =
            (req.call_id(), req.to_hdr(), req.from_hdr(), req.cseq())
        else {
            return;
        };
        let call_id = call_id.to_string();
        let branch = req.branch().unwrap_or_default();
        if to.tag().is_some() {
            self.on_reinvite(&req, src, &call_id, cseq, &branch).await;
            return;
        }
        if let Some(call) = self.calls.get(&call_id) {
            if call.role == Role::Uas && call.invite_branch == branch && call.invite_cseq == cseq {
                // Retransmission: repeat our last response, no new event.
                if let Some(bytes) = call.last_response.clone() {
                    let dest = call.dest;
                    self.send(&bytes, dest).await;
                }
            } else {
                self.respond(&req, src, 482, "Loop Detected").await;
            }
            return;
        }
        if !self.authenticate(&req, src).await {
            return;
        }
        let route_set = match record_route(&req) {
            Ok(r) => r,
            Err(why) => {
                debug!(call = %call_id, src = %src, why, "INVITE refused");
                self.respond(&req, src, 400, why).await;
                return;
            }
        };
        let trying = self.response_to(&req, src, 100, "Trying", None);
        let trying = self.send_msg(&trying, src).await;
        let mut local = to.clone();
        local.set_param("tag", Some(&new_tag()));
        let remote_target = req
            .get_all("Contact")
            .first()
            .and_then(|c| NameAddr::parse(c).ok())
            .map(|n| n.uri.to_string())
            .unwrap_or_else(|| from.uri.to_string());
        let hop = route_hop(&route_set).unwrap_or(src);
        // The Request-URI's user, unless it is our own Contact user (a registrar that routes
        // to the registered Contact keeps the number in To only).
        let to_user = req
            .uri()
            .and_then(|u| Uri::parse(u).ok())
            .and_then(|u| u.user_name().map(str::to_string))
            .filter(|u| *u != self.cfg.username)
            .or_else(|| to.uri.user_name().map(str::to_string))
            .unwrap_or_default();
        let event = UaEvent::Incoming {
            call: call_id.clone(),
            from_user: from.uri.user_name().unwrap_or_default().to_string(),
            from_display: from.display.clone(),
            to_user,
            sdp: sdp_body(&req),
            source: src,
        };
        let call = Call {
            id: call_id.clone(),
            role: Role::Uas,
            state: CallState::Incoming,
            local,
            remote: from,
            local_cseq: 0,
            remote_target,
            route_set,
            dest: src,
            hop,
            invite: req,
            invite_branch: branch,
            invite_cseq: cseq,
            auth_tried: false,
            cancel_requested: false,
            retx: None,
            deadline: None,
            ack: None,
            last_response: Some(trying),
            local_sdp: None,
            reinvite: None,
            bye_after_ack: false,
        };
        self.calls.insert(call_id.clone(), call);
        info!(call = %crate::redact::printable(&call_id), src = %src, "SIP incoming INVITE");
        self.emit(event).await;
    }

    /// Whether a new INVITE proves it comes from the PBX (`inbound_auth`); when it does not, it
    /// has been answered statelessly (403, or 407 with a fresh challenge) and counted.
    async fn authenticate(&mut self, req: &Message, src: SocketAddr) -> bool {
        let now = Instant::now();
        match self.cfg.inbound.auth.clone() {
            InboundAuth::Ip => true,
            InboundAuth::ContactToken => {
                let ok = req
                    .uri()
                    .and_then(|u| Uri::parse(u).ok())
                    .and_then(|u| u.param(TOKEN_PARAM).flatten().map(str::to_string))
                    .is_some_and(|t| {
                        super::digest::constant_time_eq(t.as_bytes(), self.token.as_bytes())
                    });
                if !ok {
                    self.refused.count(Refusal::Unauthenticated, src.ip(), now);
                    self.respond_stateless(req, src, 403, "Forbidden", None)
                        .await;
                }
                ok
            }
            InboundAuth::Digest { username, password } => {
                let unix = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let r_user = req
                    .uri()
                    .and_then(|u| Uri::parse(u).ok())
                    .and_then(|u| u.user_name().map(str::to_string));
                let mut stale = false;
                let mut answered = false;
                for value in req
                    .get_all("Proxy-Authorization")
                    .into_iter()
                    .chain(req.get_all("Authorization"))
                {
                    let Ok(c) = Credentials::parse(value) else {
                        continue;
                    };
                    if c.realm != REALM {
                        continue;
                    }
                    answered = true;
                    let uri_user = Uri::parse(&c.uri)
                        .ok()
                        .and_then(|u| u.user_name().map(str::to_string));
                    // The digest-uri names the number dialled when the PBX copies the
                    // Request-URI (SIPp names only the host); replays are caught below.
                    let right = c.username == username
                        && c.qop_auth
                        && (uri_user.is_none() || uri_user == r_user)
                        && c.verify(&password, "INVITE");
                    if !right {
                        continue;
                    }
                    match self.nonces.check(&c.nonce, unix, NONCE_LIFETIME_SECS) {
                        NonceCheck::Fresh => {
                            let key = format!("{}:{}:{}", c.nonce, c.cnonce, c.nc);
                            if self.replay.first_use(key, now) {
                                return true;
                            }
                        }
                        NonceCheck::Stale => stale = true,
                        NonceCheck::Bad => {}
                    }
                }
                if answered && !stale {
                    self.refused.count(Refusal::Unauthenticated, src.ip(), now);
                    self.respond_stateless(req, src, 403, "Forbidden", None)
                        .await;
                } else {
                    if answered {
                        self.refused.count(Refusal::Unauthenticated, src.ip(), now);
                    }
                    let challenge = format!(
                        "Digest realm=\"{REALM}\", nonce=\"{}\", qop=\"auth\", algorithm=MD5{}",
                        self.nonces.issue(unix, &new_tag()),
                        if stale { ", stale=true" } else { "" }
                    );
                    self.respond_stateless(
                        req,
                        src,
                        407,
                        "Proxy Authentication Required",
                        Some(("Proxy-Authenticate", &challenge)),
                    )
                    .await;
                }
                false
            }
        }
    }

    /// A re-INVITE inside a dialog: answered 200 with the SDP we last sent.
    async fn on_reinvite(
        &mut self,
        req: &Message,
        src: SocketAddr,
        call_id: &str,
        cseq: u32,
        branch: &str,
    ) {
        let Some(call) = self.calls.get(call_id).filter(|c| same_dialog(c, req)) else {
            self.respond_stateless(req, src, 481, "Call/Transaction Does Not Exist", None)
                .await;
            return;
        };
        if let Some((b, _, bytes)) = &call.reinvite {
            if b == branch {
                let (bytes, dest) = (bytes.clone(), src);
                self.send(&bytes, dest).await;
                return;
            }
        }
        if call.state != CallState::Confirmed {
            let r = self.response_to(req, src, 491, "Request Pending", None);
            self.send_msg(&r, src).await;
            return;
        }
        // Hold: sendonly / inactive, or the old form c=0.0.0.0.
        let offer = req
            .body_str()
            .filter(|b| !b.trim().is_empty())
            .map(str::to_string);
        let parsed = offer
            .as_deref()
            .and_then(|o| crate::sip::sdp::Sdp::parse(o).ok());
        let (held, answer_dir) = match parsed.as_ref().and_then(|p| p.audio.as_ref()) {
            Some(a) => {
                let zero = a
                    .connection
                    .or(parsed.as_ref().and_then(|p| p.connection))
                    .is_some_and(|ip| ip.is_unspecified());
                match a.direction {
                    crate::sip::sdp::Direction::SendOnly => (true, "recvonly"),
                    crate::sip::sdp::Direction::Inactive => (true, "inactive"),
                    _ if zero => (true, "sendrecv"),
                    _ => (false, "sendrecv"),
                }
            }
            None => (false, "sendrecv"),
        };
        let mut r = self.response_to(req, src, 200, "OK", None);
        r.push("Contact", &self.contact_hdr());
        r.push("Allow", ALLOW);
        if let Some(sdp) = &call.local_sdp {
            r.push("Content-Type", "application/sdp");
            r.body = sdp
                .replace("a=sendrecv", &format!("a={answer_dir}"))
                .into_bytes();
        }
        let new_target = req
            .get_all("Contact")
            .first()
            .and_then(|c| NameAddr::parse(c).ok())
            .map(|n| n.uri.to_string());
        let bytes = self.send_msg(&r, src).await;
        if let Some(call) = self.calls.get_mut(call_id) {
            if let Some(t) = new_target {
                call.remote_target = t;
            }
            call.reinvite = Some((branch.to_string(), cseq, bytes.clone()));
            call.retx = Some(Retx::new(bytes, src, T2));
            call.deadline = Some(Instant::now() + TIMEOUT);
        }
        self.arm_call(call_id);
        info!(call = %call_id, held, "re-INVITE answered");
        self.emit(UaEvent::Reinvite {
            call: call_id.to_string(),
            held,
            sdp: offer,
        })
        .await;
    }

    async fn on_ack(&mut self, req: &Message) {
        let (Ok(call_id), Ok((cseq, _))) = (req.call_id(), req.cseq()) else {
            return;
        };
        let call_id = call_id.to_string();
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        if !same_dialog(call, req) {
            // An ACK with another dialog's tags changes nothing (a forged or stray one).
            debug!(call = %call_id, "ACK for another dialog ignored");
            return;
        }
        match call.state {
            CallState::UasAnswered if cseq == call.invite_cseq => {
                call.state = CallState::Confirmed;
                call.retx = None;
                call.deadline = None;
                debug!(call = %call_id, "ACK received; dialog confirmed");
                if call.bye_after_ack {
                    self.send_bye(&call_id).await;
                }
            }
            CallState::UasRejected => {
                self.calls.remove(&call_id);
            }
            CallState::Confirmed if call.reinvite.as_ref().is_some_and(|(_, c, _)| *c == cseq) => {
                call.retx = None;
                call.deadline = None;
            }
            _ => {}
        }
    }

    async fn on_cancel(&mut self, req: &Message, src: SocketAddr) {
        let (Ok(call_id), Ok((cseq, _))) = (req.call_id(), req.cseq()) else {
            return;
        };
        let call_id = call_id.to_string();
        // The INVITE's transaction (RFC 3261 §9.2): same branch, CSeq number and From tag.
        let branch = req.branch().unwrap_or_default();
        let from_tag = req
            .from_hdr()
            .ok()
            .and_then(|f| f.tag().map(str::to_string));
        let found = self
            .calls
            .get(&call_id)
            .filter(|c| {
                c.role == Role::Uas
                    && c.invite_cseq == cseq
                    && c.invite_branch == branch
                    && from_tag.as_deref() == c.remote.tag()
            })
            .map(|c| c.state);
        match found {
            None => {
                self.respond_stateless(req, src, 481, "Call/Transaction Does Not Exist", None)
                    .await
            }
            Some(CallState::Incoming) => {
                self.respond(req, src, 200, "OK").await;
                self.uas_final_error(&call_id, 487, "Request Terminated")
                    .await;
                info!(call = %call_id, "SIP incoming call cancelled");
                self.emit(UaEvent::Cancelled { call: call_id }).await;
            }
            Some(_) => self.respond(req, src, 200, "OK").await,
        }
    }

    async fn on_bye(&mut self, req: &Message, src: SocketAddr) {
        let Ok(call_id) = req.call_id() else {
            return;
        };
        let call_id = call_id.to_string();
        let state = self
            .calls
            .get(&call_id)
            .filter(|c| same_dialog(c, req))
            .map(|c| c.state);
        match state {
            Some(CallState::Confirmed) | Some(CallState::UasAnswered) => {
                self.respond(req, src, 200, "OK").await;
                self.calls.remove(&call_id);
                info!(call = %call_id, "SIP call ended by peer");
                self.emit(UaEvent::Ended { call: call_id }).await;
            }
            Some(CallState::Terminating) => {
                // Crossing BYEs: answer; our own BYE transaction finishes on its own.
                self.respond(req, src, 200, "OK").await;
            }
            Some(CallState::Incoming) => {
                self.respond(req, src, 200, "OK").await;
                self.uas_final_error(&call_id, 487, "Request Terminated")
                    .await;
                self.emit(UaEvent::Cancelled { call: call_id }).await;
            }
            _ => {
                self.respond_stateless(req, src, 481, "Call/Transaction Does Not Exist", None)
                    .await
            }
        }
    }

    async fn on_response(&mut self, resp: Message) {
        let (Some(branch), Ok((_, method))) = (resp.branch(), resp.cseq()) else {
            return;
        };
        if method == "INVITE" {
            self.on_invite_response(resp, &branch).await;
            return;
        }
        let Some(i) = self
            .client_txs
            .iter()
            .position(|t| t.branch == branch && t.method == method)
        else {
            debug!(branch = %branch, "response matches no transaction");
            return;
        };
        let code = resp.code().unwrap_or(500);
        if code < 200 {
            // Proceeding: keep retransmitting at T2 (RFC 3261 §17.1.2.2).
            let r = &mut self.client_txs[i].retx;
            r.interval = T2;
            r.next = Instant::now() + T2;
            let next = r.next;
            self.arm(next, TimerKey::Tx(branch));
            return;
        }
        let tx = self.client_txs.remove(i);
        self.on_client_final(tx, Some(&resp)).await;
    }

    /// A non-INVITE client transaction ended: final response, or timeout when `resp` is None.
    async fn on_client_final(&mut self, tx: ClientTx, resp: Option<&Message>) {
        match tx.kind {
            TxKind::Register {
                expires,
                auth_round,
            } => self.on_register_response(resp, expires, auth_round).await,
            TxKind::Options => match resp.and_then(Message::code) {
                Some(code) => debug!(code, "OPTIONS keep-alive answered"),
                None => warn!(server = %self.cfg.server, "OPTIONS keep-alive: no answer"),
            },
            TxKind::Bye => {
                if let Some(id) = &tx.call {
                    if resp.is_none() {
                        warn!(call = %id, "BYE got no answer");
                    }
                    if self
                        .calls
                        .get(id)
                        .is_some_and(|c| c.state == CallState::Terminating)
                    {
                        self.calls.remove(id);
                    }
                }
            }
            TxKind::Cancel => {}
        }
    }

    async fn on_invite_response(&mut self, resp: Message, branch: &str) {
        let (Ok(call_id), Some(code)) = (resp.call_id(), resp.code()) else {
            return;
        };
        let call_id = call_id.to_string();
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        if call.role != Role::Uac {
            return;
        }
        let current = call.invite_branch == branch;
        match code {
            100..=199 => {
                if !current || !matches!(call.state, CallState::Calling | CallState::Proceeding) {
                    return;
                }
                let first = call.state == CallState::Calling;
                call.state = CallState::Proceeding;
                call.retx = None;
                if first && !call.cancel_requested {
                    call.deadline = None;
                }
                let cancel_now = first && call.cancel_requested;
                if code > 100 {
                    let sdp = sdp_body(&resp);
                    self.emit(UaEvent::Progress {
                        call: call_id.clone(),
                        code,
                        sdp,
                    })
                    .await;
                }
                if cancel_now {
                    self.send_cancel(&call_id).await;
                }
            }
            200..=299 => match call.state {
                CallState::Calling | CallState::Proceeding if current => {
                    if let Ok(to) = resp.to_hdr() {
                        call.remote = to;
                    }
                    if let Some(t) = resp
                        .get_all("Contact")
                        .first()
                        .and_then(|c| NameAddr::parse(c).ok())
                    {
                        call.remote_target = t.uri.to_string();
                    }
                    call.route_set = match record_route(&resp) {
                        Ok(mut r) => {
                            r.reverse();
                            r
                        }
                        Err(why) => {
                            // The dialog exists at the peer all the same: route as if there
                            // were no proxies (through the server).
                            warn!(call = %call_id, why, "2xx Record-Route ignored");
                            Vec::new()
                        }
                    };
                    call.hop = route_hop(&call.route_set).unwrap_or(call.dest);
                    call.state = CallState::Confirmed;
                    call.retx = None;
                    call.deadline = None;
                    let cancelled = call.cancel_requested;
                    let cseq = call.invite_cseq;
                    let dest = call.hop;
                    let Some(call) = self.calls.get(&call_id) else {
                        return;
                    };
                    let ack = self.dialog_request(call, "ACK", cseq, &new_branch());
                    let bytes = self.send_msg(&ack, dest).await;
                    if let Some(call) = self.calls.get_mut(&call_id) {
                        call.ack = Some(bytes);
                    }
                    if cancelled {
                        // Answered while our CANCEL was under way: hang up at once.
                        self.send_bye(&call_id).await;
                        self.emit(UaEvent::Failed {
                            call: call_id,
                            code: 487,
                            reason: "Request Terminated (answered during CANCEL; BYE sent)".into(),
                        })
                        .await;
                    } else {
                        info!(call = %call_id, "SIP call answered by peer");
                        self.emit(UaEvent::Answered {
                            call: call_id,
                            sdp: sdp_body(&resp),
                        })
                        .await;
                    }
                }
                _ => {
                    // A retransmitted 2xx: repeat our ACK.
                    if let Some(bytes) = call.ack.clone() {
                        let dest = call.hop;
                        self.send(&bytes, dest).await;
                    }
                }
            },
            _ => {
                // Final error: ACK it within its own transaction (same branch).
                let ack = non2xx_ack(&call.invite, &resp, &self.cfg.user_agent);
                let dest = call.dest;
                let pending = matches!(call.state, CallState::Calling | CallState::Proceeding);
                let auth_tried = call.auth_tried;
                self.send_msg(&ack, dest).await;
                if !current || !pending {
                    return;
                }
                if (code == 401 || code == 407) && !auth_tried {
                    if let Some(ch) = pick_challenge(&resp, code) {
                        if let Some(call) = self.calls.get_mut(&call_id) {
                            call.auth_tried = true;
                        }
                        self.resend_invite_with_auth(&call_id, &ch, code == 407)
                            .await;
                        return;
                    }
                }
                let Some(call) = self.calls.get_mut(&call_id) else {
                    return;
                };
                call.state = CallState::UacFailed;
                call.retx = None;
                call.deadline = Some(Instant::now() + TIMEOUT); // Timer D
                let reason = resp.reason().unwrap_or("").to_string();
                self.arm_call(&call_id);
                info!(call = %call_id, code, "SIP call failed");
                self.emit(UaEvent::Failed {
                    call: call_id,
                    code,
                    reason,
                })
                .await;
            }
        }
    }

    async fn resend_invite_with_auth(&mut self, call_id: &str, ch: &Challenge, proxy: bool) {
        let branch = new_branch();
        let via = self.via(&branch);
        let user = self
            .cfg
            .auth_username
            .clone()
            .unwrap_or_else(|| self.cfg.username.clone());
        let password = self.cfg.password.clone();
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.local_cseq += 1;
        call.invite_cseq = call.local_cseq;
        call.invite_branch = branch;
        let mut m = call.invite.clone();
        let uri = m.uri().unwrap_or_default().to_string();
        m.set("Via", &via);
        m.set("CSeq", &format!("{} INVITE", call.invite_cseq));
        let value = ch.authorization(&user, &password, "INVITE", &uri, 1, &new_tag());
        m.set(
            if proxy {
                "Proxy-Authorization"
            } else {
                "Authorization"
            },
            &value,
        );
        let dest = call.dest;
        let bytes = m.to_bytes();
        call.invite = m;
        call.state = CallState::Calling;
        call.retx = Some(Retx::new(bytes.clone(), dest, Duration::MAX));
        call.deadline = Some(Instant::now() + TIMEOUT);
        self.arm_call(call_id);
        debug!(call = %call_id, "INVITE re-sent with credentials");
        self.send(&bytes, dest).await;
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

/// The first usable Digest challenge of a 401 (WWW-Authenticate) or 407 (Proxy-Authenticate).
fn pick_challenge(resp: &Message, code: u16) -> Option<Challenge> {
    let header = if code == 407 {
        "Proxy-Authenticate"
    } else {
        "WWW-Authenticate"
    };
    resp.get_all(header)
        .into_iter()
        .find_map(|v| Challenge::parse(v).ok())
}

/// The Record-Route entries of `m` in order, at most [`MAX_ROUTES`], each a name-addr with a
/// SIP URI (RFC 3261 §20.30); Err with a reason phrase otherwise.
fn record_route(m: &Message) -> Result<Vec<String>, &'static str> {
    let entries = m.get_all("Record-Route");
    if entries.len() > MAX_ROUTES {
        return Err("Too Many Record-Route Entries");
    }
    entries
        .into_iter()
        .map(|e| {
            let sip = NameAddr::parse(e).is_ok_and(|n| {
                n.uri.scheme.eq_ignore_ascii_case("sip")
                    || n.uri.scheme.eq_ignore_ascii_case("sips")
            });
            if sip && e.contains('<') && !e.contains(|c: char| c.is_control()) {
                Ok(e.to_string())
            } else {
                Err("Bad Record-Route")
            }
        })
        .collect()
}

/// The address of the first route when it names an IP address (and a usable port); hosts by
/// name are not resolved.
fn route_hop(routes: &[String]) -> Option<SocketAddr> {
    let uri = NameAddr::parse(routes.first()?).ok()?.uri;
    let ip: IpAddr = uri
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    let port = uri.port.unwrap_or(5060);
    (!ip.is_unspecified() && port != 0).then_some(SocketAddr::new(ip, port))
}

/// Copies the request's Record-Route header lines, verbatim and in order, into a response that
/// creates the dialog (RFC 3261 §12.1.1), so the caller routes its ACK and BYE the same way.
fn copy_record_route(req: &Message, resp: &mut Message) {
    for (n, v) in &req.headers {
        if super::msg::same_header(n, "Record-Route") {
            resp.push("Record-Route", v);
        }
    }
}

/// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): same Request-URI, top Via,
/// From, Call-ID, Route as the INVITE, To from the response.
fn non2xx_ack(invite: &Message, resp: &Message, user_agent: &str) -> Message {
    let mut m = Message::request("ACK", invite.uri().unwrap_or_default());
    if let Some(v) = invite.get_all("Via").first() {
        m.push("Via", v);
    }
    m.push("Max-Forwards", "70");
    for h in ["From", "Call-ID"] {
        if let Some(v) = invite.get(h) {
            m.push(h, v);
        }
    }
    if let Some(v) = resp.get("To") {
        m.push("To", v);
    }
    if let Ok((n, _)) = invite.cseq() {
        m.push("CSeq", &format!("{n} ACK"));
    }
    for r in invite.get_all("Route") {
        m.push("Route", r);
    }
    m.push("User-Agent", user_agent);
    m
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
    fn non2xx_ack_reuses_invite_branch() {
        let invite = Message::parse(
            b"INVITE sip:100@pbx SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bKabc;rport\r\n\
              From: <sip:a@pbx>;tag=1\r\nTo: <sip:100@pbx>\r\nCall-ID: x\r\nCSeq: 2 INVITE\r\n\
              Route: <sip:proxy;lr>\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let resp = Message::parse(
            b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bKabc;rport=5060\r\n\
              From: <sip:a@pbx>;tag=1\r\nTo: <sip:100@pbx>;tag=9\r\nCall-ID: x\r\nCSeq: 2 INVITE\r\n\r\n",
        )
        .unwrap();
        let ack = non2xx_ack(&invite, &resp, "ua");
        assert_eq!(ack.method(), Some("ACK"));
        assert_eq!(ack.uri(), Some("sip:100@pbx"));
        assert_eq!(ack.branch().as_deref(), Some("z9hG4bKabc"));
        assert_eq!(ack.to_hdr().unwrap().tag(), Some("9"));
        assert_eq!(ack.cseq().unwrap(), (2, "ACK".into()));
        assert_eq!(ack.get("Route"), Some("<sip:proxy;lr>"));
    }

    #[test]
    fn record_route_is_checked_and_the_first_hop_found() {
        let msg = |rr: &str| {
            Message::parse(format!("SIP/2.0 200 OK\r\n{rr}Content-Length: 0\r\n\r\n").as_bytes())
                .unwrap()
        };
        let m = msg(
            "Record-Route: <sip:127.0.0.5:5070;lr>, <sip:p2;lr>\r\nRecord-Route: <sip:[::1];lr>\r\n",
        );
        let rr = record_route(&m).unwrap();
        assert_eq!(
            rr,
            ["<sip:127.0.0.5:5070;lr>", "<sip:p2;lr>", "<sip:[::1];lr>"]
        );
        assert_eq!(route_hop(&rr), Some("127.0.0.5:5070".parse().unwrap()));
        assert_eq!(route_hop(&rr[2..]), Some("[::1]:5060".parse().unwrap()));
        assert_eq!(route_hop(&rr[1..2]), None, "names are not resolved");
        assert_eq!(route_hop(&["<sip:0.0.0.0;lr>".into()]), None);
        assert_eq!(route_hop(&["<sip:127.0.0.5:0;lr>".into()]), None);
        assert_eq!(route_hop(&[]), None);
        assert_eq!(record_route(&msg("")).unwrap(), Vec::<String>::new());
        for bad in [
            "<sip:",
            "sip:127.0.0.5;lr",
            "<tel:+1>",
            "<mailto:a@b>",
            "<sip:a\x01b;lr>",
        ] {
            assert!(
                record_route(&msg(&format!("Record-Route: {bad}\r\n"))).is_err(),
                "{bad}"
            );
        }
        let many: String = (0..=MAX_ROUTES)
            .map(|i| format!("Record-Route: <sip:h{i};lr>\r\n"))
            .collect();
        assert!(record_route(&msg(&many)).is_err());
        let enough: String = (0..MAX_ROUTES)
            .map(|i| format!("Record-Route: <sip:h{i};lr>\r\n"))
            .collect();
        assert_eq!(record_route(&msg(&enough)).unwrap().len(), MAX_ROUTES);
    }

    #[test]
    fn picks_digest_challenge() {
        let resp = Message::parse(
            b"SIP/2.0 407 Proxy Authentication Required\r\n\
              Proxy-Authenticate: Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256\r\n\
              Proxy-Authenticate: Digest realm=\"r\", nonce=\"m\", algorithm=MD5\r\n\r\n",
        )
        .unwrap();
        assert_eq!(pick_challenge(&resp, 407).unwrap().nonce, "m");
        assert!(pick_challenge(&resp, 401).is_none());
    }

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
