//! Each construct of keepalived.conf, its errors and its warnings.

use std::net::IpAddr;
use std::time::Duration;

use rvs_keepalived::spec::{CheckKind, DnsType, HttpProtocol};
use rvs_keepalived::{
    Diag, FlushOnStop, GroupMember, Loaded, Method, Options, Protocol, SchedFlag, Script, TunCsum,
    TunKind, VirtualServer, VsKey, parse_str, parse_str_with,
};

fn ok(text: &str) -> Loaded {
    parse_str("t.conf", text).unwrap_or_else(|e| panic!("rejected:\n{e}"))
}

fn errors(text: &str) -> Vec<String> {
    match parse_str("t.conf", text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

fn warnings(text: &str) -> Vec<String> {
    warns(&ok(text)).iter().map(ToString::to_string).collect()
}

/// The warnings, less keepalived's "no lb_algo, so wlc" and "no lb_kind,
/// so NAT" that most of these short configurations draw (tested once, in
/// `missing_scheduler_and_method_are_warned`).
fn warns(l: &Loaded) -> Vec<Diag> {
    l.warnings
        .iter()
        .filter(|w| !w.message.starts_with("virtual_server: no lb_"))
        .cloned()
        .collect()
}

fn vs(text: &str) -> VirtualServer {
    let mut l = ok(text);
    assert_eq!(l.config.virtual_servers.len(), 1);
    l.config.virtual_servers.remove(0)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const SECS: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn a_minimal_virtual_server_gets_keepalived_defaults() {
    let v = vs("virtual_server 10.0.0.1 80 { protocol TCP\n real_server 10.0.1.1 {\n }\n}\n");
    assert_eq!(
        v.key,
        VsKey::Addr {
            ip: ip("10.0.0.1"),
            port: Some(80)
        }
    );
    assert_eq!(v.sched, "wlc");
    assert_eq!(v.method, Method::Nat);
    assert_eq!(v.protocol, Protocol::Tcp);
    assert_eq!((v.quorum, v.hysteresis), (1, 0));
    assert_eq!(v.delay_loop, SECS(60));
    assert_eq!(v.persistence_timeout, None);
    assert_eq!(v.line, 1);
    let r = &v.real_servers[0];
    assert_eq!(
        (r.ip, r.port, r.weight, r.line),
        (ip("10.0.1.1"), Some(80), 1, 2)
    );
    assert_eq!(v.method_of(r), Method::Nat);
}

#[test]
fn lb_algo_and_lvs_sched_are_aliases_with_their_flags() {
    let v = vs(
        "virtual_server 10.0.0.1 80 { protocol TCP\n lb_algo sh\n sh-port\n sh-fallback\n flag-3\n}\n",
    );
    assert_eq!(v.sched, "sh");
    assert_eq!(
        v.sched_flags,
        vec![SchedFlag::ShPort, SchedFlag::ShFallback, SchedFlag::Flag3]
    );
    assert_eq!(
        v.sched_flags.iter().map(|f| f.bit()).collect::<Vec<_>>(),
        vec![0x10, 0x08, 0x20]
    );
    let v = vs("virtual_server 10.0.0.1 80 { protocol TCP\n lvs_sched mh\n mh-fallback\n}\n");
    assert_eq!(v.sched, "mh");
    assert_eq!(v.sched_flags, vec![SchedFlag::MhFallback]);
    // Before the scheduler, keepalived drops them (it checks the scheduler so far).
    let l = ok("virtual_server 10.0.0.1 80 { protocol TCP\n mh-fallback\n lvs_sched mh\n}\n");
    assert!(l.config.virtual_servers[0].sched_flags.is_empty());
    assert_eq!(
        warns(&l)[0].to_string(),
        "t.conf:2: mh-fallback: only for the mh scheduler, and the scheduler so far is none (ignored, as keepalived)"
    );
    for s in [
        "rr", "wrr", "lc", "wlc", "lblc", "sh", "mh", "dh", "fo", "ovf", "lblcr", "sed", "nq",
        "twos",
    ] {
        assert_eq!(
            vs(&format!(
                "virtual_server 10.0.0.1 80 {{ protocol TCP\n lb_algo {s}\n}}\n"
            ))
            .sched,
            s
        );
    }
}

#[test]
fn scheduler_flags_for_another_scheduler_are_warned_and_dropped() {
    let l = ok("virtual_server 10.0.0.1 80 { protocol TCP\n lb_algo rr\n sh-port\n}\n");
    assert!(l.config.virtual_servers[0].sched_flags.is_empty());
    assert_eq!(
        warns(&l)[0].to_string(),
        "t.conf:3: sh-port: only for the sh scheduler, and the scheduler so far is rr (ignored, as keepalived)"
    );
}

#[test]
fn ops_needs_udp() {
    assert!(vs("virtual_server 10.0.0.1 53 {\n protocol UDP\n ops\n}\n").ops);
    let l = ok("virtual_server 10.0.0.1 53 {\n protocol TCP\n ops\n}\n");
    assert!(!l.config.virtual_servers[0].ops);
    assert!(
        warns(&l)
            .iter()
            .any(|w| w.to_string().starts_with("t.conf:3: ops:")),
        "{:?}",
        warns(&l)
    );
}

#[test]
fn forwarding_methods_and_tunnels() {
    let m = |s: &str| {
        vs(&format!(
            "virtual_server 10.0.0.1 80 {{ protocol TCP\n lb_kind {s}\n}}\n"
        ))
        .method
    };
    assert_eq!(m("NAT"), Method::Nat);
    assert_eq!(m("DR"), Method::Dr);
    assert_eq!(
        m("TUN"),
        Method::Tun {
            kind: TunKind::Ipip,
            csum: TunCsum::NoCsum
        }
    );
    assert_eq!(
        m("TUN type gue port 6080 remcsum"),
        Method::Tun {
            kind: TunKind::Gue { port: 6080 },
            csum: TunCsum::RemCsum
        }
    );
    assert_eq!(
        m("TUN type gre csum"),
        Method::Tun {
            kind: TunKind::Gre,
            csum: TunCsum::Csum
        }
    );
    let v = vs(
        "virtual_server 10.0.0.1 80 { protocol TCP\n lvs_method DR\n real_server 10.0.1.1 80 {\n  lvs_method TUN type ipip\n }\n real_server 10.0.1.2 80 {\n }\n}\n",
    );
    assert_eq!(
        v.real_servers[0].method,
        Some(Method::Tun {
            kind: TunKind::Ipip,
            csum: TunCsum::NoCsum
        })
    );
    assert_eq!(v.method_of(&v.real_servers[1]), Method::Dr);
    for (bad, why) in [
        ("TUN type gue", "gue tunnels need 'port N'"),
        ("TUN type ipip csum", "ipip tunnels have no checksum option"),
        ("TUN type gre remcsum", "gre tunnels have no remcsum option"),
        ("TUN type vxlan", "unknown tunnel type 'vxlan'"),
        ("TUN port 80", "only gue tunnels take a port"),
        ("TUN type gue port 0", "gue port 0 is outside 1..=65535"),
        ("MASQ", "unknown forwarding method 'MASQ'"),
    ] {
        let e = errors(&format!(
            "virtual_server 10.0.0.1 80 {{ protocol TCP\n lb_kind {bad}\n}}\n"
        ));
        assert!(e[0].starts_with("t.conf:2: lb_kind: "), "{e:?}");
        assert!(e[0].contains(why), "{bad}: {e:?}");
    }
}

#[test]
fn persistence() {
    let v = vs("virtual_server 10.0.0.1 80 { protocol TCP\n persistence_timeout\n}\n");
    assert_eq!(v.persistence_timeout, Some(360));
    let v = vs(
        "virtual_server 10.0.0.1 80 { protocol TCP\n persistence_timeout 50\n persistence_granularity 255.255.255.0\n persistence_engine sip\n}\n",
    );
    assert_eq!(v.persistence_timeout, Some(50));
    assert_eq!(v.persistence_granularity.as_deref(), Some("255.255.255.0"));
    assert_eq!(v.persistence_engine.as_deref(), Some("sip"));
    // Granularity alone makes the service persistent, and gives a fwmark its family.
    let v = vs("virtual_server fwmark 7 {\n persistence_granularity 64\n}\n");
    assert_eq!(v.persistence_timeout, Some(360));
    assert_eq!(v.ip_family, Some(rvs_keepalived::Family::Inet6));
    assert_eq!(
        vs("virtual_server 10.0.0.1 80 { protocol TCP\n persistence_timeout 0\n}\n")
            .persistence_timeout,
        None
    );
    let e = errors("virtual_server 10.0.0.1 80 { protocol TCP\n persistence_timeout 2678401\n}\n");
    assert_eq!(
        e,
        vec!["t.conf:2: persistence_timeout: 2678401 is outside 0..=2678400"]
    );
    let e =
        errors("virtual_server 2001:db8::1 80 { protocol TCP\n persistence_granularity 129\n}\n");
    assert!(
        e[0].starts_with("t.conf:2: persistence_granularity: IPv6 prefix length"),
        "{e:?}"
    );
    // keepalived reads a bare number for an IPv4 service as an address.
    let l =
        ok("virtual_server 10.0.0.1 80 { protocol TCP\n persistence_granularity 4294967040\n}\n");
    assert_eq!(
        l.config.virtual_servers[0]
            .persistence_granularity
            .as_deref(),
        Some("255.255.255.0")
    );
    assert!(
        warns(&l)[0]
            .to_string()
            .contains("read as the IPv4 netmask 255.255.255.0")
    );
    // A port-less address service is made persistent, as keepalived does.
    let l = ok("virtual_server 10.0.0.1 {\n protocol TCP\n}\n");
    assert_eq!(l.config.virtual_servers[0].persistence_timeout, Some(360));
    assert!(
        warns(&l)[0]
            .to_string()
            .starts_with("t.conf:1: virtual_server: no port")
    );
}

#[test]
fn protocols() {
    let p = |s: &str| {
        vs(&format!(
            "virtual_server 10.0.0.1 80 {{ protocol TCP\n protocol {s}\n}}\n"
        ))
        .protocol
    };
    assert_eq!(p("TCP"), Protocol::Tcp);
    assert_eq!(p("udp"), Protocol::Udp);
    assert_eq!(p("SCTP"), Protocol::Sctp);
    assert_eq!(
        errors("virtual_server 10.0.0.1 80 { protocol TCP\n protocol ICMP\n}\n"),
        vec!["t.conf:2: protocol: 'ICMP' is not TCP, UDP or SCTP"]
    );
}

#[test]
fn virtual_server_keywords() {
    let v = vs(r#"virtual_server 2001:db8::1 443 { protocol TCP
    delay_loop 2.5
    quorum 2
    hysteresis 1
    quorum_up "/bin/up.sh a b" root wheel
    quorum_down /bin/down.sh
    alpha
    omega
    ha_suspend
    virtualhost www.example.com
    inhibit_on_failure
    sorry_server 2001:db8::99 8443
    sorry_server_inhibit
    sorry_server_lvs_method DR
    real_server 2001:db8::10 443 { weight 2 }
    real_server 2001:db8::11 443 {
        weight 3
        inhibit_on_failure false
    }
}
"#);
    assert_eq!(v.delay_loop, Duration::from_millis(2500));
    assert_eq!((v.quorum, v.hysteresis), (2, 1));
    assert_eq!(
        v.quorum_up,
        Some(Script {
            command: "/bin/up.sh a b".into(),
            user: Some("root".into()),
            group: Some("wheel".into())
        })
    );
    assert_eq!(
        v.quorum_down.as_ref().map(|s| s.command.as_str()),
        Some("/bin/down.sh")
    );
    assert!(v.alpha && v.omega && v.ha_suspend && v.inhibit_on_failure && v.sorry_server_inhibit);
    assert_eq!(v.virtualhost.as_deref(), Some("www.example.com"));
    let s = v.sorry_server.as_ref().unwrap();
    // DR: the sorry server uses the service's port, as keepalived resets it.
    assert_eq!(
        (s.ip, s.port, s.method),
        (ip("2001:db8::99"), Some(443), Some(Method::Dr))
    );
    assert_eq!(v.ip_family, Some(rvs_keepalived::Family::Inet6));
    assert!(
        v.real_servers[0].inhibit_on_failure,
        "inherited from the virtual server"
    );
    assert!(
        !v.real_servers[1].inhibit_on_failure,
        "the real server's own wins"
    );
    assert_eq!(
        v.real_servers.iter().map(|r| r.weight).collect::<Vec<_>>(),
        vec![2, 3]
    );
}

#[test]
fn quorum_above_the_total_weight_is_reduced_as_keepalived_does() {
    let l = ok(
        "virtual_server 10.0.0.1 80 { protocol TCP\n quorum 5\n hysteresis 9\n real_server 10.0.1.1 80 {\n weight 3\n }\n}\n",
    );
    let v = &l.config.virtual_servers[0];
    assert_eq!((v.quorum, v.hysteresis), (3, 2));
    assert_eq!(warns(&l).len(), 2);
    assert!(
        warns(&l)[0]
            .to_string()
            .starts_with("t.conf:1: quorum 5 exceeds")
    );
}

#[test]
fn real_server_keywords() {
    let v = vs(r#"virtual_server 10.0.0.1 80 { protocol TCP
    weight 4
    real_server 10.0.1.1 8080 {
        uthreshold 100
        lthreshold 10
        notify_up "/bin/n.sh up"
        notify_down /bin/n.sh nobody
    }
    real_server 10.0.1.2 {
        weight 0
    }
}
"#);
    let r = &v.real_servers[0];
    assert_eq!(
        (r.port, r.weight, r.uthreshold, r.lthreshold),
        (Some(8080), 4, Some(100), Some(10))
    );
    assert_eq!(r.notify_up.as_ref().unwrap().command, "/bin/n.sh up");
    assert_eq!(
        r.notify_down.as_ref().unwrap().user.as_deref(),
        Some("nobody")
    );
    assert_eq!(
        (v.real_servers[1].port, v.real_servers[1].weight),
        (Some(80), 0)
    );
    assert_eq!(
        errors(
            "virtual_server 10.0.0.1 80 { protocol TCP\n real_server 10.0.1.1 80 {\n  weight 2147483648\n }\n}\n"
        ),
        vec!["t.conf:3: weight: 2147483648 is outside 0..=2147483647"]
    );
}

#[test]
fn dr_real_servers_take_the_service_port() {
    let l = ok(
        "virtual_server 10.0.0.1 80 { protocol TCP\n lb_kind DR\n real_server 10.0.1.1 8080 {\n }\n}\n",
    );
    assert_eq!(l.config.virtual_servers[0].real_servers[0].port, Some(80));
    assert_eq!(warns(&l).len(), 1);
    assert!(
        warns(&l)[0]
            .to_string()
            .starts_with("t.conf:3: real_server 10.0.1.1:")
    );
}

#[test]
fn duplicate_real_servers_are_dropped_with_a_warning() {
    let l = ok(
        "virtual_server 10.0.0.1 80 { protocol TCP\n real_server 10.0.1.1 80 {\n }\n real_server 10.0.1.1 {\n }\n}\n",
    );
    assert_eq!(l.config.virtual_servers[0].real_servers.len(), 1);
    assert!(
        warns(&l)[0]
            .to_string()
            .starts_with("t.conf:4: real_server 10.0.1.1: duplicate")
    );
}

#[test]
fn address_families_must_agree_unless_tunnelled() {
    let e =
        errors("virtual_server 10.0.0.1 80 { protocol TCP\n real_server 2001:db8::1 80 {\n }\n}\n");
    assert_eq!(
        e,
        vec!["t.conf:2: real_server 2001:db8::1: address family differs from the virtual server's"]
    );
    let v = vs(
        "virtual_server 10.0.0.1 80 { protocol TCP\n real_server 2001:db8::1 80 {\n  lvs_method TUN\n }\n}\n",
    );
    assert_eq!(v.real_servers.len(), 1);
    let v = vs("virtual_server fwmark 1 {\n lb_kind DR\n real_server 2001:db8::1 {\n }\n}\n");
    assert_eq!(v.ip_family, Some(rvs_keepalived::Family::Inet6));
}

#[test]
fn virtual_server_groups() {
    let l = ok(r#"virtual_server_group G {
    10.0.0.1 80
    10.0.0.5-9 80
    10.0.1.0/30
    ae00::2-9 443
    fwmark 3 inet
    fwmark 4 inet6
}
virtual_server group G {
    persistence_timeout
}
"#);
    let g = &l.config.virtual_server_groups[0];
    assert_eq!(g.name, "G");
    assert_eq!(
        g.members,
        vec![
            GroupMember::Addr {
                ip: ip("10.0.0.1"),
                port: Some(80)
            },
            GroupMember::Range {
                first: ip("10.0.0.5"),
                last: ip("10.0.0.9"),
                port: Some(80)
            },
            GroupMember::Range {
                first: ip("10.0.1.0"),
                last: ip("10.0.1.3"),
                port: None
            },
            GroupMember::Range {
                first: ip("ae00::2"),
                last: ip("ae00::9"),
                port: Some(443)
            },
            GroupMember::Fwmark {
                mark: 3,
                family: Some(rvs_keepalived::Family::Inet)
            },
            GroupMember::Fwmark {
                mark: 4,
                family: Some(rvs_keepalived::Family::Inet6)
            },
        ]
    );
    assert_eq!(l.config.virtual_servers[0].key, VsKey::Group("G".into()));
    // keepalived takes an undefined group silently: warned, and nothing to serve.
    let l = ok("virtual_server group NOPE {\n}\n");
    assert!(l.config.virtual_servers.is_empty());
    assert_eq!(
        warns(&l)[0].to_string(),
        "t.conf:1: virtual_server group NOPE: no virtual_server_group NOPE (virtual server ignored)"
    );
    // A group entry without a port makes the service persistent, as keepalived.
    let l =
        ok("virtual_server_group P {\n 10.0.0.1\n}\nvirtual_server group P {\n protocol TCP\n}\n");
    assert_eq!(l.config.virtual_servers[0].persistence_timeout, Some(360));
    assert_eq!(
        errors("virtual_server_group G {\n 10.0.0.1 80\n ::1 80\n fwmark 1\n}\n"),
        vec![
            "t.conf:1: virtual_server_group G: cannot have IPv4, IPv6 and a fwmark without family"
        ]
    );
    assert_eq!(
        errors("virtual_server_group G {\n 10.0.0.9-3 80\n}\n"),
        vec!["t.conf:2: virtual_server_group G: range '10.0.0.9-3' ends below its start"]
    );
}

#[test]
fn checker_settings_inherit_checker_then_real_then_virtual_server() {
    let v = vs(r#"virtual_server 10.0.0.1 80 { protocol TCP
    real_server 10.0.1.1 80 {
        retry 4
        alpha
        TCP_CHECK {
            delay_before_retry 2
        }
        TCP_CHECK {
            retry 0
            connect_timeout 1
            delay_loop 9
            warmup 0
            alpha no
        }
    }
    real_server 10.0.1.2 80 {
        TCP_CHECK {
        }
    }
    connect_timeout 7
    delay_loop 30
    warmup 3
}
"#);
    let c = &v.real_servers[0].checks[0].common;
    assert_eq!(
        (
            c.connect_timeout,
            c.retry,
            c.delay_before_retry,
            c.delay_loop,
            c.warmup,
            c.alpha
        ),
        (SECS(7), 4, SECS(2), SECS(30), Some(SECS(3)), true)
    );
    let c = &v.real_servers[0].checks[1].common;
    assert_eq!(
        (
            c.connect_timeout,
            c.retry,
            c.delay_before_retry,
            c.delay_loop,
            c.warmup,
            c.alpha
        ),
        (SECS(1), 0, SECS(1), SECS(9), Some(SECS(0)), false)
    );
    let c = &v.real_servers[1].checks[0].common;
    assert_eq!(
        (c.retry, c.delay_before_retry, c.alpha),
        (1, SECS(1), false)
    );
}

#[test]
fn checker_type_defaults() {
    let v = vs(r#"virtual_server 10.0.0.1 80 { protocol TCP
    delay_loop 20
    real_server 10.0.1.1 80 {
        TCP_CHECK { }
        HTTP_GET { url { path / } }
        SSL_GET { url { path / } }
        DNS_CHECK { }
        MISC_CHECK { misc_path /bin/true }
        SMTP_CHECK { }
        PING_CHECK { }
        UDP_CHECK { }
    }
}
"#);
    let d: Vec<(u32, Duration, Duration, Option<Duration>)> = v.real_servers[0]
        .checks
        .iter()
        .map(|c| {
            (
                c.common.retry,
                c.common.delay_before_retry,
                c.common.connect_timeout,
                c.common.warmup,
            )
        })
        .collect();
    let w = Some(SECS(20));
    assert_eq!(
        d,
        vec![
            (1, SECS(1), SECS(5), w),
            (1, SECS(3), SECS(5), w),
            (1, SECS(3), SECS(5), w),
            (3, SECS(20), SECS(5), w),
            (0, SECS(1), SECS(5), w),
            (1, SECS(1), SECS(5), w),
            (1, SECS(1), SECS(5), w),
            (1, SECS(1), SECS(5), w),
        ]
    );
}

#[test]
fn nb_get_retry_is_the_old_retry() {
    let l = ok(
        "virtual_server 10.0.0.1 80 { protocol TCP\n real_server 10.0.1.1 80 {\n  HTTP_GET {\n   url { path / }\n   nb_get_retry 5\n  }\n }\n}\n",
    );
    assert_eq!(
        l.config.virtual_servers[0].real_servers[0].checks[0]
            .common
            .retry,
        5
    );
    assert_eq!(
        warns(&l)[0].to_string(),
        "t.conf:5: nb_get_retry: deprecated, use retry (applied as retry)"
    );
}

#[test]
fn common_connection_options() {
    let v = vs(r#"virtual_server 10.0.0.1 80 { protocol TCP
    real_server 10.0.1.1 80 {
        TCP_CHECK {
            connect_ip 10.0.2.1
            connect_port 8080
            bindto 10.0.0.2
            bind_port 5000
            bind_if eth1
            fwmark 77
            log_all_failures
        }
    }
}
"#);
    let c = &v.real_servers[0].checks[0].common;
    assert_eq!(c.connect_ip, Some(ip("10.0.2.1")));
    assert_eq!((c.connect_port, c.bind_port), (Some(8080), Some(5000)));
    assert_eq!(c.bindto, Some(ip("10.0.0.2")));
    assert_eq!(c.bind_if.as_deref(), Some("eth1"));
    assert_eq!(c.fwmark, Some(77));
    assert!(c.log_all_failures);
    assert_eq!(
        errors(
            "virtual_server 10.0.0.1 80 { protocol TCP\n real_server 10.0.1.1 80 {\n  TCP_CHECK {\n   connect_ip 2001:db8::1\n   bindto 10.0.0.2\n  }\n }\n}\n"
        ),
        vec!["t.conf:5: connect_ip and bindto are of different address families"]
    );
}

#[test]
fn checker_log_all_failures_default_comes_from_global_defs() {
    let v = ok(
        "virtual_server 10.0.0.1 80 { protocol TCP\n real_server 10.0.1.1 80 {\n  TCP_CHECK { }\n  TCP_CHECK { log_all_failures off }\n }\n}\nglobal_defs {\n checker_log_all_failures yes\n}\n",
    );
    let c = &v.config.virtual_servers[0].real_servers[0].checks;
    assert!(c[0].common.log_all_failures);
    assert!(!c[1].common.log_all_failures);
}

#[test]
fn http_and_ssl_checks() {
    let v = vs(r#"virtual_server 10.0.0.1 443 { protocol TCP
    virtualhost vs.example
    real_server 10.0.1.1 443 {
        virtualhost rs.example
        SSL_GET {
            url {
                path /health
                digest FF20AD2481F97B1754EF3E12ECD3A9CC
                status_code 200-299 400-499 503 505
                virtualhost url.example
                regex "^OK"
                regex_no_match
            }
            url {
                path /other
            }
            http_protocol 1.1
            enable_sni
            sni_name sni.example
            fast_recovery
            virtualhost chk.example
        }
        HTTP_GET {
            url { path / }
            http_protocol 1.0C
        }
    }
    real_server 10.0.1.2 443 {
        HTTP_GET { url { path / } }
    }
}
"#);
    let CheckKind::Http(h) = &v.real_servers[0].checks[0].kind else {
        panic!()
    };
    assert!(h.tls && h.enable_sni && h.fast_recovery);
    assert_eq!(h.protocol, HttpProtocol::Http11);
    assert_eq!(h.sni_name.as_deref(), Some("sni.example"));
    assert_eq!(h.virtualhost.as_deref(), Some("chk.example"));
    let u = &h.urls[0];
    assert_eq!(u.path, "/health");
    assert_eq!(
        u.digest.as_deref(),
        Some("ff20ad2481f97b1754ef3e12ecd3a9cc")
    );
    assert_eq!(
        u.status,
        vec![(200, 299), (400, 499), (503, 503), (505, 505)]
    );
    assert_eq!(u.virtualhost.as_deref(), Some("url.example"));
    assert_eq!(u.regex.as_deref(), Some("^OK"));
    assert!(u.regex_no_match);
    assert_eq!(h.urls[1].status, vec![(200, 299)]);
    let CheckKind::Http(h) = &v.real_servers[0].checks[1].kind else {
        panic!()
    };
    assert!(!h.tls);
    assert_eq!(h.protocol, HttpProtocol::Http10Close);
    assert_eq!(
        h.virtualhost.as_deref(),
        Some("rs.example"),
        "real server's virtualhost"
    );
    let CheckKind::Http(h) = &v.real_servers[1].checks[0].kind else {
        panic!()
    };
    assert_eq!(
        h.virtualhost.as_deref(),
        Some("vs.example"),
        "virtual server's virtualhost"
    );
    for (body, line, why) in [
        (
            "HTTP_GET {\n   connect_timeout 3\n  }",
            3,
            "HTTP_GET: needs at least one url",
        ),
        (
            "HTTP_GET {\n   url { digest 00 }\n  }",
            4,
            "digest: '00' is not an MD5",
        ),
        (
            "HTTP_GET {\n   url { status_code 200 }\n  }",
            4,
            "url: missing path",
        ),
        (
            "HTTP_GET {\n   url {\n    path /\n    status_code 600-700x\n   }\n  }",
            6,
            "status_code: HTTP status",
        ),
        (
            "HTTP_GET {\n   url { path / }\n   http_protocol 2\n  }",
            5,
            "http_protocol: '2' is not",
        ),
    ] {
        let e = errors(&format!(
            "virtual_server 10.0.0.1 80 {{ protocol TCP\n real_server 10.0.1.1 80 {{\n  {body}\n }}\n}}\n"
        ));
        assert!(
            e.iter()
                .any(|m| m.starts_with(&format!("t.conf:{line}: ")) && m.contains(why)),
            "{e:?}"
        );
    }
}

#[test]
fn udp_dns_smtp_ping_misc_checks() {
    let v = vs(r#"virtual_server 10.0.0.1 53 {
    protocol UDP
    real_server 10.0.1.1 53 {
        UDP_CHECK {
            payload Ab12f 3
            require_reply 0102
            min_reply_length 2
            max_reply_length 512
        }
        UDP_CHECK { require_reply }
        DNS_CHECK {
            type aaaa
            name example.com
        }
        SMTP_CHECK { helo_name "mx.example" }
        PING_CHECK { }
        MISC_CHECK {
            misc_path "/bin/check.sh --port 53"
            misc_timeout 4
            misc_dynamic
            user nobody nogroup
        }
        MISC_CHECK {
            misc_path /bin/check.sh 'a b' c
        }
    }
}
"#);
    let c = &v.real_servers[0].checks;
    let CheckKind::Udp(u) = &c[0].kind else {
        panic!()
    };
    assert_eq!(u.payload, vec![0xab, 0x12, 0x0f, 0x03]);
    assert_eq!(u.require_reply, Some(vec![1, 2]));
    assert_eq!(
        (u.min_reply_length, u.max_reply_length),
        (Some(2), Some(512))
    );
    let CheckKind::Udp(u) = &c[1].kind else {
        panic!()
    };
    assert_eq!(u.require_reply, Some(vec![]));
    let CheckKind::Dns(d) = &c[2].kind else {
        panic!()
    };
    assert_eq!((d.qtype, d.name.as_str()), (DnsType::Aaaa, "example.com"));
    let CheckKind::Smtp(s) = &c[3].kind else {
        panic!()
    };
    assert_eq!(s.helo_name, "mx.example");
    assert_eq!(c[4].kind, CheckKind::Ping);
    let CheckKind::Misc(m) = &c[5].kind else {
        panic!()
    };
    assert_eq!(m.path, "/bin/check.sh --port 53");
    assert_eq!(m.timeout, Some(SECS(4)));
    assert!(m.dynamic);
    assert_eq!(m.user, Some(("nobody".into(), Some("nogroup".into()))));
    let CheckKind::Misc(m) = &c[6].kind else {
        panic!()
    };
    assert_eq!(m.path, "/bin/check.sh 'a b' c");
    // Defaults.
    let v = vs(
        "virtual_server 10.0.0.1 25 { protocol TCP\n real_server 10.0.1.1 25 {\n  SMTP_CHECK { }\n  DNS_CHECK { }\n }\n}\n",
    );
    let CheckKind::Smtp(s) = &v.real_servers[0].checks[0].kind else {
        panic!()
    };
    assert_eq!(s.helo_name, "smtpchecker.keepalived.org");
    let CheckKind::Dns(d) = &v.real_servers[0].checks[1].kind else {
        panic!()
    };
    assert_eq!((d.qtype, d.name.as_str()), (DnsType::Soa, "."));
    for (body, line, why) in [
        (
            "MISC_CHECK { misc_timeout 3 }",
            3,
            "MISC_CHECK: missing misc_path",
        ),
        ("DNS_CHECK { type PTR }", 3, "unknown DNS query type 'PTR'"),
        ("UDP_CHECK { payload zz }", 3, "payload: 'zz' is not hex"),
        (
            "UDP_CHECK {\n min_reply_length 9\n max_reply_length 3\n }",
            3,
            "min_reply_length is above",
        ),
    ] {
        let e = errors(&format!(
            "virtual_server 10.0.0.1 80 {{ protocol TCP\n real_server 10.0.1.1 80 {{\n  {body}\n }}\n}}\n"
        ));
        assert!(
            e.iter()
                .any(|m| m.starts_with(&format!("t.conf:{line}: ")) && m.contains(why)),
            "{e:?}"
        );
    }
}

#[test]
fn smtp_host_blocks_are_one_check_each() {
    let v = vs(r#"virtual_server 10.0.0.1 25 { protocol TCP
    real_server 10.0.1.1 25 {
        SMTP_CHECK {
            connect_timeout 10
            bindto 10.0.0.2
            host { connect_ip 10.0.1.1 }
            host {
                connect_ip 10.0.9.9
                connect_port 587
                bindto 10.0.0.3
                connect_timeout 2
            }
        }
    }
}
"#);
    let c = &v.real_servers[0].checks;
    assert_eq!(c.len(), 2);
    assert_eq!(
        (c[0].common.connect_ip, c[0].common.bindto),
        (Some(ip("10.0.1.1")), Some(ip("10.0.0.2")))
    );
    assert_eq!(
        (
            c[1].common.connect_ip,
            c[1].common.connect_port,
            c[1].common.bindto
        ),
        (Some(ip("10.0.9.9")), Some(587), Some(ip("10.0.0.3")))
    );
    assert_eq!(
        (c[0].common.connect_timeout, c[1].common.connect_timeout),
        (SECS(10), SECS(2))
    );
}

#[test]
fn misc_check_has_no_connection_options() {
    let w = warnings(
        "virtual_server 10.0.0.1 80 { protocol TCP\n real_server 10.0.1.1 80 {\n  MISC_CHECK {\n   misc_path /bin/true\n   connect_port 80\n  }\n }\n}\nglobal_defs {\n enable_script_security\n}\n",
    );
    assert_eq!(
        w,
        vec![
            "t.conf:5: MISC_CHECK: unknown keyword 'connect_port' (ignored)",
            "t.conf:10: enable_script_security: not applied: scripts run as rvsd's own user"
        ]
    );
}

#[test]
fn unsupported_and_unknown_keywords_are_warnings_naming_file_line_keyword() {
    let w = warnings(
        r#"global_defs {
    nftables_ipvs
    enable_snmp_checker
    no_such_global
    vrrp_garp_master_delay 5
    notify_fifo /run/fifo
}
virtual_server 10.0.0.1 80 { protocol TCP
    smtp_alert
    snmp_name web
    frobnicate 3
    real_server 10.0.1.1 80 {
        smtp_alert yes
        BFD_CHECK { name b }
        FILE_CHECK { track_file f }
        TCP_CHECK { bogus 1 }
        zork
    }
}
bfd_instance b {
    neighbor_ip 10.0.1.1
}
mystery_block {
}
"#,
    );
    assert_eq!(
        w,
        vec![
            "t.conf:2: global_defs: 'nftables_ipvs' is not supported by rvs yet (ignored)",
            "t.conf:3: global_defs: 'enable_snmp_checker' is not supported by rvs yet (ignored)",
            "t.conf:4: global_defs: unknown keyword 'no_such_global' (ignored)",
            "t.conf:6: global_defs: 'notify_fifo' is not supported by rvs yet (ignored)",
            "t.conf:9: smtp_alert: rvs does not send email alerts yet (ignored)",
            "t.conf:10: snmp_name: rvs has no SNMP (ignored)",
            "t.conf:11: virtual_server: unknown keyword 'frobnicate' (ignored)",
            "t.conf:13: smtp_alert: rvs does not send email alerts yet (ignored)",
            "t.conf:14: BFD_CHECK: not supported by rvs yet (checker ignored)",
            "t.conf:15: FILE_CHECK: not supported by rvs yet (checker ignored)",
            "t.conf:16: TCP_CHECK: unknown keyword 'bogus' (ignored)",
            "t.conf:17: real_server: unknown keyword 'zork' (ignored)",
            "t.conf:20: 'bfd_instance' is not supported by rvs yet (ignored)",
            "t.conf:23: unknown keyword 'mystery_block' (ignored)",
        ]
    );
}

#[test]
fn vrrp_blocks_are_kept_without_validation() {
    let l = ok(r#"vrrp_script chk {
    script "/bin/true"
    anything goes here
}
vrrp_sync_group G { group { VI_1 } }
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    unicast_peer {
        10.0.0.2
    }
    totally_unknown_vrrp_keyword 1
}
static_ipaddress {
    192.168.1.1/24 dev eth0
}
"#);
    // The VRRP blocks' insides are not validated; static_ipaddress (applied
    // by keepalived's VRRP side) is said to be kept but not applied.
    let w: Vec<String> = warns(&l).iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        [
            "t.conf:15: static_ipaddress is kept but not applied: rvs does not run keepalived's VRRP side yet"
        ]
    );
    let c = &l.config;
    assert_eq!(c.vrrp_scripts[0].name(), Some("chk"));
    assert_eq!(
        c.vrrp_sync_groups[0].get("group").unwrap().children()[0].keyword,
        "VI_1"
    );
    let vi = &c.vrrp_instances[0];
    assert_eq!((vi.name(), vi.line), (Some("VI_1"), 6));
    assert_eq!(vi.get("state").unwrap().args, vec!["MASTER"]);
    assert_eq!(
        vi.get("unicast_peer").unwrap().children()[0].keyword,
        "10.0.0.2"
    );
    assert_eq!(vi.get("unicast_peer").unwrap().children()[0].line, 11);
    assert_eq!(c.other[0].keyword, "static_ipaddress");
    assert_eq!(
        errors("vrrp_instance {\n}\n"),
        vec!["t.conf:1: vrrp_instance: missing name"]
    );
}

#[test]
fn global_defs() {
    let g = ok(r#"global_defs {
    router_id LVS_A
    lvs_timeouts tcp 900 tcpfin 120 udp 300
    lvs_sync_daemon eth1 VI_1 id 5 maxlen 1400 port 8848 ttl 2 group 224.0.0.81
    lvs_flush
    lvs_flush_on_stop VS
    notification_email {
        a@example.com
        b@example.com
    }
    notification_email_from lb@example.com
    smtp_connect_timeout 30
    smtp_helo_name lb.example
    enable_script_security
    script_user keepalived_script scripts
    vrrp_version 3
}
"#)
    .config
    .global;
    assert_eq!(g.router_id.as_deref(), Some("LVS_A"));
    assert_eq!(
        (
            g.lvs_timeouts.tcp,
            g.lvs_timeouts.tcpfin,
            g.lvs_timeouts.udp
        ),
        (Some(900), Some(120), Some(300))
    );
    let d = g.lvs_sync_daemon.unwrap();
    assert_eq!(
        (
            d.interface.as_str(),
            d.instance.as_deref(),
            d.id,
            d.maxlen,
            d.port,
            d.ttl,
            d.group
        ),
        (
            "eth1",
            Some("VI_1"),
            Some(5),
            Some(1400),
            Some(8848),
            Some(2),
            Some(ip("224.0.0.81"))
        )
    );
    assert!(g.lvs_flush && g.enable_script_security);
    assert_eq!(g.lvs_flush_on_stop, FlushOnStop::Vs);
    assert_eq!(g.notification_email, vec!["a@example.com", "b@example.com"]);
    assert_eq!(g.notification_email_from.as_deref(), Some("lb@example.com"));
    assert_eq!(g.smtp_connect_timeout, Some(SECS(30)));
    assert_eq!(
        g.script_user,
        Some(("keepalived_script".into(), Some("scripts".into())))
    );
    assert_eq!(g.other[0].keyword, "vrrp_version");
    let d = ok("global_defs {\n lvs_sync_daemon eth0 inst VI_2\n lvs_flush_on_stop\n}\n")
        .config
        .global;
    assert_eq!(d.lvs_sync_daemon.unwrap().instance.as_deref(), Some("VI_2"));
    assert_eq!(d.lvs_flush_on_stop, FlushOnStop::All);
    assert_eq!(
        errors("global_defs {\n lvs_timeouts tcp x\n}\n"),
        vec!["t.conf:2: lvs_timeouts: tcp: 'x' is not a number"]
    );
    assert_eq!(
        errors("global_defs {\n lvs_sync_daemon eth0 ttl 0\n}\n"),
        vec!["t.conf:2: lvs_sync_daemon: ttl: 0 is outside 1..=255"]
    );
}

#[test]
fn syntax_errors_name_file_line_and_why() {
    let cases: &[(&str, &str)] = &[
        (
            "virtual_server 10.0.0.1 80 { protocol TCP\n real_server 10.0.1.1 80 {\n}\n",
            "t.conf:1: '{' of 'virtual_server' is never closed",
        ),
        (
            "virtual_server 10.0.0.1 80 { protocol TCP\n}\n}\n",
            "t.conf:3: '}' without a matching '{'",
        ),
        (
            "virtual_server 10.0.0.1 80 { protocol TCP\n delay_loop\n}\n",
            "t.conf:2: delay_loop: missing time",
        ),
        (
            "virtual_server 10.0.0.1 80 { protocol TCP\n delay_loop soon\n}\n",
            "t.conf:2: delay_loop: 'soon' is not a time in seconds",
        ),
        (
            "virtual_server 10.0.0.1 80 { protocol TCP\n quorum 0\n}\n",
            "t.conf:2: quorum: 0 is outside 1..=4294967295",
        ),
        (
            "virtual_server 10.0.0.300 80 {\n}\n",
            "t.conf:1: virtual_server: '10.0.0.300' is not an IP address",
        ),
        (
            "virtual_server 10.0.0.1 70000 {\n}\n",
            "t.conf:1: virtual_server: port 70000 is outside 0..=65535",
        ),
        (
            "virtual_server 10.0.0.1 80 { protocol TCP\n lb_algo fastest\n}\n",
            "t.conf:2: lb_algo: unknown scheduler 'fastest' (one of rr|wrr|lc|wlc|lblc|sh|mh|dh|fo|ovf|lblcr|sed|nq|twos)",
        ),
        (
            "virtual_server 10.0.0.1 80 { protocol TCP\n real_server 10.0.1.1 80 {\n  weight -1\n }\n}\n",
            "t.conf:3: weight: '-1' is not a number",
        ),
        (
            "virtual_server 10.0.0.1 80 { protocol TCP\n real_server 10.0.1.1 80 {\n  alpha maybe\n }\n}\n",
            "t.conf:3: alpha: 'maybe' is not one of on|off|true|false|yes|no",
        ),
        (
            "virtual_server 10.0.0.1 80\n",
            "t.conf:1: virtual_server: needs a '{ }' block",
        ),
        (
            "virtual_server fwmark 0 {\n}\n",
            "t.conf:1: virtual_server fwmark: 0 is outside 1..=4294967295",
        ),
        (
            "virtual_server 10.0.0.1 80 { protocol TCP\n sorry_server_lvs_method DR\n}\n",
            "t.conf:2: sorry_server_lvs_method: before or without sorry_server",
        ),
        (
            "virtual_server 10.0.0.1 80 { protocol TCP\n TCP_CHECK { }\n}\n",
            "t.conf:2: TCP_CHECK: checkers go inside a real_server",
        ),
        (
            "real_server 10.0.1.1 80 {\n}\n",
            "t.conf:1: real_server outside a virtual_server",
        ),
        (
            "virtual_server 10.0.0.1 80 { protocol TCP\n virtualhost \"unterminated\n}\n",
            "t.conf:2: unterminated quoted string (missing \")",
        ),
        ("{\n}\n", "t.conf:1: '{' without a keyword before it"),
    ];
    for (text, want) in cases {
        let e = errors(text);
        assert_eq!(e[0], *want, "for:\n{text}");
    }
}

#[test]
fn one_error_rejects_everything_and_all_errors_are_listed() {
    let e = parse_str(
        "t.conf",
        "virtual_server 10.0.0.1 80 { protocol TCP\n lb_algo x\n}\nvirtual_server 10.0.0.2 80 { protocol TCP\n quorum y\n}\n",
    )
    .unwrap_err();
    assert_eq!(e.0.len(), 2);
    assert_eq!(
        e.to_string(),
        "t.conf:2: lb_algo: unknown scheduler 'x' (one of rr|wrr|lc|wlc|lblc|sh|mh|dh|fo|ovf|lblcr|sed|nq|twos)\nt.conf:5: quorum: 'y' is not a number"
    );
}

#[test]
fn comments_quotes_and_braces_on_the_next_line() {
    let v = vs(
        "# comment\n! another\nvirtual_server 10.0.0.1 80   # trailing\n{\n  lb_algo rr ! bang\n  real_server 10.0.1.1 80\n  {\n    notify_up \"/bin/a # not a comment\"\n  }\n}\n",
    );
    assert_eq!(v.sched, "rr");
    assert_eq!(
        v.real_servers[0].notify_up.as_ref().unwrap().command,
        "/bin/a # not a comment"
    );
    assert_eq!(v.line, 3);
    assert_eq!(v.real_servers[0].line, 6);
}

#[test]
fn parameters_are_substituted() {
    let v = vs(r#"$VIP=10.0.0.1
$PORT=80
$ALGO=wrr
virtual_server $VIP ${PORT} {
    lb_algo $ALGO
    virtualhost ${VIP}.nip.io
    notify_unknown $UNDEFINED
}
"#);
    assert_eq!(
        v.key,
        VsKey::Addr {
            ip: ip("10.0.0.1"),
            port: Some(80)
        }
    );
    assert_eq!(v.sched, "wrr");
    assert_eq!(v.virtualhost.as_deref(), Some("10.0.0.1.nip.io"));
}

#[test]
fn parameters_are_recursive_at_use_time_and_multi_line() {
    let l = ok(r#"$BASE=10.0.${SUB}
$RS= \
    real_server ${BASE}.${N} 80 { \
        weight ${N} \
    }
virtual_server 10.0.0.1 80 { protocol TCP
    $SUB=1
    $N=1
    $RS
    $N=2
    $SUB=2
    $RS
}
"#);
    let v = &l.config.virtual_servers[0];
    let got: Vec<(IpAddr, u32, u32)> = v
        .real_servers
        .iter()
        .map(|r| (r.ip, r.weight, r.line))
        .collect();
    // Lines of expanded text are the line of the use.
    assert_eq!(got, vec![(ip("10.0.1.1"), 1, 9), (ip("10.0.2.2"), 2, 12)]);
}

#[test]
fn a_self_referencing_parameter_is_an_error() {
    let e = errors("$A=x $A\nvirtual_server 10.0.0.1 80 { protocol TCP\n lb_algo $A\n}\n");
    assert!(
        e[0].starts_with("t.conf:3: parameter substitution"),
        "{e:?}"
    );
}

#[test]
fn predefined_parameters() {
    let v = vs("virtual_server 10.0.0.1 80 { protocol TCP\n virtualhost a${_HASH}b${_BANG}c\n}\n");
    assert_eq!(v.virtualhost.as_deref(), Some("a#b!c"));
    let l = parse_str_with(
        "t.conf",
        "virtual_server 10.0.0.1 80 { protocol TCP\n virtualhost ${_INSTANCE}\n}\n",
        &Options {
            config_id: Some("lb1".into()),
        },
    )
    .unwrap();
    assert_eq!(
        l.config.virtual_servers[0].virtualhost.as_deref(),
        Some("lb1")
    );
}

#[test]
fn conditional_lines_follow_the_config_id() {
    let text = r#"global_defs {
@main   router_id main_router
@backup router_id backup_router
}
$IF_MAIN=@main
virtual_server 10.0.0.1 80 { protocol TCP
    @main lb_algo rr
    @^main lb_algo lc
    $IF_MAIN quorum 1
    real_server 10.0.1.1 80 { }
}
"#;
    let with = |id: Option<&str>| {
        parse_str_with(
            "t.conf",
            text,
            &Options {
                config_id: id.map(String::from),
            },
        )
        .unwrap()
        .config
    };
    let c = with(Some("main"));
    assert_eq!(c.global.router_id.as_deref(), Some("main_router"));
    assert_eq!(c.virtual_servers[0].sched, "rr");
    let c = with(Some("backup"));
    assert_eq!(c.global.router_id.as_deref(), Some("backup_router"));
    assert_eq!(c.virtual_servers[0].sched, "lc");
    // No config id: no @name line, every @^name line.
    let c = with(None);
    assert_eq!(c.global.router_id, None);
    assert_eq!(c.virtual_servers[0].sched, "lc");
}

#[test]
fn sequence_blocks_are_rejected_not_dropped() {
    let e = errors("~SEQ(N, 1, 3) real_server 10.0.1.$N 80 { }\n");
    assert_eq!(
        e,
        vec!["t.conf:1: ~SEQ blocks are not supported by rvs yet"]
    );
}

#[test]
fn relative_includes_need_a_file() {
    let e = errors("include other.conf\n");
    assert!(
        e[0].starts_with("t.conf:1: include other.conf: a relative include needs"),
        "{e:?}"
    );
}

#[test]
fn require_reply_wildcards_are_warned_and_relaxed() {
    let l = ok(
        "virtual_server 10.0.0.1 53 {\n protocol UDP\n real_server 10.0.1.1 53 {\n  UDP_CHECK {\n   require_reply 01xX\n  }\n }\n}\n",
    );
    let CheckKind::Udp(u) = &l.config.virtual_servers[0].real_servers[0].checks[0].kind else {
        panic!()
    };
    assert_eq!(u.require_reply, Some(vec![]));
    assert!(
        warns(&l)[0]
            .to_string()
            .starts_with("t.conf:5: require_reply: X wildcard")
    );
}

#[test]
fn groups_are_found_by_name() {
    let l = ok("virtual_server_group A {\n 10.0.0.1 80\n}\nvirtual_server group A {\n}\n");
    let VsKey::Group(n) = &l.config.virtual_servers[0].key else {
        panic!()
    };
    assert_eq!(l.config.group(n).unwrap().line, 1);
    assert!(l.config.group("B").is_none());
}

#[test]
fn the_same_service_twice_is_an_error() {
    assert_eq!(
        errors(
            "virtual_server 10.0.0.1 80 { protocol TCP\n}\nvirtual_server 10.0.0.1 80 { protocol TCP\n}\n"
        ),
        vec!["t.conf:3: virtual_server: the same service as the one at t.conf:1"]
    );
    // Another protocol is another service.
    let l = ok(
        "virtual_server 10.0.0.1 53 {\n protocol UDP\n}\nvirtual_server 10.0.0.1 53 {\n protocol TCP\n}\n",
    );
    assert_eq!(l.config.virtual_servers.len(), 2);
}

#[test]
fn messages_come_in_file_order() {
    // global_defs is read before virtual servers, yet its error comes later.
    let e = parse_str(
        "t.conf",
        "virtual_server 10.0.0.1 80 { protocol TCP\n quorum x\n}\nglobal_defs {\n router_id\n}\n",
    )
    .unwrap_err();
    assert_eq!(e.0.iter().map(|d| d.line).collect::<Vec<_>>(), vec![2, 5]);
}

#[test]
fn keys_methods_and_protocols_display_as_keepalived_writes_them() {
    let k = |t: &str| {
        vs(&format!("{t} {{\n persistence_timeout\n}}\n"))
            .key
            .to_string()
    };
    assert_eq!(k("virtual_server 10.0.0.1 80"), "10.0.0.1:80");
    assert_eq!(k("virtual_server 2001:db8::1 80"), "[2001:db8::1]:80");
    assert_eq!(k("virtual_server 10.0.0.1"), "10.0.0.1");
    assert_eq!(k("virtual_server fwmark 9"), "fwmark 9");
    for m in [
        "NAT",
        "DR",
        "TUN",
        "TUN type gue port 6080 csum",
        "TUN type gre remcsum",
        "TUN type gre",
    ] {
        let text = format!("virtual_server 10.0.0.1 80 {{ protocol TCP\n lb_kind {m}\n}}\n");
        match parse_str("t.conf", &text) {
            Ok(l) => assert_eq!(l.config.virtual_servers[0].method.to_string(), m),
            Err(e) => assert_eq!(m, "TUN type gre remcsum", "{e}"),
        }
    }
    assert_eq!(Protocol::Sctp.to_string(), "SCTP");
}

#[test]
fn keepalived_1x_names() {
    let l = ok(
        "global_defs {\n lvs_id OLD\n}\nvirtual_server 10.0.0.1 80 { protocol TCP\n nat_mask 255.255.255.0\n}\n",
    );
    assert_eq!(l.config.global.router_id.as_deref(), Some("OLD"));
    assert_eq!(
        warns(&l)[0].to_string(),
        "t.conf:5: nat_mask: obsolete keepalived 1.x keyword (ignored)"
    );
}

#[test]
fn random_is_warned_once_and_left_as_written() {
    let l = ok(
        "$A=x\nvirtual_server 10.0.0.1 80 { protocol TCP\n virtualhost \"$A${_RANDOM}\"\n quorum_up \"/bin/q $A ${_RANDOM 1 9}\"\n}\nglobal_defs {\n enable_script_security\n}\n",
    );
    let v = &l.config.virtual_servers[0];
    assert_eq!(
        v.virtualhost.as_deref(),
        Some("$A${_RANDOM}"),
        "no whitespace after $A: not replaced"
    );
    assert_eq!(
        v.quorum_up.as_ref().unwrap().command,
        "/bin/q x ${_RANDOM 1 9}"
    );
    // 7: enable_script_security is not applied.
    let w: Vec<u32> = warns(&l).iter().map(|w| w.line).collect();
    assert_eq!(w, vec![3, 4, 7]);
}

#[test]
fn the_host_config_id_is_the_short_host_name() {
    let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") else {
        println!("skipped: no /proc/sys/kernel/hostname");
        return;
    };
    let short = h.trim().split('.').next().unwrap().to_string();
    assert_eq!(
        Options::host_config_id().config_id.as_deref(),
        Some(short.as_str())
    );
    let l = parse_str_with(
        "t.conf",
        &format!("global_defs {{\n@{short} router_id me\n}}\n"),
        &Options::host_config_id(),
    )
    .unwrap();
    assert_eq!(l.config.global.router_id.as_deref(), Some("me"));
}

#[test]
fn scripts_without_script_security_are_warned_once() {
    let w = warnings(
        "virtual_server 10.0.0.1 80 { protocol TCP\n quorum_up /bin/up\n real_server 10.0.1.1 80 {\n  notify_up /bin/n\n  MISC_CHECK {\n   misc_path /bin/true\n  }\n }\n}\n",
    );
    assert_eq!(
        w,
        vec![
            "t.conf:2: quorum_up: scripts are configured but global_defs has no enable_script_security (keepalived reports a SECURITY VIOLATION)"
        ]
    );
}

#[test]
fn extra_arguments_are_warned_as_keepalived_ignores_them() {
    let l = ok("virtual_server 10.0.0.1 80 { protocol TCP\n ha_suspend yes\n delay_loop 6 s\n}\n");
    let v = &l.config.virtual_servers[0];
    assert!(v.ha_suspend);
    assert_eq!(v.delay_loop, SECS(6));
    assert_eq!(
        warns(&l)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec![
            "t.conf:2: ha_suspend: extra argument 'yes' ignored (as keepalived does)",
            "t.conf:3: delay_loop: extra argument 's' ignored (as keepalived does)",
        ]
    );
}

#[test]
fn timer_ranges_are_keepalived_s() {
    let v = vs(
        "virtual_server 10.0.0.1 80 { protocol TCP\n delay_loop 99999999999\n connect_timeout 4294.967295\n}\n",
    );
    assert_eq!(v.delay_loop, SECS(99_999_999_999));
    assert_eq!(
        errors("virtual_server 10.0.0.1 80 { protocol TCP\n connect_timeout 4295\n}\n"),
        vec!["t.conf:2: connect_timeout: 4295 is above the maximum 4294.967295 s"]
    );
}

#[test]
fn missing_scheduler_and_method_are_warned() {
    let l = ok("virtual_server 10.0.0.1 80 {\n protocol TCP\n real_server 10.0.1.1 80 {\n }\n}\n");
    assert_eq!(
        l.warnings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec![
            "t.conf:1: virtual_server: no lb_algo/lvs_sched, so wlc (as keepalived)",
            "t.conf:1: virtual_server: no lb_kind/lvs_method, so NAT (as keepalived)",
        ]
    );
    // Every real server with its own method: no default needed, no warning.
    let l = ok(
        "virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_algo rr\n real_server 10.0.1.1 80 {\n  lvs_method DR\n }\n}\n",
    );
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

#[test]
fn sorry_server_settings_apply_to_the_sorry_server_so_far() {
    let l = ok(
        "virtual_server 10.0.0.1 80 { protocol TCP\n sorry_server_inhibit\n sorry_server 10.0.9.9 80\n}\n",
    );
    let v = &l.config.virtual_servers[0];
    assert!(v.sorry_server.is_some() && !v.sorry_server_inhibit);
    assert!(
        warns(&l)[0]
            .to_string()
            .starts_with("t.conf:2: sorry_server_inhibit: before or without sorry_server")
    );
}

#[test]
fn a_dr_sorry_server_takes_the_service_port_with_a_warning() {
    let l = ok(
        "virtual_server 10.0.0.1 80 { protocol TCP\n lb_kind DR\n sorry_server 10.0.9.9 8080\n}\n",
    );
    assert_eq!(
        l.config.virtual_servers[0]
            .sorry_server
            .as_ref()
            .unwrap()
            .port,
        Some(80)
    );
    assert!(
        warns(&l)[0]
            .to_string()
            .starts_with("t.conf:1: sorry_server: DR/TUN")
    );
}

#[test]
fn group_ports_and_dr_real_servers() {
    let l = ok(
        "virtual_server_group G {\n 10.0.0.1 80\n fwmark 3\n}\nvirtual_server group G {\n protocol TCP\n lb_algo rr\n lb_kind DR\n real_server 10.0.2.1 8080 {\n }\n}\n",
    );
    let w: Vec<String> = warns(&l).iter().map(ToString::to_string).collect();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].starts_with(
        "t.conf:9: real_server 10.0.2.1: port ignored for the group's fwmark entries"
    ));
    assert!(
        w[1].starts_with(
            "t.conf:9: real_server 10.0.2.1: port 8080 differs from the group's port 80"
        )
    );
}

#[test]
fn repeats_keepalived_keeps_the_first_of() {
    let l = ok(
        "virtual_server 10.0.0.1 80 { protocol TCP\n quorum_up /bin/a\n quorum_up /bin/b\n real_server 10.0.1.1 80 {\n  DNS_CHECK {\n   name a.example\n   name b.example\n  }\n }\n}\nglobal_defs {\n enable_script_security\n}\n",
    );
    let v = &l.config.virtual_servers[0];
    assert_eq!(v.quorum_up.as_ref().unwrap().command, "/bin/a");
    let CheckKind::Dns(d) = &v.real_servers[0].checks[0].kind else {
        panic!()
    };
    assert_eq!(d.name, "a.example");
    // 12: enable_script_security is not applied.
    let lines: Vec<u32> = warns(&l).iter().map(|w| w.line).collect();
    assert_eq!(lines, vec![3, 7, 12]);
}

#[test]
fn lb_kind_is_not_a_real_server_keyword() {
    let l = ok(
        "virtual_server 10.0.0.1 80 { protocol TCP\n lb_kind NAT\n real_server 10.0.1.1 80 {\n  lb_kind DR\n }\n}\n",
    );
    assert_eq!(l.config.virtual_servers[0].real_servers[0].method, None);
    assert_eq!(
        warns(&l)[0].to_string(),
        "t.conf:4: real_server: unknown keyword 'lb_kind' (ignored)"
    );
}
