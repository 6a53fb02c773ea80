//! Writes a seed corpus of valid frames for the cargo-fuzz targets in
//! `fuzz/`: `cargo run -p rvs-wire --example fuzz_seeds --features testing --
//! fuzz/corpus/<target>` (any directory; it is created).

use rvs_types::{Addr, Proto};
use rvs_wire::testing::{self, IpOpts};
use rvs_wire::{FrameBuf, Parsed, TunnelKind, encapsulate, parse_frame};
use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "seeds".into()));
    std::fs::create_dir_all(&dir)?;
    let a = Addr::v4([10, 0, 0, 1]);
    let b = Addr::v4([10, 0, 0, 2]);
    let mut x = [0u8; 16];
    x[0] = 0x20;
    let mut y = x;
    y[15] = 2;
    let (c, d) = (Addr::v6(x), Addr::v6(y));
    let opts = IpOpts {
        vlans: vec![5],
        v4_options: vec![1, 1, 1, 1],
        v6_ext: vec![0, 60, 44],
        ..IpOpts::default()
    };
    let mut frames = vec![
        testing::tcp_v4(a, 1, b, 80, 0x02, b"x"),
        testing::tcp_v6(c, 1, d, 80, 0x12, b"x"),
        testing::udp_v4(a, 1, b, 53, b"q"),
        testing::udp_v6(c, 1, d, 53, b"q"),
        testing::sctp_v4(a, 1, b, 80, 0, &[1, 0, 0, 4]),
        testing::sctp_v6(c, 1, d, 80, 0, &[1, 0, 0, 4]),
        testing::icmp_echo_v4(a, b, 7, 1, true, b"p"),
        testing::icmp_echo_v6(c, d, 7, 1, true, b"p"),
        testing::ip_frame(
            a,
            b,
            Proto::TCP,
            &testing::tcp_segment(1, 2, 3, 4, 0x10, b"o"),
            &opts,
        ),
        testing::ip_frame(c, d, Proto::UDP, &testing::udp_datagram(1, 2, b"o"), &opts),
    ];
    let base = frames.clone();
    for f in &base {
        let router = if f[12] == 0x08 {
            Addr::v4([9, 9, 9, 9])
        } else {
            c
        };
        frames.push(testing::icmp_error(
            router,
            f,
            if router.is_v4() { 3 } else { 1 },
            3,
            0,
            64,
        ));
    }
    let kinds = [
        TunnelKind::Ipip,
        TunnelKind::Gue {
            port: 6080,
            csum: true,
            remcsum: false,
        },
        TunnelKind::Gre {
            csum: true,
            key: Some(1),
        },
    ];
    for f in &base {
        let Ok(Parsed::Ip(info)) = parse_frame(f) else {
            continue;
        };
        for k in &kinds {
            for (s, t) in [(a, b), (c, d)] {
                let mut mem = vec![0u8; 128 + f.len()];
                mem[128..].copy_from_slice(f);
                let Ok(mut buf) = FrameBuf::new(&mut mem, 128, f.len()) else {
                    continue;
                };
                if encapsulate(&mut buf, &info, k, s, t, 1).is_ok() {
                    frames.push(buf.data().to_vec());
                }
            }
        }
    }
    // An ARP request (who has 10.0.0.2? tell 10.0.0.1), for the views target.
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
    arp.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1]);
    arp.extend_from_slice(&[10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
    frames.push(arp);
    for (i, f) in frames.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:03}")), f)?;
    }
    println!("{} seeds in {}", frames.len(), dir.display());
    Ok(())
}
