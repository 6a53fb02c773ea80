//! Loopback servers for the probe and monitor tests. Every server binds
//! 127.0.0.1 (or ::1) on an ephemeral port and ends with the test's runtime.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rvs_health::spec::{CheckKind, CheckSpec, Common, HttpCheck, HttpProtocol, UrlCheck};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Common settings for loopback tests: short timeouts.
pub fn common(timeout_ms: u64) -> Common {
    Common {
        connect_timeout: Duration::from_millis(timeout_ms),
        retry: 0,
        delay_before_retry: Duration::from_millis(50),
        delay_loop: Duration::from_millis(500),
        ..Common::default()
    }
}

pub fn url(path: &str) -> UrlCheck {
    UrlCheck {
        path: path.into(),
        digest: None,
        status: vec![],
        virtualhost: None,
        regex: None,
        regex_no_match: false,
    }
}

pub fn http(urls: Vec<UrlCheck>) -> HttpCheck {
    HttpCheck {
        tls: false,
        urls,
        virtualhost: None,
        protocol: HttpProtocol::Http10,
        enable_sni: false,
        sni_name: None,
        fast_recovery: false,
    }
}

pub fn spec(kind: CheckKind, common: Common) -> CheckSpec {
    CheckSpec { kind, common }
}

/// A loopback port nothing answers on, TCP and UDP, held for as long as the
/// guard lives so that no other test's ephemeral bind can take it: a TCP
/// socket bound without `listen` (a SYN gets a reset), and a UDP socket bound
/// and connected to port 9 (datagrams from anyone else find no socket and get
/// ICMP port unreachable).
pub struct ClosedPort {
    _tcp: socket2::Socket,
    _udp: std::net::UdpSocket,
    port: u16,
}

impl ClosedPort {
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }
}

pub fn closed_port() -> ClosedPort {
    use socket2::{Domain, Protocol, Socket, Type};
    for _ in 0..100 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        let tcp = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        let at: SocketAddr = ([127, 0, 0, 1], port).into();
        if tcp.bind(&at.into()).is_err() {
            continue;
        }
        udp.connect("127.0.0.1:9").unwrap();
        return ClosedPort {
            _tcp: tcp,
            _udp: udp,
            port,
        };
    }
    panic!("no loopback port free for both TCP and UDP in 100 tries");
}

/// How the HTTP test server answers a path.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub chunked: bool,
    /// Hold the answer this long.
    pub hold: Duration,
    /// Never answer (hold the connection open until the client goes).
    pub silent: bool,
}

impl Reply {
    pub fn ok(body: &str) -> Self {
        Self {
            status: 200,
            body: body.as_bytes().to_vec(),
            chunked: false,
            hold: Duration::ZERO,
            silent: false,
        }
    }
}

/// What the server saw.
#[derive(Default)]
pub struct Seen {
    /// Requests, raw text.
    pub requests: Mutex<Vec<String>>,
    /// (path, time) of every request.
    pub hits: Mutex<Vec<(String, Instant)>>,
    /// Connections open now / at most.
    pub open: AtomicUsize,
    pub max_open: AtomicUsize,
    /// TLS: SNI of each handshake.
    pub sni: Mutex<Vec<Option<String>>>,
}

impl Seen {
    pub fn hits_of(&self, path: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .count()
    }
}

pub type Router = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

async fn read_request<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    // bounded: at most 64 KiB of request
    while buf.len() < 65536 {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            return Some(String::from_utf8_lossy(&buf).into_owned());
        }
    }
    None
}

async fn serve_one<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    seen: &Seen,
    router: &Router,
) {
    let Some(req) = read_request(&mut s).await else {
        return;
    };
    let path = req.split_whitespace().nth(1).unwrap_or("").to_string();
    seen.requests.lock().unwrap().push(req.clone());
    seen.hits
        .lock()
        .unwrap()
        .push((path.clone(), Instant::now()));
    let r = router(&path);
    if r.silent {
        let mut sink = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read(&mut sink)).await;
        return;
    }
    if !r.hold.is_zero() {
        tokio::time::sleep(r.hold).await;
    }
    let mut out = format!("HTTP/1.0 {} X\r\nServer: test\r\n", r.status).into_bytes();
    if r.chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        for part in r.body.chunks(3) {
            out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
            out.extend_from_slice(part);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
    } else {
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&r.body);
    }
    let _ = s.write_all(&out).await;
    let _ = s.shutdown().await;
}

fn enter(seen: &Seen) {
    let now = seen.open.fetch_add(1, Ordering::SeqCst) + 1;
    seen.max_open.fetch_max(now, Ordering::SeqCst);
}

/// An HTTP/1.0 server on 127.0.0.1 answering by `router`; the connection
/// count drops before the response is closed, so it never exceeds the
/// client's own count of requests in flight.
pub async fn http_server(router: Router) -> (SocketAddr, Arc<Seen>) {
    spawn_http(router, true).await
}

/// The accept loop of both HTTP servers: each connection on a task of its
/// own, counted (`serve_counted`) or not (`serve_one`).
async fn spawn_http(router: Router, counted: bool) -> (SocketAddr, Arc<Seen>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = l.accept().await else {
                return;
            };
            let seen = s2.clone();
            let router = router.clone();
            tokio::spawn(async move {
                if counted {
                    enter(&seen);
                    serve_counted(sock, &seen, &router).await;
                } else {
                    serve_one(sock, &seen, &router).await;
                }
            });
        }
    });
    (addr, seen)
}

/// Serve one request; decrements `seen.open` exactly once, before the
/// response is written.
async fn serve_counted(mut s: TcpStream, seen: &Seen, router: &Router) {
    let Some(req) = read_request(&mut s).await else {
        seen.open.fetch_sub(1, Ordering::SeqCst);
        return;
    };
    let path = req.split_whitespace().nth(1).unwrap_or("").to_string();
    seen.requests.lock().unwrap().push(req.clone());
    seen.hits
        .lock()
        .unwrap()
        .push((path.clone(), Instant::now()));
    let r = router(&path);
    if !r.hold.is_zero() {
        tokio::time::sleep(r.hold).await;
    }
    let mut out = format!("HTTP/1.0 {} X\r\n\r\n", r.status).into_bytes();
    out.extend_from_slice(&r.body);
    // count down before the client can see the end of the response
    seen.open.fetch_sub(1, Ordering::SeqCst);
    let _ = s.write_all(&out).await;
    let _ = s.shutdown().await;
}

/// An HTTP server with the full reply options (chunked, silent), not
/// counting connections.
pub async fn http_server_full(router: Router) -> (SocketAddr, Arc<Seen>) {
    spawn_http(router, false).await
}

/// A TLS server (self-signed certificate for `rvs.test`) answering HTTP by
/// `router`, recording each handshake's SNI.
pub async fn tls_server(router: Router) -> (SocketAddr, Arc<Seen>) {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let ck = rcgen::generate_simple_self_signed(vec!["rvs.test".to_string()]).unwrap();
    let cert = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = l.accept().await else {
                return;
            };
            let seen = s2.clone();
            let router = router.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(Duration::from_secs(5), acceptor.accept(sock)).await
                else {
                    return;
                };
                let sni = tls.get_ref().1.server_name().map(str::to_string);
                seen.sni.lock().unwrap().push(sni);
                serve_one(tls, &seen, &router).await;
            });
        }
    });
    (addr, seen)
}

/// Wait until `f` holds, polling every 10 ms, at most `limit`.
pub async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}

/// Process `pid` has ended: no longer in /proc, or a zombie waiting to be
/// reaped.
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}
