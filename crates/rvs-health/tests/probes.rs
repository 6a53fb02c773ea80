//! Each probe against a real server started by the test on loopback.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rvs_health::probe::{PingSocket, body_digest, ping};
use rvs_health::spec::{
    CheckKind, DnsCheck, DnsType, HttpProtocol, MiscCheck, SmtpCheck, UdpCheck,
};
use rvs_health::{ProbeResult, probe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

fn is_down(r: &ProbeResult, needle: &str) -> bool {
    matches!(r, ProbeResult::Down(why) if why.contains(needle))
}

// ---------- TCP_CHECK ----------

#[tokio::test]
async fn tcp_up_and_refused() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let s = spec(CheckKind::Tcp, common(1000));
    assert_eq!(probe(addr, &s).await, ProbeResult::Up);
    let closed_guard = closed_port();
    let closed = closed_guard.addr();
    let r = probe(closed, &s).await;
    assert!(is_down(&r, "refused"), "{r:?}");
}

#[tokio::test]
async fn tcp_connect_port_overrides_and_source_binding() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let mut c = common(1000);
    // the real server's port is closed; connect_port points at the listener
    c.connect_port = Some(port);
    c.bindto = Some("127.0.0.2".parse().unwrap());
    let src_guard = closed_port();
    let src_port = src_guard.port();
    c.bind_port = Some(src_port);
    c.fwmark = Some(7);
    let s = spec(CheckKind::Tcp, c);
    let real_guard = closed_port();
    let real = real_guard.addr();
    let (r, acc) = tokio::join!(probe(real, &s), l.accept());
    assert_eq!(r, ProbeResult::Up);
    let peer = acc.unwrap().1;
    assert_eq!(peer, SocketAddr::from(([127, 0, 0, 2], src_port)));
    // the same source port again and again (the probe closes with a reset,
    // leaving no TIME_WAIT; on loopback the kernel's default tcp_tw_reuse
    // would allow the reuse anyway, so this shows repeated probes work,
    // not the reset)
    for _ in 0..3 {
        let (r, acc) = tokio::join!(probe(real, &s), l.accept());
        assert_eq!(r, ProbeResult::Up);
        assert_eq!(acc.unwrap().1.port(), src_port);
    }
}

#[tokio::test]
async fn tcp_connect_ip_overrides() {
    let l = TcpListener::bind("127.0.0.3:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let mut c = common(1000);
    c.connect_ip = Some("127.0.0.3".parse().unwrap());
    let s = spec(CheckKind::Tcp, c);
    // 127.0.0.1 at that port is closed: only connect_ip makes it pass
    assert_eq!(
        probe(([127, 0, 0, 1], addr.port()).into(), &s).await,
        ProbeResult::Up
    );
}

#[tokio::test]
async fn tcp_bind_if_unknown_interface_fails() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut c = common(1000);
    c.bind_if = Some("rvs-no-such0".into());
    let r = probe(l.local_addr().unwrap(), &spec(CheckKind::Tcp, c.clone())).await;
    assert!(is_down(&r, "socket"), "{r:?}");
    c.bind_if = Some("lo".into());
    let r = probe(l.local_addr().unwrap(), &spec(CheckKind::Tcp, c)).await;
    assert_eq!(r, ProbeResult::Up);
}

// ---------- HTTP_GET ----------

fn router_fixed() -> Router {
    Arc::new(|path: &str| match path {
        "/ok" => Reply::ok("hello world"),
        "/500" => Reply {
            status: 500,
            ..Reply::ok("oops")
        },
        "/redirect" => Reply {
            status: 302,
            ..Reply::ok("")
        },
        "/chunked" => Reply {
            chunked: true,
            ..Reply::ok("hello chunked world")
        },
        "/silent" => Reply {
            silent: true,
            ..Reply::ok("")
        },
        _ => Reply {
            status: 404,
            ..Reply::ok("not found")
        },
    })
}

fn http_spec(urls: Vec<rvs_health::spec::UrlCheck>) -> rvs_health::spec::CheckSpec {
    spec(CheckKind::Http(http(urls)), common(1000))
}

#[tokio::test]
async fn http_status_codes() {
    let (addr, seen) = http_server_full(router_fixed()).await;
    assert_eq!(
        probe(addr, &http_spec(vec![url("/ok")])).await,
        ProbeResult::Up
    );
    let r = probe(addr, &http_spec(vec![url("/500")])).await;
    assert!(is_down(&r, "status 500"), "{r:?}");
    let r = probe(addr, &http_spec(vec![url("/redirect")])).await;
    assert!(is_down(&r, "status 302"), "{r:?}");
    let mut u = url("/redirect");
    u.status = vec![(301, 302)];
    assert_eq!(probe(addr, &http_spec(vec![u])).await, ProbeResult::Up);
    let mut u = url("/ok");
    u.status = vec![(500, 599)];
    assert!(is_down(
        &probe(addr, &http_spec(vec![u])).await,
        "status 200"
    ));
    // the default request: HTTP/1.0, keepalived's user agent, Host = address
    let reqs = seen.requests.lock().unwrap();
    assert!(reqs[0].starts_with("GET /ok HTTP/1.0\r\n"), "{}", reqs[0]);
    assert!(reqs[0].contains("User-Agent: KeepAliveClient\r\n"));
    assert!(
        reqs[0].contains(&format!("Host: 127.0.0.1:{}\r\n", addr.port())),
        "{}",
        reqs[0]
    );
}

#[tokio::test]
async fn http_digest() {
    let (addr, _) = http_server_full(router_fixed()).await;
    let mut u = url("/ok");
    u.digest = Some(body_digest(b"hello world"));
    assert_eq!(
        u.digest.as_deref(),
        Some("5eb63bbbe01eeed093cb22bb8f5acdc3")
    );
    assert_eq!(
        probe(addr, &http_spec(vec![u.clone()])).await,
        ProbeResult::Up
    );
    u.digest = Some("00000000000000000000000000000000".into());
    let r = probe(addr, &http_spec(vec![u])).await;
    assert!(
        is_down(&r, "digest 5eb63bbbe01eeed093cb22bb8f5acdc3"),
        "{r:?}"
    );
    // chunked body: the digest is of the decoded body
    let mut u = url("/chunked");
    u.digest = Some(body_digest(b"hello chunked world"));
    assert_eq!(probe(addr, &http_spec(vec![u])).await, ProbeResult::Up);
}

#[tokio::test]
async fn http_regex() {
    let (addr, _) = http_server_full(router_fixed()).await;
    let mut u = url("/ok");
    u.regex = Some("wor.d$".into());
    assert_eq!(
        probe(addr, &http_spec(vec![u.clone()])).await,
        ProbeResult::Up
    );
    u.regex_no_match = true;
    assert!(!probe(addr, &http_spec(vec![u.clone()])).await.is_up());
    u.regex = Some("^goodbye".into());
    assert_eq!(
        probe(addr, &http_spec(vec![u.clone()])).await,
        ProbeResult::Up
    );
    u.regex_no_match = false;
    assert!(is_down(&probe(addr, &http_spec(vec![u])).await, "regex"));
}

#[tokio::test]
async fn http_every_url_must_pass() {
    let (addr, seen) = http_server_full(router_fixed()).await;
    assert_eq!(
        probe(addr, &http_spec(vec![url("/ok"), url("/chunked")])).await,
        ProbeResult::Up
    );
    let r = probe(
        addr,
        &http_spec(vec![url("/ok"), url("/missing"), url("/ok")]),
    )
    .await;
    assert!(is_down(&r, "/missing"), "{r:?}");
    assert!(is_down(&r, "status 404"), "{r:?}");
    // stopped at the first failing url
    assert_eq!(seen.hits_of("/missing"), 1);
    assert_eq!(seen.hits_of("/ok"), 2);
}

#[tokio::test]
async fn http_virtualhost_and_protocol() {
    let (addr, seen) = http_server_full(router_fixed()).await;
    let mut h = http(vec![url("/ok")]);
    h.virtualhost = Some("www.rvs.test".into());
    h.protocol = HttpProtocol::Http11;
    let mut u2 = url("/ok");
    u2.virtualhost = Some("url.rvs.test".into());
    h.urls.push(u2);
    assert_eq!(
        probe(addr, &spec(CheckKind::Http(h), common(1000))).await,
        ProbeResult::Up
    );
    let reqs = seen.requests.lock().unwrap();
    assert!(reqs[0].starts_with("GET /ok HTTP/1.1\r\n"), "{}", reqs[0]);
    assert!(reqs[0].contains("Host: www.rvs.test\r\n"));
    assert!(reqs[0].contains("Connection: close\r\n"));
    assert!(reqs[1].contains("Host: url.rvs.test\r\n"), "{}", reqs[1]);
}

#[tokio::test]
async fn http_silent_server_times_out() {
    let (addr, _) = http_server_full(router_fixed()).await;
    let s = spec(CheckKind::Http(http(vec![url("/silent")])), common(300));
    let t = Instant::now();
    let r = probe(addr, &s).await;
    assert!(is_down(&r, "no complete response within 300ms"), "{r:?}");
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    let closed_guard = closed_port();
    let closed = closed_guard.addr();
    assert!(is_down(&probe(closed, &s).await, "refused"));
}

#[tokio::test]
async fn http_not_http_fails() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await;
        let _ = s.shutdown().await;
    });
    let r = probe(addr, &http_spec(vec![url("/")])).await;
    assert!(is_down(&r, "not an HTTP response"), "{r:?}");
}

// ---------- SSL_GET ----------

fn ssl(
    urls: Vec<rvs_health::spec::UrlCheck>,
    sni: bool,
    name: Option<&str>,
) -> rvs_health::spec::CheckSpec {
    let mut h = http(urls);
    h.tls = true;
    h.enable_sni = sni;
    h.sni_name = name.map(Into::into);
    spec(CheckKind::Http(h), common(2000))
}

#[tokio::test]
async fn ssl_get_status_digest_and_sni() {
    let (addr, seen) = tls_server(router_fixed()).await;
    // self-signed certificate: not verified, as keepalived does not
    assert_eq!(
        probe(addr, &ssl(vec![url("/ok")], false, None)).await,
        ProbeResult::Up
    );
    let mut u = url("/ok");
    u.digest = Some(body_digest(b"hello world"));
    assert_eq!(
        probe(addr, &ssl(vec![u.clone()], true, Some("sni.rvs.test"))).await,
        ProbeResult::Up
    );
    u.digest = Some(body_digest(b"something else"));
    assert!(is_down(
        &probe(addr, &ssl(vec![u], false, None)).await,
        "digest"
    ));
    let r = probe(addr, &ssl(vec![url("/500")], false, None)).await;
    assert!(is_down(&r, "status 500"), "{r:?}");
    // SNI from the virtual host when enable_sni has no sni_name
    let mut s = ssl(vec![url("/ok")], true, None);
    if let CheckKind::Http(h) = &mut s.kind {
        h.virtualhost = Some("vhost.rvs.test".into());
    }
    assert_eq!(probe(addr, &s).await, ProbeResult::Up);
    let sni = seen.sni.lock().unwrap().clone();
    assert_eq!(
        sni,
        vec![
            None,
            Some("sni.rvs.test".to_string()),
            None,
            None,
            Some("vhost.rvs.test".to_string())
        ]
    );
}

#[tokio::test]
async fn ssl_get_against_a_non_tls_server_fails() {
    // a server that talks first, in clear
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let _ = s.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n").await;
        let _ = s.shutdown().await;
    });
    let r = probe(addr, &ssl(vec![url("/ok")], false, None)).await;
    assert!(is_down(&r, "TLS handshake"), "{r:?}");
    // a plain HTTP server waits for a request: the handshake times out
    let (addr, _) = http_server_full(router_fixed()).await;
    let mut s = ssl(vec![url("/ok")], false, None);
    s.common.connect_timeout = Duration::from_millis(300);
    let r = probe(addr, &s).await;
    assert!(is_down(&r, "within 300ms"), "{r:?}");
}

// ---------- UDP_CHECK ----------

/// A UDP server: replies `reply(datagram)` if Some.
async fn udp_server(reply: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + 'static) -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = s.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        loop {
            let Ok((n, from)) = s.recv_from(&mut buf).await else {
                return;
            };
            if let Some(r) = reply(&buf[..n]) {
                let _ = s.send_to(&r, from).await;
            }
        }
    });
    addr
}

fn udp(payload: &[u8], require: Option<&[u8]>) -> UdpCheck {
    UdpCheck {
        payload: payload.to_vec(),
        require_reply: require.map(<[u8]>::to_vec),
        min_reply_length: None,
        max_reply_length: None,
        require_reply_mask: None,
    }
}

#[tokio::test]
async fn udp_without_require_reply() {
    let echo = udp_server(|d| Some(d.to_vec())).await;
    let silent = udp_server(|_| None).await;
    let closed_guard = closed_port();
    let closed = closed_guard.addr();
    let s = spec(CheckKind::Udp(udp(b"ping", None)), common(300));
    assert_eq!(probe(echo, &s).await, ProbeResult::Up);
    // silence passes: only an ICMP unreachable fails
    assert_eq!(probe(silent, &s).await, ProbeResult::Up);
    let r = probe(closed, &s).await;
    assert!(is_down(&r, "port unreachable"), "{r:?}");
}

#[tokio::test]
async fn udp_with_require_reply() {
    let pong = udp_server(|d| (d == b"ping").then(|| b"pong and more".to_vec())).await;
    let silent = udp_server(|_| None).await;
    let closed_guard = closed_port();
    let closed = closed_guard.addr();
    let s = spec(CheckKind::Udp(udp(b"ping", Some(b"pong"))), common(300));
    assert_eq!(probe(pong, &s).await, ProbeResult::Up);
    let r = probe(silent, &s).await;
    assert!(is_down(&r, "no reply"), "{r:?}");
    assert!(is_down(&probe(closed, &s).await, "port unreachable"));
    let wrong = spec(CheckKind::Udp(udp(b"ping", Some(b"PONG"))), common(300));
    assert!(is_down(&probe(pong, &wrong).await, "does not match"));
    // any reply, length bounds
    let mut u = udp(b"ping", Some(b""));
    u.min_reply_length = Some(5);
    u.max_reply_length = Some(13);
    assert_eq!(
        probe(pong, &spec(CheckKind::Udp(u.clone()), common(300))).await,
        ProbeResult::Up
    );
    u.max_reply_length = Some(12);
    assert!(is_down(
        &probe(pong, &spec(CheckKind::Udp(u.clone()), common(300))).await,
        "longer"
    ));
    u.max_reply_length = None;
    u.min_reply_length = Some(14);
    assert!(is_down(
        &probe(pong, &spec(CheckKind::Udp(u), common(300))).await,
        "shorter"
    ));
}

// ---------- DNS_CHECK ----------

/// (id, qname labels joined by '.', qtype) of a query.
fn parse_query(q: &[u8]) -> Option<(u16, String, u16)> {
    let id = u16::from_be_bytes([*q.first()?, *q.get(1)?]);
    let mut i = 12;
    let mut labels = Vec::new();
    // bounded by the packet length
    while i < q.len() {
        let len = usize::from(q[i]);
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).into_owned());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    Some((id, labels.join("."), qtype))
}

fn dns_reply(q: &[u8], id: u16, rcode: u8) -> Vec<u8> {
    let mut r = q.to_vec();
    r[0..2].copy_from_slice(&id.to_be_bytes());
    r[2] |= 0x80; // QR
    r[3] = (r[3] & 0xf0) | rcode;
    r
}

#[tokio::test]
async fn dns_noerror_passes_and_query_is_right() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let addr = udp_server(move |q| {
        let parsed = parse_query(q)?;
        let id = parsed.0;
        let _ = tx.send(parsed);
        Some(dns_reply(q, id, 0))
    })
    .await;
    let d = DnsCheck {
        qtype: DnsType::Aaaa,
        name: "www.rvs.test.".into(),
    };
    assert_eq!(
        probe(addr, &spec(CheckKind::Dns(d), common(500))).await,
        ProbeResult::Up
    );
    let (_, name, qtype) = rx.recv().await.unwrap();
    assert_eq!(name, "www.rvs.test");
    assert_eq!(qtype, 28);
    // keepalived's default: SOA for "."
    let d = DnsCheck {
        qtype: DnsType::default(),
        name: ".".into(),
    };
    assert_eq!(
        probe(addr, &spec(CheckKind::Dns(d), common(500))).await,
        ProbeResult::Up
    );
    let (_, name, qtype) = rx.recv().await.unwrap();
    assert_eq!((name.as_str(), qtype), ("", 6));
}

#[tokio::test]
async fn dns_servfail_wrong_id_and_closed_fail() {
    let d = DnsCheck {
        qtype: DnsType::A,
        name: "rvs.test".into(),
    };
    let s = spec(CheckKind::Dns(d), common(300));
    let servfail = udp_server(|q| Some(dns_reply(q, parse_query(q)?.0, 2))).await;
    let r = probe(servfail, &s).await;
    assert!(is_down(&r, "RCODE 2"), "{r:?}");
    let wrong_id = udp_server(|q| Some(dns_reply(q, parse_query(q)?.0 ^ 1, 0))).await;
    let r = probe(wrong_id, &s).await;
    assert!(is_down(&r, "no DNS reply"), "{r:?}");
    let closed_guard = closed_port();
    let closed = closed_guard.addr();
    assert!(is_down(&probe(closed, &s).await, "port unreachable"));
}

// ---------- SMTP_CHECK ----------

/// An SMTP responder: `greeting`, then answers HELO with `helo_code`,
/// QUIT with 221; sends the HELO line it got.
async fn smtp_server(
    greeting: &'static str,
    helo_code: u16,
) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = s.write_all(greeting.as_bytes()).await;
                let mut buf = Vec::new();
                let mut chunk = [0u8; 512];
                // at most a few commands
                for _ in 0..4 {
                    let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk)).await
                    else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                        let line = String::from_utf8_lossy(&buf[..p]).into_owned();
                        buf.drain(..p + 2);
                        let answer = if line.starts_with("HELO") {
                            let _ = tx.send(line);
                            format!("{helo_code} hello\r\n")
                        } else if line == "QUIT" {
                            "221 bye\r\n".to_string()
                        } else {
                            "500 what\r\n".to_string()
                        };
                        let _ = s.write_all(answer.as_bytes()).await;
                    }
                }
            });
        }
    });
    (addr, rx)
}

fn smtp(helo: &str) -> rvs_health::spec::CheckSpec {
    spec(
        CheckKind::Smtp(SmtpCheck {
            helo_name: helo.into(),
        }),
        common(1000),
    )
}

#[tokio::test]
async fn smtp_dialogue() {
    let (addr, mut helos) = smtp_server("220 mail.rvs.test ESMTP\r\n", 250).await;
    assert_eq!(
        probe(addr, &smtp("director.rvs.test")).await,
        ProbeResult::Up
    );
    assert_eq!(helos.recv().await.unwrap(), "HELO director.rvs.test");
    let (addr, _) = smtp_server("220-mail.rvs.test first\r\n220-second\r\n220 last\r\n", 250).await;
    assert_eq!(probe(addr, &smtp("x")).await, ProbeResult::Up);
    let (addr, _) = smtp_server("554 go away\r\n", 250).await;
    let r = probe(addr, &smtp("x")).await;
    assert!(is_down(&r, "greeting 554"), "{r:?}");
    let (addr, _) = smtp_server("220 ok\r\n", 501).await;
    let r = probe(addr, &smtp("x")).await;
    assert!(is_down(&r, "HELO answered 501"), "{r:?}");
    let (addr, _) = smtp_server("", 250).await;
    let r = probe(addr, &spec(smtp("x").kind, common(300))).await;
    assert!(is_down(&r, "within 300ms"), "{r:?}");
}

// ---------- PING_CHECK ----------

#[tokio::test]
async fn ping_loopback() {
    let c = common(1000);
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap_or_default();
    match ping("127.0.0.1".parse().unwrap(), &c).await {
        Ok(kind) => {
            println!(
                "ping 127.0.0.1 answered over a {kind:?} socket (ping_group_range {})",
                range.trim()
            );
            assert_eq!(
                probe(
                    ([127, 0, 0, 1], 0).into(),
                    &spec(CheckKind::Ping, c.clone())
                )
                .await,
                ProbeResult::Up
            );
        }
        Err(e) if e.contains("ICMP socket") => {
            println!(
                "SKIPPED ping_loopback: neither a ping socket (ping_group_range {}) nor a raw socket is allowed here: {e}",
                range.trim()
            );
            return;
        }
        Err(e) => panic!("ping 127.0.0.1: {e}"),
    }
    match ping("::1".parse().unwrap(), &c).await {
        Ok(kind) => println!("ping ::1 answered over a {kind:?} socket"),
        Err(e) if std::net::UdpSocket::bind("[::1]:0").is_err() => {
            println!("SKIPPED ::1: no IPv6 loopback ({e})")
        }
        Err(e) => panic!("ping ::1: {e}"),
    }
    let _ = PingSocket::Raw;
}

// ---------- MISC_CHECK ----------

fn misc(path: &str, timeout_ms: u64, dynamic: bool) -> rvs_health::spec::CheckSpec {
    spec(
        CheckKind::Misc(MiscCheck {
            path: path.into(),
            timeout: Some(Duration::from_millis(timeout_ms)),
            dynamic,
            user: None,
        }),
        common(1000),
    )
}

const NOWHERE: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)),
    9,
);

#[tokio::test]
async fn misc_exit_codes() {
    assert_eq!(
        probe(NOWHERE, &misc("exit 0", 5000, false)).await,
        ProbeResult::Up
    );
    let r = probe(NOWHERE, &misc("exit 1", 5000, false)).await;
    assert!(is_down(&r, "exit status 1"), "{r:?}");
    assert!(!probe(NOWHERE, &misc("exit 5", 5000, false)).await.is_up());
    assert_eq!(
        probe(NOWHERE, &misc("exit 5", 5000, true)).await,
        ProbeResult::UpWeight(3)
    );
    assert_eq!(
        probe(NOWHERE, &misc("exit 0", 5000, true)).await,
        ProbeResult::Up
    );
    assert!(!probe(NOWHERE, &misc("exit 1", 5000, true)).await.is_up());
    // a command line with arguments, through /bin/sh -c
    assert_eq!(
        probe(NOWHERE, &misc("test 3 -gt 2 && true", 5000, false)).await,
        ProbeResult::Up
    );
    let r = probe(NOWHERE, &misc("kill -9 $$", 5000, false)).await;
    assert!(is_down(&r, "signal"), "{r:?}");
}

/// Run `script` (which writes a grandchild's pid to the file named by
/// `$1`-like `{pidfile}`) past its timeout; the grandchild must be gone.
async fn misc_past_timeout(tag: &str, script: &str) -> Duration {
    let dir = std::env::temp_dir().join(format!("rvs-health-misc-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pidfile = dir.join("pid");
    let cmd = script.replace("{pidfile}", &pidfile.display().to_string());
    let t = Instant::now();
    let r = probe(NOWHERE, &misc(&cmd, 300, false)).await;
    let took = t.elapsed();
    assert!(is_down(&r, "timed out after 300ms"), "{r:?}");
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // the grandchild got the signal with its group; wait for it to be reaped
    let gone = eventually(Duration::from_secs(3), || process_gone(pid)).await;
    assert!(gone, "{tag}: process {pid} still running after the timeout");
    let _ = std::fs::remove_dir_all(&dir);
    took
}

#[tokio::test]
async fn misc_timeout_terminates_the_group() {
    let took = misc_past_timeout("term", "sleep 30 & echo $! > {pidfile}; wait").await;
    // SIGTERM was enough: no grace period spent
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

#[tokio::test]
async fn misc_timeout_kills_a_group_ignoring_sigterm() {
    // an ignored signal stays ignored in the children
    let took =
        misc_past_timeout("kill", "trap '' TERM; sleep 30 & echo $! > {pidfile}; wait").await;
    // SIGKILL came after the grace period
    assert!(
        took >= Duration::from_millis(300) + rvs_health::probe::MISC_KILL_GRACE,
        "{took:?}"
    );
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[tokio::test]
async fn misc_user() {
    let mut s = misc(
        "test \"$(id -u)\" = \"$(id -u nobody)\" && test \"$(id -u)\" != 0",
        5000,
        false,
    );
    if let CheckKind::Misc(m) = &mut s.kind {
        m.user = Some(("nobody".into(), None));
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let r = probe(NOWHERE, &s).await;
    if root {
        assert_eq!(r, ProbeResult::Up);
    } else {
        assert!(is_down(&r, "unsupported"), "{r:?}");
    }
    if let CheckKind::Misc(m) = &mut s.kind {
        m.user = Some(("rvs-no-such-user".into(), None));
    }
    if root {
        assert!(is_down(&probe(NOWHERE, &s).await, "no user"));
    }
}

// ---------- IPv6 loopback ----------

#[tokio::test]
async fn ipv6_loopback_tcp_http_udp() {
    let Ok(l) = TcpListener::bind("[::1]:0").await else {
        println!("SKIPPED ipv6_loopback_tcp_http_udp: no ::1 here");
        return;
    };
    // the TCP check's connection waits in this listener's queue, unserved
    let tcp_only = l.local_addr().unwrap();
    assert_eq!(
        probe(tcp_only, &spec(CheckKind::Tcp, common(1000))).await,
        ProbeResult::Up
    );
    let l = TcpListener::bind("[::1]:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let srv = tokio::spawn(async move {
        let (mut s, peer) = l.accept().await.unwrap();
        let mut buf = vec![0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\nv6").await;
        let _ = s.shutdown().await;
        (peer, String::from_utf8_lossy(&buf[..n]).into_owned())
    });
    let mut u = url("/");
    u.digest = Some(body_digest(b"v6"));
    assert_eq!(probe(addr, &http_spec(vec![u])).await, ProbeResult::Up);
    let (peer, req) = srv.await.unwrap();
    assert!(peer.is_ipv6());
    assert!(
        req.contains(&format!("Host: [::1]:{}\r\n", addr.port())),
        "{req}"
    );
    let s = UdpSocket::bind("[::1]:0").await.unwrap();
    let uaddr = s.local_addr().unwrap();
    drop(s);
    let r = probe(uaddr, &spec(CheckKind::Udp(udp(b"x", None)), common(300))).await;
    assert!(is_down(&r, "port unreachable"), "{r:?}");
}
