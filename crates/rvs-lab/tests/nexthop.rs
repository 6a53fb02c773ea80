//! rvsd's next-hop resolution over netlink against a real kernel, inside
//! namespaces this test creates (and the lab removes on drop):
//!
//! ```text
//!  a (10.77.0.2, fd77::2) ── a0|d0 ── d ── d1|b0 ── b (10.78.0.2, fd78::2)
//!  d: 10.88.0.0/24 and fd88::/64 via a; nothing else routed
//! ```
//!
//! The cache runs in a thread that entered `d` (setns), as rvsd's worker
//! runs in rvsd's namespace. Neighbours are learned (the kernel resolves on
//! request) or set by hand; after `ip neigh replace` or `ip route replace`
//! the next answer is the new one, as soon as the notification is read.
//! Skipped, with the reason, when not root.

use rvs_lab::Lab;
use rvs_types::{Addr, Instant};
use rvsd::nexthop::{NextHop, NextHops};
use std::time::Duration;

/// How long a notification or a resolution may take (they take
/// milliseconds; this is only the bound of the wait).
const WAIT: Duration = Duration::from_secs(3);

fn skip_reason() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if !status
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    {
        return Some("needs root (network namespaces)".into());
    }
    if rvs_lab::run(std::process::Command::new("ip").arg("-V")).is_err() {
        return Some("ip (iproute2) is not installed".into());
    }
    None
}

/// Runs `f` in a thread that entered network namespace `ns`.
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                use std::os::fd::AsRawFd;
                let file = std::fs::File::open(&path).expect("namespace file");
                // SAFETY: a namespace descriptor; this only moves this thread.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("netns thread")
    })
}

fn mac_of(lab: &Lab, ns: &str, dev: &str) -> [u8; 6] {
    let out = lab
        .exec(ns, &["cat", &format!("/sys/class/net/{dev}/address")])
        .expect("mac");
    let mut mac = [0u8; 6];
    let parts: Vec<u8> = out
        .trim()
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).expect("hex"))
        .collect();
    mac.copy_from_slice(&parts);
    mac
}

fn ifindex_of(lab: &Lab, ns: &str, dev: &str) -> u32 {
    lab.exec(ns, &["cat", &format!("/sys/class/net/{dev}/ifindex")])
        .expect("ifindex")
        .trim()
        .parse()
        .expect("number")
}

fn addr(s: &str) -> Addr {
    Addr::from(s.parse::<std::net::IpAddr>().expect("address"))
}

/// The clock of the cache.
struct Clock(std::time::Instant);

impl Clock {
    fn now(&self) -> Instant {
        Instant::from_nanos(self.0.elapsed().as_nanos() as u64)
    }
}

/// Polls notifications and resolves `dst` through `slot` until the answer
/// is `want` (bounded); the number of rounds it took, or the last answer.
fn wait_for(
    nh: &mut NextHops,
    clock: &Clock,
    slot: &mut u32,
    dst: &Addr,
    want: Option<NextHop>,
) -> Result<usize, Option<NextHop>> {
    let t0 = std::time::Instant::now();
    let mut rounds = 0;
    loop {
        nh.poll(clock.now(), |_, _| {});
        let got = nh.resolve_slot(slot, dst, clock.now());
        if got == want {
            return Ok(rounds);
        }
        if t0.elapsed() > WAIT {
            return Err(got);
        }
        rounds += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
}

struct Net {
    lab: Lab,
    d: String,
    d0: u32,
    d1: u32,
    a_mac: [u8; 6],
    b_mac: [u8; 6],
}

fn build() -> Net {
    let mut lab = Lab::new().expect("lab");
    for n in ["d", "a", "b"] {
        lab.add_ns(n).expect("namespace");
    }
    lab.link("d", "d0", "a", "a0").expect("veth d0");
    lab.link("d", "d1", "b", "b0").expect("veth d1");
    let ip = |ns: &str, args: &[&str]| {
        let mut v = vec!["ip"];
        v.extend_from_slice(args);
        lab.exec(ns, &v).expect("ip");
    };
    ip("d", &["addr", "add", "10.77.0.1/24", "dev", "d0"]);
    ip("d", &["addr", "add", "fd77::1/64", "dev", "d0", "nodad"]);
    ip("d", &["addr", "add", "10.78.0.1/24", "dev", "d1"]);
    ip("d", &["addr", "add", "fd78::1/64", "dev", "d1", "nodad"]);
    ip("a", &["addr", "add", "10.77.0.2/24", "dev", "a0"]);
    ip("a", &["addr", "add", "fd77::2/64", "dev", "a0", "nodad"]);
    ip("b", &["addr", "add", "10.78.0.2/24", "dev", "b0"]);
    ip("b", &["addr", "add", "fd78::2/64", "dev", "b0", "nodad"]);
    ip("d", &["route", "add", "10.88.0.0/24", "via", "10.77.0.2"]);
    ip("d", &["-6", "route", "add", "fd88::/64", "via", "fd77::2"]);
    ip("d", &["route", "add", "unreachable", "10.98.0.0/24"]);
    // IPv6 neighbour solicitations need a link-local source that passed
    // duplicate address detection: wait for it (bounded).
    for (ns, dev) in [("d", "d0"), ("d", "d1"), ("a", "a0"), ("b", "b0")] {
        let t0 = std::time::Instant::now();
        while lab
            .exec(ns, &["ip", "-6", "addr", "show", "dev", dev, "tentative"])
            .map(|o| !o.trim().is_empty())
            .unwrap_or(true)
        {
            assert!(t0.elapsed() < Duration::from_secs(10), "DAD on {dev}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let d = lab.ns("d");
    Net {
        d0: ifindex_of(&lab, "d", "d0"),
        d1: ifindex_of(&lab, "d", "d1"),
        a_mac: mac_of(&lab, "a", "a0"),
        b_mac: mac_of(&lab, "b", "b0"),
        lab,
        d,
    }
}

#[test]
fn next_hops_follow_the_kernels_tables() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED next_hops_follow_the_kernels_tables: {why}");
        return;
    }
    let net = build();
    let (d0, d1, a_mac, b_mac) = (net.d0, net.d1, net.a_mac, net.b_mac);
    let on_d0 = |mac| Some(NextHop { ifindex: d0, mac });
    let on_d1 = |mac| Some(NextHop { ifindex: d1, mac });
    let lab = &net.lab;
    // Commands run through `ip netns exec`, wherever the caller is.
    let run = |args: &[&str]| {
        lab.exec("d", args).expect("command in d");
    };
    in_netns(&net.d, || scenario(d0, d1, a_mac, b_mac, on_d0, on_d1, run));
}

#[allow(clippy::too_many_arguments)]
fn scenario(
    d0: u32,
    d1: u32,
    a_mac: [u8; 6],
    b_mac: [u8; 6],
    on_d0: impl Fn([u8; 6]) -> Option<NextHop>,
    on_d1: impl Fn([u8; 6]) -> Option<NextHop>,
    run: impl Fn(&[&str]),
) {
    let clock = Clock(std::time::Instant::now());
    let mut nh = NextHops::open().expect("netlink sockets");
    assert_eq!(nh.ifname(d0).as_deref(), Some("d0"));
    assert_eq!(nh.ifname(d1).as_deref(), Some("d1"));

    // On-link IPv4, not yet known: the kernel resolves it on request; a
    // frame held meanwhile leaves with the answer.
    let a = addr("10.77.0.2");
    assert_eq!(nh.resolve(&a, clock.now()), None, "no neighbour entry yet");
    assert_eq!(nh.unresolved, 1);
    assert!(nh.hold(&a, b"held frame"));
    let t0 = std::time::Instant::now();
    let mut released = Vec::new();
    while released.is_empty() && t0.elapsed() < WAIT {
        nh.poll(clock.now(), |h, f| released.push((h, f)));
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        released,
        vec![(on_d0(a_mac).unwrap(), b"held frame".to_vec())],
        "the held frame goes once the kernel resolved the neighbour"
    );
    let mut slot_a = u32::MAX;
    assert_eq!(nh.resolve_slot(&mut slot_a, &a, clock.now()), on_d0(a_mac));

    // Gatewayed IPv4: the gateway's MAC, on the gateway's interface.
    let far = addr("10.88.0.5");
    let mut slot_far = u32::MAX;
    assert_eq!(
        nh.resolve_slot(&mut slot_far, &far, clock.now()),
        on_d0(a_mac)
    );

    // IPv6, on-link and gatewayed.
    let a6 = addr("fd77::2");
    let far6 = addr("fd88::5");
    let mut slot_a6 = u32::MAX;
    let mut slot_far6 = u32::MAX;
    wait_for(&mut nh, &clock, &mut slot_a6, &a6, on_d0(a_mac)).expect("IPv6 on-link");
    assert_eq!(
        nh.resolve_slot(&mut slot_far6, &far6, clock.now()),
        on_d0(a_mac)
    );

    // A static neighbour with a new MAC: established connections (their
    // slots) see it as soon as the notification is read.
    let new_mac = [0x02, 0x42, 0, 0, 0, 0x99];
    run(&[
        "ip",
        "neigh",
        "replace",
        "10.77.0.2",
        "lladdr",
        "02:42:00:00:00:99",
        "dev",
        "d0",
        "nud",
        "permanent",
    ]);
    let before = slot_far;
    wait_for(&mut nh, &clock, &mut slot_far, &far, on_d0(new_mac)).expect("new MAC via gateway");
    assert_eq!(slot_far, before, "the connection keeps its slot");
    assert_eq!(
        nh.resolve_slot(&mut slot_a, &a, clock.now()),
        on_d0(new_mac)
    );
    // IPv6 is its own table: unchanged.
    assert_eq!(
        nh.resolve_slot(&mut slot_a6, &a6, clock.now()),
        on_d0(a_mac)
    );
    run(&[
        "ip",
        "-6",
        "neigh",
        "replace",
        "fd77::2",
        "lladdr",
        "02:42:00:00:00:66",
        "dev",
        "d0",
        "nud",
        "permanent",
    ]);
    wait_for(
        &mut nh,
        &clock,
        &mut slot_far6,
        &far6,
        on_d0([0x02, 0x42, 0, 0, 0, 0x66]),
    )
    .expect("new IPv6 MAC via gateway");

    // A route change: the gatewayed destination now goes through b.
    run(&["ip", "route", "replace", "10.88.0.0/24", "via", "10.78.0.2"]);
    wait_for(&mut nh, &clock, &mut slot_far, &far, on_d1(b_mac)).expect("new route");
    run(&[
        "ip",
        "-6",
        "route",
        "replace",
        "fd88::/64",
        "via",
        "fd78::2",
    ]);
    wait_for(&mut nh, &clock, &mut slot_far6, &far6, on_d1(b_mac)).expect("new IPv6 route");
    // The route goes: nothing.
    run(&["ip", "route", "del", "10.88.0.0/24"]);
    wait_for(&mut nh, &clock, &mut slot_far, &far, None).expect("route removed");

    // Unknown and unreachable destinations: none, counted.
    let counted = nh.unresolved;
    assert_eq!(nh.resolve(&addr("10.99.0.1"), clock.now()), None);
    assert_eq!(nh.resolve(&addr("10.98.0.1"), clock.now()), None);
    assert_eq!(nh.resolve(&addr("fd99::1"), clock.now()), None);
    assert_eq!(nh.unresolved, counted + 3);
    // The director's own address is not a next hop either.
    assert_eq!(nh.resolve(&addr("10.77.0.1"), clock.now()), None);
    assert!(
        !nh.hold(&addr("10.99.0.1"), b"x"),
        "no route: nothing to hold for"
    );
}
