//! `-S` output read back by `-R` gives the same services and real servers.

use proptest::prelude::*;
use rvs_ipvsadm::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>()
            .prop_filter("not 0", |a| *a != 0)
            .prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<u128>()
            .prop_filter("not v4-like", |a| *a >> 96 != 0)
            .prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ]
}

fn service() -> impl Strategy<Value = (Service, Vec<Dest>)> {
    (
        prop_oneof![
            (
                prop_oneof![Just(TCP), Just(UDP), Just(SCTP)],
                addr(),
                1u16..
            )
                .prop_map(|(proto, addr, port)| ServiceKey::Addr { proto, addr, port }),
            (1u32.., any::<bool>()).prop_map(|(mark, ipv6)| ServiceKey::Fwmark { mark, ipv6 }),
        ],
        prop_oneof![Just("rr"), Just("wlc"), Just("sh"), Just("mh"), Just("lc")],
        any::<bool>(),
        1u32..86400,
        any::<u8>(),
        prop::collection::vec(
            (
                addr(),
                1u16..,
                prop_oneof![
                    Just(Forward::Masq),
                    Just(Forward::Route),
                    Just(Forward::Tunnel)
                ],
                0i32..65536,
            ),
            0..4,
        ),
    )
        .prop_map(|(key, sched, persistent, timeout, maskbits, dests)| {
            let v6 = key.is_ipv6();
            let netmask = if !persistent {
                if v6 { 128 } else { 0xffff_ffff }
            } else if v6 {
                u32::from(maskbits % 128) + 1
            } else {
                u32::MAX << (u32::from(maskbits) % 32)
            };
            let svc = Service {
                key,
                scheduler: sched.into(),
                flags: if persistent { SVC_F_PERSISTENT } else { 0 },
                timeout: if persistent { timeout } else { 0 },
                netmask,
                pe_name: String::new(),
            };
            let vport = match key {
                ServiceKey::Addr { port, .. } => Some(port),
                ServiceKey::Fwmark { .. } => None,
            };
            let dests = dests
                .into_iter()
                .filter(|(a, _, f, _)| *f == Forward::Tunnel || a.is_ipv6() == v6)
                .map(|(a, p, f, w)| Dest {
                    addr: a,
                    // DR and TUN use the virtual port, as ipvsadm forces it.
                    port: match (f, vport) {
                        (Forward::Masq, _) | (_, None) => p,
                        (_, Some(v)) => v,
                    },
                    fwd: f,
                    weight: w,
                    u_threshold: 0,
                    l_threshold: 0,
                    tun_type: 0,
                    tun_port: 0,
                    tun_flags: 0,
                })
                .collect();
            (svc, dests)
        })
}

proptest! {
    #[test]
    fn save_then_restore_is_identity(svcs in prop::collection::vec(service(), 0..5)) {
        let snap = Snapshot {
            conn_tab_size: 4096,
            services: svcs.iter().map(|(s, ds)| ServiceEntry {
                service: s.clone(),
                stats: Stats::default(),
                dests: ds.iter().map(|d| DestEntry { dest: d.clone(), activeconns: 0, inactconns: 0, persistconns: 0, stats: Stats::default() }).collect(),
            }).collect(),
            conns: vec![],
            timeouts: (900, 120, 300),
            daemons: vec![],
        };
        let inv = Invocation { command: Command::Save, list: ListOptions { numeric: true, nosort: true, ..ListOptions::default() } };
        let text = render(&inv, &snap, &Numeric).unwrap();
        let cmds = parse_restore("ipvsadm", &text, &NoResolve).unwrap();
        let mut i = 0;
        for (s, ds) in &svcs {
            prop_assert_eq!(&cmds[i].command, &Command::AddService(s.clone()));
            i += 1;
            for d in ds {
                prop_assert_eq!(&cmds[i].command, &Command::AddDest(s.key, d.clone()));
                i += 1;
            }
        }
        prop_assert_eq!(i, cmds.len());
    }
}
