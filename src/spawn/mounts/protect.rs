//! The part of the mount plan that protects the host from the unit (keys of
//! `Protection`, docs/isolation.md#protections), as data like the rest of the
//! plan. It follows the unit's mounts, so it covers them too, in three steps:
//!
//! 1. `system`: `protect_system` makes the host's system directories read-only
//!    (`/` for `strict`). What must stay writable under them (`writable_paths`,
//!    the unit's writable mounts, for `strict` also `/proc`, `/sys`, `/dev`,
//!    `/tmp`, `/var/tmp` and `/run`) is copied first (`open_tree`, so the copy
//!    keeps the host's own flags) and put back on top afterwards: a hole.
//! 2. `kernel`: `/sys` read-only, the cgroup file system read-only or replaced
//!    by the unit's own read-only view, the masked and read-only `/proc` paths.
//! 3. `supd`: an empty read-only tmpfs over supd's state directory (or the unit's
//!    notify socket directory, read-only).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use nix::mount::MsFlags;

use super::cgroupfs::CGROUP_ROOT;
use super::plan::{Action, Missing, Op, Source};
use super::{Fs, HostFacts, LOCKED_DOWN, PlannedMount};
use crate::spawn::Step;
use crate::unit::{ContainerSpec, MountKind, Namespace, ProtectSystem};

/// Paths a container must not read (kernel memory, keys, hardware details): runc's
/// list plus Docker's additions.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
/// Paths a container may read but never write (kernel tunables, sysrq).
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Read-only under `protect_system = "yes"` (systemd's list).
const SYSTEM_DIRS: &[&str] = &["/usr", "/boot", "/efi"];
/// The merged-usr links: directories of their own on a system without merged
/// /usr, read-only then too; links are left alone (their target is in /usr).
const USR_LINKS: &[&str] = &["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];
/// Added by `protect_system = "full"`.
const CONFIG_DIR: &str = "/etc";
/// What `protect_system = "strict"` leaves writable besides `writable_paths`: the
/// kernel's API file systems (protected by their own keys), the temporary
/// directories and /run (supd's state directory in it is hidden anyway).
const STRICT_WRITABLE: &[&str] = &["/proc", "/sys", "/dev", "/tmp", "/var/tmp", "/run"];

/// Step 1: the host's system directories read-only, with holes.
pub fn system(ops: &mut Vec<Op>, c: &ContainerSpec, mounts: &[PlannedMount]) {
    let p = &c.protection;
    let mut protected: Vec<(&str, Missing)> = Vec::new();
    match p.protect_system {
        ProtectSystem::No => return,
        ProtectSystem::Strict => {}
        ProtectSystem::Yes | ProtectSystem::Full => {
            protected.extend(SYSTEM_DIRS.iter().map(|d| (*d, Missing::Skip)));
            protected.extend(USR_LINKS.iter().map(|d| (*d, Missing::SkipLink)));
            if p.protect_system == ProtectSystem::Full {
                protected.push((CONFIG_DIR, Missing::Skip));
            }
        }
    }
    let strict = p.protect_system == ProtectSystem::Strict;
    let under_protected = |h: &Path| strict || protected.iter().any(|(d, _)| h.starts_with(d));
    let holes: Vec<(PathBuf, Missing)> = holes(c, mounts, strict)
        .into_iter()
        .filter(|(h, _)| under_protected(h))
        .collect();
    for (h, missing) in &holes {
        ops.push(Op::in_root(Step::KeepWritable, h, *missing, Action::Copy));
    }
    if strict {
        // `/` is a mount already (the host's root, or the rootfs bound onto itself).
        let ro = Action::Restrict {
            readonly: true,
            flags: MsFlags::empty(),
            recursive: true,
        };
        ops.push(Op::in_root(
            Step::ProtectSystem,
            Path::new("/"),
            Missing::Fail,
            ro,
        ));
    }
    for (d, missing) in protected {
        let ro = Action::ReadOnly(MsFlags::empty());
        ops.push(Op::in_root(Step::ProtectSystem, Path::new(d), missing, ro));
    }
    for (h, _) in &holes {
        ops.push(Op::in_root(
            Step::RestoreWritable,
            h,
            Missing::Skip,
            Action::Attach,
        ));
    }
}

/// What stays writable, outermost only (a copy takes the submounts with it),
/// sorted: `writable_paths` (which must exist), the unit's writable mounts
/// (defaults included) and, for `strict`, `STRICT_WRITABLE` (where present).
/// `/` itself cannot be a hole.
fn holes(c: &ContainerSpec, mounts: &[PlannedMount], strict: bool) -> Vec<(PathBuf, Missing)> {
    let mut all: BTreeMap<PathBuf, Missing> = BTreeMap::new();
    let fixed = if strict { STRICT_WRITABLE } else { &[] };
    let writable_mounts = mounts
        .iter()
        .filter(|m| !m.spec.readonly && !matches!(m.spec.kind, MountKind::Sysfs))
        .map(|m| m.spec.target.as_path());
    for p in fixed.iter().map(Path::new).chain(writable_mounts) {
        all.insert(normalize(p), Missing::Skip);
    }
    for p in &c.protection.writable_paths {
        all.insert(normalize(p), Missing::Fail);
    }
    all.remove(Path::new("/"));
    let paths: Vec<PathBuf> = all.keys().cloned().collect();
    all.into_iter()
        .filter(|(p, _)| !paths.iter().any(|q| q != p && p.starts_with(q)))
        .collect()
}

/// `/a/./b/../c` -> `/a/c`, without looking at the file system (`..` above `/`
/// stays at `/`, as the kernel resolves it inside the root).
pub(super) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Step 2: kernel and cgroup state. Whatever is at `/sys` (the host's tree, or in
/// a rootfs the fresh read-only sysfs or a unit's own bind of the host's `/sys` or
/// cgroup hierarchies) rebound read-only with its submounts. With a cgroup
/// namespace, the unit's own view of the cgroup hierarchies on top, read-only.
/// Then the masked and read-only `/proc` paths, whichever `/proc` the container
/// has (fresh or the host's).
pub fn kernel(ops: &mut Vec<Op>, c: &ContainerSpec, host: &HostFacts) {
    let p = &c.protection;
    let (sys, cgroup) = (Path::new("/sys"), Path::new(CGROUP_ROOT));
    let ro = Action::ReadOnly(LOCKED_DOWN);
    if p.protect_kernel {
        // Only the kernel protected: the cgroup fs stays as it was.
        let keep = !p.protect_cgroups;
        if keep {
            ops.push(Op::in_root(
                Step::KeepWritable,
                cgroup,
                Missing::Skip,
                Action::Copy,
            ));
        }
        ops.push(Op::in_root(Step::ProtectKernel, sys, Missing::Skip, ro));
        if keep {
            let attach = Action::Attach;
            ops.push(Op::in_root(
                Step::RestoreWritable,
                cgroup,
                Missing::Skip,
                attach,
            ));
        }
    } else if p.protect_cgroups {
        ops.push(Op::in_root(Step::ProtectCgroups, cgroup, Missing::Skip, ro));
    }
    let own_cgroup_ns = c.namespaces.contains(&Namespace::Cgroup);
    if p.protect_cgroups && own_cgroup_ns && !host.cgroups.is_empty() {
        let view = Action::CgroupView {
            mounts: host.cgroups.clone(),
            readonly: true,
        };
        ops.push(Op::in_root(
            Step::ProtectCgroups,
            cgroup,
            Missing::Skip,
            view,
        ));
    }
    if p.protect_kernel {
        for (paths, step, action) in [
            (MASKED_PATHS, Step::Mask, Action::MaskPath),
            (
                READONLY_PATHS,
                Step::BindReadOnlyPath,
                Action::ReadOnly(LOCKED_DOWN),
            ),
        ] {
            for path in paths {
                let op = Op::in_root(step, Path::new(path), Missing::Skip, action.clone());
                ops.push(op);
            }
        }
    }
}

/// Step 3: supd's state directory (control socket, logs) covered, for units that
/// see the host's files and may not command supd: by an empty read-only tmpfs, or
/// for a notifying unit by its own notify directory, read-only (connecting to a
/// socket needs no write access to its file system). A rootfs gets the notify
/// directory at `NOTIFY_DIR_IN_ROOTFS`.
pub fn supd(ops: &mut Vec<Op>, c: &ContainerSpec, host: &HostFacts) {
    let dir = host.state_dir.as_path();
    // The notify directory bound at `target`, then made read-only.
    let mut bind_read_only = |step, target: &Path, missing, notify: &Path| {
        let bind = Action::Mount {
            source: Source::Bind(notify.to_path_buf()),
            flags: MsFlags::MS_BIND,
            data: None,
        };
        let read_only = Action::Restrict {
            readonly: true,
            flags: LOCKED_DOWN,
            recursive: false,
        };
        ops.push(Op::in_root(step, target, missing, bind));
        ops.push(Op::in_root(step, target, Missing::Fail, read_only));
    };
    match (&host.notify_dir, notify_view(c, host)) {
        (Some(notify), NotifyView::Rootfs) => {
            let target = Path::new(NOTIFY_DIR_IN_ROOTFS);
            let missing = Missing::Create(super::root::Create::Dir);
            bind_read_only(Step::BindNotify, target, missing, notify);
        }
        (Some(notify), NotifyView::InsteadOfStateDir) => {
            // A state directory below the unit's private /tmp is missing there:
            // it is made in that fresh tmpfs so the socket is where NOTIFY_SOCKET
            // says. Missing under another mount of the unit's: nothing to hide,
            // and the start fails at the bind, naming the directory.
            let missing = if in_private_tmp(c, dir) {
                Missing::CreateInPrivateTmp
            } else {
                Missing::Fail
            };
            bind_read_only(Step::HideStateDir, dir, missing, notify);
        }
        (None, NotifyView::InsteadOfStateDir) => {
            let cover = Action::Mount {
                source: Source::Fs(Fs::Tmpfs),
                flags: MsFlags::MS_RDONLY | LOCKED_DOWN,
                data: Some(HIDDEN_DIR_DATA.to_string()),
            };
            ops.push(Op::in_root(Step::HideStateDir, dir, Missing::Skip, cover));
        }
        (_, NotifyView::Rootfs | NotifyView::Host) => {}
    }
}

/// Whether `dir` lies below a private `/tmp` or `/var/tmp` supd mounts for the
/// unit (`private_tmp`, not replaced by a mount of the unit's own).
fn in_private_tmp(c: &ContainerSpec, dir: &Path) -> bool {
    let dir = normalize(dir);
    c.protection.private_tmp
        && crate::spawn::resolve::PRIVATE_TMP
            .iter()
            .any(|t| dir.starts_with(t) && !c.mounts.iter().any(|m| dir.starts_with(&m.target)))
}

/// Where a notifying unit's socket directory appears in a rootfs.
pub const NOTIFY_DIR_IN_ROOTFS: &str = "/run/sup";

/// How a unit sees supd's state directory, and with it its notify socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyView {
    /// As on the host (no mount namespace, `control_socket`, state in `/`).
    Host,
    /// Hidden; the notify directory (if any) takes its place.
    InsteadOfStateDir,
    /// Not at all (own root); the notify directory is at `NOTIFY_DIR_IN_ROOTFS`.
    Rootfs,
}

pub fn notify_view(c: &ContainerSpec, host: &HostFacts) -> NotifyView {
    if c.rootfs.is_some() {
        NotifyView::Rootfs
    } else if !c.namespaces.contains(&Namespace::Mnt)
        || c.protection.control_socket
        || normalize(&host.state_dir) == Path::new("/")
    {
        NotifyView::Host
    } else {
        NotifyView::InsteadOfStateDir
    }
}

/// The notify socket's path as the service sees it (its `NOTIFY_SOCKET`).
pub fn notify_socket_in_container(
    c: &ContainerSpec,
    host: &HostFacts,
    notify_dir: &Path,
) -> PathBuf {
    let name = crate::notify::socket::SOCKET_NAME;
    match notify_view(c, host) {
        NotifyView::Host => notify_dir.join(name),
        NotifyView::InsteadOfStateDir => host.state_dir.join(name),
        NotifyView::Rootfs => Path::new(NOTIFY_DIR_IN_ROOTFS).join(name),
    }
}

/// The tmpfs over supd's state directory: empty, nobody may write, the smallest.
pub const HIDDEN_DIR_DATA: &str = "mode=555,size=4k";
