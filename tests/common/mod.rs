//! Shared harness for the integration tests: a real `supd` on a temporary unit and
//! state directory, driven through the real `supctl`.
#![allow(dead_code)]

pub mod harness;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const SUPD: &str = env!("CARGO_BIN_EXE_supd");
pub const SUPCTL: &str = env!("CARGO_BIN_EXE_supctl");

/// supd's stderr, collected by a thread; waiters are woken on every new line.
#[derive(Default)]
pub struct LogBook {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

impl LogBook {
    /// Block until a line containing `needle` was logged, or panic after `timeout`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lock().expect("log lock");
        loop {
            if let Some(l) = lines.iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "supd never logged {needle:?}; log:\n{}",
                lines.join("\n")
            );
            lines = self.grew.wait_timeout(lines, left).expect("log lock").0;
        }
    }

    pub fn text(&self) -> String {
        self.lines.lock().expect("log lock").join("\n")
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
        let dir = tempfile::Builder::new()
            .prefix("sup-test-")
            .tempdir()
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

    pub fn launch(mut self) -> Sup {
        let mut child = Command::new(SUPD)
            .arg("--units")
            .arg(self.units_dir())
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("--cgroup-root")
            .arg(self.cgroup_root())
            .env("SUPD_LOG", "debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn supd");
        let stderr = child.stderr.take().expect("stderr");
        let book = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                book.lines.lock().expect("log lock").push(line);
                book.grew.notify_all();
            }
        });
        self.child = Some(child);
        self.log.wait_for("supd started", Duration::from_secs(20));
        self
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

    pub fn supctl(&self, args: &[&str]) -> Output {
        Command::new(SUPCTL)
            .arg("--state-dir")
            .arg(self.state_dir())
            .args(args)
            .output()
            .expect("run supctl")
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

    /// Re-read status until `pred` holds for it (state changes are driven by real
    /// processes; there is no event a test could block on short of `--wait`).
    pub fn wait_status(
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
                "timed out waiting for {what}; status: {s:#?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wait_state(&self, name: &str, state: &str, timeout: Duration) -> Value {
        let s = self.wait_status(&format!("{name} {state}"), timeout, |units| {
            units
                .iter()
                .any(|u| u["name"] == name && u["state"] == state)
        });
        s.into_iter().find(|u| u["name"] == name).expect("unit")
    }

    /// SIGTERM supd and wait for it; returns its exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("supd running");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "supd did not exit within 30s of SIGTERM; log:\n{}",
                    self.log.text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Sup {
    fn drop(&mut self) {
        if self.child.is_some() && !std::thread::panicking() {
            let status = self.stop();
            assert!(status.success(), "supd exited with {status}");
        } else if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
    }
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

/// A tiny root filesystem: static busybox and its applets, plus empty mount points.
pub fn busybox_rootfs(at: &Path) -> PathBuf {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("busybox is required (apt-get install busybox-static; tests/run.sh does it)");
    let root = at.join("rootfs");
    for d in ["bin", "etc", "proc", "dev", "sys", "tmp", "data"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir rootfs");
    }
    std::fs::copy(busybox, root.join("bin/busybox")).expect("copy busybox");
    for applet in [
        "sh", "ls", "cat", "echo", "mount", "hostname", "touch", "dd", "id", "sleep", "grep", "wc",
        "ps", "readlink", "test", "stat", "head", "awk", "true",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("applet link");
    }
    std::fs::write(root.join("etc/rootfs-marker"), "busybox rootfs\n").expect("marker");
    root
}

/// Block until `path` exists and is non-empty (a service writing its observations),
/// then return its contents.
pub fn wait_file(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The test process's own namespace inode for `kind` (e.g. "net").
pub fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .expect("readlink ns")
        .to_string_lossy()
        .into_owned()
}

/// Every directory `name` directly below supd's (the test's) own cgroup, in every
/// mounted hierarchy: what must be gone after supd exits.
pub fn cgroup_dirs_named(name: &str) -> Vec<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut found = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, list, path) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or("/"),
        );
        let mount = if list.is_empty() {
            ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
                .into_iter()
                .map(PathBuf::from)
                .find(|m| m.join("cgroup.controllers").exists())
        } else {
            let dir = list.trim_start_matches("name=");
            std::fs::read_dir("/sys/fs/cgroup").ok().and_then(|mut e| {
                e.find_map(|d| {
                    let d = d.ok()?;
                    let n = d.file_name().to_string_lossy().into_owned();
                    (n == dir || n.split(',').any(|c| list.split(',').any(|l| l == c)))
                        .then(|| d.path())
                })
            })
        };
        if let Some(m) = mount {
            let dir = m.join(path.trim_start_matches('/')).join(name);
            if dir.exists() {
                found.push(dir);
            }
        }
    }
    found
}

/// The directory of `pid`'s cgroup for a v1 `controller` (or the v2 one).
pub fn cgroup_dir_of(pid: i32, controller: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, list, path) = (parts.next()?, parts.next()?, parts.next()?);
        if list.split(',').any(|c| c == controller) {
            for entry in std::fs::read_dir("/sys/fs/cgroup").ok()?.flatten() {
                let n = entry.file_name().to_string_lossy().into_owned();
                if n.split(',').any(|c| c == controller) && !n.contains(' ') {
                    return Some(entry.path().join(path.trim_start_matches('/')));
                }
            }
        }
    }
    let v2 = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    let root = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .map(PathBuf::from)
        .find(|m| {
            std::fs::read_to_string(m.join("cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|x| x == controller))
        })?;
    Some(root.join(v2.trim_start_matches('/')))
}
