//! `rvs-decap --interface IF [--gue-port PORT]...`: attaches the TUN
//! decapsulation helper to an interface of this network namespace (for real
//! servers without the ipip/fou/gre kernel modules) and keeps it attached
//! until the process ends (SIGTERM/SIGINT); the kernel detaches it then.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut iface = None;
    let mut ports = Vec::new();
    let mut i = 1;
    while i < args.len() {
        match (args[i].as_str(), args.get(i + 1)) {
            ("--interface", Some(v)) => iface = Some(v.clone()),
            ("--gue-port", Some(v)) => match v.parse::<u16>() {
                Ok(p) => ports.push(p),
                Err(_) => fail(&format!("bad --gue-port {v}")),
            },
            _ => fail("usage: rvs-decap --interface IF [--gue-port PORT]..."),
        }
        i += 2;
    }
    let Some(iface) = iface else {
        fail("usage: rvs-decap --interface IF [--gue-port PORT]...")
    };
    let mut d = match rvs_bpf::Decap::load() {
        Ok(d) => d,
        Err(e) => fail(&format!("loading: {e}")),
    };
    for p in ports {
        if let Err(e) = d.add_gue_port(p) {
            fail(&format!("GUE port {p}: {e}"));
        }
    }
    if let Err(e) = d.attach(&iface, true) {
        fail(&format!("attaching to {iface}: {e}"));
    }
    println!("rvs-decap: attached to {iface}");
    loop {
        std::thread::park();
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("rvs-decap: {msg}");
    std::process::exit(2);
}
