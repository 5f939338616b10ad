//! Where a unit's cgroups are, seen from the host, in any layout (v1, hybrid, v2).

use std::path::PathBuf;

/// Every directory `name` directly below supd's (the test's) own cgroup, in every
/// mounted hierarchy: what must be gone after supd exits.
pub fn cgroup_dirs_named(name: &str) -> Vec<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut found = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, list, path) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or("/"),
        );
        let mount = if list.is_empty() {
            ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
                .into_iter()
                .map(PathBuf::from)
                .find(|m| m.join("cgroup.controllers").exists())
        } else {
            let dir = list.trim_start_matches("name=");
            std::fs::read_dir("/sys/fs/cgroup").ok().and_then(|mut e| {
                e.find_map(|d| {
                    let d = d.ok()?;
                    let n = d.file_name().to_string_lossy().into_owned();
                    (n == dir || n.split(',').any(|c| list.split(',').any(|l| l == c)))
                        .then(|| d.path())
                })
            })
        };
        if let Some(m) = mount {
            let dir = m.join(path.trim_start_matches('/')).join(name);
            if dir.exists() {
                found.push(dir);
            }
        }
    }
    found
}

/// The directory of `pid`'s cgroup for a v1 `controller` (or the v2 one).
pub fn cgroup_dir_of(pid: i32, controller: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, list, path) = (parts.next()?, parts.next()?, parts.next()?);
        if list.split(',').any(|c| c == controller) {
            for entry in std::fs::read_dir("/sys/fs/cgroup").ok()?.flatten() {
                let n = entry.file_name().to_string_lossy().into_owned();
                if n.split(',').any(|c| c == controller) && !n.contains(' ') {
                    return Some(entry.path().join(path.trim_start_matches('/')));
                }
            }
        }
    }
    let v2 = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    let root = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .map(PathBuf::from)
        .find(|m| {
            std::fs::read_to_string(m.join("cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|x| x == controller))
        })?;
    Some(root.join(v2.trim_start_matches('/')))
}
