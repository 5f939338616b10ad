//! Signals to a unit's members reach only processes still in its cgroup: a pid
//! read from `cgroup.procs` that is another process's by the time of the signal
//! (reused after a member exited) is left alone.

use std::os::unix::process::ExitStatusExt;

use nix::sys::signal::Signal;

use super::*;

/// The host's tree with units `web` and `db`, each with a pids limit.
fn web_and_db(host: &Host) -> CgroupTree {
    let tree = host.tree();
    let res = ResourceSpec {
        pids_max: Some(10),
        ..Default::default()
    };
    for unit in ["web", "db"] {
        tree.create(unit, &res).expect("create");
    }
    tree
}

#[test]
fn v1_kill_all_kills_only_pids_still_in_the_unit() {
    let host = Host::v1(V1_MOUNTS, true);
    let tree = web_and_db(&host);
    tree.place("web", 7001).expect("place");
    tree.place("db", 7002).expect("place");
    // The read lists two numbers that are not web's by the time of the signal:
    // one now in db, one now a process outside supd's subtree.
    let web = host.sub("pids", "web");
    host.fs.list_once(&web, 7002);
    host.fs.list_once(&web, 7003);
    tree.kill_all("web").expect("kill_all");
    assert_eq!(host.fs.killed(), vec![7001]);
    assert_eq!(host.read("pids", "web/cgroup.procs"), "");
    assert_eq!(host.read("pids", "db/cgroup.procs"), "7002", "db untouched");
}

#[test]
fn signal_members_skips_the_init_and_numbers_no_longer_members() {
    for (host, mount) in [
        (Host::v1(V1_MOUNTS, true), "pids"),
        (Host::v2(V2_OFFERED, false), "v2"),
    ] {
        let tree = web_and_db(&host);
        for pid in [7001, 7002] {
            tree.place("web", pid).expect("place");
        }
        tree.place("db", 7003).expect("place");
        host.fs.list_once(&host.sub(mount, "web"), 7003);
        tree.signal_members("web", Signal::SIGTERM, Some(7001));
        assert_eq!(
            host.fs.signalled(),
            vec![(7002, Signal::SIGTERM)],
            "{mount}"
        );
        // A unit without a cgroup: nothing to signal, no error.
        tree.signal_members("never", Signal::SIGTERM, None);
        assert_eq!(host.fs.signalled().len(), 1, "{mount}");
    }
}

/// The kernel's `signal` on a real child: pinned by a pidfd, judged on its
/// `/proc/PID/cgroup`, signalled only when judged a member.
#[test]
fn kernel_signal_reads_the_cgroup_of_the_pinned_process() {
    let mut child = std::process::Command::new("/bin/sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    let pid = child.id() as i32;
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("proc cgroup");
    Kernel.signal(pid, Signal::SIGKILL, &|_| false);
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "not a member: alive"
    );
    let seen = std::sync::Mutex::new(String::new());
    Kernel.signal(pid, Signal::SIGKILL, &|text| {
        if let Ok(mut s) = seen.lock() {
            *s = text.to_string();
        }
        true
    });
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert_eq!(*seen.lock().expect("seen"), own);
}

/// `holds` (who may send a unit notices): a process in the unit's cgroup or below
/// it, on v2 by the `0::` line, on v1 by a line of one of supd's hierarchies.
#[test]
fn holds_tells_a_units_processes_from_others() {
    let v2 = Host::v2(V2_OFFERED, false).tree();
    let v1 = Host::v1(V1_MOUNTS, true).tree();
    let table: &[(&CgroupTree, &str, bool)] = &[
        (&v2, "0::/host/sup/web\n", true),
        (&v2, "0::/host/sup/web/inner\n", true),
        (&v2, "0::/host/sup/webapp\n", false),
        (&v2, "0::/host/sup/db\n", false),
        (&v2, "0::/host\n", false),
        (&v2, "3:pids:/host/sup/web\n", false),
        (&v2, "", false),
        (&v1, "3:pids:/host/sup/web\n0::/host\n", true),
        (&v1, "2:cpu,cpuacct:/host/sup/web\n", true),
        (&v1, "3:pids:/host/sup/db\n", false),
        (&v1, "7:freezer:/host/sup/web\n", false),
        (&v1, "0::/host/sup/web\n", false),
    ];
    for (tree, text, want) in table {
        assert_eq!(tree.holds("web", text), *want, "{text:?}");
    }
}
