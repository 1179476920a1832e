//! The jitter buffer toward the modem: RTP audio goes in as it arrives, one 20 ms frame comes
//! out per modem tick. Playout follows the modem's clock, so clock drift between the far end
//! and the modem shows up as a slowly growing or shrinking depth and is corrected here.

use std::collections::{BTreeMap, VecDeque};

use super::{FRAME_SAMPLES, Frame};

/// Tuning of a [`JitterBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// Frames buffered before playout starts (and the depth drift correction aims for).
    pub target_frames: usize,
    /// Most frames kept; beyond this the oldest are dropped.
    pub max_frames: usize,
    /// Pops the depth must stay above `target_frames + 2` before one frame is dropped.
    pub drift_window_pops: u32,
    /// Consecutive empty pops after which playout stops and prefetches again.
    pub underruns_to_refill: u32,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            target_frames: 2,
            max_frames: 8,
            drift_window_pops: 50,
            underruns_to_refill: 3,
        }
    }
}

/// Counters of a [`JitterBuffer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets accepted into the buffer.
    pub pushed: u64,
    /// Frames played from received audio.
    pub played: u64,
    /// Packets that arrived after their playout time (dropped).
    pub late: u64,
    /// Packets received twice (dropped).
    pub duplicates: u64,
    /// Packets never received by their playout time.
    pub lost: u64,
    /// Frames made up (attenuated repeat or silence) during playout.
    pub concealed: u64,
    /// Pops that found the buffer empty while playing.
    pub underruns: u64,
    /// Frames dropped because the buffer was full.
    pub overflow_drops: u64,
    /// Frames dropped because the depth stayed high (sender's clock faster than the modem's).
    pub drift_drops: u64,
    /// Times playout (re)started after prefetching.
    pub prefetches: u64,
    /// Stream restarts (sequence number jumps).
    pub resyncs: u64,
}

/// Jumps larger than this (in packets) are a new stream, not loss or lateness.
const RESYNC_DISTANCE: u64 = 1000;

/// Reorders RTP audio by sequence number and plays it out one frame per pop.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    /// Packets by extended sequence number.
    entries: BTreeMap<u64, Vec<i16>>,
    buffered_samples: usize,
    /// Samples taken from packets but not yet played (packets that are not 20 ms long).
    pending: VecDeque<i16>,
    /// Extended sequence number to play next, once anchored.
    next: Option<u64>,
    highest: Option<u64>,
    playing: bool,
    last_frame: Option<Frame>,
    conceal_run: u32,
    underrun_run: u32,
    above_target_pops: u32,
    stats: JitterStats,
}

impl Default for JitterBuffer {
    fn default() -> Self {
        Self::new(JitterConfig::default())
    }
}

impl JitterBuffer {
    /// An empty buffer.
    pub fn new(cfg: JitterConfig) -> Self {
        JitterBuffer {
            cfg: JitterConfig {
                target_frames: cfg.target_frames.max(1),
                max_frames: cfg.max_frames.max(cfg.target_frames + 1),
                ..cfg
            },
            entries: BTreeMap::new(),
            buffered_samples: 0,
            pending: VecDeque::with_capacity(FRAME_SAMPLES * 2),
            next: None,
            highest: None,
            playing: false,
            last_frame: None,
            conceal_run: 0,
            underrun_run: 0,
            above_target_pops: 0,
            stats: JitterStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Whole frames buffered (received, not yet played).
    pub fn depth_frames(&self) -> usize {
        (self.buffered_samples + self.pending.len()) / FRAME_SAMPLES
    }

    /// Playout has started (prefetch done).
    pub fn is_playing(&self) -> bool {
        self.playing
    }

    fn extend(&self, seq: u16) -> u64 {
        match self.highest {
            None => (1u64 << 32) + u64::from(seq),
            Some(h) => {
                let delta = i64::from(seq.wrapping_sub(h as u16) as i16);
                (h as i64 + delta) as u64
            }
        }
    }

    fn clear_stream(&mut self) {
        self.entries.clear();
        self.buffered_samples = 0;
        self.pending.clear();
        self.next = None;
        self.highest = None;
        self.playing = false;
        self.underrun_run = 0;
        self.above_target_pops = 0;
    }

    /// Forgets the buffered audio and the sequence numbering (new stream).
    pub fn reset(&mut self) {
        self.clear_stream();
        self.last_frame = None;
        self.conceal_run = 0;
    }

    /// Adds one packet's decoded samples. `_ts` is accepted for symmetry with RTP; ordering is
    /// by sequence number.
    pub fn push(&mut self, seq: u16, _ts: u32, samples: &[i16]) {
        if samples.is_empty() {
            return;
        }
        let mut ext = self.extend(seq);
        if let Some(next) = self.next {
            if ext < next {
                if next - ext <= RESYNC_DISTANCE {
                    self.stats.late += 1;
                    return;
                }
                self.resync();
                ext = self.extend(seq);
            } else if ext - next > RESYNC_DISTANCE {
                self.resync();
                ext = self.extend(seq);
            }
        } else if let Some(h) = self.highest {
            if h.abs_diff(ext) > RESYNC_DISTANCE {
                self.resync();
                ext = self.extend(seq);
            }
        }
        if self.entries.contains_key(&ext) {
            self.stats.duplicates += 1;
            return;
        }
        self.buffered_samples += samples.len();
        self.entries.insert(ext, samples.to_vec());
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        self.stats.pushed += 1;
        while self.buffered_samples + self.pending.len() > self.cfg.max_frames * FRAME_SAMPLES {
            if !self.drop_oldest() {
                break;
            }
            self.stats.overflow_drops += 1;
        }
    }

    fn resync(&mut self) {
        self.stats.resyncs += 1;
        self.clear_stream();
    }

    /// Removes the oldest buffered packet; playout continues after it.
    fn drop_oldest(&mut self) -> bool {
        match self.entries.pop_first() {
            Some((k, v)) => {
                self.buffered_samples -= v.len();
                if let Some(next) = self.next {
                    if next <= k {
                        self.stats.lost += k - next;
                        self.next = Some(k + 1);
                    }
                }
                true
            }
            None => false,
        }
    }

    fn conceal(&mut self) -> Frame {
        self.stats.concealed += 1;
        self.conceal_run += 1;
        match (self.conceal_run, self.last_frame) {
            (1, Some(last)) => {
                let mut f = last;
                for s in f.iter_mut() {
                    *s /= 2;
                }
                f
            }
            _ => [0; FRAME_SAMPLES],
        }
    }

    /// The next 20 ms for the modem: received audio, a concealment frame, or silence while
    /// prefetching.
    pub fn pop(&mut self) -> Frame {
        if !self.playing {
            if self.depth_frames() < self.cfg.target_frames {
                return [0; FRAME_SAMPLES];
            }
            self.playing = true;
            self.stats.prefetches += 1;
            self.underrun_run = 0;
            if let Some((&first, _)) = self.entries.first_key_value() {
                match self.next {
                    Some(n) if n < first => {
                        self.stats.lost += first - n;
                        self.next = Some(first);
                    }
                    Some(_) => {}
                    None => self.next = Some(first),
                }
            }
        }
        while self.pending.len() < FRAME_SAMPLES {
            let Some(next) = self.next else { break };
            let Some((&first, _)) = self.entries.first_key_value() else {
                break;
            };
            if first > next {
                break;
            }
            if let Some((k, v)) = self.entries.pop_first() {
                self.buffered_samples -= v.len();
                if k == next {
                    self.pending.extend(v);
                    self.next = Some(next + 1);
                }
            }
        }
        let frame = if self.pending.len() >= FRAME_SAMPLES {
            let mut f = [0i16; FRAME_SAMPLES];
            for (d, s) in f.iter_mut().zip(self.pending.drain(..FRAME_SAMPLES)) {
                *d = s;
            }
            self.last_frame = Some(f);
            self.conceal_run = 0;
            self.underrun_run = 0;
            self.stats.played += 1;
            f
        } else if !self.entries.is_empty() {
            // The next packet is missing but later ones are here: it is lost.
            self.stats.lost += 1;
            self.next = self.next.map(|n| n + 1);
            self.underrun_run = 0;
            self.conceal_with_pending()
        } else {
            // Nothing at all: the sender is late or silent. Keep waiting for the same packet.
            self.stats.underruns += 1;
            self.underrun_run += 1;
            if self.underrun_run >= self.cfg.underruns_to_refill {
                self.playing = false;
            }
            self.conceal_with_pending()
        };
        self.correct_drift();
        frame
    }

    /// A concealment frame that still plays whatever partial samples are pending.
    fn conceal_with_pending(&mut self) -> Frame {
        let mut f = self.conceal();
        for (d, s) in f.iter_mut().zip(self.pending.drain(..)) {
            *d = s;
        }
        f
    }

    fn correct_drift(&mut self) {
        if !self.playing {
            self.above_target_pops = 0;
            return;
        }
        if self.depth_frames() > self.cfg.target_frames + 2 {
            self.above_target_pops += 1;
            if self.above_target_pops >= self.cfg.drift_window_pops {
                self.above_target_pops = 0;
                if self.drop_oldest() {
                    self.stats.drift_drops += 1;
                }
            }
        } else {
            self.above_target_pops = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(n: u16) -> Vec<i16> {
        vec![n as i16; FRAME_SAMPLES]
    }

    fn id(f: &Frame) -> i16 {
        f[0]
    }

    #[test]
    fn prefetches_then_plays_in_order() {
        let mut jb = JitterBuffer::default();
        jb.push(100, 0, &frame(100));
        assert_eq!(id(&jb.pop()), 0, "prefetching");
        jb.push(101, 160, &frame(101));
        assert_eq!(id(&jb.pop()), 100);
        jb.push(102, 320, &frame(102));
        assert_eq!(id(&jb.pop()), 101);
        assert_eq!(id(&jb.pop()), 102);
        assert_eq!(jb.stats().played, 3);
    }

    #[test]
    fn reorders_and_drops_duplicates() {
        let mut jb = JitterBuffer::default();
        for s in [11u16, 10, 10, 13, 12] {
            jb.push(s, 0, &frame(s));
        }
        let out: Vec<i16> = (0..4).map(|_| id(&jb.pop())).collect();
        assert_eq!(out, [10, 11, 12, 13]);
        assert_eq!(jb.stats().duplicates, 1);
    }

    #[test]
    fn wraps_around() {
        let mut jb = JitterBuffer::default();
        let seqs: Vec<u16> = (0..6u16).map(|i| 65533u16.wrapping_add(i)).collect();
        for &s in &seqs {
            jb.push(s, 0, &frame(s % 1000));
        }
        let out: Vec<i16> = (0..6).map(|_| id(&jb.pop())).collect();
        let want: Vec<i16> = seqs.iter().map(|s| (s % 1000) as i16).collect();
        assert_eq!(out, want);
    }

    #[test]
    fn late_packets_are_dropped() {
        let mut jb = JitterBuffer::default();
        jb.push(1, 0, &frame(1));
        jb.push(2, 0, &frame(2));
        jb.push(3, 0, &frame(3));
        assert_eq!(id(&jb.pop()), 1);
        assert_eq!(id(&jb.pop()), 2);
        jb.push(1, 0, &frame(1));
        assert_eq!(jb.stats().late, 1);
        assert_eq!(id(&jb.pop()), 3);
    }

    #[test]
    fn loss_is_concealed_then_silent() {
        let mut jb = JitterBuffer::default();
        jb.push(1, 0, &frame(40));
        jb.push(2, 0, &frame(40));
        jb.push(6, 0, &frame(6));
        assert_eq!(id(&jb.pop()), 40);
        assert_eq!(id(&jb.pop()), 40);
        assert_eq!(id(&jb.pop()), 20, "attenuated repeat");
        assert_eq!(id(&jb.pop()), 0);
        assert_eq!(id(&jb.pop()), 0);
        assert_eq!(id(&jb.pop()), 6);
        let st = jb.stats();
        assert_eq!(st.lost, 3);
        assert_eq!(st.concealed, 3);
    }

    #[test]
    fn underruns_refill() {
        let mut jb = JitterBuffer::default();
        jb.push(1, 0, &frame(1));
        jb.push(2, 0, &frame(2));
        jb.pop();
        jb.pop();
        for _ in 0..3 {
            jb.pop();
        }
        assert!(!jb.is_playing());
        assert_eq!(jb.stats().underruns, 3);
        jb.push(3, 0, &frame(3));
        assert_eq!(id(&jb.pop()), 0, "prefetching again");
        jb.push(4, 0, &frame(4));
        assert_eq!(id(&jb.pop()), 3);
        assert_eq!(jb.stats().prefetches, 2);
    }

    #[test]
    fn overflow_drops_oldest() {
        let mut jb = JitterBuffer::default();
        for s in 0..12u16 {
            jb.push(s, 0, &frame(s));
        }
        assert_eq!(jb.depth_frames(), 8);
        assert_eq!(jb.stats().overflow_drops, 4);
        assert_eq!(id(&jb.pop()), 4);
    }

    #[test]
    fn drift_drops_a_frame_after_a_second() {
        let mut jb = JitterBuffer::default();
        let mut seq = 0u16;
        for _ in 0..6 {
            jb.push(seq, 0, &frame(seq));
            seq += 1;
        }
        // Sender and modem at the same rate, but 6 frames deep: 4 above the target.
        for _ in 0..49 {
            jb.push(seq, 0, &frame(seq));
            seq += 1;
            jb.pop();
        }
        assert_eq!(jb.stats().drift_drops, 0);
        jb.push(seq, 0, &frame(seq));
        seq += 1;
        jb.pop();
        assert_eq!(jb.stats().drift_drops, 1);
        // Keeps correcting while the depth stays high, then stops.
        for _ in 0..200 {
            jb.push(seq, 0, &frame(seq));
            seq += 1;
            jb.pop();
        }
        assert_eq!(jb.stats().drift_drops, 2);
        assert!(jb.depth_frames() <= 4);
        assert_eq!(jb.stats().concealed, 0);
    }

    #[test]
    fn odd_packet_sizes_are_reframed() {
        let mut jb = JitterBuffer::default();
        // 30 ms packets.
        let samples: Vec<i16> = (0..240 * 4).map(|i| i as i16).collect();
        for (i, chunk) in samples.chunks(240).enumerate() {
            jb.push(i as u16, 0, chunk);
        }
        let out: Vec<i16> = (0..6).flat_map(|_| jb.pop()).collect();
        assert_eq!(out, samples);
    }

    #[test]
    fn new_stream_resyncs() {
        let mut jb = JitterBuffer::default();
        jb.push(10, 0, &frame(10));
        jb.push(11, 0, &frame(11));
        jb.pop();
        jb.push(30000, 0, &frame(3));
        jb.push(30001, 0, &frame(4));
        assert_eq!(jb.stats().resyncs, 1);
        assert_eq!(id(&jb.pop()), 3);
    }

    proptest! {
        #[test]
        fn any_arrival_order_never_panics_and_bounds_depth(
            start in any::<u16>(),
            ops in proptest::collection::vec((0u16..40, any::<bool>()), 0..300),
        ) {
            let mut jb = JitterBuffer::default();
            for (off, pop) in ops {
                jb.push(start.wrapping_add(off), 0, &frame(off));
                if pop {
                    jb.pop();
                }
                prop_assert!(jb.depth_frames() <= 8);
            }
        }

        #[test]
        fn in_order_stream_plays_everything(start in any::<u16>(), n in 3usize..200) {
            let mut jb = JitterBuffer::default();
            let mut out = Vec::new();
            for i in 0..n {
                let s = start.wrapping_add(i as u16);
                jb.push(s, 0, &frame(i as u16 % 1000 + 1));
                out.push(id(&jb.pop()));
            }
            // The last frame still buffered (one more pop would conceal).
            out.push(id(&jb.pop()));
            let played: Vec<i16> = out.into_iter().filter(|&x| x != 0).collect();
            let want: Vec<i16> = (0..n).map(|i| (i % 1000 + 1) as i16).collect();
            prop_assert_eq!(played, want);
        }
    }
}
