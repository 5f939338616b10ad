//! The seccomp filter every service runs under.
//!
//! supd compiles the filter once per supd process ([`SeccompProgram::default_filter`]) and
//! ships the instructions to the spawn helper inside the launch plan; the helper installs it
//! ([`SeccompProgram::install`]) as its very last step before `execve`.
//!
//! The filter allows everything except a deny list modelled on docker's default profile:
//! syscalls that reach kernel-global state (modules, clocks, keyrings, mounts, swap, reboot,
//! raw I/O ports, ...) or that create namespaces. Denied syscalls fail with `EPERM` rather
//! than killing the process, so a script sees an ordinary error it can report.
//!
//! # How the program is built
//!
//! seccompiler (pure Rust, no libseccomp) compiles the deny list, including the argument
//! conditions on `clone` and `personality`, and adds the architecture check (a syscall made
//! through a foreign ABI, e.g. i386 `int 0x80` on x86_64, kills the process). Two things are
//! beyond what one seccompiler filter expresses, so a short fixed preamble written here is
//! placed in front of its program:
//!
//! * `clone3` must fail with `ENOSYS` (so glibc falls back to `clone`, whose flags the filter
//!   can inspect; `clone3` passes them in memory), while a seccompiler filter has a single
//!   on-match action (`EPERM` here).
//! * On x86_64 the x32 ABI shares the native audit arch but numbers its syscalls with bit 30
//!   set, so `keyctl | 0x4000_0000` would slip past a deny list that compares exact numbers.
//!   seccompiler only ever needs exact numbers because it is built for allow lists, where an
//!   unknown number is denied anyway. The preamble kills the process on any x32 number.
//!
//! Classic BPF jumps are relative and only go forward, so a preamble that either returns or
//! falls through to its end composes with the seccompiler program behind it unchanged.
//!
//! `deny` holds the list and the argument rules, `preamble` the fixed instructions in
//! front; `tests` checks the program's decisions with a small BPF interpreter and
//! `child_tests` the installed filter in a forked child.
//!
//! # What is deliberately allowed
//!
//! * `ptrace`: docker allows it on kernels >= 4.8, where seccomp can no longer be bypassed
//!   through it; debuggers and `strace` inside a service keep working.
//! * `personality` with the values docker allows (0, `PER_LINUX32`, `UNAME26`, both, and the
//!   0xffffffff query); any other persona (e.g. `ADDR_NO_RANDOMIZE`) fails with `EPERM`.
//! * `clone` without `CLONE_NEW*` flags: `fork`, `vfork` and `pthread_create` are untouched.
//!
//! Syscalls in docker's list that the kernel no longer implements on x86_64 or aarch64
//! (`create_module`, `get_kernel_syms`, `query_module`) or that exist only on i386 (`vm86`,
//! `vm86old`, which the architecture check already covers) are left out: they fail with
//! `ENOSYS` anyway.

#[cfg(test)]
mod child_tests;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod deny;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod preamble;
#[cfg(test)]
mod tests;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

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
    /// The default filter: allow everything except a docker-like deny list, which fails
    /// with `EPERM` (`clone3` fails with `ENOSYS`; see the module docs).
    pub fn default_filter() -> Result<SeccompProgram, String> {
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        {
            build_default().map_err(|e| format!("compiling the seccomp filter: {e}"))
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
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

#[cfg(target_arch = "x86_64")]
mod arch {
    pub const TARGET: seccompiler::TargetArch = seccompiler::TargetArch::x86_64;
    /// `AUDIT_ARCH_X86_64`: `EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`.
    pub const AUDIT: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    /// `__X32_SYSCALL_BIT`: x32 syscalls arrive with the native audit arch and this bit set.
    pub const X32_SYSCALL_BIT: Option<u32> = Some(0x4000_0000);
    /// Denied syscalls that exist only on this architecture.
    pub const EXTRA_DENY: &[libc::c_long] = &[
        // Raw access to I/O ports.
        libc::SYS_iopl,
        libc::SYS_ioperm,
        // Obsolete a.out loader.
        libc::SYS_uselib,
    ];
}

#[cfg(target_arch = "aarch64")]
mod arch {
    pub const TARGET: seccompiler::TargetArch = seccompiler::TargetArch::aarch64;
    /// `AUDIT_ARCH_AARCH64`: `EM_AARCH64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`.
    pub const AUDIT: u32 = 183 | 0x8000_0000 | 0x4000_0000;
    /// aarch64 has no second ABI under its own audit arch (AArch32 reports `AUDIT_ARCH_ARM`).
    pub const X32_SYSCALL_BIT: Option<u32> = None;
    pub const EXTRA_DENY: &[libc::c_long] = &[];
}

/// The preamble, then the deny list as seccompiler compiles it.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn build_default() -> Result<SeccompProgram, seccompiler::BackendError> {
    use seccompiler::{BpfProgram, SeccompAction, SeccompFilter};

    let rules = deny::rules()?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch::TARGET,
    )?;
    let body: BpfProgram = filter.try_into()?;

    let mut instructions = preamble::preamble()?;
    instructions.extend(body.into_iter().map(|i| BpfInsn {
        code: i.code,
        jt: i.jt,
        jf: i.jf,
        k: i.k,
    }));
    if instructions.len() > libc::BPF_MAXINSNS as usize {
        return Err(seccompiler::BackendError::FilterTooLarge(
            instructions.len(),
        ));
    }
    Ok(SeccompProgram { instructions })
}
