//! SIP events that arrive before their call task has registered its leg (the UA can answer
//! faster than the task starts), kept briefly and handed over when the leg registers.
//!
//! Events for a Call-ID that never registers (a retransmission after the call ended, a stray
//! response) expire; they must not pile up, and never push out the events of a call that is
//! being set up right now.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// A leg registers within milliseconds of its first event; anything older is stray.
pub const KEEP: Duration = Duration::from_secs(30);
/// Call-IDs kept at most (the oldest go first).
pub const MAX_CALLS: usize = 256;
/// Events kept per Call-ID.
pub const MAX_EVENTS: usize = 16;

/// Early events by SIP Call-ID.
pub struct Early<E> {
    by_call: HashMap<String, (Instant, Vec<E>)>,
}

impl<E> Default for Early<E> {
    fn default() -> Self {
        Self {
            by_call: HashMap::new(),
        }
    }
}

impl<E> Early<E> {
    /// Keeps `ev` for `call` until its leg registers.
    pub fn push(&mut self, call: String, ev: E) {
        let now = Instant::now();
        self.by_call
            .retain(|_, (since, _)| now.duration_since(*since) < KEEP);
        if !self.by_call.contains_key(&call) && self.by_call.len() >= MAX_CALLS {
            let oldest = self
                .by_call
                .iter()
                .min_by_key(|(_, (since, _))| *since)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.by_call.remove(&k);
            }
        }
        let (_, list) = self
            .by_call
            .entry(call)
            .or_insert_with(|| (now, Vec::new()));
        if list.len() < MAX_EVENTS {
            list.push(ev);
        }
    }

    /// The events kept for `call`, in arrival order.
    pub fn take(&mut self, call: &str) -> Vec<E> {
        self.by_call
            .remove(call)
            .map(|(_, l)| l)
            .unwrap_or_default()
    }

    /// Call-IDs kept now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_call.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn stray_events_expire_and_never_push_out_a_call_being_set_up() {
        let mut early = Early::default();
        // A busy day: one stray event after each of 1000 calls.
        for i in 0..1000 {
            early.push(format!("ended-{i}"), i);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(early.len() <= MAX_CALLS, "{}", early.len());
        // A call being set up now: its events survive the next strays and are handed over.
        early.push("new".into(), 1);
        early.push("new".into(), 2);
        for i in 0..300 {
            early.push(format!("late-{i}"), i);
        }
        assert_eq!(early.take("new"), vec![1, 2]);
        assert!(early.take("new").is_empty());
        // After the keep time, strays are gone.
        tokio::time::sleep(KEEP).await;
        early.push("x".into(), 0);
        assert_eq!(early.len(), 1);
    }
}
