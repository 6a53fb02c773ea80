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
        Some("bench") => exit(bench(&args[2..])),
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
            eprintln!(
                "usage: rvs-lab demo | bench [--seconds N] [--udp-rate RATE|off] [--only wrk|iperf3] | check | down"
            );
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

/// rvsd's Prometheus address inside the director namespace (the bench
/// reads the dataplane's queue counters there).
const METRICS: &str = "127.0.0.1:9469";

/// Frames the dataplane could not transmit (TX ring or UMEM full), summed
/// over its queues, from rvsd's metrics.
fn tx_full(t: &Topology) -> Option<u64> {
    let script = format!(
        "import urllib.request\nprint(urllib.request.urlopen('http://{METRICS}/metrics', timeout=2).read().decode())"
    );
    let out = ns_run(t, "d", 5, &["python3", "-c", &script]);
    let v: Vec<u64> = out
        .lines()
        .filter(|l| l.starts_with("rvs_queue_tx_full"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .map(|x| x as u64)
        .collect();
    (!v.is_empty()).then(|| v.iter().sum())
}

/// What rvsd spent on one run.
#[derive(Clone, Copy, Debug)]
struct Cost {
    /// µs of rvsd CPU time per forwarded packet.
    us_per_packet: f64,
    packets: u64,
    /// Frames the dataplane dropped for a full TX ring or UMEM.
    tx_full: Option<u64>,
}

/// rvsd's CPU time and forwarded packets around `f`; the cost only when
/// packets moved.
fn rvsd_cost<R>(t: &Topology, f: impl FnOnce() -> R) -> (R, Option<Cost>) {
    let (c0, p0, d0) = (cpu_secs(t.rvsd_pid), packets(t), tx_full(t));
    let r = f();
    let (c1, p1, d1) = (cpu_secs(t.rvsd_pid), packets(t), tx_full(t));
    let cost = (p1 > p0).then(|| Cost {
        us_per_packet: (c1 - c0) * 1e6 / (p1 - p0) as f64,
        packets: p1 - p0,
        tx_full: d0.zip(d1).map(|(a, b)| b.saturating_sub(a)),
    });
    (r, cost)
}

/// Runs `args` in lab namespace `ns` under `timeout` (killed `limit`
/// seconds in, SIGKILL 2 s later); stdout whatever the exit status.
fn ns_run(t: &Topology, ns: &str, limit: u32, args: &[&str]) -> String {
    let limit = limit.to_string();
    std::process::Command::new("ip")
        .args(["netns", "exec", &t.lab.ns(ns), "timeout", "-k", "2", &limit])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn wrk(t: &Topology, url: &str, close: bool, secs: u32) -> f64 {
    let d = format!("-d{secs}s");
    let mut args = vec!["wrk", "-t1", "-c20", d.as_str()];
    if close {
        args.extend(["-H", "Connection: close"]);
    }
    args.push(url);
    ns_run(t, "c", secs + 15, &args)
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The text of the first value of `"key"` in `json` that is an object,
/// from its `{` on (iperf3's JSON: the interval sums have `"end"` as a
/// number, the summary has it as an object).
fn object_after<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\"");
    let mut from = 0;
    while let Some(i) = json[from..].find(&pat) {
        let rest = json[from + i + pat.len()..].trim_start();
        if let Some(v) = rest.strip_prefix(':').map(str::trim_start)
            && v.starts_with('{')
        {
            return Some(v);
        }
        from += i + pat.len();
    }
    None
}

/// The first number value of `"key"` in `json`.
fn number_after(json: &str, key: &str) -> Option<f64> {
    let pat = format!("\"{key}\"");
    let i = json.find(&pat)?;
    let v = json[i + pat.len()..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let end = v
        .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
        .unwrap_or(v.len());
    v[..end].parse().ok()
}

/// The top-level `"error"` string of iperf3's JSON, if any.
fn iperf_error(json: &str) -> Option<String> {
    let i = json.find("\"error\"")?;
    let v = json[i + 7..].trim_start().strip_prefix(':')?.trim_start();
    let v = v.strip_prefix('"')?;
    Some(v[..v.find('"').unwrap_or(v.len())].to_string())
}

/// One iperf3 run's summary (bits per second).
#[derive(Clone, Debug, Default, PartialEq)]
struct Iperf {
    sent: f64,
    received: f64,
    /// UDP only: datagrams lost, in % of those sent.
    lost_percent: Option<f64>,
}

/// Parses `iperf3 -J` output: TCP `end.sum_sent` / `end.sum_received`;
/// UDP `end.sum` (what the client sent, with the server's loss figure) and
/// `end.sum_received` when present.
fn parse_iperf(json: &str, udp: bool) -> Result<Iperf, String> {
    if let Some(e) = iperf_error(json) {
        return Err(e);
    }
    let end = object_after(json, "end").ok_or("no \"end\" in iperf3's output")?;
    let bps = |key: &str| object_after(end, key).and_then(|o| number_after(o, "bits_per_second"));
    if udp {
        let sum = object_after(end, "sum").ok_or("no \"end.sum\" in iperf3's output")?;
        let sent = number_after(sum, "bits_per_second").unwrap_or(0.0);
        let lost = number_after(sum, "lost_percent");
        let received =
            bps("sum_received").unwrap_or_else(|| sent * (1.0 - lost.unwrap_or(0.0) / 100.0));
        Ok(Iperf {
            sent,
            received,
            lost_percent: lost,
        })
    } else {
        Ok(Iperf {
            sent: bps("sum_sent").ok_or("no \"end.sum_sent\" in iperf3's output")?,
            received: bps("sum_received").ok_or("no \"end.sum_received\" in iperf3's output")?,
            lost_percent: None,
        })
    }
}

/// One iperf3 client run from the client namespace (bounded by `timeout`).
fn iperf3(
    t: &Topology,
    host: &str,
    port: u16,
    secs: u32,
    udp: Option<&str>,
) -> Result<Iperf, String> {
    let (p, s) = (port.to_string(), secs.to_string());
    let mut args = vec![
        "iperf3",
        "-c",
        host,
        "-p",
        &p,
        "-t",
        &s,
        "-J",
        "--connect-timeout",
        "3000",
    ];
    if let Some(rate) = udp {
        args.extend(["-u", "-b", rate]);
    }
    let out = ns_run(t, "c", secs + 20, &args);
    if out.trim().is_empty() {
        return Err("no output (timed out?)".into());
    }
    parse_iperf(&out, udp.is_some())
}

/// `rvs-lab bench` options.
#[derive(Debug, PartialEq)]
struct BenchOpts {
    /// Length of every wrk and iperf3 run.
    seconds: u32,
    /// iperf3 `-b` for the UDP runs; None: no UDP runs.
    udp_rate: Option<String>,
    wrk: bool,
    iperf3: bool,
}

fn bench_opts(args: &[String]) -> Result<BenchOpts, String> {
    let mut o = BenchOpts {
        seconds: 5,
        udp_rate: Some("500M".into()),
        wrk: true,
        iperf3: true,
    };
    let mut i = 0;
    while i < args.len() {
        let val = args.get(i + 1).map(String::as_str);
        match (args[i].as_str(), val) {
            ("--seconds", Some(v)) => {
                o.seconds = v
                    .parse()
                    .ok()
                    .filter(|s| (1..=600).contains(s))
                    .ok_or(format!("--seconds {v}: want 1 to 600"))?;
            }
            ("--udp-rate", Some("off")) => o.udp_rate = None,
            ("--udp-rate", Some(v)) => {
                let digits = v.trim_end_matches(['K', 'M', 'G', 'k', 'm', 'g']);
                if digits.is_empty() || digits.parse::<f64>().is_err() {
                    return Err(format!("--udp-rate {v}: want e.g. 500M, 1G or off"));
                }
                o.udp_rate = Some(v.to_string());
            }
            ("--only", Some("wrk")) => o.iperf3 = false,
            ("--only", Some("iperf3")) => o.wrk = false,
            (a, _) => {
                return Err(format!(
                    "bench: unexpected {a:?} (options: --seconds N, --udp-rate RATE|off, --only wrk|iperf3)"
                ));
            }
        }
        i += 2;
    }
    Ok(o)
}

/// iperf3 ports. Real servers: 5201 on every address (straight, nftables,
/// HAProxy), 5202 (the NAT service's real port: rvs steers replies from
/// it), 5203 bound to the DR VIP (DR keeps the port; a UDP server bound to
/// the wildcard would answer from the real server's own address).
const IPERF_PORT: u16 = 5201;
const IPERF_NAT_REAL: u16 = 5202;
const IPERF_DR: u16 = 5203;
/// The nftables and HAProxy VIPs (separate addresses, not rvs services).
const VIP_NFT: &str = "10.10.0.110";
const VIP_HAP: &str = "10.10.0.111";

/// One path of the side-by-side benchmark.
struct BenchPath {
    name: &'static str,
    url: String,
    iperf: (String, u16),
    /// iperf3 UDP through this path (HAProxy has no UDP proxying).
    udp: bool,
    rvs: bool,
    baseline: bool,
}

/// One path's figures.
#[derive(Default)]
struct BenchRow {
    ka: f64,
    nc: f64,
    wrk_cost: Option<Cost>,
    tcp: Option<Result<Iperf, String>>,
    tcp_cost: Option<Cost>,
    udp: Option<Result<Iperf, String>>,
    udp_cost: Option<Cost>,
}

fn pct(x: f64, base: f64) -> String {
    if base > 0.0 {
        format!("{:.0}%", 100.0 * x / base)
    } else {
        "-".into()
    }
}

fn cost_text(c: Option<Cost>) -> String {
    let Some(c) = c else {
        return "-".into();
    };
    let mut s = format!("{:.2} us ({} pkts", c.us_per_packet, c.packets);
    if let Some(n) = c.tx_full.filter(|&n| n > 0) {
        s += &format!(", {n} TX-full drops");
    }
    s + ")"
}

/// The rvs services, nftables rules, HAProxy and iperf3 servers of the
/// benchmark (wrk: port 80; iperf3: see [`IPERF_PORT`]). iperf3 runs a
/// control and a data connection that must reach the same server, so the
/// iperf3 services hash the client's address (rvs `sh`, nftables `jhash`,
/// HAProxy `balance source`).
fn bench_setup(t: &mut Topology, secs: u32) -> Result<(), String> {
    let (nat, dr) = (VIP_NAT, VIP_DR);
    let mut cmds = vec![
        format!("-A -t {nat}:80 -s rr"),
        format!("-A -t {dr}:80 -s rr"),
        format!("-A -t {nat}:{IPERF_PORT} -s sh"),
        format!("-A -u {nat}:{IPERF_PORT} -s sh"),
        format!("-A -t {dr}:{IPERF_DR} -s sh"),
        format!("-A -u {dr}:{IPERF_DR} -s sh"),
    ];
    for k in 1..=2 {
        let r = rip(k);
        cmds.push(format!("-a -t {nat}:80 -r {r}:8080 -m"));
        cmds.push(format!("-a -t {dr}:80 -r {r} -g"));
        for p in ["-t", "-u"] {
            cmds.push(format!(
                "-a {p} {nat}:{IPERF_PORT} -r {r}:{IPERF_NAT_REAL} -m"
            ));
            cmds.push(format!("-a {p} {dr}:{IPERF_DR} -r {r} -g"));
        }
    }
    let lines: Vec<&str> = cmds.iter().map(String::as_str).collect();
    t.ipvsadm(&lines)?;
    // nftables DNAT (wrk to port 80, iperf3 to 5201) and HAProxy (wrk to
    // 8081, iperf3 to 5201) on their own VIPs: rvs steers only replies
    // from the NAT services' real ports 8080 and 5202.
    let (r1, r2) = (rip(1), rip(2));
    let nft = format!(
        "table ip labnat {{\n chain pre {{\n  type nat hook prerouting priority -100;\n\
         \x20 ip daddr {VIP_NFT} tcp dport 80 dnat to numgen inc mod 2 map {{ 0 : {r1}, 1 : {r2} }}\n\
         \x20 ip daddr {VIP_NFT} meta l4proto {{ tcp, udp }} th dport {IPERF_PORT} dnat to jhash ip saddr mod 2 map {{ 0 : {r1}, 1 : {r2} }}\n\
         }}\n}}\n"
    );
    let nft_file = t.lab.dir.join("labnat.nft");
    std::fs::write(&nft_file, nft).map_err(|e| e.to_string())?;
    let nft_path = nft_file.display().to_string();
    for a in [
        vec!["ip", "addr", "add", "10.10.0.110/32", "dev", "lo"],
        vec!["ip", "addr", "add", "10.10.0.111/32", "dev", "lo"],
        vec!["nft", "-f", nft_path.as_str()],
    ] {
        t.lab.exec("d", &a)?;
    }
    // The iperf3 control connection idles for the whole run: HAProxy's
    // client/server timeouts there outlast it.
    let long = secs + 60;
    let hap = t.lab.dir.join("haproxy.cfg");
    std::fs::write(
        &hap,
        format!(
            "global\n  maxconn 8000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
             frontend f\n  bind {VIP_HAP}:80\n  default_backend b\n\
             backend b\n  balance roundrobin\n  server s1 {r1}:8081\n  server s2 {r2}:8081\n\
             frontend fi\n  bind {VIP_HAP}:{IPERF_PORT}\n  timeout client {long}s\n  default_backend bi\n\
             backend bi\n  balance source\n  timeout server {long}s\n  server s1 {r1}:{IPERF_PORT}\n  server s2 {r2}:{IPERF_PORT}\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let hap_s = hap.display().to_string();
    t.lab
        .spawn("d", &["haproxy", "-f", &hap_s, "-db"], Some("haproxy.log"))?;
    // iperf3 servers (killed with the lab); a stuck one restarts itself.
    for k in 1..=2 {
        let s = format!("s{k}");
        for (port, bind) in [
            (IPERF_PORT, None),
            (IPERF_NAT_REAL, None),
            (IPERF_DR, Some(VIP_DR)),
        ] {
            let p = port.to_string();
            let mut a = vec!["iperf3", "-s", "-p", &p, "--idle-timeout", "30"];
            if let Some(b) = bind {
                a.extend(["-B", b]);
            }
            t.lab
                .spawn(&s, &a, Some(&format!("iperf3-{s}-{port}.log")))?;
        }
    }
    // Bounded wait for every listener (HAProxy's and the iperf3 servers').
    let t0 = std::time::Instant::now();
    let want: Vec<(String, String)> =
        std::iter::once(("d".to_string(), format!("{VIP_HAP}:{IPERF_PORT}")))
            .chain((1..=2).flat_map(|k| {
                [
                    format!(":{IPERF_PORT}"),
                    format!(":{IPERF_NAT_REAL}"),
                    format!("{VIP_DR}:{IPERF_DR}"),
                ]
                .map(|a| (format!("s{k}"), a))
            }))
            .collect();
    for (ns, addr) in &want {
        while !t
            .lab
            .exec(ns, &["ss", "-Hltn"])
            .unwrap_or_default()
            .split_whitespace()
            .any(|w| w.ends_with(addr.as_str()))
        {
            if t0.elapsed() > std::time::Duration::from_secs(10) {
                return Err(format!("nothing listens on {addr} in {ns} after 10 s"));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    Ok(())
}

/// Side-by-side benchmark in one run on the lab: straight to a real server
/// (routed by the director's kernel), rvs NAT and DR, nftables DNAT,
/// HAProxy in tcp mode; wrk keep-alive and a new connection per request,
/// iperf3 TCP and UDP at a fixed offered rate; rvsd's CPU time per
/// forwarded packet over each kind of run.
fn bench(args: &[String]) -> i32 {
    let o = match bench_opts(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rvs-lab: {e}");
            return 2;
        }
    };
    if let Some(why) = unavailable() {
        eprintln!("rvs-lab: {why}");
        return 1;
    }
    for tool in ["wrk", "iperf3", "haproxy", "nginx", "nft", "timeout", "ss"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).exists()))
            .unwrap_or(false);
        if !found {
            eprintln!("rvs-lab: the benchmark needs {tool}, which is not installed");
            return 1;
        }
    }
    cleanup_on_signal();
    let Ok(exe) = std::env::current_exe() else {
        return 1;
    };
    // rvsd's metrics (queue counters) on the director's loopback: a
    // [daemon] section after the [director] lines build_full writes.
    let daemon = format!("[daemon]\nmetrics = \"{METRICS}\"");
    let mut t = match Topology::build_full(&exe, 2, rvs_lab::Http::Nginx, &daemon) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("rvs-lab: {e}");
            return 1;
        }
    };
    if let Err(e) = bench_setup(&mut t, o.seconds) {
        eprintln!("rvs-lab: {e}");
        return 1;
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let paths = [
        BenchPath {
            name: "straight to a real server",
            url: format!("http://{}:8081/", rip(1)),
            iperf: (rip(1), IPERF_PORT),
            udp: true,
            rvs: false,
            baseline: false,
        },
        BenchPath {
            name: "rvs NAT (AF_XDP, copy mode)",
            url: format!("http://{VIP_NAT}/"),
            iperf: (VIP_NAT.into(), IPERF_PORT),
            udp: true,
            rvs: true,
            baseline: false,
        },
        BenchPath {
            name: "rvs DR (AF_XDP, copy mode)",
            url: format!("http://{VIP_DR}/"),
            iperf: (VIP_DR.into(), IPERF_DR),
            udp: true,
            rvs: true,
            baseline: false,
        },
        BenchPath {
            name: "nftables DNAT",
            url: format!("http://{VIP_NFT}/"),
            iperf: (VIP_NFT.into(), IPERF_PORT),
            udp: true,
            rvs: false,
            baseline: true,
        },
        BenchPath {
            name: "HAProxy 2.6 tcp mode",
            url: format!("http://{VIP_HAP}/"),
            iperf: (VIP_HAP.into(), IPERF_PORT),
            udp: false,
            rvs: false,
            baseline: false,
        },
    ];
    let secs = o.seconds;
    // One kind of run over every path, then the next kind (wrk, iperf3
    // TCP, iperf3 UDP): a path that upsets the dataplane cannot skew the
    // figures of another kind taken before it.
    let mut rows: Vec<BenchRow> = paths.iter().map(|_| BenchRow::default()).collect();
    let pause = || std::thread::sleep(std::time::Duration::from_millis(300));
    if o.wrk {
        for (p, r) in paths.iter().zip(rows.iter_mut()) {
            eprintln!("  wrk         {} ...", p.name);
            let ((ka, nc), cost) = rvsd_cost(&t, || {
                (wrk(&t, &p.url, false, secs), wrk(&t, &p.url, true, secs))
            });
            (r.ka, r.nc) = (ka, nc);
            r.wrk_cost = cost.filter(|_| p.rvs);
            pause();
        }
    }
    if o.iperf3 {
        for (p, r) in paths.iter().zip(rows.iter_mut()) {
            eprintln!("  iperf3 TCP  {} ...", p.name);
            let (host, port) = (&p.iperf.0, p.iperf.1);
            let (res, cost) = rvsd_cost(&t, || iperf3(&t, host, port, secs, None));
            r.tcp = Some(res);
            r.tcp_cost = cost.filter(|_| p.rvs);
            pause();
        }
        for (p, r) in paths.iter().zip(rows.iter_mut()) {
            let Some(rate) = o.udp_rate.as_deref().filter(|_| p.udp) else {
                continue;
            };
            eprintln!("  iperf3 UDP  {} ...", p.name);
            let (host, port) = (&p.iperf.0, p.iperf.1);
            let (res, cost) = rvsd_cost(&t, || iperf3(&t, host, port, secs, Some(rate)));
            r.udp = Some(res);
            r.udp_cost = cost.filter(|_| p.rvs);
            pause();
        }
    }
    let base = paths.iter().position(|p| p.baseline).map(|i| &rows[i]);
    let mut failed = 0;
    println!(
        "\n2 nginx real servers (1 worker each), 2 iperf3 servers; 2 vCPUs shared by everything; {secs} s per run"
    );
    if o.wrk {
        println!("\nwrk -t1 -c20 -d{secs}s from the client namespace (req/s)\n");
        println!(
            "{:<30} {:>11} {:>13} {:>18}   rvsd CPU per packet (both wrk runs)",
            "path", "keep-alive", "conn/request", "vs nftables KA/new"
        );
        for (p, r) in paths.iter().zip(&rows) {
            let vs = match base {
                Some(b) if !p.baseline => format!("{} / {}", pct(r.ka, b.ka), pct(r.nc, b.nc)),
                _ => "100%".into(),
            };
            failed += usize::from(r.ka == 0.0) + usize::from(r.nc == 0.0);
            println!(
                "{:<30} {:>11.0} {:>13.0} {:>18}   {}",
                p.name,
                r.ka,
                r.nc,
                vs,
                cost_text(r.wrk_cost)
            );
        }
    }
    if o.iperf3 {
        let udp_head = match &o.udp_rate {
            Some(rate) => format!("UDP at {rate}: recv / loss"),
            None => "UDP".into(),
        };
        println!(
            "\niperf3 -t {secs} from the client namespace, one TCP stream (Gbit/s at the receiver); UDP at a fixed offered rate\n"
        );
        println!(
            "{:<30} {:>8} {:>12} {:>26}   rvsd CPU per packet: TCP | UDP",
            "path", "TCP", "vs nftables", udp_head
        );
        let gbit = |x: f64| x / 1e9;
        for (p, r) in paths.iter().zip(&rows) {
            let tcp_bps = match &r.tcp {
                Some(Ok(i)) => Some(i.received),
                _ => None,
            };
            let base_bps = base.and_then(|b| match &b.tcp {
                Some(Ok(i)) => Some(i.received),
                _ => None,
            });
            let (tcp_s, vs) = match tcp_bps {
                Some(x) => (
                    format!("{:.2}", gbit(x)),
                    if p.baseline {
                        "100%".into()
                    } else {
                        base_bps.map(|b| pct(x, b)).unwrap_or("-".into())
                    },
                ),
                None => ("failed".into(), "-".into()),
            };
            let udp_s = match &r.udp {
                Some(Ok(i)) => format!(
                    "{:.2} / {:.2}%",
                    gbit(i.received),
                    i.lost_percent.unwrap_or(f64::NAN)
                ),
                Some(Err(_)) => "failed".into(),
                None if p.udp => "-".into(),
                None => "n/a (no UDP)".into(),
            };
            println!(
                "{:<30} {:>8} {:>12} {:>26}   {} | {}",
                p.name,
                tcp_s,
                vs,
                udp_s,
                cost_text(r.tcp_cost),
                cost_text(r.udp_cost)
            );
            for (what, res) in [("TCP", &r.tcp), ("UDP", &r.udp)] {
                if let Some(Err(e)) = res {
                    failed += 1;
                    eprintln!("rvs-lab: iperf3 {what} through {}: {e}", p.name);
                }
            }
        }
    }
    if failed > 0 {
        eprintln!("rvs-lab: {failed} runs failed");
        return 1;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shaped as iperf3 3.12's `-J` output (cJSON's tab layout), trimmed.
    const TCP: &str = "{\n\t\"start\":\t{\n\t\t\"connected\":\t[]\n\t},\n\t\"intervals\":\t[{\n\t\t\t\"sum\":\t{\n\t\t\t\t\"start\":\t0,\n\t\t\t\t\"end\":\t1.0001,\n\t\t\t\t\"bits_per_second\":\t1e9\n\t\t\t}\n\t\t}],\n\t\"end\":\t{\n\t\t\"streams\":\t[{\n\t\t\t\t\"sender\":\t{\n\t\t\t\t\t\"end\":\t2,\n\t\t\t\t\t\"bits_per_second\":\t7\n\t\t\t\t}\n\t\t\t}],\n\t\t\"sum_sent\":\t{\n\t\t\t\"start\":\t0,\n\t\t\t\"end\":\t2.00004,\n\t\t\t\"bits_per_second\":\t3456789012.5,\n\t\t\t\"retransmits\":\t3\n\t\t},\n\t\t\"sum_received\":\t{\n\t\t\t\"bits_per_second\":\t3.4e9\n\t\t}\n\t}\n}\n";

    #[test]
    fn iperf_tcp_summary() {
        let r = parse_iperf(TCP, false).unwrap();
        assert_eq!(r.sent, 3456789012.5);
        assert_eq!(r.received, 3.4e9);
        assert_eq!(r.lost_percent, None);
    }

    #[test]
    fn iperf_udp_summary_and_error() {
        let udp = "{\"intervals\": [{\"sum\": {\"end\": 1, \"bits_per_second\": 9}}], \"end\": {\"streams\": [{\"udp\": {\"bits_per_second\": 8, \"lost_percent\": 50}}], \"sum\": {\"end\": 2, \"bits_per_second\": 1000000000, \"lost_percent\": 2.5, \"sender\": true}}}";
        let r = parse_iperf(udp, true).unwrap();
        assert_eq!(r.sent, 1e9);
        assert_eq!(r.lost_percent, Some(2.5));
        assert_eq!(r.received, 0.975e9);
        let err = "{\n\t\"start\":\t{},\n\t\"intervals\":\t[],\n\t\"end\":\t{},\n\t\"error\":\t\"unable to connect to server: Connection refused\"\n}";
        assert_eq!(
            parse_iperf(err, false).unwrap_err(),
            "unable to connect to server: Connection refused"
        );
    }

    #[test]
    fn options() {
        let a = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let o = bench_opts(&a("")).unwrap();
        assert_eq!(
            (o.seconds, o.udp_rate.as_deref(), o.wrk, o.iperf3),
            (5, Some("500M"), true, true)
        );
        let o = bench_opts(&a("--seconds 2 --udp-rate 500M --only iperf3")).unwrap();
        assert_eq!(
            (o.seconds, o.udp_rate.as_deref(), o.wrk),
            (2, Some("500M"), false)
        );
        assert_eq!(bench_opts(&a("--udp-rate off")).unwrap().udp_rate, None);
        for bad in [
            "--seconds 0",
            "--seconds",
            "--udp-rate fast",
            "--only x",
            "-x",
        ] {
            assert!(bench_opts(&a(bad)).is_err(), "{bad}");
        }
    }
}
