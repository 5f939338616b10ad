//! `sup-init`, the program each container's init becomes (see `init`), and how
//! it is exec'd without handing the container a way to the host's file.
//!
//! After the exec, `/proc/1/exe` inside the container names the program, and
//! the service, with the same uid as the init, may open it: exec'd from the
//! host's `/usr/bin/sup-init`, a root service could change that file's owner,
//! mode or file capabilities (what runc's CVE-2019-5736 was about). So the init
//! execs a sealed in-memory copy instead (a memfd, sealed against any write):
//! the container can reach only that copy. One copy serves every start: the
//! fork server makes it once and its helpers inherit it; a helper started
//! without the server makes its own. Before the exec, the container's first
//! process is not dumpable (`PR_SET_DUMPABLE`), so `/proc/1/exe` (supd's binary
//! then) is closed to the container, and `sup-init` makes itself so again first
//! thing.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, SealFlag, fcntl};

/// The init program's file name, next to supd's own binary.
pub const INIT_PROGRAM: &str = "sup-init";

/// The fork server's sealed copy kept at this descriptor number or above, clear
/// of the helper's 0-4 (see `forkserver::place_descriptors`).
pub(super) const SHARED_FD_MIN: RawFd = 64;

/// The fork server's copy, inherited by the helpers it forks.
static SHARED: OnceLock<Option<OwnedFd>> = OnceLock::new();

/// Where the init program is: beside the running supd (or helper, a copy of it).
pub fn program_path() -> Option<PathBuf> {
    let exe = std::fs::read_link("/proc/self/exe").ok()?;
    Some(exe.parent()?.join(INIT_PROGRAM))
}

/// In the fork server, before it forks anything: make the shared copy. Its
/// descriptor number, for the forked helpers to keep open.
pub(super) fn make_shared() -> Option<RawFd> {
    SHARED
        .get_or_init(|| sealed_copy().and_then(|fd| super::sys::dup_above(&fd, SHARED_FD_MIN).ok()))
        .as_ref()
        .map(|fd| fd.as_raw_fd())
}

/// A close-on-exec handle on a sealed copy of the init program, taken while the
/// helper still sees the host's files; None when it is not installed (the
/// helper is the init then).
pub fn open_program() -> Option<OwnedFd> {
    match SHARED.get() {
        Some(Some(shared)) => super::sys::dup_above(shared, SHARED_FD_MIN).ok(),
        _ => sealed_copy(),
    }
}

/// The program's bytes in a memfd that nothing can write, shrink or grow.
fn sealed_copy() -> Option<OwnedFd> {
    let mut file = std::fs::File::open(program_path()?).ok()?;
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: memfd_create(2) with a NUL-terminated name and flags; no memory of
    // ours is handed over.
    let raw = unsafe { libc::memfd_create(c"sup-init".as_ptr(), flags) };
    if raw < 0 {
        return None;
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let memfd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut copy = std::fs::File::from(memfd);
    std::io::copy(&mut file, &mut copy).ok()?;
    copy.flush().ok()?;
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    fcntl(&copy, FcntlArg::F_ADD_SEALS(seals)).ok()?;
    Some(OwnedFd::from(copy))
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

/// Close `/proc/self` (and so `/proc/1/exe`) to processes of the same uid
/// without CAP_SYS_PTRACE: the container's first process before it starts
/// anything, and `sup-init` when it starts.
pub fn not_dumpable() -> Result<(), Errno> {
    nix::sys::prctl::set_dumpable(false)
}
