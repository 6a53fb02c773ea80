//! Frames in, frames out: runs the fixture table through the engine and
//! prints what each frame became (decoded with etherparse).

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use rvs_engine::Verdict;
use rvs_fixtures::{DIRECTOR_MAC, Expect, fixtures, neighbour_mac, with_macs};
use rvs_wire::FrameBuf;

fn describe(frame: &[u8]) -> String {
    let Ok(p) = SlicedPacket::from_ethernet(frame) else {
        return format!("({} bytes, undecodable)", frame.len());
    };
    let (src, dst, proto) = match &p.net {
        Some(NetSlice::Ipv4(ip)) => {
            let h = ip.header();
            (
                h.source_addr().to_string(),
                h.destination_addr().to_string(),
                h.protocol(),
            )
        }
        Some(NetSlice::Ipv6(ip)) => {
            let h = ip.header();
            (
                h.source_addr().to_string(),
                h.destination_addr().to_string(),
                h.next_header(),
            )
        }
        _ => return format!("({} bytes, not IP)", frame.len()),
    };
    let l4 = match &p.transport {
        Some(TransportSlice::Tcp(t)) => {
            let mut f = String::new();
            for (on, n) in [
                (t.syn(), "S"),
                (t.ack(), "A"),
                (t.fin(), "F"),
                (t.rst(), "R"),
                (t.psh(), "P"),
            ] {
                if on {
                    f.push_str(n);
                }
            }
            format!(
                "TCP {}:{} -> {}:{} [{}]",
                src,
                t.source_port(),
                dst,
                t.destination_port(),
                f
            )
        }
        Some(TransportSlice::Udp(u)) => format!(
            "UDP {}:{} -> {}:{}",
            src,
            u.source_port(),
            dst,
            u.destination_port()
        ),
        Some(TransportSlice::Icmpv4(i)) => format!("ICMP {src} -> {dst} {:?}", i.icmp_type()),
        Some(TransportSlice::Icmpv6(i)) => format!("ICMPv6 {src} -> {dst} {:?}", i.icmp_type()),
        _ => format!("IP proto {} {src} -> {dst} (encapsulated)", proto.0),
    };
    let m = &frame[..6];
    format!(
        "{l4}  dst-mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

fn main() {
    for f in fixtures() {
        println!("== {}: {}", f.name, f.description);
        let mut d = (f.setup)();
        for s in &f.steps {
            let mut mem = vec![0u8; 128 + s.input.len() + 128];
            mem[128..128 + s.input.len()].copy_from_slice(&s.input);
            let Ok(mut fb) = FrameBuf::new(&mut mem, 128, s.input.len()) else {
                continue;
            };
            let v = d.handle_frame(s.at, &mut fb, &s.meta);
            println!("   in : {}", describe(&s.input));
            match v {
                Verdict::Forward(fw) => {
                    let out = with_macs(fb.data(), neighbour_mac(&fw.next_hop), DIRECTOR_MAC);
                    println!("   out: {}  (forward via {})", describe(&out), fw.next_hop);
                }
                Verdict::Reply => println!("   out: {}  (reply)", describe(fb.data())),
                other => println!("   out: {other:?}"),
            }
            let ok = match (&s.expect, v) {
                (Expect::Forward { .. }, Verdict::Forward(_))
                | (Expect::Reply(_), Verdict::Reply)
                | (Expect::Pass, Verdict::Pass) => true,
                (Expect::Drop(a), Verdict::Drop(b)) => *a == b,
                _ => false,
            };
            if !ok {
                println!("   !! expected {:?}", s.expect);
            }
        }
        if let Some(s) = d.services().first() {
            let shares: Vec<String> = s
                .dests
                .iter()
                .map(|x| {
                    format!(
                        "{}:{} conns={} in={}",
                        x.cfg.addr, x.cfg.port, x.stats.conns, x.stats.inpkts
                    )
                })
                .collect();
            println!("   servers: {}", shares.join(", "));
        }
    }
}
