//! The filter's decisions, checked by interpreting its BPF program.

use caps::Capability as C;

use super::compile::{JA, JEQ_K, JGE_K, JGT_K, LD_W_ABS, RET_K, ret_errno};
use super::policy::{KNOWN_DENIED, NEVER};
use super::*;

const ALU_AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

/// The capabilities a unit keeps by default.
fn default_caps() -> BTreeSet<Capability> {
    crate::unit::ContainerSpec::default().capabilities
}

fn with(extra: &[C]) -> BTreeSet<Capability> {
    let mut caps = default_caps();
    caps.extend(extra.iter().map(|&c| Capability(c)));
    caps
}

fn all_caps() -> BTreeSet<Capability> {
    caps::all().into_iter().map(Capability).collect()
}

fn filter(caps: &BTreeSet<Capability>) -> SeccompProgram {
    SeccompProgram::for_capabilities(caps).expect("filter compiles")
}

fn filter_on_kernel(caps: &BTreeSet<Capability>, kernel: (u32, u32)) -> SeccompProgram {
    let policy = policy_for(caps, Some(kernel)).expect("policy");
    let instructions = compile::program(&policy).expect("compiles");
    SeccompProgram { instructions }
}

fn nr(name: &str) -> u32 {
    numbers::number(name).unwrap_or_else(|| panic!("{name} has no number here"))
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

fn call(prog: &SeccompProgram, nr: u32, arg0: u64) -> u32 {
    eval(prog, arch::AUDIT, nr, [arg0, 0, 0, 0, 0, 0])
}

/// The answer to syscall `name` with all-zero arguments.
fn answer(prog: &SeccompProgram, name: &str) -> u32 {
    call(prog, nr(name), 0)
}

#[test]
fn filter_compiles_and_round_trips() {
    let prog = filter(&default_caps());
    assert!(!prog.is_empty());
    assert!(prog.len() <= libc::BPF_MAXINSNS as usize);
    let json = serde_json::to_string(&prog).unwrap();
    assert!(json.starts_with("{\"instructions\":[["), "{json}");
    let back: SeccompProgram = serde_json::from_str(&json).unwrap();
    assert_eq!(back, prog);
    assert_ne!(
        prog,
        filter(&with(&[C::CAP_SYS_ADMIN])),
        "one program per set"
    );
}

/// Read from the file itself, not through `profile`: Docker's first rule, which
/// allows its names on every host.
fn docker_unconditional() -> Vec<String> {
    let file: serde_json::Value = serde_json::from_str(profile::DOCKER_DEFAULT).unwrap();
    let rule = &file["syscalls"][0];
    assert_eq!(rule["action"], "SCMP_ACT_ALLOW");
    assert!(rule.get("includes").is_none_or(|v| v.is_null()));
    assert!(rule.get("excludes").is_none_or(|v| v.is_null()));
    let names = rule["names"].as_array().unwrap();
    names
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_syscall_docker_allows_outright_is_allowed() {
    let prog = filter(&default_caps());
    let names = docker_unconditional();
    assert!(names.len() > 300, "{}", names.len());
    let mut checked = 0;
    for name in &names {
        if let Some(nr) = numbers::number(name) {
            assert_eq!(call(&prog, nr, 0), ALLOW, "{name}");
            checked += 1;
        }
    }
    assert!(checked > 250, "only {checked} names known here");
    // And what a program needs whatever the list says.
    for name in [
        "read",
        "write",
        "openat",
        "close",
        "mmap",
        "mprotect",
        "brk",
        "futex",
        "execve",
        "wait4",
        "exit_group",
        "rt_sigaction",
        "getpid",
        "ptrace",
        "process_vm_readv",
        "setresuid",
        "capset",
        "prctl",
        "chdir",
        "epoll_pwait",
        "pidfd_open",
        "rseq",
    ] {
        assert_eq!(answer(&prog, name), ALLOW, "{name}");
    }
}

#[test]
fn other_syscalls_are_eperm() {
    let prog = filter(&default_caps());
    for name in KNOWN_DENIED {
        if let Some(nr) = numbers::number(name) {
            assert_eq!(call(&prog, nr, 0), EPERM, "{name}");
        }
    }
    for name in [
        "io_uring_setup",
        "io_uring_enter",
        "kcmp",
        "open_tree_attr",
        "mount",
        "umount2",
        "unshare",
        "setns",
        "bpf",
        "keyctl",
        "pivot_root",
        "perf_event_open",
        "open_by_handle_at",
        "mount_setattr",
        "pidfd_getfd",
        "reboot",
        "init_module",
        "settimeofday",
        "userfaultfd",
    ] {
        assert_eq!(answer(&prog, name), EPERM, "{name}");
    }
}

/// (capability, syscall it unlocks), as Docker ties them.
const GATED: &[(C, &str)] = &[
    (C::CAP_SYS_ADMIN, "mount"),
    (C::CAP_SYS_ADMIN, "umount2"),
    (C::CAP_SYS_ADMIN, "unshare"),
    (C::CAP_SYS_ADMIN, "setns"),
    (C::CAP_SYS_ADMIN, "fsopen"),
    (C::CAP_SYS_ADMIN, "fsconfig"),
    (C::CAP_SYS_ADMIN, "fsmount"),
    (C::CAP_SYS_ADMIN, "fspick"),
    (C::CAP_SYS_ADMIN, "move_mount"),
    (C::CAP_SYS_ADMIN, "open_tree"),
    (C::CAP_SYS_ADMIN, "sethostname"),
    (C::CAP_SYS_ADMIN, "quotactl"),
    (C::CAP_SYS_ADMIN, "fanotify_init"),
    (C::CAP_SYS_PTRACE, "kcmp"),
    (C::CAP_SYS_PTRACE, "pidfd_getfd"),
    (C::CAP_SYS_PTRACE, "process_madvise"),
    (C::CAP_DAC_READ_SEARCH, "open_by_handle_at"),
    (C::CAP_SYS_BOOT, "reboot"),
    (C::CAP_SYS_MODULE, "finit_module"),
    (C::CAP_SYS_PACCT, "acct"),
    (C::CAP_SYS_TIME, "clock_settime"),
    (C::CAP_SYS_TTY_CONFIG, "vhangup"),
    (C::CAP_SYS_NICE, "mbind"),
    (C::CAP_SYSLOG, "syslog"),
    (C::CAP_BPF, "bpf"),
    (C::CAP_PERFMON, "perf_event_open"),
];

#[test]
fn capability_gated_syscalls_flip_with_the_capability() {
    let without = filter(&default_caps());
    for &(cap, name) in GATED {
        let prog = filter(&with(&[cap]));
        assert_eq!(answer(&without, name), EPERM, "{name} without {cap}");
        assert_eq!(answer(&prog, name), ALLOW, "{name} with {cap}");
    }
    // sys_chroot is a default capability, as in Docker.
    let mut no_chroot = default_caps();
    no_chroot.remove(&Capability(C::CAP_SYS_CHROOT));
    assert_eq!(answer(&without, "chroot"), ALLOW);
    assert_eq!(answer(&filter(&no_chroot), "chroot"), EPERM);
}

#[test]
fn sup_denies_changing_existing_mounts_even_with_every_capability() {
    let prog = filter(&all_caps());
    for name in NEVER {
        assert_eq!(answer(&prog, name), EPERM, "{name}");
    }
    assert_eq!(answer(&prog, "mount"), ALLOW);
    for name in ["io_uring_setup", "keyctl", "kexec_load", "userfaultfd"] {
        assert_eq!(answer(&prog, name), EPERM, "{name}");
    }
}

#[test]
fn ptrace_needs_sys_ptrace_before_kernel_4_8() {
    for name in ["ptrace", "process_vm_readv", "process_vm_writev"] {
        let old = filter_on_kernel(&default_caps(), (4, 4));
        assert_eq!(answer(&old, name), EPERM, "{name} on 4.4");
        let traced = filter_on_kernel(&with(&[C::CAP_SYS_PTRACE]), (4, 4));
        assert_eq!(
            answer(&traced, name),
            ALLOW,
            "{name} on 4.4 with sys_ptrace"
        );
        let new = filter_on_kernel(&default_caps(), (4, 8));
        assert_eq!(answer(&new, name), ALLOW, "{name} on 4.8");
    }
}

const FORK: u64 = libc::SIGCHLD as u64;
const THREAD: u64 = (libc::CLONE_VM
    | libc::CLONE_FS
    | libc::CLONE_FILES
    | libc::CLONE_SIGHAND
    | libc::CLONE_THREAD
    | libc::CLONE_SYSVSEM
    | libc::CLONE_SETTLS
    | libc::CLONE_PARENT_SETTID
    | libc::CLONE_CHILD_CLEARTID) as u64;
const NAMESPACE_FLAGS: [libc::c_int; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
];

#[test]
fn clone_is_judged_by_its_flags_and_clone3_is_enosys() {
    let prog = filter(&default_caps());
    let clone = nr("clone");
    for flags in [0, FORK, THREAD, FORK | 0xffff_ffff_0000_0000] {
        assert_eq!(call(&prog, clone, flags), ALLOW, "{flags:#x}");
    }
    for flag in NAMESPACE_FLAGS {
        let flags = flag as u32 as u64 | FORK;
        assert_eq!(call(&prog, clone, flags), EPERM, "{flags:#x}");
    }
    assert_eq!(answer(&prog, "clone3"), ENOSYS);

    let admin = filter(&with(&[C::CAP_SYS_ADMIN]));
    let new_user = libc::CLONE_NEWUSER as u64 | FORK;
    assert_eq!(call(&admin, clone, new_user), ALLOW);
    assert_eq!(answer(&admin, "clone3"), ALLOW);
}

#[test]
fn personality_allows_only_the_usual_personas() {
    let prog = filter(&default_caps());
    let p = nr("personality");
    for persona in [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff] {
        assert_eq!(call(&prog, p, persona), ALLOW, "{persona:#x}");
    }
    // ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, PER_BSD.
    for persona in [0x0040000, 0x0400000, 0x6] {
        assert_eq!(call(&prog, p, persona), EPERM, "{persona:#x}");
    }
}

#[test]
fn socket_refuses_af_alg_and_af_vsock_only() {
    let prog = filter(&default_caps());
    let socket = nr("socket");
    let (af_alg, af_vsock) = (libc::AF_ALG as u64, libc::AF_VSOCK as u64);
    assert_eq!((af_alg, af_vsock), (38, 40));
    for family in [
        af_alg,
        af_vsock,
        1 << 32 | af_alg,
        0xffff_ffff_0000_0000 | af_vsock,
    ] {
        assert_eq!(call(&prog, socket, family), EPERM, "{family:#x}");
    }
    for family in [
        libc::AF_UNIX,
        libc::AF_INET,
        libc::AF_INET6,
        libc::AF_NETLINK,
    ] {
        assert_eq!(call(&prog, socket, family as u64), ALLOW, "{family}");
    }
    for family in [0, 37, 39, 41, 46, 0xffff_ffff] {
        assert_eq!(call(&prog, socket, family), ALLOW, "{family}");
    }
    assert_eq!(answer(&prog, "socketpair"), ALLOW);
}

#[test]
fn syscalls_newer_than_the_list_are_enosys() {
    for caps in [default_caps(), all_caps()] {
        let prog = filter(&caps);
        let ceiling = nr("open_tree_attr");
        assert_eq!(call(&prog, ceiling, 0), EPERM, "the newest known");
        // file_getattr (Linux 6.17), anything later, and syscall(-1).
        for newer in [ceiling + 1, 469, 600, 1000, 0x3fff_ffff, u32::MAX] {
            assert_eq!(call(&prog, newer, 0), ENOSYS, "{newer}");
        }
    }
    let policy = policy_for(&default_caps(), Some((6, 18))).unwrap();
    assert_eq!(policy.ceiling, 467);
    assert_eq!(policy.default_errno, libc::EPERM as u16);
    assert_eq!(ret_errno(libc::ENOSYS as u16), ENOSYS);
}

#[test]
fn foreign_abis_are_killed() {
    let prog = filter(&default_caps());
    // AUDIT_ARCH_I386 and AUDIT_ARCH_ARM: 32-bit compat entry points.
    for foreign in [3 | 0x4000_0000, 40 | 0x4000_0000] {
        assert_eq!(eval(&prog, foreign, nr("getpid"), [0; 6]), KILL);
    }
    if let Some(x32) = arch::X32_SYSCALL_BIT {
        for name in ["keyctl", "getpid", "open_tree_attr"] {
            let n = nr(name) | x32;
            assert_eq!(call(&prog, n, 0), KILL, "{n:#x}");
        }
    }
}

#[test]
fn every_known_name_is_docker_allowed_or_denied_on_purpose() {
    let docker = profile::Profile::docker().unwrap();
    let names = docker.names();
    for (name, _) in numbers::TABLE {
        assert!(
            names.contains(name) || KNOWN_DENIED.contains(name),
            "{name}: decide whether it is allowed"
        );
    }
    for name in KNOWN_DENIED.iter().chain(NEVER) {
        assert!(!docker_unconditional().iter().any(|n| n == name), "{name}");
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

#[test]
fn every_number_gets_the_policy_answer_from_a_compact_program() {
    use super::policy::Action;
    for caps in [default_caps(), all_caps()] {
        let policy = policy_for(&caps, Some((6, 1))).expect("policy");
        let prog = SeccompProgram {
            instructions: compile::program(&policy).expect("compiles"),
        };
        for nr in 0..=policy.ceiling + 16 {
            let expected = match policy.actions.get(&nr) {
                _ if nr > policy.ceiling => ENOSYS,
                Some(Action::Allow) => ALLOW,
                Some(Action::Errno(e)) => ret_errno(*e),
                // Judged by the arguments: the other tests look at those.
                Some(Action::AllowIf(_)) => continue,
                None => ret_errno(policy.default_errno),
            };
            assert_eq!(call(&prog, nr, 0), expected, "syscall {nr}");
        }
        // Docker's profile as ranges of numbers: a few hundred instructions for
        // the kernel to compile at each start and to walk at each syscall, not
        // the 1597 of one seccompiler rule per syscall.
        assert!(prog.len() < 250, "{} instructions", prog.len());
    }
}
