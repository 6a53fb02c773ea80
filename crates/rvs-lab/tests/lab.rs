//! End-to-end through rvsd in network namespaces the test creates itself:
//! real HTTP and UDP from a client through NAT (port mapping), DR and TUN
//! (ipip, gue, gre) to three real servers, and IPv6 NAT and DR. Skipped, with the reason, when
//! not root. Nothing is attached to the root namespace's interfaces, and no
//! namespace is left behind.

use rvs_lab::{
    Topology, VIP_DR, VIP_NAT, VIP_TUN, VIP6_DR, VIP6_NAT, distribution, rip, rip6, unavailable,
};

#[test]
fn nat_dr_tun_real_traffic() {
    if let Some(why) = unavailable() {
        eprintln!("SKIPPED nat_dr_tun_real_traffic: {why}");
        return;
    }
    let xdp_before = rvs_lab::root_ns_xdp();
    {
        let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_rvs-lab"));
        let t = Topology::build(&exe, 3).unwrap();
        let mut cmds = vec![
            format!("-A -t {VIP_NAT}:80 -s rr"),
            format!("-A -u {VIP_NAT}:53 -s rr"),
            format!("-A -t {VIP_DR}:80 -s wrr"),
            format!("-A -t {VIP_TUN}:80 -s rr"),
        ];
        for k in 1..=3 {
            cmds.push(format!("-a -t {VIP_NAT}:80 -r {}:8080 -m", rip(k)));
            cmds.push(format!("-a -u {VIP_NAT}:53 -r {}:5353 -m", rip(k)));
            cmds.push(format!("-a -t {VIP_DR}:80 -r {} -g -w {k}", rip(k)));
            let tun = [
                "--tun-type ipip",
                "--tun-type gue --tun-port 6080",
                "--tun-type gre",
            ][k - 1];
            cmds.push(format!("-a -t {VIP_TUN}:80 -r {} -i {tun}", rip(k)));
        }
        cmds.push(format!("-A -t [{VIP6_NAT}]:80 -s rr"));
        cmds.push(format!("-A -t [{VIP6_DR}]:80 -s rr"));
        for k in 1..=3 {
            cmds.push(format!("-a -t [{VIP6_NAT}]:80 -r [{}]:8080 -m", rip6(k)));
            cmds.push(format!("-a -t [{VIP6_DR}]:80 -r [{}]:80 -g", rip6(k)));
        }
        let lines: Vec<&str> = cmds.iter().map(String::as_str).collect();
        t.ipvsadm(&lines).unwrap();

        // NAT with port mapping 80 -> 8080, rr: 10 each.
        let d = distribution(&t.http(&format!("http://{VIP_NAT}/"), 30));
        assert_eq!(d.get("rs1").copied(), Some(10), "{d:?}");
        assert_eq!(d.get("rs2").copied(), Some(10), "{d:?}");
        assert_eq!(d.get("rs3").copied(), Some(10), "{d:?}");
        // DR, wrr 1:2:3 over 60 connections: exactly 10/20/30 (a wrr cycle is 6).
        let d = distribution(&t.http(&format!("http://{VIP_DR}/"), 60));
        assert_eq!(
            (d.get("rs1"), d.get("rs2"), d.get("rs3")),
            (Some(&10), Some(&20), Some(&30)),
            "{d:?}"
        );
        // TUN: each real server behind a different tunnel type.
        let d = distribution(&t.http(&format!("http://{VIP_TUN}/"), 30));
        assert_eq!(
            (d.get("rs1"), d.get("rs2"), d.get("rs3")),
            (Some(&10), Some(&10), Some(&10)),
            "{d:?}"
        );
        // Weights over many connections: wrr 1:2:3 over 1,200 connections
        // gives exactly 200/400/600 (within 1% of the ratio is the bar).
        // Distinct client ports: with the kernel's ephemeral choice a port
        // can come back while its DR entry is in FIN_WAIT, and that SYN
        // joins the old entry unscheduled, as in IPVS (`http_from`).
        let d = distribution(&t.http_from("", VIP_DR, 80, 1200, 10000));
        assert_eq!(
            (d.get("rs1"), d.get("rs2"), d.get("rs3")),
            (Some(&200), Some(&400), Some(&600)),
            "{d:?}"
        );
        // Persistence with -M 255.255.255.0 keeps the client network on one server.
        t.ipvsadm(&[&format!("-E -t {VIP_TUN}:80 -s rr -p 300 -M 255.255.255.0")])
            .unwrap();
        let d = distribution(&t.http(&format!("http://{VIP_TUN}/"), 12));
        assert_eq!(d.len(), 1, "persistence broken: {d:?}");
        // IPv6 VIPs, NAT (with port mapping) and DR.
        let d = distribution(&t.http(&format!("http://[{VIP6_NAT}]/"), 9));
        assert_eq!(
            (d.get("rs1"), d.get("rs2"), d.get("rs3")),
            (Some(&3), Some(&3), Some(&3)),
            "{d:?}"
        );
        let d = distribution(&t.http(&format!("http://[{VIP6_DR}]/"), 9));
        assert_eq!(
            (d.get("rs1"), d.get("rs2"), d.get("rs3")),
            (Some(&3), Some(&3), Some(&3)),
            "{d:?}"
        );
        // UDP through NAT, answers come back from the VIP.
        let answers: Vec<String> = (0..3).filter_map(|_| t.udp(VIP_NAT, 53)).collect();
        let mut sorted = answers.clone();
        sorted.sort();
        assert_eq!(sorted, ["rs1", "rs2", "rs3"], "{answers:?}");
        // The listing shows what happened.
        let stats = t.list("-L -n --stats").unwrap();
        assert!(
            stats.contains("TCP  10.10.0.100:80                     30"),
            "{stats}"
        );
        let conns = t.list("-L -n -c").unwrap();
        assert!(
            conns.contains("TIME_WAIT") || conns.contains("CLOSE"),
            "{conns}"
        );
        assert_eq!(rvs_lab::own_namespaces(), 5);
    }
    assert_eq!(rvs_lab::own_namespaces(), 0, "namespaces left behind");
    assert_eq!(
        rvs_lab::root_ns_xdp(),
        xdp_before,
        "an XDP program appeared on a root-namespace interface"
    );
}
