//! Prometheus metrics: per service and real server figures, drops by
//! reason, served over HTTP on an opt-in address (loopback here).

use rvs_engine::DirectorConfig;
use rvsd::control::Control;
use rvsd::worker::{Worker, no_port};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

fn control() -> Arc<Mutex<Control>> {
    let w = Worker::spawn(
        DirectorConfig::default(),
        no_port(),
        std::time::Instant::now(),
    )
    .unwrap();
    let mut c = Control::new(DirectorConfig::default(), vec![w]);
    let cmds: Vec<rvs_ipvsadm::Command> = [
        "-A -t 192.0.2.10:80 -s rr",
        "-a -t 192.0.2.10:80 -r 10.0.0.2:8080 -m -w 3",
        "-A -f 7 -6 -s lc",
    ]
    .iter()
    .map(|l| {
        let argv: Vec<String> = std::iter::once("ipvsadm")
            .chain(l.split_whitespace())
            .map(str::to_string)
            .collect();
        match rvs_ipvsadm::parse(&argv, &rvs_ipvsadm::NoResolve).unwrap() {
            rvs_ipvsadm::Parsed::Run(i) => i.command,
            _ => unreachable!(),
        }
    })
    .collect();
    c.apply_commands(&cmds).unwrap();
    Arc::new(Mutex::new(c))
}

#[test]
fn text_has_services_servers_and_drops() {
    let c = control();
    let text = rvsd::metrics::render(&c);
    assert!(
        text.contains(
            "rvs_server_weight{protocol=\"tcp\",vip=\"192.0.2.10\",port=\"80\",fwmark=\"\",family=\"ipv4\",server=\"10.0.0.2:8080\"} 3"
        ),
        "{text}"
    );
    assert!(
        text.contains("rvs_service_connections_total{protocol=\"tcp\",vip=\"192.0.2.10\",port=\"80\",fwmark=\"\",family=\"ipv4\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("rvs_drops_total{reason=\"bad_checksum\"} 0"),
        "{text}"
    );
    assert!(text.contains("rvs_connection_table_entries 0"), "{text}");
    assert!(
        text.contains(
            "rvs_service_in_byte_rate{protocol=\"fwm\",vip=\"\",port=\"\",fwmark=\"7\",family=\"ipv6\"} 0"
        ),
        "{text}"
    );
    assert!(
        text.contains("rvs_server_out_packet_rate{protocol=\"tcp\",vip=\"192.0.2.10\",port=\"80\",fwmark=\"\",family=\"ipv4\",server=\"10.0.0.2:8080\"} 0"),
        "{text}"
    );
    // No interfaces, no queue figures.
    assert!(!text.contains("rvs_queue_rx_frames_total{"), "{text}");
    assert!(text.trim_end().ends_with("# EOF"));
}

#[test]
fn served_over_http_on_loopback() {
    let c = control();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let t = std::thread::spawn(move || rvsd::metrics::serve(l, c, s));
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    let _ = conn.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
    assert!(resp.contains("rvs_server_weight"));
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
}

#[test]
fn a_silent_client_does_not_block_others_and_other_paths_are_404() {
    let c = control();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let t = std::thread::spawn(move || rvsd::metrics::serve(l, c, s));
    let get = |path: &str| {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(3)))
            .unwrap();
        conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let mut resp = String::new();
        let _ = conn.read_to_string(&mut resp);
        resp
    };
    let _silent = std::net::TcpStream::connect(addr).unwrap();
    let t0 = std::time::Instant::now();
    assert!(get("/metrics").starts_with("HTTP/1.1 200 OK"));
    assert!(t0.elapsed() < std::time::Duration::from_secs(2));
    assert!(get("/").starts_with("HTTP/1.1 404 Not Found"));
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
}

/// A port with hand-off figures, as a multi-queue worker reports them.
struct HandoffPort(u32);

impl rvsd::worker::Port for HandoffPort {
    fn poll(
        &mut self,
        _: &mut rvs_engine::Director,
        _: rvs_types::Instant,
        budget: std::time::Duration,
    ) -> usize {
        std::thread::sleep(budget.min(std::time::Duration::from_millis(1)));
        0
    }

    fn worker_stats(&self) -> Option<rvsd::worker::WorkerStats> {
        Some(rvsd::worker::WorkerStats {
            worker: self.0,
            handed_off: 10 + u64::from(self.0),
            taken_over: 20 + u64::from(self.0),
            ring_full: 3,
            no_next_hop: 1,
        })
    }
}

#[test]
fn per_worker_hand_off_figures() {
    let workers = (0..2u32)
        .map(|w| {
            let make: rvsd::worker::MakePort =
                Box::new(move || Ok(Box::new(HandoffPort(w)) as Box<dyn rvsd::worker::Port>));
            Worker::spawn_nth(
                w as usize,
                DirectorConfig::default(),
                make,
                std::time::Instant::now(),
            )
            .unwrap()
        })
        .collect();
    let c = Mutex::new(Control::new(DirectorConfig::default(), workers));
    let text = rvsd::metrics::render(&c);
    for (w, off, over) in [(0, 10, 20), (1, 11, 21)] {
        for line in [
            format!("rvs_worker_handed_off_frames_total{{worker=\"{w}\"}} {off}"),
            format!("rvs_worker_taken_over_frames_total{{worker=\"{w}\"}} {over}"),
            format!("rvs_worker_ring_full_total{{worker=\"{w}\"}} 3"),
            format!("rvs_worker_no_next_hop_total{{worker=\"{w}\"}} 1"),
        ] {
            assert!(text.contains(&line), "{line} in\n{text}");
        }
    }
}
