//! 2-of-2 signing latency (presign + sign, both parties) through the in-memory relay vs a
//! loopback `msg-relay-svc` over WebSocket. Prints a table.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use dkls23_core::KeyShare;
use dkls23_core::identity::{Ed25519Identity, IdentityPublicKey, IdentitySigner, SharedSigner};
use dkls23_core::setup::{MemoryReplayGuard, ProtocolId, Setup};
use dkls23_core::sign::SignRequest;
use dkls23_runner::{RunContext, RunOptions, run_dkg, run_sign};
use msg_relay_api::{MemoryRelay, Relay};
use msg_relay_client::{ClientConfig, WsRelay};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

struct P {
    signer: Arc<Ed25519Identity>,
    guard: MemoryReplayGuard,
    rng: ChaCha20Rng,
}

async fn both<R: Relay + 'static>(
    relays: [Arc<R>; 2],
    ps: Vec<P>,
    work: impl Fn(Arc<R>, P, usize) -> tokio::task::JoinHandle<P>,
) -> Vec<P> {
    let mut handles = Vec::new();
    for (k, (r, p)) in relays.into_iter().zip(ps).enumerate() {
        handles.push(work(r, p, k));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

async fn measure<R: Relay + 'static>(
    relays: [Arc<R>; 2],
    rounds: usize,
    seed: u64,
) -> Vec<Duration> {
    let mut ps: Vec<P> = (1..=2u64)
        .map(|i| {
            let mut rng = ChaCha20Rng::seed_from_u64(seed + i);
            P {
                signer: Arc::new(Ed25519Identity::generate(&mut rng)),
                guard: MemoryReplayGuard::new(),
                rng,
            }
        })
        .collect();
    let keys: Vec<(u16, IdentityPublicKey)> =
        ps.iter().enumerate().map(|(i, p)| (i as u16 + 1, p.signer.public_key())).collect();
    let opts = RunOptions {
        round_timeout: Duration::from_secs(30),
        message_ttl: Some(Duration::from_secs(120)),
        ..RunOptions::default()
    };
    let setup =
        Setup::new(ProtocolId::Dkg, [seed as u8; 32], 2, 2, keys.clone(), vec![], 600).unwrap();
    let shares: Arc<std::sync::Mutex<Vec<Option<KeyShare>>>> =
        Arc::new(std::sync::Mutex::new(vec![None, None]));
    ps = both(relays.clone(), ps, |r, mut p, k| {
        let (setup, opts, shares) = (setup.clone(), opts.clone(), shares.clone());
        tokio::spawn(async move {
            let signer: SharedSigner = p.signer.clone();
            let s = run_dkg(
                &RunContext::new(r.as_ref(), signer, &p.guard).with_options(opts.clone()),
                &setup,
                &mut p.rng,
            )
            .await
            .unwrap();
            shares.lock().unwrap()[k] = Some(s);
            p
        })
    })
    .await;
    let shares: Arc<Vec<KeyShare>> =
        Arc::new(shares.lock().unwrap().iter_mut().map(|s| s.take().unwrap()).collect());
    let mut times = Vec::new();
    for round in 0..rounds {
        let req = SignRequest {
            key_id: *shares[0].key_id(),
            keygen_sid: *shares[0].keygen_sid(),
            path: vec![],
            message: [round as u8; 32],
        };
        let mut iid = [0u8; 32];
        iid[..8].copy_from_slice(&(round as u64 + 1000 * seed).to_be_bytes());
        let setup =
            Setup::new(ProtocolId::Sign, iid, 2, 2, keys.clone(), req.to_bytes(), 600).unwrap();
        let start = Instant::now();
        ps = both(relays.clone(), ps, |r, mut p, k| {
            let (setup, opts, shares) = (setup.clone(), opts.clone(), shares.clone());
            tokio::spawn(async move {
                let signer: SharedSigner = p.signer.clone();
                run_sign(
                    &RunContext::new(r.as_ref(), signer, &p.guard).with_options(opts.clone()),
                    &setup,
                    &shares[k],
                    &mut p.rng,
                )
                .await
                .unwrap();
                p
            })
        })
        .await;
        times.push(start.elapsed());
    }
    times.sort();
    times
}

fn main() {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let n = 30;
        // Warm-up (lazy statics, allocator, CPU frequency), then the in-memory baseline.
        let warm = MemoryRelay::new();
        let _ = measure([Arc::new(warm.clone()), Arc::new(warm)], 5, 9).await;
        let mem = MemoryRelay::new();
        let t_mem = measure([Arc::new(mem.clone()), Arc::new(mem)], n, 1).await;
        let relay = msg_relay_svc::testing::spawn_relay(Default::default()).await.unwrap();
        let a = WsRelay::connect(relay.url(), ClientConfig::default()).await.unwrap();
        let b = WsRelay::connect(relay.url(), ClientConfig::default()).await.unwrap();
        let t_ws = measure([Arc::new(a), Arc::new(b)], n, 2).await;
        let med = |v: &Vec<Duration>| v[v.len() / 2];
        let p90 = |v: &Vec<Duration>| v[v.len() * 9 / 10];
        println!(
            "2-of-2 signing (presign + sign, both parties on 2 worker threads), {n} runs each"
        );
        println!("| transport | median | p90 |");
        println!("|---|---|---|");
        println!(
            "| in-memory relay | {:.2} ms | {:.2} ms |",
            med(&t_mem).as_secs_f64() * 1e3,
            p90(&t_mem).as_secs_f64() * 1e3
        );
        println!(
            "| loopback msg-relay-svc (WebSocket) | {:.2} ms | {:.2} ms |",
            med(&t_ws).as_secs_f64() * 1e3,
            p90(&t_ws).as_secs_f64() * 1e3
        );
        println!(
            "relay overhead (median): {:.2} ms",
            (med(&t_ws).as_secs_f64() - med(&t_mem).as_secs_f64()) * 1e3
        );
        relay.stop().await;
    });
}
