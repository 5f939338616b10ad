//! supd's half of a start: fork (or posix_spawn) the helper, send it the plan
//! (it moves itself into the unit's cgroup first) and read its reports until the service has exec'd. Runs in a
//! blocking thread of the multithreaded supd, so it forks nothing itself.

use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use nix::sys::stat::Mode;
use nix::unistd::pipe2;

use super::error::io_error;
use super::sys::{Pidfd, dup_above, posix_spawn};
use super::{EarlyOutput, HELPER_ARG, LaunchPlan, Report, SpawnError, Spawned, Step};
use crate::reaper::{ChildOf, Registration, Registry};

/// A helper that neither execs nor reports within this time is killed.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// Start the helper for `plan` as attempt `owner`, and wait until it has exec'd the
/// service (or failed). Blocking: call from a blocking thread.
///
/// The helper and the container's first process are both registered for `owner`
/// before any exit of theirs can be reaped (see `reaper`), so an exit is never lost
/// and never taken for another process's.
///
/// `cgroup` is the unit's cgroup directory, open, where the helper can be
/// created inside it (`clone3` with `CLONE_INTO_CGROUP`, pure cgroup v2).
/// Without it, or where the kernel refuses, the helper is created in supd's
/// cgroup and writes itself into `plan.cgroup_join` before anything else: a
/// self-move of a single thread, which on v1 is far cheaper than supd moving
/// it by pid (see `CgroupTree::join_files`).
pub fn spawn(
    plan: &LaunchPlan,
    registry: &Registry,
    owner: &ChildOf,
    cgroup: Option<&OwnedFd>,
) -> Result<Spawned, SpawnError> {
    // The running binary itself, even if the file on disk was replaced since.
    start_helper(c"/proc/self/exe", plan, registry, owner, cgroup)
}

/// `spawn` with an explicit path to the supd binary that serves as the helper (for
/// benchmarks and tools that link the library but are not supd themselves). The
/// fork server is started from the first path given; later ones fall back to it.
pub fn spawn_with_helper(
    helper: &CStr,
    plan: &LaunchPlan,
    registry: &Registry,
    owner: &ChildOf,
) -> Result<Spawned, SpawnError> {
    start_helper(helper, plan, registry, owner, None)
}

fn start_helper(
    helper: &CStr,
    plan: &LaunchPlan,
    registry: &Registry,
    owner: &ChildOf,
    cgroup: Option<&OwnedFd>,
) -> Result<Spawned, SpawnError> {
    let payload = serde_json::to_vec(plan)
        .map_err(|e| SpawnError::new(Step::EncodePlan, None, None, e.to_string()))?;
    let (mut ours, theirs) = UnixStream::pair().map_err(|e| io_error(Step::Socketpair, e))?;
    let (out_r, out_w) =
        pipe2(OFlag::O_CLOEXEC).map_err(|e| SpawnError::new(Step::Pipe, None, Some(e), ""))?;
    let (err_r, err_w) =
        pipe2(OFlag::O_CLOEXEC).map_err(|e| SpawnError::new(Step::Pipe, None, Some(e), ""))?;
    if !plan.exec_start_pre.is_empty() {
        // Nothing reads the output until the service runs: room for what the
        // `exec_start_pre` commands write meanwhile (best effort: the kernel's
        // `pipe-max-size` may allow less, then they keep the default 64 KiB).
        for pipe in [&out_w, &err_w] {
            let _ = nix::fcntl::fcntl(
                pipe,
                nix::fcntl::FcntlArg::F_SETPIPE_SZ(EARLY_OUTPUT_MAX as i32),
            );
        }
    }
    let devnull = open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| SpawnError::new(Step::Open, Some("/dev/null"), Some(e), ""))?;
    let theirs = OwnedFd::from(theirs);
    // The readiness pipe (`ready_fd`): the service gets the write end (the helper's
    // fd 4, see `hooks`), supd reads a line from the other.
    let ready = match plan.ready_fd {
        Some(_) => Some(
            pipe2(OFlag::O_CLOEXEC)
                .map_err(|e| SpawnError::new(Step::Pipe, None, Some(e), "ready_fd"))?,
        ),
        None => None,
    };
    let (ready_r, ready_w) = match ready {
        Some((r, w)) => (Some(r), Some(w)),
        None => (None, None),
    };

    // Registered (and a pidfd taken) before the reaper may see it exit.
    let mut helper_fd = None;
    let helper_pid = registry
        .spawn_registered(owner.clone(), || {
            let mut fds = vec![&devnull, &out_w, &err_w, &theirs];
            fds.extend(ready_w.as_ref());
            let pid = match super::forkserver::fork_helper(helper, &fds, cgroup) {
                Some(Ok(forked)) => {
                    if forked.in_cgroup {
                        tracing::debug!(unit = %plan.unit, "helper created inside its cgroup");
                    }
                    forked.pid
                }
                Some(Err(e)) => return Err(e),
                None => posix_spawn_helper(helper, HELPER_ARG, &plan.unit, &[], &fds)?,
            };
            helper_fd = Pidfd::open(pid);
            Ok(pid)
        })
        .map_err(|e| SpawnError::new(Step::PosixSpawn, Some("/proc/self/exe"), Some(e), ""))?;
    drop((devnull, out_w, err_w, theirs, ready_w));
    let kill_helper = || {
        if let Some(fd) = &helper_fd {
            fd.kill();
        }
    };
    let mut main: Option<(i32, Option<Pidfd>)> = None;
    let mut early_exit = None;
    let timeout = if plan.exec_start_pre.is_empty() {
        HELPER_TIMEOUT
    } else {
        HELPER_TIMEOUT.saturating_add(plan.start_pre_timeout)
    };
    let outcome = hand_over(&mut ours, &payload, timeout, |pid, pidfd| {
        if pid == helper_pid {
            // No container child: the helper execs the service itself.
            main = Some((pid, None));
            return Ok(());
        }
        let pidfd = pidfd.ok_or_else(|| {
            SpawnError::new(Step::Helper, None, None, "reported a pid without its pidfd")
        })?;
        if let Registration::AlreadyExited(status) =
            registry.register_pidfd(pid, pidfd.as_fd(), owner.clone())
        {
            early_exit = Some(status);
        }
        main = Some((pid, Some(pidfd)));
        Ok(())
    });
    match (outcome, main) {
        (Ok(()), Some((pid, child_fd))) => Ok(Spawned {
            pid,
            stdout: out_r,
            stderr: err_r,
            early_exit,
            // The container's first process, or the helper that exec'd the service.
            pidfd: child_fd.or(helper_fd).map(Pidfd::into_owned),
            ready: ready_r,
        }),
        (result, main) => {
            // Whatever was started is killed, so nothing runs unsupervised; pidfds
            // make sure an already-reaped pid reused by someone else is not hit.
            if let Some((_, Some(fd))) = main {
                fd.kill();
            }
            kill_helper();
            let mut error = result.err().unwrap_or_else(|| {
                SpawnError::new(Step::Helper, None, None, "ended without reporting a pid")
            });
            error.output = EarlyOutput {
                stdout: drain_lines(&out_r),
                stderr: drain_lines(&err_r),
            };
            Err(error)
        }
    }
}

/// What the `exec_start_pre` commands may write before the service runs (the
/// size their output pipes are given), and the most of it a failed start keeps.
const EARLY_OUTPUT_MAX: usize = 1024 * 1024;

/// The lines waiting in an output pipe of a start that failed, without waiting for
/// more: the helper and its commands may still hold the other end.
fn drain_lines(pipe: &OwnedFd) -> Vec<String> {
    let flags = nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK);
    if nix::fcntl::fcntl(pipe, flags).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    while bytes.len() < EARLY_OUTPUT_MAX {
        match nix::unistd::read(pipe, &mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&bytes)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Send the plan, then read the reports until EOF, which comes once every copy of
/// the close-on-exec socket is gone: the service exec'd. `on_pid` is called as soon
/// as the service's pid is known, with the pidfd the helper attached to it (none when
/// the helper itself is the service); a child reported with a pidfd waits for the
/// byte sent once `on_pid` has registered it. The whole exchange has one deadline.
fn hand_over(
    sock: &mut UnixStream,
    payload: &[u8],
    timeout: Duration,
    mut on_pid: impl FnMut(i32, Option<Pidfd>) -> Result<(), SpawnError>,
) -> Result<(), SpawnError> {
    let deadline = std::time::Instant::now() + timeout;
    // One line (JSON has no raw newlines); the socket stays open for the byte that
    // releases the container's first process once it is registered.
    sock.write_all(payload)
        .and_then(|()| sock.write_all(b"\n"))
        .map_err(|e| io_error(Step::SendPlan, e))?;
    let mut reports = ReportReader::default();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            let detail = format!("no exec within {}s; killed", timeout.as_secs());
            return Err(SpawnError::new(Step::Helper, None, None, detail));
        }
        sock.set_read_timeout(Some(left))
            .map_err(|e| io_error(Step::Setsockopt, e))?;
        match reports.fill(sock) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(Errno::EAGAIN | Errno::EINTR) => continue,
            Err(e) => return Err(SpawnError::new(Step::ReadReport, None, Some(e), "")),
        }
        while let Some(line) = reports.next_line() {
            match serde_json::from_slice::<Report>(&line) {
                Ok(Report::Pid(p)) => {
                    let pidfd = reports.fds.pop_front();
                    let child = pidfd.is_some();
                    on_pid(p, pidfd)?;
                    if child {
                        // Registered: the helper may now release it.
                        sock.write_all(b"1")
                            .map_err(|e| io_error(Step::SendRegistered, e))?;
                    }
                }
                Ok(Report::Error(e)) => return Err(e),
                Err(_) => {
                    let text = String::from_utf8_lossy(&line).into_owned();
                    return Err(SpawnError::new(Step::Helper, None, None, text));
                }
            }
        }
    }
}

/// Report lines and the descriptors that came with them (SCM_RIGHTS).
#[derive(Default)]
struct ReportReader {
    buf: Vec<u8>,
    fds: VecDeque<Pidfd>,
}

impl ReportReader {
    /// One `recvmsg`; false at end of stream.
    fn fill(&mut self, sock: &UnixStream) -> Result<bool, Errno> {
        let mut chunk = [0u8; 4096];
        let mut cmsg = nix::cmsg_space!([RawFd; 4]);
        let mut iov = [std::io::IoSliceMut::new(&mut chunk)];
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let n = msg.bytes;
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for fd in fds {
                    // SAFETY: SCM_RIGHTS installed a fresh descriptor that nothing
                    // else owns.
                    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                    self.fds.push_back(Pidfd::from_owned(owned));
                }
            }
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    fn next_line(&mut self) -> Option<Vec<u8>> {
        let end = self.buf.iter().position(|b| *b == b'\n')?;
        let mut line: Vec<u8> = self.buf.drain(..=end).collect();
        line.pop();
        Some(line)
    }
}

/// posix_spawn `/proc/self/exe MODE UNIT MORE...` with `fds` as its fds 0, 1, 2, ...
pub(super) fn posix_spawn_helper(
    path: &CStr,
    mode: &str,
    unit: &str,
    more: &[&CStr],
    fds: &[&OwnedFd],
) -> Result<i32, Errno> {
    let arg1 = CString::new(mode).map_err(|_| Errno::EINVAL)?;
    let arg2 = CString::new(unit).map_err(|_| Errno::EINVAL)?;
    let mut argv = vec![c"supd", &arg1, &arg2];
    argv.extend_from_slice(more);
    // A source numbered below the last target could be overwritten by an earlier
    // dup2 of the sequence: such sources are first copied above the targets.
    let lowest_safe = fds.len() as RawFd;
    let mut copies = Vec::new();
    let mut dup2 = Vec::with_capacity(fds.len());
    for (target, fd) in fds.iter().enumerate() {
        let source = if fd.as_raw_fd() < lowest_safe {
            let copy = dup_above(fd, lowest_safe)?;
            let raw = copy.as_raw_fd();
            copies.push(copy);
            raw
        } else {
            fd.as_raw_fd()
        };
        dup2.push((source, target as RawFd));
    }
    posix_spawn(path, &argv, &[], &dup2)
}
