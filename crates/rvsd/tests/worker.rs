//! Workers: frames fed through a worker's director while the control plane
//! changes the table. A reload edits in place, so a connection to a real
//! server that stays keeps going to it and its counters survive.

use rvs_engine::{DirectorConfig, Verdict};
use rvs_fixtures::{cip4, flags, rip4, tcp, vip4};
use rvsd::config::parse;
use rvsd::control::Control;
use rvsd::worker::{Worker, feed_port};

const MAC_C: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_D: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn conf(weight2: u32, extra: &str) -> String {
    format!(
        "[[service]]\ntcp = \"192.0.2.10:80\"\nscheduler = \"rr\"\n\
         [[service.real]]\nserver = \"10.20.0.11:80\"\nmethod = \"masq\"\n\
         [[service.real]]\nserver = \"10.20.0.12:80\"\nmethod = \"masq\"\nweight = {weight2}\n{extra}"
    )
}

#[test]
fn reload_keeps_established_connections() {
    let (make, feeder) = feed_port();
    let w = Worker::spawn(DirectorConfig::default(), make, std::time::Instant::now()).unwrap();
    let mut c = Control::new(DirectorConfig::default(), vec![w]);
    c.apply(parse("a", &conf(1, "")).unwrap().ops).unwrap();

    let syn = tcp(MAC_C, MAC_D, cip4(), 40000, vip4(), 80, flags::SYN, b"");
    let (v, _) = feeder.send(&syn).unwrap();
    let Verdict::Forward(f) = v else {
        panic!("{v:?}")
    };
    // rr over two servers; whichever it picked must stay.
    let server = f.next_hop;
    assert!(server == rip4(1) || server == rip4(2), "{server:?}");

    // Reload: the other server's weight changes (or this one's: both are
    // edits), and a service is added.
    let n = c
        .reload(
            &parse("b", &conf(3, "[[service]]\nudp = \"192.0.2.10:53\"\n"))
                .unwrap()
                .ops,
        )
        .unwrap();
    assert_eq!(n, 2);

    let ack = tcp(
        MAC_C,
        MAC_D,
        cip4(),
        40000,
        vip4(),
        80,
        flags::ACK,
        b"hello",
    );
    let (v, _) = feeder.send(&ack).unwrap();
    let Verdict::Forward(f) = v else {
        panic!("{v:?}")
    };
    assert_eq!(f.next_hop, server);

    let snap = c.workers()[0].snapshot().unwrap();
    assert_eq!(snap.services.len(), 2);
    assert_eq!(snap.conns.len(), 1);
    let web = &snap.services[0];
    let d = web
        .dests
        .iter()
        .find(|d| rvs_types::Addr::from(d.dest.addr) == server)
        .unwrap();
    // One connection, two packets in, counted before and after the reload.
    assert_eq!((d.stats.conns, d.stats.inpkts), (1, 2));
    assert_eq!(d.activeconns, 1);
    let other = web
        .dests
        .iter()
        .find(|d| rvs_types::Addr::from(d.dest.addr) == rip4(2))
        .unwrap();
    assert_eq!(other.dest.weight, 3);

    // -Z through the control plane zeroes the counters the workers hold.
    c.apply(vec![rvsd::convert::Op::Zero(None)]).unwrap();
    let snap = c.workers()[0].snapshot().unwrap();
    assert!(
        snap.services[0]
            .dests
            .iter()
            .all(|d| d.stats.conns == 0 && d.stats.inpkts == 0)
    );
    assert_eq!(snap.conns.len(), 1, "zeroing keeps connections");
    c.stop();
}

#[test]
fn two_workers_get_every_change_and_their_figures_add_up() {
    let (m1, f1) = feed_port();
    let (m2, f2) = feed_port();
    let start = std::time::Instant::now();
    let w1 = Worker::spawn(DirectorConfig::default(), m1, start).unwrap();
    let w2 = Worker::spawn(DirectorConfig::default(), m2, start).unwrap();
    let mut c = Control::new(DirectorConfig::default(), vec![w1, w2]);
    c.apply(
        parse(
            "a",
            "[[service]]\ntcp = \"192.0.2.10:80\"\n[[service.real]]\nserver = \"10.20.0.11:80\"\nmethod = \"masq\"\n",
        )
        .unwrap()
        .ops,
    )
    .unwrap();
    // One SYN through each worker, from two client ports.
    for (f, sport) in [(&f1, 40001), (&f2, 40002)] {
        let syn = tcp(MAC_C, MAC_D, cip4(), sport, vip4(), 80, flags::SYN, b"");
        let (v, _) = f.send(&syn).unwrap();
        assert!(
            matches!(v, Verdict::Forward(f) if f.next_hop == rip4(1)),
            "{v:?}"
        );
    }
    let s = rvsd::worker::snapshot_all(c.workers()).unwrap();
    assert_eq!(s.conns.len(), 2);
    let d = &s.services[0].dests[0];
    // Two connections, two 40-byte packets (IPv4 20 + TCP 20), both in
    // SYN_RECV, which counts as active since "ipvs: count pre-established
    // TCP states as active" (tcp_state_active() in ip_vs_proto_tcp.c).
    assert_eq!(
        (
            d.stats.conns,
            d.stats.inpkts,
            d.stats.inbytes,
            d.activeconns,
            d.inactconns
        ),
        (2, 2, 80, 2, 0)
    );
    assert_eq!(s.services[0].stats.conns, 2);
    let g = rvsd::worker::daemon_stats(c.workers()).unwrap();
    assert_eq!((g.totals.conns, g.conns), (2, 2));
    c.stop();
}

#[test]
fn no_frame_sees_half_a_change() {
    use rvsd::convert::Op;
    let (make, feeder) = feed_port();
    let w = Worker::spawn(DirectorConfig::default(), make, std::time::Instant::now()).unwrap();
    let mut c = Control::new(DirectorConfig::default(), vec![w]);
    let cfg = parse(
        "a",
        "[[service]]\ntcp = \"192.0.2.10:80\"\n[[service.real]]\nserver = \"10.20.0.11:80\"\nmethod = \"masq\"\n",
    )
    .unwrap();
    c.apply(cfg.ops.clone()).unwrap();
    let (Op::AddService(svc), Op::AddDest(_, one)) = (&cfg.ops[0], &cfg.ops[1]) else {
        panic!("{:?}", cfg.ops)
    };
    let key = svc.key;
    let mut two = one.clone();
    two.addr = rip4(2);
    // Swap the only real server back and forth, each swap one request
    // (delete then add): between the two operations the service has no
    // real server, so a frame handled there would not be forwarded.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let t = std::thread::spawn(move || {
        let mut n = 0u32;
        while !s.load(std::sync::atomic::Ordering::Relaxed) {
            let sport = 1024 + (n % 60000) as u16;
            let syn = tcp(MAC_C, MAC_D, cip4(), sport, vip4(), 80, flags::SYN, b"");
            let (v, _) = feeder.send(&syn).unwrap();
            assert!(matches!(v, Verdict::Forward(_)), "frame {n}: {v:?}");
            n += 1;
        }
        n
    });
    for i in 0..50 {
        let (from, to) = if i % 2 == 0 { (one, &two) } else { (&two, one) };
        c.apply(vec![
            Op::DelDest(key, from.addr, from.port),
            Op::AddDest(key, to.clone()),
        ])
        .unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let frames = t.join().unwrap();
    assert!(frames > 0);
    c.stop();
}
