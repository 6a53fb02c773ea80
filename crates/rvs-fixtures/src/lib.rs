//! The fixture table: each fixture is a director set-up and a list of steps
//! (input frame, expected verdict, expected output frame).
//!
//! Expected frames are built here with `etherparse` (an independent
//! implementation) from the header values the forwarding method must
//! produce, never by running rvs code. The same table:
//! - drives the engine in-process ([`run_engine`], `tests/engine.rs`);
//! - is written to golden pcap files under `golden/` (input and expected
//!   output frames interleaved), checked against the table by a test, for
//!   replay in the lab and for the BPF programs' `BPF_PROG_TEST_RUN` tests.
//!
//! MACs: inputs arrive from [`CLIENT_MAC`] (or a real server's MAC) to
//! [`DIRECTOR_MAC`]; the driver's job of filling MACs for a `Forward` is done
//! by the harness with a fixed neighbour table ([`neighbour_mac`]), so DR
//! fixtures show exactly "only the MAC changes".

use etherparse::{
    Icmpv4Type, Icmpv6Type, IpNumber, Ipv4Header, PacketBuilder, TcpHeader, UdpHeader,
    icmpv4::DestUnreachableHeader,
};
use rvs_engine::{
    DestConfig, Director, DirectorConfig, DropReason, Forward, RxMeta, SchedKind, ServiceConfig,
    ServiceKey, TunnelKind, Verdict,
};
use rvs_types::{Addr, Instant, Proto};
use rvs_wire::FrameBuf;
use std::time::Duration;

/// MAC of the director's interfaces.
pub const DIRECTOR_MAC: [u8; 6] = [0x02, 0xd1, 0, 0, 0, 0x01];
/// MAC of the client (or the client-side router).
pub const CLIENT_MAC: [u8; 6] = [0x02, 0xc1, 0, 0, 0, 0x01];

/// The fixed neighbour table of the harness: 02:00 then the address's last
/// four bytes.
pub fn neighbour_mac(a: &Addr) -> [u8; 6] {
    let o = a.octets16();
    [0x02, 0x00, o[12], o[13], o[14], o[15]]
}

/// What a step must produce.
#[derive(Clone, Debug)]
pub enum Expect {
    /// Forwarded toward `next_hop`, leaving as `frame` (MACs filled).
    Forward {
        /// Address the driver routes toward.
        next_hop: Addr,
        /// The frame on the wire.
        frame: Vec<u8>,
    },
    /// Answered back out of the receiving interface with `frame`.
    Reply(Vec<u8>),
    /// Handed to the host unchanged.
    Pass,
    /// Dropped for this reason.
    Drop(DropReason),
}

/// One frame through the director.
#[derive(Clone, Debug)]
pub struct Step {
    /// The frame received.
    pub input: Vec<u8>,
    /// Its receive metadata.
    pub meta: RxMeta,
    /// When it arrives.
    pub at: Instant,
    /// What must come out.
    pub expect: Expect,
    /// Byte ranges of the output taken from what the engine produced before
    /// comparing: only the flow hashes rvs writes into outer headers (the
    /// GUE UDP source port, checked to be ephemeral; the IPv6 flow label).
    pub mask: Vec<(usize, usize)>,
}

/// A director set-up and what it must do with a sequence of frames.
pub struct Fixture {
    /// Short name (also the golden file's name).
    pub name: &'static str,
    /// What it shows.
    pub description: &'static str,
    /// Builds the director.
    pub setup: fn() -> Director,
    /// The frames, in order.
    pub steps: Vec<Step>,
}

// ----- addresses of the standard lab ------------------------------------

/// Virtual IP (v4).
pub fn vip4() -> Addr {
    Addr::v4([192, 0, 2, 10])
}
/// Virtual IP (v6).
pub fn vip6() -> Addr {
    Addr::v6([
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ])
}
/// Client (v4).
pub fn cip4() -> Addr {
    Addr::v4([198, 51, 100, 7])
}
/// Client (v6).
pub fn cip6() -> Addr {
    Addr::v6([
        0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07,
    ])
}
/// Real server `n` (1-based, v4).
pub fn rip4(n: u8) -> Addr {
    Addr::v4([10, 20, 0, 10 + n])
}
/// Real server `n` (1-based, v6).
pub fn rip6(n: u8) -> Addr {
    Addr::v6([0xfd, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10 + n])
}
/// The director's tunnel source (v4).
pub fn dip4() -> Addr {
    Addr::v4([10, 20, 0, 1])
}
/// The director's tunnel source (v6).
pub fn dip6() -> Addr {
    Addr::v6([0xfd, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01])
}

// ----- frame builders (etherparse) --------------------------------------

/// TCP flags.
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

fn tcp_header(sport: u16, dport: u16, f: u8) -> TcpHeader {
    let mut h = TcpHeader::new(sport, dport, 1000, 64240);
    h.fin = f & flags::FIN != 0;
    h.syn = f & flags::SYN != 0;
    h.rst = f & flags::RST != 0;
    h.psh = f & flags::PSH != 0;
    if f & flags::ACK != 0 {
        h.ack = true;
        h.acknowledgment_number = 1;
    }
    h
}

/// A TCP segment from `smac` to `dmac`, every checksum computed by etherparse.
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    smac: [u8; 6],
    dmac: [u8; 6],
    src: Addr,
    sport: u16,
    dst: Addr,
    dport: u16,
    f: u8,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(smac, dmac);
    let b = if src.is_v4() {
        b.ipv4(src.octets4(), dst.octets4(), 64)
    } else {
        b.ipv6(src.octets16(), dst.octets16(), 64)
    };
    let b = b.tcp_header(tcp_header(sport, dport, f));
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("tcp frame");
    out
}

/// A UDP datagram from `smac` to `dmac`.
pub fn udp(
    smac: [u8; 6],
    dmac: [u8; 6],
    src: Addr,
    sport: u16,
    dst: Addr,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(smac, dmac);
    let b = if src.is_v4() {
        b.ipv4(src.octets4(), dst.octets4(), 64)
    } else {
        b.ipv6(src.octets16(), dst.octets16(), 64)
    };
    let mut out = Vec::new();
    b.udp(sport, dport)
        .write(&mut out, payload)
        .expect("udp frame");
    out
}

/// An ICMP error from `src` to `dst` quoting `quoted` (an IP packet):
/// v4 destination unreachable / fragmentation needed with `mtu`, or v6
/// packet too big with `mtu`.
pub fn icmp_too_big(
    smac: [u8; 6],
    dmac: [u8; 6],
    src: Addr,
    dst: Addr,
    mtu: u16,
    quoted: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(smac, dmac);
    let mut out = Vec::new();
    if src.is_v4() {
        b.ipv4(src.octets4(), dst.octets4(), 64)
            .icmpv4(Icmpv4Type::DestinationUnreachable(
                DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: mtu },
            ))
            .write(&mut out, quoted)
            .expect("icmp frame");
    } else {
        b.ipv6(src.octets16(), dst.octets16(), 64)
            .icmpv6(Icmpv6Type::PacketTooBig {
                mtu: u32::from(mtu),
            })
            .write(&mut out, quoted)
            .expect("icmpv6 frame");
    }
    out
}

/// `frame` (an IPv4 ICMP error from [`icmp_too_big`]) with the header
/// Linux's `icmp_send` gives its own errors: TOS precedence "internetwork
/// control" (0xc0) and DF clear (its ICMP socket uses IP_PMTUDISC_DONT).
pub fn as_linux_icmp_error(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    let (mut h, _) = Ipv4Header::from_slice(&f[14..]).expect("ipv4 header");
    h.dscp = etherparse::IpDscp::try_new(0xc0 >> 2).expect("dscp");
    h.dont_fragment = false;
    h.header_checksum = h.calc_header_checksum();
    let mut hb = Vec::new();
    h.write(&mut hb).expect("ipv4 header");
    f[14..14 + hb.len()].copy_from_slice(&hb);
    f
}

/// The IP packet inside an Ethernet frame (no VLAN tag in fixtures).
pub fn ip_of(frame: &[u8]) -> &[u8] {
    &frame[14..]
}

/// `frame` with new MACs.
pub fn with_macs(frame: &[u8], dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f
}

/// An IPv4-in-IPv4 (or GUE/GRE over IPv4) frame as IPVS's tunnel xmit
/// builds it: outer TTL and TOS copied from the inner header, DF copied,
/// identification 0.
pub fn tunnel_v4(
    kind: &TunnelKind,
    outer_src: Addr,
    outer_dst: Addr,
    inner_frame: &[u8],
    gue_sport: u16,
) -> Vec<u8> {
    let inner = ip_of(inner_frame);
    let inner_v4 = inner[0] >> 4 == 4;
    let (ttl, tos, df) = if inner_v4 {
        (inner[8], inner[1], inner[6] & 0x40 != 0)
    } else {
        (inner[7], (inner[0] << 4) | (inner[1] >> 4), false)
    };
    let mut payload = Vec::new();
    let proto = match kind {
        TunnelKind::Ipip => {
            payload.extend_from_slice(inner);
            if inner_v4 {
                IpNumber::IPV4
            } else {
                IpNumber::IPV6
            }
        }
        TunnelKind::Gre { csum, key } => {
            let mut gre = Vec::new();
            let mut fl: u16 = 0;
            if *csum {
                fl |= 0x8000;
            }
            if key.is_some() {
                fl |= 0x2000;
            }
            gre.extend_from_slice(&fl.to_be_bytes());
            gre.extend_from_slice(&(if inner_v4 { 0x0800u16 } else { 0x86dd }).to_be_bytes());
            if *csum {
                gre.extend_from_slice(&[0, 0, 0, 0]);
            }
            if let Some(k) = key {
                gre.extend_from_slice(&k.to_be_bytes());
            }
            gre.extend_from_slice(inner);
            if *csum {
                let c = ones_complement_sum(&gre);
                gre[4..6].copy_from_slice(&c.to_be_bytes());
            }
            payload = gre;
            IpNumber::GRE
        }
        TunnelKind::Gue { port, csum, .. } => {
            let mut gue = vec![0u8, if inner_v4 { 4 } else { 41 }, 0, 0];
            gue.extend_from_slice(inner);
            let udp = UdpHeader::with_ipv4_checksum(
                gue_sport,
                *port,
                &ipv4(outer_src, outer_dst, IpNumber::UDP, 0, ttl, tos, df),
                &gue,
            )
            .expect("udp header");
            let mut udp = udp;
            if !*csum {
                udp.checksum = 0;
            }
            payload.extend_from_slice(&udp.to_bytes());
            payload.extend_from_slice(&gue);
            IpNumber::UDP
        }
    };
    let ip = ipv4(outer_src, outer_dst, proto, payload.len(), ttl, tos, df);
    let mut out = Vec::new();
    out.extend_from_slice(&neighbour_mac(&outer_dst));
    out.extend_from_slice(&DIRECTOR_MAC);
    out.extend_from_slice(&0x0800u16.to_be_bytes());
    ip.write(&mut out).expect("ipv4 header");
    out.extend_from_slice(&payload);
    out
}

/// An IPv6-outer IPIP frame (6in6 or 4in6) as `ip_vs_tunnel_xmit_v6`
/// builds it: traffic class and hop limit copied from the inner header,
/// flow label 0, next header 41 (IPv6) or 4 (IPv4).
pub fn tunnel_v6_ipip(outer_src: Addr, outer_dst: Addr, inner_frame: &[u8]) -> Vec<u8> {
    let inner = ip_of(inner_frame);
    let inner_v4 = inner[0] >> 4 == 4;
    let (hop, tc) = if inner_v4 {
        (inner[8], inner[1])
    } else {
        (inner[7], (inner[0] << 4) | (inner[1] >> 4))
    };
    let h = etherparse::Ipv6Header {
        traffic_class: tc,
        flow_label: etherparse::Ipv6FlowLabel::ZERO,
        payload_length: inner.len() as u16,
        next_header: if inner_v4 {
            IpNumber::IPV4
        } else {
            IpNumber::IPV6
        },
        hop_limit: hop,
        source: outer_src.octets16(),
        destination: outer_dst.octets16(),
    };
    let mut out = Vec::new();
    out.extend_from_slice(&neighbour_mac(&outer_dst));
    out.extend_from_slice(&DIRECTOR_MAC);
    out.extend_from_slice(&0x86ddu16.to_be_bytes());
    h.write(&mut out).expect("ipv6 header");
    out.extend_from_slice(inner);
    out
}

#[allow(clippy::too_many_arguments)]
fn ipv4(
    src: Addr,
    dst: Addr,
    proto: IpNumber,
    payload_len: usize,
    ttl: u8,
    tos: u8,
    df: bool,
) -> Ipv4Header {
    let mut h = Ipv4Header::new(payload_len as u16, ttl, proto, src.octets4(), dst.octets4())
        .expect("ipv4");
    h.dont_fragment = df;
    h.identification = 0;
    h.dscp = etherparse::IpDscp::try_new(tos >> 2).expect("dscp");
    h.ecn = etherparse::IpEcn::try_new(tos & 3).expect("ecn");
    h.header_checksum = h.calc_header_checksum();
    h
}

fn ones_complement_sum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

// ----- set-ups ------------------------------------------------------------

fn director() -> Director {
    let cfg = DirectorConfig {
        tunnel_src_v4: dip4(),
        tunnel_src_v6: dip6(),
        tunnel_mtu: 1500,
        ..DirectorConfig::default()
    };
    Director::new(cfg, Instant::ZERO)
}

fn one_service(
    key: ServiceKey,
    sched: SchedKind,
    persist: Option<(u64, u8)>,
    dests: &[(Addr, u16, i32, Forward)],
) -> Director {
    let mut d = director();
    let mut s = ServiceConfig::new(key);
    s.sched = sched;
    if let Some((secs, mask)) = persist {
        s.persistence = Some(Duration::from_secs(secs));
        s.netmask = mask;
    }
    d.add_service(s).expect("service");
    for (addr, port, weight, fwd) in dests {
        let mut c = DestConfig::new(*addr, *port);
        c.weight = *weight;
        c.fwd = *fwd;
        d.add_dest(&key, c).expect("dest");
    }
    d
}

fn tcp_key(addr: Addr, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: Proto::TCP,
        addr,
        port,
    }
}

fn udp_key(addr: Addr, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: Proto::UDP,
        addr,
        port,
    }
}

fn step(input: Vec<u8>, expect: Expect) -> Step {
    Step {
        input,
        meta: RxMeta::default(),
        at: Instant::from_secs(1),
        expect,
        mask: Vec::new(),
    }
}

fn fwd(next_hop: Addr, frame_before_macs: Vec<u8>) -> Expect {
    let frame = with_macs(&frame_before_macs, neighbour_mac(&next_hop), DIRECTOR_MAC);
    Expect::Forward { next_hop, frame }
}

const GUE_PORT: u16 = 6080;

/// Every fixture.
pub fn fixtures() -> Vec<Fixture> {
    use flags::*;
    let (c, v, m) = (CLIENT_MAC, DIRECTOR_MAC, |n: u8| neighbour_mac(&rip4(n)));
    let mut all = vec![
        Fixture {
            name: "nat_v4_port_mapping",
            description: "NAT: VIP:80 -> RIP:8080 and back; the reply leaves with VIP:80 as source",
            setup: || {
                one_service(
                    tcp_key(vip4(), 80),
                    SchedKind::Rr,
                    None,
                    &[(rip4(1), 8080, 1, Forward::Masq)],
                )
            },
            steps: vec![
                step(
                    tcp(c, v, cip4(), 40000, vip4(), 80, SYN, b""),
                    fwd(rip4(1), tcp(c, v, cip4(), 40000, rip4(1), 8080, SYN, b"")),
                ),
                step(
                    tcp(m(1), v, rip4(1), 8080, cip4(), 40000, SYN | ACK, b""),
                    fwd(cip4(), tcp(c, v, vip4(), 80, cip4(), 40000, SYN | ACK, b"")),
                ),
                step(
                    tcp(
                        c,
                        v,
                        cip4(),
                        40000,
                        vip4(),
                        80,
                        ACK | PSH,
                        b"GET / HTTP/1.1\r\n\r\n",
                    ),
                    fwd(
                        rip4(1),
                        tcp(
                            c,
                            v,
                            cip4(),
                            40000,
                            rip4(1),
                            8080,
                            ACK | PSH,
                            b"GET / HTTP/1.1\r\n\r\n",
                        ),
                    ),
                ),
                step(
                    tcp(
                        m(1),
                        v,
                        rip4(1),
                        8080,
                        cip4(),
                        40000,
                        ACK | PSH,
                        b"HTTP/1.1 200 OK\r\n\r\nrs1\n",
                    ),
                    fwd(
                        cip4(),
                        tcp(
                            c,
                            v,
                            vip4(),
                            80,
                            cip4(),
                            40000,
                            ACK | PSH,
                            b"HTTP/1.1 200 OK\r\n\r\nrs1\n",
                        ),
                    ),
                ),
            ],
        },
        Fixture {
            name: "nat_v4_udp",
            description: "NAT of a UDP exchange",
            setup: || {
                one_service(
                    udp_key(vip4(), 53),
                    SchedKind::Rr,
                    None,
                    &[(rip4(1), 5353, 1, Forward::Masq)],
                )
            },
            steps: vec![
                step(
                    udp(c, v, cip4(), 33000, vip4(), 53, b"query"),
                    fwd(rip4(1), udp(c, v, cip4(), 33000, rip4(1), 5353, b"query")),
                ),
                step(
                    udp(m(1), v, rip4(1), 5353, cip4(), 33000, b"answer"),
                    fwd(cip4(), udp(c, v, vip4(), 53, cip4(), 33000, b"answer")),
                ),
            ],
        },
        Fixture {
            name: "nat_v6",
            description: "NAT with IPv6 VIP and real server",
            setup: || {
                one_service(
                    tcp_key(vip6(), 80),
                    SchedKind::Wlc,
                    None,
                    &[(rip6(1), 8080, 1, Forward::Masq)],
                )
            },
            steps: vec![
                step(
                    tcp(c, v, cip6(), 40000, vip6(), 80, SYN, b""),
                    fwd(rip6(1), tcp(c, v, cip6(), 40000, rip6(1), 8080, SYN, b"")),
                ),
                step(
                    tcp(
                        neighbour_mac(&rip6(1)),
                        v,
                        rip6(1),
                        8080,
                        cip6(),
                        40000,
                        SYN | ACK,
                        b"",
                    ),
                    fwd(cip6(), tcp(c, v, vip6(), 80, cip6(), 40000, SYN | ACK, b"")),
                ),
            ],
        },
        Fixture {
            name: "dr_v4",
            description: "Direct routing: only the MACs change",
            setup: || {
                one_service(
                    tcp_key(vip4(), 80),
                    SchedKind::Rr,
                    None,
                    &[(rip4(1), 80, 1, Forward::Route)],
                )
            },
            steps: vec![
                step(
                    tcp(c, v, cip4(), 40000, vip4(), 80, SYN, b""),
                    fwd(rip4(1), tcp(c, v, cip4(), 40000, vip4(), 80, SYN, b"")),
                ),
                step(
                    tcp(c, v, cip4(), 40000, vip4(), 80, ACK, b"data"),
                    fwd(rip4(1), tcp(c, v, cip4(), 40000, vip4(), 80, ACK, b"data")),
                ),
            ],
        },
        Fixture {
            name: "dr_v6",
            description: "Direct routing with an IPv6 VIP",
            setup: || {
                one_service(
                    tcp_key(vip6(), 80),
                    SchedKind::Rr,
                    None,
                    &[(rip6(1), 80, 1, Forward::Route)],
                )
            },
            steps: vec![step(
                tcp(c, v, cip6(), 40000, vip6(), 80, SYN, b""),
                fwd(rip6(1), tcp(c, v, cip6(), 40000, vip6(), 80, SYN, b"")),
            )],
        },
        Fixture {
            name: "no_service_passes",
            description: "Traffic to the director that no service matches goes to the host",
            setup: || {
                one_service(
                    tcp_key(vip4(), 80),
                    SchedKind::Rr,
                    None,
                    &[(rip4(1), 80, 1, Forward::Route)],
                )
            },
            steps: vec![step(
                tcp(c, v, cip4(), 40000, vip4(), 22, SYN, b""),
                Expect::Pass,
            )],
        },
        Fixture {
            name: "tcp_not_syn_dropped",
            description: "A mid-stream segment with no connection is dropped and counted",
            setup: || {
                one_service(
                    tcp_key(vip4(), 80),
                    SchedKind::Rr,
                    None,
                    &[(rip4(1), 80, 1, Forward::Route)],
                )
            },
            steps: vec![step(
                tcp(c, v, cip4(), 40000, vip4(), 80, ACK, b""),
                Expect::Drop(DropReason::TcpNotSyn),
            )],
        },
        Fixture {
            name: "persistence_netmask_24",
            description: "Persistence with -M 255.255.255.0: a client network stays on one real server under rr",
            setup: || {
                one_service(
                    tcp_key(vip4(), 80),
                    SchedKind::Rr,
                    Some((300, 24)),
                    &[
                        (rip4(1), 80, 1, Forward::Route),
                        (rip4(2), 80, 1, Forward::Route),
                        (rip4(3), 80, 1, Forward::Route),
                    ],
                )
            },
            steps: vec![
                // rr walks the kernel's list, newest first: rip 3, then 2.
                step(
                    tcp(c, v, cip4(), 40000, vip4(), 80, SYN, b""),
                    fwd(rip4(3), tcp(c, v, cip4(), 40000, vip4(), 80, SYN, b"")),
                ),
                step(
                    tcp(
                        c,
                        v,
                        Addr::v4([198, 51, 100, 99]),
                        40001,
                        vip4(),
                        80,
                        SYN,
                        b"",
                    ),
                    fwd(
                        rip4(3),
                        tcp(
                            c,
                            v,
                            Addr::v4([198, 51, 100, 99]),
                            40001,
                            vip4(),
                            80,
                            SYN,
                            b"",
                        ),
                    ),
                ),
                step(
                    tcp(
                        c,
                        v,
                        Addr::v4([198, 51, 101, 7]),
                        40002,
                        vip4(),
                        80,
                        SYN,
                        b"",
                    ),
                    fwd(
                        rip4(2),
                        tcp(
                            c,
                            v,
                            Addr::v4([198, 51, 101, 7]),
                            40002,
                            vip4(),
                            80,
                            SYN,
                            b"",
                        ),
                    ),
                ),
                step(
                    tcp(c, v, cip4(), 40003, vip4(), 80, SYN, b""),
                    fwd(rip4(3), tcp(c, v, cip4(), 40003, vip4(), 80, SYN, b"")),
                ),
            ],
        },
    ];
    // TUN: one fixture per tunnel type.
    for (name, kind) in [
        ("tun_ipip_v4", TunnelKind::Ipip),
        (
            "tun_gue_v4",
            TunnelKind::Gue {
                port: GUE_PORT,
                csum: false,
                remcsum: false,
            },
        ),
        (
            "tun_gre_v4",
            TunnelKind::Gre {
                csum: false,
                key: None,
            },
        ),
        (
            "tun_gre_csum_key_v4",
            TunnelKind::Gre {
                csum: true,
                key: Some(0x0102_0304),
            },
        ),
    ] {
        let syn = tcp(c, v, cip4(), 40000, vip4(), 80, SYN, b"");
        let expect = tunnel_v4(&kind, dip4(), rip4(1), &syn, 0);
        all.push(Fixture {
            name,
            description: "TUN: the client's packet encapsulated to the real server per its tunnel type",
            setup: match kind {
                TunnelKind::Ipip => || one_service(tcp_key(vip4(), 80), SchedKind::Rr, None, &[(rip4(1), 80, 1, Forward::Tunnel(TunnelKind::Ipip))]),
                TunnelKind::Gue { .. } => || {
                    one_service(
                        tcp_key(vip4(), 80),
                        SchedKind::Rr,
                        None,
                        &[(rip4(1), 80, 1, Forward::Tunnel(TunnelKind::Gue { port: GUE_PORT, csum: false, remcsum: false }))],
                    )
                },
                TunnelKind::Gre { key: None, .. } => || {
                    one_service(tcp_key(vip4(), 80), SchedKind::Rr, None, &[(rip4(1), 80, 1, Forward::Tunnel(TunnelKind::Gre { csum: false, key: None }))])
                },
                TunnelKind::Gre { .. } => || {
                    one_service(
                        tcp_key(vip4(), 80),
                        SchedKind::Rr,
                        None,
                        &[(rip4(1), 80, 1, Forward::Tunnel(TunnelKind::Gre { csum: true, key: Some(0x0102_0304) }))],
                    )
                },
            },
            steps: vec![Step {
                mask: if matches!(kind, TunnelKind::Gue { .. }) { vec![(34, 36)] } else { Vec::new() },
                ..step(syn, Expect::Forward { next_hop: rip4(1), frame: expect })
            }],
        });
    }
    // TUN too big: a 1500-byte DF packet cannot take 20 more bytes.
    let big = tcp(c, v, cip4(), 40000, vip4(), 80, ACK, &[0u8; 1460]);
    let syn = tcp(c, v, cip4(), 40000, vip4(), 80, SYN, b"");
    let quoted_len = 576 - 20 - 8;
    let reply = as_linux_icmp_error(&icmp_too_big(
        v,
        c,
        vip4(),
        cip4(),
        1480,
        &ip_of(&big)[..quoted_len],
    ));
    all.push(Fixture {
        name: "tun_too_big_v4",
        description: "TUN: a full-size DF packet gets ICMP fragmentation-needed (MTU 1480) from the VIP",
        setup: || one_service(tcp_key(vip4(), 80), SchedKind::Rr, None, &[(rip4(1), 80, 1, Forward::Tunnel(TunnelKind::Ipip))]),
        steps: vec![
            step(syn.clone(), Expect::Forward { next_hop: rip4(1), frame: tunnel_v4(&TunnelKind::Ipip, dip4(), rip4(1), &syn, 0) }),
            step(big, Expect::Reply(reply)),
        ],
    });
    // TUN too big over IPv6: a 1500-byte packet cannot take the 40 bytes of
    // a 6in6 header; the client gets ICMPv6 "packet too big" (MTU 1460) from
    // the VIP, quoting as much of its packet as fits in 1280 bytes.
    let big6 = tcp(c, v, cip6(), 40000, vip6(), 80, ACK, &[0u8; 1440]);
    let syn6 = tcp(c, v, cip6(), 40000, vip6(), 80, SYN, b"");
    let reply6 = icmp_too_big(v, c, vip6(), cip6(), 1460, &ip_of(&big6)[..1280 - 40 - 8]);
    all.push(Fixture {
        name: "tun_too_big_v6",
        description: "TUN over IPv6: a full-size packet gets ICMPv6 packet-too-big (MTU 1460) from the VIP",
        setup: || {
            one_service(
                tcp_key(vip6(), 80),
                SchedKind::Rr,
                None,
                &[(rip6(1), 80, 1, Forward::Tunnel(TunnelKind::Ipip))],
            )
        },
        steps: vec![
            Step {
                mask: vec![(15, 18)],
                ..step(
                    syn6.clone(),
                    Expect::Forward {
                        next_hop: rip6(1),
                        frame: tunnel_v6_ipip(dip6(), rip6(1), &syn6),
                    },
                )
            },
            step(big6, Expect::Reply(reply6)),
        ],
    });
    // ICMP errors related to a NAT connection, both ways.
    let syn = tcp(c, v, cip4(), 40000, vip4(), 80, SYN, b"");
    let to_rs = tcp(c, v, cip4(), 40000, rip4(1), 8080, SYN, b"");
    let synack_out = tcp(c, v, vip4(), 80, cip4(), 40000, SYN | ACK, b"");
    let synack_in = tcp(m(1), v, rip4(1), 8080, cip4(), 40000, SYN | ACK, b"");
    // A router on the real server side says the client->RIP packet was too big.
    let router = Addr::v4([10, 20, 0, 254]);
    let icmp_out_in = icmp_too_big(m(1), v, router, cip4(), 1400, ip_of(&to_rs));
    let icmp_out_exp = icmp_too_big(c, v, vip4(), cip4(), 1400, ip_of(&syn));
    // The client says our VIP->client reply was too big.
    let icmp_in_in = icmp_too_big(c, v, cip4(), vip4(), 1280, ip_of(&synack_out));
    let icmp_in_exp = icmp_too_big(c, v, cip4(), rip4(1), 1280, ip_of(&synack_in));
    all.push(Fixture {
        name: "nat_icmp_errors_v4",
        description: "ICMP errors about a NAT connection are translated both ways, quoted headers included",
        setup: || one_service(tcp_key(vip4(), 80), SchedKind::Rr, None, &[(rip4(1), 8080, 1, Forward::Masq)]),
        steps: vec![
            step(syn, fwd(rip4(1), to_rs)),
            step(icmp_out_in, fwd(cip4(), icmp_out_exp)),
            step(icmp_in_in, fwd(rip4(1), icmp_in_exp)),
        ],
    });
    // TUN across families (tunnels may mix them): an IPv4 client packet to
    // an IPv6 real server (4in6), and an IPv6 one to an IPv4 server (6in4,
    // DF clear and TOS/TTL from the traffic class and hop limit).
    let syn = tcp(c, v, cip4(), 40000, vip4(), 80, SYN, b"");
    all.push(Fixture {
        name: "tun_ipip_4in6",
        description: "TUN: an IPv4 service whose real server is reached over IPv6 (4in6)",
        setup: || {
            one_service(
                tcp_key(vip4(), 80),
                SchedKind::Rr,
                None,
                &[(rip6(1), 80, 1, Forward::Tunnel(TunnelKind::Ipip))],
            )
        },
        steps: vec![Step {
            mask: vec![(15, 18)],
            ..step(
                syn.clone(),
                Expect::Forward {
                    next_hop: rip6(1),
                    frame: tunnel_v6_ipip(dip6(), rip6(1), &syn),
                },
            )
        }],
    });
    let syn6 = tcp(c, v, cip6(), 40000, vip6(), 80, SYN, b"");
    all.push(Fixture {
        name: "tun_ipip_6in4",
        description: "TUN: an IPv6 service whose real server is reached over IPv4 (6in4)",
        setup: || {
            one_service(
                tcp_key(vip6(), 80),
                SchedKind::Rr,
                None,
                &[(rip4(1), 80, 1, Forward::Tunnel(TunnelKind::Ipip))],
            )
        },
        steps: vec![step(
            syn6.clone(),
            Expect::Forward {
                next_hop: rip4(1),
                frame: tunnel_v4(&TunnelKind::Ipip, dip4(), rip4(1), &syn6, 0),
            },
        )],
    });
    // IPv6: TUN 6in6, and ICMPv6 errors about a NAT connection both ways.
    let syn6 = tcp(c, v, cip6(), 40000, vip6(), 80, SYN, b"");
    all.push(Fixture {
        name: "tun_ipip_v6",
        description: "TUN with IPv6: the client's IPv6 packet in an IPv6 tunnel (6in6)",
        setup: || {
            one_service(
                tcp_key(vip6(), 80),
                SchedKind::Rr,
                None,
                &[(rip6(1), 80, 1, Forward::Tunnel(TunnelKind::Ipip))],
            )
        },
        // rvs sets the outer flow label from the inner flow (RFC 6438, for
        // ECMP and RSS on the real server) where IPVS writes 0: bytes 15..18
        // (the label, with the traffic class's low nibble, 0 here) are taken
        // from the output.
        steps: vec![Step {
            mask: vec![(15, 18)],
            ..step(
                syn6.clone(),
                Expect::Forward {
                    next_hop: rip6(1),
                    frame: tunnel_v6_ipip(dip6(), rip6(1), &syn6),
                },
            )
        }],
    });
    let m6 = neighbour_mac(&rip6(1));
    let to_rs6 = tcp(c, v, cip6(), 40000, rip6(1), 8080, SYN, b"");
    let synack_out6 = tcp(c, v, vip6(), 80, cip6(), 40000, SYN | ACK, b"");
    let synack_in6 = tcp(m6, v, rip6(1), 8080, cip6(), 40000, SYN | ACK, b"");
    let router6 = Addr::v6([0xfd, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe]);
    all.push(Fixture {
        name: "nat_icmp_errors_v6",
        description: "ICMPv6 packet-too-big about a NAT connection, translated both ways",
        setup: || {
            one_service(
                tcp_key(vip6(), 80),
                SchedKind::Rr,
                None,
                &[(rip6(1), 8080, 1, Forward::Masq)],
            )
        },
        steps: vec![
            step(syn6.clone(), fwd(rip6(1), to_rs6.clone())),
            step(
                icmp_too_big(m6, v, router6, cip6(), 1400, ip_of(&to_rs6)),
                fwd(
                    cip6(),
                    icmp_too_big(c, v, vip6(), cip6(), 1400, ip_of(&syn6)),
                ),
            ),
            step(
                icmp_too_big(c, v, cip6(), vip6(), 1280, ip_of(&synack_out6)),
                fwd(
                    rip6(1),
                    icmp_too_big(c, v, cip6(), rip6(1), 1280, ip_of(&synack_in6)),
                ),
            ),
        ],
    });
    all.extend(scheduler_fixtures());
    all
}

/// Every scheduler's choice sequence on a fixed server set: rip1 weight 3,
/// rip2 weight 2, rip3 weight 1, added in that order (so the kernel's list,
/// newest first, is rip3, rip2, rip1), direct routing, and eight SYNs (twelve
/// for lblcr, to reach where it parts from lblc) from clients
/// 198.51.100.1, .2, ... (ports 40000, 40001, ...). No handshake completes, so
/// every connection stays SYN_RECV, which counts as active (Linux >= 4.8).
///
/// The sequences were worked out by hand from the kernel sources (the
/// arithmetic is in comments), mh's and twos' from an independent Python
/// model (SipHash-1-3 written from the paper, `ip_vs_mh_permutate` /
/// `ip_vs_mh_populate` / `ip_vs_twos_schedule` transcribed from the kernel,
/// SplitMix64 from its paper), whose intermediate values are quoted.
fn scheduler_fixtures() -> Vec<Fixture> {
    let table: [(&'static str, SchedKind, &'static [u8]); 14] = [
        // rr: walk the list from the head: r3 r2 r1, repeat.
        ("sched_rr", SchedKind::Rr, &[3, 2, 1, 3, 2, 1, 3, 2]),
        // wrr: the service starts empty (mw 0, cw 0); adding r1 (w3) gives
        // di 3, mw 1, cw = (0 / 3) * 3 + 1 = 1; adding r2, r3 gives di 1,
        // mw 3, cw stays 1 (ip_vs_wrr_dest_changed). So weight >= 1: r3, r2,
        // r1; wrap, cw 0 -> mw 3: r1; cw 2: r2, r1; cw 1: r3, r2.
        ("sched_wrr", SchedKind::Wrr, &[3, 2, 1, 1, 2, 1, 3, 2]),
        // lc: least (active << 8) + inactive, first in list on ties: same as rr here.
        ("sched_lc", SchedKind::Lc, &[3, 2, 1, 3, 2, 1, 3, 2]),
        // wlc: replace least when loh * w > doh * wleast (overhead 256 per active):
        // (a3,a2,a1) 000 -> r3; 100 -> r2; 110 -> r1; 111 -> r1 (768 > 512);
        // 112 -> r2 (768 > 1024 false); 122 -> r1; 123 -> r3; 223 -> r2.
        ("sched_wlc", SchedKind::Wlc, &[3, 2, 1, 1, 2, 1, 3, 2]),
        // sed: overhead active + 1, same comparison:
        // 000 -> r1; 001 -> r2; 011 -> r1; 012 -> r3; 112 -> r2; 122 -> r1; 123 -> r1; 124 -> r2.
        ("sched_sed", SchedKind::Sed, &[1, 2, 1, 3, 2, 1, 1, 2]),
        // nq: an idle server first (list order), then as sed:
        // r3, r2, r1 idle in turn; 111 -> r1; 112 -> r2; 122 -> r1; 123 -> r1; 124 -> r2.
        ("sched_nq", SchedKind::Nq, &[3, 2, 1, 1, 2, 1, 1, 2]),
        // fo: the highest weight available: always r1.
        ("sched_fo", SchedKind::Fo, &[1, 1, 1, 1, 1, 1, 1, 1]),
        // ovf: the highest weight whose activeconns <= weight: r1 takes 4
        // (0..3 <= 3), then r2 takes 3 (0..2 <= 2), then r3.
        ("sched_ovf", SchedKind::Ovf, &[1, 1, 1, 1, 2, 2, 2, 3]),
        // dh: 256 buckets filled r3, r2, r1 cyclically; hash_32(0xc000020a, 8)
        // = 162, 162 % 3 = 0: r3 for every connection (same VIP).
        ("sched_dh", SchedKind::Dh, &[3, 3, 3, 3, 3, 3, 3, 3]),
        // sh: buckets tiled by weight r3, r2, r2, r1, r1, r1 (period 6);
        // hash_32(client, 8) for .1...8 = 96 194 35 133 231 73 171 12,
        // mod 6 = 0 2 5 1 3 1 3 0.
        ("sched_sh", SchedKind::Sh, &[3, 2, 1, 2, 1, 2, 1, 3]),
        // lblc: by destination (the VIP). No entry: wlc picks r3; r3 kept
        // while active <= weight (1); at 2 > 1 with a half-loaded server
        // (r2: 0 * 2 < 2) wlc re-picks r2; r2 kept for 3; at 3 > 2 with r1
        // half-loaded, wlc picks r1 (768 * 3 > 0).
        ("sched_lblc", SchedKind::Lblc, &[3, 3, 2, 2, 2, 1, 1, 1]),
        // lblcr: by destination (the VIP), a set of servers; wlc below is
        // over the whole service. Miss: wlc -> r3, set {r3}. r3 kept while
        // not overloaded (active 1 <= w 1). At (a3,a2,a1) = 200, r3 has 2 > 1
        // and r2 is half-loaded: wlc -> r2 (512 * 2 > 0), set {r2, r3}. The
        // set's least loaded (newest first: r2 256 vs r3 512 * 2) is r2 for
        // 210 and 220; at 230 r2 has 3 > 2 with r1 idle: wlc -> r1, set
        // {r1, r2, r3}. Set min r1 (w3) for 231, 232, 233, 234 (r1 at 4 > 3
        // but nobody is half-loaded any more: not overloaded). At 235 the
        // set min moves to an older member, which lblc never does: r1 1280
        // * 2 > r2 768 * 3 -> r2; r3 (768 * 1 > 512 * 2? no) stays behind;
        // r2 is over its weight but nobody is half-loaded: r2. At 245: r1
        // (1280 * 2 > 1024 * 3? no; 1280 > 512 * 3? no) -> r1.
        (
            "sched_lblcr",
            SchedKind::Lblcr,
            &[3, 3, 2, 2, 2, 1, 1, 1, 1, 1, 2, 1],
        ),
        // mh: table 4093, turns 1, 2, 3 (gcd 1, rshift 0); offset/skip of
        // r3 871/547, r2 1904/147, r1 1252/3794 (hsiphash of port + addr);
        // shares r1 2046, r2 1364, r3 683. Clients .1...8 hash (key1, port
        // not hashed) to entries 2374 940 473 3853 177 1951 924 3802.
        ("sched_mh", SchedKind::Mh, &[2, 1, 2, 3, 2, 1, 1, 2]),
        // twos: SplitMix64 from the default seed 0x05eed1b5, each draw the
        // high 32 bits, modulo total weight + 1 = 7; pairs (r1, r2) 4 4, 0 6,
        // 3 6, 5 2, 2 2, 1 2, 3 4, 1 3 walk the list r3 (1), r2 (2), r1 (3):
        // 0, 1 -> r3; 2, 3 -> r2; 4..6 -> r1. The second choice wins when
        // w2 * oh1 > w1 * oh2: step 2 r3 (oh 0) vs r1 (256): r3; step 3 r2
        // (0) vs r1 (256): r2; step 4 r1 (256 w3) vs r2 (256 w2): 2 * 256 >
        // 3 * 256? no: r1; step 6 r3 (256 w1) vs r2 (512 w2): 2 * 256 > 512?
        // no: r3; step 7 r2 (512 w2) vs r1 (512 w3): 3 * 512 > 2 * 512: r1;
        // step 8 r3 (512 w1) vs r2 (512 w2): 2 * 512 > 512: r2.
        ("sched_twos", SchedKind::Twos, &[1, 3, 2, 1, 2, 3, 1, 2]),
    ];
    table
        .into_iter()
        .map(|(name, kind, seq)| {
            let (c, v) = (CLIENT_MAC, DIRECTOR_MAC);
            let steps = seq
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let client = Addr::v4([198, 51, 100, i as u8 + 1]);
                    let syn = tcp(c, v, client, 40000 + i as u16, vip4(), 80, flags::SYN, b"");
                    step(syn.clone(), fwd(rip4(*n), syn))
                })
                .collect();
            Fixture {
                name,
                description: "a scheduler's choice sequence on rip1 w3, rip2 w2, rip3 w1",
                setup: match kind {
                    SchedKind::Rr => || sched_setup(SchedKind::Rr),
                    SchedKind::Wrr => || sched_setup(SchedKind::Wrr),
                    SchedKind::Lc => || sched_setup(SchedKind::Lc),
                    SchedKind::Wlc => || sched_setup(SchedKind::Wlc),
                    SchedKind::Sed => || sched_setup(SchedKind::Sed),
                    SchedKind::Nq => || sched_setup(SchedKind::Nq),
                    SchedKind::Fo => || sched_setup(SchedKind::Fo),
                    SchedKind::Ovf => || sched_setup(SchedKind::Ovf),
                    SchedKind::Dh => || sched_setup(SchedKind::Dh),
                    SchedKind::Sh => || sched_setup(SchedKind::Sh),
                    SchedKind::Lblc => || sched_setup(SchedKind::Lblc),
                    SchedKind::Lblcr => || sched_setup(SchedKind::Lblcr),
                    SchedKind::Mh => || sched_setup(SchedKind::Mh),
                    SchedKind::Twos => || sched_setup(SchedKind::Twos),
                },
                steps,
            }
        })
        .collect()
}

fn sched_setup(kind: SchedKind) -> Director {
    one_service(
        tcp_key(vip4(), 80),
        kind,
        None,
        &[
            (rip4(1), 80, 3, Forward::Route),
            (rip4(2), 80, 2, Forward::Route),
            (rip4(3), 80, 1, Forward::Route),
        ],
    )
}

/// Runs a fixture through the engine, filling MACs as the driver would.
/// Returns a description of the first mismatch.
pub fn run_engine(f: &Fixture) -> Result<(), String> {
    let mut d = (f.setup)();
    for (i, s) in f.steps.iter().enumerate() {
        let (verdict, out) = run_frame(&mut d, s);
        let ctx = |what: String| format!("{} step {}: {}", f.name, i, what);
        match (&s.expect, verdict) {
            (Expect::Forward { next_hop, frame }, Verdict::Forward(fw)) => {
                if fw.next_hop != *next_hop {
                    return Err(ctx(format!(
                        "next hop {} != expected {}",
                        fw.next_hop, next_hop
                    )));
                }
                let out = with_macs(&out, neighbour_mac(&fw.next_hop), DIRECTOR_MAC);
                let mut frame = frame.clone();
                for &(a, b) in &s.mask {
                    let (Some(got), Some(want)) = (out.get(a..b), frame.get_mut(a..b)) else {
                        return Err(ctx("output shorter than its mask".into()));
                    };
                    if a == 34 && b == 36 && u16::from_be_bytes([got[0], got[1]]) < 1024 {
                        return Err(ctx("GUE source port outside the ephemeral range".into()));
                    }
                    want.copy_from_slice(got);
                }
                if out != frame {
                    return Err(ctx(format!(
                        "frame differs\n got: {}\nwant: {}",
                        hex(&out),
                        hex(&frame)
                    )));
                }
            }
            (Expect::Reply(frame), Verdict::Reply) => {
                if out != *frame {
                    return Err(ctx(format!(
                        "reply differs\n got: {}\nwant: {}",
                        hex(&out),
                        hex(frame)
                    )));
                }
            }
            (Expect::Pass, Verdict::Pass) => {
                if out != s.input {
                    return Err(ctx("a passed frame was modified".into()));
                }
            }
            (Expect::Drop(r), Verdict::Drop(got)) if *r == got => {}
            (e, v) => return Err(ctx(format!("verdict {v:?}, expected {e:?}"))),
        }
    }
    Ok(())
}

fn run_frame(d: &mut Director, s: &Step) -> (Verdict, Vec<u8>) {
    const HEADROOM: usize = 128;
    let mut mem = vec![0u8; HEADROOM + s.input.len() + 128];
    mem[HEADROOM..HEADROOM + s.input.len()].copy_from_slice(&s.input);
    let Ok(mut fb) = FrameBuf::new(&mut mem, HEADROOM, s.input.len()) else {
        return (Verdict::Drop(DropReason::NoRoom), Vec::new());
    };
    let v = d.handle_frame(s.at, &mut fb, &s.meta);
    (v, fb.data().to_vec())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The golden pcap of a fixture: for each step its input frame, then (for
/// Forward and Reply) the expected output frame; timestamps count steps.
pub fn golden_pcap(f: &Fixture) -> Vec<u8> {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    let mut out = Vec::new();
    let header = PcapHeader {
        snaplen: 65535,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(&mut out, header).expect("pcap header");
    for (i, s) in f.steps.iter().enumerate() {
        let ts = Duration::from_secs(i as u64 + 1);
        w.write_packet(&PcapPacket::new(ts, s.input.len() as u32, &s.input).expect("pcap packet"))
            .expect("pcap write");
        let outf = match &s.expect {
            Expect::Forward { frame, .. } | Expect::Reply(frame) => Some(frame),
            _ => None,
        };
        if let Some(o) = outf {
            let ts = ts + Duration::from_millis(1);
            w.write_packet(&PcapPacket::new(ts, o.len() as u32, o).expect("pcap packet"))
                .expect("pcap write");
        }
    }
    w.into_inner();
    out
}
