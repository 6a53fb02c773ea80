//! SCTP services: an association is scheduled on INIT, NAT rewrites ports
//! with a recomputed CRC32c, and IPVS's SCTP states are tracked.

mod common;

use common::*;
use rvs_engine::*;
use rvs_types::{Instant, Proto};
use rvs_wire::testing::sctp_v4;

/// A chunk: type, flags, length, value (padded).
fn chunk(ty: u8, value: &[u8]) -> Vec<u8> {
    let mut c = vec![ty, 0];
    c.extend_from_slice(&((4 + value.len()) as u16).to_be_bytes());
    c.extend_from_slice(value);
    while c.len() % 4 != 0 {
        c.push(0);
    }
    c
}

#[test]
fn sctp_nat_association() {
    let vip = v4("192.0.2.10");
    let rip = v4("10.20.0.11");
    let cip = v4("198.51.100.7");
    let key = ServiceKey::Addr {
        proto: Proto::SCTP,
        addr: vip,
        port: 3868,
    };
    let mut d = director_with(key, SchedKind::Rr, &[dest(rip, 13868, 1, Forward::Masq)]);
    let t = Instant::from_secs(1);
    // INIT: tag, a_rwnd, streams, initial TSN.
    let init = chunk(1, &[0, 0, 0, 1, 0, 1, 0, 0, 0, 10, 0, 10, 0, 0, 0, 1]);
    // DATA before any INIT is not a new association.
    let data = chunk(0, &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, b'x', b'y']);
    let (v, _) = run(&mut d, t, &sctp_v4(cip, 5000, vip, 3868, 0, &data));
    assert_eq!(v, Verdict::Drop(DropReason::SctpNotInit));
    let (v, out) = run(&mut d, t, &sctp_v4(cip, 5000, vip, 3868, 0, &init));
    assert_eq!(next_hop(&v), rip);
    // Expected: the same packet addressed to RIP:13868, CRC32c computed afresh.
    let want = sctp_v4(cip, 5000, rip, 13868, 0, &init);
    assert_eq!(&out[14..], &want[14..]);
    assert_eq!(d.connections(t)[0].state, "INIT1");
    // INIT ACK from the server comes back from the VIP.
    let init_ack = chunk(2, &[0, 0, 0, 2, 0, 1, 0, 0, 0, 10, 0, 10, 0, 0, 0, 1]);
    let (v, out) = run(&mut d, t, &sctp_v4(rip, 13868, cip, 5000, 1, &init_ack));
    assert_eq!(next_hop(&v), cip);
    assert_eq!(
        &out[14..],
        &sctp_v4(vip, 3868, cip, 5000, 1, &init_ack)[14..]
    );
    // Kernel sctp_states[OUTPUT][INIT_ACK][INIT1] = COOKIE_SENT, named "C-SENT".
    assert_eq!(d.connections(t)[0].state, "C-SENT");
    // A corrupted CRC on a new association is dropped.
    let mut bad = sctp_v4(v4("198.51.100.8"), 5001, vip, 3868, 0, &init);
    let n = bad.len();
    bad[n - 1] ^= 1;
    assert_eq!(
        run(&mut d, t, &bad).0,
        Verdict::Drop(DropReason::BadChecksum)
    );
}
