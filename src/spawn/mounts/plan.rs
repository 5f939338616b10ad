//! Which mount operations, in which order, with which flags: pure data, decided
//! from the unit before the first syscall and tested without root. `apply` then
//! performs each `Op` with (nearly always) one syscall.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use super::root::{Create, relative};
use super::{Fs, LOCKED_DOWN, PlannedMount};
use crate::spawn::{SpawnError, Step};
use crate::unit::{MountKind, Propagation};

/// Paths a container must not read (kernel memory, keys, hardware details).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
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

/// One operation on one target, with the step to report if it fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub step: Step,
    /// The path named in the error (for a bind: `source -> target`).
    pub shown: String,
    pub target: Target,
    pub action: Action,
}

/// Where an operation acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A path of the current mount namespace, used as it is (`/`, the rootfs, `.`).
    Path(PathBuf),
    /// A path as the container sees it, opened inside the root (see `root`).
    InRoot(PathBuf, Missing),
}

/// What to do when an `InRoot` target does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Fail,
    /// Leave the operation out (masked paths the kernel does not have).
    Skip,
    /// Create it (inside a rootfs only; on the host it is an error).
    Create(Create),
    /// Create a directory or an empty file, whichever the bind source is.
    LikeSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open the root that later `InRoot` targets are resolved in.
    OpenRoot {
        may_create: bool,
    },
    /// mount(2) of a new filesystem or a bind.
    Mount {
        source: Source,
        flags: MsFlags,
        data: Option<String>,
    },
    /// mount(2) with propagation flags only.
    Propagate(MsFlags),
    /// Read-only and nosuid/nodev/noexec on an existing mount, with `recursive`
    /// on its submounts too (mount_setattr; one remount before Linux 5.12).
    Restrict {
        readonly: bool,
        flags: MsFlags,
        recursive: bool,
    },
    /// A new sysfs with `flags`; where the kernel refuses one (a user namespace
    /// that does not own the network namespace), the host's /sys read-only.
    Sysfs(MsFlags),
    /// Fill a fresh /dev tmpfs with devices, devpts, shm, mqueue and links.
    PopulateDev,
    /// Cover a path: an empty read-only tmpfs on a directory, /dev/null on a file.
    MaskPath,
    /// Bind a path onto itself and make it read-only.
    ReadOnlyPath,
    Chdir,
    /// `pivot_root(".", ".")`: the old root ends up stacked on the new one.
    PivotRoot,
    /// umount2(MNT_DETACH).
    Detach,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Fs(Fs),
    Bind(PathBuf),
}

impl Op {
    fn at(step: Step, path: &Path, action: Action) -> Op {
        Op {
            step,
            shown: path.to_string_lossy().into_owned(),
            target: Target::Path(path.to_path_buf()),
            action,
        }
    }

    fn in_root(step: Step, path: &Path, missing: Missing, action: Action) -> Op {
        Op {
            step,
            shown: path.to_string_lossy().into_owned(),
            target: Target::InRoot(path.to_path_buf(), missing),
            action,
        }
    }
}

/// The whole filesystem view of a container, in order: `/` made private (or
/// slave) before any mount so nothing reaches the host, the rootfs bound onto
/// itself, the unit's mounts, the masked and read-only paths (with a fresh /proc),
/// `pivot_root` into the rootfs, the read-only root, then a shared or unbindable
/// root propagation (pivot_root refuses a shared root, and an unbindable one
/// cannot be bound, so those come last). `rootfs` None keeps the host tree.
pub fn plan(
    rootfs: Option<&Path>,
    root_propagation: Propagation,
    readonly_root: bool,
    mounts: &[PlannedMount],
) -> Result<Vec<Op>, SpawnError> {
    let slash = Path::new("/");
    let mut ops = Vec::new();
    let first = if root_propagation == Propagation::Slave {
        MsFlags::MS_SLAVE
    } else {
        MsFlags::MS_PRIVATE
    };
    let make_private = Action::Propagate(MsFlags::MS_REC | first);
    ops.push(Op::at(Step::MakeRootPrivate, slash, make_private));
    if let Some(r) = rootfs {
        let bind = Action::Mount {
            source: Source::Bind(r.to_path_buf()),
            flags: MsFlags::MS_BIND | MsFlags::MS_REC,
            data: None,
        };
        ops.push(Op::at(Step::BindRootfs, r, bind));
    }
    let may_create = rootfs.is_some();
    let open_root = Action::OpenRoot { may_create };
    ops.push(Op::at(Step::OpenRoot, rootfs.unwrap_or(slash), open_root));
    for m in mounts {
        plan_mount(&mut ops, m)?;
    }
    let fresh_proc = mounts
        .iter()
        .any(|m| matches!(m.spec.kind, MountKind::Proc) && m.spec.target == Path::new("/proc"));
    if fresh_proc {
        for (paths, step, action) in [
            (MASKED_PATHS, Step::Mask, Action::MaskPath),
            (READONLY_PATHS, Step::BindReadOnlyPath, Action::ReadOnlyPath),
        ] {
            for p in paths {
                let op = Op::in_root(step, Path::new(p), Missing::Skip, action.clone());
                ops.push(op);
            }
        }
    }
    if let Some(r) = rootfs {
        let dot = Path::new(".");
        let shown = r.to_string_lossy().into_owned();
        ops.push(Op::at(Step::ChdirRootfs, r, Action::Chdir));
        // The old root may be shared with the host: never let its unmount propagate.
        for (step, action) in [
            (Step::PivotRoot, Action::PivotRoot),
            (
                Step::MakeOldRootSlave,
                Action::Propagate(MsFlags::MS_REC | MsFlags::MS_SLAVE),
            ),
            (Step::DetachOldRoot, Action::Detach),
        ] {
            let op = Op::at(step, dot, action);
            ops.push(Op {
                shown: shown.clone(),
                ..op
            });
        }
        ops.push(Op::at(Step::Chdir, slash, Action::Chdir));
    }
    if readonly_root {
        let ro = Action::Restrict {
            readonly: true,
            flags: MsFlags::empty(),
            recursive: false,
        };
        ops.push(Op::at(Step::RemountRootReadOnly, slash, ro));
    }
    if matches!(
        root_propagation,
        Propagation::Shared | Propagation::Unbindable
    ) {
        let last = Action::Propagate(MsFlags::MS_REC | propagation_flag(root_propagation));
        ops.push(Op::at(Step::SetRootPropagation, slash, last));
    }
    Ok(ops)
}

/// The operations of one `[[mount]]` (or default mount).
fn plan_mount(ops: &mut Vec<Op>, m: &PlannedMount) -> Result<(), SpawnError> {
    let spec = &m.spec;
    let target = spec.target.as_path();
    let mut flags = MsFlags::empty();
    flags.set(MsFlags::MS_NOSUID, spec.nosuid);
    flags.set(MsFlags::MS_NODEV, spec.nodev);
    flags.set(MsFlags::MS_NOEXEC, spec.noexec);
    let mut readonly = flags;
    readonly.set(MsFlags::MS_RDONLY, spec.readonly);
    let dir = Missing::Create(Create::Dir);
    let new_fs = |fs: Fs, flags: MsFlags, data: Option<String>| Action::Mount {
        source: Source::Fs(fs),
        flags,
        data,
    };
    let mut recursive = false;
    match &spec.kind {
        MountKind::Bind {
            source,
            recursive: rec,
        } => {
            recursive = *rec;
            let mut bind = MsFlags::MS_BIND;
            bind.set(MsFlags::MS_REC, recursive);
            let action = Action::Mount {
                source: Source::Bind(source.clone()),
                flags: bind,
                data: None,
            };
            let mut op = Op::in_root(Step::BindMount, target, Missing::LikeSource, action);
            op.shown = format!("{} -> {}", source.display(), target.display());
            ops.push(op);
            if spec.readonly || !flags.is_empty() {
                let restrict = Action::Restrict {
                    readonly: spec.readonly,
                    flags,
                    recursive,
                };
                ops.push(Op::in_root(
                    Step::RemountBind,
                    target,
                    Missing::Fail,
                    restrict,
                ));
            }
        }
        MountKind::Tmpfs { size, mode } => {
            let mut data = Vec::new();
            if let Some(s) = size {
                data.push(format!("size={s}"));
            }
            if let Some(m) = mode {
                data.push(format!("mode={m:o}"));
            }
            let data = (!data.is_empty()).then(|| data.join(","));
            let action = new_fs(Fs::Tmpfs, readonly, data);
            ops.push(Op::in_root(Step::Mount(Fs::Tmpfs), target, dir, action));
        }
        MountKind::Proc => {
            let action = new_fs(Fs::Proc, flags | LOCKED_DOWN, None);
            ops.push(Op::in_root(Step::Mount(Fs::Proc), target, dir, action));
        }
        MountKind::Sysfs => {
            let action = Action::Sysfs(flags | MsFlags::MS_RDONLY | LOCKED_DOWN);
            ops.push(Op::in_root(Step::Mount(Fs::Sysfs), target, dir, action));
        }
        MountKind::Dev => {
            // Device nodes must work on it, so no nodev.
            let tmpfs_flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
            let data = Some("mode=755,size=65536k".to_string());
            let action = new_fs(Fs::Tmpfs, tmpfs_flags, data);
            ops.push(Op::in_root(Step::MountDev, target, dir, action));
            // Opened again: before the mount the target was the directory below.
            let fill = Action::PopulateDev;
            ops.push(Op::in_root(Step::MountDev, target, Missing::Fail, fill));
        }
        MountKind::Overlay { lower } => {
            let Some((upper, work)) = &m.overlay_dirs else {
                return Err(SpawnError::new(
                    Step::Mount(Fs::Overlay),
                    Some(&target.to_string_lossy()),
                    None,
                    "no upper/work directory planned",
                ));
            };
            let lower: Vec<String> = lower
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            let data = format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.join(":"),
                upper.display(),
                work.display()
            );
            let action = new_fs(Fs::Overlay, readonly, Some(data));
            ops.push(Op::in_root(Step::Mount(Fs::Overlay), target, dir, action));
        }
    }
    if let Some(p) = spec.propagation {
        let mut f = propagation_flag(p);
        f.set(MsFlags::MS_REC, recursive);
        let action = Action::Propagate(f);
        ops.push(Op::in_root(
            Step::SetPropagation,
            target,
            Missing::Fail,
            action,
        ));
    }
    Ok(())
}

fn propagation_flag(p: Propagation) -> MsFlags {
    match p {
        Propagation::Private => MsFlags::MS_PRIVATE,
        Propagation::Slave => MsFlags::MS_SLAVE,
        Propagation::Shared => MsFlags::MS_SHARED,
        Propagation::Unbindable => MsFlags::MS_UNBINDABLE,
    }
}

/// How a target is shown in an error about opening it: as the container sees it.
pub fn shown_in_root(path: &Path) -> String {
    Path::new("/")
        .join(relative(path))
        .to_string_lossy()
        .into_owned()
}
