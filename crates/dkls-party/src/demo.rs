//! `dkls-party demo`: an embedded relay and n parties in one process, each talking to the relay
//! over its own WebSocket connection. Runs a DKG, signs a KECCAK256 message, verifies it with
//! k256, refreshes the shares (same public key), derives a child key and signs under it with
//! the refreshed shares, and prints a report with timings and bytes.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dkls23_core::encoding::point_to_bytes;
use dkls23_core::hashing::{HashAlgorithm, prehash};
use dkls23_core::identity::{Ed25519Identity, IdentityPublicKey, IdentitySigner, SharedSigner};
use dkls23_core::reshare::{ReshareOutcome, ReshareSpec};
use dkls23_core::setup::{MemoryReplayGuard, ProtocolId, Setup};
use dkls23_core::sign::{SignRequest, Signature};
use dkls23_core::{KeyShare, PartyIndex};
use dkls23_runner::{RunContext, RunOptions, run_dkg, run_reshare, run_sign};
use k256::ProjectivePoint;
use msg_relay_client::{ClientConfig, WsRelay};
use msg_relay_svc::testing::TestRelay;
use serde_json::{Value, json};

use crate::args::DemoArgs;
use crate::encoding::eth_address;
use crate::error::{CliError, CliResult};
use crate::output::Output;
use crate::progress::{Progress, Traffic, party_label};
use crate::setup_file::{format_path, random_iid};
use crate::signature::verify;

/// The message the demo signs.
pub const DEMO_MESSAGE: &[u8] = b"hello from dkls-party";

/// Runs the demo.
///
/// # Errors
/// Bad input for an invalid (t, n); any protocol failure (which would be a bug here).
pub async fn run(args: &DemoArgs, quiet: bool) -> CliResult<Output> {
    let (t, n) = (args.threshold, args.parties);
    if t < 2 || t > n || n > 16 {
        return Err(CliError::bad_input(format!("unsupported demo size {t}-of-{n}"))
            .hint("use 2 ≤ threshold ≤ parties ≤ 16"));
    }
    let relay = msg_relay_svc::testing::spawn_relay(msg_relay_svc::RelayConfig::default())
        .await
        .map_err(|e| CliError::internal(format!("cannot start the embedded relay: {e}")))?;
    let demo = Demo::connect(&relay, t, n, quiet).await?;
    let report = demo.tour().await?;
    relay.stop().await;
    if !(report.root_verified && report.child_verified) {
        return Err(CliError::internal("a demo signature did not verify"));
    }
    Ok(Output { text: report.text(), json: report.json() })
}

/// The parties of the demo, each with its own identity, replay guard and WebSocket to the
/// embedded relay.
struct Demo {
    t: u16,
    n: u16,
    quiet: bool,
    parties: Vec<Party>,
    keys: Vec<(PartyIndex, IdentityPublicKey)>,
}

struct Party {
    index: PartyIndex,
    signer: Arc<Ed25519Identity>,
    guard: Arc<MemoryReplayGuard>,
    relay: Arc<WsRelay>,
}

/// The key the DKG made, as every party agrees on it, at its current epoch.
#[derive(Debug, Clone, Copy)]
struct RootKey {
    public_key: ProjectivePoint,
    chain_code: [u8; 32],
    key_id: [u8; 32],
    keygen_sid: [u8; 32],
    epoch: u32,
}

/// How long a step took, and how many bytes each of its parties sent on average.
#[derive(Debug, Clone, Copy)]
struct Cost {
    time: Duration,
    bytes_per_party: usize,
}

/// What every party of one step returned, and its cost.
struct Step<T> {
    outputs: Vec<T>,
    cost: Cost,
}

/// The signature the signers of a sign step agree on, and the step's cost.
struct Signed {
    signature: Signature,
    cost: Cost,
}

/// What one party's task of a step owns: its identity, replay guard and connection, and the
/// options with its progress lines.
struct Seat {
    signer: SharedSigner,
    guard: Arc<MemoryReplayGuard>,
    relay: Arc<WsRelay>,
    options: RunOptions,
}

impl Seat {
    fn context(&self) -> RunContext<'_, WsRelay> {
        RunContext::new(self.relay.as_ref(), self.signer.clone(), self.guard.as_ref())
            .with_options(self.options.clone())
    }
}

fn opts() -> RunOptions {
    RunOptions {
        round_timeout: Duration::from_secs(60),
        message_ttl: None,
        ..RunOptions::default()
    }
}

fn internal(e: impl std::fmt::Display) -> CliError {
    CliError::internal(e.to_string())
}

fn protocol(e: dkls23_core::Error) -> CliError {
    CliError::from_protocol(&e)
}

/// An owned copy of `share` for a task (the runner borrows it for the session).
fn copy(share: &KeyShare) -> CliResult<KeyShare> {
    KeyShare::from_bytes(&share.to_bytes()).map_err(internal)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Demo {
    /// Connects `n` parties, each with a fresh identity, to `relay`.
    async fn connect(relay: &TestRelay, t: u16, n: u16, quiet: bool) -> CliResult<Self> {
        let mut demo = Self { t, n, quiet, parties: Vec::new(), keys: Vec::new() };
        demo.say(format!("demo: relay listening on {} (WebSocket /v1/msg-relay)", relay.url()));
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        for index in 1..=n {
            let client = WsRelay::connect(relay.url(), ClientConfig::default())
                .await
                .map_err(|e| CliError::internal(format!("party {index} cannot connect: {e}")))?;
            demo.parties.push(Party {
                index,
                signer: Arc::new(Ed25519Identity::generate(&mut rng)),
                guard: Arc::new(MemoryReplayGuard::new()),
                relay: Arc::new(client),
            });
        }
        demo.keys = demo.parties.iter().map(|p| (p.index, p.signer.public_key())).collect();
        Ok(demo)
    }

    fn say(&self, line: String) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }

    /// The four steps: keygen, sign, refresh, and sign under a derived key.
    async fn tour(&self) -> CliResult<Report> {
        let (t, n) = (self.t, self.n);
        let keygen = self.keygen().await?;
        let key = RootKey::agreed(&keygen.outputs)?;
        let pk = key.public_key;
        self.say(format!(
            "demo: public key {} ({})",
            hex::encode(point_to_bytes(&pk)),
            eth_address(&pk)
        ));

        let m32 = prehash(HashAlgorithm::Keccak256, DEMO_MESSAGE).map_err(internal)?;
        let signers: Vec<PartyIndex> = (1..=t).collect();
        let root_request = key.request(Vec::new(), m32);
        let root = self.sign(&keygen.outputs, &signers, root_request).await?;
        let root_verified = verify(&pk, &m32, &root.signature);
        self.say(format!("demo: signature by {signers:?} verified with k256: {root_verified}"));

        let refresh = self.refresh(&keygen.outputs).await?;
        let key = key.refreshed(&refresh.outputs)?;
        self.say(format!("demo: refreshed to epoch {}, same public key", key.epoch));

        let child_path = vec![0u32, 1];
        let derived =
            dkls23_core::bip32::derive(&pk, &key.chain_code, &child_path).map_err(internal)?;
        let child_signers: Vec<PartyIndex> = (n - t + 1..=n).collect();
        let child_request = key.request(child_path.clone(), m32);
        let child = self.sign(&refresh.outputs, &child_signers, child_request).await?;
        let child_verified = verify(&derived.public_key, &m32, &child.signature);
        self.say(format!(
            "demo: signature under {} by {child_signers:?} verified with k256: {child_verified}",
            format_path(&child_path)
        ));
        Ok(Report {
            t,
            n,
            public_key: pk,
            message_hash: m32,
            keygen: keygen.cost,
            signers,
            root,
            root_verified,
            refresh: refresh.cost,
            child_path,
            child_key: derived.public_key,
            child_signers,
            child,
            child_verified,
        })
    }

    /// Step 1: a DKG with every party.
    async fn keygen(&self) -> CliResult<Step<KeyShare>> {
        let (t, n) = (self.t, self.n);
        self.say(format!("demo: keygen {t}-of-{n} with {n} parties"));
        let setup = Setup::new(
            ProtocolId::Dkg,
            random_iid()?,
            n,
            t,
            self.keys.clone(),
            b"demo".to_vec(),
            600,
        )
        .map_err(internal)?;
        let everyone = self.parties.iter().map(|p| (p, ())).collect();
        self.run_step(&setup, "keygen", everyone, |seat, setup, ()| async move {
            let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
            run_dkg(&seat.context(), &setup, &mut rng).await.map_err(protocol)
        })
        .await
    }

    /// Step 3: refresh, a reshare to the same committee: same public key, new shares and OT
    /// material (epoch 1).
    async fn refresh(&self, shares: &[KeyShare]) -> CliResult<Step<KeyShare>> {
        self.say("demo: refresh (reshare to the same committee)".into());
        let first = shares.first().ok_or_else(|| CliError::internal("no shares"))?;
        let spec = ReshareSpec::refresh(first).map_err(internal)?;
        let setup = spec.to_setup(random_iid()?, 600).map_err(internal)?;
        let holders = self
            .parties
            .iter()
            .zip(shares)
            .map(|(p, s)| Ok((p, copy(s)?)))
            .collect::<CliResult<_>>()?;
        self.run_step(&setup, "refresh", holders, |seat, setup, share| async move {
            let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
            match run_reshare(&seat.context(), &setup, Some(&share), &mut rng)
                .await
                .map_err(protocol)?
            {
                ReshareOutcome::NewShare(s) => Ok(s),
                ReshareOutcome::Removed => Err(CliError::internal("a party was removed")),
            }
        })
        .await
    }

    /// Steps 2 and 4: `signers` sign `request` with their shares of `shares`.
    async fn sign(
        &self,
        shares: &[KeyShare],
        signers: &[PartyIndex],
        request: SignRequest,
    ) -> CliResult<Signed> {
        let members: Vec<(PartyIndex, IdentityPublicKey)> =
            self.keys.iter().filter(|(i, _)| signers.contains(i)).cloned().collect();
        let n =
            u16::try_from(self.keys.len()).map_err(|_| CliError::internal("too many parties"))?;
        let t = shares.first().map_or(2, KeyShare::threshold);
        let setup =
            Setup::new(ProtocolId::Sign, random_iid()?, n, t, members, request.to_bytes(), 600)
                .map_err(internal)?;
        let mut holders = Vec::new();
        for (p, share) in self.parties.iter().zip(shares) {
            if signers.contains(&p.index) {
                holders.push((p, copy(share)?));
            }
        }
        let step = self
            .run_step(&setup, "sign", holders, |seat, setup, share| async move {
                let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
                run_sign(&seat.context(), &setup, &share, &mut rng).await.map_err(protocol)
            })
            .await?;
        let signature =
            step.outputs.first().cloned().ok_or_else(|| CliError::internal("no signature"))?;
        if step.outputs.iter().any(|s| s != &signature) {
            return Err(CliError::internal("the signers produced different signatures"));
        }
        Ok(Signed { signature, cost: step.cost })
    }

    /// Runs `run` for each party of `inputs` (with its input), each in its own task, and
    /// collects the outputs in that order; stops at the first failure. Only the first party's
    /// progress lines are shown.
    async fn run_step<I, T, F, Fut>(
        &self,
        setup: &Setup,
        name: &str,
        inputs: Vec<(&Party, I)>,
        run: F,
    ) -> CliResult<Step<T>>
    where
        F: Fn(Seat, Setup, I) -> Fut,
        Fut: Future<Output = CliResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        let first = inputs.first().map(|(p, _)| p.index);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (p, input) in inputs {
            let show = !self.quiet && Some(p.index) == first;
            let progress =
                Progress::new(setup, format!("{name} {}", party_label(p.index)), 4, !show);
            let seat = Seat {
                signer: p.signer.clone(),
                guard: p.guard.clone(),
                relay: p.relay.clone(),
                options: progress.options(opts()),
            };
            let party_run = run(seat, setup.clone(), input);
            tasks.push(tokio::spawn(async move { (party_run.await, progress.finish()) }));
        }
        let mut outputs = Vec::new();
        let mut traffic = Vec::new();
        for task in tasks {
            let (output, sent) = task.await.map_err(internal)?;
            outputs.push(output?);
            traffic.push(sent);
        }
        Ok(Step { outputs, cost: Cost::of(started.elapsed(), &traffic) })
    }
}

impl RootKey {
    /// The key of `shares`, checking that every party got the same one.
    fn agreed(shares: &[KeyShare]) -> CliResult<Self> {
        let first = shares.first().ok_or_else(|| CliError::internal("no shares"))?;
        let public_key = *first.public_key();
        if shares.iter().any(|s| s.public_key() != &public_key || s.key_id() != first.key_id()) {
            return Err(CliError::internal("the parties disagree on the public key"));
        }
        Ok(Self {
            public_key,
            chain_code: *first.chain_code(),
            key_id: *first.key_id(),
            keygen_sid: *first.keygen_sid(),
            epoch: first.epoch(),
        })
    }

    /// The same key after a refresh to epoch 1 (checked on the first party's new share), with
    /// the new epoch's session id.
    fn refreshed(&self, shares: &[KeyShare]) -> CliResult<Self> {
        let first = shares.first().ok_or_else(|| CliError::internal("no shares"))?;
        if first.public_key() != &self.public_key
            || first.key_id() != &self.key_id
            || first.epoch() != 1
        {
            return Err(CliError::internal("the refresh changed the key"));
        }
        Ok(Self { keygen_sid: *first.keygen_sid(), epoch: first.epoch(), ..*self })
    }

    fn request(&self, path: Vec<u32>, message: [u8; 32]) -> SignRequest {
        SignRequest { key_id: self.key_id, keygen_sid: self.keygen_sid, path, message }
    }
}

impl Cost {
    fn of(time: Duration, traffic: &[Traffic]) -> Self {
        let sent = traffic.iter().map(|t| t.sent_bytes).sum::<usize>();
        Self { time, bytes_per_party: sent / traffic.len().max(1) }
    }
}

/// Everything the demo prints.
struct Report {
    t: u16,
    n: u16,
    public_key: ProjectivePoint,
    message_hash: [u8; 32],
    keygen: Cost,
    signers: Vec<PartyIndex>,
    root: Signed,
    root_verified: bool,
    refresh: Cost,
    child_path: Vec<u32>,
    child_key: ProjectivePoint,
    child_signers: Vec<PartyIndex>,
    child: Signed,
    child_verified: bool,
}

impl Report {
    fn text(&self) -> String {
        let Self { t, n, .. } = self;
        let row = |step: &str, time: String, bytes: String, detail: String| {
            format!("{step:<16}{time:>11}  {bytes:>13}  {detail}\n")
        };
        let cost_row = |step: &str, cost: &Cost, detail: String| {
            row(step, format!("{:.1} ms", ms(cost.time)), cost.bytes_per_party.to_string(), detail)
        };
        let child_path = format_path(&self.child_path);
        let mut text = format!(
            "dkls-party demo: {t}-of-{n}, all parties in one process, each on its own WebSocket to an embedded relay\n"
        );
        text.push_str(&row("step", "time".into(), "bytes/party".into(), String::new()));
        text.push_str(&cost_row("keygen", &self.keygen, format!("{n} parties, 4 rounds")));
        text.push_str(&cost_row(
            "sign",
            &self.root.cost,
            format!(
                "parties {:?}, KECCAK256(\"{}\")",
                self.signers,
                String::from_utf8_lossy(DEMO_MESSAGE)
            ),
        ));
        text.push_str(&row(
            "verify (k256)",
            "ok".into(),
            String::new(),
            "under the root key".into(),
        ));
        text.push_str(&cost_row(
            "refresh",
            &self.refresh,
            "same committee, same public key, epoch 0 → 1".into(),
        ));
        text.push_str(&cost_row(
            &format!("sign {child_path}"),
            &self.child.cost,
            format!("parties {:?}, verified under the derived key", self.child_signers),
        ));
        text.push_str(&format!(
            "public key      {} ({})\nsignature r‖s‖v {} (under the public key)\nchild {}     {} ({})\nsignature r‖s‖v {} (under the child key)\n",
            hex::encode(point_to_bytes(&self.public_key)),
            eth_address(&self.public_key),
            hex::encode(self.root.signature.to_rsv()),
            child_path,
            hex::encode(point_to_bytes(&self.child_key)),
            eth_address(&self.child_key),
            hex::encode(self.child.signature.to_rsv()),
        ));
        text
    }

    fn json(&self) -> Value {
        json!({
            "ok": true,
            "threshold": self.t,
            "parties": self.n,
            "public_key": hex::encode(point_to_bytes(&self.public_key)),
            "eth_address": eth_address(&self.public_key),
            "keygen_ms": ms(self.keygen.time),
            "keygen_bytes_per_party": self.keygen.bytes_per_party,
            "sign_ms": ms(self.root.cost.time),
            "sign_bytes_per_signer": self.root.cost.bytes_per_party,
            "message": String::from_utf8_lossy(DEMO_MESSAGE),
            "message_hash": hex::encode(self.message_hash),
            "signature_rsv": hex::encode(self.root.signature.to_rsv()),
            "verified": self.root_verified,
            "refresh_ms": ms(self.refresh.time),
            "refresh_bytes_per_party": self.refresh.bytes_per_party,
            "epoch_after_refresh": 1,
            "child_path": format_path(&self.child_path),
            "child_public_key": hex::encode(point_to_bytes(&self.child_key)),
            "child_sign_ms": ms(self.child.cost.time),
            "child_signature_rsv": hex::encode(self.child.signature.to_rsv()),
            "child_verified": self.child_verified,
        })
    }
}
