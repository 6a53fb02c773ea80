//! MISC_CHECK: `/bin/sh -c misc_path`, in a process group of its own;
//! at `misc_timeout` the group gets SIGTERM, and SIGKILL
//! [`MISC_KILL_GRACE`] later if it is still there (keepalived's order).

use std::ffi::CString;
use std::process::Stdio;

use tokio::process::Command;

use super::ProbeResult;
use crate::spec::{Common, MiscCheck};

/// Time between SIGTERM and SIGKILL for a program past its timeout.
pub const MISC_KILL_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// What an exit status means: 0 up; with `misc_dynamic` 1 down and
/// 2..=255 up with weight code − 2; without it any other code is down.
pub fn misc_exit_result(code: i32, dynamic: bool) -> ProbeResult {
    match code {
        0 => ProbeResult::Up,
        2..=255 if dynamic => ProbeResult::UpWeight((code - 2) as u32),
        _ => ProbeResult::Down(format!("exit status {code}")),
    }
}

/// (uid, gid) of `user` (and `group`, else the user's primary group).
fn lookup_user(user: &str, group: Option<&str>) -> Result<(u32, u32), String> {
    let cu = CString::new(user).map_err(|_| format!("bad user name {user:?}"))?;
    // SAFETY: getpwnam is given a valid C string; the returned record is
    // read at once, on this thread (the monitor's single thread calls it).
    let pw = unsafe { libc::getpwnam(cu.as_ptr()) };
    if pw.is_null() {
        return Err(format!("no user {user:?}"));
    }
    // SAFETY: `pw` is non-null and points to libc's static passwd record.
    let (uid, mut gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    if let Some(g) = group {
        let cg = CString::new(g).map_err(|_| format!("bad group name {g:?}"))?;
        // SAFETY: as above, for the group record.
        let gr = unsafe { libc::getgrnam(cg.as_ptr()) };
        if gr.is_null() {
            return Err(format!("no group {g:?}"));
        }
        // SAFETY: `gr` is non-null.
        gid = unsafe { (*gr).gr_gid };
    }
    Ok((uid, gid))
}

fn kill_group(pid: u32, sig: i32) {
    if let Ok(p) = i32::try_from(pid)
        && p > 0
    {
        // SAFETY: plain syscall; a negative pid names the process group
        // the child leads (process_group(0) below).
        unsafe {
            libc::kill(-p, sig);
        }
    }
}

/// SIGKILL to the child's process group when dropped while armed.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0 {
            kill_group(p, libc::SIGKILL);
        }
    }
}

/// MISC_CHECK: run `misc_path` with `/bin/sh -c`; the exit status decides
/// ([`misc_exit_result`]); killed by a signal, or still running at the
/// timeout (`misc_timeout`, else `delay_loop`; then SIGTERM to its
/// process group, SIGKILL [`MISC_KILL_GRACE`] later), is a failure. `user`
/// needs root (setuid); without root it fails with a reason saying so.
pub async fn misc_check(m: &MiscCheck, c: &Common) -> ProbeResult {
    let limit = m.timeout.unwrap_or(c.delay_loop);
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(&m.path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    if let Some((user, group)) = &m.user {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return ProbeResult::Down(format!(
                "MISC_CHECK user {user}: unsupported when rvsd does not run as root"
            ));
        }
        match lookup_user(user, group.as_deref()) {
            Ok((uid, gid)) => {
                cmd.uid(uid).gid(gid);
            }
            Err(e) => return ProbeResult::Down(format!("MISC_CHECK user: {e}")),
        }
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return ProbeResult::Down(format!("MISC_CHECK {:?}: spawn: {e}", m.path)),
    };
    let pid = child.id();
    // a probe dropped mid-run (its check removed, the monitor stopped)
    // takes the program's whole group with it
    let mut guard = GroupGuard(pid);
    let res = tokio::time::timeout(limit, child.wait()).await;
    if res.is_ok() {
        // reaped: its pid no longer names a group of ours
        guard.0 = None;
    }
    match res {
        Ok(Ok(status)) => match status.code() {
            Some(code) => match misc_exit_result(code, m.dynamic) {
                ProbeResult::Down(why) => {
                    ProbeResult::Down(format!("MISC_CHECK {:?}: {why}", m.path))
                }
                r => r,
            },
            None => ProbeResult::Down(format!("MISC_CHECK {:?}: killed by a signal", m.path)),
        },
        Ok(Err(e)) => ProbeResult::Down(format!("MISC_CHECK {:?}: wait: {e}", m.path)),
        Err(_) => {
            // the child is not reaped yet, so its pid still names its group
            if let Some(p) = pid {
                kill_group(p, libc::SIGTERM);
                if tokio::time::timeout(MISC_KILL_GRACE, child.wait())
                    .await
                    .is_err()
                {
                    kill_group(p, libc::SIGKILL);
                    let _ = child.kill().await;
                } else {
                    // what the program started may be left in the group
                    kill_group(p, libc::SIGKILL);
                }
            } else {
                let _ = child.kill().await;
            }
            guard.0 = None;
            ProbeResult::Down(format!(
                "MISC_CHECK {:?}: timed out after {limit:?}",
                m.path
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(misc_exit_result(0, false), ProbeResult::Up);
        assert!(!misc_exit_result(1, false).is_up());
        assert!(!misc_exit_result(5, false).is_up());
        assert_eq!(misc_exit_result(0, true), ProbeResult::Up);
        assert!(!misc_exit_result(1, true).is_up());
        assert_eq!(misc_exit_result(2, true), ProbeResult::UpWeight(0));
        assert_eq!(misc_exit_result(5, true), ProbeResult::UpWeight(3));
        assert_eq!(misc_exit_result(255, true), ProbeResult::UpWeight(253));
        assert!(!misc_exit_result(-1, true).is_up());
    }
}
