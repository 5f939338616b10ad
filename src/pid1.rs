//! supd as PID 1: the duties of an init before and after supervising.
//!
//! Before: mount the API filesystems that are missing, move the system off the
//! initramfs (where `pivot_root` is refused, so containers with a rootfs could not
//! start) onto a tmpfs and re-exec there, set the hostname, and have Ctrl-Alt-Del
//! delivered as SIGINT. After the units are stopped: terminate and kill every
//! remaining process, reap, sync, unmount, sync, and `reboot(2)`. PID 1 never
//! returns: if even that fails it waits forever rather than panic the kernel.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::reboot::RebootMode;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// What the machine does once supd is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halt {
    Poweroff,
    Reboot,
}

/// Where the system is copied when it runs from the initramfs.
const NEW_ROOT: &str = "/.sup-root";
/// How long remaining processes get between SIGTERM and SIGKILL at shutdown.
pub const GRACE: Duration = Duration::from_secs(5);

/// The API filesystems an init provides: (source, target, type, flags, data).
const API_MOUNTS: &[(&str, &str, &str, u64, &str)] = &[
    (
        "proc",
        "/proc",
        "proc",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        "",
    ),
    (
        "sysfs",
        "/sys",
        "sysfs",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        "",
    ),
    ("devtmpfs", "/dev", "devtmpfs", libc::MS_NOSUID, "mode=0755"),
    (
        "devpts",
        "/dev/pts",
        "devpts",
        libc::MS_NOSUID | libc::MS_NOEXEC,
        "gid=5,mode=0620,ptmxmode=0666",
    ),
    (
        "tmpfs",
        "/dev/shm",
        "tmpfs",
        libc::MS_NOSUID | libc::MS_NODEV,
        "mode=1777",
    ),
    (
        "tmpfs",
        "/run",
        "tmpfs",
        libc::MS_NOSUID | libc::MS_NODEV,
        "mode=0755",
    ),
    (
        "cgroup2",
        "/sys/fs/cgroup",
        "cgroup2",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        "",
    ),
];

pub fn is_pid1() -> bool {
    std::process::id() == 1
}

/// Everything PID 1 does before the supervisor starts. Failures are logged, not
/// fatal: a half-equipped system that supervises is better than a kernel panic.
pub fn early_boot(hostname: Option<&str>) {
    if let Err(e) = leave_initramfs() {
        eprintln!("supd: cannot move off the initramfs ({e}); containers with a rootfs will fail");
    }
    mount_api_filesystems();
    if let Some(name) = hostname
        && let Err(e) = nix::unistd::sethostname(name)
    {
        eprintln!("supd: sethostname {name}: {e}");
    }
    if let Err(e) = nix::sys::reboot::set_cad_enabled(false) {
        eprintln!("supd: cannot route Ctrl-Alt-Del to SIGINT: {e}");
    }
}

fn mount_api_filesystems() {
    for (source, target, fstype, flags, data) in API_MOUNTS {
        let _ = std::fs::create_dir_all(target);
        let data = (!data.is_empty()).then_some(*data);
        match mount(
            Some(*source),
            *target,
            Some(*fstype),
            MsFlags::from_bits_truncate(*flags),
            data,
        ) {
            Ok(()) | Err(Errno::EBUSY) => {}
            Err(e) => eprintln!("supd: mount {fstype} on {target}: {e}"),
        }
    }
}

/// The initramfs (`rootfs`) cannot be pivoted away from, so copy it onto a tmpfs,
/// move that over `/` and re-exec supd there (what switch_root does). Returns only
/// when there is nothing to do or on failure.
fn leave_initramfs() -> Result<(), String> {
    if Path::new(NEW_ROOT).exists() || !is_rootfs() {
        return Ok(());
    }
    let exe = std::fs::read_link("/proc/self/exe")
        .or_else(|_| std::env::current_exe())
        .map_err(|e| format!("own path: {e}"))?;
    std::fs::create_dir(NEW_ROOT).map_err(|e| format!("mkdir {NEW_ROOT}: {e}"))?;
    mount(
        Some("tmpfs"),
        NEW_ROOT,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=0755"),
    )
    .map_err(|e| format!("mount tmpfs: {e}"))?;
    copy_tree(Path::new("/"), Path::new(NEW_ROOT)).map_err(|e| format!("copy: {e}"))?;
    std::env::set_current_dir(NEW_ROOT).map_err(|e| format!("chdir: {e}"))?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .map_err(|e| format!("move to /: {e}"))?;
    nix::unistd::chroot(".").map_err(|e| format!("chroot: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
    // The old initramfs stays in memory (it cannot be unmounted); its files are
    // small. Start over as PID 1 on the new root, same arguments.
    let args: Vec<CString> = std::env::args_os()
        .filter_map(|a| CString::new(a.as_bytes()).ok())
        .collect();
    let path = CString::new(exe.as_os_str().as_bytes()).map_err(|_| "exe path".to_string())?;
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| CString::new([k.as_bytes(), b"=", v.as_bytes()].concat()).ok())
        .collect();
    let e = nix::unistd::execve(&path, &args, &env).err();
    Err(format!("re-exec {}: {e:?}", exe.display()))
}

/// `/` is the kernel's initial rootfs (it has no parent mount to pivot from).
fn is_rootfs() -> bool {
    // Before /proc is mounted, mountinfo is not readable: mount it to look.
    let _ = std::fs::create_dir_all("/proc");
    let _ = mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::empty(),
        None::<&str>,
    );
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let rootfs = info.lines().any(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        f.get(4) == Some(&"/") && l.contains(" - rootfs ")
    });
    // /proc stays mounted: the move needs /proc/self/exe; the copy skips it.
    rootfs
}

/// Copy a directory tree (files, directories, symlinks, modes) without crossing
/// into other mounts or the new root itself.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let root_dev = std::fs::metadata(from)?.dev();
    let mut stack = vec![(from.to_path_buf(), to.to_path_buf())];
    while let Some((src, dst)) = stack.pop() {
        for entry in std::fs::read_dir(&src)? {
            let entry = entry?;
            let path = entry.path();
            if path == Path::new(NEW_ROOT) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path)?;
            let target = dst.join(entry.file_name());
            if meta.file_type().is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(&path)?, &target)?;
            } else if meta.is_dir() {
                std::fs::create_dir(&target)?;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(meta.mode()))?;
                if meta.dev() == root_dev {
                    stack.push((path, target));
                }
            } else if meta.is_file() {
                std::fs::copy(&path, &target)?;
            }
        }
    }
    Ok(())
}

/// After the units are stopped: end every remaining process, clean up, halt.
pub fn final_shutdown(halt: Halt, grace: Duration) -> ! {
    eprintln!("supd: sending SIGTERM to remaining processes");
    let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
    let _ = kill(Pid::from_raw(-1), Signal::SIGCONT);
    if !reap_until_none(Instant::now() + grace) {
        eprintln!("supd: sending SIGKILL to remaining processes");
        let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
        reap_until_none(Instant::now() + Duration::from_secs(5));
    }
    nix::unistd::sync();
    unmount_all();
    nix::unistd::sync();
    let mode = match halt {
        Halt::Poweroff => RebootMode::RB_POWER_OFF,
        Halt::Reboot => RebootMode::RB_AUTOBOOT,
    };
    eprintln!(
        "supd: {}",
        if halt == Halt::Poweroff {
            "powering off"
        } else {
            "rebooting"
        }
    );
    let e = nix::sys::reboot::reboot(mode).err();
    eprintln!("supd: reboot(2) failed: {e:?}; halting here");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Reap children until none is left (true) or the deadline passes (false).
fn reap_until_none(deadline: Instant) -> bool {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Err(Errno::ECHILD) => return true,
            Ok(WaitStatus::StillAlive) => {
                if Instant::now() >= deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {}
        }
    }
}

/// Unmount everything but `/` in reverse mount order; what refuses becomes
/// read-only instead.
fn unmount_all() {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| *p != "/")
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .collect();
    points.reverse();
    for p in points.iter().chain(std::iter::once(&PathBuf::from("/"))) {
        if p != Path::new("/") && umount2(p, MntFlags::empty()).is_ok() {
            continue;
        }
        let _ = mount(
            None::<&str>,
            p,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        );
    }
}
