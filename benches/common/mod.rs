//! What the benchmarks share: a supd on a directory of units, read through its
//! own log (so a measurement waits for events, never polls), and its CPU time.
#![allow(dead_code)] // Each benchmark uses what it needs.

pub mod containers;
pub mod logs;
pub mod procs;
pub mod supervisors;
pub mod timing;

use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};

pub const SUPD: &str = env!("CARGO_BIN_EXE_supd");

pub struct Supd {
    pub child: Child,
    lines: Option<Lines<BufReader<ChildStderr>>>,
    drain: Option<std::thread::JoinHandle<()>>,
}

impl Supd {
    /// Write `units` (name, text) into `dir/units` and start supd on them, in a
    /// cgroup subtree of this process's own.
    pub fn launch(dir: &Path, units: &[(String, String)]) -> Supd {
        write_units(dir, units);
        Supd::start(dir)
    }

    /// Start supd on `dir/units` (see [`write_units`]), its state in `dir/state`.
    pub fn start(dir: &Path) -> Supd {
        let mut child = Command::new(SUPD)
            .arg("--units")
            .arg(dir.join("units"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--cgroup-root")
            .arg(format!("sup-bench-{}", std::process::id()))
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("supd");
        let lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        Supd {
            child,
            lines: Some(lines),
            drain: None,
        }
    }

    /// From now on read supd's log on a thread of its own and drop it, so that
    /// supd never blocks on a full pipe while nobody waits for a line.
    pub fn drain_log(&mut self) {
        if let Some(lines) = self.lines.take() {
            self.drain = Some(std::thread::spawn(move || lines.for_each(drop)));
        }
    }

    /// Read supd's log until a line contains `needle`.
    pub fn wait_for(&mut self, needle: &str) {
        for line in self.lines.as_mut().expect("log not drained").by_ref() {
            if line.expect("log").contains(needle) {
                return;
            }
        }
        panic!("supd exited before logging {needle:?}");
    }

    /// On-CPU nanoseconds of all of supd's threads (its own work, not its
    /// children's).
    pub fn cpu_ns(&self) -> u64 {
        let mut total = 0;
        for task in std::fs::read_dir(format!("/proc/{}/task", self.child.id()))
            .expect("tasks")
            .flatten()
        {
            if let Ok(s) = std::fs::read_to_string(task.path().join("schedstat")) {
                total += s
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        total
    }

    /// supd's CPU time in clock ticks from `/proc/PID/stat`: its own (utime +
    /// stime, threads that have exited included) and that of the children it has
    /// reaped (cutime + cstime).
    pub fn ticks(&self) -> (u64, u64) {
        procs::ticks(self.child.id())
    }
}

/// Write `units` (name, text) into `dir/units`, for [`Supd::start`].
pub fn write_units(dir: &Path, units: &[(String, String)]) {
    let units_dir = dir.join("units");
    std::fs::create_dir_all(&units_dir).expect("mkdir");
    for (name, text) in units {
        std::fs::write(units_dir.join(format!("{name}.toml")), text).expect("write unit");
    }
}

/// On-CPU nanoseconds of every unit's cgroup under supd's cgroup root (what the
/// units' processes used, probes included: they run in their unit's cgroup),
/// read from cgroup v1's `cpuacct` or v2's `cpu.stat`; `None` without either.
pub fn units_cpu_ns() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let root = format!("sup-bench-{}", std::process::id());
    let (base, file, v2) = own.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "cpuacct") {
            Some((
                format!("/sys/fs/cgroup/cpuacct/{path}"),
                "cpuacct.usage",
                false,
            ))
        } else if controllers.is_empty() {
            Some((format!("/sys/fs/cgroup/{path}"), "cpu.stat", true))
        } else {
            None
        }
    })?;
    let mut total = 0;
    for unit in std::fs::read_dir(Path::new(&base).join(root))
        .ok()?
        .flatten()
    {
        let Ok(text) = std::fs::read_to_string(unit.path().join(file)) else {
            continue;
        };
        total += if v2 {
            text.lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .map_or(0, |us| us * 1000)
        } else {
            text.trim().parse::<u64>().unwrap_or(0)
        };
    }
    Some(total)
}

impl Drop for Supd {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        // Drain the log so supd never blocks on a full pipe while stopping.
        if let Some(lines) = self.lines.take() {
            lines.for_each(drop);
        }
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
        }
        let _ = self.child.wait();
    }
}
