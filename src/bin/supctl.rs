//! `supctl`: control a running `supd` over its Unix socket (see docs/protocol.md).
//!
//! ```text
//! supctl [--state-dir DIR | --socket PATH] COMMAND
//! ```
//!
//! The socket is `--socket PATH` if given, else `DIR/control.sock` for `--state-dir DIR`
//! (or `$SUP_STATE_DIR`), else `/run/sup/control.sock`.
//!
//! Exit codes (`exec` exits with its command's, once it ran):
//!
//! | code | meaning                                                                      |
//! |------|------------------------------------------------------------------------------|
//! | 0    | success                                                                      |
//! | 1    | an operation failed (a unit failed, definitions were rejected, supd internal error) |
//! | 2    | usage error (bad arguments)                                                  |
//! | 3    | `status`: a named unit is not running; `exec`, `kill`: the unit is not running |
//! | 4    | a named unit is not loaded (error `not-found`)                               |
//! | 5    | cannot reach supd (or, for `notify`, the notify socket) (no socket, stale socket, EOF before a reply, protocol or version error, supd shutting down) |
//! | 6    | permission denied (socket EACCES or error `permission-denied`)               |
//! | 7    | timeout (no reply within 30 s, or error `timeout`)                           |

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::Parser;

use sup::cli::supctl::{Cli, Cmd};
use sup::control::client::{Client, ClientError, DEFAULT_STATE_DIR, socket_path};
use sup::control::exit;
use sup::control::proto::{
    Command, ErrorCode, PROTOCOL_VERSION, Reply, Request, UnitState, UnitStatus,
};
use sup::control::{render, render_audit};

/// Why supctl stops early: an exit code and a message for stderr (empty: say nothing).
#[derive(Debug)]
struct Failure {
    code: i32,
    message: String,
}

impl From<ClientError> for Failure {
    fn from(err: ClientError) -> Self {
        Failure {
            code: exit::for_client_error(&err),
            message: err.to_string(),
        }
    }
}

fn unexpected(reply: &Reply) -> Failure {
    let kind = match reply {
        Reply::Status { .. } => "status",
        Reply::Done { .. } => "done",
        Reply::Reload { .. } => "reload",
        Reply::Audit { .. } => "audit",
        Reply::Log(_) => "log",
        Reply::Exit { .. } => "exit",
        Reply::Event(_) => "event",
        Reply::End => "end",
        Reply::Error { .. } => "error",
    };
    Failure {
        code: exit::UNREACHABLE,
        message: format!("unexpected `{kind}` reply from supd"),
    }
}

/// Write to stdout; a closed pipe (`supctl logs | head`) ends the program quietly.
fn out(text: &str) -> Result<(), Failure> {
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| {
            if e.kind() == io::ErrorKind::BrokenPipe {
                Failure {
                    code: exit::OK,
                    message: String::new(),
                }
            } else {
                Failure {
                    code: exit::FAILED,
                    message: format!("cannot write to stdout: {e}"),
                }
            }
        })
}

fn warn(text: &str) {
    let _ = writeln!(io::stderr().lock(), "supctl: {text}");
}

fn request(command: Command) -> Request {
    Request {
        v: PROTOCOL_VERSION,
        command,
    }
}

/// Send one request on a fresh connection and return its (non-error) reply.
fn exchange(path: &std::path::Path, command: Command) -> Result<Reply, Failure> {
    let mut client = Client::connect(path)?;
    match client.request(&request(command))? {
        Reply::Error { code, message } => Err(Failure {
            code: exit::for_error_code(code),
            message,
        }),
        reply => Ok(reply),
    }
}

/// Run a `logs` request, handing each line to `each`. Returns at `end`, or at EOF when
/// following.
fn stream_logs(
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
fn absolute_time(text: &str, now: SystemTime) -> Result<String, Failure> {
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

/// Exit code of `status`: 3 when a named unit is not running (or missing from the reply).
fn status_exit(named: &[String], units: &[UnitStatus]) -> i32 {
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
fn cmd_top(path: &std::path::Path, iterations: Option<u64>) -> Result<i32, Failure> {
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

fn cmd_status(path: &std::path::Path, named: Vec<String>, json: bool) -> Result<i32, Failure> {
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

fn cmd_units(path: &std::path::Path, command: Command) -> Result<i32, Failure> {
    let results = match exchange(path, command)? {
        Reply::Done { results } => results,
        other => return Err(unexpected(&other)),
    };
    let mut code = exit::OK;
    for result in &results {
        match render::render_result(result) {
            Ok(line) => out(&format!("{line}\n"))?,
            Err(line) => {
                code = exit::FAILED;
                let _ = writeln!(io::stderr().lock(), "{line}");
            }
        }
    }
    Ok(code)
}

fn cmd_reload(path: &std::path::Path, dry_run: bool) -> Result<i32, Failure> {
    match exchange(path, Command::Reload { dry_run })? {
        Reply::Reload { plan, applied } => {
            out(&render::render_reload(&plan, applied))?;
            Ok(if plan.rejected.is_empty() {
                exit::OK
            } else {
                exit::FAILED
            })
        }
        other => Err(unexpected(&other)),
    }
}

/// `notify`: one datagram to $NOTIFY_SOCKET; supd is never asked.
fn cmd_notify(ready: bool, status: Option<String>, fields: Vec<String>) -> Result<i32, Failure> {
    let usage = |message| Failure {
        code: exit::USAGE,
        message,
    };
    let message = sup::notify::compose(ready, status.as_deref(), &fields).map_err(usage)?;
    let socket = std::env::var("NOTIFY_SOCKET").map_err(|_| {
        usage("NOTIFY_SOCKET is not set: run this from a unit with type = \"notify\"".into())
    })?;
    sup::notify::send(&socket, &message).map_err(|e| Failure {
        code: exit::UNREACHABLE,
        message: format!("cannot send to NOTIFY_SOCKET={socket}: {e}"),
    })?;
    Ok(exit::OK)
}

/// `export`: offline, no supd. Warnings go to stderr, the YAML to stdout (unless
/// `--output`); warnings alone do not fail it.
fn cmd_export(cmd: &sup::cli::supctl::ExportCmd) -> Result<i32, Failure> {
    let export = sup::export::run::run(cmd).map_err(|message| Failure {
        code: exit::FAILED,
        message,
    })?;
    {
        let mut stderr = io::stderr().lock();
        for w in &export.warnings {
            let _ = writeln!(stderr, "{w}");
        }
    }
    let to_stdout = match cmd {
        sup::cli::supctl::ExportCmd::Kubernetes { common, .. }
        | sup::cli::supctl::ExportCmd::Compose { common } => common.output.is_none(),
    };
    if to_stdout {
        out(&export.stream())?;
    }
    Ok(exit::OK)
}

fn run(cli: Cli) -> Result<i32, Failure> {
    if let Cmd::Notify {
        ready,
        status,
        fields,
    } = cli.command
    {
        return cmd_notify(ready, status, fields);
    }
    if let Cmd::Export(cmd) = &cli.command {
        return cmd_export(cmd);
    }
    let path = socket_path(cli.socket.as_deref(), cli.state_dir.as_deref());
    if let Cmd::Image(cmd) = cli.command {
        // supd's socket is DIR/control.sock: with only --socket, its directory.
        let from_socket = cli.socket.as_deref().and_then(std::path::Path::parent);
        let state_dir = cli
            .state_dir
            .or_else(|| from_socket.map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        let text = sup::control::image_cli::run(cmd, &state_dir, &path).map_err(|e| Failure {
            code: exit::FAILED,
            message: e.to_string(),
        })?;
        out(&text)?;
        return Ok(exit::OK);
    }
    match cli.command {
        Cmd::Status { units, json } => cmd_status(&path, units, json),
        Cmd::Start { units, wait } => cmd_units(&path, Command::Start { units, wait }),
        Cmd::Stop { units, wait } => cmd_units(&path, Command::Stop { units, wait }),
        Cmd::Restart { units, wait } => cmd_units(&path, Command::Restart { units, wait }),
        Cmd::ResetFailed { units } => cmd_units(&path, Command::ResetFailed { units }),
        Cmd::Reset { units } => cmd_units(&path, Command::Reset { units }),
        Cmd::Image(_) => Ok(exit::OK),
        Cmd::Enable { units, now } => cmd_units(&path, Command::Enable { units, now }),
        Cmd::Disable { units, now } => cmd_units(&path, Command::Disable { units, now }),
        Cmd::Reload { dry_run } => cmd_reload(&path, dry_run),
        Cmd::Top { iterations } => cmd_top(&path, iterations),
        Cmd::Audit { units, json } => cmd_audit(&path, units, json),
        Cmd::Poweroff => exchange(&path, Command::Poweroff).map(|_| exit::OK),
        Cmd::Reboot => exchange(&path, Command::Reboot).map(|_| exit::OK),
        Cmd::Notify { .. } | Cmd::Export(_) => Ok(exit::OK),
        Cmd::Exec {
            tty,
            user,
            env,
            workdir,
            unit,
            argv,
        } => {
            let command = Command::Exec {
                unit,
                argv,
                tty,
                user,
                env,
                workdir,
            };
            cmd_exec(&path, command, tty)
        }
        Cmd::Kill { signal, all, unit } => cmd_kill(&path, unit, signal, all),
        Cmd::Logs {
            unit,
            lines,
            follow,
            since,
            until,
            grep,
            json,
        } => {
            let now = SystemTime::now();
            let command = Command::Logs {
                unit,
                lines,
                follow,
                since: since.map(|t| absolute_time(&t, now)).transpose()?,
                until: until.map(|t| absolute_time(&t, now)).transpose()?,
                grep,
            };
            stream_logs(&path, command, json, |line| out(&format!("{line}\n")))?;
            Ok(exit::OK)
        }
        Cmd::Events { units, json } => cmd_events(&path, units, json),
    }
}

/// `events`: print every event until supd goes away or the output is closed.
fn cmd_events(path: &std::path::Path, units: Vec<String>, json: bool) -> Result<i32, Failure> {
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

/// `exec`: the command's exit code (128+N when killed by signal N).
fn cmd_exec(path: &std::path::Path, command: Command, tty: bool) -> Result<i32, Failure> {
    if let Command::Exec { env, .. } = &command
        && let Some(bad) = env
            .iter()
            .find(|kv| kv.split_once('=').is_none_or(|(k, _)| k.is_empty()))
    {
        return Err(Failure {
            code: exit::USAGE,
            message: format!("-e {bad}: expected KEY=VALUE"),
        });
    }
    let mut client = Client::connect(path)?;
    match sup::control::exec_client::run(&mut client, &request(command), tty)? {
        Some(Reply::Exit { code, signal }) => {
            Ok(sup::control::exec::exit_code(code, signal.as_deref()))
        }
        Some(Reply::Error { code, message }) => Err(Failure {
            code: exit::for_error_code(code),
            message,
        }),
        Some(other) => Err(unexpected(&other)),
        None => Err(ClientError::Closed.into()),
    }
}

/// `kill`: quiet on success, like kill(1).
fn cmd_kill(
    path: &std::path::Path,
    unit: String,
    signal: String,
    all: bool,
) -> Result<i32, Failure> {
    sup::unit::values::parse_signal(&signal).map_err(|message| Failure {
        code: exit::USAGE,
        message,
    })?;
    match exchange(path, Command::Kill { unit, signal, all })? {
        Reply::Done { .. } => Ok(exit::OK),
        other => Err(unexpected(&other)),
    }
}

/// `audit`: a summary of every unit, or one unit in detail per name.
fn cmd_audit(path: &std::path::Path, units: Vec<String>, json: bool) -> Result<i32, Failure> {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        Err(failure) => {
            if !failure.message.is_empty() {
                warn(&failure.message);
            }
            failure.code
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_global_options_and_logs_defaults() {
        let cli = Cli::try_parse_from(["supctl", "logs", "web", "--socket", "/s"]).unwrap();
        assert_eq!(cli.socket, Some(PathBuf::from("/s")));
        match cli.command {
            Cmd::Logs {
                unit,
                lines,
                follow,
                ..
            } => {
                assert_eq!(unit, "web");
                assert_eq!(lines, 50);
                assert!(!follow);
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["supctl", "logs", "-n", "5", "-f", "web"]).unwrap();
        assert!(matches!(
            cli.command,
            Cmd::Logs {
                lines: 5,
                follow: true,
                ..
            }
        ));
    }

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

    #[test]
    fn start_needs_a_unit() {
        let err = Cli::try_parse_from(["supctl", "start"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(Cli::try_parse_from(["supctl", "reset-failed", "a", "b"]).is_ok());
        assert!(Cli::try_parse_from(["supctl", "reload", "--dry-run"]).is_ok());
    }

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
