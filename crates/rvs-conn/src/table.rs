//! [`ConnTable`]: slab + flow index + lazy timing wheel.

use std::hash::BuildHasher;
use std::time::Duration;

use rvs_types::{Addr, Instant, Proto, ZoneId};

use crate::index::Index;
use crate::proto::{Dir, Timeouts, sctp, tcp};
use crate::wheel::{SLOT_MASK, SLOTS, Wheel};
use crate::{
    Conn, ConnFlags, ConnId, ExpireAction, Fwd, InsertError, StateChange, TableConfig, TableStats,
};

/// End of a list (`next`, wheel heads, free list).
pub(crate) const NIL: u32 = u32::MAX;
/// `prev` of the first entry of a slot list: `HEAD | wheel << 16 | slot`.
const HEAD: u32 = 0x8000_0000;
/// `prev` of a free slab entry.
const FREE: u32 = 0x7fff_fffe;
/// `prev` of a live entry that is not linked (only inside `expire`).
const DETACHED: u32 = 0x7fff_ffff;
/// Largest `max_conns` (ids stay below the `prev` markers).
const MAX_CONNS: u32 = 0x7fff_fffd;
/// Bit of `Entry::timeout`: filed in the half-open (evictable) wheel.
const EMBRYO: u32 = 0x8000_0000;
/// Timeouts are clamped to this many ticks (wrapping deadline arithmetic
/// needs them below 2^31).
const TIMEOUT_MASK: u32 = 0x3fff_ffff;
const CHUNK_BITS: u32 = 10;
const CHUNK: usize = 1 << CHUNK_BITS;
/// `ip_vs_conn_new()` arms a new conn with 3 s until its first state
/// transition; templates keep it until the engine sets the persistence
/// timeout.
const TEMPLATE_INITIAL: Duration = Duration::from_secs(3);

const MAIN: usize = 0;
const EMBRYONIC: usize = 1;

/// A slab entry. The deadline and timeout come first so that a lookup plus
/// refresh touches one contiguous 52-byte span (deadline, timeout and the
/// conn's in-direction key and state); the wheel links, only touched when
/// an entry is re-filed, come last.
#[repr(C)]
#[derive(Clone, Copy)]
struct Entry {
    /// Expiry tick (wrapping u32).
    deadline: u32,
    /// Timeout in ticks used by refreshes, plus the [`EMBRYO`] bit.
    timeout: u32,
    conn: Conn,
    next: u32,
    prev: u32,
}

type Chunk = Box<[Entry; CHUNK]>;

/// Per-state timeouts converted to ticks.
#[derive(Clone, Copy, Default)]
struct TickTable {
    tcp: [u32; tcp::COUNT],
    sctp: [u32; sctp::COUNT],
    udp: u32,
    icmp: u32,
    template: u32,
}

/// The key of an in-direction lookup, for [`ConnTable::lookup_in_batch`].
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct InKey {
    /// Zone.
    pub zone: ZoneId,
    /// Protocol.
    pub proto: Proto,
    /// Client (source) address.
    pub caddr: Addr,
    /// Client (source) port.
    pub cport: u16,
    /// Virtual (destination) address.
    pub vaddr: Addr,
    /// Virtual (destination) port.
    pub vport: u16,
}

/// The connection table of one director core.
///
/// Lookups are one probe run in a linear-probing index of 4-byte slots plus
/// one entry compare; per-packet refreshes ([`Self::touch`],
/// [`Self::update_state`]) only store a new deadline in the entry. The
/// timing wheel re-files an entry lazily when its old slot comes due, so
/// [`Self::expire`] work is proportional to the entries whose slot came due
/// (IPVS instead re-arms a kernel timer per packet).
pub struct ConnTable {
    chunks: Vec<Chunk>,
    slab_len: u32,
    free_head: u32,
    len: usize,
    max_conns: u32,
    index: Index,
    seeds: [u64; 6],
    wheels: [Wheel; 2],
    tick_ns: u64,
    /// Next tick `expire` will process.
    cur: u64,
    started: bool,
    cache_ns: u64,
    cache_tick: u64,
    timeouts: Timeouts,
    ticks: TickTable,
    secure_tcp: bool,
    established_only: bool,
    no_cport: usize,
    evicted: Vec<Conn>,
    stats: TableStats,
}

impl ConnTable {
    /// An empty table. The index is pre-sized for `cfg.expected_conns`
    /// (clamped to `max_conns`); the slab grows in chunks of 1024 entries.
    pub fn new(cfg: TableConfig, timeouts: Timeouts) -> Self {
        let max_conns = cfg.max_conns.min(MAX_CONNS);
        // Ids are < max_conns <= 2^id_bits - 2, so `id_mask` and the EMPTY
        // slot value never name a real id.
        let id_bits = (32 - (max_conns.saturating_add(1)).leading_zeros()).clamp(1, 31);
        let expected = cfg.expected_conns.min(max_conns) as usize;
        let tick_ns = u64::try_from(cfg.tick.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        let state = foldhash::fast::RandomState::default();
        let seeds = std::array::from_fn(|i| state.hash_one(i as u64) | 1);
        let mut table = Self {
            chunks: Vec::new(),
            slab_len: 0,
            free_head: NIL,
            len: 0,
            max_conns,
            index: Index::new(id_bits, expected * 4 / 3 + 1),
            seeds,
            wheels: [Wheel::new(), Wheel::new()],
            tick_ns,
            cur: 0,
            started: false,
            cache_ns: u64::MAX,
            cache_tick: 0,
            timeouts: Timeouts::default(),
            ticks: TickTable::default(),
            secure_tcp: false,
            established_only: false,
            no_cport: 0,
            evicted: Vec::new(),
            stats: TableStats::default(),
        };
        table.set_timeouts(timeouts);
        table
    }

    /// Inserts `conn`, armed with its state's timeout (3 s for templates,
    /// as `ip_vs_conn_new`; set the persistence timeout with
    /// [`Self::set_timeout`]).
    ///
    /// At `max_conns` it first evicts the half-open TCP conn (NONE,
    /// SYN_SENT, SYN_RECV, SYNACK) closest to expiry — about the oldest —
    /// and queues it for [`Self::drain_evicted`]; with none it refuses with
    /// [`InsertError::Full`]. Duplicate keys are not checked (the engine
    /// looks up first, as IPVS does).
    pub fn insert(&mut self, conn: Conn, now: Instant) -> Result<ConnId, InsertError> {
        let (id, evicted) = self.insert_inner(conn, now)?;
        if let Some(c) = evicted {
            self.evicted.push(c);
        }
        Ok(id)
    }

    /// [`Self::insert`], reporting an evicted conn to `on_evict` instead of
    /// queueing it.
    pub fn insert_evicting(
        &mut self,
        conn: Conn,
        now: Instant,
        mut on_evict: impl FnMut(&Conn),
    ) -> Result<ConnId, InsertError> {
        let (id, evicted) = self.insert_inner(conn, now)?;
        if let Some(c) = evicted {
            on_evict(&c);
        }
        Ok(id)
    }

    /// Takes the conns evicted by [`Self::insert`] since the last call. The
    /// engine must drain after inserting, to fix dest counters (`dest`,
    /// `flags.INACTIVE`) and template references (`control`). Their ids
    /// are already reused.
    pub fn drain_evicted(&mut self) -> std::vec::Drain<'_, Conn> {
        self.evicted.drain(..)
    }

    /// The conn `id` names, mutably. See the crate docs for the fields
    /// that must not change.
    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        let e = self.entry_mut(id)?;
        (e.prev != FREE).then_some(&mut e.conn)
    }

    /// Per-packet protocol state transition and timer refresh (the kernel's
    /// `ip_vs_set_state` + `ip_vs_conn_put`). For TCP `flags` is the TCP
    /// flags byte; for SCTP conns it is the chunk type (see
    /// [`Self::update_state_sctp`]); UDP/ICMP/other conns keep their single
    /// state. Applies the kernel's NOOUTPUT rule (non-output packets of a
    /// NOOUTPUT conn use the INPUT_ONLY rows; an output packet clears the
    /// flag) and, for conns with `HAS_DEST`, moves the INACTIVE flag as
    /// `set_tcp_state`/`set_sctp_state` do (TCP: active in ESTABLISHED,
    /// SYN_SENT, SYN_RECV, SYNACK per `tcp_state_active_table`; SCTP: active
    /// in ESTABLISHED). Templates are only refreshed. An unknown id returns
    /// the all-zero `StateChange`.
    #[inline]
    pub fn update_state(&mut self, id: ConnId, dir: Dir, flags: u8, now: Instant) -> StateChange {
        if let Some(ch) = self.update_state_steady(id, dir, flags, now) {
            return ch;
        }
        self.update_state_general(id, dir, flags, now)
    }

    /// [`Self::update_state`]'s common case, inlined into the packet path: a
    /// TCP conn whose state the packet leaves as it is (an ACK in
    /// ESTABLISHED) keeps its flags and only gets its timer refreshed, the
    /// same refresh the general path makes. `None`, having changed nothing
    /// but `now`'s tick cache, in every other case (templates, a state
    /// change, an output packet clearing NOOUTPUT, other protocols).
    #[inline(always)]
    fn update_state_steady(
        &mut self,
        id: ConnId,
        dir: Dir,
        flags: u8,
        now: Instant,
    ) -> Option<StateChange> {
        let now_t = self.now_ceil(now);
        let e = entry_mut_in(&mut self.chunks, id).filter(|e| e.prev != FREE)?;
        let c = &e.conn;
        if c.proto != Proto::TCP || c.is_template() {
            return None;
        }
        let off = if c.flags.contains(ConnFlags::NOOUTPUT) {
            if dir == Dir::Output {
                return None;
            }
            8
        } else {
            match dir {
                Dir::Input => 0,
                Dir::Output => 4,
                Dir::InputOnly => 8,
            }
        };
        let state = c.state;
        if tcp::next(self.secure_tcp, off, flags, state) != state {
            return None;
        }
        let active = !c.flags.contains(ConnFlags::INACTIVE);
        let to = self.ticks.for_state(Proto::TCP, state);
        let embryo = tcp::is_embryonic(state);
        if let Some(deadline) = refresh_entry(e, to, embryo, now_t) {
            self.refile(id, deadline, embryo);
        }
        Some(StateChange {
            old: state,
            new: state,
            was_active: active,
            is_active: active,
        })
    }

    /// [`Self::update_state`] in full.
    fn update_state_general(
        &mut self,
        id: ConnId,
        dir: Dir,
        flags: u8,
        now: Instant,
    ) -> StateChange {
        let now_t = self.now_ceil(now);
        let secure = self.secure_tcp;
        let established_only = self.established_only;
        let ticks = &self.ticks;
        let Some(e) = entry_mut_in(&mut self.chunks, id).filter(|e| e.prev != FREE) else {
            return StateChange::default();
        };
        let c = &mut e.conn;
        let old = c.state;
        let was_active = !c.flags.contains(ConnFlags::INACTIVE);
        if c.is_template() {
            let to = e.timeout & TIMEOUT_MASK;
            self.refresh(id, to, false, now_t);
            return StateChange {
                old,
                new: old,
                was_active,
                is_active: was_active,
            };
        }
        let mut dir = dir;
        if c.flags.contains(ConnFlags::NOOUTPUT) {
            if dir == Dir::Output {
                c.flags.remove(ConnFlags::NOOUTPUT);
            } else {
                dir = Dir::InputOnly;
            }
        }
        let (new, active) = match c.proto {
            Proto::TCP => {
                let off = match dir {
                    Dir::Input => 0,
                    Dir::Output => 4,
                    Dir::InputOnly => 8,
                };
                let new = tcp::next(secure, off, flags, old);
                let active = if established_only {
                    new == tcp::ESTABLISHED
                } else {
                    tcp::ACTIVE.get(new as usize).copied().unwrap_or(false)
                };
                (new, active)
            }
            Proto::SCTP => {
                let d = match dir {
                    Dir::Input => 0,
                    Dir::Output => 1,
                    Dir::InputOnly => 2,
                };
                let new = sctp::next(d, flags, old);
                (new, new == sctp::ESTABLISHED)
            }
            _ => (old, was_active),
        };
        if new != old && c.flags.contains(ConnFlags::HAS_DEST) {
            if was_active && !active {
                c.flags.insert(ConnFlags::INACTIVE);
            } else if !was_active && active {
                c.flags.remove(ConnFlags::INACTIVE);
            }
        }
        c.state = new;
        let is_active = !c.flags.contains(ConnFlags::INACTIVE);
        let to = ticks.for_state(c.proto, new);
        let embryo = is_embryonic(c);
        self.refresh(id, to, embryo, now_t);
        StateChange {
            old,
            new,
            was_active,
            is_active,
        }
    }

    /// [`Self::update_state`] for SCTP conns, with the type of the packet's
    /// first chunk. As `set_sctp_state`, the engine should pass ABORT when a
    /// COOKIE ECHO or COOKIE ACK chunk is followed by an ABORT chunk.
    pub fn update_state_sctp(
        &mut self,
        id: ConnId,
        dir: Dir,
        chunk_type: u8,
        now: Instant,
    ) -> StateChange {
        self.update_state(id, dir, chunk_type, now)
    }

    /// Refreshes the expiry of `id` with its current timeout (the last one
    /// set by a state change, [`Self::set_timeout`] or insert) — the
    /// kernel's `ip_vs_conn_put` re-arm.
    pub fn touch(&mut self, id: ConnId, now: Instant) {
        let now_t = self.now_ceil(now);
        let Some(e) = self.entry(id).filter(|e| e.prev != FREE) else {
            return;
        };
        let (to, embryo) = (e.timeout & TIMEOUT_MASK, e.timeout & EMBRYO != 0);
        self.refresh(id, to, embryo, now_t);
    }

    /// Sets the timeout `id` is refreshed with (persistence templates:
    /// `ct->timeout = svc->timeout`) and re-arms it from `now`. Timeouts
    /// longer than 2^30 ticks are clamped.
    pub fn set_timeout(&mut self, id: ConnId, timeout: Duration, now: Instant) {
        let now_t = self.now_ceil(now);
        let to = self.ticks_of(timeout);
        let Some(e) = self.entry(id).filter(|e| e.prev != FREE) else {
            return;
        };
        let embryo = e.timeout & EMBRYO != 0;
        self.refresh(id, to, embryo, now_t);
    }

    /// Sets the client port of a `NO_CPORT` conn and clears the flag
    /// (`ip_vs_conn_fill_cport`). Returns false if `id` is not a live
    /// `NO_CPORT` conn.
    pub fn fill_cport(&mut self, id: ConnId, cport: u16) -> bool {
        let Some(c) = self.get(id).copied() else {
            return false;
        };
        if !c.flags.contains(ConnFlags::NO_CPORT)
            || c.is_template()
            || c.flags.contains(ConnFlags::UNHASHED)
        {
            return false;
        }
        self.unindex(id);
        if let Some(e) = self.entry_mut(id) {
            e.conn.cport = cport;
            e.conn.flags.remove(ConnFlags::NO_CPORT);
        }
        self.no_cport = self.no_cport.saturating_sub(1);
        self.index_entry(id);
        true
    }

    /// Takes `id` out of the lookup index while keeping it alive, so that no
    /// lookup finds it but it still expires (and can be removed) as usual:
    /// the kernel's invalidation of a stale persistence template in
    /// `ip_vs_check_template` (rehashed under an impossible port). Returns
    /// false when `id` is not live or already unhashed.
    pub fn unhash(&mut self, id: ConnId) -> bool {
        match self.get(id) {
            Some(c) if !c.flags.contains(ConnFlags::UNHASHED) => {}
            _ => return false,
        }
        self.unindex(id);
        if let Some(e) = self.entry_mut(id) {
            e.conn.flags.insert(ConnFlags::UNHASHED);
        }
        true
    }

    /// Removes `id` now, without calling anyone (the engine fixes its own
    /// counters). Returns the conn, or `None` for a free id.
    pub fn remove(&mut self, id: ConnId) -> Option<Conn> {
        self.get(id)?;
        self.unlink(id);
        let c = self.free_entry(id);
        self.stats.removed += 1;
        c
    }

    /// Removes every entry for which `pred` holds and returns them (flush,
    /// or dropping a deleted dest's conns as `expire_nodest_conn` does).
    /// O(slab size).
    pub fn remove_where(
        &mut self,
        mut pred: impl FnMut(ConnId, &Conn) -> bool,
    ) -> Vec<(ConnId, Conn)> {
        let ids: Vec<ConnId> = self
            .iter()
            .filter(|(id, c)| pred(*id, c))
            .map(|(id, _)| id)
            .collect();
        ids.into_iter()
            .filter_map(|id| self.remove(id).map(|c| (id, c)))
            .collect()
    }

    /// Expires every entry due at `now`, calling `on_expire(id, &conn)` for
    /// each: [`ExpireAction::Remove`] frees it, [`ExpireAction::Keep`]
    /// re-arms it from `now` (an entry kept with a zero duration is offered
    /// again at the next tick, not within this call). Entries whose lazily
    /// extended deadline is later are re-filed without a call. Work is proportional to the wheel slots
    /// passed and the entries filed in them; after a long gap at most one
    /// wheel revolution is scanned.
    pub fn expire(
        &mut self,
        now: Instant,
        mut on_expire: impl FnMut(ConnId, &Conn) -> ExpireAction,
    ) {
        let now_t = self.now_ceil(now);
        // Capped so that `target + 1` cannot overflow at Instant's end.
        let target = (now.as_nanos() / self.tick_ns).min(u64::MAX - 1);
        if target < self.cur {
            return;
        }
        let span = target - self.cur + 1;
        let full = span >= SLOTS as u64;
        let first = if full {
            target + 1 - SLOTS as u64
        } else {
            self.cur
        };
        self.cur = target + 1;
        for t in first..=target {
            let (due_limit, floor) = if full {
                (target, target + 1)
            } else {
                (t, t + 1)
            };
            let slot = (t & SLOT_MASK) as usize;
            for w in [MAIN, EMBRYONIC] {
                let mut id = self.take_slot(w, slot);
                while id != NIL {
                    let Some(e) = self.entry(id).copied() else {
                        break;
                    };
                    let next = e.next;
                    let embryo = e.timeout & EMBRYO != 0;
                    self.stats.expire_visits += 1;
                    if before_eq(e.deadline, due_limit as u32) {
                        match on_expire(id, &e.conn) {
                            ExpireAction::Remove => {
                                self.free_entry(id);
                                self.stats.expired += 1;
                            }
                            ExpireAction::Keep(d) => {
                                let deadline = (now_t as u32).wrapping_add(self.ticks_of(d));
                                if let Some(e) = self.entry_mut(id) {
                                    e.deadline = deadline;
                                }
                                // Never again within this call, even for
                                // Keep(0).
                                self.file(id, deadline, target + 1, embryo);
                                self.stats.rearmed += 1;
                            }
                        }
                    } else {
                        self.file(id, e.deadline, floor, embryo);
                    }
                    id = next;
                }
            }
        }
    }

    /// Replaces the timeout tables (`ipvsadm --set`); live conns pick the
    /// new values up at their next state update, as in the kernel.
    pub fn set_timeouts(&mut self, t: Timeouts) {
        let mut ticks = TickTable {
            template: self.ticks_of(TEMPLATE_INITIAL),
            udp: self.ticks_of(t.udp),
            icmp: self.ticks_of(t.icmp),
            ..TickTable::default()
        };
        for (dst, src) in ticks.tcp.iter_mut().zip(t.tcp.iter()) {
            *dst = self.ticks_of(*src);
        }
        for (dst, src) in ticks.sctp.iter_mut().zip(t.sctp.iter()) {
            *dst = self.ticks_of(*src);
        }
        self.ticks = ticks;
        self.timeouts = t;
    }

    /// Counts a TCP conn active only in ESTABLISHED, as kernels before
    /// `tcp_state_active_table` did (and as `set_sctp_state` still does for
    /// SCTP). Off by default: current kernels also count SYN_SENT,
    /// SYN_RECV and SYNACK as active.
    pub fn set_established_only_active(&mut self, on: bool) {
        self.established_only = on;
    }

    /// Selects the `secure_tcp` state table (`tcp_states_dos`) for TCP
    /// transitions from now on (sysctl `secure_tcp` >= 1).
    pub fn set_secure_tcp(&mut self, on: bool) {
        self.secure_tcp = on;
    }

    /// Number of live entries (conns + templates).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `max_conns` in force (after clamping).
    pub fn max_conns(&self) -> u32 {
        self.max_conns
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// In-direction lookup (`ip_vs_conn_in_get`): a packet from the client
    /// `caddr:cport` to `vaddr:vport`. Templates never match. A conn stored
    /// with `NO_CPORT` (cport 0) matches when no exact conn exists, as the
    /// kernel's retry with `cport = 0`. Unlike the kernel, a conn whose
    /// cport is really 0 (no `NO_CPORT` flag) is found by an exact lookup
    /// with cport 0, so port-less protocols work.
    ///
    /// Inlined always: it is the first thing every packet does, and its
    /// arguments are cheaper in registers than passed through memory. The
    /// `NO_CPORT` retry is out of line.
    #[inline(always)]
    pub fn lookup_in(
        &self,
        zone: ZoneId,
        proto: Proto,
        caddr: &Addr,
        cport: u16,
        vaddr: &Addr,
        vport: u16,
    ) -> Option<ConnId> {
        let found = self.find_in(zone, proto, caddr, cport, vaddr, vport, false);
        if found.is_none() && self.no_cport != 0 && cport != 0 {
            return self.lookup_in_no_cport(zone, proto, caddr, vaddr, vport);
        }
        found
    }

    /// [`Self::lookup_in`]'s retry for a `NO_CPORT` conn.
    #[inline(never)]
    fn lookup_in_no_cport(
        &self,
        zone: ZoneId,
        proto: Proto,
        caddr: &Addr,
        vaddr: &Addr,
        vport: u16,
    ) -> Option<ConnId> {
        self.find_in(zone, proto, caddr, 0, vaddr, vport, true)
    }

    /// [`Self::lookup_in`] for a batch of packets: hashes all keys and
    /// prefetches their index slots, then prefetches the candidate entries,
    /// then compares — so the cache misses of up to 16 lookups overlap
    /// instead of queueing. `out[i]` gets the result for `keys[i]` (extra
    /// elements of the longer slice are left alone).
    pub fn lookup_in_batch(&self, keys: &[InKey], out: &mut [Option<ConnId>]) {
        const B: usize = 16;
        let id_mask = self.index.id_mask();
        for (kc, oc) in keys.chunks(B).zip(out.chunks_mut(B)) {
            let mut hashes = [0u64; B];
            for (h, k) in hashes.iter_mut().zip(kc) {
                *h = hash_ep(&self.seeds, k.zone, k.proto, &k.caddr, k.cport);
                self.index.prefetch(*h);
            }
            for (h, _) in hashes.iter().zip(kc) {
                let tag = self.index.tag(*h, false);
                if let Some(e) = self
                    .index
                    .candidate(*h, tag, !id_mask)
                    .and_then(|id| entry_in(&self.chunks, id))
                {
                    prefetch(e);
                }
            }
            for ((h, k), o) in hashes.iter().zip(kc).zip(oc.iter_mut()) {
                let found = self.find_in_hashed(*h, k, false);
                *o = if found.is_none() && self.no_cport != 0 && k.cport != 0 {
                    self.find_in(k.zone, k.proto, &k.caddr, 0, &k.vaddr, k.vport, true)
                } else {
                    found
                };
            }
        }
    }

    /// Out-direction lookup (`ip_vs_conn_out_get`): a reply from the real
    /// server `saddr:sport` to `daddr:dport`, which is the client endpoint
    /// for Masq/Local/Bypass conns and `laddr:lport` for FullNat conns.
    /// Route/Tunnel conns and templates never match.
    #[inline]
    pub fn lookup_out(
        &self,
        zone: ZoneId,
        proto: Proto,
        saddr: &Addr,
        sport: u16,
        daddr: &Addr,
        dport: u16,
    ) -> Option<ConnId> {
        let h = hash_ep(&self.seeds, zone, proto, daddr, dport);
        let tag = self.index.tag(h, false);
        let mask = !self.index.id_mask() & !self.index.role_bit();
        self.index.find(h, tag, mask, |id| {
            let Some(e) = entry_in(&self.chunks, id) else {
                return false;
            };
            let c = &e.conn;
            let (a, p) = if c.fwd == Fwd::FullNat {
                (&c.laddr, c.lport)
            } else {
                (&c.caddr, c.cport)
            };
            p == dport
                && c.dport == sport
                && c.zone == zone
                && c.proto == proto
                && a == daddr
                && c.daddr == *saddr
                && c.fwd.sees_replies()
                && !c.flags.contains(ConnFlags::TEMPLATE)
        })
    }

    /// Persistence template lookup (`ip_vs_ct_in_get`): key
    /// `(zone, proto, caddr, vaddr, vport, fwmark)` exactly as the engine
    /// built the template (client address already masked; proto 0 and
    /// vport 0 for fwmark / port-zero services, as IPVS does).
    #[inline]
    pub fn lookup_template(
        &self,
        zone: ZoneId,
        proto: Proto,
        caddr: &Addr,
        vaddr: &Addr,
        vport: u16,
        fwmark: u32,
    ) -> Option<ConnId> {
        let h = hash_tpl(&self.seeds, zone, proto, caddr, vaddr, vport, fwmark);
        let tag = self.index.tag(h, false);
        let mask = !self.index.id_mask();
        self.index.find(h, tag, mask, |id| {
            let Some(e) = entry_in(&self.chunks, id) else {
                return false;
            };
            let c = &e.conn;
            c.flags.contains(ConnFlags::TEMPLATE)
                && c.vport == vport
                && c.fwmark == fwmark
                && c.zone == zone
                && c.proto == proto
                && c.caddr == *caddr
                && c.vaddr == *vaddr
        })
    }

    /// The conn `id` names, if live.
    #[inline]
    pub fn get(&self, id: ConnId) -> Option<&Conn> {
        self.entry(id).filter(|e| e.prev != FREE).map(|e| &e.conn)
    }

    /// The next instant at which [`Self::expire`] has work (an occupied
    /// wheel slot comes due; it may only re-file lazily extended entries).
    /// `None` when the table is empty.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.len == 0 {
            return None;
        }
        let from = (self.cur & SLOT_MASK) as usize;
        let d = self
            .wheels
            .iter()
            .filter_map(|w| w.next_occupied(from))
            .min()?;
        Some(Instant::from_nanos(
            self.cur
                .saturating_add(d as u64)
                .saturating_mul(self.tick_ns),
        ))
    }

    /// When `id` expires (its deadline, rounded up to a tick), for
    /// `ipvsadm -L -c`'s expire column.
    pub fn expires_at(&self, id: ConnId) -> Option<Instant> {
        let e = self.entry(id).filter(|e| e.prev != FREE)?;
        let delta = e.deadline.wrapping_sub(self.cur as u32) as i32;
        let tick = (self.cur as i128 + delta as i128).max(0) as u64;
        Some(Instant::from_nanos(tick.saturating_mul(self.tick_ns)))
    }

    /// Every live entry, in slab order.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn)> + '_ {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .take(self.slab_len as usize)
            .enumerate()
            .filter(|(_, e)| e.prev != FREE)
            .map(|(i, e)| (i as ConnId, &e.conn))
    }

    /// Event counters.
    pub fn stats(&self) -> &TableStats {
        &self.stats
    }

    /// Heap bytes held, from capacities: slab chunks, index slots, wheel
    /// heads and bitmaps, the eviction queue.
    pub fn memory_bytes(&self) -> usize {
        self.chunks.len() * size_of::<[Entry; CHUNK]>()
            + self.chunks.capacity() * size_of::<Chunk>()
            + self.index.heap_bytes()
            + self.wheels.iter().map(Wheel::heap_bytes).sum::<usize>()
            + self.evicted.capacity() * size_of::<Conn>()
    }

    /// Bytes of one slab entry (the conn plus deadline, timeout and wheel
    /// links).
    pub const ENTRY_BYTES: usize = size_of::<Entry>();

    // ---- private ----

    fn insert_inner(
        &mut self,
        mut conn: Conn,
        now: Instant,
    ) -> Result<(ConnId, Option<Conn>), InsertError> {
        let now_t = self.now_ceil(now);
        let mut evicted = None;
        if self.len >= self.max_conns as usize {
            match self.evict_one() {
                Some(c) => {
                    self.stats.evicted_embryonic += 1;
                    evicted = Some(c);
                }
                None => {
                    self.stats.refused_full += 1;
                    return Err(InsertError::Full);
                }
            }
        }
        let lout = !conn.is_template() && conn.fwd == Fwd::FullNat;
        let need = 1 + usize::from(lout);
        if self.index.needs_grow(need) {
            self.rebuild_index(self.index.capacity() * 2);
        }
        let Some(id) = self.alloc() else {
            // Only reachable if a chunk allocation failed after an eviction.
            if let Some(c) = evicted {
                self.evicted.push(c);
            }
            self.stats.refused_full += 1;
            return Err(InsertError::Full);
        };
        if conn.flags.contains(ConnFlags::NO_CPORT) {
            conn.cport = 0;
            self.no_cport += 1;
        }
        let to = if conn.is_template() {
            self.ticks.template
        } else {
            self.ticks.for_state(conn.proto, conn.state)
        };
        let embryo = is_embryonic(&conn);
        let deadline = (now_t as u32).wrapping_add(to);
        let mut conn = conn;
        conn.flags.remove(ConnFlags::UNHASHED);
        if let Some(e) = self.entry_mut(id) {
            *e = Entry {
                conn,
                deadline,
                timeout: to | if embryo { EMBRYO } else { 0 },
                next: NIL,
                prev: DETACHED,
            };
        }
        self.index_entry(id);
        self.file(id, deadline, self.cur, embryo);
        self.len += 1;
        self.stats.inserted += 1;
        Ok((id, evicted))
    }

    /// Evicts the half-open conn nearest to expiry.
    fn evict_one(&mut self) -> Option<Conn> {
        loop {
            let from = (self.cur & SLOT_MASK) as usize;
            let d = self.wheels[EMBRYONIC].next_occupied(from)?;
            let slot = (from + d) % SLOTS;
            let id = *self.wheels[EMBRYONIC].heads.get(slot)?;
            let e = *self.entry(id)?;
            self.unlink(id);
            if is_embryonic(&e.conn) {
                return self.free_entry(id);
            }
            // Its state was changed behind our back: file it as a normal one.
            if let Some(m) = self.entry_mut(id) {
                m.timeout &= !EMBRYO;
            }
            self.file(id, e.deadline, self.cur, false);
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn find_in(
        &self,
        zone: ZoneId,
        proto: Proto,
        caddr: &Addr,
        cport: u16,
        vaddr: &Addr,
        vport: u16,
        no_cport_only: bool,
    ) -> Option<ConnId> {
        let h = hash_ep(&self.seeds, zone, proto, caddr, cport);
        let key = InKey {
            zone,
            proto,
            caddr: *caddr,
            cport,
            vaddr: *vaddr,
            vport,
        };
        self.find_in_hashed(h, &key, no_cport_only)
    }

    #[inline(always)]
    fn find_in_hashed(&self, h: u64, k: &InKey, no_cport_only: bool) -> Option<ConnId> {
        let (zone, proto, caddr, cport, vaddr, vport) =
            (k.zone, k.proto, &k.caddr, k.cport, &k.vaddr, k.vport);
        let tag = self.index.tag(h, false);
        let mask = !self.index.id_mask();
        self.index.find(h, tag, mask, |id| {
            let Some(e) = entry_in(&self.chunks, id) else {
                return false;
            };
            let c = &e.conn;
            c.cport == cport
                && c.vport == vport
                && c.zone == zone
                && c.proto == proto
                && c.caddr == *caddr
                && c.vaddr == *vaddr
                && !c.flags.contains(ConnFlags::TEMPLATE)
                && (!no_cport_only || c.flags.contains(ConnFlags::NO_CPORT))
        })
    }

    /// Stores a refreshed deadline; moves the entry in the wheel only when
    /// the deadline got earlier or its evictability changed (out of line:
    /// the per-packet refresh of a steady conn only stores).
    #[inline]
    fn refresh(&mut self, id: ConnId, to: u32, embryo: bool, now_t: u64) {
        let Some(e) = self.entry_mut(id) else {
            return;
        };
        if let Some(deadline) = refresh_entry(e, to, embryo, now_t) {
            self.refile(id, deadline, embryo);
        }
    }

    #[inline(never)]
    fn refile(&mut self, id: ConnId, deadline: u32, embryo: bool) {
        self.unlink(id);
        self.file(id, deadline, self.cur, embryo);
    }

    /// Links `id` into the slot of `deadline` (or of `floor` if that is
    /// later) of the main or half-open wheel.
    fn file(&mut self, id: ConnId, deadline: u32, floor: u64, embryo: bool) {
        let at = if before(deadline, floor as u32) {
            floor as u32
        } else {
            deadline
        };
        let slot = (u64::from(at) & SLOT_MASK) as usize;
        let w = usize::from(embryo);
        let Some(head) = self.wheels[w].heads.get_mut(slot) else {
            return;
        };
        let old = std::mem::replace(head, id);
        self.wheels[w].mark(slot, true);
        let marker = HEAD | ((w as u32) << 16) | slot as u32;
        if let Some(e) = self.entry_mut(id) {
            e.next = old;
            e.prev = marker;
        }
        if old != NIL
            && let Some(o) = self.entry_mut(old)
        {
            o.prev = id;
        }
    }

    /// Unlinks a filed entry from its slot list.
    fn unlink(&mut self, id: ConnId) {
        let Some(e) = self.entry_mut(id) else {
            return;
        };
        let (p, n) = (e.prev, e.next);
        if p == FREE || p == DETACHED {
            return;
        }
        e.prev = DETACHED;
        e.next = NIL;
        if p & HEAD != 0 {
            let w = ((p >> 16) & 1) as usize;
            let slot = (p & 0xffff) as usize;
            if let Some(h) = self.wheels[w].heads.get_mut(slot) {
                *h = n;
            }
            if n == NIL {
                self.wheels[w].mark(slot, false);
            }
        } else if let Some(pe) = self.entry_mut(p) {
            pe.next = n;
        }
        if n != NIL
            && let Some(ne) = self.entry_mut(n)
        {
            ne.prev = p;
        }
    }

    /// Detaches a whole slot list, returning its first id.
    fn take_slot(&mut self, w: usize, slot: usize) -> u32 {
        let Some(h) = self.wheels[w].heads.get_mut(slot) else {
            return NIL;
        };
        let first = std::mem::replace(h, NIL);
        self.wheels[w].mark(slot, false);
        first
    }

    /// Unindexes and frees an entry that is no longer linked in the wheel.
    fn free_entry(&mut self, id: ConnId) -> Option<Conn> {
        let conn = self.get(id).copied()?;
        if !conn.flags.contains(ConnFlags::UNHASHED) {
            self.unindex(id);
        }
        if conn.flags.contains(ConnFlags::NO_CPORT) {
            self.no_cport = self.no_cport.saturating_sub(1);
        }
        let free_head = self.free_head;
        if let Some(e) = self.entry_mut(id) {
            e.prev = FREE;
            e.next = free_head;
        }
        self.free_head = id;
        self.len -= 1;
        Some(conn)
    }

    fn alloc(&mut self) -> Option<ConnId> {
        if self.free_head != NIL {
            let id = self.free_head;
            self.free_head = self.entry(id)?.next;
            return Some(id);
        }
        if self.slab_len >= self.max_conns {
            return None;
        }
        if self.slab_len as usize == self.chunks.len() * CHUNK {
            let vacant = Entry {
                conn: Conn::default(),
                deadline: 0,
                timeout: 0,
                next: NIL,
                prev: FREE,
            };
            let chunk: Chunk = vec![vacant; CHUNK].into_boxed_slice().try_into().ok()?;
            self.chunks.push(chunk);
        }
        let id = self.slab_len;
        self.slab_len += 1;
        Some(id)
    }

    fn main_hash(&self, c: &Conn) -> u64 {
        if c.is_template() {
            hash_tpl(
                &self.seeds,
                c.zone,
                c.proto,
                &c.caddr,
                &c.vaddr,
                c.vport,
                c.fwmark,
            )
        } else {
            hash_ep(&self.seeds, c.zone, c.proto, &c.caddr, c.cport)
        }
    }

    fn index_entry(&mut self, id: ConnId) {
        let Some(c) = self.entry(id).map(|e| e.conn) else {
            return;
        };
        let h = self.main_hash(&c);
        let tag = self.index.tag(h, false);
        self.index.insert(h, tag, id);
        if !c.is_template() && c.fwd == Fwd::FullNat {
            let h = hash_ep(&self.seeds, c.zone, c.proto, &c.laddr, c.lport);
            let tag = self.index.tag(h, true);
            self.index.insert(h, tag, id);
        }
    }

    fn unindex(&mut self, id: ConnId) {
        let Some(c) = self.entry(id).map(|e| e.conn) else {
            return;
        };
        let main = self.main_hash(&c);
        let lout = (!c.is_template() && c.fwd == Fwd::FullNat)
            .then(|| hash_ep(&self.seeds, c.zone, c.proto, &c.laddr, c.lport));
        let (index, chunks, seeds) = (&mut self.index, &self.chunks, &self.seeds);
        let id_mask = index.id_mask();
        let role = index.role_bit();
        let home = |s: u32| -> u64 {
            let Some(e) = entry_in(chunks, s & id_mask) else {
                return 0;
            };
            let c = &e.conn;
            if s & role != 0 {
                hash_ep(seeds, c.zone, c.proto, &c.laddr, c.lport)
            } else if c.is_template() {
                hash_tpl(
                    seeds, c.zone, c.proto, &c.caddr, &c.vaddr, c.vport, c.fwmark,
                )
            } else {
                hash_ep(seeds, c.zone, c.proto, &c.caddr, c.cport)
            }
        };
        let tag = index.tag(main, false);
        let removed = index.remove(main, tag, id, home);
        debug_assert!(removed, "conn {id} key fields changed while indexed");
        if let Some(h) = lout {
            let tag = index.tag(h, true);
            let removed = index.remove(h, tag, id, home);
            debug_assert!(removed, "conn {id} local key changed while indexed");
        }
    }

    fn rebuild_index(&mut self, cap: usize) {
        let id_bits = 32 - self.index.id_mask().leading_zeros();
        self.index = Index::new(id_bits, cap);
        for id in 0..self.slab_len {
            if self
                .get(id)
                .is_some_and(|c| !c.flags.contains(ConnFlags::UNHASHED))
            {
                self.index_entry(id);
            }
        }
        self.stats.index_rebuilds += 1;
    }

    /// `ceil(now / tick)`, cached for repeated calls with the same `now`;
    /// starts the wheel on first use.
    #[inline]
    fn now_ceil(&mut self, now: Instant) -> u64 {
        let ns = now.as_nanos();
        if ns != self.cache_ns {
            self.cache_ns = ns;
            self.cache_tick = ns.div_ceil(self.tick_ns);
            if !self.started {
                self.started = true;
                self.cur = ns / self.tick_ns;
            }
        }
        self.cache_tick
    }

    fn ticks_of(&self, d: Duration) -> u32 {
        let t = d.as_nanos().div_ceil(u128::from(self.tick_ns));
        u32::try_from(t).unwrap_or(u32::MAX).min(TIMEOUT_MASK)
    }

    #[inline]
    fn entry(&self, id: ConnId) -> Option<&Entry> {
        entry_in(&self.chunks, id)
    }

    #[inline]
    fn entry_mut(&mut self, id: ConnId) -> Option<&mut Entry> {
        entry_mut_in(&mut self.chunks, id)
    }
}

impl TickTable {
    #[inline]
    fn for_state(&self, proto: Proto, state: u8) -> u32 {
        // Out-of-range states: the kernel's [IP_VS_*_S_LAST] entry is 2 s,
        // the same as NONE.
        match proto {
            Proto::TCP => self.tcp.get(state as usize).copied().unwrap_or(self.tcp[0]),
            Proto::SCTP => self
                .sctp
                .get(state as usize)
                .copied()
                .unwrap_or(self.sctp[0]),
            Proto::ICMP | Proto::ICMPV6 => self.icmp,
            _ => self.udp,
        }
    }
}

/// Hints the CPU to pull the cache lines at `p` (and 64 bytes on, which
/// covers every field a lookup compares) into L1.
#[inline(always)]
pub(crate) fn prefetch<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let p = (p as *const T).cast::<i8>();
        // SAFETY: PREFETCHT0 is only a hint: it never faults or reads into
        // the program, whatever the address; SSE is in the x86_64 baseline.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p);
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(63));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[inline]
fn entry_in(chunks: &[Chunk], id: ConnId) -> Option<&Entry> {
    let chunk = chunks.get((id >> CHUNK_BITS) as usize)?;
    Some(&chunk[id as usize & (CHUNK - 1)])
}

#[inline]
fn entry_mut_in(chunks: &mut [Chunk], id: ConnId) -> Option<&mut Entry> {
    let chunk = chunks.get_mut((id >> CHUNK_BITS) as usize)?;
    Some(&mut chunk[id as usize & (CHUNK - 1)])
}

/// [`ConnTable::refresh`]'s stores: the new deadline and timeout. Returns the
/// deadline when the entry must be re-filed in the wheel (the deadline got
/// earlier, or the entry's evictability changed).
#[inline(always)]
fn refresh_entry(e: &mut Entry, to: u32, embryo: bool, now_t: u64) -> Option<u32> {
    let deadline = (now_t as u32).wrapping_add(to);
    let was_embryo = e.timeout & EMBRYO != 0;
    let earlier = before(deadline, e.deadline);
    e.deadline = deadline;
    e.timeout = to | if embryo { EMBRYO } else { 0 };
    (earlier || was_embryo != embryo).then_some(deadline)
}

/// Whether a conn may be evicted under pressure: a TCP conn that has not
/// (re)reached ESTABLISHED.
#[inline]
fn is_embryonic(c: &Conn) -> bool {
    c.proto == Proto::TCP && !c.is_template() && tcp::is_embryonic(c.state)
}

/// `a` strictly before `b` in wrapping tick arithmetic.
#[inline]
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

#[inline]
fn before_eq(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) <= 0
}

#[inline]
fn fmul(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// Hash of an endpoint key (the kernel's `ip_vs_conn_hashkey`: protocol,
/// address, port; plus our zone), folded-multiply style with per-table
/// random seeds.
#[inline]
fn hash_ep(s: &[u64; 6], zone: ZoneId, proto: Proto, addr: &Addr, port: u16) -> u64 {
    let a = u128::from_le_bytes(addr.0);
    let m = u64::from(zone) | (u64::from(proto.0) << 16) | (u64::from(port) << 24);
    fmul(fmul(a as u64 ^ s[0], (a >> 64) as u64 ^ s[1]) ^ m, s[2])
}

/// Hash of a template key.
#[inline]
fn hash_tpl(
    s: &[u64; 6],
    zone: ZoneId,
    proto: Proto,
    caddr: &Addr,
    vaddr: &Addr,
    vport: u16,
    fwmark: u32,
) -> u64 {
    let a = u128::from_le_bytes(caddr.0);
    let b = u128::from_le_bytes(vaddr.0);
    let m = u64::from(zone) | (u64::from(proto.0) << 16) | (u64::from(vport) << 24);
    let h = fmul(a as u64 ^ s[3], (a >> 64) as u64 ^ s[4]);
    let h = fmul(b as u64 ^ h, (b >> 64) as u64 ^ s[5]);
    fmul(fmul(h ^ m, s[2]) ^ u64::from(fwmark), s[0])
}
