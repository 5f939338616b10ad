//! Reading a units directory.

use std::collections::BTreeMap;
use std::fs;

use super::graph::unit_names;
use super::*;

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
    assert_eq!(unit_names(&l), ["web"]);
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
    assert_eq!(unit_names(&l), ["web"]);
}

#[test]
fn load_dir_missing_directory_is_io_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(load_dir(&dir.path().join("nope")).is_err());
}

/// Runs `load_dir` on a thread and fails the test if it hangs.
fn load_within(dir: &std::path::Path, limit: std::time::Duration) -> Loaded {
    let dir = dir.to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(load_dir(&dir).unwrap()));
    rx.recv_timeout(limit).expect("load_dir must not hang")
}

#[test]
fn special_files_are_located_errors_not_hangs() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("web.toml"), MINIMAL).unwrap();
    nix::unistd::mkfifo(
        &dir.path().join("fifo.toml"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.toml")).unwrap();
    std::os::unix::fs::symlink("web.toml", dir.path().join("alias.toml")).unwrap();
    let l = load_within(dir.path(), std::time::Duration::from_secs(10));
    assert_eq!(
        unit_names(&l),
        ["alias", "web"],
        "a symlink to a file is read"
    );
    let shown: Vec<(String, usize, usize, String)> = l
        .errors
        .iter()
        .map(|e| (e.unit.clone(), e.line, e.column, e.message.clone()))
        .collect();
    let not_regular = |kind: &str| {
        format!("not a regular file ({kind}): unit files must be regular files or symlinks to them")
    };
    assert_eq!(
        shown,
        [
            ("fifo".into(), 1, 1, not_regular("a FIFO")),
            ("zero".into(), 1, 1, not_regular("a character device")),
        ]
    );
    assert!(!l.fingerprints.contains_key("fifo") && !l.fingerprints.contains_key("zero"));
}

#[test]
fn files_over_one_mib_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = format!("{MINIMAL}#{}\n", "x".repeat(1024 * 1024));
    fs::write(dir.path().join("big.toml"), big).unwrap();
    let at_cap = format!(
        "{MINIMAL}#{}\n",
        "x".repeat(1024 * 1024 - MINIMAL.len() - 2)
    );
    assert_eq!(at_cap.len(), 1024 * 1024);
    fs::write(dir.path().join("ok.toml"), at_cap).unwrap();
    let l = load_dir(dir.path()).unwrap();
    assert_eq!(unit_names(&l), ["ok"]);
    assert_eq!(l.errors.len(), 1, "{:?}", l.errors);
    assert_eq!((l.errors[0].line, l.errors[0].column), (1, 1));
    assert!(
        l.errors[0]
            .message
            .contains("larger than the limit of 1 MiB")
    );
}

#[test]
fn fingerprints_of_every_file_read() {
    let dir = tempfile::tempdir().unwrap();
    let bad = "[service]\nexec = 1\nrestart = \"x\"\n";
    fs::write(dir.path().join("web.toml"), MINIMAL).unwrap();
    fs::write(dir.path().join("bad.toml"), bad).unwrap();
    fs::write(dir.path().join("binary.toml"), [0xff]).unwrap();
    let l = load_dir(dir.path()).unwrap();
    let want: BTreeMap<String, u64> = [
        ("bad", fingerprint(bad.as_bytes())),
        ("binary", fingerprint(&[0xff])),
        ("web", fingerprint(MINIMAL.as_bytes())),
    ]
    .into_iter()
    .map(|(n, f)| (n.to_owned(), f))
    .collect();
    assert_eq!(l.fingerprints, want);
    assert_eq!(fingerprint(b"a"), 0xaf63_dc4c_8601_ec8c, "FNV-1a 64");
    // Both errors of bad.toml are reported.
    let bad_errors: Vec<(usize, usize)> = l
        .errors
        .iter()
        .filter(|e| e.unit == "bad")
        .map(|e| (e.line, e.column))
        .collect();
    assert_eq!(bad_errors, [(2, 8), (3, 11)]);
}

/// A cached read gives what a fresh one gives, pass after pass: a file replaced
/// by one of the same size and mtime is seen, a removed one leaves the cache.
#[test]
fn cached_reads_match_fresh_ones() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| dir.path().join(name);
    let exec = |arg: &str| format!("[service]\nexec = [\"/bin/{arg}\"]\n");
    let mut cache = ParseCache::default();
    let none = std::collections::BTreeSet::new();
    // (what, files written, files removed, cached after)
    type Step = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static [&'static str],
        usize,
    );
    let steps: &[Step] = &[
        ("first read", &[("a.toml", "aa"), ("b.toml", "bb")], &[], 2),
        ("nothing changed", &[], &[], 2),
        ("same size and mtime", &[("a.toml", "cc")], &[], 2),
        (
            "broken edit",
            &[("b.toml", "[service]\nexec = 1\n")],
            &[],
            2,
        ),
        ("removed", &[], &["a.toml"], 1),
    ];
    for (what, writes, removes, cached) in steps {
        for (name, arg) in *writes {
            let old = fs::metadata(file(name)).ok();
            let text = if arg.starts_with('[') {
                arg.to_string()
            } else {
                exec(arg)
            };
            fs::write(file(name), text).unwrap();
            if let Some(old) = old {
                let f = fs::File::options().write(true).open(file(name)).unwrap();
                f.set_modified(old.modified().unwrap()).unwrap();
            }
        }
        for name in *removes {
            fs::remove_file(file(name)).unwrap();
        }
        let cached_read = load_dir_cached(dir.path(), &none, &mut cache).unwrap();
        assert_eq!(cached_read, load_dir(dir.path()).unwrap(), "{what}");
        assert_eq!(cache.len(), *cached, "{what}");
    }
}
