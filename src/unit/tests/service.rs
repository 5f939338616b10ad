//! `[unit]`, `[service]` and `[logs]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::*;

const FULL: &str = r#"
[unit]
description = "The web frontend"
after = ["cache"]
requires = ["db"]

[service]
exec = ["/usr/bin/web", "--port", "8080"]
env = { RUST_LOG = "info", PORT = "8080" }
workdir = "/srv/web"
user = "www-data"
group = 33
restart = "always"
restart_delay = "250ms"
restart_max_delay = "1m"
restart_reset_after = "30s"
start_limit = { burst = 3, interval = "1m" }
stop_signal = "INT"
stop_timeout = "5s"
success_exit_codes = [0, 143]

[logs]
max_size = "512MiB"
max_files = 0
"#;

#[test]
fn full_unit_with_every_key() {
    let u = parse(FULL).unwrap();
    assert_eq!(u.name, "web");
    assert_eq!(u.path, PathBuf::from("units/web.toml"));
    assert_eq!(u.description, "The web frontend");
    assert_eq!(u.after, ["cache"]);
    assert_eq!(u.requires, ["db"]);
    let s = &u.service;
    assert_eq!(s.exec, ["/usr/bin/web", "--port", "8080"]);
    let env: BTreeMap<String, String> = [("PORT", "8080"), ("RUST_LOG", "info")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(s.env, env);
    assert_eq!(s.workdir, Some(PathBuf::from("/srv/web")));
    assert_eq!(s.user, Some(IdSpec::Name("www-data".into())));
    assert_eq!(s.group, Some(IdSpec::Id(33)));
    assert_eq!(s.restart, RestartPolicy::Always);
    assert_eq!(s.restart_delay, Duration::from_millis(250));
    assert_eq!(s.restart_max_delay, Duration::from_secs(60));
    assert_eq!(s.restart_reset_after, Duration::from_secs(30));
    assert_eq!(
        s.start_limit,
        StartLimit {
            burst: 3,
            interval: Duration::from_secs(60)
        }
    );
    assert_eq!(s.stop_signal, Signal::SIGINT);
    assert_eq!(s.stop_timeout, Duration::from_secs(5));
    assert_eq!(s.success_exit_codes, [0, 143]);
    assert_eq!(
        u.logs,
        LogLimits {
            max_size: 512 * 1024 * 1024,
            max_files: 0
        }
    );
    assert_eq!(u.container, ContainerSpec::default());
    assert_eq!(u.resources, ResourceSpec::default());
    assert!(u.resources.is_empty());
    assert_eq!(u.hash.len(), 12);
    assert!(u.hash.chars().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn defaults() {
    let u = parse(MINIMAL).unwrap();
    assert_eq!(u.description, "");
    assert!(u.after.is_empty() && u.requires.is_empty());
    let s = &u.service;
    assert!(s.env.is_empty());
    assert_eq!(
        (s.workdir.as_ref(), s.user.as_ref(), s.group.as_ref()),
        (None, None, None)
    );
    assert_eq!(s.restart, RestartPolicy::OnFailure);
    assert_eq!(s.restart_delay, Duration::from_millis(100));
    assert_eq!(s.restart_max_delay, Duration::from_secs(30));
    assert_eq!(s.restart_reset_after, Duration::from_secs(10));
    assert_eq!(s.start_limit.burst, 5);
    assert_eq!(s.start_limit.interval, Duration::from_secs(10));
    assert_eq!(s.stop_signal, Signal::SIGTERM);
    assert_eq!(s.stop_timeout, Duration::from_secs(10));
    assert_eq!(s.success_exit_codes, [0]);
    assert_eq!(u.logs.max_size, 10 * 1024 * 1024);
    assert_eq!(u.logs.max_files, 5);
}

#[test]
fn partial_start_limit_and_alternate_forms() {
    let text = "[service]\nexec = [\"a\"]\nstop_signal = 9\nuser = 0\n\
                [service.start_limit]\nburst = 1\n[logs]\nmax_size = 4096\n";
    let u = parse(text).unwrap();
    assert_eq!(u.service.start_limit.burst, 1);
    assert_eq!(u.service.start_limit.interval, Duration::from_secs(10));
    assert_eq!(u.service.stop_signal, Signal::SIGKILL);
    assert_eq!(u.service.user, Some(IdSpec::Id(0)));
    assert_eq!(u.logs.max_size, 4096);
}

#[test]
fn typo_key_points_at_key() {
    let text = "# web\n[service]\nexec = [\"/bin/true\"]\nretsart = \"always\"\n";
    assert_err(text, 4, 1, "unknown field `retsart`, expected one of");
    let e = parse_err(text);
    assert!(e.message.contains("`restart`"), "{e}");
    assert_eq!(
        e.to_string(),
        format!("units/web.toml:4:1: {}", e.message),
        "Display is path:line:column: message"
    );
}

#[test]
fn unknown_section() {
    let text = "[sevrice]\nexec = [\"a\"]\n";
    assert_has_err(text, 1, 2, "unknown field `sevrice`");
    assert_has_err(text, 1, 1, "missing [service] section");
    assert_eq!(parse_errs(text).len(), 2);
}

#[test]
fn wrong_types() {
    assert_err(
        "[service]\nexec = \"/bin/true\"\n",
        2,
        8,
        "expected an array of strings",
    );
    assert_err("[service]\nexec = [1]\n", 2, 9, "expected a string");
    assert_err(
        &format!("{MINIMAL}stop_timeout = 10\n"),
        3,
        16,
        r#"invalid type: integer `10`, expected a duration like "250ms", "10s" or "2m""#,
    );
    assert_err(
        &format!("{MINIMAL}user = 1.5\n"),
        3,
        8,
        "expected a name (string",
    );
    assert_err(
        "[unit]\ndescription = 1\n[service]\nexec = [\"a\"]\n",
        2,
        15,
        "expected a string",
    );
}

#[test]
fn bad_durations() {
    assert_err(
        &format!("{MINIMAL}restart_delay = \"10\"\n"),
        3,
        17,
        r#"expected a duration like "250ms", "10s" or "2m""#,
    );
    assert_err(
        &format!("{MINIMAL}stop_timeout = \"-1s\"\n"),
        3,
        16,
        "cannot be negative",
    );
    assert_err(
        &format!("{MINIMAL}start_limit = {{ interval = \"soon\" }}\n"),
        3,
        28,
        "invalid duration \"soon\"",
    );
    assert_err(
        &format!("{MINIMAL}restart_delay = \"1m\"\nrestart_max_delay = \"30s\"\n"),
        4,
        21,
        "restart_max_delay (30s) must be >= restart_delay (1m)",
    );
    // Only restart_delay written: point at it.
    assert_err(
        &format!("{MINIMAL}restart_delay = \"1m\"\n"),
        3,
        17,
        "must be >= restart_delay",
    );
}

#[test]
fn bad_sizes() {
    let logs = |v: &str| format!("{MINIMAL}[logs]\nmax_size = {v}\n");
    let expected = r#"expected a size like "512M" (1024-based: K, M, G, T; optional "i"/"B")"#;
    for v in [
        r#""1.5G""#,
        r#""10X""#,
        r#""-1M""#,
        r#""99999999999T""#,
        "-5",
    ] {
        assert_err(&logs(v), 4, 12, expected);
    }
    assert_err(&logs(r#""1K""#), 4, 12, "at least 4K");
    assert_err(&logs("true"), 4, 12, "invalid type: boolean");
    assert_err(
        &format!("{MINIMAL}[logs]\nmax_files = 101\n"),
        4,
        13,
        "between 0 and 100",
    );
}

#[test]
fn bad_signals() {
    assert_err(
        &format!("{MINIMAL}stop_signal = \"SIGFOO\"\n"),
        3,
        15,
        r#"unknown signal "SIGFOO": expected a signal name like "SIGTERM""#,
    );
    assert_err(
        &format!("{MINIMAL}stop_signal = 0\n"),
        3,
        15,
        "unknown signal number 0",
    );
}

#[test]
fn restart_policies() {
    for (text, want) in [
        ("no", RestartPolicy::No),
        ("on-failure", RestartPolicy::OnFailure),
        ("on-abnormal", RestartPolicy::OnAbnormal),
        ("always", RestartPolicy::Always),
    ] {
        let u = parse(&format!("{MINIMAL}restart = \"{text}\"\n")).unwrap();
        assert_eq!(u.service.restart, want);
    }
    assert_err(
        &format!("{MINIMAL}restart = \"sometimes\"\n"),
        3,
        11,
        r#"unknown restart policy "sometimes": expected one of "no", "on-failure", "on-abnormal", "always""#,
    );
}

#[test]
fn unless_stopped_is_rejected_with_advice() {
    let e = parse_err(&format!("{MINIMAL}restart = \"unless-stopped\"\n"));
    assert_eq!((e.line, e.column), (3, 11));
    assert!(e.message.contains(r#"use "always""#), "{e}");
    assert!(
        e.message
            .contains("never restarts a unit the operator stopped"),
        "{e}"
    );
}

#[test]
fn value_rules() {
    assert_err("[service]\nexec = []\n", 2, 8, "exec must not be empty");
    assert_err("[service]\nexec = [\"\", \"x\"]\n", 2, 9, "exec[0]");
    assert_err("[service]\nrestart = \"no\"\n", 1, 1, "missing `exec`");
    assert_err(
        "[unit]\n\n[service]\nrestart = \"no\"\n",
        3,
        1,
        "missing `exec`",
    );
    assert_err(
        "[unit]\ndescription = \"x\"\n",
        1,
        1,
        "missing [service] section",
    );
    assert_err(
        &format!("{MINIMAL}workdir = \"srv\"\n"),
        3,
        11,
        "must be an absolute path",
    );
    assert_err(
        &format!("{MINIMAL}env = {{ \"A=B\" = \"1\" }}\n"),
        3,
        9,
        "'='",
    );
    assert_err(
        &format!("{MINIMAL}[service.env]\n\"\" = \"1\"\n"),
        4,
        1,
        "non-empty",
    );
    assert_err(&format!("{MINIMAL}user = \"\"\n"), 3, 8, "empty name");
    assert_err(
        &format!("{MINIMAL}group = 4294967296\n"),
        3,
        9,
        "invalid id",
    );
    assert_err(
        &format!("{MINIMAL}success_exit_codes = [0, 256]\n"),
        3,
        26,
        "exit code 256",
    );
    assert_err(
        &format!("{MINIMAL}start_limit = {{ burst = 0 }}\n"),
        3,
        25,
        "burst 0",
    );
    assert_err(
        &format!("{MINIMAL}start_limit = {{ brust = 1 }}\n"),
        3,
        17,
        "unknown field `brust`",
    );
    assert_err("[service\n", 1, 9, "");
}

#[test]
fn invalid_names() {
    for name in ["", "-web", ".web", "we b", "web/x", &"a".repeat(65)] {
        let e = parse_unit(name, Path::new("x.toml"), MINIMAL).unwrap_err();
        assert_eq!(e.len(), 1, "{e:#?}");
        let e = &e[0];
        assert_eq!((e.line, e.column), (1, 1));
        assert!(e.message.contains("invalid unit name"), "{e}");
    }
    for name in ["web", "Web-1", "worker@2", "a.b_c", &"a".repeat(64)] {
        assert!(
            parse_unit(name, Path::new("x.toml"), MINIMAL).is_ok(),
            "{name}"
        );
    }
}

#[test]
fn hash_is_semantic() {
    let a = parse(FULL).unwrap();
    let reformatted = r#"
# comments and key order do not matter
[logs]
max_files = 0
max_size = "512M"

[service]
success_exit_codes = [ 0, 143 ]
stop_timeout = "5000ms"
stop_signal = "SIGINT"
start_limit.interval = "60s"
start_limit.burst = 3
restart_reset_after = "30s"
restart_max_delay = "60s"
restart_delay = "250ms"
restart = "always"
group = 33
user = "www-data"
workdir = "/srv/web"
exec = [
  "/usr/bin/web",   # the binary
  "--port", "8080",
]

[service.env]
PORT = "8080"
RUST_LOG = "info"

[unit]
requires = ["db"]
after = ["cache"]
description = "The web frontend"
"#;
    let b = parse(reformatted).unwrap();
    assert_eq!(a, b, "same semantics compare equal despite different spans");
    assert_eq!(a.hash, b.hash);

    let changed = parse(&FULL.replace("\"8080\"]", "\"8081\"]")).unwrap();
    assert_ne!(a.service.exec, changed.service.exec);
    assert_ne!(a.hash, changed.hash);

    let renamed = parse_unit("other", Path::new("x/other.toml"), FULL).unwrap();
    assert_eq!(
        renamed.hash, a.hash,
        "name and path are not part of the hash"
    );
}

#[test]
fn env_files_credentials_and_wants() {
    let u = parse(
        "[unit]\nwants = [\"cache\"]\n[service]\nexec = [\"/bin/true\"]\n\
         env_file = [\"/etc/app/env\", \"-/etc/app/optional.env\"]\n\
         [credentials]\ndb_password = \"/etc/app/db.pass\"\n",
    )
    .unwrap();
    assert_eq!(u.wants, ["cache"]);
    assert!(u.after.is_empty(), "wants implies no ordering");
    let files: Vec<(&Path, bool)> = u
        .service
        .env_file
        .iter()
        .map(|f| (f.path.as_path(), f.optional))
        .collect();
    assert_eq!(
        files,
        [
            (Path::new("/etc/app/env"), false),
            (Path::new("/etc/app/optional.env"), true)
        ]
    );
    assert_eq!(
        u.service.credentials,
        BTreeMap::from([("db_password".to_string(), PathBuf::from("/etc/app/db.pass"))])
    );
    // Units without them keep their hash.
    assert_eq!(parse(MINIMAL).unwrap().hash, {
        let mut m = parse(MINIMAL).unwrap();
        m.hash = m.compute_hash();
        m.hash
    });
    let cases = [
        (
            "env_file = [\"etc/env\"]",
            3,
            13,
            "must be an absolute path",
        ),
        ("env_file = [\"-env\"]", 3, 13, "must be an absolute path"),
        (
            "env_file = \"/etc/env\"",
            3,
            12,
            "an array of absolute paths",
        ),
        (
            "[credentials]\n\"a/b\" = \"/x\"",
            4,
            1,
            "invalid credential name",
        ),
        (
            "[credentials]\n\"..\" = \"/x\"",
            4,
            1,
            "invalid credential name",
        ),
        (
            "[credentials]\nkey = \"x\"",
            4,
            7,
            "must be an absolute path",
        ),
        (
            "[container]\nnamespaces = [\"pid\"]\n[credentials]\nkey = \"/x\"",
            5,
            1,
            "needs the unit's own mount namespace",
        ),
    ];
    for (rest, line, column, needle) in cases {
        let text = if rest.starts_with('[') {
            with(rest)
        } else {
            format!("[service]\nexec = [\"/bin/true\"]\n{rest}\n")
        };
        assert_err(&text, line, column, needle);
    }
}
