//! Subcommands that need no relay: identity, setup, shares, derive.

use dkls23_core::bip32::{Network, Xpub};
use dkls23_core::encoding::point_to_bytes;
use dkls23_core::identity::IdentityPublicKey;
use dkls23_core::setup::{ProtocolId, Setup, SetupError};
use dkls23_core::sign::{PresignRequest, SignRequest};
use serde_json::json;

use crate::args::{DeriveArgs, DeriveFormat, SetupNewArgs, SetupProtocol};
use crate::context::Ctx;
use crate::encoding::{eth_address, hex_array};
use crate::error::{CliError, CliResult};
use crate::files;
use crate::identity_file::{self, IdentityKind, kind_name, public_hex};
use crate::output::{Output, set_field};
use crate::setup_file::{self, MAX_LABEL, format_path, parse_path};

/// Generates the identity key.
///
/// # Errors
/// Bad input if one exists and `force` is not set.
pub fn identity_new(ctx: &Ctx, kind: IdentityKind, force: bool) -> CliResult<Output> {
    if ctx.identity_path.exists() && !force {
        return Err(CliError::bad_input(format!(
            "identity file {} already exists",
            ctx.identity_path.display()
        ))
        .hint(
            "use it (`identity show`), pick another PARTY_ID/DEST, or pass --force to replace it",
        ));
    }
    let (pem, public) = identity_file::generate(kind)?;
    files::write_atomic(&ctx.identity_path, pem.as_bytes(), 0o600)?;
    Ok(identity_output(&ctx.identity_path, &public))
}

/// Prints the identity's public key.
///
/// # Errors
/// Bad input if there is no identity, corrupted data if it does not parse.
pub fn identity_show(ctx: &Ctx) -> CliResult<Output> {
    let signer = ctx.load_identity()?;
    Ok(identity_output(&ctx.identity_path, &signer.public_key()))
}

fn identity_output(path: &std::path::Path, public: &IdentityPublicKey) -> Output {
    Output {
        text: format!("{}\n", public_hex(public)),
        json: json!({
            "ok": true,
            "identity": public_hex(public),
            "kind": kind_name(public),
            "file": path.display().to_string(),
        }),
    }
}

/// `setup new --protocol keygen --party PK… --threshold T [--label L]`.
///
/// # Errors
/// Bad input for inconsistent parameters.
pub fn keygen_setup(a: &SetupNewArgs) -> CliResult<Output> {
    let iid = setup_file::random_iid()?;
    if a.parties.len() < 2 {
        return Err(CliError::bad_input("a keygen needs at least two --party keys")
            .hint("pass --party <public key> once per participant, in index order"));
    }
    let t = a.threshold.ok_or_else(|| {
        CliError::bad_input("a keygen needs --threshold").hint("e.g. --threshold 2")
    })?;
    if a.label.len() > MAX_LABEL {
        return Err(CliError::bad_input(format!("--label is longer than {MAX_LABEL} bytes")));
    }
    let mut participants = Vec::new();
    for (i, p) in a.parties.iter().enumerate() {
        let index = u16::try_from(i + 1).map_err(|_| CliError::bad_input("at most 255 parties"))?;
        participants.push((index, identity_file::parse_public_hex(p)?));
    }
    let n = u16::try_from(participants.len())
        .map_err(|_| CliError::bad_input("at most 255 parties"))?;
    let setup = Setup::new(
        ProtocolId::Dkg,
        iid,
        n,
        t,
        participants,
        a.label.as_bytes().to_vec(),
        a.ttl_secs,
    )
    .map_err(invalid_setup)?;
    setup_file::write_new(&a.out, &setup)
}

/// `setup new --protocol sign|presign --key K [--signers 1,3] [--path P]`, with the message
/// for a sign setup.
///
/// # Errors
/// Bad input for an unknown key or inconsistent parameters.
pub fn sign_setup(ctx: &Ctx, a: &SetupNewArgs) -> CliResult<Output> {
    let iid = setup_file::random_iid()?;
    let key = a.key.as_deref().ok_or_else(|| {
        CliError::bad_input("a sign or presign setup needs --key")
            .hint("name the key by id, id prefix or label (see `shares list`)")
    })?;
    let info = ctx.dir.find(key)?;
    let message = a.message.prehash()?;
    let presign = a.protocol == SetupProtocol::Presign;
    if presign && message.is_some() {
        return Err(CliError::bad_input("a presign setup takes no message")
            .hint("give the message later to `sign --presignature`"));
    }
    if !presign && message.is_none() {
        return Err(CliError::bad_input("a sign setup needs the message")
            .hint("pass --message-hex or --message-file (and --hash)"));
    }
    let signers: Vec<u16> =
        if a.signers.is_empty() { (1..=info.threshold).collect() } else { a.signers.clone() };
    let mut participants = Vec::new();
    for &s in &signers {
        participants.push((s, info.identity_of(s)?));
    }
    let key_id = info.key_id_bytes()?;
    let keygen_sid = hex_array(&info.keygen_sid)
        .ok_or_else(|| CliError::corrupted("the share's public metadata is damaged"))?;
    let path = parse_path(&a.path)?;
    let extra = match message {
        Some(message) => SignRequest { key_id, keygen_sid, path, message }.to_bytes(),
        None => PresignRequest { key_id, keygen_sid, path }.to_bytes(),
    };
    let setup = Setup::new(
        ProtocolId::Sign,
        iid,
        info.parties,
        info.threshold,
        participants,
        extra,
        a.ttl_secs,
    )
    .map_err(invalid_setup)?;
    setup_file::write_new(&a.out, &setup)
}

fn invalid_setup(e: SetupError) -> CliError {
    CliError::bad_input(format!("invalid setup: {e}"))
}

/// Lists the shares.
///
/// # Errors
/// Corrupted metadata.
pub fn shares_list(ctx: &Ctx) -> CliResult<Output> {
    let all = ctx.dir.list()?;
    let mut text = String::new();
    if all.is_empty() {
        text.push_str(&format!("no key shares in {}\n", ctx.dir.root().display()));
    }
    for s in &all {
        text.push_str(&format!(
            "{}  {}-of-{}  party {}  epoch {}  {}  {}\n",
            s.key_id, s.threshold, s.parties, s.index, s.epoch, s.eth_address, s.label
        ));
    }
    Ok(Output { text, json: json!({"ok": true, "shares": all}) })
}

/// Shows one share's public data.
///
/// # Errors
/// Bad input for an unknown key.
pub fn shares_show(ctx: &Ctx, key: &str) -> CliResult<Output> {
    let s = ctx.dir.find(key)?;
    let banned = ctx.dir.banned(&s.key_id_bytes()?)?;
    let mut json = serde_json::to_value(&s).unwrap_or_default();
    set_field(&mut json, "banned", json!(banned));
    let text = format!(
        "key id       {}\nlabel        {}\nthreshold    {}-of-{}\nthis party   {}\nepoch        {}\npublic key   {}\nchain code   {}\neth address  {}\nkeygen sid   {}\nbanned       {:?}\n",
        s.key_id,
        s.label,
        s.threshold,
        s.parties,
        s.index,
        s.epoch,
        s.public_key,
        s.chain_code,
        s.eth_address,
        s.keygen_sid,
        banned
    );
    Ok(Output { text, json: json!({"ok": true, "share": json}) })
}

/// Derives a public key along a path.
///
/// # Errors
/// Bad input for an unknown key or a bad path.
pub fn derive(ctx: &Ctx, a: &DeriveArgs) -> CliResult<Output> {
    let info = ctx.dir.find(&a.key)?;
    let path = parse_path(&a.path)?;
    let d = dkls23_core::bip32::derive(&info.public_point()?, &info.chain_code_bytes()?, &path)
        .map_err(|e| CliError::bad_input(e.to_string()))?;
    let pk = hex::encode(point_to_bytes(&d.public_key));
    let addr = eth_address(&d.public_key);
    let xpub = Xpub::root(info.public_point()?, info.chain_code_bytes()?, Network::Mainnet)
        .derive(&path)
        .map_err(|e| CliError::bad_input(e.to_string()))?
        .to_string();
    let json = json!({
        "ok": true,
        "key_id": info.key_id,
        "path": format_path(&path),
        "public_key": pk,
        "chain_code": hex::encode(d.chain_code),
        "eth_address": addr,
        "xpub": xpub,
    });
    let text = match a.format {
        DeriveFormat::EthAddress => format!("{addr}\n"),
        DeriveFormat::Xpub => format!("{xpub}\n"),
        DeriveFormat::Json => {
            format!("{}\n", serde_json::to_string_pretty(&json).unwrap_or_default())
        }
        DeriveFormat::Text => format!(
            "path         {}\npublic key   {pk}\nchain code   {}\neth address  {addr}\nxpub         {xpub}\n",
            format_path(&path),
            hex::encode(d.chain_code)
        ),
    };
    Ok(Output { text, json })
}
