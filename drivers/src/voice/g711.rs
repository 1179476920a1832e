//! ITU-T G.711 μ-law and A-law, bit-exact with the ITU-T G.191 reference `g711.c` (A-law
//! also with Sun's classic `g711.c`; for μ-law Sun's rounds negative samples one step
//! differently): encoding by segment search, decoding through 256-entry tables built at compile
//! time.

use super::Codec;

/// μ-law bias (in the 16-bit domain, before the >> 2 to 14 bits).
const ULAW_BIAS: i32 = 0x84;
/// μ-law clip level in the 14-bit domain.
const ULAW_CLIP: i32 = 8159;
/// Upper ends of the μ-law segments (14-bit domain, bias added).
const ULAW_SEG_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
/// Upper ends of the A-law segments (13-bit domain).
const ALAW_SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

const fn segment(value: i32, ends: &[i32; 8]) -> usize {
    let mut i = 0;
    while i < 8 {
        if value <= ends[i] {
            return i;
        }
        i += 1;
    }
    8
}

/// One linear sample to μ-law.
pub const fn ulaw_encode(sample: i16) -> u8 {
    // Negative samples by one's complement, as in ITU-T G.191 (and as A-law does).
    let (mut pcm, mask) = if sample < 0 {
        ((!sample as i32) >> 2, 0x7F)
    } else {
        ((sample as i32) >> 2, 0xFF)
    };
    if pcm > ULAW_CLIP {
        pcm = ULAW_CLIP;
    }
    pcm += ULAW_BIAS >> 2;
    let seg = segment(pcm, &ULAW_SEG_END);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let uval = ((seg as i32) << 4) | ((pcm >> (seg + 1)) & 0x0F);
    (uval ^ mask) as u8
}

const fn ulaw_decode_calc(code: u8) -> i16 {
    let u = !code as i32 & 0xFF;
    let mut t = ((u & 0x0F) << 3) + ULAW_BIAS;
    t <<= (u & 0x70) >> 4;
    if u & 0x80 != 0 {
        (ULAW_BIAS - t) as i16
    } else {
        (t - ULAW_BIAS) as i16
    }
}

/// One linear sample to A-law.
pub const fn alaw_encode(sample: i16) -> u8 {
    let mut pcm = (sample as i32) >> 3;
    let mask: i32 = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let seg = segment(pcm, &ALAW_SEG_END);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mut aval = (seg as i32) << 4;
    if seg < 2 {
        aval |= (pcm >> 1) & 0x0F;
    } else {
        aval |= (pcm >> seg) & 0x0F;
    }
    (aval ^ mask) as u8
}

const fn alaw_decode_calc(code: u8) -> i16 {
    let a = (code ^ 0x55) as i32;
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 { t as i16 } else { -t as i16 }
}

const fn build_table(alaw: bool) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = if alaw {
            alaw_decode_calc(i as u8)
        } else {
            ulaw_decode_calc(i as u8)
        };
        i += 1;
    }
    table
}

/// μ-law code to linear sample.
pub static ULAW_DECODE: [i16; 256] = build_table(false);
/// A-law code to linear sample.
pub static ALAW_DECODE: [i16; 256] = build_table(true);

/// One μ-law code to a linear sample.
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[usize::from(code)]
}

/// One A-law code to a linear sample.
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[usize::from(code)]
}

/// Appends the encoding of `samples` in `codec` to `out` (one byte per sample).
pub fn encode(codec: Codec, samples: &[i16], out: &mut Vec<u8>) {
    out.reserve(samples.len());
    match codec {
        Codec::Pcmu => out.extend(samples.iter().map(|&s| ulaw_encode(s))),
        Codec::Pcma => out.extend(samples.iter().map(|&s| alaw_encode(s))),
    }
}

/// Appends the linear samples of the `codec` bytes `data` to `out`.
pub fn decode(codec: Codec, data: &[u8], out: &mut Vec<i16>) {
    let table = match codec {
        Codec::Pcmu => &ULAW_DECODE,
        Codec::Pcma => &ALAW_DECODE,
    };
    out.reserve(data.len());
    out.extend(data.iter().map(|&b| table[usize::from(b)]));
}

impl Codec {
    /// Appends the encoding of `samples` to `out`; see [`encode`].
    pub fn encode(&self, samples: &[i16], out: &mut Vec<u8>) {
        encode(*self, samples, out);
    }

    /// Appends the decoded samples of `data` to `out`; see [`decode`].
    pub fn decode(&self, data: &[u8], out: &mut Vec<i16>) {
        decode(*self, data, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reference_values() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(ulaw_encode(-1), 0x7F);
        assert_eq!(ulaw_encode(-4), 0x7F);
        assert_eq!(ulaw_encode(-5), 0x7E);
        assert_eq!(ulaw_encode(-1000), 0x4E);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        // A known pair from the reference: 1000 -> μ 0xCE / A 0xFA.
        assert_eq!(ulaw_encode(1000), 0xCE);
        assert_eq!(alaw_encode(1000), 0xFA);
    }

    #[test]
    fn all_codes_round_trip() {
        for c in 0..=255u8 {
            let u = ulaw_encode(ulaw_decode(c));
            if c == 0x7F {
                // μ-law has two zeros; 0 encodes as the positive one.
                assert_eq!(u, 0xFF);
            } else {
                assert_eq!(u, c, "μ-law {c:#04x}");
            }
            assert_eq!(alaw_encode(alaw_decode(c)), c, "A-law {c:#04x}");
        }
    }

    #[test]
    fn encode_is_monotonic() {
        let mut prev_u = ulaw_decode(ulaw_encode(i16::MIN));
        let mut prev_a = alaw_decode(alaw_encode(i16::MIN));
        for s in i16::MIN..=i16::MAX {
            let u = ulaw_decode(ulaw_encode(s));
            let a = alaw_decode(alaw_encode(s));
            assert!(u >= prev_u && a >= prev_a, "at {s}");
            prev_u = u;
            prev_a = a;
        }
    }

    #[test]
    fn slice_helpers() {
        let samples = [0i16, 1000, -1000, 32767, -32768];
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut bytes = Vec::new();
            codec.encode(&samples, &mut bytes);
            assert_eq!(bytes.len(), samples.len());
            let mut back = Vec::new();
            codec.decode(&bytes, &mut back);
            assert_eq!(back.len(), samples.len());
        }
    }

    proptest! {
        #[test]
        fn decode_encode_is_close(x in any::<i16>()) {
            let bound = i32::from(x).abs() / 16 + 32;
            let u = i32::from(ulaw_decode(ulaw_encode(x)));
            let a = i32::from(alaw_decode(alaw_encode(x)));
            prop_assert!((u - i32::from(x)).abs() <= bound, "μ {} -> {}", x, u);
            prop_assert!((a - i32::from(x)).abs() <= bound, "A {} -> {}", x, a);
        }

        #[test]
        fn slices_match_samples(v in proptest::collection::vec(any::<i16>(), 0..400)) {
            let mut bytes = Vec::new();
            encode(Codec::Pcma, &v, &mut bytes);
            let mut back = Vec::new();
            decode(Codec::Pcma, &bytes, &mut back);
            for (x, y) in v.iter().zip(back.iter()) {
                prop_assert_eq!(alaw_decode(alaw_encode(*x)), *y);
            }
        }
    }
}
