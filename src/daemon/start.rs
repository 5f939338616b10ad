//! Starting one unit: the event loop gathers what the start needs (network,
//! ports, logs, notify socket, cgroup; `Daemon::start_job`), then in a blocking
//! thread, under the unit's cgroup gate, the job empties and creates its cgroup,
//! resolves the launch plan, and hands it to the spawn helper. The outcome
//! returns to the event loop as an event.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};

use super::cgroups::{CgroupSetupError, StartCgroup};
use crate::net::NetStart;
use crate::reaper::{ChildOf, Registry, Role};
use crate::spawn::{self, SpawnError, Spawned, Step};
use crate::unit::Unit;

/// Service starts that run at once; more wait for a slot, in order. Each start holds
/// its launch plan (about 40 KB of JSON with the seccomp program) and a thread: 1000
/// units starting at once made tokio's blocking pool grow to 512 threads and the
/// heap to over 30 MB, and what a storm grows the heap to stays partly resident
/// after it (fragmentation). With two cores a handful run in parallel anyway; a
/// start takes milliseconds and at most the helper's 30 s timeout. Each slot is a
/// thread of the blocking pool, which tokio ends after 10 s unused: with 64 slots
/// a burst of starts left some 70 threads whose exits, 10 s later, cost supd
/// 4-15 ms of CPU in an otherwise idle minute; 16 keep that small.
pub const START_SLOTS: usize = 16;

/// Why a start failed before the service ran.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Cgroup(#[from] CgroupSetupError),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
}

impl StartError {
    /// Whether one of the unit's `exec_start_pre` commands failed.
    pub fn is_start_pre(&self) -> bool {
        matches!(self, StartError::Spawn(e) if e.step == crate::spawn::Step::ExecStartPre)
    }

    /// What the start wrote before it failed, if anything.
    pub fn early_output(&self) -> Option<&crate::spawn::EarlyOutput> {
        match self {
            StartError::Spawn(e) if !e.output.is_empty() => Some(&e.output),
            StartError::Spawn(_) | StartError::Cgroup(_) => None,
        }
    }
}

/// What a start thread reports back.
#[derive(Debug)]
pub struct StartOutcome {
    pub unit: String,
    pub attempt: u64,
    /// The service itself (`Main`) or its `exec_stop_post` commands (`Hook`).
    pub role: Role,
    pub result: Result<Spawned, StartError>,
    /// The published host ports, held while the service runs.
    pub ports: Vec<(crate::unit::PortSpec, std::os::fd::OwnedFd)>,
    /// From the job's beginning (waiting for a slot included) to its outcome.
    pub took: std::time::Duration,
    /// The service's own process, looked up once here: under the container's
    /// init it is the init's child for the init's whole life, so status need not
    /// search /proc for it at every request.
    pub service: Option<ServicePid>,
}

/// A start's service process: its host pid and its pid in the unit's namespace.
#[derive(Debug, Clone, Copy)]
pub struct ServicePid {
    /// The process supd started (the container's init, or the service itself).
    pub started: i32,
    pub pid: i32,
    pub in_container: Option<i32>,
}

impl ServicePid {
    /// Look it up (blocking: reads /proc).
    pub fn find(started: i32, container: &crate::unit::ContainerSpec) -> Option<ServicePid> {
        let under_init = crate::supervise::runs_under_init(container);
        let pid = super::status::main_pid(started, under_init)?;
        Some(ServicePid {
            started,
            pid,
            in_container: crate::procfs::pid_in_namespace(pid),
        })
    }
}

/// Everything a start needs, moved into its thread.
pub struct StartJob {
    pub unit: String,
    pub attempt: u64,
    pub spec: Arc<Unit>,
    pub state_dir: PathBuf,
    pub registry: Registry,
    pub cgroup: StartCgroup,
    /// `Main` starts the service; `Hook` its `exec_stop_post` commands, in a
    /// container like its own and in its cgroup.
    pub role: Role,
    /// Its network beyond the unit file (bridge interfaces, a joined namespace),
    /// or why there is none to be had.
    pub net: Result<Option<NetStart>, String>,
    /// Where the unit's notify socket learns which run its cgroup holds
    /// (`notify::socket::Watch::run`); `None` for a unit that does not notify.
    pub notify_run: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl StartJob {
    /// Run the start in a blocking thread; the outcome arrives on `outcomes`. A
    /// service's start without `exec_start_pre` first waits for one of `slots`
    /// (see `START_SLOTS`); hooks and starts that run `exec_start_pre`, which may
    /// take long, do not.
    pub fn run_in_background(
        self,
        outcomes: mpsc::UnboundedSender<StartOutcome>,
        slots: &Arc<Semaphore>,
    ) {
        let limited =
            self.role == Role::Main && self.spec.service.lifecycle.exec_start_pre.is_empty();
        let slots = slots.clone();
        let begun = std::time::Instant::now();
        tokio::spawn(async move {
            // Never closed: a start that finds it closed anyway just runs.
            let slot = match limited {
                true => slots.acquire_owned().await.ok(),
                false => None,
            };
            tokio::task::spawn_blocking(move || {
                let mut ports = Vec::new();
                let result = self.start(&mut ports);
                drop(slot);
                let service = match (&result, self.role) {
                    (Ok(spawned), Role::Main) => {
                        ServicePid::find(spawned.pid, &self.spec.container)
                    }
                    _ => None,
                };
                // The loop only drops the receiver when supd exits.
                let _ = outcomes.send(StartOutcome {
                    unit: self.unit,
                    attempt: self.attempt,
                    role: self.role,
                    result,
                    ports,
                    took: begun.elapsed(),
                    service,
                });
            });
        });
    }

    fn start(
        &self,
        ports: &mut Vec<(crate::unit::PortSpec, std::os::fd::OwnedFd)>,
    ) -> Result<Spawned, StartError> {
        let _held = self.cgroup.hold();
        self.cgroup.prepare(&self.spec.container.protection)?;
        // The cgroup holds nothing of the run before, and the new process is not
        // yet: what its members send from now on is this attempt's.
        if let (Role::Main, Some(run)) = (self.role, &self.notify_run) {
            run.store(self.attempt, std::sync::atomic::Ordering::SeqCst);
        }
        let mut plan = spawn::plan(&self.spec, &self.state_dir)?;
        let net_error = |step, message: String| SpawnError::new(step, None, None, message);
        match &self.net {
            Err(message) => return Err(net_error(Step::Bridge, message.clone()).into()),
            Ok(None) => {}
            Ok(Some(net)) => {
                if let NetStart::Bridge(unit_net) = net {
                    for def in &unit_net.networks {
                        crate::net::setup::ensure_bridge(def)
                            .map_err(|m| net_error(Step::Bridge, m))?;
                    }
                    super::network::write_files(unit_net);
                    *ports = crate::net::setup::reserve_ports(&unit_net.ports)
                        .map_err(|m| net_error(Step::ReservePort, m))?;
                }
                spawn::attach_network(&mut plan, net);
            }
        }
        if self.role == Role::Hook {
            let commands = &self.spec.service.lifecycle.exec_stop_post;
            plan = spawn::stop_post_plan(&plan, commands)
                .ok_or_else(|| SpawnError::new(Step::ExecStopPost, None, None, "no commands"))?;
        }
        // The helper moves itself in first thing, unless created inside.
        plan.cgroup_join = self.cgroup.join_files();
        let owner = ChildOf {
            unit: self.unit.clone(),
            attempt: self.attempt,
            role: self.role,
        };
        let into = self.cgroup.clone_into();
        Ok(spawn::spawn(&plan, &self.registry, &owner, into.as_ref())?)
    }
}

/// The event loop's side of a start: what the job needs from the daemon's
/// state, gathered before it goes to a blocking thread.
impl super::event_loop::Daemon {
    /// Start attempt `attempt` of `unit` in a blocking thread.
    pub(super) fn start(&mut self, unit: String, attempt: u64) {
        self.start_job(unit, attempt, Role::Main);
    }

    /// Start the service (`Main`) or its `exec_stop_post` commands (`Hook`).
    pub(super) fn start_job(&mut self, unit: String, attempt: u64, role: Role) {
        let Some(slot) = self.fleet.get(&unit) else {
            return;
        };
        let spec = slot.spec.clone();
        let net = match role {
            Role::Main => {
                let peer_pid = match &spec.network.mode {
                    crate::unit::NetworkMode::Unit(peer) => {
                        self.fleet.get(peer).and_then(|s| s.machine.pid())
                    }
                    _ => None,
                };
                self.networks
                    .for_start(&spec, attempt, peer_pid)
                    .and_then(|net| self.check_ports_free(&unit, &spec).map(|()| net))
            }
            // `exec_stop_post` runs in a container like the unit's, with only `lo`.
            _ => Ok(None),
        };
        self.trimmer.touch();
        self.logs.open(&unit, Some(spec.logs));
        let cgroups = &self.cgroups;
        let notify_run = self.notify.ensure(&spec, || cgroups.membership(&unit));
        let job = StartJob {
            role,
            cgroup: self.cgroups.for_start(&unit, attempt, &spec.resources),
            unit,
            attempt,
            spec,
            state_dir: self.config.state_dir.clone(),
            registry: self.registry.clone(),
            net,
            notify_run,
        };
        job.run_in_background(self.outcomes.clone(), &self.start_slots);
    }

    /// A port another unit still holds (it is stopping, or its definition
    /// changed) is a start error that names it.
    fn check_ports_free(&self, unit: &str, spec: &crate::unit::Unit) -> Result<(), String> {
        for port in &spec.network.ports {
            let holder = self
                .published
                .iter()
                .filter(|(u, _)| *u != unit)
                .find(|(_, (_, held))| held.iter().any(|(p, _)| p.clashes_with(port)))
                .map(|(u, _)| u);
            if let Some(holder) = holder {
                return Err(format!(
                    "cannot publish port {port}: unit {holder:?} still holds host port {}",
                    port.host_port
                ));
            }
        }
        Ok(())
    }
}
