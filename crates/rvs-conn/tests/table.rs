//! Scenario tests of `ConnTable` through its public API. Expected values are
//! worked out by hand from the kernel's tables and timeouts.

use std::time::Duration;

use rvs_conn::proto::{sctp, tcp};
use rvs_conn::{
    Conn, ConnFlags, ConnTable, Dir, ExpireAction, Fwd, InsertError, NO_CONN, TableConfig, Timeouts,
};
use rvs_types::{Addr, Instant, Proto};

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;

fn cfg(max: u32) -> TableConfig {
    TableConfig {
        max_conns: max,
        tick: Duration::from_millis(100),
        expected_conns: 16,
    }
}

fn table(max: u32) -> ConnTable {
    ConnTable::new(cfg(max), Timeouts::default())
}

fn secs(s: u64) -> Instant {
    Instant::from_secs(s)
}

fn ms(m: u64) -> Instant {
    Instant::from_millis(m)
}

fn client(i: u32) -> Addr {
    let b = i.to_be_bytes();
    Addr::v4([10, b[1], b[2], b[3]])
}

const VIP: Addr = Addr::v4([192, 0, 2, 1]);
const RIP: Addr = Addr::v4([172, 16, 0, 5]);
const LIP: Addr = Addr::v4([172, 16, 0, 1]);

fn nat_conn(i: u32, cport: u16) -> Conn {
    Conn {
        caddr: client(i),
        cport,
        vaddr: VIP,
        vport: 80,
        daddr: RIP,
        dport: 8080,
        proto: Proto::TCP,
        fwd: Fwd::Masq,
        flags: ConnFlags::INACTIVE | ConnFlags::HAS_DEST,
        ..Conn::default()
    }
}

fn established(i: u32) -> Conn {
    Conn {
        state: tcp::ESTABLISHED,
        flags: ConnFlags::HAS_DEST,
        ..nat_conn(i, 40000)
    }
}

/// Collects what `expire(now)` expires (removing all).
fn expire_ids(t: &mut ConnTable, now: Instant) -> Vec<u32> {
    let mut out = Vec::new();
    t.expire(now, |id, _| {
        out.push(id);
        ExpireAction::Remove
    });
    out.sort_unstable();
    out
}

#[test]
fn entry_stays_small() {
    // 100-byte Conn + deadline, timeout, next, prev.
    assert_eq!(size_of::<Conn>(), 100);
    assert_eq!(ConnTable::ENTRY_BYTES, 116);
}

#[test]
fn nat_lookups_both_directions() {
    let mut t = table(100);
    let id = t.insert(nat_conn(1, 40000), secs(0)).unwrap();
    assert_eq!(t.len(), 1);
    let c1 = client(1);
    assert_eq!(t.lookup_in(0, Proto::TCP, &c1, 40000, &VIP, 80), Some(id));
    // wrong port, proto, zone, vaddr
    assert_eq!(t.lookup_in(0, Proto::TCP, &c1, 40001, &VIP, 80), None);
    assert_eq!(t.lookup_in(0, Proto::UDP, &c1, 40000, &VIP, 80), None);
    assert_eq!(t.lookup_in(1, Proto::TCP, &c1, 40000, &VIP, 80), None);
    assert_eq!(t.lookup_in(0, Proto::TCP, &c1, 40000, &RIP, 80), None);
    // reply RIP:8080 -> client:40000
    assert_eq!(
        t.lookup_out(0, Proto::TCP, &RIP, 8080, &c1, 40000),
        Some(id)
    );
    assert_eq!(t.lookup_out(0, Proto::TCP, &RIP, 80, &c1, 40000), None);
    assert_eq!(t.lookup_out(0, Proto::TCP, &VIP, 8080, &c1, 40000), None);
    assert_eq!(t.get(id).unwrap().caddr, c1);
    assert_eq!(t.remove(id).unwrap().cport, 40000);
    assert_eq!(t.lookup_in(0, Proto::TCP, &c1, 40000, &VIP, 80), None);
    assert!(t.get(id).is_none());
    assert!(t.is_empty());
}

#[test]
fn dr_and_tunnel_conns_are_not_found_outbound() {
    let mut t = table(100);
    for (i, fwd) in [
        (1, Fwd::Route),
        (2, Fwd::Tunnel),
        (3, Fwd::Local),
        (4, Fwd::Bypass),
    ] {
        let c = Conn {
            fwd,
            dport: 80,
            flags: ConnFlags::NOOUTPUT | ConnFlags::HAS_DEST | ConnFlags::INACTIVE,
            ..nat_conn(i, 1000)
        };
        let id = t.insert(c, secs(0)).unwrap();
        assert_eq!(
            t.lookup_in(0, Proto::TCP, &client(i), 1000, &VIP, 80),
            Some(id)
        );
        let out = t.lookup_out(0, Proto::TCP, &RIP, 80, &client(i), 1000);
        let replies_pass = matches!(fwd, Fwd::Local | Fwd::Bypass);
        assert_eq!(out.is_some(), replies_pass, "{fwd:?}");
    }
}

#[test]
fn fullnat_reply_is_found_by_local_endpoint() {
    let mut t = table(100);
    let c = Conn {
        fwd: Fwd::FullNat,
        laddr: LIP,
        lport: 5000,
        ..nat_conn(7, 33333)
    };
    let id = t.insert(c, secs(0)).unwrap();
    assert_eq!(
        t.lookup_in(0, Proto::TCP, &client(7), 33333, &VIP, 80),
        Some(id)
    );
    assert_eq!(
        t.lookup_out(0, Proto::TCP, &RIP, 8080, &LIP, 5000),
        Some(id)
    );
    // The client endpoint is not where FULLNAT replies go.
    assert_eq!(
        t.lookup_out(0, Proto::TCP, &RIP, 8080, &client(7), 33333),
        None
    );
    t.remove(id);
    assert_eq!(t.lookup_out(0, Proto::TCP, &RIP, 8080, &LIP, 5000), None);
}

#[test]
fn templates_have_their_own_lookup() {
    let mut t = table(100);
    let net = client(9).masked(24);
    let tpl = Conn {
        caddr: net,
        cport: 0,
        vaddr: VIP,
        vport: 443,
        proto: Proto::TCP,
        flags: ConnFlags::TEMPLATE | ConnFlags::HAS_DEST,
        ..Conn::default()
    };
    let tid = t.insert(tpl, secs(0)).unwrap();
    // fwmark template: proto 0, vport 0, fwmark 7
    let fw = Conn {
        proto: Proto(0),
        vport: 0,
        vaddr: Addr::UNSPECIFIED,
        fwmark: 7,
        ..tpl
    };
    let fid = t.insert(fw, secs(0)).unwrap();
    let un = Addr::UNSPECIFIED;
    assert_eq!(
        t.lookup_template(0, Proto::TCP, &net, &VIP, 443, 0),
        Some(tid)
    );
    assert_eq!(t.lookup_template(0, Proto::TCP, &net, &VIP, 80, 0), None);
    assert_eq!(t.lookup_template(0, Proto(0), &net, &un, 0, 7), Some(fid));
    assert_eq!(t.lookup_template(0, Proto(0), &net, &un, 0, 8), None);
    // Templates are never in-direction matches, conns never templates.
    assert_eq!(t.lookup_in(0, Proto::TCP, &net, 0, &VIP, 443), None);
    let cid = t.insert(nat_conn(9, 0), secs(0)).unwrap();
    assert_eq!(
        t.lookup_template(0, Proto::TCP, &client(9), &VIP, 80, 0),
        None
    );
    assert_ne!(cid, tid);
    assert_eq!(t.get(tid).unwrap().state_name(), "NONE");
    assert_eq!(t.get(tid).unwrap().control, NO_CONN);
}

#[test]
fn no_cport_conn_matches_any_port_until_filled() {
    let mut t = table(100);
    let c = Conn {
        flags: ConnFlags::NO_CPORT | ConnFlags::HAS_DEST,
        ..nat_conn(3, 0)
    };
    let id = t.insert(c, secs(0)).unwrap();
    let c3 = client(3);
    assert_eq!(t.lookup_in(0, Proto::TCP, &c3, 5555, &VIP, 80), Some(id));
    assert_eq!(t.lookup_in(0, Proto::TCP, &c3, 0, &VIP, 80), Some(id));
    // An exact conn wins over the NO_CPORT one.
    let exact = t.insert(nat_conn(3, 6666), secs(0)).unwrap();
    assert_eq!(t.lookup_in(0, Proto::TCP, &c3, 6666, &VIP, 80), Some(exact));
    assert!(t.fill_cport(id, 5555));
    assert!(!t.fill_cport(id, 5555));
    assert_eq!(t.lookup_in(0, Proto::TCP, &c3, 5555, &VIP, 80), Some(id));
    assert_eq!(t.lookup_in(0, Proto::TCP, &c3, 7777, &VIP, 80), None);
    assert_eq!(t.get(id).unwrap().cport, 5555);
    assert!(!t.get(id).unwrap().flags.contains(ConnFlags::NO_CPORT));
}

/// A NAT handshake and close, rows of `tcp_states[]` INPUT/OUTPUT, with
/// the dest counter moves of `set_tcp_state` (current kernels count
/// SYN_RECV as active).
#[test]
fn nat_tcp_lifecycle_and_counters() {
    let mut t = table(100);
    let id = t.insert(nat_conn(1, 40000), secs(0)).unwrap();
    // new conn: NONE, 2 s
    assert_eq!(t.expires_at(id), Some(secs(2)));
    let ch = t.update_state(id, Dir::Input, SYN, secs(0));
    assert_eq!((ch.old, ch.new), (tcp::NONE, tcp::SYN_RECV));
    assert!(!ch.was_active && ch.is_active);
    assert_eq!(t.expires_at(id), Some(secs(60)));
    let ch = t.update_state(id, Dir::Output, SYN | ACK, secs(1));
    assert_eq!(ch.new, tcp::SYN_RECV);
    assert!(ch.was_active && ch.is_active);
    let ch = t.update_state(id, Dir::Input, ACK, secs(1));
    assert_eq!(ch.new, tcp::ESTABLISHED);
    assert_eq!(t.expires_at(id), Some(secs(901)));
    assert_eq!(t.get(id).unwrap().state_name(), "ESTABLISHED");
    // client closes first: INPUT fin from ES -> CLOSE_WAIT (inactive)
    let ch = t.update_state(id, Dir::Input, FIN | ACK, secs(10));
    assert_eq!(ch.new, tcp::CLOSE_WAIT);
    assert!(ch.was_active && !ch.is_active);
    assert!(t.get(id).unwrap().flags.contains(ConnFlags::INACTIVE));
    assert_eq!(t.expires_at(id), Some(secs(70)));
    // server FIN: OUTPUT fin from CW -> TIME_WAIT
    assert_eq!(
        t.update_state(id, Dir::Output, FIN | ACK, secs(11)).new,
        tcp::TIME_WAIT
    );
    // last ACK: INPUT ack from TW stays TW, 120 s
    assert_eq!(
        t.update_state(id, Dir::Input, ACK, secs(12)).new,
        tcp::TIME_WAIT
    );
    assert_eq!(t.expires_at(id), Some(secs(132)));
    assert!(expire_ids(&mut t, ms(131_900)).is_empty());
    assert_eq!(expire_ids(&mut t, secs(132)), vec![id]);
    assert!(t.is_empty());
}

/// Without HAS_DEST the INACTIVE flag is left alone (`if (dest)`).
#[test]
fn no_dest_no_counter_moves() {
    let mut t = table(10);
    let c = Conn {
        flags: ConnFlags::INACTIVE,
        ..nat_conn(1, 1)
    };
    let id = t.insert(c, secs(0)).unwrap();
    let ch = t.update_state(id, Dir::Input, SYN, secs(0));
    assert_eq!(ch.new, tcp::SYN_RECV);
    assert!(!ch.was_active && !ch.is_active);
}

/// DR conns (NOOUTPUT) use the INPUT_ONLY rows: a client FIN on an
/// established conn gives FIN_WAIT there, not INPUT's CLOSE_WAIT; an
/// output packet clears NOOUTPUT.
#[test]
fn nooutput_uses_input_only_rows() {
    let mut t = table(10);
    let dr = Conn {
        fwd: Fwd::Route,
        flags: ConnFlags::NOOUTPUT | ConnFlags::INACTIVE | ConnFlags::HAS_DEST,
        ..nat_conn(1, 1)
    };
    let id = t.insert(dr, secs(0)).unwrap();
    assert_eq!(
        t.update_state(id, Dir::Input, SYN, secs(0)).new,
        tcp::SYN_RECV
    );
    assert_eq!(
        t.update_state(id, Dir::Input, ACK, secs(0)).new,
        tcp::ESTABLISHED
    );
    assert_eq!(
        t.update_state(id, Dir::Input, FIN | ACK, secs(1)).new,
        tcp::FIN_WAIT
    );
    // Same with an explicit InputOnly on a NAT conn.
    let id2 = t.insert(established(2), secs(0)).unwrap();
    assert_eq!(
        t.update_state(id2, Dir::InputOnly, FIN, secs(1)).new,
        tcp::FIN_WAIT
    );
    // An output packet clears NOOUTPUT; INPUT rows apply afterwards.
    let id3 = t.insert(dr, secs(0)).unwrap();
    t.get_mut(id3).unwrap().cport = 1; // same key field value: harmless
    t.update_state(id3, Dir::Input, SYN, secs(0));
    t.update_state(id3, Dir::Output, SYN | ACK, secs(0));
    assert!(!t.get(id3).unwrap().flags.contains(ConnFlags::NOOUTPUT));
    t.update_state(id3, Dir::Input, ACK, secs(0));
    assert_eq!(
        t.update_state(id3, Dir::Input, FIN, secs(1)).new,
        tcp::CLOSE_WAIT
    );
}

/// RST on an established conn: CLOSE with 10 s — the wheel must move the
/// entry earlier, not wait for the 900 s slot.
#[test]
fn shortened_timeout_expires_on_time() {
    let mut t = table(10);
    let id = t.insert(established(1), secs(0)).unwrap();
    assert_eq!(t.expires_at(id), Some(secs(900)));
    assert_eq!(
        t.update_state(id, Dir::Input, RST, secs(100)).new,
        tcp::CLOSE
    );
    assert!(expire_ids(&mut t, ms(109_900)).is_empty());
    assert_eq!(expire_ids(&mut t, secs(110)), vec![id]);
}

/// No TCP flag at all: the kernel's `tcp_state_idx() < 0` path -> CLOSE.
#[test]
fn flagless_segment_closes() {
    let mut t = table(10);
    let id = t.insert(established(1), secs(0)).unwrap();
    assert_eq!(
        t.update_state(id, Dir::Input, 0x08, secs(0)).new,
        tcp::CLOSE
    );
}

#[test]
fn secure_tcp_table_is_selectable() {
    let mut t = table(10);
    t.set_secure_tcp(true);
    let dr = Conn {
        fwd: Fwd::Route,
        flags: ConnFlags::NOOUTPUT | ConnFlags::INACTIVE | ConnFlags::HAS_DEST,
        ..nat_conn(1, 1)
    };
    let id = t.insert(dr, secs(0)).unwrap();
    // tcp_states_dos INPUT-ONLY syn from sNO -> sSA (SYNACK, 120 s, active)
    let ch = t.update_state(id, Dir::Input, SYN, secs(0));
    assert_eq!(ch.new, tcp::SYNACK);
    assert!(ch.is_active);
    assert_eq!(t.expires_at(id), Some(secs(120)));
}

#[test]
fn udp_refreshes_and_expires() {
    let mut t = table(10);
    let c = Conn {
        proto: Proto::UDP,
        ..nat_conn(1, 5353)
    };
    let id = t.insert(c, secs(0)).unwrap();
    assert_eq!(t.get(id).unwrap().state_name(), "UDP");
    assert_eq!(t.expires_at(id), Some(secs(300)));
    // Packets keep it alive (lazy: no wheel move).
    for s in [100, 200, 299] {
        let ch = t.update_state(id, Dir::Input, 0, secs(s));
        assert_eq!((ch.old, ch.new), (0, 0));
        assert!(expire_ids(&mut t, secs(s)).is_empty());
    }
    assert!(expire_ids(&mut t, secs(598)).is_empty());
    assert_eq!(t.expires_at(id), Some(secs(599)));
    assert_eq!(expire_ids(&mut t, secs(599)), vec![id]);
}

#[test]
fn sctp_association_through_nat() {
    use sctp::chunk::*;
    let mut t = table(10);
    let c = Conn {
        proto: Proto::SCTP,
        ..nat_conn(1, 2905)
    };
    let id = t.insert(c, secs(0)).unwrap();
    let steps = [
        (Dir::Input, INIT, sctp::INIT1, false, 4),
        (Dir::Output, INIT_ACK, sctp::COOKIE_SENT, false, 61),
        (Dir::Input, COOKIE_ECHO, sctp::COOKIE_REPLIED, false, 61),
        (Dir::Output, COOKIE_ACK, sctp::ESTABLISHED, true, 900),
        (Dir::Input, DATA, sctp::ESTABLISHED, true, 900),
        (Dir::Input, SHUTDOWN, sctp::SHUTDOWN_RECEIVED, false, 61),
    ];
    for (dir, chunk, state, active, to) in steps {
        let ch = t.update_state_sctp(id, dir, chunk, secs(10));
        assert_eq!(ch.new, state, "chunk {chunk}");
        assert_eq!(ch.is_active, active, "chunk {chunk}");
        assert_eq!(t.expires_at(id), Some(secs(10 + to)));
    }
    assert_eq!(t.get(id).unwrap().state_name(), "S-RECEIVED");
}

/// Persistence template: explicit timeout, touched by use, kept by the
/// engine while referenced, then removed.
#[test]
fn template_timeout_touch_and_keep() {
    let mut t = table(10);
    let tpl = Conn {
        flags: ConnFlags::TEMPLATE,
        cport: 0,
        ..nat_conn(1, 0)
    };
    let id = t.insert(tpl, secs(0)).unwrap();
    assert_eq!(t.expires_at(id), Some(secs(3)));
    t.set_timeout(id, Duration::from_secs(360), secs(0));
    assert_eq!(t.expires_at(id), Some(secs(360)));
    t.touch(id, secs(100));
    assert_eq!(t.expires_at(id), Some(secs(460)));
    assert!(expire_ids(&mut t, secs(459)).is_empty());
    let mut calls = 0;
    t.expire(secs(460), |got, c| {
        assert_eq!(got, id);
        assert!(c.is_template());
        calls += 1;
        ExpireAction::Keep(Duration::from_secs(60))
    });
    assert_eq!(calls, 1);
    assert_eq!(t.len(), 1);
    assert_eq!(t.expires_at(id), Some(secs(520)));
    // Keep(0) is offered again at the next tick, not in a loop.
    t.expire(secs(520), |_, _| {
        calls += 1;
        ExpireAction::Keep(Duration::ZERO)
    });
    assert_eq!(calls, 2);
    t.expire(secs(520), |_, _| panic!("offered twice in one tick"));
    t.expire(ms(520_100), |_, _| {
        calls += 1;
        ExpireAction::Keep(Duration::from_secs(60))
    });
    assert_eq!(calls, 3);
    assert_eq!(t.stats().rearmed, 3);
    // Keep did not change the refresh timeout (still 360 s).
    t.touch(id, secs(600));
    assert_eq!(t.expires_at(id), Some(secs(960)));
    assert_eq!(expire_ids(&mut t, secs(960)), vec![id]);
}

#[test]
fn day_long_timeouts_fire_exactly() {
    let mut t = ConnTable::new(
        TableConfig {
            tick: Duration::from_secs(1),
            ..cfg(10)
        },
        Timeouts::default(),
    );
    let tpl = Conn {
        flags: ConnFlags::TEMPLATE,
        ..nat_conn(1, 0)
    };
    let id = t.insert(tpl, secs(5)).unwrap();
    t.set_timeout(id, Duration::from_secs(86_400), secs(5));
    // Step through the day in uneven steps, as an engine would.
    let mut now = 5;
    while now < 86_404 {
        now += 997;
        let now = now.min(86_404);
        assert!(expire_ids(&mut t, secs(now)).is_empty(), "early at {now}");
    }
    assert_eq!(expire_ids(&mut t, secs(86_405)), vec![id]);
}

/// A jump far past one wheel revolution expires exactly the due entries.
#[test]
fn long_gap_scans_one_revolution() {
    let mut t = table(1000);
    let mut want = Vec::new();
    for i in 0..300u32 {
        let id = t.insert(established(i), secs(0)).unwrap();
        // i seconds .. 3000 s timeouts
        t.set_timeout(id, Duration::from_secs(u64::from(i) * 10), secs(0));
        if u64::from(i) * 10 <= 2000 {
            want.push(id);
        }
    }
    want.sort_unstable();
    assert_eq!(expire_ids(&mut t, secs(2000)), want);
    assert_eq!(t.len(), 300 - want.len());
    for (_, c) in t.iter() {
        assert!(c.caddr >= client(201));
    }
}

/// Expiry work does not grow with the table: an `expire` call looks at the
/// entries filed in the slots that came due and nothing else, whether 1,000
/// or 50,000 other entries are live, and per-packet refreshes add no work.
#[test]
fn expiry_work_is_independent_of_table_size() {
    for live in [1_000u32, 50_000] {
        let mut t = ConnTable::new(
            TableConfig {
                max_conns: live + 100,
                tick: Duration::from_millis(100),
                expected_conns: live + 100,
            },
            Timeouts::default(),
        );
        let long: Vec<u32> = (0..live)
            .map(|i| {
                let id = t.insert(established(i), secs(0)).unwrap();
                t.set_timeout(id, Duration::from_secs(600), secs(0));
                id
            })
            .collect();
        for i in 0..100 {
            let id = t.insert(nat_conn(live + i, 1000), secs(0)).unwrap();
            t.set_timeout(id, Duration::from_secs(5), secs(0));
        }
        let before = t.stats().expire_visits;
        let mut expired = 0;
        for s in 1..=10 {
            if s == 5 {
                // Every long-lived conn sees a packet: its deadline moves.
                for &id in &long {
                    t.touch(id, secs(s));
                }
            }
            t.expire(secs(s), |_, _| {
                expired += 1;
                ExpireAction::Remove
            });
        }
        assert_eq!(expired, 100);
        // Each short conn is looked at twice: at its insert-time deadline
        // (state NONE, 2 s), where it is re-filed for the 5 s set later, and
        // at 5 s, when it goes. The long-lived ones are never looked at.
        assert_eq!(t.stats().expire_visits - before, 200, "{live} live entries");
        assert_eq!(t.len(), live as usize);
    }
}

#[test]
fn poll_timeout_reports_next_slot() {
    let mut t = table(10);
    assert_eq!(t.poll_timeout(), None);
    let id = t.insert(established(1), ms(50)).unwrap();
    t.update_state(id, Dir::Input, RST, ms(50)); // CLOSE, 10 s
    // deadline rounds up to a tick: ceil(0.05 s) + 10 s = 10.1 s
    assert_eq!(t.expires_at(id), Some(ms(10_100)));
    assert_eq!(t.poll_timeout(), Some(ms(10_100)));
    assert_eq!(expire_ids(&mut t, ms(10_100)), vec![id]);
    assert_eq!(t.poll_timeout(), None);
}

/// SYN flood: 10x max half-open conns never grow the table, established
/// conns survive, every eviction is reported.
#[test]
fn syn_flood_evicts_only_half_open() {
    let max = 1000u32;
    let mut t = table(max);
    let mut est = Vec::new();
    for i in 0..100 {
        est.push(t.insert(established(i), secs(0)).unwrap());
    }
    let mut evicted = 0usize;
    for i in 0..10 * max {
        let c = nat_conn(100_000 + i, 1024 + (i % 50_000) as u16);
        let id = t.insert(c, ms(u64::from(i))).unwrap();
        t.update_state(id, Dir::Input, SYN, ms(u64::from(i)));
        assert!(t.len() <= max as usize);
        for e in t.drain_evicted() {
            assert_eq!(e.state, tcp::SYN_RECV);
            evicted += 1;
        }
    }
    assert_eq!(t.len(), max as usize);
    assert_eq!(evicted, (10 * max - (max - 100)) as usize);
    assert_eq!(t.stats().evicted_embryonic, evicted as u64);
    for (i, id) in est.iter().enumerate() {
        assert_eq!(
            t.lookup_in(0, Proto::TCP, &client(i as u32), 40000, &VIP, 80),
            Some(*id)
        );
    }
    // The survivors are the newest SYNs (oldest evicted first).
    let newest = nat_conn(
        100_000 + 10 * max - 1,
        1024 + ((10 * max - 1) % 50_000) as u16,
    );
    assert!(
        t.lookup_in(0, Proto::TCP, &newest.caddr, newest.cport, &VIP, 80)
            .is_some()
    );
    let oldest = nat_conn(100_000, 1024);
    assert!(
        t.lookup_in(0, Proto::TCP, &oldest.caddr, oldest.cport, &VIP, 80)
            .is_none()
    );
}

#[test]
fn full_of_established_refuses() {
    let mut t = table(50);
    for i in 0..50 {
        t.insert(established(i), secs(0)).unwrap();
    }
    assert_eq!(t.insert(nat_conn(99, 1), secs(0)), Err(InsertError::Full));
    assert_eq!(t.stats().refused_full, 1);
    assert_eq!(t.len(), 50);
    // A conn that becomes established is no longer evictable.
    let mut t = table(1);
    let id = t.insert(nat_conn(1, 1), secs(0)).unwrap();
    t.update_state(id, Dir::Input, ACK, secs(0));
    assert_eq!(t.insert(nat_conn(2, 1), secs(0)), Err(InsertError::Full));
    let mut seen = Vec::new();
    let mut t = table(1);
    t.insert(nat_conn(1, 1), secs(0)).unwrap();
    let id2 = t
        .insert_evicting(nat_conn(2, 2), secs(0), |c| seen.push(c.caddr))
        .unwrap();
    assert_eq!(seen, vec![client(1)]);
    assert_eq!(t.get(id2).unwrap().caddr, client(2));
}

#[test]
fn index_grows_and_survives_churn() {
    let mut t = ConnTable::new(
        TableConfig {
            max_conns: 100_000,
            tick: Duration::from_millis(100),
            expected_conns: 10,
        },
        Timeouts::default(),
    );
    let mut ids = Vec::new();
    for i in 0..20_000u32 {
        let mut c = established(i);
        if i % 3 == 0 {
            c.fwd = Fwd::FullNat;
            c.laddr = LIP;
            c.lport = i as u16;
        }
        ids.push(t.insert(c, secs(0)).unwrap());
    }
    assert!(t.stats().index_rebuilds > 0);
    for (i, id) in ids.iter().enumerate() {
        let i = i as u32;
        assert_eq!(
            t.lookup_in(0, Proto::TCP, &client(i), 40000, &VIP, 80),
            Some(*id)
        );
    }
    // remove every other one, check the rest are still found
    for (i, id) in ids.iter().enumerate() {
        if i % 2 == 0 {
            t.remove(*id).unwrap();
        }
    }
    for (i, id) in ids.iter().enumerate() {
        let got = t.lookup_in(0, Proto::TCP, &client(i as u32), 40000, &VIP, 80);
        assert_eq!(got, (i % 2 == 1).then_some(*id), "conn {i}");
        if i % 3 == 0 {
            let out = t.lookup_out(0, Proto::TCP, &RIP, 8080, &LIP, i as u16);
            assert_eq!(out, (i % 2 == 1).then_some(*id), "fullnat conn {i}");
        }
    }
    assert_eq!(t.len(), 10_000);
    assert_eq!(t.iter().count(), 10_000);
    // freed ids are reused
    let id = t.insert(established(1_000_000), secs(0)).unwrap();
    assert!((id as usize) < 20_000);
}

#[test]
fn timeouts_set_applies_on_next_update() {
    let mut t = table(10);
    let id = t.insert(established(1), secs(0)).unwrap();
    let mut to = Timeouts::default();
    to.set_ipvsadm(3600, 0, 0);
    t.set_timeouts(to);
    assert_eq!(t.timeouts().ipvsadm_triple(), (3600, 120, 300));
    assert_eq!(t.expires_at(id), Some(secs(900)));
    t.update_state(id, Dir::Input, ACK, secs(1));
    assert_eq!(t.expires_at(id), Some(secs(3601)));
}

#[test]
fn bogus_ids_are_harmless() {
    let mut t = table(10);
    for id in [0, 5, 1023, 1024, u32::MAX, NO_CONN - 1] {
        assert!(t.get(id).is_none());
        assert!(t.get_mut(id).is_none());
        assert!(t.remove(id).is_none());
        assert_eq!(
            t.update_state(id, Dir::Input, SYN, secs(0)),
            Default::default()
        );
        t.touch(id, secs(0));
        t.set_timeout(id, Duration::from_secs(1), secs(0));
        assert!(t.expires_at(id).is_none());
        assert!(!t.fill_cport(id, 1));
    }
    let id = t.insert(established(1), secs(0)).unwrap();
    t.remove(id);
    assert!(t.remove(id).is_none());
    assert!(t.memory_bytes() > 0);
}

#[test]
fn port_zero_conns_are_found_exactly() {
    let n = 10_000u32;
    let mut t = ConnTable::new(
        TableConfig {
            max_conns: n,
            tick: Duration::from_millis(100),
            expected_conns: n,
        },
        Timeouts::default(),
    );
    for i in 0..n {
        let c = Conn {
            caddr: Addr::v4([10, 0, 0, 0]),
            cport: i as u16,
            ..established(0)
        };
        t.insert(c, secs(1)).unwrap();
    }
    let mut missing = Vec::new();
    for i in 0..n {
        if t.lookup_in(0, Proto::TCP, &Addr::v4([10, 0, 0, 0]), i as u16, &VIP, 80)
            .is_none()
        {
            missing.push(i);
        }
    }
    assert_eq!(missing, Vec::<u32>::new());
}

#[test]
fn batch_lookup_agrees_with_single() {
    let mut t = table(1000);
    for i in 0..500 {
        t.insert(nat_conn(i, 1000 + (i % 7) as u16), secs(0))
            .unwrap();
    }
    let nc = Conn {
        flags: ConnFlags::NO_CPORT | ConnFlags::HAS_DEST,
        ..nat_conn(600, 0)
    };
    let ncid = t.insert(nc, secs(0)).unwrap();
    // hits, misses (wrong port) and the NO_CPORT fallback, 37 keys (not a
    // multiple of the batch size)
    let keys: Vec<rvs_conn::InKey> = (0..37u32)
        .map(|k| {
            let i = k * 17 % 700;
            rvs_conn::InKey {
                zone: 0,
                proto: Proto::TCP,
                caddr: client(i),
                cport: if k % 5 == 0 { 1 } else { 1000 + (i % 7) as u16 },
                vaddr: VIP,
                vport: 80,
            }
        })
        .chain(std::iter::once(
            rvs_conn::InKey {
                caddr: client(600),
                cport: 4242,
                ..Default::default()
            }
            .with_tcp_vip(),
        ))
        .collect();
    let mut out = vec![None; keys.len()];
    t.lookup_in_batch(&keys, &mut out);
    let mut hits = 0;
    for (k, o) in keys.iter().zip(&out) {
        let single = t.lookup_in(k.zone, k.proto, &k.caddr, k.cport, &k.vaddr, k.vport);
        assert_eq!(*o, single, "{k:?}");
        hits += usize::from(o.is_some());
    }
    assert_eq!(out.last().copied().flatten(), Some(ncid));
    assert!(hits > 10 && hits < keys.len());
}

trait WithTcpVip {
    fn with_tcp_vip(self) -> Self;
}

impl WithTcpVip for rvs_conn::InKey {
    fn with_tcp_vip(mut self) -> Self {
        self.proto = Proto::TCP;
        self.vaddr = VIP;
        self.vport = 80;
        self
    }
}

#[test]
fn remove_where_drops_a_dests_conns() {
    let mut t = table(100);
    for i in 0..30 {
        let c = Conn {
            dest: i % 3,
            ..established(i)
        };
        t.insert(c, secs(0)).unwrap();
    }
    let gone = t.remove_where(|_, c| c.dest == 1);
    assert_eq!(gone.len(), 10);
    assert!(gone.iter().all(|(_, c)| c.dest == 1));
    assert_eq!(t.len(), 20);
    assert!(t.iter().all(|(_, c)| c.dest != 1));
    for (_, c) in &gone {
        assert_eq!(
            t.lookup_in(0, Proto::TCP, &c.caddr, c.cport, &VIP, 80),
            None
        );
    }
    assert_eq!(t.stats().removed, 10);
    // nothing is left in the wheel for them
    assert_eq!(expire_ids(&mut t, secs(900)).len(), 20);
}

#[test]
fn extreme_instants_do_not_panic() {
    let mut t = ConnTable::new(
        TableConfig {
            tick: Duration::from_nanos(1),
            ..cfg(10)
        },
        Timeouts::default(),
    );
    let end = Instant::from_nanos(u64::MAX);
    let id = t.insert(established(1), end).unwrap();
    t.touch(id, end);
    t.update_state(id, Dir::Input, RST, end);
    let _ = t.poll_timeout();
    let _ = t.expires_at(id);
    t.expire(end, |_, _| ExpireAction::Keep(Duration::MAX));
    t.expire(end, |_, _| ExpireAction::Remove);
    t.set_timeout(id, Duration::MAX, Instant::ZERO);
    t.expire(Instant::ZERO, |_, _| ExpireAction::Remove);
}

/// The older rule: only ESTABLISHED counts as active.
#[test]
fn established_only_active_rule() {
    let mut t = table(10);
    t.set_established_only_active(true);
    let id = t.insert(nat_conn(1, 1), secs(0)).unwrap();
    let ch = t.update_state(id, Dir::Input, SYN, secs(0));
    assert_eq!(ch.new, tcp::SYN_RECV);
    assert!(!ch.was_active && !ch.is_active);
    let ch = t.update_state(id, Dir::Input, ACK, secs(0));
    assert!(!ch.was_active && ch.is_active);
    let ch = t.update_state(id, Dir::Input, RST, secs(0));
    assert!(ch.was_active && !ch.is_active);
}

#[test]
fn unhashed_template_is_not_found_but_lives_and_expires() {
    let mut t = table(10);
    let tpl = Conn {
        flags: ConnFlags::TEMPLATE,
        cport: 0,
        ..nat_conn(1, 0)
    };
    let id = t.insert(tpl, secs(0)).unwrap();
    t.set_timeout(id, Duration::from_secs(60), secs(0));
    let find = |t: &ConnTable| {
        t.lookup_template(
            tpl.zone, tpl.proto, &tpl.caddr, &tpl.vaddr, tpl.vport, tpl.fwmark,
        )
    };
    assert_eq!(find(&t), Some(id));
    assert!(t.unhash(id));
    assert!(!t.unhash(id), "a second unhash is a no-op");
    assert_eq!(find(&t), None);
    assert_eq!(t.len(), 1);
    // A fresh template with the same key is found, the old one still lives.
    let id2 = t.insert(tpl, secs(1)).unwrap();
    t.set_timeout(id2, Duration::from_secs(600), secs(1));
    assert_ne!(id2, id);
    assert_eq!(find(&t), Some(id2));
    // Growth rebuilds the index: the unhashed one must stay out of it.
    for i in 2..9 {
        t.insert(nat_conn(i, 1000 + i as u16), secs(1)).unwrap();
    }
    assert_eq!(find(&t), Some(id2));
    // It expires like any entry, and removal does not disturb the index.
    let gone = expire_ids(&mut t, secs(61));
    assert!(gone.contains(&id));
    assert_eq!(find(&t), Some(id2));
    assert_eq!(t.len(), 1);
}
