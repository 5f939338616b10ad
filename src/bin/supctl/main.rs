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
use sup::control::proto::{Command, PROTOCOL_VERSION, Reply, Request};
use sup::control::render;

mod streams;
mod views;

use streams::{absolute_time, cmd_events, stream_logs};
use views::{cmd_audit, cmd_status, cmd_top};

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

/// `notify`: one datagram to $NOTIFY_SOCKET, then wait until supd has read it
/// (supd credits a message only from a process of the unit alive when it reads
/// it); supd is never asked anything else.
fn cmd_notify(ready: bool, status: Option<String>, fields: Vec<String>) -> Result<i32, Failure> {
    let usage = |message| Failure {
        code: exit::USAGE,
        message,
    };
    let message = sup::notify::compose(ready, status.as_deref(), &fields).map_err(usage)?;
    let socket = std::env::var("NOTIFY_SOCKET").map_err(|_| {
        usage("NOTIFY_SOCKET is not set: run this from a unit with type = \"notify\"".into())
    })?;
    let read = sup::notify::send(&socket, &message).map_err(|e| Failure {
        code: exit::UNREACHABLE,
        message: format!("cannot send to NOTIFY_SOCKET={socket}: {e}"),
    })?;
    if !read {
        // Sent; whether it counts is the receiver's to say.
        eprintln!(
            "supctl notify: sent, but NOTIFY_SOCKET={socket} did not read it within {}s",
            sup::notify::BARRIER_TIMEOUT.as_secs()
        );
    }
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
    fn start_needs_a_unit() {
        let err = Cli::try_parse_from(["supctl", "start"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(Cli::try_parse_from(["supctl", "reset-failed", "a", "b"]).is_ok());
        assert!(Cli::try_parse_from(["supctl", "reload", "--dry-run"]).is_ok());
    }
}
