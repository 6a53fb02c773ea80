//! PING_CHECK: one ICMP / ICMPv6 echo request, answered within
//! `connect_timeout`.
//!
//! Uses an unprivileged "ping socket" (SOCK_DGRAM, IPPROTO_ICMP or
//! IPPROTO_ICMPV6; allowed for the groups in `net.ipv4.ping_group_range`),
//! else a raw socket (needs CAP_NET_RAW).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};

use socket2::{Protocol, Type};
use tokio::net::UdpSocket;

use super::{ProbeResult, probe_socket};
use crate::spec::Common;

/// Which kind of socket a ping used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PingSocket {
    /// SOCK_DGRAM ping socket (unprivileged).
    Dgram,
    /// SOCK_RAW (root / CAP_NET_RAW).
    Raw,
}

/// The Internet checksum (RFC 1071).
pub(crate) fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request: type 8 (ICMP) or 128 (ICMPv6), code 0, id, seq,
/// payload; the checksum filled for ICMP (the kernel fills ICMPv6's).
pub(crate) fn echo_request(v6: bool, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + payload.len());
    p.push(if v6 { 128 } else { 8 });
    p.push(0);
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    if !v6 {
        let c = inet_checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// Whether `pkt` (ICMP message, after any IP header) is the echo reply to
/// (id, seq); `id` is not compared for ping sockets (the kernel sets it).
fn is_reply(pkt: &[u8], v6: bool, id: Option<u16>, seq: u16, payload: &[u8]) -> bool {
    if pkt.len() < 8 {
        return false;
    }
    let want_type = if v6 { 129 } else { 0 };
    pkt[0] == want_type
        && pkt[1] == 0
        && id.is_none_or(|id| u16::from_be_bytes([pkt[4], pkt[5]]) == id)
        && u16::from_be_bytes([pkt[6], pkt[7]]) == seq
        && pkt[8..].starts_with(payload)
}

fn open(to: SocketAddr, c: &Common) -> io::Result<(UdpSocket, PingSocket)> {
    let proto = if to.is_ipv4() {
        Protocol::ICMPV4
    } else {
        Protocol::ICMPV6
    };
    let (s, kind) = match probe_socket(to, Type::DGRAM, Some(proto), c) {
        Ok(s) => (s, PingSocket::Dgram),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) => (
            probe_socket(to, Type::RAW, Some(proto), c)?,
            PingSocket::Raw,
        ),
        Err(e) => return Err(e),
    };
    s.connect(&to.into())?;
    // tokio's UdpSocket only does send/recv on the fd: fine for a
    // connected ICMP datagram or raw socket
    Ok((UdpSocket::from_std(std::net::UdpSocket::from(s))?, kind))
}

/// Send one echo request to `ip` and wait for its reply; also says which
/// kind of socket was used.
pub async fn ping(ip: IpAddr, c: &Common) -> Result<PingSocket, String> {
    static SEQ: AtomicU16 = AtomicU16::new(1);
    let to = super::scoped(SocketAddr::new(ip, 0), c);
    let v6 = to.is_ipv6();
    let (sock, kind) = open(to, c).map_err(|e| format!("ICMP socket: {e}"))?;
    let id = (std::process::id() & 0xffff) as u16;
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let payload = b"rvs-health-ping!";
    let req = echo_request(v6, id, seq, payload);
    sock.send(&req)
        .await
        .map_err(|e| format!("send echo to {ip}: {e}"))?;
    let deadline = tokio::time::Instant::now() + c.connect_timeout;
    let mut buf = vec![0u8; 2048];
    // a raw socket sees every ICMP message from ip (our own request too on
    // loopback); each costs one receive and the deadline bounds the loop
    loop {
        let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            Err(_) => {
                return Err(format!(
                    "no echo reply from {ip} within {:?}",
                    c.connect_timeout
                ));
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return Err(format!("{ip}: unreachable"));
            }
            Ok(Err(e)) => return Err(format!("receive from {ip}: {e}")),
            Ok(Ok(n)) => n,
        };
        let pkt = &buf[..n];
        let (icmp, want_id) = match (kind, v6) {
            (PingSocket::Dgram, _) => (pkt, None),
            (PingSocket::Raw, true) => (pkt, Some(id)),
            (PingSocket::Raw, false) => {
                // IPv4 raw sockets deliver the IP header
                let ihl = usize::from(pkt.first().map_or(0, |b| b & 0x0f)) * 4;
                if ihl < 20 || pkt.len() < ihl {
                    continue;
                }
                (&pkt[ihl..], Some(id))
            }
        };
        if is_reply(icmp, v6, want_id, seq, payload) {
            return Ok(kind);
        }
    }
}

/// PING_CHECK.
pub async fn ping_check(ip: IpAddr, c: &Common) -> ProbeResult {
    match ping(ip, c).await {
        Ok(_) => ProbeResult::Up,
        Err(e) => ProbeResult::Down(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_and_request() {
        // RFC 1071 example words
        assert_eq!(
            inet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
        let r = echo_request(false, 0x1234, 7, b"ab");
        assert_eq!(&r[..2], &[8, 0]);
        assert_eq!(inet_checksum(&r), 0);
        let mut reply = r.clone();
        reply[0] = 0;
        assert!(is_reply(&reply, false, Some(0x1234), 7, b"ab"));
        assert!(!is_reply(&reply, false, Some(0x1235), 7, b"ab"));
        assert!(!is_reply(&reply, false, None, 8, b"ab"));
        assert!(!is_reply(&r, false, None, 7, b"ab"));
        let r6 = echo_request(true, 1, 2, b"");
        assert_eq!(r6[0], 128);
    }
}
