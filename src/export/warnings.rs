//! Warnings: what a unit says that the target cannot express. Kubernetes and
//! compose share most of them (settings of supd itself, or of the kernel that
//! neither exposes); each target adds its own.

use std::fmt;
use std::path::Path;

use crate::unit::{MountKind, Namespace, OnFailure, Propagation, Unit};

/// One thing of one unit that the export could not carry over.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Warning {
    pub unit: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "warning: unit {}: {}", self.unit, self.message)
    }
}

/// A unit written with only `exec`: every setting at its default, to tell which
/// ones a unit changed (a default is no one's choice, and warning about it on
/// every unit would bury the warnings that matter).
pub fn default_unit() -> Option<Unit> {
    let text = "[service]\nexec = [\"/bin/true\"]\n";
    crate::unit::parse_unit("defaults", Path::new("defaults.toml"), text).ok()
}

/// Warnings that hold for both targets.
pub fn common(unit: &Unit, defaults: Option<&Unit>) -> Vec<String> {
    let mut w = Vec::new();
    let s = &unit.service;
    let l = &s.lifecycle;
    match l.on_failure {
        OnFailure::None => {}
        OnFailure::Poweroff | OnFailure::Reboot | OnFailure::Exit => w.push(format!(
            "on_failure = \"{}\" acts on supd or the machine (PID 1); not expressed",
            crate::unit::names::Named::name(l.on_failure)
        )),
        OnFailure::StopDependents | OnFailure::RestartDependents => w.push(format!(
            "on_failure = \"{}\" is not expressed: dependents are not stopped or restarted with it",
            crate::unit::names::Named::name(l.on_failure)
        )),
    }
    if !l.exec_stop_post.is_empty() {
        w.push("exec_stop_post is not expressed: nothing runs after the container stops".into());
    }
    if l.watchdog.is_some() {
        w.push("watchdog (sd_notify WATCHDOG=1) is not expressed; a [health] check is".into());
    }
    if l.ready_fd.is_some() {
        w.push("ready_fd is not expressed; readiness comes from the [health] check only".into());
    }
    if s.umask.is_some() {
        w.push("umask is not expressed: set it in the image's entrypoint".into());
    }
    if s.success_exit_codes != [0] {
        w.push("success_exit_codes is not expressed: only exit code 0 is success".into());
    }
    if let Some(d) = defaults.map(|d| &d.service) {
        let backoff = s.restart_delay != d.restart_delay
            || s.restart_max_delay != d.restart_max_delay
            || s.restart_reset_after != d.restart_reset_after
            || s.start_limit != d.start_limit;
        if backoff {
            w.push("restart_delay, restart_max_delay, restart_reset_after and start_limit are not expressed: the engine's own restart backoff applies".into());
        }
    }
    if defaults.is_some_and(|d| d.logs != unit.logs) {
        w.push("[logs] limits are not expressed: log rotation is the engine's".into());
    }
    container(unit, &mut w);
    resources(unit, &mut w);
    w
}

fn container(unit: &Unit, w: &mut Vec<String>) {
    let c = &unit.container;
    let missing: Vec<&str> = Namespace::DEFAULTS
        .iter()
        .filter(|ns| !c.namespaces.contains(ns))
        .map(|ns| ns.as_str())
        .collect();
    if !missing.is_empty() {
        w.push(format!(
            "runs in the host's {} namespace(s); a container always gets its own",
            missing.join(", ")
        ));
    }
    if !c.join.is_empty() {
        w.push("join (entering another process's namespaces) is not expressed".into());
    }
    if !c.uid_map.is_empty() || !c.gid_map.is_empty() {
        w.push(
            "uid_map/gid_map are not expressed: the engine picks the user namespace's ids".into(),
        );
    }
    if c.root_propagation != Propagation::Private {
        w.push("root_propagation is not expressed".into());
    }
    if c.oom_score_adj.is_some() {
        w.push("oom_score_adj is not expressed".into());
    }
    let p = &c.protection;
    if p.control_socket {
        w.push("control_socket (supd's socket in the container) is not expressed".into());
    }
    if !p.ambient_capabilities.is_empty() {
        w.push(
            "ambient_capabilities are not expressed: a non-root user keeps no capabilities".into(),
        );
    }
    let has_mnt = c.namespaces.contains(&Namespace::Mnt);
    if has_mnt && (!p.protect_kernel || !p.protect_cgroups || !p.private_devices) {
        w.push("protect_kernel/protect_cgroups/private_devices = false is not expressed: the engine's defaults (masked /proc, read-only cgroups, a minimal /dev) apply".into());
    }
    for m in &c.mounts {
        let target = m.target.display();
        match &m.kind {
            MountKind::Overlay { .. } => {
                w.push(format!("overlay mount at {target} is not expressed"));
            }
            MountKind::Proc | MountKind::Sysfs | MountKind::Dev => w.push(format!(
                "{} mount at {target}: the engine mounts its own /proc, /sys and /dev only",
                m.kind.type_name()
            )),
            MountKind::Bind { .. } | MountKind::Tmpfs { .. } => {}
        }
        if m.propagation.is_some() {
            w.push(format!(
                "propagation of the mount at {target} is not expressed"
            ));
        }
    }
}

fn resources(unit: &Unit, w: &mut Vec<String>) {
    let r = &unit.resources;
    if let Some(n) = r.pids_max {
        w.push(format!("pids_max = {n} is not expressed"));
    }
    if r.memory_swap_max.is_some() {
        w.push("memory_swap_max is not expressed".into());
    }
    if r.io_weight.is_some() {
        w.push("io_weight is not expressed".into());
    }
    if r.cpuset_cpus.is_some() || r.cpuset_mems.is_some() {
        w.push("cpuset_cpus/cpuset_mems are not expressed".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(text: &str) -> Unit {
        crate::unit::parse_unit("u", Path::new("/units/u.toml"), text).expect("unit parses")
    }

    #[test]
    fn table() {
        let defaults = default_unit();
        let base = "[service]\nexec = [\"/bin/app\"]\n";
        for (extra, want) in [
            ("", None),
            ("on_failure = \"poweroff\"\n", Some("PID 1")),
            (
                "exec_stop_post = [[\"/bin/rm\", \"-f\", \"/x\"]]\n",
                Some("exec_stop_post"),
            ),
            ("restart_delay = \"5s\"\n", Some("restart backoff")),
            ("umask = \"0077\"\n", Some("umask")),
            ("success_exit_codes = [0, 3]\n", Some("success_exit_codes")),
            (
                "[container]\nnamespaces = []\n",
                Some("host's mnt, pid, uts, ipc, cgroup"),
            ),
            ("[resources]\npids_max = 10\n", Some("pids_max = 10")),
            ("[container]\noom_score_adj = 100\n", Some("oom_score_adj")),
            ("[logs]\nmax_files = 2\n", Some("[logs]")),
        ] {
            let u = unit(&format!("{base}{extra}"));
            let w = common(&u, defaults.as_ref());
            match want {
                None => assert!(w.is_empty(), "{extra}: {w:?}"),
                Some(want) => assert!(
                    w.iter().any(|m| m.contains(want)
                        || (want == "restart backoff" && m.contains("backoff"))),
                    "{extra}: {w:?}"
                ),
            }
        }
    }
}
