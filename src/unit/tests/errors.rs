//! Every error of a file at once, each at the span toml gives.

use super::*;

/// `(line, column, message)` of every error of `text`.
fn located(text: &str) -> Vec<(usize, usize, String)> {
    parse_errs(text)
        .into_iter()
        .map(|e| (e.line, e.column, e.message))
        .collect()
}

#[test]
fn three_mistakes_in_three_sections_give_three_errors() {
    let text = "[service]\nexec = [\"/bin/true\"]\nretsart = \"always\"\n\
                \n[logs]\nmax_size = \"10X\"\n\
                \n[container]\ninit = \"yes\"\n";
    let errors = located(text);
    let at: Vec<(usize, usize)> = errors.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(at, [(3, 1), (6, 12), (9, 8)], "{errors:#?}");
    assert!(
        errors[0]
            .2
            .starts_with("unknown field `retsart`, expected one of `exec`")
    );
    assert!(
        errors[1]
            .2
            .starts_with("invalid size \"10X\": unknown suffix")
    );
    assert_eq!(
        errors[2].2,
        "invalid type: string \"yes\", expected a boolean"
    );
    let shown = parse_errs(text)[0].to_string();
    assert!(
        shown.starts_with("units/web.toml:3:1: unknown field"),
        "{shown}"
    );
}

#[test]
fn several_mistakes_in_one_section_are_all_reported() {
    let text = "[service]\nexec = [\"/bin/true\", 1]\nuser = 1.5\nstop_timeout = 10\n\
                restart = \"sometimes\"\nenv = { \"A=B\" = \"1\", C = 2 }\n";
    let at: Vec<(usize, usize)> = located(text).iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(at, [(2, 22), (3, 8), (4, 16), (5, 11), (6, 9), (6, 26)]);
}

#[test]
fn spaced_section_headers() {
    let u = parse("[ service ]\nexec = [\"/bin/true\"]\n[ logs ]\nmax_files = 1\n").unwrap();
    assert_eq!(u.logs.max_files, 1);
    assert_err(
        "# x\n[ service ]\nrestart = \"no\"\n",
        2,
        1,
        "missing `exec`",
    );
    assert_err("[\tservice\t]\n", 1, 1, "missing `exec`");
}

#[test]
fn inline_tables() {
    let text = "service = { exec = [\"/bin/true\"], restart = \"bogus\" }\n\
                resources = { memory_max = \"x\" }\n";
    assert_eq!(
        located(text)
            .iter()
            .map(|(l, c, _)| (*l, *c))
            .collect::<Vec<_>>(),
        [(1, 45), (2, 28)]
    );
    assert_has_err(text, 1, 45, "unknown restart policy \"bogus\"");
    assert_has_err(text, 2, 28, "invalid size \"x\"");
    // "missing exec" points at the inline table itself.
    assert_err(
        "# x\nservice = { restart = \"no\" }\n",
        2,
        11,
        "missing `exec`",
    );
}

#[test]
fn missing_exec_in_an_implied_service_table() {
    assert_err(
        "[service.env]\nA = \"1\"\n",
        1,
        2,
        "missing `exec` in [service]",
    );
}

#[test]
fn unknown_keys_in_every_mount_entry() {
    let text = with(
        "[[mount]]\ntype = \"proc\"\ntarget = \"/proc\"\nreadonyl = true\n\
         [[ mount ]]\ntype = \"dev\"\ntarget = \"/dev\"\nnoexcec = true\n",
    );
    let errors = located(&text);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!((errors[0].0, errors[0].1), (6, 1));
    assert!(errors[0].2.starts_with("unknown field `readonyl`"));
    assert_eq!((errors[1].0, errors[1].1), (10, 1));
    assert!(errors[1].2.starts_with("unknown field `noexcec`"));
    // Missing keys point at the entry's header, spaces and all.
    assert_err(
        &with("[[ mount ]]\ntype = \"dev\"\n"),
        3,
        1,
        "missing target",
    );
}

#[test]
fn not_toml_is_a_single_located_error() {
    assert_err("[service\n", 1, 9, "");
    let e = parse_err("[service]\nexec = [\"/bin/true\"\nrestart = \"no\"\n");
    assert_eq!(e.line, 3, "{e}");
    let e = parse_err("[service]\nexec = [\"a\"]\nexec = [\"b\"]\n");
    assert_eq!(
        (e.line, e.column, e.message.as_str()),
        (3, 1, "duplicate key")
    );
}

#[test]
fn recursion_limit_is_reported_where_it_is_reached() {
    let depth = 5000;
    let text = format!(
        "[service]\nexec = [\"/bin/true\"]\nx = {}1{}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let e = parse_err(&text);
    assert_eq!(e.line, 3, "{e}");
    assert!(e.column > 5, "{e}");
    assert!(e.message.contains("recursion"), "{e}");
}

#[test]
fn invalid_name_and_content_errors_together() {
    let e = parse_unit("bad name", Path::new("x.toml"), "[service]\nexec = 1\n").unwrap_err();
    let at: Vec<(usize, usize)> = e.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(at, [(1, 1), (2, 8)], "{e:#?}");
    assert!(e[0].message.contains("invalid unit name"));
}
