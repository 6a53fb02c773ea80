//! Cross-scheduler tests through the public [`Scheduler`] API: names and
//! flags, properties over random dest sets, and weight shares.

use proptest::prelude::*;
use rvs_types::{Addr, Instant, Proto};

use crate::{SchedFlags, SchedInput, SchedKind, SchedParams, Scheduler, TestDest};

fn input(n: u32, now: u64) -> SchedInput {
    SchedInput {
        proto: if n.is_multiple_of(3) {
            Proto::UDP
        } else {
            Proto::TCP
        },
        saddr: Addr::v4([192, 0, (n >> 8) as u8, n as u8]),
        sport: (n as u16).wrapping_mul(7919),
        daddr: Addr::v4([198, 51, (n >> 3) as u8, (n & 7) as u8]),
        dport: 80,
        now: Instant::from_secs(now),
    }
}

#[test]
fn names_round_trip_and_reject_unknown() {
    for k in SchedKind::ALL {
        assert_eq!(k.name().parse::<SchedKind>(), Ok(k));
        assert_eq!(k.to_string(), k.name());
    }
    let names: Vec<&str> = SchedKind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(
        names,
        [
            "dh", "fo", "lblc", "lblcr", "lc", "mh", "nq", "ovf", "rr", "sed", "sh", "twos", "wlc",
            "wrr"
        ]
    );
    let e = "RR".parse::<SchedKind>().unwrap_err();
    assert!(e.to_string().contains("\"RR\""), "{e}");
    assert!("".parse::<SchedKind>().is_err());
    assert_eq!(SchedKind::default(), SchedKind::Wlc);
}

#[test]
fn flags_bits_and_names() {
    assert_eq!(SchedFlags::SCHED1.0, 0x08);
    assert_eq!(SchedFlags::SCHED2.0, 0x10);
    assert_eq!(SchedFlags::SCHED3.0, 0x20);
    let f = SchedFlags::SH_FALLBACK | SchedFlags::SH_PORT;
    assert!(f.contains(SchedFlags::SCHED1) && f.contains(SchedFlags::SCHED2));
    assert!(!f.contains(SchedFlags::SCHED3));
    assert_eq!(
        f.names(SchedKind::Sh).collect::<Vec<_>>(),
        ["sh-fallback", "sh-port"]
    );
    assert_eq!(
        f.names(SchedKind::Mh).collect::<Vec<_>>(),
        ["mh-fallback", "mh-port"]
    );
    assert_eq!(
        (f | SchedFlags::SCHED3)
            .names(SchedKind::Rr)
            .collect::<Vec<_>>(),
        ["flag-1", "flag-2", "flag-3"]
    );
    assert_eq!(SchedFlags::from_name("mh-port"), Some(SchedFlags::SCHED2));
    assert_eq!(
        SchedFlags::from_name("sh-fallback"),
        Some(SchedFlags::SCHED1)
    );
    assert_eq!(SchedFlags::from_name("flag-4"), None);
}

#[test]
fn scheduler_reports_kind_flags_and_dispatches() {
    let p = SchedParams::default();
    let d = [TestDest::new(1, 1), TestDest::new(2, 3)];
    for k in SchedKind::ALL {
        let mut s = Scheduler::new(k, SchedFlags::SCHED1, &p);
        assert_eq!(s.kind(), k);
        assert_eq!(s.flags(), SchedFlags::SCHED1);
        s.update(&d);
        let i = s.schedule(&d, &input(1, 0));
        assert!(i.is_some_and(|i| i < 2), "{k}: {i:?}");
        s.expire(Instant::from_secs(1000));
    }
    // One hand-checked sequence per kind through the dispatch:
    let mut s = Scheduler::new(SchedKind::Wrr, SchedFlags::default(), &p);
    s.update(&d);
    // weights 1, 3: di 1, mw 3: cw3 B | cw2 B | cw1 A B | cw3 B ...
    let seq: Vec<_> = (0..5).map(|n| s.schedule(&d, &input(n, 0))).collect();
    assert_eq!(seq, [Some(1), Some(1), Some(0), Some(1), Some(1)]);
    let mut s = Scheduler::new(SchedKind::Fo, SchedFlags::default(), &p);
    assert_eq!(s.schedule(&d, &input(0, 0)), Some(1));
}

#[test]
fn set_flags_takes_effect_in_place() {
    // sh over 16 buckets, weights 1, 0: buckets alternate A, B (B quiescent).
    // saddr 0.0.0.10 hashes to bucket 13 (B): None without fallback, A with it.
    let p = SchedParams {
        sh_tab_bits: 4,
        ..SchedParams::default()
    };
    let d = [TestDest::new(1, 1), TestDest::new(2, 0)];
    let mut s = Scheduler::new(SchedKind::Sh, SchedFlags::default(), &p);
    s.update(&d);
    let mut i = input(0, 0);
    i.saddr = Addr::v4([0, 0, 0, 10]);
    assert_eq!(s.schedule(&d, &i), None);
    s.set_flags(SchedFlags::SH_FALLBACK);
    assert_eq!(s.flags(), SchedFlags::SH_FALLBACK);
    assert_eq!(s.schedule(&d, &i), Some(0));
}

#[test]
fn wrr_shares_match_weights_exactly_per_cycle() {
    let d = [
        TestDest::new(1, 5),
        TestDest::new(2, 3),
        TestDest::new(3, 1),
        TestDest::new(4, 0),
    ];
    let mut s = Scheduler::new(
        SchedKind::Wrr,
        SchedFlags::default(),
        &SchedParams::default(),
    );
    s.update(&d);
    let mut count = [0usize; 4];
    for n in 0..9 * 100 {
        count[s.schedule(&d, &input(n, 0)).unwrap()] += 1;
    }
    assert_eq!(count, [500, 300, 100, 0]);
}

#[test]
fn twos_shares_follow_weights() {
    // Equal load everywhere: the result is choice1, whose odds are
    // (w + 1) / (total + 1) for the first dest and w / (total + 1) after:
    // weights 1, 2, 7 -> 2/11, 2/11, 7/11.
    let d = [
        TestDest::new(1, 1),
        TestDest::new(2, 2),
        TestDest::new(3, 7),
    ];
    let p = SchedParams {
        seed: 42,
        ..SchedParams::default()
    };
    let mut s = Scheduler::new(SchedKind::Twos, SchedFlags::default(), &p);
    s.update(&d);
    let n = 110_000;
    let mut count = [0f64; 3];
    for k in 0..n {
        count[s.schedule(&d, &input(k, 0)).unwrap()] += 1.0;
    }
    for (c, want) in count.iter().zip([2.0 / 11.0, 2.0 / 11.0, 7.0 / 11.0]) {
        let share = c / n as f64;
        assert!((share - want).abs() < 0.01, "{share} vs {want}");
    }
    // Same seed, same sequence.
    let mut a = Scheduler::new(SchedKind::Twos, SchedFlags::default(), &p);
    let mut b = Scheduler::new(SchedKind::Twos, SchedFlags::default(), &p);
    for k in 0..100 {
        assert_eq!(a.schedule(&d, &input(k, 0)), b.schedule(&d, &input(k, 0)));
    }
}

#[test]
fn sh_shares_follow_weights() {
    // 256 buckets tiled by weight 1 : 3 -> 64 and 192 buckets.
    let d = [TestDest::new(1, 1), TestDest::new(2, 3)];
    let mut s = Scheduler::new(
        SchedKind::Sh,
        SchedFlags::default(),
        &SchedParams::default(),
    );
    s.update(&d);
    let mut count = [0usize; 2];
    for n in 0..65536u32 {
        count[s.schedule(&d, &input(n, 0)).unwrap()] += 1;
    }
    // hash_32 spreads 0.0.0.0 .. 0.0.255.255 exactly evenly over the 256
    // buckets? Not exactly; allow 2%.
    let share = count[1] as f64 / 65536.0;
    assert!((share - 0.75).abs() < 0.02, "{share}");
}

fn arb_dest() -> impl Strategy<Value = TestDest> {
    (0i32..=6, 0u32..12, 0u32..40, prop::bool::weighted(0.2)).prop_map(|(w, a, i, o)| {
        let mut d = TestDest::new(0, w).conns(a, i);
        d.overloaded = o;
        d
    })
}

fn arb_dests() -> impl Strategy<Value = Vec<TestDest>> {
    prop::collection::vec(arb_dest(), 0..12).prop_map(|mut v| {
        for (i, d) in v.iter_mut().enumerate() {
            d.id = i as u32 + 1;
            d.addr = Addr::v4([10, 9, 0, i as u8 + 1]);
        }
        v
    })
}

/// Kernel rule: the scheduler never returns a quiescent or flagged dest.
/// lblc is the exception for the flag: it keeps a cached dest without
/// looking at `IP_VS_DEST_F_OVERLOAD`.
fn respects_availability(k: SchedKind) -> (bool, bool) {
    match k {
        SchedKind::Lblc => (true, false),
        _ => (true, true),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn never_quiescent_or_overloaded_and_never_panics(
        sets in prop::collection::vec(arb_dests(), 1..4),
        flags in 0u32..0x40,
        reqs in 1u32..30,
    ) {
        let p = SchedParams { mh_tab_size: 251, sh_tab_bits: 4, ..SchedParams::default() };
        for k in SchedKind::ALL {
            let mut s = Scheduler::new(k, SchedFlags(flags), &p);
            let (no_q, no_o) = respects_availability(k);
            for (round, d) in sets.iter().enumerate() {
                s.update(d);
                for n in 0..reqs {
                    let now = (round as u64) * 1000 + u64::from(n);
                    if let Some(i) = s.schedule(d, &input(n % 7, now)) {
                        prop_assert!(i < d.len(), "{}: index {} of {}", k, i, d.len());
                        if no_q {
                            prop_assert!(d[i].weight > 0, "{}: quiescent {:?}", k, d[i]);
                        }
                        if no_o {
                            prop_assert!(!d[i].overloaded, "{}: overloaded {:?}", k, d[i]);
                        }
                    }
                    s.expire(Instant::from_secs(now));
                }
            }
        }
    }

    #[test]
    fn some_dest_whenever_one_is_available_for_scanning_schedulers(d in arb_dests()) {
        // Schedulers that scan the whole list find a dest iff one is not
        // overloaded and has weight > 0 (ovf additionally needs active <= weight).
        let avail = d.iter().any(|x| !x.overloaded && x.weight > 0);
        let p = SchedParams::default();
        for k in [SchedKind::Rr, SchedKind::Wrr, SchedKind::Lc, SchedKind::Wlc, SchedKind::Sed,
                  SchedKind::Nq, SchedKind::Fo, SchedKind::Twos, SchedKind::Lblc, SchedKind::Lblcr] {
            let mut s = Scheduler::new(k, SchedFlags::default(), &p);
            s.update(&d);
            prop_assert_eq!(s.schedule(&d, &input(1, 0)).is_some(), avail, "{}", k);
        }
        let ovf = d.iter().any(|x| !x.overloaded && x.weight > 0 && x.active as i64 <= x.weight as i64);
        let mut s = Scheduler::new(SchedKind::Ovf, SchedFlags::default(), &p);
        prop_assert_eq!(s.schedule(&d, &input(1, 0)).is_some(), ovf);
    }

    #[test]
    fn sh_fallback_finds_any_available_dest(d in arb_dests(), n in 0u32..1000) {
        // With sh-fallback the probe visits bucket (k + 2 * ihash) & mask for
        // k = 0..size: every bucket, and every dest owns one (<= 12 dests,
        // 256 buckets). So a dest is found iff one is available.
        let avail = d.iter().any(|x| !x.overloaded && x.weight > 0);
        let p = SchedParams::default();
        let mut s = Scheduler::new(SchedKind::Sh, SchedFlags::SH_FALLBACK, &p);
        s.update(&d);
        prop_assert_eq!(s.schedule(&d, &input(n, 0)).is_some(), avail);
        // Hash schedulers are deterministic: time does not matter.
        for k in [SchedKind::Sh, SchedKind::Mh, SchedKind::Dh] {
            let mut s = Scheduler::new(k, SchedFlags::SCHED1 | SchedFlags::SCHED2, &p);
            s.update(&d);
            prop_assert_eq!(s.schedule(&d, &input(n, 0)), s.schedule(&d, &input(n, 5)));
        }
    }
}

/// The pre-2013 kernel WRR (`ip_vs_wrr.c` before the `mw - (di - 1)`
/// rework): cw starts at 0 and each wrap to the list head steps
/// `cw -= di`, resetting to `mw` = max weight. For fixed weights and no
/// overloaded dests both versions give the same sequence, so the old code
/// is an independent oracle for the new one.
fn classic_wrr(weights: &[i32], picks: usize) -> Vec<Option<usize>> {
    let mut g = 0;
    for &w in weights.iter().filter(|&&w| w > 0) {
        g = if g > 0 { crate::common::gcd(w, g) } else { w };
    }
    let di = if g > 0 { g } else { 1 };
    let mw = weights.iter().copied().max().unwrap_or(0).max(0);
    let n = weights.len();
    // cl: None = head, Some(i) = dest i.
    let mut cl: Option<usize> = None;
    let mut cw = 0;
    let mut out = Vec::new();
    for _ in 0..picks {
        if n == 0 || mw == 0 {
            out.push(None);
            continue;
        }
        loop {
            match cl {
                None => {
                    cl = Some(0);
                    cw -= di;
                    if cw <= 0 {
                        cw = mw;
                    }
                }
                Some(i) => cl = if i + 1 < n { Some(i + 1) } else { None },
            }
            if let Some(i) = cl
                && weights[i] >= cw
            {
                out.push(Some(i));
                break;
            }
        }
    }
    out
}

/// A straightforward lblc model (kernel pseudo-code, a HashMap, no GC).
fn model_lblc(
    cache: &mut std::collections::HashMap<Addr, u32>,
    d: &[TestDest],
    daddr: Addr,
) -> Option<usize> {
    let overloaded = |x: &TestDest| {
        x.active as i64 > x.weight as i64
            && d.iter().any(|o| (o.active as i64) * 2 < o.weight as i64)
    };
    if let Some(&id) = cache.get(&daddr)
        && let Some(i) = d.iter().position(|x| x.id == id)
        && d[i].weight > 0
        && !overloaded(&d[i])
    {
        return Some(i);
    }
    // weighted least-connection over the service, written with division-free
    // cross multiplication on f64-free integers (i128).
    let mut best: Option<usize> = None;
    for (i, x) in d.iter().enumerate() {
        if x.overloaded {
            continue;
        }
        let oh = ((x.active as i128) << 8) + x.inactive as i128;
        match best {
            None if x.weight > 0 => best = Some(i),
            Some(b) => {
                let bo = ((d[b].active as i128) << 8) + d[b].inactive as i128;
                if bo * (x.weight as i128) > oh * (d[b].weight as i128) {
                    best = Some(i);
                }
            }
            None => {}
        }
    }
    let i = best?;
    cache.insert(daddr, d[i].id);
    Some(i)
}

proptest! {
    #[test]
    fn wrr_matches_classic_kernel_wrr(weights in prop::collection::vec(0i32..12, 0..8)) {
        let d: Vec<TestDest> = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| TestDest::new(i as u32 + 1, w))
            .collect();
        let mut s = Scheduler::new(SchedKind::Wrr, SchedFlags::default(), &SchedParams::default());
        s.update(&d);
        let got: Vec<_> = (0..200).map(|n| s.schedule(&d, &input(n, 0))).collect();
        prop_assert_eq!(got, classic_wrr(&weights, 200));
    }

    #[test]
    fn lblc_matches_model(
        d0 in arb_dests(),
        ops in prop::collection::vec((0u8..6, 0usize..12, 0u32..10), 1..80),
    ) {
        let mut d = d0;
        let mut s = Scheduler::new(SchedKind::Lblc, SchedFlags::default(), &SchedParams::default());
        s.update(&d);
        let mut cache = std::collections::HashMap::new();
        for (n, (addr, who, val)) in ops.into_iter().enumerate() {
            // Perturb one dest's counters or weight, then schedule.
            if !d.is_empty() {
                let k = who % d.len();
                match val % 3 {
                    0 => d[k].active = val,
                    1 => d[k].weight = (val % 5) as i32,
                    _ => d[k].overloaded = !d[k].overloaded,
                }
                s.update(&d);
            }
            let daddr = Addr::v4([203, 0, 113, addr]);
            let mut i = input(n as u32, n as u64);
            i.daddr = daddr;
            prop_assert_eq!(s.schedule(&d, &i), model_lblc(&mut cache, &d, daddr));
        }
    }

    #[test]
    fn rr_visits_available_dests_in_list_order(d in arb_dests()) {
        let mut s = Scheduler::new(SchedKind::Rr, SchedFlags::default(), &SchedParams::default());
        s.update(&d);
        let avail: Vec<usize> =
            (0..d.len()).filter(|&i| d[i].weight > 0 && !d[i].overloaded).collect();
        for k in 0..3 * d.len() {
            let want = if avail.is_empty() { None } else { Some(avail[k % avail.len()]) };
            prop_assert_eq!(s.schedule(&d, &input(k as u32, 0)), want);
        }
    }
}
