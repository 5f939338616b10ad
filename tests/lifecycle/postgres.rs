//! Debian's postgres (installed by tests/run.sh) as a `type = "notify"` unit: it
//! sends READY=1 itself once it accepts connections, so an app that requires it
//! never sees "the database system is starting up". And a stop with a client
//! connected is clean (SIGTERM reaches the backends too), not a SIGKILL.

use std::os::unix::fs::chown;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::common::*;
use crate::shared;

const ROUNDS: usize = 10;

/// The newest `/usr/lib/postgresql/N/bin`.
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("postgresql is installed (tests/run.sh installs it)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop().expect("a postgres binary")
}

pub fn postgres_gates_an_app_whose_first_connection_never_fails() {
    let (sup, out) = shared(&[]);
    let bin = postgres_bin();
    let account = nix::unistd::User::from_name("postgres")
        .expect("passwd")
        .expect("a postgres user");
    let (data, sock) = (sup.path().join("pgdata"), sup.path().join("pgsock"));
    for dir in [&data, &sock] {
        std::fs::create_dir(dir).expect("mkdir");
        chown(dir, Some(account.uid.as_raw()), Some(account.gid.as_raw())).expect("chown");
    }
    set_mode(&data, 0o700);
    let results = out.join("results");
    // initdb --no-sync: its closing fsync of the data directory can wait a
    // minute behind the writeback of a busy machine (a CI build's gigabytes),
    // and durability of a test database does not matter.
    let db = format!(
        r#"
[service]
type = "notify"
user = "postgres"
exec_start_pre = [["/bin/sh", "-c", "test -e {data}/PG_VERSION || {bin}/initdb --no-sync -D {data} -A trust -U postgres > /dev/null"]]
exec = ["{bin}/postgres", "-D", "{data}", "-k", "{sock}", "-c", "listen_addresses=", "-c", "fsync=off"]
stop_timeout = "20s"
"#,
        data = data.display(),
        bin = bin.display(),
        sock = sock.display()
    );
    // The app's one and only connection attempt, right after its start.
    let app = format!(
        r#"
[unit]
requires = ["db"]

[service]
type = "oneshot"
remain_after_exit = true
exec = ["/bin/sh", "-c", "psql -h {sock} -U postgres -tA -c 'select 1' >> {results} 2>&1 || echo FAILED >> {results}"]
"#,
        sock = sock.display(),
        results = results.display()
    );
    sup.write_unit("db", &db);
    sup.write_unit("app", &app);
    let sup = sup.launch();
    for round in 1..=ROUNDS {
        if round > 1 {
            let out = sup.supctl_within(&["stop", "--wait", "db"], 2 * PATIENCE);
            assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
            assert_eq!(
                sup.unit("app")["state"],
                "inactive",
                "stopping db stops app"
            );
            // Both start at once; app waits for db's READY=1.
            let out = sup.supctl(&["start", "app"]);
            assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        }
        let out = sup.supctl_within(&["start", "--wait", "app"], 2 * PATIENCE);
        assert!(
            out.status.success(),
            "round {round}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let lines = std::fs::read_to_string(&results).unwrap_or_default();
        assert_eq!(
            lines.lines().collect::<Vec<_>>(),
            vec!["1"; round],
            "round {round}: every first connection succeeds; log:\n{}",
            sup.log.text()
        );
    }

    // A client stays connected while db stops: SIGTERM reaches its backend too
    // (the whole cgroup gets the stop signal), so postgres shuts down cleanly.
    let mut client = KillOnDrop(
        Command::new("psql")
            .args(["-h"])
            .arg(&sock)
            .args(["-U", "postgres", "-c", "select pg_sleep(600)"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("psql"),
    );
    wait_until("the client's backend", || {
        Command::new("psql")
            .arg("-h")
            .arg(&sock)
            .args(["-U", "postgres", "-tA", "-c"])
            .arg("select count(*) from pg_stat_activity where query like 'select pg_sleep%'")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "1")
    });
    let out = sup.supctl_within(&["stop", "--wait", "db"], 2 * PATIENCE);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let db = sup.unit("db");
    assert_eq!(db["stop_timed_out"], false, "{db}");
    assert_eq!(db["last_exit"]["code"], 0, "a clean shutdown: {db}");
    let _ = client.0.wait();
}
