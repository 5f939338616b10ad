//! Turning a unit into a `LaunchPlan`, in supd: identity (user and group database
//! lookups), environment, the mounts to make (defaults added, overlay directories
//! created) and the seccomp program. Everything the helper must not look up itself.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use super::error::io_error;
use super::mounts::PlannedMount;
use super::seccomp::SeccompProgram;
use super::{LaunchPlan, SpawnError, Step, identity};
use crate::unit::{Capability, ContainerSpec, MountKind, MountSpec, Namespace, Unit};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Resolve a unit into a launch plan. Blocking (user database lookups, creating
/// overlay directories under `state_dir`).
pub fn plan(unit: &Unit, state_dir: &Path) -> Result<LaunchPlan, SpawnError> {
    let svc = &unit.service;
    let root = unit.container.rootfs.as_deref().unwrap_or(Path::new("/"));
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
    env.extend(svc.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(LaunchPlan {
        unit: unit.name.clone(),
        argv: svc.exec.clone(),
        env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        workdir: svc.workdir.clone().unwrap_or_else(|| PathBuf::from("/")),
        credentials,
        umask: svc.umask,
        mounts: plan_mounts(unit, state_dir)?,
        seccomp: if unit.container.seccomp {
            Some(default_seccomp(&unit.container.capabilities)?)
        } else {
            None
        },
        container: unit.container.clone(),
    })
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

/// The unit's mounts plus the defaults a container needs to see itself consistently:
/// with its own PID and mount namespaces a fresh `/proc` (so host processes are not
/// visible), and with a `rootfs` also a minimal `/dev` and a read-only `/sys`. A
/// mount the unit declares on the same target replaces the default.
pub fn effective_mounts(c: &ContainerSpec) -> Vec<MountSpec> {
    let has = |ns| c.namespaces.contains(&ns);
    let declared = |t: &str| c.mounts.iter().any(|m| m.target == Path::new(t));
    let default = |kind, target: &str| MountSpec::plain(kind, target);
    let mut out = Vec::new();
    if has(Namespace::Mnt) && has(Namespace::Pid) && !declared("/proc") {
        out.push(default(MountKind::Proc, "/proc"));
    }
    if has(Namespace::Mnt) && c.rootfs.is_some() {
        if !declared("/dev") {
            out.push(default(MountKind::Dev, "/dev"));
        }
        if !declared("/sys") {
            out.push(default(MountKind::Sysfs, "/sys"));
        }
    }
    out.extend(c.mounts.iter().cloned());
    out
}

/// Overlay mounts get an upper and a work directory kept by supd, per unit and
/// mount target (`STATE/overlay/UNIT/<target, escaped>/{upper,work}`), so changes
/// survive restarts of the unit and do not move when other mounts are added.
fn plan_mounts(unit: &Unit, state_dir: &Path) -> Result<Vec<PlannedMount>, SpawnError> {
    effective_mounts(&unit.container)
        .into_iter()
        .map(|spec| {
            let overlay_dirs = match spec.kind {
                MountKind::Overlay { .. } => {
                    let base = state_dir
                        .join("overlay")
                        .join(&unit.name)
                        .join(escape_target(&spec.target));
                    let (upper, work) = (base.join("upper"), base.join("work"));
                    for d in [&upper, &work] {
                        std::fs::create_dir_all(d)
                            .map_err(|e| io_error(Step::CreateOverlayDir, e))?;
                    }
                    Some((upper, work))
                }
                _ => None,
            };
            Ok(PlannedMount { spec, overlay_dirs })
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
            .map(|m| m.target.display().to_string())
            .collect()
    }

    #[test]
    fn default_mounts_follow_namespaces_and_rootfs() {
        assert_eq!(
            targets(&container("")),
            vec!["/proc"],
            "pid+mnt get a fresh /proc"
        );
        assert!(targets(&container("[container]\nnamespaces = [\"mnt\"]")).is_empty());
        assert_eq!(
            targets(&container("[container]\nrootfs = \"/srv/root\"")),
            vec!["/proc", "/dev", "/sys"]
        );
        let declared = container(
            "[container]\nrootfs = \"/r\"\n[[mount]]\ntype = \"tmpfs\"\ntarget = \"/dev\"",
        );
        assert_eq!(
            targets(&declared),
            vec!["/proc", "/sys", "/dev"],
            "a declared /dev replaces the default"
        );
    }

    #[test]
    fn overlay_dirs_are_named_by_target() {
        assert_eq!(escape_target(Path::new("/srv/data")), "srv%2Fdata");
        assert_eq!(escape_target(Path::new("/a%b")), "a%25b");
        assert_eq!(escape_target(Path::new("/")), "%2F");
    }
}
