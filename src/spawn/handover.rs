//! supd's half of a start: posix_spawn the helper, put it into the unit's cgroup,
//! send it the plan and read its reports until the service has exec'd. Runs in a
//! blocking thread of the multithreaded supd, so it forks nothing itself.

use std::ffi::{CStr, CString};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use nix::unistd::pipe2;

use super::error::io_error;
use super::sys::{Pidfd, avoid_fd, posix_spawn};
use super::{HELPER_ARG, HELPER_FD, LaunchPlan, Report, SpawnError, Spawned, Step};
use crate::reaper::Registry;

/// A helper that neither execs nor reports within this time is killed.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// Start the helper for `plan`, register its pid for `owner`, and wait until it has
/// exec'd the service (or failed). Blocking: call from a blocking thread.
///
/// On failure the pid is returned too when a helper was started (its exit still
/// reaches the registry).
pub fn spawn(
    plan: &LaunchPlan,
    registry: &Registry,
    owner: &str,
    place: &mut dyn FnMut(i32) -> Result<(), SpawnError>,
) -> Result<Spawned, (Option<i32>, SpawnError)> {
    // The running binary itself, even if the file on disk was replaced since.
    spawn_with_helper(c"/proc/self/exe", plan, registry, owner, place)
}

/// `spawn` with an explicit path to the supd binary that serves as the helper (for
/// benchmarks and tools that link the library but are not supd themselves).
pub fn spawn_with_helper(
    helper: &CStr,
    plan: &LaunchPlan,
    registry: &Registry,
    owner: &str,
    place: &mut dyn FnMut(i32) -> Result<(), SpawnError>,
) -> Result<Spawned, (Option<i32>, SpawnError)> {
    let payload = serde_json::to_vec(plan).map_err(|e| {
        (
            None,
            SpawnError::new(Step::EncodePlan, None, None, e.to_string()),
        )
    })?;
    let (mut ours, theirs) =
        UnixStream::pair().map_err(|e| (None, io_error(Step::Socketpair, e)))?;
    let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| (None, SpawnError::new(Step::Pipe, None, Some(e), "")))?;
    let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| (None, SpawnError::new(Step::Pipe, None, Some(e), "")))?;
    let devnull =
        open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()).map_err(|e| {
            (
                None,
                SpawnError::new(Step::Open, Some("/dev/null"), Some(e), ""),
            )
        })?;
    let theirs = avoid_fd(OwnedFd::from(theirs), HELPER_FD)
        .map_err(|e| (None, SpawnError::new(Step::Fcntl, None, Some(e), "")))?;

    let helper_pid = posix_spawn_helper(helper, &plan.unit, [&devnull, &out_w, &err_w, &theirs])
        .map_err(|e| {
            (
                None,
                SpawnError::new(Step::PosixSpawn, Some("/proc/self/exe"), Some(e), ""),
            )
        })?;
    drop((devnull, out_w, err_w, theirs));
    // A pidfd keeps naming this helper even after it was reaped and its pid reused.
    // The helper itself is not registered: unless it turns out to be the service,
    // its exit is nobody's business (the reaper keeps it briefly as unclaimed).
    let helper = Pidfd::open(helper_pid);
    // Into the unit's cgroup while the helper still waits for its plan: everything
    // it starts is born inside (and a cgroup namespace is rooted there).
    if let Err(e) = place(helper_pid) {
        if let Some(fd) = helper {
            fd.kill();
        }
        return Err((None, e));
    }
    let mut reported: Option<(i32, Option<Pidfd>)> = None;
    let mut early_exit = None;
    let outcome = hand_over(&mut ours, &payload, |pid| {
        // Registered the moment it is known, so no exit of it can be lost.
        early_exit = registry.register(pid, owner);
        reported = Some((pid, Pidfd::open(pid)));
    });
    match (outcome, reported) {
        (Ok(()), Some((pid, _))) => Ok(Spawned {
            pid,
            stdout: out_r,
            stderr: err_r,
            early_exit,
        }),
        (result, reported) => {
            // Whatever was started is killed, so nothing runs unsupervised; pidfds
            // make sure an already-reaped pid reused by someone else is not hit.
            let pid = reported.as_ref().map(|(p, _)| *p);
            if let Some((_, Some(fd))) = reported {
                fd.kill();
            }
            if let Some(fd) = helper {
                fd.kill();
            }
            let error = result.err().unwrap_or_else(|| {
                SpawnError::new(Step::Helper, None, None, "ended without reporting a pid")
            });
            Err((pid, error))
        }
    }
}

/// Send the plan, then read the reports until EOF, which comes once every copy of
/// the close-on-exec socket is gone: the service exec'd. `on_pid` is called as soon
/// as the service's pid is known. The whole exchange has one deadline.
fn hand_over(
    sock: &mut UnixStream,
    payload: &[u8],
    mut on_pid: impl FnMut(i32),
) -> Result<(), SpawnError> {
    let deadline = std::time::Instant::now() + HELPER_TIMEOUT;
    sock.write_all(payload)
        .map_err(|e| io_error(Step::SendPlan, e))?;
    sock.shutdown(std::net::Shutdown::Write)
        .map_err(|e| io_error(Step::SendPlan, e))?;
    let mut reader = BufReader::new(&*sock);
    let mut line = String::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            let detail = format!("no exec within {}s; killed", HELPER_TIMEOUT.as_secs());
            return Err(SpawnError::new(Step::Helper, None, None, detail));
        }
        reader
            .get_ref()
            .set_read_timeout(Some(left))
            .map_err(|e| io_error(Step::Setsockopt, e))?;
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(io_error(Step::ReadReport, e)),
        }
        match serde_json::from_str::<Report>(line.trim_end()) {
            Ok(Report::Pid(p)) => on_pid(p),
            Ok(Report::Error(e)) => return Err(e),
            Err(_) => {
                return Err(SpawnError::new(
                    Step::Helper,
                    None,
                    None,
                    line.trim_end().to_string(),
                ));
            }
        }
    }
}

/// posix_spawn `/proc/self/exe __spawn UNIT` with `fds` as its fds 0..=3.
fn posix_spawn_helper(path: &CStr, unit: &str, fds: [&OwnedFd; 4]) -> Result<i32, Errno> {
    let arg1 = CString::new(HELPER_ARG).map_err(|_| Errno::EINVAL)?;
    let arg2 = CString::new(unit).map_err(|_| Errno::EINVAL)?;
    let dup2: Vec<(RawFd, RawFd)> = fds
        .iter()
        .enumerate()
        .map(|(target, fd)| (fd.as_raw_fd(), target as RawFd))
        .collect();
    posix_spawn(path, &[c"supd", &arg1, &arg2], &[], &dup2)
}
