//! The helper's part of a unit's lifecycle (in the container, before the service):
//! the `exec_start_pre` commands, one after the other, each as a child under the
//! service's restrictions; and the readiness pipe of `ready_fd`, handed to the
//! service at the descriptor number it asked for.

use std::os::fd::RawFd;
use std::os::unix::net::UnixStream;

use std::time::Instant;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, setpgid};

use super::sys::{Pidfd, readable_by};
use super::{LaunchPlan, SpawnError, Step};

/// Where the helper finds the write end of the readiness pipe (after its socket).
pub const READY_FD: RawFd = 4;

/// Run the `exec_start_pre` commands in order; the first failure fails the start.
/// Together they have `start_pre_timeout` (the unit's `start_timeout`): a command
/// still running then is killed with its process group, and the start fails.
pub fn run_start_pre(plan: &LaunchPlan) -> Result<(), SpawnError> {
    let deadline = Instant::now() + plan.start_pre_timeout;
    for argv in &plan.exec_start_pre {
        let shown = argv.join(" ");
        // The command gets neither the readiness pipe nor the other commands.
        let command = LaunchPlan {
            argv: argv.clone(),
            exec_start_pre: Vec::new(),
            ready_fd: None,
            ..plan.clone()
        };
        // SAFETY: the helper is single-threaded; the child only applies the
        // service's restrictions and execs the command.
        let forked = unsafe { fork() };
        match forked.map_err(|e| SpawnError::new(Step::ExecStartPre, None, Some(e), "fork"))? {
            ForkResult::Child => {
                // A group of its own, so a timeout kills what it started too.
                let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
                let error = match super::helper::exec_service(&command) {
                    Ok(never) => match never {},
                    Err(e) => e,
                };
                eprintln!("supd: exec_start_pre {shown}: {error}");
                std::process::exit(127);
            }
            ForkResult::Parent { child } => {
                let failed = match wait_until(child, deadline) {
                    Some(Ok(WaitStatus::Exited(_, 0))) => continue,
                    Some(Ok(WaitStatus::Exited(_, code))) => format!("exited with code {code}"),
                    Some(Ok(WaitStatus::Signaled(_, sig, _))) => {
                        format!("killed by {}", sig.as_str())
                    }
                    Some(Ok(other)) => format!("ended as {other:?}"),
                    Some(Err(e)) => format!("wait: {e}"),
                    None => format!(
                        "still running after start_timeout ({}); killed",
                        humantime::format_duration(plan.start_pre_timeout)
                    ),
                };
                return Err(SpawnError::new(
                    Step::ExecStartPre,
                    Some(&shown),
                    None,
                    failed,
                ));
            }
        }
    }
    Ok(())
}

/// Wait for `child` until `deadline`; None when it was still running then (it and
/// its process group are killed and reaped).
fn wait_until(child: Pid, deadline: Instant) -> Option<nix::Result<WaitStatus>> {
    // The child is ours and unreaped: its pid cannot name another process here.
    // Without pidfds (before Linux 5.3) it is waited for without a deadline.
    let exited = Pidfd::open(child.as_raw()).is_none_or(|fd| readable_by(fd.as_fd(), deadline));
    if !exited {
        let _ = killpg(child, Signal::SIGKILL);
        let _ = kill(child, Signal::SIGKILL);
    }
    let status = loop {
        match waitpid(child, None) {
            Err(Errno::EINTR) => continue,
            other => break other,
        }
    };
    exited.then_some(status)
}

/// The `(from, to)` pair that gives the service its readiness pipe, if it has one.
pub fn ready_dup(plan: &LaunchPlan) -> Option<(RawFd, RawFd)> {
    plan.ready_fd.map(|n| (READY_FD, n))
}

/// Put the readiness pipe at the service's `ready_fd` in this process, right before
/// its exec (`dup2` leaves the copy inheritable).
pub fn attach_ready_fd(plan: &LaunchPlan) -> Result<(), SpawnError> {
    let Some((from, to)) = ready_dup(plan) else {
        return Ok(());
    };
    let fail = |e| SpawnError::new(Step::ReadyFd, None, Some(e), format!("fd {to}"));
    if from == to {
        // dup2 onto itself would keep close-on-exec.
        return super::sys::clear_cloexec(from).map_err(fail);
    }
    // SAFETY: dup2 onto `to`, which the service asked for; whatever was there (a
    // close-on-exec descriptor of the helper, never its report socket: see
    // `out_of_the_way`) is replaced on purpose, right before the exec.
    Errno::result(unsafe { libc::dup2(from, to) })
        .map(drop)
        .map_err(fail)
}

/// Move the helper's report socket above the descriptors the readiness pipe uses
/// (`READY_FD` and `ready_fd`), so putting the pipe in place never replaces it.
/// On failure the socket comes back unchanged, to report with.
pub fn out_of_the_way(
    sock: UnixStream,
    plan: &LaunchPlan,
) -> Result<UnixStream, (UnixStream, SpawnError)> {
    let Some(to) = plan.ready_fd else {
        return Ok(sock);
    };
    let lowest = to.max(READY_FD).saturating_add(1);
    match super::sys::dup_above(&sock, lowest) {
        // The old descriptor closes with `sock`.
        Ok(moved) => Ok(UnixStream::from(moved)),
        Err(e) => Err((
            sock,
            SpawnError::new(Step::Dup, None, Some(e), "report socket"),
        )),
    }
}

/// The plan that runs a unit's `exec_stop_post` commands: in a container set up
/// like the service's, the commands one after the other, the last one exec'd in
/// place of the service (so its exit ends the run). None without commands.
pub fn stop_post_plan(service: &LaunchPlan, commands: &[Vec<String>]) -> Option<LaunchPlan> {
    let (last, before) = commands.split_last()?;
    Some(LaunchPlan {
        argv: last.clone(),
        exec_start_pre: before.to_vec(),
        start_pre_timeout: service.start_pre_timeout,
        ready_fd: None,
        ..service.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> LaunchPlan {
        let unit = crate::unit::parse_unit(
            "t",
            std::path::Path::new("/t.toml"),
            "[service]\nexec = [\"/bin/svc\"]\nready_fd = 5\nexec_start_pre = [[\"/bin/pre\"]]\n",
        )
        .expect("valid unit");
        super::super::resolve::plan(&unit, std::path::Path::new("/nonexistent-state"))
            .expect("plan")
    }

    #[test]
    fn stop_post_runs_every_command_in_order_and_never_gets_the_readiness_pipe() {
        let service = plan();
        assert_eq!(service.ready_fd, Some(5));
        let cmds = |v: &[&str]| v.iter().map(|c| vec![c.to_string()]).collect::<Vec<_>>();
        for (commands, pre, last) in [
            (cmds(&["/a"]), cmds(&[]), "/a"),
            (cmds(&["/a", "/b", "/c"]), cmds(&["/a", "/b"]), "/c"),
        ] {
            let hook = stop_post_plan(&service, &commands).expect("commands");
            assert_eq!(hook.exec_start_pre, pre);
            assert_eq!(hook.argv, vec![last.to_string()]);
            assert_eq!(hook.ready_fd, None);
            assert_eq!(hook.container, service.container);
        }
        assert!(stop_post_plan(&service, &[]).is_none());
    }

    #[test]
    fn the_readiness_pipe_moves_to_the_asked_descriptor() {
        let mut p = plan();
        assert_eq!(ready_dup(&p), Some((READY_FD, 5)));
        p.ready_fd = None;
        assert_eq!(ready_dup(&p), None);
    }
}
