//! The generated Python bindings, run for real: two phone processes (`tests/python/phone.py`,
//! each with its own storage) exchange the out-of-band payload, run 2-of-2 key generation and
//! KECCAK256 signing through a TLS relay with a certificate made here, and the signature is
//! checked with OpenSSL (in the phones) and k256 (here). The error paths a phone sees: a relay
//! whose CA it does not trust, plaintext to the TLS port, a bad payload.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use dkls_tls::generate::{LocalCa, Usage, Validity};
use dkls_tls::{ServerTls, ServerTlsFiles};
use k256::ecdsa::signature::hazmat::PrehashVerifier as _;
use msg_relay_svc::testing::{TestRelay, spawn_relay_tls};

const PHONE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/phone.py");

/// The shared library the bindings load (built by `cargo test` as the `dkls_mobile_ffi` example).
fn library() -> PathBuf {
    let bindgen = PathBuf::from(env!("CARGO_BIN_EXE_uniffi-bindgen"));
    let library = bindgen.parent().unwrap().join("examples").join("libdkls_mobile_ffi.so");
    assert!(
        library.exists(),
        "{} is missing: `cargo test -p dkls-mobile` builds it (the dkls_mobile_ffi example)",
        library.display()
    );
    library
}

/// Runs `uniffi-bindgen generate` for `language` into `out`.
fn generate(language: &str, out: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_uniffi-bindgen"))
        .args(["generate", "--language", language, "--library"])
        .arg(library())
        .arg("--out-dir")
        .arg(out)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "uniffi-bindgen failed for {language}");
}

/// Generates the Python module next to the library it loads; returns its directory.
fn bindings(dir: &Path) -> PathBuf {
    let out = dir.join("bindings");
    generate("python", &out);
    std::fs::copy(library(), out.join("libdkls_mobile_ffi.so")).unwrap();
    out
}

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The Kotlin and Swift sources an app compiles: generated from the same library, with the
/// whole API in them. (No Kotlin or Swift compiler is on the CI machine; `docs/mobile.md` says
/// how an app builds them.)
#[test]
fn kotlin_and_swift_sources_are_generated() {
    let dir = tempfile::tempdir().unwrap();
    for (language, extension, needles) in [
        (
            "kotlin",
            "kt",
            [
                "class Phone",
                "suspend fun `keygen`",
                "interface SecureStorage",
                "sealed class MobileException",
            ],
        ),
        (
            "swift",
            "swift",
            ["class Phone", "func keygen(", "protocol SecureStorage", "enum MobileError"],
        ),
    ] {
        let out = dir.path().join(language);
        generate(language, &out);
        let source = files(&out)
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == extension))
            .unwrap_or_else(|| panic!("no .{extension} file generated"));
        let text = std::fs::read_to_string(&source).unwrap();
        for needle in needles {
            assert!(text.contains(needle), "{} lacks {needle:?}", source.display());
        }
    }
}

fn python() -> Command {
    let probe = Command::new("python3").args(["-c", "import cryptography"]).output();
    match probe {
        Ok(o) if o.status.success() => Command::new("python3"),
        _ => panic!(
            "python3 with the `cryptography` package is needed for the binding tests \
             (`.ci/run` installs it: pip install cryptography)"
        ),
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    bindings: PathBuf,
    ca_file: PathBuf,
    relay: TestRelay,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let bindings = bindings(dir.path());
    let ca = LocalCa::new("phone test CA").unwrap();
    let ca_file = dir.path().join("ca.pem");
    ca.write_cert(&ca_file).unwrap();
    let server = ca.issue(&["127.0.0.1"], Usage::Server, Validity::Current).unwrap();
    let (cert, key) = server.write(dir.path(), "relay").unwrap();
    let tls = ServerTls::load(ServerTlsFiles::new(cert, key)).unwrap();
    let relay = spawn_relay_tls(Default::default(), tls).await.unwrap();
    Fixture { dir, bindings, ca_file, relay }
}

impl Fixture {
    fn phone(&self, args: &[&str]) -> Command {
        let mut c = python();
        c.arg(PHONE)
            .args(args)
            .env("PYTHONPATH", &self.bindings)
            .env("PYTHONDONTWRITEBYTECODE", "1");
        c
    }
}

/// Waits for a child without blocking the relay's runtime.
async fn finish(mut cmd: Command, limit: Duration) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > limit {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_python_phones_generate_and_sign_through_a_tls_relay() {
    let f = fixture().await;
    let exchange = f.dir.path().join("exchange");
    std::fs::create_dir_all(&exchange).unwrap();
    let url = f.relay.url().to_owned();
    let ca = f.ca_file.to_str().unwrap().to_owned();
    let run = |role: &str, kind: &str| {
        let dir = f.dir.path().join(role);
        f.phone(&[
            "mobile",
            "--role",
            role,
            "--kind",
            kind,
            "--dir",
            dir.to_str().unwrap(),
            "--exchange",
            exchange.to_str().unwrap(),
            "--relay",
            &url,
            "--ca",
            &ca,
        ])
    };
    let limit = Duration::from_secs(120);
    let (a, b) = tokio::join!(
        finish(run("initiator", "ed25519"), limit),
        finish(run("follower", "p256"), limit)
    );
    assert!(a.status.success(), "initiator: {}", text(&a));
    assert!(b.status.success(), "follower: {}", text(&b));
    let a: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&b.stdout).unwrap();
    assert_eq!((a["player"].as_u64(), b["player"].as_u64()), (Some(1), Some(2)));
    for field in ["public_key", "address", "derived_public_key", "r", "s", "rsv", "message_hash"] {
        assert_eq!(a[field], b[field], "{field}");
    }
    assert!(a["rounds"].as_array().unwrap().iter().any(|r| r == "dkg:4"), "{}", a["rounds"]);

    // The hash is KECCAK256 of the message, and the signature verifies with k256 too.
    use sha3::Digest as _;
    let message = hex::decode(a["message"].as_str().unwrap()).unwrap();
    let hash: [u8; 32] = sha3::Keccak256::digest(&message).into();
    assert_eq!(hex::encode(hash), a["message_hash"].as_str().unwrap());
    let key = hex::decode(a["derived_public_key"].as_str().unwrap()).unwrap();
    let key = k256::ecdsa::VerifyingKey::from_sec1_bytes(&key).unwrap();
    let rs =
        hex::decode(format!("{}{}", a["r"].as_str().unwrap(), a["s"].as_str().unwrap())).unwrap();
    key.verify_prehash(&hash, &k256::ecdsa::Signature::from_slice(&rs).unwrap()).unwrap();
    f.relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_phone_is_told_what_is_wrong() {
    let f = fixture().await;
    let dir = f.dir.path().join("phone");
    let dir = dir.to_str().unwrap();
    let limit = Duration::from_secs(60);

    // Without the CA: the bundled public roots do not know it.
    let started = Instant::now();
    let out =
        finish(f.phone(&["check-relay", "--dir", dir, "--relay", f.relay.url()]), limit).await;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("MobileError.Relay") && said.contains("not signed by a trusted CA"),
        "{}",
        text(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());

    // Plain ws:// to the TLS port.
    let plain = f.relay.url().replace("https://", "http://");
    let out = finish(f.phone(&["check-relay", "--dir", dir, "--relay", &plain]), limit).await;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("speaks TLS on this port"), "{}", text(&out));

    // With the CA it connects.
    let ca = f.ca_file.to_str().unwrap();
    let out = finish(
        f.phone(&["check-relay", "--dir", dir, "--relay", f.relay.url(), "--ca", ca]),
        limit,
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok", "{}", text(&out));

    // A key generation cancelled by the app (its peer never came) stores nothing.
    let out =
        finish(f.phone(&["cancel", "--dir", dir, "--relay", f.relay.url(), "--ca", ca]), limit)
            .await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "cancelled, nothing stored",
        "{}",
        text(&out)
    );

    // A payload that is not one, and one of a future version.
    for (payload, expected) in
        [("hello", "does not start with"), ("dkls1:Ag", "version 2 is not supported")]
    {
        let out = finish(f.phone(&["parse", payload]), limit).await;
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains("MobileError.Payload") && said.contains(expected), "{}", text(&out));
    }
    f.relay.stop().await;
}

/// The phone + server flow: a Python phone (P-256 identity) is the dynamic player 1 of a key
/// with an `mpc-node` (player 2, TLS SDK API, TLS relay); the test plays the app's backend,
/// which hands both the same sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_phone_and_a_node_generate_and_sign_over_tls() {
    use dkls23_core::identity::{Ed25519Identity, IdentitySigner as _};
    let f = fixture().await;
    let exchange = f.dir.path().join("exchange");
    std::fs::create_dir_all(&exchange).unwrap();
    let node_identity = Ed25519Identity::from_seed(&[7; 32]).public_key();
    let p = |name: &str| f.dir.path().join(name).display().to_string();
    let toml = format!(
        "listen = \"127.0.0.1:0\"\nrelay_urls = [\"{relay}\"]\ndatabase_url = \"memory:\"\n\
         [node]\nindex = 2\nidentity_key = \"ed25519:{seed}\"\n\
         [[players]]\nindex = 2\npublic_key = \"{node_identity}\"\n\
         [[api_keys]]\napp = \"wallet-app\"\nsha256 = \"{hash}\"\n\
         [tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n\
         [relay_tls]\nca_file = \"{ca}\"\npublic_roots = false\n",
        relay = f.relay.url(),
        seed = hex::encode([7u8; 32]),
        hash = mpc_node::config::hash_api_key("backend-key"),
        cert = p("relay.pem"),
        key = p("relay.key"),
        ca = p("ca.pem"),
    );
    let config = mpc_node::config::parse(&toml, Path::new("."), &|_| None).unwrap();
    let node = mpc_node::server::RunningNode::start(config).await.unwrap();
    let trust = msg_relay_client::ClientTls::builder()
        .public_roots(false)
        .ca_file(&f.ca_file)
        .unwrap()
        .build()
        .unwrap();
    let backend =
        mpc_node_client::Client::new(&node.url(), "backend-key").unwrap().with_tls(trust).unwrap();

    let ca = f.ca_file.to_str().unwrap().to_owned();
    let phone = f.phone(&[
        "server",
        "--dir",
        &p("phone"),
        "--relay",
        f.relay.url(),
        "--ca",
        &ca,
        "--exchange",
        exchange.to_str().unwrap(),
        "--app",
        "wallet-app",
    ]);
    let phone = tokio::spawn(finish(phone, Duration::from_secs(120)));

    let wait = |name: &str| {
        let path = exchange.join(name);
        async move {
            let started = Instant::now();
            loop {
                if let Ok(text) = std::fs::read_to_string(&path) {
                    return text;
                }
                assert!(started.elapsed() < Duration::from_secs(60), "no {}", path.display());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let phone_identity = wait("phone.identity").await;
    let public_keys = std::collections::BTreeMap::from([
        (1u16, phone_identity.clone()),
        (2u16, node_identity.to_string()),
    ]);
    let write = |name: &str, value: serde_json::Value| {
        let tmp = exchange.join(format!("{name}.tmp"));
        std::fs::write(&tmp, value.to_string()).unwrap();
        std::fs::rename(tmp, exchange.join(name)).unwrap();
    };
    let session = |sid: &str| mpc_node_client::api::SessionConfig {
        session_id: sid.to_owned(),
        players: vec![1, 2],
        public_keys: public_keys.clone(),
    };
    let sid = hex::encode(dkls_mobile::new_instance_id());
    write(
        "keygen.json",
        serde_json::json!({"key_id": "user-7", "session_id": sid, "players": [1, 2], "public_keys": public_keys}),
    );
    let key = backend
        .generate_key(&mpc_node_client::api::GenerateKeyRequest {
            key_id: Some("user-7".into()),
            threshold: 2,
            curve: "secp256k1".into(),
            session: session(&sid),
        })
        .await
        .unwrap();
    let sid = hex::encode(dkls_mobile::new_instance_id());
    let message = hex::encode(b"pay 1 ETH");
    write(
        "sign.json",
        serde_json::json!({"session_id": sid, "players": [1, 2], "public_keys": public_keys, "message": message, "path": "m/44/60/0/0/0"}),
    );
    let sig = backend
        .sign(
            "user-7",
            &mpc_node_client::api::SignRequestBody {
                session: session(&sid),
                message_hash: None,
                message: Some(message),
                hash_algorithm: Some("KECCAK256".into()),
                path: Some("m/44/60/0/0/0".into()),
                presignature_id: None,
            },
        )
        .await
        .unwrap();
    let out = phone.await.unwrap();
    assert!(out.status.success(), "phone: {}", text(&out));
    let said: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(said["public_key"].as_str(), key.public_key.as_deref());
    assert_eq!(said["player"], 1);
    assert_eq!(
        (said["r"].as_str().unwrap(), said["s"].as_str().unwrap()),
        (sig.r.as_str(), sig.s.as_str())
    );
    let pk =
        k256::ecdsa::VerifyingKey::from_sec1_bytes(&hex::decode(&sig.public_key).unwrap()).unwrap();
    let hash: [u8; 32] = hex::decode(&sig.message_hash).unwrap().try_into().unwrap();
    let rs = hex::decode(format!("{}{}", sig.r, sig.s)).unwrap();
    pk.verify_prehash(&hash, &k256::ecdsa::Signature::from_slice(&rs).unwrap()).unwrap();
    node.stop().await;
    f.relay.stop().await;
}
