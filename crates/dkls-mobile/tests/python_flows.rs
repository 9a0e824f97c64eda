//! The generated Python bindings, run for real against the real services: the relay
//! (`msg-relay-svc`) and the node (`mpc-node run`) are processes serving TLS with certificates
//! made here, and every phone is a Python process (`tests/python/phone.py`) with its own
//! storage.
//!
//! - Mobile to mobile: two phones exchange the out-of-band payload and run 2-of-2 key
//!   generation and KECCAK256 signing; one of them loses its connection mid-session and
//!   finishes anyway. The signature is checked with OpenSSL (in the phones) and k256 (here).
//! - A phone killed mid-session leaves no share; the next session works. A phone killed
//!   mid-refresh: its peer's refresh is settled or ends `Undecided`, and both sign afterwards.
//! - Phone + server: keygen, sign, presign + sign from a presignature, refresh, sign again.
//! - The error paths a phone sees: a relay whose CA it does not trust, plaintext to the TLS
//!   port, a bad payload, a cancelled operation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dkls_tls::generate::{LocalCa, Usage, Validity};
use k256::ecdsa::signature::hazmat::PrehashVerifier as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

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
            vec![
                "class Phone",
                "suspend fun `keygen`",
                "suspend fun `signWithPresignature`",
                "suspend fun `reshare`",
                "fun `xpub`",
                "class ExportRecipient",
                "interface SecureStorage",
                "sealed class MobileException",
            ],
        ),
        (
            "swift",
            "swift",
            vec![
                "class Phone",
                "func keygen(",
                "func signWithPresignature(",
                "func reshare(",
                "func xpub(",
                "class ExportRecipient",
                "protocol SecureStorage",
                "enum MobileError",
            ],
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

/// A workspace binary, next to `uniffi-bindgen` (`cargo test --workspace` builds them all).
fn workspace_bin(name: &str) -> PathBuf {
    let bindgen = PathBuf::from(env!("CARGO_BIN_EXE_uniffi-bindgen"));
    let bin = bindgen.with_file_name(name);
    assert!(
        bin.exists(),
        "{} is missing: these tests run the real services; build them first \
         (`cargo test --workspace` does, or `cargo build -p msg-relay-svc -p mpc-node`)",
        bin.display()
    );
    bin
}

/// A service process, killed when dropped.
struct Service {
    child: std::process::Child,
    /// The address it listens on.
    addr: SocketAddr,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    /// Starts `cmd` and waits for the log line containing `listening` (on its standard output
    /// or, with `stderr`, its standard error) to learn its address.
    fn start(mut cmd: Command, stderr: bool, listening: &'static str) -> Self {
        cmd.env("RUST_LOG", "info").stdin(Stdio::null());
        if stderr {
            cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        } else {
            cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        }
        let mut service = Self { child: cmd.spawn().unwrap(), addr: ([0, 0, 0, 0], 0).into() };
        let out: Box<dyn std::io::Read + Send> = if stderr {
            Box::new(service.child.stderr.take().unwrap())
        } else {
            Box::new(service.child.stdout.take().unwrap())
        };
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            // Keep reading to the end so that the service never blocks on a full pipe.
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // On a panic the service is dropped, which kills it.
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("{cmd:?} did not log {listening:?}: {e}"));
            if line.contains(listening) {
                service.addr = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("addr="))
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_else(|| panic!("no addr= in {line:?}"));
                return service;
            }
        }
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    bindings: PathBuf,
    ca_file: PathBuf,
    relay: Service,
}

/// Generated bindings, a CA and a certificate for 127.0.0.1 (`relay.pem` / `relay.key`, also
/// used by the node), and a TLS relay process.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let bindings = bindings(dir.path());
    let ca = LocalCa::new("phone test CA").unwrap();
    let ca_file = dir.path().join("ca.pem");
    ca.write_cert(&ca_file).unwrap();
    let server = ca.issue(&["127.0.0.1"], Usage::Server, Validity::Current).unwrap();
    let (cert, key) = server.write(dir.path(), "relay").unwrap();
    let mut cmd = Command::new(workspace_bin("msg-relay-svc"));
    cmd.args(["--listen", "127.0.0.1:0", "--tls-cert"]).arg(cert).arg("--tls-key").arg(key);
    let relay = Service::start(cmd, false, "relay listening (TLS)");
    Fixture { dir, bindings, ca_file, relay }
}

/// A TCP proxy to `target` that cuts the first connection once it has carried `cut_after`
/// bytes towards the client (a phone losing its network mid-session); later connections
/// pass.
struct CutProxy {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    cut: Arc<AtomicBool>,
}

async fn cut_proxy(target: SocketAddr, cut_after: usize) -> CutProxy {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let cut = Arc::new(AtomicBool::new(false));
    let (count, cut_flag) = (connections.clone(), cut.clone());
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let first = count.fetch_add(1, Ordering::SeqCst) == 0;
            let cut = cut_flag.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(target).await else { return };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = async {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n @ 1..) = cr.read(&mut buf).await {
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                let down = async {
                    let mut buf = vec![0u8; 16 * 1024];
                    let mut carried = 0;
                    while let Ok(n @ 1..) = sr.read(&mut buf).await {
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        carried += n;
                        if first && carried >= cut_after {
                            cut.store(true, Ordering::SeqCst);
                            break;
                        }
                    }
                };
                // Whichever direction ends first ends the connection (both halves dropped).
                tokio::select! { () = up => {}, () = down => {} }
            });
        }
    });
    CutProxy { addr, connections, cut }
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

impl Fixture {
    /// The `mobile` command of one phone (storage in `<dir>/<role>`, payloads through
    /// `exchange`), reaching the relay at `relay`.
    fn mobile(
        &self,
        role: &str,
        kind: &str,
        relay: &str,
        exchange: &Path,
        extra: &[&str],
    ) -> Command {
        let dir = self.dir.path().join(role);
        let mut args = vec![
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
            relay,
            "--ca",
            self.ca_file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.phone(&args)
    }

    fn exchange(&self, name: &str) -> PathBuf {
        let exchange = self.dir.path().join(name);
        std::fs::create_dir_all(&exchange).unwrap();
        exchange
    }
}

/// Checks the two phones' reports of one mobile-to-mobile run; returns the public key.
fn check_mobile_run(a: &Output, b: &Output) -> String {
    assert!(a.status.success(), "initiator: {}", text(a));
    assert!(b.status.success(), "follower: {}", text(b));
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
    a["public_key"].as_str().unwrap().to_owned()
}

/// Bytes towards the initiator after which its first connection is cut: past the TLS
/// handshake and the relay check, well before its key generation and signing are done.
const CUT_AFTER: usize = 24 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_python_phones_generate_and_sign_through_a_tls_relay_across_a_lost_connection() {
    let f = fixture();
    let exchange = f.exchange("exchange");
    // The initiator reaches the relay through a link that drops once, mid-session (its
    // payload names the relay itself, as the follower reaches it).
    let proxy = cut_proxy(f.relay.addr, CUT_AFTER).await;
    let through_proxy = format!("https://{}", proxy.addr);
    let relay = f.relay.url();
    let limit = Duration::from_secs(120);
    let flaky = ["--payload-relay", relay.as_str()];
    let (a, b) = tokio::join!(
        finish(f.mobile("initiator", "ed25519", &through_proxy, &exchange, &flaky), limit),
        finish(f.mobile("follower", "p256", &f.relay.url(), &exchange, &[]), limit)
    );
    check_mobile_run(&a, &b);
    assert!(proxy.cut.load(Ordering::SeqCst), "the connection was never cut");
    assert!(proxy.connections.load(Ordering::SeqCst) >= 2, "the initiator never reconnected");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_killed_mid_keygen_leaves_no_share_and_the_next_keygen_works() {
    let f = fixture();
    let url = f.relay.url();
    let limit = Duration::from_secs(60);
    let quick = ["--round-timeout", "3"];
    // The initiator is killed (SIGKILL) after the second round of key generation; its peer
    // gives up after its round timeout.
    let exchange = f.exchange("first");
    let die = ["--die-after", "dkg:2", "--round-timeout", "3"];
    let (a, b) = tokio::join!(
        finish(f.mobile("initiator", "ed25519", &url, &exchange, &die), limit),
        finish(f.mobile("follower", "ed25519", &url, &exchange, &quick), limit)
    );
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(a.status.signal(), Some(9), "the initiator was to be killed: {}", text(&a));
    assert!(!b.status.success(), "the follower cannot finish alone: {}", text(&b));
    assert!(String::from_utf8_lossy(&b.stderr).contains("MobileError"), "{}", text(&b));
    for role in ["initiator", "follower"] {
        let left: Vec<_> = files(&f.dir.path().join(role))
            .into_iter()
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("share"))
            .collect();
        assert!(left.is_empty(), "{role} kept a partial share: {left:?}");
    }
    // The same two phones (same storage, same identities), fresh instance ids: it works.
    let exchange = f.exchange("second");
    let (a, b) = tokio::join!(
        finish(f.mobile("initiator", "ed25519", &url, &exchange, &quick), limit),
        finish(f.mobile("follower", "ed25519", &url, &exchange, &quick), limit)
    );
    check_mobile_run(&a, &b);
}

impl Fixture {
    /// The `refresh` command of one phone (the storage `mobile` used for `role`).
    fn refresh(&self, role: &str, exchange: &Path, extra: &[&str]) -> Command {
        let dir = self.dir.path().join(role);
        let relay = self.relay.url();
        let mut args = vec![
            "refresh",
            "--role",
            role,
            "--dir",
            dir.to_str().unwrap(),
            "--exchange",
            exchange.to_str().unwrap(),
            "--relay",
            relay.as_str(),
            "--ca",
            self.ca_file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.phone(&args)
    }
}

/// The JSON line a phone printed.
fn report(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", text(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

/// A refresh cut short by the follower app being killed (SIGKILL), then the app started again
/// on the same storage and both phones sign:
/// - killed after the acknowledgements were exchanged (`reshare:4`): the initiator finishes
///   at the new epoch; the restarted follower finds its staged share, confirms it from the
///   initiator's acknowledgement at the relay and signs at the new epoch with it;
/// - killed before staging and acknowledging (`reshare:3`): the initiator's refresh ends in the
///   typed `MobileError.Undecided` for the new epoch (its new share is staged, the follower's
///   acknowledgement never comes); it keeps its current share and both sign at the old epoch.
/// Either way the signature verifies under the unchanged public key.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_cut_short_by_a_killed_phone_is_settled_or_undecided_and_signing_goes_on() {
    use sha3::Digest as _;
    use std::os::unix::process::ExitStatusExt as _;
    let f = fixture();
    let url = f.relay.url();
    let limit = Duration::from_secs(90);
    let exchange = f.exchange("keygen");
    let (a, b) = tokio::join!(
        finish(f.mobile("initiator", "ed25519", &url, &exchange, &[]), limit),
        finish(f.mobile("follower", "ed25519", &url, &exchange, &[]), limit)
    );
    let public_key = check_mobile_run(&a, &b);

    for (case, die, expected) in
        [("settled", "reshare:4", "ok"), ("undecided", "reshare:3", "MobileError.Undecided")]
    {
        let exchange = f.exchange(case);
        // Only the initiator waits briefly: it is the one left waiting for the follower.
        let initiator = finish(f.refresh("initiator", &exchange, &["--round-timeout", "3"]), limit);
        let follower = async {
            let killed =
                finish(f.refresh("follower", &exchange, &["--die-after", die]), limit).await;
            let resumed = finish(f.refresh("follower", &exchange, &["--resume"]), limit).await;
            (killed, resumed)
        };
        let (a, (killed, b)) = tokio::join!(initiator, follower);
        assert_eq!(killed.status.signal(), Some(9), "{case}: not killed: {}", text(&killed));
        let (a, b) = (report(&a), report(&b));
        assert_eq!(a["refresh"], expected, "{case}: {a}");
        if case == "undecided" {
            // The first case moved the key to epoch 1; this refresh was to make epoch 2.
            assert_eq!(a["epoch"], 2, "{a}");
            assert!(a["error"].as_str().unwrap().contains("waiting for parties [2]"), "{a}");
        } else {
            assert_eq!(a["refreshed_public_key"], public_key.as_str(), "{a}");
        }
        for field in ["r", "s", "der", "message_hash"] {
            assert_eq!(a[field], b[field], "{case}: {field}");
        }
        for r in [&a, &b] {
            assert_eq!(r["public_key"], public_key.as_str(), "{case}: {r}");
        }
        let message = hex::decode(a["message"].as_str().unwrap()).unwrap();
        let hash: [u8; 32] = sha3::Keccak256::digest(&message).into();
        assert_eq!(hex::encode(hash), a["message_hash"].as_str().unwrap());
        let key =
            k256::ecdsa::VerifyingKey::from_sec1_bytes(&hex::decode(&public_key).unwrap()).unwrap();
        let der = hex::decode(a["der"].as_str().unwrap()).unwrap();
        key.verify_prehash(&hash, &k256::ecdsa::Signature::from_der(&der).unwrap()).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_phone_is_told_what_is_wrong() {
    let f = fixture();
    let relay = f.relay.url();
    let dir = f.dir.path().join("phone");
    let dir = dir.to_str().unwrap();
    let limit = Duration::from_secs(60);

    // Without the CA: the bundled public roots do not know it.
    let started = Instant::now();
    let out = finish(f.phone(&["check-relay", "--dir", dir, "--relay", &relay]), limit).await;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("MobileError.Relay") && said.contains("not signed by a trusted CA"),
        "{}",
        text(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());

    // Plain ws:// to the TLS port.
    let plain = relay.replace("https://", "http://");
    let out = finish(f.phone(&["check-relay", "--dir", dir, "--relay", &plain]), limit).await;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("speaks TLS on this port"), "{}", text(&out));

    // With the CA it connects.
    let ca = f.ca_file.to_str().unwrap();
    let out =
        finish(f.phone(&["check-relay", "--dir", dir, "--relay", &relay, "--ca", ca]), limit).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok", "{}", text(&out));

    // A key generation cancelled by the app (its peer never came) stores nothing.
    let out =
        finish(f.phone(&["cancel", "--dir", dir, "--relay", &relay, "--ca", ca]), limit).await;
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
}

/// The phone + server flow: a Python phone (P-256 identity) is the dynamic player 1 of a key
/// with an `mpc-node` process (player 2, TLS SDK API, TLS relay); the test plays the app's
/// backend, which hands both the same sessions: keygen, sign, presign + sign from a
/// presignature, refresh, sign again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_phone_and_a_node_run_the_key_lifecycle_over_tls() {
    use dkls23_core::identity::{Ed25519Identity, IdentitySigner as _};
    use mpc_node_client::api::{
        GenerateKeyRequest, PresignRequestBody, RefreshRequestBody, SessionConfig, SignRequestBody,
    };
    use sha2::Digest as _;

    let f = fixture();
    let exchange = f.exchange("exchange");
    let node_identity = Ed25519Identity::from_seed(&[7; 32]).public_key();
    let p = |name: &str| f.dir.path().join(name).display().to_string();
    let toml = format!(
        "listen = \"127.0.0.1:0\"\nrelay_urls = [\"{relay}\"]\ndatabase_url = \"sqlite://{db}\"\n\
         master_password = \"test only\"\n\
         [node]\nindex = 2\nidentity_key = \"ed25519:{seed}\"\n\
         [[players]]\nindex = 2\npublic_key = \"{node_identity}\"\n\
         [[api_keys]]\napp = \"wallet-app\"\nsha256 = \"{hash}\"\n\
         [tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n\
         [relay_tls]\nca_file = \"{ca}\"\npublic_roots = false\n",
        relay = f.relay.url(),
        db = p("node.db"),
        seed = hex::encode([7u8; 32]),
        hash = hex::encode(sha2::Sha256::digest(b"backend-key")),
        cert = p("relay.pem"),
        key = p("relay.key"),
        ca = p("ca.pem"),
    );
    let config = f.dir.path().join("node.toml");
    std::fs::write(&config, toml).unwrap();
    let mut cmd = Command::new(workspace_bin("mpc-node"));
    cmd.arg("run").arg("--config").arg(&config);
    let node = Service::start(cmd, true, "mpc-node listening (TLS)");
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
        &f.relay.url(),
        "--ca",
        &ca,
        "--exchange",
        exchange.to_str().unwrap(),
        "--app",
        "wallet-app",
    ]);
    let phone = tokio::spawn(finish(phone, Duration::from_secs(180)));

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
    let mut step = 0;
    let mut to_phone = |value: serde_json::Value| {
        step += 1;
        let name = format!("step-{step}.json");
        let tmp = exchange.join(format!("{name}.tmp"));
        std::fs::write(&tmp, value.to_string()).unwrap();
        std::fs::rename(tmp, exchange.join(name)).unwrap();
    };
    let session = || SessionConfig {
        session_id: hex::encode(dkls_mobile::new_instance_id()),
        players: vec![1, 2],
        public_keys: public_keys.clone(),
    };
    let step_json = |op: &str, s: &SessionConfig, extra: serde_json::Value| {
        let mut v = serde_json::json!({
            "op": op, "key_id": "user-7", "session_id": s.session_id,
            "players": s.players, "public_keys": s.public_keys,
        });
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v
    };
    let path = "m/44/60/0/0/0";
    let sign_body =
        |s: &SessionConfig, message: &str, presignature_id: Option<String>| SignRequestBody {
            session: s.clone(),
            message_hash: None,
            message: Some(message.to_owned()),
            hash_algorithm: Some("KECCAK256".into()),
            path: Some(path.into()),
            presignature_id,
        };

    // The backend's calls; on a failure the phone's own report is shown with it.
    let backend_run = async {
        // Keygen.
        let s = session();
        to_phone(step_json("keygen", &s, serde_json::json!({"threshold": 2})));
        let key = backend
            .generate_key(&GenerateKeyRequest {
                key_id: Some("user-7".into()),
                threshold: 2,
                curve: "secp256k1".into(),
                session: s,
            })
            .await?;
        // Sign.
        let first = hex::encode(b"pay 1 ETH");
        let s = session();
        to_phone(step_json("sign", &s, serde_json::json!({"message": first, "path": path})));
        let sig1 = backend.sign("user-7", &sign_body(&s, &first, None)).await?;
        // Presign two; sign from the first (one round online).
        let s = session();
        to_phone(step_json("presign", &s, serde_json::json!({"count": 2, "path": path})));
        let presigned = backend
            .presign(
                "user-7",
                &PresignRequestBody { session: s, count: 2, path: Some(path.into()) },
            )
            .await?;
        let id = presigned.presignature_ids[0].clone();
        let second = hex::encode(b"pay 2 ETH");
        let mut online = session();
        online.session_id = id.clone();
        to_phone(step_json(
            "finish",
            &online,
            serde_json::json!({"presignature_id": id, "message": second, "path": path}),
        ));
        let sig2 = backend.sign("user-7", &sign_body(&online, &second, Some(id))).await?;
        // Refresh (the node's presignatures and the phone's are gone with the old shares); sign.
        let s = session();
        to_phone(step_json("refresh", &s, serde_json::json!({})));
        let refreshed = backend.refresh("user-7", &RefreshRequestBody { session: s }).await?;
        assert_eq!(refreshed.epoch, 1);
        assert_eq!(refreshed.public_key, key.public_key);
        let third = hex::encode(b"pay 3 ETH");
        let s = session();
        to_phone(step_json("sign", &s, serde_json::json!({"message": third, "path": path})));
        let sig3 = backend.sign("user-7", &sign_body(&s, &third, None)).await?;
        to_phone(step_json("xpub", &session(), serde_json::json!({"path": "m/44/60/0"})));
        let xpub = backend.xpub("user-7", "m/44/60/0", "mainnet").await?;
        Ok::<_, mpc_node_client::ClientError>((key, presigned, sig1, sig2, sig3, xpub))
    }
    .await;
    to_phone(serde_json::json!({"op": "done"}));
    let out = phone.await.unwrap();
    let (key, presigned, sig1, sig2, sig3, xpub) = match backend_run {
        Ok(v) => v,
        Err(e) => panic!("the node failed: {e}\nphone: {}", text(&out)),
    };
    assert!(out.status.success(), "phone: {}", text(&out));
    let said: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ops: Vec<_> = said.iter().map(|r| r["op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["keygen", "sign", "presign", "finish", "refresh", "sign", "xpub"]);
    assert_eq!(said[0]["public_key"].as_str(), key.public_key.as_deref());
    assert_eq!(said[0]["player"], 1);
    assert_eq!(said[2]["presignature_ids"], serde_json::json!(presigned.presignature_ids));
    assert_eq!(said[3]["reuse"], "MobileError.UnknownPresignature");
    assert_eq!(said[4]["public_key"].as_str(), key.public_key.as_deref());
    assert_eq!(said[6]["xpub"].as_str(), Some(xpub.xpub.as_str()));
    // Both sides hold the same signatures, and each verifies under the derived key.
    for (mine, theirs) in [(&said[1], &sig1), (&said[3], &sig2), (&said[5], &sig3)] {
        assert_eq!(
            (mine["r"].as_str().unwrap(), mine["s"].as_str().unwrap()),
            (theirs.r.as_str(), theirs.s.as_str())
        );
        let pk = hex::decode(&theirs.public_key).unwrap();
        let pk = k256::ecdsa::VerifyingKey::from_sec1_bytes(&pk).unwrap();
        let hash: [u8; 32] = hex::decode(&theirs.message_hash).unwrap().try_into().unwrap();
        let rs = hex::decode(format!("{}{}", theirs.r, theirs.s)).unwrap();
        pk.verify_prehash(&hash, &k256::ecdsa::Signature::from_slice(&rs).unwrap()).unwrap();
    }
}
