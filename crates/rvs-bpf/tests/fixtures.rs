//! The fixture table drives the BPF programs through BPF_PROG_TEST_RUN:
//! - steering parity: every frame the engine handles (forward, reply, drop)
//!   is steered to the engine, every frame it passes is left to the kernel;
//! - decapsulation: every TUN frame the engine emits decapsulates, on a real
//!   server, back to exactly the client's original IP packet.
//!
//! Needs CAP_BPF (root); skipped with a printed reason otherwise.

use rvs_bpf::{Decap, Steering, verdict};
use rvs_engine::{Forward, ServiceKey};
use rvs_fixtures::{Expect, fixtures};
use rvs_types::Proto;

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
