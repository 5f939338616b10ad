//! `supctl kill`: a signal to a unit's main process, or to every process of its
//! cgroup (`all`). Nothing else happens here: whatever the signal does to the
//! service (an exit, a reload) reaches the fleet the usual way, so a unit killed
//! with SIGKILL is restarted by its restart policy like any other exit.
//!
//! The main process is the service, not a container's init: under `sup-init` the
//! service is the init's first child, looked up (and held by a pidfd) under the
//! reaper's lock, while the init cannot have been reaped, so its pid names it.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use nix::sys::signal::Signal;
use tokio::sync::oneshot;

use super::event_loop::Daemon;
use crate::control::proto::{ErrorCode, Reply, UnitResult, UnitState};
use crate::control::server::Answer;
use crate::reaper::Registry;
use crate::supervise::runs_under_init;

impl Daemon {
    /// `kill`: answered from a blocking thread when the service must be looked up.
    pub(super) fn kill_request(
        &mut self,
        unit: String,
        signal: &str,
        all: bool,
        answer: oneshot::Sender<Answer>,
    ) {
        // The client may have gone away; nothing to do then.
        let reply = |answer: oneshot::Sender<Answer>, r| {
            let _ = answer.send(Answer::Reply(r));
        };
        let Target {
            sig,
            first,
            attempt,
            under_init,
            state,
        } = match self.kill_target(&unit, signal) {
            Ok(t) => t,
            Err(r) => return reply(answer, *r),
        };
        if all {
            // As the stop signal: each process of the cgroup but a container's
            // init (which would pass it on to the service a second time).
            let skip = under_init.then_some(first);
            if !self.cgroups.signal(&unit, &[sig], skip) {
                self.signal_group(&unit, first, sig);
            }
            let note = format!("{} sent to every process of the unit", sig.as_str());
            return reply(answer, done(&unit, state, note));
        }
        let pidfd = self
            .main_pidfds
            .get(&unit)
            .filter(|(a, _)| *a == attempt)
            .map(|(_, fd)| fd.clone());
        let registry = self.registry.clone();
        tokio::task::spawn_blocking(move || {
            let r = match signal_main(&unit, first, pidfd, under_init, sig, &registry) {
                Ok(pid) => done(&unit, state, format!("{} sent to pid {pid}", sig.as_str())),
                Err(message) => Reply::Error {
                    code: ErrorCode::NotRunning,
                    message: format!("{unit}: {message}"),
                },
            };
            reply(answer, r);
        });
    }

    /// What to signal, or the refusal.
    fn kill_target(&self, unit: &str, signal: &str) -> Result<Target, Box<Reply>> {
        let sig = crate::unit::values::parse_signal(signal).map_err(|message| {
            Box::new(Reply::Error {
                code: ErrorCode::BadRequest,
                message,
            })
        })?;
        let Some(slot) = self.fleet.get(unit) else {
            return Err(Box::new(self.not_found(&[unit.to_string()])));
        };
        let state = super::status::unit_state(slot.machine.state());
        let Some(first) = slot.machine.pid() else {
            return Err(Box::new(not_running(unit, state)));
        };
        let under_init = runs_under_init(&slot.spec.container);
        Ok(Target {
            sig,
            first,
            attempt: slot.machine.attempt(),
            under_init,
            state,
        })
    }
}

/// A `kill` about to be carried out.
struct Target {
    sig: Signal,
    /// The container's first process (its init, or the service).
    first: i32,
    /// The start it belongs to.
    attempt: u64,
    under_init: bool,
    state: UnitState,
}

/// The refusal of `exec` or `kill` for a unit without a process.
pub(super) fn not_running(unit: &str, state: UnitState) -> Reply {
    Reply::Error {
        code: ErrorCode::NotRunning,
        message: format!("{unit} is not running (it is {state})"),
    }
}

fn done(unit: &str, state: UnitState, note: String) -> Reply {
    Reply::Done {
        results: vec![UnitResult {
            name: unit.to_string(),
            ok: true,
            state,
            message: Some(note),
        }],
    }
}

/// Signal the service: the container's first process itself, or, under an init,
/// the init's first child. Returns the host pid signalled. Blocking (procfs).
fn signal_main(
    unit: &str,
    first: i32,
    first_fd: Option<Arc<OwnedFd>>,
    under_init: bool,
    sig: Signal,
    registry: &Registry,
) -> Result<i32, String> {
    let gone = || "its main process has just ended".to_string();
    if !under_init {
        if let Some(fd) = first_fd {
            return pidfd_signal(fd.as_fd(), sig).map(|()| first);
        }
        let mut sent = Err(gone());
        registry.while_unreaped(first, unit, || {
            sent = nix::sys::signal::kill(nix::unistd::Pid::from_raw(first), sig)
                .map_err(|e| e.to_string())
        });
        return sent.map(|()| first);
    }
    let mut found = Err(gone());
    // The init is unreaped meanwhile: its pid, and its children's parent pid, are
    // its own.
    registry.while_unreaped(first, unit, || found = service_of(first));
    let (pid, fd) = found?;
    pidfd_signal(fd.as_fd(), sig).map(|()| pid)
}

/// The service under init `init`: its child that leads its own process group
/// (the service calls setsid), the first started of those (orphans the init
/// adopts come later), as `status` shows its main pid; held by a pidfd taken
/// while it was still the init's child.
fn service_of(init: i32) -> Result<(i32, OwnedFd), String> {
    let pid = service_pid(init)
        .ok_or_else(|| "its service has ended (only its init is left)".to_string())?;
    let fd = pidfd_open(pid).map_err(|e| format!("pidfd_open({pid}): {e}"))?;
    // Still the init's child now that it is held: not a reused pid.
    match crate::procfs::ProcStat::read(pid) {
        Some(st) if st.ppid == init => Ok((pid, fd)),
        _ => Err("its service has just ended".to_string()),
    }
}

/// The service under the container's init `init`: the earliest started child
/// leading its own process group, else the earliest child; None while the init
/// has not started it yet (or it has ended). Status' main pid is the same.
pub(super) fn service_pid(init: i32) -> Option<i32> {
    // Each child's stat read once: whether it leads its group, and when it started.
    let children: Vec<(u64, i32, bool)> = crate::procfs::children(init)
        .into_iter()
        .filter_map(crate::procfs::ProcStat::read)
        .filter_map(|s| Some((s.start_time?, s.pid, s.pgrp == s.pid)))
        .collect();
    let earliest = |leaders_only: bool| {
        children
            .iter()
            .filter(|(_, _, leads)| *leads || !leaders_only)
            .min()
            .map(|(_, pid, _)| *pid)
    };
    earliest(true).or_else(|| earliest(false))
}

fn pidfd_open(pid: i32) -> Result<OwnedFd, nix::errno::Errno> {
    // SAFETY: pidfd_open(2) with a plain pid and no flags.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(nix::errno::Errno::last());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn pidfd_signal(fd: BorrowedFd<'_>, sig: Signal) -> Result<(), String> {
    // SAFETY: pidfd_send_signal(2) on a valid descriptor, with no siginfo.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r == 0 {
        return Ok(());
    }
    match nix::errno::Errno::last() {
        nix::errno::Errno::ESRCH => Err("its main process has just ended".to_string()),
        e => Err(format!("cannot signal its main process: {e}")),
    }
}
