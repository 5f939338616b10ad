//! Pure text rendering for supctl: every function takes data (and "now") and returns
//! strings, so the output can be tested without a daemon.

use std::time::{Duration, SystemTime};

use super::proto::{ExitInfo, LogLine, ReloadPlan, UnitResult, UnitStatus, Usage};

/// A compact duration: `3s`, `5m3s`, `2h13m`, `4d2h` (two most significant units).
pub fn format_compact(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60, s % 60);
    let pair = |big: u64, bu: &str, small: u64, su: &str| {
        if small == 0 {
            format!("{big}{bu}")
        } else {
            format!("{big}{bu}{small}{su}")
        }
    };
    if days > 0 {
        pair(days, "d", hours, "h")
    } else if hours > 0 {
        pair(hours, "h", mins, "m")
    } else if mins > 0 {
        pair(mins, "m", secs, "s")
    } else {
        format!("{secs}s")
    }
}

/// `3s ago` for a past instant, `in 3s` for a future one.
pub fn format_relative(when: SystemTime, now: SystemTime) -> String {
    match now.duration_since(when) {
        Ok(ago) => format!("{} ago", format_compact(ago)),
        Err(e) => format!("in {}", format_compact(e.duration())),
    }
}

/// Relative form of an RFC 3339 timestamp; the raw text when it does not parse.
pub fn relative_rfc3339(ts: &str, now: SystemTime) -> String {
    match humantime::parse_rfc3339(ts) {
        Ok(t) => format_relative(t, now),
        Err(_) if ts.is_empty() => "-".to_string(),
        Err(_) => ts.to_string(),
    }
}

/// `2026-05-01T10:00:00Z (3s ago)`, or just the raw text when it does not parse.
fn absolute_and_relative(ts: &str, now: SystemTime) -> String {
    match humantime::parse_rfc3339(ts) {
        Ok(t) => format!("{ts} ({})", format_relative(t, now)),
        Err(_) => ts.to_string(),
    }
}

/// `running` when the sub-state adds nothing, else `state/sub_state`; what a
/// starting unit waits for in words.
pub fn state_label(u: &UnitStatus) -> String {
    let waiting_for = match u.sub_state.as_str() {
        "waiting-for-ready" => Some("READY"),
        "waiting-for-ready-fd" => Some("ready_fd"),
        "waiting-for-healthy" => Some("healthy"),
        _ => None,
    };
    if let Some(what) = waiting_for {
        return format!("{} (waiting for {what})", u.state);
    }
    if u.sub_state.is_empty() || u.sub_state == u.state.as_str() {
        u.state.to_string()
    } else {
        format!("{}/{}", u.state, u.sub_state)
    }
}

/// `code=1`, `signal=SIGKILL` or `-`.
pub fn format_exit(exit: Option<&ExitInfo>) -> String {
    match exit {
        Some(ExitInfo {
            oom_killed: false,
            code: Some(code),
            ..
        }) => format!("code={code}"),
        Some(ExitInfo {
            signal: Some(sig), ..
        }) => format!("signal={sig}"),
        _ => "-".to_string(),
    }
}

fn format_pid(pid: Option<i32>) -> String {
    pid.map_or_else(|| "-".to_string(), |p| p.to_string())
}

/// Left-aligned columns separated by two spaces, no trailing blanks.
fn align(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths[i].saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The `supctl status` table, followed by one `! UNIT: definition on disk rejected: ...`
/// line per unit whose on-disk definition was rejected.
pub fn render_table(units: &[UnitStatus], now: SystemTime) -> String {
    if units.is_empty() {
        return "no units loaded\n".to_string();
    }
    let mut rows = vec![
        [
            "UNIT",
            "STATE",
            "HEALTH",
            "SINCE",
            "PID",
            "RESTARTS",
            "LAST EXIT",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>(),
    ];
    // Addresses and ports only when some unit is networked: a table of host
    // units keeps its width.
    let networked = units.iter().any(|u| {
        u.network
            .as_ref()
            .is_some_and(|n| !n.addresses.is_empty() || !n.ports.is_empty())
    });
    if networked {
        rows[0].extend(["ADDRESS".to_string(), "PORTS".to_string()]);
    }
    for u in units {
        let mut state = state_label(u);
        if !u.enabled {
            state.push_str(" (disabled)");
        }
        let mut row = vec![
            u.name.clone(),
            state,
            format_health(u),
            relative_rfc3339(&u.since, now),
            format_pid(u.pid),
            u.restarts.to_string(),
            format_exit(u.last_exit.as_ref()),
        ];
        if networked {
            let net = u.network.as_ref();
            let first = net.and_then(|n| n.addresses.first());
            row.push(first.map_or_else(|| "-".to_string(), |a| a.address.clone()));
            let ports = net.map(|n| n.ports.join(",")).unwrap_or_default();
            row.push(if ports.is_empty() {
                "-".to_string()
            } else {
                ports
            });
        }
        rows.push(row);
    }
    let mut out = align(&rows);
    for u in units {
        if let Some(err) = &u.definition_error {
            out.push_str(&format!(
                "! {}: definition on disk rejected: {err}\n",
                u.name
            ));
        } else if u.disk_differs {
            out.push_str(&format!("{}\n", disk_differs_warning(u)));
        }
    }
    out
}

fn disk_differs_warning(u: &UnitStatus) -> String {
    format!(
        "! {}: the file on disk differs from the loaded definition {} (not reloaded yet; `supctl reload`)",
        u.name, u.hash
    )
}

/// The detailed view of one unit (`supctl status UNIT`). Optional fields that are
/// unset (reason, next start, definition error) are left out.
pub fn render_detail(u: &UnitStatus, now: SystemTime) -> String {
    let mut out = if u.description.is_empty() {
        format!("{}\n", u.name)
    } else {
        format!("{} \u{2014} {}\n", u.name, u.description)
    };
    let mut field = |label: &str, value: String| {
        out.push_str(&format!("{label:>16}: {value}\n"));
    };
    field(
        "State",
        format!(
            "{} since {}",
            state_label(u),
            absolute_and_relative(&u.since, now)
        ),
    );
    field("Want", u.want.clone());
    if !u.enabled {
        field(
            "Enabled",
            format!("no: kept stopped (`supctl enable {}`)", u.name),
        );
    }
    field("PID", format_pid(u.pid));
    if let Some(main) = u.main_pid {
        let inside = match u.main_pid_in_container {
            Some(n) if n != main => format!(" ({n} in the container)"),
            _ => String::new(),
        };
        field("Main PID", format!("{main}{inside}"));
    }
    field("Restarts", u.restarts.to_string());
    let last_exit = match &u.last_exit {
        Some(exit) => format!(
            "{} at {}",
            format_exit(Some(exit)),
            absolute_and_relative(&exit.at, now)
        ),
        None => "-".to_string(),
    };
    field("Last exit", last_exit);
    if let Some(reason) = &u.reason {
        field("Reason", reason.clone());
    }
    if let Some(next) = &u.next_start {
        field("Next start", absolute_and_relative(next, now));
    }
    field("Definition", format!("{} {}", u.hash, u.path));
    if let Some(err) = &u.definition_error {
        field(
            "Definition error",
            format!("on-disk file rejected, still running the loaded one: {err}"),
        );
    }
    if let Some(usage) = &u.usage {
        field("Memory", format_memory(usage));
        field("CPU", format_cpu(usage));
        field("Tasks", format_tasks(usage));
    }
    if let Some(health) = &u.health {
        let mut text = health.clone();
        if u.health_failures > 0 {
            text.push_str(&format!(" ({} failed in a row)", u.health_failures));
        }
        if let Some(out) = &u.health_output {
            text.push_str(&format!(": {}", out.lines().last().unwrap_or_default()));
        }
        field("Health", text);
    }
    if let Some(text) = &u.status_text {
        field("Status", text.clone());
    }
    if let Some(net) = &u.network {
        let mut text = net.mode.clone();
        for a in &net.addresses {
            text.push_str(&format!(", {} {} ({})", a.interface, a.address, a.network));
        }
        if !net.aliases.is_empty() {
            text.push_str(&format!(", aliases {}", net.aliases.join(" ")));
        }
        field("Network", text);
        if !net.ports.is_empty() {
            field("Ports", net.ports.join(", "));
        }
    }
    if u.oom_kills > 0 {
        field("OOM kills", u.oom_kills.to_string());
    }
    if u.stop_timed_out {
        field(
            "Last stop",
            "forced: it did not stop within stop_timeout and was killed with SIGKILL".into(),
        );
    }
    if let Some(leftover) = &u.leftover {
        field("Found at start", leftover.clone());
    }
    if let Some(image) = &u.image {
        field("Image", image.clone());
    }
    if !u.exposed_ports.is_empty() {
        field(
            "Exposed ports",
            format!("{} (not published)", u.exposed_ports.join(", ")),
        );
    }
    if !u.log_file.is_empty() {
        field("Log file", u.log_file.clone());
    }
    if u.disk_differs && u.definition_error.is_none() {
        out.push_str(&format!("{}\n", disk_differs_warning(u)));
    }
    out
}

/// `12.0M / 32.0M (peak 20.1M)`, or `-`.
pub fn format_memory(u: &Usage) -> String {
    let Some(current) = u.memory_current else {
        return "-".into();
    };
    let mut s = format_bytes(current);
    if let Some(max) = u.memory_max {
        s.push_str(&format!(" / {}", format_bytes(max)));
    }
    if let Some(peak) = u.memory_peak {
        s.push_str(&format!(" (peak {})", format_bytes(peak)));
    }
    s
}

/// `3.2% now, 1.5s total`, or `-`.
pub fn format_cpu(u: &Usage) -> String {
    let total = u
        .cpu_usage_usec
        .map(|us| format!("{:.1}s total", us as f64 / 1e6));
    match (u.cpu_percent, total) {
        (Some(p), Some(t)) => format!("{p:.1}% now, {t}"),
        (None, Some(t)) => t,
        _ => "-".into(),
    }
}

/// `3 / 32`, or `-`.
pub fn format_tasks(u: &Usage) -> String {
    match (u.tasks, u.pids_max) {
        (Some(t), Some(max)) => format!("{t} / {max}"),
        (Some(t), None) => t.to_string(),
        _ => "-".into(),
    }
}

/// 1024-based, one decimal: `512.0M`.
pub fn format_bytes(n: u64) -> String {
    let units = ["B", "K", "M", "G", "T"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.1}{}", units[i])
    }
}

/// `supctl top`: one line per unit with its usage.
pub fn render_top(units: &[UnitStatus]) -> String {
    let header = [
        "UNIT", "STATE", "HEALTH", "PID", "MEMORY", "CPU", "TASKS", "OOM",
    ];
    let mut rows = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    for u in units {
        let usage = u.usage.clone().unwrap_or_default();
        rows.push(vec![
            u.name.clone(),
            state_label(u),
            format_health(u),
            format_pid(u.pid),
            u.usage
                .as_ref()
                .map_or("-".into(), |_| format_memory(&usage)),
            usage.cpu_percent.map_or("-".into(), |p| format!("{p:.1}%")),
            format_tasks(&usage),
            u.oom_kills.to_string(),
        ]);
    }
    align(&rows)
}

/// A unit's health in one word, `-` for a unit without `[health]`.
fn format_health(u: &UnitStatus) -> String {
    u.health.clone().unwrap_or_else(|| "-".into())
}

/// `<ts> <line>`, or `<ts> [stderr] <line>` for standard error.
pub fn render_log_line(l: &LogLine) -> String {
    if l.stream == "stderr" {
        format!("{} [stderr] {}", l.ts, l.line)
    } else {
        format!("{} {}", l.ts, l.line)
    }
}

/// One line for a start/stop/restart/reset-failed result; `Err` lines go to stderr.
pub fn render_result(r: &UnitResult) -> Result<String, String> {
    if r.ok {
        match &r.message {
            Some(note) => Ok(format!("{}: {} ({note})", r.name, r.state)),
            None => Ok(format!("{}: {}", r.name, r.state)),
        }
    } else {
        let msg = r
            .message
            .clone()
            .unwrap_or_else(|| format!("unit is {}", r.state));
        Err(format!("{}: failed: {msg}", r.name))
    }
}

/// The reload plan, one line per non-empty category.
pub fn render_reload(plan: &ReloadPlan, applied: bool) -> String {
    let mut out = String::new();
    for (label, names) in [
        ("added", &plan.added),
        ("removed", &plan.removed),
        ("restarted", &plan.restarted),
        ("updated", &plan.updated),
    ] {
        if !names.is_empty() {
            out.push_str(&format!("{label}: {}\n", names.join(", ")));
        }
    }
    let n = plan.unchanged.len();
    out.push_str(&format!(
        "unchanged: {n} unit{}\n",
        if n == 1 { "" } else { "s" }
    ));
    for rejected in &plan.rejected {
        out.push_str(&format!("rejected: {rejected}\n"));
    }
    for note in &plan.images {
        out.push_str(&format!("image changed: {note}\n"));
    }
    if !applied {
        out.push_str("(dry run, nothing applied)\n");
    }
    out
}

#[cfg(test)]
#[path = "render_tests.rs"]
pub(crate) mod tests;

/// One line of `supctl events`: `TIME UNIT: what happened`.
pub fn render_event(e: &crate::control::proto::Event) -> String {
    use crate::control::proto::EventKind as K;
    let what = match &e.kind {
        K::State {
            state,
            sub_state,
            previous,
            restarts,
        } => {
            let mut s = format!("{state}");
            if !sub_state.is_empty() && sub_state != &state.to_string() {
                s.push_str(&format!("/{sub_state}"));
            }
            s.push_str(&format!(" (was {previous})"));
            if *state == crate::control::proto::UnitState::Restarting {
                s.push_str(&format!(", restart {restarts}"));
            }
            s
        }
        K::Exit {
            pid,
            code,
            signal,
            oom_killed,
        } => {
            let how = match (code, signal) {
                (Some(c), _) => format!("code={c}"),
                (None, Some(s)) => format!("signal={s}"),
                (None, None) => "unknown".into(),
            };
            let oom = if *oom_killed { " (OOM-killed)" } else { "" };
            format!("process {pid} exited, {how}{oom}")
        }
        K::StartFailed { error } => format!("start failed: {error}"),
        K::Health { health, previous } => match previous {
            Some(p) => format!("health {health} (was {p})"),
            None => format!("health {health}"),
        },
        K::Reload {
            added,
            removed,
            restarted,
            rejected,
        } => format!(
            "units reloaded: {} added, {} removed, {} restarted, {} rejected",
            added.len(),
            removed.len(),
            restarted.len(),
            rejected.len()
        ),
        K::Dropped { count } => format!("{count} events dropped: this client fell behind"),
    };
    match &e.unit {
        Some(unit) => format!("{} {unit}: {what}", e.time),
        None => format!("{} supd: {what}", e.time),
    }
}
