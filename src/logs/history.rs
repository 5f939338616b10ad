//! `supctl logs --since/--until/--grep` (and more lines than memory keeps): read
//! back from the unit's log files, the rotated ones oldest first, so what is
//! shown does not depend on what is still in memory. Pure filtering, so it is
//! table-tested; the reads are bounded by the unit's `max_size × (max_files+1)`.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{Entry, Stream};

/// Which lines a reader wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
    /// A plain substring of the line.
    pub grep: Option<String>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    pub fn accepts(&self, e: &Entry) -> bool {
        self.since.is_none_or(|t| e.at >= t)
            && self.until.is_none_or(|t| e.at <= t)
            && self.grep.as_deref().is_none_or(|g| e.line.contains(g))
    }
}

/// The last `lines` lines of `path` and its rotated files that `filter` accepts.
pub fn read(path: &Path, max_files: u32, filter: &Filter, lines: usize) -> Vec<Entry> {
    let mut files: Vec<PathBuf> = (1..=max_files)
        .rev()
        .map(|i| PathBuf::from(format!("{}.{i}", path.display())))
        .collect();
    files.push(path.to_path_buf());
    let mut kept = VecDeque::with_capacity(lines.min(4096));
    for file in files {
        let Ok(f) = std::fs::File::open(&file) else {
            continue;
        };
        for line in BufReader::new(f).lines().map_while(Result::ok) {
            let Some(entry) = parse(&line) else {
                continue;
            };
            if !filter.accepts(&entry) {
                continue;
            }
            if kept.len() == lines {
                kept.pop_front();
            }
            if lines > 0 {
                kept.push_back(entry);
            }
        }
    }
    kept.into()
}

/// A log file line (`TS [stderr] text` or `TS text`) back into an entry.
fn parse(line: &str) -> Option<Entry> {
    let (ts, rest) = line.split_once(' ')?;
    let at = humantime::parse_rfc3339(ts).ok()?;
    let (stream, text) = match rest.strip_prefix("[stderr] ") {
        Some(text) => (Stream::Stderr, text),
        None => (Stream::Stdout, rest),
    };
    Some(Entry {
        at,
        stream,
        line: text.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rotated_files_in_order_and_filters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.log");
        let write =
            |p: PathBuf, lines: &[&str]| std::fs::write(p, lines.join("\n") + "\n").unwrap();
        write(
            PathBuf::from(format!("{}.2", path.display())),
            &["2026-01-01T00:00:01.000Z one", "garbage without a time"],
        );
        write(
            PathBuf::from(format!("{}.1", path.display())),
            &[
                "2026-01-01T00:00:02.000Z [stderr] two error",
                "2026-01-01T00:00:03.000Z three",
            ],
        );
        write(path.clone(), &["2026-01-01T00:00:04.000Z four error"]);
        let text = |f: &Filter, n| -> Vec<String> {
            read(&path, 2, f, n).into_iter().map(|e| e.line).collect()
        };
        assert_eq!(
            text(&Filter::default(), 10),
            ["one", "two error", "three", "four error"]
        );
        assert_eq!(text(&Filter::default(), 2), ["three", "four error"]);
        let t = |s| Some(humantime::parse_rfc3339(s).unwrap());
        let range = Filter {
            since: t("2026-01-01T00:00:02Z"),
            until: t("2026-01-01T00:00:03Z"),
            grep: None,
        };
        assert_eq!(text(&range, 10), ["two error", "three"]);
        let grep = Filter {
            grep: Some("error".into()),
            ..Filter::default()
        };
        assert_eq!(text(&grep, 10), ["two error", "four error"]);
        assert_eq!(read(&path, 2, &grep, 10)[0].stream, Stream::Stderr);
        assert!(text(&Filter::default(), 0).is_empty());
        // Fewer rotated files than max_files: the missing ones are skipped.
        assert_eq!(
            text(&Filter::default(), 10).len(),
            read(&path, 5, &Filter::default(), 10).len()
        );
    }
}
