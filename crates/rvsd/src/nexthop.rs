//! Next hops from the kernel's routing and neighbour tables: the egress
//! interface and the MAC to send a forwarded frame to. The kernel resolves
//! (ARP/ND) — rvs only asks, never runs its own resolver.
//!
//! This first version asks through iproute2's JSON output (`ip -j route get`,
//! `ip -j neigh`), once per next hop, cached for a few seconds; when the
//! kernel has no neighbour entry yet, a datagram to the discard port makes it
//! resolve one. The netlink version (rtnetlink, with change notifications
//! invalidating the cache) is the next step.

use rvs_types::{Addr, Instant};
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

/// Where a frame for one next hop goes.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct NextHop {
    /// Egress interface name.
    pub dev: String,
    /// The MAC to send to (the gateway's, or the destination's on-link).
    pub mac: [u8; 6],
}

/// A cache of next hops.
#[derive(Debug, Default)]
pub struct NextHops {
    cache: HashMap<Addr, (NextHop, Instant)>,
    /// Lookups that found no route or no neighbour in time.
    pub unresolved: u64,
}

const TTL: Duration = Duration::from_secs(10);

impl NextHops {
    /// The next hop toward `dst`, from the cache or the kernel.
    pub fn resolve(&mut self, dst: &Addr, now: Instant) -> Option<NextHop> {
        if let Some((nh, at)) = self.cache.get(dst)
            && now.saturating_duration_since(*at) < TTL
        {
            return Some(nh.clone());
        }
        match ask_kernel(dst) {
            Some(nh) => {
                self.cache.insert(*dst, (nh.clone(), now));
                Some(nh)
            }
            None => {
                self.unresolved += 1;
                None
            }
        }
    }
}

fn json(args: &[&str]) -> Option<serde_json::Value> {
    let out = Command::new("ip").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn ask_kernel(dst: &Addr) -> Option<NextHop> {
    let ip = dst.to_ip().to_string();
    let fam = if dst.is_v4() { "-4" } else { "-6" };
    let route = json(&["-j", fam, "route", "get", &ip])?;
    let r = route.as_array()?.first()?;
    let dev = r.get("dev")?.as_str()?.to_string();
    let via = r
        .get("gateway")
        .and_then(|g| g.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| ip.clone());
    for attempt in 0..20 {
        if let Some(mac) = neighbour(fam, &via, &dev) {
            return Some(NextHop { dev, mac });
        }
        if attempt == 0 {
            // Make the kernel resolve it: any datagram toward the address does.
            let target: std::net::IpAddr = via.parse().ok()?;
            let bind = if target.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            if let Ok(s) = std::net::UdpSocket::bind(bind) {
                let _ = s.send_to(b"", (target, 9));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn neighbour(fam: &str, addr: &str, dev: &str) -> Option<[u8; 6]> {
    let n = json(&["-j", fam, "neigh", "show", "to", addr, "dev", dev])?;
    for e in n.as_array()? {
        let states: Vec<&str> = e
            .get("state")
            .and_then(|s| s.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        if states.iter().any(|s| matches!(*s, "INCOMPLETE" | "FAILED")) {
            continue;
        }
        let ll = e.get("lladdr")?.as_str()?;
        let mut mac = [0u8; 6];
        let parts: Vec<&str> = ll.split(':').collect();
        if parts.len() != 6 {
            continue;
        }
        for (m, p) in mac.iter_mut().zip(parts) {
            *m = u8::from_str_radix(p, 16).ok()?;
        }
        return Some(mac);
    }
    None
}
