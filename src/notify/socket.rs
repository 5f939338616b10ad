//! One notify socket per unit, `STATE/notify/UNIT/notify.sock`, bound into the
//! unit's container (see `spawn::mounts`), and the task that receives on it.
//! Messages that carry descriptors are dropped (with the descriptors closed), long
//! ones are dropped, and a unit that floods is slowed to `MAX_PER_SECOND`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use tokio::net::UnixDatagram;
use tokio::sync::mpsc;

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
    /// The start attempt it comes from, where known (the readiness pipe belongs to
    /// one attempt; the notify socket outlives them).
    pub attempt: Option<u64>,
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
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
    sock.set_nonblocking(true)?;
    Ok((dir, sock))
}

/// Receive until the socket is closed (the unit was removed) or the loop is gone.
pub async fn receive(
    sock: std::os::unix::net::UnixDatagram,
    unit: String,
    out: mpsc::UnboundedSender<UnitNotice>,
) {
    let sock = match UnixDatagram::from_std(sock) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(unit, error = %e, "cannot receive notify messages");
            return;
        }
    };
    let mut budget = Budget::new(Instant::now());
    let mut dropped = 0u64;
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
        let Some(bytes) = message else {
            tracing::debug!(unit, "notify message with descriptors or too long: dropped");
            continue;
        };
        for notice in parse(&bytes) {
            if !budget.take(Instant::now()) {
                dropped += 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(unit, dropped, "too many notify messages; dropping");
                }
                continue;
            }
            let notice = UnitNotice {
                attempt: None,
                unit: unit.clone(),
                notice,
            };
            if out.send(notice).is_err() {
                return;
            }
        }
    }
}

/// One datagram: `Some(bytes)` a message, `None` one to drop (it carried
/// descriptors, or was longer than `MAX_MESSAGE`).
fn receive_one(fd: RawFd) -> Result<Option<Vec<u8>>, nix::errno::Errno> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut cmsg = nix::cmsg_space!([RawFd; 8]);
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        fd,
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut had_fds = false;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            had_fds = true;
            for fd in fds {
                // SAFETY: SCM_RIGHTS installed a fresh descriptor nothing else owns;
                // it is closed right here.
                drop(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    let truncated = msg
        .flags
        .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
    let n = msg.bytes;
    if had_fds || truncated {
        return Ok(None);
    }
    buf.truncate(n);
    Ok(Some(buf))
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
        let task = tokio::spawn(receive(sock, "web".into(), tx));
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
                attempt: None,
                unit: "web".into(),
                notice: Notice::Status("warming up".into())
            },
            "the message with a descriptor never arrived"
        );
        assert_eq!(rx.recv().await.map(|n| n.notice), Some(Notice::Ready));
        task.abort();
    }
}
