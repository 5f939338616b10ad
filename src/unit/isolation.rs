//! The validated model of the `[container]` section and `[[mount]]` entries.
//!
//! Like the rest of the unit model, everything here has already been
//! checked by the parser: namespaces that settings depend on are created,
//! id maps do not overlap, capabilities and resource limits are typed,
//! paths are absolute.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::str::FromStr;

use nix::sys::resource::Resource;
use serde::{Deserialize, Serialize};

use super::names::Named;
use super::protection::Protection;

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
    /// The capabilities kept. Default
    /// [`ContainerSpec::DEFAULT_CAPABILITIES`].
    pub capabilities: BTreeSet<Capability>,
    /// Set `PR_SET_NO_NEW_PRIVS`.
    pub no_new_privs: bool,
    /// Install the default deny-list seccomp filter.
    pub seccomp: bool,
    /// Resource limits by resource.
    pub rlimits: BTreeMap<RlimitResource, Rlimit>,
    /// `/proc/self/oom_score_adj`, in `-1000..=1000`.
    pub oom_score_adj: Option<i32>,
    /// Mounts from the top-level `[[mount]]` tables, in file order. Only
    /// non-empty when `Mnt` is created.
    pub mounts: Vec<MountSpec>,
    /// What of the host the unit may reach (defaults protect it).
    pub protection: Protection,
    /// `image`: the root is the image's layers plus the unit's own writable
    /// layer (docs/images.md). Left out of the hash when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<super::ImageSpec>,
}

impl ContainerSpec {
    /// Docker's default capability set, kept when `capabilities` is absent.
    pub const DEFAULT_CAPABILITIES: [Capability; 14] = {
        use caps::Capability as C;
        [
            Capability(C::CAP_CHOWN),
            Capability(C::CAP_DAC_OVERRIDE),
            Capability(C::CAP_FSETID),
            Capability(C::CAP_FOWNER),
            Capability(C::CAP_MKNOD),
            Capability(C::CAP_NET_RAW),
            Capability(C::CAP_SETGID),
            Capability(C::CAP_SETUID),
            Capability(C::CAP_SETFCAP),
            Capability(C::CAP_SETPCAP),
            Capability(C::CAP_NET_BIND_SERVICE),
            Capability(C::CAP_SYS_CHROOT),
            Capability(C::CAP_KILL),
            Capability(C::CAP_AUDIT_WRITE),
        ]
    };
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
            // The default namespaces share the host's network: no net_raw (see
            // `read_container`).
            capabilities: Self::DEFAULT_CAPABILITIES
                .into_iter()
                .filter(|c| c.0 != caps::Capability::CAP_NET_RAW)
                .collect(),
            no_new_privs: true,
            seccomp: true,
            rlimits: BTreeMap::new(),
            oom_score_adj: None,
            mounts: Vec::new(),
            protection: Protection::default(),
            image: None,
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

/// A `[container.rlimits]` key: `RLIMIT_<NAME>` in lower case.
///
/// Variants are in alphabetical order so that a map keyed by them
/// serialises in the same order as one keyed by the names (the unit hash
/// does not depend on this type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RlimitResource {
    As,
    Core,
    Cpu,
    Data,
    Fsize,
    Locks,
    Memlock,
    Msgqueue,
    Nice,
    Nofile,
    Nproc,
    Rss,
    Rtprio,
    Rttime,
    Sigpending,
    Stack,
}

impl RlimitResource {
    /// The resource passed to `setrlimit(2)`.
    pub fn resource(self) -> Resource {
        match self {
            RlimitResource::As => Resource::RLIMIT_AS,
            RlimitResource::Core => Resource::RLIMIT_CORE,
            RlimitResource::Cpu => Resource::RLIMIT_CPU,
            RlimitResource::Data => Resource::RLIMIT_DATA,
            RlimitResource::Fsize => Resource::RLIMIT_FSIZE,
            RlimitResource::Locks => Resource::RLIMIT_LOCKS,
            RlimitResource::Memlock => Resource::RLIMIT_MEMLOCK,
            RlimitResource::Msgqueue => Resource::RLIMIT_MSGQUEUE,
            RlimitResource::Nice => Resource::RLIMIT_NICE,
            RlimitResource::Nofile => Resource::RLIMIT_NOFILE,
            RlimitResource::Nproc => Resource::RLIMIT_NPROC,
            RlimitResource::Rss => Resource::RLIMIT_RSS,
            RlimitResource::Rtprio => Resource::RLIMIT_RTPRIO,
            RlimitResource::Rttime => Resource::RLIMIT_RTTIME,
            RlimitResource::Sigpending => Resource::RLIMIT_SIGPENDING,
            RlimitResource::Stack => Resource::RLIMIT_STACK,
        }
    }
}

impl Named for RlimitResource {
    const VARIANTS: &'static [Self] = &[
        RlimitResource::As,
        RlimitResource::Core,
        RlimitResource::Cpu,
        RlimitResource::Data,
        RlimitResource::Fsize,
        RlimitResource::Locks,
        RlimitResource::Memlock,
        RlimitResource::Msgqueue,
        RlimitResource::Nice,
        RlimitResource::Nofile,
        RlimitResource::Nproc,
        RlimitResource::Rss,
        RlimitResource::Rtprio,
        RlimitResource::Rttime,
        RlimitResource::Sigpending,
        RlimitResource::Stack,
    ];
    const WHAT: &'static str = "rlimit";

    fn name(self) -> &'static str {
        match self {
            RlimitResource::As => "as",
            RlimitResource::Core => "core",
            RlimitResource::Cpu => "cpu",
            RlimitResource::Data => "data",
            RlimitResource::Fsize => "fsize",
            RlimitResource::Locks => "locks",
            RlimitResource::Memlock => "memlock",
            RlimitResource::Msgqueue => "msgqueue",
            RlimitResource::Nice => "nice",
            RlimitResource::Nofile => "nofile",
            RlimitResource::Nproc => "nproc",
            RlimitResource::Rss => "rss",
            RlimitResource::Rtprio => "rtprio",
            RlimitResource::Rttime => "rttime",
            RlimitResource::Sigpending => "sigpending",
            RlimitResource::Stack => "stack",
        }
    }
}

/// A Linux capability, parsed once when the unit is loaded.
///
/// Ordered and serialised by its canonical `CAP_*` name, so a set of them
/// serialises exactly like the set of names it replaced and unit hashes do
/// not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Capability(pub caps::Capability);

impl Capability {
    /// The canonical name, `"CAP_NET_BIND_SERVICE"`.
    pub fn name(self) -> String {
        self.0.to_string()
    }
}

impl Ord for Capability {
    fn cmp(&self, other: &Self) -> Ordering {
        self.name().cmp(&other.name())
    }
}

impl PartialOrd for Capability {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl From<Capability> for String {
    fn from(c: Capability) -> String {
        c.name()
    }
}

impl TryFrom<String> for Capability {
    type Error = String;

    /// Only the canonical name: this is the launch plan's encoding, not the
    /// unit-file syntax (see [`crate::unit::values::parse_capability`]).
    fn try_from(name: String) -> Result<Self, String> {
        caps::Capability::from_str(&name)
            .map(Capability)
            .map_err(|_| format!("unknown capability {name:?}"))
    }
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
        self.name()
    }

    /// The inverse of [`Namespace::as_str`].
    pub fn from_name(name: &str) -> Option<Namespace> {
        <Namespace as Named>::from_name(name)
    }
}

impl Named for Namespace {
    const VARIANTS: &'static [Self] = &Namespace::ALL;
    const WHAT: &'static str = "namespace";

    fn name(self) -> &'static str {
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
        self.name()
    }
}

impl Named for Propagation {
    const VARIANTS: &'static [Self] = &[
        Propagation::Private,
        Propagation::Slave,
        Propagation::Shared,
        Propagation::Unbindable,
    ];
    const WHAT: &'static str = "propagation";

    fn name(self) -> &'static str {
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
        self.mount_type().name()
    }

    /// The type without its settings.
    pub fn mount_type(&self) -> MountType {
        match self {
            MountKind::Bind { .. } => MountType::Bind,
            MountKind::Tmpfs { .. } => MountType::Tmpfs,
            MountKind::Proc => MountType::Proc,
            MountKind::Sysfs => MountType::Sysfs,
            MountKind::Dev => MountType::Dev,
            MountKind::Overlay { .. } => MountType::Overlay,
        }
    }
}

/// The `type` of a `[[mount]]`: the one list of mount types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    Bind,
    Tmpfs,
    Proc,
    Sysfs,
    Dev,
    Overlay,
}

impl Named for MountType {
    const VARIANTS: &'static [Self] = &[
        MountType::Bind,
        MountType::Tmpfs,
        MountType::Proc,
        MountType::Sysfs,
        MountType::Dev,
        MountType::Overlay,
    ];
    const WHAT: &'static str = "mount type";

    fn name(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Tmpfs => "tmpfs",
            MountType::Proc => "proc",
            MountType::Sysfs => "sysfs",
            MountType::Dev => "dev",
            MountType::Overlay => "overlay",
        }
    }
}
