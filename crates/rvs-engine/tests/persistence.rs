//! Persistence in its IPVS forms: per service, fwmark, port zero, and
//! expire_quiescent_template.

mod common;

use common::*;
use rvs_engine::*;
use rvs_types::{Af, Instant};
use std::time::Duration;

fn t(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

fn persistent(d: &mut Director, key: ServiceKey, sched: SchedKind, secs: u64, mask: u8) {
    let mut s = ServiceConfig::new(key);
    s.sched = sched;
    s.persistence = Some(Duration::from_secs(secs));
    s.netmask = mask;
    d.add_service(s).unwrap();
}

#[test]
fn fwmark_persistence_spans_ports_and_protocols() {
    // One fwmark groups HTTP (tcp/80), HTTPS (tcp/443) and DNS (udp/53) of
    // two VIPs: a client stays on one server for all of them (the classic
    // e-commerce "shopping cart" set-up of the LVS HOWTO).
    let rips = [v4("10.20.0.11"), v4("10.20.0.12"), v4("10.20.0.13")];
    let key = ServiceKey::Fwmark {
        mark: 1,
        af: Af::V4,
    };
    let mut d = Director::new(DirectorConfig::default(), Instant::ZERO);
    persistent(&mut d, key, SchedKind::Rr, 600, 32);
    for r in rips {
        d.add_dest(&key, dest(r, 0, 1, Forward::Route)).unwrap();
    }
    let mark = RxMeta { fwmark: 1, zone: 0 };
    let c1 = v4("198.51.100.7");
    let a = next_hop(
        &run_meta(
            &mut d,
            t(1),
            &tcp(c1, 40000, v4("192.0.2.10"), 80, SYN, b""),
            &mark,
        )
        .0,
    );
    let b = next_hop(
        &run_meta(
            &mut d,
            t(1),
            &tcp(c1, 40001, v4("192.0.2.10"), 443, SYN, b""),
            &mark,
        )
        .0,
    );
    let c = next_hop(
        &run_meta(
            &mut d,
            t(1),
            &udp(c1, 5353, v4("192.0.2.11"), 53, b"q"),
            &mark,
        )
        .0,
    );
    assert_eq!((a, b), (a, a));
    assert_eq!(c, a);
    // Another client moves rr on.
    let other = next_hop(
        &run_meta(
            &mut d,
            t(1),
            &tcp(v4("198.51.100.8"), 40000, v4("192.0.2.10"), 80, SYN, b""),
            &mark,
        )
        .0,
    );
    assert_ne!(other, a);
    // Templates: one per client, keyed by the mark.
    let tpl: Vec<_> = d
        .connections(t(1))
        .into_iter()
        .filter(|c| c.conn.flags.contains(ConnFlags::TEMPLATE))
        .collect();
    assert_eq!(tpl.len(), 2);
    assert!(tpl.iter().all(|c| c.conn.fwmark == 1 && c.conn.vport == 0));
}

#[test]
fn port_zero_persistence_keeps_every_port_of_the_vip_together() {
    let vip = v4("192.0.2.10");
    let rips = [v4("10.20.0.11"), v4("10.20.0.12")];
    let key = tcp_svc(vip, 0);
    let mut d = Director::new(DirectorConfig::default(), Instant::ZERO);
    persistent(&mut d, key, SchedKind::Rr, 300, 32);
    for r in rips {
        d.add_dest(&key, dest(r, 0, 1, Forward::Route)).unwrap();
    }
    let c = v4("198.51.100.7");
    let first = next_hop(&run(&mut d, t(1), &tcp(c, 40000, vip, 21, SYN, b"")).0);
    for (i, port) in [20u16, 80, 443, 8443].iter().enumerate() {
        let (v, out) = run(
            &mut d,
            t(1),
            &tcp(c, 40001 + i as u16, vip, *port, SYN, b""),
        );
        assert_eq!(next_hop(&v), first, "port {port}");
        // The destination port is kept (the real server port is 0).
        assert_eq!(out, tcp(c, 40001 + i as u16, vip, *port, SYN, b""));
    }
    // A more specific service on the same VIP wins over port zero.
    let web = tcp_svc(vip, 80);
    d.add_service(ServiceConfig::new(web)).unwrap();
    d.add_dest(&web, dest(v4("10.20.0.99"), 80, 1, Forward::Route))
        .unwrap();
    let (v, _) = run(&mut d, t(2), &tcp(c, 41000, vip, 80, SYN, b""));
    assert_eq!(next_hop(&v), v4("10.20.0.99"));
}

#[test]
fn quiescent_server_keeps_its_template_unless_expire_quiescent_template() {
    for expire in [false, true] {
        let vip = v4("192.0.2.10");
        let rips = [v4("10.20.0.11"), v4("10.20.0.12")];
        let key = tcp_svc(vip, 80);
        let cfg = DirectorConfig {
            expire_quiescent_template: expire,
            ..DirectorConfig::default()
        };
        let mut d = Director::new(cfg, Instant::ZERO);
        persistent(&mut d, key, SchedKind::Rr, 300, 32);
        for r in rips {
            d.add_dest(&key, dest(r, 80, 1, Forward::Route)).unwrap();
        }
        let c = v4("198.51.100.7");
        let first = next_hop(&run(&mut d, t(1), &tcp(c, 40000, vip, 80, SYN, b"")).0);
        d.edit_dest(&key, dest(first, 80, 0, Forward::Route))
            .unwrap();
        let again = next_hop(&run(&mut d, t(2), &tcp(c, 40001, vip, 80, SYN, b"")).0);
        if expire {
            // The template pointed at a weight-0 server: expired, rescheduled.
            assert_ne!(again, first);
        } else {
            // IPVS default: persistence wins over quiescence.
            assert_eq!(again, first);
        }
    }
}

#[test]
fn removed_server_invalidates_its_template_but_its_connections_finish() {
    let vip = v4("192.0.2.10");
    let rips = [v4("10.20.0.11"), v4("10.20.0.12")];
    let key = tcp_svc(vip, 80);
    let mut d = Director::new(DirectorConfig::default(), Instant::ZERO);
    persistent(&mut d, key, SchedKind::Rr, 300, 32);
    for r in rips {
        d.add_dest(&key, dest(r, 80, 1, Forward::Masq)).unwrap();
    }
    let c = v4("198.51.100.7");
    let first = next_hop(&run(&mut d, t(1), &tcp(c, 40000, vip, 80, SYN, b"")).0);
    d.del_dest(&key, &first, 80).unwrap();
    // New connections of the client go to the remaining server ...
    let second = next_hop(&run(&mut d, t(2), &tcp(c, 40001, vip, 80, SYN, b"")).0);
    assert_ne!(second, first);
    // ... and stay there.
    let third = next_hop(&run(&mut d, t(3), &tcp(c, 40002, vip, 80, SYN, b"")).0);
    assert_eq!(third, second);
    // The first connection still reaches the removed server (TCP's default: keep).
    let (v, _) = run(&mut d, t(3), &tcp(c, 40000, vip, 80, ACK, b"x"));
    assert_eq!(next_hop(&v), first);
    // Everything expires in time and the counters return to zero.
    for s in (10..4000).step_by(10) {
        d.handle_timeout(t(s));
    }
    assert_eq!(d.conn_count(), 0);
    assert!(counts(&d).iter().all(|c| (c.1, c.2, c.3) == (0, 0, 0)));
}

#[test]
fn ipv6_persistence_is_by_prefix_length() {
    let vip = v4("2001:db8::10");
    let rips = [v4("fd00:20::11"), v4("fd00:20::12"), v4("fd00:20::13")];
    let key = tcp_svc(vip, 443);
    let mut d = Director::new(DirectorConfig::default(), Instant::ZERO);
    persistent(&mut d, key, SchedKind::Rr, 300, 64);
    for r in rips {
        d.add_dest(&key, dest(r, 443, 1, Forward::Route)).unwrap();
    }
    // Two addresses of one /64 share a server; rr would otherwise move on.
    let a = next_hop(
        &run(
            &mut d,
            t(1),
            &tcp(v4("2001:db8:1:2::7"), 40000, vip, 443, SYN, b""),
        )
        .0,
    );
    let b = next_hop(
        &run(
            &mut d,
            t(1),
            &tcp(v4("2001:db8:1:2:ffff::1"), 40001, vip, 443, SYN, b""),
        )
        .0,
    );
    assert_eq!(a, b);
    // The neighbouring /64 is another client network.
    let c = next_hop(
        &run(
            &mut d,
            t(1),
            &tcp(v4("2001:db8:1:3::7"), 40002, vip, 443, SYN, b""),
        )
        .0,
    );
    assert_ne!(c, a);
    // The templates carry the masked networks.
    let mut nets: Vec<String> = d
        .connections(t(1))
        .iter()
        .filter(|x| x.conn.flags.contains(ConnFlags::TEMPLATE))
        .map(|x| x.conn.caddr.to_string())
        .collect();
    nets.sort();
    assert_eq!(nets, ["2001:db8:1:2::", "2001:db8:1:3::"]);
}

/// IPVS's delayed template expiry: a template that outlives its timeout
/// because it still controls connections is re-armed for 60 s, and 60 s
/// stays its timeout (`cp->timeout = 60*HZ`): later hits re-arm it for 60 s,
/// not for the service's persistence timeout. Once its connections are
/// gone it goes at the next of those checks.
#[test]
fn delayed_template_runs_on_sixty_seconds() {
    let vip = v4("192.0.2.10");
    let key = udp_svc(vip, 53);
    let mut d = Director::new(DirectorConfig::default(), Instant::ZERO);
    persistent(&mut d, key, SchedKind::Rr, 10, 32);
    d.add_dest(&key, dest(v4("10.20.0.11"), 53, 1, Forward::Route))
        .unwrap();
    let c = v4("198.51.100.7");
    let template = |d: &Director, now| {
        d.connections(now)
            .into_iter()
            .find(|x| x.conn.flags.contains(ConnFlags::TEMPLATE))
            .map(|x| x.expires_in.as_secs())
    };
    run(&mut d, t(0), &udp(c, 1000, vip, 53, b"q"));
    assert_eq!(template(&d, t(0)), Some(10));
    // Before its timeout, a hit re-arms it for the service's 10 s.
    run(&mut d, t(5), &udp(c, 1001, vip, 53, b"q"));
    assert_eq!(template(&d, t(5)), Some(10));
    // At 15 s it is due, but controls two connections: delayed by 60 s.
    d.handle_timeout(t(15));
    assert_eq!(template(&d, t(15)), Some(60));
    // A new connection through it now re-arms it for 60 s.
    run(&mut d, t(20), &udp(c, 1002, vip, 53, b"q"));
    assert_eq!(template(&d, t(20)), Some(60));
    // It lives as long as its connections (UDP, 300 s from 20 s) ...
    for s in (21..=320).step_by(5) {
        d.handle_timeout(t(s));
        assert!(template(&d, t(s)).is_some(), "template gone at {s} s");
    }
    // ... and goes within 60 s of the last one.
    for s in (321..=381).step_by(5) {
        d.handle_timeout(t(s));
    }
    assert_eq!(d.conn_count(), 0);
    assert_eq!(counts(&d), vec![(v4("10.20.0.11"), 0, 0, 0)]);
}

/// The real server's port applies to packets for the service's own port
/// (ip_vs_sched_persist): a persistent fwmark or port-zero service keeps
/// each packet's port even when the real server has one; a non-persistent
/// fwmark service maps to it (ip_vs_schedule).
#[test]
fn persistent_port_zero_and_fwmark_services_keep_the_packets_port() {
    let rip = v4("10.20.0.11");
    let vip = v4("192.0.2.10");
    let c = v4("198.51.100.7");
    let mark = RxMeta { fwmark: 3, zone: 0 };
    let fwm = ServiceKey::Fwmark {
        mark: 3,
        af: Af::V4,
    };
    for persist in [true, false] {
        let mut d = Director::new(DirectorConfig::default(), Instant::ZERO);
        let mut s = ServiceConfig::new(fwm);
        s.persistence = persist.then(|| Duration::from_secs(300));
        d.add_service(s).unwrap();
        d.add_dest(&fwm, dest(rip, 8080, 1, Forward::Masq)).unwrap();
        let (v, out) = run_meta(&mut d, t(1), &tcp(c, 40000, vip, 80, SYN, b""), &mark);
        assert_eq!(next_hop(&v), rip);
        let port = if persist { 80 } else { 8080 };
        assert_eq!(out, tcp(c, 40000, rip, port, SYN, b""), "persist {persist}");
    }
    let any = tcp_svc(vip, 0);
    let mut d = Director::new(DirectorConfig::default(), Instant::ZERO);
    persistent(&mut d, any, SchedKind::Rr, 300, 32);
    d.add_dest(&any, dest(rip, 8080, 1, Forward::Masq)).unwrap();
    let (_, out) = run(&mut d, t(1), &tcp(c, 40001, vip, 443, SYN, b""));
    assert_eq!(out, tcp(c, 40001, rip, 443, SYN, b""));
    // A persistent service on a port maps that port to the server's.
    let web = tcp_svc(vip, 80);
    let mut d = Director::new(DirectorConfig::default(), Instant::ZERO);
    persistent(&mut d, web, SchedKind::Rr, 300, 32);
    d.add_dest(&web, dest(rip, 8080, 1, Forward::Masq)).unwrap();
    let (_, out) = run(&mut d, t(1), &tcp(c, 40002, vip, 80, SYN, b""));
    assert_eq!(out, tcp(c, 40002, rip, 8080, SYN, b""));
}
