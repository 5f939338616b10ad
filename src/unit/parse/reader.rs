//! Reading the spanned TOML tree key by key.
//!
//! toml parses the document once into `DeTable`/`DeValue`, which carry the
//! byte span of every key and value (a `[header]` table's span is its
//! header, an inline table's its braces). The [`Reader`] turns those values
//! into typed ones and records every problem with its span instead of
//! stopping at the first, which a single serde `from_str` cannot do.

use std::ops::Range;
use std::path::PathBuf;

use serde::de::{Error as _, Unexpected};
use toml::Spanned;
use toml::de::{DeInteger, DeTable, DeValue};

use crate::unit::values::StrOrInt;

/// A value from the document with its span.
pub(super) type Value<'i> = Spanned<DeValue<'i>>;

/// A byte range in the unit file.
pub(super) type Span = Range<usize>;

/// Something wrong at a byte span.
pub(super) struct Problem {
    pub(super) span: Span,
    pub(super) message: String,
}

/// Reads values into typed ones, collecting every problem found.
#[derive(Default)]
pub(super) struct Reader {
    problems: Vec<Problem>,
}

/// A table whose keys are read one by one; unknown keys were reported when
/// it was opened.
pub(super) struct Table<'i> {
    span: Span,
    entries: DeTable<'i>,
}

impl<'i> Table<'i> {
    /// A table with no keys, for an absent section.
    pub(super) fn empty() -> Table<'i> {
        Table {
            span: 0..0,
            entries: DeTable::new(),
        }
    }

    /// Where the table was written: its `[header]`, its `{ ... }`, or for a
    /// table only implied by `[a.b]` or `a.b = ...`, the key naming it.
    pub(super) fn span(&self) -> Span {
        self.span.clone()
    }

    /// Removes and returns the value of `key`.
    pub(super) fn take(&mut self, key: &str) -> Option<Value<'i>> {
        self.take_entry(key).map(|(_, v)| v)
    }

    /// Removes `key`, returning the span of the key and its value.
    pub(super) fn take_entry(&mut self, key: &str) -> Option<(Span, Value<'i>)> {
        self.entries.remove_entry(key).map(|(k, v)| (k.span(), v))
    }
}

/// What a value is, in serde's words ("integer `10`", "sequence"), so type
/// errors read like they did when serde produced them.
fn unexpected(v: &DeValue) -> String {
    match v {
        DeValue::String(s) => Unexpected::Str(s),
        DeValue::Integer(i) => int(i).map_or(Unexpected::Other("integer"), Unexpected::Signed),
        DeValue::Float(f) => f
            .as_str()
            .parse()
            .map_or(Unexpected::Other("floating point"), Unexpected::Float),
        DeValue::Boolean(b) => Unexpected::Bool(*b),
        DeValue::Datetime(_) => Unexpected::Other("datetime"),
        DeValue::Array(_) => Unexpected::Seq,
        DeValue::Table(_) => Unexpected::Map,
    }
    .to_string()
}

fn int(i: &DeInteger) -> Option<i64> {
    i64::from_str_radix(i.as_str(), i.radix()).ok()
}

impl Reader {
    /// Records a problem.
    pub(super) fn report(&mut self, span: Span, message: impl Into<String>) {
        self.problems.push(Problem {
            span,
            message: message.into(),
        });
    }

    /// Everything recorded, in file order, without repeats.
    pub(super) fn into_problems(self) -> Vec<Problem> {
        let mut problems = self.problems;
        problems.sort_by(|a, b| (a.span.start, &a.message).cmp(&(b.span.start, &b.message)));
        problems.dedup_by(|a, b| a.span.start == b.span.start && a.message == b.message);
        problems
    }

    fn invalid_type(&mut self, v: &Value, expected: &str) {
        let message = format!(
            "invalid type: {}, expected {expected}",
            unexpected(v.get_ref())
        );
        self.report(v.span(), message);
    }

    /// `v` as a table with the keys `known` (in the order messages list
    /// them); every other key is reported as unknown.
    pub(super) fn table<'i>(
        &mut self,
        v: Option<Value<'i>>,
        known: &'static [&'static str],
    ) -> Option<Table<'i>> {
        let v = v?;
        let span = v.span();
        let mut entries = self.table_value(v)?;
        let unknown: Vec<(Span, String)> = entries
            .keys()
            .filter(|key| !known.contains(&key.get_ref().as_ref()))
            .map(|key| (key.span(), key.get_ref().to_string()))
            .collect();
        for (at, key) in unknown {
            let message = serde::de::value::Error::unknown_field(&key, known);
            self.report(at, message.to_string());
            entries.remove(key.as_str());
        }
        Some(Table { span, entries })
    }

    /// `v` as a table whose keys are free-form (env, join, rlimits), at
    /// most `max` of them.
    pub(super) fn entries<'i>(
        &mut self,
        v: Option<Value<'i>>,
        what: &str,
        max: usize,
    ) -> Option<Vec<(Spanned<String>, Value<'i>)>> {
        let v = v?;
        let span = v.span();
        let entries = self.table_value(v)?;
        self.within(span, what, entries.len(), max)?;
        let entries = entries.into_iter().map(|(k, v)| {
            let key = Spanned::new(k.span(), k.into_inner().into_owned());
            (key, v)
        });
        Some(entries.collect())
    }

    /// `v` as an array of at most `max` values; `expected` describes the
    /// whole array for type errors, `what` names it for the length error.
    pub(super) fn array<'i>(
        &mut self,
        v: Option<Value<'i>>,
        expected: &str,
        what: &str,
        max: usize,
    ) -> Option<Spanned<Vec<Value<'i>>>> {
        let v = v?;
        let span = v.span();
        let items = match v.into_inner() {
            DeValue::Array(items) => items,
            other => {
                self.invalid_type(&Spanned::new(span, other), expected);
                return None;
            }
        };
        self.within(span.clone(), what, items.len(), max)?;
        Some(Spanned::new(span, items.into_iter().collect()))
    }

    /// `Some` when a list of `len` entries respects its cap `max`.
    fn within(&mut self, span: Span, what: &str, len: usize, max: usize) -> Option<()> {
        if len > max {
            let message = format!("{what} has {len} entries: at most {max} are allowed");
            self.report(span, message);
            return None;
        }
        Some(())
    }

    /// A string value.
    pub(super) fn string(&mut self, v: Option<Value>) -> Option<Spanned<String>> {
        let v = v?;
        match v.get_ref() {
            DeValue::String(s) => Some(Spanned::new(v.span(), s.to_string())),
            _ => {
                self.invalid_type(&v, "a string");
                None
            }
        }
    }

    /// A string value taken as an absolute path; `what` names it in the
    /// error ("workdir", "mount source").
    pub(super) fn absolute_path(
        &mut self,
        v: Option<Value>,
        what: &str,
    ) -> Option<Spanned<PathBuf>> {
        let s = self.string(v)?;
        let path = PathBuf::from(s.get_ref());
        if !path.is_absolute() {
            self.report(
                s.span(),
                format!("{what} {path:?} must be an absolute path"),
            );
            return None;
        }
        Some(Spanned::new(s.span(), path))
    }

    /// `v`, or `None` after reporting `missing` at `at`.
    pub(super) fn required<'i>(
        &mut self,
        v: Option<Value<'i>>,
        at: &Span,
        missing: &str,
    ) -> Option<Value<'i>> {
        if v.is_none() {
            self.report(at.clone(), missing);
        }
        v
    }

    /// A boolean value.
    pub(super) fn boolean(&mut self, v: Option<Value>) -> Option<Spanned<bool>> {
        let v = v?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(Spanned::new(v.span(), *b)),
            _ => {
                self.invalid_type(&v, "a boolean");
                None
            }
        }
    }

    /// An integer in `lo..=hi`; `what` names it in the range error.
    pub(super) fn int_in(
        &mut self,
        v: Option<Value>,
        lo: i64,
        hi: i64,
        what: &str,
    ) -> Option<Spanned<i64>> {
        let n = self.scalar(v, "an integer", |v| match v {
            StrOrInt::Int(n) => Ok(n),
            StrOrInt::Str(s) => Err(format!("invalid type: string {s:?}, expected an integer")),
        })?;
        let value = *n.get_ref();
        if (lo..=hi).contains(&value) {
            Some(n)
        } else {
            self.report(
                n.span(),
                format!(
                    "{what} {value} is out of range: expected an integer between {lo} and {hi}"
                ),
            );
            None
        }
    }

    /// A string or integer turned into `T` by `parse`; `expected` says what
    /// the key takes, for values of another type.
    pub(super) fn scalar<T>(
        &mut self,
        v: Option<Value>,
        expected: &str,
        parse: impl FnOnce(StrOrInt) -> Result<T, String>,
    ) -> Option<Spanned<T>> {
        let v = v?;
        let raw = match v.get_ref() {
            DeValue::String(s) => StrOrInt::Str(s),
            DeValue::Integer(i) => match int(i) {
                Some(n) => StrOrInt::Int(n),
                None => {
                    let message = format!(
                        "integer {i} is out of range: TOML integers are 64-bit; expected {expected}"
                    );
                    self.report(v.span(), message);
                    return None;
                }
            },
            _ => {
                self.invalid_type(&v, expected);
                return None;
            }
        };
        match parse(raw) {
            Ok(t) => Some(Spanned::new(v.span(), t)),
            Err(message) => {
                self.report(v.span(), message);
                None
            }
        }
    }

    /// Every element of an array through `read`, dropping the bad ones.
    pub(super) fn each<'i, T>(
        &mut self,
        items: Vec<Value<'i>>,
        mut read: impl FnMut(&mut Self, Value<'i>) -> Option<T>,
    ) -> Vec<T> {
        items.into_iter().filter_map(|v| read(self, v)).collect()
    }

    /// The entries if `v` is a table; otherwise a type error.
    fn table_value<'i>(&mut self, v: Value<'i>) -> Option<DeTable<'i>> {
        let span = v.span();
        match v.into_inner() {
            DeValue::Table(entries) => Some(entries),
            other => {
                self.invalid_type(&Spanned::new(span, other), "a table");
                None
            }
        }
    }
}
