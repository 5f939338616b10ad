//! Issue 11's attacks, tried by the probe from inside the three shapes of unit a
//! user writes: the default (the host's files, new mnt/pid/uts/ipc/cgroup
//! namespaces), one with a user namespace, and one with its own rootfs. Each
//! attack must fail; each must succeed where the unit relaxes the protection that
//! stops it (in a default unit, one key at a time), so every probe is shown to be
//! able to see an escape.

use std::collections::BTreeMap;

use crate::common::*;
use crate::kit::*;

/// What a protected root unit sees, attack by attack (a user namespace refuses
/// some sooner): the errno is the mechanism (`EROFS` a read-only mount, `EPERM` a
/// missing capability, the device allowlist or the seccomp filter, `ENOENT`
/// something not there).
fn protected(etc: &str) -> BTreeMap<String, String> {
    let mut want = verdicts(&[
        ("supd_status", "refused(ENOENT)"),
        ("cgroup_escape", "refused(EROFS)"),
        ("sys_write", "refused(EROFS)"),
        ("proc_sys_write", "refused(EROFS)"),
        ("mknod_block", "refused(EPERM)"),
        ("open_block", "refused(EPERM)"),
        ("packet_socket", "refused(EPERM)"),
        ("etc_write", etc),
        ("host_tmp", "refused(ENOENT)"),
        ("new_syscall", "refused(ENOSYS)"),
        ("syscall_1000", "refused(ENOSYS)"),
    ]);
    let denied = ["open_tree_attr", "mount_setattr", "io_uring_setup", "kcmp"];
    want.extend(all(&denied, "refused(EPERM)"));
    want
}

/// `want` with `attacks` let through: `ALLOWED`, or for a syscall whatever the
/// host's kernel itself answers.
fn let_through(mut want: BTreeMap<String, String>, attacks: &[&str]) -> BTreeMap<String, String> {
    let host = host_syscall_verdicts();
    for a in attacks {
        let v = host.get(*a).cloned().unwrap_or_else(|| "ALLOWED".into());
        want.insert(a.to_string(), v);
    }
    want
}

/// What `nobody` without capabilities gets.
fn nobody_refused() -> BTreeMap<String, String> {
    verdicts(&[
        ("read_shadow", "refused(EACCES)"),
        ("setuid_root", "refused(EPERM)"),
    ])
}

/// Whether the host's cgroup v2 hierarchy is the only one and is mounted with
/// `nsdelegate`: then a cgroup namespace alone keeps a process from moving to a
/// cgroup outside it, even through a writable cgroup file system.
fn cgroup_namespace_is_a_boundary() -> bool {
    let v2_only = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    v2_only
        && mounts
            .lines()
            .any(|l| l.split(' ').nth(4) == Some("/sys/fs/cgroup") && l.contains("nsdelegate"))
}

/// Each relaxation of a default unit: the unit's name, its `[container]` lines and
/// the attacks it must let through (and only those).
pub fn relaxations() -> Vec<(&'static str, String, Vec<&'static str>)> {
    // On cgroup v2 with nsdelegate the cgroup namespace refuses the move itself
    // (see the test); a v1 hierarchy has no such check.
    let in_cgroupns: Vec<&str> = if cgroup_namespace_is_a_boundary() {
        vec![]
    } else {
        vec!["cgroup_escape"]
    };
    vec![
        (
            "socket",
            "control_socket = true".into(),
            vec!["supd_status"],
        ),
        ("cgroups", "protect_cgroups = false".into(), in_cgroupns),
        (
            "cgroups_hostns",
            "protect_cgroups = false\nnamespaces = [\"mnt\", \"pid\", \"uts\", \"ipc\"]".into(),
            vec!["cgroup_escape"],
        ),
        (
            "kernel",
            "protect_kernel = false".into(),
            vec!["sys_write", "proc_sys_write"],
        ),
        (
            "devices",
            "private_devices = false".into(),
            vec!["mknod_block", "open_block"],
        ),
        ("net_raw", WITH_NET_RAW.into(), vec!["packet_socket"]),
        (
            "seccomp",
            "seccomp = false".into(),
            SYSCALL_ATTACKS.to_vec(),
        ),
        (
            "system",
            "protect_system = \"no\"".into(),
            vec!["etc_write"],
        ),
        ("tmp", "private_tmp = false".into(), vec!["host_tmp"]),
    ]
}

pub fn default_unit_refuses_every_attack_and_each_key_lets_its_own_through() {
    let sup = Sup::prepare(&[]);
    let scene = Scene::new(&sup);
    let probe = probe().display().to_string();
    let args = probe_args(&scene.options(&sup, None), ROOT_ATTACKS);
    let ids = probe_args(&[], IDENTITY_ATTACKS);
    let relaxed = relaxations();
    sup.write_unit("default", &probe_unit("", "", &probe, &args));
    for (name, key, _) in &relaxed {
        sup.write_unit(name, &probe_unit(key, "", &probe, &args));
    }
    let nobody = "user = \"nobody\"";
    sup.write_unit("nobody", &probe_unit("", nobody, &probe, &ids));
    sup.write_unit(
        "nobody_relaxed",
        &probe_unit(NOBODY_RELAXED, nobody, &probe, &ids),
    );
    let sup = sup.launch();

    let want = protected("refused(EROFS)");
    assert_eq!(seen(&sup, "default"), want, "a default unit");
    for (name, key, through) in &relaxed {
        let mut expected = let_through(want.clone(), through);
        if *name == "cgroups" && cgroup_namespace_is_a_boundary() {
            // The host's writable hierarchy is visible, but moving to a cgroup
            // outside the namespace fails (cgroup_attach_permissions: ENOENT).
            expected.insert("cgroup_escape".into(), "refused(ENOENT)".into());
        }
        assert_eq!(
            seen(&sup, name),
            expected,
            "a default unit with {key:?} lets exactly {through:?} through"
        );
    }
    assert_eq!(
        seen(&sup, "nobody"),
        nobody_refused(),
        "user = \"nobody\" holds no capability"
    );
    assert_eq!(
        seen(&sup, "nobody_relaxed"),
        all(IDENTITY_ATTACKS, "ALLOWED"),
        "with {NOBODY_RELAXED}"
    );
    drop(sup);
    drop(scene);
}

/// `[container]` lines of a unit with a user namespace.
const USERNS: &str = "namespaces = [\"user\", \"mnt\", \"pid\", \"uts\", \"ipc\", \"cgroup\"]\n\
                      userns_base = 200000";

pub fn user_namespace_unit_refuses_every_attack_even_with_the_keys_relaxed() {
    let sup = Sup::prepare(&[]);
    let scene = Scene::new(&sup);
    let probe = probe().display().to_string();
    let args = probe_args(&scene.options(&sup, None), ROOT_ATTACKS);
    let ids = probe_args(&[], IDENTITY_ATTACKS);
    let relaxed = format!("{USERNS}\n{}", all_relaxed());
    sup.write_unit("userns", &probe_unit(USERNS, "", &probe, &args));
    sup.write_unit("relaxed", &probe_unit(&relaxed, "", &probe, &args));
    let nobody = "user = \"nobody\"";
    sup.write_unit("nobody", &probe_unit(USERNS, nobody, &probe, &ids));
    let nobody_relaxed = format!("{USERNS}\n{NOBODY_RELAXED}");
    sup.write_unit(
        "nobody_relaxed",
        &probe_unit(&nobody_relaxed, nobody, &probe, &ids),
    );
    let sup = sup.launch();

    // Root in the container is uid 200000 on the host: the host's files (sysfs,
    // /proc/sys, the cgroup fs, /etc, the test's device node) belong to an
    // unmapped user and refuse it (EACCES) before a read-only mount is even
    // asked; devices and raw sockets need capabilities of the host's user
    // namespace.
    let mut want = protected("refused(EACCES)");
    for a in ["cgroup_escape", "sys_write", "proc_sys_write", "open_block"] {
        want.insert(a.into(), "refused(EACCES)".into());
    }
    assert_eq!(seen(&sup, "userns"), want, "a unit with a user namespace");
    // With every key relaxed the user namespace still stands in the way of all
    // but what needs no privilege: seeing the host's /tmp, and syscalls.
    let mut relaxed_want = let_through(want, &[&["host_tmp"][..], SYSCALL_ATTACKS].concat());
    relaxed_want.insert("supd_status".into(), "refused(EACCES)".into());
    assert_eq!(
        seen(&sup, "relaxed"),
        relaxed_want,
        "a unit with a user namespace and every key relaxed"
    );
    assert_eq!(
        seen(&sup, "nobody"),
        nobody_refused(),
        "nobody in a user namespace"
    );
    // Root of the user namespace is all setuid(0) reaches; the host's
    // /etc/shadow belongs to an unmapped user, whom dac_override does not cover.
    assert_eq!(
        seen(&sup, "nobody_relaxed"),
        verdicts(&[
            ("read_shadow", "refused(EACCES)"),
            ("setuid_root", "ALLOWED"),
        ]),
        "nobody in a user namespace with {NOBODY_RELAXED}"
    );
    drop(sup);
    drop(scene);
}

/// The host's `/sys`, with its cgroup hierarchies, bound into a rootfs in place
/// of the fresh sysfs, without a cgroup namespace (whose own view would cover
/// them): what a monitoring agent in an image asks for. The `[container]` key,
/// then the `[[mount]]`.
const HOST_SYS: (&str, &str) = (
    "namespaces = [\"mnt\", \"pid\", \"uts\", \"ipc\"]",
    "[[mount]]\ntype = \"bind\"\nsource = \"/sys\"\ntarget = \"/sys\"",
);

pub fn rootfs_unit_refuses_every_attack_and_relaxed_keys_let_theirs_through() {
    let sup = Sup::prepare(&[]);
    let scene = Scene::new(&sup);
    let root = busybox_rootfs(&sup.path().join("rootfs"));
    let etc = |name: &str, text: &str| {
        std::fs::write(root.join("etc").join(name), text).expect("rootfs /etc");
    };
    etc(
        "passwd",
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    );
    etc("group", "root:x:0:\nnogroup:x:65534:\n");
    etc("shadow", "root:*:19000:0:99999:7:::\n");
    set_mode(&root.join("etc/shadow"), 0o600);
    // The static probe, read-only, and the scene's scratch directory.
    let mounts = format!(
        "rootfs = {root:?}\n\
         [[mount]]\ntype = \"bind\"\nsource = {probe:?}\ntarget = \"/probe\"\nreadonly = true\n\
         [[mount]]\ntype = \"bind\"\nsource = {scratch:?}\ntarget = \"/data\"",
        probe = probe(),
        scratch = scene.scratch,
    );
    let args = probe_args(&scene.options(&sup, Some("/data")), ROOT_ATTACKS);
    let ids = probe_args(&[], IDENTITY_ATTACKS);
    let units = [
        ("rootfs", mounts.clone()),
        (
            "host_sys",
            format!("{}\n{mounts}\n{}", HOST_SYS.0, HOST_SYS.1),
        ),
        (
            "relaxed",
            format!(
                "{}\n{}\n{mounts}\n{}",
                all_relaxed(),
                HOST_SYS.0,
                HOST_SYS.1
            ),
        ),
    ];
    for (name, container) in &units {
        sup.write_unit(name, &probe_unit(container, "", "/probe", &args));
    }
    let nobody = "user = \"nobody\"";
    sup.write_unit("nobody", &probe_unit(&mounts, nobody, "/probe", &ids));
    sup.write_unit(
        "nobody_relaxed",
        &probe_unit(
            &format!("{NOBODY_RELAXED}\n{mounts}"),
            nobody,
            "/probe",
            &ids,
        ),
    );
    let sup = sup.launch();

    // The image has no /etc/hostname, and a /tmp of its own.
    let want = protected("refused(ENOENT)");
    assert_eq!(seen(&sup, "rootfs"), want, "a rootfs unit");
    assert_eq!(
        seen(&sup, "host_sys"),
        want,
        "protect_kernel and protect_cgroups also cover the host's /sys bound into a rootfs"
    );
    // supd's socket, the host's /etc and /tmp are not in the image whatever the
    // keys say (the control socket test binds the state directory in).
    let through = [
        &["cgroup_escape", "sys_write", "proc_sys_write"][..],
        &["mknod_block", "open_block", "packet_socket"],
        SYSCALL_ATTACKS,
    ]
    .concat();
    assert_eq!(
        seen(&sup, "relaxed"),
        let_through(want, &through),
        "a rootfs unit with every key relaxed"
    );
    assert_eq!(seen(&sup, "nobody"), nobody_refused(), "nobody in a rootfs");
    assert_eq!(
        seen(&sup, "nobody_relaxed"),
        all(IDENTITY_ATTACKS, "ALLOWED"),
        "nobody in a rootfs with {NOBODY_RELAXED} (the image's /etc/shadow)"
    );
    drop(sup);
    drop(scene);
}
