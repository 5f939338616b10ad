//! The container's init: PID 1 of a PID namespace of the unit's own, when `init`
//! is on. It starts the service, then only forwards signals to it and reaps.
//!
//! The helper that set the container up is a copy of supd (a large binary with a
//! parsed plan and an allocator's worth of pages), so once the service runs it
//! execs `sup-init`, a small program installed next to supd that runs
//! [`run_init`] and nothing else: each container then costs the pages of that
//! program, not of supd. It is exec'd from a sealed copy made before the
//! container's mounts (`init_program`). When it is missing, the helper runs the
//! same loop itself.

use std::collections::BTreeSet;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

use super::{SpawnError, Step};
use crate::unit::Capability;

/// The capabilities a program exec'd with the service's identity holds: the
/// unit's list for root, only the ambient ones (`ambient`, of those kept) for
/// any other user, as `security::set_capabilities` arranges.
pub fn capabilities_after_exec(
    keep: &BTreeSet<Capability>,
    ambient: Option<&BTreeSet<Capability>>,
) -> BTreeSet<Capability> {
    match ambient {
        None => keep.clone(),
        Some(ambient) => keep.intersection(ambient).copied().collect(),
    }
}

/// Whether the init program can still forward every signal: it starts over with
/// the service's capabilities (`after_exec`, which the service has too), not
/// with the CAP_KILL the helper's init keeps for itself. Without CAP_KILL it can
/// signal only processes of its own uid, which is enough unless the service can
/// change its uid: through CAP_SETUID, or a set-user-ID program when no_new_privs
/// is off. Then the helper stays the init.
pub fn program_can_signal_service(after_exec: &BTreeSet<Capability>, no_new_privs: bool) -> bool {
    let has = |cap| after_exec.iter().any(|c| c.0 == cap);
    has(caps::Capability::CAP_KILL) || (no_new_privs && !has(caps::Capability::CAP_SETUID))
}

/// `sup-init`'s entry: the service's pid (in the container's PID namespace) is
/// its one argument.
pub fn program_main() -> ! {
    // Before anything else: the container can no longer open /proc/1/exe.
    let _ = super::init_program::not_dumpable();
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
    fn a_user_other_than_root_keeps_only_its_ambient_capabilities_across_exec() {
        use caps::Capability::{CAP_KILL, CAP_SETUID};
        let set = |caps: &[caps::Capability]| -> BTreeSet<Capability> {
            caps.iter().map(|c| Capability(*c)).collect()
        };
        let keep = set(&[CAP_KILL, CAP_SETUID]);
        // Root: the unit's list, whatever is ambient.
        assert_eq!(capabilities_after_exec(&keep, None), keep);
        // Another user: what is both kept and ambient, so CAP_KILL is gone here and
        // the service cannot change its uid either.
        let none = capabilities_after_exec(&keep, Some(&set(&[])));
        assert!(none.is_empty());
        assert!(program_can_signal_service(&none, true));
        // An ambient CAP_SETUID without CAP_KILL: the helper stays the init.
        let setuid = capabilities_after_exec(&keep, Some(&set(&[CAP_SETUID])));
        assert!(!program_can_signal_service(&setuid, true));
        let both = capabilities_after_exec(&keep, Some(&set(&[CAP_SETUID, CAP_KILL])));
        assert!(program_can_signal_service(&both, true));
        // A user without capabilities may still run a set-user-ID program.
        assert!(!program_can_signal_service(&none, false));
    }

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
