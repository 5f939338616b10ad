//! Thin wrappers around the process and descriptor syscalls the spawn path needs
//! and nix does not offer in the form needed: posix_spawn with a new session,
//! pidfds, and descriptor flag helpers.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, fcntl};

/// A process handle that cannot be confused with a later process of the same pid.
pub(crate) struct Pidfd(OwnedFd);

impl Pidfd {
    pub(crate) fn open(pid: i32) -> Option<Pidfd> {
        // SAFETY: pidfd_open(2) with a plain pid and no flags.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        // SAFETY: a non-negative result is a fresh descriptor nothing else owns.
        (fd >= 0).then(|| Pidfd(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }))
    }

    pub(crate) fn kill(&self) {
        // SAFETY: pidfd_send_signal(2) on our own descriptor; ESRCH (already gone) is fine.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }
}

/// Make sure `fd` is not `target`: `dup2(fd, fd)` would keep close-on-exec set.
pub(crate) fn avoid_fd(fd: OwnedFd, target: RawFd) -> Result<OwnedFd, Errno> {
    if fd.as_raw_fd() != target {
        return Ok(fd);
    }
    let new = fcntl(&fd, FcntlArg::F_DUPFD_CLOEXEC(target + 1))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// posix_spawn `path` in a new session, with every signal at its default and none
/// blocked, after the `dup2` pairs `(from, to)`. glibc implements it with
/// clone(CLONE_VM|CLONE_VFORK) and runs only async-signal-safe code before exec,
/// which makes it safe from a multithreaded process and cheap from any process.
pub(crate) fn posix_spawn(
    path: &CStr,
    argv: &[&CStr],
    envp: &[&CStr],
    dup2: &[(RawFd, RawFd)],
) -> Result<i32, Errno> {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: plain libc calls on properly initialised, owned attribute objects; every
    // pointer passed stays alive until posix_spawn returns; the objects are destroyed
    // on every path.
    unsafe {
        let mut actions = std::mem::MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
        let mut attr = std::mem::MaybeUninit::<libc::posix_spawnattr_t>::uninit();
        check(libc::posix_spawn_file_actions_init(actions.as_mut_ptr()))?;
        if let Err(e) = check(libc::posix_spawnattr_init(attr.as_mut_ptr())) {
            libc::posix_spawn_file_actions_destroy(actions.as_mut_ptr());
            return Err(e);
        }
        let result = (|| {
            for (from, to) in dup2 {
                check(libc::posix_spawn_file_actions_adddup2(
                    actions.as_mut_ptr(),
                    *from,
                    *to,
                ))?;
            }
            let mut all = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
            libc::sigfillset(all.as_mut_ptr());
            let mut none = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
            libc::sigemptyset(none.as_mut_ptr());
            check(libc::posix_spawnattr_setsigdefault(
                attr.as_mut_ptr(),
                all.as_ptr(),
            ))?;
            check(libc::posix_spawnattr_setsigmask(
                attr.as_mut_ptr(),
                none.as_ptr(),
            ))?;
            let flags = (libc::POSIX_SPAWN_SETSIGDEF | libc::POSIX_SPAWN_SETSIGMASK)
                as libc::c_short
                | libc::POSIX_SPAWN_SETSID;
            check(libc::posix_spawnattr_setflags(attr.as_mut_ptr(), flags))?;
            let mut pid: libc::pid_t = 0;
            check(libc::posix_spawn(
                &mut pid,
                path.as_ptr(),
                actions.as_ptr(),
                attr.as_ptr(),
                argv_ptrs.as_ptr() as *const *mut libc::c_char,
                envp_ptrs.as_ptr() as *const *mut libc::c_char,
            ))?;
            Ok(pid)
        })();
        libc::posix_spawn_file_actions_destroy(actions.as_mut_ptr());
        libc::posix_spawnattr_destroy(attr.as_mut_ptr());
        result
    }
}

fn check(rc: libc::c_int) -> Result<(), Errno> {
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw(rc))
    }
}

/// Make fd 3 close-on-exec again in the helper (the dup2 of posix_spawn cleared it).
pub(crate) fn set_cloexec(fd: impl std::os::fd::AsFd) -> Result<(), Errno> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map(drop)
}
