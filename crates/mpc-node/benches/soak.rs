//! Sustained 2-of-3 signing through the SDK API and the relay, with the relay and the three
//! nodes as separate processes, so that each one's resident memory can be followed.
//!
//! `cargo bench -p mpc-node --bench soak -- [seconds] [concurrency] [--restart-relay]`
//! (release; defaults: 600 s at 32 requests in flight). Every `report` seconds it prints one
//! row: signatures done and failed in the interval, the rate, the relay's held messages and
//! bytes (its `/metrics`), and the RSS of the relay and of each node. With `--restart-relay`
//! the relay process is stopped half-way and a new, empty one is started on the same port.
//! At the end it prints the totals and exits with status 1 if any signature failed.
//!
//! The bench re-runs its own executable as the relay (`soak relay-child <port>`) and runs the
//! `mpc-node` binary of this build for the nodes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod support;

use mpc_node_client::Client;
use mpc_node_client::api::{GenerateKeyRequest, SessionConfig, SignRequestBody};
use support::{node_toml, sid};

/// Seconds between rows (`SOAK_REPORT_SECS`, default 30).
fn report_every() -> Duration {
    let secs = std::env::var("SOAK_REPORT_SECS").ok().and_then(|s| s.parse().ok());
    Duration::from_secs(secs.unwrap_or(30))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The relay child: serves until its stdin closes, then stops gracefully.
fn relay_child(port: u16) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let relay = msg_relay_svc::testing::spawn_relay_on(addr, Default::default()).await.unwrap();
        println!("ready");
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await
        .unwrap();
        relay.stop().await;
    });
}

fn spawn_relay(port: u16) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["relay-child", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 6];
    out.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ready\n");
    child
}

/// Stops the relay child gracefully (closes its stdin) and waits for it.
fn stop_relay(mut child: Child) {
    drop(child.stdin.take());
    child.wait().unwrap();
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// `relay_messages` and `relay_charged_bytes` from the relay's `/metrics`.
async fn relay_held(port: u16) -> (u64, u64) {
    let Ok(c) = Client::new(&format!("http://127.0.0.1:{port}"), "none") else { return (0, 0) };
    let Ok((_, body)) = c.raw(http::Method::GET, "/metrics", None, false).await else {
        return (0, 0);
    };
    let text = String::from_utf8_lossy(&body);
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (value("relay_messages"), value("relay_charged_bytes"))
}

async fn one_signature(clients: &[Client], pair: [usize; 2], k: u64) -> Result<(), String> {
    let mut m = [0u8; 32];
    m[..8].copy_from_slice(&k.to_be_bytes());
    let body = SignRequestBody {
        session: SessionConfig {
            session_id: sid(),
            players: vec![pair[0] as u16 + 1, pair[1] as u16 + 1],
            public_keys: BTreeMap::new(),
        },
        message_hash: Some(hex::encode(m)),
        message: None,
        hash_algorithm: None,
        path: None,
        presignature_id: None,
    };
    let (a, b) = tokio::join!(
        clients[pair[0]].sign("soak-key", &body),
        clients[pair[1]].sign("soak-key", &body)
    );
    match (a, b) {
        (Ok(a), Ok(b)) if a == b => Ok(()),
        (Ok(_), Ok(_)) => Err("the two nodes returned different signatures".into()),
        (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("relay-child") {
        relay_child(args[1].parse().unwrap());
        return;
    }
    let restart = args.iter().any(|a| a == "--restart-relay");
    let nums: Vec<u64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let seconds = nums.first().copied().unwrap_or(600);
    let concurrency = nums.get(1).copied().unwrap_or(32) as usize;

    let dir = tempfile::tempdir().unwrap();
    let relay_port = free_port();
    let relay_url = format!("http://127.0.0.1:{relay_port}");
    let mut relay = spawn_relay(relay_port);
    let mut nodes = Vec::new();
    let mut ports = Vec::new();
    for i in 1..=3u16 {
        let port = free_port();
        let path = dir.path().join(format!("node{i}.toml"));
        std::fs::write(&path, node_toml(i, &format!("127.0.0.1:{port}"), &relay_url, dir.path()))
            .unwrap();
        // The node logs every session at INFO: keep that in a file, out of the table.
        let log = std::fs::File::create(dir.path().join(format!("node{i}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_mpc-node"))
            .arg("run")
            .arg("--config")
            .arg(&path)
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        nodes.push(child);
        ports.push(port);
    }

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let failed = rt.block_on(async {
        let clients: Arc<Vec<Client>> = Arc::new(
            ports
                .iter()
                .enumerate()
                .map(|(k, p)| {
                    Client::new(&format!("http://127.0.0.1:{p}"), &format!("bench-{}", k + 1))
                        .unwrap()
                        .with_timeout(Duration::from_secs(120))
                })
                .collect(),
        );
        for c in clients.iter() {
            let deadline = Instant::now() + Duration::from_secs(30);
            while c.raw(http::Method::GET, "/readyz", None, false).await.ok().map(|r| r.0.as_u16())
                != Some(200)
            {
                assert!(Instant::now() < deadline, "a node did not become ready");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let req = GenerateKeyRequest {
            key_id: Some("soak-key".into()),
            threshold: 2,
            curve: "secp256k1".into(),
            session: SessionConfig {
                session_id: sid(),
                players: vec![1, 2, 3],
                public_keys: BTreeMap::new(),
            },
        };
        let (a, b, c) = tokio::join!(
            clients[0].generate_key(&req),
            clients[1].generate_key(&req),
            clients[2].generate_key(&req)
        );
        a.unwrap();
        b.unwrap();
        c.unwrap();

        println!(
            "soak: 2-of-3 signing for {seconds} s at {concurrency} in flight{}",
            if restart { ", relay restarted half-way" } else { "" }
        );
        println!();
        println!(
            "| t (s) | signed | failed | signatures/s | relay messages | relay MiB held | relay RSS MiB | node 1/2/3 RSS MiB |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        let done = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let next = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
        const PAIRS: [[usize; 2]; 3] = [[0, 1], [0, 2], [1, 2]];
        let mut workers = Vec::new();
        for _ in 0..concurrency {
            let (clients, done, failed, next, stop, first_error) = (
                clients.clone(),
                done.clone(),
                failed.clone(),
                next.clone(),
                stop.clone(),
                first_error.clone(),
            );
            workers.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    match one_signature(&clients, PAIRS[(k % 3) as usize], k).await {
                        Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            first_error.lock().unwrap().get_or_insert(e);
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            }));
        }
        let start = Instant::now();
        let end = start + Duration::from_secs(seconds);
        let mut restarted = !restart;
        let (mut last_done, mut last_failed, mut last_t) = (0, 0, start);
        let mut relay_pid = relay.id();
        loop {
            let now = Instant::now();
            if now >= end {
                break;
            }
            let tick = (last_t + report_every()).min(end);
            if !restarted && start + Duration::from_secs(seconds / 2) < tick {
                tokio::time::sleep_until((start + Duration::from_secs(seconds / 2)).into()).await;
                let old = std::mem::replace(&mut relay, spawn_relay_placeholder());
                let t0 = Instant::now();
                stop_relay(old);
                relay = spawn_relay(relay_port);
                relay_pid = relay.id();
                println!(
                    "| {:.0} | relay restarted (down {:.0} ms) | | | | | | |",
                    start.elapsed().as_secs_f64(),
                    t0.elapsed().as_secs_f64() * 1e3
                );
                restarted = true;
                continue;
            }
            tokio::time::sleep_until(tick.into()).await;
            let (d, f) = (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
            let dt = tick.duration_since(last_t).as_secs_f64();
            let (held, bytes) = relay_held(relay_port).await;
            let node_rss: Vec<String> =
                nodes.iter().map(|n| format!("{:.0}", rss_mib(n.id()))).collect();
            println!(
                "| {:.0} | {} | {} | {:.1} | {held} | {:.1} | {:.0} | {} |",
                start.elapsed().as_secs_f64(),
                d - last_done,
                f - last_failed,
                (d - last_done) as f64 / dt,
                bytes as f64 / (1024.0 * 1024.0),
                rss_mib(relay_pid),
                node_rss.join(" / ")
            );
            (last_done, last_failed, last_t) = (d, f, tick);
        }
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.await.unwrap();
        }
        let (d, f) = (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
        let wall = start.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (held, bytes) = relay_held(relay_port).await;
        println!();
        println!(
            "total: {d} signatures in {wall:.0} s ({:.1}/s), {f} failed; relay holds {held} messages ({bytes} bytes) after the run",
            d as f64 / wall
        );
        if let Some(e) = first_error.lock().unwrap().take() {
            println!("first failure: {e}");
        }
        stop_relay(relay);
        for mut n in nodes {
            let _ = n.kill();
            let _ = n.wait();
        }
        for i in 1..=3 {
            let log = std::fs::read_to_string(dir.path().join(format!("node{i}.log")))
                .unwrap_or_default();
            let warnings: Vec<&str> =
                log.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).collect();
            println!("node {i}: {} warning/error log lines", warnings.len());
            for l in warnings.iter().take(3) {
                println!("  {l}");
            }
        }
        f
    });
    if failed > 0 {
        std::process::exit(1);
    }
}

/// A stand-in child while the relay is swapped (a finished `true`).
fn spawn_relay_placeholder() -> Child {
    Command::new("true").stdin(Stdio::piped()).spawn().unwrap()
}
