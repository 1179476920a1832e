//! SIP signalling: messages, SDP, digest authentication and a user agent over UDP.
