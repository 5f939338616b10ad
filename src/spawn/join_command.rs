//! `supctl exec` in the join helper: the command run in the unit's container,
//! watched until it ends (or supd hangs up, or forwards a signal), and its status
//! answered (with `-t`, `join_tty` relays a terminal instead).

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

use super::join::{JoinPlan, encode_result};
use super::sys::Pidfd;
use super::{SpawnError, Step};

/// An operator's command: a child in a session of its own (with `tty`, its
/// stdin becomes its controlling terminal) execs it under the service's
/// restrictions; its status goes to supd. If supd hangs up first (its client went
/// away), the command's process group is killed.
pub(super) fn run_command(
    plan: &JoinPlan,
    tty: bool,
    mut sock: &UnixStream,
) -> Result<(), SpawnError> {
    if tty {
        return super::join_tty::run(plan, sock);
    }
    // SAFETY: the helper is single-threaded; the child only sets up its session
    // and execs (or exits).
    match unsafe { fork() }.map_err(|e| SpawnError::new(Step::Clone, None, Some(e), "exec"))? {
        ForkResult::Child => {
            let error =
                match own_session(tty).and_then(|()| super::helper::exec_service(&plan.launch)) {
                    Ok(never) => match never {},
                    Err(e) => e,
                };
            // On the command's own stderr: the operator's terminal.
            eprintln!("supd: {error}");
            std::process::exit(127);
        }
        ForkResult::Parent { child } => {
            let status = watch_command(child, sock);
            match status {
                Some(status) => sock
                    .write_all(&encode_result(status, b""))
                    .map_err(|e| SpawnError::io(Step::SendPlan, None, &e, "status")),
                // supd hung up: nobody to tell.
                None => Ok(()),
            }
        }
    }
}

/// The command's session and process group, and its terminal.
pub(super) fn own_session(tty: bool) -> Result<(), SpawnError> {
    nix::unistd::setsid().map_err(|e| SpawnError::new(Step::Setsid, None, Some(e), ""))?;
    if tty {
        // SAFETY: TIOCSCTTY on fd 0 with argument 0 (do not steal it).
        if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } != 0 {
            let e = Errno::last();
            return Err(SpawnError::new(Step::Setsid, None, Some(e), "TIOCSCTTY"));
        }
    }
    Ok(())
}

/// Wait until the command ends (its status: an exit code, or minus the signal),
/// or supd hangs up (None, once its process group is killed and it is reaped).
pub(super) fn watch_command(child: Pid, sock: &UnixStream) -> Option<i32> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let pidfd = Pidfd::open(child.as_raw());
    let hung_up = loop {
        let Some(fd) = &pidfd else { break false };
        let mut polled = [
            PollFd::new(fd.as_fd(), PollFlags::POLLIN),
            PollFd::new(sock.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut polled, PollTimeout::NONE) {
            Err(Errno::EINTR) | Ok(0) => continue,
            Err(_) => break false,
            Ok(_) => {}
        }
        let ready = |p: &PollFd| p.revents().is_some_and(|r| !r.is_empty());
        if ready(&polled[1]) && !signals_from_supd(sock, Some(child)) {
            break true;
        }
        if ready(&polled[0]) {
            break false;
        }
    };
    if hung_up {
        // The child leads its group (setsid) and is unreaped: the id is its own.
        let _ = killpg(child, Signal::SIGKILL);
    }
    let status = loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => break code,
            Ok(WaitStatus::Signaled(_, sig, _)) => break -(sig as i32),
            Err(Errno::EINTR) => continue,
            _ => break 127,
        }
    };
    (!hung_up).then_some(status)
}

/// What supd sends while an operator's command runs: `SIGNAL` and a signal
/// number, per signal the client passes on (supctl's SIGINT, SIGTERM, ...).
pub const SIGNAL: u8 = b's';

/// Read what supd sent and pass the signals on to the command's process group
/// (`child`, while it is unreaped); false when supd hung up (or sent something
/// else: it is not ours).
pub(super) fn signals_from_supd(sock: &UnixStream, child: Option<Pid>) -> bool {
    let mut buf = [0u8; 64];
    let n = match (&*sock).read(&mut buf) {
        Ok(0) | Err(_) => return false,
        Ok(n) => n,
    };
    // supd writes each pair at once: a read never splits one.
    for pair in buf.get(..n).unwrap_or_default().chunks(2) {
        let &[SIGNAL, signo] = pair else {
            return false;
        };
        if let Some(child) = child {
            // SAFETY: kill(2) on the command's group (it leads it, and is unreaped).
            unsafe { libc::kill(-child.as_raw(), libc::c_int::from(signo)) };
        }
    }
    true
}
