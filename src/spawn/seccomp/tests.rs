//! The default filter's decisions, checked by interpreting its BPF program.

use super::deny::{ALLOWED_PERSONAS, CLONE_NEW_FLAGS, DENY};
use super::preamble::{JEQ_K, JGE_K, LD_W_ABS, RET_ERRNO_ENOSYS, RET_K};
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

/// The program answers `want` to syscall `nr` with each of `arg0s` as its first argument.
fn assert_answers(
    prog: &SeccompProgram,
    nr: libc::c_long,
    arg0s: impl IntoIterator<Item = u64>,
    want: u32,
) {
    for arg0 in arg0s {
        assert_eq!(eval_native(prog, nr, arg0), want, "syscall {nr}, {arg0:#x}");
    }
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
    let allowed = [0, fork_like, thread_like, fork_like | 0xffff_ffff_0000_0000];
    assert_answers(&prog, libc::SYS_clone, allowed, libc::SECCOMP_RET_ALLOW);
    let new_ns = CLONE_NEW_FLAGS.iter().map(|&f| f as u32 as u64 | fork_like);
    assert_answers(&prog, libc::SYS_clone, new_ns, RET_EPERM);
}

#[test]
fn personality_allows_only_the_usual_personas() {
    let prog = filter();
    let allowed = ALLOWED_PERSONAS.iter().copied();
    assert_answers(
        &prog,
        libc::SYS_personality,
        allowed,
        libc::SECCOMP_RET_ALLOW,
    );
    let others = [0x0040000 /* ADDR_NO_RANDOMIZE */, 0x0400000, 0x1];
    assert_answers(&prog, libc::SYS_personality, others, RET_EPERM);
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
