//! `presign` and `sign --presignature`: the offline rounds now, the online round later.
//!
//! A presignature is stored sealed (like a key share) in `presignatures/<setup hash>.presig`,
//! together with the setup it was made with (the online round must use the same setup). It is
//! deleted durably *before* the final round is sent, so a crash or a retry can never use it
//! twice (`protocols.md` §3.6).

use std::path::PathBuf;

use dkls23_core::setup::{ProtocolId, Setup};
use dkls23_core::sign::Presignature;
use dkls23_runner::{run_finish, run_presign};
use serde_json::json;
use tracing::info;

use crate::args::{RunArgs, SignArgs};
use crate::context::Ctx;
use crate::encoding::hex_array;
use crate::error::{CliError, CliResult, ExitCode};
use crate::files;
use crate::output::Output;
use crate::passphrase;
use crate::sealed::{self, KdfParams, SealError};
use crate::session::{Session, connect, fresh_guard, refuse_banned};
use crate::setup_file::{self, format_path, parse_path};
use crate::signature::{signature_output, verify};

const MAX_PRESIG_FILE: u64 = 1024 * 1024;

/// `presign --setup FILE`.
///
/// # Errors
/// See [`ExitCode`].
pub async fn presign(ctx: &Ctx, args: &RunArgs) -> CliResult<Output> {
    let setup = setup_file::read(&args.setup, ProtocolId::Sign)?;
    let req = setup_file::presign_request(&setup)?;
    let session = Session::join(ctx, &setup, "presign", 4)?;
    let info = ctx.dir.info(&req.key_id)?;
    if hex_array(&info.keygen_sid) != Some(req.keygen_sid) {
        return Err(CliError::bad_input("the setup names another epoch of this key")
            .hint("ask for a setup made from the current share (`shares show` prints its epoch)"));
    }
    let key_id = info.key_id_bytes()?;
    refuse_banned(&setup, &ctx.dir.banned(&key_id)?, "presign")?;
    let guard = fresh_guard(ctx, &setup)?;
    let pass = passphrase::read(false)?;
    let (share, banned) = ctx.dir.load_share_and_bans(&key_id, &pass)?;
    refuse_banned(&setup, &banned, "presign")?;
    let relay = connect(ctx).await?;
    session.announce(format!(
        "presigning under {}, session {}",
        format_path(&req.path),
        session.id
    ));
    info!(session = %session.id, party = session.me, "presign started");
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let run = session.context(&relay, &guard).refusing(banned.clone());
    let result = run_presign(&run, &setup, &share, &mut rng).await;
    session.finish();
    let pre = match result {
        Ok(p) => p,
        Err(e) => {
            return Err(ctx.dir.protocol_error(Some(&share), &e, Some));
        }
    };
    let setup_bytes = setup.to_bytes();
    let mut plain = zeroize::Zeroizing::new(Vec::new());
    plain.extend_from_slice(&(setup_bytes.len() as u32).to_be_bytes());
    plain.extend_from_slice(&setup_bytes);
    plain.extend_from_slice(&pre.to_bytes());
    let sealed = sealed::seal(sealed::Kind::Presignature, &plain, &pass, KdfParams::default())
        .map_err(|e| CliError::internal(format!("sealing the presignature: {e}")))?;
    let id = hex::encode(setup.hash());
    let path = ctx.dir.presig_dir().join(format!("{id}.presig"));
    {
        // A directory that came back from a backup loses its old presignatures first, so the
        // new one is stored at the current generation.
        let _lock = ctx.dir.lock()?;
        let wiped = ctx.dir.presig_generation()?.reconcile()?;
        if wiped > 0 && !ctx.quiet {
            eprintln!("{}", restored_warning(wiped));
        }
        files::write_atomic(&path, &sealed, 0o600)?;
    }
    info!(session = %session.id, party = session.me, "presign done");
    Ok(Output {
        text: format!(
            "presignature {id}\nkey id       {}\npath         {}\nsaved to     {}\n",
            info.key_id,
            format_path(&req.path),
            path.display()
        ),
        json: json!({
            "ok": true,
            "presignature": id,
            "key_id": info.key_id,
            "path": format_path(&req.path),
            "file": path.display().to_string(),
        }),
    })
}

fn restored_warning(wiped: u64) -> String {
    format!(
        "this party directory is not at its presignature generation (it was restored from a \
         backup or copied): all {wiped} stored presignature(s) were deleted so that none can be \
         used twice"
    )
}

fn resolve(ctx: &Ctx, what: &str) -> CliResult<PathBuf> {
    let p = PathBuf::from(what);
    if p.is_file() {
        // Only presignatures of this party's directory: its generation guards them.
        let dir = std::fs::canonicalize(ctx.dir.presig_dir()).ok();
        let parent = std::fs::canonicalize(&p).ok().and_then(|f| f.parent().map(PathBuf::from));
        if dir.is_none() || parent != dir {
            return Err(CliError::bad_input(format!(
                "{what} is not in this party's presignature directory {}",
                ctx.dir.presig_dir().display()
            ))
            .hint("use the presignature id printed by `dkls-party presign`"));
        }
        return Ok(p);
    }
    let want = what.trim().to_ascii_lowercase();
    let mut found = Vec::new();
    if want.len() >= 4
        && let Ok(entries) = std::fs::read_dir(ctx.dir.presig_dir())
    {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".presig") && name.starts_with(&want) {
                found.push(e.path());
            }
        }
    }
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(CliError::bad_input(format!("no presignature {what:?} (it may have been used)"))
            .hint("make a new one with `dkls-party presign`")),
        _ => Err(CliError::bad_input(format!("{what:?} matches several presignatures"))
            .hint("give more digits of the presignature id")),
    }
}

/// `sign --presignature ID --message-hex …`: the online round.
///
/// # Errors
/// See [`ExitCode`].
pub async fn finish(ctx: &Ctx, args: &SignArgs) -> CliResult<Output> {
    let Some(which) = &args.presignature else {
        return Err(CliError::bad_input("sign needs --setup or --presignature"));
    };
    let m32 = args.message.prehash()?.ok_or_else(|| {
        CliError::bad_input("signing with a presignature needs the message")
            .hint("pass --message-hex or --message-file (and --hash)")
    })?;
    let lock = ctx.dir.lock()?;
    let generation = ctx.dir.presig_generation()?;
    let wiped = generation.reconcile()?;
    if wiped > 0 {
        return Err(CliError::bad_input(restored_warning(wiped))
            .hint("make new presignatures with `dkls-party presign`"));
    }
    let path = resolve(ctx, which)?;
    let file = files::read_bounded(&path, MAX_PRESIG_FILE, "presignature")?;
    let pass = passphrase::read(false)?;
    let plain = sealed::open(sealed::Kind::Presignature, &file, &pass).map_err(|e| match e {
        SealError::WrongPassphrase => CliError::new(
            ExitCode::WrongPassphrase,
            format!("wrong passphrase for presignature {}", path.display()),
        )
        .hint("set DKLS_PASSPHRASE to the passphrase of this party's key shares"),
        SealError::Corrupted(why) => {
            CliError::corrupted(format!("presignature {} is corrupted: {why}", path.display()))
                .hint("delete it and make a new one with `dkls-party presign`")
        }
        SealError::Crypto(why) => CliError::internal(format!("decrypting: {why}")),
    })?;
    let corrupted = || {
        CliError::corrupted(format!("presignature {} does not decode", path.display()))
            .hint("delete it and make a new one with `dkls-party presign`")
    };
    let (len, rest) = plain.split_at_checked(4).ok_or_else(corrupted)?;
    let len = u32::from_be_bytes(len.try_into().map_err(|_| corrupted())?) as usize;
    let (setup_bytes, pre_bytes) = rest.split_at_checked(len).ok_or_else(corrupted)?;
    let setup = Setup::from_bytes(setup_bytes).map_err(|_| corrupted())?;
    let req = setup_file::presign_request(&setup).map_err(|_| corrupted())?;
    if let Some(p) = &args.path {
        let p = parse_path(p)?;
        if p != req.path {
            return Err(CliError::bad_input(format!(
                "the presignature signs under {}, not {}",
                format_path(&req.path),
                format_path(&p)
            ))
            .hint("use a presignature made for that path"));
        }
    }
    let share = ctx.dir.load_share(&req.key_id, &pass)?;
    let pre = Presignature::from_bytes(pre_bytes, &share).map_err(|e| {
        CliError::corrupted(format!("presignature {}: {e}", path.display()))
            .hint("it belongs to another key or epoch; delete it and presign again")
    })?;
    let pk = *pre.public_key();
    drop(share);
    // Rounds 4 (finish commitments) and 5 (S3) of the presignature's session.
    let session = Session::join(ctx, &setup, "sign", 5)?;
    let relay = connect(ctx).await?;
    let guard = ctx.dir.replay_guard()?;
    // Single use: the generation moves on (outside the directory first) and the presignature
    // is gone from disk before anything is sent; the runner then records its finish marker in
    // the fsynced replay file before its first message.
    generation.bump()?;
    files::remove_durably(&path)?;
    drop(lock);
    session.announce(format!(
        "online round for presignature {}, message hash {}",
        hex::encode(setup.hash().get(..8).unwrap_or_default()),
        hex::encode(m32)
    ));
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let result = run_finish(&session.context(&relay, &guard), &setup, pre, &m32, &mut rng).await;
    session.finish();
    let sig = result.map_err(|e| CliError::from_protocol(&e))?;
    if !verify(&pk, &m32, &sig) {
        return Err(CliError::internal("the combined signature does not verify"));
    }
    Ok(signature_output(&sig, &m32, &pk, args.format))
}
