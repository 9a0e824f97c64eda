//! Small constant-time helpers on byte arrays.

use subtle::Choice;

/// `dst ^= src`.
#[inline]
pub(crate) fn xor_into<const N: usize>(dst: &mut [u8; N], src: &[u8; N]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= s;
    }
}

/// `dst ^= src & mask` for a mask of all-zeros or all-ones bytes.
#[inline]
pub(crate) fn xor_masked<const N: usize>(dst: &mut [u8; N], src: &[u8; N], mask: u8) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= s & mask;
    }
}

/// Returns `b` if `choice` else `a`, in constant time (one mask, no per-byte branches).
#[inline]
pub(crate) fn select<const N: usize>(a: &[u8; N], b: &[u8; N], choice: Choice) -> [u8; N] {
    let m = mask(choice.unwrap_u8());
    let mut out = [0u8; N];
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = x ^ ((x ^ y) & m);
    }
    out
}

/// All-ones byte if `bit` (0 or 1) is 1, else zero.
#[inline]
pub(crate) fn mask(bit: u8) -> u8 {
    0u8.wrapping_sub(bit & 1)
}

/// Bit `i` of a little-endian bit string (`ot.md` §1.2).
#[inline]
pub(crate) fn bit(bytes: &[u8], i: usize) -> u8 {
    bytes.get(i >> 3).map_or(0, |b| (b >> (i & 7)) & 1)
}

/// A heap-allocated fixed-size array filled with `init` (avoids large stack temporaries).
pub(crate) fn boxed<T: Clone, const N: usize>(init: T) -> Box<[T; N]> {
    let v: Box<[T]> = vec![init; N].into_boxed_slice();
    match v.try_into() {
        Ok(b) => b,
        // The vector has exactly N elements.
        Err(_) => unreachable!("vec of length N converts to [T; N]"),
    }
}

/// Displays bytes as lowercase hex.
pub(crate) struct Hex<'a>(pub(crate) &'a [u8]);

impl std::fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
