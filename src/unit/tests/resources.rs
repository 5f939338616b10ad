//! Tests for the `[resources]` section.

use std::path::Path;

use super::*;

const MIB: u64 = 1024 * 1024;

/// MINIMAL, a blank line, `[resources]` on line 4, then `body` from line 5.
fn section(body: &str) -> String {
    format!("{MINIMAL}\n[resources]\n{body}")
}

fn resources(body: &str) -> ResourceSpec {
    match parse(&section(body)) {
        Ok(u) => u.resources,
        Err(e) => panic!("{e:#?}"),
    }
}

const FULL_RESOURCES: &str = r#"memory_max = "1G"
memory_high = "768MiB"
memory_swap_max = 0
cpu_max = "150%"
cpu_weight = 200
pids_max = 512
io_weight = 50
cpuset_cpus = "0-2,4"
cpuset_mems = "0"
"#;

#[test]
fn full_resources_section() {
    let want = ResourceSpec {
        memory_max: Some(1024 * MIB),
        memory_high: Some(768 * MIB),
        memory_swap_max: Some(0),
        cpu_max: Some(CpuMax {
            quota_us: 150_000,
            period_us: 100_000,
        }),
        cpu_weight: Some(200),
        pids_max: Some(512),
        io_weight: Some(50),
        cpuset_cpus: Some("0-2,4".into()),
        cpuset_mems: Some("0".into()),
    };
    let got = resources(FULL_RESOURCES);
    assert_eq!(got, want);
    assert!(!got.is_empty());
}

#[test]
fn absent_and_empty_section_mean_no_limits() {
    let absent = parse(MINIMAL).unwrap();
    let empty = parse(&section("")).unwrap();
    assert_eq!(absent.resources, ResourceSpec::default());
    assert!(absent.resources.is_empty());
    assert_eq!(absent, empty);
    assert_eq!(absent.hash, empty.hash);
    // "max" everywhere is the same as writing nothing.
    let max = parse(&section(
        "memory_max = \"max\"\nmemory_high = \"max\"\nmemory_swap_max = \"max\"\n\
         cpu_max = \"max\"\npids_max = \"max\"\n",
    ))
    .unwrap();
    assert_eq!(max.resources, ResourceSpec::default());
    assert_eq!(max.hash, absent.hash);
}

#[test]
fn hash_of_units_without_limits_is_unchanged() {
    // The hash of MINIMAL: [resources] left out of the hash when empty keeps it
    // from changing with the resource model. (It last changed when the default
    // protections joined the container model.)
    assert_eq!(parse(MINIMAL).unwrap().hash, "c2413f0d607f");
}

#[test]
fn hash_covers_resources() {
    let absent = parse(MINIMAL).unwrap();
    let a = parse(&section("memory_max = \"512M\"\n")).unwrap();
    let b = parse(&section("memory_max = 536870912\n")).unwrap();
    let c = parse(&section("memory_max = \"1G\"\n")).unwrap();
    assert_eq!(a.hash, b.hash, "equivalent spellings hash equal");
    assert_ne!(a.hash, absent.hash);
    assert_ne!(a.hash, c.hash);
    let inline = parse(&format!(
        "resources = {{ memory_max = \"512M\" }}\n{MINIMAL}"
    ))
    .unwrap();
    assert_eq!(inline.hash, a.hash, "any TOML form of the table works");
}

#[test]
fn memory_sizes() {
    assert_eq!(
        resources("memory_max = \"512M\"\n").memory_max,
        Some(536_870_912)
    );
    assert_eq!(resources("memory_max = 4096\n").memory_max, Some(4096));
    assert_eq!(resources("memory_max = \"4K\"\n").memory_max, Some(4096));
    assert_eq!(resources("memory_max = \"max\"\n").memory_max, None);
    assert_eq!(
        resources("memory_swap_max = \"0\"\n").memory_swap_max,
        Some(0)
    );
    assert_eq!(
        resources("memory_swap_max = \"2G\"\n").memory_swap_max,
        Some(2048 * MIB)
    );
    let r = resources("memory_max = \"1G\"\nmemory_high = \"1G\"\n");
    assert_eq!(
        (r.memory_max, r.memory_high),
        (Some(1024 * MIB), Some(1024 * MIB))
    );
    let r = resources("memory_high = \"8G\"\n");
    assert_eq!((r.memory_max, r.memory_high), (None, Some(8192 * MIB)));
    let r = resources("memory_max = \"max\"\nmemory_high = \"8G\"\n");
    assert_eq!(r.memory_high, Some(8192 * MIB));
}

#[test]
fn bad_memory_values() {
    let cases = [
        ("memory_max = \"512X\"\n", 14, "unknown suffix"),
        ("memory_max = \"512X\"\n", 14, "or \"max\" for no limit"),
        ("memory_max = -1\n", 14, "cannot be negative"),
        ("memory_max = \"unlimited\"\n", 14, "invalid size"),
        ("memory_max = 4095\n", 14, "at least 4K (4096 bytes"),
        ("memory_max = \"0\"\n", 14, "at least 4K"),
        (
            "memory_high = \"1K\"\n",
            15,
            "memory_high must be at least 4K",
        ),
        ("memory_swap_max = true\n", 19, "invalid type"),
    ];
    for (line, column, message) in cases {
        assert_err(&section(line), 5, column, message);
    }
}

#[test]
fn memory_high_above_memory_max() {
    assert_err(
        &section("memory_max = \"512M\"\nmemory_high = \"1G\"\n"),
        6,
        15,
        "memory_high (1073741824 bytes) must be <= memory_max (536870912 bytes)",
    );
    // Reported at memory_high wherever it is written.
    assert_err(
        &section("memory_high = \"513M\"\ncpu_weight = 5\nmemory_max = \"512M\"\n"),
        5,
        15,
        "must be <= memory_max",
    );
}

#[test]
fn cpu_max_forms() {
    let cpu = |body: &str| resources(body).cpu_max;
    let limit = |quota_us, period_us| {
        Some(CpuMax {
            quota_us,
            period_us,
        })
    };
    assert_eq!(cpu("cpu_max = \"150%\"\n"), limit(150_000, 100_000));
    assert_eq!(cpu("cpu_max = \"50%\"\n"), limit(50_000, 100_000));
    assert_eq!(cpu("cpu_max = \"50000/100000\"\n"), limit(50_000, 100_000));
    assert_eq!(cpu("cpu_max = \"2000/1000\"\n"), limit(2_000, 1_000));
    assert_eq!(cpu("cpu_max = \"max\"\n"), None);
}

#[test]
fn bad_cpu_max() {
    let cases = [
        ("\"12.5%\"", "whole number"),
        ("\"0%\"", "between 1% and 100000%"),
        ("\"100001%\"", "between 1% and 100000%"),
        ("\"150\"", "neither a percentage nor quota/period"),
        ("\"50000/500\"", "period must be between 1000 and 1000000"),
        (
            "\"50000/2000000\"",
            "period must be between 1000 and 1000000",
        ),
        ("\"500/100000\"", "quota must be at least 1000"),
        ("\"50000 / 100000\"", "whole number"),
        ("\"unlimited\"", "neither"),
        ("150", "must be a string, not the integer 150"),
        ("1.5", "invalid type"),
    ];
    for (value, why) in cases {
        let text = section(&format!("cpu_weight = 100\ncpu_max = {value}\n"));
        assert_err(&text, 6, 11, why);
        if value.starts_with('"') {
            assert_err(&text, 6, 11, values::CPU_MAX_EXPECTED);
        }
    }
}

#[test]
fn weights() {
    let r = resources("cpu_weight = 1\nio_weight = 10000\n");
    assert_eq!((r.cpu_weight, r.io_weight), (Some(1), Some(10000)));
    for (key, value) in [
        ("cpu_weight", "0"),
        ("cpu_weight", "10001"),
        ("io_weight", "0"),
        ("io_weight", "10001"),
        ("io_weight", "-5"),
    ] {
        let col = key.len() + 4;
        assert_err(
            &section(&format!("{key} = {value}\n")),
            5,
            col,
            &format!("{key} {value} is out of range: expected an integer between 1 and 10000"),
        );
    }
    assert_err(&section("cpu_weight = \"100\"\n"), 5, 14, "invalid type");
}

#[test]
fn pids_max() {
    assert_eq!(resources("pids_max = 1\n").pids_max, Some(1));
    assert_eq!(resources("pids_max = 4194304\n").pids_max, Some(4_194_304));
    assert_eq!(resources("pids_max = \"max\"\n").pids_max, None);
    for (value, why) in [
        ("0", "pids_max 0 is out of range"),
        ("-1", "pids_max -1 is out of range"),
        ("\"100\"", "invalid pids_max \"100\""),
        ("\"unlimited\"", "or \"max\" for no limit"),
    ] {
        assert_err(&section(&format!("pids_max = {value}\n")), 5, 12, why);
    }
}

#[test]
fn cpuset_lists() {
    let r = resources("cpuset_cpus = \"0-3,8,10-11\"\ncpuset_mems = \"0-1\"\n");
    assert_eq!(r.cpuset_cpus.as_deref(), Some("0-3,8,10-11"));
    assert_eq!(r.cpuset_mems.as_deref(), Some("0-1"));
    let cases = [
        ("cpuset_cpus", "\"\"", "empty"),
        ("cpuset_cpus", "\"3-1\"", "backwards"),
        ("cpuset_cpus", "\"0-4096\"", "too large"),
        ("cpuset_cpus", "\"0,,2\"", "empty entry"),
        ("cpuset_cpus", "\"0, 2\"", "not a number"),
        ("cpuset_mems", "\"all\"", "not a number"),
        ("cpuset_mems", "\"1,\"", "empty entry"),
    ];
    for (key, value, why) in cases {
        let text = section(&format!("{key} = {value}\n"));
        assert_err(&text, 5, 15, why);
        assert_err(&text, 5, 15, &format!("invalid {key}"));
        assert_err(&text, 5, 15, values::CPU_LIST_EXPECTED);
    }
    assert_err(&section("cpuset_cpus = 3\n"), 5, 15, "invalid type");
}

#[test]
fn unknown_key() {
    assert_err(
        &section("memory = \"1G\"\n"),
        5,
        1,
        "unknown field `memory`, expected one of `memory_max`",
    );
    assert_err(
        &section("cpu_quota = \"50%\"\n"),
        5,
        1,
        "unknown field `cpu_quota`",
    );
}

#[test]
fn every_problem_is_reported_in_file_order() {
    let errors = parse_errs(&section("memory_max = 1\ncpu_weight = 0\n"));
    let shown: Vec<(usize, usize, &str)> = errors
        .iter()
        .map(|e| (e.line, e.column, e.message.as_str()))
        .collect();
    assert_eq!(
        shown,
        [
            (
                5,
                14,
                "memory_max must be at least 4K (4096 bytes, one page), got 1 bytes; use \"max\" for no limit"
            ),
            (
                6,
                14,
                "cpu_weight 0 is out of range: expected an integer between 1 and 10000"
            ),
        ]
    );
}

#[test]
fn same_except_live_settings_cases() {
    let base = parse(MINIMAL).unwrap();
    let limited = parse(&section(FULL_RESOURCES)).unwrap();
    let other_limits = parse(&section("memory_max = \"64M\"\n")).unwrap();
    assert!(same_except_live_settings(&base, &base));
    assert!(same_except_live_settings(&base, &limited));
    assert!(same_except_live_settings(&limited, &other_limits));
    assert_ne!(base.hash, limited.hash);

    // Name and path are not part of the definition.
    let renamed = parse_unit("other", Path::new("x/other.toml"), MINIMAL).unwrap();
    assert!(same_except_live_settings(&base, &renamed));

    let other_exec = parse("[service]\nexec = [\"/bin/false\"]\n").unwrap();
    assert!(!same_except_live_settings(&base, &other_exec));
    let both = parse(&format!(
        "[service]\nexec = [\"/bin/false\"]\n\n[resources]\n{FULL_RESOURCES}"
    ))
    .unwrap();
    assert!(!same_except_live_settings(&limited, &both));
    let probed = |probe: &str| parse(&format!("{MINIMAL}\n[health]\n{probe}\n")).unwrap();
    let (tcp, http) = (
        probed("tcp = \"127.0.0.1:1\""),
        probed("http = \"http://127.0.0.1/\""),
    );
    assert!(
        same_except_live_settings(&tcp, &http),
        "probe settings are live"
    );
    assert!(
        !same_except_live_settings(&base, &tcp),
        "adding a check is not"
    );
    for extra in [
        "[unit]\ndescription = \"x\"\n",
        "[unit]\nafter = [\"db\"]\n",
        "[unit]\nrequires = [\"db\"]\n",
        "[logs]\nmax_files = 1\n",
        "[container]\ninit = false\n",
    ] {
        let changed = parse(&format!("{extra}{MINIMAL}")).unwrap();
        assert!(!same_except_live_settings(&base, &changed), "{extra}");
        assert!(!same_except_live_settings(&changed, &limited), "{extra}");
    }
}
