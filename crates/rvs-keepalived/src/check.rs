//! Checkers: `TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `UDP_CHECK`, `DNS_CHECK`,
//! `SMTP_CHECK`, `PING_CHECK`, `MISC_CHECK` to [`CheckSpec`]s.

use std::time::Duration;

use rvs_health::spec::{
    CheckKind, CheckSpec, Common, DnsCheck, DnsType, HttpCheck, HttpProtocol, MiscCheck, SmtpCheck,
    UdpCheck, UrlCheck,
};

use crate::lvs::Inherit;
use crate::value::{self, arg, parse_uint};
use crate::{Block, GlobalDefs, Sink};

/// Every checker keyword keepalived has (the last two are warned as
/// unsupported).
pub(crate) const CHECKERS: [&str; 10] = [
    "TCP_CHECK",
    "HTTP_GET",
    "SSL_GET",
    "UDP_CHECK",
    "DNS_CHECK",
    "SMTP_CHECK",
    "PING_CHECK",
    "MISC_CHECK",
    "BFD_CHECK",
    "FILE_CHECK",
];

/// keepalived's SMTP_CHECK HELO name when none is given.
pub(crate) const SMTP_DEFAULT_HELO: &str = "smtpchecker.keepalived.org";

/// Connection options of a checker, as written.
#[derive(Clone, Debug, Default)]
pub(crate) struct Conn {
    connect_ip: Option<std::net::IpAddr>,
    connect_port: Option<u16>,
    bindto: Option<std::net::IpAddr>,
    bind_port: Option<u16>,
    bind_if: Option<String>,
    fwmark: Option<u32>,
}

impl Conn {
    /// Own values, else `parent`'s (SMTP `host` blocks).
    fn over(&self, parent: &Self) -> Self {
        Self {
            connect_ip: self.connect_ip.or(parent.connect_ip),
            connect_port: self.connect_port.or(parent.connect_port),
            bindto: self.bindto.or(parent.bindto),
            bind_port: self.bind_port.or(parent.bind_port),
            bind_if: self.bind_if.clone().or_else(|| parent.bind_if.clone()),
            fwmark: self.fwmark.or(parent.fwmark),
        }
    }

    /// `true` when `c` was a connection keyword.
    fn keyword(&mut self, c: &Block, sink: &mut Sink) -> bool {
        match c.keyword.as_str() {
            "connect_ip" => {
                value::no_block(c, sink);
                value::at_most(c, 1, sink);
                if let Some(a) = value::ip(c, 0, sink) {
                    self.connect_ip = Some(a);
                }
            }
            "connect_port" => {
                if let Some(p) = value::uint(c, 1, 65535, sink) {
                    self.connect_port = u16::try_from(p).ok();
                }
            }
            "bindto" | "bind_to" => {
                value::no_block(c, sink);
                value::at_most(c, 1, sink);
                if let Some(a) = value::ip(c, 0, sink) {
                    self.bindto = Some(a);
                }
            }
            "bind_port" => {
                if let Some(p) = value::uint(c, 1, 65535, sink) {
                    self.bind_port = u16::try_from(p).ok();
                }
            }
            "bind_if" => {
                if let Some(s) = value::one(c, "interface", sink) {
                    if s.len() > 15 {
                        sink.err_at(c, format!("bind_if: interface name '{s}' is too long"));
                    } else {
                        self.bind_if = Some(s.to_string());
                    }
                }
            }
            "fwmark" => {
                if let Some(v) = value::u32_in(c, 0, u32::MAX, sink) {
                    self.fwmark = Some(v);
                }
            }
            _ => return false,
        }
        if let (Some(a), Some(b)) = (self.connect_ip, self.bindto)
            && a.is_ipv4() != b.is_ipv4()
        {
            sink.err_at(c, "connect_ip and bindto are of different address families");
        }
        true
    }
}

/// A checker as written, before inheritance.
#[derive(Clone, Debug)]
pub(crate) struct RawCheck {
    kind: CheckKind,
    conn: Conn,
    own: Inherit,
    log_all_failures: Option<bool>,
    default_retry: u32,
    /// `None`: delay_loop (DNS_CHECK).
    default_delay_before_retry: Option<Duration>,
    /// HTTP: the checker's own virtualhost (else the real/virtual server's).
    http_virtualhost: Option<String>,
}

/// Reads one checker block (SMTP_CHECK with `host` blocks gives several).
pub(crate) fn checker(b: &Block, _g: &GlobalDefs, sink: &mut Sink) -> Vec<RawCheck> {
    let k = b.keyword.as_str();
    if matches!(k, "BFD_CHECK" | "FILE_CHECK") {
        sink.warn_at(
            b,
            format!("{k}: not supported by rvs yet (checker ignored)"),
        );
        return Vec::new();
    }
    if b.children.is_none() {
        sink.err_at(b, format!("{k}: needs a '{{ }}' block"));
        return Vec::new();
    }
    value::at_most(b, 0, sink);
    let mut raw = RawCheck {
        kind: CheckKind::Tcp,
        conn: Conn::default(),
        own: Inherit::default(),
        log_all_failures: None,
        default_retry: 1,
        default_delay_before_retry: Some(Duration::from_secs(1)),
        http_virtualhost: None,
    };
    let mut hosts: Vec<(Conn, Inherit)> = Vec::new();
    let has_conn = k != "MISC_CHECK";
    let mut http = HttpCheck {
        tls: k == "SSL_GET",
        urls: Vec::new(),
        virtualhost: None,
        protocol: HttpProtocol::Http10,
        enable_sni: false,
        sni_name: None,
        fast_recovery: false,
    };
    let mut udp = UdpCheck::default();
    let mut dns = DnsCheck {
        qtype: DnsType::Soa,
        name: ".".into(),
    };
    let mut smtp = SmtpCheck {
        helo_name: SMTP_DEFAULT_HELO.into(),
    };
    let mut misc = MiscCheck {
        path: String::new(),
        timeout: None,
        dynamic: false,
        user: None,
    };
    let mut misc_path_seen = false;
    let mut dns_name_set = false;
    for c in b.children() {
        let ck = c.keyword.as_str();
        if has_conn && raw.conn.keyword(c, sink) {
            continue;
        }
        if ck == "virtualhost" && matches!(k, "HTTP_GET" | "SSL_GET") {
            raw.http_virtualhost = value::string(c, sink);
            continue;
        }
        if ck == "connect_timeout" && !has_conn {
            sink.warn_at(
                c,
                "MISC_CHECK: connect_timeout does not apply (use misc_timeout; ignored)",
            );
            continue;
        }
        if ck == "nb_get_retry" {
            sink.warn_at(c, "nb_get_retry: deprecated, use retry (applied as retry)");
        }
        if ck != "virtualhost" && raw.own.keyword(c, 0, sink) {
            continue;
        }
        if ck == "log_all_failures" {
            raw.log_all_failures = value::flag(c, sink);
            continue;
        }
        match (k, ck) {
            ("HTTP_GET" | "SSL_GET", "url") => {
                if let Some(u) = url(c, sink) {
                    http.urls.push(u);
                }
            }
            ("HTTP_GET" | "SSL_GET", "http_protocol") => {
                match value::one(c, "1.0, 1.0C or 1.1", sink) {
                    Some("1.0") => http.protocol = HttpProtocol::Http10,
                    Some("1.0C" | "1.0c") => http.protocol = HttpProtocol::Http10Close,
                    Some("1.1") => http.protocol = HttpProtocol::Http11,
                    Some(o) => {
                        sink.err_at(c, format!("http_protocol: '{o}' is not 1.0, 1.0C or 1.1"))
                    }
                    None => {}
                }
            }
            ("HTTP_GET" | "SSL_GET", "fast_recovery") => {
                if let Some(v) = value::flag(c, sink) {
                    http.fast_recovery = v;
                }
            }
            ("SSL_GET", "enable_sni") => {
                if let Some(v) = value::flag(c, sink) {
                    http.enable_sni = v;
                }
            }
            ("HTTP_GET" | "SSL_GET", "sni_name") => http.sni_name = value::string(c, sink),
            ("HTTP_GET", "enable_sni") => sink.warn_at(c, "enable_sni: only for SSL_GET (ignored)"),
            ("SSL_GET", "tls_compliant") => {
                value::flag(c, sink);
                sink.warn_at(c, "tls_compliant: not supported by rvs yet (ignored)");
            }
            ("UDP_CHECK", "payload") => {
                value::no_block(c, sink);
                match hex(&c.args, false) {
                    Ok((bytes, _)) if !bytes.is_empty() => udp.payload = bytes,
                    Ok(_) => sink.err_at(c, "payload: missing hex bytes"),
                    Err(why) => sink.err_at(c, format!("payload: {why}")),
                }
            }
            ("UDP_CHECK", "require_reply") => {
                value::no_block(c, sink);
                match hex(&c.args, true) {
                    Ok((bytes, wild)) => {
                        if wild {
                            sink.warn_at(
                                c,
                                "require_reply: X wildcard nibbles are not supported by rvs yet (a reply is required, its content is not checked)",
                            );
                            udp.require_reply = Some(Vec::new());
                        } else {
                            udp.require_reply = Some(bytes);
                        }
                    }
                    Err(why) => sink.err_at(c, format!("require_reply: {why}")),
                }
            }
            ("UDP_CHECK", "min_reply_length") => {
                udp.min_reply_length = value::u32_in(c, 0, 65535, sink)
            }
            ("UDP_CHECK", "max_reply_length") => {
                udp.max_reply_length = value::u32_in(c, 0, 65535, sink)
            }
            ("DNS_CHECK", "type") => {
                if let Some(t) = value::one(c, "query type", sink) {
                    dns.qtype = match t.to_ascii_uppercase().as_str() {
                        "A" => DnsType::A,
                        "NS" => DnsType::Ns,
                        "CNAME" => DnsType::Cname,
                        "SOA" => DnsType::Soa,
                        "MX" => DnsType::Mx,
                        "TXT" => DnsType::Txt,
                        "AAAA" => DnsType::Aaaa,
                        _ => {
                            sink.err_at(
                                c,
                                format!("type: unknown DNS query type '{t}' (A|NS|CNAME|SOA|MX|TXT|AAAA)"),
                            );
                            continue;
                        }
                    }
                }
            }
            ("DNS_CHECK", "name") => {
                if dns_name_set {
                    sink.warn_at(
                        c,
                        "name: given again, the first one is kept (as keepalived)",
                    );
                    continue;
                }
                dns_name_set = true;
                if let Some(n) = value::string(c, sink) {
                    if n.is_empty() || n.len() > 253 {
                        sink.err_at(c, "name: not a DNS name (1..=253 characters)");
                    } else {
                        dns.name = n;
                    }
                }
            }
            ("SMTP_CHECK", "helo_name") => {
                if let Some(n) = value::string(c, sink) {
                    smtp.helo_name = n;
                }
            }
            ("SMTP_CHECK", "host") => {
                if c.children.is_none() {
                    sink.err_at(c, "host: needs a '{ }' block");
                    continue;
                }
                value::at_most(c, 0, sink);
                sink.warn_at(
                    c,
                    "host: deprecated by keepalived (each host is checked as an SMTP_CHECK of its own)",
                );
                // keepalived takes the checker keywords here too; the
                // connection ones (incl. connect_timeout) are per host.
                let mut h = Conn::default();
                let mut hi = Inherit::default();
                for hc in c.children() {
                    if !h.keyword(hc, sink)
                        && (hc.keyword == "virtualhost" || !hi.keyword(hc, 0, sink))
                    {
                        sink.warn_at(
                            hc,
                            format!("host: unknown keyword '{}' (ignored)", hc.keyword),
                        );
                    }
                }
                hosts.push((h, hi));
            }
            ("MISC_CHECK", "misc_path") => {
                value::no_block(c, sink);
                if let Some(p) = arg(c, 0, "command", sink) {
                    misc_path_seen = true;
                    misc.path = join_command(&c.args);
                    if p.trim().is_empty() {
                        sink.err_at(c, "misc_path: empty command");
                    }
                }
            }
            ("MISC_CHECK", "misc_timeout") => {
                if let Some(t) = value::timer(c, Duration::from_micros(1), sink) {
                    misc.timeout = Some(t);
                }
            }
            ("MISC_CHECK", "misc_dynamic") => {
                if value::bare(c, sink) {
                    misc.dynamic = true;
                }
            }
            ("MISC_CHECK", "user") => {
                value::no_block(c, sink);
                if let Some(u) = arg(c, 0, "user name", sink) {
                    value::at_most(c, 2, sink);
                    misc.user = Some((u.to_string(), c.args.get(1).cloned()));
                }
            }
            _ => sink.warn_at(c, format!("{k}: unknown keyword '{ck}' (ignored)")),
        }
    }
    match k {
        "TCP_CHECK" => raw.kind = CheckKind::Tcp,
        "PING_CHECK" => raw.kind = CheckKind::Ping,
        "HTTP_GET" | "SSL_GET" => {
            if http.urls.is_empty() {
                sink.err_at(b, format!("{k}: needs at least one url {{ path … }} block"));
                return Vec::new();
            }
            http.virtualhost = raw.http_virtualhost.clone();
            raw.kind = CheckKind::Http(http);
            raw.default_delay_before_retry = Some(Duration::from_secs(3));
        }
        "UDP_CHECK" => {
            if let (Some(lo), Some(hi)) = (udp.min_reply_length, udp.max_reply_length)
                && lo > hi
            {
                sink.err_at(b, "UDP_CHECK: min_reply_length is above max_reply_length");
            }
            raw.kind = CheckKind::Udp(udp);
        }
        "DNS_CHECK" => {
            raw.kind = CheckKind::Dns(dns);
            raw.default_retry = 3;
            raw.default_delay_before_retry = None;
        }
        "SMTP_CHECK" => raw.kind = CheckKind::Smtp(smtp),
        "MISC_CHECK" => {
            if !misc_path_seen {
                sink.err_at(b, "MISC_CHECK: missing misc_path");
                return Vec::new();
            }
            raw.kind = CheckKind::Misc(misc);
            raw.default_retry = 0;
        }
        _ => {}
    }
    if hosts.is_empty() {
        vec![raw]
    } else {
        hosts
            .iter()
            .map(|(h, hi)| RawCheck {
                conn: h.over(&raw.conn),
                own: hi.over(&raw.own),
                ..raw.clone()
            })
            .collect()
    }
}

/// One `url { }` block.
fn url(c: &Block, sink: &mut Sink) -> Option<UrlCheck> {
    if c.children.is_none() {
        sink.err_at(c, "url: needs a '{ }' block");
        return None;
    }
    value::at_most(c, 0, sink);
    let mut u = UrlCheck {
        path: String::new(),
        digest: None,
        status: Vec::new(),
        virtualhost: None,
        regex: None,
        regex_no_match: false,
    };
    let mut has_path = false;
    for d in c.children() {
        match d.keyword.as_str() {
            "path" => {
                if let Some(p) = value::string(d, sink) {
                    if p.is_empty() || p.contains(char::is_whitespace) {
                        sink.err_at(d, "path: not a URL path");
                    } else {
                        u.path = p;
                        has_path = true;
                    }
                }
            }
            "digest" => {
                if value::repeated(d, &u.digest, sink) {
                    continue;
                }
                if let Some(s) = value::string(d, sink) {
                    if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                        u.digest = Some(s.to_ascii_lowercase());
                    } else {
                        sink.err_at(d, format!("digest: '{s}' is not an MD5 (32 hex digits)"));
                    }
                }
            }
            "status_code" => {
                value::no_block(d, sink);
                if d.args.is_empty() {
                    sink.warn_at(
                        d,
                        "status_code: no code given (ignored, as keepalived: the default 200-299 applies)",
                    );
                }
                for a in &d.args {
                    match status_range(a) {
                        Ok(r) => u.status.push(r),
                        Err(why) => sink.err_at(d, format!("status_code: {why}")),
                    }
                }
            }
            "virtualhost" => u.virtualhost = value::string(d, sink),
            "regex" => {
                if let Some(r) = value::string(d, sink) {
                    u.regex = Some(r);
                }
            }
            "regex_no_match" => {
                if value::bare(d, sink) {
                    u.regex_no_match = true;
                }
            }
            "regex_options" | "regex_stack" | "regex_min_offset" | "regex_max_offset" => sink
                .warn_at(
                    d,
                    format!("{}: not supported by rvs yet (ignored)", d.keyword),
                ),
            o => sink.warn_at(d, format!("url: unknown keyword '{o}' (ignored)")),
        }
    }
    if !has_path {
        sink.err_at(c, "url: missing path");
        return None;
    }
    if u.regex_no_match && u.regex.is_none() {
        sink.warn_at(
            c,
            "url: regex_no_match without regex (ignored, as keepalived does)",
        );
        u.regex_no_match = false;
    }
    if u.status.is_empty() {
        u.status.push(UrlCheck::DEFAULT_STATUS);
    }
    Some(u)
}

/// `200` or `200-299`.
fn status_range(a: &str) -> Result<(u16, u16), String> {
    let one = |s: &str| -> Result<u16, String> {
        // keepalived's HTTP_STATUS_CODE_MIN..=MAX.
        parse_uint(s, 100, 599)
            .map(|v| u16::try_from(v).unwrap_or(599))
            .map_err(|why| format!("HTTP status {why}"))
    };
    match a.split_once('-') {
        Some((lo, hi)) => {
            let (lo, hi) = (one(lo)?, one(hi)?);
            if lo > hi {
                return Err(format!("range {a} ends below its start"));
            }
            Ok((lo, hi))
        }
        None => one(a).map(|v| (v, v)),
    }
}

/// keepalived's free-format hex: words of hex digits, read two at a time,
/// an odd last digit a byte of its own (`Ab12f 3` = AB 12 0F 03). With
/// `wild`, `X`/`x` digits are accepted (reported by the flag, read as 0).
fn hex(words: &[String], wild: bool) -> Result<(Vec<u8>, bool), String> {
    let mut out = Vec::new();
    let mut any_wild = false;
    for w in words {
        let mut digits = Vec::with_capacity(w.len());
        for ch in w.chars() {
            match ch.to_digit(16) {
                Some(d) => digits.push(u8::try_from(d).unwrap_or(0)),
                None if wild && (ch == 'x' || ch == 'X') => {
                    any_wild = true;
                    digits.push(0);
                }
                None => return Err(format!("'{w}' is not hex")),
            }
        }
        for pair in digits.chunks(2) {
            out.push(match pair {
                [h, l] => h << 4 | l,
                [l] => *l,
                _ => 0,
            });
        }
    }
    if out.len() > 65507 {
        return Err("more than a UDP datagram".into());
    }
    Ok((out, any_wild))
}

/// The command line of `misc_path`: words rejoined, those with blanks in
/// single quotes (keepalived splits on unquoted blanks).
fn join_command(args: &[String]) -> String {
    if args.len() == 1 {
        return args[0].clone();
    }
    args.iter()
        .map(|a| {
            if a.contains(char::is_whitespace) || a.is_empty() {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A checker made complete: own values, else the real server's (which
/// already fell back to the virtual server's), else the checker type's
/// default.
pub(crate) fn resolve(raw: RawCheck, rs: &Inherit, log_all_default: bool) -> CheckSpec {
    let own = &raw.own;
    let delay_loop = own
        .delay_loop
        .or(rs.delay_loop)
        .unwrap_or(Duration::from_secs(60));
    let common = Common {
        connect_ip: raw.conn.connect_ip,
        connect_port: raw.conn.connect_port,
        bindto: raw.conn.bindto,
        bind_port: raw.conn.bind_port,
        bind_if: raw.conn.bind_if.clone(),
        fwmark: raw.conn.fwmark,
        connect_timeout: own
            .connect_timeout
            .or(rs.connect_timeout)
            .unwrap_or(Duration::from_secs(5)),
        retry: own.retry.or(rs.retry).unwrap_or(raw.default_retry),
        delay_before_retry: own
            .delay_before_retry
            .or(rs.delay_before_retry)
            .unwrap_or(raw.default_delay_before_retry.unwrap_or(delay_loop)),
        warmup: Some(own.warmup.or(rs.warmup).unwrap_or(delay_loop)),
        delay_loop,
        alpha: own.alpha.or(rs.alpha).unwrap_or(false),
        log_all_failures: raw.log_all_failures.unwrap_or(log_all_default),
    };
    let mut kind = raw.kind;
    if let CheckKind::Http(h) = &mut kind
        && h.virtualhost.is_none()
    {
        h.virtualhost = rs.virtualhost.clone();
    }
    CheckSpec { kind, common }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_free_format_as_the_man_page_says() {
        let w: Vec<String> = "Ab12f 3 456 546443123"
            .split(' ')
            .map(String::from)
            .collect();
        assert_eq!(
            hex(&w, false),
            Ok((
                vec![
                    0xAB, 0x12, 0x0F, 0x03, 0x45, 0x06, 0x54, 0x64, 0x43, 0x12, 0x03
                ],
                false
            ))
        );
        assert!(hex(&["zz".into()], false).is_err());
        assert!(hex(&["1x".into()], false).is_err());
        assert_eq!(hex(&["1x".into()], true), Ok((vec![0x10], true)));
    }

    #[test]
    fn status_ranges() {
        assert_eq!(status_range("200"), Ok((200, 200)));
        assert_eq!(status_range("200-299"), Ok((200, 299)));
        assert!(status_range("299-200").is_err());
        assert!(status_range("99").is_err());
        assert!(status_range("600").is_err());
        assert_eq!(status_range("100-599"), Ok((100, 599)));
        assert!(status_range("2x").is_err());
    }

    #[test]
    fn commands_rejoin() {
        assert_eq!(join_command(&["/bin/x a b".into()]), "/bin/x a b");
        assert_eq!(
            join_command(&["/bin/x".into(), "a b".into(), "c".into()]),
            "/bin/x 'a b' c"
        );
    }
}
