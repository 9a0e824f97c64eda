//! Shamir/Feldman helpers, Lagrange coefficients and zero-sharing (`protocols.md` §1.6).

use k256::elliptic_curve::Field;
use k256::{ProjectivePoint, Scalar};
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::transcript::{Hs, Tag};

/// A party's index, 1..=255; its Shamir evaluation point is the scalar x_i = i.
pub type PartyIndex = u16;

/// A secret polynomial f(X) = Σ a_k X^k with non-zero coefficients.
#[derive(Default, Zeroize, ZeroizeOnDrop)]
pub struct Polynomial {
    coeffs: Vec<Scalar>,
}

impl std::fmt::Debug for Polynomial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Polynomial(degree {}, <redacted>)", self.coeffs.len().saturating_sub(1))
    }
}

/// A uniformly random non-zero scalar (rejection sampling).
pub fn random_nonzero(rng: &mut (impl CryptoRng + ?Sized)) -> Scalar {
    loop {
        let s = Scalar::random(rng);
        if !bool::from(s.is_zero()) {
            return s;
        }
    }
}

impl Polynomial {
    /// A random polynomial of degree `t − 1` with the given constant term (or a random one).
    pub fn random(rng: &mut (impl CryptoRng + ?Sized), t: usize, constant: Option<Scalar>) -> Self {
        let mut coeffs = Vec::with_capacity(t);
        for k in 0..t {
            coeffs.push(match (k, constant) {
                (0, Some(c)) => c,
                _ => random_nonzero(rng),
            });
        }
        Self { coeffs }
    }

    /// f(x) by Horner's rule.
    pub fn eval(&self, x: PartyIndex) -> Scalar {
        let x = Scalar::from(u64::from(x));
        self.coeffs.iter().rev().fold(Scalar::ZERO, |acc, c| acc * x + c)
    }

    /// The coefficients (secret).
    pub fn coeffs(&self) -> &[Scalar] {
        &self.coeffs
    }

    /// Feldman commitments A_k = a_k·G.
    pub fn commitments(&self) -> Vec<ProjectivePoint> {
        self.coeffs.iter().map(ProjectivePoint::mul_by_generator).collect()
    }
}

/// Σ_k x^k·A_k by Horner's rule in the exponent.
pub fn eval_commitments(commitments: &[ProjectivePoint], x: PartyIndex) -> ProjectivePoint {
    let x = Scalar::from(u64::from(x));
    commitments.iter().rev().fold(ProjectivePoint::IDENTITY, |acc, c| acc * x + c)
}

/// Feldman check `y·G == Σ_k x^k·A_k`. Total: never panics (ToB-3).
pub fn feldman_check(y: &Scalar, x: PartyIndex, commitments: &[ProjectivePoint]) -> bool {
    ProjectivePoint::mul_by_generator(y) == eval_commitments(commitments, x)
}

/// Lagrange coefficient at 0 of `i` over `set`: Π_{j≠i} x_j / (x_j − x_i).
///
/// Returns `None` if `i` is not in `set` or the indices are not distinct and non-zero.
pub fn lagrange_at_zero(set: &[PartyIndex], i: PartyIndex) -> Option<Scalar> {
    if i == 0 || !set.contains(&i) {
        return None;
    }
    let mut num = Scalar::ONE;
    let mut den = Scalar::ONE;
    let mut seen_self = false;
    for (pos, &j) in set.iter().enumerate() {
        if j == 0 || set.iter().skip(pos + 1).any(|&k| k == j) {
            return None;
        }
        if j == i {
            seen_self = true;
            continue;
        }
        let xj = Scalar::from(u64::from(j));
        num *= xj;
        den *= xj - Scalar::from(u64::from(i));
    }
    if !seen_self {
        return None;
    }
    Option::from(den.invert()).map(|inv: Scalar| num * inv)
}

/// Party `i`'s zero-share over `set` for context `ctx`:
/// ζ_i = Σ_{j∈S, j≠i} sgn(j − i)·HS("zero", seed_ij, ctx), so that Σ_{i∈S} ζ_i = 0.
pub fn zero_share<'a>(
    i: PartyIndex,
    seeds: impl IntoIterator<Item = (PartyIndex, &'a [u8; 32])>,
    set: &[PartyIndex],
    ctx: &[u8],
) -> Scalar {
    let mut zeta = Scalar::ZERO;
    for (j, seed) in seeds {
        if j == i || !set.contains(&j) {
            continue;
        }
        let mut h = Hs::new(Tag::Zero);
        h.put(seed).put(ctx);
        let v = h.finish_scalar();
        if j > i {
            zeta += v;
        } else {
            zeta -= v;
        }
    }
    zeta
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn lagrange_sanity_vectors() {
        let two = Scalar::from(2u64);
        assert_eq!(lagrange_at_zero(&[1, 2], 1).unwrap(), two);
        assert_eq!(lagrange_at_zero(&[1, 2], 2).unwrap(), -Scalar::ONE);
        let half = two.invert().unwrap();
        assert_eq!(lagrange_at_zero(&[1, 3], 1).unwrap(), Scalar::from(3u64) * half);
        assert_eq!(lagrange_at_zero(&[1, 3], 3).unwrap(), -half);
        let l: Vec<Scalar> =
            [1, 2, 3].iter().map(|&i| lagrange_at_zero(&[1, 2, 3], i).unwrap()).collect();
        assert_eq!(l, vec![Scalar::from(3u64), -Scalar::from(3u64), Scalar::ONE]);
        assert!(lagrange_at_zero(&[1, 1, 2], 1).is_none());
        assert!(lagrange_at_zero(&[1, 2], 3).is_none());
        assert!(lagrange_at_zero(&[0, 2], 2).is_none());
    }

    #[test]
    fn shamir_interpolates_and_feldman_checks() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let secret = Scalar::from(42u64);
        let f = Polynomial::random(&mut rng, 3, Some(secret));
        let comms = f.commitments();
        for i in 1..=5 {
            assert!(feldman_check(&f.eval(i), i, &comms));
            assert!(!feldman_check(&(f.eval(i) + Scalar::ONE), i, &comms));
        }
        let set = [2, 4, 5];
        let rec: Scalar = set.iter().map(|&i| lagrange_at_zero(&set, i).unwrap() * f.eval(i)).sum();
        assert_eq!(rec, secret);
        // A commitment vector that evaluates to the identity is handled without panicking.
        let zero = [ProjectivePoint::IDENTITY];
        assert!(feldman_check(&Scalar::ZERO, 1, &zero));
        assert!(!feldman_check(&Scalar::ONE, 1, &zero));
    }

    #[test]
    fn zero_shares_sum_to_zero() {
        let parties: Vec<PartyIndex> = vec![1, 2, 3, 4, 5];
        let mut seeds = std::collections::BTreeMap::new();
        for &i in &parties {
            for &j in &parties {
                if i < j {
                    seeds.insert((i, j), [(i * 16 + j) as u8; 32]);
                }
            }
        }
        for set in [vec![1, 2], vec![1, 3, 5], vec![2, 3, 4, 5]] {
            let sum: Scalar = set
                .iter()
                .map(|&i| {
                    let mine = parties
                        .iter()
                        .filter(|&&j| j != i)
                        .map(|&j| (j, &seeds[&(i.min(j), i.max(j))]));
                    zero_share(i, mine, &set, b"ctx")
                })
                .sum();
            assert_eq!(sum, Scalar::ZERO);
        }
    }
}
