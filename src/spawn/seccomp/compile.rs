//! A [`Policy`] as a classic BPF program: a short preamble written here, then the
//! allowlist as seccompiler compiles it (see the module docs of `seccomp` for why
//! both).

use std::collections::BTreeMap;

use seccompiler::{
    BackendError, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule,
};

use super::policy::{Action, Cond, Policy};
use super::profile::CmpOp;
use super::{BpfInsn, arch};

// Classic BPF opcodes used by the preamble (and by the test interpreter).
pub(super) const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
pub(super) const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
pub(super) const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
pub(super) const JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
pub(super) const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
pub(super) const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;

// Offsets into the kernel's `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

/// The return value that fails a syscall with `errno`.
pub(super) fn ret_errno(errno: u16) -> u32 {
    libc::SECCOMP_RET_ERRNO | (u32::from(errno) & libc::SECCOMP_RET_DATA)
}

/// The whole program: preamble, then seccompiler's allowlist.
pub(super) fn program(policy: &Policy) -> Result<Vec<BpfInsn>, String> {
    let mut instructions = preamble(policy)?;
    let body = allowlist(policy)?;
    instructions.extend(body.into_iter().map(|i| BpfInsn {
        code: i.code,
        jt: i.jt,
        jf: i.jf,
        k: i.k,
    }));
    if instructions.len() > libc::BPF_MAXINSNS as usize {
        return Err(format!(
            "{} instructions, more than the kernel's {}",
            instructions.len(),
            libc::BPF_MAXINSNS
        ));
    }
    Ok(instructions)
}

/// What one seccompiler filter cannot say: x32 numbers kill, numbers above the
/// ceiling get `ENOSYS`, and syscalls with an errno of their own (`clone3` ->
/// `ENOSYS`) get it. Then the syscalls allowed whatever their arguments, as ranges
/// of consecutive numbers (three instructions a range): seccompiler spends about
/// four instructions on each syscall, and the kernel compiles the whole program at
/// every container start (1597 instructions took about 1 ms) and walks it at
/// every syscall. Every path returns or falls through to the instruction after
/// the preamble, where seccompiler's program (the syscalls judged by their
/// arguments) starts with its own architecture check (which kills a foreign ABI).
fn preamble(policy: &Policy) -> Result<Vec<BpfInsn>, String> {
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
        // Native architecture: over the jump to the end (a long one, patched below).
        jump(JEQ_K, arch::AUDIT, 1, 0),
        stmt(JA, 0),
        stmt(LD_W_ABS, DATA_NR),
    ];
    if let Some(x32) = arch::X32_SYSCALL_BIT {
        // nr >= x32 bit and not -1: kill. (-1 goes on to ENOSYS, as the kernel says.)
        p.push(jump(JGE_K, x32, 0, 2));
        p.push(jump(JEQ_K, u32::MAX, 1, 0));
        p.push(stmt(RET_K, libc::SECCOMP_RET_KILL_PROCESS));
    }
    p.push(jump(JGT_K, policy.ceiling, 0, 1));
    p.push(stmt(RET_K, ret_errno(libc::ENOSYS as u16)));
    for (&nr, action) in &policy.actions {
        if let Action::Errno(e) = action {
            p.push(jump(JEQ_K, nr, 0, 1));
            p.push(stmt(RET_K, ret_errno(*e)));
        }
    }
    for (first, last) in allowed_ranges(policy) {
        p.push(jump(JGE_K, first, 0, 2));
        p.push(jump(JGT_K, last, 1, 0));
        p.push(stmt(RET_K, libc::SECCOMP_RET_ALLOW));
    }
    // The jump at instruction 2 lands at 2 + 1 + k; make that p.len().
    p[2].k = u32::try_from(p.len() - 3).map_err(|_| "seccomp preamble too long".to_string())?;
    Ok(p)
}

/// The syscalls allowed outright, as ranges `(first, last)` of consecutive numbers.
fn allowed_ranges(policy: &Policy) -> Vec<(u32, u32)> {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for (&nr, action) in &policy.actions {
        if !matches!(action, Action::Allow) {
            continue;
        }
        match ranges.last_mut() {
            Some((_, last)) if last.checked_add(1) == Some(nr) => *last = nr,
            _ => ranges.push((nr, nr)),
        }
    }
    ranges
}

/// The syscalls allowed by their arguments as one seccompiler filter: match
/// allows, anything else gets the default errno (the preamble has already allowed
/// the syscalls allowed outright).
fn allowlist(policy: &Policy) -> Result<BpfProgram, String> {
    let backend = |e: BackendError| e.to_string();
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (&nr, action) in &policy.actions {
        let chain = match action {
            Action::Errno(_) | Action::Allow => continue,
            Action::AllowIf(alternatives) => alternatives
                .iter()
                .map(|all| {
                    let conditions = all.iter().map(condition).collect::<Result<_, _>>()?;
                    SeccompRule::new(conditions).map_err(backend)
                })
                .collect::<Result<_, String>>()?,
        };
        rules.insert(i64::from(nr), chain);
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(u32::from(policy.default_errno)),
        SeccompAction::Allow,
        arch::TARGET,
    )
    .map_err(backend)?;
    filter.try_into().map_err(backend)
}

/// One condition in seccompiler's terms. libseccomp's `MASKED_EQ` is `(arg & value)
/// == value_two`; seccompiler's `MaskedEq(mask)` compares `arg & mask` with
/// `operand & mask`, the same when `value_two` has no bit outside the mask.
fn condition(c: &Cond) -> Result<SeccompCondition, String> {
    let unsupported = || format!("seccomp: unsupported argument condition {c:?}");
    let (op, operand) = match c.op {
        CmpOp::Eq => (SeccompCmpOp::Eq, c.value),
        CmpOp::Ne => (SeccompCmpOp::Ne, c.value),
        CmpOp::Lt => (SeccompCmpOp::Lt, c.value),
        CmpOp::Le => (SeccompCmpOp::Le, c.value),
        CmpOp::Gt => (SeccompCmpOp::Gt, c.value),
        CmpOp::Ge => (SeccompCmpOp::Ge, c.value),
        CmpOp::MaskedEq if c.value_two & !c.value == 0 => {
            (SeccompCmpOp::MaskedEq(c.value), c.value_two)
        }
        CmpOp::MaskedEq => return Err(unsupported()),
    };
    let len = if c.low32 {
        // A value that does not fit would be compared by its low half only.
        if c.value > u64::from(u32::MAX) || operand > u64::from(u32::MAX) {
            return Err(unsupported());
        }
        SeccompCmpArgLen::Dword
    } else {
        SeccompCmpArgLen::Qword
    };
    SeccompCondition::new(c.arg, len, op, operand).map_err(|e| e.to_string())
}
