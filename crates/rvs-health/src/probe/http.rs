//! HTTP_GET and SSL_GET: one request per url, written by hand over TCP or
//! TLS (rustls; the certificate is not verified, as keepalived does not).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use md5::{Digest, Md5};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use super::{MAX_HTTP_RESPONSE, ProbeResult, tcp_connect};
use crate::spec::{Common, HttpCheck, HttpProtocol, UrlCheck};

/// Lowercase hex MD5 of `body`: what keepalived's `digest` (and genhash)
/// holds.
pub fn body_digest(body: &[u8]) -> String {
    let d = Md5::digest(body);
    let mut s = String::with_capacity(32);
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// HTTP_GET / SSL_GET: every url must pass.
pub async fn http_check(to: SocketAddr, c: &Common, h: &HttpCheck) -> ProbeResult {
    if h.urls.is_empty() {
        return ProbeResult::down("no url to check");
    }
    for url in &h.urls {
        let r = timeout(c.connect_timeout, one_url(to, c, h, url)).await;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return ProbeResult::Down(format!("{} {to}{}: {e}", scheme(h), url.path)),
            Err(_) => {
                return ProbeResult::Down(format!(
                    "{} {to}{}: no complete response within {:?}",
                    scheme(h),
                    url.path,
                    c.connect_timeout
                ));
            }
        }
    }
    ProbeResult::Up
}

fn scheme(h: &HttpCheck) -> &'static str {
    if h.tls { "SSL_GET" } else { "HTTP_GET" }
}

/// The request keepalived's checker sends for `url`.
pub(crate) fn request(to: SocketAddr, h: &HttpCheck, url: &UrlCheck) -> String {
    let default_port = if h.tls { 443 } else { 80 };
    let host = match url.virtualhost.as_ref().or(h.virtualhost.as_ref()) {
        Some(v) => v.clone(),
        None => {
            let ip = match to {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            };
            if to.port() == default_port {
                ip
            } else {
                format!("{ip}:{}", to.port())
            }
        }
    };
    let (version, close) = match h.protocol {
        HttpProtocol::Http10 => ("1.0", false),
        HttpProtocol::Http10Close => ("1.0", true),
        HttpProtocol::Http11 => ("1.1", true),
    };
    let mut r = format!(
        "GET {} HTTP/{version}\r\nUser-Agent: KeepAliveClient\r\nHost: {host}\r\n",
        url.path
    );
    if close {
        r.push_str("Connection: close\r\n");
    }
    r.push_str("\r\n");
    r
}

async fn one_url(to: SocketAddr, c: &Common, h: &HttpCheck, url: &UrlCheck) -> Result<(), String> {
    let stream = tcp_connect(to, c).await?;
    let req = request(to, h, url);
    let raw = if h.tls {
        let name = server_name(to, h, url);
        let conn = connector(h.enable_sni);
        let tls = conn
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        exchange(tls, req.as_bytes()).await?
    } else {
        exchange(stream, req.as_bytes()).await?
    };
    let resp = parse_response(&raw)?;
    judge(&resp, url)
}

/// The TLS server name: with SNI, `sni_name`, else the virtual host; the
/// address otherwise (rustls sends no SNI for an address).
fn server_name(to: SocketAddr, h: &HttpCheck, url: &UrlCheck) -> ServerName<'static> {
    if h.enable_sni {
        let name = h
            .sni_name
            .as_ref()
            .or(url.virtualhost.as_ref())
            .or(h.virtualhost.as_ref());
        if let Some(n) = name
            && let Ok(sn) = ServerName::try_from(n.clone())
        {
            return sn;
        }
    }
    ServerName::IpAddress(to.ip().into())
}

fn connector(sni: bool) -> TlsConnector {
    static WITH: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    static WITHOUT: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    let cell = if sni { &WITH } else { &WITHOUT };
    TlsConnector::from(cell.get_or_init(|| Arc::new(client_config(sni))).clone())
}

fn client_config(sni: bool) -> ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
        .with_no_client_auth();
    cfg.enable_sni = sni;
    cfg
}

/// SSL_GET does not verify the server's certificate (keepalived does
/// not); the handshake signatures are still checked.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Write the request, read the response to its end (EOF, or the
/// Content-Length once the headers are in).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    req: &[u8],
) -> Result<Vec<u8>, String> {
    s.write_all(req).await.map_err(|e| format!("write: {e}"))?;
    s.flush().await.map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16384];
    loop {
        let n = match s.read(&mut chunk).await {
            Ok(n) => n,
            // a TLS peer that closes without close_notify: the data read counts
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => 0,
            Err(e) => return Err(format!("read: {e}")),
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_HTTP_RESPONSE {
            return Err(format!("response longer than {MAX_HTTP_RESPONSE} bytes"));
        }
        if complete_by_length(&buf) {
            break;
        }
    }
    if buf.is_empty() {
        return Err("connection closed with no response".into());
    }
    Ok(buf)
}

/// Headers in and a Content-Length body fully read.
fn complete_by_length(buf: &[u8]) -> bool {
    let Some(end) = header_end(buf) else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end.0]);
    let mut len = None;
    for line in head.lines().skip(1) {
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim();
            if k.eq_ignore_ascii_case("transfer-encoding") {
                return false;
            }
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse::<usize>().ok();
            }
        }
    }
    len.is_some_and(|l| buf.len() - end.1 >= l)
}

/// (end of the header text, start of the body).
fn header_end(buf: &[u8]) -> Option<(usize, usize)> {
    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
        return Some((p, p + 4));
    }
    buf.windows(2)
        .position(|w| w == b"\n\n")
        .map(|p| (p, p + 2))
}

/// A parsed response.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

pub(crate) fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let (head_end, body_start) = header_end(raw).unwrap_or((raw.len(), raw.len()));
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/") {
        return Err(format!("not an HTTP response: {:?}", truncate(status_line)));
    }
    let status = parts
        .next()
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {:?}", truncate(status_line)))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim();
            if k.eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
            {
                chunked = true;
            }
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            }
        }
    }
    let mut body = raw[body_start..].to_vec();
    if chunked {
        body = dechunk(&body)?;
    } else if let Some(l) = length {
        body.truncate(l);
    }
    Ok(Response { status, body })
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Decode a chunked body (RFC 9112 7.1); trailers are dropped.
fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(b.len());
    // each round consumes at least one line; bounded by the input length
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return Err("truncated chunked body".into());
        };
        let line = std::str::from_utf8(&b[..eol]).map_err(|_| "bad chunk size")?;
        let size_txt = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_txt, 16)
            .map_err(|_| format!("bad chunk size {size_txt:?}"))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size..];
        if b.starts_with(b"\r\n") {
            b = &b[2..];
        }
    }
}

/// Status within the ranges, digest, regex.
pub(crate) fn judge(resp: &Response, url: &UrlCheck) -> Result<(), String> {
    let default = [UrlCheck::DEFAULT_STATUS];
    let ranges: &[(u16, u16)] = if url.status.is_empty() {
        &default
    } else {
        &url.status
    };
    if !ranges
        .iter()
        .any(|&(lo, hi)| (lo..=hi).contains(&resp.status))
    {
        return Err(format!("status {} not accepted", resp.status));
    }
    if let Some(want) = &url.digest {
        let got = body_digest(&resp.body);
        if !got.eq_ignore_ascii_case(want.trim()) {
            return Err(format!("digest {got}, expected {want}"));
        }
    }
    if let Some(re) = &url.regex {
        let re = regex::bytes::Regex::new(re).map_err(|e| format!("bad regex: {e}"))?;
        let matched = re.is_match(&resp.body);
        if matched && url.regex_no_match {
            return Err("body matches regex (regex_no_match)".into());
        }
        if !matched && !url.regex_no_match {
            return Err("body does not match regex".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(path: &str) -> UrlCheck {
        UrlCheck {
            path: path.into(),
            digest: None,
            status: vec![],
            virtualhost: None,
            regex: None,
            regex_no_match: false,
        }
    }

    fn check(protocol: HttpProtocol, vhost: Option<&str>) -> HttpCheck {
        HttpCheck {
            tls: false,
            urls: vec![url("/")],
            virtualhost: vhost.map(Into::into),
            protocol,
            enable_sni: false,
            sni_name: None,
            fast_recovery: false,
        }
    }

    #[test]
    fn md5_of_known_text() {
        assert_eq!(body_digest(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(body_digest(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn requests_per_protocol() {
        let to: SocketAddr = "10.0.0.1:8080".parse().unwrap();
        assert_eq!(
            request(to, &check(HttpProtocol::Http10, None), &url("/x")),
            "GET /x HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 10.0.0.1:8080\r\n\r\n"
        );
        assert_eq!(
            request(
                to,
                &check(HttpProtocol::Http11, Some("www.example.com")),
                &url("/")
            ),
            "GET / HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nHost: www.example.com\r\nConnection: close\r\n\r\n"
        );
        let mut u = url("/");
        u.virtualhost = Some("url.example".into());
        let r = request(
            "[::1]:80".parse().unwrap(),
            &check(HttpProtocol::Http10Close, Some("chk")),
            &u,
        );
        assert!(
            r.contains("Host: url.example\r\nConnection: close\r\n"),
            "{r}"
        );
        let r = request(
            "[::1]:80".parse().unwrap(),
            &check(HttpProtocol::Http10, None),
            &url("/"),
        );
        assert!(r.contains("Host: [::1]\r\n"), "{r}");
    }

    #[test]
    fn parse_and_judge() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcEXTRA";
        let r = parse_response(raw).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"abc");
        let mut u = url("/");
        u.digest = Some("900150983CD24FB0D6963F7D28E17F72".into());
        assert!(judge(&r, &u).is_ok());
        u.digest = Some("00".into());
        assert!(judge(&r, &u).is_err());
        u.digest = None;
        u.status = vec![(301, 302)];
        assert!(judge(&r, &u).unwrap_err().contains("status 200"));
        u.status = vec![(301, 302), (200, 200)];
        assert!(judge(&r, &u).is_ok());
        u.regex = Some("b.".into());
        assert!(judge(&r, &u).is_ok());
        u.regex_no_match = true;
        assert!(judge(&r, &u).is_err());
        u.regex = Some("zz".into());
        assert!(judge(&r, &u).is_ok());
        u.regex_no_match = false;
        assert!(judge(&r, &u).is_err());
    }

    #[test]
    fn chunked_body_is_decoded() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let r = parse_response(raw).unwrap();
        assert_eq!(r.body, b"abcde");
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
                .is_err()
        );
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.0 abc\r\n\r\n").is_err());
    }

    #[test]
    fn length_completes_response() {
        assert!(!complete_by_length(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab"
        ));
        assert!(complete_by_length(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
        ));
        assert!(!complete_by_length(b"HTTP/1.1 200 OK\r\n\r\nabc"));
    }
}
