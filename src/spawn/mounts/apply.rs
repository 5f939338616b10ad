//! Performing a mount plan, in the container's first process inside its new mount
//! namespace. Each `Op` is one syscall on one target, except the few whose next
//! step depends on what the kernel says (sysfs refused, mount_setattr missing, a
//! masked path that is a file or absent) and the population of /dev.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::unistd::{chdir, pivot_root};

use super::plan::{Action, Missing, Op, Source, Target, shown_in_root};
use super::root::{Create, Root, fd_path};
use super::{Fs, LOCKED_DOWN};
use crate::spawn::{SpawnError, Step};

/// Devices bound from the host into a minimal /dev.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];
/// Filesystems inside /dev: directory, type, data.
const DEV_MOUNTS: &[(&str, Fs, Option<&str>)] = &[
    (
        "pts",
        Fs::Devpts,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    ),
    ("shm", Fs::Tmpfs, Some("mode=1777,size=65536k")),
    ("mqueue", Fs::Mqueue, None),
];
/// The usual links in /dev.
const DEV_LINKS: &[(&str, &str)] = &[
    ("ptmx", "pts/ptmx"),
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];

fn err(step: Step, path: &Path, e: Errno) -> SpawnError {
    SpawnError::new(step, Some(&path.to_string_lossy()), Some(e), "")
}

/// A target, open: the path to hand to syscalls, and the descriptor that path
/// goes through (kept open while the path is used).
struct Opened {
    path: PathBuf,
    _fd: Option<OwnedFd>,
}

/// Perform the operations in order; stop at the first failure.
pub fn run(ops: &[Op]) -> Result<(), SpawnError> {
    let mut root = None;
    for op in ops {
        let fail = |e: Errno| SpawnError::new(op.step, Some(&op.shown), Some(e), "");
        let Some(target) = open_target(root.as_ref(), op)? else {
            continue;
        };
        let at = target.path.as_path();
        match &op.action {
            Action::OpenRoot { may_create } => {
                root = Some(Root::open(at, *may_create).map_err(fail)?);
            }
            Action::Mount {
                source,
                flags,
                data,
            } => {
                let (source, fstype) = match source {
                    Source::Fs(fs) => (Path::new(fs.as_str()), Some(fs.as_str())),
                    Source::Bind(path) => (path.as_path(), None),
                };
                mount(Some(source), at, fstype, *flags, data.as_deref()).map_err(fail)?;
            }
            Action::Propagate(flags) => {
                mount(None::<&str>, at, None::<&str>, *flags, None::<&str>).map_err(fail)?;
            }
            Action::Restrict {
                readonly,
                flags,
                recursive,
            } => restrict(at, *readonly, *flags, *recursive).map_err(fail)?,
            Action::Sysfs(flags) => mount_sysfs(at, *flags).map_err(fail)?,
            Action::PopulateDev => populate_dev(at)?,
            Action::MaskPath => mask(at).map_err(fail)?,
            Action::ReadOnlyPath => read_only(root.as_ref(), op, at)?,
            Action::Chdir => chdir(at).map_err(fail)?,
            Action::PivotRoot => pivot_root(at, at).map_err(fail)?,
            Action::Detach => umount2(at, MntFlags::MNT_DETACH).map_err(fail)?,
        }
    }
    Ok(())
}

/// Open an operation's target; None when it is missing and may be skipped.
fn open_target(root: Option<&Root>, op: &Op) -> Result<Option<Opened>, SpawnError> {
    let (path, missing) = match &op.target {
        Target::Path(path) => {
            return Ok(Some(Opened {
                path: path.clone(),
                _fd: None,
            }));
        }
        Target::InRoot(path, missing) => (path, *missing),
    };
    let create = match (missing, &op.action) {
        (Missing::Fail | Missing::Skip, _) => Create::No,
        (Missing::Create(c), _) => c,
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
    match root.resolve(path, create) {
        Ok(fd) => Ok(Some(Opened {
            path: fd_path(&fd),
            _fd: Some(fd),
        })),
        Err(_) if missing == Missing::Skip => Ok(None),
        Err(e) => {
            let detail = if e == Errno::ENOENT && !root.may_create() {
                "target missing (only created inside a rootfs)"
            } else {
                ""
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

/// sysfs; where the kernel refuses a new one, bind the host's /sys read-only.
fn mount_sysfs(target: &Path, flags: MsFlags) -> Result<(), Errno> {
    let sysfs = Fs::Sysfs.as_str();
    match mount(Some(sysfs), target, Some(sysfs), flags, None::<&str>) {
        Err(Errno::EPERM) => {
            let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
            mount(Some("/sys"), target, None::<&str>, bind, None::<&str>)?;
            restrict(target, true, LOCKED_DOWN, true)
        }
        other => other,
    }
}

/// Fill a fresh /dev tmpfs (reached through its descriptor, so nothing but names
/// inside it is looked up): the harmless devices bound from the host (a user
/// namespace may not mknod), a private devpts instance, shm and mqueue, and the
/// usual links.
fn populate_dev(base: &Path) -> Result<(), SpawnError> {
    let at = |name: &str| base.join(name);
    let made = |step: Step, p: &Path, r: std::io::Result<()>| {
        r.map_err(|e| SpawnError::io(step, Some(&p.to_string_lossy()), &e, ""))
    };
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if !host.exists() {
            continue;
        }
        let created = std::fs::File::create(at(name)).map(drop);
        made(Step::CreateDeviceNode, &host, created)?;
        mount(
            Some(&host),
            &at(name),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| err(Step::BindDevice, &host, e))?;
    }
    for &(dir, fs, data) in DEV_MOUNTS {
        made(Step::Mkdir, &at(dir), std::fs::create_dir(at(dir)))?;
        // A pty is a device: devpts keeps dev.
        let flags = match fs {
            Fs::Devpts => MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            _ => LOCKED_DOWN,
        };
        let fstype = fs.as_str();
        match mount(Some(fstype), &at(dir), Some(fstype), flags, data) {
            // mqueue needs an IPC namespace of our own; without one, skip it.
            Err(Errno::EPERM) if fs == Fs::Mqueue => {}
            r => r.map_err(|e| err(Step::Mount(fs), Path::new(&format!("/dev/{dir}")), e))?,
        }
    }
    for &(link, to) in DEV_LINKS {
        let linked = std::os::unix::fs::symlink(to, at(link));
        made(Step::Symlink, &at(link), linked)?;
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

/// Bind a path onto itself, then make the new mount (reopened: the descriptor
/// still names the one below) read-only with all its submounts.
fn read_only(root: Option<&Root>, op: &Op, path: &Path) -> Result<(), SpawnError> {
    let shown = Path::new(&op.shown);
    let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
    mount(Some(path), path, None::<&str>, bind, None::<&str>)
        .map_err(|e| err(Step::BindReadOnlyPath, shown, e))?;
    let Target::InRoot(target, _) = &op.target else {
        return Err(err(Step::Reopen, shown, Errno::EINVAL));
    };
    let mounted = root
        .ok_or(Errno::EBADF)
        .and_then(|r| r.resolve(target, Create::No))
        .map_err(|e| err(Step::Reopen, shown, e))?;
    restrict(&fd_path(&mounted), true, LOCKED_DOWN, true)
        .map_err(|e| err(Step::RemountReadOnly, shown, e))
}

/// Apply read-only and nosuid/nodev/noexec to a mount, and with `recursive` to
/// every mount below it too (mount_setattr, Linux 5.12+), so a submount of a
/// read-only bind is read-only as well.
fn restrict(target: &Path, readonly: bool, flags: MsFlags, recursive: bool) -> Result<(), Errno> {
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
