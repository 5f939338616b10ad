//! Running something inside a unit's running container: a health probe, or an
//! operator's command (`supctl exec`, `JoinAction::Command`, with the client's
//! stdin, stdout and stderr as the helper's own, registered with the reaper as a
//! watched child so its exit never reaches the unit's state). `supd __join UNIT CGROUP_PROCS...` is the same
//! single-threaded helper as a start, started the same way (registered with the
//! reaper before it can exit), with the pidfd of the container's main process on
//! fd 4. Before it reads its plan it writes itself into the unit's cgroup (the
//! `cgroup.procs` files it was given, in each hierarchy the unit has joined): it is
//! accounted and killed with the unit, and everything it starts is born there. It
//! joins every namespace the unit created at once (`setns` on that pidfd, so a
//! recycled pid can never redirect it), forks so the child is inside the pid
//! namespace too, and the child takes the service's identity, capabilities,
//! no_new_privs and seccomp before it runs the command or the probe. The helper
//! reads the child's output to the end (so a chatty probe never blocks on a full
//! pipe), keeps its tail, waits, and sends supd the child's status and that tail.
//!
//! The helper stays for the next probes of the same start: supd asks for each
//! with one byte on the socket, and the helper forks a child per request. Per
//! probe, that is one small fork inside the container instead of a new process
//! spawned from supd (with supd's fd table), an exec of the supd binary, a plan to
//! send and read and `setns` again; supd only writes a byte and reads a result.
//! The helper ends when supd closes the socket, or is killed (a probe past its
//! timeout, the unit stopping: it is in the unit's cgroup).
//!
//! On the socket, after the plan (its length, u32 little-endian, then the bytes):
//! supd sends `REQUEST` per probe; the helper answers each with a result frame
//! (`encode_result`): the status, the length of the output, the output.

use std::convert::Infallible;
use std::ffi::{CStr, CString, OsString};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, killpg};
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, dup2_stderr, dup2_stdout, fork, pipe2, setpgid};
use serde::{Deserialize, Serialize};

use super::namespaces::{become_userns_root, clone_flag};
use super::sys::{Pidfd, readable_by};
use super::{HELPER_FD, LaunchPlan, SpawnError, Step};
use crate::reaper::{ChildOf, Registry};
use crate::supervise::health::OUTPUT_KEPT;
use crate::unit::Namespace;

/// The argv[1] that selects join mode in the supd binary.
pub const JOIN_ARG: &str = "__join";
/// Where the join helper finds the pidfd of the container's main process.
pub const TARGET_FD: RawFd = 4;
/// Response bytes an HTTP probe reads (the status line is in the first few).
const HTTP_READ: usize = 4096;
/// Output the helper keeps of its child's (the last bytes; supd keeps less).
const TAIL_KEPT: usize = 2 * OUTPUT_KEPT;
/// The byte that asks the helper for one probe.
pub const REQUEST: u8 = b'p';
/// A result frame's head: the status (i32) and the output's length (u32), both
/// little-endian.
pub const RESULT_HEAD: usize = 8;
/// The longest output a result frame may carry (the tail plus an error line);
/// anything longer is not from a helper of ours.
pub const RESULT_MAX: usize = TAIL_KEPT + 1024;
/// Longest plan the helper reads.
const PLAN_MAX: usize = 16 * 1024 * 1024;

/// What to run inside the container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JoinAction {
    /// `launch.argv`, exec'd.
    Exec,
    /// Connect from the container's network namespace.
    Tcp { addr: SocketAddr, timeout_ms: u64 },
    /// GET `path` from the container's network namespace; 2xx and 3xx are healthy.
    Http {
        addr: SocketAddr,
        host: String,
        path: String,
        timeout_ms: u64,
    },
    /// An operator's command (`supctl exec`): `launch.argv`, exec'd once with the
    /// helper's own stdin, stdout and stderr (the client's), in a session of its
    /// own; with `tty` those are the client's terminal, and the command gets a pty
    /// of the container's, relayed to it (`join_tty`).
    /// The helper answers the first request with the command's status only (no
    /// output), and kills the command's process group if supd hangs up first.
    Command { tty: bool },
}

/// The join helper's plan: the service's launch plan (identity, restrictions,
/// environment; its mounts are not used: the container has them) and the action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinPlan {
    pub launch: LaunchPlan,
    pub action: JoinAction,
    /// How long one probe may run: then it is killed with its process group (the
    /// helper stays for the next); supd kills the helper only if it does not
    /// answer a little later.
    pub timeout_ms: u64,
}

/// A join plan as the helper reads it, encoded once and reused for every probe of
/// a start (a unit's plan changes only with a new start).
#[derive(Debug, Clone)]
pub struct EncodedJoinPlan {
    unit: String,
    bytes: std::sync::Arc<[u8]>,
}

impl JoinPlan {
    pub fn encode(&self) -> Result<EncodedJoinPlan, SpawnError> {
        let bytes = serde_json::to_vec(self)
            .map_err(|e| SpawnError::new(Step::EncodePlan, None, None, e.to_string()))?;
        Ok(EncodedJoinPlan {
            unit: self.launch.unit.clone(),
            bytes: bytes.into(),
        })
    }
}

/// A join helper started by supd.
#[derive(Debug)]
pub struct Joined {
    pub pid: i32,
    pidfd: Option<Pidfd>,
}

impl Joined {
    /// Kill it (a probe that overran its timeout); the pidfd makes sure a recycled
    /// pid is never hit.
    pub fn kill(&self) {
        if let Some(fd) = &self.pidfd {
            fd.kill();
        }
    }
}

/// Start the join helper for `plan` inside the container whose main process
/// `target` names, registered for `owner`; it writes itself into each of the
/// `cgroup` files (`CgroupTree::join_files`, those that exist) before it reads
/// the plan. The first probe is requested at once. Blocking; the second value is
/// the socket for the next requests and the results (blocking too).
pub fn start(
    plan: &EncodedJoinPlan,
    target: BorrowedFd<'_>,
    registry: &Registry,
    owner: &ChildOf,
    cgroup: &[CString],
) -> Result<(Joined, UnixStream), SpawnError> {
    let devnull = open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| SpawnError::new(Step::Open, Some("/dev/null"), Some(e), ""))?;
    let stdio = [devnull.as_fd(), devnull.as_fd(), devnull.as_fd()];
    launch(plan, target, cgroup, stdio, |spawn| {
        registry.spawn_registered(owner.clone(), spawn)
    })
}

/// `start` for an operator's command (`JoinAction::Command`): the helper gets
/// `stdio` as its fds 0-2, and its exit is only reaped (it reports the command's
/// status on the socket), never taken for one of the unit's.
pub fn start_command(
    plan: &EncodedJoinPlan,
    target: BorrowedFd<'_>,
    registry: &Registry,
    cgroup: &[CString],
    stdio: [BorrowedFd<'_>; 3],
) -> Result<(Joined, UnixStream), SpawnError> {
    launch(plan, target, cgroup, stdio, |spawn| {
        // Nobody waits on the receiver: dropped, the exit is just reaped.
        registry
            .spawn_watched(|| spawn().map(|pid| (pid, ())))
            .map(|((), _exit)| 0)
    })
}

/// Spawn the join helper with `stdio`, registered by `register` (which calls the
/// spawn it is given under the reaper's lock), send the plan and the first request.
fn launch(
    plan: &EncodedJoinPlan,
    target: BorrowedFd<'_>,
    cgroup: &[CString],
    stdio: [BorrowedFd<'_>; 3],
    register: impl FnOnce(&mut dyn FnMut() -> Result<i32, Errno>) -> Result<i32, Errno>,
) -> Result<(Joined, UnixStream), SpawnError> {
    let payload = &plan.bytes;
    let len = u32::try_from(payload.len())
        .map_err(|_| SpawnError::new(Step::EncodePlan, None, None, "plan too long"))?;
    let (mut ours, theirs) =
        UnixStream::pair().map_err(|e| SpawnError::io(Step::Socketpair, None, &e, ""))?;
    let owned = |fd: BorrowedFd<'_>| {
        fd.try_clone_to_owned()
            .map_err(|e| SpawnError::io(Step::Fcntl, None, &e, "dup"))
    };
    let target = owned(target)?;
    let [i, o, e] = stdio;
    let (stdin, stdout, stderr) = (owned(i)?, owned(o)?, owned(e)?);
    let theirs = OwnedFd::from(theirs);
    let args: Vec<&CStr> = cgroup.iter().map(CString::as_c_str).collect();
    let mut pidfd = None;
    let mut pid_seen = 0;
    let mut spawn = || {
        let fds = [&stdin, &stdout, &stderr, &theirs, &target];
        let exe = c"/proc/self/exe";
        let pid = super::handover::posix_spawn_helper(exe, JOIN_ARG, &plan.unit, &args, &fds)?;
        pidfd = Pidfd::open(pid);
        pid_seen = pid;
        Ok(pid)
    };
    register(&mut spawn)
        .map_err(|e| SpawnError::new(Step::PosixSpawn, Some("/proc/self/exe"), Some(e), "join"))?;
    drop((stdin, stdout, stderr, theirs, target));
    let joined = Joined {
        pid: pid_seen,
        pidfd,
    };
    let sent = ours
        .write_all(&len.to_le_bytes())
        .and_then(|()| ours.write_all(payload))
        .and_then(|()| ours.write_all(&[REQUEST]));
    if let Err(e) = sent {
        joined.kill();
        return Err(SpawnError::io(Step::SendPlan, None, &e, ""));
    }
    Ok((joined, ours))
}

/// A result frame: `status` (an exit code, or minus the signal), then `output`
/// (cut to `RESULT_MAX`, keeping its end).
pub fn encode_result(status: i32, output: &[u8]) -> Vec<u8> {
    let output = output
        .get(output.len().saturating_sub(RESULT_MAX)..)
        .unwrap_or_default();
    let len = u32::try_from(output.len()).unwrap_or(0);
    let mut frame = Vec::with_capacity(RESULT_HEAD + output.len());
    frame.extend_from_slice(&status.to_le_bytes());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(output);
    frame
}

/// A result frame's head: the status and the length of the output that follows,
/// or `None` for a length no helper sends.
pub fn decode_head(head: [u8; RESULT_HEAD]) -> Option<(i32, usize)> {
    let [s0, s1, s2, s3, l0, l1, l2, l3] = head;
    let len = usize::try_from(u32::from_le_bytes([l0, l1, l2, l3])).ok()?;
    (len <= RESULT_MAX).then_some((i32::from_le_bytes([s0, s1, s2, s3]), len))
}

/// The namespaces a join enters: those the unit created.
pub fn join_flags(created: &std::collections::BTreeSet<Namespace>) -> CloneFlags {
    created
        .iter()
        .fold(CloneFlags::empty(), |flags, ns| flags | clone_flag(*ns))
}

/// Entry point of join mode. Never returns.
pub fn main() -> ! {
    // SAFETY: supd passes the socket as fd 3 and nothing else in this fresh process
    // owns it.
    let sock = UnixStream::from(unsafe { OwnedFd::from_raw_fd(HELPER_FD) });
    // SAFETY: supd passes the target's pidfd as fd 4; nothing else owns it.
    let target = unsafe { OwnedFd::from_raw_fd(TARGET_FD) };
    // argv: supd __join UNIT CGROUP_FILE...
    let cgroup: Vec<OsString> = std::env::args_os().skip(3).collect();
    let error = match super::sys::join_cgroup(&cgroup).and_then(|()| read_plan(&sock)) {
        Ok(plan) => match serve(&plan, target, &sock) {
            Ok(()) => std::process::exit(0),
            Err(e) => e,
        },
        Err(e) => e,
    };
    // The probe that was requested fails with the reason; nobody to tell if supd
    // is gone.
    let _ = (&sock).write_all(&encode_result(127, format!("supd: {error}").as_bytes()));
    std::process::exit(127);
}

fn read_plan(mut sock: &UnixStream) -> Result<JoinPlan, SpawnError> {
    super::sys::set_cloexec(sock)
        .map_err(|e| SpawnError::new(Step::Fcntl, None, Some(e), "control socket"))?;
    let read = |e: std::io::Error| SpawnError::io(Step::ReadPlan, None, &e, "");
    let mut len = [0u8; 4];
    sock.read_exact(&mut len).map_err(read)?;
    let len = usize::try_from(u32::from_le_bytes(len)).unwrap_or(usize::MAX);
    if len > PLAN_MAX {
        return Err(SpawnError::new(Step::ReadPlan, None, None, "plan too long"));
    }
    let mut buf = vec![0u8; len];
    sock.read_exact(&mut buf).map_err(read)?;
    serde_json::from_slice(&buf)
        .map_err(|e| SpawnError::new(Step::DecodePlan, None, None, e.to_string()))
}

/// Join, then one probe per request until supd closes the socket (`Ok`) or a
/// probe cannot be answered (`Err`, for the probe requested).
fn serve(plan: &JoinPlan, target: OwnedFd, mut sock: &UnixStream) -> Result<(), SpawnError> {
    let c = &plan.launch.container;
    let flags = join_flags(&c.namespaces);
    if !flags.is_empty() {
        nix::sched::setns(&target, flags)
            .map_err(|e| SpawnError::new(Step::Setns, None, Some(e), "the unit's namespaces"))?;
    }
    drop(target);
    if c.namespaces.contains(&Namespace::User) {
        become_userns_root(&c.uid_map, &c.gid_map)?;
    }
    let mut request = [0u8; 1];
    loop {
        match sock.read(&mut request) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(SpawnError::io(Step::ReadPlan, None, &e, "request")),
        }
        if let JoinAction::Command { tty } = plan.action {
            return super::join_command::run_command(plan, tty, sock);
        }
        let frame = match probe_once(plan) {
            Ok((status, tail)) => encode_result(status, &tail),
            // This probe fails with the reason; the next may not (a fork that
            // failed for want of memory or pids).
            Err(e) => encode_result(127, format!("supd: {e}").as_bytes()),
        };
        sock.write_all(&frame)
            .map_err(|e| SpawnError::io(Step::SendPlan, None, &e, "result"))?;
    }
}

/// One probe: a child runs the action in a process group of its own; its status
/// (exit code, or minus the signal) and the tail of its output. At the plan's
/// timeout the group is killed and the output says so.
fn probe_once(plan: &JoinPlan) -> Result<(i32, Vec<u8>), SpawnError> {
    // The child's stdout and stderr, read here to the end.
    let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| SpawnError::new(Step::Pipe, None, Some(e), "output"))?;
    let deadline = Instant::now() + Duration::from_millis(plan.timeout_ms.max(1));
    // SAFETY: the helper is single-threaded; the child only runs the plan's action
    // (restrictions, then exec or a probe) and exits.
    match unsafe { fork() }.map_err(|e| SpawnError::new(Step::Clone, None, Some(e), "join"))? {
        ForkResult::Child => {
            drop(out_r);
            // Its own group, so a timeout reaches what it started (set on both
            // sides of the fork: whichever runs first).
            let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
            let error = match output_to(out_w).and_then(|()| act(plan)) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            // On the output, which is what a probe's result shows.
            eprintln!("supd: {error}");
            std::process::exit(127);
        }
        ForkResult::Parent { child } => {
            drop(out_w);
            let _ = setpgid(child, child);
            let (mut tail, in_time) = read_tail(out_r, deadline);
            if !in_time {
                // The child is unreaped: its pid is still its group's id.
                let _ = killpg(child, Signal::SIGKILL);
                let ms = plan.timeout_ms;
                tail.extend_from_slice(
                    format!("\nsupd: probe timed out after {ms} ms; killed").as_bytes(),
                );
            }
            let status = loop {
                match waitpid(child, None) {
                    Ok(WaitStatus::Exited(_, code)) => break code,
                    Ok(WaitStatus::Signaled(_, sig, _)) => break -(sig as i32),
                    Err(Errno::EINTR) => continue,
                    _ => break 127,
                }
            };
            Ok((status, tail))
        }
    }
}

/// The child's fds 1 and 2 become `w`.
fn output_to(w: OwnedFd) -> Result<(), SpawnError> {
    let dup = |e| SpawnError::new(Step::Dup, None, Some(e), "output");
    dup2_stdout(&w).map_err(dup)?;
    dup2_stderr(&w).map_err(dup)
}

/// Everything until EOF (the child and whatever it started closed the pipe) or
/// `deadline`, of which the last `TAIL_KEPT` bytes are kept; false when the
/// deadline came first.
fn read_tail(r: OwnedFd, deadline: Instant) -> (Vec<u8>, bool) {
    let mut tail = Vec::with_capacity(TAIL_KEPT);
    let mut chunk = [0u8; 4096];
    let in_time = loop {
        if !readable_by(r.as_fd(), deadline) {
            break false;
        }
        match nix::unistd::read(r.as_fd(), &mut chunk) {
            Ok(0) => break true,
            Ok(n) => tail.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(Errno::EINTR) => continue,
            Err(_) => break true,
        }
        // Trimmed only once twice the kept length: amortised, no copy per read.
        if tail.len() > 2 * TAIL_KEPT {
            tail.drain(..tail.len() - TAIL_KEPT);
        }
    };
    if tail.len() > TAIL_KEPT {
        tail.drain(..tail.len() - TAIL_KEPT);
    }
    (tail, in_time)
}

/// Inside the namespaces: the action, under the service's restrictions.
fn act(plan: &JoinPlan) -> Result<Infallible, SpawnError> {
    let (addr, timeout_ms, http) = match &plan.action {
        JoinAction::Exec | JoinAction::Command { .. } => {
            return super::helper::exec_service(&plan.launch);
        }
        JoinAction::Tcp { addr, timeout_ms } => (*addr, *timeout_ms, None),
        JoinAction::Http {
            addr,
            host,
            path,
            timeout_ms,
        } => (*addr, *timeout_ms, Some((host, path))),
    };
    super::helper::restrict_only(&plan.launch)?;
    let timeout = Duration::from_millis(timeout_ms.max(1));
    let verdict = match http {
        None => tcp_probe(addr, timeout),
        Some((host, path)) => http_probe(addr, host, path, timeout),
    };
    let code = match verdict {
        Ok(line) => {
            println!("{line}");
            0
        }
        Err(line) => {
            println!("{line}");
            1
        }
    };
    std::process::exit(code)
}

fn tcp_probe(addr: SocketAddr, timeout: Duration) -> Result<String, String> {
    TcpStream::connect_timeout(&addr, timeout)
        .map(|_| format!("connected to {addr}"))
        .map_err(|e| format!("connect {addr}: {e}"))
}

fn http_probe(
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<String, String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: sup-health\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut buf = Vec::new();
    (&mut stream)
        .take(HTTP_READ as u64)
        .read_to_end(&mut buf)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    let code = http_status(&buf).ok_or_else(|| format!("no HTTP status line from {addr}"))?;
    if (200..400).contains(&code) {
        Ok(format!("HTTP {code} from {path}"))
    } else {
        Err(format!("HTTP {code} from {path}"))
    }
}

/// The status code of an HTTP response's head (httparse reads it).
fn http_status(response: &[u8]) -> Option<u16> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Response::new(&mut headers);
    match r.parse(response) {
        Ok(_) => r.code,
        // Headers beyond what was read or kept: the status line came first anyway.
        Err(httparse::Error::TooManyHeaders) => r.code,
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_frames_carry_the_status_and_the_end_of_the_output() {
        let long = vec![b'x'; RESULT_MAX + 10];
        let table: [(i32, &[u8], usize); 4] = [
            (0, b"", 0),
            (1, b"missing file\n", 13),
            (-9, b"killed", 6),
            (127, &long, RESULT_MAX),
        ];
        for (status, output, len) in table {
            let frame = encode_result(status, output);
            let head: [u8; RESULT_HEAD] = frame[..RESULT_HEAD].try_into().expect("head");
            assert_eq!(decode_head(head), Some((status, len)), "status {status}");
            assert_eq!(&frame[RESULT_HEAD..], &output[output.len() - len..]);
        }
        let mut too_long = [0u8; RESULT_HEAD];
        too_long[4..].copy_from_slice(&(RESULT_MAX as u32 + 1).to_le_bytes());
        assert_eq!(decode_head(too_long), None, "no helper sends that much");
    }

    #[test]
    fn http_status_lines() {
        assert_eq!(http_status(b"HTTP/1.1 204 No Content\r\n\r\n"), Some(204));
        assert_eq!(
            http_status(b"HTTP/1.0 503 Service Unavailable\r\nX: y\r\n"),
            Some(503)
        );
        assert_eq!(http_status(b"garbage"), None);
        assert_eq!(http_status(b""), None);
    }

    #[test]
    fn a_tcp_probe_connects_or_says_why_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let addr = listener.local_addr().expect("addr");
        assert!(tcp_probe(addr, Duration::from_secs(2)).is_ok());
        drop(listener);
        let err = tcp_probe(addr, Duration::from_secs(2)).expect_err("closed");
        assert!(err.contains("connect 127.0.0.1"), "{err}");
    }

    #[test]
    fn an_http_probe_reads_the_status() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            for reply in ["HTTP/1.1 200 OK\r\n\r\nfine", "HTTP/1.1 500 Oops\r\n\r\n"] {
                let (mut s, _) = listener.accept().expect("accept");
                let mut buf = [0u8; 512];
                let n = s.read(&mut buf).expect("read");
                assert!(String::from_utf8_lossy(&buf[..n]).starts_with("GET /healthz HTTP/1.1"));
                s.write_all(reply.as_bytes()).expect("write");
            }
        });
        let t = Duration::from_secs(2);
        assert_eq!(
            http_probe(addr, "localhost", "/healthz", t),
            Ok("HTTP 200 from /healthz".into())
        );
        assert_eq!(
            http_probe(addr, "localhost", "/healthz", t),
            Err("HTTP 500 from /healthz".into())
        );
        server.join().expect("server");
    }
}
