//! Property test: random operation sequences against a plain `HashMap`
//! model. The model keeps its own deadlines (ticks of 100 ms, written-out
//! kernel timeouts) and answers lookups by linear scan; after every step
//! the table must agree on contents, deadlines, lookups, what expired when,
//! and never exceed `max_conns`.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use proptest::prelude::*;
use rvs_conn::proto::tcp;
use rvs_conn::{
    Conn, ConnFlags, ConnId, ConnTable, Dir, ExpireAction, Fwd, InKey, InsertError, TableConfig,
    Timeouts,
};
use rvs_types::{Addr, Instant, Proto};

const TICK_MS: u64 = 100;
const MAX: u32 = 12;
const VIP: Addr = Addr::v4([192, 0, 2, 1]);
const RIP: Addr = Addr::v4([172, 16, 0, 5]);
const LIP: Addr = Addr::v4([172, 16, 0, 1]);

/// Kernel `tcp_timeouts[]` in seconds, by state number.
const TCP_SECS: [u64; 11] = [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120];
const UDP_SECS: u64 = 300;
const TEMPLATE_INITIAL_SECS: u64 = 3;

#[derive(Clone, Debug)]
enum Op {
    Insert {
        client: u8,
        cport: u8,
        vport: u8,
        kind: u8,
    },
    Remove(usize),
    Touch(usize),
    SetTimeout(usize, u16),
    Update(usize, u8, u8),
    Advance(u32),
    LookupIn {
        client: u8,
        cport: u8,
        vport: u8,
    },
    LookupOut {
        client: u8,
        cport: u8,
    },
    LookupTpl {
        client: u8,
        vport: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..6u8, 0..4u8, 0..2u8, 0..6u8).prop_map(|(client, cport, vport, kind)| Op::Insert {
            client,
            cport,
            vport,
            kind
        }),
        1 => any::<usize>().prop_map(Op::Remove),
        2 => any::<usize>().prop_map(Op::Touch),
        1 => (any::<usize>(), 0..3000u16).prop_map(|(i, s)| Op::SetTimeout(i, s)),
        3 => (any::<usize>(), 0..3u8, any::<u8>()).prop_map(|(i, d, f)| Op::Update(i, d, f)),
        3 => prop_oneof![0..2_000u32, 0..200_000u32, 0..2_000_000u32].prop_map(Op::Advance),
        2 => (0..6u8, 0..4u8, 0..2u8).prop_map(|(client, cport, vport)| Op::LookupIn {
            client,
            cport,
            vport
        }),
        1 => (0..6u8, 0..4u8).prop_map(|(client, cport)| Op::LookupOut { client, cport }),
        1 => (0..6u8, 0..2u8).prop_map(|(client, vport)| Op::LookupTpl { client, vport }),
    ]
}

#[derive(Clone, Debug)]
struct MConn {
    conn: Conn,
    /// Deadline tick.
    deadline: u64,
    /// Refresh timeout in ticks.
    timeout: u64,
    kept: bool,
}

struct Model {
    conns: HashMap<ConnId, MConn>,
    now_ms: u64,
    /// Source of unique FULLNAT local ports.
    lport_seq: u16,
}

fn ceil_ticks_ms(ms: u64) -> u64 {
    ms.div_ceil(TICK_MS)
}

fn addr(client: u8) -> Addr {
    Addr::v4([10, 0, 0, client])
}

fn port(p: u8) -> u16 {
    1000 + u16::from(p)
}

fn embryonic(c: &Conn) -> bool {
    c.proto == Proto::TCP && !c.is_template() && matches!(c.state, 0 | 2 | 3 | 10)
}

fn state_secs(c: &Conn) -> u64 {
    match c.proto {
        Proto::TCP => TCP_SECS.get(c.state as usize).copied().unwrap_or(2),
        _ => UDP_SECS,
    }
}

impl Model {
    fn ids(&self) -> Vec<ConnId> {
        let mut v: Vec<_> = self.conns.keys().copied().collect();
        v.sort_unstable();
        v
    }

    fn pick(&self, i: usize) -> Option<ConnId> {
        let ids = self.ids();
        (!ids.is_empty()).then(|| ids[i % ids.len()])
    }

    fn now_ceil(&self) -> u64 {
        ceil_ticks_ms(self.now_ms)
    }

    fn find_in(&self, proto: Proto, caddr: &Addr, cport: u16, vport: u16) -> Option<ConnId> {
        let m = |no_cport_only: bool, cport: u16| {
            self.conns.iter().find_map(|(id, m)| {
                let c = &m.conn;
                (!c.is_template()
                    && c.proto == proto
                    && c.caddr == *caddr
                    && c.cport == cport
                    && c.vaddr == VIP
                    && c.vport == vport
                    && (!no_cport_only || c.flags.contains(ConnFlags::NO_CPORT)))
                .then_some(*id)
            })
        };
        m(false, cport).or_else(|| if cport != 0 { m(true, 0) } else { None })
    }

    /// Every conn a reply to `daddr:dport` may belong to (replies of two
    /// conns from one client endpoint to one real server are ambiguous, in
    /// the kernel too).
    fn find_out(&self, proto: Proto, daddr: &Addr, dport: u16) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter_map(|(id, m)| {
                let c = &m.conn;
                if c.proto != proto {
                    return None;
                }
                let (a, p) = if c.fwd == Fwd::FullNat {
                    (c.laddr, c.lport)
                } else {
                    (c.caddr, c.cport)
                };
                (!c.is_template()
                    && !matches!(c.fwd, Fwd::Route | Fwd::Tunnel)
                    && c.daddr == RIP
                    && c.dport == 8080
                    && a == *daddr
                    && p == dport)
                    .then_some(*id)
            })
            .collect()
    }

    fn find_tpl(&self, caddr: &Addr, vport: u16) -> Option<ConnId> {
        self.conns.iter().find_map(|(id, m)| {
            let c = &m.conn;
            (c.is_template() && c.caddr == *caddr && c.vaddr == VIP && c.vport == vport)
                .then_some(*id)
        })
    }
}

fn new_conn(model: &mut Model, client: u8, cport: u8, vport: u8, kind: u8) -> Conn {
    let base = Conn {
        caddr: addr(client),
        cport: port(cport),
        vaddr: VIP,
        vport: port(vport),
        daddr: RIP,
        dport: 8080,
        proto: Proto::TCP,
        flags: ConnFlags::INACTIVE | ConnFlags::HAS_DEST,
        ..Conn::default()
    };
    match kind {
        0 => base, // TCP NONE (half-open)
        1 => Conn {
            state: tcp::ESTABLISHED,
            ..base
        },
        2 => Conn {
            proto: Proto::UDP,
            ..base
        },
        3 => Conn {
            cport: 0,
            flags: ConnFlags::TEMPLATE,
            ..base
        },
        4 => {
            model.lport_seq = model.lport_seq.wrapping_add(1);
            Conn {
                fwd: Fwd::FullNat,
                laddr: LIP,
                lport: 20_000 + model.lport_seq,
                state: tcp::ESTABLISHED,
                ..base
            }
        }
        _ => Conn {
            cport: 0,
            flags: ConnFlags::NO_CPORT | ConnFlags::HAS_DEST,
            fwd: Fwd::Route,
            ..base
        },
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let cfg = TableConfig {
        max_conns: MAX,
        tick: Duration::from_millis(TICK_MS),
        expected_conns: 2,
    };
    let mut t = ConnTable::new(cfg, Timeouts::default());
    let mut m = Model {
        conns: HashMap::new(),
        now_ms: 1_000_000,
        lport_seq: 0,
    };
    for op in ops {
        let now = Instant::from_millis(m.now_ms);
        match op {
            Op::Insert {
                client,
                cport,
                vport,
                kind,
            } => {
                let c = new_conn(&mut m, client, cport, vport, kind);
                let dup = if c.is_template() {
                    m.find_tpl(&c.caddr, c.vport).is_some()
                } else {
                    m.conns.values().any(|x| {
                        !x.conn.is_template()
                            && x.conn.caddr == c.caddr
                            && x.conn.cport == c.cport
                            && x.conn.vport == c.vport
                    })
                };
                if dup {
                    continue;
                }
                let full = m.conns.len() >= MAX as usize;
                let can_evict = m.conns.values().any(|x| embryonic(&x.conn));
                let mut evicted = Vec::new();
                let r = t.insert_evicting(c, now, |e| evicted.push(*e));
                if full && !can_evict {
                    prop_assert_eq!(r, Err(InsertError::Full));
                    prop_assert!(evicted.is_empty());
                    continue;
                }
                let id = r.map_err(|e| TestCaseError::fail(format!("{e}")))?;
                if full {
                    prop_assert_eq!(evicted.len(), 1);
                    let gone = m
                        .conns
                        .iter()
                        .find(|(_, x)| x.conn == evicted[0])
                        .map(|(id, _)| *id);
                    let gone = gone.ok_or_else(|| TestCaseError::fail("evicted unknown conn"))?;
                    prop_assert!(embryonic(&m.conns[&gone].conn));
                    m.conns.remove(&gone);
                } else {
                    prop_assert!(evicted.is_empty());
                }
                prop_assert!(!m.conns.contains_key(&id));
                let secs = if c.is_template() {
                    TEMPLATE_INITIAL_SECS
                } else {
                    state_secs(&c)
                };
                let timeout = secs * 1000 / TICK_MS;
                let deadline = m.now_ceil() + timeout;
                m.conns.insert(
                    id,
                    MConn {
                        conn: c,
                        deadline,
                        timeout,
                        kept: false,
                    },
                );
            }
            Op::Remove(i) => {
                if let Some(id) = m.pick(i) {
                    let got = t.remove(id);
                    let want = m.conns.remove(&id).map(|x| x.conn);
                    prop_assert_eq!(got, want);
                }
            }
            Op::Touch(i) => {
                if let Some(id) = m.pick(i) {
                    t.touch(id, now);
                    let nc = m.now_ceil();
                    let x = m.conns.get_mut(&id).unwrap();
                    x.deadline = nc + x.timeout;
                }
            }
            Op::SetTimeout(i, s) => {
                if let Some(id) = m.pick(i) {
                    t.set_timeout(id, Duration::from_secs(s.into()), now);
                    let nc = m.now_ceil();
                    let x = m.conns.get_mut(&id).unwrap();
                    x.timeout = u64::from(s) * 1000 / TICK_MS;
                    x.deadline = nc + x.timeout;
                }
            }
            Op::Update(i, d, flags) => {
                if let Some(id) = m.pick(i) {
                    let dir = [Dir::Input, Dir::Output, Dir::InputOnly][d as usize % 3];
                    let ch = t.update_state(id, dir, flags, now);
                    let after = *t.get(id).unwrap();
                    let nc = m.now_ceil();
                    let x = m.conns.get_mut(&id).unwrap();
                    prop_assert_eq!(ch.old, x.conn.state);
                    prop_assert_eq!(ch.new, after.state);
                    if x.conn.is_template() || x.conn.proto != Proto::TCP {
                        prop_assert_eq!(ch.new, ch.old);
                    }
                    if !x.conn.is_template() {
                        x.timeout = state_secs(&after) * 1000 / TICK_MS;
                    }
                    x.conn = after;
                    x.deadline = nc + x.timeout;
                }
            }
            Op::Advance(dt) => {
                m.now_ms += u64::from(dt);
                let now = Instant::from_millis(m.now_ms);
                let floor = m.now_ms / TICK_MS;
                let mut want: BTreeSet<ConnId> = BTreeSet::new();
                for (id, x) in &m.conns {
                    if x.deadline <= floor {
                        want.insert(*id);
                    }
                }
                let mut got = BTreeSet::new();
                let mut kept = Vec::new();
                let conns = &m.conns;
                let mut bad = None;
                t.expire(now, |id, c| {
                    if conns.get(&id).map(|x| x.conn) != Some(*c) {
                        bad = Some(id);
                    }
                    got.insert(id);
                    // Templates are kept once for 30 s.
                    match conns.get(&id) {
                        Some(x) if x.conn.is_template() && !x.kept => {
                            kept.push(id);
                            ExpireAction::Keep(Duration::from_secs(30))
                        }
                        _ => ExpireAction::Remove,
                    }
                });
                prop_assert_eq!(bad, None);
                prop_assert_eq!(&got, &want);
                let nc = m.now_ceil();
                for id in got {
                    if kept.contains(&id) {
                        let x = m.conns.get_mut(&id).unwrap();
                        x.kept = true;
                        x.deadline = nc + 30_000 / TICK_MS;
                    } else {
                        m.conns.remove(&id);
                    }
                }
            }
            Op::LookupIn {
                client,
                cport,
                vport,
            } => {
                let cp = if cport == 3 { 0 } else { port(cport) };
                for proto in [Proto::TCP, Proto::UDP] {
                    let got = t.lookup_in(0, proto, &addr(client), cp, &VIP, port(vport));
                    prop_assert_eq!(got, m.find_in(proto, &addr(client), cp, port(vport)));
                    let key = InKey {
                        zone: 0,
                        proto,
                        caddr: addr(client),
                        cport: cp,
                        vaddr: VIP,
                        vport: port(vport),
                    };
                    let mut out = [Some(u32::MAX)];
                    t.lookup_in_batch(&[key], &mut out);
                    prop_assert_eq!(out[0], got);
                }
            }
            Op::LookupOut { client, cport } => {
                let l = 20_000 + u16::from(client) * 4 + u16::from(cport);
                for proto in [Proto::TCP, Proto::UDP] {
                    let (a, p) = (addr(client), port(cport));
                    for (got, want) in [
                        (
                            t.lookup_out(0, proto, &RIP, 8080, &a, p),
                            m.find_out(proto, &a, p),
                        ),
                        (
                            t.lookup_out(0, proto, &RIP, 8080, &LIP, l),
                            m.find_out(proto, &LIP, l),
                        ),
                    ] {
                        match got {
                            None => prop_assert!(want.is_empty(), "missed {:?}", want),
                            Some(id) => {
                                prop_assert!(want.contains(&id), "{} not in {:?}", id, want)
                            }
                        }
                    }
                }
            }
            Op::LookupTpl { client, vport } => {
                let got = t.lookup_template(0, Proto::TCP, &addr(client), &VIP, port(vport), 0);
                prop_assert_eq!(got, m.find_tpl(&addr(client), port(vport)));
            }
        }
        // Invariants after every step.
        prop_assert!(t.len() <= MAX as usize);
        prop_assert_eq!(t.len(), m.conns.len());
        for (id, x) in &m.conns {
            prop_assert_eq!(t.get(*id), Some(&x.conn));
            prop_assert_eq!(
                t.expires_at(*id),
                Some(Instant::from_millis(x.deadline * TICK_MS)),
                "deadline of {}",
                id
            );
        }
        prop_assert_eq!(t.iter().count(), m.conns.len());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn table_agrees_with_model(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}

/// Arbitrary calls (bogus ids, garbage states, time going backwards,
/// extreme durations) never panic and never break the length bound.
#[derive(Clone, Debug)]
enum Wild {
    Insert(u8, u8, u8, u8),
    State(u32, u8),
    Update(u32, u8, u8),
    Touch(u32),
    SetTimeout(u32, u64),
    Remove(u32),
    Expire(u64, bool, u64),
}

fn wild() -> impl Strategy<Value = Wild> {
    let id = prop_oneof![0..16u32, any::<u32>()];
    prop_oneof![
        (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(a, b, c, d)| Wild::Insert(a, b, c, d)),
        (id.clone(), any::<u8>()).prop_map(|(i, s)| Wild::State(i, s)),
        (id.clone(), any::<u8>(), any::<u8>()).prop_map(|(i, d, f)| Wild::Update(i, d, f)),
        id.clone().prop_map(Wild::Touch),
        (id.clone(), any::<u64>()).prop_map(|(i, s)| Wild::SetTimeout(i, s)),
        id.prop_map(Wild::Remove),
        (any::<u64>(), any::<bool>(), any::<u64>()).prop_map(|(t, k, d)| Wild::Expire(t, k, d)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn arbitrary_calls_never_panic(
        ops in proptest::collection::vec(wild(), 1..150),
        tick_ms in 1..2000u64,
        base in any::<u64>(),
    ) {
        let cfg = TableConfig {
            max_conns: 8,
            tick: Duration::from_millis(tick_ms),
            expected_conns: 0,
        };
        let mut t = ConnTable::new(cfg, Timeouts::default());
        let mut now = base % (u64::MAX / 2);
        for op in ops {
            let at = Instant::from_nanos(now);
            match op {
                Wild::Insert(a, p, f, s) => {
                    let protos = [Proto::TCP, Proto::UDP, Proto::SCTP, Proto::ICMP, Proto(0)];
                    let fwds = [Fwd::Masq, Fwd::Local, Fwd::Tunnel, Fwd::Route, Fwd::Bypass, Fwd::FullNat];
                    let c = Conn {
                        caddr: addr(a % 4),
                        cport: u16::from(p % 3),
                        vaddr: VIP,
                        vport: 80,
                        proto: protos[usize::from(p) % protos.len()],
                        fwd: fwds[usize::from(f) % fwds.len()],
                        flags: ConnFlags(u16::from(f) << 5 | u16::from(s) << 8),
                        state: s,
                        laddr: LIP,
                        lport: u16::from(a),
                        ..Conn::default()
                    };
                    let _ = t.insert(c, at);
                    let _ = t.drain_evicted().count();
                }
                Wild::State(i, s) => {
                    if let Some(c) = t.get_mut(i) {
                        c.state = s;
                    }
                }
                Wild::Update(i, d, f) => {
                    let dir = [Dir::Input, Dir::Output, Dir::InputOnly][usize::from(d) % 3];
                    let _ = t.update_state(i, dir, f, at);
                }
                Wild::Touch(i) => t.touch(i, at),
                Wild::SetTimeout(i, s) => t.set_timeout(i, Duration::from_nanos(s), at),
                Wild::Remove(i) => {
                    let _ = t.remove(i);
                }
                Wild::Expire(dt, keep, d) => {
                    // mostly forward, sometimes backward
                    now = if dt % 7 == 0 { now.saturating_sub(dt % 1_000_000_000_000) } else { now.saturating_add(dt % 5_000_000_000_000) };
                    t.expire(Instant::from_nanos(now), |_, _| {
                        if keep { ExpireAction::Keep(Duration::from_nanos(d)) } else { ExpireAction::Remove }
                    });
                }
            }
            prop_assert!(t.len() <= 8);
            prop_assert_eq!(t.iter().count(), t.len());
            let _ = t.poll_timeout();
            for (id, c) in t.iter() {
                prop_assert!(t.expires_at(id).is_some());
                let _ = c.state_name();
            }
        }
    }
}
