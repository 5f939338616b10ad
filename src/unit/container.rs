//! The validated model of the `[container]` section and `[[mount]]` entries.
//!
//! Like the rest of the unit model, everything here has already been
//! checked by the parser: namespaces that settings depend on are created,
//! id maps do not overlap, capability names are canonical, paths are
//! absolute.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How a unit's process is isolated. A unit without `[container]` gets
/// [`ContainerSpec::default()`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Namespaces created for the unit. Default [`Namespace::DEFAULTS`];
    /// empty means the process runs in the host's namespaces.
    pub namespaces: BTreeSet<Namespace>,
    /// Namespaces joined by path instead of created. Disjoint from
    /// `namespaces`; paths are absolute.
    pub join: BTreeMap<Namespace, PathBuf>,
    /// Hostname inside the unit; only set when `Uts` is created.
    pub hostname: Option<String>,
    /// NIS domain name inside the unit; only set when `Uts` is created.
    pub domainname: Option<String>,
    /// uid mapping of the created user namespace; non-empty exactly when
    /// `User` is created. Ranges do not overlap on either side.
    pub uid_map: Vec<IdMapRange>,
    /// gid mapping, same rules as `uid_map`.
    pub gid_map: Vec<IdMapRange>,
    /// Root filesystem; absolute. Only set when `Mnt` is created.
    pub rootfs: Option<PathBuf>,
    /// Remount the root read-only; only `true` when `Mnt` is created.
    pub readonly_root: bool,
    /// Propagation set recursively on `/` before any mount.
    pub root_propagation: Propagation,
    /// Run an init process as PID 1 of the pid namespace (only meaningful
    /// with `Pid` created).
    pub init: bool,
    /// Canonical upper-case names (`"CAP_NET_BIND_SERVICE"`) of the
    /// capabilities kept. Default [`ContainerSpec::DEFAULT_CAPABILITIES`].
    pub capabilities: BTreeSet<String>,
    /// Set `PR_SET_NO_NEW_PRIVS`.
    pub no_new_privs: bool,
    /// Install the default deny-list seccomp filter.
    pub seccomp: bool,
    /// Resource limits by lower-case name (`"nofile"`), see
    /// [`ContainerSpec::RLIMIT_NAMES`].
    pub rlimits: BTreeMap<String, Rlimit>,
    /// `/proc/self/oom_score_adj`, in `-1000..=1000`.
    pub oom_score_adj: Option<i32>,
    /// Mounts from the top-level `[[mount]]` tables, in file order. Only
    /// non-empty when `Mnt` is created.
    pub mounts: Vec<MountSpec>,
}

impl ContainerSpec {
    /// Docker's default capability set, kept when `capabilities` is absent.
    pub const DEFAULT_CAPABILITIES: [&'static str; 14] = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ];

    /// Accepted `[container.rlimits]` keys (`RLIMIT_<NAME>` in lower case).
    pub const RLIMIT_NAMES: [&'static str; 16] = [
        "as",
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    ];
}

impl Default for ContainerSpec {
    fn default() -> Self {
        ContainerSpec {
            namespaces: Namespace::DEFAULTS.into_iter().collect(),
            join: BTreeMap::new(),
            hostname: None,
            domainname: None,
            uid_map: Vec::new(),
            gid_map: Vec::new(),
            rootfs: None,
            readonly_root: false,
            root_propagation: Propagation::Private,
            init: true,
            capabilities: Self::DEFAULT_CAPABILITIES
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
            no_new_privs: true,
            seccomp: true,
            rlimits: BTreeMap::new(),
            oom_score_adj: None,
            mounts: Vec::new(),
        }
    }
}

/// One line of `/proc/<pid>/uid_map` or `gid_map`: ids
/// `inside..inside+count` map to `outside..outside+count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapRange {
    /// First id inside the namespace.
    pub inside: u32,
    /// First id outside (on the host).
    pub outside: u32,
    /// Number of ids; `>= 1`, and neither side overflows `2^32`.
    pub count: u32,
}

/// A soft/hard resource limit pair; `soft <= hard`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    /// Soft limit; [`Rlimit::UNLIMITED`] for no limit.
    pub soft: u64,
    /// Hard limit; [`Rlimit::UNLIMITED`] for no limit.
    pub hard: u64,
}

impl Rlimit {
    /// `RLIM_INFINITY`.
    pub const UNLIMITED: u64 = u64::MAX;
}

/// A Linux namespace kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Namespace {
    /// `CLONE_NEWUSER`
    User,
    /// `CLONE_NEWNS`
    Mnt,
    /// `CLONE_NEWPID`
    Pid,
    /// `CLONE_NEWUTS`
    Uts,
    /// `CLONE_NEWIPC`
    Ipc,
    /// `CLONE_NEWNET`
    Net,
    /// `CLONE_NEWCGROUP`
    Cgroup,
}

impl Namespace {
    /// Every kind, in `Ord` order.
    pub const ALL: [Namespace; 7] = [
        Namespace::User,
        Namespace::Mnt,
        Namespace::Pid,
        Namespace::Uts,
        Namespace::Ipc,
        Namespace::Net,
        Namespace::Cgroup,
    ];

    /// Created when `namespaces` is not written.
    pub const DEFAULTS: [Namespace; 5] = [
        Namespace::Mnt,
        Namespace::Pid,
        Namespace::Uts,
        Namespace::Ipc,
        Namespace::Cgroup,
    ];

    /// The unit-file name, which is also the `/proc/<pid>/ns/` entry name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Namespace::User => "user",
            Namespace::Mnt => "mnt",
            Namespace::Pid => "pid",
            Namespace::Uts => "uts",
            Namespace::Ipc => "ipc",
            Namespace::Net => "net",
            Namespace::Cgroup => "cgroup",
        }
    }

    /// The inverse of [`Namespace::as_str`].
    pub fn from_name(name: &str) -> Option<Namespace> {
        Namespace::ALL.into_iter().find(|ns| ns.as_str() == name)
    }
}

/// Mount propagation type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Propagation {
    /// `MS_PRIVATE`
    #[default]
    Private,
    /// `MS_SLAVE`
    Slave,
    /// `MS_SHARED`
    Shared,
    /// `MS_UNBINDABLE`
    Unbindable,
}

impl Propagation {
    /// The unit-file name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Propagation::Private => "private",
            Propagation::Slave => "slave",
            Propagation::Shared => "shared",
            Propagation::Unbindable => "unbindable",
        }
    }
}

/// One `[[mount]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// What to mount.
    pub kind: MountKind,
    /// Where, inside the rootfs; absolute, no `..` components.
    pub target: PathBuf,
    /// `MS_RDONLY`
    pub readonly: bool,
    /// `MS_NOSUID`
    pub nosuid: bool,
    /// `MS_NODEV`
    pub nodev: bool,
    /// `MS_NOEXEC`
    pub noexec: bool,
    /// Propagation of this mount, if set.
    pub propagation: Option<Propagation>,
}

impl MountSpec {
    /// A mount of `kind` on `target` with no flags and no propagation change.
    pub fn plain(kind: MountKind, target: impl Into<PathBuf>) -> MountSpec {
        MountSpec {
            kind,
            target: target.into(),
            readonly: false,
            nosuid: false,
            nodev: false,
            noexec: false,
            propagation: None,
        }
    }
}

/// The `type` of a mount and its type-specific settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountKind {
    /// `type = "bind"`: `source` is absolute; `recursive` (default true)
    /// means `MS_REC`.
    Bind {
        /// Host path.
        source: PathBuf,
        /// Bind the whole subtree.
        recursive: bool,
    },
    /// `type = "tmpfs"`.
    Tmpfs {
        /// Size in bytes (`>= 1`); `None` is the kernel default.
        size: Option<u64>,
        /// Mode of the root directory, `0..=0o7777`.
        mode: Option<u32>,
    },
    /// `type = "proc"`.
    Proc,
    /// `type = "sysfs"`.
    Sysfs,
    /// `type = "dev"`: a minimal `/dev`.
    Dev,
    /// `type = "overlay"`: read-only lower layers in overlayfs `lowerdir`
    /// order (first is the top-most); the upper and work directories are
    /// managed by supd.
    Overlay {
        /// Non-empty, absolute.
        lower: Vec<PathBuf>,
    },
}

impl MountKind {
    /// The `type` value that selects this kind.
    pub fn type_name(&self) -> &'static str {
        match self {
            MountKind::Bind { .. } => "bind",
            MountKind::Tmpfs { .. } => "tmpfs",
            MountKind::Proc => "proc",
            MountKind::Sysfs => "sysfs",
            MountKind::Dev => "dev",
            MountKind::Overlay { .. } => "overlay",
        }
    }
}
