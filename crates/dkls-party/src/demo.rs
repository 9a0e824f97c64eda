//! `dkls-party demo`: an embedded relay and n parties in one process, each talking to the relay
//! over its own WebSocket connection. Runs a DKG, signs a KECCAK256 message, verifies it with
//! k256, refreshes the shares (same public key), derives a child key and signs under it with
//! the refreshed shares, and prints a report with timings and bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dkls23_core::encoding::point_to_bytes;
use dkls23_core::hashing::{HashAlgorithm, prehash};
use dkls23_core::identity::{Ed25519Identity, IdentityPublicKey, IdentitySigner};
use dkls23_core::reshare::{ReshareOutcome, ReshareSpec};
use dkls23_core::setup::{MemoryReplayGuard, ProtocolId, Setup};
use dkls23_core::sign::SignRequest;
use dkls23_core::sign::Signature;
use dkls23_core::{KeyShare, PartyIndex};
use dkls23_runner::{RunContext, RunOptions, run_dkg, run_reshare, run_sign};
use msg_relay_client::{ClientConfig, WsRelay};
use serde_json::json;

use crate::args::DemoArgs;
use crate::encoding::eth_address;
use crate::error::{CliError, CliResult};
use crate::output::Output;
use crate::progress::{Progress, Traffic, party_label};
use crate::setup_file::format_path;
use crate::signature::verify;

/// The message the demo signs.
pub const DEMO_MESSAGE: &[u8] = b"hello from dkls-party";

struct Party {
    index: PartyIndex,
    signer: Arc<Ed25519Identity>,
    guard: Arc<MemoryReplayGuard>,
    relay: Arc<WsRelay>,
}

fn fresh_iid() -> CliResult<[u8; 32]> {
    let mut iid = [0u8; 32];
    getrandom::fill(&mut iid).map_err(|e| CliError::internal(format!("OS randomness: {e}")))?;
    Ok(iid)
}

fn opts() -> RunOptions {
    RunOptions {
        round_timeout: Duration::from_secs(60),
        message_ttl: None,
        ..RunOptions::default()
    }
}

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
    let say = |s: String| {
        if !quiet {
            eprintln!("{s}");
        }
    };
    let relay = msg_relay_svc::testing::spawn_relay(msg_relay_svc::RelayConfig::default())
        .await
        .map_err(|e| CliError::internal(format!("cannot start the embedded relay: {e}")))?;
    say(format!("demo: relay listening on {} (WebSocket /v1/msg-relay)", relay.url()));
    let mut parties = Vec::new();
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    for index in 1..=n {
        let client = WsRelay::connect(relay.url(), ClientConfig::default())
            .await
            .map_err(|e| CliError::internal(format!("party {index} cannot connect: {e}")))?;
        parties.push(Party {
            index,
            signer: Arc::new(Ed25519Identity::generate(&mut rng)),
            guard: Arc::new(MemoryReplayGuard::new()),
            relay: Arc::new(client),
        });
    }
    let keys: Vec<(PartyIndex, IdentityPublicKey)> =
        parties.iter().map(|p| (p.index, p.signer.public_key())).collect();

    // 1. DKG.
    say(format!("demo: keygen {t}-of-{n} with {n} parties"));
    let setup =
        Setup::new(ProtocolId::Dkg, fresh_iid()?, n, t, keys.clone(), b"demo".to_vec(), 600)
            .map_err(|e| CliError::internal(e.to_string()))?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in &parties {
        let (setup, signer, guard, relay) =
            (setup.clone(), p.signer.clone(), p.guard.clone(), p.relay.clone());
        let show = !quiet && p.index == 1;
        let index = p.index;
        tasks.push(tokio::spawn(async move {
            let progress =
                Progress::new(&setup, format!("keygen {}", party_label(index)), 4, !show);
            let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
            let signer: Arc<dyn IdentitySigner + Send + Sync> = signer;
            let r = run_dkg(
                &RunContext::new(relay.as_ref(), signer, guard.as_ref())
                    .with_options(progress.options(opts())),
                &setup,
                &mut rng,
            )
            .await;
            (r, progress.finish())
        }));
    }
    let mut shares: Vec<KeyShare> = Vec::new();
    let mut dkg_traffic = Vec::new();
    for task in tasks {
        let (r, tr) = task.await.map_err(|e| CliError::internal(e.to_string()))?;
        shares.push(r.map_err(|e| CliError::from_protocol(&e))?);
        dkg_traffic.push(tr);
    }
    let dkg_time = started.elapsed();
    let first = shares.first().ok_or_else(|| CliError::internal("no shares"))?;
    let pk = *first.public_key();
    let cc = *first.chain_code();
    if shares.iter().any(|s| s.public_key() != &pk || s.key_id() != first.key_id()) {
        return Err(CliError::internal("the parties disagree on the public key"));
    }
    let key_id = *first.key_id();
    let keygen_sid = *first.keygen_sid();
    say(format!("demo: public key {} ({})", hex::encode(point_to_bytes(&pk)), eth_address(&pk)));

    // 2. Sign with parties 1..=t, KECCAK256.
    let m32 = prehash(HashAlgorithm::Keccak256, DEMO_MESSAGE)
        .map_err(|e| CliError::internal(e.to_string()))?;
    let signers: Vec<PartyIndex> = (1..=t).collect();
    let (sig, sign_time, sign_traffic) =
        sign_with(&parties, &shares, &keys, &signers, key_id, keygen_sid, vec![], m32, quiet)
            .await?;
    let ok_root = verify(&pk, &m32, &sig);
    say(format!("demo: signature by {signers:?} verified with k256: {ok_root}"));

    // 3. Refresh: same committee and public key, new shares and OT material (epoch 1).
    say("demo: refresh (reshare to the same committee)".into());
    let spec = ReshareSpec::refresh(first).map_err(|e| CliError::internal(e.to_string()))?;
    let rs_setup =
        spec.to_setup(fresh_iid()?, 600).map_err(|e| CliError::internal(e.to_string()))?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (p, share) in parties.iter().zip(shares.iter()) {
        let share = KeyShare::from_bytes(&share.to_bytes())
            .map_err(|e| CliError::internal(e.to_string()))?;
        let (setup, signer, guard, relay) =
            (rs_setup.clone(), p.signer.clone(), p.guard.clone(), p.relay.clone());
        let show = !quiet && p.index == 1;
        let index = p.index;
        tasks.push(tokio::spawn(async move {
            let progress =
                Progress::new(&setup, format!("refresh {}", party_label(index)), 4, !show);
            let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
            let signer: Arc<dyn IdentitySigner + Send + Sync> = signer;
            let r = run_reshare(
                &RunContext::new(relay.as_ref(), signer, guard.as_ref())
                    .with_options(progress.options(opts())),
                &setup,
                Some(&share),
                &mut rng,
            )
            .await;
            (r, progress.finish())
        }));
    }
    let mut refreshed: Vec<KeyShare> = Vec::new();
    let mut refresh_traffic = Vec::new();
    for task in tasks {
        let (r, tr) = task.await.map_err(|e| CliError::internal(e.to_string()))?;
        match r.map_err(|e| CliError::from_protocol(&e))? {
            ReshareOutcome::NewShare(s) => refreshed.push(s),
            ReshareOutcome::Removed => return Err(CliError::internal("a party was removed")),
        }
        refresh_traffic.push(tr);
    }
    let refresh_time = started.elapsed();
    let shares = refreshed;
    let first = shares.first().ok_or_else(|| CliError::internal("no shares"))?;
    if first.public_key() != &pk || first.key_id() != &key_id || first.epoch() != 1 {
        return Err(CliError::internal("the refresh changed the key"));
    }
    let keygen_sid = *first.keygen_sid();
    say(format!("demo: refreshed to epoch {}, same public key", first.epoch()));

    // 4. Derive m/0/1 and sign under it with the last t parties.
    let path = vec![0u32, 1];
    let derived = dkls23_core::bip32::derive(&pk, &cc, &path)
        .map_err(|e| CliError::internal(e.to_string()))?;
    let signers2: Vec<PartyIndex> = (n - t + 1..=n).collect();
    let (sig2, sign2_time, sign2_traffic) = sign_with(
        &parties,
        &shares,
        &keys,
        &signers2,
        key_id,
        keygen_sid,
        path.clone(),
        m32,
        quiet,
    )
    .await?;
    let ok_child = verify(&derived.public_key, &m32, &sig2);
    say(format!(
        "demo: signature under {} by {signers2:?} verified with k256: {ok_child}",
        format_path(&path)
    ));
    relay.stop().await;
    if !(ok_root && ok_child) {
        return Err(CliError::internal("a demo signature did not verify"));
    }

    let per_party = |v: &[Traffic]| v.iter().map(|t| t.sent_bytes).sum::<usize>() / v.len().max(1);
    let dkg_bytes = per_party(&dkg_traffic);
    let sign_bytes = per_party(&sign_traffic);
    let child_bytes = per_party(&sign2_traffic);
    let row = |step: &str, time: String, bytes: String, detail: String| {
        format!("{step:<16}{time:>11}  {bytes:>13}  {detail}\n")
    };
    let mut text = format!(
        "dkls-party demo: {t}-of-{n}, all parties in one process, each on its own WebSocket to an embedded relay\n"
    );
    text.push_str(&row("step", "time".into(), "bytes/party".into(), String::new()));
    text.push_str(&row(
        "keygen",
        format!("{:.1} ms", ms(dkg_time)),
        dkg_bytes.to_string(),
        format!("{n} parties, 4 rounds"),
    ));
    text.push_str(&row(
        "sign",
        format!("{:.1} ms", ms(sign_time)),
        sign_bytes.to_string(),
        format!("parties {signers:?}, KECCAK256(\"{}\")", String::from_utf8_lossy(DEMO_MESSAGE)),
    ));
    text.push_str(&row("verify (k256)", "ok".into(), String::new(), "under the root key".into()));
    text.push_str(&row(
        "refresh",
        format!("{:.1} ms", ms(refresh_time)),
        per_party(&refresh_traffic).to_string(),
        "same committee, same public key, epoch 0 → 1".into(),
    ));
    text.push_str(&row(
        &format!("sign {}", format_path(&path)),
        format!("{:.1} ms", ms(sign2_time)),
        child_bytes.to_string(),
        format!("parties {signers2:?}, verified under the derived key"),
    ));
    text.push_str(&format!(
        "public key      {} ({})\nsignature r‖s‖v {} (under the public key)\nchild {}     {} ({})\nsignature r‖s‖v {} (under the child key)\n",
        hex::encode(point_to_bytes(&pk)),
        eth_address(&pk),
        hex::encode(sig.to_rsv()),
        format_path(&path),
        hex::encode(point_to_bytes(&derived.public_key)),
        eth_address(&derived.public_key),
        hex::encode(sig2.to_rsv()),
    ));
    let json = json!({
        "ok": true,
        "threshold": t,
        "parties": n,
        "public_key": hex::encode(point_to_bytes(&pk)),
        "eth_address": eth_address(&pk),
        "keygen_ms": ms(dkg_time),
        "keygen_bytes_per_party": dkg_bytes,
        "sign_ms": ms(sign_time),
        "sign_bytes_per_signer": sign_bytes,
        "message": String::from_utf8_lossy(DEMO_MESSAGE),
        "message_hash": hex::encode(m32),
        "signature_rsv": hex::encode(sig.to_rsv()),
        "verified": ok_root,
        "refresh_ms": ms(refresh_time),
        "refresh_bytes_per_party": per_party(&refresh_traffic),
        "epoch_after_refresh": 1,
        "child_path": format_path(&path),
        "child_public_key": hex::encode(point_to_bytes(&derived.public_key)),
        "child_sign_ms": ms(sign2_time),
        "child_signature_rsv": hex::encode(sig2.to_rsv()),
        "child_verified": ok_child,
    });
    Ok(Output { text, json })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[allow(clippy::too_many_arguments)]
async fn sign_with(
    parties: &[Party],
    shares: &[KeyShare],
    keys: &[(PartyIndex, IdentityPublicKey)],
    signers: &[PartyIndex],
    key_id: [u8; 32],
    keygen_sid: [u8; 32],
    path: Vec<u32>,
    m32: [u8; 32],
    quiet: bool,
) -> CliResult<(Signature, Duration, Vec<Traffic>)> {
    let req = SignRequest { key_id, keygen_sid, path, message: m32 };
    let members: Vec<(PartyIndex, IdentityPublicKey)> =
        keys.iter().filter(|(i, _)| signers.contains(i)).cloned().collect();
    let n = u16::try_from(keys.len()).map_err(|_| CliError::internal("too many parties"))?;
    let t = shares.first().map_or(2, KeyShare::threshold);
    let setup = Setup::new(ProtocolId::Sign, fresh_iid()?, n, t, members, req.to_bytes(), 600)
        .map_err(|e| CliError::internal(e.to_string()))?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (p, share) in parties.iter().zip(shares) {
        if !signers.contains(&p.index) {
            continue;
        }
        // Each task owns a copy of its share (the runner borrows it for the session).
        let share = KeyShare::from_bytes(&share.to_bytes())
            .map_err(|e| CliError::internal(e.to_string()))?;
        let (setup, signer, guard, relay) =
            (setup.clone(), p.signer.clone(), p.guard.clone(), p.relay.clone());
        let show = !quiet && Some(&p.index) == signers.first();
        let index = p.index;
        tasks.push(tokio::spawn(async move {
            let progress = Progress::new(&setup, format!("sign {}", party_label(index)), 4, !show);
            let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
            let signer: Arc<dyn IdentitySigner + Send + Sync> = signer;
            let r = run_sign(
                &RunContext::new(relay.as_ref(), signer, guard.as_ref())
                    .with_options(progress.options(opts())),
                &setup,
                &share,
                &mut rng,
            )
            .await;
            (r, progress.finish())
        }));
    }
    let mut sigs = Vec::new();
    let mut traffic = Vec::new();
    for task in tasks {
        let (r, tr) = task.await.map_err(|e| CliError::internal(e.to_string()))?;
        sigs.push(r.map_err(|e| CliError::from_protocol(&e))?);
        traffic.push(tr);
    }
    let elapsed = started.elapsed();
    let sig = sigs.first().cloned().ok_or_else(|| CliError::internal("no signature"))?;
    if sigs.iter().any(|s| s != &sig) {
        return Err(CliError::internal("the signers produced different signatures"));
    }
    Ok((sig, elapsed, traffic))
}
