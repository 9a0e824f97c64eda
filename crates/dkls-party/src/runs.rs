//! Subcommands that run a protocol through the relay: keygen and sign.

use std::path::Path;
use std::time::Instant;

use dkls23_core::setup::ProtocolId;
use dkls23_core::sign::SignRequest;
use dkls23_runner::{run_dkg, run_sign};
use serde_json::json;
use tracing::info;

use crate::args::{RunArgs, SignArgs};
use crate::context::Ctx;
use crate::encoding::hex_array;
use crate::error::{CliError, CliResult};
use crate::output::Output;
use crate::passphrase;
use crate::sealed::KdfParams;
use crate::session::{Session, connect, fresh_guard, refuse_banned};
use crate::setup_file::{self, format_path, parse_path};
use crate::signature::{signature_output, verify};

/// `keygen --setup FILE`.
///
/// # Errors
/// See [`crate::error::ExitCode`].
pub async fn keygen(ctx: &Ctx, args: &RunArgs) -> CliResult<Output> {
    let setup = setup_file::read(&args.setup, ProtocolId::Dkg)?;
    let label = setup_file::keygen_label(&setup)?;
    let session = Session::join(ctx, &setup, "keygen", 4)?;
    let guard = fresh_guard(ctx, &setup)?;
    let pass = passphrase::read(true)?;
    let relay = connect(ctx).await?;
    session.announce(format!(
        "{}-of-{} keygen, session {}, relay {}",
        setup.t(),
        setup.n(),
        session.id,
        ctx.relay_url
    ));
    info!(session = %session.id, party = session.me, "keygen started");
    let started = Instant::now();
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let result = run_dkg(&session.context(&relay, &guard), &setup, &mut rng).await;
    let traffic = session.finish();
    let share = result.map_err(|e| {
        info!(session = %session.id, party = session.me, error = %e, "keygen failed");
        CliError::from_protocol(&e)
    })?;
    let info = ctx.dir.save_share(&share, &label, &pass, KdfParams::default())?;
    info!(session = %session.id, party = session.me, key_id = %info.key_id, "keygen done");
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

/// `sign --setup FILE` (`setup_path`); `sign --presignature` runs `presign::finish` instead.
///
/// # Errors
/// See [`crate::error::ExitCode`].
pub async fn sign(ctx: &Ctx, setup_path: &Path, args: &SignArgs) -> CliResult<Output> {
    let setup = setup_file::read(setup_path, ProtocolId::Sign)?;
    let req = setup_file::sign_request(&setup)?;
    signs_what_was_asked(&req, args)?;
    let session = Session::join(ctx, &setup, "sign", 4)?;
    let guard = fresh_guard(ctx, &setup)?;
    let info = ctx.dir.info(&req.key_id)?;
    if hex_array(&info.keygen_sid) != Some(req.keygen_sid) {
        return Err(CliError::bad_input(
            "the setup names another epoch of this key (it was refreshed since, or this share is stale)",
        )
        .hint("ask for a setup made from the current share (`shares show` prints its epoch)"));
    }
    let key_id = info.key_id_bytes()?;
    refuse_banned(&setup, &ctx.dir.banned(&key_id)?, "sign")?;
    let pass = passphrase::read(false)?;
    let (share, banned) = ctx.dir.load_share_and_bans(&key_id, &pass)?;
    drop(pass);
    refuse_banned(&setup, &banned, "sign")?;
    let derived = dkls23_core::bip32::derive(share.public_key(), share.chain_code(), &req.path)
        .map_err(|e| CliError::bad_input(e.to_string()))?;
    let relay = connect(ctx).await?;
    let signers: Vec<u16> = setup.participants().iter().map(|(i, _)| *i).collect();
    session.announce(format!(
        "signing {} under {} with parties {signers:?}, session {}",
        hex::encode(req.message),
        format_path(&req.path),
        session.id
    ));
    info!(session = %session.id, party = session.me, key_id = %info.key_id, "sign started");
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let run = session.context(&relay, &guard).refusing(banned.clone());
    let result = run_sign(&run, &setup, &share, &mut rng).await;
    session.finish();
    let sig = match result {
        Ok(sig) => sig,
        Err(e) => {
            info!(session = %session.id, party = session.me, error = %e, "sign failed");
            return Err(ctx.dir.protocol_error(Some(&share), &e, Some));
        }
    };
    if !verify(&derived.public_key, &req.message, &sig) {
        return Err(CliError::internal("the combined signature does not verify"));
    }
    info!(session = %session.id, party = session.me, "sign done");
    Ok(signature_output(&sig, &req.message, &derived.public_key, args.format))
}

/// Refuses a sign setup whose message or path differ from the ones given with `sign` (when
/// given).
fn signs_what_was_asked(req: &SignRequest, args: &SignArgs) -> CliResult<()> {
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
    Ok(())
}
