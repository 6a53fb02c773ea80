//! PING_CHECK over an unprivileged ping socket: in a network namespace of
//! this test's own thread, with `net.ipv4.ping_group_range` (a per-namespace
//! setting) opened to every group, so the SOCK_DGRAM path is taken whatever
//! the host's setting is. Skipped, saying why, where namespaces cannot be
//! made.

use std::time::Duration;

use rvs_health::probe::{PingSocket, ping};
use rvs_health::spec::{CheckKind, CheckSpec, Common};
use rvs_health::{ProbeResult, probe};

fn in_own_netns() -> Result<(), String> {
    // SAFETY: unshare on the calling thread only; no memory is passed.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        ));
    }
    // children forked from this thread are in its namespace
    let st = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .map_err(|e| format!("ip: {e}"))?;
    if !st.success() {
        return Err(format!("ip link set lo up: {st}"));
    }
    // /proc/sys/net is the opening thread's namespace
    std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 2147483647")
        .map_err(|e| format!("ping_group_range: {e}"))?;
    Ok(())
}

#[test]
fn ping_socket_path_in_own_namespace() {
    let h = std::thread::spawn(|| -> Result<(), String> {
        in_own_netns()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let c = Common {
                connect_timeout: Duration::from_secs(1),
                ..Common::default()
            };
            let kind = ping("127.0.0.1".parse().unwrap(), &c).await;
            assert_eq!(kind, Ok(PingSocket::Dgram));
            let s = CheckSpec {
                kind: CheckKind::Ping,
                common: c.clone(),
            };
            // connect_ip picks the address; another 127.x answers too
            let mut s2 = s.clone();
            s2.common.connect_ip = Some("127.0.0.9".parse().unwrap());
            assert_eq!(
                probe("127.0.0.1:0".parse().unwrap(), &s2).await,
                ProbeResult::Up
            );
            assert_eq!(
                probe("127.0.0.1:0".parse().unwrap(), &s).await,
                ProbeResult::Up
            );
            // ICMPv6 ping sockets follow the same (IPv4-named) setting
            match ping("::1".parse().unwrap(), &c).await {
                Ok(k) => assert_eq!(k, PingSocket::Dgram),
                Err(e) => println!("::1 not pinged in the namespace: {e}"),
            }
        });
        Ok(())
    });
    match h.join().unwrap() {
        Ok(()) => {}
        Err(why) => println!("SKIPPED ping_socket_path_in_own_namespace: {why}"),
    }
}
