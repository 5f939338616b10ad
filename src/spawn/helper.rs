//! The spawn helper: `supd __spawn UNIT`, a fresh single-threaded process started by
//! supd with its control socket on fd 3. It reads the `LaunchPlan`, prepares the
//! process step by step and execs the service; on failure it writes a `SpawnError` to
//! the socket and exits 127. Every step names what it did, so `supctl status` can say
//! e.g. `chdir /srv/app: ENOENT (No such file or directory)`.

use std::convert::Infallible;
use std::ffi::{CString, OsStr};
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::{SigHandler, Signal, signal};
use nix::unistd::{AccessFlags, Gid, Uid, access, chdir, execve, setgroups, setresgid, setresuid};

use super::{HELPER_FD, LaunchPlan, SpawnError, set_cloexec};

/// Entry point of helper mode. Never returns.
pub fn main() -> ! {
    // SAFETY: supd passes the socket as fd 3 and nothing else in this fresh process
    // owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(HELPER_FD) };
    let mut sock = UnixStream::from(fd);
    let error = match read_plan(&mut sock) {
        Ok(plan) => match run(&plan) {
            Ok(never) => match never {},
            Err(e) => e,
        },
        Err(e) => e,
    };
    if let Ok(bytes) = serde_json::to_vec(&error) {
        let _ = sock.write_all(&bytes);
    }
    std::process::exit(127);
}

fn read_plan(sock: &mut UnixStream) -> Result<LaunchPlan, SpawnError> {
    set_cloexec(&*sock).map_err(|e| SpawnError::new("fcntl", None, Some(e), "control socket"))?;
    let mut buf = Vec::new();
    sock.read_to_end(&mut buf).map_err(|e| {
        SpawnError::new("read plan", None, e.raw_os_error().map(Errno::from_raw), "")
    })?;
    serde_json::from_slice(&buf)
        .map_err(|e| SpawnError::new("decode plan", None, None, e.to_string()))
}

/// Prepare the process and exec the service.
fn run(plan: &LaunchPlan) -> Result<Infallible, SpawnError> {
    close_stray_fds()?;
    if let Some(c) = &plan.credentials {
        let groups: Vec<Gid> = c.groups.iter().map(|g| Gid::from_raw(*g)).collect();
        setgroups(&groups).map_err(|e| SpawnError::new("setgroups", None, Some(e), ""))?;
        let gid = Gid::from_raw(c.gid);
        setresgid(gid, gid, gid)
            .map_err(|e| SpawnError::new("setresgid", None, Some(e), c.gid.to_string()))?;
        let uid = Uid::from_raw(c.uid);
        setresuid(uid, uid, uid)
            .map_err(|e| SpawnError::new("setresuid", None, Some(e), c.uid.to_string()))?;
    }
    let workdir = plan.workdir.to_string_lossy();
    chdir(&plan.workdir).map_err(|e| SpawnError::new("chdir", Some(&workdir), Some(e), ""))?;
    // Rust ignores SIGPIPE in every program it starts; the service expects the default.
    // SAFETY: restoring the default disposition installs no Rust handler.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }
        .map_err(|e| SpawnError::new("signal", None, Some(e), "SIGPIPE"))?;
    let program = resolve_program(plan)?;
    let shown = program.to_string_lossy().into_owned();
    let c_program = cstring(program.as_os_str(), "exec", &shown)?;
    let argv = plan
        .argv
        .iter()
        .map(|a| cstring(OsStr::new(a), "exec", &shown))
        .collect::<Result<Vec<_>, _>>()?;
    let env = plan
        .env
        .iter()
        .map(|a| cstring(OsStr::new(a), "exec", &shown))
        .collect::<Result<Vec<_>, _>>()?;
    let e = execve(&c_program, &argv, &env)
        .err()
        .unwrap_or(Errno::UnknownErrno);
    Err(SpawnError::new("exec", Some(&shown), Some(e), ""))
}

/// Nothing but fds 0-3 may reach the service; 3 is already close-on-exec.
fn close_stray_fds() -> Result<(), SpawnError> {
    // SAFETY: close_range only marks descriptors; no Rust object owns fds above 3 here.
    let rc = unsafe { libc::close_range(4, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) };
    if rc != 0 {
        return Err(SpawnError::new(
            "close_range",
            None,
            Some(Errno::last()),
            "",
        ));
    }
    Ok(())
}

/// `exec[0]` as given if it contains a '/', else the first executable match in the
/// service's own PATH (not supd's).
fn resolve_program(plan: &LaunchPlan) -> Result<PathBuf, SpawnError> {
    let name = plan.argv.first().map(String::as_str).unwrap_or_default();
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    let path = plan
        .env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or_default();
    path.split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| access(candidate, AccessFlags::X_OK).is_ok() && candidate.is_file())
        .ok_or_else(|| {
            SpawnError::new(
                "exec",
                Some(name),
                Some(Errno::ENOENT),
                format!("not found in PATH={path}"),
            )
        })
}

fn cstring(s: &OsStr, step: &str, path: &str) -> Result<CString, SpawnError> {
    CString::new(s.as_bytes()).map_err(|_| {
        SpawnError::new(
            step,
            Some(path),
            Some(Errno::EINVAL),
            "argument contains a NUL byte",
        )
    })
}
