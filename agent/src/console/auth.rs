//! Console passwords: argon2id hashes (bcrypt hashes are accepted too), and the guard that
//! slows down and then locks out guessing.

use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::time::Instant;

/// Shortest password accepted when one is chosen.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Hashes `password` with argon2id (default parameters, random salt) in PHC string form.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    random_bytes(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches `hash` (argon2 PHC string or bcrypt `$2a$/$2b$/$2y$`).
pub fn verify_password(password: &str, hash: &str) -> bool {
    if hash.starts_with("$2") {
        return bcrypt::verify(password, hash).unwrap_or(false);
    }
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Why a new password is refused, if it is.
pub fn check_new_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(format!("too short: at least {MIN_PASSWORD_LEN} characters"));
    }
    if password.chars().any(char::is_control) {
        return Err("control characters are not allowed".into());
    }
    Ok(())
}

/// Reads one line from the terminal on stdin with echo switched off (prompt on stderr).
pub fn read_password_no_echo(prompt: &str) -> std::io::Result<String> {
    use std::io::Write;
    use std::os::fd::AsFd;

    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let fd = stdin.as_fd();
    let saved = tcgetattr(fd).map_err(std::io::Error::from)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    tcsetattr(fd, SetArg::TCSAFLUSH, &quiet).map_err(std::io::Error::from)?;
    let mut line = String::new();
    let r = stdin.read_line(&mut line);
    let _ = tcsetattr(fd, SetArg::TCSAFLUSH, &saved);
    r?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn random_bytes(buf: &mut [u8]) -> Result<(), String> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .map_err(|e| format!("no randomness for a salt: {e}"))
}

/// How failures are punished.
#[derive(Debug, Clone)]
pub struct LoginPolicy {
    /// Delay after the first failure; it doubles with each further one.
    pub first_delay: Duration,
    /// Longest delay after one failure.
    pub max_delay: Duration,
    /// Failures in a row that lock the console.
    pub max_failures: u32,
    /// First lockout; it doubles with each further lockout, up to `max_lockout`.
    pub lockout: Duration,
    /// Longest lockout.
    pub max_lockout: Duration,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
            max_failures: 5,
            lockout: Duration::from_secs(60),
            max_lockout: Duration::from_secs(3600),
        }
    }
}

/// Failed logins across sessions (a new session does not reset the count).
#[derive(Debug)]
pub struct LoginGuard {
    policy: LoginPolicy,
    failures: u32,
    lockouts: u32,
    locked_until: Option<Instant>,
}

/// What a failure costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Penalty {
    /// Wait this long before the next try.
    Delay(Duration),
    /// Locked for this long.
    Locked(Duration),
}

impl LoginGuard {
    /// A guard with no failures yet.
    pub fn new(policy: LoginPolicy) -> Self {
        Self {
            policy,
            failures: 0,
            lockouts: 0,
            locked_until: None,
        }
    }

    /// Time left in a lockout, if locked now.
    pub fn locked_for(&self) -> Option<Duration> {
        let until = self.locked_until?;
        let now = Instant::now();
        (until > now).then(|| until - now)
    }

    /// Records a failure and says what it costs.
    pub fn failed(&mut self) -> Penalty {
        self.failures += 1;
        if self.failures >= self.policy.max_failures {
            self.failures = 0;
            let factor = 1u32 << self.lockouts.min(16);
            self.lockouts += 1;
            let d = self
                .policy
                .lockout
                .saturating_mul(factor)
                .min(self.policy.max_lockout);
            self.locked_until = Some(Instant::now() + d);
            return Penalty::Locked(d);
        }
        let factor = 1u32 << (self.failures - 1).min(16);
        Penalty::Delay(
            self.policy
                .first_delay
                .saturating_mul(factor)
                .min(self.policy.max_delay),
        )
    }

    /// A successful login forgives everything.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.lockouts = 0;
        self.locked_until = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_round_trip_and_bcrypt() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsE", &h));
        assert!(!verify_password("x", "not a hash"));
        let b = bcrypt::hash("battery staple", 4).unwrap();
        assert!(verify_password("battery staple", &b));
        assert!(!verify_password("battery stapler", &b));
    }

    #[test]
    fn new_passwords_are_checked() {
        assert!(check_new_password("short").is_err());
        assert!(check_new_password("long enough").is_ok());
        assert!(check_new_password("long\x01enough").is_err());
    }

    #[tokio::test]
    async fn delays_grow_then_lockout_doubles() {
        let s = Duration::from_millis;
        let mut g = LoginGuard::new(LoginPolicy {
            first_delay: s(1),
            max_delay: s(8),
            max_failures: 5,
            lockout: s(60),
            max_lockout: s(3_600),
        });
        assert_eq!(g.failed(), Penalty::Delay(s(1)));
        assert_eq!(g.failed(), Penalty::Delay(s(2)));
        assert_eq!(g.failed(), Penalty::Delay(s(4)));
        assert_eq!(g.failed(), Penalty::Delay(s(8)));
        assert_eq!(g.failed(), Penalty::Locked(s(60)));
        assert!(g.locked_for().is_some());
        tokio::time::sleep(s(70)).await;
        assert!(g.locked_for().is_none());
        for _ in 0..4 {
            g.failed();
        }
        assert_eq!(g.failed(), Penalty::Locked(s(120)));
        g.succeeded();
        assert!(g.locked_for().is_none());
        assert_eq!(g.failed(), Penalty::Delay(s(1)));
    }
}
