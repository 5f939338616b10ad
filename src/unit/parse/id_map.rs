//! `userns_base`, `uid_map` and `gid_map` of `[container]`.

use super::container::NsContext;
use super::limits;
use super::reader::{Reader, Span, Value};
use crate::unit::isolation::{IdMapRange, Namespace};

/// Ids covered by `userns_base`.
const USERNS_BASE_COUNT: u32 = 65536;
const ID_MAP_KEYS: &[&str] = &["inside", "outside", "count"];

/// The three keys as written, any of them absent.
pub(super) struct Written<'i> {
    pub(super) base: Option<Value<'i>>,
    pub(super) uid_map: Option<Value<'i>>,
    pub(super) gid_map: Option<Value<'i>>,
}

/// Resolves the maps and checks them against the user namespace. `user_at`
/// is where to report a missing map.
pub(super) fn read_id_maps(
    ns: &NsContext,
    user_at: Span,
    written: Written,
    r: &mut Reader,
) -> (Vec<IdMapRange>, Vec<IdMapRange>) {
    let keys = [
        ("userns_base", &written.base),
        ("uid_map", &written.uid_map),
        ("gid_map", &written.gid_map),
    ];
    for (key, value) in keys {
        if let Some(v) = value {
            ns.check(Namespace::User, key, v.span(), r);
        }
    }
    let created = ns.created.contains(&Namespace::User);

    if let Some(base) = written.base {
        if written.uid_map.is_some() || written.gid_map.is_some() {
            r.report(
                base.span(),
                "userns_base is a shorthand for uid_map and gid_map; write either userns_base or the maps, not both",
            );
        }
        let max = i64::from(u32::MAX) - i64::from(USERNS_BASE_COUNT) + 1;
        let Some(outside) = r.int_in(Some(base), 0, max, "userns_base") else {
            return (Vec::new(), Vec::new());
        };
        let range = IdMapRange {
            inside: 0,
            outside: *outside.get_ref() as u32,
            count: USERNS_BASE_COUNT,
        };
        return (vec![range], vec![range]);
    }

    let mut maps = Vec::new();
    for (key, value) in [("uid_map", written.uid_map), ("gid_map", written.gid_map)] {
        if created && value.is_none() {
            r.report(
                user_at.clone(),
                format!(
                    "a created user namespace needs uid_map and gid_map, but {key} is missing: \
                     add e.g. {key} = [{{ inside = 0, outside = 100000, count = 65536 }}], \
                     or userns_base = 100000 for both"
                ),
            );
        }
        maps.push(read_map(key, value, r));
    }
    let gids = maps.pop().unwrap_or_default();
    let uids = maps.pop().unwrap_or_default();
    (uids, gids)
}

/// One range with the spans of its fields, for overlap errors.
struct Entry {
    range: IdMapRange,
    inside_at: Span,
    outside_at: Span,
}

/// Checks ranges, overflow, overlaps and the kernel's line limit.
fn read_map(key: &str, v: Option<Value>, r: &mut Reader) -> Vec<IdMapRange> {
    let expected = "an array of { inside, outside, count } tables";
    let kernel_max = limits::ID_MAP_RANGES;
    let Some(list) = r.array(v, expected, key, limits::LIST) else {
        return Vec::new();
    };
    let span = list.span();
    let entries = list.into_inner();
    if entries.is_empty() {
        let message = format!(
            "{key} must not be empty: list at least one {{ inside, outside, count }} range"
        );
        r.report(span.clone(), message);
    }
    if entries.len() > kernel_max {
        let n = entries.len();
        let message = format!("{key} has {n} ranges: the kernel accepts at most {kernel_max}");
        r.report(span, message);
        return Vec::new();
    }
    let mut ranges: Vec<Entry> = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let Some(e) = read_range(key, i, entry, r) else {
            continue;
        };
        for earlier in &ranges {
            overlap(key, i, &e, earlier, r);
        }
        ranges.push(e);
    }
    ranges.into_iter().map(|e| e.range).collect()
}

fn read_range(key: &str, i: usize, v: Value, r: &mut Reader) -> Option<Entry> {
    let at = v.span();
    let mut t = r.table(Some(v), ID_MAP_KEYS)?;
    let max_id = i64::from(u32::MAX);
    let mut field = |name: &str, lo: i64, r: &mut Reader| {
        let value = t.take(name);
        if value.is_none() {
            r.report(at.clone(), format!("{key}[{i}] is missing {name}"));
        }
        r.int_in(value, lo, max_id, &format!("{key}[{i}].{name}"))
    };
    let inside = field("inside", 0, r);
    let outside = field("outside", 0, r);
    let count = field("count", 1, r);
    let (inside, outside, count) = (inside?, outside?, count?);
    let n = *count.get_ref();
    let mut fits = true;
    for (side, start) in [
        ("inside", *inside.get_ref()),
        ("outside", *outside.get_ref()),
    ] {
        if start + n > max_id + 1 {
            fits = false;
            r.report(
                count.span(),
                format!(
                    "{key}[{i}]: {side} {start} + count {n} goes past 4294967296 (ids are 32-bit): lower count or {side}"
                ),
            );
        }
    }
    fits.then(|| Entry {
        range: IdMapRange {
            inside: *inside.get_ref() as u32,
            outside: *outside.get_ref() as u32,
            count: n as u32,
        },
        inside_at: inside.span(),
        outside_at: outside.span(),
    })
}

fn overlap(key: &str, i: usize, e: &Entry, earlier: &Entry, r: &mut Reader) {
    let (range, old) = (e.range, earlier.range);
    for (side, a, b, at) in [
        ("inside", range.inside, old.inside, &e.inside_at),
        ("outside", range.outside, old.outside, &e.outside_at),
    ] {
        let (a, b) = (u64::from(a), u64::from(b));
        let (n, m) = (u64::from(range.count), u64::from(old.count));
        if a < b + m && b < a + n {
            r.report(
                at.clone(),
                format!(
                    "{key} ranges overlap on the {side} side: {key}[{i}] covers {a}..={} and an earlier range covers {b}..={}: every id may be mapped only once",
                    a + n - 1,
                    b + m - 1
                ),
            );
        }
    }
}
