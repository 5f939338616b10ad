//! Tests of the human renderings: labels, tables, details, the top view.
use super::*;
use crate::control::proto::UnitState;

fn t(s: &str) -> SystemTime {
    humantime::parse_rfc3339(s).unwrap()
}

pub(crate) fn unit(name: &str, state: UnitState, sub: &str) -> UnitStatus {
    UnitStatus {
        sub_state: sub.into(),
        since: "2026-05-01T10:00:00Z".into(),
        want: "up".into(),
        hash: "3f2a9c1e8b04".into(),
        path: format!("/etc/sup/units/{name}.toml"),
        log_file: format!("/var/log/sup/{name}.log"),
        ..UnitStatus::new(name, state)
    }
}

#[test]
fn compact_durations() {
    assert_eq!(format_compact(Duration::from_secs(0)), "0s");
    assert_eq!(format_compact(Duration::from_secs(3)), "3s");
    assert_eq!(format_compact(Duration::from_secs(60)), "1m");
    assert_eq!(format_compact(Duration::from_secs(303)), "5m3s");
    assert_eq!(
        format_compact(Duration::from_secs(2 * 3600 + 13 * 60 + 9)),
        "2h13m"
    );
    assert_eq!(format_compact(Duration::from_secs(7200)), "2h");
    assert_eq!(
        format_compact(Duration::from_secs(2 * 86_400 + 3600)),
        "2d1h"
    );
}

#[test]
fn relative_past_and_future() {
    let now = t("2026-05-01T12:13:03Z");
    assert_eq!(format_relative(t("2026-05-01T12:13:00Z"), now), "3s ago");
    assert_eq!(format_relative(t("2026-05-01T10:00:00Z"), now), "2h13m ago");
    assert_eq!(format_relative(t("2026-05-01T12:13:08Z"), now), "in 5s");
    assert_eq!(relative_rfc3339("2026-05-01T12:13:00.250Z", now), "2s ago");
    assert_eq!(relative_rfc3339("garbage", now), "garbage");
    assert_eq!(relative_rfc3339("", now), "-");
}

#[test]
fn labels() {
    let cases = [
        (UnitState::Running, "running", "running"),
        (UnitState::Restarting, "backoff", "restarting/backoff"),
        (UnitState::Failed, "start-limit", "failed/start-limit"),
        (
            UnitState::Starting,
            "waiting-for-ready",
            "starting (waiting for READY)",
        ),
        (
            UnitState::Starting,
            "waiting-for-healthy",
            "starting (waiting for healthy)",
        ),
    ];
    for (state, sub, label) in cases {
        assert_eq!(state_label(&unit("a", state, sub)), label, "{sub}");
    }
    assert_eq!(format_exit(None), "-");
    let code = ExitInfo {
        oom_killed: false,
        code: Some(1),
        signal: None,
        at: String::new(),
    };
    assert_eq!(format_exit(Some(&code)), "code=1");
    let sig = ExitInfo {
        oom_killed: false,
        code: None,
        signal: Some("SIGKILL".into()),
        at: String::new(),
    };
    assert_eq!(format_exit(Some(&sig)), "signal=SIGKILL");
}

#[test]
fn table_is_aligned() {
    let now = t("2026-05-01T12:13:03Z");
    let mut web = unit("web", UnitState::Running, "running");
    web.pid = Some(4242);
    web.health = Some("healthy".into());
    web.since = "2026-05-01T12:13:00Z".into();
    let mut worker = unit("worker-long", UnitState::Restarting, "backoff");
    worker.restarts = 3;
    worker.last_exit = Some(ExitInfo {
        oom_killed: false,
        code: None,
        signal: Some("SIGKILL".into()),
        at: "2026-05-01T12:13:01Z".into(),
    });
    worker.definition_error = Some("units/worker-long.toml:3:1: unknown key `x`".into());
    let out = render_table(&[web, worker], now);
    let expected = "\
UNIT         STATE               HEALTH   SINCE      PID   RESTARTS  LAST EXIT
web          running             healthy  3s ago     4242  0         -
worker-long  restarting/backoff  -        2h13m ago  -     3         signal=SIGKILL
! worker-long: definition on disk rejected: units/worker-long.toml:3:1: unknown key `x`
";
    assert_eq!(out, expected);
}

#[test]
fn table_shows_addresses_and_ports_once_a_unit_is_networked() {
    let now = t("2026-05-01T12:13:03Z");
    let mut web = unit("web", UnitState::Running, "running");
    web.since = "2026-05-01T12:13:00Z".into();
    web.network = Some(crate::control::proto::NetworkStatus {
        mode: "bridge".into(),
        addresses: vec![crate::control::proto::NetworkAddress {
            network: "default".into(),
            address: "10.89.0.7".into(),
            interface: "eth0".into(),
        }],
        ports: vec!["8080:80/tcp".into(), "127.0.0.1:53:53/udp".into()],
        aliases: vec![],
    });
    let mut host = unit("cron", UnitState::Running, "running");
    host.since = "2026-05-01T12:13:00Z".into();
    let out = render_table(&[web.clone(), host.clone()], now);
    let expected = "\
UNIT  STATE    HEALTH  SINCE   PID  RESTARTS  LAST EXIT  ADDRESS    PORTS
web   running  -       3s ago  -    0         -          10.89.0.7  8080:80/tcp,127.0.0.1:53:53/udp
cron  running  -       3s ago  -    0         -          -          -
";
    assert_eq!(out, expected);
    let detail = render_detail(&web, now);
    assert!(
        detail.contains("Network: bridge, eth0 10.89.0.7 (default)"),
        "{detail}"
    );
    assert!(
        detail.contains("Ports: 8080:80/tcp, 127.0.0.1:53:53/udp"),
        "{detail}"
    );
    assert!(!render_table(&[host], now).contains("ADDRESS"));
}

#[test]
fn empty_table() {
    assert_eq!(
        render_table(&[], SystemTime::UNIX_EPOCH),
        "no units loaded\n"
    );
}

#[test]
fn detail_view() {
    let now = t("2026-05-01T12:13:03Z");
    let mut u = unit("web", UnitState::Restarting, "backoff");
    u.description = "Web frontend".into();
    u.restarts = 2;
    u.last_exit = Some(ExitInfo {
        oom_killed: false,
        code: Some(1),
        signal: None,
        at: "2026-05-01T12:13:00Z".into(),
    });
    u.reason = Some("exited with code 1".into());
    u.next_start = Some("2026-05-01T12:13:05Z".into());
    let out = render_detail(&u, now);
    let expected = "\
web \u{2014} Web frontend
           State: restarting/backoff since 2026-05-01T10:00:00Z (2h13m ago)
            Want: up
             PID: -
        Restarts: 2
       Last exit: code=1 at 2026-05-01T12:13:00Z (3s ago)
          Reason: exited with code 1
      Next start: 2026-05-01T12:13:05Z (in 2s)
      Definition: 3f2a9c1e8b04 /etc/sup/units/web.toml
        Log file: /var/log/sup/web.log
";
    assert_eq!(out, expected);
    u.definition_error = Some("bad".into());
    assert!(render_detail(&u, now).contains("Definition error: on-disk file rejected"));
}

#[test]
fn log_lines() {
    let mut l = LogLine {
        ts: "2026-05-01T12:13:00.123Z".into(),
        stream: "stdout".into(),
        line: "listening".into(),
    };
    assert_eq!(render_log_line(&l), "2026-05-01T12:13:00.123Z listening");
    l.stream = "stderr".into();
    assert_eq!(
        render_log_line(&l),
        "2026-05-01T12:13:00.123Z [stderr] listening"
    );
}

#[test]
fn results() {
    let ok = UnitResult {
        name: "web".into(),
        ok: true,
        state: UnitState::Running,
        message: None,
    };
    assert_eq!(render_result(&ok), Ok("web: running".into()));
    let bad = UnitResult {
        name: "web".into(),
        ok: false,
        state: UnitState::Failed,
        message: Some("exited with code 1".into()),
    };
    assert_eq!(
        render_result(&bad),
        Err("web: failed: exited with code 1".into())
    );
}

#[test]
fn usage_formatting() {
    let u = Usage {
        memory_current: Some(12 << 20),
        memory_peak: Some(20 << 20),
        memory_max: Some(32 << 20),
        cpu_usage_usec: Some(1_500_000),
        cpu_percent: Some(3.25),
        tasks: Some(3),
        pids_max: Some(32),
    };
    assert_eq!(format_memory(&u), "12.0M / 32.0M (peak 20.0M)");
    assert_eq!(format_cpu(&u), "3.2% now, 1.5s total");
    assert_eq!(format_tasks(&u), "3 / 32");
    assert_eq!(format_bytes(512), "512B");
    assert_eq!(format_memory(&Usage::default()), "-");
}

#[test]
fn reload_plan() {
    let plan = ReloadPlan {
        added: vec!["a".into(), "b".into()],
        removed: vec![],
        restarted: vec!["c".into()],
        updated: vec![],
        unchanged: vec!["d".into()],
        rejected: vec!["units/e.toml:1:1: expected `=`".into()],
        images: vec!["c: image app:1 is now sha256:b (was sha256:a)".into()],
    };
    assert_eq!(
        render_reload(&plan, false),
        "added: a, b\nrestarted: c\nunchanged: 1 unit\nrejected: units/e.toml:1:1: expected `=`\nimage changed: c: image app:1 is now sha256:b (was sha256:a)\n(dry run, nothing applied)\n"
    );
    assert_eq!(
        render_reload(&ReloadPlan::default(), true),
        "unchanged: 0 units\n"
    );
}

#[test]
fn top_table() {
    let mut db = unit("db", UnitState::Running, "running");
    db.pid = Some(77);
    db.health = Some("unhealthy".into());
    db.usage = Some(Usage {
        memory_current: Some(3 << 20),
        memory_peak: Some(4 << 20),
        cpu_percent: Some(12.5),
        tasks: Some(4),
        ..Usage::default()
    });
    let idle = unit("idle", UnitState::Inactive, "inactive");
    let expected = "\
UNIT  STATE     HEALTH     PID  MEMORY            CPU    TASKS  OOM
db    running   unhealthy  77   3.0M (peak 4.0M)  12.5%  4      0
idle  inactive  -          -    -                 -      -      0
";
    assert_eq!(render_top(&[db, idle]), expected);
}

#[test]
fn disabled_units_and_the_main_pid_are_shown() {
    let now = t("2026-05-01T10:00:05Z");
    let off = UnitStatus {
        enabled: false,
        ..unit("worker", UnitState::Inactive, "dead")
    };
    let table = render_table(std::slice::from_ref(&off), now);
    assert!(table.contains("inactive/dead (disabled)"), "{table}");
    let detail = render_detail(&off, now);
    assert!(
        detail.contains("Enabled: no: kept stopped (`supctl enable worker`)"),
        "{detail}"
    );
    assert!(!detail.contains("Main PID"), "{detail}");
    let on = UnitStatus {
        pid: Some(4242),
        main_pid: Some(4243),
        main_pid_in_container: Some(2),
        ..unit("web", UnitState::Running, "running")
    };
    let detail = render_detail(&on, now);
    assert!(
        detail.contains("Main PID: 4243 (2 in the container)"),
        "{detail}"
    );
    assert!(!detail.contains("Enabled"), "{detail}");
    let bare = UnitStatus {
        main_pid_in_container: Some(4243),
        ..on
    };
    assert!(render_detail(&bare, now).contains("Main PID: 4243\n"));
}
