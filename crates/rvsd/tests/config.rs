//! The native configuration: the documented example loads; every kind of
//! error names FILE:LINE (the line of the field at fault) and why; a bad
//! file applies nothing. Expected lines are counted by hand in each text.

use rvs_engine::{Forward, ServiceKey, TunnelKind};
use rvs_types::{Addr, Af, Proto};
use rvsd::config::parse;
use rvsd::control::Control;
use rvsd::convert::Op;
use std::net::Ipv4Addr;

const EXAMPLE: &str = include_str!("../examples/rvsd.toml");

fn v4(a: [u8; 4]) -> Addr {
    Addr::from(std::net::IpAddr::V4(Ipv4Addr::from(a)))
}

#[test]
fn documented_example_loads() {
    let c = parse("rvsd.toml", EXAMPLE).unwrap();
    assert_eq!(c.ops.len(), 1 + 3 + 4);
    assert_eq!(c.ops[0], Op::SetTimeouts(900, 120, 300));
    assert_eq!(c.director.max_conns, 1_048_576);
    assert_eq!(c.director.tunnel_mtu, 1500);
    assert_eq!(c.director.tunnel_src_v4, v4([10, 20, 0, 1]));
    // rvs's per-protocol default for removed real servers.
    assert_eq!(c.director.nodest, None);
    let Op::AddService(web) = &c.ops[1] else {
        panic!("{:?}", c.ops[1])
    };
    assert_eq!(
        web.key,
        ServiceKey::Addr {
            proto: Proto(6),
            addr: v4([192, 0, 2, 10]),
            port: 80
        }
    );
    let Op::AddDest(_, d) = &c.ops[2] else {
        panic!("{:?}", c.ops[2])
    };
    assert_eq!(
        (d.addr, d.port, d.weight, d.fwd),
        (v4([10, 20, 0, 11]), 8080, 3, Forward::Masq)
    );
    let Op::AddService(dns) = &c.ops[4] else {
        panic!("{:?}", c.ops[4])
    };
    assert_eq!(dns.persistence, Some(std::time::Duration::from_secs(300)));
    assert_eq!(dns.netmask, 24);
    // A real server without a port takes the service's (ipvsadm's rule).
    let Op::AddDest(_, d) = &c.ops[5] else {
        panic!("{:?}", c.ops[5])
    };
    assert_eq!((d.port, d.fwd), (53, Forward::Route));
    let Op::AddService(fwm) = &c.ops[6] else {
        panic!("{:?}", c.ops[6])
    };
    assert_eq!(
        fwm.key,
        ServiceKey::Fwmark {
            mark: 1,
            af: Af::V4
        }
    );
    let Op::AddDest(_, d) = &c.ops[7] else {
        panic!("{:?}", c.ops[7])
    };
    assert_eq!(
        d.fwd,
        Forward::Tunnel(TunnelKind::Gue {
            port: 6080,
            csum: true,
            remcsum: false
        })
    );
}

fn err(text: &str) -> String {
    parse("t.toml", text).unwrap_err().0
}

#[test]
fn syntax_and_unknown_keys() {
    assert!(err("[director]\nmax_conns = \n").starts_with("t.toml:2: "));
    let e = err("[director]\nmax_conn = 5\n");
    assert!(e.starts_with("t.toml:2: ") && e.contains("max_conn"), "{e}");
    let e = err(
        "[[service]]\ntcp = \"192.0.2.10:80\"\n\n  [[service.real]]\n  server = \"10.0.0.1\"\n  wieght = 2\n",
    );
    assert!(e.starts_with("t.toml:6: ") && e.contains("wieght"), "{e}");
    let e = err("[director]\nsloppy_tcp = \"yes\"\n");
    assert!(e.starts_with("t.toml:2: "), "{e}");
}

#[test]
fn xdp_mode() {
    use rvsd::config::XdpMode;
    assert_eq!(parse("t.toml", "").unwrap().daemon.xdp_mode, None);
    for (w, m) in [("generic", XdpMode::Generic), ("native", XdpMode::Native)] {
        let c = parse("t.toml", &format!("[daemon]\nxdp_mode = \"{w}\"\n")).unwrap();
        assert_eq!(c.daemon.xdp_mode, Some(m));
    }
    let e = err("[daemon]\nxdp_mode = \"fast\"\n");
    assert!(e.starts_with("t.toml:2: ") && e.contains("fast"), "{e}");
}

#[test]
fn conn_reuse_mode_as_the_sysctl() {
    let c = parse("t.toml", "").unwrap();
    assert!(!c.director.reuse_fin_wait);
    for (v, fin) in [(1, false), (2, true), (3, true)] {
        let c = parse("t.toml", &format!("[director]\nconn_reuse_mode = {v}\n")).unwrap();
        assert_eq!(c.director.reuse_fin_wait, fin, "{v}");
    }
    let e = err("[director]\n\nconn_reuse_mode = 0\n");
    assert!(
        e.starts_with("t.toml:3: ") && e.contains("not offered"),
        "{e}"
    );
    let e = err("[director]\nconn_reuse_mode = 7\n");
    assert!(
        e.starts_with("t.toml:2: ") && e.contains("not one of"),
        "{e}"
    );
}

#[test]
fn ipvsadm_rules_point_at_the_field() {
    // ipvsadm's own messages, at the line of the field at fault.
    assert_eq!(
        err("\n[[service]]\ntcp = \"192.0.2.10\"\n"),
        "t.toml:3: Zero port specified for non-persistent service"
    );
    assert_eq!(
        err("[[service]]\ntcp = \"192.0.2.300:80\"\n"),
        "t.toml:2: illegal virtual server address[:port] specified"
    );
    assert_eq!(
        err(
            "[[service]]\ntcp = \"192.0.2.10:80\"\nscheduler = \"rr\"\n\n[[service.real]]\nserver = \"10.0.0.1:8080\"\nmethod = \"masq\"\nweight = 70000\n"
        ),
        "t.toml:8: illegal weight specified"
    );
    assert_eq!(
        err("[[service]]\nudp = \"192.0.2.10:80\"\ntcp = \"192.0.2.10:80\"\n"),
        "t.toml:3: a service takes only one of tcp, udp, sctp and fwmark"
    );
    assert_eq!(
        err("[[service]]\nscheduler = \"rr\"\n"),
        "t.toml:1: a service needs one of tcp, udp, sctp or fwmark"
    );
    assert_eq!(
        err(
            "[[service]]\ntcp = \"192.0.2.10:80\"\n[[service.real]]\nserver = \"10.0.0.1\"\nmethod = \"fast\"\n"
        ),
        "t.toml:5: unknown method 'fast' (masq, route or tunnel)"
    );
    assert_eq!(
        err("[[service]]\ntcp = \"192.0.2.10:80\"\nnetmask = 40\n"),
        "t.toml:3: netmask prefix 40 is longer than 32"
    );
}

#[test]
fn kernel_answers_point_at_the_field() {
    assert_eq!(
        err("[[service]]\ntcp = \"192.0.2.10:80\"\n[[service]]\ntcp = \"192.0.2.10:80\"\n"),
        "t.toml:4: Service already exists"
    );
    assert_eq!(
        err("[[service]]\ntcp = \"192.0.2.10:80\"\nscheduler = \"fastest\"\n"),
        "t.toml:3: Scheduler or persistence engine not found"
    );
    assert_eq!(
        err(
            "[[service]]\ntcp = \"192.0.2.10:80\"\n[[service.real]]\nserver = \"10.0.0.1:80\"\n[[service.real]]\nmethod = \"route\"\nserver = \"10.0.0.1\"\n"
        ),
        "t.toml:7: Destination already exists"
    );
}

#[test]
fn semantic_errors_of_rvs() {
    // Direct routing cannot map ports: ipvsadm would silently use port 80.
    assert_eq!(
        err(
            "[[service]]\ntcp = \"192.0.2.10:80\"\n[[service.real]]\nserver = \"10.0.0.1:8080\"\nmethod = \"route\"\n"
        ),
        "t.toml:4: port mapping (80 to 8080) needs method = \"masq\": route keeps the destination port"
    );
    assert_eq!(
        err("[director]\ntunnel_src_v4 = \"fd00::1\"\n"),
        "t.toml:2: address of the wrong family"
    );
    assert_eq!(
        err("[director]\nmax_conns = 10\n\ntunnel_mtu = 100\n"),
        "t.toml:4: tunnel_mtu 100 is outside 576..65535"
    );
    assert_eq!(
        err("[[service]]\ntcp = \"192.0.2.10:80\"\nipv6 = true\n"),
        "t.toml:3: ipv6 = true is for fwmark services (an address says its family)"
    );
}

#[test]
fn netmask_as_prefix_and_v6_services() {
    let c = parse(
        "t.toml",
        "[[service]]\nudp = \"192.0.2.10:53\"\npersistent = 60\nnetmask = 16\n[[service]]\ntcp = \"[2001:db8::10]:443\"\nscheduler = \"mh\"\nflags = [\"mh-port\"]\n[[service.real]]\nserver = \"[2001:db8:1::11]:443\"\n[[service]]\nfwmark = 9\nipv6 = true\npersistent = 30\nnetmask = 64\n",
    )
    .unwrap();
    let Op::AddService(s) = &c.ops[0] else {
        panic!()
    };
    assert_eq!(s.netmask, 16);
    let Op::AddService(s) = &c.ops[1] else {
        panic!()
    };
    assert_eq!(s.key.af(), Af::V6);
    assert_eq!(s.sched.name(), "mh");
    let Op::AddService(s) = &c.ops[3] else {
        panic!()
    };
    assert_eq!(
        s.key,
        ServiceKey::Fwmark {
            mark: 9,
            af: Af::V6
        }
    );
    assert_eq!(s.netmask, 64);
}

#[test]
fn bad_file_leaves_the_running_model_unchanged() {
    let mut control = Control::new(Default::default(), Vec::new());
    let good = parse("rvsd.toml", EXAMPLE).unwrap();
    control.apply(good.ops.clone()).unwrap();
    let before = control.model().ops().to_vec();
    // The new file adds a service, then fails on its last line: a reload
    // would never see it, and even a valid prefix is not applied.
    let bad = format!(
        "{EXAMPLE}\n[[service]]\ntcp = \"192.0.2.99:80\"\n[[service]]\ntcp = \"192.0.2.99:80\"\n"
    );
    let e = parse("rvsd.toml", &bad).unwrap_err();
    let last = bad.lines().count();
    assert_eq!(e.0, format!("rvsd.toml:{last}: Service already exists"));
    assert_eq!(control.model().ops(), &before[..]);
}

#[test]
fn the_documented_copy_is_the_example() {
    let doc = include_str!("../../../docs/CONFIG.md");
    let start = doc.find("```toml\n").unwrap() + "```toml\n".len();
    let len = doc[start..].find("```").unwrap();
    assert_eq!(&doc[start..start + len], EXAMPLE);
}

/// `nodest = "keep"|"drop"|"expire"` and IPVS's `expire_nodest_conn =
/// true|false` (expire, drop), in `[director]` and per service; both in one
/// table, or an unknown word, is an error at its line.
#[test]
fn nodest_and_expire_nodest_conn() {
    use rvs_engine::NoDest;
    let svc = |c: &rvsd::config::Config, i: usize| match &c.ops[i] {
        Op::AddService(s) => s.nodest,
        other => panic!("{other:?}"),
    };
    for (line, want) in [
        ("expire_nodest_conn = true", NoDest::Expire),
        ("expire_nodest_conn = false", NoDest::Drop),
        ("nodest = \"keep\"", NoDest::Keep),
        ("nodest = \"drop\"", NoDest::Drop),
        ("nodest = \"expire\"", NoDest::Expire),
    ] {
        let c = parse("t.toml", &format!("[director]\n{line}\n")).unwrap();
        assert_eq!(c.director.nodest, Some(want), "{line}");
        let c = parse(
            "t.toml",
            &format!("[[service]]\nudp = \"192.0.2.10:53\"\n{line}\n[[service]]\ntcp = \"192.0.2.10:80\"\n"),
        )
        .unwrap();
        assert_eq!(c.director.nodest, None);
        assert_eq!((svc(&c, 0), svc(&c, 1)), (Some(want), None), "{line}");
    }
    assert_eq!(
        err("[director]\nnodest = \"keep\"\nmax_conns = 10\nexpire_nodest_conn = true\n"),
        "t.toml:4: expire_nodest_conn and nodest set the same thing: give only one"
    );
    assert_eq!(
        err(
            "[[service]]\ntcp = \"192.0.2.10:80\"\nexpire_nodest_conn = false\nnodest = \"drop\"\n"
        ),
        "t.toml:4: expire_nodest_conn and nodest set the same thing: give only one"
    );
    // The director says one, a service the other: fine, the service wins.
    let c = parse(
        "t.toml",
        "[director]\nexpire_nodest_conn = false\n[[service]]\ntcp = \"192.0.2.10:80\"\nnodest = \"keep\"\n",
    )
    .unwrap();
    assert_eq!(
        (c.director.nodest, svc(&c, 0)),
        (Some(NoDest::Drop), Some(NoDest::Keep))
    );
    let e = err("[director]\n\nnodest = \"flush\"\n");
    assert!(e.starts_with("t.toml:3: ") && e.contains("keep"), "{e}");
    let e = err("[director]\nexpire_nodest_conn = \"on\"\n");
    assert!(e.starts_with("t.toml:2: "), "{e}");
}

/// ipvsadm cannot say a service's nodest: `rvsadm -E` keeps the file's.
#[test]
fn ipvsadm_edit_keeps_the_files_nodest() {
    use rvs_engine::NoDest;
    let cmd = |l: &str| {
        let argv: Vec<String> = std::iter::once("ipvsadm")
            .chain(l.split_whitespace())
            .map(str::to_string)
            .collect();
        match rvs_ipvsadm::parse(&argv, &rvs_ipvsadm::NoResolve).unwrap() {
            rvs_ipvsadm::Parsed::Run(i) => i.command,
            _ => unreachable!(),
        }
    };
    let file = parse(
        "t.toml",
        "[[service]]\ntcp = \"192.0.2.10:80\"\nnodest = \"drop\"\n[[service]]\ntcp = \"192.0.2.10:81\"\n",
    )
    .unwrap();
    let mut control = Control::new(Default::default(), Vec::new());
    control.apply(file.ops).unwrap();
    control
        .apply_commands(&[
            cmd("-E -t 192.0.2.10:80 -s rr"),
            cmd("-E -t 192.0.2.10:81 -s rr"),
        ])
        .unwrap();
    let got: Vec<_> = control
        .model()
        .services()
        .iter()
        .map(|s| (s.cfg.sched.name(), s.cfg.nodest))
        .collect();
    assert_eq!(got, [("rr", Some(NoDest::Drop)), ("rr", None)]);
    // A service deleted and added again in the batch starts afresh.
    control
        .apply_commands(&[
            cmd("-D -t 192.0.2.10:80"),
            cmd("-A -t 192.0.2.10:80 -s wlc"),
            cmd("-E -t 192.0.2.10:80 -s lc"),
        ])
        .unwrap();
    let s = control.model().services();
    let s = s.iter().find(|s| s.cfg.key == file_key()).unwrap();
    assert_eq!((s.cfg.sched.name(), s.cfg.nodest), ("lc", None));
}

fn file_key() -> ServiceKey {
    ServiceKey::Addr {
        proto: Proto(6),
        addr: v4([192, 0, 2, 10]),
        port: 80,
    }
}
