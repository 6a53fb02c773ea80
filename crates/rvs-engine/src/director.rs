//! The [`Director`]: IPVS's packet path (`ip_vs_core.c`), control plane
//! (`ip_vs_ctl.c`) and timers, with no I/O.
//!
//! One `Director` is owned by one worker (one receive queue); nothing in it is
//! shared or locked. Configuration changes arrive as method calls between
//! batches of frames.

use crate::model::{ConfigError, DestConfig, Forward as Fwd, NoDest, ServiceConfig, ServiceKey};
use crate::service::{Dest, Service};
use crate::stats::{Counters, Estimator, Rates};
use crate::verdict::{Direction, DropReason, Forward, RxMeta, Verdict};
use hashbrown::HashMap;
use rvs_conn::{Conn, ConnFlags, ConnId, ConnTable, Dir, ExpireAction, TableConfig, Timeouts};
use rvs_sched::{SchedInput, SchedParams};
use rvs_types::{Addr, Af, Instant, Proto, ZoneId};
use rvs_wire::{FlowV4, Frag, FrameBuf, PacketInfo, Parsed};
use std::collections::VecDeque;
use std::time::Duration;

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;
const SCTP_INIT: u8 = 1;
use rvs_conn::NO_CONN;

/// How long IPVS delays the expiry of a template that still controls
/// connections (`ip_vs_conn_expire`'s `expire_later`).
const TEMPLATE_DELAY: Duration = Duration::from_secs(60);

/// When L4 checksums are verified (IP header checksums always are).
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub enum ChecksumPolicy {
    /// On packets that create a connection and on ICMP errors (default):
    /// these are small, and a bad checksum must not allocate state. On
    /// established flows the incremental update keeps a bad checksum bad, so
    /// the receiver still drops it.
    #[default]
    NewConns,
    /// On every packet (IPVS without checksum offload).
    All,
}

/// Director-wide settings (IPVS's sysctls and module parameters).
#[derive(Clone, Debug)]
pub struct DirectorConfig {
    /// Upper bound on connection entries (templates included).
    pub max_conns: u32,
    /// Entries to pre-size the table for.
    pub expected_conns: u32,
    /// What becomes of the connections of a removed real server, for
    /// services that do not say ([`ServiceConfig::nodest`]). `None` (the
    /// default): rvs's choice per protocol, [`NoDest::Keep`] for TCP and
    /// SCTP, [`NoDest::Expire`] for UDP ([`NoDest::default_for`]). IPVS's
    /// sysctl `expire_nodest_conn` is `Some(Drop)` (0, the kernel's
    /// default) or `Some(Expire)` (1).
    pub nodest: Option<NoDest>,
    /// `expire_quiescent_template`: a persistence template pointing at a
    /// weight-0 real server is expired instead of used.
    pub expire_quiescent_template: bool,
    /// `sloppy_tcp`: create connections from any TCP packet, not only SYN.
    pub sloppy_tcp: bool,
    /// `sloppy_sctp`: create associations from any SCTP packet, not only INIT.
    pub sloppy_sctp: bool,
    /// `conn_reuse_mode` bit 2: a SYN on a FIN_WAIT entry of a DR/TUN
    /// connection is rescheduled too. (A SYN on TIME_WAIT or CLOSE is
    /// always rescheduled at once, without IPVS's one-second stall.)
    pub reuse_fin_wait: bool,
    /// When L4 checksums are verified.
    pub checksums: ChecksumPolicy,
    /// MTU of the path to tunnelled real servers (IP packet size).
    pub tunnel_mtu: u32,
    /// Outer source address for IPv4 tunnels (set it: the default 0.0.0.0
    /// only suits real servers that decapsulate without checking it).
    pub tunnel_src_v4: Addr,
    /// Outer source address for IPv6 tunnels.
    pub tunnel_src_v6: Addr,
    /// Scheduler parameters (table sizes, lblc expiry, random seed).
    pub sched: SchedParams,
    /// Record [`Event`]s for the sync daemon and the XDP fast path.
    pub events: bool,
    /// Real servers' connection counts shared with other directors (rvsd's
    /// workers), so that thresholds count every director's connections
    /// (`crate::load`). `None`: this director's own.
    pub shared_load: Option<std::sync::Arc<crate::load::SharedLoad>>,
}

impl Default for DirectorConfig {
    fn default() -> Self {
        Self {
            max_conns: 1 << 20,
            expected_conns: 4096,
            nodest: None,
            expire_quiescent_template: false,
            sloppy_tcp: false,
            sloppy_sctp: false,
            reuse_fin_wait: false,
            checksums: ChecksumPolicy::NewConns,
            tunnel_mtu: 1500,
            tunnel_src_v4: Addr::v4([0, 0, 0, 0]),
            tunnel_src_v6: Addr::UNSPECIFIED,
            sched: SchedParams::default(),
            events: false,
            shared_load: None,
        }
    }
}

/// Something the engine did that outer layers (connection sync, the XDP
/// fast path) follow.
#[derive(Clone, Debug)]
pub enum Event {
    /// A connection was created.
    ConnNew(ConnId, Conn),
    /// A connection was removed (expired, evicted or flushed).
    ConnGone(ConnId, Conn),
}

/// A frame of [`Director::handle_batch`] after its parse.
#[derive(Clone, Copy)]
enum Prepared {
    /// Taken by [`rvs_wire::parse_flow_v4`].
    Flow(FlowV4),
    /// Through [`rvs_wire::parse_frame`].
    Full(Result<Parsed, rvs_wire::Error>),
}

#[derive(Clone, Copy, Debug)]
enum Loc {
    Live { svc: u32, pos: u32 },
    Trash,
    Gone,
}

/// Services and real servers, split from the connection table so that table
/// callbacks can update dest counters while the table is borrowed.
#[derive(Debug, Default)]
struct Topology {
    services: Vec<Option<Box<Service>>>,
    by_addr: HashMap<(Proto, Addr, u16), u32>,
    by_mark: HashMap<(u32, Af), u32>,
    port_zero: u32,
    dest_loc: Vec<Loc>,
    trash: HashMap<u32, Dest>,
    /// Each service's own [`NoDest`] policy, by service index; kept when the
    /// service is deleted, so its connections still follow it.
    nodest: Vec<Option<NoDest>>,
    /// Connections controlled by each persistence template (IPVS n_control).
    template_refs: HashMap<ConnId, u32>,
}

impl Topology {
    #[inline]
    fn dest_mut(&mut self, id: u32) -> Option<&mut Dest> {
        match *self.dest_loc.get(id as usize)? {
            Loc::Live { svc, pos } => self.services[svc as usize]
                .as_mut()?
                .dests
                .get_mut(pos as usize),
            Loc::Trash => self.trash.get_mut(&id),
            Loc::Gone => None,
        }
    }

    #[inline]
    fn dest(&self, id: u32) -> Option<&Dest> {
        match *self.dest_loc.get(id as usize)? {
            Loc::Live { svc, pos } => self.services[svc as usize]
                .as_ref()?
                .dests
                .get(pos as usize),
            Loc::Trash => self.trash.get(&id),
            Loc::Gone => None,
        }
    }

    /// Tells the dest's scheduler that its counters or overload flag
    /// changed (see `rvs_sched::Scheduler::counts_changed`).
    #[inline]
    fn counts_changed(&mut self, id: u32) {
        if let Some(Loc::Live { svc, pos }) = self.dest_loc.get(id as usize).copied()
            && let Some(s) = self
                .services
                .get_mut(svc as usize)
                .and_then(|s| s.as_deref_mut())
        {
            s.sched.counts_changed(pos as usize, &s.dests);
        }
    }

    #[inline]
    fn dest_available(&self, id: u32) -> bool {
        matches!(self.dest_loc.get(id as usize), Some(Loc::Live { .. }))
    }

    #[inline]
    fn service_mut(&mut self, svc: u32) -> Option<&mut Service> {
        self.services.get_mut(svc as usize)?.as_deref_mut()
    }

    fn find(&self, key: &ServiceKey) -> Option<u32> {
        match *key {
            ServiceKey::Addr { proto, addr, port } => {
                self.by_addr.get(&(proto, addr, port)).copied()
            }
            ServiceKey::Fwmark { mark, af } => self.by_mark.get(&(mark, af)).copied(),
        }
    }

    /// IPVS `ip_vs_service_find`: fwmark first, then protocol/VIP/port, then
    /// the VIP's port-zero service.
    #[inline]
    fn lookup(&self, fwmark: u32, af: Af, proto: Proto, addr: &Addr, port: u16) -> Option<u32> {
        if fwmark != 0
            && !self.by_mark.is_empty()
            && let Some(&s) = self.by_mark.get(&(fwmark, af))
        {
            return Some(s);
        }
        if let Some(&s) = self.by_addr.get(&(proto, *addr, port)) {
            return Some(s);
        }
        if self.port_zero > 0 {
            return self.by_addr.get(&(proto, *addr, 0)).copied();
        }
        None
    }

    /// A connection left (expired, evicted, flushed): IPVS `ip_vs_unbind_dest`
    /// plus `ip_vs_control_del`, and garbage collection of trashed dests.
    fn release(&mut self, id: ConnId, c: &Conn) {
        let template = c.flags.contains(ConnFlags::TEMPLATE);
        if template {
            self.template_refs.remove(&id);
        } else if c.control != NO_CONN
            && let Some(n) = self.template_refs.get_mut(&c.control)
        {
            *n = n.saturating_sub(1);
        }
        if !c.flags.contains(ConnFlags::HAS_DEST) {
            return;
        }
        let inactive = c.flags.contains(ConnFlags::INACTIVE);
        let mut collect = false;
        if let Some(d) = self.dest_mut(c.dest) {
            d.unbind(template, inactive);
            collect = d.refs() == 0;
        }
        self.counts_changed(c.dest);
        if collect && matches!(self.dest_loc.get(c.dest as usize), Some(Loc::Trash)) {
            self.trash.remove(&c.dest);
            self.dest_loc[c.dest as usize] = Loc::Gone;
        }
    }
}

/// Counters of the whole director.
#[derive(Clone, Debug, Default)]
pub struct GlobalStats {
    /// Totals over all services (`/proc/net/ip_vs_stats`).
    pub totals: Counters,
    /// Rates over all services.
    pub rates: Rates,
    /// Drops by reason, indexed like [`DropReason::ALL`].
    pub drops: Vec<(DropReason, u64)>,
    /// Frames handed to the host stack.
    pub passed: u64,
    /// Live connection entries (templates included).
    pub conns: usize,
}

/// A snapshot of one real server for listings.
#[derive(Clone, Debug)]
pub struct DestSnapshot {
    /// Configuration.
    pub cfg: DestConfig,
    /// Active connections.
    pub activeconns: u32,
    /// Inactive connections.
    pub inactconns: u32,
    /// Persistence templates pointing at it.
    pub persistconns: u32,
    /// Counters.
    pub stats: Counters,
    /// Rates.
    pub rates: Rates,
}

/// A snapshot of one virtual service for listings.
#[derive(Clone, Debug)]
pub struct ServiceSnapshot {
    /// Configuration.
    pub cfg: ServiceConfig,
    /// Counters.
    pub stats: Counters,
    /// Rates.
    pub rates: Rates,
    /// Real servers in the kernel's list order (newest first), as
    /// `ipvsadm -L --nosort` shows them.
    pub dests: Vec<DestSnapshot>,
}

/// A connection entry for `ipvsadm -L -c`.
#[derive(Clone, Debug)]
pub struct ConnSnapshot {
    /// The entry.
    pub conn: Conn,
    /// Time left before it expires.
    pub expires_in: Duration,
    /// IPVS state name ("ESTABLISHED", "UDP", "NONE" for templates…).
    pub state: &'static str,
}

/// The director.
pub struct Director {
    cfg: DirectorConfig,
    conns: ConnTable,
    topo: Topology,
    drops: [u64; DropReason::COUNT],
    passed: u64,
    totals: Counters,
    est_total: Estimator,
    next_estimate: Instant,
    next_dest_id: u32,
    events: VecDeque<Event>,
    /// Templates whose expiry was delayed in the current `handle_timeout`.
    delayed: Vec<ConnId>,
}

impl std::fmt::Debug for Director {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Director")
            .field("conns", &self.conns.len())
            .finish_non_exhaustive()
    }
}

impl Director {
    /// A director with no services, whose clock starts at `now`.
    pub fn new(cfg: DirectorConfig, now: Instant) -> Self {
        let table = TableConfig {
            max_conns: cfg.max_conns,
            expected_conns: cfg.expected_conns,
            ..TableConfig::default()
        };
        Self {
            conns: ConnTable::new(table, Timeouts::default()),
            cfg,
            topo: Topology::default(),
            drops: [0; DropReason::COUNT],
            passed: 0,
            totals: Counters::default(),
            est_total: Estimator::default(),
            next_estimate: now + Estimator::PERIOD,
            next_dest_id: 0,
            events: VecDeque::new(),
            delayed: Vec::new(),
        }
    }

    // ----- packet path -------------------------------------------------

    /// Handles one received frame, rewriting it in place.
    pub fn handle_frame(
        &mut self,
        now: Instant,
        frame: &mut FrameBuf<'_>,
        meta: &RxMeta,
    ) -> Verdict {
        // Most frames are untagged IPv4 TCP/UDP of a known connection: the
        // compact parse and the established fast path first.
        if let Some(flow) = rvs_wire::parse_flow_v4(frame.data()) {
            return self.handle_flow_v4(now, frame, &flow, meta);
        }
        let parsed = rvs_wire::parse_frame(frame.data());
        self.handle_parsed(now, frame, &parsed, meta)
    }

    /// [`Self::handle_frame`] without the established fast path: every frame
    /// through the full parse and the general packet path. The same result
    /// by contract; for tests that prove it.
    #[doc(hidden)]
    pub fn handle_frame_general(
        &mut self,
        now: Instant,
        frame: &mut FrameBuf<'_>,
        meta: &RxMeta,
    ) -> Verdict {
        let parsed = rvs_wire::parse_frame(frame.data());
        self.handle_parsed(now, frame, &parsed, meta)
    }

    /// Handles a batch of received frames, as a driver gets them from a
    /// receive ring: `verdicts[i]` is the verdict of `frames[i]`, exactly
    /// what [`Self::handle_frame`] on each frame in order would give. The
    /// frames are parsed first and their connection lookups issued together
    /// (up to 16 at a time), so the cache misses of a large table overlap
    /// instead of queueing one after another.
    pub fn handle_batch(
        &mut self,
        now: Instant,
        frames: &mut [FrameBuf<'_>],
        metas: &[RxMeta],
        verdicts: &mut [Verdict],
    ) {
        const B: usize = 16;
        let n = frames.len().min(metas.len()).min(verdicts.len());
        let mut start = 0;
        while start < n {
            let end = (start + B).min(n);
            let mut parsed: [Option<Prepared>; B] = [None; B];
            let mut keys = [rvs_conn::InKey::default(); B];
            let mut nkeys = 0;
            for i in start..end {
                // As handle_frame: the compact parse first.
                if let Some(f) = rvs_wire::parse_flow_v4(frames[i].data()) {
                    keys[nkeys] = rvs_conn::InKey {
                        zone: metas[i].zone,
                        proto: f.proto,
                        caddr: Addr::v4(f.src),
                        cport: f.sport,
                        vaddr: Addr::v4(f.dst),
                        vport: f.dport,
                    };
                    nkeys += 1;
                    parsed[i - start] = Some(Prepared::Flow(f));
                    continue;
                }
                let p = rvs_wire::parse_frame(frames[i].data());
                if let Ok(Parsed::Ip(info)) = &p
                    && matches!(info.proto, Proto::TCP | Proto::UDP | Proto::SCTP)
                {
                    keys[nkeys] = rvs_conn::InKey {
                        zone: metas[i].zone,
                        proto: info.proto,
                        caddr: info.src,
                        cport: info.sport,
                        vaddr: info.dst,
                        vport: info.dport,
                    };
                    nkeys += 1;
                }
                parsed[i - start] = Some(Prepared::Full(p));
            }
            // Warms the cache lines of every lookup of the batch; the
            // results are not used, because handling an earlier frame may
            // change the table before a later one is looked up again.
            let mut found = [None; B];
            self.conns
                .lookup_in_batch(&keys[..nkeys], &mut found[..nkeys]);
            for i in start..end {
                verdicts[i] = match parsed[i - start].take() {
                    Some(Prepared::Flow(f)) => {
                        self.handle_flow_v4(now, &mut frames[i], &f, &metas[i])
                    }
                    Some(Prepared::Full(p)) => {
                        self.handle_parsed(now, &mut frames[i], &p, &metas[i])
                    }
                    None => self.handle_parsed(
                        now,
                        &mut frames[i],
                        &Err(rvs_wire::Error::Truncated),
                        &metas[i],
                    ),
                };
            }
            start = end;
        }
    }

    #[inline]
    fn handle_parsed(
        &mut self,
        now: Instant,
        frame: &mut FrameBuf<'_>,
        parsed: &Result<Parsed, rvs_wire::Error>,
        meta: &RxMeta,
    ) -> Verdict {
        let info = match parsed {
            Ok(Parsed::Ip(info)) => info,
            Ok(Parsed::Arp | Parsed::Other(_)) => return self.pass(),
            Err(e) => return self.drop((*e).into()),
        };
        match info.proto {
            Proto::TCP | Proto::UDP | Proto::SCTP => {}
            Proto::ICMP | Proto::ICMPV6 => return self.handle_icmp(now, frame, info, meta),
            _ => return self.pass(),
        }
        if info.frag != Frag::None {
            return self.drop(DropReason::Fragment);
        }
        let found = self.conns.lookup_in(
            meta.zone, info.proto, &info.src, info.sport, &info.dst, info.dport,
        );
        self.handle_looked_up(now, frame, info, meta, found)
    }

    /// The established fast path: [`Self::handle_parsed`] for a frame that
    /// [`rvs_wire::parse_flow_v4`] took. A packet of a NAT or DR connection
    /// that needs only its state update, counters and rewrite (not a
    /// new-connection attempt, no removed real server to check for, L4
    /// checksums not verified on established flows) is handled here without
    /// a [`PacketInfo`]; anything else goes on with the flow's `PacketInfo`
    /// and the lookup already made, so every verdict, counter and byte is
    /// the one `handle_parsed` gives.
    #[inline(always)]
    fn handle_flow_v4(
        &mut self,
        now: Instant,
        frame: &mut FrameBuf<'_>,
        flow: &FlowV4,
        meta: &RxMeta,
    ) -> Verdict {
        let found = self.conns.lookup_in(
            meta.zone,
            flow.proto,
            &Addr::v4(flow.src),
            flow.sport,
            &Addr::v4(flow.dst),
            flow.dport,
        );
        if let Some(id) = found
            && self.topo.trash.is_empty()
            && !(flow.proto == Proto::TCP && tcp_new_conn(flow.tcp_flags))
            && self.cfg.checksums != ChecksumPolicy::All
            && let Some(v) = self.forward_in_v4(now, frame, flow, id)
        {
            return v;
        }
        let info = flow.info();
        self.handle_looked_up(now, frame, &info, meta, found)
    }

    /// [`Self::handle_parsed`] after the in-direction lookup (`found`).
    #[inline]
    fn handle_looked_up(
        &mut self,
        now: Instant,
        frame: &mut FrameBuf<'_>,
        info: &PacketInfo,
        meta: &RxMeta,
        found: Option<ConnId>,
    ) -> Verdict {
        let zone = meta.zone;
        if let Some(id) = found {
            // Fast path: neither a new-connection attempt nor a removed real
            // server to check for (the trash is empty).
            if self.topo.trash.is_empty() && !is_new_conn(frame.data(), info) {
                return self.forward_in(now, frame, info, id);
            }
            match self.check_reuse(id, frame.data(), info) {
                Reuse::Keep => return self.forward_in(now, frame, info, id),
                Reuse::DropExpired => {
                    self.flush_conn(id);
                    return self.drop(DropReason::NoDestConn);
                }
                // IPVS with expire_nodest_conn off: dropped, and the entry
                // is not refreshed (its timer runs out on its own).
                Reuse::DropKept => return self.drop(DropReason::NoDestDrop),
                Reuse::Reschedule => self.flush_conn(id),
            }
        } else if let Some(id) = self.conns.lookup_out(
            zone, info.proto, &info.src, info.sport, &info.dst, info.dport,
        ) {
            return self.forward_out(now, frame, info, id);
        }
        let Some(svc) = self
            .topo
            .lookup(meta.fwmark, info.af, info.proto, &info.dst, info.dport)
        else {
            return self.pass();
        };
        self.new_conn(now, frame, info, meta, svc)
    }

    /// Runs timers due at `now`: connection expiry, scheduler tables, the
    /// 2-second rate estimator.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Self {
            conns,
            topo,
            events,
            cfg,
            ..
        } = self;
        let record = cfg.events;
        let mut delayed = std::mem::take(&mut self.delayed);
        conns.expire(now, |id, c| {
            if c.flags.contains(ConnFlags::TEMPLATE)
                && topo.template_refs.get(&id).copied().unwrap_or(0) > 0
            {
                // IPVS keeps a template alive while connections it controls
                // live: `expire_later` re-arms it for 60 s and makes 60 s its
                // timeout from then on (`cp->timeout = 60*HZ`).
                delayed.push(id);
                return ExpireAction::Keep(TEMPLATE_DELAY);
            }
            topo.release(id, c);
            if record {
                events.push_back(Event::ConnGone(id, *c));
            }
            ExpireAction::Remove
        });
        for id in delayed.drain(..) {
            self.conns.set_timeout(id, TEMPLATE_DELAY, now);
        }
        self.delayed = delayed;
        if now >= self.next_estimate {
            self.estimate();
            for s in self.topo.services.iter_mut().flatten() {
                s.sched.expire(now);
            }
            // Catch up without looping over missed periods.
            self.next_estimate = now + Estimator::PERIOD;
        }
    }

    /// When [`Self::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Instant {
        match self.conns.poll_timeout() {
            Some(t) if t < self.next_estimate => t,
            _ => self.next_estimate,
        }
    }

    /// The next recorded event (only with [`DirectorConfig::events`]).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The driver's next-hop cache slot of a connection (opaque to the engine).
    pub fn nh_slot(&self, id: ConnId) -> Option<u32> {
        self.conns.get(id).map(|c| c.nh)
    }

    /// Stores the driver's next-hop cache slot for a connection.
    pub fn set_nh_slot(&mut self, id: ConnId, slot: u32) {
        if let Some(c) = self.conns.get_mut(id) {
            c.nh = slot;
        }
    }

    fn pass(&mut self) -> Verdict {
        self.passed += 1;
        Verdict::Pass
    }

    #[inline]
    fn drop(&mut self, reason: DropReason) -> Verdict {
        self.drops[reason as usize] += 1;
        Verdict::Drop(reason)
    }

    /// IPVS `ip_vs_in_hook`'s checks of an existing entry, in its order:
    /// first the reuse of the entry by a new connection attempt, then the
    /// real server's availability under the connection's [`NoDest`] policy.
    fn check_reuse(&self, id: ConnId, frame: &[u8], info: &PacketInfo) -> Reuse {
        let Some(c) = self.conns.get(id) else {
            return Reuse::Keep;
        };
        let new_conn = is_new_conn(frame, info);
        let has_dest = c.flags.contains(ConnFlags::HAS_DEST);
        let policy = self.nodest_policy(c);
        if new_conn
            && has_dest
            && policy == NoDest::Expire
            && self.topo.dest(c.dest).is_some_and(|d| d.cfg.weight == 0)
        {
            // IPVS: a new connection attempt on an entry of a quiescent
            // server is rescheduled when expire_nodest_conn is on.
            return Reuse::Reschedule;
        }
        if new_conn && c.control == NO_CONN && self.new_conn_expected(c) {
            return Reuse::Reschedule;
        }
        if has_dest && !self.topo.dest_available(c.dest) {
            match policy {
                NoDest::Keep => {}
                NoDest::Drop => return Reuse::DropKept,
                // IPVS: with expire_nodest_conn the entry is expired and the
                // packet goes through scheduling again: a SYN, an INIT or a
                // UDP datagram gets a new server, anything else finds no
                // connection.
                NoDest::Expire if new_conn || c.proto == Proto::UDP => {
                    return Reuse::Reschedule;
                }
                NoDest::Expire => return Reuse::DropExpired,
            }
        }
        Reuse::Keep
    }

    /// The connection's [`NoDest`] policy: its service's, else the
    /// director's, else rvs's default for its protocol.
    fn nodest_policy(&self, c: &Conn) -> NoDest {
        self.topo
            .nodest
            .get(c.svc as usize)
            .copied()
            .flatten()
            .or(self.cfg.nodest)
            .unwrap_or_else(|| NoDest::default_for(c.proto))
    }

    /// IPVS `is_new_conn_expected`, extended to CLOSE: the old entry is done,
    /// so a new SYN (or SCTP INIT) gets a fresh scheduling decision at once.
    fn new_conn_expected(&self, c: &Conn) -> bool {
        match c.proto {
            Proto::TCP => {
                c.state == rvs_conn::proto::tcp::TIME_WAIT
                    || c.state == rvs_conn::proto::tcp::CLOSE
                    || (self.cfg.reuse_fin_wait
                        && c.state == rvs_conn::proto::tcp::FIN_WAIT
                        && c.flags.contains(ConnFlags::NOOUTPUT))
            }
            Proto::SCTP => c.state == rvs_conn::proto::sctp::CLOSED,
            _ => false,
        }
    }

    /// Removes a connection now, fixing its real server's counters.
    fn flush_conn(&mut self, id: ConnId) {
        if let Some(c) = self.conns.remove(id) {
            self.topo.release(id, &c);
            if self.cfg.events {
                self.events.push_back(Event::ConnGone(id, c));
            }
        }
    }

    /// Fixes counters for embryonic connections the table evicted to make
    /// room (their ids are already reused, so events carry [`NO_CONN`]).
    fn drain_evicted(&mut self) {
        let Self {
            conns,
            topo,
            events,
            cfg,
            ..
        } = self;
        for c in conns.drain_evicted() {
            topo.release(NO_CONN, &c);
            if cfg.events {
                events.push_back(Event::ConnGone(NO_CONN, c));
            }
        }
    }

    fn new_conn(
        &mut self,
        now: Instant,
        frame: &mut FrameBuf<'_>,
        info: &PacketInfo,
        meta: &RxMeta,
        svc_idx: u32,
    ) -> Verdict {
        match info.proto {
            Proto::TCP => {
                if bogus_tcp_flags(info.tcp_flags) {
                    return self.drop(DropReason::BadTcpFlags);
                }
                let syn = info.tcp_flags & (TCP_SYN | TCP_RST) == TCP_SYN;
                if !(syn || self.cfg.sloppy_tcp && info.tcp_flags & TCP_RST == 0) {
                    return self.drop(DropReason::TcpNotSyn);
                }
            }
            Proto::SCTP
                if sctp_chunk(frame.data(), info) != Some(SCTP_INIT) && !self.cfg.sloppy_sctp =>
            {
                return self.drop(DropReason::SctpNotInit);
            }
            _ => {}
        }
        if let Err(e) = rvs_wire::verify_l4_checksum(frame.data(), info) {
            return self.drop(e.into());
        }
        let Some(svc) = self
            .topo
            .services
            .get(svc_idx as usize)
            .and_then(|s| s.as_ref())
        else {
            return self.pass();
        };
        let persistent = svc.cfg.persistence.is_some();
        let ops = svc.cfg.ops && info.proto == Proto::UDP;
        let input = SchedInput {
            proto: info.proto,
            saddr: info.src,
            sport: info.sport,
            daddr: info.dst,
            dport: info.dport,
            now,
        };
        let (dest_id, control) = if persistent {
            match self.sched_persist(now, svc_idx, info, meta.zone, &input) {
                Ok(v) => v,
                Err(r) => return self.drop(r),
            }
        } else {
            let Some(svc) = self.topo.service_mut(svc_idx) else {
                return self.pass();
            };
            let Some(pos) = svc.sched.schedule(&svc.dests, &input) else {
                return self.drop(DropReason::NoDest);
            };
            (svc.dests[pos].id, NO_CONN)
        };
        let Some(dest) = self.topo.dest(dest_id) else {
            return self.drop(DropReason::NoDest);
        };
        // ip_vs_schedule: the dest's port, or the packet's when the dest has
        // none. ip_vs_sched_persist: the dest's port only for packets to the
        // service's own port, so persistent port-zero and fwmark services
        // keep the packet's port whatever the dest's.
        let svc_port = match svc_key(&self.topo, svc_idx) {
            Some(ServiceKey::Addr { port, .. }) => port,
            _ => 0,
        };
        let dport = if dest.cfg.port != 0 && (!persistent || info.dport == svc_port) {
            dest.cfg.port
        } else {
            info.dport
        };
        let fwd = match dest.cfg.fwd {
            Fwd::Masq => rvs_conn::Fwd::Masq,
            Fwd::Route => rvs_conn::Fwd::Route,
            Fwd::Tunnel(_) => rvs_conn::Fwd::Tunnel,
            Fwd::Local => rvs_conn::Fwd::Local,
        };
        let mut flags = ConnFlags::HAS_DEST | ConnFlags::INACTIVE;
        if fwd != rvs_conn::Fwd::Masq {
            flags |= ConnFlags::NOOUTPUT;
        }
        if ops {
            flags |= ConnFlags::ONE_PACKET;
        }
        let fwmark = match svc_key(&self.topo, svc_idx) {
            Some(ServiceKey::Fwmark { mark, .. }) => mark,
            _ => 0,
        };
        let conn = Conn {
            caddr: info.src,
            vaddr: info.dst,
            daddr: dest.cfg.addr,
            laddr: Addr::UNSPECIFIED,
            cport: info.sport,
            vport: info.dport,
            dport,
            lport: 0,
            zone: meta.zone,
            proto: info.proto,
            state: 0,
            fwd,
            flags,
            svc: svc_idx,
            dest: dest_id,
            control,
            nh: u32::MAX,
            fwmark,
        };
        if ops {
            // One-packet scheduling: the entry lives for this packet only
            // (IPVS never hashes it), so it is counted and forwarded but not kept.
            return self.forward_ops(now, frame, info, conn);
        }
        let id = match self.conns.insert(conn, now) {
            Ok(id) => id,
            Err(_) => {
                self.drain_evicted();
                return self.drop(DropReason::ConnTableFull);
            }
        };
        self.drain_evicted();
        if let Some(d) = self.topo.dest_mut(dest_id) {
            d.bind(false);
            d.stats.conns += 1;
        }
        self.topo.counts_changed(dest_id);
        if control != NO_CONN {
            *self.topo.template_refs.entry(control).or_insert(0) += 1;
        }
        if let Some(s) = self.topo.service_mut(svc_idx) {
            s.stats.conns += 1;
        }
        self.totals.conns += 1;
        if self.cfg.events {
            self.events.push_back(Event::ConnNew(id, conn));
        }
        self.forward_in(now, frame, info, id)
    }

    /// IPVS `ip_vs_sched_persist`: find or create the client network's
    /// template, returning the chosen dest and the template's id.
    fn sched_persist(
        &mut self,
        now: Instant,
        svc_idx: u32,
        info: &PacketInfo,
        zone: ZoneId,
        input: &SchedInput,
    ) -> Result<(u32, ConnId), DropReason> {
        let Some(svc) = self
            .topo
            .services
            .get(svc_idx as usize)
            .and_then(|s| s.as_ref())
        else {
            return Err(DropReason::NoDest);
        };
        let timeout = svc.cfg.persistence.unwrap_or_default();
        let snet = info.src.masked(if info.af == Af::V4 {
            svc.cfg.netmask.min(32)
        } else {
            svc.cfg.netmask
        });
        // Template keys, as the kernel builds them:
        //   fwmark:     <IPPROTO_IP, caddr/mask, 0, fwmark, 0>
        //   port zero:  <proto, caddr/mask, 0, vaddr, 0>
        //   otherwise:  <proto, caddr/mask, 0, vaddr, vport>
        let (proto, vaddr, vport, mark) = match svc.cfg.key {
            ServiceKey::Fwmark { mark, .. } => (Proto(0), Addr::UNSPECIFIED, 0, mark),
            ServiceKey::Addr { port: 0, .. } => (info.proto, info.dst, 0, 0),
            ServiceKey::Addr { port, .. } => (info.proto, info.dst, port, 0),
        };
        if let Some(tid) = self
            .conns
            .lookup_template(zone, proto, &snet, &vaddr, vport, mark)
        {
            let valid = self.conns.get(tid).is_some_and(|t| {
                // ip_vs_check_template: the dest must still be in the service,
                // and not quiescent when expire_quiescent_template is on.
                self.topo.dest_available(t.dest)
                    && !(self.cfg.expire_quiescent_template
                        && self.topo.dest(t.dest).is_some_and(|d| d.cfg.weight == 0))
            });
            if valid {
                // ip_vs_conn_put: re-armed with the template's own timeout
                // (the service's, or 60 s once a delayed expiry set it).
                self.conns.touch(tid, now);
                let dest = self.conns.get(tid).map(|t| t.dest).unwrap_or(u32::MAX);
                return Ok((dest, tid));
            }
            // Invalidate the stale template, as the kernel does: with no
            // controlled connections it goes now; otherwise it leaves the
            // lookup index (so a fresh one is made) and lives until the
            // connections it controls are gone, keeping its id unique.
            if self.topo.template_refs.get(&tid).copied().unwrap_or(0) == 0 {
                if let Some(t) = self.conns.remove(tid) {
                    self.topo.release(tid, &t);
                }
            } else {
                self.conns.unhash(tid);
            }
        }
        let Some(svc) = self.topo.service_mut(svc_idx) else {
            return Err(DropReason::NoDest);
        };
        let Some(pos) = svc.sched.schedule(&svc.dests, input) else {
            return Err(DropReason::NoDest);
        };
        let dest = &svc.dests[pos];
        let dest_id = dest.id;
        let template = Conn {
            caddr: snet,
            vaddr,
            daddr: dest.cfg.addr,
            laddr: Addr::UNSPECIFIED,
            cport: 0,
            vport,
            dport: if vport == 0 { 0 } else { dest.cfg.port },
            lport: 0,
            zone,
            proto,
            state: 0,
            fwd: rvs_conn::Fwd::Masq,
            flags: ConnFlags::TEMPLATE | ConnFlags::HAS_DEST,
            svc: svc_idx,
            dest: dest_id,
            control: NO_CONN,
            nh: u32::MAX,
            fwmark: mark,
        };
        let tid = match self.conns.insert(template, now) {
            Ok(id) => id,
            Err(_) => {
                self.drain_evicted();
                return Err(DropReason::ConnTableFull);
            }
        };
        self.drain_evicted();
        self.conns.set_timeout(tid, timeout, now);
        self.topo.template_refs.insert(tid, 0);
        if let Some(d) = self.topo.dest_mut(dest_id) {
            d.bind(true);
        }
        self.topo.counts_changed(dest_id);
        Ok((dest_id, tid))
    }

    fn forward_in(
        &mut self,
        now: Instant,
        frame: &mut FrameBuf<'_>,
        info: &PacketInfo,
        id: ConnId,
    ) -> Verdict {
        let Some(c) = self.conns.get(id) else {
            return self.drop(DropReason::NoDest);
        };
        let (fwd, daddr, dport, dest_id, svc) = (c.fwd, c.daddr, c.dport, c.dest, c.svc);
        if self.cfg.checksums == ChecksumPolicy::All
            && let Err(e) = rvs_wire::verify_l4_checksum(frame.data(), info)
        {
            return self.drop(e.into());
        }
        let dir = if fwd == rvs_conn::Fwd::Masq {
            Dir::Input
        } else {
            Dir::InputOnly
        };
        self.update_state(now, frame.data(), info, id, dir, dest_id);
        self.count_in(dest_id, svc, info.l3_len);
        let forward = Verdict::Forward(Forward {
            next_hop: daddr,
            conn: id,
            dir: Direction::ToServer,
        });
        match fwd {
            rvs_conn::Fwd::Masq => {
                match rvs_wire::rewrite::set_dst(frame.data_mut(), info, daddr, dport) {
                    Ok(()) => forward,
                    Err(e) => self.drop(e.into()),
                }
            }
            rvs_conn::Fwd::Tunnel => match self.topo.dest(dest_id).map(|d| d.cfg.fwd) {
                Some(Fwd::Tunnel(kind)) => self.tunnel(frame, info, &kind, daddr, id),
                _ => self.drop(DropReason::NoDest),
            },
            rvs_conn::Fwd::Local => self.pass(),
            _ => forward,
        }
    }

    /// [`Self::forward_in`] on the established fast path, for NAT and DR
    /// connections (`None`, having changed nothing, for the others).
    #[inline(always)]
    fn forward_in_v4(
        &mut self,
        now: Instant,
        frame: &mut FrameBuf<'_>,
        flow: &FlowV4,
        id: ConnId,
    ) -> Option<Verdict> {
        let c = self.conns.get(id)?;
        let (fwd, daddr, dport, dest_id, svc) = (c.fwd, c.daddr, c.dport, c.dest, c.svc);
        let dir = match fwd {
            rvs_conn::Fwd::Masq => Dir::Input,
            rvs_conn::Fwd::Route => Dir::InputOnly,
            _ => return None,
        };
        self.update_state_event(now, id, dir, dest_id, flow.proto, flow.tcp_flags);
        self.count_in(dest_id, svc, flow.l3_len);
        let forward = Verdict::Forward(Forward {
            next_hop: daddr,
            conn: id,
            dir: Direction::ToServer,
        });
        if fwd == rvs_conn::Fwd::Route {
            return Some(forward);
        }
        Some(
            match rvs_wire::rewrite::set_dst_v4(frame.data_mut(), flow, daddr, dport) {
                Ok(()) => forward,
                Err(e) => self.drop(e.into()),
            },
        )
    }

    /// Counts a packet toward a real server: its dest's, its service's and
    /// the director's counters.
    #[inline]
    fn count_in(&mut self, dest_id: u32, svc: u32, l3_len: u16) {
        let bytes = usize::from(l3_len);
        // The common case in one walk: a live dest of the conn's own
        // service (the dest and the service counted through one lookup of
        // each, where dest_mut and service_mut would repeat them).
        if let Some(&Loc::Live { svc: s, pos }) = self.topo.dest_loc.get(dest_id as usize)
            && s == svc
            && let Some(service) = self
                .topo
                .services
                .get_mut(s as usize)
                .and_then(|x| x.as_deref_mut())
            && let Some(d) = service.dests.get_mut(pos as usize)
        {
            d.stats.count_in(bytes);
            service.stats.count_in(bytes);
        } else {
            if let Some(d) = self.topo.dest_mut(dest_id) {
                d.stats.count_in(bytes);
            }
            if let Some(s) = self.topo.service_mut(svc) {
                s.stats.count_in(bytes);
            }
        }
        self.totals.count_in(bytes);
    }

    fn forward_ops(
        &mut self,
        now: Instant,
        frame: &mut FrameBuf<'_>,
        info: &PacketInfo,
        conn: Conn,
    ) -> Verdict {
        let _ = now;
        let bytes = info.l3_len as usize;
        let mut tunnel = None;
        if let Some(d) = self.topo.dest_mut(conn.dest) {
            d.stats.conns += 1;
            d.stats.count_in(bytes);
            if let Fwd::Tunnel(k) = d.cfg.fwd {
                tunnel = Some(k);
            }
        }
        if let Some(s) = self.topo.service_mut(conn.svc) {
            s.stats.conns += 1;
            s.stats.count_in(bytes);
        }
        self.totals.conns += 1;
        self.totals.count_in(bytes);
        let forward = Verdict::Forward(Forward {
            next_hop: conn.daddr,
            conn: NO_CONN,
            dir: Direction::ToServer,
        });
        match conn.fwd {
            rvs_conn::Fwd::Masq => {
                match rvs_wire::rewrite::set_dst(frame.data_mut(), info, conn.daddr, conn.dport) {
                    Ok(()) => forward,
                    Err(e) => self.drop(e.into()),
                }
            }
            rvs_conn::Fwd::Tunnel => match tunnel {
                Some(kind) => self.tunnel(frame, info, &kind, conn.daddr, NO_CONN),
                None => self.drop(DropReason::NoDest),
            },
            rvs_conn::Fwd::Local => self.pass(),
            _ => forward,
        }
    }

    fn forward_out(
        &mut self,
        now: Instant,
        frame: &mut FrameBuf<'_>,
        info: &PacketInfo,
        id: ConnId,
    ) -> Verdict {
        let Some(c) = self.conns.get(id) else {
            return self.pass();
        };
        if c.fwd != rvs_conn::Fwd::Masq {
            return self.pass();
        }
        let (vaddr, vport, caddr, dest_id, svc) = (c.vaddr, c.vport, c.caddr, c.dest, c.svc);
        if self.cfg.checksums == ChecksumPolicy::All
            && let Err(e) = rvs_wire::verify_l4_checksum(frame.data(), info)
        {
            return self.drop(e.into());
        }
        self.update_state(now, frame.data(), info, id, Dir::Output, dest_id);
        let bytes = info.l3_len as usize;
        if let Some(d) = self.topo.dest_mut(dest_id) {
            d.stats.count_out(bytes);
        }
        if let Some(s) = self.topo.service_mut(svc) {
            s.stats.count_out(bytes);
        }
        self.totals.count_out(bytes);
        match rvs_wire::rewrite::set_src(frame.data_mut(), info, vaddr, vport) {
            Ok(()) => Verdict::Forward(Forward {
                next_hop: caddr,
                conn: id,
                dir: Direction::ToClient,
            }),
            Err(e) => self.drop(e.into()),
        }
    }

    #[inline]
    fn update_state(
        &mut self,
        now: Instant,
        frame: &[u8],
        info: &PacketInfo,
        id: ConnId,
        dir: Dir,
        dest_id: u32,
    ) {
        let event = match info.proto {
            Proto::SCTP => sctp_chunk(frame, info).unwrap_or(0),
            _ => info.tcp_flags,
        };
        self.update_state_event(now, id, dir, dest_id, info.proto, event);
    }

    /// [`Self::update_state`] with the packet's state event: the TCP flags,
    /// or the SCTP packet's first chunk type.
    #[inline(always)]
    fn update_state_event(
        &mut self,
        now: Instant,
        id: ConnId,
        dir: Dir,
        dest_id: u32,
        proto: Proto,
        event: u8,
    ) {
        let change = match proto {
            Proto::TCP => Some(self.conns.update_state(id, dir, event, now)),
            Proto::SCTP => Some(self.conns.update_state_sctp(id, dir, event, now)),
            _ => {
                self.conns.touch(id, now);
                None
            }
        };
        // The table moved the entry's INACTIVE flag; move the dest's counters.
        if let Some(ch) = change
            && ch.was_active != ch.is_active
        {
            self.move_active(dest_id, ch.was_active, ch.is_active);
        }
    }

    /// Moves a dest's connection between its active and inactive counts
    /// (out of line: most packets change nothing).
    #[inline(never)]
    fn move_active(&mut self, dest_id: u32, was_active: bool, is_active: bool) {
        if let Some(d) = self.topo.dest_mut(dest_id) {
            d.move_active(was_active, is_active);
        }
        self.topo.counts_changed(dest_id);
    }

    /// TUN: encapsulate per the real server's tunnel settings, or answer a
    /// too-big packet as a router would (IPVS `ip_vs_tunnel_xmit` with
    /// `__mtu_check_toobig_v6` / `ip_vs_fill_iph` PMTU handling).
    fn tunnel(
        &mut self,
        frame: &mut FrameBuf<'_>,
        info: &PacketInfo,
        kind: &rvs_wire::encap::TunnelKind,
        daddr: Addr,
        id: ConnId,
    ) -> Verdict {
        let outer_af = daddr.af();
        let overhead = rvs_wire::encap::encap_len(kind, outer_af);
        let mtu = self.cfg.tunnel_mtu as usize;
        if info.l3_len as usize + overhead > mtu {
            let df = info.af == Af::V6
                || frame
                    .data()
                    .get(info.l3_off as usize + 6)
                    .is_some_and(|b| b & 0x40 != 0);
            if !df {
                return self.drop(DropReason::TooBigNoDf);
            }
            let inner_mtu = (mtu - overhead.min(mtu)) as u32;
            // The kernel's icmp_send answers from the address the packet was
            // sent to (the VIP is local), so the client accepts it.
            let src = info.dst;
            return match rvs_wire::build_too_big(frame, info, inner_mtu, src) {
                Ok(()) => Verdict::Reply,
                Err(e) => self.drop(e.into()),
            };
        }
        let src = if outer_af == Af::V4 {
            self.cfg.tunnel_src_v4
        } else {
            self.cfg.tunnel_src_v6
        };
        let hash = flow_hash(info);
        match rvs_wire::encap::encapsulate(frame, info, kind, src, daddr, hash) {
            Ok(()) => Verdict::Forward(Forward {
                next_hop: daddr,
                conn: id,
                dir: Direction::ToServer,
            }),
            Err(e) => self.drop(e.into()),
        }
    }

    /// ICMP errors related to a connection (IPVS `ip_vs_in_icmp` and
    /// `ip_vs_out_icmp`); other ICMP goes to the host.
    fn handle_icmp(
        &mut self,
        now: Instant,
        frame: &mut FrameBuf<'_>,
        info: &PacketInfo,
        meta: &RxMeta,
    ) -> Verdict {
        let Some(inner) = info.icmp.and_then(|i| i.inner) else {
            return self.pass();
        };
        // ip_vs_in_icmp / ip_vs_out_icmp relate only destination
        // unreachable, source quench and time exceeded (redirects and
        // parameter problems go to the host); over IPv6 every error type.
        if info.af == Af::V4 && !info.icmp.is_some_and(|i| matches!(i.ty, 3 | 4 | 11)) {
            return self.pass();
        }
        if info.frag != Frag::None {
            return self.drop(DropReason::Fragment);
        }
        let zone = meta.zone;
        // From the client side, about a packet we sent it (VIP -> client).
        let in_id = self.conns.lookup_in(
            zone,
            inner.proto,
            &inner.dst,
            inner.dport,
            &inner.src,
            inner.sport,
        );
        // From the real server side, about a packet we sent there (client -> RIP).
        let out_id = match in_id {
            Some(_) => None,
            None => self.conns.lookup_out(
                zone,
                inner.proto,
                &inner.dst,
                inner.dport,
                &inner.src,
                inner.sport,
            ),
        };
        if in_id.is_none() && out_id.is_none() {
            return self.pass();
        }
        if let Err(e) = rvs_wire::verify_l4_checksum(frame.data(), info) {
            return self.drop(e.into());
        }
        let _ = now;
        let bytes = info.l3_len as usize;
        if let Some(id) = in_id {
            let Some(c) = self.conns.get(id) else {
                return self.pass();
            };
            let (fwd, daddr, dport, dest_id, svc) = (c.fwd, c.daddr, c.dport, c.dest, c.svc);
            let tunnel = self.topo.dest_mut(dest_id).and_then(|d| {
                d.stats.count_in(bytes);
                match d.cfg.fwd {
                    Fwd::Tunnel(k) => Some(k),
                    _ => None,
                }
            });
            if let Some(s) = self.topo.service_mut(svc) {
                s.stats.count_in(bytes);
            }
            self.totals.count_in(bytes);
            let forward = Verdict::Forward(Forward {
                next_hop: daddr,
                conn: id,
                dir: Direction::ToServer,
            });
            return match fwd {
                rvs_conn::Fwd::Masq => {
                    use rvs_wire::rewrite::{Side, set_icmp_error};
                    match set_icmp_error(
                        frame.data_mut(),
                        info,
                        Side::Dst,
                        daddr,
                        Side::Src,
                        daddr,
                        dport,
                    ) {
                        Ok(()) => forward,
                        Err(e) => self.drop(e.into()),
                    }
                }
                rvs_conn::Fwd::Tunnel => match tunnel {
                    Some(kind) => self.tunnel(frame, info, &kind, daddr, id),
                    None => self.drop(DropReason::NoDest),
                },
                rvs_conn::Fwd::Local => self.pass(),
                _ => forward,
            };
        }
        let Some(id) = out_id else { return self.pass() };
        let Some(c) = self.conns.get(id) else {
            return self.pass();
        };
        if c.fwd != rvs_conn::Fwd::Masq {
            return self.pass();
        }
        let (vaddr, vport, caddr, dest_id, svc) = (c.vaddr, c.vport, c.caddr, c.dest, c.svc);
        if let Some(d) = self.topo.dest_mut(dest_id) {
            d.stats.count_out(bytes);
        }
        if let Some(s) = self.topo.service_mut(svc) {
            s.stats.count_out(bytes);
        }
        self.totals.count_out(bytes);
        use rvs_wire::rewrite::{Side, set_icmp_error};
        match set_icmp_error(
            frame.data_mut(),
            info,
            Side::Src,
            vaddr,
            Side::Dst,
            vaddr,
            vport,
        ) {
            Ok(()) => Verdict::Forward(Forward {
                next_hop: caddr,
                conn: id,
                dir: Direction::ToClient,
            }),
            Err(e) => self.drop(e.into()),
        }
    }

    fn estimate(&mut self) {
        self.est_total.sample(&self.totals);
        for s in self.topo.services.iter_mut().flatten() {
            s.est.sample(&s.stats);
            for d in &mut s.dests {
                d.est.sample(&d.stats);
            }
        }
        for d in self.topo.trash.values_mut() {
            d.est.sample(&d.stats);
        }
    }

    // ----- control plane ----------------------------------------------

    /// `ipvsadm -A`.
    pub fn add_service(&mut self, cfg: ServiceConfig) -> Result<(), ConfigError> {
        validate_service(&cfg)?;
        if self.topo.find(&cfg.key).is_some() {
            return Err(ConfigError::ServiceExists);
        }
        let idx = self.topo.services.len() as u32;
        match cfg.key {
            ServiceKey::Addr { proto, addr, port } => {
                self.topo.by_addr.insert((proto, addr, port), idx);
                if port == 0 {
                    self.topo.port_zero += 1;
                }
            }
            ServiceKey::Fwmark { mark, af } => {
                self.topo.by_mark.insert((mark, af), idx);
            }
        }
        self.topo.nodest.push(cfg.nodest);
        self.topo
            .services
            .push(Some(Box::new(Service::new(cfg, &self.cfg.sched))));
        Ok(())
    }

    /// `ipvsadm -E`: scheduler, flags, persistence and netmask change;
    /// real servers and connections stay.
    pub fn edit_service(&mut self, cfg: ServiceConfig) -> Result<(), ConfigError> {
        validate_service(&cfg)?;
        let idx = self.topo.find(&cfg.key).ok_or(ConfigError::NoService)?;
        let params = self.cfg.sched.clone();
        let svc = self.topo.service_mut(idx).ok_or(ConfigError::NoService)?;
        if svc.cfg.sched != cfg.sched || svc.cfg.sched_flags != cfg.sched_flags {
            svc.sched = rvs_sched::Scheduler::new(cfg.sched, cfg.sched_flags, &params);
            svc.sched.update(&svc.dests);
        }
        let nodest = cfg.nodest;
        svc.cfg = cfg;
        self.topo.nodest[idx as usize] = nodest;
        Ok(())
    }

    /// `ipvsadm -D`: the service goes; its connections live on toward their
    /// real servers until they expire (IPVS moves the dests to its trash).
    pub fn del_service(&mut self, key: &ServiceKey) -> Result<(), ConfigError> {
        let idx = self.topo.find(key).ok_or(ConfigError::NoService)?;
        match *key {
            ServiceKey::Addr { proto, addr, port } => {
                self.topo.by_addr.remove(&(proto, addr, port));
                if port == 0 {
                    self.topo.port_zero -= 1;
                }
            }
            ServiceKey::Fwmark { mark, af } => {
                self.topo.by_mark.remove(&(mark, af));
            }
        }
        if let Some(svc) = self.topo.services[idx as usize].take() {
            for d in svc.dests {
                self.trash_dest(d);
            }
        }
        Ok(())
    }

    /// `ipvsadm -C`: every service goes.
    pub fn clear(&mut self) {
        let keys: Vec<ServiceKey> = self
            .topo
            .services
            .iter()
            .flatten()
            .map(|s| s.cfg.key)
            .collect();
        for k in keys {
            let _ = self.del_service(&k);
        }
    }

    /// `ipvsadm -a`.
    pub fn add_dest(&mut self, key: &ServiceKey, cfg: DestConfig) -> Result<(), ConfigError> {
        let idx = self.topo.find(key).ok_or(ConfigError::NoService)?;
        validate_dest(key, &cfg)?;
        let id = self.next_dest_id;
        let svc = self.topo.service_mut(idx).ok_or(ConfigError::NoService)?;
        if svc.position(&cfg.addr, cfg.port).is_some() {
            return Err(ConfigError::DestExists);
        }
        // The kernel links a new dest at the head of the service's list
        // (`list_add_rcu`), and schedulers walk that list: keep the same
        // order so that choices are the kernel's.
        let load = self
            .cfg
            .shared_load
            .as_ref()
            .map(|l| l.dest(*key, cfg.addr, cfg.port));
        svc.dests.insert(0, Dest::with_load(id, cfg, load));
        svc.sched.update(&svc.dests);
        self.next_dest_id += 1;
        self.topo.dest_loc.push(Loc::Gone);
        self.relocate(idx, 0);
        Ok(())
    }

    /// `ipvsadm -e`.
    pub fn edit_dest(&mut self, key: &ServiceKey, cfg: DestConfig) -> Result<(), ConfigError> {
        let idx = self.topo.find(key).ok_or(ConfigError::NoService)?;
        validate_dest(key, &cfg)?;
        let svc = self.topo.service_mut(idx).ok_or(ConfigError::NoService)?;
        let pos = svc
            .position(&cfg.addr, cfg.port)
            .ok_or(ConfigError::NoDest)?;
        svc.dests[pos].edit(cfg);
        svc.sched.update(&svc.dests);
        Ok(())
    }

    /// `ipvsadm -d`: the real server stops getting connections; its
    /// existing ones go on, are dropped or are flushed on their next packet,
    /// as the service's [`NoDest`] policy says.
    pub fn del_dest(
        &mut self,
        key: &ServiceKey,
        addr: &Addr,
        port: u16,
    ) -> Result<(), ConfigError> {
        let idx = self.topo.find(key).ok_or(ConfigError::NoService)?;
        let svc = self.topo.service_mut(idx).ok_or(ConfigError::NoService)?;
        let pos = svc.position(addr, port).ok_or(ConfigError::NoDest)?;
        let d = svc.dests.remove(pos);
        svc.sched.update(&svc.dests);
        self.relocate(idx, pos);
        self.trash_dest(d);
        Ok(())
    }

    /// Records the positions of a service's dests from `from` on.
    fn relocate(&mut self, svc_idx: u32, from: usize) {
        let Some(svc) = self
            .topo
            .services
            .get(svc_idx as usize)
            .and_then(|s| s.as_ref())
        else {
            return;
        };
        for (p, d) in svc.dests.iter().enumerate().skip(from) {
            self.topo.dest_loc[d.id as usize] = Loc::Live {
                svc: svc_idx,
                pos: p as u32,
            };
        }
    }

    fn trash_dest(&mut self, d: Dest) {
        let id = d.id;
        if d.refs() == 0 {
            self.topo.dest_loc[id as usize] = Loc::Gone;
        } else {
            self.topo.dest_loc[id as usize] = Loc::Trash;
            self.topo.trash.insert(id, d);
        }
    }

    /// `ipvsadm -Z`: zero the counters of one service (and its real
    /// servers) or of everything.
    pub fn zero(&mut self, key: Option<&ServiceKey>) -> Result<(), ConfigError> {
        let zero_svc = |s: &mut Service| {
            s.stats = Counters::default();
            s.est.reset(&s.stats);
            for d in &mut s.dests {
                d.stats = Counters::default();
                d.est.reset(&d.stats);
            }
        };
        match key {
            Some(k) => {
                let idx = self.topo.find(k).ok_or(ConfigError::NoService)?;
                if let Some(s) = self.topo.service_mut(idx) {
                    zero_svc(s);
                }
            }
            None => {
                for s in self.topo.services.iter_mut().flatten() {
                    zero_svc(s);
                }
                self.totals = Counters::default();
                self.est_total.reset(&self.totals);
            }
        }
        Ok(())
    }

    /// `ipvsadm --set tcp tcpfin udp` (0 leaves a value unchanged).
    pub fn set_timeouts(&mut self, tcp: u32, tcpfin: u32, udp: u32) {
        let mut t = self.conns.timeouts().clone();
        t.set_ipvsadm(tcp, tcpfin, udp);
        self.conns.set_timeouts(t);
    }

    /// The (tcp, tcpfin, udp) timeouts in seconds, as `ipvsadm -L --timeout`.
    pub fn timeouts(&self) -> (u32, u32, u32) {
        self.conns.timeouts().ipvsadm_triple()
    }

    /// Services with their real servers, counters and rates.
    pub fn services(&self) -> Vec<ServiceSnapshot> {
        self.topo
            .services
            .iter()
            .flatten()
            .map(|s| ServiceSnapshot {
                cfg: s.cfg.clone(),
                stats: s.stats,
                rates: s.est.rates(),
                dests: s
                    .dests
                    .iter()
                    .map(|d| DestSnapshot {
                        cfg: d.cfg.clone(),
                        activeconns: d.activeconns,
                        inactconns: d.inactconns,
                        persistconns: d.persistconns,
                        stats: d.stats,
                        rates: d.est.rates(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// Every connection entry (templates included), for `ipvsadm -L -c`.
    pub fn connections(&self, now: Instant) -> Vec<ConnSnapshot> {
        self.conns
            .iter()
            .map(|(id, c)| ConnSnapshot {
                conn: *c,
                expires_in: self
                    .conns
                    .expires_at(id)
                    .map(|t| t - now)
                    .unwrap_or_default(),
                state: c.state_name(),
            })
            .collect()
    }

    /// Director-wide counters.
    pub fn stats(&self) -> GlobalStats {
        GlobalStats {
            totals: self.totals,
            rates: self.est_total.rates(),
            drops: DropReason::ALL
                .iter()
                .map(|r| (*r, self.drops[*r as usize]))
                .collect(),
            passed: self.passed,
            conns: self.conns.len(),
        }
    }

    /// The drop counter of one reason.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// The connection table's own counters (inserted, evicted, refused…).
    pub fn table_stats(&self) -> &rvs_conn::TableStats {
        self.conns.stats()
    }

    /// A connection entry.
    pub fn conn(&self, id: ConnId) -> Option<&Conn> {
        self.conns.get(id)
    }

    /// Number of connection entries (templates included).
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// Heap bytes held by the connection table.
    pub fn conn_memory_bytes(&self) -> usize {
        self.conns.memory_bytes()
    }
}

enum Reuse {
    Keep,
    Reschedule,
    /// Expired now, and the packet cannot open a new connection.
    DropExpired,
    /// Dropped; the entry stays, not refreshed.
    DropKept,
}

fn svc_key(topo: &Topology, idx: u32) -> Option<ServiceKey> {
    topo.services.get(idx as usize)?.as_ref().map(|s| s.cfg.key)
}

fn validate_service(cfg: &ServiceConfig) -> Result<(), ConfigError> {
    if let ServiceKey::Addr { proto, port, .. } = cfg.key {
        if !matches!(proto, Proto::TCP | Proto::UDP | Proto::SCTP) {
            return Err(ConfigError::Invalid(format!(
                "protocol {} cannot be a virtual service",
                proto.0
            )));
        }
        if port == 0 && cfg.persistence.is_none() {
            return Err(ConfigError::Invalid(
                "Zero port specified for non-persistent service".into(),
            ));
        }
        if cfg.ops && proto != Proto::UDP {
            return Err(ConfigError::Invalid(
                "One-Packet Scheduling is only for UDP virtual services".into(),
            ));
        }
    }
    let max = if cfg.key.af() == Af::V4 { 32 } else { 128 };
    if cfg.netmask > max {
        return Err(ConfigError::Invalid(format!(
            "netmask /{} is too long for the family",
            cfg.netmask
        )));
    }
    Ok(())
}

fn validate_dest(key: &ServiceKey, cfg: &DestConfig) -> Result<(), ConfigError> {
    if cfg.weight < 0 {
        return Err(ConfigError::Invalid("weight must be 0 or more".into()));
    }
    if cfg.l_threshold > cfg.u_threshold && cfg.u_threshold != 0 {
        return Err(ConfigError::Invalid(
            "lower threshold is greater than upper threshold".into(),
        ));
    }
    if !matches!(cfg.fwd, Fwd::Tunnel(_)) && cfg.addr.af() != key.af() {
        return Err(ConfigError::Invalid(
            "real server and virtual service families differ (only tunnels may mix them)".into(),
        ));
    }
    if let (ServiceKey::Addr { port: vport, .. }, Fwd::Route | Fwd::Tunnel(_)) = (key, cfg.fwd) {
        // ipvsadm: for DR and TUN the real server port is the virtual port.
        if *vport != 0 && cfg.port != *vport && cfg.port != 0 {
            return Err(ConfigError::Invalid(
                "direct routing and tunnelling cannot map ports: the real server port must equal the virtual port"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// IPVS `is_new_conn`: a TCP SYN without ACK/FIN/RST, or an SCTP INIT.
fn is_new_conn(frame: &[u8], info: &PacketInfo) -> bool {
    match info.proto {
        Proto::TCP => tcp_new_conn(info.tcp_flags),
        Proto::SCTP => sctp_chunk(frame, info) == Some(SCTP_INIT),
        _ => false,
    }
}

/// [`is_new_conn`] for TCP: SYN without ACK/FIN/RST.
#[inline]
fn tcp_new_conn(flags: u8) -> bool {
    flags & (TCP_SYN | TCP_ACK | TCP_FIN | TCP_RST) == TCP_SYN
}

/// Flag combinations no TCP stack sends: SYN with FIN or RST, or none at all.
fn bogus_tcp_flags(f: u8) -> bool {
    (f & TCP_SYN != 0 && f & (TCP_FIN | TCP_RST) != 0) || f & 0x3f == 0
}

/// Type of the first SCTP chunk.
#[inline]
fn sctp_chunk(frame: &[u8], info: &PacketInfo) -> Option<u8> {
    frame.get(info.l4_off as usize + 12).copied()
}

/// A flow hash for the outer source port of UDP tunnels (RSS on the real
/// server), from the inner 5-tuple.
#[inline]
fn flow_hash(info: &PacketInfo) -> u32 {
    let mut h: u32 = 0x9e37_79b9;
    for chunk in info.src.0.chunks_exact(4).chain(info.dst.0.chunks_exact(4)) {
        h = (h ^ u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
            .wrapping_mul(0x85eb_ca6b);
    }
    h ^= (u32::from(info.sport) << 16 | u32::from(info.dport)) ^ u32::from(info.proto.0);
    h ^= h >> 15;
    h.wrapping_mul(0xc2b2_ae35) ^ (h >> 13)
}
