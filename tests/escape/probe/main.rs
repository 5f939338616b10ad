//! The escape probe: tries each attack named on its command line from inside a
//! unit and prints one line per attack, `NAME=ALLOWED` or `NAME=refused(ERRNO)`,
//! then `probe=done`. Plain Rust without crates, compiled static by the escape
//! tests (`rustc -C target-feature=+crt-static`) so that it runs in any rootfs.
//!
//! It never changes the host even when an attack succeeds: files are opened for
//! writing and closed without a write, device nodes are made in a scratch
//! directory and removed, syscalls get arguments the kernel rejects after its
//! permission checks, and the process that moves itself to the root cgroup or
//! becomes root is a short-lived child that exits at once.
//!
//! Options are `KEY=VALUE` arguments before the attacks: `state=` supd's state
//! directory, `victim=` a unit to stop, `scratch=` a directory to make nodes in,
//! `dev=MAJOR:MINOR` a block device, `node=` a block device node made by the test,
//! `tmp_mark=` a file in the host's /tmp, `new_syscall=` a syscall number newer than
//! sup's list.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Error, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

unsafe extern "C" {
    /// libc's generic system call entry: -1 and errno on failure.
    fn syscall(number: i64, ...) -> i64;
}

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const SOCKET: i64 = 41;
    pub const SETUID: i64 = 105;
    pub const MKNODAT: i64 = 259;
    pub const KCMP: i64 = 312;
}
#[cfg(target_arch = "aarch64")]
mod nr {
    pub const SOCKET: i64 = 198;
    pub const SETUID: i64 = 146;
    pub const MKNODAT: i64 = 33;
    pub const KCMP: i64 = 272;
}
/// The same on every architecture (the unified syscall table, Linux 5.1+).
const IO_URING_SETUP: i64 = 425;
const MOUNT_SETATTR: i64 = 442;
const OPEN_TREE_ATTR: i64 = 467;

const AT_FDCWD: i64 = -100;
const S_IFBLK: i64 = 0o060000;
const AF_PACKET: i64 = 17;
const SOCK_RAW: i64 = 3;
const SOCK_CLOEXEC: i64 = 0o2000000;
/// `htons(ETH_P_ALL)`.
const ETH_P_ALL_BE: i64 = 0x0300;

type Outcome = Result<(), String>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("child-cgroup") => return child_cgroup(),
        Some("child-setuid") => return child_setuid(),
        _ => {}
    }
    let mut opts = HashMap::new();
    let mut attacks = Vec::new();
    for a in &args {
        match a.split_once('=') {
            Some((k, v)) => {
                opts.insert(k.to_string(), v.to_string());
            }
            None => attacks.push(a.as_str()),
        }
    }
    let opt = |k: &str| opts.get(k).cloned().unwrap_or_default();
    for attack in attacks {
        let outcome = match attack {
            "supd_status" => supd(&opt("state"), "{\"v\":1,\"cmd\":\"status\",\"units\":[]}"),
            "supd_stop" => supd(
                &opt("state"),
                &format!(
                    "{{\"v\":1,\"cmd\":\"stop\",\"units\":[\"{}\"]}}",
                    opt("victim")
                ),
            ),
            "cgroup_escape" => in_child("child-cgroup"),
            "sys_write" => open_for_write(
                [
                    "/sys/kernel/mm/transparent_hugepage/enabled",
                    "/sys/power/state",
                ]
                .into_iter()
                .find(|p| std::path::Path::new(p).exists())
                .unwrap_or("/sys/power/state"),
            ),
            "proc_sys_write" => open_for_write("/proc/sys/kernel/panic"),
            "mknod_block" => mknod_block(&opt("scratch"), &opt("dev")),
            "open_block" => open_read(&opt("node")),
            "packet_socket" => packet_socket(),
            "read_shadow" => open_read("/etc/shadow"),
            "setuid_root" => in_child("child-setuid"),
            "etc_write" => open_for_write("/etc/hostname"),
            "host_tmp" => match std::fs::symlink_metadata(opt("tmp_mark")) {
                Ok(_) => Ok(()),
                Err(e) => Err(errno_name(&e)),
            },
            "open_tree_attr" => kernel_reached(OPEN_TREE_ATTR, [-1, 0, 0xffff_ffff, 0, 0]),
            "mount_setattr" => kernel_reached(MOUNT_SETATTR, [-1, 0, 0xffff_ffff, 0, 0]),
            "io_uring_setup" => kernel_reached(IO_URING_SETUP, [0, 0, 0, 0, 0]),
            "kcmp" => {
                let me = std::process::id() as i64;
                kernel_reached(nr::KCMP, [me, me, 99, 0, 0])
            }
            "new_syscall" => match opt("new_syscall").parse() {
                Ok(n) => kernel_reached(n, [-1, 0, 0, 0, 0]),
                Err(_) => Err("no-number".into()),
            },
            "syscall_1000" => kernel_reached(1000, [0, 0, 0, 0, 0]),
            other => Err(format!("unknown-attack-{other}")),
        };
        report(attack, &outcome);
    }
    println!("probe=done");
}

fn report(name: &str, outcome: &Outcome) {
    match outcome {
        Ok(()) => println!("{name}=ALLOWED"),
        Err(why) => println!("{name}=refused({why})"),
    }
    let _ = std::io::stdout().flush();
}

/// Connect to supd's control socket and send one request: allowed when supd
/// answers with anything but an error.
fn supd(state: &str, request: &str) -> Outcome {
    let mut sock =
        UnixStream::connect(format!("{state}/control.sock")).map_err(|e| errno_name(&e))?;
    let _ = sock.set_read_timeout(Some(Duration::from_secs(10)));
    // supd may refuse a peer before it reads the request: the write then fails
    // (EPIPE) and the refusal is still there to read, as supctl does.
    let _ = sock.write_all(format!("{request}\n").as_bytes());
    let mut line = String::new();
    BufReader::new(sock)
        .read_line(&mut line)
        .map_err(|e| errno_name(&e))?;
    if line.contains("\"type\":\"error\"") {
        let code = line
            .split("\"code\":\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or("error");
        Err(code.to_string())
    } else if line.contains("\"type\":") {
        Ok(())
    } else {
        Err("no-reply".into())
    }
}

/// Run this program again as `what` and take its one-line verdict: for attacks that
/// change the process (its cgroup, its uid).
fn in_child(what: &str) -> Outcome {
    let out = Command::new("/proc/self/exe")
        .arg(what)
        .output()
        .map_err(|e| format!("spawn-{}", errno_name(&e)))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if text == "ALLOWED" {
        Ok(())
    } else if text.is_empty() {
        Err(format!("child-{}", out.status))
    } else {
        Err(text)
    }
}

/// Child: write its own pid to the top `cgroup.procs` it can see (the v2 root, or
/// the v1 pids hierarchy); allowed when that moved it to another cgroup.
fn child_cgroup() {
    let candidates = [
        "/sys/fs/cgroup/cgroup.procs",
        "/sys/fs/cgroup/pids/cgroup.procs",
        "/sys/fs/cgroup/unified/cgroup.procs",
    ];
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let procs = candidates
        .into_iter()
        .skip(if v2 { 0 } else { 1 })
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or(candidates[0]);
    let before = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let written = OpenOptions::new()
        .write(true)
        .open(procs)
        .and_then(|mut f| f.write_all(format!("{}\n", std::process::id()).as_bytes()));
    let verdict = match written {
        Err(e) => errno_name(&e),
        Ok(()) if std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default() != before => {
            "ALLOWED".into()
        }
        Ok(()) => "unmoved".into(),
    };
    println!("{verdict}");
}

/// Child: `setuid(0)`; allowed when the uid is 0 afterwards.
fn child_setuid() {
    // SAFETY: setuid takes an integer and touches no memory of ours.
    let r = unsafe { syscall(nr::SETUID, 0i64) };
    let verdict = if r == 0 {
        "ALLOWED".to_string()
    } else {
        errno_name(&Error::last_os_error())
    };
    println!("{verdict}");
}

/// Open `path` write-only, without creating or truncating it, and close it.
fn open_for_write(path: &str) -> Outcome {
    OpenOptions::new()
        .write(true)
        .open(path)
        .map(drop)
        .map_err(|e| errno_name(&e))
}

fn open_read(path: &str) -> Outcome {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| errno_name(&e))
}

/// `mknod` a block device `dev` in `scratch` and open it read-only; the node is
/// removed again.
fn mknod_block(scratch: &str, dev: &str) -> Outcome {
    let (major, minor) = dev
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse::<i64>().ok()?, b.parse::<i64>().ok()?)))
        .ok_or("no-dev")?;
    let encoded = ((major & 0xfff) << 8)
        | (minor & 0xff)
        | ((minor & !0xff) << 12)
        | ((major & !0xfff) << 32);
    let path = format!("{scratch}/blk-{}\0", std::process::id());
    // SAFETY: `path` is NUL-terminated and outlives the call; the rest are integers.
    let r = unsafe {
        syscall(
            nr::MKNODAT,
            AT_FDCWD,
            path.as_ptr(),
            S_IFBLK | 0o600,
            encoded,
        )
    };
    if r != 0 {
        return Err(errno_name(&Error::last_os_error()));
    }
    let path = path.trim_end_matches('\0');
    let opened = open_read(path);
    let _ = std::fs::remove_file(path);
    opened
}

/// A packet socket on every protocol of the network namespace's interfaces; closed
/// at once.
fn packet_socket() -> Outcome {
    // SAFETY: socket takes integers only.
    let fd = unsafe { syscall(nr::SOCKET, AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, ETH_P_ALL_BE) };
    if fd < 0 {
        return Err(errno_name(&Error::last_os_error()));
    }
    // SAFETY: the kernel just returned this descriptor, and nothing else owns it.
    drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    Ok(())
}

/// Call `number` with arguments the kernel rejects once it gets to look at them:
/// refused when the filter answered (`EPERM`, or `ENOSYS` for a number it does not
/// know), allowed when the kernel itself did (any other result).
fn kernel_reached(number: i64, a: [i64; 5]) -> Outcome {
    // SAFETY: every argument is an integer or a null pointer the kernel checks; the
    // calls used here read no memory of ours with these arguments.
    let r = unsafe { syscall(number, a[0], a[1], a[2], a[3], a[4]) };
    if r >= 0 {
        // SAFETY: a non-negative result of these calls is a new descriptor or 0;
        // closing 0..2 is avoided.
        if r > 2 {
            drop(unsafe { OwnedFd::from_raw_fd(r as i32) });
        }
        return Ok(());
    }
    match Error::last_os_error().raw_os_error() {
        Some(1) => Err("EPERM".into()),
        Some(38) => Err("ENOSYS".into()),
        _ => Ok(()),
    }
}

fn errno_name(e: &Error) -> String {
    let name = match e.raw_os_error() {
        Some(1) => "EPERM",
        Some(2) => "ENOENT",
        Some(6) => "ENXIO",
        Some(9) => "EBADF",
        Some(13) => "EACCES",
        Some(14) => "EFAULT",
        Some(16) => "EBUSY",
        Some(19) => "ENODEV",
        Some(22) => "EINVAL",
        Some(30) => "EROFS",
        Some(38) => "ENOSYS",
        Some(93) => "EPROTONOSUPPORT",
        Some(97) => "EAFNOSUPPORT",
        Some(111) => "ECONNREFUSED",
        Some(n) => return format!("E{n}"),
        None => return e.kind().to_string().replace(' ', "-"),
    };
    name.to_string()
}
