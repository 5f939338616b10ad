//! The bpf(2) calls behind the v2 device allowlist: load a program, attach it to
//! a cgroup, list and detach the device programs of a cgroup (kernel >= 4.15).
//!
//! An attached program is held by the cgroup until it is detached or the cgroup
//! is removed, so the descriptors here are closed as soon as the call is done.

use std::ffi::{c_int, c_long};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::Insn;

// enum bpf_cmd
const BPF_PROG_LOAD: c_int = 5;
const BPF_PROG_ATTACH: c_int = 8;
const BPF_PROG_DETACH: c_int = 9;
const BPF_PROG_GET_FD_BY_ID: c_int = 13;
const BPF_PROG_QUERY: c_int = 16;
/// enum bpf_prog_type
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// enum bpf_attach_type
const BPF_CGROUP_DEVICE: u32 = 6;
/// Other programs may be attached to the same cgroup and its descendants; all
/// must allow. (systemd attaches its own device programs this way too.)
const BPF_F_ALLOW_MULTI: u32 = 2;
/// The most programs of one type a cgroup can have (`BPF_CGROUP_MAX_PROGS`).
const MAX_PROGS: usize = 64;
/// The verifier's log, asked for only when a load failed.
const LOG_SIZE: usize = 64 * 1024;
/// Shown by `bpftool prog` (at most 15 bytes: letters, digits, `_`, `.`).
const PROG_NAME: &[u8] = b"sup_devices";
/// No GPL-only helper is called, so any license string loads.
const LICENSE: &std::ffi::CStr = c"Apache-2.0";

/// `union bpf_attr`, zeroed, as a byte buffer large enough for every kernel's
/// union: the kernel reads `ATTR_SIZE` bytes (requiring those it does not know
/// to be zero) and some commands write fields back, such as `BPF_PROG_QUERY`'s
/// count and, on newer kernels, its revision at offset 56.
const ATTR_SIZE: usize = 256;

#[repr(C, align(8))]
struct Attr([u8; ATTR_SIZE]);

impl Attr {
    fn new() -> Attr {
        Attr([0; ATTR_SIZE])
    }

    fn put(&mut self, at: usize, bytes: &[u8]) {
        if let Some(field) = self.0.get_mut(at..at + bytes.len()) {
            field.copy_from_slice(bytes);
        }
    }

    fn put_u32(&mut self, at: usize, v: u32) {
        self.put(at, &v.to_ne_bytes());
    }

    fn put_u64(&mut self, at: usize, v: u64) {
        self.put(at, &v.to_ne_bytes());
    }

    fn u32_at(&self, at: usize) -> u32 {
        let mut b = [0; 4];
        if let Some(field) = self.0.get(at..at + 4) {
            b.copy_from_slice(field);
        }
        u32::from_ne_bytes(b)
    }
}

/// A failed bpf step; `log` is the verifier's last words on a failed load.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {source}{log}")]
pub struct BpfError {
    pub step: &'static str,
    pub source: io::Error,
    pub log: String,
}

impl BpfError {
    pub fn new(step: &'static str, source: io::Error) -> BpfError {
        BpfError {
            step,
            source,
            log: String::new(),
        }
    }
}

fn bpf(cmd: c_int, attr: &mut Attr) -> io::Result<c_long> {
    let attr_ptr: *mut Attr = attr;
    // SAFETY: `attr` is ATTR_SIZE initialised, writable bytes that outlive the call;
    // the kernel reads at most ATTR_SIZE bytes and writes only inside its union,
    // which is smaller. Pointers inside it (instructions, license, buffers) are
    // set by the callers to memory that outlives the call, with its length.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr_ptr, ATTR_SIZE as libc::c_uint) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The descriptor a successful command returned, owned.
fn owned_fd(r: c_long) -> io::Result<OwnedFd> {
    let fd = c_int::try_from(r).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The cgroup directory, as the target of attach, detach and query.
pub fn open_cgroup(dir: &Path) -> Result<File, BpfError> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
        .map_err(|e| BpfError::new("open", e))
}

fn load(insns: &[Insn], log: Option<&mut [u8]>) -> io::Result<OwnedFd> {
    let count =
        u32::try_from(insns.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let mut attr = Attr::new();
    attr.put_u32(0, BPF_PROG_TYPE_CGROUP_DEVICE);
    attr.put_u32(4, count);
    attr.put_u64(8, insns.as_ptr() as u64);
    attr.put_u64(16, LICENSE.as_ptr() as u64);
    if let Some(buf) = log {
        attr.put_u32(24, 1); // log_level
        attr.put_u32(28, u32::try_from(buf.len()).unwrap_or(u32::MAX));
        attr.put_u64(32, buf.as_mut_ptr() as u64);
    }
    attr.put(48, PROG_NAME);
    owned_fd(bpf(BPF_PROG_LOAD, &mut attr)?)
}

/// Load a device program. When the kernel refuses it, the load is repeated with
/// the verifier's log, whose last line says why.
pub fn load_device_program(insns: &[Insn]) -> Result<OwnedFd, BpfError> {
    let source = match load(insns, None) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let mut buf = vec![0u8; LOG_SIZE];
    if let Ok(fd) = load(insns, Some(&mut buf)) {
        return Ok(fd);
    }
    let text = String::from_utf8_lossy(&buf);
    let last = text
        .trim_end_matches('\0')
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .map(|l| format!(" (verifier: {})", l.trim()))
        .unwrap_or_default();
    Err(BpfError {
        step: "bpf(BPF_PROG_LOAD)",
        source,
        log: last,
    })
}

/// Attach `prog` to the cgroup, next to any programs already there.
pub fn attach_device_program(cgroup: BorrowedFd, prog: BorrowedFd) -> Result<(), BpfError> {
    let mut attr = Attr::new();
    attr.put_u32(0, cgroup.as_raw_fd() as u32);
    attr.put_u32(4, prog.as_raw_fd() as u32);
    attr.put_u32(8, BPF_CGROUP_DEVICE);
    attr.put_u32(12, BPF_F_ALLOW_MULTI);
    bpf(BPF_PROG_ATTACH, &mut attr)
        .map(drop)
        .map_err(|e| BpfError::new("bpf(BPF_PROG_ATTACH)", e))
}

/// The ids of the device programs attached to the cgroup itself (not those
/// inherited from its ancestors).
pub fn query_device_programs(cgroup: BorrowedFd) -> Result<Vec<u32>, BpfError> {
    let mut ids = [0u32; MAX_PROGS];
    let mut attr = Attr::new();
    attr.put_u32(0, cgroup.as_raw_fd() as u32);
    attr.put_u32(4, BPF_CGROUP_DEVICE);
    attr.put_u64(16, ids.as_mut_ptr() as u64);
    attr.put_u32(24, MAX_PROGS as u32);
    bpf(BPF_PROG_QUERY, &mut attr).map_err(|e| BpfError::new("bpf(BPF_PROG_QUERY)", e))?;
    let count = (attr.u32_at(24) as usize).min(MAX_PROGS);
    Ok(ids[..count].to_vec())
}

/// Detach the device program `id` from the cgroup. ENOENT: it is gone already.
pub fn detach_device_program(cgroup: BorrowedFd, id: u32) -> Result<(), BpfError> {
    let mut by_id = Attr::new();
    by_id.put_u32(0, id);
    let prog = bpf(BPF_PROG_GET_FD_BY_ID, &mut by_id)
        .and_then(owned_fd)
        .map_err(|e| BpfError::new("bpf(BPF_PROG_GET_FD_BY_ID)", e))?;
    let mut attr = Attr::new();
    attr.put_u32(0, cgroup.as_raw_fd() as u32);
    attr.put_u32(4, prog.as_raw_fd() as u32);
    attr.put_u32(8, BPF_CGROUP_DEVICE);
    bpf(BPF_PROG_DETACH, &mut attr)
        .map(drop)
        .map_err(|e| BpfError::new("bpf(BPF_PROG_DETACH)", e))
}
