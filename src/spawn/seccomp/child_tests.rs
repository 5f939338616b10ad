//! The installed filter, in a forked child: what a service really sees.
//!
//! The test binary is multithreaded, so the child only makes raw syscalls (no
//! allocation, no locks) and leaves with `_exit`. It reports one bit per passed
//! check through its exit status; bit 7 means setting up the filter failed.

use nix::errno::Errno;
use nix::sched::{CloneFlags, unshare};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{Pid, getpid};

use super::SeccompProgram;
use crate::unit::ContainerSpec;

const SETUP_FAILED: i32 = 0x80;

/// A check made under the filter: what it expects, and whether that happened.
type Check = (&'static str, fn() -> bool);

fn errno() -> i32 {
    Errno::last_raw()
}

/// Run `checks` (at most 7) in a forked child under the filter of a unit with
/// the default capabilities and assert that each passed.
fn assert_under_filter(checks: &[Check]) {
    assert!(checks.len() < 8, "one exit status bit per check");
    let prog = SeccompProgram::for_capabilities(&ContainerSpec::default().capabilities)
        .expect("filter compiles");
    // SAFETY: the child runs only `in_child`, which makes raw syscalls and _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", Errno::last());
    if pid == 0 {
        in_child(&prog, checks);
    }
    let status = match waitpid(Pid::from_raw(pid), None) {
        Ok(WaitStatus::Exited(_, code)) => code,
        other => panic!("child did not exit normally: {other:?}"),
    };
    assert_eq!(
        status & SETUP_FAILED,
        0,
        "installing the filter failed in the child (status {status:#x})"
    );
    let failed: Vec<&str> = checks
        .iter()
        .enumerate()
        .filter(|(bit, _)| status & (1 << bit) == 0)
        .map(|(_, (name, _))| *name)
        .collect();
    assert!(failed.is_empty(), "failed checks: {failed:?}");
}

fn in_child(prog: &SeccompProgram, checks: &[Check]) -> ! {
    let mut code = 0;
    if nix::sys::prctl::set_no_new_privs().is_err() {
        code = SETUP_FAILED;
    } else if prog.install().is_err() {
        code = SETUP_FAILED | 1;
    } else {
        for (bit, (_, check)) in checks.iter().enumerate() {
            if check() {
                code |= 1 << bit;
            }
        }
    }
    // SAFETY: leaves the forked child without running the parent's atexit handlers.
    unsafe { libc::_exit(code) }
}

/// A raw fork-like `clone` (no new stack), with `CLONE_NEWNS` if `new_mnt`. A
/// child that appears exits at once with 7; Ok(it did), or the clone's errno.
fn raw_clone(new_mnt: bool) -> Result<bool, i32> {
    let mut flags = libc::SIGCHLD as libc::c_long;
    if new_mnt {
        flags |= libc::CLONE_NEWNS as libc::c_long;
    }
    // SAFETY: without CLONE_VM this is a fork; the new child only calls _exit.
    let r = unsafe { libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) };
    match r {
        // SAFETY: leaves the new child at once.
        0 => unsafe { libc::_exit(7) },
        -1 => Err(errno()),
        pid => Ok(matches!(
            waitpid(Pid::from_raw(pid as libc::pid_t), None),
            Ok(WaitStatus::Exited(_, 7))
        )),
    }
}

fn setns_is_eperm() -> bool {
    // SAFETY: setns on fd -1 has nothing to act on (the kernel would say EBADF).
    let r = unsafe { libc::setns(-1, 0) };
    r == -1 && errno() == libc::EPERM
}

fn clone3_is_enosys() -> bool {
    // SAFETY: no argument structure (size 0): refused before anything is read
    // (the kernel itself would say EINVAL).
    let r = unsafe { libc::syscall(libc::SYS_clone3, 0, 0) };
    r == -1 && errno() == libc::ENOSYS
}

fn keyctl_is_eperm() -> bool {
    const KEYCTL_GET_KEYRING_ID: libc::c_long = 0;
    const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;
    // SAFETY: KEYCTL_GET_KEYRING_ID takes and returns plain integers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_GET_KEYRING_ID,
            KEY_SPEC_SESSION_KEYRING,
            0,
        )
    };
    r == -1 && errno() == libc::EPERM
}

fn personality(persona: libc::c_long) -> (libc::c_long, i32) {
    // SAFETY: personality takes a plain integer; a changed persona only affects
    // this short-lived child.
    let r = unsafe { libc::syscall(libc::SYS_personality, persona) };
    (r, errno())
}

fn mount_is_eperm() -> bool {
    // SAFETY: all-zero arguments: the filter refuses before the kernel reads any
    // (which would fail with EFAULT, not touch our memory).
    let r = unsafe { libc::syscall(libc::SYS_mount, 0, 0, 0, 0, 0) };
    r == -1 && errno() == libc::EPERM
}

#[test]
fn installed_filter_denies_namespaces_in_child() {
    assert_under_filter(&[
        ("unshare(CLONE_NEWUTS) -> EPERM", || {
            unshare(CloneFlags::CLONE_NEWUTS) == Err(Errno::EPERM)
        }),
        // A no-op the kernel always allows: this is the filter.
        ("unshare(0) -> EPERM", || {
            unshare(CloneFlags::empty()) == Err(Errno::EPERM)
        }),
        ("setns -> EPERM", setns_is_eperm),
        ("clone(CLONE_NEWNS) -> EPERM", || {
            raw_clone(true) == Err(libc::EPERM)
        }),
        ("clone(SIGCHLD) works", || raw_clone(false) == Ok(true)),
        ("clone3 -> ENOSYS", clone3_is_enosys),
        ("getpid works", || getpid().as_raw() > 0),
    ]);
}

fn io_uring_setup_is_eperm() -> bool {
    // struct io_uring_params is 120 bytes; all zero asks for defaults.
    let mut params = [0u64; 15];
    // SAFETY: `params` is a writable buffer of the size the kernel expects.
    let r = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1, params.as_mut_ptr()) };
    r == -1 && errno() == libc::EPERM
}

fn kcmp_is_eperm() -> bool {
    const KCMP_FILE: libc::c_long = 0;
    let me = libc::c_long::from(getpid().as_raw());
    // SAFETY: kcmp compares two descriptors by number; nothing is read or written.
    let r = unsafe { libc::syscall(libc::SYS_kcmp, me, me, KCMP_FILE, 0, 0) };
    r == -1 && errno() == libc::EPERM
}

/// `open_tree_attr` (Linux 6.15), newer than libc's constants.
const SYS_OPEN_TREE_ATTR: libc::c_long = 467;

fn open_tree_attr_is_eperm() -> bool {
    // SAFETY: a NUL-terminated path and no attribute structure (size 0); a
    // descriptor it returned would only be leaked in this short-lived child.
    let r = unsafe {
        libc::syscall(
            SYS_OPEN_TREE_ATTR,
            libc::AT_FDCWD,
            c"/".as_ptr(),
            0,
            std::ptr::null::<u8>(),
            0,
        )
    };
    r == -1 && errno() == libc::EPERM
}

/// A syscall number the filter does not know fails like an unimplemented one.
fn unknown_is_enosys(nr: libc::c_long) -> bool {
    // SAFETY: a syscall the filter answers itself; all-zero arguments.
    let r = unsafe { libc::syscall(nr, 0, 0, 0, 0, 0) };
    r == -1 && errno() == libc::ENOSYS
}

/// `socket(family, SOCK_DGRAM or SOCK_SEQPACKET)`: Ok(()) if a socket was made
/// (and closed), else the errno.
fn socket(family: libc::c_int) -> Result<(), i32> {
    for kind in [libc::SOCK_DGRAM, libc::SOCK_SEQPACKET] {
        // SAFETY: plain integers in, a new descriptor (or -1) out.
        let fd = unsafe { libc::socket(family, kind | libc::SOCK_CLOEXEC, 0) };
        if fd >= 0 {
            // SAFETY: closes the descriptor just made, owned by nobody else.
            unsafe { libc::close(fd) };
            return Ok(());
        }
        if errno() != libc::ESOCKTNOSUPPORT && errno() != libc::EPROTOTYPE {
            return Err(errno());
        }
    }
    Err(errno())
}

/// A real program under the filter: `sh -c 'ls / && cat /proc/self/status'`,
/// forked and exec'd from the filtered child, exits 0.
fn shell_runs() -> bool {
    let argv = [
        c"sh".as_ptr(),
        c"-c".as_ptr(),
        c"ls / >/dev/null && grep -q Seccomp:.2 /proc/self/status".as_ptr(),
        std::ptr::null(),
    ];
    let envp = [c"PATH=/usr/bin:/bin".as_ptr(), std::ptr::null()];
    // SAFETY: the new child only calls execve and _exit.
    match unsafe { libc::fork() } {
        0 => {
            // SAFETY: NUL-terminated strings in NULL-terminated arrays that outlive
            // the call.
            unsafe { libc::execve(c"/bin/sh".as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            // SAFETY: leaves the new child when the exec failed.
            unsafe { libc::_exit(127) }
        }
        -1 => false,
        pid => matches!(
            waitpid(Pid::from_raw(pid), None),
            Ok(WaitStatus::Exited(_, 0))
        ),
    }
}

#[test]
fn installed_filter_denies_host_facilities_in_child() {
    assert_under_filter(&[
        ("keyctl -> EPERM", keyctl_is_eperm),
        ("personality(query) works", || {
            personality(0xffff_ffff).0 >= 0
        }),
        ("personality(ADDR_NO_RANDOMIZE) -> EPERM", || {
            personality(0x0040000) == (-1, libc::EPERM)
        }),
        ("mount -> EPERM", mount_is_eperm),
        ("io_uring_setup -> EPERM", io_uring_setup_is_eperm),
        ("kcmp -> EPERM", kcmp_is_eperm),
        ("open_tree_attr -> EPERM", open_tree_attr_is_eperm),
    ]);
}

#[test]
fn installed_filter_answers_new_syscalls_and_sockets_in_child() {
    assert_under_filter(&[
        // file_getattr (Linux 6.17) is newer than the lists.
        ("file_getattr -> ENOSYS", || unknown_is_enosys(468)),
        ("made-up syscall 1000 -> ENOSYS", || unknown_is_enosys(1000)),
        ("socket(AF_ALG) -> EPERM", || {
            socket(libc::AF_ALG) == Err(libc::EPERM)
        }),
        ("socket(AF_VSOCK) -> EPERM", || {
            socket(libc::AF_VSOCK) == Err(libc::EPERM)
        }),
        ("socket(AF_INET) works", || socket(libc::AF_INET).is_ok()),
        ("sh runs ls", shell_runs),
        ("getpid works", || getpid().as_raw() > 0),
    ]);
}
