//! The rvs network lab.
//!
//! [`Lab`] creates uniquely named network namespaces (`rvslab-<pid>-…`),
//! veth pairs, addresses and routes, starts processes inside them, and in
//! `Drop` kills every process it started and deletes every namespace it
//! made — also when a test panics. [`Topology`] builds the standard lab:
//!
//! ```text
//!  client (10.10.0.2) ── c0|d0 ── director (rvsd on d0,d1..dN) ── dK|s0 ── real server K (10.2K.0.11)
//!                                  VIPs 10.10.0.100 (NAT) .101 (DR) .102 (TUN) on lo
//! ```
//!
//! Real servers run an HTTP server on ports 80 and 8080 answering their
//! name ("rs1\n"), and a UDP echo on 5353; DR and TUN real servers hold the
//! VIPs on lo with arp_ignore/arp_announce; TUN real servers run the
//! decapsulation helper (this kernel has no ipip/gre/fou modules).
//! All traffic stays inside the lab's namespaces.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The NAT VIP.
pub const VIP_NAT: &str = "10.10.0.100";
/// The DR VIP.
pub const VIP_DR: &str = "10.10.0.101";
/// The TUN VIP.
pub const VIP_TUN: &str = "10.10.0.102";
/// The client's address.
pub const CLIENT: &str = "10.10.0.2";
/// The IPv6 NAT VIP (outside the client's on-link prefix: IPv6 neighbour
/// discovery, unlike ARP, answers only for addresses of the receiving
/// interface, and the VIPs sit on lo).
pub const VIP6_NAT: &str = "fd00:ff::100";
/// The IPv6 DR VIP.
pub const VIP6_DR: &str = "fd00:ff::101";

/// IPv6 address of real server `k` (1-based).
pub fn rip6(k: usize) -> String {
    format!("fd00:2{k}::11")
}

/// Address of real server `k` (1-based).
pub fn rip(k: usize) -> String {
    format!("10.2{k}.0.11")
}

/// Namespaces, processes and files of one lab run.
pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
    /// Scratch directory (removed on drop).
    pub dir: PathBuf,
}

/// Runs a command, failing with its output when it does not succeed.
pub fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) -> Result<String, String> {
    run(Command::new("ip").args(args))
}

impl Lab {
    /// A new lab; first removes namespaces of earlier runs whose process is gone.
    pub fn new() -> Result<Self, String> {
        sweep_stale();
        // Unique per lab, also when tests of one process build several at once.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prefix = format!("rvslab-{}-{n}-", std::process::id());
        let dir = std::env::temp_dir().join(format!("rvslab-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        Ok(Self {
            prefix,
            namespaces: Vec::new(),
            children: Vec::new(),
            dir,
        })
    }

    /// The full name of lab namespace `name`.
    pub fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Creates a namespace with lo up.
    pub fn add_ns(&mut self, name: &str) -> Result<String, String> {
        let n = self.ns(name);
        ip(&["netns", "add", &n])?;
        self.namespaces.push(n.clone());
        ip(&["-n", &n, "link", "set", "lo", "up"])?;
        Ok(n)
    }

    /// Runs `cmd args` inside namespace `name`.
    pub fn exec(&self, name: &str, args: &[&str]) -> Result<String, String> {
        let n = self.ns(name);
        run(Command::new("ip").args(["netns", "exec", &n]).args(args))
    }

    /// Starts a long-running process inside namespace `name`; it is killed
    /// when the lab goes.
    pub fn spawn(&mut self, name: &str, args: &[&str], log: Option<&str>) -> Result<(), String> {
        let n = self.ns(name);
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &n])
            .args(args)
            .stdin(Stdio::null());
        match log {
            Some(f) => {
                let file = std::fs::File::create(self.dir.join(f)).map_err(|e| e.to_string())?;
                let file2 = file.try_clone().map_err(|e| e.to_string())?;
                c.stdout(file).stderr(file2);
            }
            None => {
                c.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let child = c.spawn().map_err(|e| format!("{args:?}: {e}"))?;
        self.children.push(child);
        Ok(())
    }

    /// A veth pair between two namespaces, up, with tx checksum offload
    /// off on both ends (frames from a local sender would otherwise carry
    /// partial checksums: a veth artifact, see PLATFORM notes).
    pub fn link(&self, a: &str, a_if: &str, b: &str, b_if: &str) -> Result<(), String> {
        let (na, nb) = (self.ns(a), self.ns(b));
        ip(&[
            "link", "add", a_if, "netns", &na, "type", "veth", "peer", "name", b_if, "netns", &nb,
        ])?;
        for (n, i) in [(&na, a_if), (&nb, b_if)] {
            ip(&["-n", n, "link", "set", i, "up"])?;
            let _ =
                run(Command::new("ip").args(["netns", "exec", n, "ethtool", "-K", i, "tx", "off"]));
        }
        Ok(())
    }

    /// [`Self::link`] with `queues` receive and transmit queues on both ends
    /// (`numrxqueues`/`numtxqueues`; 1 is what `link` makes).
    pub fn link_queues(
        &self,
        a: &str,
        a_if: &str,
        b: &str,
        b_if: &str,
        queues: u32,
    ) -> Result<(), String> {
        if queues <= 1 {
            return self.link(a, a_if, b, b_if);
        }
        let (na, nb, q) = (self.ns(a), self.ns(b), queues.to_string());
        ip(&[
            "link",
            "add",
            a_if,
            "netns",
            &na,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            b_if,
            "netns",
            &nb,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
        ])?;
        for (n, i) in [(&na, a_if), (&nb, b_if)] {
            ip(&["-n", n, "link", "set", i, "up"])?;
            let _ =
                run(Command::new("ip").args(["netns", "exec", n, "ethtool", "-K", i, "tx", "off"]));
        }
        Ok(())
    }

    /// Kills the processes inside namespace `name` whose command line
    /// contains `pattern`; returns how many.
    pub fn kill_matching(&self, name: &str, pattern: &str) -> usize {
        let Ok(pids) = ip(&["netns", "pids", &self.ns(name)]) else {
            return 0;
        };
        let mut n = 0;
        for p in pids.split_whitespace() {
            let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(pattern)
                && Command::new("kill")
                    .args(["-9", p])
                    .status()
                    .is_ok_and(|s| s.success())
            {
                n += 1;
            }
        }
        n
    }

    /// Waits until `path` exists (bounded).
    pub fn wait_for(&self, path: &std::path::Path, limit: Duration) -> Result<(), String> {
        let t0 = Instant::now();
        while !path.exists() {
            if t0.elapsed() > limit {
                return Err(format!(
                    "{} did not appear within {limit:?}",
                    path.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
        for n in self.namespaces.iter().rev() {
            // Anything still running inside (e.g. forked servers) goes too.
            if let Ok(pids) = ip(&["netns", "pids", n]) {
                for p in pids.split_whitespace() {
                    let _ = Command::new("kill").arg("-9").arg(p).status();
                }
            }
            let _ = ip(&["netns", "del", n]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Deletes `rvslab-<pid>-*` namespaces whose process is gone.
pub fn sweep_stale() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("rvslab-") else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// The lines of `ip -d link show` (root namespace) that mention XDP: a
/// lab must leave none behind.
pub fn root_ns_xdp() -> String {
    let out = Command::new("ip")
        .args(["-d", "link", "show"])
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    String::from_utf8_lossy(&out)
        .lines()
        .filter(|l| l.contains("xdp"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How many lab namespaces this process has now (`rvslab-<pid>-…`).
pub fn own_namespaces() -> usize {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    let me = format!("rvslab-{}-", std::process::id());
    String::from_utf8_lossy(&out)
        .lines()
        .filter(|l| l.starts_with(&me))
        .count()
}

/// Why the lab cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if !status
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    {
        return Some("needs root (network namespaces, XDP, AF_XDP)".into());
    }
    for tool in ["ip", "ethtool", "python3", "socat"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).exists()))
            .unwrap_or(false);
        if !found {
            return Some(format!(
                "{tool} is not installed (scripts/test installs it)"
            ));
        }
    }
    None
}

/// The standard topology, with rvsd running in the director.
pub struct Topology {
    /// The lab (drop it to tear everything down).
    pub lab: Lab,
    /// rvsd's control socket.
    pub socket: PathBuf,
    /// Number of real servers.
    pub servers: usize,
    /// rvsd's process id.
    pub rvsd_pid: u32,
}

/// The HTTP server the real servers run.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Http {
    /// Python's http.server (no extra package).
    Python,
    /// nginx (one worker) on ports 80, 8080 and 8081: for benchmarks.
    Nginx,
}

impl Topology {
    /// Builds the lab with `servers` real servers and starts rvsd (this
    /// binary re-executed as `__rvsd`) and the real servers' processes.
    pub fn build(exe: &std::path::Path, servers: usize) -> Result<Self, String> {
        Self::build_with(exe, servers, Http::Python)
    }

    /// [`Self::build`] with a choice of HTTP server.
    pub fn build_with(exe: &std::path::Path, servers: usize, http: Http) -> Result<Self, String> {
        Self::build_full(exe, servers, http, "")
    }

    /// [`Self::build_with`], adding `director` (TOML lines of rvsd's
    /// `[director]` section, e.g. `expire_nodest_conn = true`).
    pub fn build_full(
        exe: &std::path::Path,
        servers: usize,
        http: Http,
        director: &str,
    ) -> Result<Self, String> {
        let toml = format!("[director]\ntunnel_src_v4 = \"10.10.0.1\"\n{director}\n");
        Self::build_config(exe, servers, http, ("rvsd.toml", &toml))
    }

    /// [`Self::build_with`], rvsd running a keepalived.conf (`text`) instead
    /// of its native configuration.
    pub fn build_keepalived(
        exe: &std::path::Path,
        servers: usize,
        http: Http,
        text: &str,
    ) -> Result<Self, String> {
        Self::build_config(exe, servers, http, ("keepalived.conf", text))
    }

    /// [`Self::build`] with `queues` receive/transmit queues on every veth
    /// (client side and real-server sides; 1 is the standard lab).
    pub fn build_queues(
        exe: &std::path::Path,
        servers: usize,
        queues: u32,
    ) -> Result<Self, String> {
        let toml = "[director]\ntunnel_src_v4 = \"10.10.0.1\"\n";
        Self::build_config_queues(exe, servers, Http::Python, ("rvsd.toml", toml), queues)
    }

    /// The lab with rvsd started on the configuration file `(name, text)`
    /// (its format told by the name, as rvsd does).
    fn build_config(
        exe: &std::path::Path,
        servers: usize,
        http: Http,
        config: (&str, &str),
    ) -> Result<Self, String> {
        Self::build_config_queues(exe, servers, http, config, 1)
    }

    /// [`Self::build_config`] with `queues` queues on every veth.
    fn build_config_queues(
        exe: &std::path::Path,
        servers: usize,
        http: Http,
        config: (&str, &str),
        queues: u32,
    ) -> Result<Self, String> {
        let mut lab = Lab::new()?;
        lab.add_ns("c")?;
        lab.add_ns("d")?;
        lab.link_queues("c", "c0", "d", "d0", queues)?;
        let (c, d) = (lab.ns("c"), lab.ns("d"));
        ip(&["-n", &c, "addr", "add", "10.10.0.2/24", "dev", "c0"])?;
        ip(&["-n", &c, "route", "add", "default", "via", "10.10.0.1"])?;
        ip(&[
            "-n",
            &c,
            "addr",
            "add",
            "fd00:10::2/64",
            "dev",
            "c0",
            "nodad",
        ])?;
        ip(&[
            "-n",
            &c,
            "-6",
            "route",
            "add",
            "default",
            "via",
            "fd00:10::1",
        ])?;
        ip(&[
            "-n",
            &d,
            "addr",
            "add",
            "fd00:10::1/64",
            "dev",
            "d0",
            "nodad",
        ])?;
        for vip in [VIP6_NAT, VIP6_DR] {
            ip(&["-n", &d, "addr", "add", &format!("{vip}/128"), "dev", "lo"])?;
        }
        ip(&[
            "netns",
            "exec",
            &d,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.forwarding=1",
        ])?;
        ip(&["-n", &d, "addr", "add", "10.10.0.1/24", "dev", "d0"])?;
        for vip in [VIP_NAT, VIP_DR, VIP_TUN] {
            ip(&["-n", &d, "addr", "add", &format!("{vip}/32"), "dev", "lo"])?;
        }
        lab.exec("d", &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        // DR/TUN replies come back through the director with a VIP as
        // source, which is local here: accept them (PLATFORM pitfall).
        lab.exec("d", &["sysctl", "-qw", "net.ipv4.conf.all.accept_local=1"])?;
        lab.exec("d", &["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"])?;
        let mut ifaces = vec!["d0".to_string()];
        for k in 1..=servers {
            let s = format!("s{k}");
            lab.add_ns(&s)?;
            let dif = format!("d{k}");
            lab.link_queues("d", &dif, &s, "s0", queues)?;
            let sn = lab.ns(&s);
            ip(&[
                "-n",
                &d,
                "addr",
                "add",
                &format!("10.2{k}.0.1/24"),
                "dev",
                &dif,
            ])?;
            lab.exec(
                "d",
                &[
                    "sysctl",
                    "-qw",
                    &format!("net.ipv4.conf.{dif}.accept_local=1"),
                ],
            )?;
            lab.exec(
                "d",
                &["sysctl", "-qw", &format!("net.ipv4.conf.{dif}.rp_filter=0")],
            )?;
            ip(&[
                "-n",
                &sn,
                "addr",
                "add",
                &format!("{}/24", rip(k)),
                "dev",
                "s0",
            ])?;
            ip(&[
                "-n",
                &sn,
                "route",
                "add",
                "default",
                "via",
                &format!("10.2{k}.0.1"),
            ])?;
            let v6gw = format!("fd00:2{k}::1");
            ip(&[
                "-n",
                &d,
                "addr",
                "add",
                &format!("{v6gw}/64"),
                "dev",
                &dif,
                "nodad",
            ])?;
            ip(&[
                "-n",
                &sn,
                "addr",
                "add",
                &format!("{}/64", rip6(k)),
                "dev",
                "s0",
                "nodad",
            ])?;
            ip(&["-n", &sn, "-6", "route", "add", "default", "via", &v6gw])?;
            ip(&[
                "-n",
                &sn,
                "addr",
                "add",
                &format!("{VIP6_DR}/128"),
                "dev",
                "lo",
            ])?;
            // DR and TUN: the VIPs on lo, never answered in ARP.
            for vip in [VIP_DR, VIP_TUN] {
                ip(&["-n", &sn, "addr", "add", &format!("{vip}/32"), "dev", "lo"])?;
            }
            for (key, val) in [("arp_ignore", "1"), ("arp_announce", "2")] {
                lab.exec(
                    &s,
                    &["sysctl", "-qw", &format!("net.ipv4.conf.all.{key}={val}")],
                )?;
            }
            lab.exec(&s, &["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"])?;
            lab.exec(&s, &["sysctl", "-qw", "net.ipv4.conf.s0.rp_filter=0"])?;
            let www = lab.dir.join(&s);
            std::fs::create_dir_all(&www).map_err(|e| e.to_string())?;
            std::fs::write(www.join("index.html"), format!("rs{k}\n"))
                .map_err(|e| e.to_string())?;
            let www = www.display().to_string();
            match http {
                Http::Python => {
                    for port in ["80", "8080"] {
                        let args = [
                            "python3",
                            "-m",
                            "http.server",
                            port,
                            "--bind",
                            "::", // IPv4 and IPv6 (dual stack)
                            "--directory",
                            &www,
                        ];
                        lab.spawn(&s, &args, None)?;
                    }
                }
                Http::Nginx => {
                    let dir = lab.dir.display().to_string();
                    let conf = lab.dir.join(format!("nginx-{s}.conf"));
                    let body = format!(
                        "worker_processes 1;\ndaemon off;\npid {dir}/nginx-{s}.pid;\nerror_log {dir}/nginx-{s}.err;\n\
                         events {{ worker_connections 8000; }}\n\
                         http {{ access_log off; keepalive_requests 100000;\n\
                         client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir};\n\
                         uwsgi_temp_path {dir}; scgi_temp_path {dir};\n\
                         server {{ listen 80; listen 8080; listen 8081; location / {{ return 200 \"rs{k}\\n\"; }} }} }}\n"
                    );
                    std::fs::write(&conf, body).map_err(|e| e.to_string())?;
                    let conf_s = conf.display().to_string();
                    lab.spawn(
                        &s,
                        &["nginx", "-c", &conf_s],
                        Some(&format!("nginx-{s}.log")),
                    )?;
                }
            }
            lab.spawn(&s, &["python3", "-c", &udp_echo(&format!("rs{k}\n"))], None)?;
            let exe_s = exe.display().to_string();
            lab.spawn(
                &s,
                &[&exe_s, "__decap", "--interface", "s0", "--gue-port", "6080"],
                Some(&format!("decap-{s}.log")),
            )?;
            ifaces.push(dif);
        }
        let socket = lab.dir.join("rvsd.sock");
        let sock_s = socket.display().to_string();
        let exe_s = exe.display().to_string();
        let conf = lab.dir.join(config.0);
        std::fs::write(&conf, config.1).map_err(|e| e.to_string())?;
        let mut args: Vec<String> = vec![
            exe_s,
            "__rvsd".into(),
            "--config".into(),
            conf.display().to_string(),
            "--socket".into(),
            sock_s,
        ];
        for i in &ifaces {
            args.push("--interface".into());
            args.push(i.clone());
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        lab.spawn("d", &argv, Some("rvsd.log"))?;
        let rvsd_pid = lab.children.last().map(|c| c.id()).unwrap_or(0);
        lab.wait_for(&socket, Duration::from_secs(15))
            .map_err(|e| {
                format!(
                    "{e}; rvsd log: {}",
                    std::fs::read_to_string(lab.dir.join("rvsd.log")).unwrap_or_default()
                )
            })?;
        // Let the HTTP servers come up.
        let t0 = Instant::now();
        for k in 1..=servers {
            let s = format!("s{k}");
            while lab
                .exec(
                    &s,
                    &[
                        "python3",
                        "-c",
                        "import socket; socket.create_connection(('127.0.0.1', 8080), 1)",
                    ],
                )
                .is_err()
            {
                if t0.elapsed() > Duration::from_secs(15) {
                    return Err(format!("the HTTP server of {s} did not start"));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(Self {
            lab,
            socket,
            servers,
            rvsd_pid,
        })
    }

    /// Starts a TCP echo server (socat, one child per connection) on
    /// `port` of every real server.
    pub fn tcp_echo(&mut self, port: u16) -> Result<(), String> {
        let listen = format!("TCP-LISTEN:{port},fork,reuseaddr");
        for k in 1..=self.servers {
            self.lab
                .spawn(&format!("s{k}"), &["socat", &listen, "EXEC:cat"], None)?;
        }
        Ok(())
    }

    /// Sends ipvsadm command lines to rvsd (all or nothing).
    pub fn ipvsadm(&self, lines: &[&str]) -> Result<(), String> {
        let mut cmds = Vec::new();
        for l in lines {
            let mut argv = vec!["ipvsadm".to_string()];
            argv.extend(l.split_whitespace().map(str::to_string));
            match rvs_ipvsadm::parse(&argv, &rvs_ipvsadm::NoResolve) {
                Ok(rvs_ipvsadm::Parsed::Run(inv)) => cmds.push(inv.command),
                Ok(_) => return Err(format!("{l}: not a command")),
                Err(e) => return Err(format!("{l}: {}", e.message)),
            }
        }
        match rvsd::server::request(&self.socket, &rvsd::proto::Request::Apply(cmds))
            .map_err(|e| e.to_string())?
        {
            rvsd::proto::Response::Done => Ok(()),
            rvsd::proto::Response::Error { message, .. } => Err(message),
            other => Err(format!("unexpected answer {other:?}")),
        }
    }

    /// `ipvsadm -L` output for these listing arguments.
    pub fn list(&self, args: &str) -> Result<String, String> {
        let mut argv = vec!["ipvsadm".to_string()];
        argv.extend(args.split_whitespace().map(str::to_string));
        let Ok(rvs_ipvsadm::Parsed::Run(inv)) = rvs_ipvsadm::parse(&argv, &rvs_ipvsadm::NoResolve)
        else {
            return Err("bad listing arguments".into());
        };
        match rvsd::server::request(&self.socket, &rvsd::proto::Request::Snapshot)
            .map_err(|e| e.to_string())?
        {
            rvsd::proto::Response::Snapshot(s) => {
                rvs_ipvsadm::render(&inv, &s, &rvs_ipvsadm::Numeric).map_err(|e| e.message)
            }
            other => Err(format!("unexpected answer {other:?}")),
        }
    }

    /// `n` HTTP GETs from the client to `url`, a new connection each;
    /// returns the bodies (the answering server's name, or an error text).
    pub fn http(&self, url: &str, n: usize) -> Vec<String> {
        let script = format!(
            "import urllib.request,sys\nfor i in range({n}):\n    try:\n        print(urllib.request.urlopen('{url}', timeout=3).read().decode().strip())\n    except Exception as e:\n        print('ERR', type(e).__name__)\n    sys.stdout.flush()\n"
        );
        match self.lab.exec("c", &["python3", "-c", &script]) {
            Ok(out) => out.lines().map(str::to_string).collect(),
            Err(e) => vec![format!("ERR {e}")],
        }
    }

    /// [`Self::http`] to `http://{host}:{port}/` (IPv4 host) with the
    /// client's source set: address `src` (`""`: the kernel's choice) and,
    /// for connection `i`, port `first_sport + i`.
    /// The kernel's own choice of ephemeral port may reuse the port of an
    /// earlier connection whose director entry is still in FIN_WAIT (DR
    /// sees only the client's half: two minutes); such a SYN joins the old
    /// entry and its real server without a scheduling decision, as in IPVS
    /// (conn_reuse_mode bit 2 off), which is right but makes counts of a
    /// scheduler's decisions inexact. Distinct ports below the ephemeral
    /// range keep every connection a new one.
    pub fn http_from(
        &self,
        src: &str,
        host: &str,
        port: u16,
        n: usize,
        first_sport: u16,
    ) -> Vec<String> {
        assert!(
            usize::from(first_sport) + n <= 32768,
            "source ports run into the ephemeral range"
        );
        let script = format!(
            "import http.client,sys\nfor i in range({n}):\n    try:\n        c = http.client.HTTPConnection('{host}', {port}, timeout=3, source_address=('{src}', {first_sport} + i))\n        c.request('GET', '/')\n        print(c.getresponse().read().decode().strip())\n        c.close()\n    except Exception as e:\n        print('ERR', type(e).__name__)\n    sys.stdout.flush()\n"
        );
        match self.lab.exec("c", &["python3", "-c", &script]) {
            Ok(out) => out.lines().map(str::to_string).collect(),
            Err(e) => vec![format!("ERR {e}")],
        }
    }

    /// One UDP exchange from the client: the answer, if any.
    pub fn udp(&self, vip: &str, port: u16) -> Option<String> {
        let script = format!(
            "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(3)\ns.sendto(b'ping',('{vip}',{port}))\nprint(s.recvfrom(100)[0].decode().strip())\n"
        );
        self.lab
            .exec("c", &["python3", "-c", &script])
            .ok()
            .map(|s| s.trim().to_string())
    }
}

/// A UDP server on port 5353 (IPv4 and IPv6) answering every datagram
/// with `answer`: one process, so no datagram is lost to a fork (socat's
/// `UDP-RECVFROM,fork` loses some 1 in 10 under load).
fn udp_echo(answer: &str) -> String {
    format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n\
         s.bind(('::', 5353))\n\
         while True:\n    d, a = s.recvfrom(2048)\n    s.sendto({answer:?}.encode(), a)\n"
    )
}

/// Counts answers by server name.
pub fn distribution(bodies: &[String]) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for b in bodies {
        *m.entry(b.clone()).or_insert(0) += 1;
    }
    m
}
