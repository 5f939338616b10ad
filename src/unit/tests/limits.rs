//! Upper bounds on durations, sizes and list lengths.

use std::time::Duration;

use super::*;

#[test]
fn durations_are_capped_at_one_day() {
    let huge = "\"500000000000y\"";
    let cases = [
        (format!("restart_delay = {huge}\n"), 17, "restart_delay"),
        (
            format!("restart_max_delay = {huge}\n"),
            21,
            "restart_max_delay",
        ),
        (
            format!("restart_reset_after = {huge}\n"),
            23,
            "restart_reset_after",
        ),
        (format!("stop_timeout = {huge}\n"), 16, "stop_timeout"),
        (
            format!("start_limit = {{ interval = {huge} }}\n"),
            28,
            "start_limit.interval",
        ),
    ];
    for (line, column, key) in cases {
        let want = format!("{key} \"500000000000y\" is too long: at most \"1day\" is allowed");
        assert_err(&with(&line), 3, column, &want);
    }
    let u = parse(&with(
        "restart_delay = \"24h\"\nrestart_max_delay = \"1d\"\nstop_timeout = \"86400s\"\n",
    ))
    .unwrap();
    assert_eq!(u.service.stop_timeout, Duration::from_secs(86_400));
    assert_err(&with("stop_timeout = \"86401s\"\n"), 3, 16, "too long");
}

#[test]
fn sizes_are_capped() {
    assert_eq!(
        parse(&with("[logs]\nmax_size = \"1T\"\n"))
            .unwrap()
            .logs
            .max_size,
        1 << 40
    );
    assert_err(
        &with("[logs]\nmax_size = \"1025G\"\n"),
        4,
        12,
        "logs.max_size of 1100585369600 bytes is too large: at most 1099511627776 bytes",
    );
    let max = "\"4194304T\""; // 2^62 bytes
    for key in ["memory_max", "memory_high", "memory_swap_max"] {
        let ok = parse(&with(&format!("[resources]\n{key} = {max}\n"))).unwrap();
        assert!(!ok.resources.is_empty());
        let text = with(&format!("[resources]\n{key} = \"4194305T\"\n"));
        assert_err(
            &text,
            4,
            key.len() + 4,
            "is too large: at most 4611686018427387904",
        );
    }
    assert_err(
        &with("[[mount]]\ntype = \"tmpfs\"\ntarget = \"/t\"\nsize = 9223372036854775807\n"),
        6,
        8,
        "tmpfs size of 9223372036854775807 bytes is too large",
    );
    assert_err(
        &with("[resources]\npids_max = 4194305\n"),
        4,
        12,
        "pids_max 4194305 is out of range",
    );
    assert_err(
        &with("[logs]\nmax_size = 99999999999999999999\n"),
        4,
        12,
        "TOML integers are 64-bit",
    );
}

/// `key = [ n entries ]` written with `entry(i)`.
fn list(key: &str, n: usize, entry: impl Fn(usize) -> String) -> String {
    let items: Vec<String> = (0..n).map(entry).collect();
    format!("{key} = [{}]\n", items.join(", "))
}

#[test]
fn lists_are_capped() {
    let name = |i| format!("\"u{i}\"");
    let zero = |_| "0".to_owned();
    let unit_section = |body: String| format!("[unit]\n{body}{MINIMAL}");
    let container = |body: String| with(&format!("[container]\n{body}"));
    let cases = [
        (
            unit_section(list("after", 1025, name)),
            "after has 1025 entries: at most 1024",
        ),
        (
            unit_section(list("requires", 1025, name)),
            "requires has 1025 entries",
        ),
        (
            format!("[service]\n{}", list("exec", 4097, name)),
            "exec has 4097 entries: at most 4096",
        ),
        (
            with(&list("success_exit_codes", 1025, zero)),
            "success_exit_codes has 1025",
        ),
        (
            with(&list("supplementary_groups", 1025, zero)),
            "supplementary_groups has 1025",
        ),
        (
            container(list("capabilities", 1025, |_| "\"kill\"".into())),
            "capabilities has",
        ),
        (
            container(list("namespaces", 1025, |_| "\"mnt\"".into())),
            "namespaces has 1025",
        ),
    ];
    for (text, want) in cases {
        let e = parse_err(&text);
        assert!(e.message.contains(want), "{want}: {e}");
    }
    let env: Vec<String> = (0..4097).map(|i| format!("V{i} = \"x\"")).collect();
    let text = with(&format!("[service.env]\n{}\n", env.join("\n")));
    assert_err(&text, 3, 1, "env has 4097 entries: at most 4096");
    let mounts = "[[mount]]\ntype = \"proc\"\ntarget = \"/proc\"\n".repeat(1025);
    assert_err(&with(&mounts), 3, 1, "mount has 1025 entries: at most 1024");
    let lower = list("lower", 501, |i| format!("\"/l{i}\""));
    let text = with(&format!(
        "[[mount]]\ntype = \"overlay\"\ntarget = \"/u\"\n{lower}"
    ));
    assert_err(&text, 6, 9, "lower has 501 entries: at most 500");
    // At the cap is fine.
    let u = parse(&unit_section(list("after", 1024, name))).unwrap();
    assert_eq!(u.after.len(), 1024);
}
