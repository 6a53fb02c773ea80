//! keepalived.conf in rvsd: each virtual_server (and group member) becomes
//! the ipvsadm table keepalived would have built; errors name FILE:LINE
//! and nothing is applied; every sample configuration Debian's keepalived
//! package ships passes `rvsd --check`.

use rvs_ipvsadm::{Numeric, Parsed, parse, render};
use rvsd::control::Control;
use rvsd::health::{Evaluator, Health};
use rvsd::keepalived::parse_str;

/// `ipvsadm -S -n` of the table a configuration gives with every check up.
fn saved(text: &str) -> String {
    let dcfg = rvs_engine::DirectorConfig::default();
    let k = parse_str("test.conf", text, &dcfg).unwrap_or_else(|e| panic!("{e}"));
    let (ops, _) = Evaluator::default().evaluate(&k.plan, &Health::default());
    let mut c = Control::new(dcfg, vec![]);
    c.reload(&ops).unwrap();
    let d = c.model().director();
    let argv: Vec<String> = ["ipvsadm", "-S", "-n"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let Ok(Parsed::Run(inv)) = parse(&argv, &rvs_ipvsadm::NoResolve) else {
        panic!("-S -n")
    };
    let snap = rvsd::convert::snapshot(&d, rvs_types::Instant::ZERO);
    render(&inv, &snap, &Numeric).unwrap()
}

#[test]
fn virtual_servers_become_ipvsadm_services() {
    let text = "\
global_defs {
  lvs_timeouts tcp 7200 tcpfin 60 udp 30
}
virtual_server 192.0.2.10 80 {
  protocol TCP
  lb_algo sh
  sh-port
  lb_kind NAT
  persistence_timeout 600
  persistence_granularity 255.255.255.0
  real_server 10.0.0.1 8080 {
    weight 3
    uthreshold 100
  }
  real_server 10.0.0.2 8080 {
  }
}
virtual_server fwmark 7 {
  lb_algo wrr
  lb_kind DR
  real_server 10.0.0.3 80 {
    weight 2
  }
}
virtual_server 2001:db8::10 443 {
  lb_algo mh
  mh-fallback
  lb_kind TUN type gue port 6080
  protocol UDP
  real_server 2001:db8::1 443 {
  }
}
";
    let s = saved(text);
    for want in [
        "-A -t 192.0.2.10:80 -s sh -p 600 -M 255.255.255.0 -b sh-port",
        "-a -t 192.0.2.10:80 -r 10.0.0.1:8080 -m -w 3",
        "-a -t 192.0.2.10:80 -r 10.0.0.2:8080 -m -w 1",
        "-A -f 7 -s wrr",
        "-a -f 7 -r 10.0.0.3:0 -g -w 2",
    ] {
        assert!(s.contains(want), "missing {want:?} in\n{s}");
    }
    assert!(
        s.contains("-A -u [2001:db8::10]:443 -s mh -b mh-fallback"),
        "{s}"
    );
    assert!(
        s.contains(
            "-a -u [2001:db8::10]:443 -r [2001:db8::1]:443 -i -w 1 --tun-type gue --tun-port 6080"
        ),
        "{s}"
    );
    // ipvsadm -S does not save thresholds; the plan holds them.
    let k = parse_str("t.conf", text, &rvs_engine::DirectorConfig::default()).unwrap();
    assert_eq!(k.plan.services[0].reals[0].dest.u_threshold, 100);
    assert_eq!(k.plan.timeouts, Some((7200, 60, 30)));
}

#[test]
fn groups_expand_to_one_service_per_member_sharing_checks() {
    let text = "\
virtual_server_group web {
  192.0.2.10-12 80
  fwmark 9
}
virtual_server group web {
  protocol TCP
  lb_algo rr
  lb_kind DR
  real_server 10.0.0.1 80 {
    TCP_CHECK {
      connect_timeout 2
    }
  }
}
";
    let dcfg = rvs_engine::DirectorConfig::default();
    let k = parse_str("g.conf", text, &dcfg).unwrap();
    assert_eq!(k.plan.services.len(), 4);
    assert_eq!(
        rvsd::health::checks(&k.plan).len(),
        1,
        "one check shared by 4 services"
    );
    let s = saved(text);
    for vip in ["192.0.2.10", "192.0.2.11", "192.0.2.12"] {
        assert!(s.contains(&format!("-A -t {vip}:80 -s rr")), "{s}");
    }
    assert!(s.contains("-A -f 9 -s rr"), "{s}");
}

#[test]
fn errors_name_the_line_and_nothing_is_applied() {
    let dcfg = rvs_engine::DirectorConfig::default();
    let e = parse_str(
        "bad.conf",
        "virtual_server 192.0.2.10 80 {\n  lb_algo rr\n  real_server 10.0.0.1 80 {\n    weight 1\n  }\n}\nvirtual_server 192.0.2.10 80 {\n  lb_algo rr\n}\n",
        &dcfg,
    )
    .unwrap_err();
    assert!(e.starts_with("bad.conf:7: "), "{e}");
    let e = parse_str(
        "bad.conf",
        "virtual_server 192.0.2.10 80 {\n  lb_kind NAT\n  real_server 10.0.0.1 80 {\n  }\n  real_server 2001:db8::1 80 {\n  }\n}\n",
        &dcfg,
    )
    .unwrap_err();
    assert!(e.starts_with("bad.conf:5: "), "{e}");
    let e = parse_str(
        "bad.conf",
        "virtual_server 192.0.2.10 80 {\n  lb_algo rr\n",
        &dcfg,
    )
    .unwrap_err();
    assert!(e.starts_with("bad.conf:"), "{e}");
}

#[test]
fn sorry_server_and_quorum_are_planned() {
    let dcfg = rvs_engine::DirectorConfig::default();
    let k = parse_str(
        "s.conf",
        "virtual_server 192.0.2.10 80 {\n  quorum 2\n  hysteresis 1\n  sorry_server 10.9.9.9 8080\n  quorum_down \"/bin/true down\"\n  real_server 10.0.0.1 80 {\n    weight 3\n    inhibit_on_failure\n  }\n}\n",
        &dcfg,
    )
    .unwrap();
    let s = &k.plan.services[0];
    assert_eq!((s.quorum, s.hysteresis), (2, 1));
    assert_eq!(s.sorry.as_ref().map(|d| d.port), Some(8080));
    assert_eq!(s.quorum_down.as_deref(), Some("/bin/true down"));
    assert!(s.reals[0].inhibit_on_failure);
}

#[test]
fn every_debian_sample_passes_check() {
    let dir = std::path::Path::new("/usr/share/doc/keepalived/samples");
    let Ok(entries) = std::fs::read_dir(dir) else {
        eprintln!(
            "SKIPPED every_debian_sample_passes_check: keepalived's samples are not installed (apt-get install keepalived; scripts/test does)"
        );
        return;
    };
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("keepalived.conf"))
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "only {} samples in {}",
        files.len(),
        dir.display()
    );
    for f in &files {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rvsd"))
            .env("RVS_LOG", "warn")
            .args(["--check", "--config-format", "keepalived", "--config"])
            .arg(f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.starts_with("configuration OK"),
            "{}: {said}",
            f.display()
        );
        let warned = String::from_utf8_lossy(&out.stderr);
        for w in warned.lines() {
            assert!(
                w.starts_with(&format!("{}:", f.display())) && w.contains(": warning: "),
                "a warning without FILE:LINE: {w}"
            );
        }
    }
}

fn table(sock: &std::path::Path) -> String {
    match rvsd::server::request(sock, &rvsd::proto::Request::Snapshot).unwrap() {
        rvsd::proto::Response::Snapshot(s) => format!("{:?}", s.services),
        other => panic!("{other:?}"),
    }
}

#[test]
fn daemon_runs_keepalived_and_a_bad_reload_changes_nothing() {
    use std::time::{Duration, Instant};
    let dir = std::env::temp_dir().join(format!("rvsd-ka-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("keepalived.conf");
    let good = "virtual_server 192.0.2.10 80 {\n  lb_algo rr\n  lb_kind NAT\n  real_server 10.0.0.1 8080 {\n    weight 2\n  }\n}\n";
    std::fs::write(&conf, good).unwrap();
    let sock = dir.join("rvsd.sock");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .env("RVS_LOG", "warn")
        .arg("--config")
        .arg(&conf)
        .arg("--socket")
        .arg(&sock)
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !sock.exists() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = table(&sock);
    assert!(
        before.contains("192.0.2.10") && before.contains("10.0.0.1"),
        "{before}"
    );
    std::fs::write(
        &conf,
        "virtual_server 192.0.2.10 80 {\n  lb_algo bogus\n}\n",
    )
    .unwrap();
    match rvsd::server::request(&sock, &rvsd::proto::Request::Reload).unwrap() {
        rvsd::proto::Response::Error { message, .. } => {
            assert!(message.contains("keepalived.conf:2: lb_algo"), "{message}")
        }
        other => panic!("a bad file was accepted: {other:?}"),
    }
    assert_eq!(table(&sock), before, "a refused reload changed the table");
    // A good one: only the difference (a second real server) is applied.
    std::fs::write(
        &conf,
        good.replace("  }\n}\n", "  }\n  real_server 10.0.0.2 8080 {\n  }\n}\n"),
    )
    .unwrap();
    match rvsd::server::request(&sock, &rvsd::proto::Request::Reload).unwrap() {
        rvsd::proto::Response::Done => {}
        other => panic!("{other:?}"),
    }
    let after = table(&sock);
    assert!(after.contains("10.0.0.2"), "{after}");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn expire_nodest_conn_and_nodest_are_per_service_choices() {
    use rvs_engine::NoDest;
    let dcfg = rvs_engine::DirectorConfig::default();
    let k = parse_str(
        "x.conf",
        "virtual_server 192.0.2.10 53 {\n  protocol UDP\n  expire_nodest_conn\n  real_server 10.0.0.1 53 {\n  }\n}\n\
         virtual_server 192.0.2.10 80 {\n  expire_nodest_conn off\n  real_server 10.0.0.1 80 {\n  }\n}\n\
         virtual_server 192.0.2.10 81 {\n  real_server 10.0.0.1 81 {\n  }\n}\n\
         virtual_server 192.0.2.10 82 {\n  nodest keep\n  real_server 10.0.0.1 82 {\n  }\n}\n\
         virtual_server 192.0.2.10 83 {\n  nodest drop\n  real_server 10.0.0.1 83 {\n  }\n}\n\
         virtual_server 192.0.2.10 84 {\n  nodest expire\n  real_server 10.0.0.1 84 {\n  }\n}\n\
         virtual_server 192.0.2.10 85 {\n  expire_nodest_conn on\n  real_server 10.0.0.1 85 {\n  }\n}\n",
        &dcfg,
    )
    .unwrap();
    let got: Vec<Option<NoDest>> = k.plan.services.iter().map(|s| s.cfg.nodest).collect();
    assert_eq!(
        got,
        [
            Some(NoDest::Expire),
            Some(NoDest::Drop),
            None,
            Some(NoDest::Keep),
            Some(NoDest::Drop),
            Some(NoDest::Expire),
            Some(NoDest::Expire),
        ]
    );
    // Accepted as they are: no warning about either keyword (the others
    // warn about keepalived's defaults for what these files leave out).
    assert!(
        !k.warnings.iter().any(|w| w.contains("nodest")),
        "{:?}",
        k.warnings
    );
    // Both in one virtual_server, or a word that is not a policy: errors
    // at their line.
    let e = parse_str(
        "x.conf",
        "virtual_server 192.0.2.10 80 {\n  nodest keep\n  expire_nodest_conn off\n  real_server 10.0.0.1 80 {\n  }\n}\n",
        &dcfg,
    )
    .unwrap_err();
    assert!(
        e.contains("x.conf:3:") && e.contains("already given"),
        "{e}"
    );
    let e = parse_str(
        "x.conf",
        "virtual_server 192.0.2.10 80 {\n\n  nodest flush\n  real_server 10.0.0.1 80 {\n  }\n}\n",
        &dcfg,
    )
    .unwrap_err();
    assert!(
        e.contains("x.conf:3:") && e.contains("keep|drop|expire"),
        "{e}"
    );
}

#[test]
fn checker_settings_the_probes_cannot_run_are_errors_and_port_zero_warns() {
    let dcfg = rvs_engine::DirectorConfig::default();
    let e = parse_str(
        "c.conf",
        "virtual_server 192.0.2.10 80 {\n  protocol TCP\n  real_server 10.0.0.1 80 {\n    HTTP_GET {\n      url {\n        path /\n        regex \"(?=look-ahead)\"\n      }\n    }\n  }\n}\n",
        &dcfg,
    )
    .unwrap_err();
    assert!(e.starts_with("c.conf:3: HTTP_GET: "), "{e}");
    let k = parse_str(
        "f.conf",
        "virtual_server fwmark 5 {\n  lb_kind DR\n  real_server 10.0.0.1 80 {\n    TCP_CHECK {\n    }\n  }\n  real_server 10.0.0.2 80 {\n    TCP_CHECK {\n      connect_port 80\n    }\n  }\n}\n",
        &dcfg,
    )
    .unwrap();
    let port0: Vec<&String> = k.warnings.iter().filter(|w| w.contains("port 0")).collect();
    assert_eq!(port0.len(), 1, "{:?}", k.warnings);
    assert!(
        port0[0].starts_with("f.conf:3: warning: real_server 10.0.0.1"),
        "{port0:?}"
    );
}

#[test]
fn config_id_selects_conditional_lines() {
    let dir = std::env::temp_dir().join(format!("rvsd-cid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("k.conf");
    std::fs::write(
        &conf,
        "virtual_server 192.0.2.10 80 {\n  protocol TCP\n  @lvs1 real_server 10.0.0.1 80 {\n  @lvs1 }\n  @lvs2 real_server 10.0.0.2 80 {\n  @lvs2 }\n}\n",
    )
    .unwrap();
    let reals = |id: &str| {
        let opts = rvs_keepalived::Options {
            config_id: Some(id.into()),
        };
        let k = rvsd::keepalived::load_with(&conf, &rvs_engine::DirectorConfig::default(), &opts)
            .unwrap();
        k.plan.services[0]
            .reals
            .iter()
            .map(|r| r.dest.addr.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(reals("lvs1"), ["10.0.0.1"]);
    assert_eq!(reals("lvs2"), ["10.0.0.2"]);
    let _ = std::fs::remove_dir_all(&dir);
}
