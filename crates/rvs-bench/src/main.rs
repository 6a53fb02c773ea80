//! `rvs-bench engine`: the engine's figures, one JSON object per line
//! (`{"name": ..., "value": ..., "unit": ...}`).
//!
//! `rvs-bench engine --packets N --conns M` sets up M established NAT
//! connections and forwards N packets over them and nothing else, for
//! `valgrind --tool=cachegrind` (instructions per packet = the difference of
//! two runs with different N, divided by the difference in N). With
//! `--harness-only` it prepares the N frames the same way without handing
//! them to the engine: the same difference then gives the harness's share.
//!
//! Every timing is taken side by side with its harness baseline in the same
//! run: the loop that prepares frames is timed alone, and the engine figure is
//! the difference, so the numbers are the engine's own cost.

use etherparse::PacketBuilder;
use rvs_engine::{
    DestConfig, Director, DirectorConfig, Forward, RxMeta, SchedKind, ServiceConfig, ServiceKey,
    Verdict,
};
use rvs_types::{Addr, Instant, Proto};
use rvs_wire::FrameBuf;
use std::hint::black_box;
use std::time::Instant as Clock;

const HEADROOM: usize = 128;
const VIP: [u8; 4] = [192, 0, 2, 10];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut packets = None;
    let mut conns = None;
    let mut quick = false;
    let mut harness_only = false;
    let mut i = 2;
    if args.get(1).map(String::as_str) != Some("engine") {
        eprintln!("usage: rvs-bench engine [--quick] [--packets N --conns M [--harness-only]]");
        std::process::exit(2);
    }
    while i < args.len() {
        match args[i].as_str() {
            "--packets" => packets = args.get(i + 1).and_then(|v| v.parse::<u64>().ok()),
            "--conns" => conns = args.get(i + 1).and_then(|v| v.parse::<u32>().ok()),
            "--quick" => {
                quick = true;
                i += 1;
                continue;
            }
            "--harness-only" => {
                harness_only = true;
                i += 1;
                continue;
            }
            other => {
                eprintln!("rvs-bench: unknown argument {other}");
                std::process::exit(2);
            }
        }
        if packets.is_none() && args[i] == "--packets" || conns.is_none() && args[i] == "--conns" {
            eprintln!("rvs-bench: {} needs a number", args[i]);
            std::process::exit(2);
        }
        i += 2;
    }
    match (packets, conns) {
        (Some(n), Some(m)) if harness_only => {
            let mut b = Established::new(m);
            let prepared = b.run(n, false);
            println!("{{\"name\": \"prepared\", \"value\": {prepared}, \"unit\": \"packets\"}}");
        }
        (Some(n), Some(m)) => {
            let mut b = Established::new(m);
            let forwarded = b.run(n, true);
            println!("{{\"name\": \"forwarded\", \"value\": {forwarded}, \"unit\": \"packets\"}}");
        }
        (None, None) if !harness_only => suite(quick),
        _ => {
            eprintln!("rvs-bench: --packets and --conns go together");
            std::process::exit(2);
        }
    }
}

fn emit(name: &str, value: f64, unit: &str) {
    println!("{}", line(name, value, unit));
}

/// One figure as a JSON object (`{"name": ..., "value": ..., "unit": ...}`).
fn line(name: &str, value: f64, unit: &str) -> String {
    format!("{{\"name\": \"{name}\", \"value\": {value:.1}, \"unit\": \"{unit}\"}}")
}

/// Live connections of the established-flow figures, with the label their
/// names carry (`established_nat_ns_<label>`).
const ESTABLISHED_SIZES: [(u32, &str); 3] =
    [(10_000, "10k"), (1_000_000, "1m"), (10_000_000, "10m")];
/// `--quick`: smaller tables, for a look on a busy machine.
const ESTABLISHED_SIZES_QUICK: [(u32, &str); 2] = [(10_000, "10k"), (100_000, "100k")];
/// The table size at which `bytes_per_conn` is measured.
const BYTES_PER_CONN_AT: u32 = 1_000_000;
/// Real servers of the new-connection figures (`new_conn_ns_<sched>_<n>`).
const SERVERS: [u32; 3] = [10, 1000, 10_000];
const SERVERS_QUICK: [u32; 2] = [10, 1000];
/// Schedulers of the new-connection figures.
const NEW_CONN_SCHEDS: [SchedKind; 2] = [SchedKind::Wlc, SchedKind::Mh];

fn established_name(label: &str) -> String {
    format!("established_nat_ns_{label}")
}

fn new_conn_name(sched: SchedKind, servers: u32) -> String {
    format!("new_conn_ns_{}_{}", sched.name(), servers)
}

fn suite(quick: bool) {
    let sizes: &[(u32, &str)] = if quick {
        &ESTABLISHED_SIZES_QUICK
    } else {
        &ESTABLISHED_SIZES
    };
    for &(m, label) in sizes {
        let rss0 = rss_bytes();
        let mut b = Established::new(m);
        let rss1 = rss_bytes();
        let n = if quick { 2_000_000 } else { 10_000_000 };
        b.run(n / 10, true); // warm up
        let harness = time_ns(n, || b.run(n, false));
        let total = time_ns(n, || b.run(n, true));
        emit(&established_name(label), total - harness, "ns/packet");
        emit(
            &format!("established_nat_harness_ns_{label}"),
            harness,
            "ns/packet",
        );
        // The driver's way: receive batches of 16 through handle_batch.
        let harness = time_ns(n, || b.run_batch(n, false));
        let total = time_ns(n, || b.run_batch(n, true));
        emit(
            &format!("established_nat_batch16_ns_{label}"),
            total - harness,
            "ns/packet",
        );
        if m == BYTES_PER_CONN_AT || (quick && m == 100_000) {
            emit(
                "bytes_per_conn",
                b.d.conn_memory_bytes() as f64 / f64::from(m),
                "bytes",
            );
            if let (Some(a), Some(z)) = (rss0, rss1) {
                emit(
                    "rss_bytes_per_conn",
                    (z.saturating_sub(a)) as f64 / f64::from(m),
                    "bytes",
                );
            }
        }
    }
    let servers: &[u32] = if quick { &SERVERS_QUICK } else { &SERVERS };
    for sched in NEW_CONN_SCHEDS {
        for &n in servers {
            let k = if quick { 50_000 } else { 300_000 };
            let mut b = NewConns::new(sched, n, k);
            let harness = time_ns(u64::from(k), || b.run(false));
            let mut b = NewConns::new(sched, n, k);
            let mut forwarded = 0;
            let total = time_ns(u64::from(k), || {
                forwarded = b.run(true);
                forwarded
            });
            assert_eq!(
                forwarded,
                u64::from(k),
                "not every new connection was scheduled"
            );
            emit(&new_conn_name(sched, n), total - harness, "ns/conn");
        }
    }
}

fn time_ns(n: u64, mut f: impl FnMut() -> u64) -> f64 {
    let t = Clock::now();
    black_box(f());
    t.elapsed().as_nanos() as f64 / n as f64
}

fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn client(i: u32) -> [u8; 4] {
    [100, (i >> 16) as u8, (i >> 8) as u8, i as u8]
}

fn frame(src: [u8; 4], sport: u16, syn: bool) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, VIP, 64)
        .tcp(sport, 80, 1, 64240);
    let b = if syn { b.syn() } else { b.ack(1) };
    let mut out = Vec::new();
    b.write(&mut out, if syn { &[] } else { &[0u8; 18] })
        .expect("frame");
    out
}

/// Recomputes the IPv4 header checksum after a source change (the engine
/// verifies it on every packet).
fn fix_ip_csum(f: &mut [u8]) {
    f[24] = 0;
    f[25] = 0;
    let mut s: u32 = 0;
    for c in f[14..34].chunks_exact(2) {
        s += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    f[24..26].copy_from_slice(&(!(s as u16)).to_be_bytes());
}

/// Recomputes the TCP checksum (new connections have it verified).
fn fix_tcp_csum(f: &mut [u8]) {
    f[50] = 0;
    f[51] = 0;
    let tcp_len = f.len() - 34;
    let mut s: u32 = 0;
    for c in f[26..34].chunks_exact(2) {
        s += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    s += 6 + tcp_len as u32;
    for c in f[34..].chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        s += u32::from(w);
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    f[50..52].copy_from_slice(&(!(s as u16)).to_be_bytes());
}

struct Established {
    d: Director,
    conns: u32,
    template: Vec<u8>,
    mem: Vec<u8>,
    rng: u64,
}

impl Established {
    fn new(m: u32) -> Self {
        let cfg = DirectorConfig {
            max_conns: m + 1024,
            expected_conns: m,
            ..DirectorConfig::default()
        };
        let mut d = Director::new(cfg, Instant::ZERO);
        let key = ServiceKey::Addr {
            proto: Proto::TCP,
            addr: Addr::v4(VIP),
            port: 80,
        };
        let mut s = ServiceConfig::new(key);
        s.sched = SchedKind::Rr;
        d.add_service(s).expect("service");
        for r in 0..10u8 {
            let mut c = DestConfig::new(Addr::v4([10, 20, 0, 11 + r]), 8080);
            c.fwd = Forward::Masq;
            d.add_dest(&key, c).expect("dest");
        }
        let mut syn = frame([0; 4], 40000, true);
        let mut ack = frame([0; 4], 40000, false);
        let mut mem = vec![0u8; 2048];
        for i in 0..m {
            // The client's SYN, then the ACK that completes its handshake:
            // the connection is ESTABLISHED before any measured packet, so
            // every measured packet is one of an established flow.
            syn[26..30].copy_from_slice(&client(i));
            fix_ip_csum(&mut syn);
            fix_tcp_csum(&mut syn);
            ack[26..30].copy_from_slice(&client(i));
            fix_ip_csum(&mut ack);
            for (what, f) in [("SYN", &syn), ("ACK", &ack)] {
                mem[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
                let mut fb = FrameBuf::new(&mut mem, HEADROOM, f.len()).expect("buf");
                let v = d.handle_frame(Instant::from_secs(1), &mut fb, &RxMeta::default());
                assert!(
                    matches!(v, Verdict::Forward(_)),
                    "setup {what} {i} not forwarded: {v:?}"
                );
            }
        }
        assert_eq!(d.conn_count(), m as usize);
        Self {
            d,
            conns: m,
            template: frame([0; 4], 40000, false),
            mem,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// Forwards `n` packets of random established connections (with
    /// `engine` false, prepares them only: the harness baseline).
    fn run(&mut self, n: u64, engine: bool) -> u64 {
        let len = self.template.len();
        self.mem[HEADROOM..HEADROOM + len].copy_from_slice(&self.template);
        let mut forwarded = 0;
        for _ in 0..n {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let i = (self.rng % u64::from(self.conns)) as u32;
            let f = &mut self.mem[HEADROOM..HEADROOM + len];
            // A NAT rewrite changed the destination last time: restore it.
            f[26..30].copy_from_slice(&client(i));
            f[30..34].copy_from_slice(&VIP);
            f[36..38].copy_from_slice(&80u16.to_be_bytes());
            fix_ip_csum(f);
            if engine {
                let Ok(mut fb) = FrameBuf::new(&mut self.mem, HEADROOM, len) else {
                    continue;
                };
                if let Verdict::Forward(_) =
                    self.d
                        .handle_frame(Instant::from_secs(2), &mut fb, &RxMeta::default())
                {
                    forwarded += 1;
                }
            } else {
                forwarded += u64::from(black_box(&self.mem[HEADROOM + 30]) != &0);
            }
        }
        forwarded
    }
}

impl Established {
    /// [`Self::run`] through `Director::handle_batch`, 16 frames at a time.
    fn run_batch(&mut self, n: u64, engine: bool) -> u64 {
        const B: usize = 16;
        let len = self.template.len();
        let mut mems = vec![[0u8; 256]; B];
        for m in &mut mems {
            m[HEADROOM..HEADROOM + len].copy_from_slice(&self.template);
        }
        let metas = [RxMeta::default(); B];
        let mut verdicts = [Verdict::Pass; B];
        let mut forwarded = 0;
        for _ in 0..n / B as u64 {
            for m in &mut mems {
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                let i = (self.rng % u64::from(self.conns)) as u32;
                let f = &mut m[HEADROOM..HEADROOM + len];
                f[26..30].copy_from_slice(&client(i));
                f[30..34].copy_from_slice(&VIP);
                f[36..38].copy_from_slice(&80u16.to_be_bytes());
                fix_ip_csum(f);
            }
            if engine {
                let mut bufs: Vec<FrameBuf<'_>> = mems
                    .iter_mut()
                    .filter_map(|m| FrameBuf::new(m, HEADROOM, len).ok())
                    .collect();
                self.d
                    .handle_batch(Instant::from_secs(2), &mut bufs, &metas, &mut verdicts);
                forwarded += verdicts
                    .iter()
                    .filter(|v| matches!(v, Verdict::Forward(_)))
                    .count() as u64;
            } else {
                forwarded += u64::from(black_box(&mems[0][HEADROOM + 30]) != &0);
            }
        }
        forwarded
    }
}

struct NewConns {
    d: Director,
    k: u32,
    syn: Vec<u8>,
    mem: Vec<u8>,
}

impl NewConns {
    fn new(sched: SchedKind, servers: u32, k: u32) -> Self {
        let mut cfg = DirectorConfig {
            max_conns: k + 1024,
            expected_conns: k,
            ..DirectorConfig::default()
        };
        // The Maglev table must be larger than the server count (the kernel
        // refuses more dests than IP_VS_MH_TAB_SIZE): take the kernel's next
        // prime above 4x the servers.
        cfg.sched.mh_tab_size = [4093u32, 8191, 16381, 32749, 65521, 131071]
            .into_iter()
            .find(|p| *p >= servers * 4)
            .unwrap_or(131071);
        let mut d = Director::new(cfg, Instant::ZERO);
        let key = ServiceKey::Addr {
            proto: Proto::TCP,
            addr: Addr::v4(VIP),
            port: 80,
        };
        let mut s = ServiceConfig::new(key);
        s.sched = sched;
        d.add_service(s).expect("service");
        for r in 0..servers {
            let mut c = DestConfig::new(
                Addr::v4([10, 100 + (r >> 16) as u8, (r >> 8) as u8, r as u8]),
                8080,
            );
            c.fwd = Forward::Masq;
            d.add_dest(&key, c).expect("dest");
        }
        Self {
            d,
            k,
            syn: frame([0; 4], 40000, true),
            mem: vec![0u8; 2048],
        }
    }

    fn run(&mut self, engine: bool) -> u64 {
        let len = self.syn.len();
        let mut ok = 0;
        for i in 0..self.k {
            let f = &mut self.mem[HEADROOM..HEADROOM + len];
            f.copy_from_slice(&self.syn);
            f[26..30].copy_from_slice(&client(i));
            fix_ip_csum(f);
            fix_tcp_csum(f);
            if engine {
                let Ok(mut fb) = FrameBuf::new(&mut self.mem, HEADROOM, len) else {
                    continue;
                };
                if let Verdict::Forward(_) =
                    self.d
                        .handle_frame(Instant::from_secs(1), &mut fb, &RxMeta::default())
                {
                    ok += 1;
                }
            } else {
                ok += u64::from(black_box(&self.mem[HEADROOM + 26]) != &0);
            }
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The full run's figure names are exactly the ones issue 2 asks for.
    #[test]
    fn full_run_names_are_the_issues() {
        let mut names: Vec<String> = ESTABLISHED_SIZES
            .iter()
            .map(|(_, l)| established_name(l))
            .collect();
        assert!(
            ESTABLISHED_SIZES
                .iter()
                .any(|(m, _)| *m == BYTES_PER_CONN_AT)
        );
        names.push("bytes_per_conn".into());
        for s in NEW_CONN_SCHEDS {
            for n in SERVERS {
                names.push(new_conn_name(s, n));
            }
        }
        let want = [
            "established_nat_ns_10k",
            "established_nat_ns_1m",
            "established_nat_ns_10m",
            "bytes_per_conn",
            "new_conn_ns_wlc_10",
            "new_conn_ns_wlc_1000",
            "new_conn_ns_wlc_10000",
            "new_conn_ns_mh_10",
            "new_conn_ns_mh_1000",
            "new_conn_ns_mh_10000",
        ];
        assert_eq!(names, want);
        // The sizes behind the labels.
        assert_eq!(
            ESTABLISHED_SIZES.map(|(m, _)| m),
            [10_000, 1_000_000, 10_000_000]
        );
    }

    #[test]
    fn lines_are_json_objects_with_name_value_unit() {
        assert_eq!(
            line("bytes_per_conn", 124.46, "bytes"),
            r#"{"name": "bytes_per_conn", "value": 124.5, "unit": "bytes"}"#
        );
    }

    /// Tiny sizes of the real workloads: every packet forwarded, every SYN
    /// scheduled.
    #[test]
    fn workloads_run_at_tiny_sizes() {
        let mut b = Established::new(50);
        let now = Instant::from_secs(1);
        assert!(
            b.d.connections(now)
                .iter()
                .all(|c| c.state == "ESTABLISHED"),
            "every measured connection is established"
        );
        assert_eq!(b.run(500, true), 500);
        assert_eq!(b.run_batch(64, true), 64);
        for sched in NEW_CONN_SCHEDS {
            let mut n = NewConns::new(sched, 10, 100);
            assert_eq!(n.run(true), 100);
        }
    }
}
