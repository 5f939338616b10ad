//! The container's init: PID 1 of a PID namespace of the unit's own, when `init`
//! is on. It starts the service, then only forwards signals to it and reaps.
//!
//! The helper that set the container up is a copy of supd (a large binary with a
//! parsed plan and an allocator's worth of pages), so once the service runs it
//! execs `sup-init`, a small program installed next to supd that runs
//! [`run_init`] and nothing else: each container then costs the pages of that
//! program, not of supd. The program is opened before the container's mounts
//! (it is the host's file, not the container's) and exec'd through its
//! descriptor. When it is missing, the helper runs the same loop itself.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

use super::{SpawnError, Step};
use crate::unit::Capability;

/// The init program's file name, next to supd's own binary.
pub const INIT_PROGRAM: &str = "sup-init";

/// Where the init program is: beside the running supd (or helper, a copy of it).
pub fn program_path() -> Option<PathBuf> {
    let exe = std::fs::read_link("/proc/self/exe").ok()?;
    Some(exe.parent()?.join(INIT_PROGRAM))
}

/// A close-on-exec handle on the init program, opened while the helper still sees
/// the host's files; None when it is not installed (the helper is the init then).
pub fn open_program() -> Option<OwnedFd> {
    let path = program_path()?;
    open(&path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()).ok()
}

/// Whether the init program can still forward every signal: it starts over with
/// the service's capabilities (the bounding set is the unit's list by then), not
/// with the CAP_KILL the helper's init keeps for itself. Without CAP_KILL it can
/// signal only processes of its own uid, which is enough unless the service can
/// change its uid: through CAP_SETUID, or a set-user-ID program when no_new_privs
/// is off. Then the helper stays the init.
pub fn program_can_signal_service(keep: &BTreeSet<Capability>, no_new_privs: bool) -> bool {
    let has = |cap| keep.iter().any(|c| c.0 == cap);
    has(caps::Capability::CAP_KILL) || (no_new_privs && !has(caps::Capability::CAP_SETUID))
}

/// Replace this process (PID 1 of the container, signals blocked, the service
/// already started) by the init program, keeping the blocked mask and any pending
/// SIGCHLD: nothing the service does in between is lost. Returns only on failure.
pub fn exec_program(program: &OwnedFd, service: i32) {
    let (Ok(name), Ok(pid)) = (
        CString::new(INIT_PROGRAM),
        CString::new(service.to_string()),
    ) else {
        return;
    };
    let argv = [name.as_ptr(), pid.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];
    // SAFETY: execveat(2) with a descriptor we own, an empty path (AT_EMPTY_PATH:
    // the descriptor itself), and NULL-terminated argv/envp arrays whose strings
    // outlive the call; on success this process image is gone.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            program.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
}

/// `sup-init`'s entry: the service's pid (in the container's PID namespace) is
/// its one argument.
pub fn program_main() -> ! {
    let service = std::env::args()
        .nth(1)
        .and_then(|a| a.parse::<i32>().ok())
        .filter(|pid| *pid > 1);
    match service {
        Some(service) => run_init(service),
        None => {
            eprintln!("sup-init: the container init of supd; not to be run by hand");
            std::process::exit(2)
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_program_is_used_only_where_it_can_signal_the_service() {
        use caps::Capability::{CAP_CHOWN, CAP_KILL, CAP_SETUID};
        let set = |caps: &[caps::Capability]| caps.iter().map(|c| Capability(*c)).collect();
        for (keep, no_new_privs, expected) in [
            (set(&[]), true, true),
            (set(&[CAP_CHOWN]), true, true),
            (set(&[CAP_KILL, CAP_SETUID]), true, true),
            (set(&[CAP_KILL]), false, true),
            // The service may change its uid and the program could not follow.
            (set(&[CAP_SETUID]), true, false),
            (set(&[]), false, false),
        ] {
            assert_eq!(
                program_can_signal_service(&keep, no_new_privs),
                expected,
                "{keep:?} no_new_privs={no_new_privs}"
            );
        }
    }
}
