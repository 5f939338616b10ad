//! The deny list: which syscalls fail with `EPERM`, and the argument rules for
//! `clone` and `personality`, as seccompiler rules (see the module docs of `seccomp`
//! for what is deliberately allowed).

use std::collections::BTreeMap;

use seccompiler::{BackendError, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

use super::arch;

/// Syscalls denied outright with `EPERM` on every supported architecture.
pub(super) const DENY: &[libc::c_long] = &[
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
pub(super) const CLONE_NEW_FLAGS: &[libc::c_int] = &[
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
pub(super) const ALLOWED_PERSONAS: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// The rules by syscall number; a syscall with an empty rule list is denied
/// whatever its arguments.
pub(super) fn rules() -> Result<BTreeMap<i64, Vec<SeccompRule>>, BackendError> {
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
    Ok(rules)
}
