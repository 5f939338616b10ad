//! Syscall numbers by name for the target architecture, as data: `x86_64.rs` and
//! `aarch64.rs` are written by `generate.py` beside this file, which names the
//! sources (seccompiler 0.5.0's tables of Linux 6.12, plus the calls of Linux
//! 6.13-6.15). A name the table does not know is skipped by the policy, as runc
//! skips names libseccomp cannot resolve.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(target_arch = "aarch64")]
pub(super) use aarch64::TABLE;
#[cfg(target_arch = "x86_64")]
pub(super) use x86_64::TABLE;

/// The number of syscall `name` on this architecture.
pub(super) fn number(name: &str) -> Option<u32> {
    let i = TABLE.binary_search_by(|(n, _)| (*n).cmp(name)).ok()?;
    TABLE.get(i).map(|&(_, nr)| nr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_by_name_and_numbers_are_unique() {
        assert!(TABLE.windows(2).all(|w| w[0].0 < w[1].0));
        let mut numbers: Vec<u32> = TABLE.iter().map(|&(_, nr)| nr).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), TABLE.len());
    }

    /// An independent source for the numbers: the libc crate's constants.
    #[test]
    fn numbers_agree_with_libc() {
        let cases: &[(&str, libc::c_long)] = &[
            ("read", libc::SYS_read),
            ("write", libc::SYS_write),
            ("openat", libc::SYS_openat),
            ("close", libc::SYS_close),
            ("execve", libc::SYS_execve),
            ("clone", libc::SYS_clone),
            ("clone3", libc::SYS_clone3),
            ("socket", libc::SYS_socket),
            ("personality", libc::SYS_personality),
            ("ptrace", libc::SYS_ptrace),
            ("kcmp", libc::SYS_kcmp),
            ("mount", libc::SYS_mount),
            ("umount2", libc::SYS_umount2),
            ("unshare", libc::SYS_unshare),
            ("setns", libc::SYS_setns),
            ("bpf", libc::SYS_bpf),
            ("keyctl", libc::SYS_keyctl),
            ("io_uring_setup", libc::SYS_io_uring_setup),
            ("io_uring_enter", libc::SYS_io_uring_enter),
            ("io_uring_register", libc::SYS_io_uring_register),
            ("open_tree", libc::SYS_open_tree),
            ("move_mount", libc::SYS_move_mount),
            ("fsopen", libc::SYS_fsopen),
            ("mount_setattr", libc::SYS_mount_setattr),
            ("pidfd_open", libc::SYS_pidfd_open),
            ("pidfd_getfd", libc::SYS_pidfd_getfd),
            ("process_vm_readv", libc::SYS_process_vm_readv),
            ("landlock_create_ruleset", libc::SYS_landlock_create_ruleset),
            ("futex_waitv", libc::SYS_futex_waitv),
            ("mseal", libc::SYS_mseal),
            ("rseq", libc::SYS_rseq),
            ("statx", libc::SYS_statx),
            ("wait4", libc::SYS_wait4),
            ("exit_group", libc::SYS_exit_group),
        ];
        for &(name, nr) in cases {
            assert_eq!(number(name), u32::try_from(nr).ok(), "{name}");
        }
        assert_eq!(number("no_such_call"), None);
        // Newer than libc's tables: the same number on every architecture.
        assert_eq!(number("open_tree_attr"), Some(467));
    }
}
