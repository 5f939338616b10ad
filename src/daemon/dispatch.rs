//! Control requests, answered from the event loop. Waiting (`--wait`, `logs -f`)
//! happens in the connection's own task (`control::server`), never here.

use tokio::sync::oneshot;

use super::event_loop::Daemon;
use super::reload::{Trigger, shutting_down};
use crate::control::proto::{Command, ErrorCode, Reply, UnitAudit, UnitResult};
use crate::control::server::{Answer, Query, UnitProgress};
use crate::pid1::Halt;
use crate::supervise::{Fleet, Now, UnitAction};

impl Daemon {
    pub(super) fn on_query(&mut self, query: Query) {
        match query {
            Query::Request { command, answer } => self.on_request(command, answer),
            Query::Progress { units, answer } => {
                // The client may have gone away; nothing to do then.
                let _ = answer.send(self.progress(&units));
            }
        }
    }

    fn on_request(&mut self, command: Command, answer: oneshot::Sender<Answer>) {
        if self.shutting_down && command.is_mutating() {
            let _ = answer.send(Answer::Reply(shutting_down()));
            return;
        }
        let now = Now::read();
        let reply = match command {
            Command::Status { units } => return self.answer_status(&units, answer),
            Command::Reload { dry_run } => {
                return self.request_reload(Trigger::Request { dry_run, answer });
            }
            Command::Logs { unit, .. } => {
                let log = match self.fleet.get(&unit) {
                    Some(slot) => Some(self.logs.open(&unit, Some(slot.spec.logs))),
                    None => self.logs.get(&unit).cloned(),
                };
                let _ = answer.send(match log {
                    Some(log) => Answer::Log(log),
                    None => Answer::Reply(self.not_found(&[unit])),
                });
                return;
            }
            Command::Kill { unit, signal, all } => {
                return self.kill_request(unit, &signal, all, answer);
            }
            Command::Exec {
                unit,
                argv,
                tty,
                user,
                env,
                workdir,
            } => {
                let req = super::exec::ExecRequest {
                    unit,
                    argv,
                    tty,
                    user,
                    env,
                    workdir,
                };
                return self.exec_request(req, answer);
            }
            Command::Events { units } => {
                let reply = match self.unknown_units(&units) {
                    Some(refusal) => Answer::Reply(refusal),
                    None => Answer::Events(self.subscribe_events()),
                };
                let _ = answer.send(reply);
                return;
            }
            Command::Start { units, .. } => self.for_units(&units, |f, u| f.start(u, now)),
            Command::Stop { units, .. } => self.for_units(&units, |f, u| f.stop(u, now)),
            Command::Restart { units, .. } => self.for_units(&units, |f, u| f.restart(u, now)),
            Command::ResetFailed { units } => self.for_units(&units, |f, u| f.reset_failed(u, now)),
            Command::Audit { units } => self.audit(&units),
            Command::Poweroff => self.halt(Halt::Poweroff),
            Command::Reboot => self.halt(Halt::Reboot),
        };
        let _ = answer.send(Answer::Reply(reply));
    }

    /// `audit`: each unit's exposure report, from its loaded definition.
    fn audit(&self, units: &[String]) -> Reply {
        if let Some(refusal) = self.unknown_units(units) {
            return refusal;
        }
        let host = crate::audit::HostFacts {
            cgroups: self.cgroups.available(),
        };
        let reports = self
            .fleet
            .slots()
            .iter()
            .filter(|(name, _)| units.is_empty() || units.contains(name))
            .map(|(name, slot)| UnitAudit::new(name, crate::audit::assess(&slot.spec, host)))
            .collect();
        Reply::Audit { units: reports }
    }

    fn halt(&mut self, halt: Halt) -> Reply {
        self.on_shutdown_request("supctl", halt);
        Reply::Done {
            results: Vec::new(),
        }
    }

    /// Apply `f` to each named unit, or refuse the whole request if one is unknown;
    /// the reply carries each unit's state after the request was applied.
    fn for_units(
        &mut self,
        units: &[String],
        mut f: impl FnMut(&mut Fleet, &str) -> Vec<UnitAction>,
    ) -> Reply {
        if let Some(refusal) = self.unknown_units(units) {
            return refusal;
        }
        for u in units {
            let actions = f(&mut self.fleet, u);
            self.execute(actions);
        }
        let results = self
            .progress(units)
            .unwrap_or_default()
            .into_iter()
            .map(|p| UnitResult {
                name: p.name,
                ok: true,
                state: p.state,
                message: None,
            })
            .collect();
        Reply::Done { results }
    }

    /// The coarse state of the named units (for `--wait`).
    fn progress(&self, units: &[String]) -> Result<Vec<UnitProgress>, String> {
        units
            .iter()
            .map(|name| match self.fleet.get(name) {
                Some(slot) => Ok(UnitProgress {
                    name: name.clone(),
                    state: super::status::unit_state(slot.machine.state()),
                    reason: self.failure_reason(name, slot).or_else(|| stop_note(slot)),
                }),
                None => Err(self.not_found_message(std::slice::from_ref(name))),
            })
            .collect()
    }

    /// The refusal of a request naming units that are not loaded, if it names any.
    fn unknown_units(&self, units: &[String]) -> Option<Reply> {
        let missing: Vec<String> = units
            .iter()
            .filter(|u| self.fleet.get(u).is_none())
            .cloned()
            .collect();
        (!missing.is_empty()).then(|| self.not_found(&missing))
    }

    pub(super) fn not_found(&self, missing: &[String]) -> Reply {
        Reply::Error {
            code: ErrorCode::NotFound,
            message: self.not_found_message(missing),
        }
    }

    fn not_found_message(&self, missing: &[String]) -> String {
        let detail: Vec<String> = missing
            .iter()
            .map(|u| match self.rejected.get(u).and_then(|e| e.first()) {
                Some(e) => format!("{u} has no valid definition: {e}"),
                None => format!("no unit named {u}"),
            })
            .collect();
        detail.join("; ")
    }
}

/// A stop that had to be forced, in words.
pub(super) fn stop_note(slot: &crate::supervise::Slot) -> Option<String> {
    let m = &slot.machine;
    (m.killed_at_stop_timeout() && m.pid().is_none()).then(|| {
        let svc = &slot.spec.service;
        format!(
            "killed with SIGKILL: it did not stop within stop_timeout ({}) of {}",
            humantime::format_duration(svc.stop_timeout),
            svc.stop_signal.as_str()
        )
    })
}
