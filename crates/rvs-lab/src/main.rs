//! `rvs-lab demo | check | down`: the network lab (see the library docs).
//! `rvs-lab demo` builds the lab, puts rvsd in front of three real servers
//! with a NAT, a DR and a TUN service, sends real HTTP and UDP traffic from
//! a client, prints the per-server distribution and `ipvsadm -L -n --stats`,
//! and tears everything down (also on failure or Ctrl-C).

use rvs_lab::{Topology, VIP_DR, VIP_NAT, VIP_TUN, distribution, rip, unavailable};
use std::process::exit;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("__rvsd") => exit(rvsd::cli::main(
            std::iter::once("rvsd".to_string()).chain(args[2..].iter().cloned()),
        )),
        Some("__decap") => exit(decap(&args[2..])),
        Some("demo") => exit(demo()),
        Some("bench") => exit(bench()),
        Some("check") => {
            match unavailable() {
                None => println!("the lab can run here"),
                Some(why) => println!("the lab cannot run here: {why}"),
            }
            exit(0)
        }
        Some("down") => {
            down_all();
            exit(0)
        }
        _ => {
            eprintln!("usage: rvs-lab demo | bench | check | down");
            exit(2)
        }
    }
}

/// Removes every lab namespace (`rvslab-*`), killing what runs inside.
fn down_all() {
    let list =
        rvs_lab::run(std::process::Command::new("ip").args(["netns", "list"])).unwrap_or_default();
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if name.starts_with("rvslab-") {
            teardown(name);
        }
    }
}

fn teardown(name: &str) {
    if let Ok(pids) = rvs_lab::run(std::process::Command::new("ip").args(["netns", "pids", name])) {
        for p in pids.split_whitespace() {
            let _ = std::process::Command::new("kill").arg("-9").arg(p).status();
        }
    }
    let _ = std::process::Command::new("ip")
        .args(["netns", "del", name])
        .status();
}

fn decap(args: &[String]) -> i32 {
    let mut iface = None;
    let mut ports = Vec::new();
    let mut i = 0;
    while i + 1 < args.len() {
        match args[i].as_str() {
            "--interface" => iface = Some(args[i + 1].clone()),
            "--gue-port" => ports.extend(args[i + 1].parse::<u16>().ok()),
            _ => {}
        }
        i += 2;
    }
    let Some(iface) = iface else { return 2 };
    let mut d = match rvs_bpf::Decap::load() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("decap: {e}");
            return 1;
        }
    };
    for p in ports {
        let _ = d.add_gue_port(p);
    }
    if let Err(e) = d.attach(&iface, true) {
        eprintln!("decap: {e}");
        return 1;
    }
    println!("decap attached to {iface}");
    loop {
        std::thread::park();
    }
}

fn demo() -> i32 {
    if let Some(why) = unavailable() {
        eprintln!("rvs-lab: {why}");
        return 1;
    }
    cleanup_on_signal();
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("rvs-lab: {e}");
            return 1;
        }
    };
    demo_with(&exe)
}

/// Ctrl-C / SIGTERM: remove this run's namespaces, then exit.
fn cleanup_on_signal() {
    let pid = std::process::id();
    if let Ok(mut signals) = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ]) {
        std::thread::spawn(move || {
            if signals.forever().next().is_some() {
                let list = rvs_lab::run(std::process::Command::new("ip").args(["netns", "list"]))
                    .unwrap_or_default();
                for line in list.lines() {
                    let name = line.split_whitespace().next().unwrap_or("");
                    if name.starts_with(&format!("rvslab-{pid}-")) {
                        teardown(name);
                    }
                }
                exit(130);
            }
        });
    }
}

fn demo_with(exe: &std::path::Path) -> i32 {
    println!(
        "Building the lab: a client, a director running rvsd, 3 real servers (network namespaces)..."
    );
    let t = match Topology::build(exe, 3) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("rvs-lab: {e}");
            return 1;
        }
    };
    let mut cmds: Vec<String> = vec![
        format!("-A -t {VIP_NAT}:80 -s rr"),
        format!("-A -u {VIP_NAT}:53 -s rr"),
        format!("-A -t {VIP_DR}:80 -s wrr"),
        format!("-A -t {VIP_TUN}:80 -s rr"),
    ];
    for k in 1..=3 {
        cmds.push(format!("-a -t {VIP_NAT}:80 -r {}:8080 -m", rip(k)));
        cmds.push(format!("-a -u {VIP_NAT}:53 -r {}:5353 -m", rip(k)));
        cmds.push(format!("-a -t {VIP_DR}:80 -r {} -g -w {k}", rip(k)));
        let tun = match k {
            1 => "--tun-type ipip",
            2 => "--tun-type gue --tun-port 6080",
            _ => "--tun-type gre",
        };
        cmds.push(format!("-a -t {VIP_TUN}:80 -r {} -i {tun}", rip(k)));
    }
    println!("Configuring rvsd with ipvsadm commands:");
    for c in &cmds {
        println!("  ipvsadm {c}");
    }
    let lines: Vec<&str> = cmds.iter().map(String::as_str).collect();
    if let Err(e) = t.ipvsadm(&lines) {
        eprintln!("rvs-lab: {e}");
        return 1;
    }
    let mut failed = 0;
    for (what, url, n) in [
        (
            "NAT (VIP:80 -> RIP:8080, rr)",
            format!("http://{VIP_NAT}/"),
            30,
        ),
        ("DR (wrr, weights 1:2:3)", format!("http://{VIP_DR}/"), 60),
        ("TUN (rr; ipip, gue, gre)", format!("http://{VIP_TUN}/"), 30),
    ] {
        let bodies = t.http(&url, n);
        let dist = distribution(&bodies);
        failed += bodies.iter().filter(|b| b.starts_with("ERR")).count();
        println!("\n{what}: {n} HTTP requests, one connection each");
        for (server, count) in &dist {
            println!("  {server:<12} {count:>4}");
        }
    }
    let mut udp = Vec::new();
    for _ in 0..6 {
        udp.push(t.udp(VIP_NAT, 53).unwrap_or_else(|| "ERR timeout".into()));
    }
    failed += udp.iter().filter(|b| b.starts_with("ERR")).count();
    println!("\nUDP through NAT (VIP:53 -> RIP:5353): {:?}", udp);
    println!("\n$ ipvsadm -L -n --stats");
    print!("{}", t.list("-L -n --stats").unwrap_or_else(|e| e));
    println!("\n$ ipvsadm -L -n");
    print!("{}", t.list("-L -n").unwrap_or_else(|e| e));
    println!("\nTearing the lab down.");
    drop(t);
    if failed > 0 {
        eprintln!("rvs-lab: {failed} requests failed");
        return 1;
    }
    0
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields after the name: state is 0, utime 11, stime 12 (proc(5)).
    (ticks(11) + ticks(12)) / 100.0
}

fn packets(t: &Topology) -> u64 {
    let Ok(rvsd::proto::Response::Snapshot(s)) =
        rvsd::server::request(&t.socket, &rvsd::proto::Request::Snapshot)
    else {
        return 0;
    };
    s.services
        .iter()
        .map(|x| x.stats.inpkts + x.stats.outpkts)
        .sum()
}

fn wrk(t: &Topology, url: &str, close: bool) -> f64 {
    let mut args = vec!["wrk", "-t1", "-c20", "-d5s"];
    if close {
        args.extend(["-H", "Connection: close"]);
    }
    args.push(url);
    let out = t.lab.exec("c", &args).unwrap_or_default();
    out.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Side-by-side HTTP benchmark in one run on the lab: straight to a real
/// server (routed by the director's kernel), rvs NAT and DR, nftables DNAT,
/// HAProxy in tcp mode; wrk keep-alive and a new connection per request;
/// rvsd's CPU time per forwarded packet.
fn bench() -> i32 {
    if let Some(why) = unavailable() {
        eprintln!("rvs-lab: {why}");
        return 1;
    }
    cleanup_on_signal();
    let Ok(exe) = std::env::current_exe() else {
        return 1;
    };
    let t = match Topology::build_with(&exe, 2, rvs_lab::Http::Nginx) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("rvs-lab: {e}");
            return 1;
        }
    };
    let mut cmds = vec![
        format!("-A -t {VIP_NAT}:80 -s rr"),
        format!("-A -t {VIP_DR}:80 -s rr"),
    ];
    for k in 1..=2 {
        cmds.push(format!("-a -t {VIP_NAT}:80 -r {}:8080 -m", rip(k)));
        cmds.push(format!("-a -t {VIP_DR}:80 -r {} -g", rip(k)));
    }
    let lines: Vec<&str> = cmds.iter().map(String::as_str).collect();
    if let Err(e) = t.ipvsadm(&lines) {
        eprintln!("rvs-lab: {e}");
        return 1;
    }
    // nftables DNAT (to port 80) and HAProxy (to 8081) on their own VIPs:
    // rvs steers only replies from the NAT service's port 8080.
    let nft = format!(
        "table ip labnat {{\n chain pre {{\n  type nat hook prerouting priority -100;\n  ip daddr 10.10.0.110 tcp dport 80 dnat to numgen inc mod 2 map {{ 0 : {}, 1 : {} }}\n }}\n}}",
        rip(1),
        rip(2)
    );
    let nft_file = t.lab.dir.join("labnat.nft");
    if std::fs::write(&nft_file, format!("{nft}\n")).is_err() {
        return 1;
    }
    let nft_path = nft_file.display().to_string();
    let setup = [
        vec!["ip", "addr", "add", "10.10.0.110/32", "dev", "lo"],
        vec!["ip", "addr", "add", "10.10.0.111/32", "dev", "lo"],
        vec!["nft", "-f", nft_path.as_str()],
    ];
    for a in &setup {
        if let Err(e) = t.lab.exec("d", a) {
            eprintln!("rvs-lab: {e}");
            return 1;
        }
    }
    let hap = t.lab.dir.join("haproxy.cfg");
    let _ = std::fs::write(
        &hap,
        format!(
            "global\n  maxconn 8000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\nfrontend f\n  bind 10.10.0.111:80\n  default_backend b\nbackend b\n  balance roundrobin\n  server s1 {}:8081\n  server s2 {}:8081\n",
            rip(1),
            rip(2)
        ),
    );
    let hap_s = hap.display().to_string();
    let mut t = t;
    if let Err(e) = t
        .lab
        .spawn("d", &["haproxy", "-f", &hap_s, "-db"], Some("haproxy.log"))
    {
        eprintln!("rvs-lab: {e}");
        return 1;
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    println!(
        "wrk -t1 -c20 -d5s from the client namespace; 2 nginx real servers (1 worker each); 2 vCPUs shared by everything\n"
    );
    println!("{:<34} {:>12} {:>16}", "path", "keep-alive", "conn/request");
    let targets = [
        (
            "straight to a real server",
            format!("http://{}:8081/", rip(1)),
            false,
        ),
        (
            "rvs NAT (AF_XDP, copy mode)",
            format!("http://{VIP_NAT}/"),
            true,
        ),
        (
            "rvs DR (AF_XDP, copy mode)",
            format!("http://{VIP_DR}/"),
            true,
        ),
        (
            "nftables DNAT (numgen)",
            "http://10.10.0.110/".to_string(),
            false,
        ),
        (
            "HAProxy 2.6 tcp mode",
            "http://10.10.0.111/".to_string(),
            false,
        ),
    ];
    for (name, url, is_rvs) in targets {
        let (c0, p0) = (cpu_secs(t.rvsd_pid), packets(&t));
        let ka = wrk(&t, &url, false);
        let nc = wrk(&t, &url, true);
        let (c1, p1) = (cpu_secs(t.rvsd_pid), packets(&t));
        print!("{name:<34} {ka:>12.0} {nc:>16.0}");
        if is_rvs && p1 > p0 {
            print!(
                "   rvsd CPU {:.2} us/packet ({} packets)",
                (c1 - c0) * 1e6 / (p1 - p0) as f64,
                p1 - p0
            );
        }
        println!();
    }
    0
}
