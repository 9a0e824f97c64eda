//! The mobile-to-mobile flow of `tests/python/phone.py`, written against the Rust API of this
//! crate (no bindings): the baseline for the bindings' overhead in `docs/mobile.md`.
//!
//! `cargo run --release -p dkls-mobile --example phone_cpu -- initiator|follower DIR EXCHANGE
//! RELAY_URL CA_FILE [SIGNS [PRESIGNS]]` prints `role keygen_ms sign_ms presign_ms online_ms`:
//! this process's CPU time during each call (all its threads; Linux), the median over SIGNS
//! signatures and PRESIGNS presign + online rounds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::path::Path;
use std::time::{Duration, Instant};

use dkls_mobile::{
    HashAlgorithm, IdentityKind, OobPayload, Phone, PhoneConfig, Session, encode_payload,
    file_storage, mobile_session, new_instance_id, new_signer_secret, parse_payload,
    software_signer,
};

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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The median in milliseconds (NaN for none).
fn median_ms(v: &mut [Duration]) -> f64 {
    v.sort_unstable();
    v.get(v.len() / 2).map_or(f64::NAN, |d| ms(*d))
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
    let signs: usize = args.get(6).map_or(1, |n| n.parse().unwrap());
    let presigns: usize = args.get(7).map_or(0, |n| n.parse().unwrap());
    std::fs::create_dir_all(dir).unwrap();
    let storage = file_storage(dir.clone()).unwrap();
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
        let shared = |name: &str| {
            if role == "initiator" {
                publish(exchange, name, &hex::encode(new_instance_id()));
            }
            Session {
                session_id: hex::decode(wait_for(exchange, name)).unwrap(),
                players: vec![1, 2],
                public_keys: session.public_keys.clone(),
            }
        };
        let message = b"hello from two phones".to_vec();
        let path = "m/44/60/0/0/0".to_owned();
        let (mut sign, mut presign, mut online) = (Vec::new(), Vec::new(), Vec::new());
        for k in 0..signs {
            let s = shared(&format!("sign-session-{k}"));
            let t = cpu();
            phone
                .sign("wallet".into(), s, message.clone(), HashAlgorithm::Keccak256, path.clone())
                .await
                .unwrap();
            sign.push(cpu() - t);
        }
        for k in 0..presigns {
            let s = shared(&format!("presign-session-{k}"));
            let t = cpu();
            let ids = phone.presign("wallet".into(), s, 1, path.clone()).await.unwrap();
            presign.push(cpu() - t);
            let t = cpu();
            phone
                .sign_with_presignature(
                    "wallet".into(),
                    ids[0].clone(),
                    vec![1, 2],
                    message.clone(),
                    HashAlgorithm::Keccak256,
                    path.clone(),
                )
                .await
                .unwrap();
            online.push(cpu() - t);
        }
        println!(
            "{role} {:.1} {:.1} {:.1} {:.1}",
            ms(keygen),
            median_ms(&mut sign),
            median_ms(&mut presign),
            median_ms(&mut online)
        );
    });
}
