//! The container's filesystem view, built inside its new mount namespace by the
//! container's first process before anything of the service runs: propagation made
//! private (or what the unit asks) before any mount, the root bound onto itself,
//! the unit's mounts in order with targets resolved inside the root, the default
//! masked and read-only paths, then `pivot_root` and the read-only root.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::unistd::{chdir, pivot_root};

use super::SpawnError;
use crate::unit::{MountKind, MountSpec, Propagation};

/// Paths a container must not read (kernel memory, keys, hardware details).
const MASKED_PATHS: &[&str] = &[
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
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];
/// Devices bound from the host into a minimal /dev.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// One mount to make, with whatever supd resolved for it (overlay upper/work dirs).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlannedMount {
    pub spec: MountSpec,
    /// For overlay: `(upperdir, workdir)` kept by supd under its state directory.
    pub overlay_dirs: Option<(PathBuf, PathBuf)>,
}

fn err(step: &str, path: &Path, e: Errno) -> SpawnError {
    SpawnError::new(step, Some(&path.to_string_lossy()), Some(e), "")
}

fn propagation_flag(p: Propagation) -> MsFlags {
    match p {
        Propagation::Private => MsFlags::MS_PRIVATE,
        Propagation::Slave => MsFlags::MS_SLAVE,
        Propagation::Shared => MsFlags::MS_SHARED,
        Propagation::Unbindable => MsFlags::MS_UNBINDABLE,
    }
}

/// Build the filesystem view. `rootfs` None keeps the host tree (privately).
pub fn setup(
    rootfs: Option<&Path>,
    root_propagation: Propagation,
    readonly_root: bool,
    mounts: &[PlannedMount],
) -> Result<(), SpawnError> {
    let root = Path::new("/");
    // Before any mount: nothing we do may reach the host (unless asked for `shared`).
    mount(
        None::<&str>,
        root,
        None::<&str>,
        MsFlags::MS_REC | propagation_flag(root_propagation),
        None::<&str>,
    )
    .map_err(|e| err("make / private", root, e))?;
    let root = match rootfs {
        Some(r) => {
            mount(
                Some(r),
                r,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| err("bind rootfs", r, e))?;
            r
        }
        None => root,
    };
    let mut fresh_proc = None;
    // Without a rootfs the targets are host paths: use them only if they exist, never
    // create directories on the host's filesystem.
    let may_create = rootfs.is_some();
    for m in mounts {
        let target = resolve_in_root(root, &m.spec.target);
        if !may_create && !target.exists() {
            return Err(SpawnError::new(
                "mount",
                Some(&m.spec.target.to_string_lossy()),
                Some(Errno::ENOENT),
                "target missing (only created inside a rootfs)",
            ));
        }
        mount_one(m, &target)?;
        if matches!(m.spec.kind, MountKind::Proc) && m.spec.target == Path::new("/proc") {
            fresh_proc = Some(target);
        }
    }
    if fresh_proc.is_some() {
        mask_paths(root)?;
    }
    if rootfs.is_some() {
        enter_root(root)?;
    }
    if readonly_root {
        remount_readonly(Path::new("/"), false)
            .map_err(|e| err("remount / read-only", Path::new("/"), e))?;
    }
    Ok(())
}

/// `pivot_root(".", ".")` then detach the old root stacked on top: the host tree is
/// gone from the container, and no directory for the old root is needed.
fn enter_root(root: &Path) -> Result<(), SpawnError> {
    chdir(root).map_err(|e| err("chdir rootfs", root, e))?;
    pivot_root(".", ".").map_err(|e| err("pivot_root", root, e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| err("detach old root", root, e))?;
    chdir("/").map_err(|e| err("chdir", Path::new("/"), e))
}

fn mount_one(m: &PlannedMount, target: &Path) -> Result<(), SpawnError> {
    let spec = &m.spec;
    let mut flags = MsFlags::empty();
    flags.set(MsFlags::MS_NOSUID, spec.nosuid);
    flags.set(MsFlags::MS_NODEV, spec.nodev);
    flags.set(MsFlags::MS_NOEXEC, spec.noexec);
    let step = |what: &str| format!("mount {what}");
    match &spec.kind {
        MountKind::Bind { source, recursive } => {
            create_target(target, source.is_dir())?;
            let mut bind = MsFlags::MS_BIND;
            bind.set(MsFlags::MS_REC, *recursive);
            mount(
                Some(source.as_path()),
                target,
                None::<&str>,
                bind,
                None::<&str>,
            )
            .map_err(|e| {
                SpawnError::new(
                    "bind mount",
                    Some(&format!(
                        "{} -> {}",
                        source.display(),
                        spec.target.display()
                    )),
                    Some(e),
                    "",
                )
            })?;
            if spec.readonly || !flags.is_empty() {
                restrict(target, spec.readonly, flags, *recursive)
                    .map_err(|e| err("remount bind", target, e))?;
            }
        }
        MountKind::Tmpfs { size, mode } => {
            create_target(target, true)?;
            let mut data = Vec::new();
            if let Some(s) = size {
                data.push(format!("size={s}"));
            }
            if let Some(m) = mode {
                data.push(format!("mode={m:o}"));
            }
            flags.set(MsFlags::MS_RDONLY, spec.readonly);
            mount(
                Some("tmpfs"),
                target,
                Some("tmpfs"),
                flags,
                Some(data.join(",").as_str()),
            )
            .map_err(|e| err(&step("tmpfs"), &spec.target, e))?;
        }
        MountKind::Proc => {
            create_target(target, true)?;
            let f = flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            mount(Some("proc"), target, Some("proc"), f, None::<&str>)
                .map_err(|e| err(&step("proc"), &spec.target, e))?;
        }
        MountKind::Sysfs => {
            create_target(target, true)?;
            mount_sysfs(target, flags).map_err(|e| err(&step("sysfs"), &spec.target, e))?;
        }
        MountKind::Dev => mount_dev(target)?,
        MountKind::Overlay { lower } => {
            create_target(target, true)?;
            let Some((upper, work)) = &m.overlay_dirs else {
                return Err(SpawnError::new(
                    "mount overlay",
                    Some(&spec.target.to_string_lossy()),
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
            flags.set(MsFlags::MS_RDONLY, spec.readonly);
            mount(
                Some("overlay"),
                target,
                Some("overlay"),
                flags,
                Some(data.as_str()),
            )
            .map_err(|e| err(&step("overlay"), &spec.target, e))?;
        }
    }
    if let Some(p) = spec.propagation {
        let mut f = propagation_flag(p);
        f.set(
            MsFlags::MS_REC,
            matches!(
                spec.kind,
                MountKind::Bind {
                    recursive: true,
                    ..
                }
            ),
        );
        mount(None::<&str>, target, None::<&str>, f, None::<&str>)
            .map_err(|e| err("set propagation", &spec.target, e))?;
    }
    Ok(())
}

/// sysfs read-only; where the kernel refuses a new sysfs (a user namespace that does
/// not own the network namespace), bind the host's /sys read-only instead.
fn mount_sysfs(target: &Path, flags: MsFlags) -> Result<(), Errno> {
    let f =
        flags | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    match mount(Some("sysfs"), target, Some("sysfs"), f, None::<&str>) {
        Err(Errno::EPERM) => {
            mount(
                Some("/sys"),
                target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )?;
            restrict(
                target,
                true,
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                true,
            )
        }
        other => other,
    }
}

/// A minimal /dev: a small tmpfs with the harmless devices bound from the host (a
/// user namespace may not mknod), a private devpts instance, shm and mqueue.
fn mount_dev(target: &Path) -> Result<(), SpawnError> {
    create_target(target, true)?;
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=755,size=65536k"),
    )
    .map_err(|e| err("mount /dev tmpfs", target, e))?;
    for dev in DEVICES {
        let host = Path::new("/dev").join(dev);
        if !host.exists() {
            continue;
        }
        let inside = target.join(dev);
        create_target(&inside, false)?;
        mount(
            Some(&host),
            &inside,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| err("bind device", &host, e))?;
    }
    let pts = target.join("pts");
    create_target(&pts, true)?;
    mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(|e| err("mount devpts", &pts, e))?;
    let shm = target.join("shm");
    create_target(&shm, true)?;
    mount(
        Some("shm"),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )
    .map_err(|e| err("mount /dev/shm", &shm, e))?;
    let mqueue = target.join("mqueue");
    create_target(&mqueue, true)?;
    // mqueue needs an IPC namespace of our own; without one, skip it rather than fail.
    match mount(
        Some("mqueue"),
        &mqueue,
        Some("mqueue"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    ) {
        Ok(()) | Err(Errno::EPERM) => {}
        Err(e) => return Err(err("mount mqueue", &mqueue, e)),
    }
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let path = target.join(link);
        match std::os::unix::fs::symlink(to, &path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(err(
                    "symlink",
                    &path,
                    Errno::from_raw(e.raw_os_error().unwrap_or(0)),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Hide the masked paths and make the kernel tunables read-only, inside `root`.
fn mask_paths(root: &Path) -> Result<(), SpawnError> {
    for p in MASKED_PATHS {
        let path = resolve_in_root(root, Path::new(p));
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let result = if meta.is_dir() {
            mount(
                Some("tmpfs"),
                &path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None::<&str>,
            )
        } else {
            mount(
                Some("/dev/null"),
                &path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        };
        result.map_err(|e| err("mask", Path::new(p), e))?;
    }
    for p in READONLY_PATHS {
        let path = resolve_in_root(root, Path::new(p));
        if !path.exists() {
            continue;
        }
        mount(
            Some(&path),
            &path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| err("bind read-only path", Path::new(p), e))?;
        restrict(
            &path,
            true,
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            true,
        )
        .map_err(|e| err("remount read-only", Path::new(p), e))?;
    }
    Ok(())
}

/// Apply read-only and nosuid/nodev/noexec to a bind mount, and with `recursive` to
/// every mount below it too (mount_setattr, Linux 5.12+), so a submount of a
/// read-only bind is read-only as well.
fn restrict(target: &Path, readonly: bool, flags: MsFlags, recursive: bool) -> Result<(), Errno> {
    let mut attr: u64 = 0;
    if readonly {
        attr |= libc::MOUNT_ATTR_RDONLY;
    }
    if flags.contains(MsFlags::MS_NOSUID) {
        attr |= libc::MOUNT_ATTR_NOSUID;
    }
    if flags.contains(MsFlags::MS_NODEV) {
        attr |= libc::MOUNT_ATTR_NODEV;
    }
    if flags.contains(MsFlags::MS_NOEXEC) {
        attr |= libc::MOUNT_ATTR_NOEXEC;
    }
    let path = CString::new(target.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let mount_attr = libc::mount_attr {
        attr_set: attr,
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

fn remount_with(target: &Path, readonly: bool, flags: MsFlags) -> Result<(), Errno> {
    let mut f = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | locked_flags(target);
    f.set(MsFlags::MS_RDONLY, readonly);
    mount(None::<&str>, target, None::<&str>, f, None::<&str>)
}

/// Make an existing mount read-only, keeping the flags the kernel would refuse to drop.
fn remount_readonly(target: &Path, recursive: bool) -> Result<(), Errno> {
    restrict(target, true, MsFlags::empty(), recursive)
}

/// nosuid/nodev/noexec already set on a mount (locked in a user namespace).
fn locked_flags(target: &Path) -> MsFlags {
    let mut f = MsFlags::empty();
    if let Ok(st) = nix::sys::statvfs::statvfs(target) {
        let flags = st.flags();
        use nix::sys::statvfs::FsFlags;
        f.set(MsFlags::MS_NOSUID, flags.contains(FsFlags::ST_NOSUID));
        f.set(MsFlags::MS_NODEV, flags.contains(FsFlags::ST_NODEV));
        f.set(MsFlags::MS_NOEXEC, flags.contains(FsFlags::ST_NOEXEC));
    }
    f
}

/// Create a missing mount target: a directory, or an empty file for a file bind.
fn create_target(target: &Path, dir: bool) -> Result<(), SpawnError> {
    if target.exists() {
        return Ok(());
    }
    let result = if dir {
        std::fs::create_dir_all(target)
    } else {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(target, e))?;
        }
        std::fs::File::create(target).map(drop)
    };
    result.map_err(|e| io(target, e))
}

fn io(path: &Path, e: std::io::Error) -> SpawnError {
    err(
        "create mount target",
        path,
        Errno::from_raw(e.raw_os_error().unwrap_or(0)),
    )
}

/// Where `path` (as the container will see it) lives on the host, following symlinks
/// as if `root` were `/`: an absolute link restarts at `root`, `..` never climbs
/// above it. So a symlink in an image cannot point a mount outside the image.
/// Components that do not exist yet are appended as they are.
pub fn resolve_in_root(root: &Path, path: &Path) -> PathBuf {
    let mut resolved = PathBuf::new(); // relative to root
    let mut pending: Vec<PathBuf> = path
        .components()
        .rev()
        .map(|c| PathBuf::from(c.as_os_str()))
        .collect();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        match Path::new(&part).components().next() {
            None | Some(Component::RootDir) | Some(Component::CurDir) => continue,
            Some(Component::ParentDir) => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let candidate = root.join(&resolved).join(&part);
        match std::fs::read_link(&candidate) {
            Ok(target) if hops < 40 => {
                hops += 1;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                pending.extend(
                    target
                        .components()
                        .rev()
                        .map(|c| PathBuf::from(c.as_os_str())),
                );
            }
            _ => resolved.push(&part),
        }
    }
    root.join(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_cannot_escape_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("real")).expect("mkdir");
        std::os::unix::fs::symlink("/etc", root.join("abs")).expect("symlink");
        std::os::unix::fs::symlink("../../../../etc", root.join("rel")).expect("symlink");
        std::os::unix::fs::symlink("real", root.join("inside")).expect("symlink");
        assert_eq!(
            resolve_in_root(root, Path::new("/abs/passwd")),
            root.join("etc/passwd")
        );
        assert_eq!(resolve_in_root(root, Path::new("/rel")), root.join("etc"));
        assert_eq!(
            resolve_in_root(root, Path::new("/inside/x")),
            root.join("real/x")
        );
        assert_eq!(resolve_in_root(root, Path::new("/../../x")), root.join("x"));
        assert_eq!(
            resolve_in_root(Path::new("/"), Path::new("/a/b")),
            PathBuf::from("/a/b")
        );
    }

    #[test]
    fn symlink_loops_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink("b", dir.path().join("a")).expect("symlink");
        std::os::unix::fs::symlink("a", dir.path().join("b")).expect("symlink");
        let r = resolve_in_root(dir.path(), Path::new("/a"));
        assert!(r.starts_with(dir.path()));
    }
}
