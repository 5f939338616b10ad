//! Reading the unit directory and applying what changed. Reads run in a blocking
//! thread, one after another in the order they were asked for (so an older read
//! never overwrites a newer one); the result is applied on the event loop.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tokio::sync::{mpsc, oneshot};

use super::event_loop::Daemon;
use crate::control::proto::{ErrorCode, Reply};
use crate::control::server::Answer;
use crate::memory::Shrink;
use crate::supervise::{Now, ReloadPlan};
use crate::unit::{self, Loaded};

/// Why the directory is read.
#[derive(Debug)]
pub enum Trigger {
    /// The directory watcher saw changes (after debouncing).
    Watch,
    /// SIGHUP.
    Signal,
    /// `supctl reload [--dry-run]`, answered once applied (or planned).
    Request {
        dry_run: bool,
        answer: oneshot::Sender<Answer>,
    },
}

/// A finished read, on its way to the loop.
#[derive(Debug)]
pub struct LoadResult {
    trigger: Trigger,
    result: std::io::Result<Loaded>,
}

/// The units loaded now, shared with the reader: see `unit::load_dir_preferring`.
pub type Incumbents = std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>;

/// The parses of the last read, for the next (see `unit::ParseCache`): the first
/// read's, then the worker's. Reads run one after another, so its lock is never
/// waited for.
pub type Parses = std::sync::Arc<std::sync::Mutex<unit::ParseCache>>;

/// Read every unit file of `dir` in a blocking thread and parse those that changed
/// since the last read, and resolve the images of image units in the store under
/// `state_dir`.
pub async fn read_dir(
    dir: PathBuf,
    state_dir: PathBuf,
    incumbents: Incumbents,
    parses: Parses,
) -> std::io::Result<Loaded> {
    tokio::task::spawn_blocking(move || {
        let incumbents = incumbents
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut parses = parses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut loaded = unit::load_dir_cached(&dir, &incumbents, &mut parses)?;
        drop(parses);
        crate::image::units::resolve_units(&mut loaded, &state_dir);
        Ok(loaded)
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(format!("reading units: {e}"))))
}

/// Start the reader; send it triggers, receive `LoadResult`s on `out`.
pub fn spawn_worker(
    dir: PathBuf,
    state_dir: PathBuf,
    incumbents: Incumbents,
    parses: Parses,
    out: mpsc::UnboundedSender<LoadResult>,
) -> mpsc::UnboundedSender<Trigger> {
    let (tx, mut triggers) = mpsc::unbounded_channel::<Trigger>();
    tokio::spawn(async move {
        while let Some(trigger) = triggers.recv().await {
            let result = read_dir(
                dir.clone(),
                state_dir.clone(),
                incumbents.clone(),
                parses.clone(),
            )
            .await;
            if out.send(LoadResult { trigger, result }).is_err() {
                return;
            }
        }
    });
    tx
}

impl Daemon {
    /// A read finished: apply it (or only plan it, for a dry run), answer the request.
    pub(super) fn on_loaded(&mut self, load: LoadResult) {
        let loaded = match load.result {
            Ok(loaded) => loaded,
            Err(e) => {
                let message = format!(
                    "cannot read units directory {}: {e}",
                    self.units_dir().display()
                );
                tracing::error!("reload failed, nothing changed: {message}");
                if let Trigger::Request { answer, .. } = load.trigger {
                    let reply = Reply::Error {
                        code: ErrorCode::Internal,
                        message,
                    };
                    let _ = answer.send(Answer::Reply(reply));
                }
                return;
            }
        };
        log_rejections(&loaded);
        match load.trigger {
            Trigger::Request {
                dry_run: true,
                answer,
            } => {
                let plan = self.fleet.plan_reload(&loaded);
                let images = image_changes(&self.fleet, &loaded);
                let _ = answer.send(Answer::Reply(reload_reply(&plan, images, false)));
            }
            Trigger::Request {
                dry_run: false,
                answer,
            } => {
                let reply = if self.shutting_down {
                    shutting_down()
                } else {
                    let images = image_changes(&self.fleet, &loaded);
                    reload_reply(&self.apply_loaded(loaded, None), images, true)
                };
                let _ = answer.send(Answer::Reply(reply));
            }
            Trigger::Watch | Trigger::Signal if self.shutting_down => {}
            Trigger::Watch | Trigger::Signal => {
                self.apply_loaded(loaded, None);
            }
        }
    }

    /// Make `loaded` the running set of units. `now` defaults to the current time.
    pub(super) fn apply_loaded(&mut self, loaded: Loaded, now: Option<Now>) -> ReloadPlan {
        let now = now.unwrap_or_else(Now::read);
        let (plan, actions) = self.fleet.apply_reload(&loaded, now);
        // The new definitions, and the loaded ones of units whose files were
        // rejected (they keep running): a unit being restarted onto a new
        // definition still has its old one in the fleet until it stops.
        let specs: Vec<std::sync::Arc<crate::unit::Unit>> = self
            .fleet
            .slots()
            .iter()
            .filter(|(name, _)| !loaded.units.contains_key(*name))
            .map(|(_, s)| s.spec.clone())
            .collect();
        let moved = self
            .networks
            .apply(loaded.units.values().chain(specs.iter().map(|s| &**s)));
        let mut actions = actions;
        for unit in moved {
            if self
                .fleet
                .get(&unit)
                .is_some_and(|s| s.machine.pid().is_some())
            {
                tracing::info!(unit = %unit, "its address changed (a fixed ipv4 took it): restarting");
                actions.extend(self.fleet.restart(&unit, now));
            }
        }
        for name in &plan.updated {
            if let Some(slot) = self.fleet.get(name) {
                let resources = slot.spec.resources.clone();
                self.cgroups.update(name, &resources);
                // Probing starts over with the new `[health]` settings.
                self.probes.forget(name);
            }
        }
        for name in loaded.units.keys() {
            if let Some(fp) = loaded.fingerprints.get(name) {
                self.loaded_fingerprints.insert(name.clone(), *fp);
            }
        }
        *self
            .incumbents
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            self.fleet.slots().keys().cloned().collect();
        let fleet = &self.fleet;
        self.loaded_fingerprints
            .retain(|name, _| fleet.get(name).is_some());
        self.disk_fingerprints = loaded.fingerprints;
        let mut rejected: BTreeMap<String, Vec<unit::UnitError>> = BTreeMap::new();
        for e in loaded.errors {
            rejected.entry(e.unit.clone()).or_default().push(e);
        }
        self.rejected = rejected;
        let may_control = self
            .fleet
            .slots()
            .iter()
            .filter(|(_, s)| s.spec.container.protection.control_socket)
            .map(|(name, _)| name.clone())
            .collect();
        self.peers.set_allowed(may_control);
        let fleet = &self.fleet;
        self.notify.retain(|unit| fleet.get(unit).is_some());
        self.main_pidfds.retain(|unit, _| fleet.get(unit).is_some());
        self.service_pids
            .retain(|unit, _| fleet.get(unit).is_some());
        let gone: Vec<String> = self
            .published
            .keys()
            .filter(|unit| fleet.get(unit).is_none())
            .cloned()
            .collect();
        for unit in gone {
            self.published.remove(&unit);
            self.networks.set_publishing(&unit, false);
        }
        tracing::info!(
            added = plan.added.len(),
            removed = plan.removed.len(),
            restarted = plan.restarted.len(),
            updated = plan.updated.len(),
            unchanged = plan.unchanged.len(),
            rejected = plan.rejected.len(),
            "units loaded"
        );
        self.execute(actions);
        self.emit(
            None,
            crate::control::proto::EventKind::Reload {
                added: plan.added.clone(),
                removed: plan.removed.clone(),
                restarted: plan.restarted.clone(),
                rejected: self.rejected.keys().cloned().collect(),
            },
        );
        plan
    }

    /// Units the fleet dropped (removed, their process gone): what else supd kept
    /// about them goes too, maps sized for them shrink, and the trimmer hears of it.
    pub(super) fn forget_removed(&mut self) {
        let mut gone = self.fleet.take_forgotten();
        if gone.is_empty() {
            return;
        }
        // Dropped and loaded again since (not within one event, but cheap to be sure).
        gone.retain(|unit| self.fleet.get(unit).is_none());
        // A reload only drops what belongs to units no longer in the fleet; units
        // removed then were still stopping, so what they left is dropped here.
        for unit in &gone {
            crate::image::root::release(self.state_dir(), unit);
            self.logs.forget(unit);
            self.counters.forget(unit);
            self.start_errors.remove(unit);
            self.loaded_fingerprints.remove(unit);
            self.main_pidfds.remove(unit);
            self.service_pids.remove(unit);
            self.notify.forget(unit);
        }
        self.cgroups.forget(&gone);
        // Their credentials' tmpfs (if any) goes with them.
        let dirs: Vec<std::path::PathBuf> = gone
            .iter()
            .map(|u| crate::spawn::credentials::host_dir(self.state_dir(), u))
            .filter(|d| d.exists())
            .collect();
        if !dirs.is_empty() {
            tokio::task::spawn_blocking(move || {
                dirs.iter()
                    .for_each(|d| crate::spawn::credentials::remove(d))
            });
        }
        self.start_errors.shrink_after_churn();
        self.main_pidfds.shrink_after_churn();
        self.loaded_fingerprints.shrink_after_churn();
        self.trimmer.touch();
    }

    /// Ask the reader for a fresh read.
    pub(super) fn request_reload(&self, trigger: Trigger) {
        // The worker lives as long as the loop.
        let _ = self.reloads.send(trigger);
    }
}

/// Every problem of every rejected file goes to supd's log.
pub fn log_rejections(loaded: &Loaded) {
    for e in &loaded.errors {
        tracing::error!(unit = %e.unit, "unit rejected: {e}");
    }
}

fn reload_reply(plan: &ReloadPlan, images: Vec<String>, applied: bool) -> Reply {
    let mut plan: crate::control::proto::ReloadPlan = plan.into();
    plan.images = images;
    Reply::Reload { plan, applied }
}

/// Loaded units whose image is another than the one they run: a tag imported again.
fn image_changes(fleet: &crate::supervise::Fleet, loaded: &Loaded) -> Vec<String> {
    let digest = |u: &unit::Unit| {
        let image = u.container.image.as_ref()?;
        Some((
            image.reference.clone(),
            image.resolved.as_ref()?.digest.clone(),
        ))
    };
    loaded
        .units
        .iter()
        .filter_map(|(name, unit)| {
            let (reference, new) = digest(unit)?;
            let (_, old) = digest(&fleet.get(name)?.spec)?;
            (old != new).then(|| format!("{name}: image {reference} is now {new} (was {old})"))
        })
        .collect()
}

pub(super) fn shutting_down() -> Reply {
    Reply::Error {
        code: ErrorCode::ShuttingDown,
        message: "supd is shutting down".into(),
    }
}
