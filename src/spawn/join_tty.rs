//! `supctl exec -t` in the join helper: the command's terminal is a pty of the
//! container's own (opened at the container's `/dev/ptmx`, so `tty` names it in
//! the container's `/dev/pts`, which a pty of the host's is not part of when the
//! unit has a `/dev` of its own). The helper copies between it and the client's
//! terminal (its own fds 0-2: supctl's pty, made raw here, so that only the
//! container's pty interprets keys), passes window size changes on (it takes the
//! client's terminal as its controlling one, so a resize reaches it as SIGWINCH),
//! and, like `run_command` without a terminal, answers the command's status or
//! kills its process group when supd (the client) hangs up.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, killpg, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::stat::Mode;
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, dup2_stderr, dup2_stdin, dup2_stdout, fork};

use super::join::{JoinPlan, encode_result};
use super::join_command::own_session;
use super::sys::Pidfd;
use super::{SpawnError, Step};

/// How long output is still copied once the command has ended, while something
/// it started holds the terminal open.
const DRAIN: Duration = Duration::from_millis(300);
/// Bytes waiting to be copied, in each direction.
const BUFFER: usize = 16 * 1024;

/// Run the command on a pty of the container's, relaying to the client's.
pub(super) fn run(plan: &JoinPlan, mut sock: &UnixStream) -> Result<(), SpawnError> {
    let (master, slave) = open_pty()?;
    let client = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| SpawnError::io(Step::Dup, None, &e, "the client's terminal"))?;
    take_client_terminal(client.as_fd())?;
    let signals = signal_fd()?;
    copy_size(client.as_fd(), master.as_fd());
    // SAFETY: the helper is single-threaded; the child only sets up its session
    // and execs (or exits).
    let child = match unsafe { fork() }
        .map_err(|e| SpawnError::new(Step::Clone, None, Some(e), "exec"))?
    {
        ForkResult::Child => {
            drop((master, client, signals));
            let error =
                match on_terminal(slave).and_then(|()| super::helper::exec_service(&plan.launch)) {
                    Ok(never) => match never {},
                    Err(e) => e,
                };
            eprintln!("supd: {error}");
            std::process::exit(127);
        }
        ForkResult::Parent { child } => child,
    };
    drop(slave);
    let status = relay(child, &master, &client, &signals, sock);
    match status {
        Some(status) => sock
            .write_all(&encode_result(status, b""))
            .map_err(|e| SpawnError::io(Step::SendPlan, None, &e, "status")),
        None => Ok(()),
    }
}

/// A new pty of the container's devpts: its master (non-blocking) and slave.
fn open_pty() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    let fail = |e, what: &str| SpawnError::new(Step::Open, Some("/dev/ptmx"), Some(e), what);
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    let master = open("/dev/ptmx", flags, Mode::empty()).map_err(|e| fail(e, "open"))?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int we own.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } != 0 {
        return Err(fail(Errno::last(), "unlock"));
    }
    let peer = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes open flags and returns a new descriptor.
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, peer) };
    if fd < 0 {
        return Err(fail(Errno::last(), "open the slave"));
    }
    // SAFETY: a fresh descriptor nothing else owns.
    let slave = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    Ok((master, slave))
}

/// The client's terminal becomes the helper's controlling terminal (so a resize
/// reaches it as SIGWINCH), raw and non-blocking: a plain pipe of bytes.
fn take_client_terminal(client: BorrowedFd<'_>) -> Result<(), SpawnError> {
    // The helper leads a session of its own already (it was spawned so), without
    // a controlling terminal.
    // SAFETY: TIOCSCTTY on the client's terminal with argument 0.
    if unsafe { libc::ioctl(client.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        let e = Errno::last();
        return Err(SpawnError::new(Step::Setsid, None, Some(e), "TIOCSCTTY"));
    }
    if let Ok(mut raw) = tcgetattr(client) {
        cfmakeraw(&mut raw);
        let _ = tcsetattr(client, SetArg::TCSANOW, &raw);
    }
    set_nonblocking(client)
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> Result<(), SpawnError> {
    let fail = |e| SpawnError::new(Step::Fcntl, None, Some(e), "O_NONBLOCK");
    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).map_err(fail)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(flags))
        .map(drop)
        .map_err(fail)
}

/// SIGWINCH (a resize) and SIGHUP (the client's terminal hung up), taken from a
/// descriptor instead of handlers; the child unblocks them before its exec.
fn signal_fd() -> Result<SignalFd, SpawnError> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGWINCH);
    set.add(Signal::SIGHUP);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .map_err(|e| SpawnError::new(Step::Sigprocmask, None, Some(e), ""))?;
    SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| SpawnError::new(Step::Sigprocmask, None, Some(e), "signalfd"))
}

/// The client's window size onto the container's pty (whose foreground process
/// group the kernel then tells with SIGWINCH).
fn copy_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    // SAFETY: a zeroed winsize is a valid value.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize we own.
    if unsafe { libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } == 0 {
        // SAFETY: TIOCSWINSZ reads it.
        unsafe { libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
}

/// In the child: a session of its own whose controlling terminal is the slave,
/// as its stdin, stdout and stderr.
fn on_terminal(slave: OwnedFd) -> Result<(), SpawnError> {
    let dup = |e| SpawnError::new(Step::Dup, None, Some(e), "terminal");
    dup2_stdin(&slave).map_err(dup)?;
    dup2_stdout(&slave).map_err(dup)?;
    dup2_stderr(&slave).map_err(dup)?;
    drop(slave);
    own_session(true)
}

/// Bytes read from one side, waiting to be written to the other.
struct Pending {
    buf: Vec<u8>,
    /// The side read from has ended.
    closed: bool,
}

impl Pending {
    fn new() -> Self {
        Pending {
            buf: Vec::with_capacity(BUFFER),
            closed: false,
        }
    }

    /// Read what `from` has, while there is room; false once it has ended.
    fn fill(&mut self, from: BorrowedFd<'_>) {
        let mut chunk = [0u8; 4096];
        while self.buf.len() < BUFFER {
            match nix::unistd::read(from, &mut chunk) {
                Ok(0) => {
                    self.closed = true;
                    return;
                }
                Ok(n) => self
                    .buf
                    .extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return,
                // EIO: the pty has no other end any more.
                Err(_) => {
                    self.closed = true;
                    return;
                }
            }
        }
    }

    /// Write what `to` takes; false if it is gone.
    fn drain(&mut self, to: BorrowedFd<'_>) -> bool {
        while !self.buf.is_empty() {
            match nix::unistd::write(to, &self.buf) {
                Ok(n) => {
                    self.buf.drain(..n);
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return true,
                Err(_) => {
                    self.buf.clear();
                    return false;
                }
            }
        }
        true
    }
}

/// What the relay waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// The client's terminal (the helper's fds 0-2).
    Client,
    /// The container's pty.
    Master,
    Signals,
    Supd,
    Child,
}

/// Copy between the two terminals until the command has ended (its status) or
/// supd or the client hung up (None: the command's process group is killed).
fn relay(
    child: Pid,
    master: &OwnedFd,
    client: &OwnedFd,
    signals: &SignalFd,
    sock: &UnixStream,
) -> Option<i32> {
    let pidfd = Pidfd::open(child.as_raw());
    let mut input = Pending::new();
    let mut output = Pending::new();
    let mut status = None;
    let mut ended_at: Option<Instant> = None;
    let mut hung_up = false;
    loop {
        if let Some(at) = ended_at {
            // Ended: copy what is left, for a moment at most.
            if output.closed && output.buf.is_empty() || at.elapsed() > DRAIN {
                break;
            }
        }
        let want = |cond: bool, flags: PollFlags| {
            if cond { flags } else { PollFlags::empty() }
        };
        let client_events = want(input.buf.is_empty() && !input.closed, PollFlags::POLLIN)
            | want(!output.buf.is_empty(), PollFlags::POLLOUT);
        let master_events = want(output.buf.is_empty() && !output.closed, PollFlags::POLLIN)
            | want(!input.buf.is_empty(), PollFlags::POLLOUT);
        // A side with nothing to wait for is left out: a hung-up pty would report
        // POLLHUP at every poll.
        let mut set: Vec<(Side, PollFd)> = Vec::with_capacity(5);
        if !client_events.is_empty() {
            set.push((Side::Client, PollFd::new(client.as_fd(), client_events)));
        }
        if !master_events.is_empty() {
            set.push((Side::Master, PollFd::new(master.as_fd(), master_events)));
        }
        set.push((
            Side::Signals,
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ));
        set.push((Side::Supd, PollFd::new(sock.as_fd(), PollFlags::POLLIN)));
        if let Some(fd) = pidfd.as_ref().filter(|_| status.is_none()) {
            set.push((Side::Child, PollFd::new(fd.as_fd(), PollFlags::POLLIN)));
        }
        let timeout = if ended_at.is_some() || pidfd.is_none() {
            PollTimeout::from(50u16)
        } else {
            PollTimeout::NONE
        };
        let (sides, mut polled): (Vec<Side>, Vec<PollFd>) = set.into_iter().unzip();
        match poll(&mut polled, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => break,
        }
        let revents: Vec<(Side, bool)> = sides
            .into_iter()
            .zip(&polled)
            .map(|(side, p)| (side, p.revents().is_some_and(|r| !r.is_empty())))
            .collect();
        drop(polled);
        let ready = |side: Side| revents.iter().any(|(s, r)| *s == side && *r);
        let unreaped = status.is_none().then_some(child);
        if ready(Side::Supd) && !super::join_command::signals_from_supd(sock, unreaped) {
            hung_up = true;
            break;
        }
        if ready(Side::Signals) {
            while let Ok(Some(info)) = signals.read_signal() {
                if info.ssi_signo == Signal::SIGHUP as u32 {
                    hung_up = true;
                }
                copy_size(client.as_fd(), master.as_fd());
            }
            if hung_up {
                break;
            }
        }
        if ready(Side::Client) {
            if input.buf.is_empty() && !input.closed {
                input.fill(client.as_fd());
                // A raw pty ends only when its other end (supctl's) is closed.
                if input.closed {
                    hung_up = true;
                    break;
                }
            }
            if !output.drain(client.as_fd()) {
                hung_up = true;
                break;
            }
        }
        if ready(Side::Master) {
            if output.buf.is_empty() && !output.closed {
                output.fill(master.as_fd());
            }
            let _ = input.drain(master.as_fd());
        }
        // What was just read goes out at once where it can.
        let _ = output.drain(client.as_fd());
        let _ = input.drain(master.as_fd());
        let exited = match &pidfd {
            Some(_) => ready(Side::Child),
            // Without pidfds: ask.
            None => status.is_none(),
        };
        if exited
            && status.is_none()
            && let Some(code) = reap(child, pidfd.is_none())
        {
            status = Some(code);
            ended_at = Some(Instant::now());
        }
    }
    if status.is_none() {
        // The child leads its group (setsid) and is unreaped: the id is its own.
        let _ = killpg(child, Signal::SIGKILL);
        let _ = reap(child, false);
        return None;
    }
    // A client gone after the command ended: nobody to tell.
    status.filter(|_| !hung_up)
}

/// The child's status (an exit code, or minus the signal) once it has ended;
/// with `nohang`, None while it runs.
fn reap(child: Pid, nohang: bool) -> Option<i32> {
    let flags = nohang.then_some(nix::sys::wait::WaitPidFlag::WNOHANG);
    loop {
        match waitpid(child, flags) {
            Ok(WaitStatus::Exited(_, code)) => return Some(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Some(-(sig as i32)),
            Ok(WaitStatus::StillAlive) => return None,
            Err(Errno::EINTR) => continue,
            Ok(_) => continue,
            Err(_) => return Some(127),
        }
    }
}
