//! `[container]` and top-level `[[mount]]` -> [`ContainerSpec`].
//!
//! Same two stages as the rest of the parser: serde rejects unknown keys and
//! malformed scalars (namespace, capability, propagation and rlimit values
//! have their own deserialisers), then the checks that involve more than one
//! value run on `Spanned` values so errors still point at the right place.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use toml::Spanned;

use super::{Problem, SizeValue, in_range, section_span};
use crate::unit::container::{
    ContainerSpec, IdMapRange, MountKind, MountSpec, Namespace, Propagation, Rlimit,
};

/// Kernel limit on lines in `/proc/<pid>/uid_map` (since Linux 4.15).
const MAX_ID_MAP_RANGES: usize = 340;
/// Ids covered by `userns_base`.
const USERNS_BASE_COUNT: u32 = 65536;
/// Longest hostname/domainname accepted (`__NEW_UTS_LEN`).
const MAX_UTS_NAME_LEN: usize = 64;
/// `type` values of `[[mount]]`.
const MOUNT_TYPES: &str = r#""bind", "tmpfs", "proc", "sysfs", "dev", "overlay""#;

// ---------------------------------------------------------------------------
// Raw serde structs
// ---------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawContainer {
    namespaces: Option<Vec<Spanned<NamespaceValue>>>,
    join: Option<BTreeMap<Spanned<String>, Spanned<PathBuf>>>,
    hostname: Option<Spanned<String>>,
    domainname: Option<Spanned<String>>,
    uid_map: Option<Spanned<Vec<Spanned<RawIdMap>>>>,
    gid_map: Option<Spanned<Vec<Spanned<RawIdMap>>>>,
    userns_base: Option<Spanned<i64>>,
    rootfs: Option<Spanned<PathBuf>>,
    readonly_root: Option<Spanned<bool>>,
    root_propagation: Option<Spanned<PropagationValue>>,
    init: Option<bool>,
    capabilities: Option<Vec<CapabilityValue>>,
    no_new_privs: Option<bool>,
    seccomp: Option<bool>,
    rlimits: Option<BTreeMap<Spanned<String>, RlimitValue>>,
    oom_score_adj: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdMap {
    inside: Spanned<i64>,
    outside: Spanned<i64>,
    count: Spanned<i64>,
}

/// A flat `[[mount]]` table: every key of every type, checked per type in
/// [`build_mount`] so that a key of the wrong type gets a precise message.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMount {
    #[serde(rename = "type")]
    kind: Option<Spanned<String>>,
    source: Option<Spanned<PathBuf>>,
    target: Option<Spanned<PathBuf>>,
    readonly: Option<bool>,
    recursive: Option<Spanned<bool>>,
    nosuid: Option<bool>,
    nodev: Option<bool>,
    noexec: Option<bool>,
    propagation: Option<PropagationValue>,
    size: Option<Spanned<SizeValue>>,
    mode: Option<Spanned<ModeValue>>,
    lower: Option<Spanned<Vec<Spanned<PathBuf>>>>,
}

// ---------------------------------------------------------------------------
// Value deserialisers
// ---------------------------------------------------------------------------

/// Lists the valid namespace names for error messages.
fn namespace_names() -> String {
    Namespace::ALL
        .iter()
        .map(|ns| format!("{:?}", ns.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unknown_namespace(name: &str) -> String {
    format!(
        "unknown namespace {name:?}: expected one of {}",
        namespace_names()
    )
}

struct NamespaceValue(Namespace);

impl<'de> Deserialize<'de> for NamespaceValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NamespaceValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a namespace name, one of {}", namespace_names())
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<NamespaceValue, E> {
                Namespace::from_name(s)
                    .map(NamespaceValue)
                    .ok_or_else(|| E::custom(unknown_namespace(s)))
            }
        }
        d.deserialize_any(V)
    }
}

const PROPAGATION_EXPECTED: &str = r#"one of "private", "slave", "shared", "unbindable""#;

struct PropagationValue(Propagation);

impl<'de> Deserialize<'de> for PropagationValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PropagationValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(PROPAGATION_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PropagationValue, E> {
                let p = match s {
                    "private" => Propagation::Private,
                    "slave" => Propagation::Slave,
                    "shared" => Propagation::Shared,
                    "unbindable" => Propagation::Unbindable,
                    other => {
                        return Err(E::custom(format!(
                            "unknown propagation {other:?}: expected {PROPAGATION_EXPECTED}"
                        )));
                    }
                };
                Ok(PropagationValue(p))
            }
        }
        d.deserialize_any(V)
    }
}

const CAPABILITY_EXPECTED: &str =
    r#"a capability name from capabilities(7) like "net_bind_service" or "CAP_NET_BIND_SERVICE""#;

/// A capability, stored under its canonical `CAP_*` name.
struct CapabilityValue(String);

impl<'de> Deserialize<'de> for CapabilityValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = CapabilityValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(CAPABILITY_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<CapabilityValue, E> {
                let upper = s.to_ascii_uppercase();
                let name = if upper.starts_with("CAP_") {
                    upper
                } else {
                    format!("CAP_{upper}")
                };
                caps::Capability::from_str(&name)
                    .map(|c| CapabilityValue(c.to_string()))
                    .map_err(|_| {
                        E::custom(format!(
                            "unknown capability {s:?}: expected {CAPABILITY_EXPECTED}"
                        ))
                    })
            }
        }
        d.deserialize_any(V)
    }
}

const RLIMIT_EXPECTED: &str =
    r#"an integer (soft = hard), "unlimited", or a [soft, hard] pair like [1024, 4096]"#;

/// `1024`, `"unlimited"` or `[soft, hard]` (each an integer or "unlimited").
struct RlimitValue(Rlimit);

/// One side of an rlimit pair.
struct RlimitBound(u64);

fn rlimit_number<E: de::Error>(n: i64) -> Result<u64, E> {
    u64::try_from(n).map_err(|_| {
        E::custom(format!(
            "invalid rlimit {n}: limits cannot be negative; expected {RLIMIT_EXPECTED}"
        ))
    })
}

fn rlimit_str<E: de::Error>(s: &str) -> Result<u64, E> {
    if s == "unlimited" {
        Ok(Rlimit::UNLIMITED)
    } else {
        Err(E::custom(format!(
            "invalid rlimit {s:?}: expected {RLIMIT_EXPECTED}"
        )))
    }
}

fn show_limit(n: u64) -> String {
    if n == Rlimit::UNLIMITED {
        "unlimited".to_owned()
    } else {
        n.to_string()
    }
}

impl<'de> Deserialize<'de> for RlimitBound {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RlimitBound;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a non-negative integer or "unlimited""#)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<RlimitBound, E> {
                rlimit_number(n).map(RlimitBound)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RlimitBound, E> {
                rlimit_str(s).map(RlimitBound)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for RlimitValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RlimitValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(RLIMIT_EXPECTED)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<RlimitValue, E> {
                let n = rlimit_number(n)?;
                Ok(RlimitValue(Rlimit { soft: n, hard: n }))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RlimitValue, E> {
                let n = rlimit_str(s)?;
                Ok(RlimitValue(Rlimit { soft: n, hard: n }))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RlimitValue, A::Error> {
                let wrong_len = || {
                    de::Error::custom(format!(
                        "an rlimit pair needs exactly two values [soft, hard]; expected {RLIMIT_EXPECTED}"
                    ))
                };
                let soft = seq.next_element::<RlimitBound>()?.ok_or_else(wrong_len)?.0;
                let hard = seq.next_element::<RlimitBound>()?.ok_or_else(wrong_len)?.0;
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(wrong_len());
                }
                if soft > hard {
                    return Err(de::Error::custom(format!(
                        "soft limit {} is above hard limit {}: the soft limit must be <= the hard limit",
                        show_limit(soft),
                        show_limit(hard)
                    )));
                }
                Ok(RlimitValue(Rlimit { soft, hard }))
            }
        }
        d.deserialize_any(V)
    }
}

/// Octal mode of a tmpfs root, `"1777"`.
struct ModeValue(u32);

impl<'de> Deserialize<'de> for ModeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(super::OctalVisitor {
            max: 0o7777,
            what: "mode",
        })
        .map(ModeValue)
    }
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

/// Everything the checks need to know about what is created or joined.
struct NsContext {
    created: BTreeSet<Namespace>,
    joined: BTreeSet<Namespace>,
}

impl NsContext {
    /// `None` when `ns` is created; otherwise what to tell the user.
    fn require(&self, ns: Namespace, what: &str) -> Option<String> {
        if self.created.contains(&ns) {
            return None;
        }
        let name = ns.as_str();
        let why = if self.joined.contains(&ns) {
            format!("the {name} namespace is joined, not created")
        } else {
            format!("namespaces does not include {name:?}")
        };
        Some(format!(
            "{what} needs a {name} namespace created by the unit, but {why}: add {name:?} to [container] namespaces"
        ))
    }
}

/// Builds the container spec. `header` is where `[container]` was written
/// (for errors about the section as a whole).
pub(super) fn build_container(
    text: &str,
    raw: Option<Spanned<RawContainer>>,
    mounts: Vec<Spanned<RawMount>>,
    problems: &mut Vec<Problem>,
) -> ContainerSpec {
    let defaults = ContainerSpec::default();
    let (raw, header) = match raw {
        Some(r) => {
            let header = section_span(text, "container", r.span());
            (r.into_inner(), header)
        }
        None => (RawContainer::default(), 0..0),
    };

    let explicit_namespaces = raw.namespaces.is_some();
    let user_entry = raw.namespaces.as_ref().and_then(|list| {
        list.iter()
            .find(|ns| ns.get_ref().0 == Namespace::User)
            .map(Spanned::span)
    });
    let created: BTreeSet<Namespace> = match raw.namespaces {
        Some(list) => list.into_iter().map(|ns| ns.into_inner().0).collect(),
        None => defaults.namespaces.clone(),
    };
    let join = build_join(raw.join, &created, explicit_namespaces, problems);
    let ns = NsContext {
        joined: join.keys().copied().collect(),
        created,
    };

    let (uid_map, gid_map) = build_id_maps(
        &ns,
        user_entry.unwrap_or(header.clone()),
        raw.userns_base,
        raw.uid_map,
        raw.gid_map,
        problems,
    );

    let hostname = check_uts_name("hostname", raw.hostname, &ns, problems);
    let domainname = check_uts_name("domainname", raw.domainname, &ns, problems);

    let rootfs = raw.rootfs.and_then(|r| {
        if let Some(msg) = ns.require(Namespace::Mnt, "rootfs") {
            problems.push(Problem::at(r.span(), msg));
        }
        if r.get_ref().is_absolute() {
            Some(r.into_inner())
        } else {
            let msg = format!("rootfs {:?} must be an absolute path", r.get_ref());
            problems.push(Problem::at(r.span(), msg));
            None
        }
    });
    let readonly_root = raw.readonly_root.is_some_and(|r| {
        if *r.get_ref()
            && let Some(msg) = ns.require(Namespace::Mnt, "readonly_root = true")
        {
            problems.push(Problem::at(r.span(), msg));
        }
        *r.get_ref()
    });
    let root_propagation = raw.root_propagation.map_or(Propagation::Private, |p| {
        if let Some(msg) = ns.require(Namespace::Mnt, "root_propagation") {
            problems.push(Problem::at(p.span(), msg));
        }
        p.into_inner().0
    });

    let rlimits = raw
        .rlimits
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, value)| {
            if ContainerSpec::RLIMIT_NAMES.contains(&name.get_ref().as_str()) {
                Some((name.into_inner(), value.0))
            } else {
                problems.push(Problem::at(
                    name.span(),
                    format!(
                        "unknown rlimit {:?}: expected one of {}",
                        name.get_ref(),
                        ContainerSpec::RLIMIT_NAMES.join(", ")
                    ),
                ));
                None
            }
        })
        .collect();
    let oom_score_adj = raw
        .oom_score_adj
        .and_then(|n| in_range(&n, -1000, 1000, "oom_score_adj", problems))
        .map(|n| n as i32);

    let mounts = build_mounts(text, mounts, &ns, problems);

    ContainerSpec {
        namespaces: ns.created,
        join,
        hostname,
        domainname,
        uid_map,
        gid_map,
        rootfs,
        readonly_root,
        root_propagation,
        init: raw.init.unwrap_or(defaults.init),
        capabilities: raw.capabilities.map_or(defaults.capabilities, |list| {
            list.into_iter().map(|c| c.0).collect()
        }),
        no_new_privs: raw.no_new_privs.unwrap_or(defaults.no_new_privs),
        seccomp: raw.seccomp.unwrap_or(defaults.seccomp),
        rlimits,
        oom_score_adj,
        mounts,
    }
}

fn build_join(
    raw: Option<BTreeMap<Spanned<String>, Spanned<PathBuf>>>,
    created: &BTreeSet<Namespace>,
    explicit_namespaces: bool,
    problems: &mut Vec<Problem>,
) -> BTreeMap<Namespace, PathBuf> {
    let mut join = BTreeMap::new();
    for (key, path) in raw.unwrap_or_default() {
        let Some(ns) = Namespace::from_name(key.get_ref()) else {
            let msg = format!("{} in [container.join]", unknown_namespace(key.get_ref()));
            problems.push(Problem::at(key.span(), msg));
            continue;
        };
        if created.contains(&ns) {
            let name = ns.as_str();
            let how = if explicit_namespaces {
                format!("remove {name:?} from namespaces or from [container.join]")
            } else {
                let defaults: Vec<&str> = Namespace::DEFAULTS.iter().map(|n| n.as_str()).collect();
                format!(
                    "it is created by default (namespaces defaults to [{}]); write namespaces without {name:?}",
                    defaults.join(", ")
                )
            };
            problems.push(Problem::at(
                key.span(),
                format!("the {name} namespace cannot be both created and joined: {how}"),
            ));
        }
        if !path.get_ref().is_absolute() {
            let msg = format!(
                "[container.join] {} path {:?} must be an absolute path",
                ns.as_str(),
                path.get_ref()
            );
            problems.push(Problem::at(path.span(), msg));
            continue;
        }
        join.insert(ns, path.into_inner());
    }
    join
}

/// Resolves `userns_base` / `uid_map` / `gid_map` and checks them against
/// the user namespace. `user_at` is where to report a missing map.
fn build_id_maps(
    ns: &NsContext,
    user_at: Range<usize>,
    base: Option<Spanned<i64>>,
    uid_map: Option<Spanned<Vec<Spanned<RawIdMap>>>>,
    gid_map: Option<Spanned<Vec<Spanned<RawIdMap>>>>,
    problems: &mut Vec<Problem>,
) -> (Vec<IdMapRange>, Vec<IdMapRange>) {
    // Every map-related key that was written, for "needs a user namespace".
    let mut written: Vec<(&str, Range<usize>)> = Vec::new();
    if let Some(b) = &base {
        written.push(("userns_base", b.span()));
    }
    if let Some(m) = &uid_map {
        written.push(("uid_map", m.span()));
    }
    if let Some(m) = &gid_map {
        written.push(("gid_map", m.span()));
    }
    let created = ns.created.contains(&Namespace::User);
    if !created {
        for (key, span) in &written {
            if let Some(msg) = ns.require(Namespace::User, key) {
                problems.push(Problem::at(span.clone(), msg));
            }
        }
    }

    if let Some(base) = base {
        if uid_map.is_some() || gid_map.is_some() {
            problems.push(Problem::at(
                base.span(),
                "userns_base is a shorthand for uid_map and gid_map; write either userns_base or the maps, not both",
            ));
        }
        let max = i64::from(u32::MAX) - i64::from(USERNS_BASE_COUNT) + 1;
        let Some(outside) = in_range(&base, 0, max, "userns_base", problems) else {
            return (Vec::new(), Vec::new());
        };
        let range = IdMapRange {
            inside: 0,
            outside: outside as u32,
            count: USERNS_BASE_COUNT,
        };
        return (vec![range], vec![range]);
    }

    let uids = check_id_map("uid_map", uid_map, problems);
    let gids = check_id_map("gid_map", gid_map, problems);
    if created {
        for (key, map) in [("uid_map", &uids), ("gid_map", &gids)] {
            if map.is_empty() && !written.iter().any(|(k, _)| k == &key) {
                problems.push(Problem::at(
                    user_at.clone(),
                    format!(
                        "a created user namespace needs uid_map and gid_map, but {key} is missing: \
                         add e.g. {key} = [{{ inside = 0, outside = 100000, count = 65536 }}], \
                         or userns_base = 100000 for both"
                    ),
                ));
            }
        }
    }
    (uids, gids)
}

/// Checks ranges, overflow, overlaps and the kernel's line limit.
fn check_id_map(
    key: &str,
    raw: Option<Spanned<Vec<Spanned<RawIdMap>>>>,
    problems: &mut Vec<Problem>,
) -> Vec<IdMapRange> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    let span = raw.span();
    let entries = raw.into_inner();
    if entries.is_empty() {
        problems.push(Problem::at(
            span.clone(),
            format!(
                "{key} must not be empty: list at least one {{ inside, outside, count }} range"
            ),
        ));
    }
    if entries.len() > MAX_ID_MAP_RANGES {
        problems.push(Problem::at(
            span,
            format!(
                "{key} has {} ranges: the kernel accepts at most {MAX_ID_MAP_RANGES}",
                entries.len()
            ),
        ));
    }
    let max_id = i64::from(u32::MAX);
    let mut ranges: Vec<IdMapRange> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let e = entry.get_ref();
        let what = |field: &str| format!("{key}[{i}].{field}");
        let inside = in_range(&e.inside, 0, max_id, &what("inside"), problems);
        let outside = in_range(&e.outside, 0, max_id, &what("outside"), problems);
        let count = in_range(&e.count, 1, max_id, &what("count"), problems);
        let (Some(inside), Some(outside), Some(count)) = (inside, outside, count) else {
            continue;
        };
        let mut fits = true;
        for (side, start) in [("inside", inside), ("outside", outside)] {
            if start + count > max_id + 1 {
                fits = false;
                problems.push(Problem::at(
                    e.count.span(),
                    format!(
                        "{key}[{i}]: {side} {start} + count {count} goes past 4294967296 (ids are 32-bit): lower count or {side}"
                    ),
                ));
            }
        }
        if !fits {
            continue;
        }
        let range = IdMapRange {
            inside: inside as u32,
            outside: outside as u32,
            count: count as u32,
        };
        for earlier in &ranges {
            for (side, a, b, at) in [
                ("inside", range.inside, earlier.inside, e.inside.span()),
                ("outside", range.outside, earlier.outside, e.outside.span()),
            ] {
                let (a, b) = (u64::from(a), u64::from(b));
                let (n, m) = (u64::from(range.count), u64::from(earlier.count));
                if a < b + m && b < a + n {
                    problems.push(Problem::at(
                        at,
                        format!(
                            "{key} ranges overlap on the {side} side: {key}[{i}] covers {a}..={} and an earlier range covers {b}..={}: every id may be mapped only once",
                            a + n - 1,
                            b + m - 1
                        ),
                    ));
                }
            }
        }
        ranges.push(range);
    }
    ranges
}

/// hostname/domainname: RFC 1123 characters, 1..=64 bytes, UTS created.
fn check_uts_name(
    key: &str,
    raw: Option<Spanned<String>>,
    ns: &NsContext,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    let raw = raw?;
    let name = raw.get_ref();
    if let Some(msg) = ns.require(Namespace::Uts, key) {
        problems.push(Problem::at(raw.span(), msg));
    }
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if name.is_empty() || name.len() > MAX_UTS_NAME_LEN || !ok_chars {
        problems.push(Problem::at(
            raw.span(),
            format!(
                "invalid {key} {name:?}: expected 1 to {MAX_UTS_NAME_LEN} characters from A-Z, a-z, 0-9, '-' and '.'"
            ),
        ));
        return None;
    }
    Some(raw.into_inner())
}

// ---------------------------------------------------------------------------
// Mounts
// ---------------------------------------------------------------------------

fn build_mounts(
    text: &str,
    raw: Vec<Spanned<RawMount>>,
    ns: &NsContext,
    problems: &mut Vec<Problem>,
) -> Vec<MountSpec> {
    let headers = mount_headers(text);
    let mut mounts = Vec::new();
    for (i, m) in raw.into_iter().enumerate() {
        let header = headers.get(i).cloned().unwrap_or(m.span());
        if i == 0
            && let Some(msg) = ns.require(Namespace::Mnt, "[[mount]]")
        {
            problems.push(Problem::at(header.clone(), msg));
        }
        if let Some(mount) = build_mount(text, header, m.into_inner(), problems) {
            mounts.push(mount);
        }
    }
    mounts
}

/// Byte ranges of the `[[mount]]` headers, in file order. toml reports an
/// array-of-tables entry's span as its body, which is less useful for
/// "missing key" errors than the header.
fn mount_headers(text: &str) -> Vec<Range<usize>> {
    let mut offset = 0;
    let mut headers = Vec::new();
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("[[")
            && rest.trim_start().starts_with("mount")
            && rest.trim_start()["mount".len()..]
                .trim_start()
                .starts_with("]]")
        {
            let start = offset + (line.len() - trimmed.len());
            let end = start + trimmed.trim_end().len();
            headers.push(start..end);
        }
        offset += line.len();
    }
    headers
}

/// Where a key was written, given its value's span: `key = value` on the
/// same line. Falls back to the value's span.
fn key_span(text: &str, value: Range<usize>, key: &str) -> Range<usize> {
    let before = text[..value.start].trim_end();
    before
        .strip_suffix('=')
        .map(str::trim_end)
        .filter(|k| k.ends_with(key))
        .map_or(value, |k| k.len() - key.len()..k.len())
}

fn build_mount(
    text: &str,
    header: Range<usize>,
    raw: RawMount,
    problems: &mut Vec<Problem>,
) -> Option<MountSpec> {
    let target = check_target(raw.target, &header, problems);
    let Some(kind_name) = raw.kind else {
        problems.push(Problem::at(
            header,
            format!("missing type in [[mount]]: expected type = one of {MOUNT_TYPES}"),
        ));
        return None;
    };
    let ty = kind_name.get_ref().as_str();
    if !matches!(ty, "bind" | "tmpfs" | "proc" | "sysfs" | "dev" | "overlay") {
        problems.push(Problem::at(
            kind_name.span(),
            format!("unknown mount type {ty:?}: expected one of {MOUNT_TYPES}"),
        ));
        return None;
    }

    // Keys that belong to a single type.
    let specific = [
        ("source", "bind", raw.source.as_ref().map(Spanned::span)),
        (
            "recursive",
            "bind",
            raw.recursive.as_ref().map(Spanned::span),
        ),
        ("size", "tmpfs", raw.size.as_ref().map(Spanned::span)),
        ("mode", "tmpfs", raw.mode.as_ref().map(Spanned::span)),
        ("lower", "overlay", raw.lower.as_ref().map(Spanned::span)),
    ];
    let mut wrong_key = false;
    for (key, owner, span) in specific {
        if let Some(span) = span
            && owner != ty
        {
            wrong_key = true;
            problems.push(Problem::at(
                key_span(text, span, key),
                format!(
                    "{key} is only valid for type = {owner:?} (this mount has type = {ty:?}): remove it"
                ),
            ));
        }
    }

    let kind = match ty {
        "bind" => {
            let source = match raw.source {
                None => {
                    problems.push(Problem::at(
                        header.clone(),
                        "missing source in [[mount]] with type = \"bind\": expected the absolute host path to bind, e.g. source = \"/srv/data\"",
                    ));
                    None
                }
                Some(s) if !s.get_ref().is_absolute() => {
                    let msg = format!("mount source {:?} must be an absolute path", s.get_ref());
                    problems.push(Problem::at(s.span(), msg));
                    None
                }
                Some(s) => Some(s.into_inner()),
            };
            MountKind::Bind {
                source: source?,
                recursive: raw.recursive.is_none_or(Spanned::into_inner),
            }
        }
        "tmpfs" => {
            let size = raw.size.and_then(|s| {
                let bytes = s.get_ref().0;
                if bytes == 0 {
                    problems.push(Problem::at(
                        s.span(),
                        "tmpfs size must be at least 1 byte: omit size for the kernel default (half of RAM)",
                    ));
                    None
                } else {
                    Some(bytes)
                }
            });
            MountKind::Tmpfs {
                size,
                mode: raw.mode.map(|m| m.into_inner().0),
            }
        }
        "proc" => MountKind::Proc,
        "sysfs" => MountKind::Sysfs,
        "dev" => MountKind::Dev,
        _ => {
            let Some(lower) = raw.lower else {
                problems.push(Problem::at(
                    header.clone(),
                    "missing lower in [[mount]] with type = \"overlay\": expected the absolute lower directories, e.g. lower = [\"/srv/base\"]",
                ));
                return None;
            };
            if lower.get_ref().is_empty() {
                problems.push(Problem::at(
                    lower.span(),
                    "lower must not be empty: list at least one absolute directory",
                ));
            }
            let mut dirs = Vec::new();
            for dir in lower.into_inner() {
                if dir.get_ref().is_absolute() {
                    dirs.push(dir.into_inner());
                } else {
                    let msg = format!("overlay lower {:?} must be an absolute path", dir.get_ref());
                    problems.push(Problem::at(dir.span(), msg));
                }
            }
            MountKind::Overlay { lower: dirs }
        }
    };
    if wrong_key {
        return None;
    }
    Some(MountSpec {
        kind,
        target: target?,
        readonly: raw.readonly.unwrap_or(false),
        nosuid: raw.nosuid.unwrap_or(false),
        nodev: raw.nodev.unwrap_or(false),
        noexec: raw.noexec.unwrap_or(false),
        propagation: raw.propagation.map(|p| p.0),
    })
}

fn check_target(
    target: Option<Spanned<PathBuf>>,
    header: &Range<usize>,
    problems: &mut Vec<Problem>,
) -> Option<PathBuf> {
    let Some(target) = target else {
        problems.push(Problem::at(
            header.clone(),
            "missing target in [[mount]]: expected the absolute path to mount on inside the container, e.g. target = \"/data\"",
        ));
        return None;
    };
    let path: &Path = target.get_ref();
    if !path.is_absolute() {
        let msg = format!("mount target {path:?} must be an absolute path");
        problems.push(Problem::at(target.span(), msg));
        return None;
    }
    if path.components().any(|c| c == Component::ParentDir) {
        let msg = format!("mount target {path:?} must not contain \"..\" components");
        problems.push(Problem::at(target.span(), msg));
        return None;
    }
    Some(target.into_inner())
}
