//! `supctl exec -t`: the pty helpers of the terminal tests.

use super::*;

/// `supctl exec -t ARGS` on a new pty of 33x111 whose master is returned.
pub(super) fn on_pty(sup: &Sup, args: &[&str]) -> (KillOnDrop, OwnedFd) {
    let pty = nix::pty::openpty(
        Some(&nix::pty::Winsize {
            ws_row: 33,
            ws_col: 111,
            ws_xpixel: 0,
            ws_ypixel: 0,
        }),
        None,
    )
    .expect("openpty");
    let slave = pty.slave;
    let mut cmd = Command::new(SUPCTL);
    cmd.arg("--state-dir")
        .arg(sup.state_dir())
        .args(["exec", "-t"])
        .args(args)
        .stdin(slave.try_clone().expect("dup"))
        .stdout(slave.try_clone().expect("dup"))
        .stderr(slave.try_clone().expect("dup"));
    let controlling = || {
        nix::unistd::setsid().map_err(std::io::Error::from)?;
        // SAFETY: TIOCSCTTY on fd 0 with argument 0.
        if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: only async-signal-safe calls (setsid, ioctl) between fork and exec.
    unsafe { std::os::unix::process::CommandExt::pre_exec(&mut cmd, controlling) };
    let child = KillOnDrop(cmd.spawn().expect("supctl exec -t"));
    (child, pty.master)
}

/// `bb`: what comes before `tty` and `stty` (`busybox ` in a busybox root).
pub(super) fn terminal_session(sup: &Sup, unit: &str, bb: &str) {
    let script = format!(
        "{bb}tty; test -t 0 && test -t 1 && echo isatty; {bb}stty size; read line; \
         echo got:$line; {bb}stty size; exit 5"
    );
    let script = script.as_str();
    let (child, master) = on_pty(sup, &[unit, "sh", "-c", script]);
    let mut seen = String::new();
    read_until(&master, &mut seen, "33 111");
    assert!(
        seen.contains("/dev/pts/"),
        "{unit}: tty names the pty: {seen:?}"
    );
    assert!(seen.contains("isatty"), "{unit}: {seen:?}");
    // A new size for supctl's terminal: the kernel sends it SIGWINCH.
    let ws = nix::pty::Winsize {
        ws_row: 44,
        ws_col: 99,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    std::thread::sleep(Duration::from_millis(300));
    nix::unistd::write(&master, b"typed\r").expect("type");
    read_until(&master, &mut seen, "44 99");
    assert!(seen.contains("got:typed"), "{unit}: {seen:?}");
    assert_eq!(seen.matches("typed").count(), 2, "echoed once: {seen:?}");
    let mut child = child;
    let status = wait_child(&mut child.0, Duration::from_secs(30));
    assert_eq!(status.code(), Some(5), "{unit}: the exit code; {seen:?}");
}

/// Read the pty master into `seen` until it holds `needle`.
pub(super) fn read_until(master: &OwnedFd, seen: &mut String, needle: &str) {
    let deadline = Instant::now() + PATIENCE;
    let mut file = std::fs::File::from(master.try_clone().expect("dup"));
    while !seen.contains(needle) {
        assert!(Instant::now() < deadline, "no {needle:?} in {seen:?}");
        let mut polled = [nix::poll::PollFd::new(
            master.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut polled, nix::poll::PollTimeout::from(200u16)).unwrap_or(0) == 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        match file.read(&mut buf) {
            Ok(0) | Err(_) => panic!("terminal closed before {needle:?}: {seen:?}"),
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
}
