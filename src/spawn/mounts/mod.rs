//! The container's filesystem view, built inside its new mount namespace by the
//! container's first process before anything of the service runs.
//!
//! - `plan`: which operations, in which order, with which flags, as pure data;
//! - `protect`: the part of the plan that protects the host (read-only system
//!   directories, kernel and cgroup state, supd's state directory);
//! - `cgroupfs`: the host's cgroup hierarchies, found by supd, that a container
//!   with a cgroup namespace gets a fresh read-only view of;
//! - `root`: opening targets inside the root only (`openat2(RESOLVE_IN_ROOT)`);
//! - `apply`: performing the plan, one syscall per operation (`fill`: the
//!   operations that fill a fresh tmpfs: /dev and the cgroup view).

mod apply;
pub mod cgroupfs;
mod fill;
mod plan;
#[cfg(test)]
mod plan_tests;
mod protect;
#[cfg(test)]
mod protect_tests;
mod root;

use std::path::PathBuf;

use nix::mount::MsFlags;

use super::SpawnError;
use crate::unit::{ContainerSpec, MountSpec};
pub use cgroupfs::CgroupMount;
pub use protect::notify_socket_in_container;

/// Creates the directory `path` (as the container sees it) inside `root`
/// where it is missing, resolved in the root: an image unit's working
/// directory, which Docker creates too.
pub fn create_dir_in(
    root: &std::path::Path,
    path: &std::path::Path,
) -> Result<(), nix::errno::Errno> {
    root::Root::open(root, true)?
        .resolve(path, root::Create::Dir)
        .map(drop)
}

/// A filesystem type supd mounts (binds aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fs {
    Tmpfs,
    Proc,
    Sysfs,
    Overlay,
    Devpts,
    Mqueue,
    Cgroup,
    Cgroup2,
}

impl Fs {
    /// The name mount(2) takes as `fstype` (and as `source`, by convention).
    pub fn as_str(self) -> &'static str {
        match self {
            Fs::Tmpfs => "tmpfs",
            Fs::Proc => "proc",
            Fs::Sysfs => "sysfs",
            Fs::Overlay => "overlay",
            Fs::Devpts => "devpts",
            Fs::Mqueue => "mqueue",
            Fs::Cgroup => "cgroup",
            Fs::Cgroup2 => "cgroup2",
        }
    }
}

/// One mount to make, with whatever supd resolved for it (overlay upper/work dirs).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlannedMount {
    pub spec: MountSpec,
    /// For overlay: `(upperdir, workdir)` kept by supd under its state directory.
    pub overlay_dirs: Option<(PathBuf, PathBuf)>,
    /// A default on a directory the host may lack (`/var/tmp`): left out where
    /// the target is missing instead of failing the start.
    pub optional: bool,
    /// The target lies in a tmpfs the plan mounts before it (the unit's own
    /// `/run`, for its credentials): what is missing is made there, on the
    /// host's root too.
    #[serde(default)]
    pub in_fresh_mount: bool,
}

impl PlannedMount {
    /// A mount as declared (or a default that must be made).
    pub fn new(spec: MountSpec) -> PlannedMount {
        PlannedMount {
            spec,
            overlay_dirs: None,
            optional: false,
            in_fresh_mount: false,
        }
    }
}

/// What supd found on the host for the mount plan, so the helper looks nothing up.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostFacts {
    /// supd's state directory (control socket, logs, overlay layers), canonical:
    /// hidden from units that see the host's files unless `control_socket`.
    pub state_dir: PathBuf,
    /// The cgroup hierarchies at `/sys/fs/cgroup` (see `cgroupfs`).
    pub cgroups: Vec<CgroupMount>,
    /// The unit's own notify socket directory (`type = "notify"`), shown to it
    /// in place of the hidden state directory, or at `/run/sup` in a rootfs.
    #[serde(default)]
    pub notify_dir: Option<PathBuf>,
}

/// nosuid, nodev and noexec: what kernel API filesystems always get.
const LOCKED_DOWN: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// Build the filesystem view of a container `c` (its own root or the host's
/// tree, privately) with `mounts` and the protections of `c.protection`.
pub fn prepare(
    c: &ContainerSpec,
    mounts: &[PlannedMount],
    host: &HostFacts,
) -> Result<Prepared, SpawnError> {
    let ops = plan::plan(c, mounts, host)?;
    let sources = apply::open_bind_sources(&ops);
    Ok(Prepared { ops, sources })
}

/// A unit's mount plan with its bind sources already open: opened with the
/// helper's own identity, before it becomes a user namespace's mapped root
/// (which may not reach a source such as a `0700` state directory).
pub struct Prepared {
    ops: Vec<plan::Op>,
    sources: std::collections::BTreeMap<PathBuf, std::os::fd::OwnedFd>,
}

impl Prepared {
    /// Perform the plan (in the container's mount namespace).
    pub fn apply(self) -> Result<(), SpawnError> {
        apply::run(&self.ops, &self.sources)
    }
}
