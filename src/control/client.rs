//! Blocking client for supd's control socket (see docs/protocol.md).
//!
//! One connection carries exactly one request: `send` it, then call `recv` until it
//! returns the final reply (or `None` at end of stream).

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::proto::{Command, Reply, Request};

/// State directory used when neither `--socket` nor `--state-dir` / `SUP_STATE_DIR` is given.
pub const DEFAULT_STATE_DIR: &str = "/run/sup";
/// File name of the control socket inside the state directory.
pub const SOCKET_NAME: &str = "control.sock";
/// How long to wait for a reply line to a non-follow request.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether the reply to `command` comes only when units have settled or never
/// (`logs -f`): no reply timeout applies to it.
fn waits_for_units(command: &Command) -> bool {
    match command {
        Command::Logs { follow, .. } => *follow,
        Command::Start { wait, .. }
        | Command::Stop { wait, .. }
        | Command::Restart { wait, .. } => *wait,
        // As long as the command runs.
        Command::Exec { .. } => true,
        _ => false,
    }
}

/// A reply line. `Reply` is internally tagged, which serde decodes by first
/// buffering the whole object into an untyped tree; a status of a thousand units
/// (700 KB) then costs twice. So the tag is read first (skipping the rest without
/// keeping it) and a status reply decoded straight into its units.
fn parse_reply(line: &str) -> serde_json::Result<Reply> {
    #[derive(serde::Deserialize)]
    struct Tag<'a> {
        #[serde(rename = "type", borrow)]
        kind: std::borrow::Cow<'a, str>,
    }
    #[derive(serde::Deserialize)]
    struct Status {
        units: Vec<super::proto::UnitStatus>,
    }
    match serde_json::from_str::<Tag>(line) {
        Ok(tag) if tag.kind == "status" => {
            serde_json::from_str::<Status>(line).map(|s| Reply::Status { units: s.units })
        }
        _ => serde_json::from_str(line),
    }
}

/// Where the control socket is: `socket` wins, then `state_dir`, then `/run/sup`.
pub fn socket_path(socket: Option<&Path>, state_dir: Option<&Path>) -> PathBuf {
    match (socket, state_dir) {
        (Some(socket), _) => socket.to_path_buf(),
        (None, Some(dir)) => dir.join(SOCKET_NAME),
        (None, None) => Path::new(DEFAULT_STATE_DIR).join(SOCKET_NAME),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no supd socket at {}: is supd running? (set --state-dir or SUP_STATE_DIR)", .0.display())]
    SocketNotFound(PathBuf),
    #[error("permission denied on {}: only root or supd's own user may control it", .0.display())]
    PermissionDenied(PathBuf),
    #[error("supd is not running (stale socket {})", .0.display())]
    NotRunning(PathBuf),
    #[error("cannot connect to {}: {source}", .path.display())]
    Connect { path: PathBuf, source: io::Error },
    #[error("timed out waiting for a reply from supd")]
    Timeout,
    #[error("supd closed the connection before replying")]
    Closed,
    #[error("connection to supd failed: {0}")]
    Io(#[source] io::Error),
    #[error("invalid reply from supd: {0}")]
    Protocol(String),
    #[error("refusing to trust {}: {reason}", .path.display())]
    Untrusted { path: PathBuf, reason: String },
}

impl ClientError {
    fn from_io(err: io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout,
            _ => ClientError::Io(err),
        }
    }
}

/// uids whose socket supctl talks to: root, and the user running supctl.
fn trusted_owner(uid: u32) -> bool {
    uid == 0 || uid == nix::unistd::geteuid().as_raw()
}

/// The socket and its directory are owned by a trusted user, and nobody else may
/// replace the socket.
fn check_socket_path(path: &Path) -> Result<(), ClientError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let untrusted = |reason: String| ClientError::Untrusted {
        path: path.to_path_buf(),
        reason,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(meta) = std::fs::metadata(dir) {
        if !trusted_owner(meta.uid()) {
            return Err(untrusted(format!(
                "its directory is owned by uid {}, not root or you",
                meta.uid()
            )));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(untrusted(format!(
                "its directory is writable by group or others (mode {:o})",
                meta.mode() & 0o7777
            )));
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            Err(untrusted("it is not a socket".to_string()))
        }
        Ok(meta) if !trusted_owner(meta.uid()) => Err(untrusted(format!(
            "it is owned by uid {}, not root or you",
            meta.uid()
        ))),
        // A missing socket is reported by connect, with advice.
        _ => Ok(()),
    }
}

/// The process that accepted the connection runs as a trusted user.
fn check_peer(stream: &UnixStream, path: &Path) -> Result<(), ClientError> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let creds = getsockopt(stream, PeerCredentials).map_err(|e| ClientError::Io(e.into()))?;
    let uid = creds.uid();
    if trusted_owner(uid) {
        Ok(())
    } else {
        Err(ClientError::Untrusted {
            path: path.to_path_buf(),
            reason: format!("the process listening there runs as uid {uid}, not root or you"),
        })
    }
}

/// A connection to supd.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connect to the socket at `path`, turning the usual failures into advice. The
    /// socket, its directory and the process answering must belong to root or to
    /// this user: anything else could be another user's fake supd.
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        check_socket_path(path)?;
        let stream = UnixStream::connect(path).map_err(|source| {
            let path = path.to_path_buf();
            match source.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENOTDIR) => ClientError::SocketNotFound(path),
                Some(libc::EACCES) | Some(libc::EPERM) => ClientError::PermissionDenied(path),
                Some(libc::ECONNREFUSED) => ClientError::NotRunning(path),
                _ => ClientError::Connect { path, source },
            }
        })?;
        check_peer(&stream, path)?;
        stream
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .map_err(ClientError::Io)?;
        stream
            .set_write_timeout(Some(REPLY_TIMEOUT))
            .map_err(ClientError::Io)?;
        let writer = stream.try_clone().map_err(ClientError::Io)?;
        Ok(Client {
            // Room for a large reply (a status of many units) in few reads.
            reader: BufReader::with_capacity(1 << 16, stream),
            writer,
        })
    }

    /// Change how long `recv` waits for a line; `None` waits forever.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<(), ClientError> {
        self.writer
            .set_read_timeout(timeout)
            .map_err(ClientError::Io)
    }

    /// Write `request` as one JSON line. A following `logs` request and a `--wait`
    /// (which supd itself bounds by the units' `start_timeout`/`stop_timeout`)
    /// disable the read timeout; every other request keeps the 30 s timeout.
    pub fn send(&mut self, request: &Request) -> Result<(), ClientError> {
        self.set_timeout(if waits_for_units(&request.command) {
            None
        } else {
            Some(REPLY_TIMEOUT)
        })?;
        let mut line = serde_json::to_string(request)
            .map_err(|e| ClientError::Protocol(format!("cannot encode request: {e}")))?;
        line.push('\n');
        match self
            .writer
            .write_all(line.as_bytes())
            .and_then(|()| self.writer.flush())
        {
            Ok(()) => Ok(()),
            // supd may answer (e.g. permission denied) and close before reading the
            // request; its answer is still there to read.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            Err(e) => Err(ClientError::from_io(e)),
        }
    }

    /// `send`, with `fds` passed along with the request line (SCM_RIGHTS): the
    /// command's stdin, stdout and stderr for `exec`.
    pub fn send_with_fds(
        &mut self,
        request: &Request,
        fds: &[std::os::fd::BorrowedFd<'_>],
    ) -> Result<(), ClientError> {
        self.set_timeout(if waits_for_units(&request.command) {
            None
        } else {
            Some(REPLY_TIMEOUT)
        })?;
        let mut line = serde_json::to_vec(request)
            .map_err(|e| ClientError::Protocol(format!("cannot encode request: {e}")))?;
        line.push(b'\n');
        match super::exec::send_with_fds(&self.writer, &line, fds) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            Err(e) => Err(ClientError::from_io(e)),
        }
    }

    /// Another handle on the connection, for writing while `recv` waits (an
    /// `exec` client passing signals on).
    pub fn try_clone_stream(&self) -> Result<UnixStream, ClientError> {
        self.writer.try_clone().map_err(ClientError::Io)
    }

    /// The next reply line, or `None` when supd closed the connection.
    pub fn recv(&mut self) -> Result<Option<Reply>, ClientError> {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self
                .reader
                .read_line(&mut line)
                .map_err(ClientError::from_io)?;
            if n == 0 {
                return Ok(None);
            }
            if !line.ends_with('\n') {
                return Err(ClientError::Protocol(
                    "connection closed in the middle of a reply".to_string(),
                ));
            }
            if !line.trim().is_empty() {
                break;
            }
        }
        parse_reply(line.trim_end())
            .map(Some)
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Send `request` and return its first reply; end of stream is `ClientError::Closed`.
    pub fn request(&mut self, request: &Request) -> Result<Reply, ClientError> {
        self.send(request)?;
        self.recv()?.ok_or(ClientError::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::proto::{ErrorCode, LogLine, PROTOCOL_VERSION};
    use std::os::unix::net::UnixListener;
    use std::thread;

    #[test]
    fn socket_path_precedence() {
        assert_eq!(
            socket_path(Some(Path::new("/s.sock")), Some(Path::new("/d"))),
            PathBuf::from("/s.sock")
        );
        assert_eq!(
            socket_path(None, Some(Path::new("/var/lib/sup"))),
            PathBuf::from("/var/lib/sup/control.sock")
        );
        assert_eq!(
            socket_path(None, None),
            PathBuf::from("/run/sup/control.sock")
        );
    }

    /// A one-shot fake supd: reads one request line, answers with `replies`, closes.
    fn fake_server(
        replies: Vec<&'static str>,
    ) -> (tempfile::TempDir, PathBuf, thread::JoinHandle<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let handle = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut writer = stream;
            for reply in replies {
                writer.write_all(reply.as_bytes()).unwrap();
                writer.write_all(b"\n").unwrap();
            }
            line
        });
        (dir, path, handle)
    }

    #[test]
    fn status_round_trip() {
        let (_dir, path, server) = fake_server(vec![r#"{"type":"status","units":[]}"#]);
        let mut client = Client::connect(&path).unwrap();
        let req = Request {
            v: PROTOCOL_VERSION,
            command: Command::Status {
                units: vec![],
                brief: false,
            },
        };
        let reply = client.request(&req).unwrap();
        assert_eq!(reply, Reply::Status { units: vec![] });
        assert_eq!(client.recv().unwrap(), None);
        let sent = server.join().unwrap();
        assert_eq!(sent, "{\"v\":1,\"cmd\":\"status\",\"units\":[]}\n");
    }

    #[test]
    fn replies_parse_the_same_by_tag_first_as_by_serde() {
        use crate::control::proto::UnitState;
        use crate::control::render::tests::unit;
        let replies = [
            Reply::Status {
                units: vec![
                    unit("web", UnitState::Running, "running"),
                    unit("db", UnitState::Failed, "failed"),
                ],
            },
            Reply::Status { units: vec![] },
            Reply::End,
            Reply::Exit {
                code: Some(3),
                signal: None,
            },
        ];
        for reply in replies {
            let line = serde_json::to_string(&reply).unwrap();
            assert_eq!(parse_reply(&line).unwrap(), reply, "{line}");
        }
        // A status without its units is an error either way, never an empty list.
        assert!(parse_reply(r#"{"type":"status"}"#).is_err());
        assert!(parse_reply("not json").is_err());
    }

    #[test]
    fn brief_status_is_said_only_when_asked() {
        let brief: Request =
            serde_json::from_str(r#"{"v":1,"cmd":"status","units":[],"brief":true}"#).unwrap();
        assert_eq!(
            brief.command,
            Command::Status {
                units: vec![],
                brief: true
            }
        );
        let plain: Request = serde_json::from_str(r#"{"v":1,"cmd":"status"}"#).unwrap();
        assert_eq!(
            plain.command,
            Command::Status {
                units: vec![],
                brief: false
            }
        );
        assert_eq!(
            serde_json::to_string(&brief).unwrap(),
            r#"{"v":1,"cmd":"status","units":[],"brief":true}"#
        );
    }

    #[test]
    fn logs_stream_then_end() {
        let (_dir, path, server) = fake_server(vec![
            r#"{"type":"log","ts":"2026-01-01T00:00:00.000Z","stream":"stdout","line":"hi"}"#,
            r#"{"type":"end"}"#,
        ]);
        let mut client = Client::connect(&path).unwrap();
        let req = Request {
            v: PROTOCOL_VERSION,
            command: Command::Logs {
                unit: "web".into(),
                lines: 10,
                follow: false,
                since: None,
                until: None,
                grep: None,
            },
        };
        client.send(&req).unwrap();
        assert_eq!(
            client.recv().unwrap(),
            Some(Reply::Log(LogLine {
                ts: "2026-01-01T00:00:00.000Z".into(),
                stream: "stdout".into(),
                line: "hi".into(),
            }))
        );
        assert_eq!(client.recv().unwrap(), Some(Reply::End));
        assert_eq!(client.recv().unwrap(), None);
        let sent: serde_json::Value = serde_json::from_str(&server.join().unwrap()).unwrap();
        assert_eq!(sent["cmd"], "logs");
        assert_eq!(sent["lines"], 10);
    }

    #[test]
    fn error_reply_is_decoded() {
        let (_dir, path, server) = fake_server(vec![
            r#"{"type":"error","code":"not-found","message":"no unit nope"}"#,
        ]);
        let mut client = Client::connect(&path).unwrap();
        let req = Request {
            v: PROTOCOL_VERSION,
            command: Command::Status {
                units: vec!["nope".into()],
                brief: false,
            },
        };
        let reply = client.request(&req).unwrap();
        assert_eq!(
            reply,
            Reply::Error {
                code: ErrorCode::NotFound,
                message: "no unit nope".into()
            }
        );
        server.join().unwrap();
    }

    #[test]
    fn eof_before_reply_is_closed() {
        let (_dir, path, server) = fake_server(vec![]);
        let mut client = Client::connect(&path).unwrap();
        let req = Request {
            v: PROTOCOL_VERSION,
            command: Command::Reload { dry_run: true },
        };
        let err = client.request(&req).unwrap_err();
        assert!(matches!(err, ClientError::Closed), "{err:?}");
        server.join().unwrap();
    }

    #[test]
    fn garbage_reply_is_protocol_error() {
        let (_dir, path, server) = fake_server(vec!["this is not json"]);
        let mut client = Client::connect(&path).unwrap();
        let req = Request {
            v: PROTOCOL_VERSION,
            command: Command::Status {
                units: vec![],
                brief: false,
            },
        };
        let err = client.request(&req).unwrap_err();
        assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
        server.join().unwrap();
    }

    #[test]
    fn only_following_and_waiting_requests_wait_without_a_timeout() {
        let units = vec!["a".to_string()];
        let logs = |follow| Command::Logs {
            unit: "a".into(),
            lines: 10,
            follow,
            since: None,
            until: None,
            grep: None,
        };
        for (command, waits) in [
            (logs(true), true),
            (logs(false), false),
            (
                Command::Start {
                    units: units.clone(),
                    wait: true,
                },
                true,
            ),
            (
                Command::Stop {
                    units: units.clone(),
                    wait: true,
                },
                true,
            ),
            (
                Command::Restart {
                    units: units.clone(),
                    wait: true,
                },
                true,
            ),
            (
                Command::Start {
                    units: units.clone(),
                    wait: false,
                },
                false,
            ),
            (
                Command::Status {
                    units: units.clone(),
                    brief: false,
                },
                false,
            ),
        ] {
            assert_eq!(super::waits_for_units(&command), waits, "{command:?}");
        }
    }

    #[test]
    fn read_timeout_maps_to_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let mut client = Client::connect(&path).unwrap();
        let (_held, _) = listener.accept().unwrap();
        client.set_timeout(Some(Duration::from_millis(50))).unwrap();
        let err = client.recv().unwrap_err();
        assert!(matches!(err, ClientError::Timeout), "{err:?}");
    }

    #[test]
    fn missing_socket_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let err = Client::connect(&path).unwrap_err();
        assert!(matches!(err, ClientError::SocketNotFound(_)), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("is supd running?"), "{msg}");
        assert!(msg.contains("SUP_STATE_DIR"), "{msg}");
    }

    #[test]
    fn stale_socket_is_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        drop(UnixListener::bind(&path).unwrap());
        let err = Client::connect(&path).unwrap_err();
        assert!(matches!(err, ClientError::NotRunning(_)), "{err:?}");
        assert!(err.to_string().contains("stale socket"));
    }

    #[test]
    fn unreadable_socket_is_permission_denied() {
        use std::os::unix::fs::PermissionsExt;
        if nix::unistd::geteuid().is_root() {
            // root bypasses file permissions; nothing to check.
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let _listener = UnixListener::bind(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
        let err = Client::connect(&path).unwrap_err();
        assert!(matches!(err, ClientError::PermissionDenied(_)), "{err:?}");
        assert!(err.to_string().contains("only root or supd's own user"));
    }
}
