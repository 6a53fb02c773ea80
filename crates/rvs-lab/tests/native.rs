//! rvsd with `[daemon] xdp_mode = "native"`: the steering program in the
//! veth driver's own XDP hook instead of generic (skb) mode, and the same
//! real traffic as in generic mode: HTTP through NAT (port mapping), DR and
//! TUN, UDP through NAT. Skipped, with the reason, when not root. Nothing is
//! attached to the root namespace's interfaces, and no namespace is left
//! behind.

use rvs_lab::{Http, Topology, VIP_DR, VIP_NAT, VIP_TUN, distribution, rip, unavailable};

#[test]
fn native_mode_forwards_nat_dr_tun() {
    if let Some(why) = unavailable() {
        eprintln!("SKIPPED native_mode_forwards_nat_dr_tun: {why}");
        return;
    }
    let xdp_before = rvs_lab::root_ns_xdp();
    {
        let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_rvs-lab"));
        let t =
            Topology::build_full(&exe, 3, Http::Python, "[daemon]\nxdp_mode = \"native\"").unwrap();
        // The program sits in the driver hook of every served interface.
        for i in ["d0", "d1", "d2", "d3"] {
            let l = t.lab.exec("d", &["ip", "-d", "link", "show", i]).unwrap();
            assert!(
                l.contains("prog/xdp ") && !l.contains("xdpgeneric"),
                "{i} not in native mode: {l}"
            );
        }
        let mut cmds = vec![
            format!("-A -t {VIP_NAT}:80 -s rr"),
            format!("-A -u {VIP_NAT}:53 -s rr"),
            format!("-A -t {VIP_DR}:80 -s rr"),
            format!("-A -t {VIP_TUN}:80 -s rr"),
        ];
        for k in 1..=3 {
            cmds.push(format!("-a -t {VIP_NAT}:80 -r {}:8080 -m", rip(k)));
            cmds.push(format!("-a -u {VIP_NAT}:53 -r {}:5353 -m", rip(k)));
            cmds.push(format!("-a -t {VIP_DR}:80 -r {} -g", rip(k)));
            cmds.push(format!("-a -t {VIP_TUN}:80 -r {} -i", rip(k)));
        }
        let lines: Vec<&str> = cmds.iter().map(String::as_str).collect();
        t.ipvsadm(&lines).unwrap();
        for vip in [VIP_NAT, VIP_DR, VIP_TUN] {
            let d = distribution(&t.http(&format!("http://{vip}/"), 30));
            assert_eq!(
                (d.get("rs1"), d.get("rs2"), d.get("rs3")),
                (Some(&10), Some(&10), Some(&10)),
                "{vip}: {d:?}"
            );
        }
        let mut answers: Vec<String> = (0..3).filter_map(|_| t.udp(VIP_NAT, 53)).collect();
        answers.sort();
        assert_eq!(answers, ["rs1", "rs2", "rs3"]);
    }
    assert_eq!(rvs_lab::own_namespaces(), 0, "namespaces left behind");
    assert_eq!(
        rvs_lab::root_ns_xdp(),
        xdp_before,
        "an XDP program appeared on a root-namespace interface"
    );
}
