//! Carrying out what the fleet decided: spawns, signals, kills, cgroups, hooks, and
//! the `on_failure` actions that concern supd itself.

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::event_loop::Daemon;
use crate::pid1::Halt;
use crate::supervise::{Action, Phase, UnitAction, runs_under_init};
use crate::unit::{Namespace, OnFailure};

impl Daemon {
    /// Carry out what the fleet decided.
    pub(super) fn execute(&mut self, actions: Vec<UnitAction>) {
        for UnitAction { unit, action } in actions {
            match action {
                Action::Spawn { attempt } => self.start(unit, attempt),
                Action::StopSignal { pgid, signal } => self.stop_signal(&unit, pgid, signal),
                Action::Kill { pgid } => {
                    if let Some(pgid) = pgid {
                        self.signal_group(&unit, pgid, Signal::SIGKILL);
                    }
                    self.cgroups.kill(&unit);
                }
                Action::KillStray { pgid } => {
                    tracing::warn!(
                        unit,
                        pid = pgid,
                        "spawned process no longer wanted; killing it"
                    );
                    self.signal_group(&unit, pgid, Signal::SIGKILL);
                }
                Action::ReleaseCgroup => self.cgroups.release(&unit),
                Action::RunStopPost { attempt } => self.run_stop_post(unit, attempt),
                Action::Failed {
                    for_good,
                    exit_code,
                } => self.on_unit_failed(&unit, for_good, exit_code),
            }
        }
    }

    /// The stop signal reaches every process of the unit: with a cgroup, each
    /// process in it (so processes that left the main process group with `setsid`,
    /// like postgres' backends, see it too: systemd's `KillMode=control-group`), but
    /// not a container's init, which passes it to the service itself; without one,
    /// the main process group.
    fn stop_signal(&mut self, unit: &str, pgid: i32, signal: Signal) {
        let under_init = self
            .fleet
            .get(unit)
            .is_some_and(|s| runs_under_init(&s.spec.container));
        let skip = under_init.then_some(pgid);
        // A stopped (SIGSTOP) process only sees the stop signal once continued.
        let signals = [signal, Signal::SIGCONT];
        if !self.cgroups.signal(unit, &signals, skip) {
            for s in signals {
                self.signal_group(unit, pgid, s);
            }
        }
    }

    /// Signal a unit's process group. A group is named by its leader's pid, which is
    /// only safe to use while the leader has not been reaped: afterwards the number
    /// may be another process's, leading a group of its own (every container's first
    /// process calls setsid). So the signal is sent under the reaper's lock while the
    /// leader is a registered, unreaped child of the unit. Once the leader is gone,
    /// what is left of its group is killed through the unit's cgroup (pidfd-checked),
    /// or died with its PID namespace; only a unit with neither is signalled by
    /// number still.
    pub(super) fn signal_group(&self, unit: &str, pgid: i32, signal: Signal) {
        if self
            .registry
            .while_unreaped(pgid, unit, || signal_group(unit, pgid, signal))
        {
            return;
        }
        let own_pid_ns = self
            .fleet
            .get(unit)
            .is_some_and(|s| s.spec.container.namespaces.contains(&Namespace::Pid));
        if self.cgroups.is_live(unit) || own_pid_ns {
            tracing::debug!(
                unit,
                pgid,
                signal = signal.as_str(),
                "group leader already reaped; not signalling its number"
            );
            return;
        }
        signal_group(unit, pgid, signal);
    }

    /// `on_failure` actions that end supd's run: the fleet has done the dependents.
    fn on_unit_failed(&mut self, unit: &str, for_good: bool, exit_code: i32) {
        let Some(action) = self
            .fleet
            .get(unit)
            .map(|s| s.spec.service.lifecycle.on_failure)
        else {
            return;
        };
        if !for_good {
            return;
        }
        if let Some(Phase::Failed(failure)) = self.fleet.get(unit).map(|s| s.machine.phase()) {
            tracing::warn!(
                unit,
                exit_code,
                "unit failed and will not be restarted: {failure}"
            );
        }
        let halt = match action {
            OnFailure::Poweroff | OnFailure::Exit => Halt::Poweroff,
            OnFailure::Reboot => Halt::Reboot,
            OnFailure::StopDependents | OnFailure::RestartDependents => {
                // The fleet has stopped them; the log says why.
                tracing::warn!(
                    unit,
                    exit_code,
                    action = crate::unit::names::Named::name(action),
                    "unit failed; on_failure stops the units that require it"
                );
                return;
            }
            OnFailure::None => return,
        };
        // Outside PID 1 supd cannot power the machine off: its exit code tells
        // whoever runs it which unit's failure ended the run.
        self.exit_code = Some((unit.to_string(), exit_code, action));
        tracing::warn!(
            unit,
            exit_code,
            action = crate::unit::names::Named::name(action),
            "unit failed; on_failure ends supd's run"
        );
        self.on_shutdown_request(unit, halt);
    }
}

/// Signal a unit's process group. Never pid 0 or 1: `kill(-1)` would hit every process.
fn signal_group(unit: &str, pgid: i32, signal: Signal) {
    if pgid <= 1 {
        tracing::error!(unit, pgid, "refusing to signal a process group <= 1");
        return;
    }
    match killpg(Pid::from_raw(pgid), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => tracing::warn!(unit, pgid, signal = signal.as_str(), errno = %e, "killpg failed"),
    }
}
