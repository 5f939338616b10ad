//! sup's policy: Docker's default profile applied to a unit's capabilities, with
//! sup's changes, as an action per syscall number of the target architecture.
//! Pure: `compile` turns a [`Policy`] into BPF.

use std::collections::{BTreeMap, BTreeSet};

use super::profile::{ArgCmp, CmpOp, Host, Profile, Verdict};

/// Denied whatever the capabilities, although Docker allows them with `CAP_SYS_ADMIN`.
/// Their only use is to change the attributes of mounts that already exist (clear
/// read-only, idmap, propagation): with them a unit that keeps `sys_admin` reopened a
/// `readonly = true` bind writable (issue 11). A unit that needs them turns
/// `seccomp` off. (This closes that direct path, not every one: see
/// docs/isolation.md on `sys_admin`.)
pub(super) const NEVER: &[&str] = &["mount_setattr", "open_tree_attr"];

/// Syscalls Docker's profile leaves out, named here so that they count as known: they
/// fail with `EPERM` like everything else not allowed, never with `ENOSYS` (which only
/// syscalls newer than every name sup knows get). Every name in the syscall tables is
/// either in Docker's profile or here (a test checks), so a table update forces a
/// decision.
pub(super) const KNOWN_DENIED: &[&str] = &[
    // Kernel keyrings are not namespaced.
    "add_key",
    "keyctl",
    "request_key",
    // Replacing or extending the running kernel.
    "kexec_file_load",
    "kexec_load",
    // io_uring bypasses syscall filtering and has a long CVE record (Docker removed it
    // in 2023).
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    // NUMA page moves across processes.
    "migrate_pages",
    "move_pages",
    // Mount attributes and the root (see NEVER for the first).
    "open_tree_attr",
    "pivot_root",
    // Host-wide swap.
    "swapoff",
    "swapon",
    // User-space page faults widen kernel race windows.
    "userfaultfd",
    // Obsolete or unimplemented on current kernels.
    "_sysctl",
    "afs_syscall",
    "create_module",
    "get_kernel_syms",
    "getpmsg",
    "nfsservctl",
    "putpmsg",
    "query_module",
    "security",
    "sysfs",
    "tuxcall",
    "uselib",
    "ustat",
    "vserver",
];

/// Arguments the kernel reads as 32-bit values (`int` or `unsigned int`; `clone`
/// uses the lower half of its flags), compared on their low 32 bits. libseccomp,
/// and so Docker, compares all 64 bits, so `socket(0x1_0000_0026, ...)` (AF_ALG with
/// a high bit set) passes Docker's `family > 40` rule while the kernel creates an
/// AF_ALG socket. Any other argument is compared on all 64 bits.
pub(super) const LOW_32_BITS: &[(&str, u8)] = &[("clone", 0), ("personality", 0), ("socket", 0)];

/// One argument condition, ready to compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cond {
    pub arg: u8,
    /// Compare the low 32 bits only (see [`LOW_32_BITS`]).
    pub low32: bool,
    pub op: CmpOp,
    pub value: u64,
    pub value_two: u64,
}

/// What the filter does with one syscall number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    Allow,
    Errno(u16),
    /// Allowed when one of the condition lists holds (each list ANDed), else the
    /// default errno.
    AllowIf(Vec<Vec<Cond>>),
}

/// The filter's decisions for one architecture and capability set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Policy {
    /// Syscalls that are not simply denied with `default_errno`.
    pub actions: BTreeMap<u32, Action>,
    /// The errno of every other syscall up to `ceiling` (`EPERM`).
    pub default_errno: u16,
    /// The highest syscall number sup knows by name; anything above is newer than
    /// the lists and fails with `ENOSYS`, so that libc falls back to older calls.
    pub ceiling: u32,
}

/// sup's policy for `host`, with syscall names resolved by `number` (names it does
/// not know, e.g. other architectures' calls, are skipped).
pub(super) fn build(
    profile: &Profile,
    host: &Host,
    number: impl Fn(&str) -> Option<u32>,
) -> Result<Policy, String> {
    let mut actions = BTreeMap::new();
    for (name, verdict) in profile.verdicts(host) {
        if NEVER.contains(&name.as_str()) {
            continue;
        }
        let Some(nr) = number(&name) else { continue };
        let action = match verdict {
            Verdict::Allow => Action::Allow,
            Verdict::Errno(e) => Action::Errno(e),
            Verdict::AllowIf(alternatives) => Action::AllowIf(
                alternatives
                    .iter()
                    .map(|all| all.iter().map(|a| cond(&name, a)).collect())
                    .collect(),
            ),
        };
        if actions.insert(nr, action).is_some() {
            return Err(format!("seccomp: two names for syscall {nr} ({name})"));
        }
    }
    let known: BTreeSet<&str> = profile
        .names()
        .into_iter()
        .chain(KNOWN_DENIED.iter().copied())
        .collect();
    let ceiling = known
        .iter()
        .filter_map(|n| number(n))
        .max()
        .ok_or("seccomp: no syscall of the profile is known on this architecture")?;
    Ok(Policy {
        actions,
        default_errno: profile.default_errno,
        ceiling,
    })
}

fn cond(name: &str, a: &ArgCmp) -> Cond {
    Cond {
        arg: a.index,
        low32: LOW_32_BITS.contains(&(name, a.index)),
        op: a.op,
        value: a.value,
        value_two: a.value_two,
    }
}

/// The running kernel's (major, minor), from `/proc/sys/kernel/osrelease`.
pub(super) fn running_kernel() -> Option<(u32, u32)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    super::profile::parse_version(&release)
}
