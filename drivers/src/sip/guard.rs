//! What stands between the network and the user agent: who may call (trusted addresses and the
//! inbound authentication mode), per-source rate limits, and counters of what was refused,
//! reported once per interval instead of once per packet.
//!
//! Everything here is bounded: the rate-limit map holds at most [`MAX_SOURCES`] addresses (new
//! ones beyond that share one bucket), the set of refused sources counted per report at most
//! [`MAX_REPORTED_SOURCES`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

/// Largest datagram the user agent reads. SIP over UDP should stay under the path MTU
/// (RFC 3261 §18.1.1 wants TCP above 1300 bytes), but real INVITEs through several proxies
/// with long Via/Record-Route sets and SDP reach 3–4 KiB; 8 KiB leaves room for those and
/// refuses the 60 KB datagrams a flood uses to eat memory.
pub const MAX_DATAGRAM: usize = 8 * 1024;
/// Most source addresses with their own rate-limit bucket.
pub const MAX_SOURCES: usize = 4096;
/// Most distinct refused sources counted in one report (more are counted as "at least").
pub const MAX_REPORTED_SOURCES: usize = 4096;
/// How often a summary of refused traffic is logged (at most).
pub const REPORT_INTERVAL: Duration = Duration::from_secs(10);
/// How long a digest nonce we issued stays good.
pub const NONCE_LIFETIME_SECS: u64 = 60;
/// Most digest answers remembered against replay (each for [`NONCE_LIFETIME_SECS`]).
pub const MAX_REPLAY_ENTRIES: usize = 4096;

/// How an INVITE from the PBX proves it is the PBX.
#[derive(Clone, PartialEq, Eq)]
pub enum InboundAuth {
    /// The source address alone (trusted peers). Spoofable on UDP.
    Ip,
    /// The Request-URI carries the unguessable token we put in the registered Contact.
    ContactToken,
    /// A digest challenge (407) answered with these credentials.
    Digest {
        /// User name the PBX must use.
        username: String,
        /// Its password.
        password: String,
    },
}

impl std::fmt::Debug for InboundAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InboundAuth::Ip => f.write_str("Ip"),
            InboundAuth::ContactToken => f.write_str("ContactToken"),
            InboundAuth::Digest { username, .. } => f
                .debug_struct("Digest")
                .field("username", username)
                .field("password", &"<hidden>")
                .finish(),
        }
    }
}

/// What happens to a request from an address that is not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untrusted {
    /// One 403, sent statelessly (no transaction, no retransmission).
    Reject,
    /// Nothing is sent.
    Drop,
}

/// Who may use the trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// Addresses whose requests are considered at all; empty = every address.
    pub trusted: Vec<IpAddr>,
    /// How a new INVITE from a trusted address must prove itself.
    pub auth: InboundAuth,
    /// What an untrusted address gets.
    pub untrusted: Untrusted,
    /// Datagrams per second per source address (burst twice that); 0 = no limit.
    pub rate_per_source: u32,
}

impl Default for Inbound {
    fn default() -> Inbound {
        Inbound {
            trusted: Vec::new(),
            auth: InboundAuth::Ip,
            untrusted: Untrusted::Reject,
            rate_per_source: 0,
        }
    }
}

impl Inbound {
    /// Whether `ip` is trusted.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.is_empty() || self.trusted.contains(&ip)
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A token bucket per source address in a bounded map.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: HashMap<IpAddr, Bucket>,
    /// Shared by new sources while the map is full.
    overflow: Bucket,
    last_sweep: Instant,
}

impl RateLimiter {
    /// `rate` datagrams per second per source, bursts of twice that; 0 = unlimited.
    pub fn new(rate: u32) -> RateLimiter {
        let now = Instant::now();
        let burst = f64::from(rate) * 2.0;
        RateLimiter {
            rate: f64::from(rate),
            burst,
            buckets: HashMap::new(),
            overflow: Bucket {
                tokens: burst,
                last: now,
            },
            last_sweep: now,
        }
    }

    fn take(rate: f64, burst: f64, b: &mut Bucket, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether one more datagram from `ip` is allowed now.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let (rate, burst) = (self.rate, self.burst);
        if let Some(b) = self.buckets.get_mut(&ip) {
            return Self::take(rate, burst, b, now);
        }
        if self.buckets.len() >= MAX_SOURCES {
            self.sweep(now);
        }
        if self.buckets.len() >= MAX_SOURCES {
            return Self::take(rate, burst, &mut self.overflow, now);
        }
        let mut b = Bucket {
            tokens: burst,
            last: now,
        };
        let ok = Self::take(rate, burst, &mut b, now);
        self.buckets.insert(ip, b);
        ok
    }

    /// Forgets sources whose bucket has filled up again (they look like new ones), at most
    /// once a second; gives the map's memory back when it empties.
    pub fn sweep(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last_sweep) < Duration::from_secs(1) {
            return;
        }
        self.last_sweep = now;
        let refill = Duration::from_secs_f64(self.burst / self.rate.max(1.0));
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.last) < refill);
        if self.buckets.len() < self.buckets.capacity() / 4 {
            self.buckets.shrink_to_fit();
        }
    }

    /// Sources with a bucket now.
    pub fn sources(&self) -> usize {
        self.buckets.len()
    }
}

/// Why a datagram or request was refused (counted, reported per interval).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// From an address that is not trusted.
    Untrusted,
    /// Over its source's rate limit.
    RateLimited,
    /// Larger than [`MAX_DATAGRAM`].
    Oversized,
    /// Not a SIP message.
    Malformed,
    /// A trusted address without the contact token or valid digest credentials.
    Unauthenticated,
}

/// Counters of refused traffic since the last report.
#[derive(Debug, Default)]
pub struct Counters {
    untrusted: u64,
    rate_limited: u64,
    oversized: u64,
    malformed: u64,
    unauthenticated: u64,
    sources: HashSet<IpAddr>,
    sources_overflow: bool,
    /// When the current interval's report is due (None while nothing was counted).
    pub report_at: Option<Instant>,
}

impl Counters {
    /// Counts one refusal from `src`.
    pub fn count(&mut self, why: Refusal, src: IpAddr, now: Instant) {
        match why {
            Refusal::Untrusted => self.untrusted += 1,
            Refusal::RateLimited => self.rate_limited += 1,
            Refusal::Oversized => self.oversized += 1,
            Refusal::Malformed => self.malformed += 1,
            Refusal::Unauthenticated => self.unauthenticated += 1,
        }
        if self.sources.len() < MAX_REPORTED_SOURCES {
            self.sources.insert(src);
        } else if !self.sources.contains(&src) {
            self.sources_overflow = true;
        }
        if self.report_at.is_none() {
            self.report_at = Some(now + REPORT_INTERVAL);
        }
    }

    /// The summary line of this interval, and a fresh interval; None when nothing was counted.
    pub fn take_report(&mut self) -> Option<String> {
        self.report_at = None;
        let total = self.untrusted
            + self.rate_limited
            + self.oversized
            + self.malformed
            + self.unauthenticated;
        if total == 0 {
            return None;
        }
        let mut parts = Vec::new();
        for (n, what) in [
            (self.untrusted, "from untrusted addresses"),
            (self.unauthenticated, "failing authentication"),
            (self.rate_limited, "over the per-source rate limit"),
            (self.oversized, "oversized"),
            (self.malformed, "malformed"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        let line = format!(
            "refused {total} SIP datagrams from {}{} sources in the last {} s: {}",
            if self.sources_overflow {
                "more than "
            } else {
                ""
            },
            self.sources.len(),
            REPORT_INTERVAL.as_secs(),
            parts.join(", ")
        );
        *self = Counters::default();
        Some(line)
    }
}

/// Digest answers already used (nonce, cnonce, nc), so that a captured INVITE cannot be
/// replayed with a new Call-ID while its nonce is fresh.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: HashSet<String>,
    order: VecDeque<(Instant, String)>,
}

impl ReplayGuard {
    /// Records `key`; false when it was used already (or the guard is full of fresh entries).
    pub fn first_use(&mut self, key: String, now: Instant) -> bool {
        let life = Duration::from_secs(NONCE_LIFETIME_SECS + 5);
        while let Some((t, k)) = self.order.front() {
            if now.saturating_duration_since(*t) < life {
                break;
            }
            self.seen.remove(k);
            self.order.pop_front();
        }
        if self.seen.contains(&key) || self.order.len() >= MAX_REPLAY_ENTRIES {
            return false;
        }
        self.seen.insert(key.clone());
        self.order.push_back((now, key));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_per_source() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(10);
        let a: IpAddr = [127, 0, 0, 2].into();
        let b: IpAddr = [127, 0, 0, 3].into();
        let allowed = (0..100).filter(|_| rl.allow(a, t0)).count();
        assert_eq!(allowed, 20, "a burst of twice the rate");
        assert!(rl.allow(b, t0), "another source has its own bucket");
        assert!(rl.allow(a, t0 + Duration::from_millis(150)), "refilled");
        assert!(RateLimiter::new(0).allow(a, t0), "0 = no limit");
    }

    #[test]
    fn the_map_stays_bounded() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(1);
        for i in 0..(MAX_SOURCES as u32 + 100) {
            rl.allow(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert_eq!(rl.sources(), MAX_SOURCES);
        // Later every bucket has refilled: the sweep forgets them.
        rl.allow([10, 9, 9, 9].into(), t0 + Duration::from_secs(10));
        assert_eq!(rl.sources(), 1);
    }

    #[test]
    fn one_report_per_interval() {
        let t0 = Instant::now();
        let mut c = Counters::default();
        assert!(c.take_report().is_none());
        for i in 0..500u32 {
            c.count(
                Refusal::Untrusted,
                IpAddr::from((0x7f00_0002 + i % 5).to_be_bytes()),
                t0,
            );
        }
        c.count(Refusal::RateLimited, [127, 0, 0, 2].into(), t0);
        assert_eq!(c.report_at, Some(t0 + REPORT_INTERVAL));
        let line = c.take_report().unwrap();
        assert_eq!(
            line,
            "refused 501 SIP datagrams from 5 sources in the last 10 s: 500 from untrusted \
             addresses, 1 over the per-source rate limit"
        );
        assert!(c.take_report().is_none());
        assert!(c.report_at.is_none());
    }

    #[test]
    fn replayed_digest_answers_are_refused() {
        let t0 = Instant::now();
        let mut g = ReplayGuard::default();
        assert!(g.first_use("n:c:1".into(), t0));
        assert!(!g.first_use("n:c:1".into(), t0));
        assert!(g.first_use("n:c:2".into(), t0));
        let later = t0 + Duration::from_secs(NONCE_LIFETIME_SECS + 10);
        assert!(
            g.first_use("n:c:1".into(), later),
            "forgotten after the lifetime"
        );
    }
}
