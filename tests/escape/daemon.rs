//! A real daemon from Debian under the default protections: `redis-server` with
//! Debian's own configuration file, in the foreground as Debian's systemd unit
//! starts it, as the `redis` user, on a free loopback port, with a data directory
//! of the test's. No relaxation: it must answer, store and save.

use std::path::Path;
use std::process::Command;

use crate::common::*;

pub const REDIS_SERVER: &str = "/usr/bin/redis-server";
const REDIS_CLI: &str = "/usr/bin/redis-cli";

/// The gate: root, and redis installed (tests/run.sh installs it).
pub fn root_and_redis() -> Option<String> {
    harness::root().or_else(|| {
        (!Path::new(REDIS_SERVER).exists() || !Path::new(REDIS_CLI).exists()).then(|| {
            "needs redis-server and redis-cli (apt-get install redis-server; tests/run.sh does)"
                .to_string()
        })
    })
}

/// The pids whose parent is `pid`.
fn children_of(pid: i32) -> Vec<i32> {
    sup::procfs::processes()
        .into_iter()
        .filter(|p| p.ppid == pid && !p.is_zombie())
        .map(|p| p.pid)
        .collect()
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new(REDIS_CLI)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    assert!(out.status.success(), "redis-cli {args:?}: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

pub fn redis_serves_stores_and_saves_as_a_default_unit() {
    let sup = Sup::prepare(&[]);
    set_mode(sup.path(), 0o755);
    let data = sup.path().join("redis");
    std::fs::create_dir(&data).expect("mkdir data");
    let redis = nix::unistd::User::from_name("redis")
        .expect("passwd")
        .expect("the redis user (made by the package)");
    nix::unistd::chown(&data, Some(redis.uid), Some(redis.gid)).expect("chown data");
    set_mode(&data, 0o750);
    let port = free_port();
    let port_arg = port.to_string();
    let data_arg = data.display().to_string();
    let pidfile = data.join("redis.pid").display().to_string();
    let exec = [
        REDIS_SERVER,
        "/etc/redis/redis.conf",
        "--port",
        &port_arg,
        "--bind",
        "127.0.0.1",
        "--daemonize",
        "no",
        // READY=1 once it accepts connections (sd_notify over NOTIFY_SOCKET).
        "--supervised",
        "systemd",
        "--logfile",
        "",
        "--dir",
        &data_arg,
        "--pidfile",
        &pidfile,
    ];
    sup.write_unit(
        "redis",
        &format!(
            "[service]\ntype = \"notify\"\nexec = {exec:?}\nuser = \"redis\"\nstop_timeout = \"10s\"\n"
        ),
    );
    let sup = sup.launch();
    // Running means ready: redis said READY=1, so it answers at once.
    let pid = pid_of(&sup.wait_state("redis", "running"));
    assert_eq!(
        cli(port, &["ping"]),
        "PONG",
        "{}",
        stdout(&sup.supctl(&["logs", "redis"]))
    );
    // It runs protected: the init (pid 1 of its namespace) runs it as redis with no
    // capability, no_new_privs and the seccomp filter.
    let server = children_of(pid)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("redis-server under the init {pid}"));
    let status = std::fs::read_to_string(format!("/proc/{server}/status")).expect("status");
    for line in ["CapEff:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2"] {
        assert!(status.contains(line), "{line} in {status}");
    }
    assert_eq!(cli(port, &["set", "escape-test", "stored"]), "OK");
    assert_eq!(cli(port, &["get", "escape-test"]), "stored");
    assert_eq!(cli(port, &["save"]), "OK");
    assert!(
        data.join("dump.rdb").exists(),
        "saved to its data directory"
    );

    let out = sup.supctl_within(&["stop", "--wait", "redis"], PATIENCE);
    assert!(out.status.success(), "stop: {}", stderr(&out));
    let stopped = sup.unit("redis");
    assert_eq!(stopped["state"], "inactive", "{stopped:#}");
    assert_eq!(stopped["last_exit"]["code"], 0, "a clean exit: {stopped:#}");
    drop(sup);
}
