//! `import` (split an existing private key, `protocols.md` §6.1) and `export` (reconstruct a
//! key to one recipient, §6.2), with their setups.

use std::path::Path;

use dkls23_core::encoding::point_to_bytes;
use dkls23_core::import_export::{EXPORT_CONFIRMATION, ExportRequest, ImportRequest, ImportSecret};
use dkls23_core::setup::{ProtocolId, Setup};
use dkls23_runner::{run_export, run_export_receive, run_import};
use serde_json::json;
use zeroize::Zeroizing;

use crate::args::{ExportArgs, ImportArgs, SetupNewArgs};
use crate::context::Ctx;
use crate::encoding::{eth_address, hex_array};
use crate::error::{CliError, CliResult};
use crate::files;
use crate::identity_file;
use crate::output::Output;
use crate::party_dir::FileReplayGuard;
use crate::passphrase;
use crate::sealed::KdfParams;
use crate::session::{Session, connect, fresh_guard};
use crate::setup_file;

fn invalid(e: &dkls23_core::Error) -> CliError {
    CliError::bad_input(e.to_string())
}

fn parse_cc(s: &str) -> CliResult<[u8; 32]> {
    hex_array(s.trim()).ok_or_else(|| {
        CliError::bad_input("a chain code is 64 hex digits").hint("check --chain-code")
    })
}

/// Reads a private key file: an `xprv…`/`tprv…` string, or 64 hex digits (with `cc`).
fn read_secret(path: &Path, cc: Option<[u8; 32]>) -> CliResult<ImportSecret> {
    let raw = Zeroizing::new(files::read_bounded(path, 4096, "private key file")?);
    let text = Zeroizing::new(String::from_utf8_lossy(&raw).trim().to_owned());
    if text.starts_with("xprv") || text.starts_with("tprv") {
        return ImportSecret::from_xprv(&text).map_err(|e| invalid(&e));
    }
    let mut key = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.as_str(), key.as_mut()).map_err(|_| {
        CliError::bad_input("the private key file holds neither 64 hex digits nor an xprv")
    })?;
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    ImportSecret::new(&key, cc, &mut rng).map_err(|e| invalid(&e))
}

/// `setup new --protocol import --private-key-file F --party PK… --threshold T [--dealer I]`.
///
/// # Errors
/// Bad input for a bad key or committee.
pub fn import_setup(a: &SetupNewArgs) -> CliResult<Output> {
    let iid = setup_file::random_iid()?;
    let file = a.private_key_file.as_deref().ok_or_else(|| {
        CliError::bad_input("an import setup needs --private-key-file")
            .hint("the dealer makes the import setup from the key it holds")
    })?;
    let t = a.threshold.ok_or_else(|| CliError::bad_input("an import needs --threshold"))?;
    let cc = match &a.chain_code {
        Some(c) => parse_cc(c)?,
        None => {
            let mut c = [0u8; 32];
            getrandom::fill(&mut c).map_err(|e| CliError::internal(format!("randomness: {e}")))?;
            c
        }
    };
    let secret = read_secret(file, Some(cc))?;
    let holders = a
        .parties
        .iter()
        .map(|p| identity_file::parse_public_hex(p))
        .collect::<CliResult<Vec<_>>>()?;
    let setup =
        secret.request(a.dealer).to_setup(iid, holders, t, a.ttl_secs).map_err(|e| invalid(&e))?;
    // A plain key's chain code is recorded for the dealer (it becomes public with the key).
    let extra = [("chain_code", json!(hex::encode(cc)))];
    setup_file::write_with(&a.out, &setup, &extra)?;
    let summary = setup_file::summary(&setup);
    Ok(Output {
        text: format!(
            "wrote import setup to {}\n{}\n",
            a.out.display(),
            serde_json::to_string_pretty(&summary).unwrap_or_default()
        ),
        json: json!({"ok": true, "file": a.out.display().to_string(), "setup": summary}),
    })
}

/// `import --setup F [--private-key-file K]`.
///
/// # Errors
/// See [`crate::error::ExitCode`].
pub async fn import(ctx: &Ctx, args: &ImportArgs) -> CliResult<Output> {
    let setup = setup_file::read(&args.setup, ProtocolId::Import)?;
    let req = ImportRequest::from_setup(&setup).map_err(|e| invalid(&e))?;
    let session = Session::join(ctx, &setup, "import", 2)?;
    let guard = fresh_guard(ctx, &setup)?;
    let secret = if session.me == req.dealer {
        let file = args.private_key_file.as_deref().ok_or_else(|| {
            CliError::bad_input("this party is the import dealer and must pass --private-key-file")
        })?;
        let cc = match &args.chain_code {
            Some(c) => Some(parse_cc(c)?),
            None => setup_file::summary_field(&args.setup, "chain_code")?
                .and_then(|v| v.as_str().and_then(hex_array)),
        };
        let s = read_secret(file, cc)?;
        if s.key_id() != req.key_id {
            return Err(CliError::bad_input(
                "the private key (or chain code) does not match the setup",
            )
            .hint("pass the key file and --chain-code the setup was made with"));
        }
        Some(s)
    } else {
        if args.private_key_file.is_some() {
            return Err(CliError::bad_input("only the dealer passes --private-key-file"));
        }
        None
    };
    let pass = passphrase::read(true)?;
    let relay = connect(ctx).await?;
    session.announce(format!(
        "import dealt by party {}, then refresh, session {}",
        req.dealer, session.id
    ));
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let result = run_import(&session.context(&relay, &guard), &setup, secret, &mut rng).await;
    session.finish();
    let share = result.map_err(|e| CliError::from_protocol(&e))?;
    let info = ctx.dir.save_share(&share, "imported", &pass, KdfParams::default())?;
    Ok(Output {
        text: format!(
            "key id       {}\npublic key   {}\neth address  {}\nshare        {}-of-{}, party {}, epoch {}\n",
            info.key_id,
            info.public_key,
            info.eth_address,
            info.threshold,
            info.parties,
            info.index,
            info.epoch
        ),
        json: json!({"ok": true, "key_id": info.key_id, "public_key": info.public_key,
            "eth_address": info.eth_address, "threshold": info.threshold, "parties": info.parties,
            "index": info.index, "epoch": info.epoch}),
    })
}

fn recipient_key_path(ctx: &Ctx) -> std::path::PathBuf {
    ctx.dir.root().join("export-recipient.key")
}

/// `setup new --protocol export --key K --exporters 1,2 --recipient-identity PK --recipient-key X`.
///
/// # Errors
/// Bad input for inconsistent parameters.
pub fn export_setup(ctx: &Ctx, a: &SetupNewArgs) -> CliResult<Output> {
    let iid = setup_file::random_iid()?;
    let key = a.key.as_deref().ok_or_else(|| CliError::bad_input("an export setup needs --key"))?;
    let info = ctx.dir.find(key)?;
    let rid = a.recipient_identity.as_deref().ok_or_else(|| {
        CliError::bad_input("an export setup needs --recipient-identity")
            .hint("the recipient's `identity show`")
    })?;
    let rid = identity_file::parse_public_hex(rid)?;
    let rkey = a.recipient_key.as_deref().and_then(hex_array).ok_or_else(|| {
        CliError::bad_input("an export setup needs --recipient-key (64 hex digits)")
            .hint("the recipient creates it with `dkls-party export --new-recipient-key`")
    })?;
    let pass = passphrase::read(false)?;
    let share = ctx.dir.load_share(&info.key_id_bytes()?, &pass)?;
    let exporters: Vec<u16> = if a.exporters.is_empty() {
        (1..=share.threshold()).collect()
    } else {
        a.exporters.clone()
    };
    let recipient = a.recipient_index.unwrap_or(share.parties().saturating_add(1));
    let req = ExportRequest::new(&share, &exporters, recipient, rkey).map_err(|e| invalid(&e))?;
    let setup = req.to_setup(&share, rid, iid, a.ttl_secs).map_err(|e| invalid(&e))?;
    setup_file::write_new(&a.out, &setup)
}

/// `export --new-recipient-key` or `export --setup F --confirm "…" [--out FILE]`.
///
/// # Errors
/// See [`crate::error::ExitCode`].
pub async fn export(ctx: &Ctx, args: &ExportArgs) -> CliResult<Output> {
    if args.new_recipient_key {
        return new_recipient_key(ctx);
    }
    let Some(setup_path) = &args.setup else {
        return Err(CliError::bad_input("export needs --setup or --new-recipient-key"));
    };
    if args.confirm.as_deref() != Some(EXPORT_CONFIRMATION) {
        return Err(CliError::bad_input("export refused: the key would leave threshold custody")
            .hint(format!("pass --confirm \"{EXPORT_CONFIRMATION}\"")));
    }
    let setup = setup_file::read(setup_path, ProtocolId::Export)?;
    let request = ExportRequest::from_setup(&setup).map_err(|e| invalid(&e))?;
    let session = Session::join(ctx, &setup, "export", 1)?;
    let guard = fresh_guard(ctx, &setup)?;
    let run = ExportRun { setup, request, session, guard };
    if run.session.me == run.request.recipient {
        run.receive(ctx, args.out.as_deref()).await
    } else {
        run.send(ctx).await
    }
}

/// `export --new-recipient-key`: this party's X25519 key to receive an export with.
fn new_recipient_key(ctx: &Ctx) -> CliResult<Output> {
    let path = recipient_key_path(ctx);
    if path.exists() {
        return Err(CliError::bad_input(format!("{} already exists", path.display()))
            .hint("delete it first if you really want a new recipient key"));
    }
    let mut secret = Zeroizing::new([0u8; 32]);
    getrandom::fill(secret.as_mut()).map_err(|e| CliError::internal(format!("randomness: {e}")))?;
    let public = x25519_dalek::x25519(*secret, x25519_dalek::X25519_BASEPOINT_BYTES);
    files::write_atomic(&path, hex::encode(secret.as_ref()).as_bytes(), 0o600)?;
    Ok(Output {
        text: format!("{}\n", hex::encode(public)),
        json: json!({"ok": true, "recipient_key": hex::encode(public), "file": path.display().to_string()}),
    })
}

/// This party's part in one export, joined and checked fresh.
struct ExportRun {
    setup: Setup,
    request: ExportRequest,
    session: Session,
    guard: FileReplayGuard,
}

impl ExportRun {
    /// The recipient: receives the key and writes it to `out`.
    async fn receive(&self, ctx: &Ctx, out: Option<&Path>) -> CliResult<Output> {
        let out = out.ok_or_else(|| {
            CliError::bad_input("the recipient must pass --out FILE for the exported key")
        })?;
        let raw =
            Zeroizing::new(files::read_bounded(&recipient_key_path(ctx), 128, "recipient key")?);
        let mut secret = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(String::from_utf8_lossy(&raw).trim(), secret.as_mut())
            .map_err(|_| CliError::corrupted("the recipient key file is damaged"))?;
        if x25519_dalek::x25519(*secret, x25519_dalek::X25519_BASEPOINT_BYTES)
            != self.request.recipient_key
        {
            return Err(CliError::bad_input(
                "the setup names another recipient key than this party's",
            ));
        }
        let relay = connect(ctx).await?;
        let run = self.session.context(&relay, &self.guard);
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let result =
            run_export_receive(&run, &self.setup, &secret, EXPORT_CONFIRMATION, &mut rng).await;
        self.session.finish();
        let key = result.map_err(|e| CliError::from_protocol(&e))?;
        let pk = *key.public_key();
        let doc = Zeroizing::new(
            serde_json::to_vec_pretty(&json!({
                "private_key": hex::encode(key.secret_key()),
                "chain_code": hex::encode(key.chain_code()),
                "public_key": hex::encode(point_to_bytes(&pk)),
                "threshold_protected": key.is_threshold_protected(),
            }))
            .map_err(|e| CliError::internal(e.to_string()))?,
        );
        files::write_atomic(out, &doc, 0o600)?;
        Ok(Output {
            text: format!(
                "exported key {} ({}) written to {} — it is no longer threshold-protected\n",
                hex::encode(point_to_bytes(&pk)),
                eth_address(&pk),
                out.display()
            ),
            json: json!({"ok": true, "public_key": hex::encode(point_to_bytes(&pk)), "file": out.display().to_string()}),
        })
    }

    /// An exporter: sends its share of the key to the recipient.
    async fn send(&self, ctx: &Ctx) -> CliResult<Output> {
        let info = ctx.dir.info(&self.request.key_id)?;
        let pass = passphrase::read(false)?;
        let share = ctx.dir.load_share(&info.key_id_bytes()?, &pass)?;
        let relay = connect(ctx).await?;
        let run = self.session.context(&relay, &self.guard);
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let result = run_export(&run, &self.setup, &share, EXPORT_CONFIRMATION, &mut rng).await;
        self.session.finish();
        result.map_err(|e| CliError::from_protocol(&e))?;
        Ok(Output {
            text: format!(
                "sent this party's share of key {} to the recipient (party {})\n",
                info.key_id, self.request.recipient
            ),
            json: json!({"ok": true, "key_id": info.key_id, "recipient": self.request.recipient}),
        })
    }
}
