//! Turning a unit into a `LaunchPlan`, in supd: identity (user and group database
//! lookups), environment, the mounts to make (defaults added, overlay directories
//! created) and the seccomp program. Everything the helper must not look up itself.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use super::error::io_error;
use super::mounts::{HostFacts, PlannedMount, cgroupfs, notify_socket_in_container};
use super::seccomp::SeccompProgram;
use super::{LaunchPlan, SpawnError, Step, identity};
use crate::unit::{Capability, ContainerSpec, MountKind, MountSpec, Namespace, ServiceType, Unit};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long `exec_start_pre` may take without a `start_timeout` (systemd's default
/// start timeout).
const DEFAULT_START_PRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

/// Resolve a unit into a launch plan. Blocking (user database lookups, creating
/// overlay directories under `state_dir`).
pub fn plan(unit: &Unit, state_dir: &Path) -> Result<LaunchPlan, SpawnError> {
    let svc = &unit.service;
    let root = unit.container.rootfs.as_deref().unwrap_or(Path::new("/"));
    // An image unit's root is mounted (once, kept across restarts) before its
    // user is looked up in the image's /etc/passwd.
    if let Some(resolved) = unit
        .container
        .image
        .as_ref()
        .and_then(|i| i.resolved.as_ref())
    {
        crate::image::root::prepare(state_dir, &unit.name, resolved, root).map_err(|e| {
            SpawnError::new(
                Step::PrepareImageRoot,
                Some(&root.to_string_lossy()),
                None,
                e.to_string(),
            )
        })?;
        if let Some(w) = &svc.workdir {
            super::mounts::create_dir_in(root, w).map_err(|e| {
                SpawnError::new(
                    Step::PrepareImageRoot,
                    Some(&w.to_string_lossy()),
                    Some(e),
                    "create the working directory in the image root",
                )
            })?;
        }
    }
    let (credentials, account) = identity::resolve(
        root,
        svc.user.as_ref(),
        svc.group.as_ref(),
        &svc.supplementary_groups,
    )?;
    let mut env: std::collections::BTreeMap<String, String> = Default::default();
    env.insert("PATH".into(), DEFAULT_PATH.into());
    if let Some(account) = account {
        env.insert("HOME".into(), account.home.to_string_lossy().into_owned());
        env.insert("USER".into(), account.name.clone());
        env.insert("LOGNAME".into(), account.name);
    }
    env.insert("SUP_UNIT".into(), unit.name.clone());
    let host = host_facts(unit, state_dir);
    let life = &svc.lifecycle;
    if let Some(dir) = &host.notify_dir {
        let path = notify_socket_in_container(&unit.container, &host, dir);
        env.insert("NOTIFY_SOCKET".into(), path.to_string_lossy().into_owned());
        if let Some(w) = life.watchdog {
            env.insert("WATCHDOG_USEC".into(), w.as_micros().to_string());
        }
    }
    env.extend(read_env_files(&svc.env_file)?);
    let mut mounts = plan_mounts(unit, state_dir)?;
    if !svc.credentials.is_empty() {
        // Last: over whatever the unit mounts at /run.
        mounts.push(super::credentials::prepare(
            &unit.name,
            &svc.credentials,
            &unit.container,
            credentials.as_ref(),
            &host.state_dir,
        )?);
        let dir = super::credentials::container_dir(&unit.name);
        env.insert(
            "CREDENTIALS_DIRECTORY".into(),
            dir.to_string_lossy().into_owned(),
        );
    }
    env.extend(svc.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(LaunchPlan {
        unit: unit.name.clone(),
        argv: svc.exec.clone(),
        env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        workdir: svc.workdir.clone().unwrap_or_else(|| PathBuf::from("/")),
        credentials,
        umask: svc.umask,
        mounts,
        host,
        seccomp: if unit.container.seccomp {
            Some(default_seccomp(&unit.container.capabilities)?)
        } else {
            None
        },
        container: unit.container.clone(),
        exec_start_pre: life.exec_start_pre.clone(),
        start_pre_timeout: life.start_timeout.unwrap_or(DEFAULT_START_PRE_TIMEOUT),
        ready_fd: life.ready_fd,
        net: None,
        // Filled in by whoever knows the unit's cgroup (supd's start).
        cgroup_join: Vec::new(),
    })
}

/// An operator's command as `user` (a name, or a uid; looked up in the unit's
/// root like the service's own `user`) instead of the service's identity: its
/// credentials, HOME, USER and LOGNAME. Blocking (account files).
pub fn run_as(plan: &mut LaunchPlan, unit: &Unit, user: &str) -> Result<(), SpawnError> {
    let root = unit.container.rootfs.as_deref().unwrap_or(Path::new("/"));
    let spec = match user.parse::<u32>() {
        Ok(uid) => crate::unit::IdSpec::Id(uid),
        Err(_) => crate::unit::IdSpec::Name(user.to_string()),
    };
    let (credentials, account) = identity::resolve(root, Some(&spec), None, &[])?;
    plan.credentials = credentials;
    plan.env.retain(|kv| {
        !["HOME=", "USER=", "LOGNAME="]
            .iter()
            .any(|k| kv.starts_with(k))
    });
    if let Some(account) = account {
        plan.env
            .push(format!("HOME={}", account.home.to_string_lossy()));
        plan.env.push(format!("USER={}", account.name));
        plan.env.push(format!("LOGNAME={}", account.name));
    }
    Ok(())
}

/// The variables of the unit's `env_file`s, read now (each start sees the files
/// as they are), in order: a later file overrides an earlier one. A missing file
/// fails the start unless it was written with a leading `-`.
fn read_env_files(files: &[crate::unit::EnvFile]) -> Result<Vec<(String, String)>, SpawnError> {
    let mut out = Vec::new();
    for f in files {
        let shown = f.path.to_string_lossy();
        let text = match std::fs::read(&f.path) {
            Ok(bytes) => String::from_utf8(bytes)
                .map_err(|_| SpawnError::new(Step::EnvFile, Some(&shown), None, "not UTF-8"))?,
            Err(e) if f.optional && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                let detail = if e.kind() == std::io::ErrorKind::NotFound {
                    "missing (write it as \"-PATH\" in env_file if it is optional)"
                } else {
                    ""
                };
                return Err(SpawnError::io(Step::EnvFile, Some(&shown), &e, detail));
            }
        };
        let vars = super::envfile::parse(&text, &f.path)
            .map_err(|e| SpawnError::new(Step::EnvFile, None, None, e))?;
        out.extend(vars);
    }
    Ok(out)
}

/// Adds what supd decided about a start's network to its plan: the interfaces
/// to create, or the namespace to join; and the hosts files, bind-mounted
/// read-only over `/etc/hosts` and `/etc/resolv.conf` (unless the unit mounts
/// something there itself).
pub fn attach_network(plan: &mut LaunchPlan, net: &crate::net::NetStart) {
    use crate::net::NetStart;
    let files = match net {
        NetStart::Bridge(unit_net) => {
            plan.net = Some(unit_net.attachment.clone());
            Some(&unit_net.attachment)
        }
        NetStart::Join { netns, peer } => {
            plan.container.join.insert(Namespace::Net, netns.clone());
            plan.container.namespaces.remove(&Namespace::Net);
            peer.as_deref().map(|p| &p.attachment)
        }
    };
    let Some(files) = files else { return };
    if !plan.container.namespaces.contains(&Namespace::Mnt) {
        return;
    }
    for (source, target) in [
        (&files.hosts, "/etc/hosts"),
        (&files.resolv, "/etc/resolv.conf"),
    ] {
        if plan
            .mounts
            .iter()
            .any(|m| m.spec.target == Path::new(target))
        {
            continue;
        }
        let mut spec = MountSpec::plain(
            MountKind::Bind {
                source: source.clone(),
                recursive: false,
            },
            target,
        );
        spec.readonly = true;
        spec.nosuid = true;
        spec.nodev = true;
        spec.noexec = true;
        plan.mounts.push(PlannedMount::new(spec));
    }
}

/// The default filter depends on the capabilities a unit keeps (its bounding set):
/// compiled once per distinct set in a supd process, not per start.
fn default_seccomp(capabilities: &BTreeSet<Capability>) -> Result<SeccompProgram, SpawnError> {
    type Cache = Mutex<HashMap<BTreeSet<Capability>, Result<SeccompProgram, String>>>;
    static PROGRAMS: OnceLock<Cache> = OnceLock::new();
    // A panic while the lock was held cannot leave a half-written entry behind.
    let mut programs = PROGRAMS
        .get_or_init(Cache::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    programs
        .entry(capabilities.clone())
        .or_insert_with(|| SeccompProgram::for_capabilities(capabilities))
        .clone()
        .map_err(|e| SpawnError::new(Step::CompileSeccomp, None, None, e))
}

/// What the mount plan needs to know about the host: supd's state directory
/// (canonical, as the container resolves paths) and the cgroup hierarchies supd
/// sees, read now (a PID 1 supd mounts them after it starts); and the unit's
/// notify socket directory, which the daemon created before the start.
fn host_facts(unit: &Unit, state_dir: &Path) -> HostFacts {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let state_dir = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    let notifies = unit.service.lifecycle.kind == ServiceType::Notify;
    HostFacts {
        notify_dir: notifies.then(|| crate::notify::socket::unit_dir(&state_dir, &unit.name)),
        state_dir,
        cgroups: cgroupfs::from_mountinfo(&mountinfo),
    }
}

/// The unit's mounts plus the defaults a container needs to see itself
/// consistently and to protect the host (see docs/isolation.md): with its own PID
/// and mount namespaces a fresh `/proc` (so host processes are not visible); with
/// a `rootfs` or `private_devices` a minimal `/dev`; with a `rootfs` or a network
/// namespace of its own a read-only `/sys`; with `private_tmp` an empty tmpfs on `/tmp` and `/var/tmp` (left out
/// where the directory is missing). A mount the unit declares on the same target
/// replaces the default. The protections that act on what is already there
/// (read-only directories, masks) are planned in `mounts`.
pub fn effective_mounts(c: &ContainerSpec) -> Vec<PlannedMount> {
    let has = |ns| c.namespaces.contains(&ns);
    if !has(Namespace::Mnt) {
        return c.mounts.iter().cloned().map(PlannedMount::new).collect();
    }
    let declared = |t: &str| c.mounts.iter().any(|m| m.target == Path::new(t));
    let mut out = Vec::new();
    let mut default = |kind, target: &str| {
        if !declared(target) {
            out.push(PlannedMount::new(MountSpec::plain(kind, target)));
        }
    };
    let p = &c.protection;
    if has(Namespace::Pid) {
        default(MountKind::Proc, "/proc");
    }
    if c.rootfs.is_some() || p.private_devices {
        default(MountKind::Dev, "/dev");
    }
    // A sysfs mounted in the unit's own network namespace lists its interfaces,
    // not the host's (/sys/class/net).
    if c.rootfs.is_some() || has(Namespace::Net) {
        default(MountKind::Sysfs, "/sys");
    }
    if p.private_tmp {
        for target in PRIVATE_TMP {
            if !declared(target) {
                let kind = MountKind::Tmpfs {
                    size: None,
                    mode: Some(0o1777),
                };
                let spec = MountSpec {
                    nosuid: true,
                    nodev: true,
                    ..MountSpec::plain(kind, target)
                };
                out.push(PlannedMount {
                    optional: true,
                    ..PlannedMount::new(spec)
                });
            }
        }
    }
    out.extend(c.mounts.iter().cloned().map(PlannedMount::new));
    out
}

/// The directories `private_tmp` replaces (systemd's `PrivateTmp=`).
pub(crate) const PRIVATE_TMP: [&str; 2] = ["/tmp", "/var/tmp"];

/// Overlay mounts get an upper and a work directory kept by supd, per unit and
/// mount target (`STATE/overlay/UNIT/<target, escaped>/{upper,work}`), so changes
/// survive restarts of the unit and do not move when other mounts are added.
fn plan_mounts(unit: &Unit, state_dir: &Path) -> Result<Vec<PlannedMount>, SpawnError> {
    effective_mounts(&unit.container)
        .into_iter()
        .map(|mut m| {
            if let MountKind::Overlay { .. } = m.spec.kind {
                let base = state_dir
                    .join("overlay")
                    .join(&unit.name)
                    .join(escape_target(&m.spec.target));
                let (upper, work) = (base.join("upper"), base.join("work"));
                for d in [&upper, &work] {
                    std::fs::create_dir_all(d).map_err(|e| io_error(Step::CreateOverlayDir, e))?;
                }
                m.overlay_dirs = Some((upper, work));
            }
            Ok(m)
        })
        .collect()
}

/// A mount target as one directory name: `/srv/data` -> `srv%2Fdata`.
fn escape_target(target: &Path) -> String {
    let t = target.to_string_lossy();
    let t = t.trim_start_matches('/');
    if t.is_empty() {
        return "%2F".into();
    }
    t.replace('%', "%25").replace('/', "%2F")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(text: &str) -> ContainerSpec {
        let unit = crate::unit::parse_unit(
            "t",
            Path::new("/t.toml"),
            &format!("{text}\n[service]\nexec = [\"/bin/true\"]\n"),
        )
        .expect("valid unit");
        unit.container
    }

    fn targets(c: &ContainerSpec) -> Vec<String> {
        effective_mounts(c)
            .iter()
            .map(|m| m.spec.target.display().to_string())
            .collect()
    }

    #[test]
    fn default_mounts_follow_namespaces_rootfs_and_protections() {
        let cases = [
            ("", vec!["/proc", "/dev", "/tmp", "/var/tmp"]),
            (
                "[container]\nnamespaces = [\"mnt\"]",
                vec!["/dev", "/tmp", "/var/tmp"],
            ),
            (
                "[container]\nprivate_tmp = false\nprivate_devices = false",
                vec!["/proc"],
            ),
            ("[container]\nnamespaces = [\"pid\"]", vec![]),
            (
                "[container]\nrootfs = \"/srv/root\"",
                vec!["/proc", "/dev", "/sys"],
            ),
            (
                "[container]\nrootfs = \"/srv/root\"\nprivate_devices = false",
                vec!["/proc", "/dev", "/sys"],
            ),
            (
                "[container]\nrootfs = \"/srv/root\"\nprivate_tmp = true",
                vec!["/proc", "/dev", "/sys", "/tmp", "/var/tmp"],
            ),
            (
                "[container]\nrootfs = \"/r\"\n[[mount]]\ntype = \"tmpfs\"\ntarget = \"/dev\"",
                vec!["/proc", "/sys", "/dev"],
            ),
            (
                "[[mount]]\ntype = \"tmpfs\"\ntarget = \"/tmp\"",
                vec!["/proc", "/dev", "/var/tmp", "/tmp"],
            ),
        ];
        for (text, want) in cases {
            assert_eq!(targets(&container(text)), want, "{text}");
        }
    }

    #[test]
    fn private_tmp_is_sticky_nosuid_nodev_and_optional() {
        let mounts = effective_mounts(&container(""));
        let tmp: Vec<&PlannedMount> = mounts
            .iter()
            .filter(|m| m.spec.target.starts_with("/tmp") || m.spec.target.starts_with("/var/tmp"))
            .collect();
        assert_eq!(tmp.len(), 2);
        for m in tmp {
            assert_eq!(
                m.spec.kind,
                MountKind::Tmpfs {
                    size: None,
                    mode: Some(0o1777)
                }
            );
            assert!(m.spec.nosuid && m.spec.nodev && !m.spec.noexec && !m.spec.readonly);
            assert!(m.optional, "left out where the host lacks the directory");
        }
        assert!(
            mounts.iter().filter(|m| m.optional).count() == 2,
            "nothing else is optional"
        );
    }

    #[test]
    fn overlay_dirs_are_named_by_target() {
        assert_eq!(escape_target(Path::new("/srv/data")), "srv%2Fdata");
        assert_eq!(escape_target(Path::new("/a%b")), "a%25b");
        assert_eq!(escape_target(Path::new("/")), "%2F");
    }
}
