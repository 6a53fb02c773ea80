//! `rvsadm` (or `ipvsadm` through a symlink): ipvsadm's command line and
//! output, talking to rvsd over its control socket (`--socket PATH`, or
//! `RVS_SOCKET`, or /run/rvs/rvsd.sock). `rvsadm --reload` asks rvsd to
//! re-read its configuration file (as SIGHUP does).

use rvs_ipvsadm::{Command, Invocation, Names, Parsed, Resolve};
use rvsd::proto::{Request, Response};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
use std::path::Path;

/// Host names from the system resolver, service names from /etc/services.
struct System {
    services: Vec<(String, u16, String)>,
    hosts: Vec<(IpAddr, String)>,
}

impl System {
    fn load() -> Self {
        let services = std::fs::read_to_string("/etc/services")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let l = l.split('#').next()?;
                let mut it = l.split_whitespace();
                let name = it.next()?;
                let (port, proto) = it.next()?.split_once('/')?;
                Some((name.to_string(), port.parse().ok()?, proto.to_string()))
            })
            .collect();
        let hosts = std::fs::read_to_string("/etc/hosts")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let l = l.split('#').next()?;
                let mut it = l.split_whitespace();
                let a: IpAddr = it.next()?.parse().ok()?;
                Some((a, it.next()?.to_string()))
            })
            .collect();
        Self { services, hosts }
    }
}

impl Resolve for System {
    fn host(&self, name: &str) -> Option<Ipv4Addr> {
        (name, 0)
            .to_socket_addrs()
            .ok()?
            .find_map(|a| match a.ip() {
                IpAddr::V4(v) => Some(v),
                IpAddr::V6(_) => None,
            })
    }
    fn service(&self, name: &str, proto: &str) -> Option<u16> {
        self.services
            .iter()
            .find(|(n, _, p)| n == name && p == proto)
            .map(|s| s.1)
    }
}

impl Names for System {
    fn host(&self, addr: &IpAddr) -> Option<String> {
        self.hosts
            .iter()
            .find(|(a, _)| a == addr)
            .map(|h| h.1.clone())
    }
    fn service(&self, port: u16, proto: u8) -> Option<String> {
        let p = match proto {
            rvs_ipvsadm::TCP => "tcp",
            rvs_ipvsadm::UDP => "udp",
            rvs_ipvsadm::SCTP => "sctp",
            _ => return None,
        };
        self.services
            .iter()
            .find(|(_, n, q)| *n == port && q == p)
            .map(|s| s.0.clone())
    }
}

fn main() {
    let mut argv: Vec<String> = std::env::args().collect();
    // rvsadm's own option, not ipvsadm's: --socket PATH (or --socket=PATH).
    let mut socket_flag = None;
    let mut i = 1;
    while i < argv.len() {
        if argv[i] == "--socket" && i + 1 < argv.len() {
            socket_flag = Some(argv.remove(i + 1));
            argv.remove(i);
        } else if let Some(p) = argv[i].strip_prefix("--socket=") {
            socket_flag = Some(p.to_string());
            argv.remove(i);
        } else {
            i += 1;
        }
    }
    if argv.is_empty() {
        argv.push("rvsadm".into());
    }
    let socket = rvsd::server::socket_path(socket_flag.as_deref());
    // rvsadm's other own option: --reload (rvsd re-reads its file, as on SIGHUP).
    if argv.len() == 2 && argv.get(1).is_some_and(|a| a == "--reload") {
        std::process::exit(reload(&socket));
    }
    let sys = System::load();
    let code = match rvs_ipvsadm::parse(&argv, &sys) {
        Err(e) => {
            eprintln!("{}", e.message);
            e.exit_code
        }
        Ok(Parsed::Help(h)) | Ok(Parsed::Version(h)) => {
            print!("{h}");
            0
        }
        Ok(Parsed::Run(inv)) => run(&argv[0], inv, &socket, &sys),
    };
    std::process::exit(code);
}

fn reload(socket: &Path) -> i32 {
    match rvsd::server::request(socket, &Request::Reload) {
        Ok(Response::Done) => 0,
        Ok(Response::Error { message, exit_code }) => {
            eprintln!("{message}");
            exit_code
        }
        Ok(_) => {
            eprintln!("unexpected answer from rvsd");
            255
        }
        Err(e) => {
            eprintln!(
                "Can't initialize ipvs: {e}\nAre you sure that rvsd is running (control socket {})?",
                socket.display()
            );
            2
        }
    }
}

fn run(program: &str, inv: Invocation, socket: &Path, sys: &System) -> i32 {
    let req = match &inv.command {
        Command::List(_) | Command::Save => Request::Snapshot,
        Command::Restore => {
            let mut input = String::new();
            if std::io::stdin().read_to_string(&mut input).is_err() {
                eprintln!("{program}: cannot read standard input");
                return 2;
            }
            match rvs_ipvsadm::parse_restore(program, &input, sys) {
                Ok(cmds) => Request::Apply(cmds.into_iter().map(|c| c.command).collect()),
                Err(e) => {
                    eprintln!("{}", e.message);
                    return e.exit_code;
                }
            }
        }
        c => Request::Apply(vec![c.clone()]),
    };
    let resp = match rvsd::server::request(socket, &req) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "Can't initialize ipvs: {e}\nAre you sure that rvsd is running (control socket {})?",
                socket.display()
            );
            return 2;
        }
    };
    match resp {
        Response::Done => 0,
        Response::Snapshot(s) => match rvs_ipvsadm::render(&inv, &s, sys) {
            Ok(text) => {
                let _ = std::io::stdout().write_all(text.as_bytes());
                0
            }
            Err(e) => {
                eprintln!("{}", e.message);
                e.exit_code
            }
        },
        Response::Error { message, exit_code } => {
            eprintln!("{message}");
            exit_code
        }
        Response::Stats(_) => {
            eprintln!("{program}: unexpected answer from rvsd");
            255
        }
    }
}
