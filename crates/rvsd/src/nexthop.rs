//! Next hops from the kernel's routing and neighbour tables: the egress
//! interface and the MAC to send a forwarded frame to. The kernel resolves
//! (ARP/ND); rvs only asks, never runs a resolver of its own.
//!
//! [`NextHops`] asks over netlink ([`Netlink`]): `RTM_GETROUTE` for the
//! destination (egress interface, gateway; IPv4 and IPv6, the kernel's own
//! policy routing applies), then `RTM_GETNEIGH` for the neighbour entry of
//! (interface, gateway or destination). A missing or not yet valid entry
//! (none, INCOMPLETE, FAILED) is handed to the kernel to resolve with an
//! `RTM_NEWNEIGH` carrying `NTF_USE` — the kernel then creates the entry and
//! runs its ARP/ND exactly as for a packet of its own (falling back to a
//! datagram toward the discard port if that request is refused); meanwhile
//! the lookup reports no next hop, and the driver may [`NextHops::hold`] the
//! frame (a few per neighbour, like the kernel's own `unres_qlen` queue)
//! until the answer comes, or drop and count it.
//!
//! Nothing expires by age. A second netlink socket, subscribed to the
//! neighbour, IPv4/IPv6 route and link groups and read without blocking by
//! [`NextHops::poll`] (once per poll round of the worker), keeps the cache
//! true: a neighbour notification rewrites that neighbour's entry in place
//! (new MAC, or unusable), and any route or link change bumps a generation
//! that makes every destination look its route up again on its next frame.
//! Lost notifications (the socket overflowed) clear everything.
//!
//! Connections keep the indexes of their destinations' slots (`Conn.nh`,
//! through `Director::nh_slot`: the real server's and, for NAT replies, the
//! client's, 16 bits each), so the per-packet cost of a cached next hop is
//! an index, the destination and generation compared, and the neighbour's
//! validity read ([`NextHops::resolve_conn`]); a changed MAC or route
//! reaches established connections on their next frame.
//!
//! The kernel does not see frames sent through AF_XDP, so it would never
//! re-check a STALE neighbour on its own: once a second, STALE neighbours
//! that carried frames are handed to the kernel with `NTF_USE` as well, the
//! kernel's treatment of its own traffic (DELAY, then a unicast probe).
//!
//! Why synchronous `netlink-sys` sockets and not `rtnetlink`: the worker is
//! a plain thread with no async runtime, the questions are one request and
//! one answer each, and the notification socket must be drained without
//! blocking inside the worker's loop; `rtnetlink` would bring a tokio
//! runtime into the packet path for no gain. `netlink-packet-route` (the
//! message types `rtnetlink` itself uses) builds and parses every message.

mod netlink;

pub use netlink::Netlink;
use rvs_types::{Addr, Instant};
use std::collections::HashMap;
use std::time::Duration;

/// Where a frame for one next hop goes.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct NextHop {
    /// Egress interface index (in rvsd's network namespace).
    pub ifindex: u32,
    /// The MAC to send to (the gateway's, or the destination's on-link).
    pub mac: [u8; 6],
}

/// The kernel's route toward one destination.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Route {
    /// Egress interface index.
    pub ifindex: u32,
    /// The neighbour to send to: the gateway, or the destination on-link.
    pub via: Addr,
}

/// One neighbour entry as the kernel reports it.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Neighbour {
    /// Interface index.
    pub ifindex: u32,
    /// The neighbour's address.
    pub addr: Addr,
    /// Its MAC, when the kernel considers the entry usable.
    pub mac: Option<[u8; 6]>,
    /// The entry is STALE (usable, not confirmed lately).
    pub stale: bool,
}

/// A change the kernel announced.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Change {
    /// A route or a link changed: every route is looked up again.
    Routes,
    /// A neighbour entry changed or went.
    Neighbour(Neighbour),
    /// Notifications were lost: everything is looked up again.
    Lost,
}

/// The questions [`NextHops`] asks the kernel ([`Netlink`]; tests use fakes).
pub trait Kernel {
    /// The route toward `dst`; `None` when there is no usable unicast route.
    fn route(&mut self, dst: &Addr) -> Option<Route>;
    /// The neighbour entry of `addr` on interface `ifindex`, if any.
    fn neighbour(&mut self, ifindex: u32, addr: &Addr) -> Option<Neighbour>;
    /// Asks the kernel to resolve (or re-confirm) that neighbour.
    fn solicit(&mut self, ifindex: u32, addr: &Addr);
    /// The name of interface `ifindex`.
    fn ifname(&mut self, ifindex: u32) -> Option<String>;
    /// Appends the changes announced since the last call (without blocking).
    fn changes(&mut self, out: &mut Vec<Change>);
}

/// No slot / no neighbour entry.
const NONE: u32 = u32::MAX;
/// How long an unresolved neighbour or an unroutable destination is left
/// alone before the kernel is asked again (and frames held for it go).
const RETRY: Duration = Duration::from_secs(1);
/// How often used STALE neighbours are handed to the kernel to re-confirm.
const REFRESH: Duration = Duration::from_secs(1);
/// Destinations cached before the cache starts over (bounds memory when
/// NAT replies go to many client addresses); a slot index fits in half of
/// a connection's `nh` word, with `0xffff` meaning none.
const MAX_SLOTS: usize = 0xffff;
/// Frames held per unresolved neighbour, and in all.
const HOLD_PER_NEIGHBOUR: usize = 8;
const HOLD_TOTAL: usize = 256;

/// One destination.
#[derive(Debug)]
struct Slot {
    dst: Addr,
    /// The route generation its route was looked up in.
    generation: u64,
    /// Its neighbour entry; [`NONE`]: no route.
    neigh: u32,
    /// With no route: when to ask again.
    retry: Instant,
}

/// One neighbour (interface, address).
#[derive(Debug)]
struct Entry {
    ifindex: u32,
    addr: Addr,
    mac: [u8; 6],
    valid: bool,
    stale: bool,
    /// A frame went to it since the last refresh.
    used: bool,
    /// While not valid: when to ask the kernel again.
    retry: Instant,
    /// Frames waiting for it to resolve.
    held: Vec<Vec<u8>>,
}

/// The next-hop cache of one worker.
#[derive(Debug)]
pub struct NextHops<K = Netlink> {
    kernel: K,
    generation: u64,
    slots: Vec<Slot>,
    by_dst: HashMap<Addr, u32>,
    neighs: Vec<Entry>,
    by_neigh: HashMap<(u32, Addr), u32>,
    /// Neighbour entries holding frames.
    pending: Vec<u32>,
    held: usize,
    changes: Vec<Change>,
    next_refresh: Instant,
    /// Lookups that found no route or no usable neighbour.
    pub unresolved: u64,
    /// Held frames dropped: the neighbour did not resolve in time, or the
    /// cache started over.
    pub hold_dropped: u64,
}

impl NextHops<Netlink> {
    /// A cache asking the kernel of the calling thread's network namespace.
    pub fn open() -> std::io::Result<Self> {
        Ok(Self::with_kernel(Netlink::open()?))
    }
}

impl<K: Kernel> NextHops<K> {
    /// A cache asking `kernel`.
    pub fn with_kernel(kernel: K) -> Self {
        Self {
            kernel,
            generation: 0,
            slots: Vec::new(),
            by_dst: HashMap::new(),
            neighs: Vec::new(),
            by_neigh: HashMap::new(),
            pending: Vec::new(),
            held: 0,
            changes: Vec::new(),
            next_refresh: Instant::ZERO,
            unresolved: 0,
            hold_dropped: 0,
        }
    }

    /// The next hop toward `dst`, from the cache or the kernel.
    pub fn resolve(&mut self, dst: &Addr, now: Instant) -> Option<NextHop> {
        let mut slot = self.by_dst.get(dst).copied().unwrap_or(NONE);
        self.resolve_slot(&mut slot, dst, now)
    }

    /// The next hop toward `dst` for a connection whose cached slot is
    /// `*slot` (`u32::MAX` for none); `*slot` is updated when it changes.
    /// A slot that is current costs no lookup at all.
    #[inline]
    pub fn resolve_slot(&mut self, slot: &mut u32, dst: &Addr, now: Instant) -> Option<NextHop> {
        if let Some(s) = self.slots.get(*slot as usize)
            && s.dst == *dst
            && s.generation == self.generation
            && let Some(n) = self.neighs.get_mut(s.neigh as usize)
            && n.valid
        {
            n.used = true;
            return Some(NextHop {
                ifindex: n.ifindex,
                mac: n.mac,
            });
        }
        self.resolve_slow(slot, dst, now)
    }

    /// [`Self::resolve_slot`] for a connection whose cache word is `*nh`
    /// (`Conn.nh`; `u32::MAX` when new): its low half holds the slot of the
    /// real-server direction, its high half that of the replies (`reply`),
    /// so both directions of a NAT connection stay on the cheap path.
    #[inline]
    pub fn resolve_conn(
        &mut self,
        nh: &mut u32,
        reply: bool,
        dst: &Addr,
        now: Instant,
    ) -> Option<NextHop> {
        let shift = if reply { 16 } else { 0 };
        let half = (*nh >> shift) & 0xffff;
        let mut slot = if half == 0xffff { NONE } else { half };
        let hop = self.resolve_slot(&mut slot, dst, now);
        let half = slot.min(0xffff);
        *nh = (*nh & !(0xffff << shift)) | (half << shift);
        hop
    }

    fn resolve_slow(&mut self, slot: &mut u32, dst: &Addr, now: Instant) -> Option<NextHop> {
        let i = self.slot_of(dst);
        *slot = i;
        let s = &self.slots[i as usize];
        if s.generation != self.generation || (s.neigh == NONE && now >= s.retry) {
            self.route(i, now);
        }
        let hop = match self.slots[i as usize].neigh {
            NONE => None,
            n => self.neighbour_hop(n, now),
        };
        if hop.is_none() {
            self.unresolved += 1;
        }
        hop
    }

    /// The slot of `dst`, made if new (a new slot has no route yet).
    fn slot_of(&mut self, dst: &Addr) -> u32 {
        if let Some(&i) = self.by_dst.get(dst) {
            return i;
        }
        if self.slots.len() >= MAX_SLOTS || self.neighs.len() >= MAX_SLOTS {
            self.start_over();
        }
        let i = self.slots.len() as u32;
        self.slots.push(Slot {
            dst: *dst,
            generation: self.generation,
            neigh: NONE,
            retry: Instant::ZERO,
        });
        self.by_dst.insert(*dst, i);
        i
    }

    /// Looks up slot `i`'s route and finds its neighbour entry.
    fn route(&mut self, i: u32, now: Instant) {
        let dst = self.slots[i as usize].dst;
        let neigh = match self.kernel.route(&dst) {
            Some(r) => self.entry_of(r.ifindex, r.via),
            None => NONE,
        };
        let s = &mut self.slots[i as usize];
        s.generation = self.generation;
        s.neigh = neigh;
        s.retry = now + RETRY;
    }

    /// The entry of neighbour (ifindex, addr), made if new (not valid yet).
    fn entry_of(&mut self, ifindex: u32, addr: Addr) -> u32 {
        if let Some(&n) = self.by_neigh.get(&(ifindex, addr)) {
            return n;
        }
        let n = self.neighs.len() as u32;
        self.neighs.push(Entry {
            ifindex,
            addr,
            mac: [0; 6],
            valid: false,
            stale: false,
            used: false,
            retry: Instant::ZERO,
            held: Vec::new(),
        });
        self.by_neigh.insert((ifindex, addr), n);
        n
    }

    /// The next hop of neighbour entry `n`, asking the kernel when it is
    /// not valid and was not asked lately.
    fn neighbour_hop(&mut self, n: u32, now: Instant) -> Option<NextHop> {
        let e = &mut self.neighs[n as usize];
        if !e.valid && now >= e.retry {
            match self.kernel.neighbour(e.ifindex, &e.addr) {
                Some(Neighbour {
                    mac: Some(mac),
                    stale,
                    ..
                }) => {
                    e.mac = mac;
                    e.valid = true;
                    e.stale = stale;
                }
                _ => {
                    self.kernel.solicit(e.ifindex, &e.addr);
                    e.retry = now + RETRY;
                }
            }
        }
        e.used |= e.valid;
        e.valid.then_some(NextHop {
            ifindex: e.ifindex,
            mac: e.mac,
        })
    }

    /// Keeps a copy of a frame for `dst` whose lookup just failed because
    /// its neighbour is not resolved yet; [`Self::poll`] hands it back when
    /// the neighbour resolves, or drops it after a while. False (nothing
    /// kept) when there is no route or the queues are full.
    pub fn hold(&mut self, dst: &Addr, frame: &[u8]) -> bool {
        let Some(&i) = self.by_dst.get(dst) else {
            return false;
        };
        let s = &self.slots[i as usize];
        if s.generation != self.generation {
            return false;
        }
        let Some(e) = self.neighs.get_mut(s.neigh as usize) else {
            return false;
        };
        if e.valid || e.held.len() >= HOLD_PER_NEIGHBOUR || self.held >= HOLD_TOTAL {
            return false;
        }
        if e.held.is_empty() {
            self.pending.push(s.neigh);
        }
        e.held.push(frame.to_vec());
        self.held += 1;
        true
    }

    /// Applies the kernel's announced changes, hands held frames whose
    /// neighbour resolved to `send`, drops those that waited too long, and
    /// once a second asks the kernel to re-confirm used STALE neighbours.
    /// Call it once per poll round; it does not block.
    pub fn poll(&mut self, now: Instant, mut send: impl FnMut(NextHop, Vec<u8>)) {
        let mut changes = std::mem::take(&mut self.changes);
        self.kernel.changes(&mut changes);
        for c in changes.drain(..) {
            self.apply(c);
        }
        self.changes = changes;
        if !self.pending.is_empty() {
            self.release(now, &mut send);
        }
        if now >= self.next_refresh {
            self.next_refresh = now + REFRESH;
            self.refresh();
        }
    }

    /// Applies one change.
    pub fn apply(&mut self, c: Change) {
        match c {
            Change::Routes => self.generation += 1,
            Change::Lost => self.start_over(),
            Change::Neighbour(n) => {
                let Some(&i) = self.by_neigh.get(&(n.ifindex, n.addr)) else {
                    return;
                };
                let e = &mut self.neighs[i as usize];
                match n.mac {
                    Some(mac) => {
                        e.mac = mac;
                        e.valid = true;
                        e.stale = n.stale;
                    }
                    None if e.valid => {
                        // Gone bad: the next frame asks again at once.
                        e.valid = false;
                        e.retry = Instant::ZERO;
                    }
                    None => {}
                }
            }
        }
    }

    fn release(&mut self, now: Instant, send: &mut impl FnMut(NextHop, Vec<u8>)) {
        let mut pending = std::mem::take(&mut self.pending);
        pending.retain(|&n| {
            let e = &mut self.neighs[n as usize];
            if e.valid {
                let hop = NextHop {
                    ifindex: e.ifindex,
                    mac: e.mac,
                };
                self.held -= e.held.len();
                for f in e.held.drain(..) {
                    send(hop, f);
                }
                false
            } else if now >= e.retry {
                self.held -= e.held.len();
                self.hold_dropped += e.held.len() as u64;
                e.held.clear();
                false
            } else {
                true
            }
        });
        self.pending = pending;
    }

    fn refresh(&mut self) {
        for e in &mut self.neighs {
            if e.valid && e.stale && e.used {
                self.kernel.solicit(e.ifindex, &e.addr);
            }
            e.used = false;
        }
    }

    /// Forgets everything (slot numbers held by connections stay harmless:
    /// a slot is only used when its destination matches).
    fn start_over(&mut self) {
        self.hold_dropped += self.held as u64;
        self.held = 0;
        self.pending.clear();
        self.slots.clear();
        self.by_dst.clear();
        self.neighs.clear();
        self.by_neigh.clear();
        self.generation += 1;
    }

    /// The name of interface `ifindex` (asked of the kernel each time).
    pub fn ifname(&mut self, ifindex: u32) -> Option<String> {
        self.kernel.ifname(ifindex)
    }

    /// Destinations and neighbours cached.
    pub fn cached(&self) -> (usize, usize) {
        (self.slots.len(), self.neighs.len())
    }
}

#[cfg(test)]
mod tests;
