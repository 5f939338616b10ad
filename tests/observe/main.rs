//! Watching a running supd (issue 15): `supctl events`, `--control-group` readers,
//! `--metrics-listen` and `--log-target`, with real containers. Needs root; ignored
//! otherwise.

#[path = "../common/mod.rs"]
mod common;
mod log_target;

use log_target::{
    a_missing_journal_socket_stops_supd_at_start,
    a_stuck_journal_drops_lines_and_never_slows_the_unit, supd_log_names_exits_as_status_does,
    unit_output_goes_to_journald_and_syslog_sockets,
};

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::harness::{self, root, trials};
use common::{SUPCTL, Sup, stderr, stdout};

fn main() -> std::process::ExitCode {
    harness::main(trials![root => [
        events_stream_a_crash_with_its_exit_code_and_the_restart,
        control_group_members_read_but_cannot_change_anything,
        metrics_are_scraped_and_parse,
        logs_filter_by_time_and_text_from_the_files,
        unit_output_goes_to_journald_and_syslog_sockets,
        a_missing_journal_socket_stops_supd_at_start,
        a_stuck_journal_drops_lines_and_never_slows_the_unit,
        supd_log_names_exits_as_status_does,
    ]])
}

const CRASHER: &str = "[service]\nexec = [\"/bin/sh\", \"-c\", \"sleep 0.3; exit 3\"]\nrestart = \"always\"\nrestart_delay = \"200ms\"\n";

fn events_stream_a_crash_with_its_exit_code_and_the_restart() {
    let sup = Sup::start(&[
        ("crash", CRASHER),
        ("calm", "[service]\nexec = [\"/bin/sleep\", \"100\"]\n"),
    ]);
    let mut events = Command::new(SUPCTL)
        .arg("--state-dir")
        .arg(sup.state_dir())
        .args(["events", "--json", "crash"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("supctl events");
    let lines = BufReader::new(events.stdout.take().expect("stdout"));
    let mut seen = Vec::new();
    for line in lines.lines() {
        let event: serde_json::Value = serde_json::from_str(&line.expect("line")).expect("json");
        assert_eq!(event["unit"], "crash", "filtered to crash: {event}");
        assert!(
            event["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{event}"
        );
        let done = event["event"] == "state" && event["state"] == "restarting";
        seen.push(event);
        if done && seen.iter().any(|e| e["event"] == "exit") {
            break;
        }
    }
    let _ = events.kill();
    let _ = events.wait();
    let exit = seen
        .iter()
        .find(|e| e["event"] == "exit")
        .expect("an exit event");
    assert_eq!(exit["code"], 3, "{exit}");
    assert_eq!(exit["oom_killed"], false);
    let restart = seen.last().expect("events");
    assert_eq!(restart["previous"], "running", "{restart}");
    // The restart counter of status, counting the restart that is waiting.
    assert!(
        restart["restarts"].as_u64().is_some_and(|n| n >= 1),
        "{restart}"
    );
    // The human form names the unit and what happened.
    let out = Command::new("timeout")
        .arg("3")
        .arg(SUPCTL)
        .arg("--state-dir")
        .arg(sup.state_dir())
        .args(["events"])
        .output()
        .expect("events");
    let text = stdout(&out);
    assert!(
        text.contains("crash: process") && text.contains("exited, code=3"),
        "{text}"
    );
}

fn control_group_members_read_but_cannot_change_anything() {
    let group = format!("supread{}", std::process::id() % 100000);
    let made = Command::new("groupadd")
        .arg(&group)
        .status()
        .expect("groupadd");
    assert!(made.success(), "groupadd {group}");
    let gid = {
        let out = Command::new("getent")
            .args(["group", &group])
            .output()
            .expect("getent");
        stdout(&out)
            .split(':')
            .nth(2)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let sup = Sup::prepare(&[("calm", "[service]\nexec = [\"/bin/sleep\", \"100\"]\n")]);
    let mut sup = sup.launch_with(&["--control-group", &group]);
    sup.wait_all_running();
    let as_member = |verb: &[&str], groups: &str| {
        Command::new("setpriv")
            .args([
                "--reuid", "65534", "--regid", "65534", "--groups", groups, SUPCTL,
            ])
            .arg("--state-dir")
            .arg(sup.state_dir())
            .args(verb)
            .output()
            .expect("setpriv supctl")
    };
    let status = as_member(&["status", "--json"], &gid);
    assert!(
        status.status.success(),
        "member status: {}",
        stderr(&status)
    );
    assert!(stdout(&status).contains("\"calm\""));
    let logs = as_member(&["logs", "calm"], &gid);
    assert!(logs.status.success(), "member logs: {}", stderr(&logs));
    for verb in [
        &["stop", "calm"][..],
        &["restart", "calm"],
        &["reload"],
        &["poweroff"],
        &["exec", "calm", "id"],
        &["kill", "calm"],
    ] {
        let out = as_member(verb, &gid);
        assert_eq!(
            out.status.code(),
            Some(6),
            "{verb:?} must be refused: {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains("may only read"), "{}", stderr(&out));
    }
    assert_eq!(
        sup.unit("calm")["state"],
        "running",
        "a refused stop stopped it"
    );
    // Outside the group: nothing at all.
    let stranger = as_member(&["status"], "65534");
    assert_eq!(stranger.status.code(), Some(6), "{}", stderr(&stranger));
    sup.stop();
    let _ = Command::new("groupdel").arg(&group).status();
}

fn metrics_are_scraped_and_parse() {
    let port = 20000 + (std::process::id() % 20000) as u16;
    let sup = Sup::prepare(&[
        ("crash", CRASHER),
        (
            "calm",
            "[service]\nexec = [\"/bin/sleep\", \"100\"]\n[resources]\nmemory_max = \"64M\"\n",
        ),
    ]);
    let addr = format!("127.0.0.1:{port}");
    let mut sup = sup.launch_with(&["--metrics-listen", &addr]);
    sup.wait_status("a crash counted", |u| {
        u.iter()
            .any(|u| u["name"] == "crash" && u["restarts"].as_u64() >= Some(1))
    });
    let text = scrape(&addr, "/metrics");
    let (head, body) = text.split_once("\r\n\r\n").expect("http response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("openmetrics-text"), "{head}");
    // Every sample line is `name{labels} value`, and the exposition ends with EOF.
    let mut samples = std::collections::BTreeMap::new();
    for line in body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        samples.insert(name.to_owned(), value);
    }
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    let get = |k: &str| *samples.get(k).unwrap_or_else(|| panic!("no {k} in {body}"));
    assert_eq!(get("sup_unit_state{unit=\"calm\",state=\"running\"}"), 1.0);
    assert_eq!(
        get("sup_unit_memory_max_bytes{unit=\"calm\"}"),
        (64u64 << 20) as f64
    );
    assert!(get("sup_unit_exits_total{unit=\"crash\",reason=\"code\",value=\"3\"}") >= 1.0);
    assert!(get("sup_start_latency_seconds_count") >= 2.0);
    assert!(get("sup_supd_resident_memory_bytes") > 1e6);
    assert!(get("sup_supd_open_fds") > 3.0);
    assert!(samples.contains_key("sup_unit_tasks{unit=\"calm\"}"));
    assert!(scrape(&addr, "/nope").starts_with("HTTP/1.1 404"));
    sup.stop();
}

fn scrape(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect metrics");
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

fn logs_filter_by_time_and_text_from_the_files() {
    let unit = "[service]\nexec = [\"/bin/sh\", \"-c\", \"i=0; while [ $i -lt 30 ]; do echo alpha $i; echo beta $i >&2; i=$((i+1)); done; sleep 100\"]\n";
    let mut sup = Sup::start(&[("talk", unit)]);
    sup.wait_all_running();
    let logs = |args: &[&str]| {
        let mut all = vec!["logs", "talk"];
        all.extend_from_slice(args);
        let out = sup.supctl(&all);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    common::wait_until("all 60 lines", || {
        logs(&["-n", "100"]).lines().count() == 60
    });
    let beta = logs(&["--grep", "beta", "-n", "100"]);
    assert_eq!(beta.lines().count(), 30, "{beta}");
    assert!(beta.lines().all(|l| l.contains("[stderr] beta")), "{beta}");
    assert_eq!(logs(&["--grep", "beta 2", "-n", "3"]).lines().count(), 3);
    assert!(logs(&["--since", "2999-01-01T00:00:00Z"]).is_empty());
    assert_eq!(
        logs(&["--since", "1h", "--grep", "alpha 7"])
            .lines()
            .count(),
        1
    );
    assert!(logs(&["--until", "2000-01-01T00:00:00Z"]).is_empty());
    let json = logs(&["--json", "-n", "2", "--grep", "alpha"]);
    for line in json.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        assert_eq!(v["stream"], "stdout");
        assert!(
            v["line"].as_str().is_some_and(|l| l.starts_with("alpha")),
            "{v}"
        );
        assert!(v["ts"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
    let bad = sup.supctl(&["logs", "talk", "--since", "last tuesday"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    sup.stop();
}
