//! What a health check is, as keepalived.conf describes it: plain data,
//! produced by the configuration parser and consumed by the checkers.
//!
//! Defaults are keepalived 2.x's (`keepalived.conf(5)`,
//! `keepalived/check/check_*.c`); values a checker inherits from its real
//! server or virtual server (connect_timeout, retry, delay_before_retry,
//! warmup, delay_loop, alpha) are resolved by the parser, so a spec is
//! complete on its own.

use std::net::IpAddr;
use std::time::Duration;

/// One checker of one real server.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CheckSpec {
    /// The probe.
    pub kind: CheckKind,
    /// Where and how often.
    pub common: Common,
}

/// Settings every checker has.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Common {
    /// `connect_ip`: probe this address instead of the real server's.
    pub connect_ip: Option<IpAddr>,
    /// `connect_port`: probe this port instead of the real server's.
    pub connect_port: Option<u16>,
    /// `bindto`: source address of the probe.
    pub bindto: Option<IpAddr>,
    /// `bind_port`: source port of the probe.
    pub bind_port: Option<u16>,
    /// `bind_if`: interface to bind the probe to (IPv6 link-local).
    pub bind_if: Option<String>,
    /// `fwmark`: SO_MARK on the probe socket.
    pub fwmark: Option<u32>,
    /// `connect_timeout` (default 5 s; MISC_CHECK uses `misc_timeout`).
    pub connect_timeout: Duration,
    /// `retry`: failed probes retried this many times before the check
    /// counts as failed (default 1; 0 for MISC_CHECK, 3 for DNS_CHECK, as
    /// keepalived's check_misc.c / check_dns.c; `nb_get_retry` is the old
    /// name).
    pub retry: u32,
    /// `delay_before_retry` (default 1 s; 3 s for HTTP_GET and SSL_GET;
    /// delay_loop for DNS_CHECK).
    pub delay_before_retry: Duration,
    /// `warmup`: a random delay up to this before the first probe, so
    /// many checks do not fire together (keepalived's default is
    /// delay_loop, and the keepalived parser sets it so; `None` here
    /// spreads first probes by a per-target offset within delay_loop).
    pub warmup: Option<Duration>,
    /// `delay_loop`: interval between probes (default 60 s).
    pub delay_loop: Duration,
    /// `alpha`: the server starts as down (and needs a success to come up)
    /// instead of up.
    pub alpha: bool,
    /// `log_all_failures`.
    pub log_all_failures: bool,
}

impl Default for Common {
    fn default() -> Self {
        Self {
            connect_ip: None,
            connect_port: None,
            bindto: None,
            bind_port: None,
            bind_if: None,
            fwmark: None,
            connect_timeout: Duration::from_secs(5),
            retry: 1,
            delay_before_retry: Duration::from_secs(1),
            warmup: None,
            delay_loop: Duration::from_secs(60),
            alpha: false,
            log_all_failures: false,
        }
    }
}

/// The probe.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CheckKind {
    /// `TCP_CHECK`: a TCP connection opens.
    Tcp,
    /// `HTTP_GET` or `SSL_GET`.
    Http(HttpCheck),
    /// `UDP_CHECK`.
    Udp(UdpCheck),
    /// `DNS_CHECK`.
    Dns(DnsCheck),
    /// `SMTP_CHECK`: the server greets with 2xx and answers HELO with 2xx.
    Smtp(SmtpCheck),
    /// `PING_CHECK`: an ICMP (or ICMPv6) echo is answered.
    Ping,
    /// `MISC_CHECK`: a program's exit status.
    Misc(MiscCheck),
}

/// `HTTP_GET` / `SSL_GET`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpCheck {
    /// SSL_GET: TLS (rustls) around the request.
    pub tls: bool,
    /// `url` blocks; every one must pass.
    pub urls: Vec<UrlCheck>,
    /// `virtualhost` of the checker, else of its real server, else of its
    /// virtual server (resolved by the parser): the Host header (a url's
    /// own wins); `None`: the address.
    pub virtualhost: Option<String>,
    /// `http_protocol`.
    pub protocol: HttpProtocol,
    /// `enable_sni` (SSL_GET): send SNI (the `sni_name`, else the virtual host).
    pub enable_sni: bool,
    /// `sni_name`.
    pub sni_name: Option<String>,
    /// `fast_recovery`: after a failure, probe again at delay_before_retry
    /// rather than delay_loop.
    pub fast_recovery: bool,
}

/// `http_protocol`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HttpProtocol {
    /// `1.0` (the default): `GET path HTTP/1.0`.
    #[default]
    Http10,
    /// `1.0C`: HTTP/1.0 with `Connection: close`.
    Http10Close,
    /// `1.1`: HTTP/1.1 with `Connection: close`.
    Http11,
}

/// One `url { }` block.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UrlCheck {
    /// `path`.
    pub path: String,
    /// `digest`: lowercase hex MD5 of the body (keepalived's genhash).
    pub digest: Option<String>,
    /// `status_code`: accepted status ranges, inclusive (default 200-299).
    pub status: Vec<(u16, u16)>,
    /// `virtualhost` of this url.
    pub virtualhost: Option<String>,
    /// `regex`: the body must match (or, with `regex_no_match`, must not).
    pub regex: Option<String>,
    /// `regex_no_match`.
    pub regex_no_match: bool,
}

impl UrlCheck {
    /// keepalived's default accepted status codes.
    pub const DEFAULT_STATUS: (u16, u16) = (200, 299);
}

/// `UDP_CHECK`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct UdpCheck {
    /// `payload` (hex in the file), sent as one datagram (empty when not
    /// given; keepalived sends random bytes then).
    pub payload: Vec<u8>,
    /// `require_reply [HEX]`: a reply must come, of a length within the
    /// bounds, and starting with these bytes when given (`Some(empty)`:
    /// any content; keepalived compares up to the shorter length). Without
    /// it, only an ICMP port unreachable fails the check.
    pub require_reply: Option<Vec<u8>>,
    /// `min_reply_length`.
    pub min_reply_length: Option<u32>,
    /// `max_reply_length`.
    pub max_reply_length: Option<u32>,
    /// Wildcards of `require_reply`: `x`/`X` nibbles in the hex string
    /// (keepalived `read_hex_str`). A set bit here is a bit of the reply
    /// that is not compared; `None` compares every bit. Same length as
    /// `require_reply`. ([`parse_hex_pattern`] gives both.)
    pub require_reply_mask: Option<Vec<u8>>,
}

/// keepalived's hex strings (`payload`, `require_reply`): hex digits, with
/// spaces or tabs between octets allowed, an octet being two digits or one
/// (before a space or the end); with `wildcards`, an `x`/`X` digit matches
/// anything and sets its nibble in the returned mask. `None` for an empty
/// or invalid string.
pub fn parse_hex_pattern(s: &str, wildcards: bool) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    fn digit(c: u8, wildcards: bool) -> Option<(u8, u8)> {
        match c {
            b'0'..=b'9' => Some((c - b'0', 0)),
            b'a'..=b'f' => Some((c - b'a' + 10, 0)),
            b'A'..=b'F' => Some((c - b'A' + 10, 0)),
            b'x' | b'X' if wildcards => Some((0, 0x0f)),
            _ => None,
        }
    }
    let b = s.as_bytes();
    let (mut data, mut mask) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b' ' || b[i] == b'\t' {
            i += 1;
            continue;
        }
        let (mut v, mut m) = digit(b[i], wildcards)?;
        i += 1;
        if i < b.len() && b[i] != b' ' && b[i] != b'\t' {
            let (v2, m2) = digit(b[i], wildcards)?;
            v = (v << 4) | v2;
            m = (m << 4) | m2;
            i += 1;
        }
        data.push(v);
        mask.push(m);
    }
    if data.is_empty() {
        return None;
    }
    let mask = mask.iter().any(|&m| m != 0).then_some(mask);
    Some((data, mask))
}

/// `DNS_CHECK`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DnsCheck {
    /// `type` (default SOA).
    pub qtype: DnsType,
    /// `name` (default ".").
    pub name: String,
}

/// DNS query types keepalived's DNS_CHECK knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DnsType {
    /// A.
    A,
    /// NS.
    Ns,
    /// CNAME.
    Cname,
    /// SOA (the default).
    #[default]
    Soa,
    /// MX.
    Mx,
    /// TXT.
    Txt,
    /// AAAA.
    Aaaa,
}

impl DnsType {
    /// The query type's number (RFC 1035, RFC 3596).
    pub fn code(self) -> u16 {
        match self {
            Self::A => 1,
            Self::Ns => 2,
            Self::Cname => 5,
            Self::Soa => 6,
            Self::Mx => 15,
            Self::Txt => 16,
            Self::Aaaa => 28,
        }
    }
}

/// `SMTP_CHECK`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SmtpCheck {
    /// `helo_name` (keepalived's default is "smtpchecker.keepalived.org",
    /// its SMTP_DEFAULT_HELO).
    pub helo_name: String,
}

/// `MISC_CHECK`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MiscCheck {
    /// `misc_path`: the command line. keepalived splits it on unquoted
    /// blanks (`'…'` keeps blanks together) and runs it without a shell;
    /// the parser keeps such quoting in this string.
    pub path: String,
    /// `misc_timeout` (default: delay_loop).
    pub timeout: Option<Duration>,
    /// `misc_dynamic`: exit 0 up, 1 down, 2..=255 up with weight (code - 2).
    pub dynamic: bool,
    /// `user` to run as (name, optional group).
    pub user: Option<(String, Option<String>)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_patterns() {
        assert_eq!(
            parse_hex_pattern("0a1B ff", false),
            Some((vec![0x0a, 0x1b, 0xff], None))
        );
        assert_eq!(
            parse_hex_pattern("1 2\t3", false),
            Some((vec![1, 2, 3], None))
        );
        assert_eq!(parse_hex_pattern("", false), None);
        assert_eq!(parse_hex_pattern("zz", false), None);
        assert_eq!(parse_hex_pattern("xx", false), None);
        assert_eq!(
            parse_hex_pattern("41x2 xX", true),
            Some((vec![0x41, 0x02, 0x00], Some(vec![0x00, 0xf0, 0xff])))
        );
    }
}
