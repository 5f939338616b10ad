//! The one place in supd that waits for children.
//!
//! On every SIGCHLD it calls `waitpid(-1, WNOHANG)` until nothing is left to reap (the
//! kernel coalesces SIGCHLDs, so one signal may stand for many exits). Each exit goes to
//! the unit that registered the pid. Exits of pids nobody registered yet are kept for a
//! while, so a registration that comes late still receives its exit; orphans re-parented
//! to supd (it is a subreaper, or PID 1) are reaped the same way and simply dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::supervise::ExitStatus;

/// How long an unclaimed exit is kept for a late registration.
const UNCLAIMED_TTL: Duration = Duration::from_secs(30);

/// An exit of a registered pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub owner: String,
    pub pid: i32,
    pub status: ExitStatus,
}

#[derive(Debug, Default)]
struct Table {
    owners: HashMap<i32, String>,
    unclaimed: HashMap<i32, (ExitStatus, Instant)>,
}

/// Who owns which pid. Shared between the reaper task and the spawner threads.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    table: Arc<Mutex<Table>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while holding this lock cannot leave the table inconsistent (every
        // update is a single insert/remove), so a poisoned lock is still usable.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claim `pid` for `owner`. Returns its exit if the reaper already saw it.
    pub fn register(&self, pid: i32, owner: &str) -> Option<ExitStatus> {
        let mut t = self.lock();
        if let Some((status, _)) = t.unclaimed.remove(&pid) {
            return Some(status);
        }
        t.owners.insert(pid, owner.to_string());
        None
    }

    /// Route one reaped exit: to its owner, or into the unclaimed table.
    pub fn route(&self, pid: i32, status: ExitStatus, now: Instant) -> Option<Exit> {
        let mut t = self.lock();
        if let Some(owner) = t.owners.remove(&pid) {
            return Some(Exit { owner, pid, status });
        }
        t.unclaimed
            .retain(|_, (_, at)| now.duration_since(*at) < UNCLAIMED_TTL);
        t.unclaimed.insert(pid, (status, now));
        None
    }
}

/// Reap every child that has exited, without blocking.
pub fn reap_all(registry: &Registry) -> Vec<Exit> {
    let mut exits = Vec::new();
    loop {
        let (pid, status) = match waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, ExitStatus::Code(code)),
            Ok(WaitStatus::Signaled(pid, sig, _core)) => (pid, ExitStatus::Signal(sig as i32)),
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
            Err(Errno::EINTR) => continue,
            // Stop/continue reports are not requested; anything else is not an exit.
            Ok(_) => continue,
            Err(e) => {
                tracing::error!(errno = %e, "waitpid failed");
                break;
            }
        };
        if let Some(exit) = registry.route(pid.as_raw(), status, Instant::now()) {
            exits.push(exit);
        } else {
            tracing::debug!(pid = pid.as_raw(), %status, "reaped unregistered process");
        }
    }
    exits
}

/// Run forever: wait for SIGCHLD, reap, send the exits on.
pub async fn run(registry: Registry, tx: mpsc::UnboundedSender<Exit>) {
    let mut sigchld = match signal(SignalKind::child()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGCHLD; exits will not be seen");
            return;
        }
    };
    loop {
        // Reap first: children may have exited before the handler was installed.
        for exit in reap_all(&registry) {
            if tx.send(exit).is_err() {
                return;
            }
        }
        if sigchld.recv().await.is_none() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_registration_receives_the_exit() {
        let r = Registry::default();
        let now = Instant::now();
        assert_eq!(r.route(42, ExitStatus::Code(3), now), None);
        assert_eq!(r.register(42, "web"), Some(ExitStatus::Code(3)));
        // Consumed: a later registration of the same pid starts clean.
        assert_eq!(r.register(42, "web"), None);
    }

    #[test]
    fn registered_exit_goes_to_owner() {
        let r = Registry::default();
        assert_eq!(r.register(7, "db"), None);
        let exit = r.route(7, ExitStatus::Signal(9), Instant::now());
        assert_eq!(
            exit,
            Some(Exit {
                owner: "db".into(),
                pid: 7,
                status: ExitStatus::Signal(9)
            })
        );
    }

    #[test]
    fn unclaimed_exits_expire() {
        let r = Registry::default();
        let t0 = Instant::now();
        r.route(1, ExitStatus::Code(0), t0);
        r.route(
            2,
            ExitStatus::Code(0),
            t0 + UNCLAIMED_TTL + Duration::from_secs(1),
        );
        assert_eq!(r.register(1, "x"), None, "expired");
        assert_eq!(r.register(2, "x"), Some(ExitStatus::Code(0)));
    }
}
