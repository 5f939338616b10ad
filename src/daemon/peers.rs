//! Who may use the control socket, beyond its uid check: not a process inside a
//! unit. A container's root is often uid 0 on the host (no user namespace), so the
//! uid alone would let any default unit stop others or power the machine off. A
//! peer inside a unit's cgroup is refused unless that unit says `control_socket =
//! true`; a peer in another pid namespace than supd's is refused too (it is some
//! container, supd's or not). A peer supd cannot see at all (its pid reads 0) is in
//! an ancestor or unrelated pid namespace: never one of supd's units, whose
//! namespaces are below supd's. When supd runs in a container of its own that is
//! the host's administrator; otherwise a process that was handed the socket on
//! purpose. Only the uid check and the socket's permissions decide for it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// What the check needs, shared with the control server.
#[derive(Debug, Clone)]
pub struct PeerPolicy {
    /// supd's cgroup subtree in each hierarchy, as `/proc/PID/cgroup` shows it.
    subtrees: Arc<Vec<PathBuf>>,
    /// supd's own pid namespace (`/proc/self/ns/pid` link text).
    own_pid_ns: Option<String>,
    /// Units whose processes may command supd (`control_socket = true`).
    allowed: Arc<RwLock<HashSet<String>>>,
}

impl PeerPolicy {
    pub fn new(subtrees: Vec<PathBuf>) -> Self {
        PeerPolicy {
            subtrees: Arc::new(subtrees),
            own_pid_ns: pid_ns("self"),
            allowed: Arc::default(),
        }
    }

    /// The units allowed from now on (after every load).
    pub fn set_allowed(&self, units: HashSet<String>) {
        match self.allowed.write() {
            Ok(mut a) => *a = units,
            Err(p) => *p.into_inner() = units,
        }
    }

    /// Ok, or why the peer process `pid` may not command supd.
    pub fn check(&self, pid: Option<i32>) -> Result<(), String> {
        let Some(pid) = pid.filter(|p| *p > 0) else {
            // Not in supd's pid namespace or below it: not a unit.
            return Ok(());
        };
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let allowed = match self.allowed.read() {
            Ok(a) => a.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let peer_ns = pid_ns(&pid.to_string());
        judge(
            &cgroups,
            &self.subtrees,
            &allowed,
            peer_ns.as_deref(),
            self.own_pid_ns.as_deref(),
        )
    }
}

fn pid_ns(pid: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid"))
        .ok()
        .map(|l| l.to_string_lossy().into_owned())
}

/// The decision, from what /proc says about the peer.
fn judge(
    proc_cgroup: &str,
    subtrees: &[PathBuf],
    allowed: &HashSet<String>,
    peer_pid_ns: Option<&str>,
    own_pid_ns: Option<&str>,
) -> Result<(), String> {
    if let Some(unit) = unit_of(proc_cgroup, subtrees) {
        return if allowed.contains(&unit) {
            Ok(())
        } else {
            Err(format!(
                "the connecting process belongs to unit {unit}, which may not command supd \
                 (a unit needs control_socket = true in [container] for that)"
            ))
        };
    }
    match (peer_pid_ns, own_pid_ns) {
        (Some(peer), Some(own)) if peer != own => Err(
            "the connecting process is in another pid namespace (a container): only processes \
             in supd's own namespaces may command it"
                .into(),
        ),
        _ => Ok(()),
    }
}

/// The unit whose cgroup a `/proc/PID/cgroup` text places the process in.
fn unit_of(proc_cgroup: &str, subtrees: &[PathBuf]) -> Option<String> {
    proc_cgroup.lines().find_map(|line| {
        let path = Path::new(line.splitn(3, ':').nth(2)?);
        subtrees.iter().find_map(|base| {
            let first = path.strip_prefix(base).ok()?.components().next()?;
            let name = first.as_os_str().to_str()?;
            // supd's own leaf starts with '.', unit names never do.
            (!name.starts_with('.')).then(|| name.to_string())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_refused_unless_they_may_and_other_namespaces_always() {
        let subtrees = vec![PathBuf::from("/system.slice/supd.service/sup")];
        let allowed: HashSet<String> = ["shell".to_string()].into();
        let line = |path: &str| format!("4:pids:{path}\n0::/\n");
        let judge = |cg: &str, ns: &str| judge(cg, &subtrees, &allowed, Some(ns), Some("pid:[1]"));
        // The operator's shell: not in a unit, same namespaces.
        assert!(judge(&line("/user.slice/session-3.scope"), "pid:[1]").is_ok());
        // A default unit (own pid namespace) and a host-namespace unit.
        let web = line("/system.slice/supd.service/sup/web");
        let err = judge(&web, "pid:[9]").unwrap_err();
        assert!(
            err.contains("unit web") && err.contains("control_socket = true"),
            "{err}"
        );
        assert!(
            judge(&web, "pid:[1]").is_err(),
            "namespaces = [] is still a unit"
        );
        // A unit that may.
        assert!(judge(&line("/system.slice/supd.service/sup/shell/sub"), "pid:[7]").is_ok());
        // Some other container, not supd's.
        let other = judge(&line("/docker/abc"), "pid:[5]").unwrap_err();
        assert!(other.contains("another pid namespace"), "{other}");
        // supd's own leaf is supd, not a unit.
        assert!(judge(&line("/system.slice/supd.service/sup/.supd"), "pid:[1]").is_ok());
    }
}
