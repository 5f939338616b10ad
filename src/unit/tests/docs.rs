//! The examples in docs/units.md parse.

use super::*;

#[test]
fn docs_complete_example_parses() {
    let doc = include_str!("../../../docs/units.md");
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
    let doc = include_str!("../../../docs/units.md");
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
