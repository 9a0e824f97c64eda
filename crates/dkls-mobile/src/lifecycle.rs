//! Presignatures, refresh, reshare, the xpub and receiving an export: the rest of the key's
//! life on the phone.

use std::sync::Arc;

use getrandom::SysRng;
use mpc_node_client::api::SessionConfig;
use mpc_node_client::embedded::{GeneratedKey, ReshareResult};
use mpc_node_client::session;
use rand_core::{Rng, UnwrapErr};
use zeroize::Zeroizing;

use crate::error::MobileError;
use crate::phone::{
    HashAlgorithm, KeyInfo, Phone, Session, SignatureResult, decompress, parse_path, prehash,
    signature_result,
};

/// A private key received through an export. `private_key` is the whole key: keep it in
/// secure storage and overwrite the buffer once it is stored.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct ExportedKey {
    /// The private key (32 bytes big-endian).
    pub private_key: Vec<u8>,
    /// The root chain code (32 bytes); with the private key it forms the BIP32 root `xprv`.
    pub chain_code: Vec<u8>,
    /// The compressed SEC1 public key.
    pub public_key: Vec<u8>,
    /// Its Ethereum address (`0x…`, EIP-55).
    pub ethereum_address: String,
}

impl std::fmt::Debug for ExportedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportedKey")
            .field("private_key", &"<redacted>")
            .field("ethereum_address", &self.ethereum_address)
            .finish_non_exhaustive()
    }
}

/// The static X25519 key an export is encrypted to: give [`ExportRecipient::public_key`] to the
/// exporters (`recipient_x25519`), then run [`Phone::receive_export`] with this object. The
/// secret never leaves the library.
#[derive(uniffi::Object)]
pub struct ExportRecipient {
    secret: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for ExportRecipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportRecipient").field("public_key", &hex::encode(self.public())).finish()
    }
}

impl ExportRecipient {
    fn public(&self) -> [u8; 32] {
        x25519_dalek::x25519(*self.secret, x25519_dalek::X25519_BASEPOINT_BYTES)
    }
}

#[uniffi::export]
impl ExportRecipient {
    /// A fresh random recipient key.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        let mut secret = Zeroizing::new([0u8; 32]);
        UnwrapErr(SysRng).fill_bytes(&mut *secret);
        Arc::new(Self { secret })
    }

    /// The X25519 public key (32 bytes) the exporters encrypt to.
    pub fn public_key(&self) -> Vec<u8> {
        self.public().to_vec()
    }
}

pub(crate) fn key_info(key_id: String, key: &GeneratedKey) -> Result<KeyInfo, MobileError> {
    let point = decompress(&key.public_key)?;
    Ok(KeyInfo {
        key_id,
        public_key: key.public_key.to_vec(),
        ethereum_address: session::ethereum_address(&point),
        player: key.player,
    })
}

#[uniffi::export]
impl Phone {
    /// Makes `count` presignatures of `key_id` with the signers `session.players` for the BIP32
    /// `path`, with the same session at every signer (a node's `presign` call included), and
    /// stores them. Returns their ids (hex), the same at every signer.
    ///
    /// # Errors
    /// [`MobileError`]; a cheating co-signer is banned as in [`Phone::sign`].
    pub async fn presign(
        &self,
        key_id: String,
        session: Session,
        count: u16,
        path: String,
    ) -> Result<Vec<String>, MobileError> {
        let config = session.to_config()?;
        let path = parse_path(&path)?;
        let party = self.party.clone();
        self.spawn(async move {
            let mut rng = UnwrapErr(SysRng);
            Ok(party.presign(&key_id, &config, count, &path, &mut rng).await?)
        })
        .await
    }

    /// Signs with the presignature `presignature_id` of `key_id` (made with `signers` and
    /// `path`): one round online. The presignature is deleted before anything is sent, so it
    /// is used at most once, whatever happens to the session.
    ///
    /// # Errors
    /// [`MobileError::UnknownPresignature`] (unknown or already used),
    /// [`MobileError::PresignaturesRestored`] when the presignature storage came back from a
    /// backup (all were deleted; nothing was sent); otherwise as [`Phone::sign`].
    pub async fn sign_with_presignature(
        &self,
        key_id: String,
        presignature_id: String,
        signers: Vec<u16>,
        message: Vec<u8>,
        hash: HashAlgorithm,
        path: String,
    ) -> Result<SignatureResult, MobileError> {
        let prehash = prehash(hash, &message)?;
        let path = parse_path(&path)?;
        // The online round's instance id is the presignature's; the identities are the share's.
        let config = SessionConfig {
            session_id: presignature_id.clone(),
            players: signers,
            public_keys: std::collections::BTreeMap::new(),
        };
        let party = self.party.clone();
        self.spawn(async move {
            let mut rng = UnwrapErr(SysRng);
            let sig = party
                .sign_with_presignature(
                    &key_id,
                    &presignature_id,
                    &config,
                    prehash,
                    &path,
                    &mut rng,
                )
                .await?;
            Ok(signature_result(prehash, &sig))
        })
        .await
    }

    /// Refreshes `key_id`: new shares of the same key for all of its players
    /// (`session.players` = `1..=n`). The public key and addresses stay; bans and presignatures
    /// of the old share are dropped.
    ///
    /// # Errors
    /// [`MobileError::Undecided`] when the run failed after the new share was kept aside (it
    /// is settled on the next use of the key); otherwise [`MobileError`].
    pub async fn refresh(&self, key_id: String, session: Session) -> Result<KeyInfo, MobileError> {
        let config = session.to_config()?;
        let party = self.party.clone();
        self.spawn(async move {
            let mut rng = UnwrapErr(SysRng);
            let key = party.refresh(&key_id, &config, &mut rng).await?;
            key_info(key_id, &key)
        })
        .await
    }

    /// The public reshare spec of a reshare of `key_id` (see [`Phone::reshare`]): what a party
    /// joining the new committee without a share passes as `spec`.
    ///
    /// # Errors
    /// [`MobileError`].
    pub fn reshare_spec(
        &self,
        key_id: String,
        session: Session,
        old_players: Vec<u16>,
        new_threshold: u16,
    ) -> Result<Vec<u8>, MobileError> {
        let config = session.to_config()?;
        Ok(self.party.reshare_spec(&key_id, &config, &old_players, new_threshold)?)
    }

    /// Reshares `key_id` to the new committee `session.players` (exactly `1..=n'`, with every
    /// member's identity key) and `new_threshold`, dealt by the current holders `old_players`
    /// (at least the old threshold of them). This phone deals if it holds a share and is in
    /// `old_players`, and keeps a share if its identity is in the new committee; a phone
    /// without a share joins with `spec` (from a holder's `reshare_spec`). Returns the new key
    /// info, or `None` when this phone left the committee (its share is deleted).
    ///
    /// # Errors
    /// [`MobileError::Undecided`] as for [`Phone::refresh`]; otherwise [`MobileError`].
    pub async fn reshare(
        &self,
        key_id: String,
        session: Session,
        old_players: Vec<u16>,
        new_threshold: u16,
        spec: Option<Vec<u8>>,
    ) -> Result<Option<KeyInfo>, MobileError> {
        let config = session.to_config()?;
        let party = self.party.clone();
        self.spawn(async move {
            let mut rng = UnwrapErr(SysRng);
            let out = party
                .reshare(&key_id, &config, &old_players, new_threshold, spec.as_deref(), &mut rng)
                .await?;
            match out {
                ReshareResult::Share(key) => key_info(key_id, &key).map(Some),
                ReshareResult::Removed => Ok(None),
            }
        })
        .await
    }

    /// The BIP32 extended public key (`xpub…`, or `tpub…` with `testnet`) of `key_id` at
    /// `path` (non-hardened).
    ///
    /// # Errors
    /// [`MobileError::UnknownKey`], [`MobileError::InvalidInput`] for a bad path.
    pub fn xpub(&self, key_id: String, path: String, testnet: bool) -> Result<String, MobileError> {
        use dkls23_core::bip32::{Network, xpub_for_path};
        let share = self.share(&key_id)?;
        let path = parse_path(&path)?;
        let network = if testnet { Network::Testnet } else { Network::Mainnet };
        let xpub =
            xpub_for_path(&share, &path, network).map_err(|e| MobileError::input(e.to_string()))?;
        Ok(xpub.to_string())
    }

    /// Receives a key exported to this phone: `setup` is the export setup the exporters
    /// return (hex-decoded), `recipient` the key whose public half they were given, and
    /// `confirmation` exactly the export confirmation phrase. Check the returned public key
    /// against the one you expect.
    ///
    /// # Errors
    /// [`MobileError`]: a malformed setup, a missing confirmation, a timeout, a blamed
    /// exporter.
    pub async fn receive_export(
        &self,
        setup: Vec<u8>,
        recipient: Arc<ExportRecipient>,
        confirmation: String,
    ) -> Result<ExportedKey, MobileError> {
        let party = self.party.clone();
        self.spawn(async move {
            let mut rng = UnwrapErr(SysRng);
            let key =
                party.receive_export(&setup, &recipient.secret, &confirmation, &mut rng).await?;
            Ok(ExportedKey {
                private_key: key.secret_key().to_vec(),
                chain_code: key.chain_code().to_vec(),
                public_key: session::compressed(key.public_key()).to_vec(),
                ethereum_address: session::ethereum_address(key.public_key()),
            })
        })
        .await
    }
}
