//! supd: the sup daemon. See `supd --help` and docs/.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use sup::daemon::{self, Config};
use sup::spawn;

#[derive(Debug, Parser)]
#[command(
    name = "supd",
    version,
    about = "Supervise services declared in TOML unit files"
)]
struct Cli {
    /// Directory of unit files (one `NAME.toml` per unit).
    #[arg(long, value_name = "DIR", default_value = "/etc/sup/units")]
    units: PathBuf,
    /// Directory for the control socket and the unit logs.
    #[arg(
        long,
        value_name = "DIR",
        env = "SUP_STATE_DIR",
        default_value = "/run/sup"
    )]
    state_dir: PathBuf,
    /// Name of supd's cgroup subtree, created below supd's own cgroup.
    #[arg(long, value_name = "NAME", default_value = "sup")]
    cgroup_root: String,
    /// Validate the units directory, print every error and exit (non-zero on errors).
    #[arg(long)]
    check: bool,
    /// Format of supd's own log on stderr. The level comes from SUPD_LOG (default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

fn main() -> ExitCode {
    // Helper mode must be decided before anything else runs, in particular before
    // any thread exists: the helper is the single-threaded half of spawning.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == spawn::HELPER_ARG)
    {
        spawn::helper::main();
    }
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    if cli.check {
        return check(&cli.units);
    }
    ensure_standard_fds();
    become_subreaper();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("supd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = Config {
        units_dir: cli.units,
        state_dir: cli.state_dir,
        cgroup_root: cli.cgroup_root,
    };
    match runtime.block_on(daemon::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("supd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SUPD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
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
            println!(
                "{}: {} valid, {} with errors",
                dir.display(),
                loaded.units.len(),
                loaded.errors.len()
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
        if nix::fcntl::fcntl(unsafe_borrow(fd), nix::fcntl::FcntlArg::F_GETFD).is_err() {
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

fn unsafe_borrow(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: only used for F_GETFD, which is harmless on a closed descriptor.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
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
