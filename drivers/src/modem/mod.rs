//! Generic 27.007/27.005 modem operations and vendor dialects.
