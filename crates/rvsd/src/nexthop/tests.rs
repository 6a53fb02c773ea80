//! The cache against a fake kernel: what is asked when, and how changes
//! reach cached next hops.

use super::*;

#[derive(Default)]
struct Fake {
    routes: HashMap<Addr, Route>,
    neighs: HashMap<(u32, Addr), [u8; 6]>,
    stale: bool,
    changes: Vec<Change>,
    route_calls: usize,
    neigh_calls: usize,
    solicited: Vec<(u32, Addr)>,
}

impl Kernel for Fake {
    fn route(&mut self, dst: &Addr) -> Option<Route> {
        self.route_calls += 1;
        self.routes.get(dst).copied()
    }
    fn neighbour(&mut self, ifindex: u32, addr: &Addr) -> Option<Neighbour> {
        self.neigh_calls += 1;
        self.neighs.get(&(ifindex, *addr)).map(|m| Neighbour {
            ifindex,
            addr: *addr,
            mac: Some(*m),
            stale: self.stale,
        })
    }
    fn solicit(&mut self, ifindex: u32, addr: &Addr) {
        self.solicited.push((ifindex, *addr));
    }
    fn ifname(&mut self, ifindex: u32) -> Option<String> {
        Some(format!("if{ifindex}"))
    }
    fn changes(&mut self, out: &mut Vec<Change>) {
        out.append(&mut self.changes);
    }
}

const RS: Addr = Addr::v4([10, 20, 0, 11]);
const FAR: Addr = Addr::v4([192, 0, 2, 7]);
const GW: Addr = Addr::v4([10, 20, 0, 1]);
const MAC1: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC2: [u8; 6] = [2, 0, 0, 0, 0, 2];
const T0: Instant = Instant::from_secs(100);

fn lab() -> NextHops<Fake> {
    let mut k = Fake::default();
    k.routes.insert(
        RS,
        Route {
            ifindex: 3,
            via: RS,
        },
    );
    k.routes.insert(
        FAR,
        Route {
            ifindex: 3,
            via: GW,
        },
    );
    k.neighs.insert((3, RS), MAC1);
    k.neighs.insert((3, GW), MAC2);
    NextHops::with_kernel(k)
}

fn hop(ifindex: u32, mac: [u8; 6]) -> Option<NextHop> {
    Some(NextHop { ifindex, mac })
}

fn neighbour(addr: Addr, mac: Option<[u8; 6]>) -> Change {
    Change::Neighbour(Neighbour {
        ifindex: 3,
        addr,
        mac,
        stale: false,
    })
}

fn nothing(_: NextHop, _: Vec<u8>) {
    panic!("nothing was held")
}

#[test]
fn on_link_and_gatewayed_destinations() {
    let mut nh = lab();
    assert_eq!(nh.resolve(&RS, T0), hop(3, MAC1));
    assert_eq!(nh.resolve(&FAR, T0), hop(3, MAC2));
    assert_eq!(nh.unresolved, 0);
}

#[test]
fn a_current_slot_asks_nothing() {
    let mut nh = lab();
    let mut slot = u32::MAX;
    assert_eq!(nh.resolve_slot(&mut slot, &RS, T0), hop(3, MAC1));
    assert_ne!(slot, u32::MAX);
    let asked = (nh.kernel.route_calls, nh.kernel.neigh_calls);
    for _ in 0..100 {
        assert_eq!(nh.resolve_slot(&mut slot, &RS, T0), hop(3, MAC1));
        assert_eq!(nh.resolve(&RS, T0), hop(3, MAC1));
    }
    assert_eq!((nh.kernel.route_calls, nh.kernel.neigh_calls), asked);
}

#[test]
fn a_slot_of_another_destination_is_not_used() {
    let mut nh = lab();
    let mut slot = u32::MAX;
    nh.resolve_slot(&mut slot, &RS, T0);
    let mut other = slot;
    assert_eq!(nh.resolve_slot(&mut other, &FAR, T0), hop(3, MAC2));
    assert_ne!(other, slot);
    let mut junk = 12345;
    assert_eq!(nh.resolve_slot(&mut junk, &RS, T0), hop(3, MAC1));
    assert_eq!(junk, slot);
}

#[test]
fn both_directions_of_a_connection_keep_their_slots() {
    let mut nh = lab();
    let mut word = u32::MAX;
    assert_eq!(nh.resolve_conn(&mut word, false, &RS, T0), hop(3, MAC1));
    assert_eq!(word >> 16, 0xffff, "the reply half is untouched");
    assert_eq!(nh.resolve_conn(&mut word, true, &FAR, T0), hop(3, MAC2));
    let settled = word;
    assert_ne!(settled & 0xffff, settled >> 16);
    let asked = (nh.kernel.route_calls, nh.kernel.neigh_calls);
    for _ in 0..10 {
        assert_eq!(nh.resolve_conn(&mut word, false, &RS, T0), hop(3, MAC1));
        assert_eq!(nh.resolve_conn(&mut word, true, &FAR, T0), hop(3, MAC2));
        assert_eq!(word, settled, "alternating directions do not thrash");
    }
    assert_eq!((nh.kernel.route_calls, nh.kernel.neigh_calls), asked);
}

#[test]
fn a_neighbour_change_reaches_cached_connections_without_a_lookup() {
    let mut nh = lab();
    let (mut a, mut b) = (u32::MAX, u32::MAX);
    nh.resolve_slot(&mut a, &RS, T0);
    nh.resolve_slot(&mut b, &FAR, T0);
    let asked = (nh.kernel.route_calls, nh.kernel.neigh_calls);
    nh.kernel.changes.push(neighbour(GW, Some(MAC1)));
    nh.poll(T0, nothing);
    assert_eq!(nh.resolve_slot(&mut b, &FAR, T0), hop(3, MAC1));
    assert_eq!(nh.resolve_slot(&mut a, &RS, T0), hop(3, MAC1));
    assert_eq!((nh.kernel.route_calls, nh.kernel.neigh_calls), asked);
}

#[test]
fn a_failed_neighbour_is_asked_again_and_solicited() {
    let mut nh = lab();
    let mut slot = u32::MAX;
    nh.resolve_slot(&mut slot, &RS, T0);
    nh.kernel.neighs.remove(&(3, RS));
    nh.kernel.changes.push(neighbour(RS, None));
    nh.poll(T0, nothing);
    assert_eq!(nh.resolve_slot(&mut slot, &RS, T0), None);
    assert_eq!(nh.kernel.solicited, vec![(3, RS)]);
    assert_eq!(nh.unresolved, 1);
    // Not asked again within the retry interval.
    let asked = nh.kernel.neigh_calls;
    assert_eq!(
        nh.resolve_slot(&mut slot, &RS, T0 + Duration::from_millis(500)),
        None
    );
    assert_eq!(nh.kernel.neigh_calls, asked);
    assert_eq!(nh.unresolved, 2);
    // The kernel's answer arrives.
    nh.kernel.changes.push(neighbour(RS, Some(MAC2)));
    nh.poll(T0, nothing);
    assert_eq!(nh.resolve_slot(&mut slot, &RS, T0), hop(3, MAC2));
}

#[test]
fn a_route_change_reaches_cached_connections() {
    let mut nh = lab();
    let mut slot = u32::MAX;
    assert_eq!(nh.resolve_slot(&mut slot, &FAR, T0), hop(3, MAC2));
    nh.kernel.routes.insert(
        FAR,
        Route {
            ifindex: 4,
            via: Addr::v4([10, 30, 0, 1]),
        },
    );
    nh.kernel.neighs.insert((4, Addr::v4([10, 30, 0, 1])), MAC1);
    nh.kernel.changes.push(Change::Routes);
    nh.poll(T0, nothing);
    let before = slot;
    assert_eq!(nh.resolve_slot(&mut slot, &FAR, T0), hop(4, MAC1));
    assert_eq!(slot, before, "a destination keeps its slot");
}

#[test]
fn no_route_is_counted_and_not_asked_at_every_frame() {
    let mut nh = lab();
    let dst = Addr::v4([203, 0, 113, 1]);
    assert_eq!(nh.resolve(&dst, T0), None);
    assert_eq!(nh.resolve(&dst, T0 + Duration::from_millis(10)), None);
    assert_eq!(nh.unresolved, 2);
    assert_eq!(nh.kernel.route_calls, 1);
    assert!(!nh.hold(&dst, b"frame"), "nothing to wait for");
    // A route appears; the next look after the retry interval finds it.
    nh.kernel.routes.insert(
        dst,
        Route {
            ifindex: 3,
            via: GW,
        },
    );
    assert_eq!(nh.resolve(&dst, T0 + RETRY), hop(3, MAC2));
}

#[test]
fn held_frames_go_when_the_neighbour_resolves() {
    let mut nh = lab();
    nh.kernel.neighs.remove(&(3, RS));
    assert_eq!(nh.resolve(&RS, T0), None);
    assert!(nh.hold(&RS, b"one"));
    assert!(nh.hold(&RS, b"two"));
    let mut sent = Vec::new();
    nh.poll(T0, |h, f| sent.push((h, f)));
    assert!(sent.is_empty(), "not resolved yet");
    nh.kernel.changes.push(neighbour(RS, Some(MAC2)));
    nh.poll(T0, |h, f| sent.push((h, f)));
    let want = NextHop {
        ifindex: 3,
        mac: MAC2,
    };
    assert_eq!(sent, vec![(want, b"one".to_vec()), (want, b"two".to_vec())]);
    assert_eq!(nh.hold_dropped, 0);
    assert!(!nh.hold(&RS, b"three"), "resolved: nothing to hold for");
}

#[test]
fn held_frames_are_bounded_and_expire() {
    let mut nh = lab();
    nh.kernel.neighs.remove(&(3, RS));
    assert_eq!(nh.resolve(&RS, T0), None);
    let kept = (0..20).filter(|_| nh.hold(&RS, b"f")).count();
    assert_eq!(kept, HOLD_PER_NEIGHBOUR);
    nh.poll(T0 + RETRY, nothing);
    assert_eq!(nh.hold_dropped, HOLD_PER_NEIGHBOUR as u64);
    assert_eq!(nh.held, 0);
}

#[test]
fn lost_notifications_start_over() {
    let mut nh = lab();
    let mut slot = u32::MAX;
    nh.resolve_slot(&mut slot, &FAR, T0);
    nh.kernel.neighs.insert((3, GW), MAC1);
    nh.kernel.changes.push(Change::Lost);
    nh.poll(T0, nothing);
    assert_eq!(nh.cached(), (0, 0));
    assert_eq!(nh.resolve_slot(&mut slot, &FAR, T0), hop(3, MAC1));
}

#[test]
fn used_stale_neighbours_are_reconfirmed_once_a_second() {
    let mut nh = lab();
    nh.kernel.stale = true;
    nh.poll(T0, nothing); // the first refresh round: nothing used yet
    let mut slot = u32::MAX;
    nh.resolve_slot(&mut slot, &RS, T0);
    nh.poll(T0 + Duration::from_millis(10), nothing);
    assert!(nh.kernel.solicited.is_empty(), "not a second yet");
    nh.poll(T0 + REFRESH, nothing);
    assert_eq!(nh.kernel.solicited, vec![(3, RS)]);
    // Unused since: left alone.
    nh.poll(T0 + REFRESH * 2, nothing);
    assert_eq!(nh.kernel.solicited.len(), 1);
}

#[test]
fn the_cache_is_bounded() {
    let mut nh = lab();
    for i in 0..(MAX_SLOTS as u32 + 10) {
        let b = i.to_be_bytes();
        let _ = nh.resolve(&Addr::v4([10, b[1], b[2], b[3]]), T0);
    }
    assert!(nh.cached().0 <= MAX_SLOTS);
}
