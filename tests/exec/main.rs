//! End-to-end tests of `supctl exec` and `supctl kill` (issue 15): real supd, real
//! supctl, real containers. An exec'd command must land in everything the service
//! has (namespaces, cgroup, identity, capabilities, no_new_privs, seccomp), get the
//! client's stdio or a terminal, report its exit code, and die with its client;
//! `kill` reaches the service (not its init), or with `--all` every process.

#[path = "../common/mod.rs"]
mod common;
mod tty;

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::harness::{self, root, trials};
use common::*;
use tty::{on_pty, read_until, terminal_session};

fn main() -> std::process::ExitCode {
    harness::main(trials![root => [
        exec_lands_in_the_units_namespaces_cgroup_and_restrictions,
        exec_takes_user_env_workdir_stdin_and_reports_exit_codes,
        exec_gives_a_terminal_and_its_window_size,
        exec_ends_with_its_client,
        exec_is_refused_to_other_users_and_for_units_not_running,
        kill_reaches_the_main_process_or_every_process,
        kill_with_sigkill_restarts_a_restart_always_unit,
        kill_and_exec_work_without_init_and_without_namespaces,
    ]])
}

/// A supd test directory with an `out` directory every container may write.
fn shared(units: &[(&str, &str)]) -> (Sup, PathBuf) {
    let sup = Sup::prepare(units);
    set_mode(sup.path(), 0o755);
    let out = shared_dir(sup.path(), "out");
    (sup, out)
}

/// `supctl exec ARGS` (stdin: nothing), within a bound.
fn exec(sup: &Sup, args: &[&str]) -> Output {
    let mut all = vec!["exec"];
    all.extend_from_slice(args);
    sup.supctl_within(&all, Duration::from_secs(30))
}

/// The host pid of the service of a unit running under sup's init: the init's child.
fn service_pid(sup: &Sup, unit: &str) -> i32 {
    let init = pid_of(&sup.wait_state(unit, "running"));
    let mut found = None;
    wait_until("the service under the init", || {
        let list = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children"))
            .unwrap_or_default();
        found = list.split_whitespace().next().and_then(|p| p.parse().ok());
        found.is_some()
    });
    found.expect("child")
}

/// `Key:\tvalue` of `/proc/PID/status` text.
fn field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in {status}"))
}

/// The host pid of the process whose command line is exactly `cmdline`.
fn pid_with_cmdline(cmdline: &str) -> Option<i32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let text = String::from_utf8_lossy(&cmd).replace('\0', " ");
        (text.trim_end() == cmdline).then_some(pid)
    })
}

/// Inside a unit with user, pid, mount, uts, ipc and cgroup namespaces: the same
/// hostname, uid, capabilities, no_new_privs, seccomp and cgroup as the service,
/// and from the host, the same namespaces and cgroup.
pub fn exec_lands_in_the_units_namespaces_cgroup_and_restrictions() {
    let (sup, _out) = shared(&[]);
    sup.write_unit(
        "web",
        &unit(
            "namespaces = [\"user\", \"mnt\", \"pid\", \"uts\", \"ipc\", \"cgroup\"]\n\
             userns_base = 200000\nhostname = \"inside-web\"\n",
            "exec sleep 1000",
        ),
    );
    let sup = sup.launch();
    let service = service_pid(&sup, "web");
    let host_status =
        std::fs::read_to_string(format!("/proc/{service}/status")).expect("service status");

    let o = exec(
        &sup,
        &[
            "web",
            "sh",
            "-c",
            "hostname; id -u; cat /proc/self/status; echo ==; cat /proc/self/cgroup; \
             echo ==; cat /proc/1/cgroup",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let mut parts = text.split("==\n");
    let (head, own_cgroup, init_cgroup) = (
        parts.next().expect("head"),
        parts.next().expect("cgroup"),
        parts.next().expect("init cgroup"),
    );
    let mut lines = head.lines();
    assert_eq!(lines.next(), Some("inside-web"), "hostname: {text}");
    assert_eq!(
        lines.next(),
        Some("0"),
        "root of its user namespace: {text}"
    );
    for key in ["CapEff", "CapBnd", "CapPrm", "NoNewPrivs", "Seccomp"] {
        assert_eq!(
            field(head, key),
            field(&host_status, key),
            "{key} as the service's"
        );
    }
    assert_eq!(field(head, "Seccomp"), "2", "a seccomp filter");
    assert_eq!(field(head, "NoNewPrivs"), "1");
    assert_eq!(own_cgroup, init_cgroup, "the unit's cgroup, seen inside");

    // From the host: a command that stays, compared with the service.
    let mut held = KillOnDrop(
        Command::new(SUPCTL)
            .arg("--state-dir")
            .arg(sup.state_dir())
            .args(["exec", "web", "sleep", "4242"])
            .stdin(Stdio::null())
            .spawn()
            .expect("supctl exec"),
    );
    let mut pid = None;
    wait_until("the exec'd sleep", || {
        pid = pid_with_cmdline("sleep 4242");
        pid.is_some()
    });
    let pid = pid.expect("pid");
    let same = |what: &str| {
        let a = std::fs::read_link(format!("/proc/{pid}/ns/{what}")).expect("ns");
        let b = std::fs::read_link(format!("/proc/{service}/ns/{what}")).expect("ns");
        assert_eq!(a, b, "{what} namespace");
    };
    for ns in ["user", "mnt", "pid", "uts", "ipc", "cgroup"] {
        same(ns);
    }
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup"),
        std::fs::read_to_string(format!("/proc/{service}/cgroup")).expect("cgroup"),
        "the unit's cgroup, seen from the host"
    );
    let _ = held.0.kill();
    let _ = held.0.wait();
}

/// `-u`, `-e`, `-w`, stdin from a pipe, and exit codes (128+N for a signal, 127
/// for a command that cannot be run).
pub fn exec_takes_user_env_workdir_stdin_and_reports_exit_codes() {
    let sup = Sup::start(&[("app", &unit("", "exec sleep 1000"))]);
    sup.wait_state("app", "running");

    let o = exec(
        &sup,
        &[
            "-u",
            "nobody",
            "-e",
            "FOO=bar baz",
            "-e",
            "SUP_UNIT=other",
            "-w",
            "/etc",
            "app",
            "sh",
            "-c",
            "id -u; echo \"$FOO|$SUP_UNIT|$USER\"; pwd",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "65534\nbar baz|other|nobody\n/etc\n");

    let o = exec(&sup, &["app", "sh", "-c", "id -u; echo $SUP_UNIT; pwd"]);
    assert_eq!(stdout(&o), "0\napp\n/\n", "the service's identity and dir");

    for (script, code) in [("exit 0", 0), ("exit 7", 7), ("kill -9 $$", 137)] {
        let o = exec(&sup, &["app", "--", "sh", "-c", script]);
        assert_eq!(o.status.code(), Some(code), "{script}: {}", stderr(&o));
    }
    let o = exec(&sup, &["app", "no-such-command"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(stderr(&o).contains("no-such-command"), "{}", stderr(&o));
    let o = exec(&sup, &["-w", "/no/such/dir", "app", "true"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(stderr(&o).contains("/no/such/dir"), "{}", stderr(&o));

    let mut child = Command::new(SUPCTL)
        .arg("--state-dir")
        .arg(sup.state_dir())
        .args(["exec", "app", "sh", "-c", "tr a-z A-Z; echo done >&2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("supctl");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), b"through a pipe\n")
        .expect("write");
    let o = wait_bounded(child, Duration::from_secs(30)).expect("exec with stdin");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "THROUGH A PIPE\n");
    assert_eq!(stderr(&o), "done\n");
}

/// `-t`: the command has a controlling terminal named in the container's
/// /dev/pts (its own /dev, or the host's), the client's window size, and the keys
/// typed.
pub fn exec_gives_a_terminal_and_its_window_size() {
    let sup = Sup::start(&[
        ("own", &unit("", "exec sleep 1000")),
        (
            "hostdev",
            &unit("private_devices = false\n", "exec sleep 1000"),
        ),
        (
            "userns",
            &unit(
                "namespaces = [\"user\", \"mnt\", \"pid\", \"uts\", \"ipc\", \"cgroup\"]\n\
                 userns_base = 200000\n",
                "exec sleep 1000",
            ),
        ),
    ]);
    for unit in ["own", "hostdev", "userns"] {
        sup.wait_state(unit, "running");
        terminal_session(&sup, unit, "");
    }
    // A root filesystem of its own (busybox: its applets by name).
    let root = busybox_rootfs(&sup.path().join("rootfs"));
    sup.write_unit(
        "rootfs",
        &unit(&format!("rootfs = {:?}\n", root), "exec sleep 1000"),
    );
    let o = sup.supctl(&["reload"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = sup.supctl(&["start", "--wait", "rootfs"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = exec(&sup, &["rootfs", "cat", "/etc/rootfs-marker"]);
    assert_eq!(stdout(&o), "busybox rootfs\n", "{}", stderr(&o));
    terminal_session(&sup, "rootfs", "busybox ");
}

fn wait_child(child: &mut std::process::Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "supctl did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A client that goes away takes its command (and only it) with it; the signals
/// a client gets (SIGINT, SIGTERM, ...) go to its command.
pub fn exec_ends_with_its_client() {
    let sup = Sup::start(&[("app", &unit("", "exec sleep 1000"))]);
    let before = pid_of(&sup.wait_state("app", "running"));
    for (signal, code, said) in [
        (nix::sys::signal::Signal::SIGINT, 3, "got INT\n"),
        (nix::sys::signal::Signal::SIGTERM, 4, "got TERM\n"),
    ] {
        let mut client = Command::new(SUPCTL)
            .arg("--state-dir")
            .arg(sup.state_dir())
            .args([
                "exec",
                "app",
                "sh",
                "-c",
                "trap 'echo got INT; exit 3' INT; trap 'echo got TERM; exit 4' TERM; \
                 echo ready; sleep 4949 >/dev/null & wait",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("supctl exec");
        let mut out = client.stdout.take().expect("stdout");
        let mut ready = [0u8; 6];
        out.read_exact(&mut ready).expect("ready");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(client.id() as i32), signal)
            .expect("signal supctl");
        let mut rest = String::new();
        out.read_to_string(&mut rest).expect("output");
        let status = wait_child(&mut client, Duration::from_secs(30));
        assert_eq!(rest, said, "{signal}");
        assert_eq!(status.code(), Some(code), "{signal}");
    }
    let mut client = KillOnDrop(
        Command::new(SUPCTL)
            .arg("--state-dir")
            .arg(sup.state_dir())
            .args(["exec", "app", "sh", "-c", "sleep 4343 & exec sleep 4344"])
            .stdin(Stdio::null())
            .spawn()
            .expect("supctl exec"),
    );
    let mut pids = (None, None);
    wait_until("the exec'd sleeps", || {
        pids = (
            pid_with_cmdline("sleep 4343"),
            pid_with_cmdline("sleep 4344"),
        );
        pids.0.is_some() && pids.1.is_some()
    });
    client.0.kill().expect("kill supctl");
    let _ = client.0.wait();
    wait_until("the command's process group killed", || {
        pid_with_cmdline("sleep 4343").is_none() && pid_with_cmdline("sleep 4344").is_none()
    });
    // With a terminal too.
    let (mut client, master) = on_pty(&sup, &["app", "sh", "-c", "echo up; exec sleep 4345"]);
    read_until(&master, &mut String::new(), "up");
    wait_until("the exec'd sleep", || {
        pid_with_cmdline("sleep 4345").is_some()
    });
    client.0.kill().expect("kill supctl");
    let _ = client.0.wait();
    wait_until("the command killed", || {
        pid_with_cmdline("sleep 4345").is_none()
    });
    let after = sup.unit("app");
    assert_eq!(after["state"], "running", "{after}");
    assert_eq!(pid_of(&after), before, "the service goes on");
}

/// Only root (or supd's own user) may exec; a unit that is not running, or not
/// loaded, is a clear error.
pub fn exec_is_refused_to_other_users_and_for_units_not_running() {
    let sup = Sup::start(&[("app", &unit("", "exec sleep 1000"))]);
    sup.wait_state("app", "running");
    // Open the way to the socket so that supd itself answers the stranger.
    for dir in [sup.path().to_path_buf(), sup.state_dir()] {
        set_mode(&dir, 0o755);
    }
    let socket = sup.state_dir().join("control.sock");
    set_mode(&socket, 0o666);
    let o = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            SUPCTL,
        ])
        .arg("--socket")
        .arg(&socket)
        .args(["exec", "app", "id"])
        .stdin(Stdio::null())
        .output()
        .expect("setpriv");
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("uid 65534 may not control supd"),
        "supd itself refuses: {}",
        stderr(&o)
    );
    assert!(
        stdout(&o).is_empty(),
        "the command did not run: {}",
        stdout(&o)
    );
    set_mode(&socket, 0o600);

    // A command running when its unit stops goes with it.
    let running = Command::new(SUPCTL)
        .arg("--state-dir")
        .arg(sup.state_dir())
        .args(["exec", "app", "sleep", "4545"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("supctl exec");
    wait_until("the exec'd sleep", || {
        pid_with_cmdline("sleep 4545").is_some()
    });
    let o = sup.supctl(&["stop", "--wait", "app"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = wait_bounded(running, Duration::from_secs(30)).expect("exec ended");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("did its unit stop?"), "{}", stderr(&o));
    let o = exec(&sup, &["app", "id"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("app is not running"), "{}", stderr(&o));
    let o = exec(&sup, &["nope", "id"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let o = sup.supctl(&["kill", "app"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
}

fn wait_lines(file: &Path, n: usize) -> String {
    let mut text = String::new();
    wait_until(&format!("{n} lines in {}", file.display()), || {
        text = std::fs::read_to_string(file).unwrap_or_default();
        text.lines().count() >= n
    });
    text
}

/// `kill -s HUP` reaches the service (which runs under sup's init) and not its
/// child; `kill --all` reaches the child too; an unknown signal is a usage error.
pub fn kill_reaches_the_main_process_or_every_process() {
    let (sup, out) = shared(&[]);
    let (main_file, child_file) = (out.join("main"), out.join("child"));
    let script = format!(
        "trap 'echo hup >> {m}' HUP; \
         sh -c 'trap \"echo hup >> {c}\" HUP; echo up >> {c}; while :; do sleep 0.1; done' & \
         echo up >> {m}; while :; do sleep 0.1; done",
        m = main_file.display(),
        c = child_file.display()
    );
    sup.write_unit("svc", &unit("", &script));
    let sup = sup.launch();
    sup.wait_state("svc", "running");
    wait_lines(&main_file, 1);
    wait_lines(&child_file, 1);

    // One at a time: signals of a kind do not queue while the shell waits.
    for (n, signal) in ["HUP", "SIGHUP", "1"].into_iter().enumerate() {
        let o = sup.supctl(&["kill", "-s", signal, "svc"]);
        assert!(o.status.success(), "{signal}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "quiet: {}", stdout(&o));
        wait_lines(&main_file, n + 2);
    }
    assert_eq!(wait_lines(&main_file, 4), "up\nhup\nhup\nhup\n");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        std::fs::read_to_string(&child_file).expect("child"),
        "up\n",
        "only the main process"
    );

    let o = sup.supctl(&["kill", "--all", "-s", "hup", "svc"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(wait_lines(&child_file, 2), "up\nhup\n", "the child too");
    assert_eq!(wait_lines(&main_file, 5), "up\nhup\nhup\nhup\nhup\n");
    assert_eq!(sup.unit("svc")["state"], "running");

    let o = sup.supctl(&["kill", "-s", "NOPE", "svc"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// SIGKILL to the service of a `restart = "always"` unit is an exit like any
/// other: seen as SIGKILL, and the unit is started again.
pub fn kill_with_sigkill_restarts_a_restart_always_unit() {
    let sup = Sup::start(&[(
        "svc",
        &(unit("", "exec sleep 1000") + "restart = \"always\"\n"),
    )]);
    let first = pid_of(&sup.wait_state("svc", "running"));
    let o = sup.supctl(&["kill", "-s", "KILL", "svc"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = sup.wait_status("svc restarted", |s| {
        s.iter()
            .any(|u| u["name"] == "svc" && u["restarts"] == 1 && u["state"] == "running")
    });
    let svc = s.iter().find(|u| u["name"] == "svc").expect("svc");
    assert_eq!(svc["last_exit"]["signal"], "SIGKILL", "{svc}");
    assert_ne!(pid_of(svc), first, "a new process");
}

/// With `init = false` the service is the container's first process; with no
/// namespaces at all an exec only joins the unit's cgroup and restrictions.
pub fn kill_and_exec_work_without_init_and_without_namespaces() {
    let (sup, out) = shared(&[]);
    let file = out.join("bare");
    let script = format!(
        "trap 'echo hup >> {f}' HUP; echo up >> {f}; while :; do sleep 0.1; done",
        f = file.display()
    );
    sup.write_unit("bare", &unit("init = false\n", &script));
    sup.write_unit("host", &unit("namespaces = []\n", "exec sleep 1000"));
    let sup = sup.launch();
    sup.wait_state("bare", "running");
    wait_lines(&file, 1);
    let o = sup.supctl(&["kill", "-s", "HUP", "bare"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(wait_lines(&file, 2), "up\nhup\n");
    let o = exec(
        &sup,
        &["bare", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"],
    );
    assert!(
        stdout(&o).contains("trap"),
        "pid 1 is the service: {}",
        stdout(&o)
    );

    let service = pid_of(&sup.wait_state("host", "running"));
    let o = exec(
        &sup,
        &[
            "host",
            "sh",
            "-c",
            "cat /proc/self/cgroup; grep Seccomp: /proc/self/status",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let own = std::fs::read_to_string(format!("/proc/{service}/cgroup")).expect("cgroup");
    assert!(text.starts_with(&own), "the unit's cgroup: {text} vs {own}");
    assert!(text.contains("Seccomp:\t2"), "{text}");
    assert_eq!(sup.unit("host")["state"], "running");
}
