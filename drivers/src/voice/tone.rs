//! Test tones and their detection: a sine generator with a continuous phase across frames, and
//! the Goertzel filter to measure a frequency's power or find the dominant one. Used by the
//! simulator (the far end's voice), the tests and the benchmark.

use super::{FRAME_SAMPLES, Frame, SAMPLE_RATE};

/// A sine tone cut into 20 ms frames without phase jumps.
#[derive(Debug, Clone)]
pub struct ToneGenerator {
    freq_hz: f64,
    amplitude: f64,
    phase: f64,
}

impl ToneGenerator {
    /// A tone at `freq_hz` with peak `amplitude` (0..=32767).
    pub fn new(freq_hz: f64, amplitude: i16) -> Self {
        ToneGenerator {
            freq_hz,
            amplitude: f64::from(amplitude.max(0)),
            phase: 0.0,
        }
    }

    /// The tone's frequency.
    pub fn freq_hz(&self) -> f64 {
        self.freq_hz
    }

    /// The next 20 ms.
    pub fn next_frame(&mut self) -> Frame {
        let mut f = [0i16; FRAME_SAMPLES];
        let step = std::f64::consts::TAU * self.freq_hz / f64::from(SAMPLE_RATE);
        for s in f.iter_mut() {
            *s = (self.amplitude * self.phase.sin()).round() as i16;
            self.phase += step;
            if self.phase >= std::f64::consts::TAU {
                self.phase -= std::f64::consts::TAU;
            }
        }
        f
    }
}

/// The power of `freq_hz` in `samples` (Goertzel), normalised so a full-scale sine at that
/// frequency gives about 0.25 regardless of length.
pub fn goertzel_power(samples: &[i16], freq_hz: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let n = samples.len() as f64;
    let w = std::f64::consts::TAU * freq_hz / f64::from(SAMPLE_RATE);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) / 32768.0 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    power / (n * n)
}

/// Root mean square of `samples` (0..=32767).
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// The strongest frequency in `samples` between 100 and 3900 Hz, or None for silence (RMS
/// below 50). A coarse scan in `step_hz` steps over a Hann-windowed 50 ms slice (its main lobe
/// is wider than the step, so no tone falls between two probes), then a 1 Hz scan over all of
/// `samples` around the coarse winner.
pub fn dominant_frequency(samples: &[i16], step_hz: f64) -> Option<f64> {
    if rms(samples) < 50.0 {
        return None;
    }
    let step = step_hz.clamp(1.0, 40.0);
    let slice = &samples[..samples.len().min(400)];
    let n = slice.len().max(2) as f64;
    let windowed: Vec<i16> = slice
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let w = 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / (n - 1.0)).cos();
            (f64::from(x) * w) as i16
        })
        .collect();
    let best = |data: &[i16], lo: f64, hi: f64, step: f64| {
        let mut f = lo;
        let (mut best_f, mut best_p) = (lo, -1.0f64);
        while f <= hi {
            let p = goertzel_power(data, f);
            if p > best_p {
                best_p = p;
                best_f = f;
            }
            f += step;
        }
        best_f
    };
    let coarse = best(&windowed, 100.0, 3900.0, step);
    Some(best(
        samples,
        (coarse - 2.0 * step).max(100.0),
        (coarse + 2.0 * step).min(3900.0),
        1.0,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_tone_it_made() {
        for freq in [300.0, 440.0, 1000.0, 1337.0, 2111.0, 3399.0] {
            let mut g = ToneGenerator::new(freq, 8000);
            let samples: Vec<i16> = (0..50).flat_map(|_| g.next_frame()).collect();
            let found = dominant_frequency(&samples, 25.0).unwrap_or(0.0);
            assert!((found - freq).abs() <= 3.0, "{freq} Hz found as {found}");
        }
    }

    #[test]
    fn silence_has_no_frequency() {
        assert_eq!(dominant_frequency(&[0i16; 1600], 25.0), None);
    }

    #[test]
    fn goertzel_separates_frequencies() {
        let mut g = ToneGenerator::new(1000.0, 16000);
        let samples: Vec<i16> = (0..10).flat_map(|_| g.next_frame()).collect();
        assert!(goertzel_power(&samples, 1000.0) > 100.0 * goertzel_power(&samples, 1500.0));
    }
}
