//! Filling a fresh tmpfs the container gets: a private /dev (devices bound from
//! the host's, devpts, shm, mqueue, the usual links) and the cgroup view (each
//! hierarchy mounted fresh in its directory). Everything is reached through the
//! tmpfs's own descriptor, so only names inside it are looked up, and nothing
//! of the service runs yet that could race with it.

use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};

use super::apply::{err, restrict};
use super::cgroupfs::{CGROUP_ROOT, CgroupMount};
use super::root::fd_path;
use super::{Fs, LOCKED_DOWN};
use crate::spawn::{SpawnError, Step};

/// Devices bound from the host into a private /dev.
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];
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

fn made(step: Step, p: &Path, r: std::io::Result<()>) -> Result<(), SpawnError> {
    r.map_err(|e| SpawnError::io(step, Some(&p.to_string_lossy()), &e, ""))
}

/// Fill the fresh /dev tmpfs at `base`: the harmless devices and `devices` bound
/// from the host's /dev (`host`, held open since before anything covered it; a
/// user namespace may not mknod, and a bind is the host's very node), a private
/// devpts instance, shm, mqueue (`mqueue`: only with an IPC namespace of the
/// unit's), and the usual links.
pub fn populate_dev(
    base: &Path,
    host: Option<&OwnedFd>,
    devices: &[PathBuf],
    mqueue: bool,
) -> Result<(), SpawnError> {
    let Some(host) = host else {
        let detail = "the host's /dev was not held open (a bug in the mount plan)";
        return Err(SpawnError::new(Step::BindDevice, None, None, detail));
    };
    let host_dir = fd_path(host);
    for name in DEVICES {
        if host_dir.join(name).exists() {
            bind_device(base, &host_dir, Path::new(name))?;
        }
    }
    for dev in devices {
        let below = dev
            .strip_prefix("/dev")
            .ok()
            .filter(|rel| rel.components().all(|c| matches!(c, Component::Normal(_))))
            .filter(|rel| !rel.as_os_str().is_empty());
        let Some(rel) = below else {
            let detail = "a device path must name a file below /dev";
            let shown = dev.to_string_lossy();
            return Err(SpawnError::new(
                Step::BindDevice,
                Some(&shown),
                Some(Errno::EINVAL),
                detail,
            ));
        };
        // Declared twice, or one of the defaults: it is there already.
        if base.join(rel).symlink_metadata().is_err() {
            bind_device(base, &host_dir, rel)?;
        }
    }
    let at = |name: &str| base.join(name);
    for &(dir, fs, data) in DEV_MOUNTS {
        if fs == Fs::Mqueue && !mqueue {
            continue;
        }
        made(Step::Mkdir, &at(dir), std::fs::create_dir(at(dir)))?;
        // A pty is a device: devpts keeps dev.
        let flags = match fs {
            Fs::Devpts => MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            _ => LOCKED_DOWN,
        };
        let fstype = fs.as_str();
        mount(Some(fstype), &at(dir), Some(fstype), flags, data)
            .map_err(|e| err(Step::Mount(fs), Path::new(&format!("/dev/{dir}")), e))?;
    }
    for &(link, to) in DEV_LINKS {
        let linked = std::os::unix::fs::symlink(to, at(link));
        made(Step::Symlink, &at(link), linked)?;
    }
    Ok(())
}

/// Bind the host's `/dev/<rel>` onto a new file (or directory) of the same name
/// in the private /dev at `base`.
fn bind_device(base: &Path, host_dir: &Path, rel: &Path) -> Result<(), SpawnError> {
    let shown = Path::new("/dev").join(rel);
    let source = host_dir.join(rel);
    let target = base.join(rel);
    let shown_str = shown.to_string_lossy();
    let meta = std::fs::metadata(&source)
        .map_err(|e| SpawnError::io(Step::BindDevice, Some(&shown_str), &e, "not on the host"))?;
    if let Some(parent) = target.parent() {
        made(Step::Mkdir, &shown, std::fs::create_dir_all(parent))?;
    }
    let created = if meta.is_dir() {
        std::fs::create_dir(&target)
    } else {
        std::fs::File::create(&target).map(drop)
    };
    made(Step::CreateDeviceNode, &shown, created)?;
    let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
    mount(Some(&source), &target, None::<&str>, bind, None::<&str>)
        .map_err(|e| err(Step::BindDevice, &shown, e))
}

/// The unit's own view of the cgroup hierarchies at `at`, mounted fresh inside
/// its cgroup namespace (so each is rooted at the unit's cgroup), then made
/// read-only with one recursive `mount_setattr` (a flag of these mounts only, not
/// of the hierarchies' superblocks, which the host shares). On v1 and hybrid
/// hosts: a tmpfs with each hierarchy in its directory and the links of joined
/// controllers. On pure v2: one cgroup2 mount, made on a scratch tmpfs and then
/// moved onto `at`, because mount(2) refuses a second mount of a file system on
/// the root of a mount of the same one (EBUSY), and with the host's tree `at` is
/// the host's cgroup2 mount; a move has no such rule. Where the kernel refuses
/// a hierarchy (EPERM or EACCES: an older kernel in a user namespace), the view
/// is taken down again and what is below stays: the host's hierarchies, made
/// read-only before by the plan. `reopen` opens `at` again, to reach what was
/// just mounted on it.
pub fn cgroup_view(
    at: &Path,
    mounts: &[CgroupMount],
    readonly: bool,
    reopen: impl Fn() -> Result<OwnedFd, SpawnError>,
) -> Result<(), SpawnError> {
    let refused = |e: Errno| matches!(e, Errno::EPERM | Errno::EACCES);
    let shown = |dir: &str| Path::new(CGROUP_ROOT).join(dir);
    let tmpfs = Fs::Tmpfs.as_str();
    mount(
        Some(tmpfs),
        at,
        Some(tmpfs),
        LOCKED_DOWN,
        Some("mode=755,size=64k"),
    )
    .map_err(|e| err(Step::Mount(Fs::Tmpfs), &shown(""), e))?;
    let scratch = reopen()?;
    let base = fd_path(&scratch);
    // Pure v2: the one hierarchy goes to a scratch directory first.
    let top_only = matches!(mounts, [only] if only.dir.is_empty());
    for m in mounts {
        let dir = if m.dir.is_empty() { V2_SCRATCH } else { &m.dir };
        let path = base.join(dir);
        made(Step::Mkdir, &shown(dir), std::fs::create_dir(&path))?;
        let fstype = m.fs.as_str();
        let data = (!m.options.is_empty()).then_some(m.options.as_str());
        match mount(Some(fstype), &path, Some(fstype), LOCKED_DOWN, data) {
            Err(e) if refused(e) => {
                return umount2(&base, MntFlags::MNT_DETACH)
                    .map_err(|e| err(Step::ProtectCgroups, &shown(""), e));
            }
            r => r.map_err(|e| err(Step::Mount(m.fs), &shown(&m.dir), e))?,
        }
        for link in &m.links {
            let linked = std::os::unix::fs::symlink(&m.dir, base.join(link));
            made(Step::Symlink, &shown(link), linked)?;
        }
    }
    if top_only {
        // Onto the scratch tmpfs's root, which stays below it, empty and unseen.
        let moved = MsFlags::MS_MOVE;
        mount(
            Some(&base.join(V2_SCRATCH)),
            &base,
            None::<&str>,
            moved,
            None::<&str>,
        )
        .map_err(|e| err(Step::ProtectCgroups, &shown(""), e))?;
    }
    let view = if top_only { reopen()? } else { scratch };
    restrict(&fd_path(&view), readonly, LOCKED_DOWN, true)
        .map_err(|e| err(Step::ProtectCgroups, &shown(""), e))
}

/// Where a pure v2 view is mounted before it is moved onto /sys/fs/cgroup.
const V2_SCRATCH: &str = "cgroup2";
