//! `refresh` and `reshare` (one reshare protocol, `protocols.md` §4), and their setups.

use dkls23_core::KeyShare;
use dkls23_core::encoding::point_to_bytes;
use dkls23_core::reshare::{NewMember, ReshareOutcome, ReshareSpec};
use dkls23_core::setup::ProtocolId;
use dkls23_runner::run_reshare;
use serde_json::json;
use tracing::info;

use crate::args::{RunArgs, SetupNewArgs, SetupProtocol};
use crate::context::Ctx;
use crate::encoding::{eth_address, hex_array};
use crate::error::{CliError, CliResult};
use crate::identity_file;
use crate::output::Output;
use crate::party_dir::ShareInfo;
use crate::passphrase;
use crate::sealed::KdfParams;
use crate::session::{Session, connect, fresh_guard};
use crate::setup_file;

fn invalid(e: &dkls23_core::Error) -> CliError {
    CliError::bad_input(format!("invalid reshare: {e}"))
}

/// Whether `spec` keeps the committee, its indices and the threshold (a proactive refresh).
pub fn is_refresh(spec: &ReshareSpec) -> bool {
    spec.old_threshold == spec.new_threshold
        && spec.old_committee.len() == spec.new_committee.len()
        && spec
            .old_committee
            .iter()
            .zip(&spec.new_committee)
            .all(|(o, n)| o.index == n.index && o.identity == n.identity)
}

/// `setup new` for a refresh (`--protocol refresh --key K`) or a reshare (`--protocol reshare
/// --key K [--dealers 1,2] --new-party PK … [--new-threshold T]`). Reads this party's share
/// (passphrase) because the setup carries every holder's public share.
///
/// # Errors
/// Bad input for an unknown key or an invalid committee.
pub fn reshare_setup(ctx: &Ctx, a: &SetupNewArgs) -> CliResult<Output> {
    let iid = setup_file::random_iid()?;
    let key = a.key.as_deref().ok_or_else(|| {
        CliError::bad_input("a refresh or reshare setup needs --key")
            .hint("name the key by id, id prefix or label (see `shares list`)")
    })?;
    let info = ctx.dir.find(key)?;
    let pass = passphrase::read(false)?;
    let share = ctx.dir.load_share(&info.key_id_bytes()?, &pass)?;
    let spec = if a.protocol == SetupProtocol::Refresh {
        ReshareSpec::refresh(&share).map_err(|e| invalid(&e))?
    } else {
        if a.new_parties.len() < 2 {
            return Err(CliError::bad_input("a reshare needs the new committee")
                .hint("pass --new-party <public key> once per new member, in new index order"));
        }
        let mut new = Vec::new();
        for (i, p) in a.new_parties.iter().enumerate() {
            let index =
                u16::try_from(i + 1).map_err(|_| CliError::bad_input("at most 255 parties"))?;
            new.push(NewMember { index, identity: identity_file::parse_public_hex(p)? });
        }
        let dealers: Vec<u16> =
            if a.dealers.is_empty() { (1..=share.parties()).collect() } else { a.dealers.clone() };
        let t = a.new_threshold.unwrap_or(share.threshold());
        ReshareSpec::from_share(&share, &dealers, new, t).map_err(|e| invalid(&e))?
    };
    let setup = spec.to_setup(iid, a.ttl_secs).map_err(|e| invalid(&e))?;
    setup_file::write_new(&a.out, &setup)
}

/// `refresh --setup FILE` (`refresh_only`) and `reshare --setup FILE`.
///
/// # Errors
/// See [`crate::error::ExitCode`]. On any error the old share is kept unchanged.
pub async fn reshare(ctx: &Ctx, args: &RunArgs, refresh_only: bool) -> CliResult<Output> {
    let setup = setup_file::read(&args.setup, ProtocolId::Reshare)?;
    let spec = ReshareSpec::from_setup(&setup).map_err(|e| invalid(&e))?;
    let what = if refresh_only { "refresh" } else { "reshare" };
    if refresh_only && !is_refresh(&spec) {
        return Err(CliError::bad_input("this setup changes the committee or the threshold")
            .hint("run it with `dkls-party reshare` if that is intended"));
    }
    let session = Session::join(ctx, &setup, what, 4)?;
    let me = session.me;
    let guard = fresh_guard(ctx, &setup)?;
    let held = ctx.dir.info(&spec.key_id).ok();
    let dealer = spec.old_member_at(me).is_some();
    let label = held.as_ref().map(|i| i.label.clone()).unwrap_or_default();
    let pass = passphrase::read(!dealer && held.is_none())?;
    let old_share =
        if dealer { Some(dealer_share(ctx, &spec, held.as_ref(), &pass)?) } else { None };
    let relay = connect(ctx).await?;
    session.announce(format!(
        "{}-of-{} → {}-of-{}, epoch {}, session {}",
        spec.old_threshold,
        spec.old_committee.len(),
        spec.new_threshold,
        spec.new_committee.len(),
        spec.new_epoch,
        session.id
    ));
    info!(session = %session.id, party = me, "{what} started");
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let run = session.context(&relay, &guard);
    let result = run_reshare(&run, &setup, old_share.as_ref(), &mut rng).await;
    session.finish();
    let outcome = match result {
        Ok(o) => {
            drop(old_share);
            o
        }
        Err(e) => {
            info!(session = %session.id, party = me, error = %e, "{what} failed");
            // A banned dealer is recorded under its current (old) index, if this party holds
            // the key; the transport index is what the error names.
            return Err(ctx.dir.protocol_error(old_share.as_ref(), &e, |party| {
                spec.old_member_at(party).map(|m| m.index)
            }));
        }
    };
    match outcome {
        ReshareOutcome::NewShare(share) => {
            // The new epoch starts with an empty ban list (all OT material was replaced).
            let info = ctx.dir.save_share(&share, &label, &pass, KdfParams::default())?;
            info!(session = %session.id, party = me, epoch = info.epoch, "{what} done");
            Ok(new_share_output(&info))
        }
        ReshareOutcome::Removed => {
            ctx.dir.remove_share(&spec.key_id)?;
            Ok(removed_output(&spec))
        }
    }
}

/// The share a dealer gives in: the one held here, of the epoch the setup names.
fn dealer_share(
    ctx: &Ctx,
    spec: &ReshareSpec,
    held: Option<&ShareInfo>,
    pass: &[u8],
) -> CliResult<KeyShare> {
    let info = held.ok_or_else(|| {
        CliError::bad_input("this party deals in the reshare but holds no share of the key")
            .hint("check DEST and PARTY_ID")
    })?;
    if hex_array(&info.keygen_sid) != Some(spec.old_keygen_sid) {
        return Err(CliError::bad_input(
            "the setup names another epoch of this key than the share held here",
        )
        .hint("ask for a setup made from the current share (`shares show` prints its epoch)"));
    }
    ctx.dir.load_share(&spec.key_id, pass)
}

fn new_share_output(info: &ShareInfo) -> Output {
    Output {
        text: format!(
            "key id       {}\npublic key   {} (unchanged)\nepoch        {}\nshare        {}-of-{}, party {}\n",
            info.key_id, info.public_key, info.epoch, info.threshold, info.parties, info.index
        ),
        json: json!({
            "ok": true,
            "outcome": "new_share",
            "key_id": info.key_id,
            "public_key": info.public_key,
            "eth_address": info.eth_address,
            "epoch": info.epoch,
            "threshold": info.threshold,
            "parties": info.parties,
            "index": info.index,
        }),
    }
}

fn removed_output(spec: &ReshareSpec) -> Output {
    let pk = spec.public_key;
    Output {
        text: format!(
            "this party left the committee of key {}; its share was erased\n",
            hex::encode(spec.key_id)
        ),
        json: json!({
            "ok": true,
            "outcome": "removed",
            "key_id": hex::encode(spec.key_id),
            "public_key": hex::encode(point_to_bytes(&pk)),
            "eth_address": eth_address(&pk),
        }),
    }
}
