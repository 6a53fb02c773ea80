//! rvs's BPF programs, written in C (`bpf/steer.bpf.c`, `bpf/decap.bpf.c`),
//! compiled by `build.rs` with clang and loaded with aya.
//!
//! - [`Steering`]: the XDP program in front of the AF_XDP dataplane. It
//!   sends frames of configured services, NAT replies and ICMP errors about
//!   connections to the engine's AF_XDP socket; everything else to the kernel.
//! - [`Decap`]: the real-server helper that decapsulates rvs's TUN traffic
//!   (IPIP, GUE, GRE) for kernels without the tunnel modules.
//! - [`MarkTag`]: the fwmark path (`bpf/mark.bpf.c`): a tc egress program
//!   that writes skb->mark into the frame's source MAC on the veth marked
//!   packets are policy-routed into, and the XDP program on its peer that
//!   sends those frames to the engine's AF_XDP socket ([`decode_mark`]
//!   reads the mark back).
//!
//! Loading needs CAP_BPF (root). Attaching must happen from inside the
//! network namespace of the interface (map ifindexes and attachments belong
//! to the namespace of the caller).

use aya::maps::{HashMap, PerCpuArray};
use aya::programs::{
    ProgramError, SchedClassifier, TcAttachType, TestRun, TestRunOptions, Xdp, XdpMode,
};
use aya::{Ebpf, EbpfError};
use rvs_types::{Addr, Proto};

const STEER_OBJ: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/steer.o"));
const DECAP_OBJ: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/decap.o"));
const MARK_OBJ: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/mark.o"));

/// XDP verdicts.
pub mod verdict {
    /// XDP_ABORTED.
    pub const ABORTED: u32 = 0;
    /// XDP_DROP.
    pub const DROP: u32 = 1;
    /// XDP_PASS.
    pub const PASS: u32 = 2;
    /// XDP_TX.
    pub const TX: u32 = 3;
    /// XDP_REDIRECT.
    pub const REDIRECT: u32 = 4;
}

/// Why a BPF operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Loading the object or a program failed.
    #[error("loading the BPF object: {0}")]
    Load(#[from] EbpfError),
    /// A program operation failed.
    #[error("BPF program: {0}")]
    Program(#[from] ProgramError),
    /// A map operation failed.
    #[error("BPF map: {0}")]
    Map(#[from] aya::maps::MapError),
    /// A program or map is missing from the object.
    #[error("{0} missing from the BPF object")]
    Missing(&'static str),
}

fn load_xdp(obj: &[u8], prog: &'static str) -> Result<Ebpf, Error> {
    let mut ebpf = Ebpf::load(obj)?;
    let p: &mut Xdp = ebpf
        .program_mut(prog)
        .ok_or(Error::Missing(prog))?
        .try_into()?;
    p.load()?;
    Ok(ebpf)
}

fn attach_xdp(ebpf: &mut Ebpf, prog: &'static str, ifname: &str, skb: bool) -> Result<(), Error> {
    let p: &mut Xdp = ebpf
        .program_mut(prog)
        .ok_or(Error::Missing(prog))?
        .try_into()?;
    p.attach(ifname, if skb { XdpMode::Skb } else { XdpMode::Driver })?;
    Ok(())
}

/// Runs `prog` on `frame` with BPF_PROG_TEST_RUN: the verdict and the
/// resulting frame.
fn run_xdp(ebpf: &Ebpf, prog: &'static str, frame: &[u8]) -> Result<(u32, Vec<u8>), Error> {
    let p: &Xdp = ebpf.program(prog).ok_or(Error::Missing(prog))?.try_into()?;
    let mut out = vec![0u8; frame.len() + 256];
    let r = p.test_run(TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        ..TestRunOptions::new()
    })?;
    out.truncate(r.data_size_out as usize);
    Ok((r.return_value, out))
}

/// The key of `rvs_vips` and `rvs_reals` (see steer.bpf.c).
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[repr(C)]
pub struct RvsKey {
    /// IP protocol (0 = ICMP errors / any, for `rvs_vips`).
    pub proto: u8,
    /// Zero.
    pub pad: u8,
    /// Port in network byte order (0 = any).
    pub port: u16,
    /// Address, IPv4-mapped for IPv4.
    pub addr: [u8; 16],
}

// SAFETY: plain old data, no padding holes (1 + 1 + 2 + 16 bytes).
unsafe impl aya::Pod for RvsKey {}

impl RvsKey {
    /// A key for `proto`, `addr`, `port` (host byte order).
    pub fn new(proto: Proto, addr: Addr, port: u16) -> Self {
        Self {
            proto: proto.0,
            pad: 0,
            port: port.to_be(),
            addr: addr.octets16(),
        }
    }
}

/// Counters of the steering program.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct SteerStats {
    /// Frames seen.
    pub seen: u64,
    /// Frames sent toward the engine's socket.
    pub steered: u64,
    /// Frames left to the kernel.
    pub passed: u64,
    /// Frames it could not parse (left to the kernel).
    pub parse_errors: u64,
}

/// The number of entries of the steering program's XSKMAP (`rvs_xsks` in
/// steer.bpf.c): the most receive queues an interface it serves can have.
pub const STEER_MAX_QUEUES: u32 = 256;

/// The loaded steering program.
pub struct Steering {
    ebpf: Ebpf,
}

impl Steering {
    /// Loads the program (not attached).
    pub fn load() -> Result<Self, Error> {
        Ok(Self {
            ebpf: load_xdp(STEER_OBJ, "rvs_steer")?,
        })
    }

    /// Attaches to `ifname` in the caller's network namespace (generic mode
    /// with `skb`, else native). Detached when `self` is dropped.
    pub fn attach(&mut self, ifname: &str, skb: bool) -> Result<(), Error> {
        attach_xdp(&mut self.ebpf, "rvs_steer", ifname, skb)
    }

    /// Steers traffic to a service (`port` 0: every port of the VIP; `proto`
    /// 0 and `port` 0: ICMP errors sent to the VIP).
    pub fn add_vip(&mut self, proto: Proto, addr: Addr, port: u16) -> Result<(), Error> {
        let mut m: HashMap<_, RvsKey, u32> = HashMap::try_from(
            self.ebpf
                .map_mut("rvs_vips")
                .ok_or(Error::Missing("rvs_vips"))?,
        )?;
        m.insert(RvsKey::new(proto, addr, port), 1, 0)?;
        Ok(())
    }

    /// Steers replies from a NAT real server.
    pub fn add_real(&mut self, proto: Proto, addr: Addr, port: u16) -> Result<(), Error> {
        let mut m: HashMap<_, RvsKey, u32> = HashMap::try_from(
            self.ebpf
                .map_mut("rvs_reals")
                .ok_or(Error::Missing("rvs_reals"))?,
        )?;
        m.insert(RvsKey::new(proto, addr, port), 1, 0)?;
        Ok(())
    }

    /// Marks `addr` as one of the director's own addresses: frames from a
    /// NAT real server to it are the director's own traffic and stay with
    /// the kernel.
    pub fn add_local(&mut self, addr: Addr) -> Result<(), Error> {
        let mut m: HashMap<_, [u8; 16], u32> = HashMap::try_from(
            self.ebpf
                .map_mut("rvs_locals")
                .ok_or(Error::Missing("rvs_locals"))?,
        )?;
        m.insert(addr.octets16(), 1, 0)?;
        Ok(())
    }

    /// Registers an AF_XDP socket for receive queue `queue` (below
    /// [`STEER_MAX_QUEUES`]): frames steered on that queue go to it.
    pub fn set_socket(&mut self, queue: u32, fd: std::os::fd::RawFd) -> Result<(), Error> {
        let mut m = aya::maps::XskMap::try_from(
            self.ebpf
                .map_mut("rvs_xsks")
                .ok_or(Error::Missing("rvs_xsks"))?,
        )?;
        m.set(queue, fd, 0)?;
        Ok(())
    }

    /// The counters, summed over CPUs.
    pub fn stats(&self) -> Result<SteerStats, Error> {
        let m: PerCpuArray<_, u64> = PerCpuArray::try_from(
            self.ebpf
                .map("rvs_stats")
                .ok_or(Error::Missing("rvs_stats"))?,
        )?;
        let sum = |i: u32| -> Result<u64, Error> { Ok(m.get(&i, 0)?.iter().sum()) };
        Ok(SteerStats {
            seen: sum(0)?,
            steered: sum(1)?,
            passed: sum(2)?,
            parse_errors: sum(3)?,
        })
    }

    /// Runs the program on `frame` with BPF_PROG_TEST_RUN: the verdict.
    pub fn test_run(&self, frame: &[u8]) -> Result<u32, Error> {
        Ok(run_xdp(&self.ebpf, "rvs_steer", frame)?.0)
    }
}

/// The loaded decapsulation program.
pub struct Decap {
    ebpf: Ebpf,
}

impl Decap {
    /// Loads the program (not attached).
    pub fn load() -> Result<Self, Error> {
        Ok(Self {
            ebpf: load_xdp(DECAP_OBJ, "rvs_decap")?,
        })
    }

    /// Attaches to `ifname` in the caller's network namespace.
    pub fn attach(&mut self, ifname: &str, skb: bool) -> Result<(), Error> {
        attach_xdp(&mut self.ebpf, "rvs_decap", ifname, skb)
    }

    /// Decapsulates GUE arriving on this UDP port.
    pub fn add_gue_port(&mut self, port: u16) -> Result<(), Error> {
        let mut m: HashMap<_, u16, u32> = HashMap::try_from(
            self.ebpf
                .map_mut("decap_gue_ports")
                .ok_or(Error::Missing("decap_gue_ports"))?,
        )?;
        m.insert(port.to_be(), 1, 0)?;
        Ok(())
    }

    /// Runs the program on `frame`: the verdict and the resulting frame.
    pub fn test_run(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), Error> {
        run_xdp(&self.ebpf, "rvs_decap", frame)
    }
}

/// tc verdicts.
pub mod tc_verdict {
    /// TC_ACT_OK.
    pub const OK: i32 = 0;
    /// TC_ACT_SHOT.
    pub const SHOT: i32 = 2;
}

/// The first two bytes of a source MAC carrying a mark (02:52: locally
/// administered, unicast, 'R').
pub const MARK_MAC_PREFIX: [u8; 2] = [0x02, 0x52];

/// The source MAC the tc program writes for `mark`: 02:52 and the mark in
/// network byte order.
pub fn mark_mac(mark: u32) -> [u8; 6] {
    let m = mark.to_be_bytes();
    [
        MARK_MAC_PREFIX[0],
        MARK_MAC_PREFIX[1],
        m[0],
        m[1],
        m[2],
        m[3],
    ]
}

/// The mark a tagged frame carries in its source MAC; `None` for a frame
/// shorter than an Ethernet header or without the tag.
pub fn decode_mark(frame: &[u8]) -> Option<u32> {
    let src = frame.get(6..12)?;
    if src[..2] != MARK_MAC_PREFIX {
        return None;
    }
    Some(u32::from_be_bytes([src[2], src[3], src[4], src[5]]))
}

/// Counters of the fwmark path's programs.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct MarkStats {
    /// Frames tagged with their mark (tc egress).
    pub tagged: u64,
    /// Forwarded packets whose TTL / hop limit was given back.
    pub ttl_restored: u64,
    /// Tagged frames sent toward the AF_XDP socket (XDP).
    pub steered: u64,
    /// Untagged frames dropped (XDP).
    pub untagged: u64,
}

/// The loaded fwmark-path programs (`bpf/mark.bpf.c`): `rvs_mark_tag`
/// (tc egress on the veth end marked packets are routed into) and
/// `rvs_mark_rx` (XDP on its peer).
pub struct MarkTag {
    ebpf: Ebpf,
}

impl MarkTag {
    /// Loads both programs (not attached).
    pub fn load() -> Result<Self, Error> {
        let mut ebpf = Ebpf::load(MARK_OBJ)?;
        let tag: &mut SchedClassifier = ebpf
            .program_mut("rvs_mark_tag")
            .ok_or(Error::Missing("rvs_mark_tag"))?
            .try_into()?;
        tag.load()?;
        let rx: &mut Xdp = ebpf
            .program_mut("rvs_mark_rx")
            .ok_or(Error::Missing("rvs_mark_rx"))?
            .try_into()?;
        rx.load()?;
        Ok(Self { ebpf })
    }

    /// Attaches the tagging program to `ifname`'s egress (tcx) in the
    /// caller's network namespace. Detached when `self` is dropped.
    pub fn attach_tag(&mut self, ifname: &str) -> Result<(), Error> {
        let p: &mut SchedClassifier = self
            .ebpf
            .program_mut("rvs_mark_tag")
            .ok_or(Error::Missing("rvs_mark_tag"))?
            .try_into()?;
        p.attach(ifname, TcAttachType::Egress)?;
        Ok(())
    }

    /// Attaches the receiving XDP program to `ifname` (generic mode with
    /// `skb`, else native). Detached when `self` is dropped.
    pub fn attach_rx(&mut self, ifname: &str, skb: bool) -> Result<(), Error> {
        attach_xdp(&mut self.ebpf, "rvs_mark_rx", ifname, skb)
    }

    /// Registers an AF_XDP socket for a receive queue of the XDP side.
    pub fn set_socket(&mut self, queue: u32, fd: std::os::fd::RawFd) -> Result<(), Error> {
        let mut m = aya::maps::XskMap::try_from(
            self.ebpf
                .map_mut("rvs_mark_xsks")
                .ok_or(Error::Missing("rvs_mark_xsks"))?,
        )?;
        m.set(queue, fd, 0)?;
        Ok(())
    }

    /// The counters, summed over CPUs.
    pub fn stats(&self) -> Result<MarkStats, Error> {
        let m: PerCpuArray<_, u64> = PerCpuArray::try_from(
            self.ebpf
                .map("rvs_mark_stats")
                .ok_or(Error::Missing("rvs_mark_stats"))?,
        )?;
        let sum = |i: u32| -> Result<u64, Error> { Ok(m.get(&i, 0)?.iter().sum()) };
        Ok(MarkStats {
            tagged: sum(0)?,
            ttl_restored: sum(1)?,
            steered: sum(2)?,
            untagged: sum(3)?,
        })
    }

    /// Runs the tagging program on `frame` with BPF_PROG_TEST_RUN, as a
    /// packet carrying `mark` that was received on `ingress_ifindex` (0: sent
    /// by a local process): the tc verdict and the resulting frame.
    pub fn test_tag(
        &self,
        frame: &[u8],
        mark: u32,
        ingress_ifindex: u32,
    ) -> Result<(i32, Vec<u8>), Error> {
        let p: &SchedClassifier = self
            .ebpf
            .program("rvs_mark_tag")
            .ok_or(Error::Missing("rvs_mark_tag"))?
            .try_into()?;
        // struct __sk_buff up to ingress_ifindex: len, pkt_type, mark,
        // queue_mapping, protocol, vlan_present, vlan_tci, vlan_proto,
        // priority, ingress_ifindex (u32 each); the kernel takes a prefix.
        let mut ctx = [0u8; 40];
        ctx[8..12].copy_from_slice(&mark.to_ne_bytes());
        ctx[36..40].copy_from_slice(&ingress_ifindex.to_ne_bytes());
        let mut out = vec![0u8; frame.len() + 256];
        let r = p.test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: Some(&ctx),
            ..TestRunOptions::new()
        })?;
        out.truncate(r.data_size_out as usize);
        Ok((r.return_value as i32, out))
    }

    /// Runs the receiving XDP program on `frame`: the verdict.
    pub fn test_rx(&self, frame: &[u8]) -> Result<u32, Error> {
        Ok(run_xdp(&self.ebpf, "rvs_mark_rx", frame)?.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_mac_round_trips_and_foreign_macs_carry_none() {
        for m in [0, 1, 0x1234_5678, u32::MAX] {
            let mut f = vec![0u8; 14];
            f[6..12].copy_from_slice(&mark_mac(m));
            assert_eq!(decode_mark(&f), Some(m));
        }
        assert_eq!(mark_mac(0x0102_0304), [0x02, 0x52, 1, 2, 3, 4]);
        let mut f = vec![0u8; 14];
        f[6..12].copy_from_slice(&[0x02, 0x00, 0, 0, 0, 1]);
        assert_eq!(decode_mark(&f), None);
        assert_eq!(decode_mark(&[0x02; 11]), None);
        assert_eq!(decode_mark(&[]), None);
    }
}
