//! Issue 10, point 6: the state directory holds the control socket and the unit
//! logs, so supd trusts only a directory nobody else can change, writes logs that
//! only root's group can read without following planted links, and `supctl` talks
//! only to a socket (and a process) of root or its own user. Leftovers at the socket
//! path (a dangling link, the socket of a killed supd) do not block a start.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, chown};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;

/// A uid and gid with no passwd entry, for "another user".
const STRANGER: u32 = 4321;

const SLEEPER: &str = "[service]\nexec = [\"/bin/sleep\", \"100000\"]\nstop_timeout = \"2s\"\n";

fn mkdir(path: &Path, mode: u32, owner: u32) {
    std::fs::create_dir_all(path).expect("mkdir");
    set_mode(path, mode);
    chown(path, Some(owner), Some(owner)).expect("chown");
}

/// Runs a supd on `sup`'s directories that is expected to refuse and exit at
/// once; its output (stderr captured) is returned.
fn supd_that_must_exit(sup: &Sup) -> std::process::Output {
    let child = Command::new(SUPD)
        .args(sup.supd_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("supd");
    wait_bounded(child, Duration::from_secs(20)).expect("supd exits at once")
}

pub fn a_state_dir_another_user_owns_or_can_write_is_refused() {
    let cases = [
        (0o755, STRANGER, "is owned by uid 4321, not by supd's uid 0"),
        (0o775, 0, "is writable by group or others (mode 775)"),
        (0o1777, 0, "is writable by group or others (mode 1777)"),
    ];
    for (mode, owner, problem) in cases {
        let sup = Sup::prepare(&[("svc", SLEEPER)]);
        mkdir(&sup.state_dir(), mode, owner);
        let out = supd_that_must_exit(&sup);
        let err = stderr(&out);
        assert!(!out.status.success(), "{err}");
        let dir = sup.state_dir().display().to_string();
        assert!(
            err.contains(&format!("refusing state directory {dir}: it {problem}"))
                && err.contains(&format!("chown 0 {dir} && chmod go-w {dir}")),
            "{err}"
        );
        assert!(!sup.state_dir().join("control.sock").exists());
    }
}

pub fn log_files_are_private_and_a_planted_link_is_not_followed() {
    let talk = sh_unit("", "echo secret-line; exec sleep 100000");
    let sup = Sup::prepare(&[("talk", &talk), ("planted", &talk)]);
    let logs = sup.state_dir().join("logs");
    mkdir(&logs, 0o755, 0);
    let target = sup.path().join("target");
    std::fs::write(&target, "").expect("target");
    std::os::unix::fs::symlink(&target, logs.join("planted.log")).expect("plant");
    let sup = sup.launch();
    sup.wait_state("talk", "running");
    sup.wait_state("planted", "running");
    let log = logs.join("talk.log");
    wait_until("talk's line in its log file", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("secret-line"))
    });
    let mode = std::fs::metadata(&log).expect("log").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640, "log files are not world-readable");
    // The planted link is left alone; the lines are kept in memory and supd says so.
    sup.log
        .wait_for_all(&["cannot write unit log", "planted.log"]);
    let shown = stdout(&sup.supctl(&["logs", "planted"]));
    assert!(shown.contains("secret-line"), "{shown}");
    assert_eq!(std::fs::read_to_string(&target).expect("target"), "");
    assert!(
        std::fs::symlink_metadata(logs.join("planted.log"))
            .expect("link")
            .is_symlink()
    );
}

/// `supctl --state-dir dir status` is refused with exit code 6, naming `why`.
fn refused(dir: &Path, why: &str) {
    let out = Command::new(SUPCTL)
        .arg("--state-dir")
        .arg(dir)
        .arg("status")
        .output()
        .expect("supctl");
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "refusing to trust {}",
            dir.join("control.sock").display()
        )) && err.contains(why),
        "{err}"
    );
}

pub fn supctl_refuses_a_socket_another_user_could_have_planted() {
    let tmp = tempfile::Builder::new()
        .prefix("sup-test-")
        .tempdir()
        .expect("tempdir");
    // A socket of another user in a directory of root.
    let dir = tmp.path().join("fake");
    mkdir(&dir, 0o755, 0);
    let fake = UnixListener::bind(dir.join("control.sock")).expect("bind");
    fake.set_nonblocking(true).expect("nonblocking");
    chown(dir.join("control.sock"), Some(STRANGER), Some(STRANGER)).expect("chown");
    refused(&dir, "it is owned by uid 4321, not root or you");
    assert!(fake.accept().is_err(), "supctl did not even connect");
    // A root socket in a directory of another user, or one others may write to.
    chown(dir.join("control.sock"), Some(0), Some(0)).expect("chown");
    chown(&dir, Some(STRANGER), Some(STRANGER)).expect("chown");
    refused(&dir, "its directory is owned by uid 4321, not root or you");
    chown(&dir, Some(0), Some(0)).expect("chown");
    set_mode(&dir, 0o777);
    refused(
        &dir,
        "its directory is writable by group or others (mode 777)",
    );
    assert!(fake.accept().is_err(), "supctl never connected");
}

pub fn supctl_refuses_a_supd_of_another_user() {
    let sup = Sup::prepare(&[]);
    set_mode(sup.path(), 0o755);
    mkdir(&sup.state_dir(), 0o755, STRANGER);
    let ids = format!("--reuid={STRANGER}");
    let gids = format!("--regid={STRANGER}");
    let sup = sup.launch_via(&["setpriv", &ids, &gids, "--clear-groups"]);
    refused(&sup.state_dir(), "its directory is owned by uid 4321");
    // Moved into a directory of root and given to root, the socket still leads to
    // a process of uid 4321: supctl asks the kernel who listens.
    let trusted = sup.path().join("trusted");
    mkdir(&trusted, 0o755, 0);
    std::fs::rename(
        sup.state_dir().join("control.sock"),
        trusted.join("control.sock"),
    )
    .expect("move the socket");
    chown(trusted.join("control.sock"), Some(0), Some(0)).expect("chown");
    refused(
        &trusted,
        "the process listening there runs as uid 4321, not root or you",
    );
}

pub fn a_dangling_link_or_a_stale_socket_at_the_socket_path_does_not_block_startup() {
    let sup = Sup::prepare(&[("svc", SLEEPER)]);
    let socket = sup.state_dir().join("control.sock");
    mkdir(&sup.state_dir(), 0o755, 0);
    std::os::unix::fs::symlink("/nonexistent/control.sock", &socket).expect("dangling link");
    let mut sup = sup.launch();
    let first = sup.wait_state("svc", "running");
    assert!(
        std::fs::symlink_metadata(&socket)
            .expect("socket")
            .file_type()
            .is_socket(),
        "the link was replaced by the socket"
    );
    // A second supd on the same state directory leaves the running one alone.
    let out = supd_that_must_exit(&sup);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("another supd is already listening"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sup.unit("svc")["pid"], first["pid"]);
    // The socket of a killed supd is stale: the next supd replaces it.
    let mut supd = sup.child.take().expect("supd");
    supd.kill().expect("kill -9");
    supd.wait().expect("reap");
    assert!(
        std::fs::symlink_metadata(&socket).is_ok(),
        "stale socket left"
    );
    sup.log = Arc::default();
    let sup = sup.launch();
    sup.wait_state("svc", "running");
    let meta = std::fs::metadata(&socket).expect("socket");
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o600));
}
