//! AF_XDP ports for the rvs dataplane, on the pure-Rust `xdp` crate.
//!
//! One [`XskPort`] is one AF_XDP socket bound to one queue of one interface
//! ([`rx_queue_count`] says how many queues an interface has: a served
//! interface gets one port per queue)
//! with its own UMEM (the crate has no shared UMEM, so a frame leaving by
//! another interface is copied into that interface's UMEM). Copy mode is
//! forced (veth has no zero-copy). Received frames are handed out with
//! [`HEADROOM`] bytes in front of them for encapsulation.
//!
//! Facts from this machine (shared PLATFORM notes): fill and TX enqueues are
//! all-or-nothing, so they go in batch-sized chunks; in copy mode TX only
//! moves inside a syscall, so it is kicked every round while completions lag.

use std::ffi::CString;
use xdp::slab::{HeapSlab, Slab};
use xdp::socket::{XdpSocket, XdpSocketBuilder};
use xdp::umem::{FrameSize, UmemCfgBuilder};
use xdp::{RingConfigBuilder, Umem, WakableRings};

/// Bytes reserved in front of every received frame.
pub const HEADROOM: usize = 192;
const FRAMES: u32 = 4096;
const RING: u32 = 1024;
/// Frames per receive batch.
pub const BATCH: usize = 64;

/// Why a port could not be opened or used.
#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn err(what: &str, e: impl std::fmt::Display) -> Error {
    Error(format!("{what}: {e}"))
}

/// Counters of a port.
#[derive(Clone, Copy, Debug, Default)]
pub struct PortStats {
    /// Frames received.
    pub rx: u64,
    /// Frames queued for transmission.
    pub tx: u64,
    /// Frames that could not be queued (TX ring or UMEM full).
    pub tx_full: u64,
}

/// An AF_XDP socket on one interface queue.
pub struct XskPort {
    name: String,
    ifindex: u32,
    queue: u32,
    mac: [u8; 6],
    rings: WakableRings,
    // Declared after the rings: the UMEM must outlive them and the socket.
    socket: XdpSocket,
    umem: Umem,
    rx: HeapSlab,
    tx: HeapSlab,
    stage: HeapSlab,
    in_ring: usize,
    stats: PortStats,
}

impl XskPort {
    /// Opens a socket on `ifname` queue `queue` in the caller's network
    /// namespace (copy mode, need-wakeup).
    pub fn open(ifname: &str, queue: u32) -> Result<Self, Error> {
        let cname = CString::new(ifname).map_err(|e| err("interface name", e))?;
        let nic = xdp::nic::NicIndex::lookup_by_name(&cname)
            .map_err(|e| err("if_nametoindex", e))?
            .ok_or_else(|| Error(format!("no interface {ifname}")))?;
        let mac = read_mac(ifname)?;
        let cfg = UmemCfgBuilder {
            frame_size: FrameSize::FourK,
            head_room: HEADROOM as u32,
            frame_count: FRAMES,
            ..UmemCfgBuilder::default()
        }
        .build()
        .map_err(|e| err("umem config", e))?;
        let mut umem = Umem::map(cfg).map_err(|e| err("umem mmap", e))?;
        let mut sb = XdpSocketBuilder::new().map_err(|e| err("AF_XDP socket", e))?;
        let rcfg = RingConfigBuilder {
            rx_count: RING,
            tx_count: RING,
            fill_count: RING,
            completion_count: RING,
        }
        .build()
        .map_err(|e| err("ring config", e))?;
        let (mut rings, mut flags) = sb
            .build_wakable_rings(&umem, rcfg)
            .map_err(|e| err("rings", e))?;
        flags.force_copy();
        let socket = sb.bind(nic, queue, flags).map_err(|e| err("bind", e))?;
        // Prime the fill ring in batch-sized chunks (all-or-nothing enqueues).
        let mut primed = 0;
        while primed < RING as usize / 2 {
            // SAFETY: the UMEM outlives the socket (field order).
            match unsafe { rings.fill_ring.enqueue(&mut umem, BATCH, true) } {
                Ok(0) | Err(_) => break,
                Ok(n) => primed += n,
            }
        }
        Ok(Self {
            name: ifname.to_string(),
            ifindex: nic.0,
            queue,
            mac,
            rings,
            socket,
            umem,
            rx: HeapSlab::with_capacity(BATCH),
            tx: HeapSlab::with_capacity(RING as usize),
            stage: HeapSlab::with_capacity(RING as usize),
            in_ring: 0,
            stats: PortStats::default(),
        })
    }

    /// Interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The interface queue the socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// The MAC address of interface `ifname` (from sysfs, in the caller's
    /// network namespace).
    pub fn mac_of(ifname: &str) -> Result<[u8; 6], Error> {
        read_mac(ifname)
    }

    /// Interface MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The socket's descriptor (to register in the steering program's XSKMAP).
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.socket.raw_fd()
    }

    /// Counters.
    pub fn stats(&self) -> PortStats {
        self.stats
    }

    /// Receives up to [`BATCH`] frames and calls `f` with each: the buffer
    /// (headroom included) and the frame's offset and length in it. The
    /// frames go back to the kernel's fill ring afterwards.
    pub fn recv(&mut self, mut f: impl FnMut(&mut [u8], usize, usize)) -> usize {
        // SAFETY: packets do not outlive the UMEM; they are freed below.
        let n = match self.rings.rx_ring.as_mut() {
            Some(rx) => unsafe { rx.recv(&self.umem, &mut self.rx) },
            None => 0,
        };
        while let Some(mut p) = self.rx.pop_back() {
            let len = p.len();
            let head = if p.adjust_head(-(HEADROOM as i32)).is_ok() {
                HEADROOM
            } else {
                0
            };
            f(&mut p[..], head, len);
            self.umem.free_packet(p);
        }
        self.stats.rx += n as u64;
        if n > 0 {
            // SAFETY: as above.
            let _ = unsafe { self.rings.fill_ring.enqueue(&mut self.umem, n, true) };
        }
        n
    }

    /// Queues a copy of `frame` for transmission.
    pub fn send(&mut self, frame: &[u8]) -> bool {
        // SAFETY: the packet is handed to the TX ring, which returns it
        // through the completion ring to this UMEM.
        let Some(mut p) = (unsafe { self.umem.alloc() }) else {
            self.stats.tx_full += 1;
            return false;
        };
        if p.insert(0, frame).is_err() {
            self.umem.free_packet(p);
            self.stats.tx_full += 1;
            return false;
        }
        if let Some(p) = self.tx.push_front(p) {
            self.umem.free_packet(p);
            self.stats.tx_full += 1;
            return false;
        }
        self.stats.tx += 1;
        true
    }

    /// Hands queued frames to the kernel, kicks transmission and recycles
    /// completed frames.
    pub fn flush(&mut self) {
        let done = self
            .rings
            .completion_ring
            .dequeue(&mut self.umem, RING as usize);
        self.in_ring = self.in_ring.saturating_sub(done);
        let free = (RING as usize).saturating_sub(self.in_ring);
        let n = free.min(self.tx.len());
        for _ in 0..n {
            if let Some(p) = self.tx.pop_back() {
                let _ = self.stage.push_front(p);
            }
        }
        if let Some(tx) = self.rings.tx_ring.as_mut() {
            // SAFETY: as in `send`.
            let q = unsafe { tx.send(&mut self.stage, false) }.unwrap_or(0);
            self.in_ring += q;
        }
        if self.in_ring > 0 {
            // SAFETY: a plain sendto kick on our socket.
            unsafe {
                libc::sendto(
                    self.socket.raw_fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                );
            }
        }
    }
}

/// The number of receive queues of interface `ifname` in the caller's
/// network namespace: the `rx-N` directories of
/// `/sys/class/net/IFNAME/queues/` (the kernel's `real_num_rx_queues`, the
/// queues an AF_XDP socket can bind to; ethtool's channel counts can say 0
/// rx queues on NICs with combined channels). At least 1.
pub fn rx_queue_count(ifname: &str) -> Result<u32, Error> {
    if ifname.is_empty() || ifname.contains('/') || ifname.starts_with('.') {
        return Err(Error(format!("bad interface name '{ifname}'")));
    }
    let dir = format!("/sys/class/net/{ifname}/queues");
    let n = std::fs::read_dir(&dir)
        .map_err(|e| err(&format!("reading {dir}"), e))?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("rx-"))
                .is_some_and(|q| q.parse::<u32>().is_ok())
        })
        .count();
    Ok((n as u32).max(1))
}

fn read_mac(ifname: &str) -> Result<[u8; 6], Error> {
    let s = std::fs::read_to_string(format!("/sys/class/net/{ifname}/address"))
        .map_err(|e| err("reading the MAC", e))?;
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = s.trim().split(':').collect();
    if parts.len() != 6 {
        return Err(Error(format!("bad MAC address '{}'", s.trim())));
    }
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).map_err(|e| err("MAC", e))?;
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_count_of_lo_and_bad_names() {
        // lo has one receive queue in every namespace.
        if std::path::Path::new("/sys/class/net/lo/queues").exists() {
            assert_eq!(rx_queue_count("lo").unwrap(), 1);
        }
        for bad in ["", "../lo", "a/b", ".", ".."] {
            assert!(rx_queue_count(bad).is_err(), "{bad:?}");
        }
        assert!(rx_queue_count("rvs-no-such-if").is_err());
    }
}
