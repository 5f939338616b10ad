//! The verbs that show supd's state: `status` (table, one unit's detail with
//! its last log lines, JSON), `top` and `audit`.

use std::time::SystemTime;

use sup::control::exit;
use sup::control::proto::{Command, ErrorCode, Reply, UnitState, UnitStatus};
use sup::control::{render, render_audit};

use crate::streams::stream_logs;
use crate::{Failure, exchange, out, unexpected, warn};

/// Exit code of `status`: 3 when a named unit is not running (or missing from the reply).
pub(crate) fn status_exit(named: &[String], units: &[UnitStatus]) -> i32 {
    let all_running = named.iter().all(|name| {
        units
            .iter()
            .any(|u| &u.name == name && u.state == UnitState::Running)
    });
    if all_running {
        exit::OK
    } else {
        exit::NOT_RUNNING
    }
}

/// Redraw the usage table every second; CPU percentages are measured by supd
/// between two consecutive refreshes.
pub(crate) fn cmd_top(path: &std::path::Path, iterations: Option<u64>) -> Result<i32, Failure> {
    let mut n = 0;
    loop {
        let status = Command::Status {
            units: Vec::new(),
            brief: false,
        };
        let units = match exchange(path, status)? {
            Reply::Status { units } => units,
            other => return Err(unexpected(&other)),
        };
        // Clear the screen only when drawing for a person.
        let clear = if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            "\x1b[H\x1b[2J"
        } else {
            ""
        };
        out(&format!("{clear}{}", render::render_top(&units)))?;
        n += 1;
        if iterations.is_some_and(|max| n >= max) {
            return Ok(exit::OK);
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

pub(crate) fn cmd_status(
    path: &std::path::Path,
    named: Vec<String>,
    json: bool,
) -> Result<i32, Failure> {
    // The table (neither JSON nor one unit's detail) needs no per-unit reads.
    let brief = !json && named.len() != 1;
    let status = |brief| Command::Status {
        units: named.clone(),
        brief,
    };
    let reply = match exchange(path, status(brief)) {
        // A supd older than `brief` refuses the field: ask it the old way.
        Err(f) if brief && f.code == exit::for_error_code(ErrorCode::BadRequest) => {
            exchange(path, status(false))
        }
        other => other,
    };
    let units = match reply? {
        Reply::Status { units } => units,
        other => return Err(unexpected(&other)),
    };
    let code = status_exit(&named, &units);
    let now = SystemTime::now();
    if json {
        let mut text = serde_json::to_string_pretty(&units).map_err(|e| Failure {
            code: exit::FAILED,
            message: format!("cannot encode JSON: {e}"),
        })?;
        text.push('\n');
        out(&text)?;
    } else if let [unit] = units.as_slice()
        && named.len() == 1
    {
        out(&render::render_detail(unit, now))?;
        out("\n")?;
        let mut any = false;
        let recent = Command::Logs {
            unit: unit.name.clone(),
            lines: 10,
            follow: false,
            since: None,
            until: None,
            grep: None,
        };
        let fetched = stream_logs(path, recent, false, |line| {
            any = true;
            out(&format!("{line}\n"))
        });
        match fetched {
            Ok(()) if !any => out("(no log lines)\n")?,
            Ok(()) => {}
            Err(f) if f.message.is_empty() => return Err(f),
            Err(f) => warn(&format!("cannot fetch logs: {}", f.message)),
        }
    } else {
        out(&render::render_table(&units, now))?;
    }
    Ok(code)
}

/// `audit`: a summary of every unit, or one unit in detail per name.
pub(crate) fn cmd_audit(
    path: &std::path::Path,
    units: Vec<String>,
    json: bool,
) -> Result<i32, Failure> {
    let one_each = !units.is_empty();
    let reports = match exchange(path, Command::Audit { units })? {
        Reply::Audit { units } => units,
        other => return Err(unexpected(&other)),
    };
    if json {
        let text = serde_json::to_string_pretty(&reports).map_err(|e| Failure {
            code: exit::FAILED,
            message: format!("cannot encode JSON: {e}"),
        })?;
        out(&format!("{text}\n"))?;
    } else if one_each {
        let parts: Vec<String> = reports.iter().map(render_audit::render_unit).collect();
        out(&parts.join("\n"))?;
    } else {
        out(&render_audit::render_summary(&reports))?;
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(name: &str, state: UnitState) -> UnitStatus {
        UnitStatus {
            sub_state: state.to_string(),
            want: "up".into(),
            ..UnitStatus::new(name, state)
        }
    }

    #[test]
    fn status_exit_codes() {
        let units = [unit("a", UnitState::Running), unit("b", UnitState::Failed)];
        assert_eq!(status_exit(&[], &units), 0);
        assert_eq!(status_exit(&["a".into()], &units), 0);
        assert_eq!(status_exit(&["a".into(), "b".into()], &units), 3);
        assert_eq!(status_exit(&["c".into()], &units), 3);
    }
}
