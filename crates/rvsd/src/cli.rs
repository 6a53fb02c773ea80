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
    /// Configuration file: native TOML (docs/CONFIG.md) or a keepalived.conf
    /// (docs/KEEPALIVED.md). Without one, rvsd starts with an empty table.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The configuration's format: `auto` reads a file named *.toml as
    /// rvsd's own and any other as keepalived.conf.
    #[arg(long, default_value = "auto", value_parser = ["auto", "toml", "keepalived"])]
    config_format: String,
    /// keepalived's config id (`keepalived -i`): `@ID` lines of a
    /// keepalived.conf apply, other `@name` lines are skipped. Default: the
    /// short host name, as keepalived.
    #[arg(long)]
    config_id: Option<String>,
    /// Health checks in flight at most at once (keepalived configurations).
    #[arg(long, default_value_t = 256)]
    max_checks: usize,
    /// An interface to serve (repeatable; adds to the configuration's).
    #[arg(long = "interface")]
    interfaces: Vec<String>,
    /// Control socket (default: the configuration's, RVS_SOCKET, or /run/rvs/rvsd.sock).
    #[arg(long)]
    socket: Option<String>,
    /// Serve Prometheus metrics on this address (opt-in), e.g. 127.0.0.1:9469.
    #[arg(long)]
    metrics: Option<String>,
    /// How the XDP steering program is attached: `generic` (skb mode, any
    /// interface; the default) or `native` (driver mode, for NICs whose
    /// driver has XDP). Overrides `[daemon] xdp_mode`.
    #[arg(long, value_parser = ["generic", "native"])]
    xdp_mode: Option<String>,
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

/// What the configuration file holds.
enum Source {
    None,
    Toml(Box<config::Config>),
    Keepalived(Box<crate::keepalived::Loaded>),
}

/// The keepalived parser's options from the command line.
fn ka_options(args: &Args) -> rvs_keepalived::Options {
    match &args.config_id {
        Some(id) => rvs_keepalived::Options {
            config_id: Some(id.clone()),
        },
        None => rvs_keepalived::Options::host_config_id(),
    }
}

/// Reads the configuration file, in its format; errors and warnings are
/// printed (FILE:LINE each). `None`: the file was refused.
fn read_config(args: &Args) -> Option<Source> {
    let Some(p) = &args.config else {
        return Some(Source::None);
    };
    if crate::keepalived::is_keepalived(p, &args.config_format) {
        match crate::keepalived::load_with(
            p,
            &rvs_engine::DirectorConfig::default(),
            &ka_options(args),
        ) {
            Ok(k) => {
                for w in &k.warnings {
                    eprintln!("{w}");
                }
                Some(Source::Keepalived(Box::new(k)))
            }
            Err(e) => {
                eprintln!("{e}");
                None
            }
        }
    } else {
        match config::load(p) {
            Ok(c) => Some(Source::Toml(Box::new(c))),
            Err(e) => {
                eprintln!("{e}");
                None
            }
        }
    }
}

fn run(args: Args) -> anyhow::Result<i32> {
    let Some(source) = read_config(&args) else {
        return Ok(1);
    };
    if args.check {
        match &source {
            Source::Toml(c) => println!("configuration OK: {} operations", c.ops.len()),
            Source::Keepalived(k) => {
                let checks = crate::health::checks(&k.plan).len();
                println!(
                    "configuration OK: {} virtual services, {checks} health checks, {} warnings",
                    k.plan.services.len(),
                    k.warnings.len()
                );
            }
            Source::None => {}
        }
        return Ok(0);
    }
    let cfg = match &source {
        Source::Toml(c) => Some(c),
        _ => None,
    };
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
    let mut workers = Vec::new();
    if interfaces.is_empty() {
        tracing::info!("no interfaces: control plane only");
        workers.push(
            Worker::spawn(director.clone(), crate::worker::no_port(), start)
                .context("starting the worker")?,
        );
    } else {
        // The steering programs first, then one worker per receive queue,
        // each binding its own queue's sockets on its own thread (worker 0
        // also the fwmark path's).
        let mode = match args.xdp_mode.as_deref() {
            Some("native") => crate::config::XdpMode::Native,
            Some(_) => crate::config::XdpMode::Generic,
            None => cfg
                .as_ref()
                .and_then(|c| c.daemon.xdp_mode)
                .unwrap_or_default(),
        };
        let shared =
            crate::dataplane::Shared::open(&interfaces, mode).map_err(|e| anyhow::anyhow!(e))?;
        let n = shared.workers();
        // Several workers count real servers' connections together, so
        // thresholds hold over all of them (rvs_engine::load). The control
        // plane's scratch directors (validation) do not share them.
        let worker_cfg = rvs_engine::DirectorConfig {
            shared_load: (n > 1).then(|| Arc::new(rvs_engine::load::SharedLoad::default())),
            ..director.clone()
        };
        for (w, links) in crate::handoff::links(n).into_iter().enumerate() {
            let shared = shared.clone();
            let make_port: crate::worker::MakePort = Box::new(move || {
                crate::dataplane::XdpPort::open(shared, w, links)
                    .map(|p| Box::new(p) as Box<dyn crate::worker::Port>)
            });
            workers.push(
                Worker::spawn_nth(w, worker_cfg.clone(), make_port, start)
                    .with_context(|| format!("starting worker {w}"))?,
            );
        }
        tracing::info!(?interfaces, workers = n, xdp_mode = ?mode, "serving (XDP steering + AF_XDP)");
    }
    let mut control = Control::new(director.clone(), workers);
    if let Some(c) = &cfg {
        control
            .apply(c.ops.clone())
            .map_err(|e| anyhow::anyhow!(e.message))?;
    }
    let control = Arc::new(Mutex::new(control));
    let supervisor = match &source {
        Source::Keepalived(k) => {
            let (tx, rx) = std::sync::mpsc::channel();
            let monitor = rvs_health::Monitor::start(
                rvs_health::MonitorConfig {
                    max_concurrent: args.max_checks,
                },
                move |e: rvs_health::Event| {
                    tracing::info!(check = %e.target.addr, state = ?e.state, reason = %e.reason, "health check");
                    let _ = tx.send((e.target, e.state));
                },
            )
            .context("starting the health checks")?;
            let sup = crate::supervise::Supervisor::start(
                control.clone(),
                k.plan.clone(),
                Arc::new(monitor),
                rx,
            )
            .map_err(|e| anyhow::anyhow!(e))?;
            tracing::info!(
                services = k.plan.services.len(),
                checks = crate::health::checks(&k.plan).len(),
                "keepalived configuration running"
            );
            Some(Arc::new(sup))
        }
        _ => None,
    };
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
    let sup = supervisor.clone();
    let ka_opts = ka_options(&args);
    let reload: crate::server::Reload = Arc::new(move |c: &mut Control| {
        let Some(p) = &config_path else {
            return Err("rvsd runs without a configuration file".into());
        };
        if let Some(sup) = &sup {
            let k = crate::keepalived::load_with(p, &director, &ka_opts)?;
            for w in &k.warnings {
                tracing::warn!("{w}");
            }
            return sup.reload(c, k.plan);
        }
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
    if let Some(sup) = &supervisor {
        sup.stop();
    }
    if let Ok(m) = Arc::try_unwrap(control)
        && let Ok(c) = m.into_inner()
    {
        c.stop();
    }
    Ok(0)
}
