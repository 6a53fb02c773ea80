//! Command lines as ipvsadm 1.31 parses them, with its exact messages.

use rvs_ipvsadm::*;
use std::net::IpAddr;

fn argv(s: &str) -> Vec<String> {
    std::iter::once("ipvsadm".to_string())
        .chain(s.split_whitespace().map(str::to_string))
        .collect()
}

fn run(s: &str) -> Invocation {
    match parse(&argv(s), &NoResolve) {
        Ok(Parsed::Run(i)) => i,
        other => panic!("{s}: {other:?}"),
    }
}

fn err(s: &str) -> (String, i32) {
    match parse(&argv(s), &NoResolve) {
        Err(e) => (e.message, e.exit_code),
        Ok(p) => panic!("{s}: accepted as {p:?}"),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn add_service_with_defaults_and_options() {
    let i = run("-A -t 207.175.44.110:80 -s rr");
    let Command::AddService(s) = i.command else {
        panic!()
    };
    assert_eq!(
        s.key,
        ServiceKey::Addr {
            proto: TCP,
            addr: ip("207.175.44.110"),
            port: 80
        }
    );
    assert_eq!(
        (s.scheduler.as_str(), s.flags, s.netmask),
        ("rr", 0, 0xffff_ffff)
    );
    // Default scheduler wlc, -p without a value is 300 s, -M a dotted mask.
    let Command::AddService(s) = run("-A -u 10.0.0.1:53 -p -M 255.255.255.0").command else {
        panic!()
    };
    assert_eq!(
        (s.scheduler.as_str(), s.timeout, s.netmask),
        ("wlc", 300, 0xffff_ff00)
    );
    assert_eq!(s.flags, SVC_F_PERSISTENT);
    // -p with a value; clustered short options (-At).
    let Command::AddService(s) =
        run("-At 10.0.0.1:443 -p 600 -s sh -b sh-port,sh-fallback").command
    else {
        panic!()
    };
    assert_eq!(
        (s.timeout, s.flags),
        (600, SVC_F_PERSISTENT | SVC_F_SCHED1 | SVC_F_SCHED2)
    );
    // IPv6 service with a prefix netmask; long options with '='.
    let Command::AddService(s) =
        run("--add-service --tcp-service=[2001:db8::80]:80 -p -M 64").command
    else {
        panic!()
    };
    assert_eq!(
        s.key,
        ServiceKey::Addr {
            proto: TCP,
            addr: ip("2001:db8::80"),
            port: 80
        }
    );
    assert_eq!(s.netmask, 64);
    // fwmark service, IPv6 fwmark, one-packet scheduling.
    assert_eq!(
        run("-A -f 1 -s lc").command,
        Command::AddService(Service {
            key: ServiceKey::Fwmark {
                mark: 1,
                ipv6: false
            },
            scheduler: "lc".into(),
            flags: 0,
            timeout: 0,
            netmask: 0xffff_ffff,
            pe_name: String::new(),
        })
    );
    let Command::AddService(s) = run("-A -f 2 -6 -o").command else {
        panic!()
    };
    assert_eq!(
        (s.key, s.flags, s.netmask),
        (
            ServiceKey::Fwmark {
                mark: 2,
                ipv6: true
            },
            SVC_F_ONEPACKET,
            128
        )
    );
}

#[test]
fn real_servers_and_forwarding_methods() {
    let Command::AddDest(k, d) = run("-a -t 10.0.0.1:80 -r 192.168.1.2:8080 -m -w 3").command
    else {
        panic!()
    };
    assert_eq!(
        k,
        ServiceKey::Addr {
            proto: TCP,
            addr: ip("10.0.0.1"),
            port: 80
        }
    );
    assert_eq!(
        (d.addr, d.port, d.fwd, d.weight),
        (ip("192.168.1.2"), 8080, Forward::Masq, 3)
    );
    // DR is the default and forces the virtual port.
    let Command::AddDest(_, d) = run("-a -t 10.0.0.1:80 -r 192.168.1.2:8080").command else {
        panic!()
    };
    assert_eq!((d.port, d.fwd, d.weight), (80, Forward::Route, 1));
    // A real server without a port takes the virtual port.
    let Command::AddDest(_, d) = run("-a -t 10.0.0.1:80 -r 192.168.1.2 -m").command else {
        panic!()
    };
    assert_eq!(d.port, 80);
    // Tunnels with GUE, thresholds.
    let Command::AddDest(_, d) = run("-a -t 10.0.0.1:80 -r 192.168.1.2 -i --tun-type gue --tun-port 6080 --tun-csum -x 100 -y 50").command
    else {
        panic!()
    };
    assert_eq!(
        (d.fwd, d.tun_type, d.tun_port, d.tun_flags),
        (Forward::Tunnel, TUN_GUE, 6080, TUN_F_CSUM)
    );
    assert_eq!((d.u_threshold, d.l_threshold), (100, 50));
    // Tunnelled real servers may be of the other family.
    let Command::AddDest(_, d) = run("-a -t 10.0.0.1:80 -r 2001:db8::5 -i").command else {
        panic!()
    };
    assert_eq!(d.addr, ip("2001:db8::5"));
    assert_eq!(
        run("-d -t 10.0.0.1:80 -r 192.168.1.2").command,
        Command::DelDest(
            ServiceKey::Addr {
                proto: TCP,
                addr: ip("10.0.0.1"),
                port: 80
            },
            ip("192.168.1.2"),
            80
        )
    );
}

#[test]
fn list_set_zero_and_friends() {
    let i = run("-L -n");
    assert_eq!(i.command, Command::List(None));
    assert!(i.list.numeric);
    let i = run("-Ln --stats --exact");
    assert!(i.list.stats && i.list.exact && i.list.numeric);
    let i = run("-l -c -n");
    assert!(i.list.connections);
    assert_eq!(
        run("-L -t 10.0.0.1:80").command,
        Command::List(Some(ServiceKey::Addr {
            proto: TCP,
            addr: ip("10.0.0.1"),
            port: 80
        }))
    );
    assert_eq!(
        run("--set 900 120 300").command,
        Command::SetTimeouts {
            tcp: 900,
            tcpfin: 120,
            udp: 300
        }
    );
    assert_eq!(run("-Z").command, Command::Zero(None));
    assert_eq!(run("-C").command, Command::Clear);
    assert_eq!(run("-S -n").command, Command::Save);
    assert!(run("-L --timeout").list.timeout);
    // No arguments at all lists the table.
    assert_eq!(
        parse(&["ipvsadm".to_string()], &NoResolve).unwrap(),
        Parsed::Run(Invocation {
            command: Command::List(None),
            list: ListOptions::default()
        })
    );
    let Parsed::Help(h) = parse(&argv("-h"), &NoResolve).unwrap() else {
        panic!()
    };
    assert!(h.starts_with("ipvsadm v1.31"));
    assert!(h.contains("  ipvsadm -A|E virtual-service [-s scheduler]"));
}

#[test]
fn errors_match_ipvsadm() {
    let two = |m: &str| (m.to_string(), 2);
    assert_eq!(
        err("-A -t 10.0.0.1:80 -r 10.0.0.2"),
        two("Illegal 'real-server' option with the 'add-service' command")
    );
    assert_eq!(
        err("-a -t 10.0.0.1:80"),
        two("You need to supply the 'real-server' option for the 'add-server' command")
    );
    assert_eq!(
        err("-A -t 10.0.0.1"),
        two("Zero port specified for non-persistent service")
    );
    assert_eq!(
        err("-A -t 10.0.0.1:53 -o"),
        two("One-Packet Scheduling is only for UDP virtual services")
    );
    // "300" is a valid inet_aton address (0.0.1.44), as in ipvsadm; a bad host is not.
    assert_eq!(
        err("-A -t bad..host:80"),
        two("illegal virtual server address[:port] specified")
    );
    // A bracketed IPv6 address needs its port, as in parse_service.
    assert_eq!(
        err("-a -t 10.0.0.1:80 -r [2001:db8::5] -i"),
        two("illegal real server address[:port] specified")
    );
    assert_eq!(
        err("-A -t 10.0.0.1:80 -p 0"),
        two("invalid timeout value `0' specified")
    );
    assert_eq!(
        err("-a -t 10.0.0.1:80 -r 10.0.0.2 -w 70000"),
        two("illegal weight specified")
    );
    assert_eq!(
        err("-A -t 10.0.0.1:80 -s rr -s wrr"),
        two("multiple 'scheduler' options specified")
    );
    assert_eq!(
        err("-A -t 10.0.0.1:80 -b sh-port"),
        two("incompatible scheduler flag `sh-port'")
    );
    assert_eq!(
        err("-A -t 10.0.0.1:80 -b bogus"),
        two("invalid scheduler flag `bogus'")
    );
    assert_eq!(
        err("-a -t 10.0.0.1:80 -r 10.0.0.2 -m --tun-type gue"),
        two("Tunnel options conflict with forward method")
    );
    assert_eq!(
        err("-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gue"),
        two("You need to supply the 'tun-port' option for the 'gue' tunnel type")
    );
    assert_eq!(
        err("-a -t 10.0.0.1:80 -r 2001:db8::5 -m"),
        two("Different address family is allowed only for tunneling servers")
    );
    assert_eq!(
        err("-L -c --stats"),
        two("options conflicts in the list command")
    );
    assert_eq!(
        err("-L -c -t 10.0.0.1:80"),
        two(
            "The option 'service-address' conflicts with the 'connection' option in the 'list' command"
        )
    );
    assert_eq!(
        err("--set 900 120"),
        two("--set option requires 3 timeout values")
    );
    assert_eq!(err("-C extra"), two("unexpected argument extra"));
    assert_eq!(err("-A -6 -f 1"), two("-6 used before -f\n"));
    assert_eq!(err("-A -f 0"), two("invalid fwmark value `0' specified"));
    assert_eq!(
        err("--start-daemon sideways"),
        two("illegal start-daemon parameter specified")
    );
    // popt-level errors exit with ipvsadm's -1 (255).
    assert_eq!(
        err("-t 10.0.0.1:80 -A"),
        (
            "Try `ipvsadm -h' or 'ipvsadm --help' for more information.".to_string(),
            255
        )
    );
    assert_eq!(
        err("-A --bogus"),
        ("--bogus: unknown option".to_string(), 255)
    );
    assert_eq!(err("-A -t"), ("-t: missing argument".to_string(), 255));
    assert_eq!(err("-A -t 10.0.0.1:80 -L"), two("invalid option `-L'"));
}

#[test]
fn inet_aton_forms() {
    assert_eq!(inet_aton("10.1.2.3"), Some("10.1.2.3".parse().unwrap()));
    assert_eq!(inet_aton("10.258"), Some("10.0.1.2".parse().unwrap()));
    assert_eq!(inet_aton("0x0a.0.0.1"), Some("10.0.0.1".parse().unwrap()));
    assert_eq!(inet_aton("010.0.0.1"), Some("8.0.0.1".parse().unwrap()));
    assert_eq!(inet_aton("167772161"), Some("10.0.0.1".parse().unwrap()));
    assert_eq!(inet_aton("256.0.0.1"), None);
    assert_eq!(inet_aton("1.2.3.4.5"), None);
    assert_eq!(inet_aton("a.b"), None);
}
