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
use std::ffi::{c_char, c_int};

use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};

use super::init_sys as sys;
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

/// `sup-init`'s entry, called with the `argc` and `argv` the kernel put on the
/// stack: the service's pid (in the container's PID namespace) is its one
/// argument. Only raw system calls from here on (`init_sys`): on x86_64 and
/// aarch64 nothing has set libc up.
///
/// # Safety
///
/// `argv` holds `argc` pointers to NUL-terminated strings, as at exec.
pub unsafe fn program_main(argc: c_int, argv: *const *const c_char) -> ! {
    // Before anything else: the container can no longer open /proc/1/exe.
    let _ = sys::not_dumpable();
    let arg = (argc >= 2).then(|| {
        let second = argv.wrapping_add(1);
        // SAFETY: argv has argc > 1 entries, so `second` is within it.
        let arg = unsafe { *second };
        // SAFETY: each of them is a NUL-terminated string that lives as long as
        // the process.
        unsafe { c_string_bytes(arg) }
    });
    match arg.and_then(service_pid) {
        Some(service) => run_init(service),
        None => {
            let _ = sys::write(
                2,
                b"sup-init: the container init of supd; not to be run by hand\n",
            );
            sys::exit(2)
        }
    }
}

/// The bytes of the C string at `p`, counted here: `CStr::from_ptr` calls libc's
/// `strlen`, which static glibc picks at start-up (an IFUNC relocation) and is
/// not callable before that.
///
/// # Safety
///
/// `p` points to a NUL-terminated string that is not written while the slice
/// lives.
unsafe fn c_string_bytes<'a>(p: *const c_char) -> &'a [u8] {
    let mut len = 0;
    // A volatile read: LLVM would turn a plain loop back into a call to strlen.
    // SAFETY: every byte up to and including the NUL is readable (the caller's
    // promise), and the loop stops at the NUL.
    while unsafe { p.wrapping_add(len).read_volatile() } != 0 {
        len += 1;
    }
    // SAFETY: the `len` bytes before the NUL, all read above.
    unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) }
}

/// The service's pid from `sup-init`'s argument: a number above 1 (the init is 1).
fn service_pid(arg: &[u8]) -> Option<i32> {
    let pid = std::str::from_utf8(arg).ok()?.parse::<i32>().ok()?;
    (pid > 1).then_some(pid)
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
/// The kernel then kills whatever else is left in the namespace. Raw system
/// calls only: this is also `sup-init`'s loop, where libc is not set up.
pub fn run_init(service: i32) -> ! {
    // `sup-init` in ps whichever process runs this: the helper is a copy of
    // supd, and an exec from a descriptor names the process after the
    // descriptor, not the program.
    let _ = sys::set_name(c"sup-init");
    // The raw set, not nix's `Signal`s: real-time signals have no `Signal` value
    // and must be forwarded too.
    let all = sys::ALL_SIGNALS;
    loop {
        // Every signal is blocked in this process, so sigwait is the only way
        // they arrive.
        let sig = match c_int::try_from(sys::sigwait(&all)) {
            Ok(sig) if sig > 0 => sig,
            _ => continue,
        };
        if sig == libc::SIGCHLD {
            if let Some(code) = reap(service) {
                sys::exit(code);
            }
            continue;
        }
        forward(service, sig);
    }
}

/// Send `sig` to the service's process group (it called setsid, so it leads
/// one), or to the service alone if the group is gone or refuses.
fn forward(service: i32, sig: c_int) {
    if sys::kill(-service, sig) != 0 {
        sys::kill(service, sig);
    }
}

/// Reap everything that ended; the service's exit code once it has ended.
fn reap(service: i32) -> Option<i32> {
    let mut result = None;
    loop {
        let mut status = 0;
        let pid = sys::wait_any_nohang(&mut status);
        if pid == -(libc::EINTR as isize) {
            continue;
        }
        // None ended (0), none left (ECHILD), or an error retrying would not mend.
        if pid <= 0 {
            return result;
        }
        if pid == service as isize
            && let Some(code) = exit_code(status)
        {
            result = Some(code);
        }
    }
}

/// The init's exit code for a service that ended with wait `status`: its own
/// code, or 128+N after a death by signal N (real-time ones included). None for
/// a stop or continue report (not asked for, so not expected).
fn exit_code(status: c_int) -> Option<i32> {
    if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Some(128 + libc::WTERMSIG(status))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_argument_is_a_pid_above_one() {
        assert_eq!(service_pid(b"2"), Some(2));
        assert_eq!(service_pid(b"+4194304"), Some(4194304));
        for refused in [&b"1"[..], b"0", b"-5", b"", b"12a", b"99999999999", b"\xff"] {
            assert_eq!(service_pid(refused), None, "{refused:?}");
        }
        // SAFETY: a NUL-terminated literal.
        let bytes = unsafe { c_string_bytes(c"123".as_ptr()) };
        assert_eq!(bytes, b"123");
    }

    #[test]
    fn the_init_exits_with_the_code_or_128_plus_the_signal() {
        // Wait statuses as the kernel encodes them: code << 8, or the signal
        // (0x80 added for a core dump), or 0x7f for a stop.
        assert_eq!(exit_code(0), Some(0));
        assert_eq!(exit_code(3 << 8), Some(3));
        assert_eq!(exit_code(255 << 8), Some(255));
        assert_eq!(exit_code(libc::SIGTERM), Some(128 + 15));
        assert_eq!(exit_code(libc::SIGSEGV | 0x80), Some(128 + 11));
        // A real-time signal too (nix has no `Signal` for it).
        assert_eq!(
            exit_code(libc::SIGRTMIN() + 2),
            Some(128 + libc::SIGRTMIN() + 2)
        );
        assert_eq!(exit_code((libc::SIGSTOP << 8) | 0x7f), None);
        assert_eq!(exit_code(0xffff), None);
    }

    #[test]
    fn the_init_waits_for_the_signals_the_helper_blocked() {
        let all = SigSet::all();
        let set: &libc::sigset_t = all.as_ref();
        let set: *const libc::sigset_t = set;
        // SAFETY: glibc's sigset_t is 128 bytes, its first 8 the kernel's mask of
        // signals 1-64, bit N-1 for signal N.
        let first = unsafe { set.cast::<u64>().read_unaligned() };
        assert_eq!(first, sys::ALL_SIGNALS);
    }

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
