//! supd: the sup daemon. See `supd --help` and docs/.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sup::cli::supd::{Cli, LogFormat, LogTarget, SupdCmd};
use sup::daemon::{self, Config, Ending};
use sup::spawn;

/// The targets named by `--log-target`, each socket checked.
fn log_targets(cli: &Cli) -> Result<sup::logs::Targets, String> {
    let has = |t| cli.log_target.contains(&t);
    let targets = sup::logs::Targets {
        files: has(LogTarget::File),
        journald: has(LogTarget::Journald).then(|| cli.journal_socket.clone()),
        syslog: has(LogTarget::Syslog).then(|| cli.syslog_socket.clone()),
    };
    targets.check()?;
    Ok(targets)
}

fn main() -> ExitCode {
    // Helper mode must be decided before anything else runs, in particular before
    // any thread exists: the helper is the single-threaded half of spawning.
    match std::env::args_os().nth(1) {
        Some(a) if a == spawn::HELPER_ARG => spawn::helper::main(false),
        Some(a) if a == spawn::join::JOIN_ARG => spawn::join::main(),
        Some(a) if spawn::is_fork_server_mode(&a) => spawn::fork_server_main(),
        _ => {}
    }
    // The helpers above are short-lived and keep malloc's thread caches. supd drops
    // them (memory a burst needed goes back), before anything else so nothing runs
    // twice.
    sup::memory::restart_without_thread_caches();
    let pid1 = sup::pid1::is_pid1();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // The kernel may hand PID 1 arguments it did not understand itself; exiting
        // would panic the kernel, so PID 1 carries on with the defaults.
        Err(e) if pid1 => {
            eprintln!("supd: ignoring arguments: {e}");
            Cli::parse_from(["supd"])
        }
        Err(e) => e.exit(),
    };
    init_tracing(cli.log_format, pid1);
    if let Some(SupdCmd::Image(cmd)) = cli.command {
        let socket = cli.state_dir.join(sup::control::client::SOCKET_NAME);
        return match sup::control::image_cli::run(cmd, &cli.state_dir, &socket) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("supd: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if cli.check {
        return check(&cli.units);
    }
    ensure_standard_fds();
    raise_fd_limit();
    if pid1 {
        sup::pid1::early_boot(cli.hostname.as_deref());
    }
    become_subreaper();
    // Before the runtime's threads exist: memory a burst needed goes back afterwards.
    sup::memory::tune_malloc();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("supd: cannot start the async runtime: {e}");
            if pid1 {
                sup::pid1::final_shutdown(sup::pid1::Halt::Poweroff, sup::pid1::GRACE);
            }
            return ExitCode::FAILURE;
        }
    };
    let control_group = match cli.control_group.as_deref().map(resolve_group).transpose() {
        Ok(gid) => gid,
        Err(e) => {
            eprintln!("supd: --control-group: {e}");
            return ExitCode::from(2);
        }
    };
    // Absolute, so status shows where units and logs are whatever the directory
    // supctl runs in.
    let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
    let log_targets = match log_targets(&cli) {
        Ok(targets) => targets,
        // PID 1 must not exit: its units' output goes to files (and the console).
        Err(e) if pid1 => {
            eprintln!("supd: --log-target: {e}; writing unit output to files instead");
            sup::logs::Targets::default()
        }
        Err(e) => {
            eprintln!("supd: --log-target: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(init) = spawn::init_program_path().filter(|p| !p.exists()) {
        tracing::warn!(
            "{} is missing: each container's init stays a copy of supd (about 300 KiB \
             instead of 80); install it beside supd",
            init.display()
        );
    }
    let config = Config {
        log_targets,
        control_group,
        metrics_listen: cli.metrics_listen,
        units_dir: absolute(cli.units),
        state_dir: absolute(cli.state_dir),
        cgroup_root: cli.cgroup_root,
        forward_output: cli.forward_output || pid1,
    };
    // A panic must not end PID 1: it is caught and the machine halts in order.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(daemon::run(config))
    }));
    drop(runtime);
    let ending = match outcome {
        Ok(Ok(ending)) => Ok(ending),
        Ok(Err(e)) => {
            // Once: supd's log is on stderr too.
            eprintln!("supd: {e}");
            Err(())
        }
        Err(_) => {
            eprintln!("supd: internal error (panic); shutting down in order");
            Err(())
        }
    };
    if let Ok(Ending {
        exit_code: Some((code, action)),
        ..
    }) = ending
    {
        // As PID 1 the code cannot be an exit status: the console records it.
        let action = sup::unit::names::Named::name(action);
        eprintln!("supd: exit code {code} (on_failure = \"{action}\")");
    }
    if pid1 {
        let (halt, grace) = match ending {
            Ok(e) if e.hurried => (e.halt, std::time::Duration::from_secs(1)),
            Ok(e) => (e.halt, sup::pid1::GRACE),
            // A fatal error: the configured emergency action is an orderly poweroff.
            Err(()) => (sup::pid1::Halt::Poweroff, sup::pid1::GRACE),
        };
        sup::pid1::final_shutdown(halt, grace);
    }
    match ending {
        Ok(Ending {
            exit_code: Some((code, _)),
            ..
        }) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Ok(_) => ExitCode::SUCCESS,
        Err(()) => ExitCode::FAILURE,
    }
}

fn init_tracing(format: LogFormat, pid1: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SUPD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A serial console may not understand colours: none as PID 1.
    let ansi = !pid1
        && std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// `supd --check`: every error of every file, then a summary; exit 1 on any error.
fn check(dir: &std::path::Path) -> ExitCode {
    match sup::unit::load_dir(dir) {
        Ok(loaded) => {
            for e in &loaded.errors {
                println!("{e}");
            }
            // A file can have several errors; count each unit once.
            let broken: std::collections::BTreeSet<&str> =
                loaded.errors.iter().map(|e| e.unit.as_str()).collect();
            println!(
                "{}: {} valid, {} with errors",
                dir.display(),
                loaded.units.len(),
                broken.len()
            );
            if loaded.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("supd: cannot read units directory {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

/// fds 0-2 must exist, or the first socket or pipe supd opens would become "stdout"
/// (the kernel may start PID 1 without them).
fn ensure_standard_fds() {
    for fd in 0..3 {
        // A raw fd, not a BorrowedFd: the descriptor may not exist, and a BorrowedFd
        // promises that it does.
        // SAFETY: F_GETFD only reads the descriptor's flags; on a closed descriptor
        // it fails with EBADF.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            // open() returns the lowest free fd, which is the missing one.
            if let Ok(null) = nix::fcntl::open(
                "/dev/null",
                nix::fcntl::OFlag::O_RDWR,
                nix::sys::stat::Mode::empty(),
            ) {
                std::mem::forget(null);
            }
        }
    }
}

/// supd holds a few descriptors per service (output pipes, pidfds), so its soft
/// RLIMIT_NOFILE goes up to the hard limit, as systemd does for itself. Services
/// get the conventional soft 1024 back unless their unit says otherwise (see the
/// spawn helper): select(2) breaks above it.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(soft, hard, "cannot raise the open files limit: {e}");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot read the open files limit: {e}"),
    }
}

/// Orphans of services (double-forked daemons) come back to supd to be reaped, and
/// are killed when supd exits. PID 1 gets them anyway.
fn become_subreaper() {
    if std::process::id() != 1
        && let Err(e) = nix::sys::prctl::set_child_subreaper(true)
    {
        eprintln!("supd: cannot become child subreaper: {e}");
    }
}

/// A group name (looked up in /etc/group, no NSS) or a numeric gid.
fn resolve_group(name: &str) -> Result<u32, String> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    let group = std::fs::read_to_string("/etc/group")
        .map_err(|e| format!("cannot read /etc/group: {e}"))?;
    let accounts = spawn::accounts::Accounts::parse("", &group);
    accounts.group_by_name(name).map(|g| g.gid).ok_or_else(|| {
        format!("no group {name:?} in /etc/group (create it, or give a numeric gid)")
    })
}
