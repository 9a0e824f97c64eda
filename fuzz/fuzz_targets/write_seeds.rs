//! Not a fuzz target: writes valid seed inputs for every target, built with the real encoders
//! and the shared deterministic fixtures (`dkls_fuzz`), into `$DKLS_FUZZ_SEED_DIR/<target>/`.
//!
//! It runs in libFuzzer's initialisation hook (so it is built by the same `cargo fuzz build`
//! as the targets) and exits before any fuzzing:
//!
//! ```text
//! DKLS_FUZZ_SEED_DIR=fuzz/seeds-raw fuzz/target/x86_64-unknown-linux-gnu/release/write_seeds
//! ```
//!
//! `.ci/fuzz` does not need it: the minimised seeds are committed under `fuzz/seeds/`.
#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dkls_fuzz::{
    CHEAP_KDF, PASSPHRASE, RECEIVER, msg_session, msg_setup, presignature_bytes, rng, share1,
    shares,
};
use dkls_party::identity_file::{self, IdentityKind};
use dkls_party::sealed::{self, Kind as SealKind};
use dkls23_core::bip32::{Network, Xpub};
use dkls23_core::identity::{IdentitySigner, P256Identity};
use dkls23_core::import_export::{ExportRequest, ImportRequest};
use dkls23_core::message::{AbortNotice, Expect, Header, Kind, P2pMode};
use dkls23_core::hazmat::ot::{self, BobVole, SetupIds};
use dkls23_core::reshare::ReshareSpec;
use dkls23_core::sign::{PresignRequest, SignRequest};
use dkls23_core::setup::{ProtocolId, Setup};
use k256::Scalar;
use libfuzzer_sys::fuzz_target;
use msg_relay_api::MessageId;
use msg_relay_api::wire::{AckStatus, ErrorCode, Frame};

struct Out {
    root: PathBuf,
    count: usize,
}

impl Out {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).expect("create seed dir");
        std::fs::write(dir.join(name), bytes).expect("write seed");
        self.count += 1;
    }

    /// A seed of the form `selector ‖ bytes`.
    fn sel(&mut self, target: &str, name: &str, selector: u8, bytes: &[u8]) {
        let mut v = Vec::with_capacity(1 + bytes.len());
        v.push(selector);
        v.extend_from_slice(bytes);
        self.put(target, name, &v);
    }
}

fn frames(out: &mut Out) {
    let id = MessageId([0xab; 32]);
    let long = "é".repeat(300);
    let list: Vec<(&str, Frame<'_>)> = vec![
        ("publish", Frame::Publish { req: 1, id, ttl_ms: 60_000, readers: 0, payload: b"hello" }),
        (
            "publish-for",
            Frame::Publish { req: 1, id, ttl_ms: 60_000, readers: 2, payload: b"hello" },
        ),
        ("consume", Frame::Consume { req: 8, id, reader: 3, candidate: None }),
        ("ask", Frame::Ask { req: 2, id, forwarded: false, from: None }),
        ("ask-forwarded", Frame::Ask { req: 3, id, forwarded: true, from: None }),
        ("ask-candidate", Frame::Ask { req: 4, id, forwarded: false, from: Some(2) }),
        ("consume-candidate", Frame::Consume { req: 8, id, reader: 3, candidate: Some(1) }),
        ("deliver-candidate", Frame::Deliver { req: 4, id, candidate: Some(2), payload: b"hi" }),
        ("cancel", Frame::Cancel { req: 2 }),
        ("ack", Frame::Ack { req: 1, id, status: AckStatus::Stored }),
        ("ack-dup", Frame::Ack { req: 1, id, status: AckStatus::Duplicate }),
        ("deliver", Frame::Deliver { req: 2, id, candidate: None, payload: b"hello" }),
        (
            "error",
            Frame::Error { req: 4, code: ErrorCode::TooLarge, actual: 9, limit: 8, text: "big" },
        ),
        (
            "error-other",
            Frame::Error { req: 0, code: ErrorCode::Other(77), actual: 0, limit: 0, text: "" },
        ),
    ];
    for (name, f) in &list {
        out.put("relay_frame", name, &f.encode());
    }
    // An error frame with a text above MAX_ERROR_TEXT (the encoder clips it; build it by hand).
    let mut e =
        Frame::Error { req: 5, code: ErrorCode::Malformed, actual: 0, limit: 0, text: "" }.encode();
    e.extend_from_slice(long.as_bytes());
    out.put("relay_frame", "error-long-text", &e);
}

fn record(kind: u8, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    v.extend_from_slice(bytes);
    v
}

fn relay_server(out: &mut Out) {
    let a = MessageId([0x0a; 32]);
    let b = MessageId([0x0b; 32]);
    let pubf = |req, id, ttl_ms, payload: &[u8]| {
        Frame::Publish { req, id, ttl_ms, readers: 0, payload }.encode()
    };
    let mut ws = Vec::new();
    ws.extend(record(0, &pubf(1, a, 60_000, b"payload-a")));
    ws.extend(record(0, &pubf(2, a, 60_000, b"payload-a")));
    ws.extend(record(0, &pubf(3, a, 60_000, b"different")));
    ws.extend(record(0, &pubf(4, b, u32::MAX, b"ttl too long")));
    ws.extend(record(0, &Frame::Ask { req: 5, id: a, forwarded: false, from: None }.encode()));
    ws.extend(record(0, &Frame::Ask { req: 6, id: b, forwarded: true, from: None }.encode()));
    ws.extend(record(0, &Frame::Ask { req: 6, id: b, forwarded: false, from: None }.encode()));
    ws.extend(record(0, &Frame::Ask { req: 10, id: b, forwarded: false, from: Some(1) }.encode()));
    ws.extend(record(0, &Frame::Cancel { req: 6 }.encode()));
    let for_readers = Frame::Publish { req: 8, id: b, ttl_ms: 1000, readers: 1, payload: b"r" };
    ws.extend(record(0, &for_readers.encode()));
    ws.extend(record(0, &Frame::Consume { req: 9, id: b, reader: 1, candidate: Some(1) }.encode()));
    ws.extend(record(0, &Frame::Deliver { req: 7, id: a, candidate: None, payload: b"x" }.encode()));
    ws.extend(record(0, &[2, 1, 0, 0, 0, 9]));
    ws.extend(record(0, &[1, 0x44, 0, 0, 0, 8]));
    ws.extend(record(1, b"text is refused"));
    ws.extend(record(2, b"ping"));
    out.put("relay_server", "ws-session", &ws);

    let ha = hex::encode(a.0);
    let hb = hex::encode(b.0);
    let mut http = Vec::new();
    http.extend(record(4, format!("/v1/msg/{ha}?ttl_ms=60000\nbody-a").as_bytes()));
    http.extend(record(4, format!("/v1/msg/{ha}?ttl_ms=60000\nbody-a").as_bytes()));
    http.extend(record(4, format!("/v1/msg/{ha}?ttl_ms=60000\nother").as_bytes()));
    http.extend(record(4, format!("/v1/msg/{hb}\nno ttl").as_bytes()));
    http.extend(record(3, format!("/v1/msg/{ha}?wait_ms=10").as_bytes()));
    http.extend(record(3, format!("/v1/msg/{hb}?wait_ms=100&forwarded=1").as_bytes()));
    http.extend(record(3, b"/v1/msg/not-hex"));
    http.extend(record(3, b"/healthz"));
    http.extend(record(3, b"/metrics"));
    http.extend(record(3, b"/no/such/route"));
    http.extend(record(5, format!("/v1/msg/{ha}").as_bytes()));
    out.put("relay_server", "http", &http);

    let mut mixed = record(0, &pubf(1, b, 1000, b"over ws"));
    mixed.extend(record(3, format!("/v1/msg/{hb}?wait_ms=0").as_bytes()));
    out.put("relay_server", "ws-then-http", &mixed);
}

/// `from u8 ‖ kind u8 ‖ round u16 ‖ max u16 ‖ raw` for the envelope target's receive mode.
fn rx_seed(from: u16, kind: u8, round: u16, max: u16, raw: &[u8]) -> Vec<u8> {
    let mut v = vec![if from == 1 { 0 } else { 1 }, kind];
    v.extend_from_slice(&round.to_be_bytes());
    v.extend_from_slice(&max.to_be_bytes());
    v.extend_from_slice(raw);
    v
}

fn envelope(out: &mut Out) {
    let mut s1 = msg_session(1);
    let mut s3 = msg_session(3);
    let payload = b"round payload";
    let b1 = s1.broadcast(1, payload).expect("broadcast");
    let b3 = s3.broadcast(4, payload).expect("broadcast");
    let p1 = s1.send_p2p(RECEIVER, 2, payload, P2pMode::Plain).expect("p2p");
    let p3 = s3.send_p2p(RECEIVER, 3, payload, P2pMode::Signed).expect("p2p");
    let a1 = s1.abort(AbortNotice { reason: 7, accused: Some(3) }).expect("abort");
    let a3 = s3.abort(AbortNotice { reason: 1, accused: None }).expect("abort");
    out.sel("envelope", "rx-bcast-ed25519", 3, &rx_seed(1, 0, 1, 1024, &b1));
    out.sel("envelope", "rx-bcast-p256", 3, &rx_seed(3, 0, 4, 1024, &b3));
    out.sel("envelope", "rx-p2p-plain", 3, &rx_seed(1, 1, 2, 1024, &p1));
    out.sel("envelope", "rx-p2p-signed", 3, &rx_seed(3, 2, 3, 1024, &p3));
    out.sel("envelope", "rx-abort-accuses", 3, &rx_seed(1, 3, 0, 0, &a1));
    out.sel("envelope", "rx-abort", 3, &rx_seed(3, 3, 0, 0, &a3));

    let mut rx = msg_session(RECEIVER);
    let got = rx.receive(&b1, &Expect::broadcast(1, 1, 1024)).expect("receive").expect("accepted");
    let ev = got.evidence().expect("evidence");
    out.sel("envelope", "evidence-ed25519", 2, &ev.to_bytes());
    let got = rx.receive(&b3, &Expect::broadcast(3, 4, 1024)).expect("receive").expect("accepted");
    out.sel("envelope", "evidence-p256", 2, &got.evidence().expect("evidence").to_bytes());
    out.sel("envelope", "header", 0, &Header { mid: [3; 32], kind: Kind::P2p }.to_bytes());
    out.sel("envelope", "abort-notice", 1, &AbortNotice { reason: 2, accused: Some(1) }.to_bytes());
}

fn setups(out: &mut Out) -> BTreeMap<&'static str, Setup> {
    let share = share1();
    let ids: Vec<_> = (1..=2u16).map(dkls23_core::sim::identity).collect();
    let mut all = BTreeMap::new();
    all.insert("dkg", msg_setup().clone());
    let sign = SignRequest {
        key_id: *share.key_id(),
        keygen_sid: *share.keygen_sid(),
        path: vec![44, 60, 0],
        message: [0x99; 32],
    };
    let parts: Vec<_> = ids.iter().enumerate().map(|(k, id)| (k as u16 + 1, *id)).collect();
    let s = Setup::new(ProtocolId::Sign, [1; 32], 2, 2, parts.clone(), sign.to_bytes(), 3600);
    all.insert("sign", s.expect("sign setup"));
    let pre = PresignRequest { key_id: sign.key_id, keygen_sid: sign.keygen_sid, path: vec![] };
    let s = Setup::new(ProtocolId::Sign, [2; 32], 2, 2, parts, pre.to_bytes(), 3600);
    all.insert("presign", s.expect("presign setup"));
    let spec = ReshareSpec::refresh(share).expect("refresh spec");
    all.insert("reshare", spec.to_setup([3; 32], 3600).expect("reshare setup"));
    let imp = ImportRequest { dealer: 1, public_key: *share.public_key(), key_id: *share.key_id() };
    all.insert("import", imp.to_setup([4; 32], ids.clone(), 2, 3600).expect("import setup"));
    let recipient = P256Identity::from_secret_bytes(&[0x44; 32]).expect("p256").public_key();
    let exp = ExportRequest::new(share, &[1, 2], 3, [0x77; 32]).expect("export request");
    all.insert("export", exp.to_setup(share, recipient, [5; 32], 3600).expect("export setup"));
    for (name, s) in &all {
        out.put("setup", name, &s.to_bytes());
    }
    all
}

fn requests(out: &mut Out, all: &BTreeMap<&'static str, Setup>) {
    let share = share1();
    out.sel("requests", "sign", 0, all["sign"].extra());
    out.sel("requests", "presign", 1, all["presign"].extra());
    out.sel("requests", "reshare-refresh", 2, all["reshare"].extra());
    let mut new = ReshareSpec::refresh(share).expect("spec").new_committee;
    new.push(dkls23_core::reshare::NewMember { index: 3, identity: dkls23_core::sim::identity(3) });
    let grow = ReshareSpec::from_share(share, &[1, 2], new, 2).expect("grow spec");
    out.sel("requests", "reshare-grow", 2, &grow.to_bytes());
    out.sel("requests", "import", 3, all["import"].extra());
    out.sel("requests", "export", 4, all["export"].extra());
    let x = Xpub::root(*share.public_key(), *share.chain_code(), Network::Mainnet);
    out.sel("requests", "xpub-bytes", 5, &x.to_bytes());
    out.sel("requests", "xpub-text", 6, x.to_string().as_bytes());
    let t = Xpub::root(*share.public_key(), [7; 32], Network::Testnet);
    out.sel("requests", "tpub-text", 6, t.to_string().as_bytes());
}

fn ot_messages(out: &mut Out) {
    let mut r = rng(4000);
    let ids = SetupIds::new([0x0f; 32]);
    let (alice, kg1) = ot::alice_start(&mut r, ids.clone());
    let (bob_state, kg2) = ot::bob_respond(&mut r, &ids, &kg1).expect("bob_respond");
    let alice_state = alice.finish(&kg2).expect("alice finish");
    let (bob, sg1) = BobVole::start(&mut r, &bob_state, [0x1e; 32]);
    let a = [Scalar::from(5u64), Scalar::from(6u64)];
    let (_, sg2) = ot::alice_respond(&mut r, &alice_state, &[0x1e; 32], &a, &sg1).expect("sg2");
    bob.finish(&sg2).expect("the honest run verifies");
    out.sel("ot_messages", "kg1", 0, &kg1.encode());
    out.sel("ot_messages", "kg2", 1, &kg2.encode());
    out.sel("ot_messages", "sg1", 2, &sg1.encode());
    out.sel("ot_messages", "sg2", 3, &sg2.encode());
    out.sel("ot_messages", "alice-state", 4, &alice_state.to_bytes());
    out.sel("ot_messages", "bob-state", 5, &bob_state.to_bytes());
    out.sel("ot_messages", "kg1-raw-short", 0x80, &kg1.encode()[..100]);
}

fn keyshares(out: &mut Out) {
    let [s1, s2] = shares();
    out.sel("keyshare", "share-1", 0, &s1.to_bytes());
    out.sel("keyshare", "share-2", 0, &s2.to_bytes());
    out.sel("keyshare", "xor-base", 1, &[]);
    out.sel("keyshare", "xor-cut", 3, &[0, 1]);
}

fn presignatures(out: &mut Out) {
    out.sel("presignature", "presig", 0, &presignature_bytes(&[], 3000));
    out.sel("presignature", "presig-path", 0, &presignature_bytes(&[1, 2, 3], 3100));
    out.sel("presignature", "xor-base", 1, &[]);
}

fn party_files(out: &mut Out, all: &BTreeMap<&'static str, Setup>) {
    let share = share1().to_bytes();
    let pt = share.get(..600).expect("share prefix");
    let sealed = sealed::seal(SealKind::KeyShare, pt, PASSPHRASE, CHEAP_KDF).expect("seal");
    let body = sealed.get(..sealed.len() - 32).expect("body");
    out.sel("party_file", "sealed-share-body", 0, body);
    out.sel("party_file", "sealed-share-raw", 0x20, &sealed);
    let pre = presignature_bytes(&[], 3000);
    let sealed = sealed::seal(SealKind::Presignature, &pre, PASSPHRASE, CHEAP_KDF).expect("seal");
    out.sel("party_file", "sealed-presig-body", 0x10, sealed.get(..sealed.len() - 32).expect("b"));
    let sealed = sealed::seal(SealKind::KeyShareWithBans, pt, PASSPHRASE, CHEAP_KDF).expect("seal");
    out.sel(
        "party_file",
        "sealed-share-bans-body",
        0x40,
        sealed.get(..sealed.len() - 32).expect("b"),
    );
    let list = dkls_party::bans::encode(share1(), &[2]).expect("ban list");
    out.sel("party_file", "ban-list", 0x42, &list);
    let empty = dkls_party::bans::encode(share1(), &[]).expect("ban list");
    out.sel("party_file", "ban-list-empty", 0x42, &empty);
    for (name, kind) in
        [("identity-ed25519", IdentityKind::Ed25519), ("identity-p256", IdentityKind::P256)]
    {
        let (pem, _) = identity_file::generate(kind).expect("identity");
        out.sel("party_file", name, 2, pem.as_bytes());
    }
    // selector 3 + 4·k expects protocol 1 + k (dkg, sign, reshare, import, export).
    for (k, name) in ["dkg", "sign", "reshare", "import", "export"].iter().enumerate() {
        let doc = serde_json::json!({
            "format": "dkls-party-setup/v1",
            "setup": hex::encode(all[name].to_bytes()),
            "summary": {"protocol": name},
        });
        let text = serde_json::to_vec_pretty(&doc).expect("json");
        out.sel("party_file", &format!("setup-file-{name}"), 3 + 4 * k as u8, &text);
    }
}

fn session_configs(out: &mut Out) {
    let sid = hex::encode([0x3c; 32]);
    let p2 = dkls23_core::sim::identity(2).to_string();
    let p3 = P256Identity::from_secret_bytes(&[0x55; 32]).expect("p256").public_key().to_string();
    let session =
        serde_json::json!({"session_id": sid, "players": [1, 2], "public_keys": {"2": p2}});
    let session3 = serde_json::json!({
        "session_id": sid, "players": [3, 1, 2], "public_keys": {"2": p2, "3": p3}
    });
    let docs = [
        ("session", 0, session.clone()),
        ("session-3", 0, session3.clone()),
        (
            "generate",
            1,
            serde_json::json!({"threshold": 2, "session": session3, "key_id": "wallet-1"}),
        ),
        ("generate-default-id", 1, serde_json::json!({"threshold": 2, "session": session})),
        (
            "sign",
            2,
            serde_json::json!({
                "session": session, "message_hash": hex::encode([0x99; 32]), "path": "m/44/60/0/0/7"
            }),
        ),
        ("presign", 3, serde_json::json!({"session": session, "count": 2, "path": "m/1"})),
        (
            "reshare",
            4,
            serde_json::json!({"session": session, "old_players": [1, 2], "new_threshold": 2}),
        ),
    ];
    for (name, sel, doc) in docs {
        out.sel("session_config", name, sel, &serde_json::to_vec(&doc).expect("json"));
    }
}

fn write_all(root: &Path) -> usize {
    let mut out = Out { root: root.to_path_buf(), count: 0 };
    frames(&mut out);
    relay_server(&mut out);
    envelope(&mut out);
    let all = setups(&mut out);
    requests(&mut out, &all);
    ot_messages(&mut out);
    keyshares(&mut out);
    presignatures(&mut out);
    party_files(&mut out, &all);
    session_configs(&mut out);
    out.count
}

fuzz_target!(
    init: {
        let dir = std::env::var_os("DKLS_FUZZ_SEED_DIR").unwrap_or_else(|| "seeds-raw".into());
        let n = write_all(Path::new(&dir));
        eprintln!("write_seeds: wrote {n} seeds under {}", Path::new(&dir).display());
        // Never fuzz: this binary only writes seeds (the condition keeps the macro's code after
        // this block reachable for the compiler).
        if n < usize::MAX {
            std::process::exit(0);
        }
    },
    |_data: &[u8]| {}
);
