//! The unit key list against docs/units.md, docs/networking.md and the rendered page.

use super::*;
use std::collections::BTreeSet;

/// (section, key) for every key docs/units.md names: in the `### key — type`
/// headings and in the rows of its `| Key |` tables, below a `## [section]` heading.
fn documented_keys() -> BTreeSet<(String, String)> {
    let doc = include_str!("../../docs/units.md");
    let mut keys = BTreeSet::new();
    let mut section: Option<String> = None;
    let mut in_key_table = false;
    let mut in_code = false;
    for line in doc.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            // The keys the examples of [health] and [[device]] set (their tables
            // show no `| Key |` row for them), comments included
            // (`exec = [...]  # or tcp = "..."`).
            if let Some(sec) = section
                .as_ref()
                .filter(|s| *s == "[health]" || *s == "[[device]]")
                && !line.starts_with('[')
            {
                let parts: Vec<&str> = line.split(" = ").collect();
                for before in &parts[..parts.len().saturating_sub(1)] {
                    let name = before.rsplit([' ', '#']).next().unwrap_or("");
                    if !name.is_empty() {
                        keys.insert((sec.clone(), name.to_string()));
                    }
                }
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("## ") {
            section = rest
                .strip_prefix('`')
                .and_then(|r| r.strip_suffix('`'))
                .filter(|s| s.starts_with('['))
                .map(str::to_string);
            in_key_table = false;
            continue;
        }
        let Some(sec) = &section else { continue };
        if let Some(rest) = line.strip_prefix("### ") {
            let names = rest.split(" — ").next().unwrap_or("");
            for name in names.split(", ") {
                if let Some(name) = name.strip_prefix('`').and_then(|n| n.strip_suffix('`')) {
                    keys.insert((sec.clone(), name.to_string()));
                }
            }
            continue;
        }
        if line.starts_with("| Key") {
            in_key_table = true;
            continue;
        }
        if !line.starts_with('|') {
            in_key_table = false;
            continue;
        }
        if in_key_table {
            let cell = line
                .trim_start_matches('|')
                .split('|')
                .next()
                .unwrap()
                .trim();
            if let Some(name) = cell.strip_prefix('`').and_then(|n| n.strip_suffix('`'))
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                keys.insert((sec.clone(), name.to_string()));
            }
        }
    }
    keys
}

fn listed_keys() -> BTreeSet<(String, String)> {
    KEYS.iter()
        .filter(|k| k.section != NETWORK_FILE && k.section != "[credentials]")
        .map(|k| (k.section.to_string(), k.name.to_string()))
        .collect()
}

#[test]
fn man_page_lists_exactly_the_keys_of_units_md() {
    let documented = documented_keys();
    let listed = listed_keys();
    // The parser found the tables it should (a guard against a parser gone blind).
    for probe in [
        ("[service]", "exec_stop_post"),
        ("[health]", "tcp"),
        ("[network]", "ipv4"),
        ("[container]", "ambient_capabilities"),
        ("[[device]]", "access"),
        ("[[mount]]", "lower"),
        ("[resources]", "cpuset_mems"),
    ] {
        assert!(
            documented.contains(&(probe.0.to_string(), probe.1.to_string())),
            "{probe:?} not found in docs/units.md"
        );
    }
    let missing: Vec<_> = documented.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&documented).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/units.md and src/cli/unit_keys.rs differ: only in units.md {missing:?}, \
         only in unit_keys.rs {extra:?}"
    );
}

#[test]
fn every_section_of_units_md_is_a_section_here() {
    let doc = include_str!("../../docs/units.md");
    for (section, _) in SECTIONS.iter().filter(|(s, _)| *s != NETWORK_FILE) {
        assert!(
            doc.contains(&format!("## `{section}`")),
            "{section} is not in units.md"
        );
        assert!(
            KEYS.iter().any(|k| k.section == *section),
            "{section} has no keys"
        );
    }
    // Its table of sections names each of them too.
    let table: Vec<&str> = doc
        .split("## Sections")
        .nth(1)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .collect();
    for (section, _) in SECTIONS.iter().filter(|(s, _)| *s != NETWORK_FILE) {
        assert!(
            table.contains(section),
            "{section} is not in units.md's Sections table"
        );
    }
    // And every `## [section]` of units.md is one of ours.
    for line in doc.lines().filter(|l| l.starts_with("## `[")) {
        let name = line.trim_start_matches("## ").trim_matches('`');
        assert!(
            SECTIONS.iter().any(|(s, _)| *s == name),
            "{name} missing from SECTIONS"
        );
    }
}

#[test]
fn network_file_keys_are_those_of_networking_md() {
    let doc = include_str!("../../docs/networking.md");
    let block = doc
        .split("`NAME.network.toml`")
        .nth(1)
        .and_then(|rest| rest.split("```toml\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("networking.md shows a network file");
    let documented: BTreeSet<&str> = block
        .lines()
        .filter_map(|l| l.split_once(" = ").map(|(k, _)| k.trim()))
        .collect();
    let listed: BTreeSet<&str> = KEYS
        .iter()
        .filter(|k| k.section == NETWORK_FILE)
        .map(|k| k.name)
        .collect();
    assert_eq!(documented, listed);
}

#[test]
fn the_page_names_every_key() {
    let page = man_page("0");
    for key in KEYS {
        assert!(
            page.contains(&format!("\\fB{}\\fR", roff(key.name))),
            "{}",
            key.name
        );
    }
    assert!(page.contains(".SS [network]") && page.contains(".SS [[mount]]"));
}

#[test]
fn man_page_lists_exactly_the_keys_the_parser_reads() {
    let listed = listed_keys();
    let mut parsed = BTreeSet::new();
    for (section, keys) in crate::unit::keys_by_section() {
        parsed.extend(keys.iter().map(|k| (section.to_string(), k.to_string())));
    }
    let missing: Vec<_> = parsed.difference(&listed).collect();
    let extra: Vec<_> = listed
        .iter()
        .filter(|(section, _)| parsed.iter().any(|(s, _)| s == section))
        .filter(|key| !parsed.contains(*key))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the parser and src/cli/unit_keys.rs differ: only parsed {missing:?}, \
         only listed {extra:?}"
    );
}
