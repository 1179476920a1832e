//! AT command engine: framing, one command in flight, URC stream.

pub mod engine;
pub mod fields;
pub mod framer;
pub mod urc;

pub use engine::{AtError, AtHandle, Command, EngineConfig, ErrorCode, Final, Response, spawn};
pub use urc::{Service, Urc};
