//! The fork server: one single-threaded `supd __forkserver` process that forks
//! each start's spawn helper, so a start costs a fork of a small process instead
//! of an exec of the whole supd binary (its loading, relocations and runtime
//! start-up, about 1 ms each time).
//!
//! supd is multithreaded and must not run Rust code in a child it forks itself,
//! so the server is started once with `posix_spawn` (a fresh, single-threaded
//! process, like the helper itself was) and then forks on request. Requests and
//! replies go over a SOCK_SEQPACKET pair: a request is one byte with the
//! helper's descriptors attached (SCM_RIGHTS), which the child puts at 0, 1, 2,
//! ... before becoming the helper, exactly as the `posix_spawn` of the helper
//! did; the reply is the child's pid, or a negative errno.
//!
//! The child is forked with CLONE_PARENT, so it is supd's child, not the
//! server's: the reaper waits for it (and registers it, under its lock, while
//! the request is answered), and the container's first process it clones with
//! CLONE_PARENT in turn is supd's child as well, as before.
//!
//! The server lives as long as its socket: when supd exits (or is killed) it
//! reads end-of-file and exits. A server that dies or stops answering is
//! replaced at the next start; meanwhile that start posix_spawns its helper.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, setsockopt, socketpair, sockopt,
};
use nix::sys::time::TimeVal;

use super::sys::dup_above;
use super::{HELPER_FD, helper};

/// The argv[1] that selects fork-server mode in the supd binary.
pub const FORK_SERVER_ARG: &str = "__forkserver";

/// The most descriptors a request carries (the helper's 0-4).
const MAX_FDS: usize = 8;

/// A server that takes longer than this to answer is taken for hung: killed,
/// replaced at the next start.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// supd's end of the running server, if one was started.
static SERVER: Mutex<Option<Server>> = Mutex::new(None);

struct Server {
    sock: OwnedFd,
    pidfd: Option<super::sys::Pidfd>,
}

/// Fork a spawn helper through the server of `exe` (a supd binary), with `fds` as
/// its descriptors 0, 1, 2, ...; the helper's pid. None when there is no working
/// server (the caller then posix_spawns the helper itself).
pub(super) fn fork_helper(exe: &CStr, fds: &[&OwnedFd]) -> Option<i32> {
    let mut server = SERVER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if server.is_none() {
        *server = start(exe).ok();
    }
    let running = server.as_ref()?;
    match request(&running.sock, fds) {
        Ok(pid) => Some(pid),
        Err(_) => {
            // Dead or hung: gone for good, replaced by the next start.
            if let Some(pidfd) = &running.pidfd {
                pidfd.kill();
            }
            *server = None;
            None
        }
    }
}

fn start(exe: &CStr) -> Result<Server, Errno> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    let timeout = TimeVal::new(REPLY_TIMEOUT.as_secs() as i64, 0);
    setsockopt(&ours, sockopt::ReceiveTimeout, &timeout)?;
    let devnull = nix::fcntl::open(
        "/dev/null",
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    let fds = [&devnull, &devnull, &devnull, &theirs];
    let pid = super::handover::posix_spawn_helper(exe, FORK_SERVER_ARG, "-", &[], &fds)?;
    Ok(Server {
        sock: ours,
        pidfd: super::sys::Pidfd::open(pid),
    })
}

/// One request and its reply.
fn request(sock: &OwnedFd, fds: &[&OwnedFd]) -> Result<i32, Errno> {
    let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let iov = [std::io::IoSlice::new(b"s")];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)?;
    let mut reply = [0u8; 4];
    let n = nix::sys::socket::recv(sock.as_raw_fd(), &mut reply, MsgFlags::empty())?;
    if n != reply.len() {
        return Err(Errno::EPIPE);
    }
    match i32::from_le_bytes(reply) {
        pid if pid > 0 => Ok(pid),
        e => Err(Errno::from_raw(-e)),
    }
}

/// Entry point of fork-server mode (`supd __forkserver -`), with its socket on
/// fd 3. Serves until supd closes the other end. Never returns.
pub fn main() -> ! {
    // SAFETY: supd passes the socket as fd 3 and nothing else in this fresh process
    // owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(HELPER_FD) };
    // Whatever supd's own parent left open without close-on-exec is not ours to
    // hold for as long as supd runs (and not the helpers' to inherit).
    // SAFETY: nothing in this fresh process owns a descriptor above the socket.
    if unsafe { super::sys::close_from(HELPER_FD as u32 + 1) }.is_err() {
        std::process::exit(1);
    }
    loop {
        let fds = match receive(&sock) {
            Ok(Some(fds)) => fds,
            Ok(None) => std::process::exit(0),
            Err(Errno::EINTR) => continue,
            Err(_) => std::process::exit(1),
        };
        let answer = match fork() {
            Ok(0) => become_helper(&fds),
            Ok(pid) => pid,
            Err(e) => -(e as i32),
        };
        drop(fds);
        let sent = nix::sys::socket::send(
            sock.as_raw_fd(),
            &answer.to_le_bytes(),
            MsgFlags::MSG_NOSIGNAL,
        );
        if sent.is_err() {
            std::process::exit(0);
        }
    }
}

/// The descriptors of one request; None at end of stream (supd is gone).
fn receive(sock: &OwnedFd) -> Result<Option<Vec<OwnedFd>>, Errno> {
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    if msg.bytes == 0 {
        return Ok(None);
    }
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(received) = c {
            // SAFETY: SCM_RIGHTS installed fresh descriptors that nothing else owns.
            fds.extend(
                received
                    .into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    Ok(Some(fds))
}

/// A fork-like clone whose child is the parent's sibling (supd's child). 0 in the
/// child, its pid in the server.
fn fork() -> Result<i32, Errno> {
    let flags = libc::CLONE_PARENT as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: the server is single-threaded, so a fork-like clone (no new stack, no
    // CLONE_VM) gives the child a consistent copy of the whole process, as fork does;
    // no pointer arguments are used.
    let rc = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    Errno::result(rc).map(|pid| pid as i32)
}

/// In the forked child: the request's descriptors become 0, 1, 2, ..., everything
/// else is closed (the server's socket too), a new session as the posix_spawn of
/// the helper gave it, then the helper itself.
fn become_helper(fds: &[OwnedFd]) -> ! {
    if place_descriptors(fds).is_err() || nix::unistd::setsid().is_err() {
        std::process::exit(127);
    }
    let _ = nix::sys::prctl::set_name(c"supd");
    helper::main()
}

fn place_descriptors(fds: &[OwnedFd]) -> Result<(), Errno> {
    // Copies above every target first, so no dup2 overwrites a later source.
    let lowest = fds.len() as RawFd;
    // Raw numbers: close_from below closes them, so no owner may drop them later.
    let copies = fds
        .iter()
        .map(|fd| dup_above(fd, lowest.max(MAX_FDS as RawFd)).map(IntoRawFd::into_raw_fd))
        .collect::<Result<Vec<RawFd>, _>>()?;
    for (target, copy) in copies.into_iter().enumerate() {
        // SAFETY: dup2(2) onto a small number: whatever held it (the server's socket,
        // a received descriptor) is never used again in this child, which becomes
        // the helper and then execs or exits.
        Errno::result(unsafe { libc::dup2(copy, target as RawFd) })?;
    }
    // SAFETY: as above: the descriptors above the targets belong to frames of the
    // server that this child never returns to.
    unsafe { super::sys::close_from(fds.len() as u32) }
}

/// Whether `arg` (argv[1]) selects fork-server mode.
pub fn is_mode(arg: &std::ffi::OsStr) -> bool {
    arg == FORK_SERVER_ARG
}
