//! The file system under the driver: the kernel's cgroupfs, or in the unit tests a
//! model of it on a temporary directory (`fake.rs`). `Files` adds what every
//! step needs on top: the error context, and the tolerance the driver relies on
//! (a directory that already exists, or is already gone, is fine).

use std::io::{self, ErrorKind, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::CgroupError;
use super::bpf::Insn;
use super::bpf::sys::{self, BpfError};

/// The kernel operations the driver uses.
pub trait CgroupFs: std::fmt::Debug + Send + Sync {
    /// Create a cgroup; the kernel fills it with the interface files.
    fn mkdir(&self, dir: &Path) -> io::Result<()>;
    /// Remove a cgroup. The kernel allows it with the interface files in place
    /// and refuses (EBUSY) while it has child cgroups or processes.
    fn rmdir(&self, dir: &Path) -> io::Result<()>;
    fn read(&self, file: &Path) -> io::Result<String>;
    /// A handle on the directory `dir` to open files below it with (`openat`),
    /// which spares the kernel walking the whole path for each; None where there
    /// is none (the tests' model), and callers then read by path.
    fn open_dir(&self, dir: &Path) -> Option<OwnedFd> {
        let _ = dir;
        None
    }
    /// Write an interface file, which must exist: cgroupfs files cannot be created.
    fn write(&self, file: &Path, value: &str) -> io::Result<()>;
    fn exists(&self, path: &Path) -> bool;
    /// The names of the child cgroups (subdirectories) of `dir`.
    fn children(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Send `signal` to `pid` if it is still a member of the cgroup: `member`
    /// judges the process's `/proc/PID/cgroup` text. Not a file operation, but a
    /// SIGKILL changes what `cgroup.procs` lists, so a model of cgroupfs has to
    /// see it.
    fn signal(&self, pid: i32, signal: Signal, member: &dyn Fn(&str) -> bool);
    /// cgroup v2: the ids of the device programs attached to the cgroup `dir`
    /// itself.
    fn device_programs(&self, dir: &Path) -> Result<Vec<u32>, BpfError>;
    /// cgroup v2: load `program` and attach it to `dir` as a device program, next
    /// to those already there (`BPF_F_ALLOW_MULTI`: all must allow). The cgroup
    /// holds it until it is detached or the cgroup removed.
    fn attach_device_program(&self, dir: &Path, program: &[Insn]) -> Result<(), BpfError>;
    /// cgroup v2: detach the device program `id` from `dir`.
    fn detach_device_program(&self, dir: &Path, id: u32) -> Result<(), BpfError>;
}

/// The real cgroupfs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kernel;

impl CgroupFs for Kernel {
    fn mkdir(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir(dir)
    }

    fn rmdir(&self, dir: &Path) -> io::Result<()> {
        std::fs::remove_dir(dir)
    }

    fn read(&self, file: &Path) -> io::Result<String> {
        std::fs::read_to_string(file)
    }

    fn open_dir(&self, dir: &Path) -> Option<OwnedFd> {
        let flags = nix::fcntl::OFlag::O_PATH
            | nix::fcntl::OFlag::O_DIRECTORY
            | nix::fcntl::OFlag::O_CLOEXEC;
        nix::fcntl::open(dir, flags, nix::sys::stat::Mode::empty()).ok()
    }

    fn write(&self, file: &Path, value: &str) -> io::Result<()> {
        // No O_CREAT: a missing interface file (a controller or feature the
        // kernel lacks) is ENOENT rather than the EACCES cgroupfs gives a create.
        // One write call: the kernel parses each write on its own.
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(file)?
            .write_all(value.as_bytes())
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn children(&self, dir: &Path) -> io::Result<Vec<String>> {
        Ok(std::fs::read_dir(dir)?
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect())
    }

    /// A pid read from `cgroup.procs` may have exited, been reaped and been
    /// reused by an unrelated process before the signal. So the process is
    /// pinned first (a pidfd names one process, never its successor), its
    /// cgroup read after that, and the signal goes through the pidfd: if the
    /// read named the unit's cgroup, either it was the pinned process, or that
    /// one is dead by now and the signal reaches nobody.
    fn signal(&self, pid: i32, signal: Signal, member: &dyn Fn(&str) -> bool) {
        let cgroup = format!("/proc/{pid}/cgroup");
        let pidfd = match pidfd_open(pid) {
            Ok(fd) => fd,
            // Kernels before 5.3: check, then signal by number (a far narrower
            // window than none).
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                if std::fs::read_to_string(&cgroup).is_ok_and(|t| member(&t)) {
                    let _ = nix::sys::signal::kill(Pid::from_raw(pid), signal);
                }
                return;
            }
            // ESRCH: it ended meanwhile, which is what a stop wants.
            Err(_) => return,
        };
        if std::fs::read_to_string(&cgroup).is_ok_and(|t| member(&t)) {
            // ESRCH: the pinned process ended meanwhile; nothing to do.
            let _ = pidfd_send_signal(&pidfd, signal);
        }
    }

    fn device_programs(&self, dir: &Path) -> Result<Vec<u32>, BpfError> {
        let cgroup = sys::open_cgroup(dir)?;
        sys::query_device_programs(cgroup.as_fd())
    }

    fn attach_device_program(&self, dir: &Path, program: &[Insn]) -> Result<(), BpfError> {
        let cgroup = sys::open_cgroup(dir)?;
        let prog = sys::load_device_program(program)?;
        sys::attach_device_program(cgroup.as_fd(), prog.as_fd())
    }

    fn detach_device_program(&self, dir: &Path, id: u32) -> Result<(), BpfError> {
        let cgroup = sys::open_cgroup(dir)?;
        sys::detach_device_program(cgroup.as_fd(), id)
    }
}

/// pidfd_open(2): a descriptor naming the process `pid` is now.
fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a plain pid and flags; it touches no memory.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: a fresh descriptor from pidfd_open that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// pidfd_send_signal(2): signal the process `pidfd` names, never another.
fn pidfd_send_signal(pidfd: &OwnedFd, signal: Signal) -> io::Result<()> {
    let (fd, sig) = (pidfd.as_raw_fd(), signal as libc::c_int);
    // SAFETY: a pidfd we own, a valid signal, no siginfo (null) and no flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd,
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// How long `rmdir` retries on EBUSY, and how often: a cgroup whose last process
/// was just killed stays busy until the kernel has finished tearing that process
/// down, which takes milliseconds; a second is far more than that and still
/// bounds the blocking thread.
const RMDIR_BUSY_FOR: Duration = Duration::from_secs(1);
const RMDIR_RETRY_EVERY: Duration = Duration::from_millis(5);

/// A `CgroupFs` with the driver's error context and tolerances.
#[derive(Debug)]
pub(crate) struct Files(Box<dyn CgroupFs>);

impl Files {
    pub fn new(fs: Box<dyn CgroupFs>) -> Files {
        Files(fs)
    }

    /// Create a cgroup, or reuse the one that is there.
    pub fn mkdir(&self, dir: &Path) -> Result<(), CgroupError> {
        match self.0.mkdir(dir) {
            Err(source) if source.kind() != ErrorKind::AlreadyExists => Err(CgroupError::Mkdir {
                path: dir.to_path_buf(),
                source,
            }),
            _ => Ok(()),
        }
    }

    /// Remove a cgroup, retrying while the kernel reports it busy. One already
    /// gone is fine.
    pub fn rmdir(&self, dir: &Path) -> Result<(), CgroupError> {
        let deadline = Instant::now() + RMDIR_BUSY_FOR;
        loop {
            match self.0.rmdir(dir) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    std::thread::sleep(RMDIR_RETRY_EVERY)
                }
                Err(source) => {
                    return Err(CgroupError::Rmdir {
                        path: dir.to_path_buf(),
                        source,
                    });
                }
            }
        }
    }

    pub fn read(&self, file: &Path) -> Result<String, CgroupError> {
        self.0.read(file).map_err(|source| CgroupError::Read {
            path: file.to_path_buf(),
            source,
        })
    }

    /// Read a file the kernel may not offer (a counter of a newer kernel, a
    /// controller the unit did not join): missing or unreadable is None.
    pub fn read_optional(&self, file: &Path) -> Option<String> {
        self.0.read(file).ok()
    }

    /// See [`CgroupFs::open_dir`].
    pub fn open_dir(&self, dir: &Path) -> Option<OwnedFd> {
        self.0.open_dir(dir)
    }

    pub fn write(&self, file: &Path, value: &str) -> Result<(), CgroupError> {
        self.0
            .write(file, value)
            .map_err(|source| CgroupError::Write {
                path: file.to_path_buf(),
                value: value.to_string(),
                source,
            })
    }

    pub fn exists(&self, path: &Path) -> bool {
        self.0.exists(path)
    }

    /// Child cgroups of `dir`; none when it is gone or unreadable (a teardown
    /// then fails at the rmdir of `dir`, which names the path and errno).
    pub fn children(&self, dir: &Path) -> Vec<String> {
        self.0.children(dir).unwrap_or_default()
    }

    /// The processes in the cgroup `dir`; none when it is gone.
    pub fn procs(&self, dir: &Path) -> Result<Vec<i32>, CgroupError> {
        let file = dir.join("cgroup.procs");
        match self.0.read(&file) {
            Ok(text) => Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(CgroupError::Read { path: file, source }),
        }
    }

    /// Move the process `pid` into the cgroup `dir`.
    pub fn attach(&self, dir: &Path, pid: impl std::fmt::Display) -> Result<(), CgroupError> {
        self.write(&dir.join("cgroup.procs"), &pid.to_string())
    }

    /// Signal `pid` if it is still a member (see [`CgroupFs::signal`]).
    pub fn signal(&self, pid: i32, signal: Signal, member: &dyn Fn(&str) -> bool) {
        self.0.signal(pid, signal, member)
    }

    pub fn device_programs(&self, dir: &Path) -> Result<Vec<u32>, CgroupError> {
        self.0
            .device_programs(dir)
            .map_err(|source| CgroupError::DeviceProgram {
                path: dir.to_path_buf(),
                source,
            })
    }

    pub fn attach_device_program(&self, dir: &Path, program: &[Insn]) -> Result<(), CgroupError> {
        self.0
            .attach_device_program(dir, program)
            .map_err(|source| CgroupError::DeviceProgram {
                path: dir.to_path_buf(),
                source,
            })
    }

    /// Detach a device program; one already gone (detached or freed meanwhile) is
    /// fine.
    pub fn detach_device_program(&self, dir: &Path, id: u32) -> Result<(), CgroupError> {
        match self.0.detach_device_program(dir, id) {
            Err(e) if e.source.kind() == ErrorKind::NotFound => Ok(()),
            r => r.map_err(|source| CgroupError::DeviceProgram {
                path: dir.to_path_buf(),
                source,
            }),
        }
    }
}
