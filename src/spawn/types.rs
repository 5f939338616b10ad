//! The data that travels from supd to the helper (`LaunchPlan`) and back
//! (`Report`), and what a successful start hands to the daemon (`Spawned`).

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::SpawnError;
use super::mounts::{HostFacts, PlannedMount};
use super::seccomp::SeccompProgram;
use crate::supervise::ExitStatus;
use crate::unit::ContainerSpec;

/// Everything the helper needs, fully resolved: it does no lookups of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchPlan {
    pub unit: String,
    pub argv: Vec<String>,
    /// `KEY=value` strings, the complete environment of the service.
    pub env: Vec<String>,
    pub workdir: PathBuf,
    pub credentials: Option<Credentials>,
    pub umask: Option<u32>,
    pub container: ContainerSpec,
    /// The mounts to make, in order: the unit's own plus the defaults (see
    /// `effective_mounts`), with overlay directories resolved.
    pub mounts: Vec<PlannedMount>,
    /// What supd found on the host for the mounts: its state directory (hidden
    /// from units that see the host's files) and the cgroup hierarchies (for a
    /// unit's own read-only view).
    pub host: HostFacts,
    pub seccomp: Option<SeccompProgram>,
    /// `exec_start_pre`: run one after the other in the container, before the
    /// service; the first failure fails the start.
    #[serde(default)]
    pub exec_start_pre: Vec<Vec<String>>,
    /// How long the `exec_start_pre` commands may take together (the unit's
    /// `start_timeout`): supd waits that much longer for the service's exec.
    #[serde(default)]
    pub start_pre_timeout: std::time::Duration,
    /// `ready_fd`: the descriptor the service writes its readiness line to.
    #[serde(default)]
    pub ready_fd: Option<i32>,
    /// Bridge networking: the veth pairs the helper creates and the container
    /// configures.
    #[serde(default)]
    pub net: Option<crate::net::Attachment>,
    /// The unit's cgroup files the helper writes `0` into before anything else,
    /// unless it was created inside the cgroup (see `CgroupTree::join_files`);
    /// those that do not exist are skipped.
    #[serde(default)]
    pub cgroup_join: Vec<std::path::PathBuf>,
}

/// What the helper (or the container's first process) tells supd, one JSON line each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Report {
    /// The host pid that will exec (or run the init of) the service.
    Pid(i32),
    Error(SpawnError),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// A started service: its pid (also its process group and session id) and its output.
#[derive(Debug)]
pub struct Spawned {
    pub pid: i32,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// The pid already ended before supd registered it (a very short-lived service).
    pub early_exit: Option<ExitStatus>,
    /// A pidfd of the main process: what a join into the container (a health probe)
    /// enters by.
    pub pidfd: Option<OwnedFd>,
    /// The read end of the readiness pipe (`ready_fd`): a newline means ready.
    pub ready: Option<OwnedFd>,
}
