//! Reading a units directory.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::error::UnitError;
use super::{Loaded, graph, parse};

/// See [`super::load_dir`].
pub(super) fn load_dir(dir: &Path) -> io::Result<Loaded> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if is_unit_file(&path) {
            files.push(path);
        }
    }
    files.sort();

    let mut units = BTreeMap::new();
    let mut invalid = BTreeSet::new();
    let mut errors = Vec::new();
    let mut fingerprints = BTreeMap::new();
    for path in files {
        let name = unit_name(&path);
        match read_and_parse(&name, &path, &mut fingerprints) {
            Ok(unit) => {
                units.insert(name, unit);
            }
            Err(e) => {
                invalid.insert(name);
                errors.push(e);
            }
        }
    }
    let mut loaded = graph::check_graph(units, &invalid);
    errors.append(&mut loaded.errors);
    // Stable sort: errors within one file keep line/column order.
    errors.sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
    loaded.errors = errors;
    loaded.fingerprints = fingerprints;
    Ok(loaded)
}

/// `*.toml`, not hidden, not an editor temp file, and not a directory.
fn is_unit_file(path: &Path) -> bool {
    let Some(file_name) = path.file_name().map(OsStr::to_string_lossy) else {
        return false;
    };
    let ignored =
        file_name.starts_with('.') || file_name.ends_with('~') || file_name.ends_with(".swp");
    !ignored && file_name.ends_with(".toml") && !path.is_dir()
}

/// The file stem; a non-UTF-8 stem is kept lossily and then fails the name
/// check in `parse_unit` with a readable message.
fn unit_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read_and_parse(
    name: &str,
    path: &Path,
    fingerprints: &mut BTreeMap<String, u64>,
) -> Result<super::Unit, UnitError> {
    let at_start = |message: String| UnitError {
        unit: name.to_owned(),
        path: PathBuf::from(path),
        line: 1,
        column: 1,
        message,
    };
    let bytes = fs::read(path).map_err(|e| at_start(format!("cannot read unit file: {e}")))?;
    fingerprints.insert(name.to_owned(), super::model::fnv1a64(&bytes));
    let text = String::from_utf8(bytes).map_err(|e| {
        at_start(format!(
            "unit file is not valid UTF-8 (first bad byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    parse::parse_unit(name, path, &text)
}
