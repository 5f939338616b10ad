//! Parses of unit files kept from one read of the directory to the next.
//!
//! A reload reads every unit file, but with a thousand units nearly all of them are
//! the same as last time, and parsing and hashing them again was most of a reload's
//! CPU (about 100 ms for 1000 units). Parsing depends on nothing but the file's
//! name, path and bytes (no lookups on the host), so the outcome for bytes seen
//! last time at the same path is that outcome again. The bytes are always read and
//! compared in full: a file replaced by another of the same size and mtime is
//! still noticed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::memory::Shrink;

use super::Unit;
use super::error::UnitError;

/// Why a file's bytes gave no unit: not UTF-8 (one message at 1:1), or every
/// problem found in its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum BadText {
    NotUtf8(String),
    Parse(Vec<UnitError>),
}

/// The outcome of parsing one file's bytes.
pub(super) type Parsed = Result<Unit, BadText>;

/// Outcomes of the files of the last read, by path. Holds the bytes of each unit
/// file read whole (what the reader reads every time anyway) and one parse of
/// it; entries of files that were not read in a pass (removed, unreadable,
/// renamed) go at its end, so it never holds more than one directory's files.
#[derive(Debug, Default)]
pub struct ParseCache {
    entries: HashMap<PathBuf, Entry>,
    /// Which pass of the directory this is; an entry not seen in it is dropped.
    pass: u64,
}

#[derive(Debug)]
struct Entry {
    bytes: Vec<u8>,
    parsed: Parsed,
    pass: u64,
}

impl ParseCache {
    /// Files cached (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No file cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A new pass over the directory starts.
    pub(super) fn begin(&mut self) {
        self.pass = self.pass.wrapping_add(1);
    }

    /// The parse of `bytes` read at `path`: the one kept if the bytes are those of
    /// the last pass, else `parse`'s, which is kept for the next.
    pub(super) fn parse(
        &mut self,
        path: &Path,
        bytes: Vec<u8>,
        parse: impl FnOnce(&[u8]) -> Parsed,
    ) -> Parsed {
        let pass = self.pass;
        if let Some(entry) = self.entries.get_mut(path)
            && entry.bytes == bytes
        {
            entry.pass = pass;
            return entry.parsed.clone();
        }
        let parsed = parse(&bytes);
        self.entries.insert(
            path.to_path_buf(),
            Entry {
                bytes,
                parsed: parsed.clone(),
                pass,
            },
        );
        parsed
    }

    /// The pass is over: files not read whole in it are forgotten.
    pub(super) fn end(&mut self) {
        let pass = self.pass;
        self.entries.retain(|_, e| e.pass == pass);
        self.entries.shrink_after_churn();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(name: &str) -> Unit {
        let text = format!("[service]\nexec = [\"/bin/{name}\"]\n");
        super::super::parse_unit(name, Path::new("/u/x.toml"), &text).unwrap()
    }

    /// Each step: a pass reading (path, bytes) pairs; which were parsed afresh,
    /// and which paths the cache holds after it.
    #[test]
    fn reuses_unchanged_bytes_reparses_changed_drops_missing() {
        type Pass = (
            &'static [(&'static str, &'static str)],
            &'static [&'static str],
        );
        let steps: &[(&str, Pass, &[&str])] = &[
            (
                "first pass parses all",
                (&[("a", "1"), ("b", "2")], &["a", "b"]),
                &["a", "b"],
            ),
            (
                "unchanged: none parsed",
                (&[("a", "1"), ("b", "2")], &[]),
                &["a", "b"],
            ),
            (
                "changed bytes reparsed",
                (&[("a", "1"), ("b", "3")], &["b"]),
                &["a", "b"],
            ),
            (
                "same size, other bytes",
                (&[("a", "9"), ("b", "3")], &["a"]),
                &["a", "b"],
            ),
            ("removed file dropped", (&[("b", "3")], &[]), &["b"]),
            (
                "back again: parsed",
                (&[("a", "9"), ("b", "3")], &["a"]),
                &["a", "b"],
            ),
            ("empty directory", (&[], &[]), &[]),
        ];
        let mut cache = ParseCache::default();
        for (what, (files, want_parsed), want_kept) in steps {
            cache.begin();
            let mut parsed = Vec::new();
            for (path, bytes) in *files {
                let got = cache.parse(Path::new(path), bytes.as_bytes().to_vec(), |b| {
                    parsed.push(*path);
                    Ok(unit(std::str::from_utf8(b).unwrap_or("?")))
                });
                assert_eq!(got, Ok(unit(bytes)), "{what}: {path}");
            }
            cache.end();
            assert_eq!(&parsed, want_parsed, "{what}");
            let mut kept: Vec<&str> = cache.entries.keys().filter_map(|p| p.to_str()).collect();
            kept.sort_unstable();
            assert_eq!(&kept, want_kept, "{what}");
        }
    }

    #[test]
    fn failures_are_kept_too() {
        let mut cache = ParseCache::default();
        let bad = || Err(BadText::NotUtf8("bad".into()));
        for (round, want_calls) in [(1, 1), (2, 0)] {
            cache.begin();
            let mut calls = 0;
            let got = cache.parse(Path::new("x"), vec![0xff], |_| {
                calls += 1;
                bad()
            });
            cache.end();
            assert_eq!(got, bad(), "round {round}");
            assert_eq!(calls, want_calls, "round {round}");
        }
    }
}
