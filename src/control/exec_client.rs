//! `supctl exec`'s side: pass supctl's own stdin, stdout and stderr with the
//! request (the command reads and writes them directly), or with a terminal
//! (`-t`) a fresh pty's slave (raw: the join helper copies between it and a pty
//! of the container's, which is the command's terminal), while supctl puts its
//! own terminal in raw mode, copies between it and the pty's master, and passes
//! its window size on (at the start and at every SIGWINCH). Ends with the
//! command's status.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};

use super::client::{Client, ClientError};
use super::proto::{Reply, Request};

/// The end-of-file key of a terminal with the default settings.
const CTRL_D: u8 = 0x04;

/// How long output still in the pty is copied once the command has ended
/// (a background process may hold the terminal open for longer).
const DRAIN: Duration = Duration::from_millis(500);

/// Send `request` (an `exec`) and wait for its answer: `exit`, or an error.
pub fn run(
    client: &mut Client,
    request: &Request,
    tty: bool,
) -> Result<Option<Reply>, ClientError> {
    // Before any thread starts: they all inherit the mask.
    let signals = block_signals(tty);
    let stream = client.try_clone_stream()?;
    if !tty {
        pass_signals_on(signals, stream, None);
        let (i, o, e) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
        client.send_with_fds(request, &[i.as_fd(), o.as_fd(), e.as_fd()])?;
        return client.recv();
    }
    let stdin = std::io::stdin();
    let size = window_size(stdin.as_fd());
    let pty = nix::pty::openpty(size.as_ref(), None).map_err(|e| ClientError::Io(e.into()))?;
    let slave = pty.slave;
    // A plain pipe of bytes: the terminal that interprets them is the command's,
    // in its container.
    if let Ok(mut raw) = tcgetattr(slave.as_fd()) {
        cfmakeraw(&mut raw);
        let _ = tcsetattr(slave.as_fd(), SetArg::TCSANOW, &raw);
    }
    client.send_with_fds(request, &[slave.as_fd(), slave.as_fd(), slave.as_fd()])?;
    // The command holds the slave now: when it (and what it started) ends, reading
    // the master says so.
    drop(slave);
    let master = pty.master;
    let _raw = RawMode::enter(stdin.as_fd());
    pass_signals_on(signals, stream, master.try_clone().ok());
    let done = copy_output(&master)?;
    copy_input(&master)?;
    let reply = client.recv();
    let _ = done.recv_timeout(DRAIN);
    reply
}

/// The terminal's window size, if `fd` is one.
fn window_size(fd: BorrowedFd<'_>) -> Option<nix::pty::Winsize> {
    let mut ws = nix::pty::Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we own.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (r == 0).then_some(ws)
}

fn set_window_size(master: BorrowedFd<'_>, ws: &nix::pty::Winsize) {
    // SAFETY: TIOCSWINSZ reads one winsize from the struct we own.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, ws) };
}

/// The signals supctl passes on to the command instead of dying of them (so
/// that, say, `timeout 10 supctl exec ...` or Ctrl-C without `-t` reach the
/// command), and with a terminal SIGWINCH: blocked in every thread, taken by
/// `pass_signals_on`.
fn block_signals(tty: bool) -> SigSet {
    let mut set = SigSet::empty();
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        set.add(sig);
    }
    if tty {
        set.add(Signal::SIGWINCH);
    }
    if pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).is_err() {
        return SigSet::empty();
    }
    set
}

/// A thread that takes the blocked signals: each but SIGWINCH goes to supd as a
/// line for the command's process group; at SIGWINCH the terminal's new size
/// goes to the pty.
fn pass_signals_on(set: SigSet, stream: std::os::unix::net::UnixStream, pty: Option<OwnedFd>) {
    std::thread::spawn(move || {
        let mut stream = stream;
        while let Ok(sig) = set.wait() {
            if sig == Signal::SIGWINCH {
                if let (Some(pty), Some(ws)) = (&pty, window_size(std::io::stdin().as_fd())) {
                    set_window_size(pty.as_fd(), &ws);
                }
                continue;
            }
            let line = super::exec::SignalLine {
                signal: sig.as_str().to_string(),
            };
            let Ok(mut bytes) = serde_json::to_vec(&line) else {
                continue;
            };
            bytes.push(b'\n');
            if stream.write_all(&bytes).is_err() {
                return;
            }
        }
    });
}

/// Copy the pty's output to stdout until the pty has no writer left; the
/// receiver hears when.
fn copy_output(master: &OwnedFd) -> Result<mpsc::Receiver<()>, ClientError> {
    let mut from = std::fs::File::from(master.try_clone().map_err(ClientError::Io)?);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        let mut out = std::io::stdout();
        // EIO once the last holder of the slave closed it.
        while let Ok(n @ 1..) = from.read(&mut buf) {
            if out
                .write_all(buf.get(..n).unwrap_or_default())
                .and_then(|()| out.flush())
                .is_err()
            {
                break;
            }
        }
        let _ = tx.send(());
    });
    Ok(rx)
}

/// Copy stdin to the pty (keystrokes, in raw mode) until stdin ends; the end of
/// a stdin that is not a terminal (`echo ls | supctl exec -t ...`) is passed on as
/// the terminal's end-of-file character.
fn copy_input(master: &OwnedFd) -> Result<(), ClientError> {
    let mut to = std::fs::File::from(master.try_clone().map_err(ClientError::Io)?);
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        let mut input = std::io::stdin();
        while let Ok(n @ 1..) = input.read(&mut buf) {
            if to.write_all(buf.get(..n).unwrap_or_default()).is_err() {
                return;
            }
        }
        if !std::io::IsTerminal::is_terminal(&input) {
            let _ = to.write_all(&[CTRL_D]);
        }
    });
    Ok(())
}

/// supctl's terminal in raw mode (keystrokes such as Ctrl-C go to the command's
/// terminal), restored when dropped; nothing when stdin is not a terminal.
struct RawMode {
    fd: std::os::fd::RawFd,
    saved: Option<Termios>,
}

impl RawMode {
    fn enter(fd: BorrowedFd<'_>) -> RawMode {
        let saved = tcgetattr(fd).ok();
        if let Some(saved) = &saved {
            let mut raw = saved.clone();
            cfmakeraw(&mut raw);
            let _ = tcsetattr(fd, SetArg::TCSANOW, &raw);
        }
        RawMode {
            fd: fd.as_raw_fd(),
            saved,
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            // SAFETY: fd 0 stays open for the whole of supctl's run.
            let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
            let _ = tcsetattr(fd, SetArg::TCSADRAIN, saved);
        }
    }
}
