//! The node's session configuration JSON (`mpc_node_client::api::SessionConfig`, alone and as
//! the `session` of the SDK request bodies) via `serde_json`, and the checks
//! `mpc_node_client::session` runs on it before any protocol starts: `session_id`,
//! `check_key_id`, `resolve_players` (against a static key for player 1), `parse_path`,
//! `dkg_setup`, and `sign_setup` / `presign_setup` against party 1's 2-of-2 key share.
//!
//! Input: `selector u8 ‖ JSON`; `selector % 5` picks the type: `SessionConfig`,
//! `GenerateKeyRequest`, `SignRequestBody`, `PresignRequestBody`, `ReshareRequestBody`.
//!
//! Invariants: no panic; JSON is not canonical (spacing, key order, escapes), so the check is
//! `from_json(to_json(x)) == x`; a session id that parses re-encodes to the same hex (case
//! aside); resolved players are strictly ascending, non-zero, exactly the listed players, and
//! player 1 gets its static key; a path that parses formats back to a path that parses equal;
//! a setup built from the session round-trips through `Setup::to_bytes` / `from_bytes`, and
//! the signing setup's `extra` decodes as the `SignRequest` / `PresignRequest` it was built from.
#![no_main]

use std::collections::BTreeMap;

use dkls_fuzz::{share1, split_selector};
use dkls23_core::identity::{Ed25519Identity, IdentityPublicKey, IdentitySigner};
use dkls23_core::sign::{PresignRequest, SignRequest};
use dkls23_core::setup::Setup;
use libfuzzer_sys::fuzz_target;
use mpc_node_client::api::{
    GenerateKeyRequest, PresignRequestBody, ReshareRequestBody, SessionConfig, SignRequestBody,
};
use mpc_node_client::session;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn json_round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T) {
    let text = serde_json::to_vec(v).expect("serialise");
    let back: T = serde_json::from_slice(&text).expect("re-parse what was serialised");
    assert_eq!(&back, v, "JSON round trip changed the value");
}

fn setup_round_trip(s: &Setup) {
    let again = Setup::from_bytes(&s.to_bytes()).expect("a built setup decodes");
    assert_eq!(&again, s);
}

fn statics() -> BTreeMap<u16, IdentityPublicKey> {
    BTreeMap::from([(1u16, Ed25519Identity::from_seed(&[1; 32]).public_key())])
}

fn path_of(p: Option<&str>) -> Option<Vec<u32>> {
    let path = session::parse_path(p.unwrap_or("m")).ok()?;
    let again = session::parse_path(&session::format_path(&path)).expect("formatted path parses");
    assert_eq!(again, path);
    Some(path)
}

/// The checks every request runs on its session; the resolved players when they pass.
fn check_session(cfg: &SessionConfig) -> Option<([u8; 32], Vec<(u16, IdentityPublicKey)>)> {
    json_round_trip(cfg);
    let sid = session::session_id(cfg).ok();
    if let Some(sid) = sid {
        assert_eq!(hex::encode(sid), cfg.session_id.to_ascii_lowercase());
    }
    let statics = statics();
    let players = session::resolve_players(cfg, &statics).ok()?;
    let mut listed = cfg.players.clone();
    listed.sort_unstable();
    assert_eq!(players.iter().map(|(i, _)| *i).collect::<Vec<_>>(), listed);
    assert!(players.windows(2).all(|w| w[0].0 < w[1].0) && players.iter().all(|(i, _)| *i != 0));
    if let Some((_, k)) = players.iter().find(|(i, _)| *i == 1) {
        assert_eq!(Some(k), statics.get(&1), "the static key of player 1 did not win");
    }
    Some((sid?, players))
}

fn generate(req: &GenerateKeyRequest) {
    json_round_trip(req);
    let Some((sid, players)) = check_session(&req.session) else { return };
    let key_id = req.key_id.clone().unwrap_or_else(|| req.session.session_id.clone());
    if let Ok(setup) = session::dkg_setup(sid, req.threshold, players, &key_id, "fuzz-app") {
        assert!(session::check_key_id(&key_id).is_ok());
        assert_eq!(setup.extra(), session::dkg_extra(&key_id, "fuzz-app").as_slice());
        setup_round_trip(&setup);
    }
}

fn sign(req: &SignRequestBody) {
    json_round_trip(req);
    let Some((sid, _)) = check_session(&req.session) else { return };
    let Some(path) = path_of(req.path.as_deref()) else { return };
    let Some(m) = req.message_hash.as_deref().and_then(|h| hex::decode(h).ok()) else { return };
    let Ok(message) = <[u8; 32]>::try_from(m.as_slice()) else { return };
    let share = share1();
    if let Ok(setup) = session::sign_setup(sid, share, &req.session.players, &path, message) {
        setup_round_trip(&setup);
        let r = SignRequest::from_bytes(setup.extra()).expect("sign setup extra decodes");
        assert_eq!((r.path, r.message), (path, message));
        assert_eq!((&r.key_id, &r.keygen_sid), (share.key_id(), share.keygen_sid()));
    }
}

fn presign(req: &PresignRequestBody) {
    json_round_trip(req);
    let Some((sid, _)) = check_session(&req.session) else { return };
    let Some(path) = path_of(req.path.as_deref()) else { return };
    for k in 0..req.count.min(3) {
        let iid = session::presign_iid(&sid, k);
        if let Ok(setup) = session::presign_setup(iid, share1(), &req.session.players, &path) {
            setup_round_trip(&setup);
            let r = PresignRequest::from_bytes(setup.extra()).expect("presign extra decodes");
            assert_eq!(r.path, path);
        }
    }
}

fn parse<T: DeserializeOwned>(json: &[u8]) -> Option<T> {
    serde_json::from_slice(json).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((selector, json)) = split_selector(data) else { return };
    match selector % 5 {
        0 => {
            if let Some(cfg) = parse::<SessionConfig>(json) {
                let _ = check_session(&cfg);
            }
        }
        1 => {
            if let Some(r) = parse::<GenerateKeyRequest>(json) {
                generate(&r);
            }
        }
        2 => {
            if let Some(r) = parse::<SignRequestBody>(json) {
                sign(&r);
            }
        }
        3 => {
            if let Some(r) = parse::<PresignRequestBody>(json) {
                presign(&r);
            }
        }
        _ => {
            if let Some(r) = parse::<ReshareRequestBody>(json) {
                json_round_trip(&r);
                let _ = check_session(&r.session);
            }
        }
    }
});
