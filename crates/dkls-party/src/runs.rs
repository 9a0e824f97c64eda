//! Subcommands that run a protocol through the relay: keygen and sign.

use std::time::{Duration, Instant};

use dkls23_core::identity::IdentitySigner;
use dkls23_core::setup::{ProtocolId, Setup};
use dkls23_runner::{RunContext, RunOptions, run_dkg, run_sign};
use msg_relay_client::{ClientConfig, ClientError, WsRelay};
use serde_json::json;
use tracing::info;

use crate::args::{RunArgs, SignArgs};
use crate::context::Ctx;
use crate::encoding::hex_array;
use crate::error::{CliError, CliResult, ExitCode};
use crate::identity_file::public_hex;
use crate::output::Output;
use crate::party_dir::FileReplayGuard;
use crate::passphrase;
use crate::progress::{Progress, party_label};
use crate::sealed::KdfParams;
use crate::setup_file::{self, format_path, parse_path};
use crate::signature::{signature_output, verify};

/// Connects to the relay at `url`, waiting at most `timeout` (capped at 10 s).
///
/// # Errors
/// Bad input for a malformed URL, a relay error if it cannot be reached.
pub async fn connect(url: &str, timeout: Duration) -> CliResult<WsRelay> {
    let cfg = ClientConfig {
        connect_timeout: timeout.min(Duration::from_secs(10)),
        give_up_after: timeout.max(Duration::from_secs(5)),
        ..ClientConfig::default()
    };
    WsRelay::connect(url, cfg).await.map_err(|e| match e {
        ClientError::InvalidUrl { .. } => {
            CliError::bad_input(e.to_string()).hint("set RELAY_URL like http://127.0.0.1:8080")
        }
        other => {
            CliError::new(ExitCode::Relay, format!("cannot reach the relay at {url}: {other}"))
                .hint("start the relay (`msg-relay-svc --listen 127.0.0.1:8080`) or set RELAY_URL")
        }
    })
}

/// This party's index in `setup`, with a clear error if it is not a participant.
pub(crate) fn my_index(setup: &Setup, signer: &dyn IdentitySigner) -> CliResult<u16> {
    let pk = signer.public_key();
    setup.require_member(&pk).map_err(|_| {
        CliError::bad_input(format!(
            "this setup does not include this party (identity {})",
            public_hex(&pk)
        ))
        .hint("check PARTY_ID/DEST/--identity, or ask the coordinator to add this public key")
    })
}

pub(crate) fn check_fresh(guard: &FileReplayGuard, setup: &Setup) -> CliResult<()> {
    if guard.was_used(setup.iid()) {
        return Err(CliError::bad_input(format!(
            "this party already took part in run {} (instance ids are single-use)",
            hex::encode(setup.iid())
        ))
        .hint("ask the coordinator for a new setup file (`dkls-party setup new`)"));
    }
    Ok(())
}

pub(crate) fn opts(ctx: &Ctx, setup: &Setup) -> RunOptions {
    RunOptions {
        round_timeout: ctx.timeout,
        message_ttl: Some(Duration::from_secs(u64::from(setup.ttl_secs()))),
        ..RunOptions::default()
    }
}

pub(crate) fn session(setup: &Setup) -> String {
    hex::encode(setup.iid().get(..8).unwrap_or_default())
}

/// `keygen --setup FILE`.
///
/// # Errors
/// See [`ExitCode`].
pub async fn keygen(ctx: &Ctx, args: &RunArgs) -> CliResult<Output> {
    let setup = setup_file::read(&args.setup, ProtocolId::Dkg)?;
    let label = setup_file::keygen_label(&setup)?;
    let signer = ctx.load_identity()?;
    let me = my_index(&setup, signer.as_ref())?;
    let guard = ctx.dir.replay_guard()?;
    check_fresh(&guard, &setup)?;
    let pass = passphrase::read(true)?;
    let relay = connect(&ctx.relay_url, ctx.timeout).await?;
    let tag = format!("keygen {}", party_label(me));
    if !ctx.quiet {
        eprintln!(
            "[{tag}] {}-of-{} keygen, session {}, relay {}",
            setup.t(),
            setup.n(),
            session(&setup),
            ctx.relay_url
        );
    }
    info!(session = %session(&setup), party = me, "keygen started");
    let progress = Progress::new(&setup, tag.clone(), 4, ctx.quiet);
    let started = Instant::now();
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let result = run_dkg(
        &RunContext::new(&relay, signer, &guard).with_options(progress.options(opts(ctx, &setup))),
        &setup,
        &mut rng,
    )
    .await;
    let traffic = progress.finish();
    let share = result.map_err(|e| {
        info!(session = %session(&setup), party = me, error = %e, "keygen failed");
        CliError::from_protocol(&e)
    })?;
    let info = ctx.dir.save_share(&share, &label, &pass, KdfParams::default())?;
    info!(session = %session(&setup), party = me, key_id = %info.key_id, "keygen done");
    let elapsed = started.elapsed();
    Ok(Output {
        text: format!(
            "key id       {}\npublic key   {}\neth address  {}\nshare        {}-of-{}, party {}, saved to {}\n",
            info.key_id,
            info.public_key,
            info.eth_address,
            info.threshold,
            info.parties,
            info.index,
            ctx.dir.share_path(share.key_id()).display()
        ),
        json: json!({
            "ok": true,
            "key_id": info.key_id,
            "public_key": info.public_key,
            "chain_code": info.chain_code,
            "eth_address": info.eth_address,
            "threshold": info.threshold,
            "parties": info.parties,
            "index": info.index,
            "label": info.label,
            "elapsed_ms": elapsed.as_millis() as u64,
            "bytes_sent": traffic.sent_bytes,
        }),
    })
}

/// `sign --setup FILE`.
///
/// # Errors
/// See [`ExitCode`].
pub async fn sign(ctx: &Ctx, args: &SignArgs) -> CliResult<Output> {
    let Some(setup_path) = &args.setup else {
        return crate::presign::finish(ctx, args).await;
    };
    let setup = setup_file::read(setup_path, ProtocolId::Sign)?;
    let req = setup_file::sign_request(&setup)?;
    if let Some(m32) = args.message.prehash()?
        && m32 != req.message
    {
        return Err(CliError::bad_input(format!(
            "the setup signs message hash {}, not the given message (hash {})",
            hex::encode(req.message),
            hex::encode(m32)
        ))
        .hint("refuse this setup, or check --hash and the message you expect to sign"));
    }
    if let Some(p) = &args.path {
        let p = parse_path(p)?;
        if p != req.path {
            return Err(CliError::bad_input(format!(
                "the setup signs under {}, not {}",
                format_path(&req.path),
                format_path(&p)
            ))
            .hint("refuse this setup, or check --path"));
        }
    }
    let signer = ctx.load_identity()?;
    let me = my_index(&setup, signer.as_ref())?;
    let guard = ctx.dir.replay_guard()?;
    check_fresh(&guard, &setup)?;
    let info = ctx.dir.info(&req.key_id)?;
    if hex_array(&info.keygen_sid) != Some(req.keygen_sid) {
        return Err(CliError::bad_input(
            "the setup names another epoch of this key (it was refreshed since, or this share is stale)",
        )
        .hint("ask for a setup made from the current share (`shares show` prints its epoch)"));
    }
    let key_id = info.key_id_bytes()?;
    let banned = ctx.dir.banned(&key_id)?;
    if let Some(b) = setup.participants().iter().find(|(i, _)| banned.contains(i)) {
        return Err(CliError::bad_input(format!("party {} is banned for this key", b.0))
            .hint("sign with other parties, or replace the banned party with a reshare"));
    }
    let pass = passphrase::read(false)?;
    let (share, banned) = ctx.dir.load_share_and_bans(&key_id, &pass)?;
    drop(pass);
    if let Some(b) = setup.participants().iter().find(|(i, _)| banned.contains(i)) {
        return Err(CliError::bad_input(format!("party {} is banned for this key", b.0))
            .hint("sign with other parties, or replace the banned party with a reshare"));
    }
    let derived = dkls23_core::bip32::derive(share.public_key(), share.chain_code(), &req.path)
        .map_err(|e| CliError::bad_input(e.to_string()))?;
    let relay = connect(&ctx.relay_url, ctx.timeout).await?;
    let tag = format!("sign {}", party_label(me));
    if !ctx.quiet {
        let signers: Vec<u16> = setup.participants().iter().map(|(i, _)| *i).collect();
        eprintln!(
            "[{tag}] signing {} under {} with parties {signers:?}, session {}",
            hex::encode(req.message),
            format_path(&req.path),
            session(&setup)
        );
    }
    info!(session = %session(&setup), party = me, key_id = %info.key_id, "sign started");
    let progress = Progress::new(&setup, tag, 4, ctx.quiet);
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let result = run_sign(
        &RunContext::new(&relay, signer, &guard)
            .with_options(progress.options(opts(ctx, &setup)))
            .refusing(banned.clone()),
        &setup,
        &share,
        &mut rng,
    )
    .await;
    progress.finish();
    let sig = match result {
        Ok(sig) => sig,
        Err(e) => {
            info!(session = %session(&setup), party = me, error = %e, "sign failed");
            return Err(ctx.dir.protocol_error(Some(&share), &e, Some));
        }
    };
    if !verify(&derived.public_key, &req.message, &sig) {
        return Err(CliError::internal("the combined signature does not verify"));
    }
    info!(session = %session(&setup), party = me, "sign done");
    Ok(signature_output(&sig, &req.message, &derived.public_key, args.format))
}
