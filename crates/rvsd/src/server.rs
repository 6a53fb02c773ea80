//! The control socket: a Unix stream socket (tokio), root only, one JSON
//! request per line and one JSON response per line. A bad request changes
//! nothing.

use crate::control::Control;
use crate::proto::{Request, Response};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the server reloads the configuration file (returns the number of
/// changes applied, or why nothing was).
pub type Reload = Arc<dyn Fn(&mut Control) -> Result<usize, String> + Send + Sync>;

/// Binds the control socket: its directory is created 0700, the socket 0600.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "exists and is not a socket",
            ));
        }
        // A stale socket from a crashed rvsd: refuse if something answers.
        if UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another rvsd answers on this socket",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// The longest request line accepted (a `-R` batch of some 100,000 lines).
pub const MAX_REQUEST: u64 = 16 << 20;

/// Serves requests until `stop` is set (checked every 50 ms), on a tokio
/// runtime of its own (current thread; each connection a task, each
/// request answered on the blocking pool since it waits for the workers).
pub fn serve(
    listener: UnixListener,
    control: Arc<Mutex<Control>>,
    reload: Reload,
    stop: Arc<AtomicBool>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "control socket: no runtime");
            return;
        }
    };
    rt.block_on(async move {
        let listener = match tokio::net::UnixListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "control socket: cannot register");
                return;
            }
        };
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        while !stop.load(Ordering::Relaxed) {
            tokio::select! {
                r = listener.accept() => match r {
                    Ok((stream, _)) => {
                        let (control, reload) = (control.clone(), reload.clone());
                        tokio::spawn(async move {
                            if let Err(e) = handle(stream, control, reload).await {
                                tracing::debug!(error = %e, "control connection ended");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = tick.tick() => {}
            }
        }
    });
}

async fn handle(
    stream: tokio::net::UnixStream,
    control: Arc<Mutex<Control>>,
    reload: Reload,
) -> std::io::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let (r, mut w) = stream.into_split();
    let mut r = tokio::io::BufReader::new(r);
    let mut line = String::new();
    loop {
        line.clear();
        let n = (&mut r).take(MAX_REQUEST).read_line(&mut line).await?;
        if n == 0 {
            return Ok(());
        }
        if !line.ends_with('\n') && n as u64 >= MAX_REQUEST {
            let resp = error_line("request too long", 2);
            w.write_all(resp.as_bytes()).await?;
            return Ok(());
        }
        if line.trim().is_empty() {
            continue;
        }
        let resp = match serde_json::from_str::<Request>(&line) {
            Err(e) => Response::Error {
                message: format!("bad request: {e}"),
                exit_code: 2,
            },
            Ok(req) => {
                let (c, rl) = (control.clone(), reload.clone());
                tokio::task::spawn_blocking(move || answer(req, &c, &*rl))
                    .await
                    .unwrap_or_else(|_| Response::Error {
                        message: "rvsd failed to answer".into(),
                        exit_code: 255,
                    })
            }
        };
        let mut out = serde_json::to_string(&resp)
            .unwrap_or_else(|_| error_line("cannot encode the answer", 255));
        if !out.ends_with('\n') {
            out.push('\n');
        }
        w.write_all(out.as_bytes()).await?;
    }
}

fn error_line(message: &str, exit_code: i32) -> String {
    let r = Response::Error {
        message: message.into(),
        exit_code,
    };
    let mut s = serde_json::to_string(&r).unwrap_or_default();
    s.push('\n');
    s
}

fn answer(
    req: Request,
    control: &Mutex<Control>,
    reload: &(dyn Fn(&mut Control) -> Result<usize, String> + Send + Sync),
) -> Response {
    let Ok(mut c) = control.lock() else {
        return Response::Error {
            message: "rvsd control state is poisoned".into(),
            exit_code: 255,
        };
    };
    match req {
        Request::Apply(cmds) => match c.apply_commands(&cmds) {
            Ok(()) => {
                tracing::info!(commands = cmds.len(), "applied");
                Response::Done
            }
            Err(e) => Response::Error {
                message: e.message,
                exit_code: e.exit_code,
            },
        },
        Request::Snapshot => match crate::worker::snapshot_all(c.workers()) {
            Ok(s) => Response::Snapshot(Box::new(s)),
            Err(e) => Response::Error {
                message: e.message,
                exit_code: e.exit_code,
            },
        },
        Request::Stats => match crate::worker::daemon_stats(c.workers()) {
            Ok(s) => Response::Stats(Box::new(s)),
            Err(e) => Response::Error {
                message: e.message,
                exit_code: e.exit_code,
            },
        },
        Request::Reload => match reload(&mut c) {
            Ok(_) => Response::Done,
            Err(e) => Response::Error {
                message: e,
                exit_code: 1,
            },
        },
    }
}

/// Sends one request and reads the answer (used by rvsadm and tests).
pub fn request(socket: &Path, req: &Request) -> std::io::Result<Response> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut line = serde_json::to_string(req).map_err(std::io::Error::other)?;
    line.push('\n');
    s.write_all(line.as_bytes())?;
    let mut r = BufReader::new(s);
    let mut resp = String::new();
    r.read_line(&mut resp)?;
    serde_json::from_str(&resp).map_err(std::io::Error::other)
}

/// The socket path from `--socket`, then `RVS_SOCKET`, then the default.
pub fn socket_path(flag: Option<&str>) -> PathBuf {
    flag.map(PathBuf::from)
        .or_else(|| std::env::var_os("RVS_SOCKET").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(crate::proto::DEFAULT_SOCKET))
}
