//! The few fields of `/proc/PID/stat` supd (and its tests) look at.

/// One process as `/proc/PID/stat` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    /// `R`, `S`, `Z`, ...
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    /// Field 22: when the process started, in clock ticks after boot.
    pub start_time: Option<u64>,
}

impl ProcStat {
    /// Parse a `/proc/PID/stat` line. The command name is in parentheses and may
    /// itself contain spaces or parentheses, so fields are counted after the last ')'.
    pub fn parse(pid: i32, stat: &str) -> Option<ProcStat> {
        let (_, rest) = stat.rsplit_once(')')?;
        let mut fields = rest.split_whitespace();
        let state = fields.next()?.chars().next()?;
        let ppid = fields.next()?.parse().ok()?;
        let pgrp = fields.next()?.parse().ok()?;
        // Fields 6 to 21, then 22.
        let start_time = fields.nth(22 - 6).and_then(|t| t.parse().ok());
        Some(ProcStat {
            pid,
            state,
            ppid,
            pgrp,
            start_time,
        })
    }

    pub fn read(pid: i32) -> Option<ProcStat> {
        ProcStat::parse(
            pid,
            &std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?,
        )
    }

    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }
}

/// Every process visible in /proc (those that vanish while reading are skipped).
pub fn processes() -> Vec<ProcStat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(ProcStat::read)
        .collect()
}

/// The children of `pid` (its main thread's), in the order the kernel lists them;
/// empty when it is gone or the kernel lacks `CONFIG_PROC_CHILDREN`.
pub fn children(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The pid of `pid` in its innermost pid namespace (the last `NSpid:` value of
/// `/proc/PID/status`; the pid itself on kernels without that line).
pub fn pid_in_namespace(pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(nspid(&status).unwrap_or(pid))
}

/// The last `NSpid:` value of a `/proc/PID/status` text.
fn nspid(status: &str) -> Option<i32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nspid_is_the_innermost_pid() {
        assert_eq!(
            nspid("Name:\tsh\nNSpid:\t4242\t7\t1\nNSpgid:\t1\n"),
            Some(1)
        );
        assert_eq!(nspid("Name:\tsh\nNSpid:\t4242\n"), Some(4242));
        assert_eq!(nspid("Name:\tsh\n"), None);
        let me = std::process::id() as i32;
        assert_eq!(
            pid_in_namespace(me),
            Some(me),
            "the test runs in the host's namespace"
        );
    }

    #[test]
    fn parses_names_with_spaces_and_parentheses() {
        let s = ProcStat::parse(42, "42 (we (ird) name) S 7 42 42 0 -1 4194304").expect("parse");
        assert_eq!(
            s,
            ProcStat {
                pid: 42,
                state: 'S',
                ppid: 7,
                pgrp: 42,
                start_time: None,
            }
        );
        assert!(ProcStat::parse(1, "garbage").is_none());
        let full = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(
            ProcStat::parse(42, full).and_then(|s| s.start_time),
            Some(987_654),
            "field 22, counted after any command name"
        );
    }

    #[test]
    fn sees_itself() {
        let me = std::process::id() as i32;
        let own = processes().into_iter().find(|p| p.pid == me).expect("self");
        assert!(!own.is_zombie());
    }
}

/// supd's own resident memory and open descriptors (for its metrics).
#[derive(Debug, Clone, Copy, Default)]
pub struct SelfUsage {
    pub rss_bytes: u64,
    pub open_fds: u64,
}

pub fn self_usage() -> SelfUsage {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    SelfUsage {
        rss_bytes: rss_kib.saturating_mul(1024),
        open_fds,
    }
}
