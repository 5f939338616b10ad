//! TOML -> [`Unit`]: raw serde structs, custom value deserialisers, semantic
//! validation, and byte-offset -> line:column conversion for errors.
//!
//! Parsing happens in two stages. Serde (with `deny_unknown_fields`) rejects
//! unknown keys, wrong types and malformed scalar values; toml attaches the
//! span of the offending key or value to those errors. Checks that need
//! more than one value, or that are easier after deserialising (ranges,
//! absolute paths, unsupported sections), run afterwards on `Spanned`
//! values so they can still point at the right place.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use toml::Spanned;

mod container;
mod resources;

use super::error::UnitError;
use super::model::{
    DepLocations, IdSpec, LogLimits, Pos, RestartPolicy, Service, StartLimit, Unit,
};
use super::values::{
    DURATION_EXPECTED, SIGNAL_EXPECTED, SIZE_EXPECTED, parse_duration, parse_octal, parse_signal,
    parse_size, signal_from_number,
};

/// Defaults, kept together so docs/units.md has one place to mirror.
pub(super) mod defaults {
    use std::time::Duration;

    pub const RESTART_DELAY: Duration = Duration::from_millis(100);
    pub const RESTART_MAX_DELAY: Duration = Duration::from_secs(30);
    pub const RESTART_RESET_AFTER: Duration = Duration::from_secs(10);
    pub const START_LIMIT_BURST: u32 = 5;
    pub const START_LIMIT_INTERVAL: Duration = Duration::from_secs(10);
    pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
    pub const LOG_MAX_SIZE: u64 = 10 * 1024 * 1024;
    pub const LOG_MAX_FILES: u32 = 5;
    /// Smaller logs would rotate on almost every line.
    pub const LOG_MIN_SIZE: u64 = 4 * 1024;
    pub const LOG_MAX_FILES_LIMIT: i64 = 100;
    /// Same limit as systemd unit names are comfortably under; keeps paths
    /// and log file names short.
    pub const NAME_MAX_LEN: usize = 64;
}

// ---------------------------------------------------------------------------
// Raw serde structs (mirror the file layout exactly)
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    unit: RawUnitSection,
    service: Option<RawService>,
    #[serde(default)]
    logs: RawLogs,
    container: Option<Spanned<container::RawContainer>>,
    /// Top-level `[[mount]]` tables; they belong to the container model.
    #[serde(default)]
    mount: Vec<Spanned<container::RawMount>>,
    #[serde(default)]
    resources: resources::RawResources,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawUnitSection {
    #[serde(default)]
    description: String,
    #[serde(default)]
    after: Vec<Spanned<String>>,
    #[serde(default)]
    requires: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    exec: Option<Spanned<Argv>>,
    env: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    workdir: Option<Spanned<PathBuf>>,
    user: Option<IdValue>,
    group: Option<IdValue>,
    restart: Option<RestartValue>,
    restart_delay: Option<Spanned<DurationValue>>,
    restart_max_delay: Option<Spanned<DurationValue>>,
    restart_reset_after: Option<DurationValue>,
    start_limit: Option<RawStartLimit>,
    stop_signal: Option<SignalValue>,
    stop_timeout: Option<DurationValue>,
    success_exit_codes: Option<Vec<Spanned<i64>>>,
    supplementary_groups: Option<Vec<IdValue>>,
    umask: Option<UmaskValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStartLimit {
    burst: Option<Spanned<i64>>,
    interval: Option<DurationValue>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLogs {
    max_size: Option<Spanned<SizeValue>>,
    max_files: Option<Spanned<i64>>,
}

// ---------------------------------------------------------------------------
// Custom value deserialisers. Errors returned from these get the value's span
// attached by toml, so they only need a good message.
// ---------------------------------------------------------------------------

/// A humantime duration string.
struct DurationValue(Duration);

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(DURATION_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<DurationValue, E> {
                parse_duration(s).map(DurationValue).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A byte size: a size string or a non-negative integer number of bytes.
struct SizeValue(u64);

impl<'de> Deserialize<'de> for SizeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SizeValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(SIZE_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<SizeValue, E> {
                parse_size(s).map(SizeValue).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<SizeValue, E> {
                u64::try_from(n).map(SizeValue).map_err(|_| {
                    E::custom(format!(
                        "invalid size {n}: sizes cannot be negative; expected {SIZE_EXPECTED}"
                    ))
                })
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<SizeValue, E> {
                Ok(SizeValue(n))
            }
        }
        d.deserialize_any(V)
    }
}

/// A signal name or number.
struct SignalValue(Signal);

impl<'de> Deserialize<'de> for SignalValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SignalValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(SIGNAL_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<SignalValue, E> {
                parse_signal(s).map(SignalValue).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<SignalValue, E> {
                signal_from_number(n).map(SignalValue).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A user/group: a TOML string is a name, a TOML integer is a numeric id.
struct IdValue(IdSpec);

impl<'de> Deserialize<'de> for IdValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IdValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a name (string, e.g. \"www-data\") or a numeric id (integer, e.g. 33)")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<IdValue, E> {
                if s.is_empty() {
                    return Err(E::custom(
                        "empty name: expected a name (string) or a numeric id (integer)",
                    ));
                }
                if s.contains('\0') {
                    return Err(E::custom("name must not contain NUL characters"));
                }
                Ok(IdValue(IdSpec::Name(s.to_owned())))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<IdValue, E> {
                u32::try_from(n)
                    .map(|id| IdValue(IdSpec::Id(id)))
                    .map_err(|_| {
                        E::custom(format!(
                            "invalid id {n}: expected an integer between 0 and {}",
                            u32::MAX
                        ))
                    })
            }
        }
        d.deserialize_any(V)
    }
}

/// An octal string such as `"0027"`, at most `max`. A TOML integer is
/// refused: `27` would be read as decimal, which is never what is meant.
struct OctalVisitor {
    max: u32,
    what: &'static str,
}

impl Visitor<'_> for OctalVisitor {
    type Value = u32;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an octal string like \"0027\"")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<u32, E> {
        parse_octal(s, self.max, self.what).map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<u32, E> {
        Err(E::custom(format!(
            "{} must be an octal string like \"0027\", not the integer {n} (an integer would be read as decimal)",
            self.what
        )))
    }
}

/// `umask = "0027"`.
struct UmaskValue(u32);

impl<'de> Deserialize<'de> for UmaskValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OctalVisitor {
            max: 0o777,
            what: "umask",
        })
        .map(UmaskValue)
    }
}

/// One of the restart policy names.
struct RestartValue(RestartPolicy);

impl<'de> Deserialize<'de> for RestartValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RestartValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(RESTART_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RestartValue, E> {
                parse_restart(s).map(RestartValue).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

const RESTART_EXPECTED: &str = r#"one of "no", "on-failure", "on-abnormal", "always""#;

/// Maps a policy name to [`RestartPolicy`]. "unless-stopped" gets a tailored
/// message because people coming from Docker will try it.
fn parse_restart(s: &str) -> Result<RestartPolicy, String> {
    match s {
        "no" => Ok(RestartPolicy::No),
        "on-failure" => Ok(RestartPolicy::OnFailure),
        "on-abnormal" => Ok(RestartPolicy::OnAbnormal),
        "always" => Ok(RestartPolicy::Always),
        "unless-stopped" => Err(
            "restart policy \"unless-stopped\" is not supported: use \"always\" — \
             sup never restarts a unit the operator stopped, so \"always\" already \
             behaves like \"unless-stopped\""
                .to_owned(),
        ),
        other => Err(format!(
            "unknown restart policy {other:?}: expected {RESTART_EXPECTED}"
        )),
    }
}

/// argv: an array of strings, each kept with its span for validation.
struct Argv(Vec<Spanned<String>>);

impl<'de> Deserialize<'de> for Argv {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Argv;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"an array of strings like ["/usr/bin/app", "--flag"]"#)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Argv, A::Error> {
                let mut args = Vec::new();
                while let Some(arg) = seq.next_element::<Spanned<String>>()? {
                    args.push(arg);
                }
                Ok(Argv(args))
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------
// Entry point and conversion to the clean model
// ---------------------------------------------------------------------------

/// A validation failure found after deserialising: a byte span and message.
struct Problem {
    span: Range<usize>,
    message: String,
}

impl Problem {
    fn at(span: Range<usize>, message: impl Into<String>) -> Self {
        Problem {
            span,
            message: message.into(),
        }
    }

    /// For problems that belong to the file rather than a key.
    fn at_start(message: impl Into<String>) -> Self {
        Problem::at(0..0, message)
    }
}

/// Parses and validates one unit file. See the crate-level `parse_unit`.
pub(super) fn parse_unit(name: &str, path: &Path, text: &str) -> Result<Unit, UnitError> {
    let fail = |offset: usize, message: String| UnitError {
        unit: name.to_owned(),
        path: path.to_owned(),
        line: position(text, offset).line,
        column: position(text, offset).column,
        message,
    };
    if let Err(message) = check_name(name) {
        return Err(fail(0, message));
    }
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        fail(offset, e.message().trim_end().to_owned())
    })?;
    let mut problems = Vec::new();
    let unit = build_unit(name, path, text, raw, &mut problems);
    // Report the earliest problem in the file, like a compiler would.
    match problems.into_iter().min_by_key(|p| p.span.start) {
        Some(p) => Err(fail(p.span.start, p.message)),
        None => unit.ok_or_else(|| fail(0, "invalid unit".to_owned())),
    }
}

/// Unit names become file names, log names and CLI arguments, so keep them
/// to a conservative character set.
pub(super) fn check_name(name: &str) -> Result<(), String> {
    let expected = "unit names must match [A-Za-z0-9][A-Za-z0-9_.@-]* and be at most 64 bytes";
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_.@-".contains(c));
    if !first_ok || !rest_ok {
        return Err(format!("invalid unit name {name:?}: {expected}"));
    }
    if name.len() > defaults::NAME_MAX_LEN {
        return Err(format!(
            "invalid unit name {name:?}: too long ({} bytes); {expected}",
            name.len()
        ));
    }
    Ok(())
}

/// Converts the raw file to a [`Unit`], pushing every problem found. Returns
/// `None` when a required part is missing.
fn build_unit(
    name: &str,
    path: &Path,
    text: &str,
    raw: RawFile,
    problems: &mut Vec<Problem>,
) -> Option<Unit> {
    let resources = resources::build_resources(raw.resources, problems);
    let container = container::build_container(text, raw.container, raw.mount, problems);
    let deps = dep_locations(text, &raw.unit);
    let service = match raw.service {
        Some(s) => build_service(s, section_span(text, "service", 0..0), problems),
        None => {
            problems.push(Problem::at_start(
                "missing [service] section: every unit needs one with at least `exec = [...]`",
            ));
            None
        }
    };
    let logs = build_logs(raw.logs, problems);
    let mut unit = Unit {
        name: name.to_owned(),
        path: path.to_owned(),
        hash: String::new(),
        description: raw.unit.description,
        after: raw
            .unit
            .after
            .into_iter()
            .map(Spanned::into_inner)
            .collect(),
        requires: raw
            .unit
            .requires
            .into_iter()
            .map(Spanned::into_inner)
            .collect(),
        service: service?,
        logs,
        container,
        resources,
        deps,
    };
    unit.hash = unit.compute_hash();
    Some(unit)
}

/// Where to report a problem with a whole section: its `[header]` if there
/// is one (toml reports a table's span as its body), else the value's span.
fn section_span(text: &str, section: &str, value_span: Range<usize>) -> Range<usize> {
    let header = format!("[{section}]");
    text.match_indices(&header)
        .map(|(i, _)| i)
        .find(|&i| {
            text[..i]
                .rsplit('\n')
                .next()
                .is_some_and(|l| l.trim().is_empty())
        })
        .map_or(value_span, |i| i..i + header.len())
}

fn dep_locations(text: &str, unit: &RawUnitSection) -> DepLocations {
    let locate = |list: &[Spanned<String>]| {
        list.iter()
            .map(|s| (s.get_ref().clone(), position(text, s.span().start)))
            .collect()
    };
    DepLocations {
        after: locate(&unit.after),
        requires: locate(&unit.requires),
    }
}

/// `header` is where `[service]` was written, for "missing exec".
fn build_service(
    raw: RawService,
    header: Range<usize>,
    problems: &mut Vec<Problem>,
) -> Option<Service> {
    let exec = check_exec(raw.exec, header, problems);
    let env = check_env(raw.env.unwrap_or_default(), problems);
    let workdir = raw.workdir.and_then(|w| {
        if w.get_ref().is_absolute() {
            Some(w.into_inner())
        } else {
            let msg = format!("workdir {:?} must be an absolute path", w.get_ref());
            problems.push(Problem::at(w.span(), msg));
            None
        }
    });
    let (restart_delay, restart_max_delay) =
        check_delays(raw.restart_delay, raw.restart_max_delay, problems);
    let start_limit = build_start_limit(raw.start_limit, problems);
    let success_exit_codes = check_exit_codes(raw.success_exit_codes, problems);
    Some(Service {
        exec: exec?,
        env,
        workdir,
        user: raw.user.map(|v| v.0),
        group: raw.group.map(|v| v.0),
        restart: raw.restart.map_or(RestartPolicy::OnFailure, |r| r.0),
        restart_delay,
        restart_max_delay,
        restart_reset_after: raw
            .restart_reset_after
            .map_or(defaults::RESTART_RESET_AFTER, |d| d.0),
        start_limit,
        stop_signal: raw.stop_signal.map_or(Signal::SIGTERM, |s| s.0),
        stop_timeout: raw.stop_timeout.map_or(defaults::STOP_TIMEOUT, |d| d.0),
        success_exit_codes,
        supplementary_groups: raw
            .supplementary_groups
            .unwrap_or_default()
            .into_iter()
            .map(|g| g.0)
            .collect(),
        umask: raw.umask.map(|u| u.0),
    })
}

/// exec is required, non-empty, with a non-empty program; NUL bytes can
/// never reach execve, so reject them here rather than at start time.
fn check_exec(
    exec: Option<Spanned<Argv>>,
    header: Range<usize>,
    problems: &mut Vec<Problem>,
) -> Option<Vec<String>> {
    let Some(exec) = exec else {
        problems.push(Problem::at(
            header,
            "missing `exec` in [service]: expected an array of strings like [\"/usr/bin/app\", \"--flag\"]",
        ));
        return None;
    };
    let span = exec.span();
    let args = exec.into_inner().0;
    match args.first() {
        None => problems.push(Problem::at(
            span,
            "exec must not be empty: expected the program path followed by its arguments",
        )),
        Some(first) if first.get_ref().is_empty() => problems.push(Problem::at(
            first.span(),
            "exec[0] (the program) must not be empty",
        )),
        Some(_) => {}
    }
    for arg in &args {
        if arg.get_ref().contains('\0') {
            problems.push(Problem::at(
                arg.span(),
                "exec arguments must not contain NUL characters",
            ));
        }
    }
    Some(args.into_iter().map(Spanned::into_inner).collect())
}

/// Keys must be usable in `KEY=value` for execve.
fn check_env(
    env: BTreeMap<Spanned<String>, Spanned<String>>,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, String> {
    for (key, value) in &env {
        let k = key.get_ref();
        if k.is_empty() || k.contains(['=', '\0']) {
            problems.push(Problem::at(
                key.span(),
                format!("invalid environment variable name {k:?}: must be non-empty and contain no '=' or NUL"),
            ));
        }
        if value.get_ref().contains('\0') {
            problems.push(Problem::at(
                value.span(),
                format!("environment variable {k:?} must not contain NUL characters"),
            ));
        }
    }
    env.into_iter()
        .map(|(k, v)| (k.into_inner(), v.into_inner()))
        .collect()
}

/// Applies defaults and checks `restart_max_delay >= restart_delay`,
/// reporting at whichever of the two keys was written (max_delay first).
fn check_delays(
    delay: Option<Spanned<DurationValue>>,
    max_delay: Option<Spanned<DurationValue>>,
    problems: &mut Vec<Problem>,
) -> (Duration, Duration) {
    let value =
        |d: &Option<Spanned<DurationValue>>, default| d.as_ref().map_or(default, |s| s.get_ref().0);
    let d = value(&delay, defaults::RESTART_DELAY);
    let max = value(&max_delay, defaults::RESTART_MAX_DELAY);
    if max < d {
        let span = max_delay
            .as_ref()
            .or(delay.as_ref())
            .map_or(0..0, Spanned::span);
        problems.push(Problem::at(
            span,
            format!(
                "restart_max_delay ({}) must be >= restart_delay ({})",
                humantime::format_duration(max),
                humantime::format_duration(d)
            ),
        ));
    }
    (d, max)
}

fn build_start_limit(raw: Option<RawStartLimit>, problems: &mut Vec<Problem>) -> StartLimit {
    let Some(raw) = raw else {
        return StartLimit {
            burst: defaults::START_LIMIT_BURST,
            interval: defaults::START_LIMIT_INTERVAL,
        };
    };
    let burst = raw.burst.map_or(defaults::START_LIMIT_BURST, |b| {
        in_range(&b, 1, i64::from(u32::MAX), "start_limit.burst", problems)
            .map_or(defaults::START_LIMIT_BURST, |n| n as u32)
    });
    StartLimit {
        burst,
        interval: raw.interval.map_or(defaults::START_LIMIT_INTERVAL, |d| d.0),
    }
}

fn check_exit_codes(codes: Option<Vec<Spanned<i64>>>, problems: &mut Vec<Problem>) -> Vec<i32> {
    let Some(codes) = codes else {
        return vec![0];
    };
    codes
        .iter()
        .filter_map(|c| in_range(c, 0, 255, "exit code", problems))
        .map(|n| n as i32)
        .collect()
}

fn build_logs(raw: RawLogs, problems: &mut Vec<Problem>) -> LogLimits {
    let max_size = raw.max_size.map_or(defaults::LOG_MAX_SIZE, |s| {
        let bytes = s.get_ref().0;
        if bytes < defaults::LOG_MIN_SIZE {
            problems.push(Problem::at(
                s.span(),
                format!("logs.max_size must be at least 4K (4096 bytes), got {bytes} bytes"),
            ));
        }
        bytes
    });
    let max_files = raw.max_files.map_or(defaults::LOG_MAX_FILES, |n| {
        in_range(
            &n,
            0,
            defaults::LOG_MAX_FILES_LIMIT,
            "logs.max_files",
            problems,
        )
        .map_or(defaults::LOG_MAX_FILES, |n| n as u32)
    });
    LogLimits {
        max_size,
        max_files,
    }
}

/// Returns the value if `lo <= value <= hi`; otherwise records a problem.
/// Callers narrow the result with `as`, which is lossless given the bounds.
fn in_range(
    value: &Spanned<i64>,
    lo: i64,
    hi: i64,
    what: &str,
    problems: &mut Vec<Problem>,
) -> Option<i64> {
    let n = *value.get_ref();
    if (lo..=hi).contains(&n) {
        Some(n)
    } else {
        problems.push(Problem::at(
            value.span(),
            format!("{what} {n} is out of range: expected an integer between {lo} and {hi}"),
        ));
        None
    }
}

/// Converts a byte offset into a 1-based line and column. Columns count
/// characters, not bytes, to match what editors display.
pub(super) fn position(text: &str, offset: usize) -> Pos {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Pos {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}
