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
/// replaced at the next start. A fork takes well under a millisecond, but on a
/// loaded machine a process may wait long for a CPU, and a start refused for
/// that is worse than a reaper held up (the request is made under the reaper's
/// lock, so it waits this long at worst, only for a server really hung).
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// The first answer comes from a server just started: posix_spawn of the supd
/// binary and its sealed copy of sup-init first (over a second seen for a debug
/// build with the machine's two CPUs busy).
const FIRST_REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// supd's end of the running server, if one was started.
static SERVER: Mutex<Option<Server>> = Mutex::new(None);

struct Server {
    sock: OwnedFd,
    pid: i32,
    pidfd: Option<super::sys::Pidfd>,
    /// It has answered a request: up and serving.
    answered: bool,
}

/// How a request failed.
enum Failed {
    /// Nothing reached the server (a datagram is sent whole or not at all):
    /// the descriptors are unused and may be given to another helper.
    NotSent,
    /// The server may have forked a helper that now holds the descriptors, or
    /// said why it could not: the start fails; the descriptors must not serve
    /// another helper (two would read the same plan).
    AfterSend(Errno),
}

/// A helper the server forked.
pub(super) struct Forked {
    pub pid: i32,
    /// Created inside the cgroup it was asked for (`CLONE_INTO_CGROUP`).
    pub in_cgroup: bool,
}

/// Fork a spawn helper through the server of `exe` (a supd binary), with `fds` as
/// its descriptors 0, 1, 2, ..., inside `cgroup` (an open cgroup v2 directory)
/// where the kernel allows. None when no request reached a server (the caller
/// then posix_spawns the helper itself with the same descriptors); an error when
/// one did and no helper can be vouched for (the start fails).
pub(super) fn fork_helper(
    exe: &CStr,
    fds: &[&OwnedFd],
    cgroup: Option<&OwnedFd>,
) -> Option<Result<Forked, Errno>> {
    let mut server = SERVER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if server.is_none() {
        *server = start(exe).ok();
    }
    let running = server.as_mut()?;
    let timeout = match running.answered {
        true => REPLY_TIMEOUT,
        false => FIRST_REPLY_TIMEOUT,
    };
    let failed = match request(&running.sock, fds, cgroup, timeout) {
        Ok(forked) => {
            running.answered = true;
            return Some(Ok(forked));
        }
        // The server is fine; the kernel refused the fork (pids, memory).
        Err(Failed::AfterSend(e)) if e != Errno::EPIPE && e != Errno::ETIMEDOUT => {
            running.answered = true;
            return Some(Err(e));
        }
        Err(failed) => failed,
    };
    // Dead or hung: gone for good, replaced by the next start. A helper it may
    // have forked reads end-of-file on its plan socket, once the failed start
    // drops it, and exits.
    if let Some(pidfd) = &running.pidfd {
        pidfd.kill();
    }
    *server = None;
    match failed {
        Failed::NotSent => None,
        Failed::AfterSend(e) => Some(Err(e)),
    }
}

/// Stop the server (it exits at end-of-file) and say which process it was, so
/// that supd's last sweep of its children neither kills nor reports it.
pub fn shut_down() -> Option<i32> {
    let mut server = SERVER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    server.take().map(|s| s.pid)
}

fn start(exe: &CStr) -> Result<Server, Errno> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    // Each receive gives up after a second, so `request` sees its own deadline
    // (and signals do not extend it) within a second.
    setsockopt(&ours, sockopt::ReceiveTimeout, &TimeVal::new(1, 0))?;
    let devnull = nix::fcntl::open(
        "/dev/null",
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    let fds = [&devnull, &devnull, &devnull, &theirs];
    let pid = super::handover::posix_spawn_helper(exe, FORK_SERVER_ARG, "-", &[], &fds)?;
    Ok(Server {
        sock: ours,
        pid,
        pidfd: super::sys::Pidfd::open(pid),
        answered: false,
    })
}

/// A request's one byte: whether its last descriptor is a cgroup to fork into.
const PLAIN: u8 = b's';
const INTO_CGROUP: u8 = b'c';

/// One request and its reply: the child's pid (or a negative errno) and whether
/// it was created inside the cgroup, as two little-endian i32. A signal does
/// not end the wait (the receive timeout is not restarted after a handler);
/// the deadline (`timeout` from now) does, as ETIMEDOUT; a server gone, as EPIPE.
fn request(
    sock: &OwnedFd,
    fds: &[&OwnedFd],
    cgroup: Option<&OwnedFd>,
    timeout: Duration,
) -> Result<Forked, Failed> {
    let mut raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    raw.extend(cgroup.map(|fd| fd.as_raw_fd()));
    let kind = [if cgroup.is_some() { INTO_CGROUP } else { PLAIN }];
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let iov = [std::io::IoSlice::new(&kind)];
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => break,
            Err(Errno::EINTR) => continue,
            Err(_) => return Err(Failed::NotSent),
        }
    }
    let deadline = std::time::Instant::now() + timeout;
    let mut reply = [0u8; 8];
    let n = loop {
        match nix::sys::socket::recv(sock.as_raw_fd(), &mut reply, MsgFlags::empty()) {
            Ok(n) => break n,
            Err(Errno::EINTR | Errno::EAGAIN) if std::time::Instant::now() < deadline => {}
            Err(Errno::EINTR | Errno::EAGAIN) => return Err(Failed::AfterSend(Errno::ETIMEDOUT)),
            Err(_) => return Err(Failed::AfterSend(Errno::EPIPE)),
        }
    };
    let (pid, placed) = match (n, reply.split_at(4)) {
        (8, (pid, placed)) => (pid, placed),
        _ => return Err(Failed::AfterSend(Errno::EPIPE)),
    };
    let word = |b: &[u8]| <[u8; 4]>::try_from(b).map(i32::from_le_bytes);
    match (word(pid), word(placed)) {
        (Ok(pid), Ok(placed)) if pid > 0 => Ok(Forked {
            pid,
            in_cgroup: placed == 1,
        }),
        // The server's own fork failed (EAGAIN at pids.max, ENOMEM): it is fine.
        (Ok(e), _) if e < 0 => Err(Failed::AfterSend(Errno::from_raw(-e))),
        _ => Err(Failed::AfterSend(Errno::EPIPE)),
    }
}

/// Entry point of fork-server mode (`supd __forkserver -`), with its socket on
/// fd 3. Serves until supd closes the other end. Never returns.
pub fn main() -> ! {
    // SAFETY: supd passes the socket as fd 3 and nothing else in this fresh process
    // owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(HELPER_FD) };
    // Named for ps and top (exec'd as /proc/self/exe, it would be "exe").
    let _ = nix::sys::prctl::set_name(c"sup-forkserver");
    // Whatever supd's own parent left open without close-on-exec is not ours to
    // hold for as long as supd runs (and not the helpers' to inherit).
    // SAFETY: nothing in this fresh process owns a descriptor above the socket.
    if unsafe { super::sys::close_from(HELPER_FD as u32 + 1) }.is_err() {
        std::process::exit(1);
    }
    // The sealed copy of sup-init every helper forked here execs its init from.
    let shared = super::init_program::make_shared();
    loop {
        let (kind, mut fds) = match receive(&sock) {
            Ok(Some(request)) => request,
            Ok(None) => std::process::exit(0),
            Err(Errno::EINTR) => continue,
            Err(_) => std::process::exit(1),
        };
        let cgroup = match kind {
            INTO_CGROUP => fds.pop(),
            _ => None,
        };
        // Into the cgroup where the kernel can (5.7 and later, cgroup v2); any
        // refusal leaves the helper to move itself in, as without a cgroup.
        let (forked, in_cgroup) = match cgroup.as_ref().map(fork_into) {
            Some(Ok(pid)) => (Ok(pid), true),
            _ => (fork(), false),
        };
        let answer = match forked {
            Ok(0) => become_helper(&fds, shared, in_cgroup),
            Ok(pid) => pid,
            Err(e) => -(e as i32),
        };
        drop((fds, cgroup));
        let mut reply = [0u8; 8];
        reply[..4].copy_from_slice(&answer.to_le_bytes());
        reply[4..].copy_from_slice(&i32::from(in_cgroup).to_le_bytes());
        let sent = nix::sys::socket::send(sock.as_raw_fd(), &reply, MsgFlags::MSG_NOSIGNAL);
        if sent.is_err() {
            std::process::exit(0);
        }
    }
}

/// The kind and descriptors of one request; None at end of stream (supd is gone).
fn receive(sock: &OwnedFd) -> Result<Option<(u8, Vec<OwnedFd>)>, Errno> {
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
    Ok(Some((byte[0], fds)))
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

/// `fork` with the child created inside the cgroup `dir` (`clone3` with
/// `CLONE_INTO_CGROUP`): no migration afterwards, which on a busy host is the
/// costly part of a placement.
fn fork_into(dir: &OwnedFd) -> Result<i32, Errno> {
    // libc's constant is deprecated for its overflowing type; the kernel's value.
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    // SAFETY: clone_args is plain integers; all zero is its "nothing asked" value.
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.flags = libc::CLONE_PARENT as u64 | CLONE_INTO_CGROUP;
    // With CLONE_PARENT the child's exit signal is the server's own (SIGCHLD to
    // supd); clone3 wants 0 here.
    args.exit_signal = 0;
    args.cgroup = dir.as_raw_fd() as u64;
    // SAFETY: as for `fork`: single-threaded, no new stack; the kernel reads
    // `args` (alive for the call) of the size given.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        )
    };
    Errno::result(rc).map(|pid| pid as i32)
}

/// In the forked child: the request's descriptors become 0, 1, 2, ..., everything
/// else is closed (the server's socket too), then the helper itself. No new
/// session here: the helper makes the one the service needs (`helper::run`), and
/// until then it stays in the server's, which has no terminal either. A
/// container start's helper only clones the container, whose process makes its
/// own session; a `setsid` here too would give that start a second scheduler
/// autogroup to create and free, and a reschedule (docs/benchmarks.md: a
/// containerised restart 0.3-0.5 ms faster without it).
fn become_helper(fds: &[OwnedFd], keep: Option<RawFd>, in_cgroup: bool) -> ! {
    if place_descriptors(fds, keep).is_err() {
        std::process::exit(127);
    }
    let _ = nix::sys::prctl::set_name(c"supd");
    helper::main(in_cgroup)
}

fn place_descriptors(fds: &[OwnedFd], keep: Option<RawFd>) -> Result<(), Errno> {
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
    let first = fds.len() as u32;
    match keep
        .and_then(|k| u32::try_from(k).ok())
        .filter(|k| *k > first)
    {
        // The shared sup-init copy stays (it is close-on-exec: the helper's exec
        // of the service drops it).
        Some(k) => {
            // SAFETY: as above: the descriptors above the targets belong to frames
            // of the server that this child never returns to.
            unsafe { super::sys::close_between(first, k - 1) }?;
            // SAFETY: as above.
            unsafe { super::sys::close_between(k + 1, u32::MAX) }
        }
        // SAFETY: as above.
        None => unsafe { super::sys::close_from(first) },
    }
}

/// Whether `arg` (argv[1]) selects fork-server mode.
pub fn is_mode(arg: &std::ffi::OsStr) -> bool {
    arg == FORK_SERVER_ARG
}
