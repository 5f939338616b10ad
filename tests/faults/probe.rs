//! What the fault tests measure of a running supd from outside: its descriptors,
//! memory and processes, read from /proc of the host.

use std::path::Path;
use std::time::Duration;

/// `name` from the environment as a number, or `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

/// Open descriptors of `pid`, less the usage files of live cgroups.
pub fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
        .flatten()
        .filter(|fd| !is_live_usage_file(&fd.path()))
        .count()
}

/// A cgroup interface file of a cgroup that exists: supd holds each unit's
/// usage files open while the unit has a cgroup (src/cgroup/usage.rs), so how
/// many are open follows the units, not leaks. One of a removed cgroup (its path
/// gone) counts like any other descriptor.
fn is_live_usage_file(fd: &std::path::Path) -> bool {
    std::fs::read_link(fd)
        .is_ok_and(|target| target.starts_with("/sys/fs/cgroup/") && target.exists())
}

/// What `pid`'s descriptors are, counted by kind (`pipe`, `socket`, a path...),
/// for a message that says what leaked.
pub fn fd_kinds(pid: i32) -> std::collections::BTreeMap<String, usize> {
    let mut kinds = std::collections::BTreeMap::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let target = std::fs::read_link(fd.path())
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default();
        // `pipe:[123]` -> `pipe`, `anon_inode:[pidfd]` stays whole.
        let kind = match target.split_once(":[") {
            Some((kind, rest)) if rest.starts_with(|c: char| c.is_ascii_digit()) => {
                kind.to_string()
            }
            _ => target,
        };
        *kinds.entry(kind).or_insert(0) += 1;
    }
    kinds
}

/// Resident memory of `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: i32) -> u64 {
    status_field(pid, "VmRSS:")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS for {pid}"))
}

/// The process's anonymous resident memory (heap, stacks: what it holds), KiB;
/// unlike VmRSS it leaves out pages of its binary that were read in.
pub fn anon_kib(pid: i32) -> u64 {
    status_field(pid, "RssAnon:")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no RssAnon for {pid}"))
}

/// A field of `/proc/PID/status`, without its name.
pub fn status_field(pid: i32, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.trim().to_string())
}

/// The soft and hard limit of `what` (e.g. "Max open files") in `/proc/PID/limits`.
pub fn limits_of(pid: i32, what: &str) -> (String, String) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/limits: {e}"));
    let line = text
        .lines()
        .find(|l| l.starts_with(what))
        .unwrap_or_else(|| panic!("no {what:?} in /proc/{pid}/limits:\n{text}"));
    let mut fields = line[what.len()..].split_whitespace();
    let soft = fields.next().unwrap_or_default().to_string();
    let hard = fields.next().unwrap_or_default().to_string();
    (soft, hard)
}

/// Live (not zombie) children of `pid`.
pub fn children_of(pid: i32) -> Vec<i32> {
    sup::procfs::processes()
        .into_iter()
        .filter(|p| p.ppid == pid && !p.is_zombie())
        .map(|p| p.pid)
        .collect()
}

pub fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Every pid in the cgroup directory `dir` and the directories below it.
pub fn pids_below(dir: &Path) -> Vec<i32> {
    let mut pids: Vec<i32> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            pids.extend(pids_below(&entry.path()));
        }
    }
    pids
}

/// Poll `value` until `ok` holds for it, at most `timeout`; the last value either way.
pub fn settle<T>(timeout: Duration, mut value: impl FnMut() -> T, ok: impl Fn(&T) -> bool) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let v = value();
        if ok(&v) || std::time::Instant::now() >= deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
