//! Per-connection cost of each scheduler over 1,000 dests (wlc-style
//! schedulers are linear scans, as in the kernel; hash schedulers are O(1)).

use criterion::{Criterion, criterion_group, criterion_main};
use rvs_sched::{SchedFlags, SchedInput, SchedKind, SchedParams, Scheduler, TestDest};
use rvs_types::{Addr, Instant, Proto};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let dests: Vec<TestDest> = (1..=1000)
        .map(|i| TestDest::new(i, 1 + (i % 7) as i32).conns(i % 13, i % 31))
        .collect();
    let p = SchedParams::default();
    let mut g = c.benchmark_group("schedule_1000_dests");
    for k in SchedKind::ALL {
        let mut s = Scheduler::new(k, SchedFlags::default(), &p);
        s.update(&dests);
        let mut n = 0u32;
        g.bench_function(k.name(), |b| {
            b.iter(|| {
                n = n.wrapping_add(1);
                let input = SchedInput {
                    proto: Proto::TCP,
                    saddr: Addr::v4(n.to_be_bytes()),
                    sport: n as u16,
                    daddr: Addr::v4([198, 51, 100, (n & 63) as u8]),
                    dport: 80,
                    now: Instant::from_secs(u64::from(n >> 10)),
                };
                black_box(s.schedule(black_box(&dests), &input))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
