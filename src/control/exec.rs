//! `exec` over the control socket. The request line carries the command's stdin,
//! stdout and stderr as three descriptors (SCM_RIGHTS, sent with the line), so
//! supd never relays the command's input or output: the command reads and writes
//! the client's own files (or the client's pty). The server side reads each
//! request with `recvmsg` for this (`read_request_with_fds`); once the daemon has
//! said how to start the command (`Launcher`), the connection task starts it in a
//! blocking thread and waits, without holding anything up, for the command's
//! status (answered with an `exit` reply). Meanwhile a client may send signal
//! lines (`SignalLine`), passed to the join helper for the command's process
//! group; a client that hangs up (or sends anything else) makes supd close its
//! end of the helper's socket, and the helper then kills the command's process
//! group.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream as StdUnixStream;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use tokio::io::Interest;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;

use super::proto::{ErrorCode, MAX_REQUEST_BYTES, Reply, Request};
use crate::spawn::join::{RESULT_HEAD, RESULT_MAX, decode_head};
use crate::spawn::join_command::SIGNAL;
use crate::supervise::ExitStatus;

/// Descriptors an `exec` request carries: stdin, stdout, stderr. More are closed.
pub const EXEC_FDS: usize = 3;

/// Starts the command with its stdin, stdout and stderr; the socket of its join
/// helper, which answers with the command's status. Blocking.
pub struct Launcher(pub Box<LaunchFn>);

pub type LaunchFn = dyn FnOnce([OwnedFd; EXEC_FDS]) -> Result<StdUnixStream, String> + Send;

impl std::fmt::Debug for Launcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Launcher")
    }
}

/// Read one request line (at most `MAX_REQUEST_BYTES`) with `recvmsg`, keeping the
/// first `EXEC_FDS` descriptors sent with it; also what was read after the line
/// (an `exec` client's first signal, say), to be read before the rest.
pub async fn read_request_with_fds(
    stream: &UnixStream,
) -> Result<(Request, Vec<OwnedFd>, Vec<u8>), (ErrorCode, String)> {
    let bad = |e: io::Error| (ErrorCode::BadRequest, format!("reading request: {e}"));
    let mut line = Vec::new();
    let mut fds = Vec::new();
    loop {
        stream.readable().await.map_err(bad)?;
        let mut chunk = [0u8; 4096];
        let got = stream.try_io(Interest::READABLE, || {
            recv_chunk(stream.as_raw_fd(), &mut chunk, &mut fds)
        });
        match got {
            Ok(0) => break,
            Ok(n) => {
                let part = chunk.get(..n).unwrap_or_default();
                line.extend_from_slice(part);
                if part.contains(&b'\n') || line.len() > MAX_REQUEST_BYTES {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(bad(e)),
        }
    }
    let rest = match line.iter().position(|b| *b == b'\n') {
        Some(end) => line.split_off(end + 1),
        None => Vec::new(),
    };
    let request = super::server::decode_request(&line)?;
    Ok((request, fds, rest))
}

fn recv_chunk(fd: RawFd, chunk: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
    let mut cmsg = nix::cmsg_space!([RawFd; EXEC_FDS]);
    let mut iov = [io::IoSliceMut::new(chunk)];
    let msg = recvmsg::<()>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(received) = c {
            for raw in received {
                // SAFETY: SCM_RIGHTS installed a fresh descriptor nothing else owns.
                fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
    }
    // Beyond what an exec takes: closed here.
    fds.truncate(EXEC_FDS);
    Ok(msg.bytes)
}

/// Send one request line with `fds` attached (the client's side). Blocking.
pub fn send_with_fds(
    stream: &std::os::unix::net::UnixStream,
    line: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let iov = [io::IoSlice::new(line)];
    let sent = sendmsg::<()>(stream.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)?;
    // The descriptors went with the first byte; the rest of a long line follows.
    let rest = line.get(sent..).unwrap_or_default();
    let mut w = stream;
    io::Write::write_all(&mut w, rest)
}

/// Start the command and wait for its status, or for the client to hang up.
/// `Err` is the reply to send instead of an `exit`.
pub async fn serve<R: AsyncRead + Unpin>(
    launch: Launcher,
    fds: Vec<OwnedFd>,
    rd: &mut BufReader<R>,
    wr: &mut OwnedWriteHalf,
) -> Result<(), Reply> {
    let got = fds.len();
    let stdio: [OwnedFd; EXEC_FDS] = fds.try_into().map_err(|_| Reply::Error {
        code: ErrorCode::BadRequest,
        message: format!(
            "exec takes {EXEC_FDS} descriptors (stdin, stdout, stderr) with its request; got {got}"
        ),
    })?;
    let internal = |message: String| Reply::Error {
        code: ErrorCode::Internal,
        message,
    };
    let sock = match tokio::task::spawn_blocking(move || (launch.0)(stdio)).await {
        Ok(Ok(sock)) => sock,
        Ok(Err(message)) => return Err(internal(format!("exec failed: {message}"))),
        Err(e) => return Err(internal(format!("exec failed: {e}"))),
    };
    let sock = sock
        .set_nonblocking(true)
        .and_then(|()| UnixStream::from_std(sock))
        .map_err(|e| internal(format!("exec helper socket: {e}")))?;
    let (mut from_helper, mut to_helper) = sock.into_split();
    let result = read_result(&mut from_helper);
    tokio::pin!(result);
    let mut line = Vec::new();
    let result = loop {
        line.clear();
        let mut limited = (&mut *rd).take(MAX_SIGNAL_LINE);
        tokio::select! {
            r = &mut result => break r,
            n = limited.read_until(b'\n', &mut line) => {
                // The client is gone (or sent what no client sends): dropping
                // the socket makes the helper kill the command.
                let Some(signo) = n.ok().filter(|n| *n > 0).and_then(|_| signal_of(&line)) else {
                    return Ok(());
                };
                if to_helper.write_all(&[SIGNAL, signo]).await.is_err() {
                    return Ok(());
                }
            }
        }
    };
    match result {
        Ok((status, output)) if output.is_empty() => {
            // A raw status is an exit code, or minus the signal.
            let status = if status < 0 {
                ExitStatus::Signal(status.saturating_neg())
            } else {
                ExitStatus::Code(status)
            };
            // A client gone meanwhile misses nothing: its command has ended.
            let _ = super::server::send(wr, &exit_reply(status)).await;
            Ok(())
        }
        Ok((_, output)) => Err(internal(format!(
            "exec failed: {}",
            String::from_utf8_lossy(&output).trim()
        ))),
        // Killed with the rest of the unit (stopped, restarted) before it could
        // report.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(internal(
            "the command was killed before it ended by itself (did its unit stop?)".into(),
        )),
        Err(e) => Err(internal(format!("exec helper ended without a status: {e}"))),
    }
}

/// Longest line a client sends while its command runs (a signal).
const MAX_SIGNAL_LINE: u64 = 256;

/// What a client sends while its command runs: a signal for the command's
/// process group, by name (`{"signal":"SIGINT"}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalLine {
    pub signal: String,
}

/// The signal number a client's line asks for, if it is one.
fn signal_of(line: &[u8]) -> Option<u8> {
    let asked: SignalLine = serde_json::from_slice(line).ok()?;
    let sig = crate::unit::values::parse_signal(&asked.signal).ok()?;
    u8::try_from(sig as i32).ok()
}

async fn read_result(sock: &mut tokio::net::unix::OwnedReadHalf) -> io::Result<(i32, Vec<u8>)> {
    let mut head = [0u8; RESULT_HEAD];
    sock.read_exact(&mut head).await?;
    let (status, len) = decode_head(head)
        .filter(|(_, len)| *len <= RESULT_MAX)
        .ok_or_else(|| io::Error::other("malformed result"))?;
    let mut output = vec![0u8; len];
    sock.read_exact(&mut output).await?;
    Ok((status, output))
}

/// The `exit` reply for a command's status.
pub fn exit_reply(status: ExitStatus) -> Reply {
    match status {
        ExitStatus::Code(c) => Reply::Exit {
            code: Some(c),
            signal: None,
        },
        ExitStatus::Signal(s) => Reply::Exit {
            code: None,
            signal: Some(ExitStatus::signal_name(s)),
        },
    }
}

/// supctl's exit code for an `exit` reply: the command's, or 128+N for signal N
/// (as a shell reports it).
pub fn exit_code(code: Option<i32>, signal: Option<&str>) -> i32 {
    if let Some(c) = code {
        return c;
    }
    signal
        .and_then(|s| crate::unit::values::parse_signal(s).ok())
        .map_or(1, |s| 128 + s as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_commands_or_128_plus_the_signal() {
        assert_eq!(exit_code(Some(0), None), 0);
        assert_eq!(exit_code(Some(42), None), 42);
        assert_eq!(exit_code(None, Some("SIGKILL")), 137);
        assert_eq!(exit_code(None, Some("SIGTERM")), 143);
        assert_eq!(exit_code(None, None), 1);
        assert_eq!(
            exit_reply(ExitStatus::Signal(9)),
            Reply::Exit {
                code: None,
                signal: Some("SIGKILL".into())
            }
        );
    }

    #[test]
    fn kill_and_exec_requests_have_defaults() {
        use super::super::proto::Command;
        let kill =
            super::super::server::decode_request(b"{\"v\":1,\"cmd\":\"kill\",\"unit\":\"web\"}")
                .expect("kill");
        assert_eq!(
            kill.command,
            Command::Kill {
                unit: "web".into(),
                signal: "SIGTERM".into(),
                all: false
            }
        );
        let exec = super::super::server::decode_request(
            b"{\"v\":1,\"cmd\":\"exec\",\"unit\":\"web\",\"argv\":[\"id\"]}",
        )
        .expect("exec");
        assert_eq!(
            exec.command,
            Command::Exec {
                unit: "web".into(),
                argv: vec!["id".into()],
                tty: false,
                user: None,
                env: vec![],
                workdir: None
            }
        );
        let unknown = b"{\"v\":1,\"cmd\":\"exec\",\"unit\":\"web\",\"argv\":[],\"root\":true}";
        assert!(super::super::server::decode_request(unknown).is_err());
    }

    #[tokio::test]
    async fn descriptors_travel_with_the_request_line() {
        let (client, server) = std::os::unix::net::UnixStream::pair().expect("pair");
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let line = b"{\"v\":1,\"cmd\":\"status\"}\nafter";
        use std::os::fd::AsFd;
        send_with_fds(&client, line, &[r.as_fd(), w.as_fd(), w.as_fd(), r.as_fd()]).expect("send");
        server.set_nonblocking(true).expect("nonblocking");
        let server = UnixStream::from_std(server).expect("tokio");
        let (request, fds, rest) = read_request_with_fds(&server).await.expect("read");
        assert_eq!(rest, b"after", "what follows the line is kept");
        assert!(matches!(
            request.command,
            super::super::proto::Command::Status { .. }
        ));
        assert_eq!(fds.len(), EXEC_FDS, "the fourth is closed");
    }
}
