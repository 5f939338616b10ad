//! Control requests, answered from the event loop. Waiting (`--wait`, `logs -f`)
//! happens in the connection's own task (`control::server`), never here.

use tokio::sync::oneshot;

use super::event_loop::Daemon;
use super::reload::{Trigger, shutting_down};
use crate::control::proto::{Command, ErrorCode, Reply, UnitAudit, UnitResult, UnitState};
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
            Command::Status { units, brief } => return self.answer_status(&units, brief, answer),
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
            Command::Start { units, .. } => {
                let mut reply = self.for_units(&units, |f, u| f.start(u, now));
                self.mark_disabled(&mut reply);
                reply
            }
            Command::Enable { units, now: start } => self.enable_units(&units, start, now),
            Command::Disable { units, .. } => self.disable_units(&units, now),
            Command::Stop { units, .. } => self.stop_units(&units, now),
            Command::Restart { units, .. } => {
                let mut reply = self.for_units(&units, |f, u| f.restart(u, now));
                note_results(&mut reply, "restart requested");
                self.mark_disabled(&mut reply);
                reply
            }
            Command::ResetFailed { units } => self.for_units(&units, |f, u| f.reset_failed(u, now)),
            Command::Reset { units } => return self.reset_images(units, answer),
            Command::Audit { units } => self.audit(&units),
            Command::Poweroff => self.halt(Halt::Poweroff),
            Command::Reboot => self.halt(Halt::Reboot),
        };
        let _ = answer.send(Answer::Reply(reply));
    }

    /// `reset`: discard stopped image units' writable layers (unmount their
    /// root, remove the upper layer), in a blocking thread: a big upper layer
    /// takes a while to remove.
    fn reset_images(&mut self, units: Vec<String>, answer: oneshot::Sender<Answer>) {
        let refuse = |message: String| {
            Answer::Reply(Reply::Error {
                code: ErrorCode::BadRequest,
                message,
            })
        };
        if let Some(refusal) = self.unknown_units(&units) {
            let _ = answer.send(Answer::Reply(refusal));
            return;
        }
        for u in &units {
            let Some(slot) = self.fleet.get(u) else {
                continue;
            };
            if slot.spec.container.image.is_none() {
                let _ = answer.send(refuse(format!(
                    "{u} has no [container] image: nothing to reset"
                )));
                return;
            }
            if !slot.machine.is_settled_down() {
                let _ = answer.send(refuse(format!(
                    "{u} is running: stop it first (`supctl stop --wait {u}`), then reset it"
                )));
                return;
            }
        }
        let progress = self.progress(&units).unwrap_or_default();
        let state_dir = self.state_dir().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let results = progress
                .into_iter()
                .map(|p| {
                    let outcome = crate::image::root::reset(&state_dir, &p.name);
                    UnitResult {
                        ok: outcome.is_ok(),
                        message: outcome.err().map(|e| e.to_string()),
                        name: p.name,
                        state: p.state,
                    }
                })
                .collect();
            let _ = answer.send(Answer::Reply(Reply::Done { results }));
        });
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
        self.results(units)
    }

    /// Each unit's state now, as an accepted request's results.
    pub(super) fn results(&self, units: &[String]) -> Reply {
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

    /// `stop`: the reply lists every unit the stop takes down, in the order they go
    /// (units requiring a named one first), so `--wait` waits for them all and
    /// `supctl` says what was stopped.
    pub(super) fn stop_units(&mut self, units: &[String], now: Now) -> Reply {
        if let Some(refusal) = self.unknown_units(units) {
            return refusal;
        }
        let mut order: Vec<String> = Vec::new();
        for u in units {
            for n in self.fleet.stop_order(u) {
                if !order.contains(&n) {
                    order.push(n);
                }
            }
        }
        for u in units {
            let actions = self.fleet.stop(u, now);
            self.execute(actions);
        }
        let mut reply = self.results(&order);
        // A unit still up waits for the units ordered after it to stop first.
        if let Reply::Done { results } = &mut reply {
            for r in results.iter_mut().filter(|r| {
                matches!(
                    r.state,
                    UnitState::Running | UnitState::Starting | UnitState::Restarting
                )
            }) {
                r.message = Some("stop requested".into());
            }
        }
        reply
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
                    blocked: matches!(slot.machine.phase(), crate::supervise::Phase::Waiting)
                        && self
                            .fleet
                            .waiting_for(name)
                            .iter()
                            .any(|d| self.fleet.is_disabled(d)),
                }),
                None => Err(self.not_found_message(std::slice::from_ref(name))),
            })
            .collect()
    }

    /// The refusal of a request naming units that are not loaded, if it names any.
    pub(super) fn unknown_units(&self, units: &[String]) -> Option<Reply> {
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

/// Adds `note` to every result of an accepted request without its own message.
fn note_results(reply: &mut Reply, note: &str) {
    if let Reply::Done { results } = reply {
        for r in results.iter_mut().filter(|r| r.message.is_none()) {
            r.message = Some(note.to_string());
        }
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
