//! Shared harness for the integration tests: a real `supd` on a temporary unit and
//! state directory, driven through the real `supctl`.
#![allow(dead_code)]

pub mod cgroup;
pub mod container;
pub mod harness;

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

// Not every test target uses every helper.
#[allow(unused_imports)]
pub use cgroup::*;
#[allow(unused_imports)]
pub use container::*;

pub const SUPD: &str = env!("CARGO_BIN_EXE_supd");
pub const SUPCTL: &str = env!("CARGO_BIN_EXE_supctl");

/// How long a test waits for something that normally takes milliseconds to a few
/// seconds before it gives up: generous, because CI machines are small and busy.
/// Waiting ends as soon as the awaited thing happens, so this costs nothing when
/// all is well.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Poll `cond` until it holds; panic naming `what` after [`PATIENCE`]. For states no
/// event announces (a process gone, a cgroup file changed, a file written).
pub fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    wait_until_within(what, PATIENCE, cond)
}

pub fn wait_until_within(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Block until `path` holds complete lines (a service writing its observations, see
/// [`report`]), then return its contents.
pub fn wait_file(path: &Path) -> String {
    let mut text = String::new();
    wait_until(&format!("{} to be written", path.display()), || {
        text = std::fs::read_to_string(path).unwrap_or_default();
        text.ends_with('\n')
    });
    text
}

/// Wait for `child` to exit, at most `timeout`: its output, or `None` once it has
/// been killed (and reaped) for taking longer.
pub fn wait_bounded(child: Child, timeout: Duration) -> Option<Output> {
    let pid = Pid::from_raw(child.id() as i32);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => Some(out.expect("wait for child")),
        Err(_) => {
            // Not reaped yet (the thread still waits for it), so the pid is still its.
            let _ = kill(pid, Signal::SIGKILL);
            let _ = rx.recv();
            None
        }
    }
}

/// supd's stderr, collected by a thread; waiters are woken on every new line.
#[derive(Default)]
pub struct LogBook {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

impl LogBook {
    /// Block until a line containing `needle` was logged, or panic after [`PATIENCE`].
    pub fn wait_for(&self, needle: &str) -> String {
        self.wait_for_all(&[needle])
    }

    /// Block until one line contains every one of `needles`.
    pub fn wait_for_all(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut lines = self.lines();
        loop {
            if let Some(l) = lines.iter().find(|l| needles.iter().all(|n| l.contains(n))) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let log = lines.join("\n");
                drop(lines);
                panic!("supd never logged a line with all of {needles:?}; log:\n{log}");
            }
            lines = self
                .grew
                .wait_timeout(lines, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Collect the lines of `stream` (supd's stderr) on a thread of its own.
    pub fn collect(self: &Arc<Self>, stream: impl std::io::Read + Send + 'static) {
        let book = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                book.push(line);
            }
        });
    }

    pub fn text(&self) -> String {
        self.lines().join("\n")
    }

    fn push(&self, line: String) {
        self.lines().push(line);
        self.grew.notify_all();
    }

    /// The lines so far (a test that failed while reading them does not stop the
    /// collecting thread).
    fn lines(&self) -> MutexGuard<'_, Vec<String>> {
        self.lines.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub struct Sup {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub log: Arc<LogBook>,
}

impl Sup {
    /// Write the units, start supd on them and wait until it listens.
    pub fn start(units: &[(&str, &str)]) -> Sup {
        let sup = Sup::prepare(units);
        sup.launch()
    }

    /// Only write the unit files (for tests that inspect them first).
    pub fn prepare(units: &[(&str, &str)]) -> Sup {
        // Not in /tmp: a default unit has a private /tmp, and the test and its
        // units share these files (target/tmp, which cargo provides for tests).
        Sup::prepare_in(Path::new(env!("CARGO_TARGET_TMPDIR")), units)
    }

    /// `prepare` with the test's directories (state, units) below `parent`.
    pub fn prepare_in(parent: &Path, units: &[(&str, &str)]) -> Sup {
        let dir = tempfile::Builder::new()
            .prefix("sup-test-")
            .tempdir_in(parent)
            .expect("tempdir");
        std::fs::create_dir(dir.path().join("units")).expect("units dir");
        let sup = Sup {
            dir,
            child: None,
            log: Arc::default(),
        };
        for (name, text) in units {
            sup.write_unit(name, text);
        }
        sup
    }

    pub fn launch(self) -> Sup {
        self.launch_via(&[])
    }

    /// Start supd through `wrapper`, a command that runs the command line it is given
    /// by exec'ing it (e.g. `prlimit --nofile=256:256`), so the child is supd itself.
    pub fn launch_via(self, wrapper: &[&str]) -> Sup {
        self.launch_full(wrapper, &[])
    }

    /// Start supd with `extra` arguments after the test's own.
    pub fn launch_with(self, extra: &[&str]) -> Sup {
        self.launch_full(&[], extra)
    }

    fn launch_full(mut self, wrapper: &[&str], extra: &[&str]) -> Sup {
        let (program, args) = match wrapper.split_first() {
            Some((program, args)) => (OsString::from(program), args),
            None => (OsString::from(SUPD), &[][..]),
        };
        let mut cmd = Command::new(program);
        cmd.args(args);
        if !wrapper.is_empty() {
            cmd.arg(SUPD);
        }
        let mut child = cmd
            .args(self.supd_args())
            .args(extra)
            .env("SUPD_LOG", "debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn supd");
        self.log.collect(child.stderr.take().expect("stderr"));
        self.child = Some(child);
        self.log.wait_for("supd started");
        self
    }

    /// supd's arguments for this test's directories and cgroup subtree.
    pub fn supd_args(&self) -> Vec<OsString> {
        vec![
            "--units".into(),
            self.units_dir().into(),
            "--state-dir".into(),
            self.state_dir().into(),
            "--cgroup-root".into(),
            self.cgroup_root().into(),
        ]
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn units_dir(&self) -> PathBuf {
        self.dir.path().join("units")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// A cgroup subtree name of this test's own (tests run in parallel).
    pub fn cgroup_root(&self) -> String {
        self.dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn write_unit(&self, name: &str, text: &str) {
        std::fs::write(self.units_dir().join(format!("{name}.toml")), text).expect("write unit");
    }

    fn supctl_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(SUPCTL);
        cmd.arg("--state-dir").arg(self.state_dir()).args(args);
        cmd
    }

    pub fn supctl(&self, args: &[&str]) -> Output {
        self.supctl_command(args).output().expect("run supctl")
    }

    /// `supctl args`, failing the test unless it answers within `timeout`.
    pub fn supctl_within(&self, args: &[&str], timeout: Duration) -> Output {
        let child = self
            .supctl_command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run supctl");
        wait_bounded(child, timeout).unwrap_or_else(|| {
            let status = self.supctl(&["status"]);
            panic!(
                "supctl {args:?} did not answer within {timeout:?}; status:\n{}\nsupd's log:\n{}",
                stdout(&status),
                self.log.text()
            )
        })
    }

    /// `supctl status --json`, parsed.
    pub fn status(&self) -> Vec<Value> {
        let out = self.supctl(&["status", "--json"]);
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap_or_else(|e| {
                panic!(
                    "status --json: {e}: {}",
                    String::from_utf8_lossy(&out.stdout)
                )
            })
            .as_array()
            .cloned()
            .expect("array")
    }

    pub fn unit(&self, name: &str) -> Value {
        self.status()
            .into_iter()
            .find(|u| u["name"] == name)
            .unwrap_or_else(|| panic!("no unit {name} in status"))
    }

    /// Re-read status until `pred` holds for it, at most [`PATIENCE`] (state changes
    /// are driven by real processes; there is no event a test could block on short
    /// of `--wait`).
    pub fn wait_status(&self, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        self.wait_status_within(what, PATIENCE, pred)
    }

    pub fn wait_status_within(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.status();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; status: {s:#?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wait_state(&self, name: &str, state: &str) -> Value {
        let s = self.wait_status(&format!("{name} {state}"), |units| {
            units
                .iter()
                .any(|u| u["name"] == name && u["state"] == state)
        });
        s.into_iter().find(|u| u["name"] == name).expect("unit")
    }

    /// Status once every unit is running.
    pub fn wait_all_running(&self) -> Vec<Value> {
        self.wait_status("all units running", |s| {
            s.iter().all(|u| u["state"] == "running")
        })
    }

    /// SIGTERM supd and wait for it; returns its exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let child = self.child.take().expect("supd running");
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        match wait_bounded(child, PATIENCE) {
            Some(out) => out.status,
            None => panic!(
                "supd did not exit within {PATIENCE:?} of SIGTERM; log:\n{}",
                self.log.text()
            ),
        }
    }
}

impl Drop for Sup {
    fn drop(&mut self) {
        if self.child.is_some() && !std::thread::panicking() {
            let status = self.stop();
            assert!(status.success(), "supd exited with {status}");
        } else if let Some(child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let _ = wait_bounded(child, PATIENCE);
            // A failed test leaves nothing behind either: what supd could not
            // remove goes (empty cgroups only; deepest first).
            for dir in cgroup_dirs_named(&self.cgroup_root()) {
                remove_empty_cgroups(&dir);
            }
        }
    }
}

fn remove_empty_cgroups(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_cgroups(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// The main pid of a unit in `supctl status --json`.
pub fn pid_of(unit: &Value) -> i32 {
    unit["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("no pid: {unit}")) as i32
}

/// Every pid whose process group is `pgid`.
pub fn members_of_group(pgid: i32) -> Vec<i32> {
    sup::procfs::processes()
        .into_iter()
        .filter(|p| p.pgrp == pgid && !p.is_zombie())
        .map(|p| p.pid)
        .collect()
}

pub fn pid_alive(pid: i32) -> bool {
    sup::procfs::ProcStat::read(pid).is_some_and(|p| !p.is_zombie())
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
