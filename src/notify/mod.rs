//! sd_notify messages: a service tells supd it is ready, how it is doing, that its
//! watchdog should not fire. One datagram per message, newline-separated
//! `KEY=VALUE` lines (systemd's protocol, `sd_notify(3)`), received on a socket of
//! the unit's own: the socket a message arrives on names the unit (a pid the
//! service sends, `MAINPID=`, means nothing across pid and user namespaces). The
//! sender's credentials, which the kernel translates into supd's pid namespace,
//! only decide whether the message counts: it must come from a live process of
//! the unit's cgroup (`sender`).
//!
//! `parse` is the whole input surface and is pure; `sender` judges who sent a
//! message; `socket` receives.

pub mod sender;
pub mod socket;

use std::time::Duration;

/// Largest datagram read; a longer one is truncated and dropped.
pub const MAX_MESSAGE: usize = 4096;
/// `STATUS=` text kept for `supctl status`.
pub const MAX_STATUS: usize = 256;

/// One field of a notify message that supd acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// `READY=1`.
    Ready,
    /// `STATUS=...`: free text shown in status.
    Status(String),
    /// `WATCHDOG=1`.
    Watchdog,
    /// `WATCHDOG=trigger`: fire the watchdog now.
    WatchdogTrigger,
    /// `STOPPING=1`: the service is shutting down by itself.
    Stopping,
    /// `MAINPID=N`: the service's main pid, as the service sees it.
    MainPid(i32),
    /// `EXTEND_TIMEOUT_USEC=N`: the start may take this much longer.
    ExtendTimeout(Duration),
}

/// The fields of one message; unknown keys and malformed values are ignored, as
/// systemd does.
pub fn parse(message: &[u8]) -> Vec<Notice> {
    let text = String::from_utf8_lossy(message);
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once('=')?;
            Some(match (key, value) {
                ("READY", "1") => Notice::Ready,
                ("STATUS", text) => Notice::Status(text.chars().take(MAX_STATUS).collect()),
                ("WATCHDOG", "1") => Notice::Watchdog,
                ("WATCHDOG", "trigger") => Notice::WatchdogTrigger,
                ("STOPPING", "1") => Notice::Stopping,
                ("MAINPID", pid) => Notice::MainPid(pid.parse().ok().filter(|p: &i32| *p > 0)?),
                ("EXTEND_TIMEOUT_USEC", us) => {
                    Notice::ExtendTimeout(Duration::from_micros(us.parse().ok()?))
                }
                _ => return None,
            })
        })
        .collect()
}

/// A message from `supctl notify`'s arguments: `--ready`, `--status TEXT` and
/// any `KEY=VALUE` fields, in that order. An error says what is wrong: nothing to
/// send, a field that is not `KEY=VALUE` on one line, a message too long.
pub fn compose(ready: bool, status: Option<&str>, fields: &[String]) -> Result<String, String> {
    let mut lines = Vec::new();
    if ready {
        lines.push("READY=1".to_string());
    }
    if let Some(text) = status {
        lines.push(format!("STATUS={text}"));
    }
    for f in fields {
        if !f.contains('=') || f.starts_with('=') {
            return Err(format!(
                "`{f}` is not KEY=VALUE (e.g. READY=1, STATUS=warming up)"
            ));
        }
        lines.push(f.clone());
    }
    if lines.is_empty() {
        return Err("nothing to send: give --ready, --status or KEY=VALUE fields".into());
    }
    if lines.iter().any(|l| l.contains('\n')) {
        return Err("a field contains a newline".into());
    }
    let message = lines.join("\n");
    if message.len() > MAX_MESSAGE {
        return Err(format!("the message is longer than {MAX_MESSAGE} bytes"));
    }
    Ok(message)
}

/// How long `send` waits for the receiver to have read the message.
pub const BARRIER_TIMEOUT: Duration = Duration::from_secs(5);

/// Send `message` to the socket named by `NOTIFY_SOCKET` (`@name` is an abstract
/// socket), as `sd_notify(3)` does, then wait at most `BARRIER_TIMEOUT` until the
/// receiver has read it, as `sd_notify_barrier(3)` does: `BARRIER=1` with the
/// write end of a pipe, which the receiver closes once it read every message
/// before it. supd judges a message's sender when it reads it (see `sender`), so
/// a sender that has exited by then is not credited; a short-lived sender must
/// wait. False when the wait timed out.
pub fn send(notify_socket: &str, message: &str) -> std::io::Result<bool> {
    use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixDatagram;
    let addr = match notify_socket.strip_prefix('@') {
        Some(name) => UnixAddr::new_abstract(name.as_bytes())?,
        None => UnixAddr::new(notify_socket)?,
    };
    let sock = UnixDatagram::unbound()?;
    let plain = [std::io::IoSlice::new(message.as_bytes())];
    sendmsg(
        sock.as_raw_fd(),
        &plain,
        &[],
        MsgFlags::empty(),
        Some(&addr),
    )?;
    let (done, signal) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let barrier = [std::io::IoSlice::new(b"BARRIER=1")];
    let fds = [signal.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg(
        sock.as_raw_fd(),
        &barrier,
        &cmsg,
        MsgFlags::empty(),
        Some(&addr),
    )?;
    // Only the receiver's copy of the write end is left: closing it ends the wait.
    drop(signal);
    let millis = u16::try_from(BARRIER_TIMEOUT.as_millis()).unwrap_or(u16::MAX);
    let timeout = nix::poll::PollTimeout::from(millis);
    let mut polled = [nix::poll::PollFd::new(
        std::os::fd::AsFd::as_fd(&done),
        nix::poll::PollFlags::POLLIN,
    )];
    loop {
        match nix::poll::poll(&mut polled, timeout) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_fields_are_read_and_the_rest_ignored() {
        let msg = b"READY=1\nSTATUS=accepting connections\nWATCHDOG=1\nFDSTORE=1\nMAINPID=42\n\
                    EXTEND_TIMEOUT_USEC=5000000\nSTOPPING=1\nWATCHDOG=trigger\nREADY=0\nbogus\n";
        assert_eq!(
            parse(msg),
            vec![
                Notice::Ready,
                Notice::Status("accepting connections".into()),
                Notice::Watchdog,
                Notice::MainPid(42),
                Notice::ExtendTimeout(Duration::from_secs(5)),
                Notice::Stopping,
                Notice::WatchdogTrigger,
            ]
        );
    }

    #[test]
    fn supctl_notify_messages_are_what_parse_reads() {
        let msg = compose(true, Some("warming up"), &["WATCHDOG=1".into()]).expect("valid");
        assert_eq!(msg, "READY=1\nSTATUS=warming up\nWATCHDOG=1");
        assert_eq!(
            parse(msg.as_bytes()),
            vec![
                Notice::Ready,
                Notice::Status("warming up".into()),
                Notice::Watchdog
            ]
        );
        for (ready, status, fields) in [
            (false, None, vec![]),
            (false, None, vec!["READY".to_string()]),
            (false, None, vec!["=1".to_string()]),
            (false, Some("a\nREADY=1"), vec![]),
            (false, Some("x".repeat(MAX_MESSAGE).as_str()), vec![]),
        ] {
            assert!(
                compose(ready, status, &fields).is_err(),
                "{status:?} {fields:?}"
            );
        }
    }

    #[test]
    fn malformed_values_are_ignored_and_status_is_bounded() {
        assert!(parse(b"MAINPID=-1\nMAINPID=x\nEXTEND_TIMEOUT_USEC=soon").is_empty());
        let long = format!("STATUS={}", "x".repeat(10_000));
        let [Notice::Status(s)] = &parse(long.as_bytes())[..] else {
            panic!("one status")
        };
        assert_eq!(s.len(), MAX_STATUS);
        assert_eq!(parse(b"\xff\xfeREADY=1"), vec![], "garbage before the key");
        assert_eq!(parse(b"READY=1"), vec![Notice::Ready], "no final newline");
    }
}
