//! Modem simulator on a pseudo-terminal (feature `sim`).
