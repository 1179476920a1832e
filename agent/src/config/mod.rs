//! Configuration: TOML schema, defaults, validation with file/line/key problems.
