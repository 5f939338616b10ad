//! A model of cgroupfs on a temporary directory, for the driver's unit tests
//! (no root, no real cgroup touched). It does what the kernel does where the
//! driver depends on it, and nothing more:
//!
//! - mkdir fills the new cgroup with the interface files of its controllers (on
//!   v2, those enabled in the parent's `cgroup.subtree_control`); a new v1 cpuset
//!   cgroup has empty `cpuset.cpus`/`cpuset.mems`;
//! - rmdir succeeds with the interface files in place, and is EBUSY while the
//!   cgroup has children or processes;
//! - writing a missing file is ENOENT, a read-only one EACCES (even for root);
//! - `cgroup.procs` migrates a pid (it leaves every other cgroup of the mount);
//!   `cgroup.subtree_control` takes `+c`/`-c` of available controllers only, and
//!   both follow the no-internal-processes rule of v2 below the root;
//! - `cgroup.kill` and a SIGKILL take processes out of `cgroup.procs`; a
//!   signal reaches only a pid the caller's check finds in the cgroup, judged
//!   on the `/proc/PID/cgroup` text the model writes;
//! - v1 `devices.list` starts as the parent's (`a *:* rwm` at the root), is
//!   emptied by `a` to `devices.deny` and grows by each `devices.allow` line;
//! - v2 device programs are kept per cgroup by id (ids never reused) and go with
//!   an rmdir; `device_allows` runs them through the test interpreter, as the
//!   kernel would at an open.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::bpf::sys::BpfError;
use super::bpf::{Insn, interp};
use super::devices::{Access, DeviceKind};
use super::fs::CgroupFs;
use nix::sys::signal::Signal;

/// Interface files per controller; "" is the core files of every cgroup.
const V1_FILES: &[(&str, &[&str])] = &[
    ("", &["cgroup.procs"]),
    (
        "memory",
        &[
            "memory.limit_in_bytes",
            "memory.soft_limit_in_bytes",
            "memory.memsw.limit_in_bytes",
            "memory.usage_in_bytes",
            "memory.max_usage_in_bytes",
            "memory.oom_control",
        ],
    ),
    (
        "cpu",
        &["cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.shares"],
    ),
    ("cpuacct", &["cpuacct.usage"]),
    ("pids", &["pids.max", "pids.current"]),
    ("cpuset", &["cpuset.cpus", "cpuset.mems"]),
    ("blkio", &["blkio.weight"]),
    (
        "devices",
        &["devices.allow", "devices.deny", "devices.list"],
    ),
];

const V2_FILES: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "cgroup.procs",
            "cgroup.controllers",
            "cgroup.subtree_control",
            "cgroup.kill",
            "cgroup.events",
        ],
    ),
    (
        "memory",
        &[
            "memory.max",
            "memory.high",
            "memory.swap.max",
            "memory.current",
            "memory.peak",
            "memory.events",
        ],
    ),
    ("cpu", &["cpu.max", "cpu.weight", "cpu.stat"]),
    ("io", &["io.weight"]),
    ("pids", &["pids.max", "pids.current"]),
    ("cpuset", &["cpuset.cpus", "cpuset.mems"]),
];

/// Files without a write handler in the kernel.
const READ_ONLY: &[&str] = &[
    "cgroup.controllers",
    "cgroup.events",
    "memory.current",
    "memory.events",
    "memory.usage_in_bytes",
    "cpu.stat",
    "pids.current",
    "devices.list",
];

/// Device programs attached, per cgroup directory: (id, instructions).
type Programs = BTreeMap<PathBuf, Vec<(u32, Vec<Insn>)>>;

#[derive(Debug, Clone)]
pub struct Mount {
    pub path: PathBuf,
    pub v2: bool,
    /// v1: the hierarchy's controllers (v2 reads them from the files).
    pub controllers: Vec<&'static str>,
}

#[derive(Debug, Clone, Default)]
pub struct FakeFs {
    mounts: Vec<Mount>,
    /// Interface files this kernel lacks (memsw without swap accounting, ...).
    missing: Vec<&'static str>,
    /// Signals sent to members, shared by clones so a test can look.
    signalled: Arc<Mutex<Vec<(i32, Signal)>>>,
    /// Pids a read of a `cgroup.procs` file lists once more (`list_once`).
    stale: Arc<Mutex<Vec<(PathBuf, i32)>>>,
    /// v2 device programs, and the last id handed out.
    programs: Arc<Mutex<(Programs, u32)>>,
    /// Make bpf calls fail with this errno (a kernel without cgroup BPF, no
    /// CAP_BPF), per step name.
    bpf_fails: Vec<(&'static str, i32)>,
}

fn errno(n: i32) -> io::Error {
    io::Error::from_raw_os_error(n)
}

fn lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.split_whitespace().map(str::to_string).collect()
}

impl FakeFs {
    pub fn new(mounts: Vec<Mount>) -> FakeFs {
        FakeFs {
            mounts,
            ..FakeFs::default()
        }
    }

    pub fn without(mut self, files: &[&'static str]) -> FakeFs {
        self.missing.extend_from_slice(files);
        self
    }

    /// bpf calls of `step` ("load", "attach", "query", "detach") fail with `errno`.
    pub fn failing_bpf(mut self, step: &'static str, errno: i32) -> FakeFs {
        self.bpf_fails.push((step, errno));
        self
    }

    /// The ids of the device programs attached to `dir`.
    pub fn program_ids(&self, dir: &Path) -> Vec<u32> {
        self.with_programs(|p, _| p.get(dir).map(|l| l.iter().map(|(id, _)| *id).collect()))
            .unwrap_or_default()
    }

    /// Whether the programs attached to `dir` let `access` happen to the device
    /// (all must allow; none attached allows everything). A program the
    /// interpreter rejects panics the test.
    pub fn device_allows(
        &self,
        dir: &Path,
        kind: DeviceKind,
        major: u32,
        minor: u32,
        access: Access,
    ) -> bool {
        let ctx = [kind.bpf_type() | (access.bits() << 16), major, minor];
        let progs = self
            .with_programs(|p, _| p.get(dir).cloned())
            .unwrap_or_default();
        progs.iter().all(|(id, prog)| match interp::run(prog, ctx) {
            Ok(verdict) => verdict == 1,
            Err(e) => panic!("device program {id} on {}: {e}", dir.display()),
        })
    }

    fn with_programs<T>(&self, f: impl FnOnce(&mut Programs, &mut u32) -> T) -> T {
        let mut guard = self.programs.lock().unwrap_or_else(|p| p.into_inner());
        let (programs, last) = &mut *guard;
        f(programs, last)
    }

    fn bpf_step(&self, step: &'static str, dir: &Path) -> Result<(), BpfError> {
        if let Some((_, n)) = self.bpf_fails.iter().find(|(s, _)| *s == step) {
            return Err(BpfError::new(step, errno(*n)));
        }
        match self.mount_of(dir) {
            Some(m) if m.v2 && dir.is_dir() => Ok(()),
            _ => Err(BpfError::new(step, errno(libc::EBADF))),
        }
    }

    /// The pids sent SIGKILL, in order.
    pub fn killed(&self) -> Vec<i32> {
        let signalled = self.signalled();
        let kills = signalled.iter().filter(|(_, s)| *s == Signal::SIGKILL);
        kills.map(|(pid, _)| *pid).collect()
    }

    /// Every signal sent, in order.
    pub fn signalled(&self) -> Vec<(i32, Signal)> {
        self.signalled.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The next read of `dir/cgroup.procs` lists `pid` too, which is not (or no
    /// longer) in it: what a read sees when a member exits and its pid is reused
    /// before the signal.
    pub fn list_once(&self, dir: &Path, pid: i32) {
        if let Ok(mut s) = self.stale.lock() {
            s.push((dir.join("cgroup.procs"), pid));
        }
    }

    /// `/proc/PID/cgroup` as the kernel would write it: a line per mount the
    /// pid is in (v1 lines numbered from 1).
    fn proc_cgroup(&self, pid: i32) -> String {
        let pid = pid.to_string();
        let mut out = String::new();
        for (i, m) in self.mounts.iter().enumerate() {
            let Some(dir) = FakeFs::cgroup_dirs(&m.path)
                .into_iter()
                .find(|d| lines(&d.join("cgroup.procs")).contains(&pid))
            else {
                continue;
            };
            let rel = dir.strip_prefix(&m.path).unwrap_or(&dir);
            let (id, list) = if m.v2 {
                (0, String::new())
            } else {
                (i + 1, m.controllers.join(","))
            };
            out += &format!("{id}:{list}:/{}\n", rel.display());
        }
        out
    }

    fn mount_of(&self, path: &Path) -> Option<&Mount> {
        self.mounts.iter().find(|m| path.starts_with(&m.path))
    }

    /// Controllers a v2 cgroup may enable: the root's own list, else those
    /// enabled in its parent.
    fn v2_available(&self, m: &Mount, dir: &Path) -> Vec<String> {
        match dir.parent() {
            Some(parent) if dir != m.path => lines(&parent.join("cgroup.subtree_control")),
            _ => lines(&dir.join("cgroup.controllers")),
        }
    }

    /// v2 below the root: a cgroup has either processes or enabled controllers.
    fn internal_process_conflict(&self, m: &Mount, dir: &Path, file: &str) -> bool {
        m.v2 && dir != m.path && !lines(&dir.join(file)).is_empty()
    }

    fn cgroup_dirs(dir: &Path) -> Vec<PathBuf> {
        let mut out = vec![dir.to_path_buf()];
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                out.extend(FakeFs::cgroup_dirs(&e.path()));
            }
        }
        out
    }

    /// Take `pid` out of every `cgroup.procs` below `root`.
    fn drop_pid(root: &Path, pid: &str) -> io::Result<()> {
        for dir in FakeFs::cgroup_dirs(root) {
            let file = dir.join("cgroup.procs");
            let mut procs = lines(&file);
            if procs.iter().any(|p| p == pid) {
                procs.retain(|p| p != pid);
                std::fs::write(&file, procs.join("\n"))?;
            }
        }
        Ok(())
    }

    fn write_procs(&self, m: &Mount, dir: &Path, value: &str) -> io::Result<()> {
        let pid = value.trim();
        if pid.parse::<i32>().is_err() {
            return Err(errno(libc::EINVAL));
        }
        if self.internal_process_conflict(m, dir, "cgroup.subtree_control") {
            return Err(errno(libc::EBUSY));
        }
        FakeFs::drop_pid(&m.path, pid)?;
        let file = dir.join("cgroup.procs");
        let mut procs = lines(&file);
        procs.push(pid.to_string());
        std::fs::write(file, procs.join("\n"))
    }

    fn write_subtree_control(&self, m: &Mount, dir: &Path, value: &str) -> io::Result<()> {
        if self.internal_process_conflict(m, dir, "cgroup.procs") {
            return Err(errno(libc::EBUSY));
        }
        let available = self.v2_available(m, dir);
        let file = dir.join("cgroup.subtree_control");
        let mut enabled = lines(&file);
        for token in value.split_whitespace() {
            let (on, name) = match token.split_at_checked(1) {
                Some(("+", name)) => (true, name),
                Some(("-", name)) => (false, name),
                _ => return Err(errno(libc::EINVAL)),
            };
            if !available.iter().any(|a| a == name) {
                return Err(errno(libc::ENOENT));
            }
            enabled.retain(|e| e != name);
            if on {
                enabled.push(name.to_string());
            }
        }
        std::fs::write(file, enabled.join(" "))
    }
}

impl CgroupFs for FakeFs {
    fn mkdir(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir(dir)?;
        let Some(m) = self.mount_of(dir) else {
            return Ok(());
        };
        let (table, controllers) = if m.v2 {
            (V2_FILES, self.v2_available(m, dir))
        } else {
            let c = m.controllers.iter().map(|c| c.to_string()).collect();
            (V1_FILES, c)
        };
        for (controller, files) in table {
            if !controller.is_empty() && !controllers.iter().any(|c| c == controller) {
                continue;
            }
            for file in files.iter().filter(|f| !self.missing.contains(f)) {
                std::fs::write(dir.join(file), "")?;
            }
        }
        if m.v2 {
            std::fs::write(dir.join("cgroup.controllers"), controllers.join(" "))?;
        }
        let list = dir.join("devices.list");
        if list.exists() {
            let inherited = dir
                .parent()
                .and_then(|p| std::fs::read_to_string(p.join("devices.list")).ok())
                .unwrap_or_else(|| "a *:* rwm".into());
            std::fs::write(list, inherited)?;
        }
        Ok(())
    }

    fn rmdir(&self, dir: &Path) -> io::Result<()> {
        let mut files = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                return Err(errno(libc::EBUSY));
            }
            files.push(e.path());
        }
        if !lines(&dir.join("cgroup.procs")).is_empty() {
            return Err(errno(libc::EBUSY));
        }
        for f in files {
            std::fs::remove_file(f)?;
        }
        std::fs::remove_dir(dir)?;
        self.with_programs(|p, _| p.remove(dir));
        Ok(())
    }

    fn read(&self, file: &Path) -> io::Result<String> {
        let mut text = std::fs::read_to_string(file)?;
        if let Ok(mut stale) = self.stale.lock() {
            for (_, pid) in stale.iter().filter(|(f, _)| f == file) {
                text = format!("{text}\n{pid}");
            }
            stale.retain(|(f, _)| f != file);
        }
        Ok(text)
    }

    /// The model's directories are real ones: reads below them see its files.
    fn open_dir(&self, dir: &Path) -> Option<std::os::fd::OwnedFd> {
        super::fs::Kernel.open_dir(dir)
    }

    fn write(&self, file: &Path, value: &str) -> io::Result<()> {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let (Some(dir), Some(m)) = (file.parent(), self.mount_of(file)) else {
            return Err(errno(libc::EPERM));
        };
        if !file.is_file() {
            return Err(errno(libc::ENOENT));
        }
        if READ_ONLY.contains(&name) {
            return Err(errno(libc::EACCES));
        }
        match name {
            "cgroup.procs" => self.write_procs(m, dir, value),
            "cgroup.subtree_control" => self.write_subtree_control(m, dir, value),
            "cgroup.kill" if value.trim() == "1" => {
                for d in FakeFs::cgroup_dirs(dir) {
                    std::fs::write(d.join("cgroup.procs"), "")?;
                }
                Ok(())
            }
            "cgroup.kill" => Err(errno(libc::EINVAL)),
            "devices.deny" if value == "a" => std::fs::write(dir.join("devices.list"), ""),
            "devices.deny" => Err(errno(libc::EINVAL)),
            "devices.allow" => {
                let mut list = std::fs::read_to_string(dir.join("devices.list"))?;
                if !list.is_empty() {
                    list.push('\n');
                }
                list.push_str(value);
                std::fs::write(dir.join("devices.list"), list)
            }
            _ => std::fs::write(file, value),
        }
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn children(&self, dir: &Path) -> io::Result<Vec<String>> {
        Ok(std::fs::read_dir(dir)?
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect())
    }

    fn signal(&self, pid: i32, signal: Signal, member: &dyn Fn(&str) -> bool) {
        if !member(&self.proc_cgroup(pid)) {
            return;
        }
        if let Ok(mut s) = self.signalled.lock() {
            s.push((pid, signal));
        }
        if signal == Signal::SIGKILL {
            for m in &self.mounts {
                let _ = FakeFs::drop_pid(&m.path, &pid.to_string());
            }
        }
    }

    fn device_programs(&self, dir: &Path) -> Result<Vec<u32>, BpfError> {
        self.bpf_step("query", dir)?;
        Ok(self.program_ids(dir))
    }

    fn attach_device_program(&self, dir: &Path, program: &[Insn]) -> Result<(), BpfError> {
        self.bpf_step("load", dir)?;
        self.bpf_step("attach", dir)?;
        self.with_programs(|p, last| {
            *last += 1;
            p.entry(dir.to_path_buf())
                .or_default()
                .push((*last, program.to_vec()));
        });
        Ok(())
    }

    fn detach_device_program(&self, dir: &Path, id: u32) -> Result<(), BpfError> {
        self.bpf_step("detach", dir)?;
        self.with_programs(|p, _| {
            let list = p.get_mut(dir).ok_or_else(|| errno(libc::ENOENT))?;
            let at = list.iter().position(|(i, _)| *i == id);
            let at = at.ok_or_else(|| errno(libc::ENOENT))?;
            list.remove(at);
            Ok(())
        })
        .map_err(|e| BpfError::new("detach", e))
    }
}
