//! End-to-end tests that spawn the real `dkls-party` binary: a relay process (`dkls-party
//! relay`, which runs msg-relay-svc) and one process per party, each with its own data
//! directory, exactly as three terminals would.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod harness;

use std::fs;

use harness::{Party, RelayProcess, TestDir, read_shares};
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use serde_json::Value;
use sha3::Digest;

const MESSAGE_HEX: &str = "68656c6c6f2066726f6d20746865207465737473"; // "hello from the tests"

/// Keygen 2-of-3 with three processes; returns the parties and the keygen JSON outputs.
fn keygen_2_of_3(dir: &TestDir, relay: &RelayProcess, label: &str) -> (Vec<Party>, Vec<Value>) {
    let parties: Vec<Party> = (1..=3).map(|i| Party::new(dir, &format!("p{i}"), relay)).collect();
    let mut keys = Vec::new();
    for p in &parties {
        let out = p.run(&["identity", "new"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        keys.push(out.stdout.trim().to_owned());
    }
    let setup = dir.path().join(format!("keygen-{label}.json"));
    let mut args =
        vec!["setup", "new", "--protocol", "keygen", "--threshold", "2", "--label", label];
    for k in &keys {
        args.push("--party");
        args.push(k);
    }
    args.extend(["-o", setup.to_str().unwrap()]);
    let out = parties[0].run(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let outs =
        harness::run_all(&parties, &["--json", "keygen", "--setup", setup.to_str().unwrap()]);
    let mut jsons = Vec::new();
    for o in outs {
        assert_eq!(o.code, 0, "keygen failed: {}", o.stderr);
        assert!(o.stderr.contains("round 4/4"), "progress lines expected: {}", o.stderr);
        jsons.push(serde_json::from_str::<Value>(&o.stdout).unwrap());
    }
    let pk = jsons[0]["public_key"].clone();
    assert!(jsons.iter().all(|j| j["public_key"] == pk && j["key_id"] == jsons[0]["key_id"]));
    (parties, jsons)
}

fn sign_setup(creator: &Party, dir: &TestDir, name: &str, label: &str, signers: &str) -> String {
    let path = dir.path().join(name);
    let out = creator.run(&[
        "setup",
        "new",
        "--protocol",
        "sign",
        "--key",
        label,
        "--signers",
        signers,
        "--message-hex",
        MESSAGE_HEX,
        "--hash",
        "keccak256",
        "--path",
        "m/0/1",
        "-o",
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    path.to_str().unwrap().to_owned()
}

fn verify_with_k256(public_key_hex: &str, sig: &Value) {
    let m32: [u8; 32] = sha3::Keccak256::digest(hex::decode(MESSAGE_HEX).unwrap()).into();
    assert_eq!(sig["message_hash"], hex::encode(m32));
    let vk = VerifyingKey::from_sec1_bytes(&hex::decode(public_key_hex).unwrap()).unwrap();
    let rs = hex::decode(format!("{}{}", sig["r"].as_str().unwrap(), sig["s"].as_str().unwrap()))
        .unwrap();
    let signature = Signature::from_slice(&rs).unwrap();
    vk.verify_prehash(&m32, &signature).unwrap();
    let der = Signature::from_der(&hex::decode(sig["der"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(der, signature);
    let v = RecoveryId::from_byte(sig["recovery_id"].as_u64().unwrap() as u8).unwrap();
    assert_eq!(VerifyingKey::recover_from_prehash(&m32, &signature, v).unwrap(), vk);
    let rsv = sig["rsv"].as_str().unwrap();
    assert!(rsv.starts_with(&hex::encode(&rs)));
}

#[test]
fn keygen_and_sign_with_three_processes() {
    let dir = TestDir::new("flow");
    let relay = RelayProcess::start();
    let (parties, jsons) = keygen_2_of_3(&dir, &relay, "wallet");
    let key_id = jsons[0]["key_id"].as_str().unwrap().to_owned();

    // Public data is readable without the passphrase.
    let list = parties[1].run_env(&["shares", "list"], &[("DKLS_PASSPHRASE", "")]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(list.stdout.contains(&key_id) && list.stdout.contains("2-of-3  party 2"));

    // Sign with parties 1 and 3 under m/0/1, KECCAK256 of the message.
    let setup = sign_setup(&parties[0], &dir, "sign1.json", "wallet", "1,3");
    let signers = [&parties[0], &parties[2]];
    let outs = harness::run_all_refs(
        &signers,
        &[
            "--json",
            "sign",
            "--setup",
            &setup,
            "--message-hex",
            MESSAGE_HEX,
            "--hash",
            "keccak256",
            "--path",
            "m/0/1",
        ],
    );
    let sigs: Vec<Value> = outs
        .iter()
        .map(|o| {
            assert_eq!(o.code, 0, "sign failed: {}", o.stderr);
            serde_json::from_str(&o.stdout).unwrap()
        })
        .collect();
    assert_eq!(sigs[0]["rsv"], sigs[1]["rsv"]);

    // The derived key printed by `derive` is the one the signature verifies under.
    let derived =
        parties[1].run(&["derive", "--key", &key_id[..8], "--path", "m/0/1", "--format", "json"]);
    assert_eq!(derived.code, 0, "{}", derived.stderr);
    let derived: Value = serde_json::from_str(&derived.stdout).unwrap();
    assert_eq!(derived["public_key"], sigs[0]["public_key"]);
    verify_with_k256(derived["public_key"].as_str().unwrap(), &sigs[0]);
    let addr = parties[1].run(&[
        "derive",
        "--key",
        "wallet",
        "--path",
        "m/0/1",
        "--format",
        "eth-address",
    ]);
    assert_eq!(addr.stdout.trim(), derived["eth_address"].as_str().unwrap());
    assert!(addr.stdout.starts_with("0x") && addr.stdout.trim().len() == 42);

    // Presign with parties 1 and 2, then finish online with the message.
    let pre_setup = dir.path().join("presign.json");
    let out = parties[0].run(&[
        "setup",
        "new",
        "--protocol",
        "presign",
        "--key",
        "wallet",
        "--signers",
        "1,2",
        "--path",
        "m/0/1",
        "-o",
        pre_setup.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let outs = harness::run_all_refs(
        &[&parties[0], &parties[1]],
        &["--json", "presign", "--setup", pre_setup.to_str().unwrap()],
    );
    let ids: Vec<String> = outs
        .iter()
        .map(|o| {
            assert_eq!(o.code, 0, "presign failed: {}", o.stderr);
            let v: Value = serde_json::from_str(&o.stdout).unwrap();
            v["presignature"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids[0], ids[1]);
    let finish = [
        "--json",
        "sign",
        "--presignature",
        &ids[0][..12],
        "--message-hex",
        MESSAGE_HEX,
        "--hash",
        "keccak256",
    ];
    let outs = harness::run_all_refs(&[&parties[0], &parties[1]], &finish);
    let sigs2: Vec<Value> = outs
        .iter()
        .map(|o| {
            assert_eq!(o.code, 0, "sign --presignature failed: {}", o.stderr);
            serde_json::from_str(&o.stdout).unwrap()
        })
        .collect();
    assert_eq!(sigs2[0]["rsv"], sigs2[1]["rsv"]);
    assert_ne!(sigs2[0]["rsv"], sigs[0]["rsv"]);
    verify_with_k256(derived["public_key"].as_str().unwrap(), &sigs2[0]);
    // A presignature is consumed: it is gone, and a second use is refused.
    let presigs = fs::read_dir(parties[0].dest.join("presignatures")).unwrap();
    let presigs =
        presigs.filter(|e| e.as_ref().unwrap().path().extension() == Some("presig".as_ref()));
    assert_eq!(presigs.count(), 0);
    let again = parties[0].run(&[
        "--quiet",
        "sign",
        "--presignature",
        &ids[0][..12],
        "--message-hex",
        MESSAGE_HEX,
    ]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    harness::assert_one_line_error(&again.stderr, "no presignature");

    let setup2 = sign_setup(&parties[0], &dir, "sign2.json", "wallet", "1,2");
    // Refresh with all three parties: same public key, epoch 1, new share bytes.
    let before: Vec<_> = parties.iter().map(read_shares).collect();
    let refresh = dir.path().join("refresh.json");
    let out = parties[2].run(&[
        "setup",
        "new",
        "--protocol",
        "refresh",
        "--key",
        "wallet",
        "-o",
        refresh.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let outs =
        harness::run_all(&parties, &["--json", "refresh", "--setup", refresh.to_str().unwrap()]);
    for o in &outs {
        assert_eq!(o.code, 0, "refresh failed: {}", o.stderr);
        let v: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(v["public_key"], jsons[0]["public_key"]);
        assert_eq!(v["key_id"].as_str().unwrap(), key_id);
        assert_eq!(v["epoch"], 1);
    }
    let after: Vec<_> = parties.iter().map(read_shares).collect();
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.len(), 1);
        assert_eq!(a.len(), 1);
        assert_eq!(b[0].0, a[0].0, "same file name (key id)");
        assert_ne!(b[0].1, a[0].1, "the share was replaced");
    }
    // A sign setup made before the refresh names the old epoch and is refused.
    let stale = parties[1].run(&["--quiet", "sign", "--setup", &setup2]);
    assert_eq!(stale.code, 2, "{}", stale.stderr);
    harness::assert_one_line_error(&stale.stderr, "another epoch");
    // Sign again after the refresh (parties 2 and 3): verifies under the same derived key.
    let setup3 = sign_setup(&parties[1], &dir, "sign3.json", "wallet", "2,3");
    let outs =
        harness::run_all_refs(&[&parties[1], &parties[2]], &["--json", "sign", "--setup", &setup3]);
    let sig3: Value =
        serde_json::from_str(&outs[0].stdout).unwrap_or_else(|_| panic!("{}", outs[0].stderr));
    assert_eq!(outs[1].code, 0, "{}", outs[1].stderr);
    assert_eq!(sig3["public_key"], derived["public_key"]);
    verify_with_k256(derived["public_key"].as_str().unwrap(), &sig3);
    let xpub =
        parties[0].run(&["derive", "--key", "wallet", "--path", "m/0/1", "--format", "xpub"]);
    assert!(xpub.stdout.starts_with("xpub"), "{}", xpub.stdout);

    // The same setup cannot be run twice (instance ids are single-use).
    let again = parties[0].run(&["--quiet", "sign", "--setup", &setup]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    harness::assert_one_line_error(&again.stderr, "already took part");

    // A party refuses a setup that signs something else than it was told.
    let wrong = parties[1].run(&["--quiet", "sign", "--setup", &setup2, "--message-hex", "00"]);
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
    harness::assert_one_line_error(&wrong.stderr, "not the given message");
}

#[test]
fn failures_end_with_their_exit_code_and_leave_shares_intact() {
    let dir = TestDir::new("failures");
    let relay = RelayProcess::start();
    let (parties, _) = keygen_2_of_3(&dir, &relay, "cold");
    let before: Vec<_> = parties.iter().map(read_shares).collect();

    // Wrong passphrase.
    let setup = sign_setup(&parties[0], &dir, "s-pass.json", "cold", "1,2");
    let out = parties[0]
        .run_env(&["--quiet", "sign", "--setup", &setup], &[("DKLS_PASSPHRASE", "wrong")]);
    assert_eq!(out.code, 6, "{}", out.stderr);
    harness::assert_one_line_error(&out.stderr, "wrong passphrase");

    // Corrupted share file (in a copy of party 2's directory).
    let broken = parties[1].copy_to(&dir, "p2-broken");
    let share_file = read_shares(&broken).into_iter().next().unwrap().0;
    let mut bytes = fs::read(&share_file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    fs::write(&share_file, &bytes).unwrap();
    let setup = sign_setup(&parties[0], &dir, "s-corrupt.json", "cold", "1,2");
    let out = broken.run(&["--quiet", "--json", "sign", "--setup", &setup]);
    assert_eq!(out.code, 7, "{}", out.stderr);
    harness::assert_one_line_error(&out.stderr, "corrupted");
    let err: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(err["error"]["kind"], "corrupted_data");
    assert_eq!(fs::read(&share_file).unwrap(), bytes, "the damaged file must not be touched");

    // A setup that does not include this party.
    let setup = sign_setup(&parties[0], &dir, "s-foreign.json", "cold", "1,2");
    let out = parties[2].run(&["--quiet", "sign", "--setup", &setup]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    harness::assert_one_line_error(&out.stderr, "does not include this party");

    // An unreachable relay.
    let setup = sign_setup(&parties[0], &dir, "s-relay.json", "cold", "1,2");
    let out = parties[0].run_env(
        &["--quiet", "sign", "--setup", &setup],
        &[("RELAY_URL", "http://127.0.0.1:9"), ("DKLS_TIMEOUT_SECS", "2")],
    );
    assert_eq!(out.code, 5, "{}", out.stderr);
    harness::assert_one_line_error(&out.stderr, "cannot reach the relay");

    // A party that never shows up: party 1 runs alone and times out waiting for party 2.
    let setup = sign_setup(&parties[0], &dir, "s-timeout.json", "cold", "1,2");
    let out =
        parties[0].run(&["--quiet", "--json", "--timeout-secs", "2", "sign", "--setup", &setup]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    harness::assert_one_line_error(&out.stderr, "timed out in round 1 waiting for parties [2]");
    let err: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(err["error"]["kind"], "timeout");
    assert_eq!(err["error"]["exit_code"], 3);

    // A keygen where one party never shows up stores nothing.
    let keys: Vec<String> =
        parties.iter().map(|p| p.run(&["identity", "show"]).stdout.trim().to_owned()).collect();
    let kg = dir.path().join("kg-missing.json");
    let out = parties[0].run(&[
        "setup",
        "new",
        "--protocol",
        "keygen",
        "-t",
        "2",
        "--party",
        &keys[0],
        "--party",
        &keys[1],
        "-o",
        kg.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = parties[0].run(&[
        "--quiet",
        "--timeout-secs",
        "2",
        "keygen",
        "--setup",
        kg.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    harness::assert_one_line_error(&out.stderr, "waiting for parties [2]");

    // Bad input: not a setup file at all; an unknown subcommand flag.
    let junk = dir.path().join("junk.json");
    fs::write(&junk, b"{\"format\": 1}").unwrap();
    let out = parties[0].run(&["--quiet", "sign", "--setup", junk.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = parties[0].run(&["sign", "--no-such-flag"]);
    assert_eq!(out.code, 2, "{}", out.stderr);

    // No share file was damaged or replaced by any of this.
    let after: Vec<_> = parties.iter().map(read_shares).collect();
    assert_eq!(before, after);
}

#[test]
fn demo_runs_end_to_end() {
    let dir = TestDir::new("demo");
    let relay = RelayProcess::start();
    let p = Party::new(&dir, "demo", &relay);
    let out = p.run(&["--json", "demo", "--threshold", "2", "--parties", "3"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["child_verified"], true);
    assert_eq!(v["epoch_after_refresh"], 1);
    assert!(v["keygen_bytes_per_party"].as_u64().unwrap() > 10_000);
}

/// Import the BIP-32 test vector 1 node `m/0H/1/2H` as a 2-of-3 key, check the derived child
/// `2/1000000000` against the vector, then export it to a fourth party and get the key back.
#[test]
fn import_bip32_vector_and_export_it_back() {
    const PRIVATE: &str = "cbce0d719ecf7431d88e6a89fa1483e02e35092af60c042b1df2ff59fa424dca";
    const CHAIN: &str = "04466b9cc8e161e966409ca52986c584f07e9dc81f735db683c3ff6ec7b1503f";
    const CHILD: &str = "022a471424da5e657499d1ff51cb43c47481a03b1e77f951fe64cec9f5a48f7011";
    let dir = TestDir::new("import");
    let relay = RelayProcess::start();
    let parties: Vec<Party> =
        ["p1", "p2", "p3", "rcpt"].iter().map(|n| Party::new(&dir, n, &relay)).collect();
    let keys: Vec<String> =
        parties.iter().map(|p| p.run(&["identity", "new"]).stdout.trim().to_owned()).collect();
    let key_file = dir.path().join("key.hex");
    fs::write(&key_file, PRIVATE).unwrap();
    let setup = dir.path().join("import.json");
    let out = parties[0].run(&[
        "setup",
        "new",
        "--protocol",
        "import",
        "--private-key-file",
        key_file.to_str().unwrap(),
        "--chain-code",
        CHAIN,
        "--threshold",
        "2",
        "--party",
        &keys[0],
        "--party",
        &keys[1],
        "--party",
        &keys[2],
        "-o",
        setup.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let s = setup.to_str().unwrap();
    let k = key_file.to_str().unwrap();
    let children = vec![
        parties[0]
            .command(&["--json", "import", "--setup", s, "--private-key-file", k], &[])
            .spawn()
            .unwrap(),
        parties[1].command(&["--json", "import", "--setup", s], &[]).spawn().unwrap(),
        parties[2].command(&["--json", "import", "--setup", s], &[]).spawn().unwrap(),
    ];
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let child =
        parties[1].run(&["--json", "derive", "--key", "imported", "--path", "m/2/1000000000"]);
    let v: Value = serde_json::from_str(&child.stdout).unwrap();
    assert_eq!(v["public_key"], CHILD);

    let rkey = parties[3].run(&["export", "--new-recipient-key"]);
    assert_eq!(rkey.code, 0, "{}", rkey.stderr);
    let export = dir.path().join("export.json");
    let out = parties[0].run(&[
        "setup",
        "new",
        "--protocol",
        "export",
        "--key",
        "imported",
        "--exporters",
        "2,3",
        "--recipient-identity",
        &keys[3],
        "--recipient-key",
        rkey.stdout.trim(),
        "-o",
        export.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let e = export.to_str().unwrap();
    // Without the confirmation sentence nothing happens.
    let refused = parties[1].run(&["--quiet", "export", "--setup", e]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    harness::assert_one_line_error(&refused.stderr, "threshold custody");
    let confirm = "I understand the exported key is no longer threshold-protected";
    let result = dir.path().join("exported.json");
    let r = result.to_str().unwrap();
    let children = vec![
        parties[1].command(&["export", "--setup", e, "--confirm", confirm], &[]).spawn().unwrap(),
        parties[2].command(&["export", "--setup", e, "--confirm", confirm], &[]).spawn().unwrap(),
        parties[3]
            .command(&["export", "--setup", e, "--confirm", confirm, "--out", r], &[])
            .spawn()
            .unwrap(),
    ];
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let got: Value = serde_json::from_slice(&fs::read(&result).unwrap()).unwrap();
    assert_eq!(got["private_key"], PRIVATE);
    assert_eq!(got["chain_code"], CHAIN);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&result).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

#[test]
fn a_restored_directory_never_finishes_a_used_presignature() {
    let dir = TestDir::new("restore");
    let relay = RelayProcess::start();
    let (parties, _) = keygen_2_of_3(&dir, &relay, "vault");
    let pre_setup = dir.path().join("presign.json");
    let out = parties[0].run(&[
        "setup",
        "new",
        "--protocol",
        "presign",
        "--key",
        "vault",
        "--signers",
        "1,2",
        "-o",
        pre_setup.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let outs = harness::run_all_refs(
        &[&parties[0], &parties[1]],
        &["--json", "presign", "--setup", pre_setup.to_str().unwrap()],
    );
    let id = {
        let v: Value = serde_json::from_str(&outs[0].stdout).unwrap();
        v["presignature"].as_str().unwrap().to_owned()
    };

    // Back up party 1's directory (and, separately, its state directory), then use it.
    let p1 = &parties[0];
    let backup = dir.path().join("p1.backup");
    let state_backup = dir.path().join("p1.state.backup");
    harness::copy_dir(&p1.dest, &backup);
    harness::copy_dir(&p1.state_dir(), &state_backup);
    let finish = |m: &str| -> Vec<String> {
        ["--json", "sign", "--presignature", &id[..12], "--message-hex", m, "--hash", "keccak256"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let args = finish(MESSAGE_HEX);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let outs = harness::run_all_refs(&[&parties[0], &parties[1]], &args);
    for o in &outs {
        assert_eq!(o.code, 0, "sign --presignature failed: {}", o.stderr);
    }
    // The finish marker of the presignature is in party 2's fsynced replay file.
    let setup_hash: [u8; 32] = hex::decode(&id).unwrap().try_into().unwrap();
    let marker = hex::encode(dkls23_core::sign::finish_marker(&setup_hash));
    let used = fs::read_to_string(parties[1].dest.join("used-iids")).unwrap();
    assert!(used.lines().any(|l| l == marker), "finish marker not recorded");

    // Restore the directory alone: the presignature is back on disk, but party 1 sees that
    // its directory is behind its counter and deletes every presignature instead.
    let other = hex::encode(b"a second message for the same R");
    fs::remove_dir_all(&p1.dest).unwrap();
    harness::copy_dir(&backup, &p1.dest);
    let args = finish(&other);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let again = p1.run(&args);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(again.stderr.contains("restored from a backup or copied"), "{}", again.stderr);
    assert!(!again.stdout.contains("rsv"));
    let left = fs::read_dir(p1.dest.join("presignatures"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".presig"))
        .count();
    assert_eq!(left, 0);

    // Restore the directory and the state directory together (a whole-machine snapshot): party
    // 1 has the presignature again, but party 2 refuses a second finish, so party 1 never
    // releases its share of a second signature and nothing is signed.
    fs::remove_dir_all(&p1.dest).unwrap();
    fs::remove_dir_all(p1.state_dir()).unwrap();
    harness::copy_dir(&backup, &p1.dest);
    harness::copy_dir(&state_backup, &p1.state_dir());
    let children: Vec<_> = [&parties[0], &parties[1]]
        .iter()
        .map(|p| p.command(&args, &[("DKLS_TIMEOUT_SECS", "3")]).spawn().unwrap())
        .collect();
    let outs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let p2_err = String::from_utf8_lossy(&outs[1].stderr);
    assert_eq!(outs[1].status.code(), Some(2), "{p2_err}");
    assert!(p2_err.contains("no presignature"), "{p2_err}");
    let p1_out = String::from_utf8_lossy(&outs[0].stdout);
    assert_ne!(outs[0].status.code(), Some(0), "party 1 signed a second message");
    assert!(!p1_out.contains("rsv"));
}

/// Three party processes run keygen and signing through a relay that speaks TLS with a
/// certificate of a CA made here, trusted through RELAY_CA_FILE; a party that does not trust
/// it is refused at once with the cause and a hint, its shares untouched.
#[test]
fn keygen_and_sign_through_a_tls_relay() {
    use dkls_tls::generate::{LocalCa, Usage, Validity};
    let dir = TestDir::new("tls");
    let ca = LocalCa::new("party test CA").unwrap();
    let ca_file = dir.path().join("ca.pem");
    ca.write_cert(&ca_file).unwrap();
    let server = ca.issue(&["127.0.0.1"], Usage::Server, Validity::Current).unwrap();
    let (cert, key) = server.write(dir.path(), "relay").unwrap();
    let relay = RelayProcess::start_tls(&cert, &key, &ca_file);
    assert!(relay.url.starts_with("https://127.0.0.1:"), "{}", relay.url);

    let (parties, jsons) = keygen_2_of_3(&dir, &relay, "tls-wallet");
    let setup = sign_setup(&parties[0], &dir, "sign-tls.json", "tls-wallet", "1,2");
    let sign_args = [
        "--json",
        "sign",
        "--setup",
        &setup,
        "--message-hex",
        MESSAGE_HEX,
        "--hash",
        "keccak256",
        "--path",
        "m/0/1",
    ];
    let outs = harness::run_all_refs(&[&parties[0], &parties[1]], &sign_args);
    let sig: Value = serde_json::from_str(&outs[0].stdout).unwrap();
    assert_eq!(outs[0].code, 0, "{}", outs[0].stderr);
    assert_eq!(outs[1].code, 0, "{}", outs[1].stderr);
    verify_with_k256(sig["public_key"].as_str().unwrap(), &sig);
    let _ = jsons;

    // Without the CA: the public roots do not know it.
    let before = read_shares(&parties[2]);
    let setup = sign_setup(&parties[0], &dir, "sign-tls-2.json", "tls-wallet", "1,3");
    let started = std::time::Instant::now();
    let out = parties[2].without_relay_ca().run_env(
        &[
            "sign",
            "--setup",
            &setup,
            "--message-hex",
            MESSAGE_HEX,
            "--hash",
            "keccak256",
            "--path",
            "m/0/1",
        ],
        &[],
    );
    assert_eq!(out.code, 5, "{}", out.stderr);
    harness::assert_one_line_error(&out.stderr, "not signed by a trusted CA");
    assert!(out.stderr.contains("RELAY_CA_FILE"), "{}", out.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(read_shares(&parties[2]), before);

    // A CA file that is not one.
    let out = parties[2].run_env(
        &[
            "sign",
            "--setup",
            &setup,
            "--message-hex",
            MESSAGE_HEX,
            "--hash",
            "keccak256",
            "--path",
            "m/0/1",
        ],
        &[("RELAY_CA_FILE", setup.as_str())],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains(&setup), "{}", out.stderr);

    // Nothing was spent: with the CA, the same setup signs.
    let sign_args = [
        "sign",
        "--setup",
        &setup,
        "--message-hex",
        MESSAGE_HEX,
        "--hash",
        "keccak256",
        "--path",
        "m/0/1",
    ];
    for out in harness::run_all_refs(&[&parties[0], &parties[2]], &sign_args) {
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
}

/// Two relay processes on one Redis; the parties are given both URLs. Two parties start a
/// keygen on replica A, which is killed (SIGKILL) while they wait for the third; the third
/// joins through replica B; the first two fail over to B and the keygen completes. Then a
/// signing run with A still dead (the clients skip it) verifies under the new key.
#[test]
fn keygen_and_sign_survive_a_killed_relay_replica() {
    let Some(redis) = msg_relay_svc::testing::redis_url("dkls_party_replica_kill") else {
        return;
    };
    let prefix = msg_relay_svc::testing::unique_prefix("dkls_party_replica_kill");
    let mut a = RelayProcess::start_redis(&redis, &prefix);
    let b = RelayProcess::start_redis(&redis, &prefix);
    let both = format!("{} {}", a.url, b.url);
    let dir = TestDir::new("replica-kill");
    let parties: Vec<Party> =
        (1..=3).map(|i| Party::new(&dir, &format!("p{i}"), &a).with_relay_url(&both)).collect();
    let mut keys = Vec::new();
    for p in &parties {
        let out = p.run(&["identity", "new"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        keys.push(out.stdout.trim().to_owned());
    }
    let setup = dir.path().join("keygen.json");
    let mut args =
        vec!["setup", "new", "--protocol", "keygen", "--threshold", "2", "--label", "replicated"];
    for k in &keys {
        args.extend(["--party", k.as_str()]);
    }
    args.extend(["-o", setup.to_str().unwrap()]);
    assert_eq!(parties[0].run(&args).code, 0);
    let keygen = ["--json", "keygen", "--setup", setup.to_str().unwrap()];

    // Parties 1 and 2 start on A (listed first) and announce the session once connected.
    let mut early = Vec::new();
    for p in &parties[..2] {
        let mut child = p.command(&keygen, &[("RUST_LOG", "warn")]).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut all = String::new();
            for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
                let line = line.unwrap_or_default();
                if line.contains("keygen, session") {
                    let _ = tx.send(());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        rx.recv_timeout(std::time::Duration::from_secs(60)).expect("the party joined the session");
        early.push((child, reader));
    }
    // Their first-round messages are out; kill A while they wait for party 3.
    std::thread::sleep(std::time::Duration::from_millis(500));
    a.kill();
    let late = parties[2].with_relay_url(&b.url).command(&keygen, &[]).spawn().unwrap();
    let mut outs = Vec::new();
    for (child, reader) in early {
        let out = harness::collect(child);
        let stderr = reader.join().unwrap();
        assert_eq!(out.code, 0, "keygen failed after the failover: {stderr}");
        assert!(stderr.contains("failing over"), "the client said it failed over: {stderr}");
        outs.push(out);
    }
    let out = harness::collect(late);
    assert_eq!(out.code, 0, "{}", out.stderr);
    outs.push(out);
    let jsons: Vec<Value> = outs.iter().map(|o| serde_json::from_str(&o.stdout).unwrap()).collect();
    assert!(jsons.iter().all(|j| j["public_key"] == jsons[0]["public_key"]));

    // A stays dead: a signing run with both URLs connects to B.
    let setup = sign_setup(&parties[0], &dir, "sign.json", "replicated", "1,2");
    let outs = harness::run_all_refs(
        &[&parties[0], &parties[1]],
        &["--json", "sign", "--setup", &setup, "--message-hex", MESSAGE_HEX],
    );
    for o in &outs {
        assert_eq!(o.code, 0, "sign failed: {}", o.stderr);
    }
    let sig: Value = serde_json::from_str(&outs[0].stdout).unwrap();
    let derived =
        parties[1].run(&["derive", "--key", "replicated", "--path", "m/0/1", "--format", "json"]);
    assert_eq!(derived.code, 0, "{}", derived.stderr);
    let derived: Value = serde_json::from_str(&derived.stdout).unwrap();
    verify_with_k256(derived["public_key"].as_str().unwrap(), &sig);
}
