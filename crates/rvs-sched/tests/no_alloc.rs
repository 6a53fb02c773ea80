//! `Scheduler::schedule` must not allocate on the per-connection path
//! (lblc/lblcr only when their table grows).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use rvs_sched::{SchedFlags, SchedInput, SchedKind, SchedParams, Scheduler, TestDest};
use rvs_types::{Addr, Instant, Proto};

struct Counting;

thread_local! {
    /// Allocations made by this thread (the test harness's own threads
    /// allocate concurrently and must not be counted).
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn input(n: u32) -> SchedInput {
    SchedInput {
        proto: Proto::TCP,
        saddr: Addr::v4([192, 0, (n >> 8) as u8, n as u8]),
        sport: n as u16,
        // A handful of destination addresses so lblc/lblcr hit their table.
        daddr: Addr::v4([198, 51, 100, (n % 4) as u8]),
        dport: 80,
        now: Instant::from_secs(u64::from(n)),
    }
}

#[test]
fn schedule_does_not_allocate() {
    let dests: Vec<TestDest> = (1..=1000)
        .map(|i| TestDest::new(i, 1 + (i % 7) as i32).conns(i % 13, i % 31))
        .collect();
    // The counter works: a boxed value is one allocation.
    let c0 = allocs();
    let b = std::hint::black_box(Box::new(7u64));
    assert_eq!(allocs() - c0, 1);
    drop(b);
    let p = SchedParams::default();
    for k in SchedKind::ALL {
        let mut s = Scheduler::new(k, SchedFlags::SCHED1 | SchedFlags::SCHED2, &p);
        s.update(&dests);
        // Warm-up: lblc/lblcr create their 4 entries here.
        for n in 0..8 {
            s.schedule(&dests, &input(n));
        }
        let before = allocs();
        let mut hits = 0usize;
        for n in 0..2000 {
            hits += usize::from(s.schedule(&dests, &input(n)).is_some());
        }
        let after = allocs();
        assert_eq!(after - before, 0, "{k} allocated");
        assert!(hits > 0, "{k} never chose");
    }
}
