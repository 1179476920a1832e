//! One USSD exchange over an AT engine: the request, the network's answer (a `+CUSD` URC that
//! may come seconds later), menu replies, and `AT+CUSD=2` for a menu nobody answers.
//!
//! The caller owns the port for the whole exchange (one USSD at a time per modem, never between
//! the parts of an SMS send); URCs that are not USSD answers are handed back in `deferred`, in
//! order, so the caller acts on them afterwards.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{
    CANCEL_COMMAND, CodeError, DecodeHints, RequestEncoding, TextForm, UssdSpec, UssdStatus,
    decode, request_command, validate_code,
};
use crate::at::{AtError, AtHandle, Command, Urc};

/// The default wait for the network's answer (networks take 5–10 s, sometimes more).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an empty `+CUSD: 0,""` (sent by some firmwares before the real answer) extends the
/// wait, at most once.
pub const EMPTY_ANSWER_GRACE: Duration = Duration::from_secs(10);

/// The wait for the modem to accept the `AT+CUSD=1` command itself.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// What to send.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The USSD string (`*111#`).
    pub code: &'a str,
    /// Answers to the menus that follow, in order.
    pub replies: &'a [String],
    /// The wait for each answer.
    pub timeout: Duration,
}

/// One answer of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The string sent (the code, or a menu reply).
    pub sent: String,
    /// What the answer says.
    pub status: UssdStatus,
    /// The decoded text.
    pub text: String,
    /// The DCS the modem printed, if any.
    pub dcs: Option<u32>,
    /// How the modem had written the text.
    pub form: TextForm,
}

/// A finished exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// Every answer, in order (at least one).
    pub steps: Vec<Step>,
    /// The request encoding the modem took.
    pub encoding: RequestEncoding,
    /// The last answer was a menu with no reply left, so the session was ended with
    /// `AT+CUSD=2`.
    pub cancelled_menu: bool,
}

impl Exchange {
    /// The last answer (what the user asked for).
    pub fn last(&self) -> Option<&Step> {
        self.steps.last()
    }
}

/// Why an exchange did not give an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UssdFailure {
    /// The code or a reply is not a USSD string; nothing was sent.
    #[error("{0}")]
    Invalid(CodeError),
    /// The modem refused the request in every encoding.
    #[error("the modem refused the request: {0}")]
    Refused(AtError),
    /// No answer came in time.
    #[error("no answer from the network within {}s", .0.as_secs())]
    Timeout(Duration),
    /// The network ended it without an answer (`+CUSD: 2/3/4/5`).
    #[error("{}{}", network_words(*.status), if .text.is_empty() { String::new() } else { format!(": {}", .text) })]
    Network {
        /// What it said.
        status: UssdStatus,
        /// Any text that came with it.
        text: String,
    },
    /// The port failed.
    #[error("port: {0}")]
    Port(AtError),
}

fn network_words(s: UssdStatus) -> &'static str {
    match s {
        UssdStatus::NotSupported => "the network does not support this code",
        UssdStatus::NetworkTimeout => "the network timed out",
        UssdStatus::OtherClient => "another client answered the session",
        UssdStatus::Terminated => "the network ended the session",
        UssdStatus::Done | UssdStatus::Menu => "unexpected answer",
    }
}

/// Sends `line`; Ok(false) when the modem refused it (ERROR words), Err on a port failure or
/// a command timeout.
async fn send_request(at: &AtHandle, line: &str) -> Result<Result<(), AtError>, UssdFailure> {
    match at.send(Command::new(line).timeout(COMMAND_TIMEOUT)).await {
        Ok(_) => Ok(Ok(())),
        Err(e) if e.is_fatal() => Err(UssdFailure::Port(e)),
        Err(AtError::Timeout(d)) => Err(UssdFailure::Timeout(d)),
        Err(e) => Ok(Err(e)),
    }
}

/// Waits for the next `+CUSD` answer; other URCs go to `deferred`.
async fn answer(
    urcs: &mut mpsc::Receiver<Urc>,
    deferred: &mut Vec<Urc>,
    timeout: Duration,
) -> Result<(u8, String, Option<u32>), UssdFailure> {
    let mut deadline = Instant::now() + timeout;
    let mut grace_used = false;
    loop {
        let urc = match tokio::time::timeout_at(deadline, urcs.recv()).await {
            Err(_) => return Err(UssdFailure::Timeout(timeout)),
            Ok(None) => return Err(UssdFailure::Port(AtError::EngineGone)),
            Ok(Some(u)) => u,
        };
        match urc {
            Urc::Ussd { m: 0, text, .. } if text.is_empty() && !grace_used => {
                grace_used = true;
                deadline = deadline.max(Instant::now() + EMPTY_ANSWER_GRACE);
            }
            Urc::Ussd { m, text, dcs } => return Ok((m, text, dcs)),
            other => deferred.push(other),
        }
    }
}

/// Ends an open session, best effort (the modem may have closed it already).
async fn cancel(at: &AtHandle) {
    if let Err(e) = at.send(Command::new(CANCEL_COMMAND)).await {
        tracing::debug!("{CANCEL_COMMAND}: {e}");
    }
}

/// Runs one exchange: `request.code`, then each reply while the network answers with a menu.
pub async fn run(
    at: &AtHandle,
    urcs: &mut mpsc::Receiver<Urc>,
    deferred: &mut Vec<Urc>,
    request: &Request<'_>,
    spec: &UssdSpec,
    hints: DecodeHints,
) -> Result<Exchange, UssdFailure> {
    validate_code(request.code).map_err(UssdFailure::Invalid)?;
    for r in request.replies {
        validate_code(r).map_err(UssdFailure::Invalid)?;
    }
    let hints = DecodeHints {
        packed_answers: hints.packed_answers || spec.packed_answers,
        ..hints
    };
    let mut encodings: Vec<RequestEncoding> = if hints.cscs_ucs2 {
        vec![RequestEncoding::Ucs2Hex]
    } else {
        Vec::new()
    };
    encodings.extend(spec.encodings.iter().copied());
    if encodings.is_empty() {
        encodings.push(RequestEncoding::Plain);
    }

    // The first request: the encodings in order until the modem takes one.
    let mut chosen = None;
    let mut last_refusal = AtError::Error;
    for enc in encodings {
        match send_request(at, &request_command(request.code, enc)).await? {
            Ok(()) => {
                chosen = Some(enc);
                break;
            }
            Err(e) => {
                tracing::debug!("USSD request as {enc:?} refused: {e}");
                last_refusal = e;
            }
        }
    }
    let Some(encoding) = chosen else {
        return Err(UssdFailure::Refused(last_refusal));
    };

    let mut steps = Vec::new();
    let mut sent = request.code.to_string();
    let mut replies = request.replies.iter();
    loop {
        let (m, raw, dcs) = match answer(urcs, deferred, request.timeout).await {
            Ok(a) => a,
            Err(e) => {
                if matches!(e, UssdFailure::Timeout(_)) {
                    cancel(at).await;
                }
                return Err(e);
            }
        };
        let status = UssdStatus::from_m(m);
        let decoded = decode(&raw, dcs, hints);
        match status {
            UssdStatus::Done | UssdStatus::Menu => {}
            // Some networks end the session with the answer itself: keep it when it has text.
            UssdStatus::Terminated if !decoded.text.is_empty() => {}
            _ => {
                return Err(UssdFailure::Network {
                    status,
                    text: decoded.text,
                });
            }
        }
        steps.push(Step {
            sent: sent.clone(),
            status,
            text: decoded.text,
            dcs,
            form: decoded.form,
        });
        if status != UssdStatus::Menu {
            return Ok(Exchange {
                steps,
                encoding,
                cancelled_menu: false,
            });
        }
        let Some(reply) = replies.next() else {
            cancel(at).await;
            return Ok(Exchange {
                steps,
                encoding,
                cancelled_menu: true,
            });
        };
        if let Err(e) = send_request(at, &request_command(reply, encoding)).await? {
            return Err(UssdFailure::Refused(e));
        }
        sent = reply.clone();
    }
}
