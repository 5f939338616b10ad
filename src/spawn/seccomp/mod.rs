//! The seccomp filter every service runs under: an allowlist, Docker's default
//! profile for the unit's capabilities with a few changes of sup's.
//!
//! supd compiles the filter once per distinct capability set
//! ([`SeccompProgram::for_capabilities`], cached by its caller) and ships the
//! instructions to the spawn helper inside the launch plan; the helper installs it
//! ([`SeccompProgram::install`]) as its very last step before `execve`.
//!
//! # What it decides
//!
//! * Docker's default profile, kept verbatim as data (`docker-default.json`, source in
//!   `profile`): the syscalls it allows outright are allowed; those it ties to a
//!   capability are allowed only when the unit's bounding set holds it (`sys_admin`:
//!   mount, umount2, unshare, setns, the new mount API, unrestricted clone and
//!   clone3, ...; `sys_ptrace`: kcmp, pidfd_getfd, process_madvise; ...); its
//!   argument rules hold: `clone` without namespace flags, `personality` with five
//!   personas, `socket` without AF_ALG and AF_VSOCK; `clone3` fails with `ENOSYS`
//!   without `sys_admin`, so glibc falls back to `clone`, whose flags the filter can
//!   see.
//! * Everything else that sup knows by name fails with `EPERM` (io_uring, keyrings,
//!   kexec, swap, userfaultfd, ...). A syscall number above every one sup knows is
//!   newer than the lists and fails with `ENOSYS`, as under runc, so that libc
//!   falls back to an older call instead of reporting a permission error.
//! * sup's changes (`policy`): `mount_setattr` and `open_tree_attr` are denied even
//!   with `sys_admin`, and the arguments of `socket`, `personality` and `clone` are
//!   compared on the 32 bits the kernel reads.
//! * A syscall through a foreign ABI (i386 `int 0x80`, x32 numbers on x86_64)
//!   kills the process.
//!
//! # How the program is built
//!
//! `profile` reads Docker's file and decides per syscall name for this host;
//! `policy` applies sup's changes and resolves names to numbers (`numbers`, data
//! per architecture; unknown names are skipped) into a `Policy`; `compile` turns
//! that into BPF. seccompiler (pure Rust, no libseccomp) compiles the allowlist with
//! its argument conditions and the architecture check. Three things are beyond one
//! seccompiler filter, so a short preamble written here goes in front of it:
//! the `ENOSYS` ceiling, a second errno (`clone3`), and x32: on x86_64 the x32 ABI
//! shares the native audit arch but numbers its syscalls with bit 30 set; the
//! preamble kills the process on any such number. Classic BPF jumps only go
//! forward, so a preamble that returns or falls through to its end composes with
//! the program behind it unchanged.
//!
//! `tests` checks the program's decisions with a small BPF interpreter and
//! `child_tests` the installed filter in a forked child.

#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
mod child_tests;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod compile;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod numbers;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod policy;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod profile;
#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
mod tests;

use std::collections::BTreeSet;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use crate::unit::Capability;

/// One classic BPF instruction, laid out exactly like the kernel's `struct sock_filter` so
/// that [`SeccompProgram::install`] can hand the vector to the kernel without copying.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(u16, u8, u8, u32)", into = "(u16, u8, u8, u32)")]
struct BpfInsn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

const _: () = assert!(
    size_of::<BpfInsn>() == size_of::<libc::sock_filter>()
        && align_of::<BpfInsn>() == align_of::<libc::sock_filter>()
);

impl From<(u16, u8, u8, u32)> for BpfInsn {
    fn from((code, jt, jf, k): (u16, u8, u8, u32)) -> Self {
        BpfInsn { code, jt, jf, k }
    }
}

impl From<BpfInsn> for (u16, u8, u8, u32) {
    fn from(i: BpfInsn) -> Self {
        (i.code, i.jt, i.jf, i.k)
    }
}

/// A compiled BPF program, serialisable so supd compiles it once per supd process and
/// ships it to the spawn helper inside the launch plan (serde JSON). Each instruction is
/// serialised as a `[code, jt, jf, k]` array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompProgram {
    instructions: Vec<BpfInsn>,
}

impl SeccompProgram {
    /// The filter for a unit whose bounding set is `capabilities` (see the module
    /// docs). Compiling takes a few milliseconds: callers cache the result per
    /// capability set.
    pub fn for_capabilities(capabilities: &BTreeSet<Capability>) -> Result<SeccompProgram, String> {
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        {
            static KERNEL: std::sync::OnceLock<Option<(u32, u32)>> = std::sync::OnceLock::new();
            let kernel = *KERNEL.get_or_init(policy::running_kernel);
            let policy = policy_for(capabilities, kernel)?;
            let instructions = compile::program(&policy)
                .map_err(|e| format!("compiling the seccomp filter: {e}"))?;
            Ok(SeccompProgram { instructions })
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            let _ = capabilities;
            Err(format!(
                "seccomp filter: unsupported architecture {}",
                std::env::consts::ARCH
            ))
        }
    }

    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.instructions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.instructions.is_empty()
    }

    /// Install on the calling thread with `prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER)`.
    ///
    /// Does not allocate. The caller must have set `no_new_privs` (or hold `CAP_SYS_ADMIN`);
    /// otherwise the kernel refuses with `EACCES`. An empty or oversized program yields
    /// `EINVAL` without a syscall.
    pub fn install(&self) -> Result<(), Errno> {
        let len = self.instructions.len();
        if len == 0 || len > libc::BPF_MAXINSNS as usize {
            return Err(Errno::EINVAL);
        }
        let prog = libc::sock_fprog {
            // Fits: checked against BPF_MAXINSNS (4096) above.
            len: len as libc::c_ushort,
            // The kernel only reads through this pointer.
            filter: self
                .instructions
                .as_ptr()
                .cast::<libc::sock_filter>()
                .cast_mut(),
        };
        // SAFETY: `prog` points at `len` instructions with the layout of `struct
        // sock_filter` (asserted at compile time), alive for the whole call; the kernel
        // copies the program before returning.
        let rc = unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc == 0 { Ok(()) } else { Err(Errno::last()) }
    }
}

/// sup's policy on this architecture for a bounding set and kernel (major, minor).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn policy_for(
    capabilities: &BTreeSet<Capability>,
    kernel: Option<(u32, u32)>,
) -> Result<policy::Policy, String> {
    static DOCKER: std::sync::OnceLock<Result<profile::Profile, String>> =
        std::sync::OnceLock::new();
    let docker = DOCKER
        .get_or_init(profile::Profile::docker)
        .as_ref()
        .map_err(Clone::clone)?;
    let caps: BTreeSet<String> = capabilities.iter().map(|c| c.name()).collect();
    let host = profile::Host {
        arch: arch::DOCKER,
        caps: &caps,
        kernel,
    };
    policy::build(docker, &host, numbers::number)
}

#[cfg(target_arch = "x86_64")]
mod arch {
    pub const TARGET: seccompiler::TargetArch = seccompiler::TargetArch::x86_64;
    /// Docker's (Go's) name of the architecture, as profiles spell it.
    pub const DOCKER: &str = "amd64";
    /// `AUDIT_ARCH_X86_64`: `EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`.
    pub const AUDIT: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    /// `__X32_SYSCALL_BIT`: x32 syscalls arrive with the native audit arch and this bit set.
    pub const X32_SYSCALL_BIT: Option<u32> = Some(0x4000_0000);
}

#[cfg(target_arch = "aarch64")]
mod arch {
    pub const TARGET: seccompiler::TargetArch = seccompiler::TargetArch::aarch64;
    /// Docker's (Go's) name of the architecture, as profiles spell it.
    pub const DOCKER: &str = "arm64";
    /// `AUDIT_ARCH_AARCH64`: `EM_AARCH64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`.
    pub const AUDIT: u32 = 183 | 0x8000_0000 | 0x4000_0000;
    /// aarch64 has no second ABI under its own audit arch (AArch32 reports `AUDIT_ARCH_ARM`).
    pub const X32_SYSCALL_BIT: Option<u32> = None;
}
