//! Bad input loses nothing: random and mutated frames never panic the
//! engine, every frame gets exactly one verdict, and drops are counted.

mod common;

use common::*;
use proptest::prelude::*;
use rvs_engine::*;
use rvs_types::Instant;

fn director() -> Director {
    let vip = v4("192.0.2.10");
    let mut d = Director::new(
        DirectorConfig {
            max_conns: 64,
            ..DirectorConfig::default()
        },
        Instant::ZERO,
    );
    for (key, fwd) in [
        (tcp_svc(vip, 80), Forward::Masq),
        (udp_svc(vip, 53), Forward::Route),
        (
            tcp_svc(vip, 443),
            Forward::Tunnel(TunnelKind::Gue {
                port: 6080,
                csum: true,
                remcsum: false,
            }),
        ),
    ] {
        d.add_service(ServiceConfig::new(key)).unwrap();
        let port = match key {
            ServiceKey::Addr { port, .. } => port,
            ServiceKey::Fwmark { .. } => 0,
        };
        d.add_dest(&key, dest(v4("10.20.0.11"), port, 1, fwd))
            .unwrap();
    }
    d
}

fn seeds() -> Vec<Vec<u8>> {
    let vip = v4("192.0.2.10");
    let c = v4("198.51.100.7");
    vec![
        tcp(c, 40000, vip, 80, SYN, b""),
        tcp(c, 40000, vip, 80, ACK | PSH, b"hello"),
        tcp(v4("10.20.0.11"), 80, c, 40000, SYN | ACK, b""),
        udp(c, 5353, vip, 53, b"query"),
        tcp(c, 40001, vip, 443, SYN, &[7u8; 1400]),
        tcp(v4("2001:db8:1::7"), 40000, v4("2001:db8::10"), 80, SYN, b""),
    ]
}

fn total_verdicts(d: &Director, forwarded: u64, replied: u64) -> u64 {
    let s = d.stats();
    s.drops.iter().map(|(_, n)| n).sum::<u64>() + s.passed + forwarded + replied
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..20)) {
        let mut d = director();
        let (mut fw, mut rp) = (0, 0);
        for f in &frames {
            match run(&mut d, Instant::from_secs(1), f).0 {
                Verdict::Forward(_) => fw += 1,
                Verdict::Reply => rp += 1,
                _ => {}
            }
        }
        prop_assert_eq!(total_verdicts(&d, fw, rp), frames.len() as u64);
    }

    #[test]
    fn mutated_frames_never_panic(
        picks in prop::collection::vec((0usize..6, prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6), any::<prop::sample::Index>()), 1..40)
    ) {
        let seeds = seeds();
        let mut d = director();
        let (mut fw, mut rp) = (0, 0);
        for (i, (which, edits, cut)) in picks.iter().enumerate() {
            let mut f = seeds[*which].clone();
            for (at, b) in edits {
                let n = f.len();
                f[at.index(n)] = *b;
            }
            // Truncate sometimes, to anywhere.
            if edits.len() % 2 == 1 {
                let n = f.len();
                f.truncate(cut.index(n + 1));
            }
            match run(&mut d, Instant::from_secs(1 + i as u64), &f).0 {
                Verdict::Forward(_) => fw += 1,
                Verdict::Reply => rp += 1,
                _ => {}
            }
            d.handle_timeout(Instant::from_secs(1 + i as u64));
        }
        prop_assert_eq!(total_verdicts(&d, fw, rp), picks.len() as u64);
        prop_assert!(d.conn_count() <= 64);
    }
}

#[test]
fn truncated_headers_are_dropped_with_a_reason() {
    let mut d = director();
    let syn = tcp(v4("198.51.100.7"), 40000, v4("192.0.2.10"), 80, SYN, b"");
    // Cut inside the TCP header, then fix the IPv4 total length so that only
    // the L4 header is short.
    let mut f = syn[..14 + 20 + 10].to_vec();
    f[16..18].copy_from_slice(&30u16.to_be_bytes());
    let mut c: u32 = 0;
    f[24] = 0;
    f[25] = 0;
    for w in f[14..34].chunks(2) {
        c += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while c > 0xffff {
        c = (c & 0xffff) + (c >> 16);
    }
    f[24..26].copy_from_slice(&(!(c as u16)).to_be_bytes());
    assert_eq!(
        run(&mut d, Instant::from_secs(1), &f).0,
        Verdict::Drop(DropReason::Truncated)
    );
    // A bad IPv4 header checksum.
    let mut g = syn.clone();
    g[24] ^= 0xff;
    assert_eq!(
        run(&mut d, Instant::from_secs(1), &g).0,
        Verdict::Drop(DropReason::BadChecksum)
    );
    assert_eq!(d.drops(DropReason::Truncated), 1);
    assert_eq!(d.drops(DropReason::BadChecksum), 1);
    // The director keeps serving.
    assert!(matches!(
        run(&mut d, Instant::from_secs(1), &syn).0,
        Verdict::Forward(_)
    ));
}
