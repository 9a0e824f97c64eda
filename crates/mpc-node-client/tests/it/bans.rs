use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dkls23_core::identity::{Ed25519Identity, IdentitySigner, SharedSigner};
use dkls23_core::setup::{MemoryReplayGuard, ProtocolId};
use dkls23_core::{Error, KeyShare};
use dkls23_runner::{RunContext, RunHooks, RunOptions, run_dkg, run_sign};
use mpc_node_client::api::SessionConfig;
use mpc_node_client::session;
use mpc_node_client::{BanStore, EmbeddedParty, MemoryBanStore, MemoryKeyStore, PartyError};
use msg_relay_api::{Fault, MemoryRelay};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const KEY: &str = "user-1";

fn opts() -> RunOptions {
    RunOptions { round_timeout: Duration::from_secs(10), ..RunOptions::default() }
}

struct World {
    relay: MemoryRelay,
    phone_id: Arc<Ed25519Identity>,
    server_id: Arc<Ed25519Identity>,
    keys: Arc<MemoryKeyStore>,
    bans: Arc<MemoryBanStore>,
    guard: Arc<MemoryReplayGuard>,
}

impl World {
    fn new() -> Self {
        Self {
            relay: MemoryRelay::new(),
            phone_id: Arc::new(Ed25519Identity::from_seed(&[1; 32])),
            server_id: Arc::new(Ed25519Identity::from_seed(&[2; 32])),
            keys: Arc::new(MemoryKeyStore::default()),
            bans: Arc::new(MemoryBanStore::default()),
            guard: Arc::new(MemoryReplayGuard::new()),
        }
    }

    /// The phone, (re-)created from the same stores, talking through `relay`.
    fn phone(&self, relay: MemoryRelay) -> EmbeddedParty {
        EmbeddedParty::new(
            self.phone_id.clone(),
            Arc::new(relay),
            self.keys.clone(),
            self.bans.clone(),
            self.guard.clone(),
        )
        .with_options(opts())
    }

    fn session(&self, sid: u8) -> SessionConfig {
        let mut public_keys = BTreeMap::new();
        public_keys.insert(1u16, self.phone_id.public_key().to_string());
        public_keys.insert(2u16, self.server_id.public_key().to_string());
        SessionConfig { session_id: hex::encode([sid; 32]), players: vec![1, 2], public_keys }
    }

    /// 2-of-2 keygen: phone (player 1) and server (player 2); returns the server's share.
    async fn keygen(&self) -> KeyShare {
        let cfg = self.session(1);
        let phone = self.phone(self.relay.clone());
        let players = session::resolve_players(&cfg, &BTreeMap::new()).unwrap();
        let setup = session::dkg_setup([1; 32], 2, players, KEY, "").unwrap();
        let server_id: SharedSigner = self.server_id.clone();
        let relay = self.relay.clone();
        let server = async move {
            let mut rng = ChaCha20Rng::seed_from_u64(2);
            let guard = MemoryReplayGuard::new();
            run_dkg(
                &RunContext::new(&relay, server_id, &guard).with_options(opts()),
                &setup,
                &mut rng,
            )
            .await
        };
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (p, s) = tokio::join!(phone.generate(KEY, 2, &cfg, &mut rng), server);
        p.unwrap();
        s.unwrap()
    }

    /// One signing session: the phone through `phone_relay`, the server (with `hooks`) through
    /// the world's relay.
    async fn sign(
        &self,
        share: &KeyShare,
        sid: u8,
        hooks: RunHooks,
        phone_relay: MemoryRelay,
    ) -> (Result<dkls23_core::sign::Signature, PartyError>, Result<(), Error>) {
        let cfg = self.session(sid);
        let m = [0x5a; 32];
        let setup = session::sign_setup([sid; 32], share, &[1, 2], &[], m).unwrap();
        let phone = self.phone(phone_relay);
        let server_id: SharedSigner = self.server_id.clone();
        let relay = self.relay.clone();
        let server = async move {
            let mut rng = ChaCha20Rng::seed_from_u64(u64::from(sid) + 100);
            let guard = MemoryReplayGuard::new();
            let o = RunOptions { hooks, round_timeout: Duration::from_secs(2), ..opts() };
            run_sign(
                &RunContext::new(&relay, server_id, &guard).with_options(o.clone()),
                &setup,
                share,
                &mut rng,
            )
            .await
            .map(|_| ())
        };
        let mut rng = ChaCha20Rng::seed_from_u64(u64::from(sid));
        tokio::join!(phone.sign(KEY, &cfg, m, &[], &mut rng), server)
    }
}

/// The server, as OT-extension receiver (Bob) towards the phone, flips one bit of U in its S1
/// message to the phone: the selective-abort probe of the phone's Δ.
fn cheating_server() -> RunHooks {
    RunHooks::tamper(|protocol, round, out| {
        if protocol == ProtocolId::Sign
            && round == 2
            && let Some(m) = out.p2p.get_mut(&1)
        {
            m[32 + 100] ^= 4;
        }
    })
}

#[tokio::test]
async fn a_cheating_server_is_banned_and_refused_before_any_publish_also_after_restart() {
    let w = World::new();
    let share = w.keygen().await;
    // An honest session works.
    let (p, s) = w.sign(&share, 10, RunHooks::default(), w.relay.clone()).await;
    p.unwrap();
    s.unwrap();

    // The server cheats in its OT-extension message: the phone bans it.
    let (p, _) = w.sign(&share, 11, cheating_server(), w.relay.clone()).await;
    match p {
        Err(PartyError::Protocol(Error::BanAndAbort { party: 2, .. })) => {}
        other => panic!("expected BanAndAbort{{2}}, got {other:?}"),
    }
    assert_eq!(w.bans.banned(KEY).unwrap(), vec![2]);

    // Next session with the server: refused with a clear error, before any message is sent.
    // The phone gets its own relay handle so that its publishes can be counted.
    for attempt in 0..2 {
        let phone_relay = MemoryRelay::new();
        let phone = w.phone(phone_relay.clone()); // re-created from the same stores
        let mut rng = ChaCha20Rng::seed_from_u64(50 + attempt);
        let r = phone.sign(KEY, &w.session(12 + attempt as u8), [1; 32], &[], &mut rng).await;
        match r {
            Err(e @ PartyError::Banned { party: 2, .. }) => {
                assert!(e.to_string().contains("banned"), "{e}");
            }
            other => panic!("expected a ban refusal, got {other:?}"),
        }
        assert_eq!(phone_relay.stats().0, 0, "nothing may be published to a banned party");
        assert_eq!(phone.banned(KEY).unwrap(), vec![2]);
    }
}

#[tokio::test]
async fn tampering_in_transit_fails_authentication_and_bans_nobody() {
    let w = World::new();
    let share = w.keygen().await;
    // The relay (not the server) flips a byte of every message the phone receives in round 2.
    let phone_id = w.phone_id.public_key();
    let server_id = w.server_id.public_key();
    let s1_to_phone =
        dkls23_core::message::mid(&[20; 32], &server_id, Some(&phone_id), ProtocolId::Sign, 2);
    let faulty = w.relay.with_fault(move |id, bytes| {
        if id.as_bytes() == &s1_to_phone {
            let mut b = bytes.to_vec();
            if let Some(x) = b.get_mut(120) {
                *x ^= 1;
            }
            Fault::Replace(b)
        } else {
            Fault::Deliver
        }
    });
    // The server publishes through the faulty handle; the phone reads the same relay.
    let cfg = w.session(20);
    let m = [0x5a; 32];
    let setup = session::sign_setup([20; 32], &share, &[1, 2], &[], m).unwrap();
    let phone = w.phone(w.relay.clone());
    let server_id: SharedSigner = w.server_id.clone();
    let server = async {
        let mut rng = ChaCha20Rng::seed_from_u64(120);
        let guard = MemoryReplayGuard::new();
        let o = RunOptions { round_timeout: Duration::from_secs(1), ..opts() };
        run_sign(
            &RunContext::new(&faulty, server_id, &guard).with_options(o.clone()),
            &setup,
            &share,
            &mut rng,
        )
        .await
    };
    let phone_opts = RunOptions { round_timeout: Duration::from_secs(1), ..opts() };
    let phone = phone.with_options(phone_opts);
    let mut rng = ChaCha20Rng::seed_from_u64(20);
    let (p, _) = tokio::join!(phone.sign(KEY, &cfg, m, &[], &mut rng), server);
    match p {
        Err(PartyError::Protocol(e)) => {
            assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
            assert!(!e.must_ban());
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(w.bans.banned(KEY).unwrap().is_empty());
}
