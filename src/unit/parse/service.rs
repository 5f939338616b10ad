//! `[unit]`, `[service]` and `[logs]`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use toml::Spanned;

use super::reader::{Reader, Span, Value};
use super::{defaults, limits};
use crate::unit::model::{EnvFile, LogLimits, RestartPolicy, Service, StartLimit};
use crate::unit::values::{self, DURATION_EXPECTED, SIGNAL_EXPECTED, SIZE_EXPECTED};

pub(super) const UNIT_KEYS: &[&str] = &["description", "after", "requires", "wants"];
pub(super) const SERVICE_KEYS: &[&str] = &[
    "exec",
    "args",
    "env",
    "workdir",
    "user",
    "group",
    "restart",
    "restart_delay",
    "restart_max_delay",
    "restart_reset_after",
    "start_limit",
    "stop_signal",
    "stop_timeout",
    "success_exit_codes",
    "supplementary_groups",
    "umask",
    "type",
    "ready_fd",
    "start_timeout",
    "watchdog",
    "remain_after_exit",
    "exec_start_pre",
    "exec_stop_post",
    "on_failure",
    "env_file",
];
const START_LIMIT_KEYS: &[&str] = &["burst", "interval"];
pub(super) const LOG_KEYS: &[&str] = &["max_size", "max_files"];

const ID_EXPECTED: &str = r#"a name (string, e.g. "www-data") or a numeric id (integer, e.g. 33)"#;
const EXEC_EXPECTED: &str = r#"an array of strings like ["/usr/bin/app", "--flag"]"#;

/// The `[unit]` section, dependencies still spanned for the graph check.
#[derive(Default)]
pub(super) struct UnitSection {
    pub(super) description: String,
    pub(super) after: Vec<Spanned<String>>,
    pub(super) requires: Vec<Spanned<String>>,
    pub(super) wants: Vec<Spanned<String>>,
}

pub(super) fn read_unit_section(v: Option<Value>, r: &mut Reader) -> UnitSection {
    let Some(mut t) = r.table(v, UNIT_KEYS) else {
        return UnitSection::default();
    };
    let mut deps = |key: &str, r: &mut Reader| {
        let expected = "an array of unit names";
        let list = r.array(t.take(key), expected, key, limits::DEPS);
        list.map_or_else(Vec::new, |l| {
            r.each(l.into_inner(), |r, v| r.string(Some(v)))
        })
    };
    let after = deps("after", r);
    let requires = deps("requires", r);
    let wants = deps("wants", r);
    UnitSection {
        description: r
            .string(t.take("description"))
            .map(Spanned::into_inner)
            .unwrap_or_default(),
        after,
        requires,
        wants,
    }
}

/// A duration key bounded by [`limits::DURATION`].
pub(super) fn duration(r: &mut Reader, v: Option<Value>, what: &str) -> Option<Spanned<Duration>> {
    r.scalar(v, DURATION_EXPECTED, |v| {
        values::duration(v, what, limits::DURATION)
    })
}

/// `image` is the unit's `[container] image`: then `exec` may be left out (the
/// image's Entrypoint and Cmd apply), `args` may be written here as well as in
/// `[container]`, and a written `stop_signal` is noted.
pub(super) fn read_service(
    v: Value,
    mut image: Option<&mut crate::unit::ImageSpec>,
    r: &mut Reader,
) -> Option<Service> {
    let mut t = r.table(Some(v), SERVICE_KEYS)?;
    if let Some(v) = t.take("args") {
        let span = v.span();
        let args = super::container::read_args(v, r);
        match image.as_deref_mut() {
            None => r.report(
                span,
                "args needs `image` in [container]: without an image, write the arguments in exec",
            ),
            Some(img) if !img.args.is_empty() => r.report(
                span,
                "args is written in both [service] and [container]: keep one",
            ),
            Some(img) => img.args = args,
        }
    }
    let exec = match t.take("exec") {
        // Filled in from the image's config when supd loads the unit.
        None if image.is_some() => Some(Vec::new()),
        v => check_exec(v, t.span(), r),
    };
    let env = read_env(t.take("env"), r);
    let env_file = read_env_files(t.take("env_file"), r);
    let workdir = r.absolute_path(t.take("workdir"), "workdir");
    let id = |r: &mut Reader, v| {
        r.scalar(v, ID_EXPECTED, values::id)
            .map(Spanned::into_inner)
    };
    let user = id(r, t.take("user"));
    let group = id(r, t.take("group"));
    let restart_expected = format!(
        "one of {}",
        <RestartPolicy as crate::unit::names::Named>::expected()
    );
    let restart = r.scalar(t.take("restart"), &restart_expected, values::restart);
    let (restart_delay, restart_max_delay) =
        check_delays(t.take("restart_delay"), t.take("restart_max_delay"), r);
    let reset_after = duration(r, t.take("restart_reset_after"), "restart_reset_after");
    let start_limit = read_start_limit(t.take("start_limit"), r);
    let stop_signal = r.scalar(t.take("stop_signal"), SIGNAL_EXPECTED, values::signal);
    if let Some(image) = image {
        image.stop_signal_written = stop_signal.is_some();
    }
    let stop_timeout = duration(r, t.take("stop_timeout"), "stop_timeout");
    let codes = t.take("success_exit_codes");
    let success_exit_codes = r
        .array(
            codes,
            "an array of integers",
            "success_exit_codes",
            limits::LIST,
        )
        .map_or_else(
            || vec![0],
            |list| {
                r.each(list.into_inner(), |r, c| {
                    r.int_in(Some(c), 0, 255, "exit code")
                        .map(|n| *n.get_ref() as i32)
                })
            },
        );
    let groups = t.take("supplementary_groups");
    let groups = r.array(
        groups,
        "an array of names or ids",
        "supplementary_groups",
        limits::LIST,
    );
    let supplementary_groups = groups.map_or_else(Vec::new, |list| {
        r.each(list.into_inner(), |r, g| id(r, Some(g)))
    });
    let umask = r.scalar(t.take("umask"), r#"an octal string like "0027""#, |v| {
        values::octal(v, 0o777, "umask")
    });
    let lifecycle = super::lifecycle::read_lifecycle(&mut t, r);
    if let Some(policy) = &restart
        && *policy.get_ref() == RestartPolicy::Always
        && lifecycle.kind == crate::unit::ServiceType::Oneshot
    {
        // As systemd refuses it: a job that succeeded would run again and again.
        r.report(
            policy.span(),
            "restart = \"always\" is not for type = \"oneshot\" (a finished job would run again in a loop); use \"on-failure\" or \"no\"",
        );
    }
    Some(Service {
        exec: exec?,
        env,
        workdir: workdir.map(Spanned::into_inner),
        user,
        group,
        restart: restart.map_or(RestartPolicy::OnFailure, Spanned::into_inner),
        restart_delay,
        restart_max_delay,
        restart_reset_after: reset_after.map_or(defaults::RESTART_RESET_AFTER, Spanned::into_inner),
        start_limit,
        stop_signal: stop_signal.map_or(Signal::SIGTERM, Spanned::into_inner),
        stop_timeout: stop_timeout.map_or(defaults::STOP_TIMEOUT, Spanned::into_inner),
        success_exit_codes,
        supplementary_groups,
        umask: umask.map(Spanned::into_inner),
        lifecycle,
        env_file,
        credentials: BTreeMap::new(),
    })
}

/// exec is required, non-empty, with a non-empty program; NUL bytes can
/// never reach execve, so reject them here rather than at start time.
/// `table` is where `[service]` was written, for "missing exec".
pub(super) fn check_exec(v: Option<Value>, table: Span, r: &mut Reader) -> Option<Vec<String>> {
    let Some(v) = v else {
        r.report(
            table,
            format!("missing `exec` in [service]: expected {EXEC_EXPECTED}"),
        );
        return None;
    };
    let list = r.array(Some(v), EXEC_EXPECTED, "exec", limits::ARGS)?;
    let (span, written) = (list.span(), list.get_ref().len());
    let args = r.each(list.into_inner(), |r, a| r.string(Some(a)));
    if written == 0 {
        r.report(
            span,
            "exec must not be empty: expected the program path followed by its arguments",
        );
    }
    // Only when every argument is a string is `args[0]` the program.
    if let Some(program) = args.first().filter(|_| args.len() == written)
        && program.get_ref().is_empty()
    {
        r.report(program.span(), "exec[0] (the program) must not be empty");
    }
    for arg in args.iter().filter(|a| a.get_ref().contains('\0')) {
        r.report(arg.span(), "exec arguments must not contain NUL characters");
    }
    Some(args.into_iter().map(Spanned::into_inner).collect())
}

/// Keys must be usable in `KEY=value` for execve.
fn read_env(v: Option<Value>, r: &mut Reader) -> BTreeMap<String, String> {
    let entries = r.entries(v, "env", limits::ARGS).unwrap_or_default();
    let mut env = BTreeMap::new();
    for (key, value) in entries {
        let k = key.get_ref();
        if k.is_empty() || k.contains(['=', '\0']) {
            r.report(
                key.span(),
                format!("invalid environment variable name {k:?}: must be non-empty and contain no '=' or NUL"),
            );
        }
        let Some(value) = r.string(Some(value)) else {
            continue;
        };
        if value.get_ref().contains('\0') {
            r.report(
                value.span(),
                format!("environment variable {k:?} must not contain NUL characters"),
            );
        }
        env.insert(key.into_inner(), value.into_inner());
    }
    env
}

/// `env_file = ["/etc/app/env", "-/etc/app/optional.env"]`: absolute paths, a
/// leading `-` marks a file that may be missing.
fn read_env_files(v: Option<Value>, r: &mut Reader) -> Vec<EnvFile> {
    let expected = r#"an array of absolute paths like ["/etc/app/env", "-/etc/app/optional.env"]"#;
    let Some(list) = r.array(v, expected, "env_file", limits::LIST) else {
        return Vec::new();
    };
    let entries = r.each(list.into_inner(), |r, v| r.string(Some(v)));
    let mut out = Vec::new();
    for entry in entries {
        let text = entry.get_ref();
        let (optional, path) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.as_str()),
        };
        if !path.starts_with('/') || path.contains('\0') {
            r.report(
                entry.span(),
                format!("env_file {text:?} must be an absolute path (with a leading `-` if it may be missing)"),
            );
            continue;
        }
        out.push(EnvFile {
            path: PathBuf::from(path),
            optional,
        });
    }
    out
}

/// `[credentials]`: `NAME = "/path/on/host"`; a name is a file name in the
/// credentials directory.
pub(super) fn read_credentials(v: Option<Value>, r: &mut Reader) -> BTreeMap<String, PathBuf> {
    let entries = r
        .entries(v, "credentials", limits::LIST)
        .unwrap_or_default();
    let mut out = BTreeMap::new();
    for (key, value) in entries {
        let name = key.get_ref();
        let valid = !name.is_empty()
            && name.len() <= 255
            && name != "."
            && name != ".."
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-@".contains(c));
        if !valid {
            r.report(
                key.span(),
                format!("invalid credential name {name:?}: must match [A-Za-z0-9_.@-]+ (it is a file name), not . or .."),
            );
        }
        let Some(path) = r.absolute_path(Some(value), "credential file") else {
            continue;
        };
        out.insert(key.into_inner(), path.into_inner());
    }
    out
}

/// Applies defaults and checks `restart_max_delay >= restart_delay`,
/// reporting at whichever of the two keys was written (max_delay first).
/// Skipped when either is invalid: that error is the one to fix.
fn check_delays(
    delay: Option<Value>,
    max_delay: Option<Value>,
    r: &mut Reader,
) -> (Duration, Duration) {
    let (delay_written, max_written) = (delay.is_some(), max_delay.is_some());
    let delay = duration(r, delay, "restart_delay");
    let max_delay = duration(r, max_delay, "restart_max_delay");
    let d = delay
        .as_ref()
        .map_or(defaults::RESTART_DELAY, |s| *s.get_ref());
    let max = max_delay
        .as_ref()
        .map_or(defaults::RESTART_MAX_DELAY, |s| *s.get_ref());
    let all_valid = delay.is_some() == delay_written && max_delay.is_some() == max_written;
    if all_valid && max < d {
        let span = max_delay
            .as_ref()
            .or(delay.as_ref())
            .map_or(0..0, Spanned::span);
        r.report(
            span,
            format!(
                "restart_max_delay ({}) must be >= restart_delay ({})",
                humantime::format_duration(max),
                humantime::format_duration(d)
            ),
        );
    }
    (d, max)
}

fn read_start_limit(v: Option<Value>, r: &mut Reader) -> StartLimit {
    let mut limit = StartLimit {
        burst: defaults::START_LIMIT_BURST,
        interval: defaults::START_LIMIT_INTERVAL,
    };
    if let Some(mut t) = r.table(v, START_LIMIT_KEYS) {
        let burst = r.int_in(t.take("burst"), 1, i64::from(u32::MAX), "start_limit.burst");
        if let Some(burst) = burst {
            limit.burst = *burst.get_ref() as u32;
        }
        if let Some(interval) = duration(r, t.take("interval"), "start_limit.interval") {
            limit.interval = interval.into_inner();
        }
    }
    limit
}

pub(super) fn read_logs(v: Option<Value>, r: &mut Reader) -> LogLimits {
    let mut logs = LogLimits {
        max_size: defaults::LOG_MAX_SIZE,
        max_files: defaults::LOG_MAX_FILES,
    };
    let Some(mut t) = r.table(v, LOG_KEYS) else {
        return logs;
    };
    let size = r.scalar(t.take("max_size"), SIZE_EXPECTED, |v| {
        values::size(v, "logs.max_size", limits::LOG_SIZE)
    });
    if let Some(size) = size {
        let bytes = *size.get_ref();
        if bytes < defaults::LOG_MIN_SIZE {
            r.report(
                size.span(),
                format!("logs.max_size must be at least 4K (4096 bytes), got {bytes} bytes"),
            );
        }
        logs.max_size = bytes;
    }
    let max = defaults::LOG_MAX_FILES_LIMIT;
    if let Some(n) = r.int_in(t.take("max_files"), 0, max, "logs.max_files") {
        logs.max_files = *n.get_ref() as u32;
    }
    logs
}
