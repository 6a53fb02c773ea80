//! rvsd's command line (the `rvsd` binary is a thin wrapper around [`main`]).

use crate::config;
use crate::control::Control;
use crate::worker::Worker;
use anyhow::Context;
use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The rvs director daemon.
#[derive(Debug, Parser)]
#[command(
    name = "rvsd",
    version,
    about = "rvs: a Layer-4 load balancer (IPVS rebuilt)"
)]
pub struct Args {
    /// Configuration file (native TOML, see docs/CONFIG.md). Without one,
    /// rvsd starts with an empty table.
    #[arg(long)]
    config: Option<PathBuf>,
    /// An interface to serve (repeatable; adds to the configuration's).
    #[arg(long = "interface")]
    interfaces: Vec<String>,
    /// Control socket (default: the configuration's, RVS_SOCKET, or /run/rvs/rvsd.sock).
    #[arg(long)]
    socket: Option<String>,
    /// Serve Prometheus metrics on this address (opt-in), e.g. 127.0.0.1:9469.
    #[arg(long)]
    metrics: Option<String>,
    /// Check the configuration and exit: 0 when it would run, 1 with the errors otherwise.
    #[arg(long)]
    check: bool,
    /// Log format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

/// Runs rvsd with these command-line arguments (`argv[0]` first) and
/// returns its exit status.
pub fn main<I: IntoIterator<Item = String>>(argv: I) -> i32 {
    let args = match Args::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("RVS_LOG").unwrap_or_else(|_| "info".into());
    let sub = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_format == "json" {
        let _ = sub.json().try_init();
    } else {
        let _ = sub.try_init();
    }
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rvsd: {e:#}");
            1
        }
    }
}

fn run(args: Args) -> anyhow::Result<i32> {
    let cfg = match &args.config {
        Some(p) => match config::load(p) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("{e}");
                return Ok(1);
            }
        },
        None => None,
    };
    if args.check {
        if let Some(c) = &cfg {
            println!("configuration OK: {} operations", c.ops.len());
        }
        return Ok(0);
    }
    let start = std::time::Instant::now();
    let director = cfg.as_ref().map(|c| c.director.clone()).unwrap_or_default();
    let mut interfaces = cfg
        .as_ref()
        .map(|c| c.daemon.interfaces.clone())
        .unwrap_or_default();
    for i in &args.interfaces {
        if !interfaces.contains(i) {
            interfaces.push(i.clone());
        }
    }
    let make_port: crate::worker::MakePort = if interfaces.is_empty() {
        tracing::info!("no interfaces: control plane only");
        crate::worker::no_port()
    } else {
        let ifs = interfaces.clone();
        Box::new(move || {
            crate::dataplane::XdpPort::open(&ifs)
                .map(|p| Box::new(p) as Box<dyn crate::worker::Port>)
        })
    };
    let worker =
        Worker::spawn(director.clone(), make_port, start).context("starting the worker")?;
    if !interfaces.is_empty() {
        tracing::info!(?interfaces, "serving (XDP steering + AF_XDP)");
    }
    let mut control = Control::new(director, vec![worker]);
    if let Some(c) = &cfg {
        control
            .apply(c.ops.clone())
            .map_err(|e| anyhow::anyhow!(e.message))?;
    }
    let control = Arc::new(Mutex::new(control));
    let socket = crate::server::socket_path(
        args.socket
            .as_deref()
            .or(cfg.as_ref().and_then(|c| c.daemon.socket.as_deref())),
    );
    let listener =
        crate::server::bind(&socket).with_context(|| format!("binding {}", socket.display()))?;
    tracing::info!(socket = %socket.display(), "control socket ready");
    let stop = Arc::new(AtomicBool::new(false));
    let config_path = args.config.clone();
    let running = cfg
        .as_ref()
        .map(|c| (format!("{:?}", c.director), format!("{:?}", c.daemon)));
    let reload: crate::server::Reload = Arc::new(move |c: &mut Control| {
        let Some(p) = &config_path else {
            return Err("rvsd runs without a configuration file".into());
        };
        let cfg = config::load(p).map_err(|e| e.to_string())?;
        if let Some((director, daemon)) = &running
            && (*director != format!("{:?}", cfg.director)
                || *daemon != format!("{:?}", cfg.daemon))
        {
            tracing::warn!(
                "[director] and [daemon] settings take effect at restart only; the table is reloaded"
            );
        }
        c.reload(&cfg.ops).map_err(|e| e.message)
    });
    let mut threads = Vec::new();
    {
        let (c, r, s) = (control.clone(), reload.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            crate::server::serve(listener, c, r, s)
        }));
    }
    if let Some(addr) = args
        .metrics
        .as_deref()
        .or(cfg.as_ref().and_then(|c| c.daemon.metrics.as_deref()))
    {
        let l = std::net::TcpListener::bind(addr)
            .with_context(|| format!("binding metrics on {addr}"))?;
        tracing::info!(%addr, "metrics ready");
        let (c, s) = (control.clone(), stop.clone());
        threads.push(std::thread::spawn(move || crate::metrics::serve(l, c, s)));
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    for sig in signals.forever() {
        if sig == SIGHUP {
            let r = control.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            let mut r = r;
            match reload(&mut r) {
                Ok(n) => tracing::info!(changes = n, "configuration reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "reload refused; the running configuration is unchanged")
                }
            }
            continue;
        }
        tracing::info!(signal = sig, "shutting down");
        break;
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let _ = std::fs::remove_file(&socket);
    if let Ok(m) = Arc::try_unwrap(control)
        && let Ok(c) = m.into_inner()
    {
        c.stop();
    }
    Ok(0)
}
