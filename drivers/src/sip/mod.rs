//! SIP signalling: messages, SDP, digest authentication and a user agent over UDP.
//!
//! One file per piece, each with its parser/builder and its tests: [`msg`] (RFC 3261 messages,
//! URIs, name-addr, Via, CSeq), [`sdp`] (offer/answer for G.711 and RFC 4733 telephone events),
//! [`digest`] (RFC 2617 MD5 digest authentication), [`guard`] (who may talk to us) and the user
//! agent in layers: `transaction` (RFC 3261 §17 timers and retransmissions), `dialog` (dialog
//! state, matching, route sets), `registration` (REGISTER, keep-alives) and [`ua`] (the task
//! tying them together, with both call sides). Everything that comes from the network is
//! untrusted: a malformed message is a [`SipError`], never a panic.

mod dialog;
pub mod digest;
pub mod guard;
pub mod msg;
mod registration;
pub mod sdp;
mod transaction;
pub mod ua;

pub use msg::{Message, NameAddr, StartLine, Uri, Via};
pub use sdp::Negotiated;
pub use ua::{CallId, Ua, UaConfig, UaEvent};

/// Everything that can go wrong in SIP signalling.
#[derive(Debug, thiserror::Error)]
pub enum SipError {
    /// A SIP message (start line, header, body length) is malformed.
    #[error("malformed SIP message: {0}")]
    Parse(String),
    /// A URI or name-addr is malformed.
    #[error("malformed URI: {0}")]
    Uri(String),
    /// An SDP body is malformed or has no usable audio stream.
    #[error("malformed SDP: {0}")]
    Sdp(String),
    /// The offer and our preferences share no codec (answer 488 Not Acceptable Here).
    #[error("no common codec in the SDP offer")]
    NoCommonCodec,
    /// A WWW-Authenticate / Proxy-Authenticate challenge is malformed or unsupported.
    #[error("unusable digest challenge: {0}")]
    Auth(String),
    /// The UDP socket failed.
    #[error("SIP socket: {0}")]
    Io(#[from] std::io::Error),
    /// The user agent task has stopped.
    #[error("SIP user agent has stopped")]
    Closed,
}

impl SipError {
    /// The SIP status code a UAS answers with when an incoming request fails this way.
    pub fn status_code(&self) -> u16 {
        match self {
            SipError::Parse(_) | SipError::Uri(_) => 400,
            SipError::Sdp(_) | SipError::NoCommonCodec => 488,
            SipError::Auth(_) | SipError::Io(_) | SipError::Closed => 500,
        }
    }
}
