//! Rough timing of the connection table (not asserted; the project's real
//! benchmark lives elsewhere).
//!
//! `cargo run --release -p rvs-conn --example bench [sizes...]`
//! (default sizes: 10000 1000000).

use std::hint::black_box;
use std::time::{Duration, Instant as Clock};

use rvs_conn::{Conn, ConnFlags, ConnTable, Dir, ExpireAction, Fwd, InKey, TableConfig, Timeouts};
use rvs_types::{Addr, Instant, Proto};

const VIP: Addr = Addr::v4([192, 0, 2, 1]);
const RIP: Addr = Addr::v4([172, 16, 0, 5]);

fn key(i: u32) -> (Addr, u16) {
    // 65,536 ports per client address.
    let a = (i >> 16).to_be_bytes();
    (Addr::v4([10, a[1], a[2], a[3]]), (i & 0xffff) as u16)
}

fn conn(i: u32) -> Conn {
    let (caddr, cport) = key(i);
    Conn {
        caddr,
        cport,
        vaddr: VIP,
        vport: 80,
        daddr: RIP,
        dport: 80,
        proto: Proto::TCP,
        state: rvs_conn::proto::tcp::ESTABLISHED,
        fwd: Fwd::Masq,
        flags: ConnFlags::HAS_DEST,
        ..Conn::default()
    }
}

/// A fixed pseudo-random permutation walk (xorshift indices).
fn order(n: u32, count: usize) -> Vec<u32> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % u64::from(n)) as u32
        })
        .collect()
}

fn per_op(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

fn run(n: u32) {
    let cfg = TableConfig {
        max_conns: n,
        tick: Duration::from_millis(100),
        expected_conns: n,
    };
    let mut t = ConnTable::new(cfg, Timeouts::default());
    let now = Instant::from_secs(1);
    let start = Clock::now();
    for i in 0..n {
        black_box(t.insert(conn(i), now).ok());
    }
    let ins = per_op(start.elapsed(), n as usize);

    let probes = order(n, 2_000_000);
    let now2 = Instant::from_secs(2);
    let mut hit = 0.0f64;
    for round in 0..3 {
        let start = Clock::now();
        let mut hits = 0u32;
        for &i in &probes {
            let (caddr, cport) = key(i);
            if let Some(id) = t.lookup_in(0, Proto::TCP, &caddr, cport, &VIP, 80) {
                hits += 1;
                black_box(t.update_state(id, Dir::Input, 0x10, now2));
            }
        }
        let d = per_op(start.elapsed(), probes.len());
        hit = if round == 0 { d } else { hit.min(d) };
        assert_eq!(hits as usize, probes.len());
    }

    // The same work in batches of 16 with prefetching (what a driver
    // polling a burst of frames would do).
    let mut batch = 0.0f64;
    let mut keys = Vec::with_capacity(16);
    let mut ids = [None; 16];
    for round in 0..3 {
        let start = Clock::now();
        for chunk in probes.chunks(16) {
            keys.clear();
            keys.extend(chunk.iter().map(|&i| {
                let (caddr, cport) = key(i);
                InKey {
                    zone: 0,
                    proto: Proto::TCP,
                    caddr,
                    cport,
                    vaddr: VIP,
                    vport: 80,
                }
            }));
            t.lookup_in_batch(&keys, &mut ids);
            for id in ids.iter().take(keys.len()).flatten() {
                black_box(t.update_state(*id, Dir::Input, 0x10, now2));
            }
        }
        let d = per_op(start.elapsed(), probes.len());
        batch = if round == 0 { d } else { batch.min(d) };
    }

    let start = Clock::now();
    for &i in &probes {
        let (caddr, cport) = key(i);
        black_box(t.lookup_in(0, Proto::TCP, &caddr, cport, &RIP, 81));
    }
    let miss = per_op(start.elapsed(), probes.len());

    let start = Clock::now();
    for &i in &probes {
        let (caddr, cport) = key(i);
        black_box(t.lookup_out(0, Proto::TCP, &RIP, 80, &caddr, cport));
    }
    let out = per_op(start.elapsed(), probes.len());

    let bytes = t.memory_bytes() as f64 / f64::from(n);

    // Expire everything: 900 s after the last refresh.
    let start = Clock::now();
    let mut expired = 0usize;
    t.expire(Instant::from_secs(2 + 900), |_, _| {
        expired += 1;
        ExpireAction::Remove
    });
    let exp = per_op(start.elapsed(), expired);
    assert_eq!(expired, n as usize);

    println!(
        "n={n:>9}  insert {ins:6.1} ns  lookup_in+update_state {hit:6.1} ns  batched {batch:6.1} ns  lookup_in miss {miss:6.1} ns  \
         lookup_out {out:6.1} ns  expire {exp:6.1} ns/conn  {bytes:6.1} bytes/conn (entry {} B)",
        ConnTable::ENTRY_BYTES
    );
}

fn main() {
    let sizes: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 1_000_000]
    } else {
        sizes
    };
    for n in sizes {
        run(n);
    }
}
