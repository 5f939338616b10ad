//! The protections in the mount plan, checked as data: each key on its own, the
//! defaults of each unit shape (host view, rootfs, user namespace, no PID
//! namespace), and how they combine with the unit's mounts.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use super::cgroupfs::CgroupMount;
use super::plan::{Action, Missing, Op, Source, Target, plan};
use super::plan_tests::{bare, host, masking, planned, steps};
use super::protect::{HIDDEN_DIR_DATA, MASKED_PATHS, normalize};
use super::{Fs, HostFacts, LOCKED_DOWN, PlannedMount};
use crate::spawn::{Step, effective_mounts};
use crate::unit::{ContainerSpec, MountKind, Namespace, ProtectSystem, Protection};

/// The plan of `c` with its real default mounts.
fn plan_of(c: &ContainerSpec, host: &HostFacts) -> Vec<Op> {
    plan(c, &effective_mounts(c), host).expect("plan")
}

/// A hybrid host: two v1 hierarchies and the empty cgroup2.
fn hybrid() -> HostFacts {
    let v1 = |dir: &str| CgroupMount {
        dir: dir.into(),
        fs: Fs::Cgroup,
        options: dir.into(),
        links: Vec::new(),
    };
    HostFacts {
        cgroups: vec![
            v1("pids"),
            v1("memory"),
            CgroupMount {
                dir: "unified".into(),
                fs: Fs::Cgroup2,
                options: String::new(),
                links: Vec::new(),
            },
        ],
        ..host()
    }
}

fn target(op: &Op) -> (&Path, Missing) {
    match &op.target {
        Target::InRoot(p, m) => (p.as_path(), *m),
        Target::Path(p) => (p.as_path(), Missing::Fail),
    }
}

/// `(target, missing)` of each operation of `step`, in order.
fn targets_of(ops: &[Op], step: Step) -> Vec<(PathBuf, Missing)> {
    ops.iter()
        .filter(|o| o.step == step)
        .map(|o| {
            let (p, m) = target(o);
            (p.to_path_buf(), m)
        })
        .collect()
}

fn paths_of(ops: &[Op], step: Step) -> Vec<String> {
    targets_of(ops, step)
        .into_iter()
        .map(|(p, _)| p.display().to_string())
        .collect()
}

const YES: &[&str] = &[
    "/usr", "/boot", "/efi", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

fn with_system(level: ProtectSystem, writable: &[&str]) -> ContainerSpec {
    let mut c = bare();
    c.protection.protect_system = level;
    c.protection.writable_paths = writable.iter().map(PathBuf::from).collect();
    c
}

#[test]
fn a_default_unit_gets_every_protection_in_order() {
    let c = ContainerSpec::default();
    let ops = plan_of(&c, &hybrid());
    let mut want = vec![
        Step::MakeRootPrivate,
        Step::OpenRoot,
        Step::Mount(Fs::Proc),
        Step::HoldHostDev,
        Step::MountDev,
        Step::MountDev,
        Step::Mount(Fs::Tmpfs),
        Step::Mount(Fs::Tmpfs),
    ];
    // full: the system directories and /etc; nothing writable is below them.
    want.extend(vec![Step::ProtectSystem; YES.len() + 1]);
    want.extend([Step::ProtectKernel, Step::ProtectCgroups]);
    want.extend(masking());
    want.push(Step::HideStateDir);
    assert_eq!(steps(&ops), want);
    assert_eq!(
        paths_of(&ops, Step::Mount(Fs::Tmpfs)),
        vec!["/tmp", "/var/tmp"]
    );
    let hidden = ops.last().expect("ops");
    assert_eq!(
        (target(hidden), &hidden.action),
        (
            (Path::new("/run/sup"), Missing::Skip),
            &Action::Mount {
                source: Source::Fs(Fs::Tmpfs),
                flags: MsFlags::MS_RDONLY | LOCKED_DOWN,
                data: Some(HIDDEN_DIR_DATA.into())
            }
        ),
        "supd's state directory is covered last, by an empty read-only tmpfs"
    );
}

#[test]
fn protect_system_levels_make_their_directories_read_only() {
    let skip_links = |d: &str| {
        if ["/usr", "/boot", "/efi", "/etc"].contains(&d) {
            Missing::Skip
        } else {
            Missing::SkipLink
        }
    };
    for (level, dirs) in [
        (ProtectSystem::No, vec![]),
        (ProtectSystem::Yes, YES.to_vec()),
        (ProtectSystem::Full, [YES, &["/etc"]].concat()),
        (ProtectSystem::Strict, vec!["/"]),
    ] {
        let ops = plan_of(&with_system(level, &[]), &host());
        let want: Vec<(PathBuf, Missing)> = dirs
            .iter()
            .map(|d| {
                let missing = if level == ProtectSystem::Strict {
                    Missing::Fail
                } else {
                    skip_links(d)
                };
                (PathBuf::from(d), missing)
            })
            .collect();
        assert_eq!(targets_of(&ops, Step::ProtectSystem), want, "{level:?}");
        for op in ops.iter().filter(|o| o.step == Step::ProtectSystem) {
            let recursive_ro = match &op.action {
                Action::ReadOnly(flags) => flags.is_empty(),
                Action::Restrict {
                    readonly,
                    flags,
                    recursive,
                } => *readonly && flags.is_empty() && *recursive,
                _ => false,
            };
            assert!(
                recursive_ro,
                "{level:?}: read-only with submounts, nothing else (programs still run): {op:?}"
            );
        }
    }
}

#[test]
fn writable_paths_and_writable_mounts_make_holes_only_where_protected() {
    let tmpfs = || MountKind::Tmpfs {
        size: None,
        mode: None,
    };
    let bind = |source: &str| MountKind::Bind {
        source: source.into(),
        recursive: true,
    };
    let mut ro_bind = planned(bind("/srv/ro"), "/etc/ro");
    ro_bind.spec.readonly = true;
    // (level, writable_paths, the unit's mounts) -> the holes
    type Case<'a> = (ProtectSystem, Vec<&'a str>, Vec<PlannedMount>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        // Outside the protected directories everything is writable already.
        (
            ProtectSystem::Full,
            vec!["/var/lib/app"],
            vec![planned(tmpfs(), "/srv/x")],
            vec![],
        ),
        (
            ProtectSystem::Full,
            vec!["/etc/app", "/usr/local/share/app"],
            vec![],
            vec!["/etc/app", "/usr/local/share/app"],
        ),
        // /etc is writable under yes.
        (ProtectSystem::Yes, vec!["/etc/app"], vec![], vec![]),
        // The unit's writable mounts under /etc stay writable; read-only ones
        // need no hole; a hole inside another is carried by its copy.
        (
            ProtectSystem::Full,
            vec!["/etc/app/sub", "/etc/./app/../app"],
            vec![planned(tmpfs(), "/etc/app"), ro_bind.clone()],
            vec!["/etc/app"],
        ),
        // strict: the kernel's file systems, /tmp, /var/tmp, /run and every
        // writable mount; `/` cannot be a hole.
        (
            ProtectSystem::Strict,
            vec!["/var/lib/app", "/"],
            vec![planned(bind("/srv/data"), "/data"), ro_bind],
            vec![
                "/data",
                "/dev",
                "/proc",
                "/run",
                "/sys",
                "/tmp",
                "/var/lib/app",
                "/var/tmp",
            ],
        ),
    ];
    for (level, writable, mounts, holes) in cases {
        let c = with_system(level, &writable);
        let ops = plan(&c, &mounts, &host()).expect("plan");
        let kept = paths_of(&ops, Step::KeepWritable);
        assert_eq!(kept, holes, "{level:?} {writable:?}");
        assert_eq!(paths_of(&ops, Step::RestoreWritable), holes);
        let kinds: Vec<(Step, bool)> = ops
            .iter()
            .filter(|o| {
                matches!(
                    o.step,
                    Step::KeepWritable | Step::ProtectSystem | Step::RestoreWritable
                )
            })
            .map(|o| (o.step, matches!(o.action, Action::Copy | Action::Attach)))
            .collect();
        let first_ro = kinds.iter().position(|(s, _)| *s == Step::ProtectSystem);
        let last_ro = kinds.iter().rposition(|(s, _)| *s == Step::ProtectSystem);
        assert!(
            kinds
                .iter()
                .enumerate()
                .all(|(i, (step, copy))| match step {
                    Step::KeepWritable => *copy && Some(i) < first_ro,
                    Step::RestoreWritable => *copy && Some(i) > last_ro,
                    _ => true,
                }),
            "copied before the read-only steps, put back after: {kinds:?}"
        );
        for (path, missing) in targets_of(&ops, Step::KeepWritable) {
            let declared = writable.iter().any(|w| normalize(Path::new(w)) == path);
            let want = if declared {
                Missing::Fail
            } else {
                Missing::Skip
            };
            assert_eq!(
                missing,
                want,
                "{}: a writable path must exist",
                path.display()
            );
        }
    }
}

#[test]
fn kernel_and_cgroup_state_is_read_only_in_every_shape() {
    use Step::{KeepWritable as Keep, ProtectCgroups as Cg, ProtectKernel as Kern};
    use Step::{Mount as M, RestoreWritable as Restore};
    // (rootfs, protect_kernel, protect_cgroups, cgroup namespace, host hierarchies)
    //   -> the steps between the mounts and the masking
    let cases = [
        (false, true, true, true, hybrid(), vec![Kern, Cg]),
        // Without hierarchies found there is no view to mount.
        (false, true, true, true, host(), vec![Kern]),
        // No cgroup namespace: the host's hierarchies, read-only with /sys.
        (false, true, true, false, hybrid(), vec![Kern]),
        // Only the cgroup fs relaxed: copied before /sys is made read-only.
        (
            false,
            true,
            false,
            true,
            hybrid(),
            vec![Keep, Kern, Restore],
        ),
        // Only the kernel relaxed: the cgroup fs alone read-only, then the view.
        (false, false, true, true, hybrid(), vec![Cg, Cg]),
        (false, false, false, true, hybrid(), vec![]),
        // A rootfs has a fresh read-only sysfs, rebound read-only all the same: a
        // unit's own bind of the host's /sys or cgroup fs there is covered too.
        (
            true,
            true,
            true,
            true,
            hybrid(),
            vec![M(Fs::Sysfs), Kern, Cg],
        ),
        (true, true, true, false, hybrid(), vec![M(Fs::Sysfs), Kern]),
        (
            true,
            true,
            false,
            true,
            hybrid(),
            vec![M(Fs::Sysfs), Keep, Kern, Restore],
        ),
        (true, false, true, false, hybrid(), vec![M(Fs::Sysfs), Cg]),
    ];
    for (rootfs, kernel, cgroups, cgroup_ns, host, want) in cases {
        let mut c = bare();
        c.rootfs = rootfs.then(|| PathBuf::from("/srv/root"));
        c.protection.protect_kernel = kernel;
        c.protection.protect_cgroups = cgroups;
        if !cgroup_ns {
            c.namespaces.remove(&Namespace::Cgroup);
        }
        let ops = plan_of(&c, &host);
        let got: Vec<Step> = steps(&ops)
            .into_iter()
            .filter(|s| matches!(s, Keep | Kern | Cg | Restore | M(Fs::Sysfs)))
            .collect();
        let shape = format!("rootfs={rootfs} kernel={kernel} cgroups={cgroups} ns={cgroup_ns}");
        assert_eq!(got, want, "{shape}");
        for op in ops.iter().filter(|o| matches!(o.step, Kern | Cg)) {
            let (path, _) = target(op);
            let ok = match &op.action {
                Action::ReadOnly(flags) => *flags == LOCKED_DOWN,
                Action::CgroupView { mounts, readonly } => *readonly && *mounts == host.cgroups,
                _ => false,
            };
            assert!(ok, "{shape}: {op:?}");
            let want_path = if op.step == Kern {
                "/sys"
            } else {
                "/sys/fs/cgroup"
            };
            assert_eq!(path, Path::new(want_path), "{shape}");
        }
        let masked = ops.iter().any(|o| o.step == Step::Mask);
        assert_eq!(masked, kernel, "{shape}: masking follows protect_kernel");
    }
}

#[test]
fn masks_apply_with_any_mount_namespace_not_only_a_fresh_proc() {
    for (namespaces, rootfs) in [
        (vec![Namespace::Mnt], false),
        (vec![Namespace::Mnt, Namespace::Pid], false),
        (vec![Namespace::Mnt, Namespace::User, Namespace::Pid], false),
        (vec![Namespace::Mnt], true),
    ] {
        let mut c = ContainerSpec {
            protection: Protection::defaults(true, rootfs),
            rootfs: rootfs.then(|| PathBuf::from("/srv/root")),
            ..ContainerSpec::default()
        };
        c.namespaces = namespaces.iter().copied().collect();
        let ops = plan_of(&c, &host());
        let masked: Vec<String> = paths_of(&ops, Step::Mask);
        assert_eq!(masked, MASKED_PATHS, "{namespaces:?} rootfs={rootfs}");
        assert!(
            targets_of(&ops, Step::Mask)
                .iter()
                .all(|(_, m)| *m == Missing::Skip),
            "paths the kernel lacks are skipped"
        );
        let proc_sys = ops
            .iter()
            .find(|o| target(o).0 == Path::new("/proc/sys"))
            .expect("/proc/sys");
        assert_eq!(proc_sys.action, Action::ReadOnly(LOCKED_DOWN));
    }
}

#[test]
fn supd_state_is_hidden_unless_allowed_or_out_of_sight() {
    // (rootfs, control_socket, state dir) -> hidden
    for (rootfs, control_socket, state_dir, hidden) in [
        (false, false, "/run/sup", true),
        (false, true, "/run/sup", false),
        (true, false, "/run/sup", false),
        (false, false, "/", false),
    ] {
        let mut c = bare();
        c.rootfs = rootfs.then(|| PathBuf::from("/srv/root"));
        c.protection.control_socket = control_socket;

        let host = HostFacts {
            state_dir: state_dir.into(),
            ..host()
        };
        let ops = plan(&c, &[], &host).expect("plan");
        assert_eq!(
            paths_of(&ops, Step::HideStateDir),
            if hidden { vec![state_dir] } else { vec![] },
            "rootfs={rootfs} control_socket={control_socket} {state_dir}"
        );
    }
}

#[test]
fn a_notifying_unit_sees_its_own_socket_and_nothing_else_of_supd() {
    // (rootfs, control_socket) -> NOTIFY_SOCKET, what covers the state directory,
    // where else the notify directory is bound.
    let dir = "/run/sup/notify/web";
    for (rootfs, control_socket, socket, hide, bound) in [
        (false, false, "/run/sup/notify.sock", "bind", vec![]),
        (
            false,
            true,
            "/run/sup/notify/web/notify.sock",
            "none",
            vec![],
        ),
        (
            true,
            false,
            "/run/sup/notify.sock",
            "none",
            vec!["/run/sup"],
        ),
    ] {
        let mut c = bare();
        c.rootfs = rootfs.then(|| PathBuf::from("/srv/root"));
        c.protection.control_socket = control_socket;
        let host = HostFacts {
            notify_dir: Some(dir.into()),
            ..host()
        };
        let case = format!("rootfs={rootfs} control_socket={control_socket}");
        let seen = super::notify_socket_in_container(&c, &host, Path::new(dir));
        assert_eq!(seen, Path::new(socket), "{case}");
        let ops = plan(&c, &[], &host).expect("plan");
        let hidden: Vec<&Action> = ops
            .iter()
            .filter(|o| o.step == Step::HideStateDir)
            .map(|o| &o.action)
            .collect();
        let source = Source::Bind(dir.into());
        match hide {
            "bind" => assert!(
                matches!(hidden.first(), Some(Action::Mount { source: s, .. }) if *s == source)
                    && matches!(hidden.get(1), Some(Action::Restrict { readonly: true, .. })),
                "{case}: {hidden:?}"
            ),
            _ => assert!(hidden.is_empty(), "{case}: {hidden:?}"),
        }
        let mut notify = paths_of(&ops, Step::BindNotify);
        notify.dedup();
        assert_eq!(notify, bound, "{case}");
    }
}

#[test]
fn a_state_directory_in_the_private_tmp_is_made_there_for_the_notify_socket() {
    // (private_tmp, a mount of the unit's over /tmp/sup) -> how a missing state
    // directory is handled where the notify directory is bound.
    let state = "/tmp/sup/state";
    for (private_tmp, covered, missing) in [
        (true, false, Missing::CreateInPrivateTmp),
        (false, false, Missing::Fail),
        (true, true, Missing::Fail),
    ] {
        let mut c = bare();
        c.protection.control_socket = false;
        c.protection.private_tmp = private_tmp;
        if covered {
            c.mounts.push(crate::unit::MountSpec::plain(
                MountKind::Tmpfs {
                    size: None,
                    mode: None,
                },
                "/tmp/sup",
            ));
        }
        let host = HostFacts {
            state_dir: state.into(),
            notify_dir: Some("/tmp/sup/state/notify/web".into()),
            ..host()
        };
        let ops = plan_of(&c, &host);
        let bind = ops
            .iter()
            .find(|o| o.step == Step::HideStateDir)
            .expect("the state directory is covered");
        assert_eq!(
            bind.target,
            Target::InRoot(state.into(), missing),
            "private_tmp={private_tmp} covered={covered}"
        );
    }
}

#[test]
fn protections_come_after_every_mount_and_before_pivot_root() {
    let mut c = ContainerSpec {
        rootfs: Some("/srv/root".into()),
        protection: Protection::defaults(true, true),
        readonly_root: true,
        ..ContainerSpec::default()
    };
    c.protection.protect_system = ProtectSystem::Strict;
    c.namespaces.insert(Namespace::User);
    let mut mounts = effective_mounts(&c);
    mounts.push(planned(
        MountKind::Bind {
            source: "/srv/data".into(),
            recursive: true,
        },
        "/data",
    ));
    let ops = plan(&c, &mounts, &hybrid()).expect("plan");
    let pos = |step: Step| steps(&ops).iter().position(|s| *s == step).expect("step");
    let last_mount = ops
        .iter()
        .rposition(|o| matches!(o.step, Step::BindMount | Step::MountDev | Step::Mount(_)))
        .expect("mounts");
    assert!(last_mount < pos(Step::KeepWritable));
    assert!(pos(Step::ProtectSystem) < pos(Step::ProtectCgroups));
    assert!(pos(Step::ProtectCgroups) < pos(Step::Mask));
    assert!(pos(Step::Mask) < pos(Step::PivotRoot));
    assert!(pos(Step::PivotRoot) < pos(Step::RemountRootReadOnly));
    assert_eq!(
        paths_of(&ops, Step::KeepWritable),
        vec!["/data", "/dev", "/proc", "/run", "/sys", "/tmp", "/var/tmp"],
        "inside the rootfs, the same holes"
    );
}
