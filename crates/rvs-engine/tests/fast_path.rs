//! The established fast path (`handle_frame`'s compact parse and its
//! shortcut for known connections) gives exactly what the general path
//! (`handle_frame_general`) gives: verdicts, frame bytes, counters,
//! connection states and timers, over random mixes of connection set-up,
//! data, teardown, replies, bad checksums, VLAN tags, time steps and a
//! removed real server.

mod common;

use common::*;
use proptest::prelude::*;
use rvs_engine::*;
use rvs_types::Instant;
use rvs_wire::FrameBuf;

const VIP: &str = "192.0.2.10";
const CLIENT: &str = "198.51.100.7";

fn director(all_checksums: bool) -> Director {
    let vip = v4(VIP);
    let mut d = Director::new(
        DirectorConfig {
            max_conns: 64,
            checksums: if all_checksums {
                ChecksumPolicy::All
            } else {
                ChecksumPolicy::NewConns
            },
            ..DirectorConfig::default()
        },
        Instant::ZERO,
    );
    let nat = tcp_svc(vip, 80);
    d.add_service(ServiceConfig::new(nat)).unwrap();
    for r in ["10.20.0.11", "10.20.0.12"] {
        d.add_dest(&nat, dest(v4(r), 8080, 1, Forward::Masq))
            .unwrap();
    }
    let dr = tcp_svc(vip, 443);
    d.add_service(ServiceConfig::new(dr)).unwrap();
    d.add_dest(&dr, dest(v4("10.20.0.13"), 443, 1, Forward::Route))
        .unwrap();
    let tun = tcp_svc(vip, 8443);
    d.add_service(ServiceConfig::new(tun)).unwrap();
    d.add_dest(
        &tun,
        dest(v4("10.20.0.14"), 8443, 1, Forward::Tunnel(TunnelKind::Ipip)),
    )
    .unwrap();
    let u = udp_svc(vip, 53);
    d.add_service(ServiceConfig::new(u)).unwrap();
    d.add_dest(&u, dest(v4("10.20.0.11"), 5353, 1, Forward::Masq))
        .unwrap();
    d
}

#[derive(Clone, Debug)]
enum Step {
    /// A client packet: port index, service index, TCP flags (UDP for the
    /// DNS service), payload length, and a mangling of the frame.
    Client(u8, u8, u8, u8, u8),
    /// A real server's reply to the client port index.
    Reply(u8, u8),
    /// Time passes (tenths of a second), timers run.
    Wait(u16),
    /// The NAT service's second real server is removed.
    DelDest,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (any::<u8>(), any::<u8>(), any::<u8>(), 0u8..40, any::<u8>())
            .prop_map(|(p, s, f, l, m)| Step::Client(p, s, f, l, m)),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(p, f)| Step::Reply(p, f)),
        1 => (0u16..1500).prop_map(Step::Wait),
        1 => Just(Step::DelDest),
    ]
}

const FLAGS: [u8; 8] = [SYN, ACK, ACK | PSH, FIN | ACK, RST, SYN | ACK, RST | ACK, 0];

fn client_frame(p: u8, s: u8, f: u8, len: u8, mangle: u8) -> Vec<u8> {
    let c = v4(CLIENT);
    let vip = v4(VIP);
    let port = 40000 + u16::from(p % 6);
    let payload = vec![0x5a; usize::from(len)];
    let mut frame = match s % 4 {
        3 => udp(c, port, vip, 53, &payload),
        k => tcp(
            c,
            port,
            vip,
            [80, 443, 8443][usize::from(k)],
            FLAGS[usize::from(f % 8)],
            &payload,
        ),
    };
    match mangle % 16 {
        // A bad L4 checksum.
        0 => {
            // The checksum field's low byte (TCP at 50, UDP at 40).
            let at = if s % 4 == 3 { 41 } else { 51 };
            frame[at] ^= 0x40;
        }
        // A bad IP header checksum.
        1 => frame[24] ^= 0x10,
        // A VLAN tag.
        2 => {
            frame.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
        }
        // Ethernet padding.
        3 => frame.extend_from_slice(&[0; 6]),
        _ => {}
    }
    frame
}

fn reply_frame(p: u8, f: u8) -> Vec<u8> {
    let port = 40000 + u16::from(p % 6);
    tcp(
        v4(["10.20.0.11", "10.20.0.12"][usize::from(p / 6 % 2)]),
        8080,
        v4(CLIENT),
        port,
        FLAGS[usize::from(f % 8)] | ACK,
        b"",
    )
}

fn run_with(d: &mut Director, fast: bool, now: Instant, frame: &[u8]) -> (Verdict, Vec<u8>) {
    let mut mem = vec![0u8; HEADROOM + frame.len() + 256];
    mem[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
    let mut fb = FrameBuf::new(&mut mem, HEADROOM, frame.len()).unwrap();
    let meta = RxMeta::default();
    let v = if fast {
        d.handle_frame(now, &mut fb, &meta)
    } else {
        d.handle_frame_general(now, &mut fb, &meta)
    };
    (v, fb.data().to_vec())
}

/// Everything observable about a director, as text.
fn observe(d: &Director, now: Instant) -> String {
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}",
        d.services(),
        d.connections(now),
        d.stats(),
        d.table_stats()
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn fast_path_equals_general_path(
        steps in prop::collection::vec(step(), 1..80),
        all_checksums in any::<bool>(),
    ) {
        let mut fast = director(all_checksums);
        let mut general = director(all_checksums);
        let mut now = Instant::from_secs(1);
        for (i, st) in steps.iter().enumerate() {
            let frame = match *st {
                Step::Client(p, s, f, l, m) => client_frame(p, s, f, l, m),
                Step::Reply(p, f) => reply_frame(p, f),
                Step::Wait(t) => {
                    now = now + std::time::Duration::from_millis(u64::from(t) * 100);
                    fast.handle_timeout(now);
                    general.handle_timeout(now);
                    continue;
                }
                Step::DelDest => {
                    let key = tcp_svc(v4(VIP), 80);
                    let a = fast.del_dest(&key, &v4("10.20.0.12"), 8080);
                    let b = general.del_dest(&key, &v4("10.20.0.12"), 8080);
                    prop_assert_eq!(a, b);
                    continue;
                }
            };
            let want = run_with(&mut general, false, now, &frame);
            let got = run_with(&mut fast, true, now, &frame);
            prop_assert_eq!(&got, &want, "step {}: {:?}", i, st);
        }
        prop_assert_eq!(observe(&fast, now), observe(&general, now));
    }
}
