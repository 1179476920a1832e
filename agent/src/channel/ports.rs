//! Finding a modem's port: the configured path, or by IMEI among `port_scan` when the kernel
//! renumbered it; and the claims that keep two channels off one port.

use super::*;

/// Ports held by channels, so a search by IMEI never takes another slot's port.
#[derive(Debug, Clone, Default)]
pub struct PortClaims(Arc<Mutex<HashSet<String>>>);

impl PortClaims {
    pub(super) fn claim(&self, port: &str) {
        if let Ok(mut g) = self.0.lock() {
            g.insert(canonical(port));
        }
    }
    pub(super) fn release(&self, port: &str) {
        if let Ok(mut g) = self.0.lock() {
            g.remove(&canonical(port));
        }
    }
    pub(super) fn is_claimed(&self, port: &str) -> bool {
        self.0
            .lock()
            .map(|g| g.contains(&canonical(port)))
            .unwrap_or(false)
    }
}

fn canonical(port: &str) -> String {
    std::fs::canonicalize(port)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| port.to_string())
}

/// `*` wildcard match on a file name (`ttyUSB*`).
fn wildcard(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let middle: Vec<&str> = parts.collect();
    let Some((last, mids)) = middle.split_last() else {
        return rest.is_empty(); // no '*': exact match
    };
    for mid in mids {
        match rest.find(mid) {
            Some(i) => rest = rest.get(i + mid.len()..).unwrap_or(""),
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Expands `port_scan` patterns to existing paths, sorted.
pub fn scan_candidates(patterns: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for p in patterns {
        let Some((dir, file)) = p.rsplit_once('/') else {
            continue;
        };
        let dir = if dir.is_empty() { "/" } else { dir };
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if wildcard(file, &name) {
                out.push(Path::new(dir).join(&name).display().to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Opens `port` briefly and asks for the IMEI; None if nothing sensible answers.
pub async fn probe_imei(port: &str, baud: u32) -> Option<String> {
    let p = gsmgw_drivers::modem::open_port(port, baud).ok()?;
    let (h, _urcs) = at::spawn(p, gsmgw_drivers::modem::engine_config());
    let cmd = |t: &str| Command::new(t).timeout(Duration::from_secs(1));
    h.send(cmd("AT")).await.ok()?;
    let r = h.send(cmd("AT+CGSN")).await.ok()?;
    let imei: String = r
        .field_line("+CGSN:")
        .or_else(|| r.first_line())?
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    (imei.len() == 15).then_some(imei)
}

impl Channel {
    /// The port to open: the configured one when it exists (or the one the modem was last
    /// found at); else, with an IMEI configured, a port among `port_scan` whose modem has it.
    pub(super) async fn locate_port(&mut self) -> Option<String> {
        for p in [&self.port, &self.cfg.port] {
            if Path::new(p).exists() {
                return Some(p.clone());
            }
        }
        let imei = self.cfg.imei.clone()?;
        for candidate in scan_candidates(&self.ctx.port_scan) {
            if self.ctx.claims.is_claimed(&candidate) || self.stopping() {
                continue;
            }
            if probe_imei(&candidate, self.cfg.baud).await.as_deref() == Some(imei.as_str()) {
                tracing::info!(slot = self.cfg.slot, port = %candidate, %imei, "modem found by IMEI");
                let from = self.port.clone();
                self.port = candidate.clone();
                self.event(
                    "port-found",
                    None,
                    Some(format!("IMEI {imei} found at {candidate} (was {from})")),
                );
                return Some(candidate);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard("ttyUSB*", "ttyUSB12"));
        assert!(wildcard("ttyUSB*", "ttyUSB"));
        assert!(!wildcard("ttyUSB*", "ttyACM0"));
        assert!(wildcard("modem*.tty", "modem-b.tty"));
        assert!(!wildcard("modem*.tty", "modem-b.sock"));
        assert!(wildcard("exact", "exact"));
        assert!(!wildcard("a*b*c", "ac"));
        assert!(wildcard("a*b*c", "a-b-c"));
    }

    #[test]
    fn scan_finds_matching_files() {
        let d = tempfile::tempdir().unwrap();
        for n in ["ttyX1", "ttyX2", "other"] {
            std::fs::write(d.path().join(n), "").unwrap();
        }
        let pat = format!("{}/ttyX*", d.path().display());
        let found = scan_candidates(&[pat]);
        assert_eq!(found.len(), 2);
        assert!(found[0].ends_with("ttyX1"));
    }
}
