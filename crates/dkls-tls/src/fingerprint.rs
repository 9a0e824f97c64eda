//! SHA-256 fingerprints of certificates and public keys.

use sha2::{Digest as _, Sha256};

/// The SHA-256 of a DER encoding: a whole certificate, or its `SubjectPublicKeyInfo`.
///
/// Printed as lowercase hex; parsed from hex with or without `:` separators (the form
/// `openssl x509 -noout -fingerprint -sha256` prints).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of `der`.
    pub fn of(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits: String = s.trim().chars().filter(|c| *c != ':').collect();
        let mut out = [0u8; 32];
        hex::decode_to_slice(&digits, &mut out).map_err(|_| {
            format!("not a SHA-256 fingerprint (64 hex digits, colons allowed): {s:?}")
        })?;
        Ok(Self(out))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_colon_separated_hex() {
        let f = Fingerprint::of(b"abc");
        let plain = f.to_string();
        assert_eq!(plain.len(), 64);
        assert_eq!(plain.parse::<Fingerprint>().unwrap(), f);
        let colons = plain
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap().to_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(colons.parse::<Fingerprint>().unwrap(), f);
        assert!("abcd".parse::<Fingerprint>().is_err());
        assert!(format!("{plain}00").parse::<Fingerprint>().is_err());
    }
}
