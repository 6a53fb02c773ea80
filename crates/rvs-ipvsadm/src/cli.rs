//! ipvsadm's command line, parsed as ipvsadm 1.31 parses it (popt options,
//! the commands-versus-options table, its checks and its exact messages and
//! exit codes).

use crate::model::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a command line was refused: what ipvsadm prints on standard error
/// (without the final newline) and the status it exits with.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct CliError {
    /// The message.
    pub message: String,
    /// The exit status (2 for `fail(2, ...)`, 255 for ipvsadm's `-1`).
    pub exit_code: i32,
}

/// What parsing a command line leads to.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Parsed {
    /// A command to carry out.
    Run(Invocation),
    /// `-h`: print this on standard output, exit 0.
    Help(String),
    /// `-v`: print this on standard output, exit 0.
    Version(String),
}

/// Host and service names: ipvsadm resolves them with gethostbyname and
/// getservbyname; this library stays free of I/O and asks the caller.
pub trait Resolve {
    /// An IPv4 address for a host name.
    fn host(&self, name: &str) -> Option<Ipv4Addr>;
    /// A port for a service name and protocol ("tcp", "udp", "sctp").
    fn service(&self, name: &str, proto: &str) -> Option<u16>;
}

/// Resolves nothing (numeric addresses and ports only).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoResolve;

impl Resolve for NoResolve {
    fn host(&self, _: &str) -> Option<Ipv4Addr> {
        None
    }
    fn service(&self, _: &str, _: &str) -> Option<u16> {
        None
    }
}

// Commands, in ipvsadm's CMD_* order (index into the tables below).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
}

const CMDNAMES: [&str; 14] = [
    "add-service",
    "edit-service",
    "delete-service",
    "flush",
    "list",
    "add-server",
    "delete-server",
    "edit-server",
    "set",
    "start-daemon",
    "stop-daemon",
    "restore",
    "save",
    "zero",
];

// Options, in ipvsadm's OPTC_* order.
const O_NUMERIC: usize = 0;
const O_CONNECTION: usize = 1;
const O_SERVICE: usize = 2;
const O_SCHEDULER: usize = 3;
const O_PERSISTENT: usize = 4;
const O_NETMASK: usize = 5;
const O_SERVER: usize = 6;
const O_FORWARD: usize = 7;
const O_WEIGHT: usize = 8;
const O_UTHRESHOLD: usize = 9;
const O_LTHRESHOLD: usize = 10;
const O_MCAST: usize = 11;
const O_TIMEOUT: usize = 12;
const O_DAEMON: usize = 13;
const O_STATS: usize = 14;
const O_RATE: usize = 15;
const O_THRESHOLDS: usize = 16;
const O_PERSISTENTCONN: usize = 17;
const O_NOSORT: usize = 18;
const O_SYNCID: usize = 19;
const O_EXACT: usize = 20;
const O_ONEPACKET: usize = 21;
const O_PE: usize = 22;
const O_SCHED_FLAGS: usize = 23;
const O_MCAST_GROUP: usize = 24;
const O_MCAST_PORT: usize = 25;
const O_MCAST_TTL: usize = 26;
const O_SYNC_MAXLEN: usize = 27;
const O_TUN_INFO: usize = 28;
const O_TUN_TYPE: usize = 29;
const O_TUN_PORT: usize = 30;
const O_TUN_NOCSUM: usize = 31;
const O_TUN_CSUM: usize = 32;
const O_TUN_REMCSUM: usize = 33;
const NOPT: usize = 34;

const OPTNAMES: [&str; NOPT] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
];

/// ipvsadm's `commands_v_options`: '+' compulsory, 'x' illegal, '1' at most
/// one of the '1' options, ' ' optional. Columns in `OPTNAMES` order.
const TABLE: [&str; 14] = [
    // -n -c svc -s -p -M -r fwd -w -x -y mc tot dmn st rt thr pc srt sid ex ops pe -b grp port ttl size tinf type tprt nocs csum remc
    "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx", // ADD
    "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx", // EDIT
    "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // DEL
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // FLUSH
    " 11xxxxxxxxx11       xxxxxxx xxxxx", // LIST
    "xx+xxx+    xxxxxxxxxxxxxxxxxx     ", // ADDSRV
    "xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx", // DELSRV
    "xx+xxx+    xxxxxxxxxxxxxxxxxx     ", // EDITSRV
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // TIMEOUT
    "xxxxxxxxxxx xxxxxxx xxxx    xxxxxx", // STARTD
    "xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxx", // STOPD
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // RESTORE
    " xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // SAVE
    "xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // ZERO
];

const TUNNAMES: [&str; 3] = ["ipip", "gue", "gre"];
/// `tunnel_types_v_options`, columns tun-port, tun-nocsum, tun-csum, tun-remcsum.
const TUN_TABLE: [&str; 3] = ["xxxx", "+111", "x111"];
const TUN_OPTS: [usize; 4] = [O_TUN_PORT, O_TUN_NOCSUM, O_TUN_CSUM, O_TUN_REMCSUM];

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum ArgKind {
    None,
    Required,
    Optional,
}

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Tag {
    Cmd(Cmd),
    Help,
    Version,
    StartDaemon,
    StopDaemon,
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Masq,
    Ipip,
    Gatewaying,
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    McastInterface,
    Syncid,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
}

/// ipvsadm's popt table: (long name, short name, argument, tag).
const OPTIONS: &[(&str, Option<char>, ArgKind, Tag)] = &[
    ("add-service", Some('A'), ArgKind::None, Tag::Cmd(Cmd::Add)),
    (
        "edit-service",
        Some('E'),
        ArgKind::None,
        Tag::Cmd(Cmd::Edit),
    ),
    (
        "delete-service",
        Some('D'),
        ArgKind::None,
        Tag::Cmd(Cmd::Del),
    ),
    ("clear", Some('C'), ArgKind::None, Tag::Cmd(Cmd::Flush)),
    ("list", Some('L'), ArgKind::None, Tag::Cmd(Cmd::List)),
    ("list", Some('l'), ArgKind::None, Tag::Cmd(Cmd::List)),
    ("zero", Some('Z'), ArgKind::None, Tag::Cmd(Cmd::Zero)),
    (
        "add-server",
        Some('a'),
        ArgKind::None,
        Tag::Cmd(Cmd::AddDest),
    ),
    (
        "edit-server",
        Some('e'),
        ArgKind::None,
        Tag::Cmd(Cmd::EditDest),
    ),
    (
        "delete-server",
        Some('d'),
        ArgKind::None,
        Tag::Cmd(Cmd::DelDest),
    ),
    ("set", None, ArgKind::None, Tag::Cmd(Cmd::Timeout)),
    ("help", Some('h'), ArgKind::None, Tag::Help),
    ("version", Some('v'), ArgKind::None, Tag::Version),
    ("restore", Some('R'), ArgKind::None, Tag::Cmd(Cmd::Restore)),
    ("save", Some('S'), ArgKind::None, Tag::Cmd(Cmd::Save)),
    ("start-daemon", None, ArgKind::Required, Tag::StartDaemon),
    ("stop-daemon", None, ArgKind::Required, Tag::StopDaemon),
    ("tcp-service", Some('t'), ArgKind::Required, Tag::Tcp),
    ("udp-service", Some('u'), ArgKind::Required, Tag::Udp),
    ("sctp-service", None, ArgKind::Required, Tag::Sctp),
    ("fwmark-service", Some('f'), ArgKind::Required, Tag::Fwmark),
    ("scheduler", Some('s'), ArgKind::Required, Tag::Scheduler),
    ("persistent", Some('p'), ArgKind::Optional, Tag::Persistent),
    ("netmask", Some('M'), ArgKind::Required, Tag::Netmask),
    ("real-server", Some('r'), ArgKind::Required, Tag::RealServer),
    ("masquerading", Some('m'), ArgKind::None, Tag::Masq),
    ("ipip", Some('i'), ArgKind::None, Tag::Ipip),
    ("gatewaying", Some('g'), ArgKind::None, Tag::Gatewaying),
    ("weight", Some('w'), ArgKind::Required, Tag::Weight),
    ("u-threshold", Some('x'), ArgKind::Required, Tag::UThreshold),
    ("l-threshold", Some('y'), ArgKind::Required, Tag::LThreshold),
    ("numeric", Some('n'), ArgKind::None, Tag::Numeric),
    ("connection", Some('c'), ArgKind::None, Tag::Connection),
    (
        "mcast-interface",
        None,
        ArgKind::Required,
        Tag::McastInterface,
    ),
    ("syncid", None, ArgKind::Required, Tag::Syncid),
    ("timeout", None, ArgKind::None, Tag::Timeout),
    ("daemon", None, ArgKind::None, Tag::Daemon),
    ("stats", None, ArgKind::None, Tag::Stats),
    ("rate", None, ArgKind::None, Tag::Rate),
    ("thresholds", None, ArgKind::None, Tag::Thresholds),
    ("persistent-conn", None, ArgKind::None, Tag::PersistentConn),
    ("nosort", None, ArgKind::None, Tag::NoSort),
    ("sort", None, ArgKind::None, Tag::Sort),
    ("exact", Some('X'), ArgKind::None, Tag::Exact),
    ("ipv6", Some('6'), ArgKind::None, Tag::Ipv6),
    ("ops", Some('o'), ArgKind::None, Tag::Ops),
    ("pe", None, ArgKind::Required, Tag::Pe),
    ("sched-flags", Some('b'), ArgKind::Required, Tag::SchedFlags),
    ("mcast-group", None, ArgKind::Required, Tag::McastGroup),
    ("mcast-port", None, ArgKind::Required, Tag::McastPort),
    ("mcast-ttl", None, ArgKind::Required, Tag::McastTtl),
    ("sync-maxlen", None, ArgKind::Required, Tag::SyncMaxlen),
    ("tun-info", None, ArgKind::None, Tag::TunInfo),
    ("tun-type", None, ArgKind::Required, Tag::TunType),
    ("tun-port", None, ArgKind::Required, Tag::TunPort),
    ("tun-nocsum", None, ArgKind::None, Tag::TunNocsum),
    ("tun-csum", None, ArgKind::None, Tag::TunCsum),
    ("tun-remcsum", None, ArgKind::None, Tag::TunRemcsum),
];

/// One option as popt hands it out: its tag, its argument, and the argv
/// element it came from (for `poptBadOption`).
enum Next {
    Opt(Tag, Option<String>, String),
    /// popt error: the argv element and popt's message.
    Error(String, &'static str),
    End,
}

/// A popt-like walk over argv: short clusters (`-Ln`, `-t10.0.0.1:80`),
/// `--long` and `--long=value`, optional arguments taken from the next
/// element when it does not start with '-', `--` ending options, and
/// non-option elements kept as leftover arguments.
struct Popt<'a> {
    argv: &'a [String],
    next: usize,
    cluster: Option<(String, usize)>,
    leftover: Vec<String>,
    done: bool,
}

impl<'a> Popt<'a> {
    fn new(argv: &'a [String]) -> Self {
        Self {
            argv,
            next: 1,
            cluster: None,
            leftover: Vec::new(),
            done: false,
        }
    }

    fn take_optional(&mut self) -> Option<String> {
        let a = self.argv.get(self.next)?;
        if a.starts_with('-') {
            return None;
        }
        self.next += 1;
        Some(a.clone())
    }

    fn get(&mut self) -> Next {
        loop {
            if let Some((elem, pos)) = self.cluster.take() {
                let chars: Vec<char> = elem.chars().collect();
                if pos < chars.len() {
                    let c = chars[pos];
                    let Some(&(_, _, kind, tag)) = OPTIONS.iter().find(|o| o.1 == Some(c)) else {
                        return Next::Error(elem, "unknown option");
                    };
                    let rest: String = chars[pos + 1..].iter().collect();
                    return match kind {
                        ArgKind::None => {
                            self.cluster = Some((elem.clone(), pos + 1));
                            Next::Opt(tag, None, elem)
                        }
                        ArgKind::Required | ArgKind::Optional if !rest.is_empty() => {
                            Next::Opt(tag, Some(rest), elem)
                        }
                        ArgKind::Optional => {
                            let a = self.take_optional();
                            Next::Opt(tag, a, elem)
                        }
                        ArgKind::Required => match self.argv.get(self.next) {
                            Some(a) => {
                                self.next += 1;
                                Next::Opt(tag, Some(a.clone()), elem)
                            }
                            None => Next::Error(elem, "missing argument"),
                        },
                    };
                }
            }
            let Some(a) = self.argv.get(self.next).cloned() else {
                return Next::End;
            };
            self.next += 1;
            if self.done || a == "-" || !a.starts_with('-') {
                self.leftover.push(a);
                continue;
            }
            if a == "--" {
                self.done = true;
                continue;
            }
            if let Some(long) = a.strip_prefix("--") {
                let (name, inline) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (long, None),
                };
                let Some(&(_, _, kind, tag)) = OPTIONS.iter().find(|o| o.0 == name) else {
                    return Next::Error(a, "unknown option");
                };
                return match (kind, inline) {
                    (ArgKind::None, Some(_)) => Next::Error(a, "option does not take an argument"),
                    (ArgKind::None, None) => Next::Opt(tag, None, a),
                    (_, Some(v)) => Next::Opt(tag, Some(v), a),
                    (ArgKind::Optional, None) => {
                        let v = self.take_optional();
                        Next::Opt(tag, v, a)
                    }
                    (ArgKind::Required, None) => match self.argv.get(self.next) {
                        Some(v) => {
                            self.next += 1;
                            Next::Opt(tag, Some(v.clone()), a)
                        }
                        None => Next::Error(a, "missing argument"),
                    },
                };
            }
            self.cluster = Some((a, 1));
        }
    }
}

fn fail(message: impl Into<String>) -> CliError {
    CliError {
        message: message.into(),
        exit_code: 2,
    }
}

fn tryhelp(program: &str) -> CliError {
    CliError {
        message: format!("Try `{program} -h' or '{program} --help' for more information."),
        exit_code: 255,
    }
}

/// ipvsadm's `string_to_number`: `strtol` base 10, the whole string, within range.
fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
    let t = s.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: i64 = digits.parse().ok()?;
    let v = if neg { -v } else { v };
    (min <= v && v <= max).then_some(v)
}

/// glibc's `inet_aton`: 1 to 4 parts, each decimal, octal (leading 0) or
/// hex (0x), the last part filling the remaining bytes.
pub fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut vals = Vec::with_capacity(4);
    for p in &parts {
        let v = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            if h.is_empty() {
                0
            } else {
                u64::from_str_radix(h, 16).ok()?
            }
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()?
        } else {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse::<u64>().ok()?
        };
        vals.push(v);
    }
    let n = vals.len();
    let last_bits = 8 * (5 - n as u32);
    let mut out: u64 = 0;
    for (i, v) in vals.iter().enumerate() {
        if i + 1 < n {
            if *v > 0xff {
                return None;
            }
            out |= v << (24 - 8 * i);
        } else {
            if last_bits < 64 && *v >= (1u64 << last_bits.min(32)) {
                return None;
            }
            out |= v;
        }
    }
    u32::try_from(out).ok().map(Ipv4Addr::from)
}

const SERVICE_ADDR: u8 = 1;
const SERVICE_PORT: u8 = 2;

fn proto_name(proto: u8) -> &'static str {
    match proto {
        TCP => "tcp",
        UDP => "udp",
        _ => "sctp",
    }
}

/// ipvsadm's `parse_service`: `[v6]:port`, bare v6, or host[:port].
fn parse_service(buf: &str, proto: u8, res: &dyn Resolve) -> (u8, Option<IpAddr>, u16) {
    if buf.bytes().all(|b| b.is_ascii_digit()) {
        return (0, None, 0);
    }
    let (host, portp): (&str, Option<&str>) = if let Some(b) = buf.strip_prefix('[') {
        let Some((h, rest)) = b.split_once(']') else {
            return (0, None, 0);
        };
        match rest.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None => return (0, None, 0),
        }
    } else {
        (buf, None)
    };
    let (addr, portp) = if let Ok(a6) = host.parse::<Ipv6Addr>() {
        (IpAddr::V6(a6), portp)
    } else {
        let (h, p) = match (portp, host.rsplit_once(':')) {
            (Some(p), _) => (host, Some(p)),
            (None, Some((h, p))) => (h, Some(p)),
            (None, None) => (host, None),
        };
        match inet_aton(h).or_else(|| res.host(h)) {
            Some(a) => (IpAddr::V4(a), p),
            None => return (0, None, 0),
        }
    };
    let mut result = SERVICE_ADDR;
    let mut port = 0;
    if let Some(p) = portp {
        result |= SERVICE_PORT;
        match string_to_number(p, 0, 65535) {
            Some(n) => port = n as u16,
            None => match res.service(p, proto_name(proto)) {
                Some(n) => port = n,
                None => return (0, None, 0),
            },
        }
    }
    (result, Some(addr), port)
}

fn parse_sched_flags(sched: &str, arg: &str) -> Result<u32, CliError> {
    let sched = if sched.is_empty() { "wlc" } else { sched };
    let mut flags = 0;
    for flag in arg.split(',').filter(|f| !f.is_empty()) {
        let (bit, only) = match flag {
            "flag-1" => (SVC_F_SCHED1, None),
            "flag-2" => (SVC_F_SCHED2, None),
            "flag-3" => (SVC_F_SCHED3, None),
            "sh-fallback" => (SVC_F_SCHED1, Some("sh")),
            "sh-port" => (SVC_F_SCHED2, Some("sh")),
            "mh-fallback" => (SVC_F_SCHED1, Some("mh")),
            "mh-port" => (SVC_F_SCHED2, Some("mh")),
            _ => return Err(fail(format!("invalid scheduler flag `{flag}'"))),
        };
        flags |= bit;
        if only.is_some_and(|s| s != sched) {
            return Err(fail(format!("incompatible scheduler flag `{flag}'")));
        }
    }
    Ok(flags)
}

/// The command entry ipvsadm fills while parsing (`struct ipvs_command_entry`).
struct Entry {
    cmd: Option<Cmd>,
    proto: u8,
    af6: bool,
    addr: Option<IpAddr>,
    port: u16,
    fwmark: u32,
    sched: String,
    flags: u32,
    timeout: u32,
    netmask: u32,
    pe: String,
    daddr: Option<IpAddr>,
    dport: u16,
    fwd: Forward,
    weight: i32,
    u_threshold: u32,
    l_threshold: u32,
    tun_type: u8,
    tun_port: u16,
    tun_flags: u8,
    daemon: Daemon,
    timeouts: (u32, u32, u32),
}

/// Parses a command line (`argv[0]` is the program name) as ipvsadm does.
/// An empty command line (`argv.len() == 1`) lists the table.
pub fn parse(argv: &[String], res: &dyn Resolve) -> Result<Parsed, CliError> {
    let program = argv.first().map(String::as_str).unwrap_or("ipvsadm");
    if argv.len() <= 1 {
        return Ok(Parsed::Run(Invocation {
            command: Command::List(None),
            list: ListOptions::default(),
        }));
    }
    let mut p = Popt::new(argv);
    let mut e = Entry {
        cmd: None,
        proto: 0,
        af6: false,
        addr: None,
        port: 0,
        fwmark: 0,
        sched: String::new(),
        flags: 0,
        timeout: 0,
        netmask: 0xffff_ffff,
        pe: String::new(),
        daddr: None,
        dport: 0,
        fwd: Forward::Route,
        weight: 1,
        u_threshold: 0,
        l_threshold: 0,
        tun_type: TUN_IPIP,
        tun_port: 0,
        tun_flags: TUN_F_NOCSUM,
        daemon: Daemon::default(),
        timeouts: (0, 0, 0),
    };
    let mut options: u64 = 0;
    let mut list = ListOptions::default();
    let mut sched_flags_arg = String::new();

    // The first option must be a command.
    match p.get() {
        Next::Opt(Tag::Cmd(c), _, _) => e.cmd = Some(c),
        Next::Opt(Tag::StartDaemon | Tag::StopDaemon, arg, elem) => {
            let start = elem.contains("start");
            e.cmd = Some(if start {
                Cmd::StartDaemon
            } else {
                Cmd::StopDaemon
            });
            let a = arg.unwrap_or_default();
            if a != "master" && a != "backup" {
                return Err(fail(if start {
                    "illegal start-daemon parameter specified"
                } else {
                    "illegal start_daemon specified"
                }));
            }
            e.daemon.state = a;
        }
        Next::Opt(Tag::Help, _, _) => return Ok(Parsed::Help(help_text(program))),
        Next::Opt(Tag::Version, _, _) => return Ok(Parsed::Version(version_text())),
        _ => return Err(tryhelp(program)),
    }
    let set = |options: &mut u64, o: usize| -> Result<(), CliError> {
        if *options & (1 << o) != 0 {
            return Err(fail(format!(
                "multiple '{}' options specified",
                OPTNAMES[o]
            )));
        }
        *options |= 1 << o;
        Ok(())
    };
    loop {
        let (tag, arg, elem) = match p.get() {
            Next::End => break,
            Next::Error(elem, why) => {
                return Err(CliError {
                    message: format!("{elem}: {why}"),
                    exit_code: 255,
                });
            }
            Next::Opt(t, a, el) => (t, a, el),
        };
        let arg = arg.unwrap_or_default();
        match tag {
            Tag::Tcp | Tag::Udp | Tag::Sctp => {
                set(&mut options, O_SERVICE)?;
                e.proto = match tag {
                    Tag::Tcp => TCP,
                    Tag::Udp => UDP,
                    _ => SCTP,
                };
                let (r, addr, port) = parse_service(&arg, e.proto, res);
                if r & SERVICE_ADDR == 0 {
                    return Err(fail("illegal virtual server address[:port] specified"));
                }
                e.addr = addr;
                e.port = port;
                if addr.is_some_and(|a| a.is_ipv6()) {
                    e.af6 = true;
                    e.netmask = 128;
                } else {
                    e.af6 = false;
                }
            }
            Tag::Fwmark => {
                set(&mut options, O_SERVICE)?;
                e.af6 = false;
                e.proto = TCP;
                let ok = string_to_number(&arg, 1, i64::from(u32::MAX))
                    .filter(|_| !arg.trim_start().starts_with('+'));
                match ok {
                    Some(v) => e.fwmark = v as u32,
                    None => return Err(fail(format!("invalid fwmark value `{arg}' specified"))),
                }
            }
            Tag::Scheduler => {
                set(&mut options, O_SCHEDULER)?;
                e.sched = arg.chars().take(15).collect();
            }
            Tag::Persistent => {
                set(&mut options, O_PERSISTENT)?;
                e.flags |= SVC_F_PERSISTENT;
                e.timeout = if arg.is_empty() {
                    DEFAULT_PERSISTENT_TIMEOUT
                } else {
                    parse_timeout(&arg, 1)?
                };
            }
            Tag::Netmask => {
                set(&mut options, O_NETMASK)?;
                if !e.af6 {
                    match inet_aton(&arg).or_else(|| res.host(&arg)) {
                        Some(m) => e.netmask = u32::from(m),
                        None => {
                            return Err(fail("illegal virtual server persistent mask specified"));
                        }
                    }
                } else {
                    let n = atoi(&arg);
                    if !(1..=128).contains(&n) {
                        return Err(fail("illegal ipv6 netmask specified"));
                    }
                    e.netmask = n as u32;
                }
            }
            Tag::RealServer => {
                set(&mut options, O_SERVER)?;
                let (r, addr, port) = parse_service(&arg, e.proto, res);
                if r & SERVICE_ADDR == 0 {
                    return Err(fail("illegal real server address[:port] specified"));
                }
                e.daddr = addr;
                e.dport = if r == SERVICE_ADDR { e.port } else { port };
            }
            Tag::Ipip | Tag::Gatewaying | Tag::Masq => {
                set(&mut options, O_FORWARD)?;
                e.fwd = match tag {
                    Tag::Ipip => Forward::Tunnel,
                    Tag::Gatewaying => Forward::Route,
                    _ => Forward::Masq,
                };
            }
            Tag::Weight => {
                set(&mut options, O_WEIGHT)?;
                e.weight = string_to_number(&arg, 0, 65535)
                    .ok_or_else(|| fail("illegal weight specified"))?
                    as i32;
            }
            Tag::UThreshold => {
                set(&mut options, O_UTHRESHOLD)?;
                e.u_threshold = string_to_number(&arg, 0, i64::from(i32::MAX))
                    .ok_or_else(|| fail("illegal u_threshold specified"))?
                    as u32;
            }
            Tag::LThreshold => {
                set(&mut options, O_LTHRESHOLD)?;
                e.l_threshold = string_to_number(&arg, 0, i64::from(i32::MAX))
                    .ok_or_else(|| fail("illegal l_threshold specified"))?
                    as u32;
            }
            Tag::Connection => {
                set(&mut options, O_CONNECTION)?;
                list.connections = true;
            }
            Tag::Numeric => {
                set(&mut options, O_NUMERIC)?;
                list.numeric = true;
            }
            Tag::McastInterface => {
                set(&mut options, O_MCAST)?;
                e.daemon.mcast_ifn = arg.chars().take(15).collect();
            }
            Tag::Syncid => {
                set(&mut options, O_SYNCID)?;
                e.daemon.syncid = string_to_number(&arg, 0, 255)
                    .ok_or_else(|| fail("illegal syncid specified"))?
                    as u32;
            }
            Tag::Timeout => {
                set(&mut options, O_TIMEOUT)?;
                list.timeout = true;
            }
            Tag::Daemon => {
                set(&mut options, O_DAEMON)?;
                list.daemon = true;
            }
            Tag::Stats => {
                set(&mut options, O_STATS)?;
                list.stats = true;
            }
            Tag::Rate => {
                set(&mut options, O_RATE)?;
                list.rate = true;
            }
            Tag::Thresholds => {
                set(&mut options, O_THRESHOLDS)?;
                list.thresholds = true;
            }
            Tag::PersistentConn => {
                set(&mut options, O_PERSISTENTCONN)?;
                list.persistent_conn = true;
            }
            Tag::NoSort => {
                set(&mut options, O_NOSORT)?;
                list.nosort = true;
            }
            Tag::Sort => {}
            Tag::Exact => {
                set(&mut options, O_EXACT)?;
                list.exact = true;
            }
            Tag::Ipv6 => {
                if e.fwmark != 0 {
                    e.af6 = true;
                    e.netmask = 128;
                } else {
                    return Err(fail("-6 used before -f\n"));
                }
            }
            Tag::Ops => {
                set(&mut options, O_ONEPACKET)?;
                e.flags |= SVC_F_ONEPACKET;
            }
            Tag::Pe => {
                set(&mut options, O_PE)?;
                e.pe = arg.chars().take(32).collect();
            }
            Tag::SchedFlags => {
                set(&mut options, O_SCHED_FLAGS)?;
                sched_flags_arg = arg.chars().take(127).collect();
            }
            Tag::McastGroup => {
                set(&mut options, O_MCAST_GROUP)?;
                if arg.contains(':') {
                    match arg.parse::<Ipv6Addr>() {
                        Ok(a) if a.is_multicast() => e.daemon.mcast_group = Some(IpAddr::V6(a)),
                        _ => return Err(fail(format!("invalid IPv6 mcast-group `{arg}'"))),
                    }
                } else {
                    match arg.parse::<Ipv4Addr>() {
                        Ok(a) if a.is_multicast() => e.daemon.mcast_group = Some(IpAddr::V4(a)),
                        _ => return Err(fail(format!("invalid IPv4 mcast-group `{arg}'"))),
                    }
                }
            }
            Tag::McastPort => {
                set(&mut options, O_MCAST_PORT)?;
                e.daemon.mcast_port = string_to_number(&arg, 1, 65535)
                    .ok_or_else(|| fail("illegal mcast-port specified"))?
                    as u16;
            }
            Tag::McastTtl => {
                set(&mut options, O_MCAST_TTL)?;
                e.daemon.mcast_ttl = string_to_number(&arg, 1, 255)
                    .ok_or_else(|| fail("illegal mcast-ttl specified"))?
                    as u8;
            }
            Tag::SyncMaxlen => {
                set(&mut options, O_SYNC_MAXLEN)?;
                e.daemon.sync_maxlen = string_to_number(&arg, 1, 65535 - 20 - 8)
                    .ok_or_else(|| fail("illegal sync-maxlen specified"))?
                    as u32;
            }
            Tag::TunInfo => {
                set(&mut options, O_TUN_INFO)?;
                list.tun_info = true;
            }
            Tag::TunType => {
                set(&mut options, O_TUN_TYPE)?;
                e.tun_type = match arg.as_str() {
                    "ipip" => TUN_IPIP,
                    "gue" => TUN_GUE,
                    "gre" => TUN_GRE,
                    _ => return Err(fail("illegal tunnel type specified")),
                };
            }
            Tag::TunPort => {
                set(&mut options, O_TUN_PORT)?;
                e.tun_port = string_to_number(&arg, 1, 65535)
                    .ok_or_else(|| fail("illegal tunnel port specified"))?
                    as u16;
            }
            Tag::TunNocsum => {
                set(&mut options, O_TUN_NOCSUM)?;
                e.tun_flags |= TUN_F_NOCSUM;
            }
            Tag::TunCsum => {
                set(&mut options, O_TUN_CSUM)?;
                e.tun_flags |= TUN_F_CSUM;
            }
            Tag::TunRemcsum => {
                set(&mut options, O_TUN_REMCSUM)?;
                e.tun_flags |= TUN_F_REMCSUM;
            }
            Tag::Cmd(_) | Tag::Help | Tag::Version | Tag::StartDaemon | Tag::StopDaemon => {
                return Err(fail(format!("invalid option `{elem}'")));
            }
        }
    }
    let mut leftover = std::mem::take(&mut p.leftover).into_iter();
    let cmd = e.cmd.unwrap_or(Cmd::List);
    if cmd == Cmd::Timeout {
        match (leftover.next(), leftover.next(), leftover.next()) {
            (Some(a), Some(b), Some(c)) => {
                e.timeouts = (
                    parse_timeout(&a, 0)?,
                    parse_timeout(&b, 0)?,
                    parse_timeout(&c, 0)?,
                );
            }
            _ => return Err(fail("--set option requires 3 timeout values")),
        }
    }
    if let Some(extra) = leftover.next() {
        return Err(fail(format!("unexpected argument {extra}")));
    }
    if !sched_flags_arg.is_empty() {
        e.flags &= !SVC_F_SCHED_MASK;
        e.flags |= parse_sched_flags(&e.sched, &sched_flags_arg)?;
    }

    generic_opt_check(cmd, options)?;
    if matches!(cmd, Cmd::Add | Cmd::Edit) {
        if e.fwmark == 0 && e.port == 0 && e.flags & SVC_F_PERSISTENT == 0 {
            return Err(fail("Zero port specified for non-persistent service"));
        }
        if e.flags & SVC_F_ONEPACKET != 0 && e.fwmark == 0 && e.proto != UDP {
            return Err(fail(
                "One-Packet Scheduling is only for UDP virtual services",
            ));
        }
        if e.sched.is_empty() {
            e.sched = "wlc".into();
        }
    }
    if cmd == Cmd::StartDaemon && e.daemon.mcast_ifn.is_empty() {
        e.daemon.mcast_ifn = "eth0".into();
    }
    if matches!(cmd, Cmd::AddDest | Cmd::EditDest) {
        if e.fwmark == 0 && matches!(e.fwd, Forward::Tunnel | Forward::Route) {
            e.dport = e.port;
        }
        let d6 = e.daddr.is_some_and(|a| a.is_ipv6());
        if d6 != e.af6 && e.fwd != Forward::Tunnel {
            return Err(fail(
                "Different address family is allowed only for tunneling servers",
            ));
        }
        let tun_opts = [
            O_TUN_TYPE,
            O_TUN_PORT,
            O_TUN_NOCSUM,
            O_TUN_CSUM,
            O_TUN_REMCSUM,
        ];
        if tun_opts.iter().any(|o| options & (1 << o) != 0) && e.fwd != Forward::Tunnel {
            return Err(fail("Tunnel options conflict with forward method"));
        }
        tunnel_opt_check(e.tun_type, options)?;
    }
    if cmd == Cmd::List {
        let has = |o: usize| options & (1 << o) != 0;
        if ((has(O_CONNECTION) || has(O_TIMEOUT) || has(O_DAEMON))
            && (has(O_STATS) || has(O_RATE) || has(O_THRESHOLDS)))
            || ((has(O_TIMEOUT) || has(O_DAEMON)) && has(O_PERSISTENTCONN))
        {
            return Err(fail("options conflicts in the list command"));
        }
    }
    let key = if e.fwmark != 0 {
        ServiceKey::Fwmark {
            mark: e.fwmark,
            ipv6: e.af6,
        }
    } else {
        ServiceKey::Addr {
            proto: e.proto,
            addr: e.addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            port: e.port,
        }
    };
    let has_svc = options & (1 << O_SERVICE) != 0;
    let service = Service {
        key,
        scheduler: e.sched.clone(),
        flags: e.flags,
        timeout: e.timeout,
        netmask: e.netmask,
        pe_name: e.pe.clone(),
    };
    let dest = Dest {
        addr: e.daddr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        port: e.dport,
        fwd: e.fwd,
        weight: e.weight,
        u_threshold: e.u_threshold,
        l_threshold: e.l_threshold,
        tun_type: e.tun_type,
        tun_port: e.tun_port,
        tun_flags: e.tun_flags,
    };
    let command = match cmd {
        Cmd::Add => Command::AddService(service),
        Cmd::Edit => Command::EditService(service),
        Cmd::Del => Command::DelService(key),
        Cmd::Flush => Command::Clear,
        Cmd::List => Command::List(has_svc.then_some(key)),
        Cmd::AddDest => Command::AddDest(key, dest),
        Cmd::EditDest => Command::EditDest(key, dest),
        Cmd::DelDest => Command::DelDest(key, dest.addr, dest.port),
        Cmd::Timeout => Command::SetTimeouts {
            tcp: e.timeouts.0,
            tcpfin: e.timeouts.1,
            udp: e.timeouts.2,
        },
        Cmd::StartDaemon => Command::StartDaemon(e.daemon),
        Cmd::StopDaemon => Command::StopDaemon(e.daemon),
        Cmd::Restore => Command::Restore,
        Cmd::Save => Command::Save,
        Cmd::Zero => Command::Zero(has_svc.then_some(key)),
    };
    Ok(Parsed::Run(Invocation { command, list }))
}

/// C `atoi`: leading whitespace, sign, digits; 0 when none.
fn atoi(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let v = digits.parse::<i64>().unwrap_or(0);
    if neg { -v } else { v }
}

fn parse_timeout(s: &str, min: i64) -> Result<u32, CliError> {
    string_to_number(s, min, 86400 * 31)
        .map(|v| v as u32)
        .ok_or_else(|| fail(format!("invalid timeout value `{s}' specified")))
}

fn check_table(
    row: &[u8],
    opts: &[usize],
    options: u64,
    what: &str,
    name: &str,
) -> Result<(), CliError> {
    let mut last = None;
    for (j, &o) in opts.iter().enumerate() {
        let rule = row.get(j).copied().unwrap_or(b' ');
        if options & (1 << o) == 0 {
            if rule == b'+' {
                return Err(fail(format!(
                    "You need to supply the '{}' option for the '{name}' {what}",
                    OPTNAMES[o]
                )));
            }
            continue;
        }
        if rule == b'x' {
            return Err(fail(format!(
                "Illegal '{}' option with the '{name}' {what}",
                OPTNAMES[o]
            )));
        }
        if rule == b'1' {
            match last {
                None => last = Some(o),
                Some(l) => {
                    return Err(fail(format!(
                        "The option '{}' conflicts with the '{}' option in the '{name}' {what}",
                        OPTNAMES[o], OPTNAMES[l]
                    )));
                }
            }
        }
    }
    Ok(())
}

fn generic_opt_check(cmd: Cmd, options: u64) -> Result<(), CliError> {
    let i = cmd as usize;
    let all: Vec<usize> = (0..NOPT).collect();
    check_table(TABLE[i].as_bytes(), &all, options, "command", CMDNAMES[i])
}

fn tunnel_opt_check(tun_type: u8, options: u64) -> Result<(), CliError> {
    let i = usize::from(tun_type).min(2);
    check_table(
        TUN_TABLE[i].as_bytes(),
        &TUN_OPTS,
        options,
        "tunnel type",
        TUNNAMES[i],
    )
}

/// `ipvsadm -v`.
pub fn version_text() -> String {
    "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n".to_string()
}

/// `ipvsadm -h` (the version line, then the usage).
pub fn help_text(program: &str) -> String {
    let p = program;
    let mut s = version_text();
    s += &format!(
        "Usage:\n  {p} -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]\n  {p} -D virtual-service\n  {p} -C\n  {p} -R\n  {p} -S [-n]\n  {p} -a|e virtual-service -r server-address [options]\n  {p} -d virtual-service -r server-address\n  {p} -L|l [virtual-service] [options]\n  {p} -Z [virtual-service]\n  {p} --set tcp tcpfin udp\n  {p} --start-daemon {{master|backup}} [daemon-options]\n  {p} --stop-daemon {{master|backup}}\n  {p} -h\n\n"
    );
    s += "Commands:\nEither long or short options are allowed.\n  --add-service     -A        add virtual service with options\n  --edit-service    -E        edit virtual service with options\n  --delete-service  -D        delete virtual service\n  --clear           -C        clear the whole table\n  --restore         -R        restore rules from stdin\n  --save            -S        save rules to stdout\n  --add-server      -a        add real server with options\n  --edit-server     -e        edit real server with options\n  --delete-server   -d        delete real server\n  --list            -L|-l     list the table\n  --zero            -Z        zero counters in a service or all services\n  --set tcp tcpfin udp        set connection timeout values\n  --start-daemon              start connection sync daemon\n  --stop-daemon               stop connection sync daemon\n  --help            -h        display this help message\n\n";
    s += "virtual-service:\n  --tcp-service|-t  service-address   service-address is host[:port]\n  --udp-service|-u  service-address   service-address is host[:port]\n  --sctp-service    service-address   service-address is host[:port]\n  --fwmark-service|-f fwmark          fwmark is an integer greater than zero\n\n";
    s += "Options:\n  --ipv6         -6                   fwmark entry uses IPv6\n  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh|twos,\n                                      the default scheduler is wlc.\n  --pe            engine              alternate persistence engine may be sip,\n                                      not set by default.\n  --persistent   -p [timeout]         persistent service\n  --netmask      -M netmask           persistent granularity mask\n  --real-server  -r server-address    server-address is host (and port)\n  --gatewaying   -g                   gatewaying (direct routing) (default)\n  --ipip         -i                   ipip encapsulation (tunneling)\n  --masquerading -m                   masquerading (NAT)\n  --tun-type      type                one of ipip|gue|gre,\n                                      the default tunnel type is ipip.\n  --tun-port      port                tunnel destination port\n  --tun-nocsum                        tunnel encapsulation without checksum\n  --tun-csum                          tunnel encapsulation with checksum\n  --tun-remcsum                       tunnel encapsulation with remote checksum\n  --weight       -w weight            capacity of real server\n  --u-threshold  -x uthreshold        upper threshold of connections\n  --l-threshold  -y lthreshold        lower threshold of connections\n  --connection   -c                   output of current IPVS connections\n  --timeout                           output of timeout (tcp tcpfin udp)\n  --daemon                            output of daemon information\n  --stats                             output of statistics information\n  --rate                              output of rate information\n  --exact                             expand numbers (display exact values)\n  --thresholds                        output of thresholds information\n  --persistent-conn                   output of persistent connection info\n  --tun-info                          output of tunnel information\n  --nosort                            disable sorting output of service/server entries\n  --sort                              does nothing, for backwards compatibility\n  --ops          -o                   one-packet scheduling\n  --numeric      -n                   numeric output of addresses and ports\n  --sched-flags  -b flags             scheduler flags (comma-separated)\n";
    s += "Daemon Options:\n  --syncid sid                        syncid for connection sync (default=255)\n  --sync-maxlen length                Max sync message length (default=1472)\n  --mcast-interface interface         multicast interface for connection sync\n  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)\n  --mcast-port port                   UDP port (default=8848)\n  --mcast-ttl ttl                     Multicast TTL (default=1)\n";
    s
}
