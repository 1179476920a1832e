//! Console passwords: argon2id hashes (bcrypt hashes are accepted too), and the guard that
//! slows down and then locks out guessing.

use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::time::Instant;

use crate::store::ConsoleAuth;

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

    /// The state to store, with the lockout's end as wall-clock time (`now_ms`: unix ms now).
    pub fn to_stored(&self, now_ms: i64) -> ConsoleAuth {
        let left = self.locked_for().map_or(0, |d| d.as_millis());
        ConsoleAuth {
            failures: self.failures,
            lockouts: self.lockouts,
            locked_until_ms: if left == 0 {
                0
            } else {
                now_ms.saturating_add(i64::try_from(left).unwrap_or(i64::MAX))
            },
        }
    }

    /// Takes over a stored state (after a restart). What is left of a lockout is capped at
    /// the longest lockout, so a clock set backwards cannot lock the console for long.
    pub fn restore(&mut self, s: ConsoleAuth, now_ms: i64) {
        self.failures = s.failures.min(self.policy.max_failures.saturating_sub(1));
        self.lockouts = s.lockouts.min(16);
        let left = u64::try_from(s.locked_until_ms.saturating_sub(now_ms)).unwrap_or(0);
        let left = Duration::from_millis(left).min(self.policy.max_lockout);
        self.locked_until = (!left.is_zero()).then(|| Instant::now() + left);
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

    /// What a restart keeps: failures so far, the lockout count and what is left of a lockout
    /// (capped at the longest one when the stored end is far in the future).
    #[tokio::test]
    async fn stored_state_survives_a_restart() {
        let s = Duration::from_secs;
        let policy = LoginPolicy {
            first_delay: s(1),
            max_delay: s(8),
            max_failures: 5,
            lockout: s(60),
            max_lockout: s(3_600),
        };
        let now = 1_800_000_000_000;
        let mut g = LoginGuard::new(policy.clone());
        g.failed();
        g.failed();
        let stored = g.to_stored(now);
        assert_eq!((stored.failures, stored.locked_until_ms), (2, 0));
        let mut again = LoginGuard::new(policy.clone());
        again.restore(stored, now);
        for _ in 0..2 {
            assert!(matches!(again.failed(), Penalty::Delay(_)));
        }
        assert_eq!(again.failed(), Penalty::Locked(s(60)));
        let stored = again.to_stored(now);
        assert_eq!(stored.lockouts, 1);
        assert!((now + 59_000..=now + 60_000).contains(&stored.locked_until_ms));

        // Restarted 20 s later: 40 s of lockout left, and the next lockout doubles.
        let mut after = LoginGuard::new(policy.clone());
        after.restore(stored, now + 20_000);
        let left = after.locked_for().unwrap();
        assert!((s(39)..=s(40)).contains(&left), "{left:?}");
        // A lockout stored as ending in a year is at most the longest lockout.
        let mut far = LoginGuard::new(policy);
        far.restore(
            ConsoleAuth {
                failures: 0,
                lockouts: 3,
                locked_until_ms: now + 365 * 86_400_000,
            },
            now,
        );
        assert!(far.locked_for().unwrap() <= s(3_600));
        far.succeeded();
        assert_eq!(far.to_stored(now), ConsoleAuth::default());
    }
}
