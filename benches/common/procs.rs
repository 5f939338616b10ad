//! What the benchmarks read from /proc about other processes: CPU ticks,
//! memory, and process trees (a supervisor and what it keeps).

use std::collections::HashMap;

/// Fields of `/proc/PID/stat` after the command (state is field 0), or `None`
/// once the process is gone.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// A process's CPU time in clock ticks: its own (utime + stime, threads that
/// have exited included) and that of the children it has reaped (cutime +
/// cstime); zeros once it is gone.
pub fn ticks(pid: u32) -> (u64, u64) {
    let fields = stat_fields(pid).unwrap_or_default();
    // state(0) ... utime(11) stime(12) cutime(13) cstime(14).
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field(11) + field(12), field(13) + field(14))
}

pub fn ticks_per_sec() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64
}

/// A `KEY:   N kB` line of a /proc file, in KiB.
fn kib(path: &str, key: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

pub fn rss_kib(pid: u32) -> u64 {
    kib(&format!("/proc/{pid}/status"), "VmRSS:").expect("VmRSS")
}

/// Proportional set size: the process's private pages plus its share of the
/// pages it maps with others (so N copies of one binary count it once in all).
pub fn pss_kib(pid: u32) -> u64 {
    kib(&format!("/proc/{pid}/smaps_rollup"), "Pss:").unwrap_or(0)
}

/// One process as the table sees it.
#[derive(Clone, Debug)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    pub argv: Vec<String>,
}

/// Every process on the machine now.
pub fn table() -> Vec<Proc> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Some(fields) = stat_fields(pid) else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let argv = std::fs::read(format!("/proc/{pid}/cmdline"))
            .unwrap_or_default()
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        out.push(Proc {
            pid,
            ppid: fields.get(1).and_then(|p| p.parse().ok()).unwrap_or(0),
            comm: comm.trim().to_string(),
            argv,
        });
    }
    out
}

/// `root` and all its descendants, parents before children.
pub fn tree(root: u32) -> Vec<Proc> {
    let all = table();
    let mut children: HashMap<u32, Vec<&Proc>> = HashMap::new();
    for p in &all {
        children.entry(p.ppid).or_default().push(p);
    }
    let mut out: Vec<Proc> = all.iter().filter(|p| p.pid == root).cloned().collect();
    let mut i = 0;
    while i < out.len() {
        let pid = out[i].pid;
        out.extend(
            children
                .get(&pid)
                .into_iter()
                .flatten()
                .map(|p| (*p).clone()),
        );
        i += 1;
    }
    out
}
