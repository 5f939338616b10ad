//! The container's processes: its init (PID namespace, reaping, signals), what a
//! service may do (capabilities, no_new_privs, seccomp, masked paths) and the
//! process settings it starts with.

use std::path::Path;

use crate::common::*;

pub fn pid_namespace_hides_the_host_reaps_orphans_and_stops_a_term_ignoring_service() {
    let sup = Sup::prepare(&[]);
    let out = sup.path().join("pid");
    // Orphans: each subshell's sleep is re-parented to the container's init. The
    // service waits (at most 10 s) until no process but itself has the init as its
    // parent: the orphans exited and were reaped, or are zombies the init left.
    let script = format!(
        "trap '' TERM; for i in 1 2 3 4 5; do (sleep 0.2 &); done; \
         n=0; while [ $n -lt 100 ] && [ $(cat /proc/[0-9]*/stat 2>/dev/null | awk -v me=$$ '$4 == 1 && $1 != me' | wc -l) -gt 0 ]; do sleep 0.1; n=$((n + 1)); done; \
         zombies=$(cat /proc/[0-9]*/stat | awk '$3 == \"Z\"' | wc -l); \
         exe=$(head -c 1 /proc/1/exe >/dev/null 2>&1 && echo exe-readable || echo exe-closed); \
         echo $$ $(cat /proc/1/comm) $(ls /proc | grep -c '^[0-9]') $zombies $exe > {o}.tmp; mv {o}.tmp {o}; \
         while true; do sleep 1; done",
        o = out.display()
    );
    sup.write_unit("pidns", &unit("", &script));
    let sup = sup.launch();
    let seen = wait_file(&out);
    let fields: Vec<&str> = seen.split_whitespace().collect();
    assert_eq!(
        fields[0], "2",
        "the service is pid 2 under the init: {seen}"
    );
    assert_eq!(fields[1], "sup-init", "{seen}");
    let visible: usize = fields[2].parse().expect("count");
    assert!(
        visible <= 6,
        "only the container's few processes are visible: {seen}"
    );
    assert_eq!(fields[3], "0", "no zombies: orphans were reaped: {seen}");
    // The init's program cannot be reached through /proc/1/exe (root in the
    // container could otherwise change the host's file).
    assert_eq!(fields[4], "exe-closed", "{seen}");

    let pid = pid_of(&sup.unit("pidns"));
    // The init is the small sup-init program, not a copy of supd kept alive,
    // exec'd from a sealed in-memory copy, not from the host's file.
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("init's exe");
    assert!(
        exe.to_string_lossy().starts_with("/memfd:sup-init"),
        "{}",
        exe.display()
    );
    let out = sup.supctl(&["stop", "--wait", "pidns"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sup.unit("pidns")["state"], "inactive");
    assert!(!pid_alive(pid), "the container's init is gone");
}

pub fn security_caps_no_new_privs_seccomp_and_masked_paths() {
    let sup = Sup::prepare(&[]);
    let caps_out = sup.path().join("caps");
    let caps_script = report(
        &caps_out,
        "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|NoNewPrivs)' /proc/self/status",
    );
    sup.write_unit(
        "keep",
        &unit(
            "capabilities = [\"net_bind_service\", \"CAP_KILL\"]",
            &caps_script,
        ),
    );
    // The filter follows the capabilities like Docker's: with CAP_SYS_ADMIN kept,
    // unshare(2) is allowed. personality(ADDR_NO_RANDOMIZE) needs no capability, so
    // only the filter can refuse it; the same unit without the filter shows that it
    // would otherwise work.
    let probe = |o: &Path| {
        report(
            o,
            "unshare --uts true 2>&1 && echo unshare-allowed || echo unshare-refused; \
             setarch $(uname -m) -R true 2>&1 && echo persona-allowed || echo persona-refused; \
             echo timer_list=$(cat /proc/timer_list | wc -c); \
             cat /proc/sys/kernel/panic > /proc/sys/kernel/panic 2>/dev/null && echo sys-writable || echo sys-readonly",
        )
    };
    let (filtered, open) = (sup.path().join("filtered"), sup.path().join("open"));
    sup.write_unit(
        "filtered",
        &unit("capabilities = [\"SYS_ADMIN\"]", &probe(&filtered)),
    );
    sup.write_unit(
        "open",
        &unit(
            "capabilities = [\"SYS_ADMIN\"]\nseccomp = false",
            &probe(&open),
        ),
    );
    let sup = sup.launch();

    let seen = wait_file(&caps_out);
    let keep = format!("{:016x}", (1u64 << 10) | (1u64 << 5));
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd"] {
        assert!(
            seen.lines()
                .any(|l| l.starts_with(set) && l.ends_with(&keep)),
            "{set} must be exactly {keep}: {seen}"
        );
    }
    assert!(seen.contains("NoNewPrivs:\t1"), "{seen}");

    let filtered = wait_file(&filtered);
    assert!(
        filtered.contains("Operation not permitted")
            && filtered.contains("persona-refused")
            && filtered.contains("unshare-allowed"),
        "{filtered}"
    );
    assert!(
        filtered.contains("timer_list=0"),
        "masked path reads empty: {filtered}"
    );
    assert!(filtered.contains("sys-readonly"), "{filtered}");
    let open = wait_file(&open);
    assert!(
        open.contains("persona-allowed") && open.contains("unshare-allowed"),
        "without the filter the persona can be set: {open}"
    );
    drop(sup);
}

pub fn process_settings_rlimits_umask_oom_groups_and_loopback() {
    let sup = Sup::prepare(&[]);
    let out = sup.path().join("settings");
    let script = report(
        &out,
        "ulimit -n; ulimit -Hn; umask; cat /proc/self/oom_score_adj; id -G; \
         ip -o link show | wc -l; ip -o link show lo | grep -c 'UP'",
    );
    let head = "[container]\nnamespaces = [\"mnt\", \"pid\", \"net\"]\noom_score_adj = 321\n\
                [container.rlimits]\nnofile = [123, 456]";
    sup.write_unit(
        "settings",
        &(sh_unit(head, &script) + "umask = \"0027\"\nsupplementary_groups = [4242]\n"),
    );
    let sup = sup.launch();
    let seen = wait_file(&out);
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines[0], "123", "soft nofile: {seen}");
    assert_eq!(lines[1], "456", "hard nofile: {seen}");
    assert_eq!(lines[2], "0027", "umask: {seen}");
    assert_eq!(lines[3], "321", "oom_score_adj: {seen}");
    assert!(
        lines[4].split_whitespace().any(|g| g == "4242"),
        "supplementary group: {seen}"
    );
    assert_eq!(lines[5], "1", "a new network namespace has only lo: {seen}");
    assert_eq!(lines[6], "1", "lo is up: {seen}");
    drop(sup);
}

pub fn init_forwards_any_signal_and_reports_signal_deaths_as_signals() {
    let sup = Sup::start(&[
        (
            // Ignores real-time signal 40; a real-time signal to the init must not
            // crash it (it is forwarded like any other).
            "steady",
            "[service]\nexec = [\"/bin/sh\", \"-c\", \"trap '' 40; while true; do sleep 1; done\"]\n",
        ),
        (
            "segv",
            "[service]\nexec = [\"/bin/sh\", \"-c\", \"sleep 0.2; kill -SEGV $$\"]\nrestart = \"on-abnormal\"\nrestart_delay = \"5s\"\n",
        ),
    ]);
    let pid = pid_of(&sup.wait_state("steady", "running"));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).expect("alive");
    // nix's Signal has no real-time signals, hence libc.
    // SAFETY: kill(2) takes no pointers; `pid` is the unit's init, a child of supd
    // that supd has not reaped (the unit is running).
    let sent = unsafe { libc::kill(pid, 40) };
    assert_eq!(sent, 0, "kill -40: {}", std::io::Error::last_os_error());
    let segv = sup.wait_state("segv", "restarting");
    assert_eq!(segv["last_exit"]["signal"], "SIGSEGV", "{segv}");
    let steady = sup.unit("steady");
    assert_eq!(steady["state"], "running");
    assert_eq!(
        steady["pid"].as_i64(),
        Some(pid as i64),
        "the init survived the real-time signal"
    );
}
