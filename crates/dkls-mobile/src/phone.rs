//! The phone: one party of keys shared with other phones or with server nodes, reaching them
//! through the relay.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use dkls23_core::KeyShare;
use dkls23_runner::{RoundEvent, RoundObserver, RunOptions};
use getrandom::SysRng;
use mpc_node_client::api::SessionConfig;
use mpc_node_client::embedded::EmbeddedParty;
use mpc_node_client::session;
use msg_relay_client::{ClientConfig, ClientTls, WsRelay};
use rand_core::UnwrapErr;

use crate::error::{ForeignError, MobileError};
use crate::signer::{ForeignIdentity, MessageSigner};
use crate::storage::{SecureStorage, Stores};

/// How the phone reaches the relay and runs its sessions.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PhoneConfig {
    /// `https://host[:port]` (or `wss://…`); `http://` only for tests on loopback.
    pub relay_url: String,
    /// Extra CA certificates (PEM) trusted for the relay, e.g. a private CA; the bundled web
    /// PKI roots are trusted too.
    #[uniffi(default = None)]
    pub relay_ca_pem: Option<String>,
    /// Pins of the relay's certificate: `cert-sha256:<hex>` or `spki-sha256:<hex>`.
    #[uniffi(default = [])]
    pub relay_pins: Vec<String>,
    /// The application the keys belong to: the name the server nodes know this app by (empty
    /// for phone-only keys).
    #[uniffi(default = "")]
    pub application: String,
    /// How long to wait for the other parties in each round, in seconds.
    #[uniffi(default = 60)]
    pub round_timeout_secs: u32,
}

/// One protocol session: the same on every party.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Session {
    /// 32 random bytes, fresh for every session ([`crate::new_instance_id`]).
    pub session_id: Vec<u8>,
    /// The players: for key generation exactly `1..=n`; for signing the signers.
    pub players: Vec<u16>,
    /// Identity keys of the players (`ed25519:<hex>` / `p256:<hex>`), this phone's included.
    pub public_keys: HashMap<u16, String>,
}

impl Session {
    pub(crate) fn to_config(&self) -> Result<SessionConfig, MobileError> {
        if self.session_id.len() != 32 {
            return Err(MobileError::input(format!(
                "the session id is 32 bytes, not {}",
                self.session_id.len()
            )));
        }
        Ok(SessionConfig {
            session_id: hex::encode(&self.session_id),
            players: self.players.clone(),
            public_keys: self
                .public_keys
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect::<BTreeMap<_, _>>(),
        })
    }
}

/// How the message is turned into the 32 bytes that are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum HashAlgorithm {
    /// KECCAK256 (Ethereum).
    Keccak256,
    /// SHA-256.
    Sha256,
    /// The message is already a 32-byte hash.
    Raw,
}

/// A key this phone holds a share of (public values).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct KeyInfo {
    /// The key id.
    pub key_id: String,
    /// The compressed SEC1 public key (at the requested path).
    pub public_key: Vec<u8>,
    /// The Ethereum address of that key (`0x…`, EIP-55).
    pub ethereum_address: String,
    /// This phone's player index in the key.
    pub player: u16,
}

/// An ECDSA signature in the encodings wallets use.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SignatureResult {
    /// The 32 bytes that were signed.
    pub message_hash: Vec<u8>,
    /// r, 32 bytes big-endian.
    pub r: Vec<u8>,
    /// s, 32 bytes big-endian (low-s).
    pub s: Vec<u8>,
    /// The recovery id (0 or 1).
    pub recovery_id: u8,
    /// DER encoding.
    pub der: Vec<u8>,
    /// r ‖ s ‖ v with v = 27 + recovery id (65 bytes).
    pub rsv: Vec<u8>,
}

/// Told about each completed round (called on a background thread; keep it short).
#[uniffi::export(with_foreign)]
pub trait ProgressListener: Send + Sync {
    /// `protocol`: `dkg`, `sign`, `reshare`, `import` or `export`; `round` counts from 1.
    fn round_done(&self, protocol: String, round: u16);
}

struct Progress(Arc<dyn ProgressListener>);

impl RoundObserver for Progress {
    fn round_done(&self, ev: &RoundEvent) {
        let protocol = format!("{:?}", ev.protocol).to_ascii_lowercase();
        self.0.round_done(protocol, ev.round);
    }
}

/// The phone party.
#[derive(uniffi::Object)]
pub struct Phone {
    runtime: Option<tokio::runtime::Runtime>,
    pub(crate) party: Arc<EmbeddedParty>,
    relay: Arc<WsRelay>,
    stores: Stores,
    identity: dkls23_core::identity::IdentityPublicKey,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Phone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Phone").field("relay", self.relay.url()).finish_non_exhaustive()
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        let Some(rt) = self.runtime.take() else { return };
        if tokio::runtime::Handle::try_current().is_ok() {
            // On a runtime thread a blocking shutdown is not allowed.
            rt.shutdown_background();
        } else {
            // The app's thread: wait (briefly) for this phone's threads to stop, so that none
            // of them outlives the phone and calls into the app afterwards (a Python
            // interpreter that is shutting down kills such a thread, which aborts the process).
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

fn relay_tls(config: &PhoneConfig) -> Result<Option<ClientTls>, MobileError> {
    if config.relay_ca_pem.is_none() && config.relay_pins.is_empty() {
        return Ok(None);
    }
    let mut builder = ClientTls::builder();
    if let Some(pem) = &config.relay_ca_pem {
        builder = builder.ca_pem(pem.as_bytes()).map_err(|e| MobileError::input(e.to_string()))?;
    }
    for pin in &config.relay_pins {
        builder = builder
            .pin(pin.parse().map_err(|e: String| MobileError::input(format!("relay pin: {e}")))?);
    }
    builder.build().map(Some).map_err(|e| MobileError::input(e.to_string()))
}

#[uniffi::export]
impl Phone {
    /// A phone with the app's `storage` and `signer`, reaching the relay of `config` (the
    /// connection is made in the background; [`Phone::check_relay`] waits for it).
    ///
    /// # Errors
    /// [`MobileError::InvalidInput`] for a bad URL, CA or pin; [`MobileError::Signer`] for an
    /// unusable verifying key.
    #[uniffi::constructor]
    pub fn new(
        config: PhoneConfig,
        storage: Arc<dyn SecureStorage>,
        signer: Arc<dyn MessageSigner>,
        progress: Option<Arc<dyn ProgressListener>>,
    ) -> Result<Arc<Self>, MobileError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("dkls-mobile")
            .enable_all()
            .build()
            .map_err(|e| MobileError::input(format!("cannot start the runtime: {e}")))?;
        let client = ClientConfig { tls: relay_tls(&config)?, ..ClientConfig::default() };
        let connect_timeout = client.connect_timeout;
        let relay = {
            let _entered = runtime.enter();
            Arc::new(
                WsRelay::new(&config.relay_url, client)
                    .map_err(|e| MobileError::input(e.to_string()))?,
            )
        };
        let signer = Arc::new(ForeignIdentity::new(signer)?);
        let identity = signer.public_key();
        let stores = Stores::new(storage);
        let options = RunOptions {
            round_timeout: Duration::from_secs(u64::from(config.round_timeout_secs.max(1))),
            observer: progress.map(|p| Arc::new(Progress(p)) as Arc<dyn RoundObserver>),
            ..RunOptions::default()
        };
        let party = EmbeddedParty::new(
            signer,
            relay.clone(),
            Arc::new(stores.clone()),
            Arc::new(stores.clone()),
            Arc::new(stores.clone()),
        )
        .with_presignatures(Arc::new(stores.clone()), Arc::new(stores.clone()))
        .for_application(&config.application)
        .with_options(options);
        Ok(Arc::new(Self {
            runtime: Some(runtime),
            party: Arc::new(party),
            relay,
            stores,
            identity,
            connect_timeout,
        }))
    }

    /// This phone's identity key as sessions list it (`ed25519:<hex>` / `p256:<hex>`).
    pub fn identity(&self) -> String {
        self.identity.to_string()
    }

    /// Waits until the relay is connected.
    ///
    /// # Errors
    /// [`MobileError::Relay`] with the cause (at once for a certificate problem).
    pub async fn check_relay(&self) -> Result<(), MobileError> {
        let relay = self.relay.clone();
        let timeout = self.connect_timeout;
        self.spawn(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                if relay.is_connected() {
                    return Ok(());
                }
                if let Some(message) = relay.refusal() {
                    return Err(MobileError::Relay { message });
                }
                if tokio::time::Instant::now() >= deadline {
                    let message = relay.last_error().unwrap_or_else(|| {
                        format!("no connection to {} within {timeout:?}", relay.url().ws_url())
                    });
                    return Err(MobileError::Relay { message });
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
    }

    /// Runs key generation (`threshold`-of-`session.players.len()`) and stores the share
    /// under `key_id`. Nothing is stored when it fails.
    ///
    /// # Errors
    /// [`MobileError`].
    pub async fn keygen(
        &self,
        key_id: String,
        threshold: u16,
        session: Session,
    ) -> Result<KeyInfo, MobileError> {
        let config = session.to_config()?;
        let party = self.party.clone();
        self.spawn(async move {
            let mut rng = UnwrapErr(SysRng);
            let generated = party.generate(&key_id, threshold, &config, &mut rng).await?;
            crate::lifecycle::key_info(key_id, &generated)
        })
        .await
    }

    /// Signs `message` (hashed with `hash`) with the key `key_id` at the BIP32 `path`
    /// (`m/…`, non-hardened; `m` or empty for the key itself), with the signers
    /// `session.players`.
    ///
    /// # Errors
    /// [`MobileError`]; a co-signer caught cheating is banned (`MobileError::Protocol` with
    /// `banned`), and later sessions with it fail with [`MobileError::Banned`].
    pub async fn sign(
        &self,
        key_id: String,
        session: Session,
        message: Vec<u8>,
        hash: HashAlgorithm,
        path: String,
    ) -> Result<SignatureResult, MobileError> {
        let config = session.to_config()?;
        let prehash = prehash(hash, &message)?;
        let path = parse_path(&path)?;
        let party = self.party.clone();
        self.spawn(async move {
            let mut rng = UnwrapErr(SysRng);
            let sig = party.sign(&key_id, &config, prehash, &path, &mut rng).await?;
            Ok(signature_result(prehash, &sig))
        })
        .await
    }

    /// The public key and Ethereum address of `key_id` at `path`.
    ///
    /// # Errors
    /// [`MobileError::UnknownKey`], [`MobileError::InvalidInput`] for a bad path.
    pub fn public_key(&self, key_id: String, path: String) -> Result<KeyInfo, MobileError> {
        let share = self.share(&key_id)?;
        let path = parse_path(&path)?;
        let derived = dkls23_core::bip32::derive(share.public_key(), share.chain_code(), &path)
            .map_err(|e| MobileError::input(e.to_string()))?;
        Ok(KeyInfo {
            key_id,
            public_key: session::compressed(&derived.public_key).to_vec(),
            ethereum_address: session::ethereum_address(&derived.public_key),
            player: share.index(),
        })
    }

    /// The parties banned for `key_id`.
    ///
    /// # Errors
    /// [`MobileError::Storage`].
    pub fn banned(&self, key_id: String) -> Result<Vec<u16>, MobileError> {
        Ok(self.party.banned(&key_id)?)
    }

    /// Deletes the share of `key_id` with its bans, presignatures and any staged share.
    ///
    /// # Errors
    /// [`MobileError::Storage`].
    pub fn delete_share(&self, key_id: String) -> Result<(), MobileError> {
        Ok(self.party.delete(&key_id)?)
    }
}

impl Phone {
    pub(crate) fn share(&self, key_id: &str) -> Result<KeyShare, MobileError> {
        use mpc_node_client::embedded::KeyStore as _;
        let bytes = self
            .stores
            .get(key_id)
            .map_err(|message| MobileError::Storage { message })?
            .ok_or_else(|| MobileError::UnknownKey { key_id: key_id.to_owned() })?;
        KeyShare::from_bytes(&bytes).map_err(|e| MobileError::Storage {
            message: format!("the stored share does not decode: {e}"),
        })
    }

    /// Runs `fut` on this phone's runtime. Dropping the returned future (the caller's task was
    /// cancelled) stops the work: nothing more is sent, and a key generation stores nothing.
    pub(crate) async fn spawn<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = Result<T, MobileError>> + Send + 'static,
    ) -> Result<T, MobileError> {
        let Some(rt) = &self.runtime else { return Err(MobileError::Cancelled) };
        struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);
        impl<T> Drop for AbortOnDrop<T> {
            fn drop(&mut self) {
                self.0.abort();
            }
        }
        let mut task = AbortOnDrop(rt.spawn(fut));
        match (&mut task.0).await {
            Ok(result) => result,
            Err(e) if e.is_cancelled() => Err(MobileError::Cancelled),
            Err(e) => Err(MobileError::input(format!("the operation failed unexpectedly: {e}"))),
        }
    }
}

pub(crate) fn signature_result(
    prehash: [u8; 32],
    sig: &dkls23_core::sign::Signature,
) -> SignatureResult {
    SignatureResult {
        message_hash: prehash.to_vec(),
        r: sig.r.to_vec(),
        s: sig.s.to_vec(),
        recovery_id: sig.recovery_id,
        der: sig.to_der(),
        rsv: sig.to_rsv().to_vec(),
    }
}

pub(crate) fn prehash(hash: HashAlgorithm, message: &[u8]) -> Result<[u8; 32], MobileError> {
    use dkls23_core::hashing::HashAlgorithm as H;
    let alg = match hash {
        HashAlgorithm::Keccak256 => H::Keccak256,
        HashAlgorithm::Sha256 => H::Sha256,
        HashAlgorithm::Raw => H::None,
    };
    dkls23_core::hashing::prehash(alg, message).map_err(|e| MobileError::input(e.to_string()))
}

pub(crate) fn parse_path(path: &str) -> Result<Vec<u32>, MobileError> {
    let path = path.trim();
    if path.is_empty() || path == "m" {
        return Ok(Vec::new());
    }
    session::parse_path(path).map_err(|e| MobileError::input(e.0))
}

pub(crate) fn decompress(key: &[u8; 33]) -> Result<k256::ProjectivePoint, MobileError> {
    k256::PublicKey::from_sec1_bytes(key)
        .map(|p| p.to_projective())
        .map_err(|_| MobileError::input("the generated public key does not decode"))
}

impl From<ForeignError> for MobileError {
    fn from(e: ForeignError) -> Self {
        Self::Storage { message: e.to_string() }
    }
}
