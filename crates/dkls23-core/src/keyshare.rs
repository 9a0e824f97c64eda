//! A party's key share (`protocols.md` §2.7): validated on creation and on load, secrets zeroized
//! on drop, redacted `Debug`, versioned serialisation.

use std::collections::BTreeMap;

use k256::{ProjectivePoint, Scalar};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::encoding::{DecodeError, Reader, point_to_bytes, scalar_to_bytes};
use crate::math::{PartyIndex, eval_commitments, lagrange_at_zero};
use crate::ot::{AliceState, BobState};
use crate::transcript::{Tag, th};

const MAGIC: &[u8; 7] = b"DKLSKEY";
/// Serialisation format version of [`KeyShare`].
pub const KEY_SHARE_VERSION: u16 = 1;
/// Longest identity-key encoding accepted in a key share.
const MAX_IDENTITY_LEN: usize = 128;

/// `key_id = TH("key-id", ser_p(X), cc)`: stable across refresh and reshare.
pub fn key_id(public_key: &ProjectivePoint, chain_code: &[u8; 32]) -> [u8; 32] {
    th(Tag::KeyId, &[&point_to_bytes(public_key), chain_code])
}

/// One party's share of a threshold key.
pub struct KeyShare {
    pub(crate) n: u16,
    pub(crate) t: u16,
    pub(crate) i: PartyIndex,
    pub(crate) epoch: u32,
    pub(crate) keygen_sid: [u8; 32],
    pub(crate) key_id: [u8; 32],
    pub(crate) public_key: ProjectivePoint,
    pub(crate) chain_code: [u8; 32],
    /// X_1..X_n (index ℓ at position ℓ − 1).
    pub(crate) public_shares: Vec<ProjectivePoint>,
    /// Identity public keys (canonical encodings), index ℓ at position ℓ − 1.
    pub(crate) identities: Vec<Vec<u8>>,
    pub(crate) secret_share: Scalar,
    pub(crate) zero_seeds: BTreeMap<PartyIndex, [u8; 32]>,
    pub(crate) ot_alice: BTreeMap<PartyIndex, AliceState>,
    pub(crate) ot_bob: BTreeMap<PartyIndex, BobState>,
}

impl Drop for KeyShare {
    fn drop(&mut self) {
        self.secret_share.zeroize();
        for seed in self.zero_seeds.values_mut() {
            seed.zeroize();
        }
        // AliceState / BobState zeroize themselves on drop.
    }
}

impl ZeroizeOnDrop for KeyShare {}

impl std::fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyShare")
            .field("index", &self.i)
            .field("threshold", &self.t)
            .field("parties", &self.n)
            .field("epoch", &self.epoch)
            .field("key_id", &crate::ot_hex(&self.key_id))
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl KeyShare {
    /// This party's index.
    pub fn index(&self) -> PartyIndex {
        self.i
    }
    /// Threshold t.
    pub fn threshold(&self) -> u16 {
        self.t
    }
    /// Number of parties n.
    pub fn parties(&self) -> u16 {
        self.n
    }
    /// Reshare epoch (0 after DKG).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }
    /// The key id (stable across reshares).
    pub fn key_id(&self) -> &[u8; 32] {
        &self.key_id
    }
    /// The session id of the DKG or reshare that produced this share.
    pub fn keygen_sid(&self) -> &[u8; 32] {
        &self.keygen_sid
    }
    /// The root public key X.
    pub fn public_key(&self) -> &ProjectivePoint {
        &self.public_key
    }
    /// The root chain code.
    pub fn chain_code(&self) -> &[u8; 32] {
        &self.chain_code
    }
    /// Public share X_ℓ of party ℓ.
    pub fn public_share(&self, l: PartyIndex) -> Option<&ProjectivePoint> {
        self.public_shares.get(usize::from(l).checked_sub(1)?)
    }
    /// Identity public key (canonical encoding) of party ℓ.
    pub fn identity(&self, l: PartyIndex) -> Option<&[u8]> {
        self.identities.get(usize::from(l).checked_sub(1)?).map(Vec::as_slice)
    }

    /// Checks every structural and algebraic invariant of a share.
    pub fn validate(&self) -> Result<(), DecodeError> {
        let n = usize::from(self.n);
        if self.t < 2 || self.t > self.n || self.i == 0 || self.i > self.n {
            return Err(DecodeError::Malformed("inconsistent n, t or index"));
        }
        if self.public_shares.len() != n || self.identities.len() != n {
            return Err(DecodeError::Malformed("wrong number of public shares or identities"));
        }
        let others: Vec<PartyIndex> = (1..=self.n).filter(|&l| l != self.i).collect();
        let keys_match = |m: Vec<PartyIndex>| m == others;
        if !keys_match(self.zero_seeds.keys().copied().collect())
            || !keys_match(self.ot_alice.keys().copied().collect())
            || !keys_match(self.ot_bob.keys().copied().collect())
        {
            return Err(DecodeError::Malformed("per-counterparty material incomplete"));
        }
        if self.public_share(self.i) != Some(&ProjectivePoint::mul_by_generator(&self.secret_share))
        {
            return Err(DecodeError::Malformed("secret share does not match its public share"));
        }
        if key_id(&self.public_key, &self.chain_code) != self.key_id {
            return Err(DecodeError::Malformed("key id does not match public key and chain code"));
        }
        for (pos, id) in self.identities.iter().enumerate() {
            if self.identities.iter().skip(pos + 1).any(|other| other == id) {
                return Err(DecodeError::Malformed("two parties have the same identity key"));
            }
        }
        // X_1..X_t interpolate to X, and every other X_l lies on the same degree-(t−1)
        // polynomial: {1..t−1, l} interpolates to X as well (the polynomial through X at 0 and
        // X_1..X_{t−1} is unique). So any t public shares interpolate to X.
        let first: Vec<PartyIndex> = (1..self.t).collect();
        for l in self.t..=self.n {
            let mut set = first.clone();
            set.push(l);
            let mut acc = ProjectivePoint::IDENTITY;
            for &j in &set {
                let lambda =
                    lagrange_at_zero(&set, j).ok_or(DecodeError::Malformed("bad index set"))?;
                let x_j =
                    self.public_share(j).ok_or(DecodeError::Malformed("missing public share"))?;
                acc += *x_j * lambda;
            }
            if acc != self.public_key
                || bool::from(k256::elliptic_curve::group::Group::is_identity(&acc))
            {
                return Err(DecodeError::Malformed(
                    "public shares do not lie on one polynomial through the public key",
                ));
            }
        }
        Ok(())
    }

    /// Serialises the share (secret!) in the versioned format.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::new());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&KEY_SHARE_VERSION.to_be_bytes());
        for v in [self.n, self.t, self.i] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.keygen_sid);
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&point_to_bytes(&self.public_key));
        out.extend_from_slice(&self.chain_code);
        for x in &self.public_shares {
            out.extend_from_slice(&point_to_bytes(x));
        }
        for id in &self.identities {
            out.extend_from_slice(&(id.len() as u16).to_be_bytes());
            out.extend_from_slice(id);
        }
        out.extend_from_slice(&scalar_to_bytes(&self.secret_share));
        for l in (1..=self.n).filter(|&l| l != self.i) {
            if let (Some(seed), Some(a), Some(b)) =
                (self.zero_seeds.get(&l), self.ot_alice.get(&l), self.ot_bob.get(&l))
            {
                out.extend_from_slice(seed);
                out.extend_from_slice(&a.to_bytes());
                out.extend_from_slice(&b.to_bytes());
            }
        }
        out
    }

    /// Parses and validates a serialised share.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        if r.array::<7>()? != *MAGIC {
            return Err(DecodeError::Malformed("not a key share"));
        }
        if r.u16()? != KEY_SHARE_VERSION {
            return Err(DecodeError::Malformed("unsupported key share version"));
        }
        let (n, t, i) = (r.u16()?, r.u16()?, r.u16()?);
        if n > 255 || t < 2 || t > n || i == 0 || i > n {
            return Err(DecodeError::Malformed("inconsistent n, t or index"));
        }
        let epoch = r.u32()?;
        let keygen_sid = r.array()?;
        let key_id_bytes = r.array()?;
        let public_key = r.point()?;
        let chain_code = r.array()?;
        let mut public_shares = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            public_shares.push(r.point()?);
        }
        let mut identities = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let len = usize::from(r.u16()?);
            if len > MAX_IDENTITY_LEN {
                return Err(DecodeError::Malformed("identity key too long"));
            }
            identities.push(r.take(len)?.to_vec());
        }
        let secret_share = r.scalar()?;
        let mut share = KeyShare {
            n,
            t,
            i,
            epoch,
            keygen_sid,
            key_id: key_id_bytes,
            public_key,
            chain_code,
            public_shares,
            identities,
            secret_share,
            zero_seeds: BTreeMap::new(),
            ot_alice: BTreeMap::new(),
            ot_bob: BTreeMap::new(),
        };
        for l in (1..=n).filter(|&l| l != i) {
            share.zero_seeds.insert(l, r.array()?);
            share.ot_alice.insert(l, AliceState::from_bytes(r.take(AliceState::ENCODED_LEN)?)?);
            share.ot_bob.insert(l, BobState::from_bytes(r.take(BobState::ENCODED_LEN)?)?);
        }
        r.finish()?;
        share.validate()?;
        Ok(share)
    }
}

/// Σ_k ℓ^k·F_k for every ℓ ∈ 1..=n.
pub(crate) fn public_shares_from(commitments: &[ProjectivePoint], n: u16) -> Vec<ProjectivePoint> {
    (1..=n).map(|l| eval_commitments(commitments, l)).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::collections::BTreeMap;

    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    fn share_of_2_of_3() -> KeyShare {
        let mut rngs: BTreeMap<u16, ChaCha20Rng> =
            (1..=3).map(|i| (i, ChaCha20Rng::seed_from_u64(900 + u64::from(i)))).collect();
        let (mut res, _) = crate::sim::dkg(3, 2, [9; 32], &mut rngs, &mut |_, _, _| {});
        res.remove(&1).unwrap().unwrap()
    }

    #[test]
    fn a_public_share_off_the_polynomial_is_refused() {
        // X_1 and X_2 interpolate to X, but X_3 (not among the first t) was altered: any signing
        // set containing party 3 would then compute with a wrong key.
        let mut s = share_of_2_of_3();
        s.validate().unwrap();
        s.public_shares[2] += ProjectivePoint::GENERATOR;
        let e = s.validate().unwrap_err();
        assert!(e.to_string().contains("one polynomial"), "{e}");
        assert!(KeyShare::from_bytes(&s.to_bytes()).is_err());
    }

    #[test]
    fn duplicate_identities_are_refused() {
        let mut s = share_of_2_of_3();
        s.identities[2] = s.identities[1].clone();
        let e = s.validate().unwrap_err();
        assert!(e.to_string().contains("same identity"), "{e}");
        assert!(KeyShare::from_bytes(&s.to_bytes()).is_err());
    }
}
