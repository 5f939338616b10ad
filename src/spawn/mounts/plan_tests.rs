//! The mount sequence, checked as data: no root, no namespaces. The protections
//! have their own tables in `protect_tests`.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use super::plan::{Action, HOST_DEV, Missing, Op, Source, Target, plan};
use super::protect::{MASKED_PATHS, READONLY_PATHS};
use super::root::Create;
use super::{Fs, HostFacts, LOCKED_DOWN, PlannedMount};
use crate::spawn::Step;
use crate::unit::{ContainerSpec, MountKind, MountSpec, Propagation, Protection};

pub(super) fn planned(kind: MountKind, target: &str) -> PlannedMount {
    PlannedMount::new(MountSpec::plain(kind, target))
}

pub(super) fn steps(ops: &[Op]) -> Vec<Step> {
    ops.iter().map(|o| o.step).collect()
}

/// A container with the default namespaces and every protection off, so a
/// test sees only the part of the plan it is about.
pub(super) fn bare() -> ContainerSpec {
    ContainerSpec {
        protection: Protection {
            control_socket: true,
            ..Protection::defaults(false, false)
        },
        ..ContainerSpec::default()
    }
}

pub(super) fn host() -> HostFacts {
    HostFacts {
        state_dir: "/run/sup".into(),
        cgroups: Vec::new(),
        notify_dir: None,
    }
}

/// The steps of masking, in order.
pub(super) fn masking() -> Vec<Step> {
    let mut s = vec![Step::Mask; MASKED_PATHS.len()];
    s.extend(vec![Step::BindReadOnlyPath; READONLY_PATHS.len()]);
    s
}

fn one_mount(m: PlannedMount) -> Vec<Op> {
    let ops = plan(&bare(), &[m], &host()).expect("plan");
    // Skip making / private and opening the root.
    ops.into_iter().skip(2).collect()
}

#[test]
fn host_tree_private_first_then_proc() {
    let ops = plan(&bare(), &[planned(MountKind::Proc, "/proc")], &host()).expect("plan");
    let want = vec![Step::MakeRootPrivate, Step::OpenRoot, Step::Mount(Fs::Proc)];
    assert_eq!(steps(&ops), want);
    assert_eq!(
        ops[0].action,
        Action::Propagate(MsFlags::MS_REC | MsFlags::MS_PRIVATE)
    );
    assert_eq!(ops[0].target, Target::Path("/".into()));
    assert_eq!(ops[1].action, Action::OpenRoot { may_create: false });
    assert_eq!(
        ops[2].action,
        Action::Mount {
            source: Source::Fs(Fs::Proc),
            flags: LOCKED_DOWN,
            data: None
        }
    );
}

#[test]
fn rootfs_is_bound_masked_pivoted_then_read_only_and_shared() {
    let rootfs = Path::new("/srv/root");
    let mounts = [
        planned(MountKind::Proc, "/proc"),
        planned(MountKind::Dev, "/dev"),
        planned(MountKind::Sysfs, "/sys"),
    ];
    let c = ContainerSpec {
        rootfs: Some(rootfs.into()),
        root_propagation: Propagation::Shared,
        readonly_root: true,
        protection: Protection::defaults(true, true),
        ..ContainerSpec::default()
    };
    let ops = plan(&c, &mounts, &host()).expect("plan");
    let mut want = vec![
        Step::MakeRootPrivate,
        Step::BindRootfs,
        Step::OpenRoot,
        Step::Mount(Fs::Proc),
        Step::HoldHostDev,
        Step::MountDev,
        Step::MountDev,
        Step::Mount(Fs::Sysfs),
        // Read-only already, and rebound read-only with whatever is mounted in it.
        Step::ProtectKernel,
    ];
    want.extend(masking());
    want.extend([
        Step::ChdirRootfs,
        Step::PivotRoot,
        Step::MakeOldRootSlave,
        Step::DetachOldRoot,
        Step::Chdir,
        Step::RemountRootReadOnly,
        Step::SetRootPropagation,
    ]);
    assert_eq!(steps(&ops), want);
    let action = |step: Step| {
        ops.iter()
            .find(|o| o.step == step)
            .map(|o| o.action.clone())
            .expect("step planned")
    };
    assert_eq!(
        action(Step::MakeRootPrivate),
        Action::Propagate(MsFlags::MS_REC | MsFlags::MS_PRIVATE),
        "shared is applied last: pivot_root refuses a shared root"
    );
    assert_eq!(
        action(Step::BindRootfs),
        Action::Mount {
            source: Source::Bind(rootfs.into()),
            flags: MsFlags::MS_BIND | MsFlags::MS_REC,
            data: None
        }
    );
    assert_eq!(
        action(Step::OpenRoot),
        Action::OpenRoot { may_create: true }
    );
    assert_eq!(
        action(Step::Mount(Fs::Sysfs)),
        Action::Sysfs(MsFlags::MS_RDONLY | LOCKED_DOWN)
    );
    assert_eq!(
        action(Step::RemountRootReadOnly),
        Action::Restrict {
            readonly: true,
            flags: MsFlags::empty(),
            recursive: false
        }
    );
    assert_eq!(
        action(Step::SetRootPropagation),
        Action::Propagate(MsFlags::MS_REC | MsFlags::MS_SHARED)
    );
    let pivot: Vec<&Op> = ops.iter().filter(|o| o.step == Step::PivotRoot).collect();
    assert_eq!(pivot[0].target, Target::Path(".".into()));
    assert_eq!(pivot[0].shown, "/srv/root", "errors name the rootfs");
    assert_eq!(
        ops[4].target,
        Target::Path(HOST_DEV.into()),
        "the host's /dev is held before the rootfs's /dev is covered"
    );
    let dev: Vec<&Op> = ops.iter().filter(|o| o.step == Step::MountDev).collect();
    assert_eq!(
        dev[0].action,
        Action::Mount {
            source: Source::Fs(Fs::Tmpfs),
            flags: MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            data: Some("mode=755,size=65536k".into())
        }
    );
    assert_eq!(
        (&dev[1].action, &dev[1].target),
        (
            &Action::PopulateDev {
                devices: Vec::new(),
                mqueue: true
            },
            &Target::InRoot("/dev".into(), Missing::Fail)
        ),
        "populated through the new tmpfs, opened again; mqueue with the default ipc namespace"
    );
    assert!(
        !steps(&ops).contains(&Step::HideStateDir),
        "supd's state is not in a rootfs"
    );
}

#[test]
fn root_propagation_decides_the_first_and_last_steps() {
    for (propagation, first, last) in [
        (Propagation::Private, MsFlags::MS_PRIVATE, None),
        (Propagation::Slave, MsFlags::MS_SLAVE, None),
        (
            Propagation::Shared,
            MsFlags::MS_PRIVATE,
            Some(MsFlags::MS_SHARED),
        ),
        (
            Propagation::Unbindable,
            MsFlags::MS_PRIVATE,
            Some(MsFlags::MS_UNBINDABLE),
        ),
    ] {
        let c = ContainerSpec {
            root_propagation: propagation,
            ..bare()
        };
        let ops = plan(&c, &[], &host()).expect("plan");
        assert_eq!(
            ops[0].action,
            Action::Propagate(MsFlags::MS_REC | first),
            "{propagation:?}"
        );
        let end = ops
            .iter()
            .find(|o| o.step == Step::SetRootPropagation)
            .map(|o| o.action.clone());
        assert_eq!(
            end,
            last.map(|f| Action::Propagate(MsFlags::MS_REC | f)),
            "{propagation:?}"
        );
    }
}

#[test]
fn binds_are_restricted_and_propagated_as_declared() {
    // (readonly, nosuid, recursive, propagation) -> the ops after the bind itself
    let restrict = |readonly, flags, recursive| Action::Restrict {
        readonly,
        flags,
        recursive,
    };
    let cases = [
        (false, false, true, None, vec![]),
        (
            true,
            false,
            true,
            None,
            vec![(Step::RemountBind, restrict(true, MsFlags::empty(), true))],
        ),
        (
            false,
            true,
            false,
            None,
            vec![(
                Step::RemountBind,
                restrict(false, MsFlags::MS_NOSUID, false),
            )],
        ),
        (
            false,
            false,
            true,
            Some(Propagation::Shared),
            vec![(
                Step::SetPropagation,
                Action::Propagate(MsFlags::MS_SHARED | MsFlags::MS_REC),
            )],
        ),
        (
            false,
            false,
            false,
            Some(Propagation::Slave),
            vec![(Step::SetPropagation, Action::Propagate(MsFlags::MS_SLAVE))],
        ),
    ];
    for (readonly, nosuid, recursive, propagation, after) in cases {
        let mut m = planned(
            MountKind::Bind {
                source: "/host/data".into(),
                recursive,
            },
            "/data",
        );
        m.spec.readonly = readonly;
        m.spec.nosuid = nosuid;
        m.spec.propagation = propagation;
        let ops = one_mount(m);
        let mut flags = MsFlags::MS_BIND;
        flags.set(MsFlags::MS_REC, recursive);
        assert_eq!(ops[0].step, Step::BindMount);
        assert_eq!(ops[0].shown, "/host/data -> /data");
        assert_eq!(
            ops[0].target,
            Target::InRoot("/data".into(), Missing::LikeSource)
        );
        assert_eq!(
            ops[0].action,
            Action::Mount {
                source: Source::Bind("/host/data".into()),
                flags,
                data: None
            }
        );
        let rest: Vec<(Step, Action)> = ops[1..]
            .iter()
            .map(|o| (o.step, o.action.clone()))
            .collect();
        assert_eq!(rest, after, "ro={readonly} nosuid={nosuid} rec={recursive}");
        assert!(
            ops[1..]
                .iter()
                .all(|o| o.target == Target::InRoot("/data".into(), Missing::Fail)),
            "remounts act on the mount just made, which must exist"
        );
    }
}

#[test]
fn filesystems_get_their_data_and_flags() {
    let tmpfs = |size, mode| MountKind::Tmpfs { size, mode };
    let cases = [
        (tmpfs(None, None), false, None),
        (tmpfs(Some(1024), None), false, Some("size=1024")),
        (
            tmpfs(Some(1024), Some(0o1777)),
            true,
            Some("size=1024,mode=1777"),
        ),
    ];
    for (kind, readonly, data) in cases {
        let mut m = planned(kind, "/tmp");
        m.spec.readonly = readonly;
        m.spec.nodev = true;
        let ops = one_mount(m);
        let mut flags = MsFlags::MS_NODEV;
        flags.set(MsFlags::MS_RDONLY, readonly);
        assert_eq!(
            ops[0].action,
            Action::Mount {
                source: Source::Fs(Fs::Tmpfs),
                flags,
                data: data.map(str::to_string)
            }
        );
        assert_eq!(
            ops[0].target,
            Target::InRoot("/tmp".into(), Missing::Create(Create::Dir))
        );
    }
    let lower = vec![PathBuf::from("/l1"), PathBuf::from("/l2")];
    let mut overlay = planned(MountKind::Overlay { lower }, "/app");
    overlay.overlay_dirs = Some(("/st/upper".into(), "/st/work".into()));
    let ops = one_mount(overlay.clone());
    assert_eq!(
        ops[0].action,
        Action::Mount {
            source: Source::Fs(Fs::Overlay),
            flags: MsFlags::empty(),
            data: Some("lowerdir=/l1:/l2,upperdir=/st/upper,workdir=/st/work".into())
        }
    );
    overlay.overlay_dirs = None;
    let e = plan(&bare(), &[overlay], &host()).expect_err("no dirs");
    assert_eq!(
        e.to_string(),
        "mount overlay /app: no upper/work directory planned"
    );
}

#[test]
fn optional_defaults_are_skipped_where_missing() {
    let tmpfs = MountKind::Tmpfs {
        size: None,
        mode: Some(0o1777),
    };
    let mut m = planned(tmpfs, "/var/tmp");
    m.optional = true;
    assert_eq!(
        one_mount(m)[0].target,
        Target::InRoot("/var/tmp".into(), Missing::Skip)
    );
}

#[test]
fn private_dev_gets_the_declared_devices_and_mqueue_only_with_an_ipc_namespace() {
    use crate::unit::{DeviceSpec, Namespace};
    let fuse = DeviceSpec {
        path: "/dev/fuse".into(),
        access: "rw".into(),
    };
    for (namespaces, joined, mqueue) in [
        (vec![Namespace::Mnt, Namespace::Ipc], false, true),
        (vec![Namespace::Mnt], true, true),
        (vec![Namespace::Mnt, Namespace::Pid], false, false),
    ] {
        let mut c = bare();
        c.namespaces = namespaces.iter().copied().collect();
        if joined {
            c.join.insert(Namespace::Ipc, "/proc/1/ns/ipc".into());
        }
        c.protection.devices = vec![fuse.clone()];
        let ops = plan(&c, &[planned(MountKind::Dev, "/dev")], &host()).expect("plan");
        let fill = ops
            .iter()
            .find(|o| matches!(o.action, Action::PopulateDev { .. }))
            .expect("populated");
        assert_eq!(
            fill.action,
            Action::PopulateDev {
                devices: vec![PathBuf::from("/dev/fuse")],
                mqueue
            },
            "{namespaces:?} joined={joined}"
        );
    }
}
