//! Tests for parsing, graph checks and directory loading.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::*;

pub(super) const MINIMAL: &str = "[service]\nexec = [\"/bin/true\"]\n";

pub(super) fn parse(text: &str) -> Result<Unit, UnitError> {
    parse_unit("web", Path::new("units/web.toml"), text)
}

pub(super) fn parse_err(text: &str) -> UnitError {
    match parse(text) {
        Ok(unit) => panic!("expected an error, got {unit:?}"),
        Err(e) => e,
    }
}

/// Asserts an error's location and that its message contains `needle`.
pub(super) fn assert_err(text: &str, line: usize, column: usize, needle: &str) {
    let e = parse_err(text);
    assert_eq!((e.line, e.column), (line, column), "{e}");
    assert!(e.message.contains(needle), "{e}");
}

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
    assert_err(
        "[sevrice]\nexec = [\"a\"]\n",
        1,
        2,
        "unknown field `sevrice`",
    );
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

// --- graph -----------------------------------------------------------------

fn unit(name: &str, deps: &str) -> Unit {
    let text = format!("[unit]\n{deps}\n[service]\nexec = [\"/bin/{name}\"]\n");
    parse_unit(name, &PathBuf::from(format!("u/{name}.toml")), &text).unwrap()
}

fn graph(units: &[Unit], invalid: &[&str]) -> Loaded {
    let map = units.iter().map(|u| (u.name.clone(), u.clone())).collect();
    let invalid: BTreeSet<String> = invalid.iter().map(|s| s.to_string()).collect();
    check_graph(map, &invalid)
}

fn names(loaded: &Loaded) -> Vec<&str> {
    loaded.units.keys().map(String::as_str).collect()
}

#[test]
fn valid_graph() {
    let l = graph(
        &[
            unit("a", "requires = [\"b\"]\nafter = [\"c\"]"),
            unit("b", "after = [\"c\"]"),
            unit("c", ""),
        ],
        &[],
    );
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    assert_eq!(names(&l), ["a", "b", "c"]);
}

#[test]
fn unknown_dependency() {
    let l = graph(
        &[unit("web", "after = [\"cache\"]\nrequires = [\"db\"]")],
        &[],
    );
    assert_eq!(l.errors.len(), 2);
    let e = &l.errors[1];
    assert_eq!(
        e.to_string(),
        r#"u/web.toml:3:13: unknown dependency "db" in requires: no unit file db.toml in this directory"#
    );
    assert_eq!((l.errors[0].line, l.errors[0].column), (2, 10));
    assert!(l.units.is_empty());
}

#[test]
fn requires_on_invalid_unit() {
    let l = graph(
        &[
            unit("web", "requires = [\"db\"]"),
            unit("worker", "after = [\"db\"]"),
        ],
        &["db"],
    );
    assert_eq!(l.errors.len(), 1, "{:?}", l.errors);
    assert_eq!(
        l.errors[0].to_string(),
        r#"u/web.toml:2:13: requires "db", whose definition has errors"#
    );
    assert_eq!(names(&l), ["worker"], "after on an invalid unit is allowed");
}

#[test]
fn three_unit_cycle() {
    let l = graph(
        &[
            unit("a", "after = [\"b\"]"),
            unit("b", "requires = [\"c\"]"),
            unit("c", "after = [\"x\", \"a\"]"),
            unit("x", ""),
            unit("d", "requires = [\"a\"]"),
        ],
        &[],
    );
    let cycle: Vec<String> = l
        .errors
        .iter()
        .filter(|e| e.message.contains("cycle"))
        .map(|e| e.to_string())
        .collect();
    assert_eq!(
        cycle,
        [
            "u/a.toml:2:10: dependency cycle: a -> b -> c -> a",
            "u/b.toml:2:13: dependency cycle: a -> b -> c -> a",
            "u/c.toml:2:15: dependency cycle: a -> b -> c -> a",
        ]
    );
    // d requires a member of the cycle, so it is dropped too.
    assert!(
        l.errors
            .iter()
            .any(|e| e.unit == "d" && e.message == r#"requires "a", whose definition has errors"#)
    );
    assert_eq!(names(&l), ["x"]);
}

#[test]
fn self_dependency() {
    let l = graph(&[unit("a", "requires = [\"a\"]")], &[]);
    assert_eq!(l.errors.len(), 1, "{:?}", l.errors);
    assert_eq!((l.errors[0].line, l.errors[0].column), (2, 13));
    assert!(
        l.errors[0].message.contains("cannot list itself"),
        "{}",
        l.errors[0]
    );
    assert!(l.units.is_empty());
}

#[test]
fn rejection_cascades_through_requires() {
    let l = graph(
        &[
            unit("a", "requires = [\"b\"]"),
            unit("b", "requires = [\"c\"]"),
            unit("c", "requires = [\"missing\"]"),
            unit("d", "after = [\"c\"]"),
        ],
        &[],
    );
    assert_eq!(l.errors.len(), 3, "{:?}", l.errors);
    assert_eq!(names(&l), ["d"]);
}

// --- load_dir ---------------------------------------------------------------

#[test]
fn load_dir_good_and_bad() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| fs::write(dir.path().join(name), text).unwrap();
    write(
        "web.toml",
        "[unit]\nafter = [\"broken\"]\n[service]\nexec = [\"/bin/web\"]\n",
    );
    write(
        "broken.toml",
        "[service]\nexec = [\"/bin/x\"]\nrestart = \"sometimes\"\n",
    );
    write(
        "api.toml",
        "[unit]\nrequires = [\"broken\"]\n[service]\nexec = [\"/bin/api\"]\n",
    );
    write("bad name.toml", MINIMAL);
    write("binary.toml", "");
    fs::write(dir.path().join("binary.toml"), [0xff, 0xfe]).unwrap();

    let l = load_dir(dir.path()).unwrap();
    assert_eq!(names(&l), ["web"]);
    let shown: Vec<String> = l.errors.iter().map(ToString::to_string).collect();
    let p = |f: &str| dir.path().join(f).display().to_string();
    assert_eq!(
        shown,
        [
            format!(
                "{}:2:13: requires \"broken\", whose definition has errors",
                p("api.toml")
            ),
            format!(
                "{}:1:1: invalid unit name \"bad name\": unit names must match [A-Za-z0-9][A-Za-z0-9_.@-]* and be at most 64 bytes",
                p("bad name.toml")
            ),
            format!(
                "{}:1:1: unit file is not valid UTF-8 (first bad byte at offset 0)",
                p("binary.toml")
            ),
            format!(
                "{}:3:11: unknown restart policy \"sometimes\": expected one of \"no\", \"on-failure\", \"on-abnormal\", \"always\"",
                p("broken.toml")
            ),
        ]
    );
    assert_eq!(l.errors[3].unit, "broken");
}

#[test]
fn load_dir_ignores_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| fs::write(dir.path().join(name), text).unwrap();
    write("web.toml", MINIMAL);
    for ignored in [
        ".hidden.toml",
        "web.toml~",
        ".web.toml.swp",
        "web.toml.swp",
        "README.md",
        "web.conf",
    ] {
        write(ignored, "garbage [[[");
    }
    fs::create_dir(dir.path().join("dir.toml")).unwrap();
    let l = load_dir(dir.path()).unwrap();
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    assert_eq!(names(&l), ["web"]);
}

#[test]
fn load_dir_missing_directory_is_io_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(load_dir(&dir.path().join("nope")).is_err());
}

#[test]
fn docs_complete_example_parses() {
    let doc = include_str!("../../docs/units.md");
    let start = doc.find("```toml\n").map(|i| i + 8).unwrap();
    let len = doc[start..].find("```").unwrap();
    let u = parse(&doc[start..start + len]).unwrap();
    assert_eq!(u.requires, ["db"]);
    // The example spells out the defaults; keep the doc honest.
    let d = parse(MINIMAL).unwrap();
    let (s, ds) = (&u.service, &d.service);
    assert_eq!(s.restart, ds.restart);
    assert_eq!(
        (s.restart_delay, s.restart_max_delay, s.restart_reset_after),
        (
            ds.restart_delay,
            ds.restart_max_delay,
            ds.restart_reset_after
        )
    );
    assert_eq!(s.start_limit, ds.start_limit);
    assert_eq!(
        (s.stop_signal, s.stop_timeout),
        (ds.stop_signal, ds.stop_timeout)
    );
    assert_eq!(s.success_exit_codes, ds.success_exit_codes);
    assert_eq!(u.logs, d.logs);
    assert_eq!(s.umask, Some(0o27));
    let c = &u.container;
    assert_eq!(c.namespaces, d.container.namespaces);
    assert_eq!(c.capabilities.len(), 1);
    assert_eq!(c.mounts.len(), 2);
    let r = &u.resources;
    assert_eq!(
        (r.memory_max, r.memory_high),
        (Some(512 << 20), Some(384 << 20))
    );
    assert_eq!(
        r.cpu_max,
        Some(CpuMax {
            quota_us: 150_000,
            period_us: 100_000
        })
    );
    assert_eq!(r.pids_max, Some(256));
}

#[test]
fn docs_examples_parse() {
    // Every ```toml block that is a whole unit (has [service]) must parse;
    // the [[mount]] examples are checked together after a minimal unit, and
    // so is the [resources] example.
    let doc = include_str!("../../docs/units.md");
    let mut rest = doc;
    let mut mounts = 0;
    let mut resources = 0;
    while let Some(i) = rest.find("```toml\n") {
        let body = &rest[i + 8..];
        let len = body.find("```").unwrap();
        let block = &body[..len];
        rest = &body[len + 3..];
        if block.contains("[service]") {
            parse(block).unwrap();
        } else if block.trim_start().starts_with("[[mount]]") {
            let u = parse(&format!("{MINIMAL}{block}")).unwrap();
            mounts = mounts.max(u.container.mounts.len());
        } else if block.trim_start().starts_with("[resources]") {
            let u = parse(&format!("{MINIMAL}{block}")).unwrap();
            assert!(!u.resources.is_empty());
            resources += 1;
        }
    }
    assert_eq!(mounts, 6, "the one-of-each-type example");
    assert_eq!(resources, 1, "the [resources] example");
}
