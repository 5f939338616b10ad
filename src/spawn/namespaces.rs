//! Namespaces, on the helper side: joining them by path, cloning the container's
//! first process into new ones, writing its ID maps, and what that process sets up
//! in its own namespaces before any mount (identity, hostname, loopback).
//!
//! The helper (still in supd's namespaces, with supd's privileges) joins the
//! namespaces named by path, then clones the container's first process directly
//! into all the new namespaces at once (`CLONE_PARENT`: it becomes supd's child,
//! so supd reaps it). That child waits until the helper has written its UID/GID maps
//! from outside and told supd its pid; only then does it set up mounts, hostname
//! and loopback, and exec the service, or, with a PID namespace and `init`, start
//! the service and stay as its init (see `init`).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
use nix::unistd::pipe2;

use super::{SpawnError, Step};
use crate::unit::{IdMapRange, Namespace};

pub fn clone_flag(ns: Namespace) -> CloneFlags {
    match ns {
        Namespace::User => CloneFlags::CLONE_NEWUSER,
        Namespace::Mnt => CloneFlags::CLONE_NEWNS,
        Namespace::Pid => CloneFlags::CLONE_NEWPID,
        Namespace::Uts => CloneFlags::CLONE_NEWUTS,
        Namespace::Ipc => CloneFlags::CLONE_NEWIPC,
        Namespace::Net => CloneFlags::CLONE_NEWNET,
        Namespace::Cgroup => CloneFlags::CLONE_NEWCGROUP,
    }
}

/// Join namespaces by path: all opened first (joining mnt changes how later paths
/// resolve), then entered user first and mnt last.
pub fn join<'a>(
    joins: impl Iterator<Item = (&'a Namespace, &'a std::path::PathBuf)>,
) -> Result<(), SpawnError> {
    let fail = |step, ns: &Namespace, path: &std::path::Path, e| {
        SpawnError::new(step, Some(&path.to_string_lossy()), Some(e), ns.as_str())
    };
    let mut opened = Vec::new();
    for (ns, path) in joins {
        let fd = nix::fcntl::open(
            path.as_path(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| fail(Step::OpenNamespace, ns, path, e))?;
        opened.push((*ns, path, fd));
    }
    opened.sort_by_key(|(ns, _, _)| match ns {
        Namespace::User => 0,
        Namespace::Mnt => 2,
        _ => 1,
    });
    for (ns, path, fd) in opened {
        nix::sched::setns(fd, clone_flag(ns)).map_err(|e| fail(Step::Setns, &ns, path, e))?;
    }
    Ok(())
}

/// Which side of the clone we are on.
pub enum Side {
    /// The helper, with the child's host pid, a pidfd for it taken by the clone
    /// itself (so it names this process even once the pid is reused), and the write
    /// end that releases it.
    Parent {
        child: i32,
        pidfd: OwnedFd,
        release: OwnedFd,
    },
    /// The container's first process, released once the parent wrote the byte.
    Child,
}

/// Clone the container's first process into new namespaces, as a child of supd. The
/// child blocks until `release` is written; if the parent dies first it exits.
pub fn clone_child(namespaces: &BTreeSet<Namespace>) -> Result<Side, SpawnError> {
    let (release_r, release_w) =
        pipe2(OFlag::O_CLOEXEC).map_err(|e| SpawnError::new(Step::Pipe, None, Some(e), ""))?;
    let mut flags = CloneFlags::CLONE_PARENT;
    for ns in namespaces {
        flags |= clone_flag(*ns);
    }
    let mut pidfd: libc::c_int = -1;
    // SAFETY: the helper is single-threaded, so a fork-like clone (no new stack, no
    // CLONE_VM) gives the child a consistent copy of the whole process, as fork does.
    // With CLONE_PIDFD the kernel writes the new pidfd to `pidfd` (x86_64 argument
    // order: flags, stack, parent_tid, child_tid, tls), which outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags.bits() as libc::c_ulong)
                | libc::CLONE_PIDFD as libc::c_ulong
                | libc::SIGCHLD as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            &mut pidfd as *mut libc::c_int,
            std::ptr::null_mut::<libc::c_void>(),
            0 as libc::c_ulong,
        )
    };
    match rc {
        -1 => Err(SpawnError::new(
            Step::Clone,
            None,
            Some(Errno::last()),
            describe_flags(namespaces),
        )),
        0 => {
            drop(release_w);
            let mut byte = [0u8; 1];
            let mut r = File::from(release_r);
            match r.read(&mut byte) {
                Ok(1) => Ok(Side::Child),
                // The helper failed (and reported it); nothing to do but leave.
                _ => std::process::exit(127),
            }
        }
        pid => {
            drop(release_r);
            // SAFETY: the clone succeeded, so `pidfd` is a fresh descriptor nothing
            // else owns.
            let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
            Ok(Side::Parent {
                child: pid as i32,
                pidfd,
                release: release_w,
            })
        }
    }
}

fn describe_flags(namespaces: &BTreeSet<Namespace>) -> String {
    let names: Vec<&str> = namespaces.iter().map(Namespace::as_str).collect();
    format!("new namespaces: {}", names.join(","))
}

/// Let the cloned child go on.
pub fn release(fd: OwnedFd) -> Result<(), SpawnError> {
    File::from(fd)
        .write_all(b"1")
        .map_err(|e| SpawnError::io(Step::ReleaseChild, None, &e, ""))
}

/// supd's /proc, opened before any namespace is joined.
pub fn open_proc() -> Result<OwnedFd, SpawnError> {
    nix::fcntl::open(
        "/proc",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| SpawnError::new(Step::Open, Some("/proc"), Some(e), ""))
}

/// Write the child's ID maps from outside its user namespace. `setgroups` is denied
/// only when it has to be: when the writer lacks CAP_SETGID (supd not root).
pub fn write_id_maps(
    host_proc: &OwnedFd,
    child: i32,
    uid_map: &[IdMapRange],
    gid_map: &[IdMapRange],
) -> Result<(), SpawnError> {
    if !nix::unistd::geteuid().is_root() {
        write_proc_at(host_proc, &format!("{child}/setgroups"), "deny")?;
    }
    write_proc_at(host_proc, &format!("{child}/uid_map"), &map_text(uid_map))?;
    write_proc_at(host_proc, &format!("{child}/gid_map"), &map_text(gid_map))
}

/// Write a file below an open /proc directory (`self/oom_score_adj`,
/// `PID/uid_map`), in one write(2): the kernel parses a whole map at once.
pub fn write_proc_at(proc: &OwnedFd, path: &str, text: &str) -> Result<(), SpawnError> {
    let shown = format!("/proc/{path}");
    let detail = text.trim();
    let flags = OFlag::O_WRONLY | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(proc, path, flags, nix::sys::stat::Mode::empty())
        .map_err(|e| SpawnError::new(Step::Write, Some(&shown), Some(e), detail))?;
    File::from(fd)
        .write_all(text.as_bytes())
        .map_err(|e| SpawnError::io(Step::Write, Some(&shown), &e, detail))
}

fn map_text(map: &[IdMapRange]) -> String {
    map.iter()
        .map(|r| format!("{} {} {}\n", r.inside, r.outside, r.count))
        .collect()
}

/// In the child: become root of the new user namespace (when 0 is mapped).
pub fn become_userns_root(
    uid_map: &[IdMapRange],
    gid_map: &[IdMapRange],
) -> Result<(), SpawnError> {
    let maps_zero = |m: &[IdMapRange]| m.iter().any(|r| r.inside == 0);
    if maps_zero(gid_map) {
        let root = nix::unistd::Gid::from_raw(0);
        nix::unistd::setresgid(root, root, root)
            .map_err(|e| SpawnError::new(Step::Setresgid, None, Some(e), "0 in user namespace"))?;
        // Drop supd's supplementary groups (EPERM when setgroups had to be denied).
        match nix::unistd::setgroups(&[]) {
            Ok(()) | Err(Errno::EPERM) => {}
            Err(e) => {
                return Err(SpawnError::new(
                    Step::Setgroups,
                    None,
                    Some(e),
                    "[] in user namespace",
                ));
            }
        }
    }
    if maps_zero(uid_map) {
        let root = nix::unistd::Uid::from_raw(0);
        nix::unistd::setresuid(root, root, root)
            .map_err(|e| SpawnError::new(Step::Setresuid, None, Some(e), "0 in user namespace"))?;
    }
    Ok(())
}

/// Bring `lo` up in a new network namespace (it starts down).
pub fn loopback_up() -> Result<(), SpawnError> {
    let fail = |step: Step, e: Errno| SpawnError::new(step, Some("lo"), Some(e), "");
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| fail(Step::Socket, e))?;
    // SAFETY: ifreq is plain C data (a name array and a union of integers and
    // addresses), for which all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo\0".iter().enumerate() {
        req.ifr_name[i] = *b as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS writes only into the ifreq we pass, which is alive.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(fail(Step::GetIfFlags, Errno::last()));
    }
    // SAFETY: SIOCGIFFLAGS filled in ifru_flags, the member read here.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: SIOCSIFFLAGS only reads the ifreq we pass, which is alive.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(fail(Step::SetIfFlags, Errno::last()));
    }
    Ok(())
}

pub fn set_names(hostname: Option<&str>, domainname: Option<&str>) -> Result<(), SpawnError> {
    if let Some(h) = hostname {
        nix::unistd::sethostname(h)
            .map_err(|e| SpawnError::new(Step::Sethostname, Some(h), Some(e), ""))?;
    }
    if let Some(d) = domainname {
        // SAFETY: pointer and length of a live byte slice.
        let rc = unsafe { libc::setdomainname(d.as_ptr() as *const libc::c_char, d.len()) };
        if rc != 0 {
            return Err(SpawnError::new(
                Step::Setdomainname,
                Some(d),
                Some(Errno::last()),
                "",
            ));
        }
    }
    Ok(())
}
