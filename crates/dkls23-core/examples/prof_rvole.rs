#![allow(clippy::unwrap_used, missing_docs)]
use dkls23_core::hazmat::ot::{self, BobVole, SetupIds};
use k256::Scalar;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
fn main() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (a, kg1) = ot::alice_start(&mut rng, SetupIds::new([1; 32]));
    let (bob, kg2) = ot::bob_respond(&mut rng, &SetupIds::new([1; 32]), &kg1).unwrap();
    let alice = a.finish(&kg2).unwrap();
    let input = [Scalar::from(5u64), Scalar::from(6u64)];
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(200);
    let t = std::time::Instant::now();
    for i in 0..n {
        let sid = [i as u8; 32];
        let (bv, sg1) = BobVole::start(&mut rng, &bob, sid);
        let (_, sg2) = ot::alice_respond(&mut rng, &alice, &sid, &input, &sg1).unwrap();
        std::hint::black_box(bv.finish(&sg2).unwrap());
    }
    println!("{:?} per RVOLE", t.elapsed() / n as u32);
}
