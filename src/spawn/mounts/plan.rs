//! Which mount operations, in which order, with which flags: pure data, decided
//! from the unit before the first syscall and tested without root. `apply` then
//! performs each `Op` with (nearly always) one syscall. The protections of the
//! host are planned in `protect`.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use super::cgroupfs::CgroupMount;
use super::root::{Create, relative};
use super::{Fs, HostFacts, LOCKED_DOWN, PlannedMount, protect};
use crate::spawn::{SpawnError, Step};
use crate::unit::{ContainerSpec, MountKind, Namespace, Propagation};

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
    /// Leave it out also when the path is a symlink: its target is protected on
    /// its own (`/bin` -> `usr/bin` on a merged-usr system).
    SkipLink,
    /// Create it (inside a rootfs only; on the host it is an error).
    Create(Create),
    /// Create a directory or an empty file, whichever the bind source is.
    LikeSource,
    /// Create the missing directories also outside a rootfs: for a path below
    /// the unit's private `/tmp` or `/var/tmp`, a fresh tmpfs of supd's, so
    /// nothing of the host's is written.
    CreateInPrivateTmp,
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
    /// Keep the target open, to bind from after a mount covers it (the host's
    /// /dev, whose devices are bound into a private /dev).
    Hold,
    /// Fill a fresh /dev tmpfs: the harmless devices and `devices` bound from the
    /// held host /dev, devpts, shm, mqueue (with an IPC namespace), the links.
    PopulateDev {
        devices: Vec<PathBuf>,
        mqueue: bool,
    },
    /// A view of the cgroup hierarchies (see `cgroupfs`), freshly mounted;
    /// where the kernel refuses that, what is below stays (the host's, made
    /// read-only before).
    CgroupView {
        mounts: Vec<CgroupMount>,
        readonly: bool,
    },
    /// Copy the mounts at the target as they are (`open_tree` clone, with
    /// submounts), to put back with `Attach` once read-only binds covered them.
    Copy,
    /// Mount the copy taken of the same path on top of the target.
    Attach,
    /// Cover a path: an empty read-only tmpfs on a directory, /dev/null on a file.
    MaskPath,
    /// Bind a path onto itself with its submounts and make the new mounts
    /// read-only plus `flags` (recursively).
    ReadOnly(MsFlags),
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
    pub(super) fn at(step: Step, path: &Path, action: Action) -> Op {
        Op {
            step,
            shown: path.to_string_lossy().into_owned(),
            target: Target::Path(path.to_path_buf()),
            action,
        }
    }

    pub(super) fn in_root(step: Step, path: &Path, missing: Missing, action: Action) -> Op {
        Op {
            step,
            shown: path.to_string_lossy().into_owned(),
            target: Target::InRoot(path.to_path_buf(), missing),
            action,
        }
    }
}

/// The whole filesystem view of a container, in order: `/` made private (or
/// slave) before any mount so nothing reaches the host; the rootfs bound onto
/// itself; the default and declared mounts; the protections (read-only system
/// directories, then kernel and cgroup state and the masked paths, then supd's
/// state directory hidden: see `protect`), so they also cover what was mounted;
/// `pivot_root` into the rootfs; the read-only root; then a shared or unbindable
/// root propagation (pivot_root refuses a shared root, and an unbindable one
/// cannot be bound, so those come last). Without a rootfs the host's tree is
/// the root.
pub fn plan(
    c: &ContainerSpec,
    mounts: &[PlannedMount],
    host: &HostFacts,
) -> Result<Vec<Op>, SpawnError> {
    let rootfs = c.rootfs.as_deref();
    let slash = Path::new("/");
    let mut ops = Vec::new();
    let first = if c.root_propagation == Propagation::Slave {
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
    let dev = PopulateDev {
        devices: c
            .protection
            .devices
            .iter()
            .map(|d| d.path.clone())
            .collect(),
        // mqueue shows the IPC namespace's queues: only a namespace not the host's.
        mqueue: c.namespaces.contains(&Namespace::Ipc) || c.join.contains_key(&Namespace::Ipc),
    };
    for m in mounts {
        plan_mount(&mut ops, m, &dev)?;
    }
    protect::system(&mut ops, c, mounts);
    protect::kernel(&mut ops, c, host);
    protect::supd(&mut ops, c, host);
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
    if c.readonly_root {
        let ro = Action::Restrict {
            readonly: true,
            flags: MsFlags::empty(),
            recursive: false,
        };
        ops.push(Op::at(Step::RemountRootReadOnly, slash, ro));
    }
    if matches!(
        c.root_propagation,
        Propagation::Shared | Propagation::Unbindable
    ) {
        let last = Action::Propagate(MsFlags::MS_REC | propagation_flag(c.root_propagation));
        ops.push(Op::at(Step::SetRootPropagation, slash, last));
    }
    Ok(ops)
}

/// What goes into a private /dev besides the fixed devices.
struct PopulateDev {
    devices: Vec<PathBuf>,
    mqueue: bool,
}

/// The operations of one `[[mount]]` (or default mount).
fn plan_mount(ops: &mut Vec<Op>, m: &PlannedMount, dev: &PopulateDev) -> Result<(), SpawnError> {
    let spec = &m.spec;
    let target = spec.target.as_path();
    let mut flags = MsFlags::empty();
    flags.set(MsFlags::MS_NOSUID, spec.nosuid);
    flags.set(MsFlags::MS_NODEV, spec.nodev);
    flags.set(MsFlags::MS_NOEXEC, spec.noexec);
    let mut readonly = flags;
    readonly.set(MsFlags::MS_RDONLY, spec.readonly);
    // A default the host may lack is left out there (inside a rootfs too: the
    // image decides which directories it has).
    let dir = if m.optional {
        Missing::Skip
    } else {
        Missing::Create(Create::Dir)
    };
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
            let missing = if m.in_fresh_mount {
                Missing::CreateInPrivateTmp
            } else {
                Missing::LikeSource
            };
            let mut op = Op::in_root(Step::BindMount, target, missing, action);
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
            // The host's /dev (a path of supd's namespace, before anything covers
            // it), whose devices are bound into the new one.
            let host_dev = Path::new(HOST_DEV);
            ops.push(Op::at(Step::HoldHostDev, host_dev, Action::Hold));
            // Device nodes must work on it, so no nodev.
            let tmpfs_flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
            let data = Some("mode=755,size=65536k".to_string());
            let action = new_fs(Fs::Tmpfs, tmpfs_flags, data);
            ops.push(Op::in_root(Step::MountDev, target, dir, action));
            // Opened again: before the mount the target was the directory below.
            let fill = Action::PopulateDev {
                devices: dev.devices.clone(),
                mqueue: dev.mqueue,
            };
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

/// Where the devices of a private /dev come from.
pub const HOST_DEV: &str = "/dev";

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
