//! Starting probe helpers, in the probe thread (blocking work, never on the loop):
//! a batch of units whose probe is due and that have no helper (the first probe
//! of a start, or the one after a helper was killed), one join helper each
//! (`spawn::join`, which serves that probe and the next ones), and one report back
//! with every start. The first helper of a unit's start makes what a later one
//! reuses: the encoded join plan and the unit's `cgroup.procs` files.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;

use super::cgroups::ProbeCgroup;
use crate::reaper::{ChildOf, Registry, Role};
use crate::spawn::join::{self, EncodedJoinPlan, JoinAction, JoinPlan};
use crate::spawn::{SpawnError, Step};
use crate::unit::{Probe, Unit};

/// What every probe of one start of a unit shares.
#[derive(Debug)]
pub struct Prepared {
    plan: EncodedJoinPlan,
    /// The unit's `cgroup.procs` file in each hierarchy (see `join::start`).
    cgroup: Vec<CString>,
}

/// One probe to start.
#[derive(Debug)]
pub struct ProbeJob {
    pub unit: String,
    pub attempt: u64,
    pub seq: u64,
    /// A pidfd of the unit's main process: the container to join.
    pub target: Option<Arc<OwnedFd>>,
    /// What an earlier probe of this start prepared, or what to prepare it from.
    pub prepared: Result<Arc<Prepared>, (Arc<Unit>, ProbeCgroup)>,
}

/// A started join helper: its pidfd (to kill it at a timeout) and the socket on
/// which it takes requests and answers them (blocking; its first probe is
/// requested already).
#[derive(Debug)]
pub struct Joined {
    pub helper: join::Joined,
    pub sock: UnixStream,
}

/// What became of one job.
#[derive(Debug)]
pub struct Started {
    pub unit: String,
    pub seq: u64,
    /// Newly prepared (for the next probes of the start).
    pub prepared: Option<Arc<Prepared>>,
    /// The helper, or why there is none (the probe's failure).
    pub result: Result<Joined, String>,
}

/// Start every job, in order. Blocking.
pub fn start_all(jobs: Vec<ProbeJob>, registry: &Registry, state_dir: &Path) -> Vec<Started> {
    jobs.into_iter()
        .map(|job| start_one(job, registry, state_dir))
        .collect()
}

fn start_one(job: ProbeJob, registry: &Registry, state_dir: &Path) -> Started {
    let ProbeJob {
        unit,
        attempt,
        seq,
        target,
        prepared,
    } = job;
    let (prepared, new) = match prepared {
        Ok(p) => (Ok(p), false),
        Err((spec, cgroup)) => (prepare(&spec, &cgroup, state_dir).map(Arc::new), true),
    };
    let result = prepared.as_ref().map_err(Clone::clone).and_then(|p| {
        let owner = ChildOf {
            unit: unit.clone(),
            attempt,
            role: Role::Probe(seq),
        };
        start(p, target.as_deref(), registry, &owner)
    });
    Started {
        unit,
        seq,
        prepared: prepared.ok().filter(|_| new),
        result: result.map_err(|e| e.to_string()),
    }
}

fn prepare(spec: &Unit, cgroup: &ProbeCgroup, state_dir: &Path) -> Result<Prepared, SpawnError> {
    let plan = probe_plan(spec, state_dir)?;
    let cgroup = cgroup
        .join_files()
        .iter()
        .map(|p| CString::new(p.as_os_str().as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| SpawnError::new(Step::Cgroup, None, None, "a cgroup path holds a NUL"))?;
    Ok(Prepared { plan, cgroup })
}

/// The join plan of `spec`'s probe: the service's launch plan (its identity and
/// restrictions) with the probe as the action. Blocking (user lookups).
fn probe_plan(spec: &Unit, state_dir: &Path) -> Result<EncodedJoinPlan, SpawnError> {
    let health = spec
        .health
        .as_ref()
        .ok_or_else(|| SpawnError::new(Step::Helper, None, None, "no [health] check"))?;
    let mut launch = crate::spawn::plan(spec, state_dir)?;
    // What only a start uses (the container already has its mounts): a smaller
    // plan to write and for the helper to read, at every probe.
    launch.mounts.clear();
    launch.exec_start_pre.clear();
    // The readiness pipe is the service's, and not there in a probe.
    launch.ready_fd = None;
    let timeout_ms = u64::try_from(health.timeout.as_millis()).unwrap_or(u64::MAX);
    let action = match &health.probe {
        Probe::Exec(argv) => {
            launch.argv = argv.clone();
            JoinAction::Exec
        }
        Probe::Tcp(addr) => JoinAction::Tcp {
            addr: *addr,
            timeout_ms,
        },
        Probe::Http { addr, host, path } => JoinAction::Http {
            addr: *addr,
            host: host.clone(),
            path: path.clone(),
            timeout_ms,
        },
    };
    JoinPlan {
        launch,
        action,
        timeout_ms,
    }
    .encode()
}

/// Start the join helper for one probe. Blocking.
fn start(
    prepared: &Prepared,
    target: Option<&OwnedFd>,
    registry: &Registry,
    owner: &ChildOf,
) -> Result<Joined, SpawnError> {
    let target = target.ok_or_else(|| {
        SpawnError::new(
            Step::Helper,
            None,
            None,
            "the service's process is not known yet",
        )
    })?;
    let (helper, sock) = join::start(
        &prepared.plan,
        target.as_fd(),
        registry,
        owner,
        &prepared.cgroup,
    )?;
    Ok(Joined { helper, sock })
}
