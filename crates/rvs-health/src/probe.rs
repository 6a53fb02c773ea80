//! The probes: one async function per checker kind, each giving a
//! [`ProbeResult`]. [`probe`] dispatches on the spec.
//!
//! Every probe is bounded in time: the network ones by `connect_timeout`
//! (HTTP: per url, connect and whole response; SMTP: the whole dialogue),
//! MISC_CHECK by `misc_timeout` (else `delay_loop`), after which the
//! program's process group gets SIGTERM, then SIGKILL.
//!
//! Source binding (`bindto`, `bind_port`, `bind_if`) and `fwmark`
//! (SO_MARK) are applied to every probe socket.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::time::timeout;

pub use crate::policy::ProbeResult;
use crate::spec::{CheckKind, CheckSpec, Common, DnsCheck, SmtpCheck, UdpCheck};

mod http;
mod misc;
mod ping;

pub use http::{body_digest, http_check};
pub use misc::{MISC_KILL_GRACE, misc_check, misc_exit_result};
pub use ping::{PingSocket, ping, ping_check};

/// Largest HTTP response read (headers and body); a longer one fails.
pub const MAX_HTTP_RESPONSE: usize = 16 << 20;

/// Where a probe of the real server `addr` goes: `connect_ip` and
/// `connect_port` override it.
pub fn probe_addr(addr: SocketAddr, common: &Common) -> SocketAddr {
    SocketAddr::new(
        common.connect_ip.unwrap_or(addr.ip()),
        common.connect_port.unwrap_or(addr.port()),
    )
}

/// The longest one probe of `spec` can take (its own timeouts, plus a
/// margin); the monitor uses it as a last-resort bound.
pub fn max_duration(spec: &CheckSpec) -> Duration {
    let margin = Duration::from_secs(1);
    match &spec.kind {
        CheckKind::Http(h) => {
            spec.common.connect_timeout * u32::try_from(h.urls.len().max(1)).unwrap_or(u32::MAX)
                + margin
        }
        CheckKind::Misc(m) => {
            m.timeout.unwrap_or(spec.common.delay_loop) + misc::MISC_KILL_GRACE + margin
        }
        _ => spec.common.connect_timeout + margin,
    }
}

/// What in `spec` cannot work, each as a message (empty: fine). For the
/// configuration check (`rvsd --check`): a probe of such a spec fails
/// every time with the same reason.
///
/// `regex` is Rust `regex` syntax, which is PCRE without look-around and
/// back-references; a pattern using those is reported here.
pub fn validate(spec: &CheckSpec) -> Vec<String> {
    let mut out = Vec::new();
    let c = &spec.common;
    if let (Some(ip), Some(bind)) = (c.connect_ip, c.bindto)
        && ip.is_ipv4() != bind.is_ipv4()
    {
        out.push(format!(
            "bindto {bind} and connect_ip {ip} are of different families"
        ));
    }
    match &spec.kind {
        CheckKind::Http(h) => {
            if h.urls.is_empty() {
                out.push("no url block".into());
            }
            for u in &h.urls {
                if !u.path.starts_with('/') && !u.path.starts_with("http") {
                    out.push(format!("url path {:?} does not start with /", u.path));
                }
                if u.path
                    .chars()
                    .any(|ch| ch.is_ascii_whitespace() || ch.is_ascii_control())
                {
                    out.push(format!(
                        "url path {:?} has white space or control characters",
                        u.path
                    ));
                }
                if let Some(d) = &u.digest
                    && (d.len() != 32 || !d.bytes().all(|b| b.is_ascii_hexdigit()))
                {
                    out.push(format!(
                        "url {}: digest {d:?} is not 32 hex digits (an MD5)",
                        u.path
                    ));
                }
                for &(lo, hi) in &u.status {
                    if lo > hi || !(100..=599).contains(&lo) || !(100..=599).contains(&hi) {
                        out.push(format!(
                            "url {}: status_code range {lo}-{hi} is not within 100-599",
                            u.path
                        ));
                    }
                }
                if let Some(re) = &u.regex
                    && let Err(e) = regex::bytes::Regex::new(re)
                {
                    out.push(format!("url {}: regex {re:?}: {e}", u.path));
                }
            }
        }
        CheckKind::Udp(u) => {
            if let (Some(m), Some(r)) = (&u.require_reply_mask, &u.require_reply)
                && m.len() != r.len()
            {
                out.push("require_reply_mask and require_reply differ in length".into());
            }
            let min = u.min_reply_length.unwrap_or(UDP_DEFAULT_REPLY_LENGTH.0);
            let max = u.max_reply_length.unwrap_or(UDP_DEFAULT_REPLY_LENGTH.1);
            if u.require_reply.is_some() && min > max {
                out.push(format!(
                    "min_reply_length {min} > max_reply_length {max}: always fails"
                ));
            }
        }
        CheckKind::Dns(d) => {
            if let Err(e) = dns_query(0, d) {
                out.push(e);
            }
        }
        CheckKind::Smtp(s) => {
            if s.helo_name.is_empty() || s.helo_name.contains(['\r', '\n']) {
                out.push(format!(
                    "helo_name {:?} is empty or has a line break",
                    s.helo_name
                ));
            }
        }
        CheckKind::Misc(m) => {
            if m.path.trim().is_empty() {
                out.push("misc_path is empty".into());
            }
        }
        CheckKind::Tcp | CheckKind::Ping => {}
    }
    out
}

/// Run one probe of `spec` against the real server `addr`.
pub async fn probe(addr: SocketAddr, spec: &CheckSpec) -> ProbeResult {
    let c = &spec.common;
    let to = probe_addr(addr, c);
    let fut = async {
        match &spec.kind {
            CheckKind::Tcp => tcp_check(to, c).await,
            CheckKind::Http(h) => http::http_check(to, c, h).await,
            CheckKind::Udp(u) => udp_check(to, c, u).await,
            CheckKind::Dns(d) => dns_check(to, c, d).await,
            CheckKind::Smtp(s) => smtp_check(to, c, s).await,
            CheckKind::Ping => ping::ping_check(to.ip(), c).await,
            CheckKind::Misc(m) => misc::misc_check(m, c).await,
        }
    };
    match timeout(max_duration(spec), fut).await {
        Ok(r) => r,
        Err(_) => ProbeResult::down("probe exceeded its time bound"),
    }
}

/// The address to connect to, with the interface's scope for an IPv6
/// link-local address when `bind_if` is given.
fn scoped(to: SocketAddr, c: &Common) -> SocketAddr {
    if let (SocketAddr::V6(v6), Some(ifname)) = (to, &c.bind_if)
        && v6.scope_id() == 0
        && (v6.ip().segments()[0] & 0xffc0) == 0xfe80
        && let Some(idx) = if_index(ifname)
    {
        return SocketAddr::V6(SocketAddrV6::new(*v6.ip(), v6.port(), v6.flowinfo(), idx));
    }
    to
}

fn if_index(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the call's duration.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// A socket for a probe to `to`, with the common options applied:
/// non-blocking, SO_MARK, SO_BINDTODEVICE, bound to bindto/bind_port.
pub(crate) fn probe_socket(
    to: SocketAddr,
    ty: Type,
    proto: Option<Protocol>,
    c: &Common,
) -> io::Result<Socket> {
    let domain = if to.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, ty, proto)?;
    s.set_nonblocking(true)?;
    if let Some(mark) = c.fwmark {
        s.set_mark(mark)?;
    }
    if let Some(ifname) = &c.bind_if {
        s.bind_device(Some(ifname.as_bytes()))?;
    }
    if c.bindto.is_some() || c.bind_port.is_some() {
        let ip = match c.bindto {
            Some(ip) => ip,
            None if to.is_ipv4() => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        if ip.is_ipv4() != to.is_ipv4() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bindto {ip} is not of the family of {to}"),
            ));
        }
        if c.bind_port.is_some() && ty == Type::STREAM {
            // the same source port every probe: close with a reset, so no
            // TIME_WAIT of the last probe blocks the next one
            s.set_reuse_address(true)?;
            s.set_linger(Some(Duration::ZERO))?;
        }
        let mut src = SocketAddr::new(ip, c.bind_port.unwrap_or(0));
        if let (SocketAddr::V6(v6), Some(ifname)) = (&mut src, &c.bind_if)
            && (v6.ip().segments()[0] & 0xffc0) == 0xfe80
            && let Some(idx) = if_index(ifname)
        {
            v6.set_scope_id(idx);
        }
        s.bind(&src.into())?;
    }
    Ok(s)
}

/// Open a TCP connection to `to` within `connect_timeout`.
pub(crate) async fn tcp_connect(to: SocketAddr, c: &Common) -> Result<TcpStream, String> {
    let to = scoped(to, c);
    let s = probe_socket(to, Type::STREAM, Some(Protocol::TCP), c)
        .map_err(|e| format!("socket for {to}: {e}"))?;
    let sock = TcpSocket::from_std_stream(std::net::TcpStream::from(s));
    match timeout(c.connect_timeout, sock.connect(to)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(format!("connect to {to}: {e}")),
        Err(_) => Err(format!(
            "connect to {to}: no answer within {:?}",
            c.connect_timeout
        )),
    }
}

/// TCP_CHECK: a connection opens within `connect_timeout`.
pub async fn tcp_check(to: SocketAddr, c: &Common) -> ProbeResult {
    match tcp_connect(to, c).await {
        Ok(_) => ProbeResult::Up,
        Err(e) => ProbeResult::Down(e),
    }
}

/// A connected UDP socket to `to`.
async fn udp_connect(to: SocketAddr, c: &Common) -> Result<UdpSocket, String> {
    let to = scoped(to, c);
    let s = probe_socket(to, Type::DGRAM, Some(Protocol::UDP), c)
        .map_err(|e| format!("socket for {to}: {e}"))?;
    if c.bindto.is_none() && c.bind_port.is_none() {
        let any: SocketAddr = if to.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        s.bind(&any.into()).map_err(|e| format!("bind: {e}"))?;
    }
    let u = UdpSocket::from_std(std::net::UdpSocket::from(s)).map_err(|e| e.to_string())?;
    u.connect(to)
        .await
        .map_err(|e| format!("connect to {to}: {e}"))?;
    Ok(u)
}

/// keepalived's reply length bounds when the file gives none.
pub const UDP_DEFAULT_REPLY_LENGTH: (u32, u32) = (0, 255);

/// Whether a UDP reply satisfies `require_reply` (keepalived
/// `check_udp_reply`): its length within `min_reply_length ..=
/// max_reply_length` (default 0..=255), and its first bytes, as many as
/// both it and `require_reply` have, equal to `require_reply` except
/// where `require_reply_mask` has bits set.
pub fn udp_reply_ok(u: &UdpCheck, reply: &[u8]) -> Result<(), String> {
    let len = u32::try_from(reply.len()).unwrap_or(u32::MAX);
    let min = u.min_reply_length.unwrap_or(UDP_DEFAULT_REPLY_LENGTH.0);
    let max = u.max_reply_length.unwrap_or(UDP_DEFAULT_REPLY_LENGTH.1);
    if len < min {
        return Err(format!("reply of {len} bytes, shorter than {min}"));
    }
    if len > max {
        return Err(format!("reply of {len} bytes, longer than {max}"));
    }
    let want = u.require_reply.as_deref().unwrap_or(&[]);
    for (i, (&got, &w)) in reply.iter().zip(want).enumerate() {
        let ignore = u
            .require_reply_mask
            .as_ref()
            .and_then(|m| m.get(i))
            .copied()
            .unwrap_or(0);
        if (got ^ w) & !ignore != 0 {
            return Err(format!("reply does not match require_reply at byte {i}"));
        }
    }
    Ok(())
}

/// UDP_CHECK: send `payload` as one datagram.
///
/// Without `require_reply`, the check fails only on an ICMP unreachable
/// (ECONNREFUSED on the connected socket) within `connect_timeout`; a
/// reply, or silence, passes. With it, a reply must arrive within
/// `connect_timeout` and pass [`udp_reply_ok`].
pub async fn udp_check(to: SocketAddr, c: &Common, u: &UdpCheck) -> ProbeResult {
    let sock = match udp_connect(to, c).await {
        Ok(s) => s,
        Err(e) => return ProbeResult::Down(e),
    };
    if let Err(e) = sock.send(&u.payload).await {
        return ProbeResult::Down(format!("send to {to}: {e}"));
    }
    let mut buf = vec![0u8; 65536];
    let got = timeout(c.connect_timeout, sock.recv(&mut buf)).await;
    match (got, &u.require_reply) {
        (Ok(Err(e)), _) if e.kind() == io::ErrorKind::ConnectionRefused => {
            ProbeResult::Down(format!("{to}: port unreachable"))
        }
        (Ok(Err(e)), _) => ProbeResult::Down(format!("receive from {to}: {e}")),
        (Err(_), None) => ProbeResult::Up,
        (Err(_), Some(_)) => {
            ProbeResult::Down(format!("{to}: no reply within {:?}", c.connect_timeout))
        }
        (Ok(Ok(_)), None) => ProbeResult::Up,
        (Ok(Ok(n)), Some(_)) => match udp_reply_ok(u, &buf[..n]) {
            Ok(()) => ProbeResult::Up,
            Err(e) => ProbeResult::Down(format!("{to}: {e}")),
        },
    }
}

/// A DNS query (RFC 1035 4.1): header with RD, one question of `qtype`
/// for `name`, class IN.
pub fn dns_query(id: u16, d: &DnsCheck) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(32 + d.name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    q.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    q.extend_from_slice(&[0; 6]); // AN, NS, AR counts
    let name = d.name.trim_end_matches('.');
    if !name.is_empty() {
        for label in name.split('.') {
            let len = label.len();
            if len == 0 || len > 63 {
                return Err(format!("bad DNS name {:?}", d.name));
            }
            q.push(len as u8);
            q.extend_from_slice(label.as_bytes());
        }
    }
    q.push(0);
    if q.len() > 12 + 255 {
        return Err(format!("DNS name {:?} too long", d.name));
    }
    q.extend_from_slice(&d.qtype.code().to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes()); // IN
    Ok(q)
}

/// What a DNS reply header says about the query `id`: `None` if it is not
/// a reply to it, else `Ok` for RCODE NOERROR or `Err` with the rcode.
pub fn dns_reply_status(id: u16, reply: &[u8]) -> Option<Result<(), u8>> {
    if reply.len() < 12 || u16::from_be_bytes([reply[0], reply[1]]) != id || reply[2] & 0x80 == 0 {
        return None;
    }
    let rcode = reply[3] & 0x0f;
    Some(if rcode == 0 { Ok(()) } else { Err(rcode) })
}

fn query_id() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = N.fetch_add(0x9e37, Ordering::Relaxed);
    ((t ^ n ^ (t >> 16)) & 0xffff) as u16
}

/// DNS_CHECK: a query of `qtype` for `name` over UDP; a reply with the same
/// id and RCODE NOERROR within `connect_timeout` passes.
pub async fn dns_check(to: SocketAddr, c: &Common, d: &DnsCheck) -> ProbeResult {
    let id = query_id();
    let q = match dns_query(id, d) {
        Ok(q) => q,
        Err(e) => return ProbeResult::Down(e),
    };
    let sock = match udp_connect(to, c).await {
        Ok(s) => s,
        Err(e) => return ProbeResult::Down(e),
    };
    if let Err(e) = sock.send(&q).await {
        return ProbeResult::Down(format!("send to {to}: {e}"));
    }
    let deadline = tokio::time::Instant::now() + c.connect_timeout;
    let mut buf = vec![0u8; 65536];
    // each wrong reply costs one datagram; the deadline bounds the loop
    loop {
        match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            Err(_) => {
                return ProbeResult::Down(format!(
                    "{to}: no DNS reply within {:?}",
                    c.connect_timeout
                ));
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return ProbeResult::Down(format!("{to}: port unreachable"));
            }
            Ok(Err(e)) => return ProbeResult::Down(format!("receive from {to}: {e}")),
            Ok(Ok(n)) => match dns_reply_status(id, &buf[..n]) {
                None => continue,
                Some(Ok(())) => return ProbeResult::Up,
                Some(Err(rcode)) => {
                    return ProbeResult::Down(format!("{to}: DNS RCODE {rcode}"));
                }
            },
        }
    }
}

/// Read one SMTP reply (possibly multi-line, `NNN-...` continued) and
/// return its code.
async fn smtp_reply<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> Result<u16, String> {
    loop {
        // complete lines in buf?
        while let Some(pos) = buf.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = buf.drain(..pos + 2).collect();
            if line.len() < 5 || !line[..3].iter().all(u8::is_ascii_digit) {
                return Err(format!(
                    "bad SMTP reply {:?}",
                    String::from_utf8_lossy(&line[..line.len() - 2])
                ));
            }
            let code = u16::from(line[0] - b'0') * 100
                + u16::from(line[1] - b'0') * 10
                + u16::from(line[2] - b'0');
            if line[3] == b'-' {
                continue;
            }
            return Ok(code);
        }
        if buf.len() > 64 * 1024 {
            return Err("SMTP reply too long".into());
        }
        let mut chunk = [0u8; 4096];
        let n = r.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn smtp_dialogue<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    helo: &str,
) -> Result<(), String> {
    let mut buf = Vec::new();
    let code = smtp_reply(s, &mut buf).await?;
    if code != 220 {
        return Err(format!("greeting {code}, not 220"));
    }
    s.write_all(format!("HELO {helo}\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let code = smtp_reply(s, &mut buf).await?;
    if code != 250 {
        return Err(format!("HELO answered {code}, not 250"));
    }
    // the check has passed; QUIT is courtesy
    let _ = s.write_all(b"QUIT\r\n").await;
    let _ = smtp_reply(s, &mut buf).await;
    Ok(())
}

/// SMTP_CHECK: a 220 greeting, `HELO helo_name` answered 250, then QUIT;
/// all within `connect_timeout`.
pub async fn smtp_check(to: SocketAddr, c: &Common, s: &SmtpCheck) -> ProbeResult {
    let r = timeout(c.connect_timeout, async {
        let mut stream = tcp_connect(to, c).await?;
        smtp_dialogue(&mut stream, &s.helo_name).await
    })
    .await;
    match r {
        Ok(Ok(())) => ProbeResult::Up,
        Ok(Err(e)) => ProbeResult::Down(format!("SMTP {to}: {e}")),
        Err(_) => ProbeResult::Down(format!(
            "SMTP {to}: no complete dialogue within {:?}",
            c.connect_timeout
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::DnsType;

    #[test]
    fn socket_options_are_applied() {
        let c = Common {
            fwmark: Some(0x2a),
            bind_if: Some("lo".into()),
            bindto: Some("127.0.0.2".parse().unwrap()),
            ..Common::default()
        };
        let to: SocketAddr = "127.0.0.1:80".parse().unwrap();
        match probe_socket(to, Type::STREAM, Some(Protocol::TCP), &c) {
            Ok(s) => {
                assert_eq!(s.mark().unwrap(), 0x2a);
                assert_eq!(s.device().unwrap().as_deref(), Some(&b"lo"[..]));
                let local = s.local_addr().unwrap().as_socket().unwrap();
                assert_eq!(local.ip(), "127.0.0.2".parse::<IpAddr>().unwrap());
            }
            // SO_MARK and SO_BINDTODEVICE need CAP_NET_ADMIN / CAP_NET_RAW
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                println!("SKIPPED socket_options_are_applied: not privileged ({e})");
            }
            Err(e) => panic!("{e}"),
        }
        // a family mismatch is refused
        let c = Common {
            bindto: Some("::1".parse().unwrap()),
            ..Common::default()
        };
        assert!(probe_socket(to, Type::STREAM, None, &c).is_err());
    }

    #[test]
    fn udp_reply_rules() {
        let mut u = UdpCheck {
            require_reply: Some(b"abcd".to_vec()),
            ..UdpCheck::default()
        };
        assert!(udp_reply_ok(&u, b"abcdef").is_ok());
        // only as many bytes as the reply has are compared (keepalived)
        assert!(udp_reply_ok(&u, b"ab").is_ok());
        assert!(udp_reply_ok(&u, b"").is_ok());
        assert!(udp_reply_ok(&u, b"abXd").is_err());
        u.require_reply_mask = Some(vec![0, 0, 0xff, 0]);
        assert!(udp_reply_ok(&u, b"abXd").is_ok());
        u.require_reply_mask = Some(vec![0, 0, 0x0f, 0]);
        assert!(udp_reply_ok(&u, b"abbd").is_ok()); // 'b' = 0x62, 'c' = 0x63
        assert!(udp_reply_ok(&u, b"abSd").is_err()); // 'S' = 0x53
        u.min_reply_length = Some(3);
        assert!(udp_reply_ok(&u, b"ab").unwrap_err().contains("shorter"));
        assert!(
            udp_reply_ok(&u, &[b'a'; 256])
                .unwrap_err()
                .contains("longer than 255")
        );
        u.max_reply_length = Some(1000);
        u.require_reply = Some(vec![]);
        assert!(udp_reply_ok(&u, &[b'a'; 256]).is_ok());
    }

    #[test]
    fn validation() {
        use crate::spec::{HttpCheck, HttpProtocol, MiscCheck, UrlCheck};
        let url = |path: &str| UrlCheck {
            path: path.into(),
            digest: None,
            status: vec![],
            virtualhost: None,
            regex: None,
            regex_no_match: false,
        };
        let http = |urls| CheckSpec {
            kind: CheckKind::Http(HttpCheck {
                tls: false,
                urls,
                virtualhost: None,
                protocol: HttpProtocol::Http10,
                enable_sni: false,
                sni_name: None,
                fast_recovery: false,
            }),
            common: Common::default(),
        };
        assert!(validate(&http(vec![url("/")])).is_empty());
        assert_eq!(validate(&http(vec![])), ["no url block"]);
        let mut u = url("/x");
        u.digest = Some("abc".into());
        u.status = vec![(200, 299), (302, 301)];
        u.regex = Some("(?<=a)b".into()); // PCRE look-behind
        let v = validate(&http(vec![u, url("a b")]));
        assert_eq!(v.len(), 5, "{v:?}");
        assert!(
            v[0].contains("digest") && v[1].contains("302-301") && v[2].contains("regex"),
            "{v:?}"
        );
        let misc = CheckSpec {
            kind: CheckKind::Misc(MiscCheck {
                path: " ".into(),
                timeout: None,
                dynamic: false,
                user: None,
            }),
            common: Common {
                connect_ip: Some("::1".parse().unwrap()),
                bindto: Some("127.0.0.1".parse().unwrap()),
                ..Common::default()
            },
        };
        assert_eq!(validate(&misc).len(), 2);
        let dns = CheckSpec {
            kind: CheckKind::Dns(DnsCheck {
                qtype: DnsType::A,
                name: "a..b".into(),
            }),
            common: Common::default(),
        };
        assert_eq!(validate(&dns).len(), 1);
        let udp = CheckSpec {
            kind: CheckKind::Udp(UdpCheck {
                require_reply: Some(vec![1, 2]),
                require_reply_mask: Some(vec![0]),
                min_reply_length: Some(300),
                ..UdpCheck::default()
            }),
            common: Common::default(),
        };
        assert_eq!(validate(&udp).len(), 2);
    }

    #[test]
    fn probe_addr_overrides() {
        let mut c = Common::default();
        let a: SocketAddr = "10.1.1.1:80".parse().unwrap();
        assert_eq!(probe_addr(a, &c), a);
        c.connect_port = Some(8080);
        assert_eq!(probe_addr(a, &c), "10.1.1.1:8080".parse().unwrap());
        c.connect_ip = Some("10.2.2.2".parse().unwrap());
        assert_eq!(probe_addr(a, &c), "10.2.2.2:8080".parse().unwrap());
    }

    #[test]
    fn dns_query_bytes() {
        let q = dns_query(
            0xbeef,
            &DnsCheck {
                qtype: DnsType::Mx,
                name: "a.bc".into(),
            },
        )
        .unwrap();
        assert_eq!(
            q,
            [
                0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 2, b'b', b'c', 0, 0, 15,
                0, 1
            ]
        );
        let root = dns_query(
            1,
            &DnsCheck {
                qtype: DnsType::Soa,
                name: ".".into(),
            },
        )
        .unwrap();
        assert_eq!(&root[12..], &[0, 0, 6, 0, 1]);
        assert!(
            dns_query(
                1,
                &DnsCheck {
                    qtype: DnsType::A,
                    name: "a..b".into()
                }
            )
            .is_err()
        );
        let long = "x".repeat(64);
        assert!(
            dns_query(
                1,
                &DnsCheck {
                    qtype: DnsType::A,
                    name: long
                }
            )
            .is_err()
        );
        let mut reply = q.clone();
        assert_eq!(dns_reply_status(0xbeef, &reply), None); // not a response
        reply[2] |= 0x80;
        assert_eq!(dns_reply_status(0xbeef, &reply), Some(Ok(())));
        assert_eq!(dns_reply_status(0xbeee, &reply), None);
        reply[3] |= 3;
        assert_eq!(dns_reply_status(0xbeef, &reply), Some(Err(3)));
        assert_eq!(dns_reply_status(0xbeef, &reply[..5]), None);
    }
}
