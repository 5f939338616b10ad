//! The seccomp filter every service runs under.
//!
//! supd compiles the filter once per unit definition ([`SeccompProgram::default_filter`]) and
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

/// A compiled BPF program, serialisable so supd compiles it once per unit definition and
/// ships it to the spawn helper inside the launch plan (serde JSON). Each instruction is
/// serialised as a `[code, jt, jf, k]` array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompProgram {
    instructions: Vec<BpfInsn>,
}

// Classic BPF opcodes used by the preamble (and by the test interpreter).
const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

// Offsets into the kernel's `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

const RET_ERRNO_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | (libc::ENOSYS as u32);

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

/// Syscalls denied outright with `EPERM` on every supported architecture.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const DENY: &[libc::c_long] = &[
    // Process accounting is host-wide.
    libc::SYS_acct,
    // Kernel keyrings are not namespaced.
    libc::SYS_add_key,
    libc::SYS_keyctl,
    libc::SYS_request_key,
    // Loading eBPF programs.
    libc::SYS_bpf,
    // The clock is shared with the host.
    libc::SYS_clock_adjtime,
    libc::SYS_clock_settime,
    libc::SYS_settimeofday,
    // Kernel modules and kexec replace or extend the host kernel.
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    // Profiling interface that leaks host information.
    libc::SYS_lookup_dcookie,
    // Mounting, old and new API, and switching the root.
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_mount_setattr,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_pivot_root,
    // Swap is host-wide.
    libc::SYS_swapon,
    libc::SYS_swapoff,
    // Rebooting the host.
    libc::SYS_reboot,
    // Host and domain name belong to the host unless in a UTS namespace.
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    // File handles bypass path-based access checks (the "shocker" escape).
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    // Performance counters can observe the host and other processes.
    libc::SYS_perf_event_open,
    // Disk quotas are host-wide.
    libc::SYS_quotactl,
    libc::SYS_quotactl_fd,
    // Kernel NFS server control (removed, kept for old kernels).
    libc::SYS_nfsservctl,
    // Reading and writing other processes' memory.
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    // The kernel log is the host's.
    libc::SYS_syslog,
    // Page-fault handling from user space widens kernel race windows.
    libc::SYS_userfaultfd,
    // Joining or creating namespaces (`clone` is handled below by its flags).
    libc::SYS_unshare,
    libc::SYS_setns,
];

/// Every `CLONE_NEW*` flag; `clone` with any of them fails with `EPERM`. (`CLONE_NEWTIME`
/// shares its bit with the exit-signal byte of `clone`; no valid signal uses that bit.)
const CLONE_NEW_FLAGS: &[libc::c_int] = &[
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    0x80, // CLONE_NEWTIME
];

/// The personas docker allows: Linux, `PER_LINUX32`, `UNAME26`, both, and the query value.
const ALLOWED_PERSONAS: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

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

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn build_default() -> Result<SeccompProgram, seccompiler::BackendError> {
    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule,
    };
    use std::collections::BTreeMap;

    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &nr in DENY.iter().chain(arch::EXTRA_DENY) {
        // An empty rule chain means: match on the syscall number alone.
        rules.insert(nr, Vec::new());
    }

    // clone(flags, ...): deny when any CLONE_NEW* bit is set in the low 32 bits of flags
    // (the kernel ignores the upper half). One rule per flag; rules are OR-ed.
    let clone_rules = CLONE_NEW_FLAGS
        .iter()
        .map(|&flag| {
            let bit = flag as u32 as u64;
            SeccompRule::new(vec![SeccompCondition::new(
                0,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::MaskedEq(bit),
                bit,
            )?])
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_clone, clone_rules);

    // personality(persona): the kernel takes an unsigned int; deny unless it is one of the
    // allowed values (all conditions of one rule are AND-ed).
    let persona_rule = SeccompRule::new(
        ALLOWED_PERSONAS
            .iter()
            .map(|&p| SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, p))
            .collect::<Result<Vec<_>, _>>()?,
    )?;
    rules.insert(libc::SYS_personality, vec![persona_rule]);

    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch::TARGET,
    )?;
    let body: BpfProgram = filter.try_into()?;

    let mut instructions = preamble();
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

/// The checks seccompiler cannot express (see the module docs). Every path either returns
/// or falls through to the instruction after the preamble, where seccompiler's program
/// starts with its own architecture check.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn preamble() -> Vec<BpfInsn> {
    fn stmt(code: u16, k: u32) -> BpfInsn {
        BpfInsn {
            code,
            jt: 0,
            jf: 0,
            k,
        }
    }
    fn jump(code: u16, k: u32, jt: u8, jf: u8) -> BpfInsn {
        BpfInsn { code, jt, jf, k }
    }

    let mut p = vec![
        stmt(LD_W_ABS, DATA_ARCH),
        // Foreign architecture: skip to the end (jf patched below); seccompiler kills it.
        jump(JEQ_K, arch::AUDIT, 0, 0),
        stmt(LD_W_ABS, DATA_NR),
    ];
    if let Some(x32) = arch::X32_SYSCALL_BIT {
        // nr >= x32 bit and not -1 (which the kernel answers with ENOSYS): kill.
        p.push(jump(JGE_K, x32, 0, 2));
        p.push(jump(JEQ_K, u32::MAX, 1, 0));
        p.push(stmt(RET_K, libc::SECCOMP_RET_KILL_PROCESS));
    }
    p.push(jump(JEQ_K, libc::SYS_clone3 as u32, 0, 1));
    p.push(stmt(RET_K, RET_ERRNO_ENOSYS));
    // From instruction 1, a false branch lands at 1 + 1 + jf; make that p.len().
    p[1].jf = u8::try_from(p.len() - 2).expect("preamble is short");
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALU_AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
    const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
    const JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
    const RET_EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;

    fn filter() -> SeccompProgram {
        SeccompProgram::default_filter().expect("default filter compiles")
    }

    /// A tiny classic-BPF interpreter covering the opcodes the filter uses, so the
    /// program's decisions can be checked for every syscall without installing it.
    fn eval(prog: &SeccompProgram, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let i = prog.instructions[pc];
            pc += 1;
            let cond = |taken: bool| usize::from(if taken { i.jt } else { i.jf });
            match i.code {
                LD_W_ABS => {
                    let k = i.k as usize;
                    acc = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
                }
                ALU_AND_K => acc &= i.k,
                JA => pc += i.k as usize,
                JEQ_K => pc += cond(acc == i.k),
                JGT_K => pc += cond(acc > i.k),
                JGE_K => pc += cond(acc >= i.k),
                RET_K => return i.k,
                other => panic!("interpreter: unexpected opcode {other:#x} at {}", pc - 1),
            }
        }
    }

    fn eval_native(prog: &SeccompProgram, nr: libc::c_long, arg0: u64) -> u32 {
        eval(prog, arch::AUDIT, nr as u32, [arg0, 0, 0, 0, 0, 0])
    }

    #[test]
    fn default_filter_compiles_and_round_trips() {
        let prog = filter();
        assert!(!prog.is_empty());
        assert_eq!(prog.len(), prog.instructions.len());
        assert!(prog.len() <= libc::BPF_MAXINSNS as usize);
        let json = serde_json::to_string(&prog).unwrap();
        assert!(json.starts_with("{\"instructions\":[["), "{json}");
        let back: SeccompProgram = serde_json::from_str(&json).unwrap();
        assert_eq!(back, prog);
    }

    #[test]
    fn deny_list_returns_eperm_and_the_rest_is_allowed() {
        let prog = filter();
        for &nr in DENY.iter().chain(arch::EXTRA_DENY) {
            assert_eq!(eval_native(&prog, nr, 0), RET_EPERM, "syscall {nr}");
        }
        for nr in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_getpid,
            libc::SYS_execve,
            libc::SYS_ptrace,
            libc::SYS_wait4,
        ] {
            assert_eq!(
                eval_native(&prog, nr, 0),
                libc::SECCOMP_RET_ALLOW,
                "syscall {nr}"
            );
        }
        assert_eq!(
            eval_native(&prog, libc::SYS_clone3, 0),
            RET_ERRNO_ENOSYS,
            "clone3"
        );
    }

    #[test]
    fn clone_is_judged_by_its_flags() {
        let prog = filter();
        let fork_like = libc::SIGCHLD as u64;
        let thread_like = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM
            | libc::CLONE_SETTLS
            | libc::CLONE_PARENT_SETTID
            | libc::CLONE_CHILD_CLEARTID) as u64;
        for ok in [0, fork_like, thread_like, fork_like | 0xffff_ffff_0000_0000] {
            assert_eq!(
                eval_native(&prog, libc::SYS_clone, ok),
                libc::SECCOMP_RET_ALLOW,
                "{ok:#x}"
            );
        }
        for &flag in CLONE_NEW_FLAGS {
            let flags = flag as u32 as u64 | fork_like;
            assert_eq!(
                eval_native(&prog, libc::SYS_clone, flags),
                RET_EPERM,
                "{flags:#x}"
            );
        }
    }

    #[test]
    fn personality_allows_only_the_usual_personas() {
        let prog = filter();
        for &p in ALLOWED_PERSONAS {
            assert_eq!(
                eval_native(&prog, libc::SYS_personality, p),
                libc::SECCOMP_RET_ALLOW,
                "{p:#x}"
            );
        }
        for p in [0x0040000u64 /* ADDR_NO_RANDOMIZE */, 0x0400000, 0x1] {
            assert_eq!(
                eval_native(&prog, libc::SYS_personality, p),
                RET_EPERM,
                "{p:#x}"
            );
        }
    }

    #[test]
    fn foreign_abis_are_killed() {
        let prog = filter();
        // AUDIT_ARCH_I386 and AUDIT_ARCH_ARM: 32-bit compat entry points.
        for foreign in [3 | 0x4000_0000, 40 | 0x4000_0000] {
            assert_eq!(
                eval(&prog, foreign, libc::SYS_getpid as u32, [0; 6]),
                libc::SECCOMP_RET_KILL_PROCESS
            );
        }
        if let Some(x32) = arch::X32_SYSCALL_BIT {
            for nr in [libc::SYS_keyctl as u32 | x32, libc::SYS_getpid as u32 | x32] {
                assert_eq!(
                    eval(&prog, arch::AUDIT, nr, [0; 6]),
                    libc::SECCOMP_RET_KILL_PROCESS,
                    "{nr:#x}"
                );
            }
            // syscall(-1) is left to the kernel (ENOSYS).
            assert_eq!(
                eval(&prog, arch::AUDIT, u32::MAX, [0; 6]),
                libc::SECCOMP_RET_ALLOW
            );
        }
    }

    #[test]
    fn install_rejects_an_empty_program() {
        let empty = SeccompProgram {
            instructions: Vec::new(),
        };
        assert!(empty.is_empty());
        assert_eq!(empty.install(), Err(Errno::EINVAL));
    }

    // ---- Real behaviour in a forked child ----
    //
    // The test binary is multithreaded, so the child only makes raw syscalls and leaves
    // with `_exit`. It reports one bit per passed check through its exit status; bit 7
    // means setting up the filter failed.

    const SETUP_FAILED: u8 = 0x80;

    fn errno() -> i32 {
        Errno::last_raw()
    }

    /// Runs `checks` in a forked child under the default filter; returns its exit status.
    fn run_filtered(checks: fn() -> u8) -> i32 {
        let prog = filter();
        // SAFETY: the child only calls async-signal-safe functions and raw syscalls.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", Errno::last());
        if pid == 0 {
            // SAFETY: raw prctl and _exit; install does not allocate.
            unsafe {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    libc::_exit(i32::from(SETUP_FAILED));
                }
                if prog.install().is_err() {
                    libc::_exit(i32::from(SETUP_FAILED | 1));
                }
                libc::_exit(i32::from(checks()));
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(r, pid, "waitpid: {}", Errno::last());
        assert!(
            libc::WIFEXITED(status),
            "child did not exit normally: status {status:#x}"
        );
        libc::WEXITSTATUS(status)
    }

    fn assert_all_passed(status: i32, names: &[&str]) {
        assert_eq!(
            status & i32::from(SETUP_FAILED),
            0,
            "installing the filter failed in the child (status {status:#x})"
        );
        let failed: Vec<&str> = names
            .iter()
            .enumerate()
            .filter(|(bit, _)| status & (1 << bit) == 0)
            .map(|(_, n)| *n)
            .collect();
        assert!(failed.is_empty(), "failed checks: {failed:?}");
    }

    /// Raw `clone(flags)` with no new stack (fork-like). A child that appears exits at once;
    /// returns the syscall result and the errno.
    unsafe fn raw_clone(flags: libc::c_long) -> (libc::c_long, i32) {
        // SAFETY: fork semantics; the new child only calls _exit.
        let r = unsafe { libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) };
        if r == 0 {
            unsafe { libc::_exit(7) };
        }
        (r, errno())
    }

    /// Reaps `pid` and tells whether it exited with status 7.
    unsafe fn reaped_with_7(pid: libc::c_long) -> bool {
        let mut status = 0;
        // SAFETY: waiting for a child of the calling process.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
        r as libc::c_long == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 7
    }

    fn namespace_checks() -> u8 {
        let mut ok = 0u8;
        // SAFETY: raw syscalls only; see run_filtered.
        unsafe {
            // 0: unshare(CLONE_NEWUTS) fails with EPERM.
            if libc::unshare(libc::CLONE_NEWUTS) == -1 && errno() == libc::EPERM {
                ok |= 1 << 0;
            }
            // 1: unshare(0), a no-op the kernel always allows, fails too: it is the filter.
            if libc::unshare(0) == -1 && errno() == libc::EPERM {
                ok |= 1 << 1;
            }
            // 2: setns(-1, 0) fails with EPERM (the kernel itself would say EBADF).
            if libc::setns(-1, 0) == -1 && errno() == libc::EPERM {
                ok |= 1 << 2;
            }
            // 3: clone with CLONE_NEWNS fails with EPERM.
            let (r, e) =
                raw_clone(libc::CLONE_NEWNS as libc::c_long | libc::SIGCHLD as libc::c_long);
            if r == -1 && e == libc::EPERM {
                ok |= 1 << 3;
            } else if r > 0 {
                reaped_with_7(r);
            }
            // 4: a plain fork-like clone still works.
            let (r, _) = raw_clone(libc::SIGCHLD as libc::c_long);
            if r > 0 && reaped_with_7(r) {
                ok |= 1 << 4;
            }
            // 5: clone3 fails with ENOSYS (the kernel itself would say EINVAL for size 0).
            if libc::syscall(libc::SYS_clone3, 0, 0) == -1 && errno() == libc::ENOSYS {
                ok |= 1 << 5;
            }
            // 6: getpid still works.
            if libc::syscall(libc::SYS_getpid) > 0 {
                ok |= 1 << 6;
            }
        }
        ok
    }

    fn other_checks() -> u8 {
        const KEYCTL_GET_KEYRING_ID: libc::c_long = 0;
        const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;
        let mut ok = 0u8;
        // SAFETY: raw syscalls only; see run_filtered.
        unsafe {
            // 0: keyctl fails with EPERM.
            let r = libc::syscall(
                libc::SYS_keyctl,
                KEYCTL_GET_KEYRING_ID,
                KEY_SPEC_SESSION_KEYRING,
                0,
            );
            if r == -1 && errno() == libc::EPERM {
                ok |= 1 << 0;
            }
            // 1: the personality query is allowed.
            if libc::syscall(libc::SYS_personality, 0xffff_ffffu32 as libc::c_long) >= 0 {
                ok |= 1 << 1;
            }
            // 2: ADDR_NO_RANDOMIZE is not.
            if libc::syscall(libc::SYS_personality, 0x0040000 as libc::c_long) == -1
                && errno() == libc::EPERM
            {
                ok |= 1 << 2;
            }
            // 3: mount fails with EPERM whatever the arguments.
            if libc::syscall(libc::SYS_mount, 0, 0, 0, 0, 0) == -1 && errno() == libc::EPERM {
                ok |= 1 << 3;
            }
            // 4: getpid still works.
            if libc::getpid() > 0 {
                ok |= 1 << 4;
            }
        }
        ok
    }

    #[test]
    fn installed_filter_denies_namespaces_in_child() {
        let status = run_filtered(namespace_checks);
        assert_all_passed(
            status,
            &[
                "unshare(CLONE_NEWUTS) -> EPERM",
                "unshare(0) -> EPERM",
                "setns -> EPERM",
                "clone(CLONE_NEWNS) -> EPERM",
                "clone(SIGCHLD) works",
                "clone3 -> ENOSYS",
                "getpid works",
            ],
        );
    }

    #[test]
    fn installed_filter_denies_host_facilities_in_child() {
        let status = run_filtered(other_checks);
        assert_all_passed(
            status,
            &[
                "keyctl -> EPERM",
                "personality(query) works",
                "personality(ADDR_NO_RANDOMIZE) -> EPERM",
                "mount -> EPERM",
                "getpid works",
            ],
        );
    }
}
