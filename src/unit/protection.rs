//! What of the host a unit may reach: the protections every container gets by
//! default, each relaxed on purpose by its own key (docs/isolation.md).
//!
//! Defaults depend on the unit's shape, decided at load: the file-system
//! protections need a mount namespace of its own (without one they cannot apply,
//! and the model says so: they are off), and a unit with its own `rootfs` does not
//! see the host's system files, so `protect_system` and `private_tmp` default off
//! for it.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::isolation::Capability;
use super::names::Named;

/// Which host directories are read-only in the container (systemd's
/// `ProtectSystem=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtectSystem {
    /// Nothing extra is read-only.
    No,
    /// `/usr`, `/boot`, `/efi` and the merged-usr links (`/bin`, `/sbin`, `/lib*`).
    Yes,
    /// `yes` plus `/etc`.
    Full,
    /// The whole file system, except `/proc`, `/sys`, `/dev`, `/tmp`, `/var/tmp`,
    /// `/run` and `writable_paths`.
    Strict,
}

impl Named for ProtectSystem {
    const VARIANTS: &'static [Self] = &[Self::No, Self::Yes, Self::Full, Self::Strict];
    const WHAT: &'static str = "protect_system level";

    fn name(self) -> &'static str {
        match self {
            ProtectSystem::No => "no",
            ProtectSystem::Yes => "yes",
            ProtectSystem::Full => "full",
            ProtectSystem::Strict => "strict",
        }
    }
}

/// A host device made available in the container's private `/dev` (`[[device]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSpec {
    /// The device node on the host, e.g. `/dev/fuse`; it appears at the same path.
    pub path: PathBuf,
    /// What the container may do with it: a subset of `r` (read), `w` (write) and
    /// `m` (mknod), in that order. Default `rw`.
    pub access: String,
}

/// The protections of one unit, as they apply (already resolved against its
/// namespaces and rootfs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protection {
    /// Host directories read-only in the container.
    pub protect_system: ProtectSystem,
    /// Paths that stay writable under `protect_system` (absolute).
    pub writable_paths: Vec<PathBuf>,
    /// A private, empty `/tmp` and `/var/tmp` (tmpfs).
    pub private_tmp: bool,
    /// A private minimal `/dev` (null, zero, full, random, urandom, tty, pts, shm,
    /// mqueue) and a kernel-enforced device allowlist: those, plus `devices`.
    pub private_devices: bool,
    /// Host devices added to the private `/dev` and the allowlist.
    pub devices: Vec<DeviceSpec>,
    /// `/sys` and `/proc/sys` read-only; `/proc` paths that expose the kernel
    /// masked or read-only, as runc does.
    pub protect_kernel: bool,
    /// The cgroup file system read-only (with a cgroup namespace, the unit sees
    /// only its own subtree).
    pub protect_cgroups: bool,
    /// The unit may command supd: its state directory (with the control socket)
    /// stays visible and the socket accepts the unit as a client.
    pub control_socket: bool,
    /// Capabilities a service running as a non-root `user` keeps (ambient); empty:
    /// none. Root keeps `capabilities`.
    pub ambient_capabilities: BTreeSet<Capability>,
}

impl Protection {
    /// The defaults for a unit with (or without) a mount namespace of its own and a
    /// rootfs of its own.
    pub fn defaults(own_mounts: bool, own_rootfs: bool) -> Protection {
        let host_files = own_mounts && !own_rootfs;
        Protection {
            protect_system: if host_files {
                ProtectSystem::Full
            } else {
                ProtectSystem::No
            },
            writable_paths: Vec::new(),
            private_tmp: host_files,
            private_devices: own_mounts,
            devices: Vec::new(),
            protect_kernel: own_mounts,
            protect_cgroups: own_mounts,
            control_socket: false,
            ambient_capabilities: BTreeSet::new(),
        }
    }
}

impl Default for Protection {
    /// The defaults of a unit with the default namespaces (mnt included) and no
    /// rootfs.
    fn default() -> Self {
        Protection::defaults(true, false)
    }
}
