//! AT command engine: framing, one command in flight, URC stream.

pub mod engine;
pub mod fields;
pub mod framer;
pub mod urc;

pub use engine::{AtError, AtHandle, Command, EngineConfig, ErrorCode, Final, Response, spawn};
pub use urc::{Service, Urc, VendorUrcs};

#[cfg(test)]
mod tests {
    /// Arrows only go down: the AT layer knows nothing of modems' dialects (they come in
    /// through `EngineConfig`).
    #[test]
    fn at_does_not_import_modem() {
        for (file, text) in [
            ("engine.rs", include_str!("engine.rs")),
            ("engine_tests.rs", include_str!("engine_tests.rs")),
            ("fields.rs", include_str!("fields.rs")),
            ("framer.rs", include_str!("framer.rs")),
            ("urc.rs", include_str!("urc.rs")),
        ] {
            for word in [
                concat!("use crate::", "modem"),
                concat!("modem::", "Dialect"),
            ] {
                assert!(!text.contains(word), "{file} uses {word}");
            }
        }
    }
}
