//! The process and descriptor syscalls of the spawn path, as safe functions:
//! posix_spawn with a new session (through nix), pidfds and close_range (which nix
//! lacks), and descriptor flags.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags};
use nix::sys::signal::SigSet;

use super::{SpawnError, Step};

/// A process handle that cannot be confused with a later process of the same pid.
#[derive(Debug)]
pub(crate) struct Pidfd(OwnedFd);

impl Pidfd {
    pub(crate) fn open(pid: i32) -> Option<Pidfd> {
        // SAFETY: pidfd_open(2) with a plain pid and no flags.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        // SAFETY: a non-negative result is a fresh descriptor nothing else owns.
        (fd >= 0).then(|| Pidfd(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }))
    }

    /// Take ownership of a pidfd received from elsewhere (the helper's CLONE_PIDFD).
    pub(crate) fn from_owned(fd: OwnedFd) -> Pidfd {
        Pidfd(fd)
    }

    pub(crate) fn into_owned(self) -> OwnedFd {
        self.0
    }

    pub(crate) fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.0)
    }

    pub(crate) fn kill(&self) {
        pidfd_kill(&self.0);
    }
}

/// SIGKILL the process a pidfd names; ESRCH (already gone) is fine.
pub(crate) fn pidfd_kill(fd: &OwnedFd) {
    // SAFETY: pidfd_send_signal(2) on a descriptor we own, with no siginfo.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        );
    }
}

/// A close-on-exec copy of `fd` numbered `lowest` or above. (Also what keeps a
/// source from being its own target: `dup2(fd, fd)` would leave close-on-exec set.)
pub(crate) fn dup_above(fd: impl std::os::fd::AsFd, lowest: RawFd) -> Result<OwnedFd, Errno> {
    let new = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(lowest))?;
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
    let mut actions = PosixSpawnFileActions::init()?;
    for &(from, to) in dup2 {
        actions.add_dup2(from, to)?;
    }
    let mut attr = PosixSpawnAttr::init()?;
    attr.set_sigdefault(&SigSet::all())?;
    attr.set_sigmask(&SigSet::empty())?;
    // nix has no name for glibc's POSIX_SPAWN_SETSID; the bit is passed through.
    let setsid = PosixSpawnFlags::from_bits_retain(libc::POSIX_SPAWN_SETSID.into());
    attr.set_flags(
        PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF | PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK | setsid,
    )?;
    nix::spawn::posix_spawn(path, &actions, &attr, argv, envp).map(|pid| pid.as_raw())
}

/// Let `fd` survive exec.
pub(crate) fn clear_cloexec(fd: RawFd) -> Result<(), Errno> {
    // SAFETY: fcntl(F_SETFD) only changes a flag of a descriptor number.
    Errno::result(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }).map(drop)
}

/// Make fd 3 close-on-exec again in the helper (the dup2 of posix_spawn cleared it).
pub(crate) fn set_cloexec(fd: impl std::os::fd::AsFd) -> Result<(), Errno> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map(drop)
}

/// Mark every descriptor from `first` up close-on-exec.
pub(crate) fn cloexec_from(first: u32) -> Result<(), Errno> {
    let flags = libc::CLOSE_RANGE_CLOEXEC as libc::c_int;
    // SAFETY: only sets a flag on descriptors; nothing is closed under a Rust owner.
    Errno::result(unsafe { libc::close_range(first, u32::MAX, flags) }).map(drop)
}

/// Close every descriptor from `first` up.
///
/// # Safety
///
/// Whatever owns one of those descriptors must never use or drop it afterwards.
pub(crate) unsafe fn close_from(first: u32) -> Result<(), Errno> {
    // SAFETY: the caller vouches for the owners.
    unsafe { close_between(first, u32::MAX) }
}

/// Close every descriptor from `first` to `last`, both included.
///
/// # Safety
///
/// As for [`close_from`].
pub(crate) unsafe fn close_between(first: u32, last: u32) -> Result<(), Errno> {
    // SAFETY: close_range touches no memory; the caller vouches for the owners.
    Errno::result(unsafe { libc::close_range(first, last, 0) }).map(drop)
}

/// Wait until `fd` is readable (or hung up, or in error: a read then says which),
/// or `deadline` has passed; false for the deadline. A pidfd is readable once its
/// process has exited.
pub(crate) fn readable_by(fd: std::os::fd::BorrowedFd<'_>, deadline: std::time::Instant) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        // poll takes at most u16::MAX ms: a longer wait is several.
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut polled = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut polled, PollTimeout::from(ms)) {
            Ok(0) if left.is_zero() => return false,
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) | Err(_) => return true,
        }
    }
}

/// Move the calling process into a cgroup in each hierarchy by writing `0` into
/// the given files (`CgroupTree::join_files`): a hierarchy whose file does not
/// exist (the unit has no cgroup there) is skipped. The caller must be
/// single-threaded, since a v1 `tasks` file moves only the writing thread.
pub(super) fn join_cgroup<P: AsRef<std::path::Path>>(files: &[P]) -> Result<(), SpawnError> {
    use nix::fcntl::{OFlag, open};
    for file in files {
        let file = file.as_ref();
        let shown = file.to_string_lossy();
        let flags = OFlag::O_WRONLY | OFlag::O_CLOEXEC;
        let fd = match open(file, flags, nix::sys::stat::Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(SpawnError::new(Step::Cgroup, Some(&shown), Some(e), "open")),
        };
        nix::unistd::write(&fd, b"0")
            .map_err(|e| SpawnError::new(Step::Cgroup, Some(&shown), Some(e), "join"))?;
    }
    Ok(())
}
