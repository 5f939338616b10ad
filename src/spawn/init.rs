//! The container's init: PID 1 of a PID namespace of the unit's own, when `init`
//! is on. It starts the service, then only forwards signals to it and reaps.

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

use super::{SpawnError, Step};

/// Block every signal before forking the service: the init takes them with
/// `sigwait`, so none is lost between fork and the loop, and no handler code runs.
pub fn block_all_signals() -> Result<(), SpawnError> {
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&SigSet::all()), None)
        .map_err(|e| SpawnError::new(Step::Sigprocmask, None, Some(e), ""))
}

pub fn unblock_all_signals() -> Result<(), SpawnError> {
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(|e| SpawnError::new(Step::Sigprocmask, None, Some(e), ""))
}

/// PID 1 of the container: forward every signal to the service's process group,
/// reap every child, and exit with the service's status once it ends (a death by
/// signal N becomes exit code 128+N, as a PID 1 cannot kill itself with a signal).
/// The kernel then kills whatever else is left in the namespace.
pub fn run_init(service: i32) -> ! {
    let _ = nix::sys::prctl::set_name(c"sup-init");
    // Raw sigwait on the full set: real-time signals have no nix `Signal` value and
    // must be forwarded too, never turned into an error.
    let all = SigSet::all();
    loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: a valid set and out-pointer, both alive for the call; every signal
        // is blocked in this process, so sigwait is the only way they arrive.
        if unsafe { libc::sigwait(all.as_ref(), &mut sig) } != 0 {
            continue;
        }
        if sig == libc::SIGCHLD {
            if let Some(code) = reap(service) {
                std::process::exit(code);
            }
            continue;
        }
        forward(service, sig);
    }
}

/// Send `sig` to the service's process group (it called setsid, so it leads
/// one), or to the service alone if the group is gone or refuses.
fn forward(service: i32, sig: libc::c_int) {
    // SAFETY: kill(2) takes plain numbers and touches no memory of ours.
    if unsafe { libc::kill(-service, sig) } != 0 {
        // SAFETY: as above.
        unsafe { libc::kill(service, sig) };
    }
}

/// Reap everything that ended; the service's exit code once it has ended.
fn reap(service: i32) -> Option<i32> {
    let mut result = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid.as_raw() == service => result = Some(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid.as_raw() == service => {
                result = Some(128 + sig as i32)
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return result,
            Err(Errno::EINTR) | Ok(_) => continue,
            Err(_) => return result,
        }
    }
}
