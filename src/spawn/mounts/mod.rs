//! The container's filesystem view, built inside its new mount namespace by the
//! container's first process before anything of the service runs.
//!
//! - `plan`: which operations, in which order, with which flags, as pure data;
//! - `root`: opening targets inside the root only (`openat2(RESOLVE_IN_ROOT)`);
//! - `apply`: performing the plan, one syscall per operation.

mod apply;
mod plan;
#[cfg(test)]
mod plan_tests;
mod root;

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use super::SpawnError;
use crate::unit::{MountSpec, Propagation};

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
        }
    }
}

/// One mount to make, with whatever supd resolved for it (overlay upper/work dirs).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlannedMount {
    pub spec: MountSpec,
    /// For overlay: `(upperdir, workdir)` kept by supd under its state directory.
    pub overlay_dirs: Option<(PathBuf, PathBuf)>,
}

/// nosuid, nodev and noexec: what kernel API filesystems always get.
const LOCKED_DOWN: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// Build the filesystem view. `rootfs` None keeps the host tree (privately).
pub fn setup(
    rootfs: Option<&Path>,
    root_propagation: Propagation,
    readonly_root: bool,
    mounts: &[PlannedMount],
) -> Result<(), SpawnError> {
    let ops = plan::plan(rootfs, root_propagation, readonly_root, mounts)?;
    apply::run(&ops)
}
