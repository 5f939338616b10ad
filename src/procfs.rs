//! The few fields of `/proc/PID/stat` supd (and its tests) look at.

/// One process as `/proc/PID/stat` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    /// `R`, `S`, `Z`, ...
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
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
        Some(ProcStat {
            pid,
            state,
            ppid,
            pgrp,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_spaces_and_parentheses() {
        let s = ProcStat::parse(42, "42 (we (ird) name) S 7 42 42 0 -1 4194304").expect("parse");
        assert_eq!(
            s,
            ProcStat {
                pid: 42,
                state: 'S',
                ppid: 7,
                pgrp: 42
            }
        );
        assert!(ProcStat::parse(1, "garbage").is_none());
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
