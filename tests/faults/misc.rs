//! Issue 10, point 9: a numeric user without a passwd entry, a log file deleted
//! under supd, a stop that has to be forced, and the CPU percentage seen by quick
//! successive queries.

use crate::common::*;
use crate::probe::*;

/// A uid and gid with no passwd or group entry.
const UNLISTED: u32 = 4321;

/// The process running `program` in the unit whose main pid is `pid` (itself, or
/// the service under the container's init).
fn service_process(pid: i32, program: &str) -> i32 {
    let mut found = 0;
    wait_until(&format!("{program} in the unit"), || {
        found = std::iter::once(pid)
            .chain(children_of(pid))
            .find(|p| comm(*p) == program)
            .unwrap_or(0);
        found != 0
    });
    found
}

pub fn a_numeric_user_without_passwd_entry_runs_with_its_own_gid_and_no_groups() {
    let listed = std::fs::read_to_string("/etc/passwd").expect("passwd");
    assert!(
        !listed.lines().any(|l| l.split(':').nth(2) == Some("4321")),
        "uid {UNLISTED} must have no passwd entry for this test"
    );
    let unit = |container: &str| {
        format!(
            "[container]\n{container}\n[service]\nexec = [\"/bin/sleep\", \"100000\"]\n\
             user = {UNLISTED}\nstop_timeout = \"2s\"\n"
        )
    };
    let sup = Sup::start(&[("contained", &unit("")), ("host", &unit("namespaces = []"))]);
    for name in ["contained", "host"] {
        let pid = service_process(pid_of(&sup.wait_state(name, "running")), "sleep");
        let field = |f| status_field(pid, f).unwrap_or_default();
        let ids =
            |text: String| -> Vec<String> { text.split_whitespace().map(String::from).collect() };
        assert_eq!(ids(field("Uid:")), vec!["4321"; 4], "{name}");
        assert_eq!(
            ids(field("Gid:")),
            vec!["4321"; 4],
            "{name}: its own gid, not 0"
        );
        assert_eq!(field("Groups:"), "", "{name}: no supplementary groups");
    }
}

pub fn a_deleted_log_file_is_created_again_by_the_next_line() {
    let sup = Sup::start(&[(
        "ticker",
        &sh_unit(
            "",
            "i=0; while :; do echo tick $i; i=$((i + 1)); sleep 0.05; done",
        ),
    )]);
    sup.wait_state("ticker", "running");
    let log = sup.state_dir().join("logs/ticker.log");
    let ticks = |text: &str| -> Vec<u64> {
        text.lines()
            .filter_map(|l| l.rsplit_once("tick ").and_then(|(_, n)| n.parse().ok()))
            .collect()
    };
    let mut last = 0;
    wait_until("a few ticks in the log file", || {
        last = ticks(&std::fs::read_to_string(&log).unwrap_or_default())
            .last()
            .copied()
            .unwrap_or(0);
        last >= 3
    });
    std::fs::remove_file(&log).expect("rm the live log");
    let mut fresh = Vec::new();
    wait_until("the log file to be created again", || {
        fresh = ticks(&std::fs::read_to_string(&log).unwrap_or_default());
        !fresh.is_empty()
    });
    assert!(
        fresh[0] > last,
        "only new lines in the new file: {fresh:?} after {last}"
    );
}

pub fn a_stop_forced_at_stop_timeout_says_so_in_reply_status_and_log() {
    let stubborn =
        sh_unit("", "trap '' TERM; while :; do sleep 1; done") + "stop_timeout = \"300ms\"\n";
    let polite = "[service]\nexec = [\"/bin/sleep\", \"100000\"]\nstop_timeout = \"5s\"\n";
    let sup = Sup::start(&[("stubborn", &stubborn), ("polite", polite)]);
    sup.wait_state("stubborn", "running");
    sup.wait_state("polite", "running");

    let out = sup.supctl_within(&["stop", "--wait", "stubborn"], PATIENCE);
    let said = stdout(&out) + &stderr(&out);
    assert!(
        said.contains("SIGKILL") && said.contains("stop_timeout (300ms)"),
        "the reply says the stop was forced: {said}"
    );
    let unit = sup.wait_state("stubborn", "inactive");
    assert_eq!(unit["stop_timed_out"], true, "{unit}");
    sup.log.wait_for_all(&[
        "WARN",
        "stubborn",
        "did not stop within stop_timeout (300ms) of SIGTERM; killed with SIGKILL",
    ]);
    let shown = stdout(&sup.supctl(&["status", "stubborn"]));
    assert!(shown.contains("forced"), "{shown}");

    // A service that stops when asked is not reported as forced.
    let out = sup.supctl_within(&["stop", "--wait", "polite"], PATIENCE);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!(stdout(&out) + &stderr(&out)).contains("SIGKILL"));
    assert_eq!(sup.unit("polite")["stop_timed_out"], false);
}

pub fn quick_successive_queries_see_the_same_cpu_percentage() {
    let sup = Sup::start(&[(
        "half",
        "[resources]\ncpu_max = \"50%\"\n[service]\n\
         exec = [\"/bin/sh\", \"-c\", \"while :; do :; done\"]\nstop_timeout = \"2s\"\n",
    )]);
    sup.wait_state("half", "running");
    let percent = || sup.unit("half")["usage"]["cpu_percent"].as_f64();
    // Asked over and over (every 20 ms, like many clients at once): once 0.5 s have
    // passed there is a window, and the cgroup holds the loop near its quota.
    wait_until("a CPU percentage near 50%", || {
        percent().is_some_and(|p| (20.0..=80.0).contains(&p))
    });
    for _ in 0..5 {
        let (a, b) = (percent(), percent());
        let (Some(a), Some(b)) = (a, b) else {
            panic!("a window of 0.5 s was there, and still is: {a:?} {b:?}");
        };
        // Not 0% nor over the quota (the old per-query window showed 0% and
        // 114%); below 20% is possible when the test machine is busy.
        for p in [a, b] {
            assert!(p > 0.0 && p <= 80.0, "held at 50%, shown {p}%");
        }
        assert!((a - b).abs() < 20.0, "two quick queries: {a}% and {b}%");
    }
}
