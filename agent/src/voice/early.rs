//! SIP events that arrive before their call task has registered its leg (the UA can answer
//! faster than the task starts), kept briefly and handed over when the leg registers.
//!
//! Events for a Call-ID that never registers (a retransmission after the call ended, a stray
//! response) expire; they must not pile up and then take the events of a call being set up
//! with them.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// A leg registers within milliseconds of its first event; anything older is stray.
pub const KEEP: Duration = Duration::from_secs(30);
/// Call-IDs kept at most (the first to arrive goes first).
pub const MAX_CALLS: usize = 256;
/// Events kept per Call-ID.
pub const MAX_EVENTS: usize = 16;

/// Early events by SIP Call-ID.
pub struct Early<E> {
    /// Call-ID → (first event's time, arrival number, events).
    by_call: HashMap<String, (Instant, u64, Vec<E>)>,
    arrivals: u64,
}

impl<E> Default for Early<E> {
    fn default() -> Self {
        Self {
            by_call: HashMap::new(),
            arrivals: 0,
        }
    }
}

impl<E> Early<E> {
    /// Keeps `ev` for `call` until its leg registers.
    pub fn push(&mut self, call: String, ev: E) {
        let now = Instant::now();
        self.by_call
            .retain(|_, (since, _, _)| now.duration_since(*since) < KEEP);
        if !self.by_call.contains_key(&call) && self.by_call.len() >= MAX_CALLS {
            let first = self
                .by_call
                .iter()
                .min_by_key(|(_, (_, n, _))| *n)
                .map(|(k, _)| k.clone());
            if let Some(k) = first {
                self.by_call.remove(&k);
            }
        }
        self.arrivals += 1;
        let n = self.arrivals;
        let (_, _, list) = self
            .by_call
            .entry(call)
            .or_insert_with(|| (now, n, Vec::new()));
        if list.len() < MAX_EVENTS {
            list.push(ev);
        }
    }

    /// The events kept for `call`, in arrival order.
    pub fn take(&mut self, call: &str) -> Vec<E> {
        self.by_call
            .remove(call)
            .map(|(_, _, l)| l)
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
    async fn stray_events_expire_instead_of_pushing_out_a_call_being_set_up() {
        let mut early = Early::default();
        // A busy day: one stray event after each of 1000 calls, 200 ms apart. Only those of
        // the last 30 s are kept (the old code kept them all and cleared everything at 257,
        // the events of a call being set up with them).
        for i in 0..1000 {
            early.push(format!("ended-{i}"), i);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(early.len() <= 151, "{}", early.len());
        // A call being set up now, then more strays: its events survive and are handed over.
        early.push("new".into(), 1);
        early.push("new".into(), 2);
        for i in 0..100 {
            early.push(format!("late-{i}"), i);
        }
        assert_eq!(early.take("new"), vec![1, 2]);
        assert!(early.take("new").is_empty());
        // After the keep time, strays are gone.
        tokio::time::sleep(KEEP).await;
        early.push("x".into(), 0);
        assert_eq!(early.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_bound_the_first_call_to_arrive_goes_first() {
        let mut early = Early::default();
        for i in 0..MAX_CALLS {
            early.push(format!("c-{i}"), i);
        }
        early.push("c-0".into(), 1000);
        assert_eq!(
            early.len(),
            MAX_CALLS,
            "more events of a kept call add no Call-ID"
        );
        early.push("one-more".into(), 0);
        assert_eq!(early.len(), MAX_CALLS);
        assert!(early.take("c-0").is_empty(), "the first to arrive went");
        assert_eq!(early.take("c-1"), vec![1]);
        assert_eq!(early.take("one-more"), vec![0]);
    }
}
