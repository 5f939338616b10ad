//! Issue 10, points 7 and 8: supd is killed with SIGKILL and started again on the
//! same state directory and cgroup subtree; the units directory is deleted and
//! created again under a running supd.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::common::*;
use crate::probe::*;

/// A service of two processes, so a leftover is more than the main process.
fn forking(container: &str) -> String {
    format!(
        "[container]\n{container}\n[service]\nexec = [\"/bin/sh\", \"-c\", \
         \"sleep 100000 & exec sleep 100000\"]\nstop_timeout = \"2s\"\n"
    )
}

/// Every pid in supd's cgroup subtree, in every hierarchy, but supd's own leaf.
fn pids_in_subtree(sup: &Sup) -> Vec<i32> {
    let mut pids: Vec<i32> = Vec::new();
    for root in cgroup_dirs_named(&sup.cgroup_root()) {
        for unit in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let name = unit.file_name().to_string_lossy().into_owned();
            if unit.path().is_dir() && !name.starts_with('.') {
                pids.extend(pids_below(&unit.path()));
            }
        }
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// The unit's cgroup directories in every hierarchy.
fn unit_cgroups(sup: &Sup, unit: &str) -> Vec<std::path::PathBuf> {
    cgroup_dirs_named(&sup.cgroup_root())
        .into_iter()
        .map(|d| d.join(unit))
        .filter(|d| d.exists())
        .collect()
}

pub fn after_kill_9_a_new_supd_kills_every_leftover_and_restarts_what_remains() {
    let units = [
        ("keep_ns", forking("")),
        ("keep_host", forking("namespaces = []")),
        ("gone_ns", forking("")),
        ("gone_host", forking("namespaces = []")),
    ];
    let refs: Vec<(&str, &str)> = units.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let mut sup = Sup::start(&refs);
    let before = sup.wait_status("every unit running", |s| {
        s.len() == 4 && s.iter().all(|u| u["state"] == "running")
    });
    let mut old = Vec::new();
    wait_until("two processes per unit in the cgroups", || {
        old = pids_in_subtree(&sup);
        old.len() >= 8
    });
    let count = |sup: &Sup, unit: &str| {
        let mut pids: Vec<i32> = unit_cgroups(sup, unit)
            .iter()
            .flat_map(|d| pids_below(d))
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids.len()
    };
    // In status order (by name).
    let held: Vec<usize> = ["keep_host", "keep_ns"]
        .iter()
        .map(|u| count(&sup, u))
        .collect();

    let mut supd = sup.child.take().expect("supd");
    supd.kill().expect("kill -9 supd");
    supd.wait().expect("reap supd");
    assert!(
        old.iter().all(|p| pid_alive(*p)),
        "the units outlive a killed supd"
    );
    for name in ["gone_ns", "gone_host"] {
        std::fs::remove_file(sup.units_dir().join(format!("{name}.toml"))).expect("rm");
    }

    // The same state directory and cgroup subtree, a fresh log.
    sup.log = Arc::default();
    let sup = sup.launch();
    for (name, _) in &units {
        sup.log.wait_for_all(&[
            "WARN",
            "found the cgroup of an earlier supd's unit; killed what was left in it",
            &format!("unit={name}"),
        ]);
    }
    wait_until("every process of the old units to be gone", || {
        old.iter().all(|p| !pid_alive(*p))
    });
    let after = sup.wait_status("the remaining units to run again", |s| {
        s.len() == 2 && s.iter().all(|u| u["state"] == "running")
    });
    for (u, held) in after.iter().zip(held) {
        let name = u["name"].as_str().expect("name");
        let was = before
            .iter()
            .find(|b| b["name"] == name)
            .expect("was there");
        assert_ne!(u["pid"], was["pid"], "{name} was started afresh");
        let leftover = u["leftover"].as_str().unwrap_or_default();
        assert!(
            leftover.contains(&format!("found {held} process(es)"))
                && leftover.contains("killed them"),
            "{u}"
        );
        let shown = stdout(&sup.supctl(&["status", name]));
        assert!(shown.contains("Found at start"), "{shown}");
    }
    for name in ["gone_ns", "gone_host"] {
        assert!(
            unit_cgroups(&sup, name).is_empty(),
            "{name}'s cgroups are removed"
        );
    }
    let now = pids_in_subtree(&sup);
    assert!(
        now.iter().all(|p| !old.contains(p)),
        "nothing of the old run is left in the subtree: {now:?} (old {old:?})"
    );
}

pub fn a_units_directory_deleted_and_created_again_is_watched_again() {
    let sleeper = "[service]\nexec = [\"/bin/sleep\", \"100000\"]\nstop_timeout = \"2s\"\n";
    let sup = Sup::start(&[("first", sleeper)]);
    let first = sup.wait_state("first", "running");
    let dir = sup.units_dir();
    std::fs::remove_dir_all(&dir).expect("rm -r units");
    sup.log.wait_for("units directory is gone");
    // Without a directory a reload changes nothing: the units keep running.
    let hup = |sup: &Sup| {
        let pid = Pid::from_raw(sup.child.as_ref().expect("supd").id() as i32);
        kill(pid, Signal::SIGHUP).expect("SIGHUP");
    };
    hup(&sup);
    sup.log.wait_for_all(&[
        "reload failed, nothing changed",
        "cannot read units directory",
    ]);
    assert_eq!(sup.unit("first")["pid"], first["pid"]);

    std::fs::create_dir(&dir).expect("mkdir units");
    sup.write_unit("second", sleeper);
    sup.log
        .wait_for("units directory is back; watching it again");
    sup.wait_state("second", "running");
    sup.wait_status("first, no longer in the directory, to be removed", |s| {
        s.iter().all(|u| u["name"] != "first")
    });
    // The new directory itself is watched: a later file is seen without help.
    sup.write_unit("third", sleeper);
    sup.wait_state("third", "running");

    // Once more, quickly, and reloaded by SIGHUP as well.
    std::fs::remove_dir_all(&dir).expect("rm -r units");
    std::fs::create_dir(&dir).expect("mkdir units");
    for name in ["second", "third", "fourth"] {
        sup.write_unit(name, sleeper);
    }
    hup(&sup);
    sup.wait_state("fourth", "running");
    sup.write_unit("fifth", sleeper);
    sup.wait_state("fifth", "running");
}

/// supd's fork server (`supd __forkserver`, see src/spawn/forkserver.rs): the
/// child of supd whose command line says so.
fn fork_servers_of(supd: i32) -> Vec<i32> {
    sup::procfs::processes()
        .into_iter()
        .filter(|p| p.ppid == supd)
        .map(|p| p.pid)
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            cmdline.split(|b| *b == 0).any(|a| a == b"__forkserver")
        })
        .collect()
}

pub fn a_killed_fork_server_is_replaced_and_none_outlives_supd() {
    let mut sup = Sup::start(&[("svc", &forking(""))]);
    sup.wait_all_running();
    let supd = sup.child.as_ref().expect("supd").id() as i32;
    let servers = fork_servers_of(supd);
    assert_eq!(servers.len(), 1, "one fork server: {servers:?}");
    kill(Pid::from_raw(servers[0]), Signal::SIGKILL).expect("kill the fork server");
    wait_until("the fork server is gone", || !pid_alive(servers[0]));
    // The next two starts: the first finds the server dead and spawns its helper
    // itself, or a new server serves it; either way both run.
    for _ in 0..2 {
        let out = sup.supctl(&["restart", "--wait", "svc"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(sup.unit("svc")["state"], "running");
    }
    let replaced = fork_servers_of(supd);
    assert_eq!(replaced.len(), 1, "a new fork server: {replaced:?}");
    assert_ne!(replaced[0], servers[0]);
    let status = sup.stop();
    assert!(status.success(), "supd exited with {status}");
    wait_until("the fork server exits with supd", || {
        !pid_alive(replaced[0])
    });
}

/// A fork server that stops answering (here: stopped by SIGSTOP) holds a start
/// for at most its reply deadline (5 s, src/spawn/forkserver.rs): it is then
/// killed, the start fails, and the unit's next start gets a new server. Status
/// answers meanwhile: only the start and the reaper wait.
pub fn a_hung_fork_server_is_killed_and_the_unit_runs_again_on_a_new_one() {
    let sup = Sup::start(&[(
        "svc",
        &(forking("") + "restart = \"always\"\nrestart_delay = \"0s\"\n"),
    )]);
    sup.wait_all_running();
    let supd = sup.child.as_ref().expect("supd").id() as i32;
    let servers = fork_servers_of(supd);
    assert_eq!(servers.len(), 1, "one fork server: {servers:?}");
    kill(Pid::from_raw(servers[0]), Signal::SIGSTOP).expect("stop the fork server");
    // Not --wait: the restart's start is what hangs.
    let out = sup.supctl(&["restart", "svc"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let asked = Instant::now();
    let status = sup.supctl_within(&["status"], Duration::from_secs(2));
    assert!(status.status.success(), "{}", stderr(&status));
    wait_until("the hung fork server is killed", || !pid_alive(servers[0]));
    assert!(
        asked.elapsed() >= Duration::from_secs(4),
        "killed only once its deadline passed: {:?}",
        asked.elapsed()
    );
    sup.wait_state("svc", "running");
    let replaced = fork_servers_of(supd);
    assert_eq!(replaced.len(), 1, "a new fork server: {replaced:?}");
    assert_ne!(replaced[0], servers[0]);
}
