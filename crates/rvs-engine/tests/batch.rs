//! `handle_batch` gives exactly what `handle_frame` in order gives, frames
//! and verdicts, including when earlier frames of a batch create or remove
//! the connections later ones use.

mod common;

use common::*;
use proptest::prelude::*;
use rvs_engine::*;
use rvs_types::Instant;
use rvs_wire::FrameBuf;

fn director() -> Director {
    let vip = v4("192.0.2.10");
    let key = tcp_svc(vip, 80);
    let mut d = Director::new(
        DirectorConfig {
            max_conns: 40,
            ..DirectorConfig::default()
        },
        Instant::ZERO,
    );
    d.add_service(ServiceConfig::new(key)).unwrap();
    for r in ["10.20.0.11", "10.20.0.12", "10.20.0.13"] {
        d.add_dest(&key, dest(v4(r), 8080, 1, Forward::Masq))
            .unwrap();
    }
    let u = udp_svc(vip, 53);
    d.add_service(ServiceConfig::new(u)).unwrap();
    d.add_dest(&u, dest(v4("10.20.0.11"), 53, 1, Forward::Route))
        .unwrap();
    d
}

/// Frame `k`: a client (one of 8 ports) sending SYN, ACK, FIN or RST, or UDP.
fn frame(k: u8) -> Vec<u8> {
    let c = v4("198.51.100.7");
    let vip = v4("192.0.2.10");
    let port = 40000 + u16::from(k % 8);
    match k / 8 % 5 {
        0 => tcp(c, port, vip, 80, SYN, b""),
        1 => tcp(c, port, vip, 80, ACK, b"data"),
        2 => tcp(c, port, vip, 80, FIN | ACK, b""),
        3 => tcp(c, port, vip, 80, RST, b""),
        _ => udp(c, port, vip, 53, b"q"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn batch_equals_sequential(ks in prop::collection::vec(any::<u8>(), 1..60)) {
        let frames: Vec<Vec<u8>> = ks.iter().map(|k| frame(*k)).collect();
        let now = Instant::from_secs(1);

        let mut seq = director();
        let mut want = Vec::new();
        for f in &frames {
            want.push(run(&mut seq, now, f));
        }

        let mut bat = director();
        let mut mems: Vec<Vec<u8>> = frames.iter().map(|f| {
            let mut m = vec![0u8; 128 + f.len() + 64];
            m[128..128 + f.len()].copy_from_slice(f);
            m
        }).collect();
        let lens: Vec<usize> = frames.iter().map(Vec::len).collect();
        let mut bufs: Vec<FrameBuf<'_>> = mems
            .iter_mut()
            .zip(&lens)
            .map(|(m, l)| FrameBuf::new(m, 128, *l).unwrap())
            .collect();
        let metas = vec![RxMeta::default(); bufs.len()];
        let mut verdicts = vec![Verdict::Pass; bufs.len()];
        bat.handle_batch(now, &mut bufs, &metas, &mut verdicts);
        for (i, (v, out)) in want.iter().enumerate() {
            prop_assert_eq!(&verdicts[i], v, "verdict of frame {}", i);
            prop_assert_eq!(bufs[i].data(), &out[..], "bytes of frame {}", i);
        }
        prop_assert_eq!(seq.conn_count(), bat.conn_count());
    }
}
