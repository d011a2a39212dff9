//! CRC-32C (Castagnoli), the checksum of every frame, header and checkpoint.
//!
//! [`append`] is the one entry point. On x86-64 CPUs with the CRC32 and carry-less
//! multiply instructions (`sse4.2`, `pclmulqdq`: every x86-64 server CPU of the last
//! decade), detected at run time, it runs the kernel below; elsewhere, and under Miri,
//! the portable `crc32c` crate. Both give the same value for the same bytes;
//! the tests check it for every length up to a few KiB.
//!
//! Why a kernel of our own: a record of 128 B costs one CRC per append, and the CRC32
//! instruction has a latency of 3 cycles for 8 bytes, so a single chain over a record is
//! about 60 cycles, most of the append. The kernel cuts the chain into three lanes that
//! the CPU runs side by side, then joins them with one carry-less multiply each; the
//! general-purpose crate only does that from 768 bytes on, behind more bookkeeping.
//!
//! The one `unsafe` block of the crate outside the modules that map files is the call
//! into the kernel: Rust requires it for any function compiled for CPU features the
//! caller was not compiled for. The kernel itself is safe code.

/// Appends `data` to a CRC-32C computed so far (`0` for none), like
/// `crc32c::crc32c_append`.
#[inline]
pub(crate) fn append(crc: u32, data: &[u8]) -> u32 {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if std::arch::is_x86_feature_detected!("sse4.2")
        && std::arch::is_x86_feature_detected!("pclmulqdq")
    {
        #[expect(
            unsafe_code,
            reason = "calling a kernel built for detected CPU features"
        )]
        // SAFETY: the kernel only needs the two CPU features it is compiled for, and
        // both were just detected on the CPU this runs on.
        return unsafe { hw::append(crc, data) };
    }
    crc32c::crc32c_append(crc, data)
}

#[cfg(all(target_arch = "x86_64", not(miri)))]
mod hw {
    use std::arch::x86_64::{
        _mm_clmulepi64_si128, _mm_crc32_u8, _mm_crc32_u32, _mm_crc32_u64, _mm_cvtsi64_si128,
        _mm_cvtsi128_si64,
    };

    /// The CRC-32C polynomial in normal bit order, `x^32` implied.
    const POLY: u32 = 0x1EDC_6F41;

    /// Words (8 bytes) per lane at most; longer input goes through several rounds.
    const MAX_LANE_WORDS: usize = 32;

    /// `x^m mod POLY`, normal bit order (bit 31 is `x^31`).
    const fn x_pow_mod(m: u32) -> u32 {
        let mut v: u32 = 1;
        let mut i = 0;
        while i < m {
            let carry = v & 0x8000_0000 != 0;
            v <<= 1;
            if carry {
                v ^= POLY;
            }
            i += 1;
        }
        v
    }

    /// The multiplier that advances a CRC state past `bytes` zero bytes through
    /// [`shift`].
    ///
    /// In the reflected order the CRC32 instruction works in, a 32-bit value `v` stands
    /// for `V(x) = sum v_i x^(31-i)`. The carry-less product of two such values, read
    /// as the 64-bit data operand of the CRC32 instruction, stands for `A·B·x`, and
    /// the instruction with a zero state returns `D·x^32 mod P`: so `A·B·x^33 mod P`.
    /// Advancing `A` past `n` bytes is `A·x^(8n) mod P`, hence `B = x^(8n-33) mod P`,
    /// bit-reversed into the reflected order.
    const fn shift_multiplier(bytes: usize) -> u64 {
        // `bytes` is a lane length, 8 to 512: the product fits, and 8·bytes ≥ 64 > 33.
        #[expect(clippy::cast_possible_truncation, reason = "bytes is at most 512")]
        let bits = (bytes * 8) as u32;
        x_pow_mod(bits - 33).reverse_bits() as u64
    }

    /// For lanes of `w` words: the multipliers for two lanes and for one lane.
    #[expect(
        clippy::indexing_slicing,
        reason = "evaluated at compile time: an index out of range fails the build"
    )]
    const MULTIPLIERS: [[u64; 2]; MAX_LANE_WORDS + 1] = {
        let mut t = [[0u64; 2]; MAX_LANE_WORDS + 1];
        let mut w = 1;
        while w <= MAX_LANE_WORDS {
            t[w] = [shift_multiplier(16 * w), shift_multiplier(8 * w)];
            w += 1;
        }
        t
    };

    /// A CRC state advanced past the zero bytes `multiplier` stands for.
    #[inline]
    #[target_feature(enable = "sse4.2,pclmulqdq")]
    fn shift(state: u64, multiplier: u64) -> u64 {
        let product = _mm_clmulepi64_si128(
            _mm_cvtsi64_si128(state.cast_signed()),
            _mm_cvtsi64_si128(multiplier.cast_signed()),
            0,
        );
        _mm_crc32_u64(0, _mm_cvtsi128_si64(product).cast_unsigned())
    }

    #[inline]
    fn word(bytes: &[u8]) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(bytes.get(..8).unwrap_or(&[0; 8]));
        u64::from_le_bytes(w)
    }

    #[target_feature(enable = "sse4.2,pclmulqdq")]
    pub(super) fn append(crc: u32, data: &[u8]) -> u32 {
        let mut state = u64::from(!crc);
        let mut rest = data;
        // Three lanes of `w` words each, while that gives lanes of two words or more.
        while rest.len() >= 3 * 8 * 2 {
            let w = (rest.len() / 24).min(MAX_LANE_WORDS);
            let (a, tail) = rest.split_at(8 * w);
            let (b, tail) = tail.split_at(8 * w);
            let (c, tail) = tail.split_at(8 * w);
            let (mut state_b, mut state_c) = (0u64, 0u64);
            for ((x, y), z) in a
                .chunks_exact(8)
                .zip(b.chunks_exact(8))
                .zip(c.chunks_exact(8))
            {
                state = _mm_crc32_u64(state, word(x));
                state_b = _mm_crc32_u64(state_b, word(y));
                state_c = _mm_crc32_u64(state_c, word(z));
            }
            let [two, one] = MULTIPLIERS.get(w).copied().unwrap_or_default();
            state = shift(state, two) ^ shift(state_b, one) ^ state_c;
            rest = tail;
        }
        let mut words = rest.chunks_exact(8);
        for x in &mut words {
            state = _mm_crc32_u64(state, word(x));
        }
        // The state of the 64-bit instruction has its upper half zero.
        let mut state = u32::try_from(state).unwrap_or_default();
        let mut bytes = words.remainder();
        if let Some((four, tail)) = bytes.split_first_chunk::<4>() {
            state = _mm_crc32_u32(state, u32::from_le_bytes(*four));
            bytes = tail;
        }
        for &b in bytes {
            state = _mm_crc32_u8(state, b);
        }
        !state
    }
}

#[cfg(test)]
mod tests {
    use super::append;

    fn bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (x >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn matches_the_reference_for_every_length_and_alignment() {
        let data = bytes(4200, 7);
        // Under Miri both sides are the `crc32c` crate, and every length would take
        // minutes of interpretation: a sample of them is enough to check for UB there.
        let step = if cfg!(miri) { 97 } else { 1 };
        for len in (0..2100).step_by(step) {
            for skew in 0..3 {
                let part = data.get(skew..skew + len).unwrap_or_default();
                let seed = u32::try_from(len).unwrap_or(0).wrapping_mul(0x9e37_79b9);
                assert_eq!(
                    append(seed, part),
                    crc32c::crc32c_append(seed, part),
                    "length {len}, skew {skew}"
                );
            }
        }
        let long: &[usize] = if cfg!(miri) {
            &[4128]
        } else {
            &[4096, 4128, 65_536, 65_568]
        };
        for &len in long {
            let data = bytes(len, len as u64);
            assert_eq!(append(1, &data), crc32c::crc32c_append(1, &data), "{len}");
        }
    }

    #[test]
    fn appending_in_pieces_is_the_same_as_at_once() {
        let data = bytes(1000, 3);
        let whole = append(0, &data);
        for cut in [0, 1, 7, 28, 100, 999, 1000] {
            let (a, b) = data.split_at(cut);
            assert_eq!(append(append(0, a), b), whole, "cut at {cut}");
        }
        assert_eq!(
            append(0, b"123456789"),
            0xe306_9283,
            "the catalogue's check value"
        );
    }
}
