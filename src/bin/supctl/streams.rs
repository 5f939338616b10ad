//! The verbs whose answer is a stream read to its end: `logs` and `events`.

use std::time::SystemTime;

use sup::control::client::Client;
use sup::control::exit;
use sup::control::proto::{Command, Reply};
use sup::control::render;

use crate::{Failure, out, request, unexpected};

/// Run a `logs` request, handing each line to `each`. Returns at `end`, or at EOF when
/// following.
pub(crate) fn stream_logs(
    path: &std::path::Path,
    command: Command,
    json: bool,
    mut each: impl FnMut(&str) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let follow = matches!(command, Command::Logs { follow: true, .. });
    let mut client = Client::connect(path)?;
    client.send(&request(command))?;
    loop {
        match client.recv()? {
            Some(Reply::Log(line)) if json => {
                let text = serde_json::to_string(&line).map_err(|e| Failure {
                    code: exit::FAILED,
                    message: format!("cannot encode log line: {e}"),
                })?;
                each(&text)?
            }
            Some(Reply::Log(line)) => each(&render::render_log_line(&line))?,
            Some(Reply::End) => return Ok(()),
            Some(Reply::Error { code, message }) => {
                return Err(Failure {
                    code: exit::for_error_code(code),
                    message,
                });
            }
            Some(other) => return Err(unexpected(&other)),
            None if follow => return Ok(()),
            None => {
                return Err(Failure {
                    code: exit::UNREACHABLE,
                    message: "supd closed the connection before the end of the log".into(),
                });
            }
        }
    }
}

/// `--since`/`--until`: RFC 3339 as given, or a duration before `now`.
pub(crate) fn absolute_time(text: &str, now: SystemTime) -> Result<String, Failure> {
    let usage = |why: String| Failure {
        code: exit::USAGE,
        message: format!(
            "{text:?}: {why}; use RFC 3339 (2026-11-29T21:00:00Z) or a duration ago (10m, 2h)"
        ),
    };
    if humantime::parse_rfc3339_weak(text).is_ok() {
        return Ok(text.to_owned());
    }
    let ago = humantime::parse_duration(text).map_err(|e| usage(e.to_string()))?;
    let at = now
        .checked_sub(ago)
        .ok_or_else(|| usage("too far back".into()))?;
    Ok(humantime::format_rfc3339_millis(at).to_string())
}

/// `events`: print every event until supd goes away or the output is closed.
pub(crate) fn cmd_events(
    path: &std::path::Path,
    units: Vec<String>,
    json: bool,
) -> Result<i32, Failure> {
    let mut client = Client::connect(path)?;
    client.send(&request(Command::Events { units }))?;
    loop {
        match client.recv()? {
            Some(Reply::Event(event)) => {
                let line = if json {
                    serde_json::to_string(&event).map_err(|e| Failure {
                        code: exit::FAILED,
                        message: format!("cannot encode event: {e}"),
                    })?
                } else {
                    render::render_event(&event)
                };
                out(&format!("{line}\n"))?;
            }
            Some(Reply::Error { code, message }) => {
                return Err(Failure {
                    code: exit::for_error_code(code),
                    message,
                });
            }
            Some(other) => return Err(unexpected(&other)),
            // supd stopped: the stream ends.
            None => return Ok(exit::OK),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_times_are_rfc3339_or_a_duration_ago() {
        let now = humantime::parse_rfc3339("2026-11-29T12:00:00Z").unwrap();
        assert_eq!(
            absolute_time("10m", now).unwrap(),
            "2026-11-29T11:50:00.000Z"
        );
        assert_eq!(
            absolute_time("2026-11-29T11:00:00Z", now).unwrap(),
            "2026-11-29T11:00:00Z"
        );
        assert_eq!(
            absolute_time("yesterday-ish", now).unwrap_err().code,
            exit::USAGE
        );
    }
}
