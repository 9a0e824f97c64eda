//! GF(2^128) arithmetic for the SoftSpokenOT consistency check (`ot.md` §1.2).
//!
//! Convention: a 16-byte string z is the polynomial Σ_i bit_i(z)·X^i with
//! bit_i(z) = (z[i/8] >> (i%8)) & 1 — i.e. `u128::from_le_bytes(z)` — reduced modulo
//! X^128 + X^7 + X^2 + X + 1 (little-endian bit order, *not* GHASH's reflected order).
//!
//! Multiplication is constant time: carry-less multiplication with `PCLMULQDQ` when the CPU has
//! it (detected at run time), otherwise a branch-free mask-based fallback. Products can be
//! accumulated unreduced ([`Wide`]) and reduced once, which is how the row check uses them.

/// An element of GF(2^128), as `u128::from_le_bytes` of its 16-byte encoding.
pub type Gf = u128;

/// Decodes a 16-byte block.
#[inline]
pub fn from_bytes(b: &[u8; 16]) -> Gf {
    u128::from_le_bytes(*b)
}

/// Encodes to a 16-byte block.
#[inline]
pub fn to_bytes(x: Gf) -> [u8; 16] {
    x.to_le_bytes()
}

/// An unreduced 255-bit carry-less product (or a XOR of several).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wide {
    lo: u128,
    hi: u128,
}

impl Wide {
    /// Adds (XORs) another unreduced product.
    #[inline]
    pub fn add(&mut self, other: Wide) {
        self.lo ^= other.lo;
        self.hi ^= other.hi;
    }

    /// Reduces modulo X^128 + X^7 + X^2 + X + 1.
    #[inline]
    pub fn reduce(self) -> Gf {
        let h = self.hi;
        // h·X^128 ≡ h·(X^7 + X^2 + X + 1); the bits shifted past X^127 fold once more.
        let overflow = (h >> 121) ^ (h >> 126) ^ (h >> 127);
        let folded = h ^ (h << 1) ^ (h << 2) ^ (h << 7);
        let folded2 = overflow ^ (overflow << 1) ^ (overflow << 2) ^ (overflow << 7);
        self.lo ^ folded ^ folded2
    }
}

/// Multiplies two field elements.
#[inline]
pub fn mul(a: Gf, b: Gf) -> Gf {
    mul_wide(a, b).reduce()
}

/// The unreduced carry-less product of `a` and `b`.
#[inline]
pub fn mul_wide(a: Gf, b: Gf) -> Wide {
    #[cfg(target_arch = "x86_64")]
    {
        if clmul::available() {
            return clmul::mul_wide_checked(a, b);
        }
    }
    portable::mul_wide(a, b)
}

/// `Σ_h χ_h ⊗ z_h` over the first four blocks of a row plus its fifth (pad) block.
#[inline]
pub fn combine_row(chi: &[Gf; 4], blocks: [Gf; 5]) -> Gf {
    let [b0, b1, b2, b3, pad] = blocks;
    let mut acc = mul_wide(chi[0], b0);
    acc.add(mul_wide(chi[1], b1));
    acc.add(mul_wide(chi[2], b2));
    acc.add(mul_wide(chi[3], b3));
    acc.reduce() ^ pad
}

pub(crate) mod portable {
    use super::Wide;

    /// Constant-time 64×64 → 128 carry-less multiplication (masks, no data-dependent branches).
    #[inline]
    fn clmul64(a: u64, b: u64) -> u128 {
        let b = u128::from(b);
        let mut acc = 0u128;
        let mut i = 0;
        while i < 64 {
            let mask = 0u128.wrapping_sub(u128::from((a >> i) & 1));
            acc ^= (b << i) & mask;
            i += 1;
        }
        acc
    }

    /// Constant-time 128×128 carry-less product (Karatsuba over 64-bit halves).
    pub(crate) fn mul_wide(a: u128, b: u128) -> Wide {
        let (a0, a1) = (a as u64, (a >> 64) as u64);
        let (b0, b1) = (b as u64, (b >> 64) as u64);
        let lo = clmul64(a0, b0);
        let hi = clmul64(a1, b1);
        let mid = clmul64(a0 ^ a1, b0 ^ b1) ^ lo ^ hi;
        Wide { lo: lo ^ (mid << 64), hi: hi ^ (mid >> 64) }
    }
}

#[cfg(target_arch = "x86_64")]
mod clmul {
    use super::Wide;
    use core::arch::x86_64::{
        __m128i, _mm_clmulepi64_si128, _mm_cvtsi128_si64, _mm_set_epi64x, _mm_unpackhi_epi64,
    };

    /// Whether the CPU has PCLMULQDQ (the macro caches the CPUID probe).
    #[inline]
    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("pclmulqdq")
    }

    /// Calls [`mul_wide`] after [`available`] returned true.
    #[inline]
    #[allow(unsafe_code)]
    pub(super) fn mul_wide_checked(a: u128, b: u128) -> Wide {
        // SAFETY: only reached after `available()` confirmed the CPU supports PCLMULQDQ
        // (and SSE2 is part of the x86_64 baseline), which is all `mul_wide` requires.
        unsafe { mul_wide(a, b) }
    }

    #[inline]
    #[target_feature(enable = "pclmulqdq")]
    fn to_m128(x: u128) -> __m128i {
        _mm_set_epi64x((x >> 64) as u64 as i64, x as u64 as i64)
    }

    #[inline]
    #[target_feature(enable = "pclmulqdq")]
    fn from_m128(x: __m128i) -> u128 {
        let lo = _mm_cvtsi128_si64(x) as u64;
        let hi = _mm_cvtsi128_si64(_mm_unpackhi_epi64(x, x)) as u64;
        (u128::from(hi) << 64) | u128::from(lo)
    }

    #[inline]
    #[target_feature(enable = "pclmulqdq")]
    fn mul_wide(a: u128, b: u128) -> Wide {
        let (va, vb) = (to_m128(a), to_m128(b));
        let lo = from_m128(_mm_clmulepi64_si128::<0x00>(va, vb));
        let hi = from_m128(_mm_clmulepi64_si128::<0x11>(va, vb));
        let m1 = from_m128(_mm_clmulepi64_si128::<0x01>(va, vb));
        let m2 = from_m128(_mm_clmulepi64_si128::<0x10>(va, vb));
        let mid = m1 ^ m2;
        Wide { lo: lo ^ (mid << 64), hi: hi ^ (mid >> 64) }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn h(s: &str) -> Gf {
        from_bytes(&hex::decode(s).unwrap().try_into().unwrap())
    }

    /// Bit-by-bit reference: schoolbook multiply then reduce one bit at a time.
    fn reference(a: Gf, b: Gf) -> Gf {
        let mut acc = 0u128;
        let mut cur = a;
        for i in 0..128 {
            if (b >> i) & 1 == 1 {
                acc ^= cur;
            }
            let carry = cur >> 127;
            cur <<= 1;
            if carry == 1 {
                cur ^= 0x87;
            }
        }
        acc
    }

    #[test]
    fn spec_kats() {
        // X · X^127 = X^128 = X^7 + X^2 + X + 1.
        assert_eq!(
            to_bytes(mul(
                h("02000000000000000000000000000000"),
                h("00000000000000000000000000000080")
            )),
            hex::decode("87000000000000000000000000000000").unwrap().as_slice()
        );
        assert_eq!(
            to_bytes(mul(
                h("0102030405060708090a0b0c0d0e0f10"),
                h("1112131415161718191a1b1c1d1e1f20")
            )),
            hex::decode("e60ff6078b4e6cc9d58052882fc1482e").unwrap().as_slice()
        );
    }

    #[test]
    fn field_laws_and_backends_agree() {
        let mut x = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128;
        for _ in 0..200 {
            // cheap xorshift-style walk over elements
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let y = x.rotate_left(45) ^ 0x5555;
            let z = x.rotate_right(3) ^ 0xaaaa_0000;
            assert_eq!(mul(x, y), reference(x, y));
            assert_eq!(portable::mul_wide(x, y).reduce(), mul(x, y));
            assert_eq!(mul(x, y), mul(y, x));
            assert_eq!(mul(x, y ^ z), mul(x, y) ^ mul(x, z));
            assert_eq!(mul(x, 1), x);
        }
    }

    #[test]
    fn fermat() {
        // a^(2^128) = a: square 128 times.
        let a = h("0102030405060708090a0b0c0d0e0f10");
        let mut p = a;
        for _ in 0..128 {
            p = mul(p, p);
        }
        assert_eq!(p, a);
    }

    #[test]
    fn combine_row_matches_definition() {
        let chi = [3u128, 5, 7, 11];
        let blocks = [13u128, 17, 19, 23, 29];
        let want = mul(3, 13) ^ mul(5, 17) ^ mul(7, 19) ^ mul(11, 23) ^ 29;
        assert_eq!(combine_row(&chi, blocks), want);
    }
}
