//! The control socket: a Unix stream socket, root only, one JSON request per
//! line. A bad request changes nothing.

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
    if path.exists() {
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

/// Serves requests until `stop` is set (checked every 50 ms).
pub fn serve(
    listener: UnixListener,
    control: Arc<Mutex<Control>>,
    reload: Reload,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let control = control.clone();
                let reload = reload.clone();
                let _ = std::thread::Builder::new()
                    .name("rvs-ctl".into())
                    .spawn(move || {
                        let _ = handle(stream, &control, &*reload);
                    });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn handle(
    stream: UnixStream,
    control: &Mutex<Control>,
    reload: &(dyn Fn(&mut Control) -> Result<usize, String> + Send + Sync),
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut w = stream.try_clone()?;
    let r = BufReader::new(stream);
    for line in r.lines().take(1000) {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let resp = match serde_json::from_str::<Request>(&line) {
            Err(e) => Response::Error {
                message: format!("bad request: {e}"),
                exit_code: 2,
            },
            Ok(req) => answer(req, control, reload),
        };
        let mut out = serde_json::to_string(&resp).unwrap_or_else(|_| "{\"Error\":{}}".into());
        out.push('\n');
        w.write_all(out.as_bytes())?;
    }
    Ok(())
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
        Request::Snapshot => match c.workers().first().map(|w| w.snapshot()) {
            Some(Ok(s)) => Response::Snapshot(Box::new(s)),
            Some(Err(e)) => Response::Error {
                message: e.message,
                exit_code: e.exit_code,
            },
            None => Response::Error {
                message: "no worker".into(),
                exit_code: 255,
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
