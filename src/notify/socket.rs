//! One notify socket per unit, `STATE/notify/UNIT/notify.sock`, bound into the
//! unit's container (see `spawn::mounts`), and the task that receives on it.
//! Messages that carry descriptors are dropped (with the descriptors closed), long
//! ones are dropped, and a unit that floods is slowed to `MAX_PER_SECOND`. Every
//! message comes with its sender's credentials (`SO_PASSCRED`); only those of a
//! live member of the unit's cgroup count (see `sender`). `BARRIER=1` with one
//! descriptor is `sd_notify_barrier(3)`: the descriptor is closed once every
//! message before it was read and judged, which `supctl notify` waits for.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixCredentials, recvmsg};
use tokio::net::UnixDatagram;
use tokio::sync::mpsc;

use super::sender::{self, Membership, Verdict};
use super::{MAX_MESSAGE, Notice, parse};

/// Notices a unit may send per second; more are dropped.
pub const MAX_PER_SECOND: u32 = 100;
/// The socket's file name in the unit's notify directory.
pub const SOCKET_NAME: &str = "notify.sock";

/// The directory of the notify directories, in supd's state directory.
pub const NOTIFY_DIR: &str = "notify";

/// `STATE/notify/UNIT`: where the unit's socket lives.
pub fn unit_dir(state_dir: &Path, unit: &str) -> PathBuf {
    state_dir.join(NOTIFY_DIR).join(unit)
}

/// A notice on its way to the event loop, with the unit whose socket it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitNotice {
    pub unit: String,
    pub notice: Notice,
    /// The start attempt it comes from, where known: the readiness pipe belongs
    /// to one attempt; a socket message is of the run whose processes were in
    /// the unit's cgroup when it was read (`Watch::run`).
    pub attempt: Option<u64>,
    /// It came on the readiness pipe (`ready_fd`), not the socket.
    pub from_pipe: bool,
}

/// What the receiver of a unit's socket knows of the unit.
#[derive(Clone)]
pub struct Watch {
    pub unit: String,
    /// Whether a `/proc/PID/cgroup` text is of the unit's cgroup (`None`: the
    /// unit has none, see `sender::judge`).
    pub in_unit: Option<Membership>,
    /// The start attempt whose processes the unit's cgroup holds: set by the
    /// start once it has emptied the cgroup of the run before, and before the
    /// new process exists. A live member's message is of this run.
    pub run: Arc<AtomicU64>,
}

/// Create (afresh) the unit's notify directory and socket under `root`. The
/// directory is traversable and the socket writable by anyone who can see them: only
/// the unit's container does (the state directory is hidden from units), whatever
/// uid its root maps to.
pub fn create(root: &Path, unit: &str) -> io::Result<(PathBuf, std::os::unix::net::UnixDatagram)> {
    let dir = root.join(unit);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(&dir)?;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o711))?;
    let path = dir.join(SOCKET_NAME);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let sock = std::os::unix::net::UnixDatagram::bind(&path)?;
    // Before anyone can send: credentials come with every message from now on.
    nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::PassCred, &true)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
    sock.set_nonblocking(true)?;
    Ok((dir, sock))
}

/// Receive until the socket is closed (the unit was removed) or the loop is gone.
pub async fn receive(
    sock: std::os::unix::net::UnixDatagram,
    watch: Watch,
    out: mpsc::UnboundedSender<UnitNotice>,
) {
    let Watch { unit, in_unit, run } = watch;
    let sock = match UnixDatagram::from_std(sock) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(unit, error = %e, "cannot receive notify messages");
            return;
        }
    };
    let mut budget = Budget::new(Instant::now());
    let mut dropped = 0u64;
    let mut refused = 0u64;
    loop {
        if sock.readable().await.is_err() {
            return;
        }
        // try_io clears tokio's readiness when the socket has nothing (EAGAIN), so
        // the next `readable` waits instead of spinning.
        let received = sock.try_io(tokio::io::Interest::READABLE, || {
            receive_one(sock.as_raw_fd()).map_err(io::Error::from)
        });
        let message = match received {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                tracing::warn!(unit, error = %e, "notify socket failed");
                return;
            }
        };
        let (bytes, pid) = match message {
            Received::Message { bytes, pid } => (bytes, pid),
            Received::Barrier => continue,
            Received::Refused => {
                tracing::debug!(unit, "notify message with descriptors or too long: dropped");
                continue;
            }
        };
        // The run, read after the message (its sender existed) and before the
        // sender is seen alive in the cgroup: a run is recorded before its first
        // process exists and only once the run before has left the cgroup, so a
        // sender found alive there below is of exactly this run.
        let attempt = run.load(Ordering::SeqCst);
        let member = in_unit.as_deref().map(|m| m as &dyn Fn(&str) -> bool);
        let verdict = sender::judge(pid, &sender::facts(pid), member);
        if verdict != Verdict::Credit {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(
                    unit,
                    pid,
                    refused,
                    "notify message dropped: {}",
                    verdict.why()
                );
            } else {
                tracing::debug!(unit, pid, "notify message dropped: {}", verdict.why());
            }
            continue;
        }
        for notice in parse(&bytes) {
            if !budget.take(Instant::now()) {
                dropped += 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(unit, dropped, "too many notify messages; dropping");
                }
                continue;
            }
            let notice = UnitNotice {
                attempt: Some(attempt),
                from_pipe: false,
                unit: unit.clone(),
                notice,
            };
            if out.send(notice).is_err() {
                return;
            }
        }
    }
}

/// One datagram as read.
#[derive(Debug, PartialEq, Eq)]
enum Received {
    /// A message, with its sender's pid (in supd's pid namespace) when the
    /// kernel gave credentials.
    Message { bytes: Vec<u8>, pid: Option<i32> },
    /// `BARRIER=1` with one descriptor, now closed: the sender learns that
    /// every message it sent before was read.
    Barrier,
    /// Descriptors otherwise, or longer than `MAX_MESSAGE`: dropped (any
    /// descriptors closed).
    Refused,
}

/// Read one datagram.
fn receive_one(fd: RawFd) -> Result<Received, nix::errno::Errno> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut cmsg = nix::cmsg_space!(UnixCredentials, [RawFd; 8]);
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        fd,
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds_received = 0usize;
    let mut pid = None;
    for c in msg.cmsgs()? {
        match c {
            ControlMessageOwned::ScmRights(fds) => {
                for fd in fds {
                    fds_received += 1;
                    // SAFETY: SCM_RIGHTS installed a fresh descriptor nothing else
                    // owns; it is closed right here.
                    drop(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
            ControlMessageOwned::ScmCredentials(creds) => pid = Some(creds.pid()),
            _ => {}
        }
    }
    let truncated = msg
        .flags
        .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
    let n = msg.bytes;
    buf.truncate(n);
    Ok(classify(buf, pid, fds_received, truncated))
}

/// What a datagram is, from its bytes, sender pid, descriptor count and whether
/// the kernel cut it.
fn classify(bytes: Vec<u8>, pid: Option<i32>, fds: usize, truncated: bool) -> Received {
    match (fds, truncated) {
        (1, false) if bytes.trim_ascii_end() == b"BARRIER=1" => Received::Barrier,
        (0, false) => Received::Message { bytes, pid },
        _ => Received::Refused,
    }
}

/// A token bucket of `MAX_PER_SECOND`.
struct Budget {
    tokens: u32,
    refilled: Instant,
}

impl Budget {
    fn new(now: Instant) -> Self {
        Budget {
            tokens: MAX_PER_SECOND,
            refilled: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.refilled) >= Duration::from_secs(1) {
            self.tokens = MAX_PER_SECOND;
            self.refilled = now;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit on its third run.
    fn watch(unit: &str, in_unit: Option<Membership>) -> Watch {
        Watch {
            unit: unit.into(),
            in_unit,
            run: Arc::new(AtomicU64::new(3)),
        }
    }

    #[test]
    fn the_budget_refills_every_second() {
        let t0 = Instant::now();
        let mut b = Budget::new(t0);
        assert_eq!(
            (0..200).filter(|_| b.take(t0)).count(),
            MAX_PER_SECOND as usize
        );
        assert!(b.take(t0 + Duration::from_secs(1)));
    }

    #[tokio::test]
    async fn messages_arrive_by_socket_and_descriptors_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (unit_dir, sock) = create(dir.path(), "web").expect("socket");
        let path = unit_dir.join(SOCKET_NAME);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(receive(sock, watch("web", None), tx));
        let client = std::os::unix::net::UnixDatagram::unbound().expect("client");
        // With a descriptor attached: dropped.
        let devnull = std::fs::File::open("/dev/null").expect("devnull");
        let fds = [devnull.as_raw_fd()];
        let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
        let addr = nix::sys::socket::UnixAddr::new(&path).expect("addr");
        let iov = [io::IoSlice::new(b"READY=1")];
        nix::sys::socket::sendmsg(
            client.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::empty(),
            Some(&addr),
        )
        .expect("sendmsg");
        client
            .send_to(b"STATUS=warming up\nREADY=1", &path)
            .expect("send");
        let first = rx.recv().await.expect("notice");
        assert_eq!(
            first,
            UnitNotice {
                attempt: Some(3),
                from_pipe: false,
                unit: "web".into(),
                notice: Notice::Status("warming up".into())
            },
            "the message with a descriptor never arrived"
        );
        assert_eq!(rx.recv().await.map(|n| n.notice), Some(Notice::Ready));
        task.abort();
    }

    #[test]
    fn a_barrier_is_one_descriptor_with_barrier_1() {
        let msg = |b: &[u8]| b.to_vec();
        let table = [
            (msg(b"READY=1"), 0, false, true),
            (msg(b"BARRIER=1"), 1, false, false),
            (msg(b"BARRIER=1\n"), 1, false, false),
            (msg(b"READY=1"), 1, false, false),
            (msg(b"BARRIER=1"), 2, false, false),
            (msg(b"READY=1"), 0, true, false),
        ];
        for (bytes, fds, truncated, message) in table {
            let got = classify(bytes.clone(), Some(7), fds, truncated);
            let barrier = fds == 1 && !truncated && bytes.starts_with(b"BARRIER=1");
            match got {
                Received::Message { pid, .. } => assert!(message && pid == Some(7)),
                Received::Barrier => assert!(barrier, "{bytes:?}"),
                Received::Refused => assert!(!message && !barrier, "{bytes:?} {fds}"),
            }
        }
    }

    /// Credentials come with every message; a sender outside the unit's cgroup
    /// is not credited, and `send` returns once supd has read its message.
    #[tokio::test]
    async fn senders_outside_the_unit_are_dropped_and_send_waits_for_the_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The same sender, judged outside the unit, then in it (alive when read).
        for (unit, in_unit) in [("web", false), ("app", true)] {
            let (unit_dir, sock) = create(dir.path(), unit).expect("socket");
            let path = unit_dir.join(SOCKET_NAME);
            let path = path.to_str().expect("utf-8 path").to_string();
            let (tx, mut rx) = mpsc::unbounded_channel();
            let member: Membership = std::sync::Arc::new(move |_: &str| in_unit);
            let task = tokio::spawn(receive(sock, watch(unit, Some(member)), tx));
            let sent = tokio::task::spawn_blocking(move || super::super::send(&path, "READY=1"))
                .await
                .expect("join");
            assert!(matches!(sent, Ok(true)), "the barrier completed: {sent:?}");
            match in_unit {
                true => assert_eq!(rx.try_recv().map(|n| n.notice), Ok(Notice::Ready)),
                false => assert!(
                    rx.try_recv().is_err(),
                    "READY=1 from outside the unit was credited"
                ),
            }
            task.abort();
        }
    }
}
