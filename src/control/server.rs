//! supd's side of the control socket: one task per connection, so a slow or hostile
//! client never holds up another. Each connection carries one request; the answer
//! comes from the daemon loop (`Query`), and the waiting (`--wait`, `logs -f`) happens
//! here, not in the daemon loop.
//!
//! Everything a client can hold is bounded: connections (`MAX_CONNECTIONS`, of which
//! long-lived ones, `logs -f`, `--wait` and `exec`, may take only `MAX_LONG_LIVED`, so short
//! requests like `status` are always served), the time to send a request
//! (`REQUEST_TIMEOUT`) and to take each reply line (`WRITE_TIMEOUT`), and how far a
//! follower may fall behind (a follower that lags is dropped with a message).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot, watch};

use super::proto::{
    Command, ErrorCode, MAX_REQUEST_BYTES, PROTOCOL_VERSION, Reply, Request, UnitResult, UnitState,
};
use super::streams::{LogWant, log_filter, stream_events, stream_log};
use crate::logs::SharedLog;
use crate::logs::history::Filter;

/// A client must send its whole request line within this time.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A client must take each reply line within this time, or it is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are told `busy` and closed.
pub const MAX_CONNECTIONS: usize = 512;
/// Of those, connections that stay open (`logs -f`, `--wait`, `exec`).
pub const MAX_LONG_LIVED: usize = 256;

/// A question for the daemon loop.
#[derive(Debug)]
pub enum Query {
    /// A client's request.
    Request {
        command: Command,
        answer: oneshot::Sender<Answer>,
    },
    /// Where the named units are now (for `--wait`): cheaper than a full status.
    /// An unknown unit is answered with the `not-found` message.
    Progress {
        units: Vec<String>,
        answer: oneshot::Sender<Result<Vec<UnitProgress>, String>>,
    },
}

/// A unit's coarse state, and why it failed if it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitProgress {
    pub name: String,
    pub state: UnitState,
    pub reason: Option<String>,
    /// Waiting for a unit that nothing will start (a disabled requirement): a
    /// wait for it to come up ends here, failed.
    pub blocked: bool,
}

#[derive(Debug)]
pub enum Answer {
    Reply(Reply),
    /// For `logs`: the unit's log, read by the connection task itself.
    Log(SharedLog),
    /// For `exec`: how to start the command, given its stdin, stdout and stderr
    /// (run in a blocking thread by the connection task, which then waits for it).
    Exec(super::exec::Launcher),
    /// For `events`: the stream, read by the connection task itself.
    Events(broadcast::Receiver<Arc<crate::control::proto::Event>>),
}

/// What every connection task needs.
#[derive(Clone)]
pub struct Handle {
    pub queries: mpsc::UnboundedSender<Query>,
    /// Bumped by the daemon after every change of any unit's state.
    pub changes: watch::Receiver<u64>,
    /// Besides root, the only uid allowed (supd's own).
    pub owner_uid: u32,
    /// `--control-group`: members (primary or supplementary group) may use the
    /// read-only verbs.
    pub read_gid: Option<u32>,
    /// A further check of the connecting process (by pid): Err says why it is
    /// refused (e.g. it runs inside a unit).
    pub peer_check: PeerCheck,
}

/// See [`Handle::peer_check`].
pub type PeerCheck = Arc<dyn Fn(Option<i32>) -> Result<(), String> + Send + Sync>;

/// Bind the socket with mode 0600. Whatever is left at the path (the stale socket of
/// a supd that died, a dangling symlink) is replaced, unless a supd answers there.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} is a directory", path.display()),
            ));
        }
        Ok(meta) => {
            if meta.file_type().is_socket() && std::os::unix::net::UnixStream::connect(path).is_ok()
            {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("another supd is already listening on {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// `--control-group`: the socket becomes `root:GROUP` mode 0660, so members can
/// connect (what they may ask is checked per request).
pub fn share_with_group(path: &Path, gid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::chown(path, None, Some(gid))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
}

/// Accept connections forever.
pub async fn serve(listener: UnixListener, handle: Handle) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let long_lived = Arc::new(Semaphore::new(MAX_LONG_LIVED));
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    refuse_busy(stream);
                    continue;
                };
                let handle = handle.clone();
                let long_lived = long_lived.clone();
                tokio::spawn(async move {
                    connection(stream, handle, long_lived).await;
                    drop(slot);
                });
            }
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept on control socket failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Over the connection cap: one line, written only if the socket takes it at once.
fn refuse_busy(stream: UnixStream) {
    let reply = Reply::Error {
        code: ErrorCode::Busy,
        message: format!("supd serves {MAX_CONNECTIONS} connections at most; try again"),
    };
    if let Ok(mut line) = serde_json::to_vec(&reply) {
        line.push(b'\n');
        let _ = stream.try_write(&line);
    }
}

async fn connection(stream: UnixStream, handle: Handle, long_lived: Arc<Semaphore>) {
    let cred = stream.peer_cred().ok();
    let uid = cred.map(|c| c.uid());
    let reader_only = !authorised(uid, handle.owner_uid)
        && handle.read_gid.is_some_and(|gid| {
            cred.is_some_and(|c| c.gid() == gid) || peer_groups(&stream).contains(&gid)
        });
    let (rd, mut wr) = stream.into_split();
    // Checked before reading anything: a stranger gets no time on supd.
    if !authorised(uid, handle.owner_uid) && !reader_only {
        let group = match handle.read_gid {
            Some(gid) => format!(", and members of group {gid} may read"),
            None => String::new(),
        };
        let msg = format!(
            "permission denied: uid {} may not control supd (only root and uid {} may{group})",
            uid.map_or("unknown".into(), |u| u.to_string()),
            handle.owner_uid
        );
        return error(&mut wr, ErrorCode::PermissionDenied, msg).await;
    }
    if let Err(why) = (handle.peer_check)(cred.and_then(|c| c.pid())) {
        let msg = format!("permission denied: {why}");
        return error(&mut wr, ErrorCode::PermissionDenied, msg).await;
    }
    // Read with recvmsg: an `exec` request carries descriptors.
    let read = super::exec::read_request_with_fds(rd.as_ref());
    let (request, fds, rest) = match tokio::time::timeout(REQUEST_TIMEOUT, read).await {
        Ok(Ok(r)) => r,
        Ok(Err((code, message))) => return error(&mut wr, code, message).await,
        Err(_) => {
            let msg = format!("no complete request within {}s", REQUEST_TIMEOUT.as_secs());
            return error(&mut wr, ErrorCode::Timeout, msg).await;
        }
    };
    if reader_only && request.command.is_mutating() {
        let msg = "permission denied: members of the control group may only read \
                   (status, logs, top, events, audit); this needs root"
            .to_string();
        return error(&mut wr, ErrorCode::PermissionDenied, msg).await;
    }
    let wait = match &request.command {
        Command::Start { wait, units } | Command::Restart { wait, units } => {
            wait.then(|| (Goal::Up, units.clone()))
        }
        Command::Stop { wait, units } => wait.then(|| (Goal::Down, units.clone())),
        _ => None,
    };
    // What came after the request line is read first.
    let mut rd = BufReader::new(std::io::Cursor::new(rest).chain(rd));
    let follow = matches!(
        request.command,
        Command::Logs { follow: true, .. } | Command::Events { .. }
    );
    let filter = match &request.command {
        Command::Events { units } => units.clone(),
        _ => Vec::new(),
    };
    let exec = matches!(request.command, Command::Exec { .. });
    let (lines, log_filter) = match &request.command {
        Command::Logs {
            lines,
            since,
            until,
            grep,
            ..
        } => match log_filter(since, until, grep) {
            Ok(filter) => (*lines, filter),
            Err(message) => return error(&mut wr, ErrorCode::BadRequest, message).await,
        },
        _ => (0, Filter::default()),
    };
    let _long_lived = if follow || wait.is_some() || exec {
        match long_lived.try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                let msg = format!(
                    "supd serves {MAX_LONG_LIVED} following or waiting clients at most; try again"
                );
                return error(&mut wr, ErrorCode::Busy, msg).await;
            }
        }
    } else {
        None
    };
    let mut changes = handle.changes.clone();
    changes.mark_unchanged();
    let answer = match ask(&handle, request.command).await {
        Some(a) => a,
        None => {
            return error(
                &mut wr,
                ErrorCode::ShuttingDown,
                "supd is shutting down".into(),
            )
            .await;
        }
    };
    match answer {
        Answer::Reply(reply @ Reply::Done { .. }) if wait.is_some() => {
            if let (Some((goal, _)), Reply::Done { results }) = (wait, &reply) {
                // Every unit the request acted on: a stop also lists the units
                // stopped with the named ones, in order.
                let units: Vec<String> = results.iter().map(|r| r.name.clone()).collect();
                let reply = wait_for(&handle, changes, goal, &units, &mut rd).await;
                let _ = send(&mut wr, &reply).await;
            }
        }
        Answer::Reply(reply) => {
            let _ = send(&mut wr, &reply).await;
        }
        Answer::Log(log) => {
            let want = LogWant {
                lines,
                follow,
                filter: log_filter,
            };
            stream_log(log, want, &mut rd, &mut wr).await
        }
        Answer::Exec(launch) => {
            if let Err(reply) = super::exec::serve(launch, fds, &mut rd, &mut wr).await {
                let _ = send(&mut wr, &reply).await;
            }
        }
        Answer::Events(rx) => stream_events(rx, &filter, &mut rd, &mut wr).await,
    }
}

/// The supplementary groups of the process at the other end (`SO_PEERGROUPS`),
/// as they were when it connected; empty if the kernel cannot tell.
fn peer_groups(stream: &UnixStream) -> Vec<u32> {
    use std::os::fd::AsRawFd;
    let mut groups = vec![0u32; 256];
    let mut len = (groups.len() * std::mem::size_of::<u32>()) as libc::socklen_t;
    // SAFETY: the buffer holds `len` bytes and outlives the call; the kernel writes
    // at most `len` bytes and sets `len` to what it wrote.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERGROUPS,
            groups.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Vec::new();
    }
    groups.truncate(len as usize / std::mem::size_of::<u32>());
    groups
}

/// Root and supd's own user may do everything; others only what `read_gid` allows.
fn authorised(uid: Option<u32>, owner: u32) -> bool {
    matches!(uid, Some(u) if u == 0 || u == owner)
}

async fn ask(handle: &Handle, command: Command) -> Option<Answer> {
    let (tx, rx) = oneshot::channel();
    handle
        .queries
        .send(Query::Request {
            command,
            answer: tx,
        })
        .ok()?;
    rx.await.ok()
}

async fn progress(handle: &Handle, units: &[String]) -> Option<Result<Vec<UnitProgress>, String>> {
    let (tx, rx) = oneshot::channel();
    handle
        .queries
        .send(Query::Progress {
            units: units.to_vec(),
            answer: tx,
        })
        .ok()?;
    rx.await.ok()
}

/// Decode one request line (the protocol's whole input surface, fuzzed in `fuzz/`).
pub fn decode_request(line: &[u8]) -> Result<Request, (ErrorCode, String)> {
    if line.len() > MAX_REQUEST_BYTES {
        return Err((
            ErrorCode::BadRequest,
            format!("request longer than {MAX_REQUEST_BYTES} bytes"),
        ));
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err((ErrorCode::BadRequest, "empty request".into()));
    }
    let request: Request = serde_json::from_slice(line)
        .map_err(|e| (ErrorCode::BadRequest, format!("malformed request: {e}")))?;
    if request.v != PROTOCOL_VERSION {
        let msg = format!(
            "protocol version {} is not supported; this supd speaks {PROTOCOL_VERSION}",
            request.v
        );
        return Err((ErrorCode::UnsupportedVersion, msg));
    }
    Ok(request)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goal {
    Up,
    Down,
}

/// For `--wait`: whether a unit has reached the goal (Some(true)), cannot reach it any
/// more (Some(false)), or is still on its way (None).
fn verdict(goal: Goal, state: UnitState) -> Option<bool> {
    use UnitState as S;
    match goal {
        Goal::Up => match state {
            S::Running | S::Exited => Some(true),
            S::Failed | S::Inactive => Some(false),
            S::Starting | S::Stopping | S::Restarting => None,
        },
        Goal::Down => match state {
            S::Inactive | S::Exited | S::Failed => Some(true),
            S::Starting | S::Running | S::Stopping | S::Restarting => None,
        },
    }
}

/// Re-check the named units after every state change until all are decided. A
/// client that hangs up ends the wait.
async fn wait_for<R: AsyncRead + Unpin>(
    handle: &Handle,
    mut changes: watch::Receiver<u64>,
    goal: Goal,
    units: &[String],
    rd: &mut BufReader<R>,
) -> Reply {
    loop {
        let statuses = match progress(handle, units).await {
            Some(Ok(units)) => units,
            Some(Err(message)) => {
                return Reply::Error {
                    code: ErrorCode::NotFound,
                    message,
                };
            }
            None => return shutting_down(),
        };
        let verdicts: Vec<Option<bool>> = statuses
            .iter()
            .map(|s| match goal {
                Goal::Up if s.blocked => Some(false),
                _ => verdict(goal, s.state),
            })
            .collect();
        if verdicts.iter().all(Option::is_some) {
            return Reply::Done {
                results: statuses
                    .iter()
                    .zip(verdicts)
                    .map(|(s, v)| wait_result(s, v == Some(true)))
                    .collect(),
            };
        }
        let mut probe = [0u8; 1];
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return shutting_down() },
            _ = rd.read(&mut probe) => return shutting_down(),
        }
    }
}

fn wait_result(s: &UnitProgress, ok: bool) -> UnitResult {
    UnitResult {
        name: s.name.clone(),
        ok,
        state: s.state,
        message: if ok {
            // e.g. a stop that had to be forced
            s.reason.clone()
        } else {
            Some(
                s.reason
                    .clone()
                    .unwrap_or_else(|| format!("unit is {}", s.state)),
            )
        },
    }
}

fn shutting_down() -> Reply {
    Reply::Error {
        code: ErrorCode::ShuttingDown,
        message: "supd is shutting down".into(),
    }
}

/// Write one reply line; a client that does not take it within `WRITE_TIMEOUT` is
/// given up on.
pub(super) async fn send(wr: &mut OwnedWriteHalf, reply: &Reply) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    match tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&bytes)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

async fn error(wr: &mut OwnedWriteHalf, code: ErrorCode, message: String) {
    let _ = send(wr, &Reply::Error { code, message }).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_and_owner_are_authorised() {
        assert!(authorised(Some(0), 1000));
        assert!(authorised(Some(1000), 1000));
        assert!(!authorised(Some(65534), 1000));
        assert!(!authorised(None, 0));
    }

    #[test]
    fn wait_verdicts() {
        assert_eq!(verdict(Goal::Up, UnitState::Running), Some(true));
        assert_eq!(verdict(Goal::Up, UnitState::Restarting), None);
        assert_eq!(verdict(Goal::Up, UnitState::Failed), Some(false));
        assert_eq!(verdict(Goal::Down, UnitState::Stopping), None);
        assert_eq!(verdict(Goal::Down, UnitState::Inactive), Some(true));
    }

    #[test]
    fn oversized_and_malformed_requests_are_refused() {
        let long = vec![b'x'; MAX_REQUEST_BYTES + 10];
        let err = decode_request(&long).expect_err("too long");
        assert_eq!(err.0, ErrorCode::BadRequest);
        let unknown = b"{\"v\":1,\"cmd\":\"explode\"}\n";
        assert_eq!(
            decode_request(unknown).expect_err("unknown").0,
            ErrorCode::BadRequest
        );
        let version = b"{\"v\":9,\"cmd\":\"status\"}\n";
        assert_eq!(
            decode_request(version).expect_err("version").0,
            ErrorCode::UnsupportedVersion
        );
        assert!(decode_request(b"{\"v\":1,\"cmd\":\"status\"}\n").is_ok());
    }
}
