//! The kernel side of [`super::NextHops`]: two `NETLINK_ROUTE` sockets of
//! the calling thread's network namespace. One asks (`RTM_GETROUTE`,
//! `RTM_GETNEIGH`, `RTM_GETLINK`, and `RTM_NEWNEIGH` with `NTF_USE` to make
//! the kernel resolve a neighbour), blocking with a short receive timeout;
//! the other listens, non-blocking, to the neighbour, IPv4/IPv6 route and
//! link groups. Messages are built and parsed by `netlink-packet-route`.

use super::{Change, Kernel, Neighbour, Route};
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteType, RouteVia,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use rvs_types::Addr;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

/// How long one request waits for its answer.
const REPLY_TIMEOUT: Duration = Duration::from_millis(200);
/// Datagrams read per request before giving up on its answer.
const MAX_REPLY_READS: usize = 16;
/// Notification datagrams drained per [`Kernel::changes`] call (the rest
/// wait for the next call).
const MAX_NOTIFY_READS: usize = 64;
/// Receive buffer of the notification socket.
const NOTIFY_RCVBUF: usize = 1 << 20;
/// The kernel's "neighbour is usable" states (`NUD_VALID`).
const NUD_VALID: u16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80;
/// `NUD_STALE`.
const NUD_STALE: u16 = 0x04;

/// The netlink sockets of one [`super::NextHops`].
pub struct Netlink {
    req: Socket,
    watch: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink").field("seq", &self.seq).finish()
    }
}

fn socket() -> io::Result<Socket> {
    let mut s = Socket::new(NETLINK_ROUTE)?;
    s.bind_auto()?;
    s.connect(&SocketAddr::new(0, 0))?;
    Ok(s)
}

fn set_recv_timeout(s: &Socket, t: Duration) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let tv = libc::timeval {
        tv_sec: t.as_secs() as libc::time_t,
        tv_usec: t.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: a valid socket descriptor and a timeval of the size given.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Netlink {
    /// Opens both sockets in the calling thread's network namespace and
    /// subscribes the second one to neighbour, route and link changes.
    pub fn open() -> io::Result<Self> {
        let req = socket()?;
        set_recv_timeout(&req, REPLY_TIMEOUT)?;
        let watch = socket()?;
        for group in [
            libc::RTNLGRP_NEIGH,
            libc::RTNLGRP_IPV4_ROUTE,
            libc::RTNLGRP_IPV6_ROUTE,
            libc::RTNLGRP_LINK,
        ] {
            watch.add_membership(group)?;
        }
        let _ = watch.set_rx_buf_sz(NOTIFY_RCVBUF);
        watch.set_non_blocking(true)?;
        Ok(Self {
            req,
            watch,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Sends one request and returns its answer: the message, `None` for an
    /// acknowledgement, or the kernel's error.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Option<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let bytes = encode(msg, flags, seq);
        self.req.send(&bytes, 0)?;
        for _ in 0..MAX_REPLY_READS {
            let n = self.req.recv(&mut &mut self.buf[..], 0)?;
            let data = &self.buf[..n.min(self.buf.len())];
            for m in messages(data) {
                if m.header.sequence_number != seq {
                    continue; // a late answer to an earlier, timed-out request
                }
                return match m.payload {
                    NetlinkPayload::InnerMessage(inner) => Ok(Some(inner)),
                    NetlinkPayload::Error(e) if e.code.is_some() => Err(e.to_io()),
                    _ => Ok(None),
                };
            }
        }
        Err(io::Error::new(io::ErrorKind::TimedOut, "no netlink answer"))
    }

    /// Makes the kernel resolve a neighbour the way traffic would: a
    /// datagram to the discard port (the fallback when `NTF_USE` is refused).
    fn datagram(ifindex: u32, addr: &Addr) {
        let (bind, to): (&str, std::net::SocketAddr) = match addr.to_ip() {
            IpAddr::V4(a) => ("0.0.0.0:0", (a, 9).into()),
            // The scope matters for a link-local gateway.
            IpAddr::V6(a) => (
                "[::]:0",
                std::net::SocketAddrV6::new(a, 9, 0, ifindex).into(),
            ),
        };
        if let Ok(s) = std::net::UdpSocket::bind(bind) {
            let _ = s.send_to(b"", to);
        }
    }
}

impl Kernel for Netlink {
    fn route(&mut self, dst: &Addr) -> Option<Route> {
        match self.request(RouteNetlinkMessage::GetRoute(route_query(dst)), 0) {
            Ok(Some(RouteNetlinkMessage::NewRoute(m))) => parse_route(&m, dst),
            _ => None,
        }
    }

    fn neighbour(&mut self, ifindex: u32, addr: &Addr) -> Option<Neighbour> {
        let q = neighbour_msg(ifindex, addr, NeighbourFlags::empty());
        match self.request(RouteNetlinkMessage::GetNeighbour(q), 0) {
            Ok(Some(RouteNetlinkMessage::NewNeighbour(m))) => parse_neighbour(&m),
            _ => None,
        }
    }

    fn solicit(&mut self, ifindex: u32, addr: &Addr) {
        // NTF_USE: the kernel creates the entry if needed and runs its
        // resolution (neigh_event_send), as for a packet of its own.
        let m = neighbour_msg(ifindex, addr, NeighbourFlags::Use);
        let flags = NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK;
        if self
            .request(RouteNetlinkMessage::NewNeighbour(m), flags)
            .is_err()
        {
            Self::datagram(ifindex, addr);
        }
    }

    fn ifname(&mut self, ifindex: u32) -> Option<String> {
        let mut q = LinkMessage::default();
        q.header.index = ifindex;
        match self.request(RouteNetlinkMessage::GetLink(q), 0) {
            Ok(Some(RouteNetlinkMessage::NewLink(m))) => {
                m.attributes.iter().find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n.clone()),
                    _ => None,
                })
            }
            _ => None,
        }
    }

    fn changes(&mut self, out: &mut Vec<Change>) {
        for _ in 0..MAX_NOTIFY_READS {
            match self.watch.recv(&mut &mut self.buf[..], libc::MSG_DONTWAIT) {
                Ok(n) => {
                    let data = &self.buf[..n.min(self.buf.len())];
                    out.extend(messages(data).filter_map(|m| change(&m)));
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => out.push(Change::Lost),
                Err(_) => return,
            }
        }
    }
}

/// A request datagram.
fn encode(msg: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut h = NetlinkHeader::default();
    h.flags = NLM_F_REQUEST | flags;
    h.sequence_number = seq;
    let mut m = NetlinkMessage::new(h, NetlinkPayload::from(msg));
    m.finalize();
    let mut bytes = vec![0; m.buffer_len()];
    m.serialize(&mut bytes);
    bytes
}

/// The messages of one datagram; malformed ones are skipped, and a bad
/// length ends the walk (never a panic, never a loop without progress).
pub(super) fn messages(
    mut data: &[u8],
) -> impl Iterator<Item = NetlinkMessage<RouteNetlinkMessage>> + '_ {
    std::iter::from_fn(move || {
        loop {
            let len = data.get(..4)?;
            let len = u32::from_ne_bytes([len[0], len[1], len[2], len[3]]) as usize;
            if len < 16 || len > data.len() {
                return None;
            }
            let (this, rest) = data.split_at(len);
            data = rest.get(len.next_multiple_of(4) - len..).unwrap_or(&[]);
            if let Ok(m) = NetlinkMessage::deserialize(this) {
                return Some(m);
            }
        }
    })
}

/// What a notification means for the cache.
pub(super) fn change(m: &NetlinkMessage<RouteNetlinkMessage>) -> Option<Change> {
    let NetlinkPayload::InnerMessage(inner) = &m.payload else {
        return None;
    };
    match inner {
        RouteNetlinkMessage::NewRoute(_)
        | RouteNetlinkMessage::DelRoute(_)
        | RouteNetlinkMessage::NewLink(_)
        | RouteNetlinkMessage::DelLink(_) => Some(Change::Routes),
        RouteNetlinkMessage::NewNeighbour(n) => parse_neighbour(n).map(Change::Neighbour),
        RouteNetlinkMessage::DelNeighbour(n) => parse_neighbour(n).map(|mut n| {
            n.mac = None;
            Change::Neighbour(n)
        }),
        _ => None,
    }
}

/// An `RTM_GETROUTE` query for one destination (`ip route get DST`).
fn route_query(dst: &Addr) -> RouteMessage {
    let mut q = RouteMessage::default();
    match dst.to_ip() {
        IpAddr::V4(a) => {
            q.header.address_family = AddressFamily::Inet;
            q.header.destination_prefix_length = 32;
            q.attributes
                .push(RouteAttribute::Destination(RouteAddress::Inet(a)));
        }
        IpAddr::V6(a) => {
            q.header.address_family = AddressFamily::Inet6;
            q.header.destination_prefix_length = 128;
            q.attributes
                .push(RouteAttribute::Destination(RouteAddress::Inet6(a)));
        }
    }
    q
}

/// The egress interface and next hop of an `RTM_GETROUTE` answer; `None`
/// unless it is a unicast route with an interface (local, broadcast,
/// blackhole... destinations are not forwarded).
pub(super) fn parse_route(m: &RouteMessage, dst: &Addr) -> Option<Route> {
    if m.header.kind != RouteType::Unicast {
        return None;
    }
    let mut ifindex = None;
    let mut via = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Oif(i) => ifindex = Some(*i),
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => via = Some(Addr::from(*g)),
            RouteAttribute::Gateway(RouteAddress::Inet6(g)) => via = Some(Addr::from(*g)),
            RouteAttribute::Via(RouteVia::Inet(g)) => via = Some(Addr::from(*g)),
            RouteAttribute::Via(RouteVia::Inet6(g)) => via = Some(Addr::from(*g)),
            _ => {}
        }
    }
    Some(Route {
        ifindex: ifindex.filter(|i| *i != 0)?,
        via: via.unwrap_or(*dst),
    })
}

/// An `RTM_GETNEIGH` query (or, with `NTF_USE`, a resolution request).
fn neighbour_msg(ifindex: u32, addr: &Addr, flags: NeighbourFlags) -> NeighbourMessage {
    let mut q = NeighbourMessage::default();
    q.header.ifindex = ifindex;
    q.header.flags = flags;
    q.header.state = NeighbourState::None;
    let (family, a) = match addr.to_ip() {
        IpAddr::V4(a) => (AddressFamily::Inet, NeighbourAddress::Inet(a)),
        IpAddr::V6(a) => (AddressFamily::Inet6, NeighbourAddress::Inet6(a)),
    };
    q.header.family = family;
    q.attributes.push(NeighbourAttribute::Destination(a));
    q
}

/// A neighbour entry of an answer or a notification; its MAC only when the
/// kernel considers it usable (`NUD_VALID`) and it is an Ethernet address.
pub(super) fn parse_neighbour(m: &NeighbourMessage) -> Option<Neighbour> {
    let addr = m.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => Some(Addr::from(*a)),
        NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => Some(Addr::from(*a)),
        _ => None,
    })?;
    let state = u16::from(m.header.state);
    let mac = m
        .attributes
        .iter()
        .find_map(|a| match a {
            NeighbourAttribute::LinkLayerAddress(l) => <[u8; 6]>::try_from(l.as_slice()).ok(),
            _ => None,
        })
        .filter(|_| state & NUD_VALID != 0);
    Some(Neighbour {
        ifindex: m.header.ifindex,
        addr,
        mac,
        stale: state & NUD_STALE != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn reply(msg: RouteNetlinkMessage, seq: u32) -> Vec<u8> {
        encode(msg, 0, seq)
    }

    fn route_reply(kind: RouteType, attrs: Vec<RouteAttribute>) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.kind = kind;
        m.attributes = attrs;
        m
    }

    fn one(bytes: &[u8]) -> RouteNetlinkMessage {
        let mut it = messages(bytes);
        let m = it.next().expect("one message");
        assert!(it.next().is_none());
        match m.payload {
            NetlinkPayload::InnerMessage(i) => i,
            p => panic!("not an inner message: {p:?}"),
        }
    }

    #[test]
    fn gatewayed_route_reply() {
        let m = route_reply(
            RouteType::Unicast,
            vec![
                RouteAttribute::Destination(RouteAddress::Inet([10, 30, 0, 5].into())),
                RouteAttribute::Gateway(RouteAddress::Inet([10, 20, 0, 1].into())),
                RouteAttribute::Oif(7),
            ],
        );
        let bytes = reply(RouteNetlinkMessage::NewRoute(m), 3);
        let RouteNetlinkMessage::NewRoute(m) = one(&bytes) else {
            panic!("not a route")
        };
        let dst = Addr::v4([10, 30, 0, 5]);
        assert_eq!(
            parse_route(&m, &dst),
            Some(Route {
                ifindex: 7,
                via: Addr::v4([10, 20, 0, 1])
            })
        );
    }

    #[test]
    fn on_link_route_reply_goes_to_the_destination() {
        let m = route_reply(RouteType::Unicast, vec![RouteAttribute::Oif(2)]);
        let dst = Addr::v6([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
        assert_eq!(
            parse_route(&m, &dst),
            Some(Route {
                ifindex: 2,
                via: dst
            })
        );
    }

    #[test]
    fn ipv4_route_via_an_ipv6_gateway() {
        let g: Ipv6Addr = "fe80::1".parse().unwrap();
        let m = route_reply(
            RouteType::Unicast,
            vec![
                RouteAttribute::Via(RouteVia::Inet6(g)),
                RouteAttribute::Oif(4),
            ],
        );
        let bytes = reply(RouteNetlinkMessage::NewRoute(m), 1);
        let RouteNetlinkMessage::NewRoute(m) = one(&bytes) else {
            panic!("not a route")
        };
        let r = parse_route(&m, &Addr::v4([1, 2, 3, 4])).expect("route");
        assert_eq!((r.ifindex, r.via), (4, Addr::from(g)));
    }

    #[test]
    fn local_and_interfaceless_routes_are_not_next_hops() {
        let dst = Addr::v4([127, 0, 0, 1]);
        let local = route_reply(RouteType::Local, vec![RouteAttribute::Oif(1)]);
        assert_eq!(parse_route(&local, &dst), None);
        let no_oif = route_reply(RouteType::Unicast, vec![]);
        assert_eq!(parse_route(&no_oif, &dst), None);
    }

    fn neigh(state: NeighbourState, lladdr: Option<Vec<u8>>) -> NeighbourMessage {
        let mut m = neighbour_msg(5, &Addr::v4([10, 0, 0, 9]), NeighbourFlags::empty());
        m.header.state = state;
        if let Some(l) = lladdr {
            m.attributes.push(NeighbourAttribute::LinkLayerAddress(l));
        }
        m
    }

    #[test]
    fn neighbour_states() {
        let mac = vec![2, 0, 0, 0, 0, 9];
        for (state, usable, stale) in [
            (NeighbourState::Reachable, true, false),
            (NeighbourState::Stale, true, true),
            (NeighbourState::Delay, true, false),
            (NeighbourState::Probe, true, false),
            (NeighbourState::Permanent, true, false),
            (NeighbourState::Incomplete, false, false),
            (NeighbourState::Failed, false, false),
            (NeighbourState::None, false, false),
        ] {
            let bytes = reply(
                RouteNetlinkMessage::NewNeighbour(neigh(state, Some(mac.clone()))),
                9,
            );
            let RouteNetlinkMessage::NewNeighbour(m) = one(&bytes) else {
                panic!("not a neighbour")
            };
            let n = parse_neighbour(&m).expect("neighbour");
            assert_eq!((n.ifindex, n.addr), (5, Addr::v4([10, 0, 0, 9])));
            assert_eq!(n.mac.is_some(), usable, "{state}");
            assert_eq!(n.stale, stale, "{state}");
            if usable {
                assert_eq!(n.mac, Some([2, 0, 0, 0, 0, 9]));
            }
        }
        // Not an Ethernet address; no address at all.
        assert_eq!(
            parse_neighbour(&neigh(NeighbourState::Reachable, Some(vec![1, 2, 3])))
                .and_then(|n| n.mac),
            None
        );
        assert_eq!(
            parse_neighbour(&neigh(NeighbourState::Reachable, None)).and_then(|n| n.mac),
            None
        );
    }

    #[test]
    fn notifications_map_to_changes() {
        let mac = vec![2, 0, 0, 0, 0, 7];
        let mut bytes = reply(
            RouteNetlinkMessage::NewRoute(route_reply(RouteType::Unicast, vec![])),
            0,
        );
        bytes.extend(reply(
            RouteNetlinkMessage::NewNeighbour(neigh(NeighbourState::Reachable, Some(mac.clone()))),
            0,
        ));
        bytes.extend(reply(
            RouteNetlinkMessage::DelNeighbour(neigh(NeighbourState::Reachable, Some(mac))),
            0,
        ));
        bytes.extend(reply(
            RouteNetlinkMessage::DelLink(LinkMessage::default()),
            0,
        ));
        let got: Vec<Change> = messages(&bytes).filter_map(|m| change(&m)).collect();
        let n = |mac| {
            Change::Neighbour(Neighbour {
                ifindex: 5,
                addr: Addr::v4([10, 0, 0, 9]),
                mac,
                stale: false,
            })
        };
        assert_eq!(
            got,
            vec![
                Change::Routes,
                n(Some([2, 0, 0, 0, 0, 7])),
                n(None),
                Change::Routes
            ]
        );
    }

    #[test]
    fn error_and_ack_answers() {
        let mut e = netlink_packet_core::ErrorMessage::default();
        e.code = std::num::NonZeroI32::new(-libc::ENETUNREACH);
        let mut h = NetlinkHeader::default();
        h.sequence_number = 4;
        let mut m: NetlinkMessage<RouteNetlinkMessage> =
            NetlinkMessage::new(h, NetlinkPayload::Error(e));
        m.finalize();
        let mut bytes = vec![0; m.buffer_len()];
        m.serialize(&mut bytes);
        let got: Vec<_> = messages(&bytes).collect();
        assert_eq!(got.len(), 1);
        let NetlinkPayload::Error(e) = &got[0].payload else {
            panic!("not an error")
        };
        assert_eq!(e.to_io().raw_os_error(), Some(libc::ENETUNREACH));
        assert_eq!(got[0].header.sequence_number, 4);
    }

    #[test]
    fn malformed_datagrams_never_panic() {
        let good = reply(
            RouteNetlinkMessage::NewNeighbour(neigh(
                NeighbourState::Reachable,
                Some(vec![2, 0, 0, 0, 0, 1]),
            )),
            1,
        );
        // Every truncation, and every single-byte corruption.
        for cut in 0..good.len() {
            let _ = messages(&good[..cut]).filter_map(|m| change(&m)).count();
        }
        for i in 0..good.len() {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut bad = good.clone();
                bad[i] = v;
                let _ = messages(&bad).filter_map(|m| change(&m)).count();
            }
        }
        // Pseudo-random garbage.
        let mut x = 0x9e37_79b9_u32;
        for len in 0..300 {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = messages(&junk).filter_map(|m| change(&m)).count();
        }
        // A zero length ends the walk instead of looping.
        assert_eq!(messages(&[0u8; 64]).count(), 0);
    }
}
