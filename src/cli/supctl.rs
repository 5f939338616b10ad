//! supctl's command line (the binary parses it; `sup-gen` makes its man page and
//! completions from it).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "supctl", version, about = "Control the sup process supervisor")]
pub struct Cli {
    /// State directory of supd; the socket is DIR/control.sock [default: /run/sup]
    #[arg(long, global = true, value_name = "DIR", env = "SUP_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Path of supd's control socket (overrides --state-dir)
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Show the state of all units, or of the named ones
    Status {
        #[arg(value_name = "UNIT")]
        units: Vec<String>,
        /// Print the unit status objects as JSON
        #[arg(long)]
        json: bool,
    },
    /// Start units
    Start {
        #[arg(value_name = "UNIT", required = true)]
        units: Vec<String>,
        /// Wait until the units are ready (or failed)
        #[arg(long)]
        wait: bool,
    },
    /// Stop units
    Stop {
        #[arg(value_name = "UNIT", required = true)]
        units: Vec<String>,
        /// Wait until the units have stopped
        #[arg(long)]
        wait: bool,
    },
    /// Restart units
    Restart {
        #[arg(value_name = "UNIT", required = true)]
        units: Vec<String>,
        /// Wait until the units are ready again (or failed)
        #[arg(long)]
        wait: bool,
    },
    /// Allow disabled units to start again (with --now, also start them)
    Enable {
        #[arg(value_name = "UNIT", required = true)]
        units: Vec<String>,
        /// Also start the units (and what they require)
        #[arg(long)]
        now: bool,
    },
    /// Stop units and keep them stopped, across supd restarts, until `enable`
    Disable {
        #[arg(value_name = "UNIT", required = true)]
        units: Vec<String>,
        /// Accepted for systemctl's habit: disable always stops the units
        #[arg(long)]
        now: bool,
    },
    /// Clear the failed state (and start limit) of units
    ResetFailed {
        #[arg(value_name = "UNIT", required = true)]
        units: Vec<String>,
    },
    /// Stop every unit, then power off (supd as PID 1) or exit
    Poweroff,
    /// Stop every unit, then reboot (supd as PID 1) or exit
    Reboot,
    /// Show every unit's resource use, refreshed every second (like systemd-cgtop)
    Top {
        /// Stop after this many refreshes (default: until interrupted)
        #[arg(short = 'n', long, value_name = "N")]
        iterations: Option<u64>,
    },
    /// Re-read the unit directory and apply the changes
    Reload {
        /// Only show what would change
        #[arg(long)]
        dry_run: bool,
    },
    /// Show how exposed units leave the host and supd (each protection, a score)
    Audit {
        #[arg(value_name = "UNIT")]
        units: Vec<String>,
        /// Print the reports as JSON
        #[arg(long)]
        json: bool,
    },
    /// From inside a service: tell supd it is ready, how it is doing, or that it is
    /// alive (sd_notify over $NOTIFY_SOCKET, like systemd-notify); waits (at most
    /// 5 s) until supd has read the message, which counts only from a process of
    /// the unit
    Notify {
        /// READY=1: the service is ready
        #[arg(long)]
        ready: bool,
        /// STATUS=TEXT: shown by `supctl status`
        #[arg(long, value_name = "TEXT")]
        status: Option<String>,
        /// More fields, e.g. WATCHDOG=1, STOPPING=1, EXTEND_TIMEOUT_USEC=5000000
        #[arg(value_name = "KEY=VALUE")]
        fields: Vec<String>,
    },
    /// Run a command inside a unit's running container (its namespaces, cgroup,
    /// identity, capabilities and seccomp); exits with the command's exit code
    Exec {
        /// Give the command a terminal (a pty; supctl's own goes into raw mode)
        #[arg(short = 't', long)]
        tty: bool,
        /// Run as USER (a name or uid of the container) instead of the service's user
        #[arg(short = 'u', long, value_name = "USER")]
        user: Option<String>,
        /// Set an environment variable (repeatable)
        #[arg(short = 'e', long = "env", value_name = "KEY=VAL")]
        env: Vec<String>,
        /// Working directory (default: the service's)
        #[arg(short = 'w', long = "workdir", value_name = "DIR")]
        workdir: Option<String>,
        #[arg(value_name = "UNIT")]
        unit: String,
        /// The command and its arguments (after `--` if they start with `-`)
        #[arg(
            value_name = "CMD",
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        argv: Vec<String>,
    },
    /// Send a signal to a unit's main process (or with --all to all its processes)
    Kill {
        /// The signal: a name (HUP, SIGHUP) or a number
        #[arg(short = 's', long, value_name = "SIGNAL", default_value = "SIGTERM")]
        signal: String,
        /// Every process of the unit's cgroup, not only the main process
        #[arg(long)]
        all: bool,
        #[arg(value_name = "UNIT")]
        unit: String,
    },
    /// Manage the image store: import, ls, inspect, rm, prune (see docs/images.md)
    #[command(subcommand)]
    Image(crate::control::image_cli::ImageCmd),
    /// Discard an image unit's writable layer (the unit must be stopped)
    Reset {
        #[arg(value_name = "UNIT", required = true)]
        units: Vec<String>,
    },
    /// Stream what happens (state changes, exits, restarts, health, reloads) live
    Events {
        #[arg(value_name = "UNIT")]
        units: Vec<String>,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Turn a unit directory into Kubernetes manifests or a compose file, offline
    /// (no supd needed); what cannot be carried over is warned about on stderr
    #[command(subcommand)]
    Export(ExportCmd),
    /// Show a unit's output
    Logs {
        #[arg(value_name = "UNIT")]
        unit: String,
        /// Number of past lines to show
        #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 50)]
        lines: usize,
        /// Keep printing new lines until interrupted
        #[arg(short, long)]
        follow: bool,
        /// Only lines from this time on: RFC 3339 (2026-11-29T21:00:00Z), or a
        /// duration ago (10m, 2h, 1d)
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only lines up to this time (same forms as --since)
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Only lines containing TEXT
        #[arg(long, value_name = "TEXT")]
        grep: Option<String>,
        /// One JSON object per line (ts, stream, line)
        #[arg(long)]
        json: bool,
    },
}

/// `supctl export`: the target format and where the units are (docs/export.md).
#[derive(Debug, Clone, Subcommand)]
pub enum ExportCmd {
    /// Kubernetes objects (Deployment/StatefulSet/Job, Service, ConfigMap, Secret)
    /// as a multi-document YAML stream
    Kubernetes {
        #[command(flatten)]
        common: ExportArgs,
        /// Put every object in this namespace (default: kubectl's current one)
        #[arg(long, value_name = "NS")]
        namespace: Option<String>,
    },
    /// A compose file (services, networks, secrets)
    Compose {
        #[command(flatten)]
        common: ExportArgs,
    },
}

/// What both export formats take.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// The unit directory to export (read like `supd --check`)
    #[arg(long, value_name = "DIR")]
    pub units: PathBuf,
    /// Prefix every image with this registry path (where the images were pushed)
    #[arg(long, value_name = "PREFIX")]
    pub registry: Option<String>,
    /// Write files into DIR instead of stdout: UNIT.yaml per unit (kubernetes)
    /// or compose.yaml
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
}

/// supctl's command line as a clap `Command`, for man pages and completions.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
