//! Per-packet cost of the hot-path functions, without a benchmark framework:
//! `cargo run --release -p rvs-wire --example wire_speed --features testing`.
//! For stable instruction counts run the binary under
//! `valgrind --tool=cachegrind --cache-sim=no`.

use rvs_types::Addr;
use rvs_wire::{Parsed, parse_frame, set_dst, set_src, testing};
use std::hint::black_box;
use std::time::Instant;

fn time(name: &str, iters: u32, mut f: impl FnMut()) {
    for _ in 0..iters / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    let ns = t.elapsed().as_nanos() as f64 / f64::from(iters);
    println!("{name:<40} {ns:>7.1} ns");
}

fn main() {
    let iters = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5_000_000u32);
    let a = Addr::v4([10, 0, 0, 1]);
    let b = Addr::v4([10, 0, 0, 2]);
    let v4 = testing::tcp_v4(a, 40000, b, 80, 0x10, &[0x5a; 64]);
    let mut v6a = [0u8; 16];
    v6a[0] = 0x20;
    let mut v6b = v6a;
    v6b[15] = 2;
    let v6 = testing::tcp_v6(Addr::v6(v6a), 40000, Addr::v6(v6b), 80, 0x10, &[0x5a; 64]);
    let udp = testing::udp_v4(a, 5353, b, 53, &[1; 32]);

    time("parse_frame eth+ipv4+tcp", iters, || {
        black_box(parse_frame(black_box(&v4)).ok());
    });
    time("parse_frame eth+ipv6+tcp", iters, || {
        black_box(parse_frame(black_box(&v6)).ok());
    });
    time("parse_frame eth+ipv4+udp", iters, || {
        black_box(parse_frame(black_box(&udp)).ok());
    });
    let Ok(Parsed::Ip(info)) = parse_frame(&v4) else {
        return;
    };
    let mut f = v4.clone();
    let rs = Addr::v4([192, 168, 1, 10]);
    time("set_dst ipv4/tcp (DNAT)", iters, || {
        let _ = set_dst(black_box(&mut f), &info, rs, 8080);
    });
    time("parse + set_dst + set_src ipv4/tcp (FNAT)", iters, || {
        if let Ok(Parsed::Ip(i)) = parse_frame(black_box(&f)) {
            let _ = set_dst(&mut f, &i, b, 80);
            let _ = set_src(&mut f, &i, a, 40000);
        }
    });
}
