//! The one place in supd that waits for children, and the table that says whose they
//! are.
//!
//! On every SIGCHLD it calls `waitpid(-1, WNOHANG)` until nothing is left to reap (the
//! kernel coalesces SIGCHLDs, so one signal may stand for many exits) and routes each
//! exit to the start attempt that registered the pid.
//!
//! A pid alone does not name a process once pids wrap: a pid is only reusable after
//! its process was reaped, and reaping happens here, under the table's lock. So:
//! - the spawn helper is registered while the lock is held across its `posix_spawn`
//!   (`spawn_registered`): its pid cannot be reaped, let alone reused, unregistered;
//! - the container's first process is created by the helper with `CLONE_PIDFD` (as
//!   supd's child) and registered through that pidfd (`register_pidfd`) before the
//!   helper releases it: until then it waits on a pipe and cannot exit by itself, so
//!   its pid cannot be reused and the registration finds it running. Only a process
//!   killed before its release (a signal from outside, or its helper died) can have
//!   been reaped already; then the newest unclaimed exit of that pid is taken, which
//!   is its own: any older process with that pid was reaped before it existed, and a
//!   later one could only be born once it was reaped, in the moment before the
//!   registration, and would be registered (routed to its owner, never unclaimed)
//!   unless it is an orphan that also exited within that moment.
//!
//! Orphans re-parented to supd (it is a subreaper, or PID 1) are reaped the same way;
//! their exits are kept, bounded, as unclaimed.

use std::collections::{HashMap, VecDeque};
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex, MutexGuard};

use nix::errno::Errno;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::memory::Shrink;
use crate::supervise::ExitStatus;

/// Unclaimed exits kept for a registration that comes after the reap.
const UNCLAIMED_KEPT: usize = 1024;

/// What a child of a unit is there for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A start: the spawn helper and the service (its main process).
    Main,
    /// A health probe helper in the unit's container (numbered by supd); its
    /// end is seen on its socket, so its exit only needs reaping.
    Probe(u64),
    /// The `exec_stop_post` commands.
    Hook,
}

/// Which start of which unit a child belongs to, and as what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildOf {
    pub unit: String,
    pub attempt: u64,
    pub role: Role,
}

impl ChildOf {
    /// The processes of start attempt `attempt`.
    pub fn main(unit: &str, attempt: u64) -> ChildOf {
        ChildOf {
            unit: unit.to_string(),
            attempt,
            role: Role::Main,
        }
    }
}

/// An exit of a registered child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub owner: String,
    pub attempt: u64,
    pub role: Role,
    pub pid: i32,
    pub status: ExitStatus,
}

/// The outcome of registering a child by pidfd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// Its exit will be routed to the owner.
    Registered,
    /// It was reaped before it could be registered; this was its exit.
    AlreadyExited(ExitStatus),
}

#[derive(Debug, Default)]
struct Table {
    owners: HashMap<i32, ChildOf>,
    /// Children supd waits for in a thread of its own (tools such as `nft`).
    watched: HashMap<i32, std::sync::mpsc::Sender<ExitStatus>>,
    /// Exits nobody had registered, newest last.
    unclaimed: VecDeque<(i32, ExitStatus)>,
}

/// Who owns which pid. Shared between the reaper task and the spawner threads.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    table: Arc<Mutex<Table>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // Every update is a single insert or remove: a poisoned lock is still usable.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start a child with `spawn` (which returns its pid) and register it for `owner`
    /// before any exit of it can be reaped.
    pub fn spawn_registered<E>(
        &self,
        owner: ChildOf,
        spawn: impl FnOnce() -> Result<i32, E>,
    ) -> Result<i32, E> {
        let mut t = self.lock();
        let pid = spawn()?;
        t.claim(pid, owner);
        Ok(pid)
    }

    /// Start a child (a tool such as `nft`) whose exit goes to the returned
    /// receiver instead of the event loop; registered before it can be reaped,
    /// like [`Registry::spawn_registered`].
    pub fn spawn_watched<T, E>(
        &self,
        spawn: impl FnOnce() -> Result<(i32, T), E>,
    ) -> Result<(T, std::sync::mpsc::Receiver<ExitStatus>), E> {
        let mut t = self.lock();
        let (pid, value) = spawn()?;
        let (tx, rx) = std::sync::mpsc::channel();
        t.watched.insert(pid, tx);
        Ok((value, rx))
    }

    /// Register a child of supd known by a pidfd taken when it was created.
    pub fn register_pidfd(&self, pid: i32, pidfd: BorrowedFd<'_>, owner: ChildOf) -> Registration {
        let mut t = self.lock();
        let peek = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::PIDFd(pidfd), peek) {
            // Running, or exited and waiting to be reaped here: routed when reaped.
            Ok(_) => {
                t.claim(pid, owner);
                Registration::Registered
            }
            // Reaped already: under this lock, after it was created.
            Err(_) => match t.take_unclaimed(pid) {
                Some(status) => Registration::AlreadyExited(status),
                None => {
                    // Cannot happen while every reap goes through `route`; say so
                    // rather than wait forever for an exit that was lost.
                    tracing::error!(
                        unit = %owner.unit,
                        pid,
                        "child vanished before registration; taking it as killed"
                    );
                    Registration::AlreadyExited(ExitStatus::Signal(libc::SIGKILL))
                }
            },
        }
    }

    /// Run `act` only while `pid` is a registered child of `unit` that has not been
    /// reaped yet: reaping waits for this lock, so meanwhile the pid (and the process
    /// group it leads) cannot be another process's. False, and `act` not run,
    /// otherwise.
    pub fn while_unreaped(&self, pid: i32, unit: &str, act: impl FnOnce()) -> bool {
        let t = self.lock();
        let owned = t.owners.get(&pid).is_some_and(|o| o.unit == unit);
        if owned {
            act();
        }
        owned
    }

    /// Reap every child that has exited, without blocking, and route the exits.
    pub fn reap_all(&self) -> Vec<Exit> {
        self.reap_with(|| waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)))
    }

    /// `reap_all` with the wait call given (tests reap only their own children).
    fn reap_with(&self, mut wait: impl FnMut() -> nix::Result<WaitStatus>) -> Vec<Exit> {
        let mut t = self.lock();
        let mut exits = Vec::new();
        loop {
            let (pid, status) = match wait() {
                Ok(WaitStatus::Exited(pid, code)) => (pid.as_raw(), ExitStatus::Code(code)),
                Ok(WaitStatus::Signaled(pid, sig, _core)) => {
                    (pid.as_raw(), ExitStatus::Signal(sig as i32))
                }
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Err(Errno::EINTR) => continue,
                // Stop/continue reports are not requested; anything else is not an exit.
                Ok(_) => continue,
                Err(e) => {
                    tracing::error!(errno = %e, "waitpid failed");
                    break;
                }
            };
            match t.route(pid, status) {
                Some(exit) => exits.push(exit),
                None => tracing::debug!(pid, %status, "reaped unregistered process"),
            }
        }
        exits
    }
}

impl Table {
    /// `pid` now belongs to `owner`. Unclaimed exits of that pid stay: one may be
    /// that of a first process killed before its registration, whose pid was reused
    /// (and registered) meanwhile; the newest-first lookup never gives an older one to
    /// a later process.
    fn claim(&mut self, pid: i32, owner: ChildOf) {
        self.owners.insert(pid, owner);
    }

    /// Route one reaped exit: to its owner, or into the unclaimed list.
    fn route(&mut self, pid: i32, status: ExitStatus) -> Option<Exit> {
        if let Some(watcher) = self.watched.remove(&pid) {
            // The waiting thread may have given up (timed out): nothing to tell.
            let _ = watcher.send(status);
            return None;
        }
        if let Some(ChildOf {
            unit,
            attempt,
            role,
        }) = self.owners.remove(&pid)
        {
            // A burst of starts grows the table; its capacity goes with the burst.
            self.owners.shrink_after_churn();
            return Some(Exit {
                owner: unit,
                attempt,
                role,
                pid,
                status,
            });
        }
        if self.unclaimed.len() >= UNCLAIMED_KEPT {
            self.unclaimed.pop_front();
        }
        self.unclaimed.push_back((pid, status));
        None
    }

    fn take_unclaimed(&mut self, pid: i32) -> Option<ExitStatus> {
        let i = self.unclaimed.iter().rposition(|(p, _)| *p == pid)?;
        self.unclaimed.remove(i).map(|(_, status)| status)
    }
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
        for exit in registry.reap_all() {
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

    fn child(unit: &str, attempt: u64) -> ChildOf {
        ChildOf::main(unit, attempt)
    }

    #[test]
    fn registered_exit_goes_to_its_owner_and_attempt() {
        let mut t = Table::default();
        t.claim(7, child("db", 3));
        let exit = t.route(7, ExitStatus::Signal(9));
        assert_eq!(
            exit,
            Some(Exit {
                owner: "db".into(),
                attempt: 3,
                role: Role::Main,
                pid: 7,
                status: ExitStatus::Signal(9)
            })
        );
        assert_eq!(t.route(7, ExitStatus::Code(0)), None, "routed once");
    }

    #[test]
    fn a_stale_unclaimed_exit_is_never_given_to_a_later_process() {
        let mut t = Table::default();
        // An orphan with pid 42 was reaped; later a new child gets pid 42.
        assert_eq!(t.route(42, ExitStatus::Code(0)), None);
        t.claim(42, child("web", 1));
        let exit = t.route(42, ExitStatus::Code(1)).expect("routed");
        assert_eq!(exit.status, ExitStatus::Code(1));
        // Killed before its registration, a first process with pid 42 is reaped;
        // its exit is the newest of that pid, whatever came before.
        t.route(42, ExitStatus::Signal(9));
        assert_eq!(t.take_unclaimed(42), Some(ExitStatus::Signal(9)));
    }

    #[test]
    fn only_a_registered_unreaped_child_of_the_unit_is_acted_on() {
        let registry = Registry::default();
        registry.lock().claim(77, child("db", 1));
        let mut hits = 0;
        assert!(registry.while_unreaped(77, "db", || hits += 1));
        assert!(
            !registry.while_unreaped(77, "web", || hits += 1),
            "another unit's"
        );
        registry.lock().route(77, ExitStatus::Code(0));
        assert!(!registry.while_unreaped(77, "db", || hits += 1), "reaped");
        assert_eq!(hits, 1);
    }

    /// The storm that showed it: a first process reaped before its registration, its
    /// pid reused and registered by another start before that registration ran.
    #[test]
    fn an_exit_reaped_before_registration_survives_the_reuse_of_its_pid() {
        let mut t = Table::default();
        assert_eq!(
            t.route(428, ExitStatus::Signal(9)),
            None,
            "not registered yet"
        );
        t.claim(428, child("other", 7));
        assert_eq!(t.take_unclaimed(428), Some(ExitStatus::Signal(9)));
    }

    #[test]
    fn unclaimed_exits_are_bounded_and_the_newest_wins() {
        let mut t = Table::default();
        for pid in 0..(UNCLAIMED_KEPT as i32 + 10) {
            t.route(pid, ExitStatus::Code(1));
        }
        assert_eq!(t.unclaimed.len(), UNCLAIMED_KEPT);
        assert_eq!(t.take_unclaimed(0), None, "the oldest went first");
        t.route(5000, ExitStatus::Code(1));
        t.route(5000, ExitStatus::Code(2));
        assert_eq!(t.take_unclaimed(5000), Some(ExitStatus::Code(2)));
    }

    /// A real child registered by pidfd after it was already reaped gets its own exit;
    /// one registered while alive gets it through `reap_all`.
    #[test]
    fn registration_by_pidfd_sees_running_zombie_and_reaped_children() {
        use std::os::fd::{AsFd, FromRawFd, OwnedFd};
        let registry = Registry::default();
        let spawn = |code: i32| -> (i32, OwnedFd) {
            let child = std::process::Command::new("/bin/sh")
                .args(["-c", &format!("read x; exit {code}")])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .expect("spawn sh");
            let pid = child.id() as i32;
            // SAFETY: pidfd_open(2) with a plain pid and no flags.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
            assert!(fd >= 0, "pidfd_open");
            // The Child (and its stdin) is dropped: `read` sees EOF and the shell exits.
            drop(child);
            // SAFETY: a fresh descriptor from pidfd_open that nothing else owns.
            (pid, unsafe { OwnedFd::from_raw_fd(fd as i32) })
        };
        // Only this test's own children are reaped (other tests run in this process).
        let reap = |pid: i32| {
            let mut once = Some(());
            registry.reap_with(|| match once.take() {
                Some(()) => waitpid(nix::unistd::Pid::from_raw(pid), None),
                None => Ok(WaitStatus::StillAlive),
            })
        };
        // Reaped first (routed as unclaimed), registered after.
        let (pid, fd) = spawn(3);
        assert!(reap(pid).is_empty(), "nobody's yet");
        assert_eq!(
            registry.register_pidfd(pid, fd.as_fd(), child("a", 1)),
            Registration::AlreadyExited(ExitStatus::Code(3))
        );
        // Registered first, reaped after.
        let (pid, fd) = spawn(4);
        assert_eq!(
            registry.register_pidfd(pid, fd.as_fd(), child("b", 2)),
            Registration::Registered
        );
        let exit = reap(pid).pop().expect("routed to its owner");
        assert_eq!((exit.owner.as_str(), exit.attempt), ("b", 2));
        assert_eq!(exit.status, ExitStatus::Code(4));
    }
}
