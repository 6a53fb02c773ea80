//! The kernel side of the fwmark path: how packets the user's own
//! iptables/nftables rules marked reach the engine with their mark.
//!
//! XDP runs before netfilter and never sees skb->mark; policy routing does.
//! rvsd (in its own network namespace, when it serves interfaces) creates a
//! veth pair [`TAG_IF`] ⇄ [`RX_IF`] and a routing table [`TABLE`] whose
//! default route points into [`TAG_IF`] through a fixed next hop with a
//! permanent neighbour entry (the kernel never ARPs there). For every fwmark
//! service it installs `ip rule fwmark N lookup TABLE`, placed just in
//! front of the `local` rule at the local rule's own preference (the local
//! rule is re-added behind rvsd's rules, then the old one deleted, so local
//! delivery never lapses and the user's other rules keep their order): a
//! marked packet to a VIP the director holds as a local address is routed
//! into the veth instead of being delivered locally. The tc program on
//! [`TAG_IF`] writes the mark into the frame (`rvs_bpf::MarkTag`), the XDP
//! program on [`RX_IF`] hands it to rvsd's AF_XDP socket (`dataplane`).
//!
//! Everything is removed again on drop (rules, table, veth; the local rule
//! goes back to its kernel form), and state a killed rvsd left behind is
//! cleared at start. This version drives iproute2 (`ip`) and `ethtool`.

use rvs_types::Af;
use std::collections::BTreeSet;
use std::process::Command;

/// The veth end marked packets are routed into; the tc tagging program runs
/// on its egress.
pub const TAG_IF: &str = "rvsmark0";
/// Its peer: the XDP program and rvsd's AF_XDP socket.
pub const RX_IF: &str = "rvsmark1";
/// The routing table rvsd owns (0x7276, "rv").
pub const TABLE: u32 = 29302;
/// The next hop of [`TABLE`]'s IPv4 default route (a permanent neighbour
/// with [`RX_IF`]'s MAC; never used as an address).
pub const GW4: &str = "169.254.82.1";
/// The IPv6 next hop of [`TABLE`].
pub const GW6: &str = "fe80::5201";
/// Rule protocol numbers of the local rule while rvsd has re-seated it
/// (two, as a rule identical to an existing one cannot be added).
const LOCAL_PROTOS: [&str; 2] = ["114", "115"];

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn fam(af: Af) -> &'static str {
    match af {
        Af::V4 => "-4",
        Af::V6 => "-6",
    }
}

/// The first `lookup local` rule of a family: (preference, protocol as ip
/// prints it, if it prints one).
fn local_rule(af: Af) -> Option<(u32, Option<String>)> {
    let out = ip(&["-j", fam(af), "rule", "show"]).ok()?;
    let v: serde_json::Value = serde_json::from_str(&out).ok()?;
    v.as_array()?.iter().find_map(|r| {
        if r.get("table")?.as_str()? != "local" {
            return None;
        }
        let pref = r.get("priority")?.as_u64()? as u32;
        let proto = r
            .get("protocol")
            .and_then(|p| p.as_str())
            .map(str::to_string);
        Some((pref, proto))
    })
}

fn sysctl(key: &str, val: &str) {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    if let Err(e) = std::fs::write(&path, val) {
        tracing::warn!(%key, error = %e, "fwmark path: cannot set sysctl");
    }
}

fn read_sysctl(key: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/sys/{}", key.replace('.', "/")))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The fwmark path's routing state in rvsd's network namespace.
#[derive(Debug)]
pub struct MarkRouting {
    marks: BTreeSet<(u32, Af)>,
}

impl MarkRouting {
    /// Creates the veth pair and [`TABLE`] (after clearing what an earlier
    /// rvsd may have left). The programs and the socket are the caller's.
    pub fn open() -> Result<Self, String> {
        cleanup();
        ip(&["link", "add", TAG_IF, "type", "veth", "peer", "name", RX_IF])?;
        let me = Self {
            marks: BTreeSet::new(),
        };
        // From here on, a failure removes the pair again (Drop).
        for i in [TAG_IF, RX_IF] {
            // No link-local address, router solicitations or DAD on a link
            // that carries only rvs's frames.
            let _ = ip(&["link", "set", "dev", i, "addrgenmode", "none"]);
            // No offloads: frames must arrive whole with full checksums
            // (AF_XDP copy mode takes one frame of at most a page; partial
            // checksums from a local sender would fail the engine's check).
            let args: &[&str] = if i == TAG_IF {
                &["-K", i, "tx", "off", "tso", "off", "gso", "off"]
            } else {
                &["-K", i, "gro", "off"]
            };
            match Command::new("ethtool").args(args).output() {
                Ok(o) if o.status.success() => {}
                Ok(o) => {
                    tracing::warn!(iface = i, error = %String::from_utf8_lossy(&o.stderr).trim(), "fwmark path: ethtool")
                }
                Err(e) => {
                    tracing::warn!(iface = i, error = %e, "fwmark path: ethtool not available; offloads stay on")
                }
            }
        }
        // Replies and passed frames re-enter the kernel on TAG_IF with the
        // client or a VIP as source: no reverse-path check there.
        sysctl(&format!("net.ipv4.conf.{TAG_IF}.rp_filter"), "0");
        sysctl(&format!("net.ipv4.conf.{TAG_IF}.accept_local"), "1");
        ip(&["link", "set", TAG_IF, "up"])?;
        ip(&["link", "set", RX_IF, "up"])?;
        let mac = std::fs::read_to_string(format!("/sys/class/net/{RX_IF}/address"))
            .map_err(|e| format!("{RX_IF}: reading the MAC: {e}"))?;
        let mac = mac.trim();
        let table = TABLE.to_string();
        ip(&[
            "-4", "route", "add", "default", "via", GW4, "dev", TAG_IF, "onlink", "table", &table,
        ])?;
        ip(&[
            "-4",
            "neigh",
            "replace",
            GW4,
            "lladdr",
            mac,
            "dev",
            TAG_IF,
            "nud",
            "permanent",
        ])?;
        // IPv6 may be disabled on this host: the IPv4 path still works.
        if let Err(e) = ip(&[
            "-6", "route", "add", "default", "via", GW6, "dev", TAG_IF, "table", &table,
        ])
        .and_then(|_| {
            ip(&[
                "-6",
                "neigh",
                "replace",
                GW6,
                "lladdr",
                mac,
                "dev",
                TAG_IF,
                "nud",
                "permanent",
            ])
        }) {
            tracing::warn!(error = %e, "fwmark path: no IPv6 route into the mark path");
        }
        Ok(me)
    }

    /// The marks currently routed into the path.
    pub fn marks(&self) -> &BTreeSet<(u32, Af)> {
        &self.marks
    }

    /// Installs a rule for every (mark, family) in `want` and removes the
    /// rules of marks no longer wanted. Errors are logged and retried at the
    /// next change.
    pub fn sync(&mut self, want: &BTreeSet<(u32, Af)>) {
        let table = TABLE.to_string();
        for (mark, af) in self.marks.difference(want).copied().collect::<Vec<_>>() {
            let m = mark.to_string();
            match ip(&[fam(af), "rule", "del", "fwmark", &m, "lookup", &table]) {
                Ok(_) => {
                    self.marks.remove(&(mark, af));
                    tracing::info!(mark, ?af, "fwmark path: rule removed");
                }
                Err(e) => tracing::error!(error = %e, "fwmark path: removing a rule"),
            }
        }
        for af in [Af::V4, Af::V6] {
            let new: Vec<u32> = want
                .difference(&self.marks)
                .filter(|(_, a)| *a == af)
                .map(|(m, _)| *m)
                .collect();
            if new.is_empty() {
                continue;
            }
            let (pref, _) = local_rule(af).unwrap_or((0, None));
            let p = pref.to_string();
            let mut added = false;
            for mark in new {
                let m = mark.to_string();
                match ip(&[
                    fam(af),
                    "rule",
                    "add",
                    "pref",
                    &p,
                    "fwmark",
                    &m,
                    "lookup",
                    &table,
                ]) {
                    Ok(_) => {
                        self.marks.insert((mark, af));
                        added = true;
                        tracing::info!(mark, ?af, pref, "fwmark path: rule added");
                    }
                    Err(e) => tracing::error!(error = %e, "fwmark path: adding a rule"),
                }
            }
            if added {
                reseat_local(af);
            }
            let fwd = match af {
                Af::V4 => "net.ipv4.ip_forward",
                Af::V6 => "net.ipv6.conf.all.forwarding",
            };
            if read_sysctl(fwd).as_deref() == Some("0") {
                tracing::warn!(
                    sysctl = fwd,
                    "fwmark path: forwarding is off, so marked packets are not routed into the mark path"
                );
            }
        }
    }
}

/// Moves the local rule behind every rule at its preference (rvsd's
/// fwmark rules were just appended there): a copy goes in after them, then
/// the original is deleted, so local delivery never lapses.
fn reseat_local(af: Af) {
    let Some((pref, proto)) = local_rule(af) else {
        return; // no local rule at all: nothing to get ahead of
    };
    let p = pref.to_string();
    let next = if proto.as_deref() == Some(LOCAL_PROTOS[0]) {
        LOCAL_PROTOS[1]
    } else {
        LOCAL_PROTOS[0]
    };
    if let Err(e) = ip(&[
        fam(af),
        "rule",
        "add",
        "pref",
        &p,
        "lookup",
        "local",
        "protocol",
        next,
    ]) {
        tracing::error!(error = %e, "fwmark path: re-adding the local rule");
        return;
    }
    let mut del = vec![fam(af), "rule", "del", "pref", &p, "lookup", "local"];
    if let Some(pr) = proto.as_deref() {
        del.extend(["protocol", pr]);
    }
    // Without a protocol the first match goes: the original, ahead of the copy.
    if let Err(e) = ip(&del) {
        tracing::error!(error = %e, "fwmark path: deleting the old local rule");
    }
}

/// Restores the kernel's local rule if rvsd re-seated it.
fn restore_local(af: Af) {
    let Some((pref, Some(proto))) = local_rule(af) else {
        return;
    };
    if !LOCAL_PROTOS.contains(&proto.as_str()) {
        return;
    }
    let p = pref.to_string();
    if ip(&[
        fam(af),
        "rule",
        "add",
        "pref",
        &p,
        "lookup",
        "local",
        "protocol",
        "kernel",
    ])
    .is_ok()
    {
        for pr in LOCAL_PROTOS {
            let _ = ip(&[
                fam(af),
                "rule",
                "del",
                "pref",
                &p,
                "lookup",
                "local",
                "protocol",
                pr,
            ]);
        }
    }
}

/// Removes every rule pointing at [`TABLE`], the table's routes, the veth
/// pair, and gives the local rule back its kernel form.
pub fn cleanup() {
    let table = TABLE.to_string();
    for af in [Af::V4, Af::V6] {
        // Bounded: at most one rule per mark and family was ever added.
        for _ in 0..10_000 {
            if ip(&[fam(af), "rule", "del", "lookup", &table]).is_err() {
                break;
            }
        }
        let _ = ip(&[fam(af), "route", "flush", "table", &table]);
        restore_local(af);
    }
    if std::path::Path::new(&format!("/sys/class/net/{TAG_IF}")).exists() {
        let _ = ip(&["link", "del", TAG_IF]);
    }
}

impl Drop for MarkRouting {
    fn drop(&mut self) {
        cleanup();
        tracing::info!("fwmark path removed");
    }
}
