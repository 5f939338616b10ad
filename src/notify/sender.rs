//! Who may send a unit notices (systemd's `NotifyAccess=all`, checked by cgroup):
//! a process that is, when supd reads the message, a live member of the unit's
//! cgroup. The socket names the unit; the sender's credentials (`SO_PASSCRED`,
//! the pid translated by the kernel into supd's pid namespace) say whether the
//! message comes from the unit's current run. A datagram sits in the socket
//! until supd reads it and carries no start attempt: a `READY=1` sent by a
//! process that then died at once (and was restarted) is read after the restart
//! began, and without this check would count for the new process. The old run's
//! processes are dead by then: supd empties the unit's cgroup before a start.
//!
//! `judge` is the decision and is pure; `facts` reads `/proc` for it.

/// Whether a `/proc/PID/cgroup` text puts a process in a given unit's cgroup.
pub type Membership = std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// What supd makes of one message's sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Acted on.
    Credit,
    /// No credentials came with it (or pid 0: a sender supd cannot see).
    NoCredentials,
    /// The sender had exited (or is a zombie) when supd read the message: it
    /// may have belonged to a run that is over.
    Gone,
    /// The sender is alive but not in the unit's cgroup.
    Outside,
}

impl Verdict {
    /// Why a message is dropped, for the log.
    pub fn why(self) -> &'static str {
        match self {
            Verdict::Credit => "credited",
            Verdict::NoCredentials => "no sender credentials",
            Verdict::Gone => "the sender had exited before supd read it",
            Verdict::Outside => "the sender is not in the unit's cgroup",
        }
    }
}

/// The sender's process as `/proc` showed it when the message was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// `/proc/PID/stat`'s state letter; `None` when the process is gone.
    pub state: Option<char>,
    /// `/proc/PID/cgroup`; `None` when the process is gone.
    pub cgroup: Option<String>,
}

/// Whether a message from `pid` (its `SCM_CREDENTIALS` pid, `None` without
/// them) counts. `in_unit` tells whether a `/proc/PID/cgroup` text puts the
/// process in the unit's cgroup; `None` when the unit has no cgroup (supd runs
/// without cgroups): then a live sender is enough, as a process can reach the
/// socket only through the unit's mount of it or the host path under supd's
/// state directory.
pub fn judge(pid: Option<i32>, facts: &Facts, in_unit: Option<&dyn Fn(&str) -> bool>) -> Verdict {
    if pid.is_none_or(|p| p <= 0) {
        return Verdict::NoCredentials;
    }
    let (Some(state), Some(cgroup)) = (facts.state, facts.cgroup.as_deref()) else {
        return Verdict::Gone;
    };
    if state == 'Z' || state == 'X' {
        return Verdict::Gone;
    }
    match in_unit {
        Some(member) if !member(cgroup) => Verdict::Outside,
        _ => Verdict::Credit,
    }
}

/// Read what `judge` needs about `pid` (cgroup first, so a process that exits
/// between the two reads shows as gone).
pub fn facts(pid: Option<i32>) -> Facts {
    let Some(pid) = pid.filter(|p| *p > 0) else {
        return Facts {
            state: None,
            cgroup: None,
        };
    };
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok();
    let state = crate::procfs::ProcStat::read(pid).map(|s| s.state);
    Facts { state, cgroup }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNIT: &str = "0::/supd/web\n";
    const OTHER: &str = "0::/user.slice/session-1.scope\n";

    fn live(cgroup: &str) -> Facts {
        Facts {
            state: Some('S'),
            cgroup: Some(cgroup.into()),
        }
    }

    #[test]
    fn only_a_live_member_of_the_units_cgroup_is_credited() {
        let member = |text: &str| text.lines().any(|l| l.starts_with("0::/supd/web"));
        let gone = Facts {
            state: None,
            cgroup: None,
        };
        let zombie = Facts {
            state: Some('Z'),
            cgroup: Some(UNIT.into()),
        };
        let half_gone = Facts {
            state: None,
            cgroup: Some(UNIT.into()),
        };
        // (pid, facts, the unit has a cgroup) -> verdict
        let table: &[(Option<i32>, &Facts, bool, Verdict)] = &[
            (Some(42), &live(UNIT), true, Verdict::Credit),
            (Some(42), &live(OTHER), true, Verdict::Outside),
            (Some(42), &gone, true, Verdict::Gone),
            (Some(42), &zombie, true, Verdict::Gone),
            (Some(42), &half_gone, true, Verdict::Gone),
            (None, &live(UNIT), true, Verdict::NoCredentials),
            (Some(0), &live(UNIT), true, Verdict::NoCredentials),
            (Some(-1), &live(UNIT), true, Verdict::NoCredentials),
            // Without cgroups: any live sender, never a dead one.
            (Some(42), &live(OTHER), false, Verdict::Credit),
            (Some(42), &gone, false, Verdict::Gone),
            (Some(42), &zombie, false, Verdict::Gone),
            (None, &live(OTHER), false, Verdict::NoCredentials),
        ];
        for (pid, facts, cgroups, want) in table {
            let in_unit: Option<&dyn Fn(&str) -> bool> = cgroups.then_some(&member);
            assert_eq!(
                judge(*pid, facts, in_unit),
                *want,
                "{pid:?} {facts:?} {cgroups}"
            );
        }
    }

    #[test]
    fn facts_read_this_process_and_not_a_missing_one() {
        let me = facts(Some(std::process::id() as i32));
        assert!(me.state.is_some() && me.cgroup.is_some(), "{me:?}");
        assert_eq!(
            judge(Some(std::process::id() as i32), &me, None),
            Verdict::Credit
        );
        assert_eq!(facts(Some(i32::MAX)).state, None);
        assert_eq!(facts(None).cgroup, None);
    }
}
