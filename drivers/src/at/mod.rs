//! AT command engine: framing, one command in flight, URC stream.
