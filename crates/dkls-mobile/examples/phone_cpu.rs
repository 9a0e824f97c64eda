//! The mobile-to-mobile flow of `tests/python/phone.py`, written against the Rust API of this
//! crate (no bindings): the baseline for the bindings' overhead in `docs/mobile.md`.
//!
//! `cargo run --release -p dkls-mobile --example phone_cpu -- initiator|follower DIR EXCHANGE
//! RELAY_URL CA_FILE` prints `role keygen_cpu_ms sign_cpu_ms` (this process's CPU time during
//! each call, all its threads; Linux).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dkls_mobile::{
    ForeignError, HashAlgorithm, IdentityKind, OobPayload, Phone, PhoneConfig, SecureStorage,
    Session, encode_payload, mobile_session, new_instance_id, new_signer_secret, parse_payload,
    software_signer,
};

/// Files as storage, like the Python phone's.
struct Files(PathBuf);

impl Files {
    fn path(&self, key: &str) -> PathBuf {
        self.0.join(key.replace('/', "__"))
    }
}

impl SecureStorage for Files {
    fn get(&self, key: String) -> Result<Option<Vec<u8>>, ForeignError> {
        Ok(std::fs::read(self.path(&key)).ok())
    }

    fn put(&self, key: String, value: Vec<u8>) -> Result<(), ForeignError> {
        let tmp = self.path(&format!("{key}.tmp"));
        let f = std::fs::File::create(&tmp)
            .map_err(|e| ForeignError::Failed { message: e.to_string() })?;
        std::io::Write::write_all(&mut &f, &value).unwrap();
        f.sync_all().unwrap();
        std::fs::rename(tmp, self.path(&key)).unwrap();
        Ok(())
    }

    fn put_if_absent(&self, key: String, value: Vec<u8>) -> Result<bool, ForeignError> {
        match std::fs::OpenOptions::new().write(true).create_new(true).open(self.path(&key)) {
            Ok(f) => {
                std::io::Write::write_all(&mut &f, &value).unwrap();
                f.sync_all().unwrap();
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    }

    fn delete(&self, key: String) -> Result<(), ForeignError> {
        let _ = std::fs::remove_file(self.path(&key));
        Ok(())
    }
}

/// This process's CPU time: the sum over its threads of the nanoseconds in
/// `/proc/self/task/*/schedstat` (Linux; the runtime's threads live as long as the process).
fn cpu() -> Duration {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let stat =
            std::fs::read_to_string(task.unwrap().path().join("schedstat")).unwrap_or_default();
        total += stat.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    Duration::from_nanos(total)
}

fn publish(exchange: &Path, name: &str, text: &str) {
    let tmp = exchange.join(format!("{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, exchange.join(name)).unwrap();
}

fn wait_for(exchange: &Path, name: &str) -> String {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(exchange.join(name)) {
            return text;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no {name}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (role, dir, exchange, url, ca) =
        (&args[1], &args[2], Path::new(&args[3]), &args[4], &args[5]);
    std::fs::create_dir_all(dir).unwrap();
    let storage = Arc::new(Files(PathBuf::from(dir)));
    let signer =
        software_signer(IdentityKind::Ed25519, new_signer_secret(IdentityKind::Ed25519)).unwrap();
    let config = PhoneConfig {
        relay_url: url.clone(),
        relay_ca_pem: Some(std::fs::read_to_string(ca).unwrap()),
        relay_pins: Vec::new(),
        application: String::new(),
        round_timeout_secs: 30,
    };
    let phone = Phone::new(config, storage, signer.clone(), None).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        phone.check_relay().await.unwrap();
        let mine = OobPayload {
            instance_id: new_instance_id(),
            key_kind: signer.key_kind(),
            verifying_key: signer.verifying_key(),
            relay_url: url.clone(),
        };
        let other = if role == "initiator" { "follower" } else { "initiator" };
        publish(exchange, role, &encode_payload(mine.clone()).unwrap());
        let theirs = parse_payload(wait_for(exchange, other)).unwrap();
        let session = if role == "initiator" {
            mobile_session(mine, theirs).unwrap()
        } else {
            mobile_session(theirs, mine).unwrap()
        };
        let t = cpu();
        phone.keygen("wallet".into(), 2, session.clone()).await.unwrap();
        let keygen = cpu() - t;
        if role == "initiator" {
            publish(exchange, "sign-session", &hex::encode(new_instance_id()));
        }
        let sid = hex::decode(wait_for(exchange, "sign-session")).unwrap();
        let sign_session =
            Session { session_id: sid, players: vec![1, 2], public_keys: session.public_keys };
        let t = cpu();
        phone
            .sign(
                "wallet".into(),
                sign_session,
                b"hello from two phones".to_vec(),
                HashAlgorithm::Keccak256,
                "m/44/60/0/0/0".into(),
            )
            .await
            .unwrap();
        let sign = cpu() - t;
        println!("{role} {:.1} {:.1}", keygen.as_secs_f64() * 1e3, sign.as_secs_f64() * 1e3);
    });
}
