//! The one error type of the unit module.

use std::path::PathBuf;

/// A problem with one unit file, located at a 1-based line and column.
///
/// Displayed as `{path}:{line}:{column}: {message}` so editors and terminals
/// can jump to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", path.display())]
pub struct UnitError {
    /// Unit name (file stem).
    pub unit: String,
    /// File the problem is in.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}
