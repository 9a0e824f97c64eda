//! One party's message-layer state for one execution: identities, ephemeral key, per-peer
//! channels and the record of accepted messages.

use std::collections::{BTreeMap, HashMap};

use subtle::ConstantTimeEq;
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::identity::{
    IdentityError, IdentityPublicKey, SIGNATURE_LEN, SharedSigner, Signature, normalize_signature,
};
use crate::setup::{PartyIndex, ProtocolId, ReplayGuard, Setup};

use super::channel::{AEAD_FOOTER_LEN, Channel, EphemeralKey, X25519_LEN, nonce_counter};
use super::envelope::{
    ABORT_PAYLOAD_LEN, ABORT_ROUND, AbortNotice, EquivocationEvidence, Evidence, HEADER_LEN,
    Header, Kind, content_digest, mid, signing_input,
};
use super::{MAX_MESSAGE_LEN, MessageError};

/// Whether a p2p message carries the sender's inner signature (complaint mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum P2pMode {
    /// Encrypted and authenticated only.
    Plain,
    /// Complaint mode: the plaintext also carries `σ'` so the receiver can publish evidence.
    Signed,
}

/// What the caller waits for: sender, round, kind and the largest acceptable payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    from: PartyIndex,
    round: u16,
    kind: Kind,
    max_payload: usize,
    mode: P2pMode,
}

impl Expect {
    /// A signed broadcast of `round` from `from`, payload at most `max_payload` bytes.
    pub fn broadcast(from: PartyIndex, round: u16, max_payload: usize) -> Self {
        Self { from, round, kind: Kind::Broadcast, max_payload, mode: P2pMode::Plain }
    }

    /// A p2p message of `round` from `from` to us.
    pub fn p2p(from: PartyIndex, round: u16, max_payload: usize, mode: P2pMode) -> Self {
        Self { from, round, kind: Kind::P2p, max_payload, mode }
    }

    /// An abort message from `from` (any time).
    pub fn abort(from: PartyIndex) -> Self {
        Self {
            from,
            round: ABORT_ROUND,
            kind: Kind::Abort,
            max_payload: ABORT_PAYLOAD_LEN,
            mode: P2pMode::Plain,
        }
    }

    /// The largest wire length this expectation admits, and the smallest that can be
    /// authenticated at all (shorter plaintexts inside a valid AEAD are the sender's fault).
    fn bounds(&self) -> (usize, usize) {
        let (min, overhead) = match (self.kind, self.mode) {
            (Kind::Broadcast | Kind::Abort, _) => (SIGNATURE_LEN, SIGNATURE_LEN),
            (Kind::P2p, P2pMode::Plain) => (AEAD_FOOTER_LEN, AEAD_FOOTER_LEN),
            (Kind::P2p, P2pMode::Signed) => (AEAD_FOOTER_LEN, AEAD_FOOTER_LEN + SIGNATURE_LEN),
        };
        let max = (HEADER_LEN + overhead).saturating_add(self.max_payload).min(MAX_MESSAGE_LEN);
        (max, HEADER_LEN + min)
    }
}

/// An accepted message.
pub struct Received {
    from: PartyIndex,
    header: Header,
    payload: Zeroizing<Vec<u8>>,
    evidence: Option<Evidence>,
    abort: Option<AbortNotice>,
}

impl Received {
    /// The sender.
    pub fn from(&self) -> PartyIndex {
        self.from
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The payload (p2p payloads may be secret; the buffer is zeroized on drop).
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Takes the payload.
    pub fn into_payload(self) -> Zeroizing<Vec<u8>> {
        self.payload
    }

    /// Transferable evidence of what the sender signed (broadcasts, aborts, complaint-mode p2p).
    pub fn evidence(&self) -> Option<&Evidence> {
        self.evidence.as_ref()
    }

    /// The decoded abort notice, for an abort message.
    pub fn abort(&self) -> Option<AbortNotice> {
        self.abort
    }
}

impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Received")
            .field("from", &self.from)
            .field("header", &self.header)
            .field("payload_len", &self.payload.len())
            .field("abort", &self.abort)
            .finish_non_exhaustive()
    }
}

struct Seen {
    digest: [u8; 32],
    evidence: Option<Evidence>,
}

struct Peer {
    key: IdentityPublicKey,
    channel: Option<Channel>,
    seen: HashMap<[u8; 32], Seen>,
}

/// A party's message layer for one execution. Secrets (ephemeral key, directional keys,
/// retained p2p evidence) are zeroized on drop.
///
/// Usage: create with [`Session::new`] (which checks membership and the replay guard); put [`Session::ephemeral_public`] into the round-1 broadcast; after round 1 call
/// [`Session::establish`] for every peer with its authenticated `E_j`; then send with
/// [`Session::broadcast`] / [`Session::send_p2p`] / [`Session::abort`] and feed everything the
/// relay delivers to [`Session::receive`]. A party treats its own broadcast as received: keep
/// the payload you sent rather than asking the relay for it.
pub struct Session {
    iid: [u8; 32],
    protocol: ProtocolId,
    setup_hash: [u8; 32],
    me: PartyIndex,
    my_key: IdentityPublicKey,
    signer: SharedSigner,
    ephemeral: EphemeralKey,
    peers: BTreeMap<PartyIndex, Peer>,
}

impl ZeroizeOnDrop for Session {}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("protocol", &self.protocol)
            .field("me", &self.me)
            .field("peers", &self.peers.keys().collect::<Vec<_>>())
            .field("secrets", &"<redacted>")
            .finish()
    }
}

impl Session {
    /// Starts the message layer for `setup` as the participant whose identity `signer` holds,
    /// with a fresh ephemeral X25519 key from `rng`. The setup's instance id is recorded in
    /// `guard` first, so an instance id can start at most one session per guard.
    ///
    /// # Errors
    /// [`MessageError::NotAParticipant`] if the signer's key is not in the setup;
    /// [`MessageError::Replay`] if `guard` refuses the instance id.
    pub fn new(
        setup: &Setup,
        signer: SharedSigner,
        guard: &(impl ReplayGuard + ?Sized),
        rng: &mut (impl rand_core::CryptoRng + ?Sized),
    ) -> Result<Self, MessageError> {
        let my_key = signer.public_key();
        setup.my_index(&my_key).ok_or(MessageError::NotAParticipant)?;
        guard.check_and_record(setup.iid()).map_err(MessageError::Replay)?;
        Self::resume(setup, signer, rng)
    }

    /// Re-opens the message layer of an execution that already started under this party's
    /// replay guard — e.g. the final signing round of a stored presignature, possibly in another
    /// process. It does **not** consult the replay guard (the instance id was recorded when the
    /// execution began), so callers must only use it with state that is itself single-use.
    /// The fresh ephemeral key is unrelated to the original one: use it for broadcasts only.
    ///
    /// # Errors
    /// [`MessageError::NotAParticipant`] if the signer's key is not in the setup.
    pub fn resume(
        setup: &Setup,
        signer: SharedSigner,
        rng: &mut (impl rand_core::CryptoRng + ?Sized),
    ) -> Result<Self, MessageError> {
        let my_key = signer.public_key();
        let me = setup.my_index(&my_key).ok_or(MessageError::NotAParticipant)?;
        let peers = setup
            .participants()
            .iter()
            .filter(|(i, _)| *i != me)
            .map(|(i, k)| (*i, Peer { key: *k, channel: None, seen: HashMap::new() }))
            .collect();
        Ok(Self {
            iid: *setup.iid(),
            protocol: setup.protocol(),
            setup_hash: *setup.hash(),
            me,
            my_key,
            signer,
            ephemeral: EphemeralKey::generate(rng),
            peers,
        })
    }

    /// Our index.
    pub fn my_index(&self) -> PartyIndex {
        self.me
    }

    /// The setup hash this session is bound to.
    pub fn setup_hash(&self) -> &[u8; 32] {
        &self.setup_hash
    }

    /// Our ephemeral X25519 public key `E_i`, for the signed round-1 broadcast.
    pub fn ephemeral_public(&self) -> [u8; X25519_LEN] {
        self.ephemeral.public_bytes()
    }

    /// Peer indices, ascending.
    pub fn peers(&self) -> impl Iterator<Item = PartyIndex> + '_ {
        self.peers.keys().copied()
    }

    fn key_of(&self, index: PartyIndex) -> Result<&IdentityPublicKey, MessageError> {
        if index == self.me {
            return Ok(&self.my_key);
        }
        self.peers.get(&index).map(|p| &p.key).ok_or(MessageError::UnknownParty(index))
    }

    /// The `mid` of the message `from` sends to `to` (`None` = broadcast) in `round`.
    ///
    /// # Errors
    /// [`MessageError::UnknownParty`] for an index not in the setup.
    pub fn mid(
        &self,
        from: PartyIndex,
        to: Option<PartyIndex>,
        round: u16,
    ) -> Result<[u8; 32], MessageError> {
        let sender = self.key_of(from)?;
        let receiver = to.map(|j| self.key_of(j)).transpose()?;
        Ok(mid(&self.iid, sender, receiver, self.protocol, round))
    }

    /// Derives the directional keys with `peer` from its authenticated ephemeral key `E_j`.
    ///
    /// # Errors
    /// [`MessageError::NonContributoryKey`] (blames the peer) for a low-order `E_j`;
    /// [`MessageError::UnknownParty`] / [`MessageError::ChannelAlreadyEstablished`] on misuse.
    pub fn establish(
        &mut self,
        peer: PartyIndex,
        peer_ephemeral: &[u8; X25519_LEN],
    ) -> Result<(), MessageError> {
        let p = self.peers.get_mut(&peer).ok_or(MessageError::UnknownParty(peer))?;
        if p.channel.is_some() {
            return Err(MessageError::ChannelAlreadyEstablished(peer));
        }
        let ch = Channel::derive(&self.setup_hash, self.me, &self.ephemeral, peer, peer_ephemeral)
            .map_err(|_| MessageError::NonContributoryKey { party: peer })?;
        p.channel = Some(ch);
        Ok(())
    }

    /// Signs `hdr ‖ payload` with our identity, checking the result before it leaves.
    fn sign(
        &self,
        hdr: &[u8; HEADER_LEN],
        kind: Kind,
        payload: &[u8],
    ) -> Result<Signature, MessageError> {
        let input = signing_input(hdr, kind, payload);
        let sig = self.signer.sign(&input).map_err(MessageError::Signer)?;
        let sig = normalize_signature(&self.my_key, sig);
        if !self.my_key.verify(&input, &sig) {
            return Err(MessageError::Signer(IdentityError::Signer(
                "signature does not verify under the identity key".into(),
            )));
        }
        Ok(sig)
    }

    fn signed_message(
        &self,
        kind: Kind,
        round: u16,
        payload: &[u8],
    ) -> Result<Vec<u8>, MessageError> {
        let max = MAX_MESSAGE_LEN - HEADER_LEN - SIGNATURE_LEN;
        if payload.len() > max {
            return Err(MessageError::PayloadTooLarge { len: payload.len(), max });
        }
        let hdr = Header { mid: mid(&self.iid, &self.my_key, None, self.protocol, round), kind }
            .to_bytes();
        let sig = self.sign(&hdr, kind, payload)?;
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + SIGNATURE_LEN);
        out.extend_from_slice(&hdr);
        out.extend_from_slice(payload);
        out.extend_from_slice(&sig.0);
        Ok(out)
    }

    /// A signed broadcast `hdr ‖ payload ‖ σ` for `round`.
    ///
    /// # Errors
    /// [`MessageError::ReservedRound`] for `round == ABORT_ROUND`;
    /// [`MessageError::PayloadTooLarge`]; [`MessageError::Signer`] if signing fails.
    pub fn broadcast(&self, round: u16, payload: &[u8]) -> Result<Vec<u8>, MessageError> {
        if round == ABORT_ROUND {
            return Err(MessageError::ReservedRound(round));
        }
        self.signed_message(Kind::Broadcast, round, payload)
    }

    /// A signed abort message (kind 2, round [`ABORT_ROUND`]).
    ///
    /// # Errors
    /// [`MessageError::Signer`] if signing fails.
    pub fn abort(&self, notice: AbortNotice) -> Result<Vec<u8>, MessageError> {
        self.signed_message(Kind::Abort, ABORT_ROUND, &notice.to_bytes())
    }

    /// An encrypted p2p message `hdr ‖ ct ‖ tag ‖ nonce` to `to` for `round`.
    ///
    /// # Errors
    /// [`MessageError::ChannelNotEstablished`], [`MessageError::UnknownParty`],
    /// [`MessageError::PayloadTooLarge`], [`MessageError::NonceExhausted`],
    /// [`MessageError::Signer`] (complaint mode).
    pub fn send_p2p(
        &mut self,
        to: PartyIndex,
        round: u16,
        payload: &[u8],
        mode: P2pMode,
    ) -> Result<Vec<u8>, MessageError> {
        let max = MAX_MESSAGE_LEN - HEADER_LEN - AEAD_FOOTER_LEN - SIGNATURE_LEN;
        if payload.len() > max {
            return Err(MessageError::PayloadTooLarge { len: payload.len(), max });
        }
        let receiver = *self.key_of(to)?;
        if to == self.me {
            return Err(MessageError::UnknownParty(to));
        }
        let hdr = Header {
            mid: mid(&self.iid, &self.my_key, Some(&receiver), self.protocol, round),
            kind: Kind::P2p,
        }
        .to_bytes();
        let mut pt = Zeroizing::new(Vec::with_capacity(payload.len() + SIGNATURE_LEN));
        pt.extend_from_slice(payload);
        if mode == P2pMode::Signed {
            let sig = self.sign(&hdr, Kind::P2p, payload)?;
            pt.extend_from_slice(&sig.0);
        }
        let peer = self.peers.get_mut(&to).ok_or(MessageError::UnknownParty(to))?;
        let channel = peer.channel.as_mut().ok_or(MessageError::ChannelNotEstablished(to))?;
        let body = channel.seal(&hdr, &pt).ok_or(MessageError::NonceExhausted(to))?;
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(&hdr);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Applies the receive rules to `raw` (see the module docs).
    ///
    /// Returns `Ok(Some(_))` for a newly accepted message, `Ok(None)` to drop it and keep
    /// waiting (unexpected, unauthenticated, oversize, or a duplicate of accepted content).
    ///
    /// # Errors
    /// Blame errors ([`MessageError::culprit`] is the sender) for authenticated misbehaviour;
    /// [`MessageError::UnknownParty`] / [`MessageError::ChannelNotEstablished`] on misuse.
    pub fn receive(
        &mut self,
        raw: &[u8],
        expect: &Expect,
    ) -> Result<Option<Received>, MessageError> {
        let from = expect.from;
        let sender =
            *self.peers.get(&from).map(|p| &p.key).ok_or(MessageError::UnknownParty(from))?;
        let (max_len, min_len) = expect.bounds();
        // Rule 4: size bound before allocating or decrypting.
        if raw.len() > max_len || raw.len() < min_len {
            return Ok(None);
        }
        let (hdr_slice, rest) = raw.split_at(HEADER_LEN);
        let Ok(hdr) = <[u8; HEADER_LEN]>::try_from(hdr_slice) else { return Ok(None) };
        let Ok(header) = Header::from_bytes(&hdr) else { return Ok(None) };
        let receiver = (expect.kind == Kind::P2p).then_some(&self.my_key);
        let want = mid(&self.iid, &sender, receiver, self.protocol, expect.round);
        if header.kind != expect.kind || header.mid != want {
            return Ok(None);
        }
        match expect.kind {
            Kind::Broadcast | Kind::Abort => self.receive_signed(from, sender, header, &hdr, rest),
            Kind::P2p => self.receive_p2p(from, sender, header, &hdr, rest, expect.mode),
        }
    }

    fn receive_signed(
        &mut self,
        from: PartyIndex,
        sender: IdentityPublicKey,
        header: Header,
        hdr: &[u8; HEADER_LEN],
        rest: &[u8],
    ) -> Result<Option<Received>, MessageError> {
        let Some(split) = rest.len().checked_sub(SIGNATURE_LEN) else { return Ok(None) };
        let (payload, sig) = rest.split_at(split);
        let Ok(sig) = Signature::from_slice(sig) else { return Ok(None) };
        // Rule 1: a bad signature is dropped, never an abort.
        if !sender.verify(&signing_input(hdr, header.kind, payload), &sig) {
            return Ok(None);
        }
        let abort = if header.kind == Kind::Abort {
            let notice = AbortNotice::from_bytes(payload).map_err(|_| MessageError::Malformed {
                party: from,
                reason: "abort payload is not 4 bytes",
            })?;
            if let Some(a) = notice.accused
                && a != self.me
                && !self.peers.contains_key(&a)
            {
                return Err(MessageError::Malformed {
                    party: from,
                    reason: "abort accuses a non-participant",
                });
            }
            Some(notice)
        } else {
            None
        };
        let evidence = Evidence::new(sender, header, payload, sig);
        if !self.record(from, hdr, payload, Some(evidence.clone()), None)? {
            return Ok(None);
        }
        Ok(Some(Received {
            from,
            header,
            payload: Zeroizing::new(payload.to_vec()),
            evidence: Some(evidence),
            abort,
        }))
    }

    fn receive_p2p(
        &mut self,
        from: PartyIndex,
        sender: IdentityPublicKey,
        header: Header,
        hdr: &[u8; HEADER_LEN],
        body: &[u8],
        mode: P2pMode,
    ) -> Result<Option<Received>, MessageError> {
        let peer = self.peers.get(&from).ok_or(MessageError::UnknownParty(from))?;
        let channel = peer.channel.as_ref().ok_or(MessageError::ChannelNotEstablished(from))?;
        // Rule 1: a bad tag (wrong key, tampering, another session) is dropped.
        let Some((mut pt, nonce)) = channel.open(hdr, body) else { return Ok(None) };
        // From here on the message is authenticated as coming from `from`.
        let counter = nonce_counter(&nonce)
            .ok_or(MessageError::Malformed { party: from, reason: "malformed nonce" })?;
        let evidence = match mode {
            P2pMode::Plain => None,
            P2pMode::Signed => {
                let split = pt.len().checked_sub(SIGNATURE_LEN).ok_or(MessageError::Malformed {
                    party: from,
                    reason: "complaint-mode plaintext lacks its signature",
                })?;
                let sig = Signature::from_slice(pt.get(split..).unwrap_or_default())
                    .map_err(|_| MessageError::BadInnerSignature { party: from })?;
                pt.truncate(split);
                if !sender.verify(&signing_input(hdr, Kind::P2p, &pt), &sig) {
                    return Err(MessageError::BadInnerSignature { party: from });
                }
                Some(Evidence::new(sender, header, &pt, sig))
            }
        };
        if !self.record(from, hdr, &pt, evidence.clone(), Some(counter))? {
            return Ok(None);
        }
        Ok(Some(Received { from, header, payload: pt, evidence, abort: None }))
    }

    /// Records an authenticated message. `Ok(false)` for a duplicate of accepted content;
    /// equivocation and nonce reuse blame the sender.
    fn record(
        &mut self,
        from: PartyIndex,
        hdr: &[u8; HEADER_LEN],
        payload: &[u8],
        evidence: Option<Evidence>,
        nonce: Option<u64>,
    ) -> Result<bool, MessageError> {
        let digest = content_digest(hdr, payload);
        let peer = self.peers.get_mut(&from).ok_or(MessageError::UnknownParty(from))?;
        let mut mid_key = [0u8; 32];
        if let Some(m) = hdr.get(..32) {
            mid_key.copy_from_slice(m);
        }
        if let Some(prev) = peer.seen.get(&mid_key) {
            if bool::from(prev.digest.ct_eq(&digest)) {
                return Ok(false);
            }
            let proof = match (&prev.evidence, evidence) {
                (Some(first), Some(second)) => {
                    Some(Box::new(EquivocationEvidence { first: first.clone(), second }))
                }
                _ => None,
            };
            return Err(MessageError::Equivocation { party: from, evidence: proof });
        }
        if let (Some(c), Some(ch)) = (nonce, peer.channel.as_mut()) {
            if ch.recv_nonce_used(c) {
                return Err(MessageError::NonceReuse { party: from });
            }
            ch.mark_recv_nonce(c);
        }
        peer.seen.insert(mid_key, Seen { digest, evidence });
        Ok(true)
    }

    #[cfg(test)]
    pub(crate) fn channel(&self, peer: PartyIndex) -> Option<&Channel> {
        self.peers.get(&peer).and_then(|p| p.channel.as_ref())
    }

    #[cfg(test)]
    pub(crate) fn channel_mut(&mut self, peer: PartyIndex) -> Option<&mut Channel> {
        self.peers.get_mut(&peer).and_then(|p| p.channel.as_mut())
    }
}
