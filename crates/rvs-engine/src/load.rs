//! Real servers' connection counts shared by several directors.
//!
//! rvsd runs one [`Director`](crate::Director) per worker (one per receive
//! queue), each with its own connections. IPVS's connection thresholds
//! (`-x`/`-y`) are about a real server's connections in all, so directors
//! given the same [`SharedLoad`] (in [`DirectorConfig::shared_load`]) count
//! each real server's active + inactive connections in one atomic and keep
//! its overload flag there too: set by whichever director's new connection
//! reaches the upper threshold, cleared by whichever's departing one drops
//! below the lower one (IPVS's `ip_vs_bind_dest` / `ip_vs_unbind_dest`
//! rules, over all of them). One atomic add per connection set-up and tear
//! down, a plain load per scheduling look at the flag; nothing per packet.
//! The schedulers' own counts (lc, wlc, ...) stay per director.
//!
//! [`DirectorConfig::shared_load`]: crate::DirectorConfig::shared_load

use crate::model::ServiceKey;
use rvs_types::Addr;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// The shared counts of every real server, by (service, address, port).
#[derive(Debug, Default)]
pub struct SharedLoad {
    dests: Mutex<HashMap<(ServiceKey, Addr, u16), Weak<DestLoad>>>,
}

impl SharedLoad {
    /// The counts of one real server, made on first use; every director
    /// asking for the same real server of the same service gets the same
    /// counts for as long as any of them holds it. Called when a real
    /// server is added (the control path), never per packet.
    pub fn dest(&self, svc: ServiceKey, addr: Addr, port: u16) -> Arc<DestLoad> {
        let mut m = self.dests.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = m.get(&(svc, addr, port)).and_then(Weak::upgrade) {
            return d;
        }
        // Forget the ones no director holds any more.
        m.retain(|_, w| w.strong_count() > 0);
        let d = Arc::new(DestLoad::default());
        m.insert((svc, addr, port), Arc::downgrade(&d));
        d
    }
}

/// One real server's connections over all directors sharing them.
#[derive(Debug, Default)]
pub struct DestLoad {
    conns: AtomicU32,
    overloaded: AtomicBool,
}

impl DestLoad {
    /// Active + inactive connections, all directors together.
    pub fn conns(&self) -> u32 {
        self.conns.load(Ordering::Relaxed)
    }

    /// IPVS's `IP_VS_DEST_F_OVERLOAD`, all directors together.
    pub fn overloaded(&self) -> bool {
        self.overloaded.load(Ordering::Relaxed)
    }

    /// One more connection; the new total.
    pub(crate) fn add(&self) -> u32 {
        self.conns.fetch_add(1, Ordering::Relaxed).saturating_add(1)
    }

    /// One connection fewer; the new total.
    pub(crate) fn sub(&self) -> u32 {
        let mut cur = self.conns.load(Ordering::Relaxed);
        loop {
            let next = cur.saturating_sub(1);
            match self
                .conns
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(now) => cur = now,
            }
        }
    }

    pub(crate) fn set_overloaded(&self, on: bool) {
        self.overloaded.store(on, Ordering::Relaxed);
    }
}
