//! What the modem writes: response framing, URC placement (inside a response, held, after
//! it), final result codes with their verbose/numeric forms, and the pending response that
//! a latency fault delays.

use tokio::time::Instant;

use super::{AtError, Device, Event, Final, Post, UrcMode, cme_text, cms_text, later};

impl Device {
    // ----- output ------------------------------------------------------------------------------

    pub(super) fn write(&mut self, bytes: &[u8]) {
        if self.faults.hang || !self.plugged {
            return;
        }
        self.out.extend_from_slice(bytes);
    }

    /// Write raw bytes regardless of the hang fault (the `garbage` op).
    pub(crate) fn write_raw(&mut self, bytes: &[u8]) {
        if self.plugged {
            self.out.extend_from_slice(bytes);
        }
    }

    fn frame_urc(&self, line: &str) -> String {
        if self.set.verbose {
            format!("\r\n{line}\r\n")
        } else if line == "RING" {
            "2\r".to_string()
        } else {
            format!("{line}\r\n")
        }
    }

    /// Emit an unsolicited result code now, or hold it if a response is being written.
    pub(crate) fn urc(&mut self, line: impl Into<String>) {
        let line = line.into();
        if !self.powered || !self.plugged || self.faults.hang {
            return;
        }
        if self.executing {
            self.after.push(line);
            return;
        }
        if self.pending.is_some() || self.prompt.is_some() {
            self.held.push(line);
            return;
        }
        let framed = self.frame_urc(&line);
        self.write(framed.as_bytes());
    }

    fn write_held(&mut self) {
        for line in std::mem::take(&mut self.held) {
            let framed = self.frame_urc(&line);
            self.write(framed.as_bytes());
        }
    }

    fn final_text(&self, f: &Final) -> Option<String> {
        let (word, code) = match f {
            Final::None => return None,
            Final::Ok => ("OK".to_string(), 0),
            Final::Word(w) => {
                let code = match w.as_str() {
                    "CONNECT" => 1,
                    "RING" => 2,
                    "NO CARRIER" => 3,
                    "NO DIALTONE" => 6,
                    "BUSY" => 7,
                    "NO ANSWER" => 8,
                    _ => 4,
                };
                (w.clone(), code)
            }
            Final::Err(e) => {
                let w = match e {
                    AtError::Error => "ERROR".to_string(),
                    AtError::Vendor(t) => t.clone(),
                    AtError::Cme(n) => match self.set.cmee {
                        0 => "ERROR".to_string(),
                        1 => format!("+CME ERROR: {n}"),
                        _ => format!("+CME ERROR: {}", cme_text(*n)),
                    },
                    AtError::Cms(n) => match self.set.cmee {
                        2 => format!("+CMS ERROR: {}", cms_text(*n)),
                        _ => format!("+CMS ERROR: {n}"),
                    },
                };
                (w, 4)
            }
        };
        if self.set.quiet {
            return Some(String::new());
        }
        Some(if self.set.verbose {
            format!("\r\n{word}\r\n")
        } else if word.starts_with('+') || code == 4 && word != "ERROR" {
            format!("{word}\r\n")
        } else {
            format!("{code}\r")
        })
    }

    pub(super) fn flush_pending(&mut self, now: Instant) {
        let Some(p) = self.pending.take() else {
            return;
        };
        let inside = self.faults.urc_mode == UrcMode::Inside;
        for (i, chunk) in p.chunks.iter().enumerate() {
            if inside && i == p.urc_slot {
                self.write_held();
            }
            self.write(chunk.as_bytes());
        }
        if inside {
            self.write_held();
        }
        let mut fin = p.fin;
        if fin == Final::Ok && self.faults.drop_final_ok > 0 {
            self.faults.drop_final_ok -= 1;
            fin = Final::None;
        }
        if let Some(t) = self.final_text(&fin) {
            self.write(t.as_bytes());
        }
        let after = std::mem::take(&mut self.after);
        self.held.extend(after);
        match p.post {
            Some(Post::Prompt(prompt)) => {
                self.write(b"\r\n> ");
                self.line.clear();
                self.prompt = Some(prompt);
                return;
            }
            Some(Post::Reboot) => {
                // The modem needs a moment before the port drops; the client may read the OK.
                self.schedule(later(now, 100), Event::Unplug);
            }
            None => {}
        }
        self.write_held();
        self.run_queued(now);
    }

    fn run_queued(&mut self, now: Instant) {
        while self.pending.is_none() && self.prompt.is_none() {
            let Some(line) = self.queued.pop_front() else {
                break;
            };
            self.execute_line(&line, now);
        }
    }
}
