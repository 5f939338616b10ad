//! The container's filesystem view, built inside its new mount namespace by the
//! container's first process before anything of the service runs: `/` made
//! private (or slave) before any mount, the root bound onto itself, the unit's
//! mounts in order, the default masked and read-only paths, then `pivot_root`, the
//! read-only root and the requested root propagation.
//!
//! Every target is opened with `openat2(RESOLVE_IN_ROOT)`, so the kernel resolves
//! symlinks as if the root were `/` (no lookup can leave it, however many links,
//! and nothing can swap a component between check and use), missing components are
//! created with `mkdirat` below an already-resolved parent, and the mount is made
//! on `/proc/self/fd/N` of that descriptor.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::unistd::{chdir, pivot_root};

use super::{SpawnError, Step};
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

fn err(step: Step, path: &Path, e: Errno) -> SpawnError {
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

/// What to create when a target is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Create {
    No,
    Dir,
    File,
}

/// The root everything is resolved in, as an open directory.
struct Root {
    fd: OwnedFd,
    /// Missing targets may be created (only inside a rootfs, never on the host).
    may_create: bool,
}

/// The magic-link path through which a syscall that takes a path reaches `fd`.
fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn openat2(dirfd: RawFd, path: &Path, flags: libc::c_int, resolve: u64) -> Result<OwnedFd, Errno> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: open_how is plain data; all-zero is its documented "no options" value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    // SAFETY: valid NUL-terminated path and a correctly sized, initialised open_how.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            c.as_ptr(),
            &how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if rc < 0 {
        return Err(Errno::last());
    }
    // SAFETY: openat2 returned a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as RawFd) })
}

impl Root {
    fn open(path: &Path, may_create: bool) -> Result<Root, SpawnError> {
        let fd = openat2(libc::AT_FDCWD, path, libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(|e| err(Step::OpenRoot, path, e))?;
        Ok(Root { fd, may_create })
    }

    /// Open `path` (as the container sees it) inside the root, creating what is
    /// missing when allowed.
    fn resolve(&self, path: &Path, create: Create) -> Result<OwnedFd, Errno> {
        let resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
        let relative = relative(path);
        match openat2(self.fd.as_raw_fd(), &relative, libc::O_PATH, resolve) {
            Err(Errno::ENOENT) if create != Create::No && self.may_create => {}
            other => return other,
        }
        // Walk down, creating each missing component below its resolved parent. A
        // dangling symlink is followed by hand (inside the root, at most 40 times),
        // so its target is created inside the root too.
        let mut pending: std::collections::VecDeque<std::ffi::OsString> =
            relative.iter().map(|p| p.to_os_string()).collect();
        let mut prefix = PathBuf::new();
        let mut hops = 0;
        while let Some(part) = pending.pop_front() {
            if part == ".." {
                prefix.pop();
                continue;
            }
            let candidate = prefix.join(&part);
            if openat2(self.fd.as_raw_fd(), &candidate, libc::O_PATH, resolve).is_ok() {
                prefix = candidate;
                continue;
            }
            let parent = openat2(
                self.fd.as_raw_fd(),
                &as_dir(&prefix),
                libc::O_PATH | libc::O_DIRECTORY,
                resolve,
            )?;
            if let Ok(link) = nix::fcntl::readlinkat(&parent, part.as_os_str()) {
                hops += 1;
                if hops > 40 {
                    return Err(Errno::ELOOP);
                }
                let link = PathBuf::from(link);
                if link.is_absolute() {
                    prefix = PathBuf::new();
                }
                for (k, c) in self::relative(&link).iter().enumerate() {
                    pending.insert(k, c.to_os_string());
                }
                continue;
            }
            let name = CString::new(part.as_bytes()).map_err(|_| Errno::EINVAL)?;
            let file = pending.is_empty() && create == Create::File;
            // SAFETY: plain *at syscalls relative to a descriptor we own; O_NOFOLLOW
            // and mkdirat never follow a symlink in the last component.
            let rc = unsafe {
                if file {
                    let fd = libc::openat(
                        parent.as_raw_fd(),
                        name.as_ptr(),
                        libc::O_CREAT
                            | libc::O_EXCL
                            | libc::O_NOFOLLOW
                            | libc::O_WRONLY
                            | libc::O_CLOEXEC,
                        0o644,
                    );
                    if fd >= 0 {
                        libc::close(fd);
                    }
                    fd.min(0)
                } else {
                    libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o755)
                }
            };
            if rc < 0 && Errno::last() != Errno::EEXIST {
                return Err(Errno::last());
            }
            prefix = candidate;
        }
        openat2(self.fd.as_raw_fd(), &as_dir(&prefix), libc::O_PATH, resolve)
    }
}

fn as_dir(p: &Path) -> PathBuf {
    if p.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        p.to_path_buf()
    }
}

/// `/a/b` -> `a/b` (`.` for `/`), dropping `.` components.
fn relative(path: &Path) -> PathBuf {
    let rel: PathBuf = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

/// Build the filesystem view. `rootfs` None keeps the host tree (privately).
pub fn setup(
    rootfs: Option<&Path>,
    root_propagation: Propagation,
    readonly_root: bool,
    mounts: &[PlannedMount],
) -> Result<(), SpawnError> {
    let slash = Path::new("/");
    // Before any mount: nothing we do may reach the host. A `slave` root still
    // receives the host's mounts; `shared` and `unbindable` are applied at the end
    // (pivot_root refuses a shared root, and an unbindable one cannot be bound).
    let first = if root_propagation == Propagation::Slave {
        MsFlags::MS_SLAVE
    } else {
        MsFlags::MS_PRIVATE
    };
    mount(
        None::<&str>,
        slash,
        None::<&str>,
        MsFlags::MS_REC | first,
        None::<&str>,
    )
    .map_err(|e| err(Step::MakeRootPrivate, slash, e))?;
    if let Some(r) = rootfs {
        mount(
            Some(r),
            r,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| err(Step::BindRootfs, r, e))?;
    }
    let root = Root::open(rootfs.unwrap_or(slash), rootfs.is_some())?;
    let mut fresh_proc = false;
    for m in mounts {
        mount_one(&root, m)?;
        fresh_proc |= matches!(m.spec.kind, MountKind::Proc) && m.spec.target == Path::new("/proc");
    }
    if fresh_proc {
        mask_paths(&root)?;
    }
    if let Some(r) = rootfs {
        enter_root(r)?;
    }
    if readonly_root {
        restrict(Path::new("/"), true, MsFlags::empty(), false)
            .map_err(|e| err(Step::RemountRootReadOnly, slash, e))?;
    }
    if matches!(
        root_propagation,
        Propagation::Shared | Propagation::Unbindable
    ) {
        mount(
            None::<&str>,
            slash,
            None::<&str>,
            MsFlags::MS_REC | propagation_flag(root_propagation),
            None::<&str>,
        )
        .map_err(|e| err(Step::SetRootPropagation, slash, e))?;
    }
    Ok(())
}

/// `pivot_root(".", ".")` then detach the old root stacked on top: the host tree is
/// gone from the container, and no directory for the old root is needed.
fn enter_root(root: &Path) -> Result<(), SpawnError> {
    chdir(root).map_err(|e| err(Step::ChdirRootfs, root, e))?;
    pivot_root(".", ".").map_err(|e| err(Step::PivotRoot, root, e))?;
    // The old root may be shared with the host: never let its unmount propagate.
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| err(Step::MakeOldRootSlave, root, e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| err(Step::DetachOldRoot, root, e))?;
    chdir("/").map_err(|e| err(Step::Chdir, Path::new("/"), e))
}

/// Open a mount target inside the root, with an error that names it.
fn target(
    root: &Path,
    spec_target: &Path,
    r: &Root,
    create: Create,
) -> Result<OwnedFd, SpawnError> {
    r.resolve(spec_target, create).map_err(|e| {
        let detail = if e == Errno::ENOENT && !r.may_create {
            "target missing (only created inside a rootfs)"
        } else {
            ""
        };
        SpawnError::new(
            Step::MountTarget,
            Some(&root.join(relative(spec_target)).to_string_lossy()),
            Some(e),
            detail,
        )
    })
}

fn mount_one(root: &Root, m: &PlannedMount) -> Result<(), SpawnError> {
    let spec = &m.spec;
    let shown = &spec.target;
    let mut flags = MsFlags::empty();
    flags.set(MsFlags::MS_NOSUID, spec.nosuid);
    flags.set(MsFlags::MS_NODEV, spec.nodev);
    flags.set(MsFlags::MS_NOEXEC, spec.noexec);
    match &spec.kind {
        MountKind::Bind { source, recursive } => {
            let create = if source.is_dir() {
                Create::Dir
            } else {
                Create::File
            };
            let fd = target(Path::new("/"), shown, root, create)?;
            let mut bind = MsFlags::MS_BIND;
            bind.set(MsFlags::MS_REC, *recursive);
            mount(
                Some(source.as_path()),
                &fd_path(&fd),
                None::<&str>,
                bind,
                None::<&str>,
            )
            .map_err(|e| {
                SpawnError::new(
                    Step::BindMount,
                    Some(&format!("{} -> {}", source.display(), shown.display())),
                    Some(e),
                    "",
                )
            })?;
            if spec.readonly || !flags.is_empty() {
                let mounted = target(Path::new("/"), shown, root, Create::No)?;
                restrict(&fd_path(&mounted), spec.readonly, flags, *recursive)
                    .map_err(|e| err(Step::RemountBind, shown, e))?;
            }
        }
        MountKind::Tmpfs { size, mode } => {
            let fd = target(Path::new("/"), shown, root, Create::Dir)?;
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
                &fd_path(&fd),
                Some("tmpfs"),
                flags,
                Some(data.join(",").as_str()),
            )
            .map_err(|e| err(Step::Mount(Fs::Tmpfs), shown, e))?;
        }
        MountKind::Proc => {
            let fd = target(Path::new("/"), shown, root, Create::Dir)?;
            let f = flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            mount(Some("proc"), &fd_path(&fd), Some("proc"), f, None::<&str>)
                .map_err(|e| err(Step::Mount(Fs::Proc), shown, e))?;
        }
        MountKind::Sysfs => {
            let fd = target(Path::new("/"), shown, root, Create::Dir)?;
            mount_sysfs(&fd_path(&fd), flags).map_err(|e| err(Step::Mount(Fs::Sysfs), shown, e))?;
        }
        MountKind::Dev => {
            let fd = target(Path::new("/"), shown, root, Create::Dir)?;
            mount(
                Some("tmpfs"),
                &fd_path(&fd),
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
                Some("mode=755,size=65536k"),
            )
            .map_err(|e| err(Step::MountDev, shown, e))?;
            // Reopen: the descriptor above is the directory now covered by the tmpfs.
            let dev = target(Path::new("/"), shown, root, Create::No)?;
            populate_dev(&dev)?;
        }
        MountKind::Overlay { lower } => {
            let fd = target(Path::new("/"), shown, root, Create::Dir)?;
            let Some((upper, work)) = &m.overlay_dirs else {
                return Err(SpawnError::new(
                    Step::Mount(Fs::Overlay),
                    Some(&shown.to_string_lossy()),
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
                &fd_path(&fd),
                Some("overlay"),
                flags,
                Some(data.as_str()),
            )
            .map_err(|e| err(Step::Mount(Fs::Overlay), shown, e))?;
        }
    }
    if let Some(p) = spec.propagation {
        let mounted = target(Path::new("/"), shown, root, Create::No)?;
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
        mount(
            None::<&str>,
            &fd_path(&mounted),
            None::<&str>,
            f,
            None::<&str>,
        )
        .map_err(|e| err(Step::SetPropagation, shown, e))?;
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

/// Fill a fresh /dev tmpfs (open as `dev`, so nothing but names inside it is looked
/// up): the harmless devices bound from the host (a user namespace may not mknod),
/// a private devpts instance, shm and mqueue, and the usual links.
fn populate_dev(dev: &OwnedFd) -> Result<(), SpawnError> {
    let base = fd_path(dev);
    let at = |name: &str| base.join(name);
    let made = |step: Step, p: &Path, r: std::io::Result<()>| {
        r.map_err(|e| err(step, p, Errno::from_raw(e.raw_os_error().unwrap_or(0))))
    };
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if !host.exists() {
            continue;
        }
        made(
            Step::CreateDeviceNode,
            &host,
            std::fs::File::create(at(name)).map(drop),
        )?;
        mount(
            Some(&host),
            &at(name),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| err(Step::BindDevice, &host, e))?;
    }
    let nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    for (dir, fs, data) in [
        (
            "pts",
            Fs::Devpts,
            Some("newinstance,ptmxmode=0666,mode=0620"),
        ),
        ("shm", Fs::Tmpfs, Some("mode=1777,size=65536k")),
        ("mqueue", Fs::Mqueue, None),
    ] {
        let fstype = fs.as_str();
        made(Step::Mkdir, &at(dir), std::fs::create_dir(at(dir)))?;
        let flags = if dir == "pts" {
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC
        } else {
            nodev
        };
        match mount(Some(fstype), &at(dir), Some(fstype), flags, data) {
            // mqueue needs an IPC namespace of our own; without one, skip it.
            Err(Errno::EPERM) if dir == "mqueue" => {}
            r => r.map_err(|e| err(Step::Mount(fs), Path::new(&format!("/dev/{dir}")), e))?,
        }
    }
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        made(
            Step::Symlink,
            &at(link),
            std::os::unix::fs::symlink(to, at(link)),
        )?;
    }
    Ok(())
}

/// Hide the masked paths and make the kernel tunables read-only, inside the root.
fn mask_paths(root: &Root) -> Result<(), SpawnError> {
    for p in MASKED_PATHS {
        let Ok(fd) = root.resolve(Path::new(p), Create::No) else {
            continue;
        };
        let path = fd_path(&fd);
        let result = if path.is_dir() {
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
        result.map_err(|e| err(Step::Mask, Path::new(p), e))?;
    }
    for p in READONLY_PATHS {
        let Ok(fd) = root.resolve(Path::new(p), Create::No) else {
            continue;
        };
        let path = fd_path(&fd);
        mount(
            Some(&path),
            &path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| err(Step::BindReadOnlyPath, Path::new(p), e))?;
        let mounted = root
            .resolve(Path::new(p), Create::No)
            .map_err(|e| err(Step::Reopen, Path::new(p), e))?;
        restrict(
            &fd_path(&mounted),
            true,
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            true,
        )
        .map_err(|e| err(Step::RemountReadOnly, Path::new(p), e))?;
    }
    Ok(())
}

/// Apply read-only and nosuid/nodev/noexec to a mount, and with `recursive` to
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

    fn resolved(root: &Root, p: &str, create: Create) -> Result<PathBuf, Errno> {
        let fd = root.resolve(Path::new(p), create)?;
        std::fs::read_link(fd_path(&fd)).map_err(|_| Errno::EIO)
    }

    #[test]
    fn symlinks_resolve_inside_the_root_and_creation_stays_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path().canonicalize().expect("canonical");
        let rootdir = base.join("root");
        std::fs::create_dir_all(rootdir.join("real")).expect("mkdir");
        let outside = base.join("outside");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::os::unix::fs::symlink(&outside, rootdir.join("abs")).expect("symlink");
        std::os::unix::fs::symlink("../../../../outside", rootdir.join("rel")).expect("symlink");
        std::os::unix::fs::symlink("real", rootdir.join("inside")).expect("symlink");
        // A chain longer than the kernel's 40 links must fail, not escape.
        std::os::unix::fs::symlink(&outside, rootdir.join("l40")).expect("symlink");
        for i in (0..40).rev() {
            std::os::unix::fs::symlink(format!("l{}", i + 1), rootdir.join(format!("l{i}")))
                .expect("symlink");
        }
        let root = Root::open(&rootdir, true).expect("root");
        assert_eq!(
            resolved(&root, "/abs/x", Create::Dir).expect("abs"),
            rootdir
                .join(outside.strip_prefix("/").expect("abs"))
                .join("x")
        );
        assert_eq!(
            resolved(&root, "/inside/y", Create::Dir).expect("inside"),
            rootdir.join("real/y")
        );
        assert!(
            resolved(&root, "/rel", Create::No).is_err()
                || resolved(&root, "/rel", Create::No)
                    .expect("rel")
                    .starts_with(&rootdir)
        );
        assert!(resolved(&root, "/l0/made", Create::Dir).is_err());
        assert!(
            std::fs::read_dir(&outside)
                .expect("outside")
                .next()
                .is_none(),
            "nothing created outside the root"
        );
        let file = resolved(&root, "/etc/hosts", Create::File).expect("file");
        assert!(file.is_file());
    }

    #[test]
    fn nothing_is_created_without_permission() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = Root::open(dir.path(), false).expect("root");
        assert_eq!(
            root.resolve(Path::new("/missing/dir"), Create::Dir).err(),
            Some(Errno::ENOENT)
        );
        assert!(!dir.path().join("missing").exists());
    }
}
