//! supd's command line (the binary parses it; `sup-gen` makes its man page and
//! completions from it).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "supd",
    version,
    about = "Supervise services declared in TOML unit files"
)]
pub struct Cli {
    /// Directory of unit files (one `NAME.toml` per unit).
    #[arg(long, value_name = "DIR", default_value = "/etc/sup/units")]
    pub units: PathBuf,
    /// Directory for the control socket, the unit logs and the image store.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "SUP_STATE_DIR",
        default_value = "/run/sup"
    )]
    pub state_dir: PathBuf,
    /// Name of supd's cgroup subtree, created below supd's own cgroup.
    #[arg(long, value_name = "NAME", default_value = "sup")]
    pub cgroup_root: String,
    /// Hostname to set when running as PID 1.
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Copy every line of unit output to supd's stderr (on by default as PID 1).
    #[arg(long)]
    pub forward_output: bool,
    /// Validate the units directory, print every error and exit (non-zero on errors).
    #[arg(long)]
    pub check: bool,
    /// Members of this group (name or gid) may use the read-only verbs of supctl
    /// (status, logs, top, events, audit); everything else stays root-only.
    #[arg(long, value_name = "GROUP")]
    pub control_group: Option<String>,
    /// Serve Prometheus metrics on http://ADDR/metrics (e.g. 127.0.0.1:9477). Off by
    /// default.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Where unit output goes (besides the last lines in memory, for `supctl logs`):
    /// `file` (STATE/logs/UNIT.log), `journald`, `syslog`, or several, comma-separated.
    #[arg(
        long,
        value_enum,
        value_name = "TARGET",
        value_delimiter = ',',
        default_value = "file"
    )]
    pub log_target: Vec<LogTarget>,
    /// journald's native socket, for `--log-target journald`.
    #[arg(long, value_name = "PATH", env = "SUP_JOURNAL_SOCKET", default_value = crate::logs::JOURNAL_SOCKET)]
    pub journal_socket: PathBuf,
    /// The syslog datagram socket, for `--log-target syslog`.
    #[arg(long, value_name = "PATH", env = "SUP_SYSLOG_SOCKET", default_value = crate::logs::SYSLOG_SOCKET)]
    pub syslog_socket: PathBuf,
    /// Format of supd's own log on stderr. The level comes from SUPD_LOG (default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Option<SupdCmd>,
}

#[derive(Debug, Subcommand)]
pub enum SupdCmd {
    /// Manage the image store in the state directory, as `supctl image` does
    /// (for scripts and image builders; supd need not run)
    #[command(subcommand)]
    Image(crate::control::image_cli::ImageCmd),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogTarget {
    File,
    Journald,
    Syslog,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// supd's command line as a clap `Command`, for man pages and completions.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
