//! Performing a mount plan, in the container's first process inside its new mount
//! namespace. Each `Op` is one syscall on one target, except the few whose next
//! step depends on what the kernel says (sysfs refused, mount_setattr missing, a
//! masked path that is a file or absent) and the fills of a fresh tmpfs (`fill`).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, pivot_root};

use super::plan::{Action, Missing, Op, Source, Target, shown_in_root};
use super::root::{Create, Root, fd_path};
use super::{Fs, LOCKED_DOWN, fill};
use crate::spawn::{SpawnError, Step};

/// A target, open: the path to hand to syscalls, and the descriptor that path
/// goes through (kept open while the path is used).
struct Opened {
    path: PathBuf,
    fd: Option<OwnedFd>,
}

/// What earlier operations left for later ones.
#[derive(Default)]
struct Kept {
    root: Option<Root>,
    /// `Hold`: open directories, by path (the host's /dev).
    held: BTreeMap<PathBuf, OwnedFd>,
    /// `Copy`: detached copies of mount trees, by path, until `Attach`.
    copies: BTreeMap<PathBuf, OwnedFd>,
}

/// Perform the operations in order; stop at the first failure.
pub fn run(ops: &[Op], sources: &BTreeMap<PathBuf, OwnedFd>) -> Result<(), SpawnError> {
    let mut kept = Kept::default();
    for op in ops {
        let fail = |e: Errno| SpawnError::new(op.step, Some(&op.shown), Some(e), "");
        let key = target_path(op).to_path_buf();
        // No copy: its path was missing, so there is nothing to put back.
        if op.action == Action::Attach && !kept.copies.contains_key(&key) {
            continue;
        }
        let Some(target) = open_target(kept.root.as_ref(), op)? else {
            continue;
        };
        let at = target.path.as_path();
        let root = kept.root.as_ref();
        match &op.action {
            Action::OpenRoot { may_create } => {
                kept.root = Some(Root::open(at, *may_create).map_err(fail)?);
            }
            Action::Mount {
                source,
                flags,
                data,
            } => {
                let (source, fstype) = match source {
                    Source::Fs(fs) => (PathBuf::from(fs.as_str()), Some(fs.as_str())),
                    Source::Bind(path) => match sources.get(path) {
                        Some(fd) => (fd_path(fd), None),
                        None => (path.clone(), None),
                    },
                };
                mount(Some(&source), at, fstype, *flags, data.as_deref()).map_err(fail)?;
            }
            Action::Propagate(flags) => {
                mount(None::<&str>, at, None::<&str>, *flags, None::<&str>).map_err(fail)?;
            }
            Action::Restrict {
                readonly,
                flags,
                recursive,
            } => restrict(at, *readonly, *flags, *recursive).map_err(fail)?,
            Action::Sysfs(flags) => mount_sysfs(root, op, at, *flags)?,
            Action::Hold => {
                let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
                let fd = nix::fcntl::open(at, flags, Mode::empty()).map_err(fail)?;
                kept.held.insert(key, fd);
            }
            Action::PopulateDev { devices, mqueue } => {
                let host = kept.held.get(Path::new(super::plan::HOST_DEV));
                fill::populate_dev(at, host, devices, *mqueue)?;
            }
            Action::CgroupView { mounts, readonly } => {
                fill::cgroup_view(at, mounts, *readonly, || reopen(root, op))?;
            }
            Action::Copy => {
                let fd = target.fd.as_ref().ok_or(Errno::EBADF).map_err(fail)?;
                kept.copies.insert(key, copy_tree(fd).map_err(fail)?);
            }
            Action::Attach => {
                let copy = kept.copies.remove(&key).ok_or(Errno::EBADF).map_err(fail)?;
                let fd = target.fd.as_ref().ok_or(Errno::EBADF).map_err(fail)?;
                attach(&copy, fd).map_err(fail)?;
            }
            Action::MaskPath => mask(at).map_err(fail)?,
            Action::ReadOnly(flags) => read_only(root, op, at, *flags)?,
            Action::Chdir => chdir(at).map_err(fail)?,
            Action::PivotRoot => pivot_root(at, at).map_err(fail)?,
            Action::Detach => umount2(at, MntFlags::MNT_DETACH).map_err(fail)?,
        }
    }
    Ok(())
}

/// Every bind source, opened before the first mount: a source is a path as the
/// host sees it, which a mount of the plan may cover later (the notify socket's
/// directory, or a unit's bind from /tmp, below the unit's private /tmp).
/// One that cannot be opened is left to its mount, which fails as it would have
/// (or is never made, its target being optional and missing).
pub(super) fn open_bind_sources(ops: &[Op]) -> BTreeMap<PathBuf, OwnedFd> {
    let mut sources = BTreeMap::new();
    for op in ops {
        let Action::Mount {
            source: Source::Bind(path),
            ..
        } = &op.action
        else {
            continue;
        };
        if sources.contains_key(path) {
            continue;
        }
        let flags = OFlag::O_PATH | OFlag::O_CLOEXEC;
        if let Ok(fd) = nix::fcntl::open(path, flags, Mode::empty()) {
            sources.insert(path.clone(), fd);
        }
    }
    sources
}

fn target_path(op: &Op) -> &Path {
    match &op.target {
        Target::Path(p) | Target::InRoot(p, _) => p,
    }
}

/// Open an operation's target; None when it is missing and may be skipped.
fn open_target(root: Option<&Root>, op: &Op) -> Result<Option<Opened>, SpawnError> {
    let (path, missing) = match &op.target {
        Target::Path(path) => {
            return Ok(Some(Opened {
                path: path.clone(),
                fd: None,
            }));
        }
        Target::InRoot(path, missing) => (path, *missing),
    };
    let create = match (missing, &op.action) {
        (Missing::Fail | Missing::Skip | Missing::SkipLink, _) => Create::No,
        (Missing::Create(c), _) => c,
        (Missing::CreateInPrivateTmp, _) => Create::Dir,
        (Missing::LikeSource, Action::Mount { source, .. }) => match source {
            Source::Bind(s) if !s.is_dir() => Create::File,
            _ => Create::Dir,
        },
        (Missing::LikeSource, _) => Create::Dir,
    };
    let Some(root) = root else {
        let detail = "no root opened before it (a bug in the mount plan)";
        return Err(SpawnError::new(
            Step::MountTarget,
            Some(&op.shown),
            None,
            detail,
        ));
    };
    if missing == Missing::SkipLink && root.is_symlink(path) {
        return Ok(None);
    }
    let may_create = root.may_create() || missing == Missing::CreateInPrivateTmp;
    match root.resolve_creating(path, create, may_create) {
        Ok(fd) => Ok(Some(Opened {
            path: fd_path(&fd),
            fd: Some(fd),
        })),
        Err(_) if matches!(missing, Missing::Skip | Missing::SkipLink) => Ok(None),
        Err(e) => {
            let detail = match e {
                Errno::ENOENT if !root.may_create() => {
                    "target missing (only created inside a rootfs)"
                }
                // With a user namespace the mounts are made as the unit's mapped
                // root, which a rootfs owned by the host's root may not let in.
                Errno::EACCES | Errno::EPERM if root.may_create() => {
                    "not reachable or not creatable by the unit's mapped root (user namespace): create it in the rootfs, reachable by that uid"
                }
                _ => "",
            };
            let shown = shown_in_root(path);
            Err(SpawnError::new(
                Step::MountTarget,
                Some(&shown),
                Some(e),
                detail,
            ))
        }
    }
}

/// An `InRoot` target opened again: after a mount on it, the descriptor opened
/// before names the directory below, not the new mount.
fn reopen(root: Option<&Root>, op: &Op) -> Result<OwnedFd, SpawnError> {
    let shown = Path::new(&op.shown);
    let Target::InRoot(target, _) = &op.target else {
        return Err(err(Step::Reopen, shown, Errno::EINVAL));
    };
    root.ok_or(Errno::EBADF)
        .and_then(|r| r.resolve(target, Create::No))
        .map_err(|e| err(Step::Reopen, shown, e))
}

pub(super) fn err(step: Step, path: &Path, e: Errno) -> SpawnError {
    SpawnError::new(step, Some(&path.to_string_lossy()), Some(e), "")
}

/// sysfs; where the kernel refuses a new one (a user namespace that does not own
/// the network namespace), the host's /sys bound read-only with its submounts.
fn mount_sysfs(
    root: Option<&Root>,
    op: &Op,
    target: &Path,
    flags: MsFlags,
) -> Result<(), SpawnError> {
    let sysfs = Fs::Sysfs.as_str();
    let fail = |e, detail| SpawnError::new(op.step, Some(&op.shown), Some(e), detail);
    match mount(Some(sysfs), target, Some(sysfs), flags, None::<&str>) {
        Err(Errno::EPERM) => {}
        other => return other.map_err(|e| fail(e, "")),
    }
    let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
    mount(Some("/sys"), target, None::<&str>, bind, None::<&str>)
        .map_err(|e| fail(e, "bind the host's /sys (a new sysfs was refused)"))?;
    let mounted = reopen(root, op)?;
    restrict(&fd_path(&mounted), true, LOCKED_DOWN, true)
        .map_err(|e| fail(e, "make the host's /sys read-only"))
}

/// A copy of the mount tree at `fd` (`open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)`),
/// detached, with each mount's flags as they are now (Linux 5.2+).
fn copy_tree(fd: &OwnedFd) -> Result<OwnedFd, Errno> {
    let flags = libc::OPEN_TREE_CLONE
        | libc::OPEN_TREE_CLOEXEC
        | libc::AT_RECURSIVE as libc::c_uint
        | libc::AT_EMPTY_PATH as libc::c_uint;
    // SAFETY: an open descriptor, an empty NUL-terminated path (AT_EMPTY_PATH:
    // the descriptor itself) and flags; the call returns a new descriptor or -1.
    let rc = unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) };
    if rc < 0 {
        return Err(Errno::last());
    }
    let raw = RawFd::try_from(rc).map_err(|_| Errno::EBADF)?;
    // SAFETY: the kernel just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Mount the detached tree `copy` on the directory open as `target`.
fn attach(copy: &OwnedFd, target: &OwnedFd) -> Result<(), Errno> {
    let flags = libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH;
    // SAFETY: two open descriptors with empty NUL-terminated paths (the
    // descriptors themselves) and flags; nothing is written to our memory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            copy.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            flags,
        )
    };
    if rc < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Hide a path: an empty read-only tmpfs over a directory, /dev/null over a file.
fn mask(path: &Path) -> Result<(), Errno> {
    if path.is_dir() {
        let tmpfs = Fs::Tmpfs.as_str();
        mount(
            Some(tmpfs),
            path,
            Some(tmpfs),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
    } else {
        mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    }
}

/// Bind a path onto itself with its submounts, then make the new mounts
/// (reopened: the descriptor still names the one below) read-only plus `flags`.
fn read_only(root: Option<&Root>, op: &Op, path: &Path, flags: MsFlags) -> Result<(), SpawnError> {
    let fail = |e, detail| SpawnError::new(op.step, Some(&op.shown), Some(e), detail);
    let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
    mount(Some(path), path, None::<&str>, bind, None::<&str>)
        .map_err(|e| fail(e, "bind onto itself"))?;
    let mounted = reopen(root, op)?;
    restrict(&fd_path(&mounted), true, flags, true).map_err(|e| fail(e, "make read-only"))
}

/// Apply read-only and nosuid/nodev/noexec to a mount, and with `recursive` to
/// every mount below it too (mount_setattr, Linux 5.12+), so a submount of a
/// read-only bind is read-only as well.
pub(super) fn restrict(
    target: &Path,
    readonly: bool,
    flags: MsFlags,
    recursive: bool,
) -> Result<(), Errno> {
    let path = CString::new(target.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let mount_attr = libc::mount_attr {
        attr_set: attr_bits(readonly, flags),
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let at_flags = if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: valid NUL-terminated path and a correctly sized, initialised mount_attr.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            at_flags as libc::c_uint,
            &mount_attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if rc == 0 {
        return Ok(());
    }
    match Errno::last() {
        // Older kernels: one remount, the submounts stay as they are.
        Errno::ENOSYS => remount_with(target, readonly, flags),
        e => Err(e),
    }
}

/// The `MOUNT_ATTR_*` bits for read-only and the `MS_NOSUID`/`NODEV`/`NOEXEC` flags.
fn attr_bits(readonly: bool, flags: MsFlags) -> u64 {
    [
        (readonly, libc::MOUNT_ATTR_RDONLY),
        (flags.contains(MsFlags::MS_NOSUID), libc::MOUNT_ATTR_NOSUID),
        (flags.contains(MsFlags::MS_NODEV), libc::MOUNT_ATTR_NODEV),
        (flags.contains(MsFlags::MS_NOEXEC), libc::MOUNT_ATTR_NOEXEC),
    ]
    .into_iter()
    .filter(|(set, _)| *set)
    .fold(0, |bits, (_, bit)| bits | bit)
}

fn remount_with(target: &Path, readonly: bool, flags: MsFlags) -> Result<(), Errno> {
    let mut f = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | locked_flags(target);
    f.set(MsFlags::MS_RDONLY, readonly);
    mount(None::<&str>, target, None::<&str>, f, None::<&str>)
}

/// nosuid/nodev/noexec already set on a mount (locked in a user namespace).
fn locked_flags(target: &Path) -> MsFlags {
    let mut f = MsFlags::empty();
    if let Ok(st) = nix::sys::statvfs::statvfs(target) {
        use nix::sys::statvfs::FsFlags;
        let flags = st.flags();
        f.set(MsFlags::MS_NOSUID, flags.contains(FsFlags::ST_NOSUID));
        f.set(MsFlags::MS_NODEV, flags.contains(FsFlags::ST_NODEV));
        f.set(MsFlags::MS_NOEXEC, flags.contains(FsFlags::ST_NOEXEC));
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_flags_become_mount_attr_bits() {
        let cases = [
            (false, MsFlags::empty(), 0),
            (true, MsFlags::empty(), libc::MOUNT_ATTR_RDONLY),
            (
                true,
                LOCKED_DOWN,
                libc::MOUNT_ATTR_RDONLY
                    | libc::MOUNT_ATTR_NOSUID
                    | libc::MOUNT_ATTR_NODEV
                    | libc::MOUNT_ATTR_NOEXEC,
            ),
            (
                false,
                MsFlags::MS_NOEXEC | MsFlags::MS_BIND,
                libc::MOUNT_ATTR_NOEXEC,
            ),
        ];
        for (readonly, flags, bits) in cases {
            assert_eq!(attr_bits(readonly, flags), bits, "{readonly} {flags:?}");
        }
    }
}
