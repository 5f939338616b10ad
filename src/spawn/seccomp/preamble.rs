//! The fixed preamble in front of seccompiler's program: `clone3` fails with
//! `ENOSYS`, and x32 syscall numbers kill the process (see the module docs of
//! `seccomp` for why seccompiler cannot express either).

use seccompiler::BackendError;

use super::{BpfInsn, arch};

// Classic BPF opcodes used by the preamble (and by the test interpreter).
pub(super) const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
pub(super) const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
pub(super) const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
pub(super) const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

// Offsets into the kernel's `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

pub(super) const RET_ERRNO_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | (libc::ENOSYS as u32);

/// The checks seccompiler cannot express (see the module docs). Every path either returns
/// or falls through to the instruction after the preamble, where seccompiler's program
/// starts with its own architecture check.
pub(super) fn preamble() -> Result<Vec<BpfInsn>, BackendError> {
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
    p[1].jf = u8::try_from(p.len() - 2).map_err(|_| BackendError::FilterTooLarge(p.len()))?;
    Ok(p)
}
