//! Resource control (issue 4), checked on this machine's cgroups (v1 or hybrid
//! here; pure v2 in the VM). These tests need root; without it they are reported
//! as ignored.

mod common;

use std::time::{Duration, Instant};

use common::harness::{self, root, trials};
use common::*;

fn main() -> std::process::ExitCode {
    harness::main(trials![root => [
        memory_hog_is_oom_killed_reported_and_restarted,
        fork_bomb_is_contained_and_supd_stays_responsive,
        cpu_max_holds_a_busy_loop_to_its_share,
        stop_leaves_nothing_of_a_double_forking_service_and_removes_its_cgroup,
        no_cgroup_remains_after_supd_exits,
        status_and_top_show_usage_against_limits_and_cgroup_namespace_is_rooted,
        status_usage_is_read_afresh_each_query_and_follows_a_new_cgroup,
    ]])
}

fn memory_hog_is_oom_killed_reported_and_restarted() {
    let sup = Sup::start(&[(
        "hog",
        "[resources]\nmemory_max = \"32M\"\n[service]\nexec = [\"/bin/dd\", \"if=/dev/zero\", \"of=/dev/null\", \"bs=128M\", \"count=1\"]\n\
         restart = \"on-failure\"\nrestart_delay = \"200ms\"\nstart_limit = { burst = 100, interval = \"1m\" }\n",
    )]);
    let hog = sup.wait_status("an OOM kill", |s| {
        s.iter().any(|u| {
            u["name"] == "hog"
                && u["oom_kills"].as_u64() >= Some(1)
                && u["restarts"].as_u64() >= Some(1)
        })
    });
    let hog = &hog[0];
    assert_eq!(hog["last_exit"]["oom_killed"], true, "{hog}");
    assert_eq!(hog["last_exit"]["signal"], "SIGKILL", "{hog}");
    // supd itself is unharmed and answers.
    assert!(
        sup.supctl(&["status"]).status.success()
            || sup.supctl(&["status"]).status.code() == Some(3)
    );
}

fn fork_bomb_is_contained_and_supd_stays_responsive() {
    let sup = Sup::start(&[
        (
            "bomb",
            "[resources]\npids_max = 32\n[service]\nexec = [\"/bin/sh\", \"-c\", \"f() { f | f & }; f; while true; do sleep 1; done\"]\n",
        ),
        ("calm", "[service]\nexec = [\"/bin/sleep\", \"1000\"]\n"),
    ]);
    sup.wait_state("calm", "running");
    let bomb = sup.wait_state("bomb", "running");
    let pid = pid_of(&bomb);
    let pids_dir = cgroup_dir_of(pid, "pids").expect("pids cgroup");
    // The bomb hits its ceiling: forks refused by the pids controller are counted
    // in pids.events, and the count of tasks never exceeds the limit.
    let refused = || -> u64 {
        let text = std::fs::read_to_string(pids_dir.join("pids.events")).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("max "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    let current = || -> u64 {
        std::fs::read_to_string(pids_dir.join("pids.current"))
            .expect("pids.current")
            .trim()
            .parse()
            .expect("n")
    };
    wait_until("the bomb to reach its limit", || {
        let now = current();
        assert!(now <= 32, "contained: {now}");
        refused() > 0
    });
    // Responsive: a generous bound, far above the milliseconds it takes, that only
    // a supd starved by the bomb would miss.
    let out = sup.supctl_within(&["status", "calm"], Duration::from_secs(10));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = sup.supctl(&["stop", "--wait", "bomb"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_until(
        &format!("cgroup {} to be removed", pids_dir.display()),
        || !pids_dir.exists(),
    );
}

fn cpu_max_holds_a_busy_loop_to_its_share() {
    let sup = Sup::start(&[(
        "spin",
        "[resources]\ncpu_max = \"20%\"\n[service]\nexec = [\"/bin/sh\", \"-c\", \"while true; do :; done\"]\n",
    )]);
    let spin = sup.wait_state("spin", "running");
    let pid = pid_of(&spin);
    let usage = || -> u64 {
        if let Some(d) = cgroup_dir_of(pid, "cpuacct")
            && let Ok(ns) = std::fs::read_to_string(d.join("cpuacct.usage"))
        {
            return ns.trim().parse::<u64>().expect("ns") / 1000;
        }
        let d = cgroup_dir_of(pid, "cpu").expect("cpu cgroup");
        let stat = std::fs::read_to_string(d.join("cpu.stat")).expect("cpu.stat");
        stat.lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .expect("usage_usec")
            .trim()
            .parse()
            .expect("us")
    };
    // A measurement over 3 s of wall time (what cpu_max limits), not a wait for an
    // event: the share is the CPU time used in it over its length.
    let (u0, t0) = (usage(), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let (u1, t1) = (usage(), Instant::now());
    let share = (u1 - u0) as f64 / (t1 - t0).as_micros() as f64;
    assert!(
        share < 0.25,
        "a 20% limit let the loop use {:.0}% of a CPU",
        share * 100.0
    );
    assert!(
        share > 0.05,
        "the loop should still run: {:.0}%",
        share * 100.0
    );
}

fn stop_leaves_nothing_of_a_double_forking_service_and_removes_its_cgroup() {
    let sup = Sup::start(&[(
        "forker",
        // On the host (no PID namespace) and escaping its process group with setsid:
        // only the cgroup still holds the daemon.
        "[container]\nnamespaces = []\n[service]\nexec = [\"/bin/sh\", \"-c\", \"(setsid sleep 1000 &); exec sleep 1000\"]\n",
    )]);
    let unit = sup.wait_state("forker", "running");
    let pid = pid_of(&unit);
    let dir = cgroup_dir_of(pid, "pids")
        .or_else(|| cgroup_dir_of(pid, "memory"))
        .expect("unit cgroup");
    let members = || -> Vec<i32> {
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect()
    };
    wait_until("the daemon to appear", || members().len() >= 2);
    let all = members();
    let out = sup.supctl(&["stop", "--wait", "forker"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_until("every process and the cgroup to be gone", || {
        !all.iter().any(|p| pid_alive(*p)) && !dir.exists()
    });
}

fn no_cgroup_remains_after_supd_exits() {
    let mut sup = Sup::start(&[
        (
            "a",
            "[resources]\nmemory_max = \"64M\"\n[service]\nexec = [\"/bin/sleep\", \"1000\"]\n",
        ),
        ("b", "[service]\nexec = [\"/bin/sleep\", \"1000\"]\n"),
    ]);
    sup.wait_all_running();
    let root = sup.cgroup_root();
    assert!(
        !cgroup_dirs_named(&root).is_empty(),
        "supd made its subtree"
    );
    assert!(sup.stop().success());
    assert_eq!(cgroup_dirs_named(&root), Vec::<std::path::PathBuf>::new());
}

fn status_and_top_show_usage_against_limits_and_cgroup_namespace_is_rooted() {
    let sup = Sup::prepare(&[]);
    let out = sup.path().join("cgroup-view");
    let script = report(&out, "cat /proc/self/cgroup");
    sup.write_unit(
        "limited",
        &sh_unit("[resources]\nmemory_max = \"64M\"\npids_max = 50", &script),
    );
    let sup = sup.launch();
    sup.wait_state("limited", "running");
    let view = wait_file(&out);
    // With its own cgroup namespace (a default), the service sees its cgroup as /.
    for line in view
        .lines()
        .filter(|l| l.contains("memory") || l.contains("pids"))
    {
        assert!(
            line.ends_with(":/"),
            "cgroup namespace rooted at the unit's cgroup: {view}"
        );
    }
    let unit = sup.unit("limited");
    let usage = &unit["usage"];
    assert_eq!(usage["memory_max"], 64 << 20, "{unit}");
    assert_eq!(usage["pids_max"], 50, "{unit}");
    assert!(
        usage["memory_current"].as_u64().is_some_and(|m| m > 0),
        "{unit}"
    );
    assert!(
        usage["tasks"]
            .as_u64()
            .is_some_and(|t| (1..=5).contains(&t)),
        "{unit}"
    );
    let top = sup.supctl(&["top", "-n", "2"]);
    assert!(top.status.success(), "{}", stderr(&top));
    let text = stdout(&top);
    let row = text
        .lines()
        .rfind(|l| l.starts_with("limited"))
        .expect("a row");
    assert!(
        row.contains("/ 64.0M") && row.contains("/ 50") && row.contains('%'),
        "{text}"
    );
}

/// supd holds each unit's usage files open between queries: every query must
/// still show what the cgroup holds now, and a unit stopped and started again
/// (its cgroup removed and made anew) must be read from its new cgroup.
fn status_usage_is_read_afresh_each_query_and_follows_a_new_cgroup() {
    let sup = Sup::prepare(&[]);
    let trigger = sup.path().join("more");
    // Until the trigger exists: the init, the shell and a short sleep; then the
    // init and three long sleeps.
    let script = format!(
        "while [ ! -e {t} ]; do sleep 0.05; done; sleep 1000 & sleep 1000 & exec sleep 1000",
        t = trigger.display()
    );
    sup.write_unit("growing", &sh_unit("", &script));
    let sup = sup.launch();
    sup.wait_state("growing", "running");
    let tasks = || sup.unit("growing")["usage"]["tasks"].as_u64();
    let before = tasks();
    assert!(
        before.is_some_and(|t| t <= 3),
        "before the trigger: {before:?}"
    );
    // Read from files supd holds open: each of the unit's usage files once.
    let supd = sup.child.as_ref().expect("supd").id();
    let held: Vec<String> = std::fs::read_dir(format!("/proc/{supd}/fd"))
        .expect("supd's fds")
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|target| target.display().to_string())
        .filter(|target| target.contains("/growing/"))
        .collect();
    let files: std::collections::BTreeSet<&str> =
        held.iter().filter_map(|t| t.rsplit('/').next()).collect();
    assert!(
        files.contains("pids.current") && files.len() == held.len(),
        "each usage file held once: {held:?}"
    );
    std::fs::write(&trigger, "").expect("trigger");
    wait_until("the new processes to show in status", || tasks() == Some(4));

    for verb in ["stop", "start"] {
        let out = sup.supctl(&[verb, "--wait", "growing"]);
        assert!(out.status.success(), "{verb}: {}", stderr(&out));
    }
    wait_until("the restarted unit's processes to show", || {
        tasks() == Some(4)
    });
    let usage = &sup.unit("growing")["usage"];
    assert!(
        usage["memory_current"].as_u64().is_some_and(|m| m > 0),
        "{usage}"
    );
}
