//! `type`, readiness, hooks, `on_failure` and `[health]`.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::unit::{HealthSpec, Lifecycle, OnFailure, OnUnhealthy, Probe, ServiceType};

fn service(rest: &str) -> Unit {
    let text = format!("[service]\nexec = [\"/bin/true\"]\n{rest}");
    match parse(&text) {
        Ok(u) => u,
        Err(e) => panic!("{e:#?}"),
    }
}

#[test]
fn defaults_are_a_simple_service_without_health() {
    let u = service("");
    assert_eq!(u.service.lifecycle, Lifecycle::default());
    assert_eq!(u.health, None);
    assert_eq!(
        u.service.lifecycle.start_timeout, None,
        "nothing to wait for"
    );
}

#[test]
fn every_lifecycle_key() {
    let u = service(
        "type = \"notify\"\nstart_timeout = \"20s\"\nwatchdog = \"5s\"\n\
         exec_start_pre = [[\"/bin/mkdir\", \"-p\", \"/run/app\"], [\"/bin/true\"]]\n\
         exec_stop_post = [[\"/usr/bin/cleanup\"]]\non_failure = \"restart-dependents\"\n",
    );
    let lc = &u.service.lifecycle;
    assert_eq!(lc.kind, ServiceType::Notify);
    assert_eq!(lc.start_timeout, Some(Duration::from_secs(20)));
    assert_eq!(lc.watchdog, Some(Duration::from_secs(5)));
    assert_eq!(lc.exec_start_pre.len(), 2);
    assert_eq!(lc.exec_start_pre[0], vec!["/bin/mkdir", "-p", "/run/app"]);
    assert_eq!(
        lc.exec_stop_post,
        vec![vec!["/usr/bin/cleanup".to_string()]]
    );
    assert_eq!(lc.on_failure, OnFailure::RestartDependents);
    let oneshot = service("type = \"oneshot\"\nremain_after_exit = true\n");
    assert!(oneshot.service.lifecycle.remain_after_exit);
    assert_eq!(
        oneshot.service.lifecycle.start_timeout, None,
        "a job may take its time"
    );
    let fd = service("ready_fd = 3\n");
    assert_eq!(fd.service.lifecycle.ready_fd, Some(3));
}

#[test]
fn waiting_for_readiness_has_a_default_start_timeout() {
    let notify = service("type = \"notify\"\n");
    assert_eq!(
        notify.service.lifecycle.start_timeout,
        Some(Lifecycle::DEFAULT_START_TIMEOUT)
    );
    let fd = service("ready_fd = 4\n");
    assert_eq!(
        fd.service.lifecycle.start_timeout,
        Some(Lifecycle::DEFAULT_START_TIMEOUT)
    );
    let healthy = service("[health]\ntcp = \"127.0.0.1:5432\"\n");
    assert_eq!(
        healthy.service.lifecycle.start_timeout,
        Some(Lifecycle::DEFAULT_START_TIMEOUT),
        "ready on the first healthy probe"
    );
}

#[test]
fn health_probes_and_defaults() {
    let exec = service("[health]\nexec = [\"pg_isready\", \"-q\"]\n").health;
    assert_eq!(
        exec,
        Some(HealthSpec {
            probe: Probe::Exec(vec!["pg_isready".into(), "-q".into()]),
            interval: HealthSpec::DEFAULT_INTERVAL,
            start_interval: HealthSpec::DEFAULT_INTERVAL,
            timeout: HealthSpec::DEFAULT_TIMEOUT,
            retries: HealthSpec::DEFAULT_RETRIES,
            start_period: Duration::ZERO,
            on_unhealthy: OnUnhealthy::Restart,
            ready_on_healthy: true,
        })
    );
    let tcp = service(
        "[health]\ntcp = \"[::1]:6379\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nretries = 5\n\
         start_period = \"30s\"\non_unhealthy = \"stop\"\nready_on_healthy = false\n",
    )
    .health
    .expect("health");
    assert_eq!(
        tcp.probe,
        Probe::Tcp("[::1]:6379".parse::<SocketAddr>().unwrap())
    );
    assert_eq!((tcp.retries, tcp.on_unhealthy), (5, OnUnhealthy::Stop));
    assert_eq!(tcp.start_period, Duration::from_secs(30));
    assert_eq!(
        tcp.start_interval,
        Duration::from_secs(1),
        "interval by default"
    );
    assert!(!tcp.ready_on_healthy);
    let http = service("[health]\nhttp = \"http://localhost:8080/healthz?full=1\"\n")
        .health
        .expect("health");
    assert_eq!(
        http.probe,
        Probe::Http {
            addr: "127.0.0.1:8080".parse().unwrap(),
            host: "localhost".into(),
            path: "/healthz?full=1".into()
        }
    );
    let notify = service("type = \"notify\"\n[health]\ntcp = \"127.0.0.1:1\"\n");
    assert_eq!(notify.health.map(|h| h.ready_on_healthy), Some(false));
}

#[test]
fn lifecycle_mistakes_are_located() {
    let base = "[service]\nexec = [\"/bin/true\"]\n";
    let err = |rest: &str, line, column, needle: &str| {
        assert_err(&format!("{base}{rest}"), line, column, needle)
    };
    err(
        "type = \"forking\"\n",
        3,
        8,
        "\"simple\", \"notify\", \"oneshot\"",
    );
    err(
        "watchdog = \"5s\"\n",
        3,
        12,
        "watchdog needs type = \"notify\"",
    );
    err(
        "type = \"notify\"\nready_fd = 3\n",
        4,
        12,
        "ready_fd is for type = \"simple\"",
    );
    err("ready_fd = 1\n", 3, 12, "ready_fd 1 is out of range");
    err(
        "remain_after_exit = true\n",
        3,
        21,
        "remain_after_exit is for type = \"oneshot\"",
    );
    err("exec_start_pre = [[]]\n", 3, 19, "exec must not be empty");
    err("on_failure = \"panic\"\n", 3, 14, "\"stop-dependents\"");
    err(
        "[health]\ninterval = \"1s\"\n",
        3,
        1,
        "missing probe in [health]",
    );
    err(
        "[health]\nexec = [\"x\"]\ntcp = \"127.0.0.1:1\"\n",
        5,
        1,
        "takes one probe",
    );
    err(
        "[health]\ntcp = \"localhost:5432\"\n",
        4,
        7,
        "invalid tcp probe",
    );
    err(
        "[health]\nhttp = \"https://127.0.0.1/\"\n",
        4,
        8,
        "only http://",
    );
    err(
        "[health]\nhttp = \"http://db.internal/\"\n",
        4,
        8,
        "an IP address or localhost",
    );
    for (url, why) in [
        (
            "http://127.0.0.1:99999/x",
            "99999\" is not a number from 1 to 65535",
        ),
        ("http://127.0.0.1:0/", "port \"0\""),
        ("http://u@127.0.0.1:80/", "user information"),
    ] {
        err(&format!("[health]\nhttp = {url:?}\n"), 4, 8, why);
    }
    err("[health]\ntcp = \"127.0.0.1:0\"\n", 4, 7, "(1 to 65535)");
    err(
        "exec_start_pre = [\"/bin/echo\", \"hi\"]\n",
        3,
        18,
        "exec_start_pre is a list of commands, each an array of strings",
    );
    err(
        "start_timeout = \"0s\"\n",
        3,
        17,
        "start_timeout must be longer than 0s",
    );
    err(
        "[health]\ntcp = \"127.0.0.1:1\"\nstart_interval = \"0s\"\n",
        5,
        18,
        "health start_interval must be longer than 0s",
    );
    err(
        "type = \"oneshot\"\nrestart = \"always\"\n",
        4,
        11,
        "not for type = \"oneshot\"",
    );
    err(
        "[health]\ntcp = \"127.0.0.1:1\"\ninterval = \"0s\"\n",
        5,
        12,
        "longer than 0s",
    );
    err(
        "[health]\ntcp = \"127.0.0.1:1\"\nretries = 0\n",
        5,
        11,
        "out of range",
    );
    err(
        "type = \"oneshot\"\n[health]\ntcp = \"127.0.0.1:1\"\nready_on_healthy = true\n",
        6,
        20,
        "ready_on_healthy is for type = \"simple\"",
    );
}
