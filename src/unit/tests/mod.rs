//! Tests for parsing, graph checks and directory loading, one file per
//! concern; the helpers here are shared by all of them.

use std::path::Path;

use super::*;

mod container;
mod docs;
mod errors;
mod graph;
mod id_maps;
mod image;
mod lifecycle;
mod limits;
mod load;
mod mounts;
mod network;
mod protection;
mod resources;
mod service;

pub(super) const MINIMAL: &str = "[service]\nexec = [\"/bin/true\"]\n";

pub(super) fn parse(text: &str) -> Result<Unit, Vec<UnitError>> {
    parse_unit("web", Path::new("units/web.toml"), text)
}

/// Every error of `text`, which must not parse.
pub(super) fn parse_errs(text: &str) -> Vec<UnitError> {
    match parse(text) {
        Ok(unit) => panic!("expected an error, got {unit:?}"),
        Err(e) => e,
    }
}

/// The one error of `text`.
pub(super) fn parse_err(text: &str) -> UnitError {
    let mut errors = parse_errs(text);
    assert_eq!(errors.len(), 1, "exactly one error expected: {errors:#?}");
    errors.remove(0)
}

/// Asserts that `text` has exactly one error, at `line`:`column`, whose
/// message contains `needle`.
pub(super) fn assert_err(text: &str, line: usize, column: usize, needle: &str) {
    let e = parse_err(text);
    assert_eq!((e.line, e.column), (line, column), "{e}");
    assert!(e.message.contains(needle), "{e}");
}

/// Asserts that one of the errors of `text` is at `line`:`column` and
/// contains `needle`.
pub(super) fn assert_has_err(text: &str, line: usize, column: usize, needle: &str) {
    let errors = parse_errs(text);
    let found = errors
        .iter()
        .any(|e| (e.line, e.column) == (line, column) && e.message.contains(needle));
    assert!(found, "no {line}:{column} {needle:?} in {errors:#?}");
}

/// MINIMAL plus `rest`; `rest` starts on line 3.
pub(super) fn with(rest: &str) -> String {
    format!("{MINIMAL}{rest}")
}
