//! BIP32: path parsing, xpub serialisation against BIP-32 test vectors 1, 2 and 5, and a property
//! test against the independent `bip32` crate (dev-dependency only).

use dkls23_core::bip32::{self, DeriveError, HARDENED, Network, Xpub, XpubError};
use dkls23_core::encoding::point_to_bytes;
use k256::{ProjectivePoint, Scalar};
use proptest::prelude::*;

fn scalar(bytes: [u8; 32]) -> Option<Scalar> {
    use k256::elliptic_curve::PrimeField;
    Option::from(Scalar::from_repr(bytes.into()))
}

fn xpub(s: &str) -> Xpub {
    s.parse().unwrap()
}

#[test]
fn parse_path_accepts_non_hardened_and_rejects_the_rest() {
    assert_eq!(bip32::parse_path("m").unwrap(), Vec::<u32>::new());
    assert_eq!(bip32::parse_path("").unwrap(), Vec::<u32>::new());
    assert_eq!(bip32::parse_path("m/0/1/2").unwrap(), vec![0, 1, 2]);
    assert_eq!(bip32::parse_path("2/1000000000").unwrap(), vec![2, 1_000_000_000]);
    assert_eq!(bip32::parse_path("m/2147483647").unwrap(), vec![HARDENED - 1]);
    for hardened in ["m/0'", "m/0h/1", "m/1/2H", "m/2147483648"] {
        assert!(matches!(bip32::parse_path(hardened), Err(DeriveError::Hardened(_))), "{hardened}");
    }
    for bad in ["m/", "m//1", "x/1", "m/-1", "m/1a", "m/4294967296", "mm/1", "m/ 1"] {
        assert!(matches!(bip32::parse_path(bad), Err(DeriveError::BadPath(_))), "{bad}");
    }
    let long = format!("m{}", "/1".repeat(256));
    assert!(bip32::parse_path(&long).is_err());
    assert_eq!(bip32::format_path(&[0, 1, 2]), "m/0/1/2");
    assert_eq!(bip32::parse_path(&bip32::format_path(&[5, 7])).unwrap(), vec![5, 7]);
}

#[test]
fn test_vector_1_public_derivation() {
    let node = xpub(
        "xpub6D4BDPcP2GT577Vvch3R8wDkScZWzQzMMUm3PWbmWvVJrZwQY4VUNgqFJPMM3No2dFDFGTsxxpG5uJh7n7epu4trkrX7x7DogT5Uv6fcLW5",
    );
    assert_eq!(
        hex::encode(point_to_bytes(&node.public_key)),
        "0357bfe1e341d01c69fe5654309956cbea516822fba8a601743a012a7896ee8dc2"
    );
    assert_eq!(
        hex::encode(node.chain_code),
        "04466b9cc8e161e966409ca52986c584f07e9dc81f735db683c3ff6ec7b1503f"
    );
    let c2 = node.derive(&[2]).unwrap();
    assert_eq!(
        c2.to_string(),
        "xpub6FHa3pjLCk84BayeJxFW2SP4XRrFd1JYnxeLeU8EqN3vDfZmbqBqaGJAyiLjTAwm6ZLRQUMv1ZACTj37sR62cfN7fe5JnJ7dh8zL4fiyLHV"
    );
    let c3 = c2.derive(&[1_000_000_000]).unwrap();
    assert_eq!(
        c3.to_string(),
        "xpub6H1LXWLaKsWFhvm6RVpEL9P4KfRZSW7abD2ttkWP3SSQvnyA8FSVqNTEcYFgJS2UaFcxupHiYkro49S8yGasTvXEYBVPamhGW6cFJodrTHy"
    );
    assert_eq!(
        hex::encode(point_to_bytes(&c3.public_key)),
        "022a471424da5e657499d1ff51cb43c47481a03b1e77f951fe64cec9f5a48f7011"
    );
    // The tweak path used by signing agrees with the xpub path and the §5.5 tweak.
    let d = bip32::derive(&node.public_key, &node.chain_code, &[2, 1_000_000_000]).unwrap();
    assert_eq!(d.public_key, c3.public_key);
    assert_eq!(d.chain_code, c3.chain_code);
    assert_eq!(
        hex::encode(d.tweak.to_bytes()),
        "7b4d6971eb15b4a505df16de5dcb8ee3d1ca25868fa2a4618762d1d999dadb3f"
    );
    // m/0H -> m/0H/1.
    let m0h = xpub(
        "xpub68Gmy5EdvgibQVfPdqkBBCHxA5htiqg55crXYuXoQRKfDBFA1WEjWgP6LHhwBZeNK1VTsfTFUHCdrfp1bgwQ9xv5ski8PX9rL2dZXvgGDnw",
    );
    assert_eq!(
        m0h.derive(&[1]).unwrap().to_string(),
        "xpub6ASuArnXKPbfEwhqN6e3mwBcDTgzisQN1wXN9BJcM47sSikHjJf3UFHKkNAWbWMiGj7Wf5uMash7SyYq527Hqck2AxYysAA7xmALppuCkwQ"
    );
    assert!(matches!(node.derive(&[HARDENED]), Err(DeriveError::Hardened(_))));
}

#[test]
fn test_vector_2_public_derivation() {
    let master = xpub(
        "xpub661MyMwAqRbcFW31YEwpkMuc5THy2PSt5bDMsktWQcFF8syAmRUapSCGu8ED9W6oDMSgv6Zz8idoc4a6mr8BDzTJY47LJhkJ8UB7WEGuduB",
    );
    assert_eq!(master.depth, 0);
    let sk = scalar(
        hex::decode("4b03d6fc340455b363f51020ad3ecca4f0850280cf436c70c727923f6db46c3e")
            .unwrap()
            .try_into()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(master.public_key, ProjectivePoint::GENERATOR * sk);
    let root = Xpub::root(master.public_key, master.chain_code, Network::Mainnet);
    assert_eq!(root, master);
    assert_eq!(
        root.derive(&[0]).unwrap().to_string(),
        "xpub69H7F5d8KSRgmmdJg2KhpAK8SR3DjMwAdkxj3ZuxV27CprR9LgpeyGmXUbC6wb7ERfvrnKZjXoUmmDznezpbZb7ap6r1D3tgFxHmwMkQTPH"
    );
    let a = xpub(
        "xpub6ASAVgeehLbnwdqV6UKMHVzgqAG8Gr6riv3Fxxpj8ksbH9ebxaEyBLZ85ySDhKiLDBrQSARLq1uNRts8RuJiHjaDMBU4Zn9h8LZNnBC5y4a",
    );
    assert_eq!(
        a.derive(&[1]).unwrap().to_string(),
        "xpub6DF8uhdarytz3FWdA8TvFSvvAh8dP3283MY7p2V4SeE2wyWmG5mg5EwVvmdMVCQcoNJxGoWaU9DCWh89LojfZ537wTfunKau47EL2dhHKon"
    );
    let b = xpub(
        "xpub6ERApfZwUNrhLCkDtcHTcxd75RbzS1ed54G1LkBUHQVHQKqhMkhgbmJbZRkrgZw4koxb5JaHWkY4ALHY2grBGRjaDMzQLcgJvLJuZZvRcEL",
    );
    assert_eq!(
        b.derive(&[2]).unwrap().to_string(),
        "xpub6FnCn6nSzZAw5Tw7cgR9bi15UV96gLZhjDstkXXxvCLsUXBGXPdSnLFbdpq8p9HmGsApME5hQTZ3emM2rnY5agb9rXpVGyy3bdW6EEgAtqt"
    );
}

#[test]
fn round_trip_and_testnet_prefix() {
    let node = xpub(
        "xpub6D4BDPcP2GT577Vvch3R8wDkScZWzQzMMUm3PWbmWvVJrZwQY4VUNgqFJPMM3No2dFDFGTsxxpG5uJh7n7epu4trkrX7x7DogT5Uv6fcLW5",
    );
    let t = Xpub { network: Network::Testnet, ..node.clone() };
    let s = t.to_string();
    assert!(s.starts_with("tpub"), "{s}");
    assert_eq!(xpub(&s), t);
    assert_eq!(Xpub::from_bytes(&node.to_bytes()).unwrap(), node);
}

/// BIP-32 test vector 5: every listed invalid extended key is rejected, each for its reason.
#[test]
fn test_vector_5_invalid_keys_are_rejected() {
    let cases: &[(&str, fn(&XpubError) -> bool)] = &[
        // pubkey version / prvkey mismatch (key byte 0x00)
        (
            "xpub661MyMwAqRbcEYS8w7XLSVeEsBXy79zSzH1J8vCdxAZningWLdN3zgtU6LBpB85b3D2yc8sfvZU521AAwdZafEz7mnzBBsz4wKY5fTtTQBm",
            |e| *e == XpubError::PublicKey,
        ),
        // prvkey version / pubkey mismatch
        (
            "xprv9s21ZrQH143K24Mfq5zL5MhWK9hUhhGbd45hLXo2Pq2oqzMMo63oStZzFGTQQD3dC4H2D5GBj7vWvSQaaBv5cxi9gafk7NF3pnBju6dwKvH",
            |e| matches!(e, XpubError::Version(_)),
        ),
        // invalid pubkey prefix 04
        (
            "xpub661MyMwAqRbcEYS8w7XLSVeEsBXy79zSzH1J8vCdxAZningWLdN3zgtU6Txnt3siSujt9RCVYsx4qHZGc62TG4McvMGcAUjeuwZdduYEvFn",
            |e| *e == XpubError::PublicKey,
        ),
        // invalid prvkey prefix 04
        (
            "xprv9s21ZrQH143K24Mfq5zL5MhWK9hUhhGbd45hLXo2Pq2oqzMMo63oStZzFGpWnsj83BHtEy5Zt8CcDr1UiRXuWCmTQLxEK9vbz5gPstX92JQ",
            |e| matches!(e, XpubError::Version(_)),
        ),
        // invalid pubkey prefix 01
        (
            "xpub661MyMwAqRbcEYS8w7XLSVeEsBXy79zSzH1J8vCdxAZningWLdN3zgtU6N8ZMMXctdiCjxTNq964yKkwrkBJJwpzZS4HS2fxvyYUA4q2Xe4",
            |e| *e == XpubError::PublicKey,
        ),
        // invalid prvkey prefix 01
        (
            "xprv9s21ZrQH143K24Mfq5zL5MhWK9hUhhGbd45hLXo2Pq2oqzMMo63oStZzFAzHGBP2UuGCqWLTAPLcMtD9y5gkZ6Eq3Rjuahrv17fEQ3Qen6J",
            |e| matches!(e, XpubError::Version(_)),
        ),
        // zero depth with non-zero parent fingerprint (private, public)
        (
            "xprv9s2SPatNQ9Vc6GTbVMFPFo7jsaZySyzk7L8n2uqKXJen3KUmvQNTuLh3fhZMBoG3G4ZW1N2kZuHEPY53qmbZzCHshoQnNf4GvELZfqTUrcv",
            |e| matches!(e, XpubError::Version(_)),
        ),
        (
            "xpub661no6RGEX3uJkY4bNnPcw4URcQTrSibUZ4NqJEw5eBkv7ovTwgiT91XX27VbEXGENhYRCf7hyEbWrR3FewATdCEebj6znwMfQkhRYHRLpJ",
            |e| *e == XpubError::ZeroDepth,
        ),
        // zero depth with non-zero index (private, public)
        (
            "xprv9s21ZrQH4r4TsiLvyLXqM9P7k1K3EYhA1kkD6xuquB5i39AU8KF42acDyL3qsDbU9NmZn6MsGSUYZEsuoePmjzsB3eFKSUEh3Gu1N3cqVUN",
            |e| matches!(e, XpubError::Version(_)),
        ),
        (
            "xpub661MyMwAuDcm6CRQ5N4qiHKrJ39Xe1R1NyfouMKTTWcguwVcfrZJaNvhpebzGerh7gucBvzEQWRugZDuDXjNDRmXzSZe4c7mnTK97pTvGS8",
            |e| *e == XpubError::ZeroDepth,
        ),
        // unknown extended key version
        (
            "DMwo58pR1QLEFihHiXPVykYB6fJmsTeHvyTp7hRThAtCX8CvYzgPcn8XnmdfHGMQzT7ayAmfo4z3gY5KfbrZWZ6St24UVf2Qgo6oujFktLHdHY4",
            |e| matches!(e, XpubError::Version(_)),
        ),
        (
            "DMwo58pR1QLEFihHiXPVykYB6fJmsTeHvyTp7hRThAtCX8CvYzgPcn8XnmdfHPmHJiEDXkTiJTVV9rHEBUem2mwVbbNfvT2MTcAqj3nesx8uBf9",
            |e| matches!(e, XpubError::Version(_)),
        ),
        // private key 0 / n (private versions: rejected as non-public)
        (
            "xprv9s21ZrQH143K24Mfq5zL5MhWK9hUhhGbd45hLXo2Pq2oqzMMo63oStZzF93Y5wvzdUayhgkkFoicQZcP3y52uPPxFnfoLZB21Teqt1VvEHx",
            |e| matches!(e, XpubError::Version(_)),
        ),
        (
            "xprv9s21ZrQH143K24Mfq5zL5MhWK9hUhhGbd45hLXo2Pq2oqzMMo63oStZzFAzHGBP2UuGCqWLTAPLcMtD5SDKr24z3aiUvKr9bJpdrcLg1y3G",
            |e| matches!(e, XpubError::Version(_)),
        ),
        // invalid pubkey 020000…07 (not on the curve)
        (
            "xpub661MyMwAqRbcEYS8w7XLSVeEsBXy79zSzH1J8vCdxAZningWLdN3zgtU6Q5JXayek4PRsn35jii4veMimro1xefsM58PgBMrvdYre8QyULY",
            |e| *e == XpubError::PublicKey,
        ),
        // invalid checksum
        (
            "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHL",
            |e| *e == XpubError::Checksum,
        ),
    ];
    for (s, expected) in cases {
        let e = s.parse::<Xpub>().unwrap_err();
        assert!(expected(&e), "{s}: unexpected error {e:?}");
    }
    // Truncated, over-long, non-Base58 input.
    for s in ["", "xpub", "0OIl", &"1".repeat(200)] {
        assert!(s.parse::<Xpub>().is_err(), "{s}");
    }
}

/// The reference implementation: the `bip32` crate (independent code, dev-dependency only),
/// starting from the public key alone.
fn reference_xpub(x: &ProjectivePoint, cc: [u8; 32], path: &[u32]) -> String {
    let vk = k256::ecdsa::VerifyingKey::from_affine(x.to_affine()).unwrap();
    let attrs = ::bip32::ExtendedKeyAttrs {
        depth: 0,
        parent_fingerprint: [0; 4],
        child_number: ::bip32::ChildNumber::from(0u32),
        chain_code: cc,
    };
    let mut node = ::bip32::XPub::new(vk, attrs);
    for &c in path {
        node = node.derive_child(::bip32::ChildNumber::from(c)).unwrap();
    }
    node.to_extended_key(::bip32::Prefix::XPUB).to_string()
}

/// One threshold key (2-of-3 DKG), shared by the property-test cases.
fn dkg_key() -> &'static dkls23_core::KeyShare {
    static KEY: std::sync::OnceLock<dkls23_core::KeyShare> = std::sync::OnceLock::new();
    KEY.get_or_init(|| crate::common::honest_dkg(3, 2, 181).remove(1))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn xpub_matches_the_bip32_crate(
        key in prop::array::uniform32(any::<u8>()),
        cc in prop::array::uniform32(any::<u8>()),
        path in prop::collection::vec(0u32..HARDENED, 0..6),
    ) {
        let x = scalar(key).unwrap_or(Scalar::ONE);
        prop_assume!(x != Scalar::ZERO);
        let root = Xpub::root(ProjectivePoint::GENERATOR * x, cc, Network::Mainnet);
        let ours = root.derive(&path).unwrap();
        prop_assert_eq!(ours.to_string(), reference_xpub(&root.public_key, cc, &path));
        let d = bip32::derive(&root.public_key, &cc, &path).unwrap();
        prop_assert_eq!(d.public_key, ProjectivePoint::GENERATOR * (x + d.tweak));
        prop_assert_eq!(d.public_key, ours.public_key);
    }

    #[test]
    fn threshold_xpub_matches_the_bip32_crate(path in prop::collection::vec(0u32..HARDENED, 0..6)) {
        let share = dkg_key();
        let ours = bip32::xpub_for_path(share, &path, Network::Mainnet).unwrap();
        prop_assert_eq!(ours.to_string(), reference_xpub(share.public_key(), *share.chain_code(), &path));
        let t = bip32::xpub_for_path(share, &path, Network::Testnet).unwrap().to_string();
        prop_assert!(t.starts_with("tpub"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// §10 item 4 (white-box algebra of the signing inputs): for a random signing set S and
    /// context, the zero shares sum to 0, and Σ_{i∈S} (λ_i·(f(i) + τ) + ζ_i) = f(0) + τ, i.e.
    /// the additive shares of a derived key sum to x + τ.
    #[test]
    fn zero_shares_and_tweaked_additive_shares(
        seed in any::<u64>(),
        mask in 1u8..127,
        ctx in prop::collection::vec(any::<u8>(), 0..40),
        t in 2usize..5,
    ) {
        use dkls23_core::math::{Polynomial, lagrange_at_zero, zero_share};
        use rand_core::SeedableRng;
        let set: Vec<u16> = (1..=7u16).filter(|i| mask & (1 << (i - 1)) != 0).collect();
        prop_assume!(set.len() >= t);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let mut seeds = std::collections::BTreeMap::new();
        for i in 1..=7u16 {
            for j in (i + 1)..=7 {
                let mut s = [0u8; 32];
                rand_core::Rng::fill_bytes(&mut rng, &mut s);
                seeds.insert((i, j), s);
            }
        }
        let x = dkls23_core::math::random_nonzero(&mut rng);
        let tau = dkls23_core::math::random_nonzero(&mut rng);
        let f = Polynomial::random(&mut rng, t, Some(x));
        let mut zeta_sum = Scalar::ZERO;
        let mut sk_sum = Scalar::ZERO;
        for &i in &set {
            let mine = (1..=7u16).filter(|&j| j != i).map(|j| (j, &seeds[&(i.min(j), i.max(j))]));
            let zeta = zero_share(i, mine, &set, &ctx);
            zeta_sum += zeta;
            sk_sum += lagrange_at_zero(&set, i).unwrap() * (f.eval(i) + tau) + zeta;
        }
        prop_assert_eq!(zeta_sum, Scalar::ZERO);
        prop_assert_eq!(sk_sum, x + tau);
    }
}
