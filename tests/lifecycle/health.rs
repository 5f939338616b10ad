//! `[health]`: exec, tcp and http probes run inside the unit's container; a unit
//! that fails `retries` probes in a row is unhealthy and restarted, and a simple
//! unit becomes ready on its first healthy probe.

use serde_json::Value;

use crate::common::*;
use crate::{gate, shared, touch};

/// The unit named `name` in a status list.
fn find<'a>(status: &'a [Value], name: &str) -> &'a Value {
    status
        .iter()
        .find(|u| u["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {status:?}"))
}

/// Failures in the first 3 s after a start do not count: enough for the test to
/// put things right after a restart, on a slow machine too.
const PROBING: &str =
    "interval = \"200ms\"\ntimeout = \"2s\"\nretries = 2\nstart_period = \"3s\"\n";

/// An exec probe fails once its file is gone: after `retries` failures the unit
/// is restarted, and `status` shows the health, the failures and the output.
pub fn exec_check_turns_unhealthy_and_restarts_the_service() {
    let (sup, out) = shared(&[]);
    let healthy = out.join("healthy");
    touch(&healthy);
    let check = format!(
        "test -e {f} && echo fine || {{ echo missing {f}; exit 1; }}",
        f = healthy.display()
    );
    sup.write_unit(
        "svc",
        &(unit("", "exec sleep 1000")
            + &format!("\n[health]\nexec = [\"/bin/sh\", \"-c\", {check:?}]\n{PROBING}")),
    );
    let sup = sup.launch();
    let s = sup.wait_status("svc healthy", |s| find(s, "svc")["health"] == "healthy");
    let svc = find(&s, "svc");
    assert_eq!(svc["state"], "running", "{svc}");
    assert_eq!(svc["health_output"].as_str().map(str::trim), Some("fine"));
    let first_pid = pid_of(svc);

    std::fs::remove_file(&healthy).expect("rm");
    let s = sup.wait_status("svc restarted for being unhealthy", |s| {
        find(s, "svc")["restarts"] == 1
    });
    touch(&healthy);
    let svc = find(&s, "svc");
    assert_eq!(
        svc["last_exit"]["signal"],
        "SIGTERM",
        "{svc}\nsupd's log:\n{}",
        sup.log.text()
    );
    let line = sup.log.wait_for_all(&["svc", "unhealthy"]);
    assert!(
        line.contains("missing"),
        "the probe's output is logged: {line}"
    );
    let s = sup.wait_status("svc healthy again", |s| {
        find(s, "svc")["health"] == "healthy" && find(s, "svc")["state"] == "running"
    });
    assert_ne!(pid_of(find(&s, "svc")), first_pid, "a new process");
    assert_eq!(find(&s, "svc")["health_failures"], 0);
}

/// Servers in network namespaces of their own (both on 127.0.0.1:8080): a tcp
/// probe fails once the server stops listening, an http probe once it answers
/// 404; both units are restarted and healthy again afterwards.
pub fn tcp_and_http_checks_restart_a_sick_server() {
    let (sup, out) = shared(&[]);
    let www = out.join("www");
    std::fs::create_dir(&www).expect("www");
    set_mode(&www, 0o755);
    let healthz = www.join("healthz");
    std::fs::write(&healthz, "ok\n").expect("healthz");
    let close = out.join("close");
    let own_net = "namespaces = [\"mnt\", \"pid\", \"uts\", \"ipc\", \"net\", \"cgroup\"]";
    let server = |then: &str| {
        format!(
            "busybox httpd -f -p 127.0.0.1:8080 -h {www} & {then}; exec sleep 1000",
            www = www.display()
        )
    };
    let tcp_script = server(&format!("{}; kill $!", gate(&close)));
    sup.write_unit(
        "tcpweb",
        &(unit(own_net, &tcp_script) + &format!("\n[health]\ntcp = \"127.0.0.1:8080\"\n{PROBING}")),
    );
    sup.write_unit(
        "httpweb",
        &(unit(own_net, &server("wait"))
            + &format!("\n[health]\nhttp = \"http://127.0.0.1:8080/healthz\"\n{PROBING}")),
    );
    let sup = sup.launch();
    sup.wait_status("both healthy", |s| {
        find(s, "tcpweb")["health"] == "healthy" && find(s, "httpweb")["health"] == "healthy"
    });

    touch(&close);
    std::fs::remove_file(&healthz).expect("rm healthz");
    let s = sup.wait_status("both restarted", |s| {
        find(s, "tcpweb")["restarts"] == 1 && find(s, "httpweb")["restarts"] == 1
    });
    std::fs::write(&healthz, "ok\n").expect("healthz");
    let _ = s;
    sup.log
        .wait_for_all(&["tcpweb", "unhealthy", "connect 127.0.0.1:8080"]);
    sup.log.wait_for_all(&["httpweb", "unhealthy", "HTTP 404"]);
    sup.wait_status("both healthy again", |s| {
        ["tcpweb", "httpweb"]
            .iter()
            .all(|n| find(s, n)["health"] == "healthy" && find(s, n)["state"] == "running")
    });
}

/// A simple unit with a health check is ready on its first healthy probe: its
/// dependent waits for that.
pub fn first_healthy_probe_makes_a_simple_service_ready() {
    let (sup, out) = shared(&[]);
    let up = out.join("up");
    let app_at = out.join("app");
    sup.write_unit(
        "web",
        &(unit("", "exec sleep 1000")
            + &format!(
                "\n[health]\nexec = [\"test\", \"-e\", {:?}]\ninterval = \"200ms\"\nretries = 1000\n",
                up.display().to_string()
            )),
    );
    sup.write_unit(
        "app",
        &format!(
            "[unit]\nrequires = [\"web\"]\n{}",
            unit("", &format!("touch {}; exec sleep 1000", app_at.display()))
        ),
    );
    let sup = sup.launch();
    let s = sup.wait_status("web waiting for healthy", |s| {
        find(s, "web")["sub_state"] == "waiting-for-healthy"
            && find(s, "web")["health_failures"].as_u64() >= Some(2)
    });
    assert_eq!(find(&s, "app")["state"], "starting");
    assert!(!app_at.exists(), "app started before web was healthy");
    touch(&up);
    sup.wait_state("app", "running");
    let web = sup.unit("web");
    assert_eq!(web["state"], "running");
    assert_eq!(web["ready"], true);
}

/// A probe past its `timeout` is killed together with what it started, so probes
/// never pile up; the output says it timed out.
pub fn a_probe_past_its_timeout_is_killed_with_what_it_started() {
    // A number no other test's sleep uses, to count this test's probes by.
    let marker = 40_000 + std::process::id() % 10_000;
    let probe = format!("echo probing; sleep {marker}; true");
    let sup = Sup::start(&[(
        "svc",
        &(unit("", "exec sleep 1000")
            + &format!(
                "\n[health]\nexec = [\"/bin/sh\", \"-c\", {probe:?}]\ninterval = \"100ms\"\n\
                 timeout = \"300ms\"\nretries = 1000\non_unhealthy = \"none\"\nready_on_healthy = false\n"
            )),
    )]);
    let s = sup.wait_status("four probes timed out", |s| {
        find(s, "svc")["health_failures"].as_u64() >= Some(4)
    });
    let output = find(&s, "svc")["health_output"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        output.contains("probing") && output.contains("timed out"),
        "{output}"
    );
    let argv = format!("sleep\0{marker}\0");
    let alive = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == argv.as_bytes()))
        .count();
    assert!(alive <= 1, "{alive} probes still running: they pile up");
}

/// `on_unhealthy = "stop"`: the unit ends `failed/unhealthy`, and status still
/// shows what the probes said.
pub fn on_unhealthy_stop_fails_the_unit_and_keeps_what_the_probes_said() {
    let sup = Sup::start(&[(
        "svc",
        &(unit("", "exec sleep 1000")
            + "\n[health]\nexec = [\"/bin/sh\", \"-c\", \"echo sick; exit 1\"]\ninterval = \"100ms\"\n\
               retries = 2\non_unhealthy = \"stop\"\nready_on_healthy = false\n"),
    )]);
    let svc = sup.wait_state("svc", "failed");
    assert_eq!(svc["sub_state"], "unhealthy", "{svc}");
    assert_eq!(svc["health"], "unhealthy", "{svc}");
    assert!(svc["health_failures"].as_u64() >= Some(2), "{svc}");
    let output = svc["health_output"].as_str().unwrap_or_default();
    assert_eq!(output.trim(), "sick", "{svc}");
}
