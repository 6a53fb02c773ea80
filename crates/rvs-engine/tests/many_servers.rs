//! Least-connection schedulers over many real servers answer from an
//! incremental tree the engine keeps current; debug builds check every
//! answer against the kernel's linear scan, so this churn test fails if the
//! engine ever forgets to report a counter change.

mod common;

use common::*;
use rvs_engine::*;
use rvs_types::{Addr, Instant};

#[test]
fn churn_over_forty_servers_keeps_kernel_answers() {
    for sched in [SchedKind::Wlc, SchedKind::Lc, SchedKind::Sed, SchedKind::Nq] {
        let vip = v4("192.0.2.10");
        let key = tcp_svc(vip, 80);
        let mut d = Director::new(
            DirectorConfig {
                max_conns: 500,
                ..DirectorConfig::default()
            },
            Instant::ZERO,
        );
        let mut s = ServiceConfig::new(key);
        s.sched = sched;
        d.add_service(s).unwrap();
        let rip = |i: u32| Addr::v4([10, 20, (i >> 8) as u8, i as u8]);
        for i in 0..40u32 {
            let mut c = dest(rip(i), 80, 1 + (i % 4) as i32, Forward::Masq);
            if i % 7 == 0 {
                c.u_threshold = 3;
            }
            d.add_dest(&key, c).unwrap();
        }
        let mut now = 1;
        for round in 0..6u16 {
            for p in 0..60u16 {
                let c = v4("198.51.100.7");
                let port = 10000 + round * 100 + p;
                let (v, _) = run(
                    &mut d,
                    Instant::from_secs(now),
                    &tcp(c, port, vip, 80, SYN, b""),
                );
                let Verdict::Forward(f) = v else { continue };
                // Some complete the handshake, some close, some are left half-open.
                match p % 3 {
                    0 => {
                        run(
                            &mut d,
                            Instant::from_secs(now),
                            &tcp(c, port, vip, 80, ACK, b""),
                        );
                    }
                    1 => {
                        run(
                            &mut d,
                            Instant::from_secs(now),
                            &tcp(f.next_hop, 80, c, port, SYN | ACK, b""),
                        );
                        run(
                            &mut d,
                            Instant::from_secs(now),
                            &tcp(c, port, vip, 80, RST, b""),
                        );
                    }
                    _ => {}
                }
            }
            // Edits and removals between rounds.
            let victim = rip(u32::from(round) * 5 + 1);
            if round % 2 == 0 {
                d.edit_dest(&key, dest(victim, 80, 0, Forward::Masq))
                    .unwrap();
            } else {
                d.del_dest(&key, &victim, 80).unwrap();
            }
            now += 30;
            d.handle_timeout(Instant::from_secs(now));
        }
        assert!(
            d.services()[0].stats.conns > 300,
            "{sched:?} scheduled too little"
        );
    }
}
