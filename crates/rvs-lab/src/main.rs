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
            eprintln!("usage: rvs-lab demo | check | down");
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
    // Ctrl-C / SIGTERM: remove this run's namespaces, then exit.
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
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("rvs-lab: {e}");
            return 1;
        }
    };
    println!(
        "Building the lab: a client, a director running rvsd, 3 real servers (network namespaces)..."
    );
    let t = match Topology::build(&exe, 3) {
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
