//! The fixture table drives the BPF programs through BPF_PROG_TEST_RUN:
//! - steering parity: every frame the engine handles (forward, reply, drop)
//!   is steered to the engine, every frame it passes is left to the kernel;
//! - decapsulation: every TUN frame the engine emits decapsulates, on a real
//!   server, back to exactly the client's original IP packet;
//! - the fwmark path: every fixture frame, tagged by the tc program with a
//!   mark, carries exactly that mark in its source MAC and is otherwise
//!   unchanged (but for the TTL / hop limit the kernel's forwarding took,
//!   given back with a still-correct header checksum); the XDP side steers
//!   tagged frames only; the engine balances a tagged frame by its mark.
//!
//! Needs CAP_BPF (root); skipped with a printed reason otherwise.

use rvs_bpf::{Decap, MarkTag, Steering, decode_mark, tc_verdict, verdict};
use rvs_engine::{
    DestConfig, Director, DirectorConfig, Forward, RxMeta, ServiceConfig, ServiceKey, Verdict,
};
use rvs_fixtures::{Expect, fixtures};
use rvs_types::{Af, Instant, Proto};
use rvs_wire::FrameBuf;

fn root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn steering_agrees_with_the_engine_on_every_fixture() {
    if !root() {
        eprintln!(
            "SKIPPED steering_agrees_with_the_engine_on_every_fixture: BPF_PROG_TEST_RUN needs root (CAP_BPF)"
        );
        return;
    }
    let mut checked = 0;
    for f in fixtures() {
        let d = (f.setup)();
        let services = d.services();
        // fwmark services are steered by the fwmark path (marks are set after XDP runs).
        if services
            .iter()
            .any(|s| matches!(s.cfg.key, ServiceKey::Fwmark { .. }))
        {
            continue;
        }
        let mut s = Steering::load().expect("load steer.bpf.c");
        for svc in &services {
            let ServiceKey::Addr { proto, addr, port } = svc.cfg.key else {
                continue;
            };
            s.add_vip(proto, addr, port).unwrap();
            s.add_vip(Proto(0), addr, 0).unwrap();
            for dst in &svc.dests {
                if dst.cfg.fwd == Forward::Masq {
                    s.add_real(proto, dst.cfg.addr, dst.cfg.port).unwrap();
                }
            }
        }
        for (i, step) in f.steps.iter().enumerate() {
            let before = s.stats().unwrap();
            let v = s.test_run(&step.input).unwrap();
            let after = s.stats().unwrap();
            // No AF_XDP socket is registered here, so a steered frame falls
            // back to XDP_PASS: the counters tell steered from passed.
            assert_eq!(v, verdict::PASS, "{} step {i}", f.name);
            let steered = after.steered == before.steered + 1;
            let engine_takes_it = !matches!(step.expect, Expect::Pass);
            assert_eq!(
                steered, engine_takes_it,
                "{} step {i}: steered={steered}, engine verdict {:?}",
                f.name, step.expect
            );
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} frames checked");
}

#[test]
fn steering_leaves_arp_and_garbage_to_the_kernel() {
    if !root() {
        eprintln!("SKIPPED steering_leaves_arp_and_garbage_to_the_kernel: needs root (CAP_BPF)");
        return;
    }
    let mut s = Steering::load().unwrap();
    s.add_vip(Proto::TCP, rvs_fixtures::vip4(), 80).unwrap();
    let mut arp = vec![0xffu8; 6];
    arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
    arp.extend_from_slice(&[0u8; 28]);
    // (BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header, as
    // no driver delivers one.)
    for f in [arp, vec![0u8; 14], vec![0x45u8; 15], {
        // IPv4 ethertype with a truncated header.
        let mut g = vec![0u8; 12];
        g.extend_from_slice(&[0x08, 0x00, 0x45, 0x00]);
        g
    }] {
        assert_eq!(s.test_run(&f).unwrap(), verdict::PASS);
    }
    let st = s.stats().unwrap();
    assert_eq!(st.steered, 0);
    assert!(st.parse_errors >= 1, "{st:?}");
}

#[test]
fn steering_leaves_the_directors_own_traffic_with_real_servers_to_the_kernel() {
    if !root() {
        eprintln!(
            "SKIPPED steering_leaves_the_directors_own_traffic_with_real_servers_to_the_kernel: needs root (CAP_BPF)"
        );
        return;
    }
    let mut s = Steering::load().unwrap();
    let rip = rvs_fixtures::rip4(1);
    // A port-0 (every port) NAT real server, as fwmark services have.
    s.add_real(Proto::TCP, rip, 0).unwrap();
    s.add_local(rvs_fixtures::dip4()).unwrap();
    let from_rip = |dst| {
        rvs_fixtures::tcp(
            rvs_fixtures::neighbour_mac(&rip),
            rvs_fixtures::DIRECTOR_MAC,
            rip,
            8080,
            dst,
            40000,
            rvs_fixtures::flags::SYN | rvs_fixtures::flags::ACK,
            b"",
        )
    };
    let steered = |s: &Steering, f: &[u8]| {
        let before = s.stats().unwrap().steered;
        assert_eq!(s.test_run(f).unwrap(), verdict::PASS);
        s.stats().unwrap().steered == before + 1
    };
    // A reply to a client: the engine's. To the director itself (a health
    // check's answer): the kernel's.
    assert!(steered(&s, &from_rip(rvs_fixtures::cip4())));
    assert!(!steered(&s, &from_rip(rvs_fixtures::dip4())));
    // Another protocol from the same real server is not steered.
    let udp = rvs_fixtures::udp(
        rvs_fixtures::neighbour_mac(&rip),
        rvs_fixtures::DIRECTOR_MAC,
        rip,
        53,
        rvs_fixtures::cip4(),
        40000,
        b"x",
    );
    assert!(!steered(&s, &udp));
}

#[test]
fn decap_restores_every_tunnelled_fixture() {
    if !root() {
        eprintln!(
            "SKIPPED decap_restores_every_tunnelled_fixture: BPF_PROG_TEST_RUN needs root (CAP_BPF)"
        );
        return;
    }
    let mut decap = Decap::load().expect("load decap.bpf.c");
    decap.add_gue_port(6080).unwrap();
    let mut checked = 0;
    for f in fixtures().iter().filter(|f| f.name.starts_with("tun_")) {
        for step in &f.steps {
            let Expect::Forward { frame, .. } = &step.expect else {
                continue;
            };
            let (v, out) = decap.test_run(frame).unwrap();
            assert_eq!(v, verdict::PASS, "{}", f.name);
            // The inner packet, byte for byte, behind an Ethernet header of
            // the inner family.
            assert_eq!(
                &out[14..],
                &step.input[14..],
                "{}: inner packet differs",
                f.name
            );
            assert_eq!(&out[12..14], &step.input[12..14], "{}: EtherType", f.name);
            assert_eq!(&out[..12], &frame[..12], "{}: MACs kept", f.name);
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} tunnel frames checked");
    // A plain frame passes untouched.
    let plain = &fixtures()[0].steps[0].input;
    assert_eq!(
        decap.test_run(plain).unwrap(),
        (verdict::PASS, plain.clone())
    );
}

/// The IPv4 header's checksum verifies (one's-complement sum 0xffff).
fn v4_header_ok(frame: &[u8]) -> bool {
    let Some(&vihl) = frame.get(14) else {
        return false;
    };
    let ihl = usize::from(vihl & 0x0f) * 4;
    let Some(h) = frame.get(14..14 + ihl) else {
        return false;
    };
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

#[test]
fn mark_tag_encodes_the_mark_on_every_fixture_frame() {
    if !root() {
        eprintln!(
            "SKIPPED mark_tag_encodes_the_mark_on_every_fixture_frame: BPF_PROG_TEST_RUN needs root (CAP_BPF)"
        );
        return;
    }
    let m = MarkTag::load().expect("load mark.bpf.c");
    let (mut checked, mut restored) = (0, 0);
    for f in fixtures() {
        for (i, step) in f.steps.iter().enumerate() {
            let input = &step.input;
            let before = m.stats().unwrap();
            assert_eq!(
                m.test_rx(input).unwrap(),
                verdict::DROP,
                "{} step {i}",
                f.name
            );
            assert_eq!(
                m.stats().unwrap().untagged,
                before.untagged + 1,
                "{} step {i}: an untagged frame was steered",
                f.name
            );
            // (mark, ingress ifindex): 0 = sent by a local process.
            for (mark, iif) in [(1u32, 0u32), (0xdead_beef, 7), (0, 3), (u32::MAX, 0)] {
                let (v, out) = m.test_tag(input, mark, iif).unwrap();
                let what = format!("{} step {i} mark {mark:#x} iif {iif}", f.name);
                assert_eq!(v, tc_verdict::OK, "{what}");
                assert_eq!(out.len(), input.len(), "{what}");
                assert_eq!(decode_mark(&out), Some(mark), "{what}");
                assert_eq!(out[..6], input[..6], "{what}: destination MAC");
                let ethertype = [input[12], input[13]];
                let mut expect = input.clone();
                expect[6..12].copy_from_slice(&rvs_bpf::mark_mac(mark));
                if iif != 0 && ethertype == [0x08, 0x00] && input[14] >> 4 == 4 && input[22] < 255 {
                    // The TTL comes back; the header checksum stays as valid
                    // (or as invalid) as it arrived.
                    expect[22] += 1;
                    assert_eq!(
                        v4_header_ok(&out),
                        v4_header_ok(input),
                        "{what}: header checksum"
                    );
                    expect[24..26].copy_from_slice(&out[24..26]);
                    restored += 1;
                } else if iif != 0
                    && ethertype == [0x86, 0xdd]
                    && input[14] >> 4 == 6
                    && input[21] < 255
                {
                    expect[21] += 1;
                    restored += 1;
                }
                assert_eq!(out, expect, "{what}");
                let before = m.stats().unwrap();
                m.test_rx(&out).unwrap();
                assert_eq!(m.stats().unwrap().steered, before.steered + 1, "{what}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 120, "only {checked} frames checked");
    assert!(restored >= 30, "only {restored} TTLs restored");
    // Shorter than an Ethernet header: BPF_PROG_TEST_RUN refuses it (no
    // driver delivers one, nor a truncated IPv4 header); a bare Ethernet
    // header of another type still tags.
    assert!(m.test_tag(&[0u8; 13], 1, 0).is_err());
    let mut short = vec![0u8; 12];
    short.extend_from_slice(&[0x08, 0x06, 0x00]);
    let (v, out) = m.test_tag(&short, 5, 2).unwrap();
    assert_eq!((v, decode_mark(&out)), (tc_verdict::OK, Some(5)));
}

#[test]
fn engine_balances_a_tagged_frame_by_its_mark() {
    if !root() {
        eprintln!(
            "SKIPPED engine_balances_a_tagged_frame_by_its_mark: BPF_PROG_TEST_RUN needs root (CAP_BPF)"
        );
        return;
    }
    let m = MarkTag::load().expect("load mark.bpf.c");
    let key = ServiceKey::Fwmark {
        mark: 0x0102_0304,
        af: Af::V4,
    };
    let mut d = Director::new(DirectorConfig::default(), Instant::ZERO);
    d.add_service(ServiceConfig::new(key)).unwrap();
    let rip = rvs_fixtures::rip4(1);
    let mut dest = DestConfig::new(rip, 0);
    dest.fwd = Forward::Masq;
    d.add_dest(&key, dest).unwrap();
    let syn = |sport| {
        rvs_fixtures::tcp(
            rvs_fixtures::CLIENT_MAC,
            rvs_fixtures::DIRECTOR_MAC,
            rvs_fixtures::cip4(),
            sport,
            rvs_fixtures::vip4(),
            80,
            rvs_fixtures::flags::SYN,
            b"",
        )
    };
    let mut handle = |frame: &[u8]| {
        let mut buf = vec![0u8; 64 + frame.len()];
        buf[64..].copy_from_slice(frame);
        let mut fb = FrameBuf::new(&mut buf, 64, frame.len()).unwrap();
        let meta = RxMeta {
            fwmark: decode_mark(frame).unwrap_or(0),
            zone: 0,
        };
        d.handle_frame(Instant::ZERO, &mut fb, &meta)
    };
    // Tagged with the service's mark: balanced to the real server (NAT, the
    // client's destination port kept).
    let (_, tagged) = m.test_tag(&syn(40000), 0x0102_0304, 2).unwrap();
    match handle(&tagged) {
        Verdict::Forward(f) => assert_eq!(f.next_hop, rip),
        v => panic!("marked SYN: {v:?}"),
    }
    // Another mark, or none: not this service's.
    let (_, other) = m.test_tag(&syn(40001), 0x0102_0305, 2).unwrap();
    assert_eq!(handle(&other), Verdict::Pass);
    let (_, unmarked) = m.test_tag(&syn(40002), 0, 2).unwrap();
    assert_eq!(handle(&unmarked), Verdict::Pass);
}
