//! `presign` and `sign --presignature`: the offline rounds now, the online round later.
//!
//! A presignature is stored sealed (like a key share) in `presignatures/<setup hash>.presig`,
//! together with the setup it was made with (the online round must use the same setup; see
//! [`crate::presig_file`]). It is deleted durably *before* the final round is sent, so a crash
//! or a retry can never use it twice (`protocols.md` §3.6).

use dkls23_core::setup::ProtocolId;
use dkls23_runner::{run_finish, run_presign};
use serde_json::json;
use tracing::info;

use crate::args::{RunArgs, SignArgs};
use crate::context::Ctx;
use crate::encoding::hex_array;
use crate::error::{CliError, CliResult};
use crate::files;
use crate::output::Output;
use crate::passphrase;
use crate::presig_file;
use crate::session::{Session, connect, fresh_guard, refuse_banned};
use crate::setup_file::{self, format_path, parse_path};
use crate::signature::{signature_output, verify};

/// `presign --setup FILE`.
///
/// # Errors
/// See [`crate::error::ExitCode`].
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
    let sealed = presig_file::seal(&setup, &pre, &pass)?;
    let id = presig_file::id(&setup);
    let path = presig_file::path(&ctx.dir.presig_dir(), &id);
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

/// `sign --presignature ID --message-hex …`: the online round.
///
/// # Errors
/// See [`crate::error::ExitCode`].
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
    let path = presig_file::resolve(&ctx.dir.presig_dir(), which)?;
    let file = presig_file::read(&path)?;
    let pass = passphrase::read(false)?;
    let stored = presig_file::open(&path, &file, &pass)?;
    let (setup, req) = (&stored.setup, &stored.request);
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
    let pre = stored.presignature(&share)?;
    let pk = *pre.public_key();
    drop(share);
    // Rounds 4 (finish commitments) and 5 (S3) of the presignature's session.
    let session = Session::join(ctx, setup, "sign", 5)?;
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
    let result = run_finish(&session.context(&relay, &guard), setup, pre, &m32, &mut rng).await;
    session.finish();
    let sig = result.map_err(|e| CliError::from_protocol(&e))?;
    if !verify(&pk, &m32, &sig) {
        return Err(CliError::internal("the combined signature does not verify"));
    }
    Ok(signature_output(&sig, &m32, &pk, args.format))
}
