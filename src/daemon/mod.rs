//! supd: the event loop that owns all unit state, and what it drives.
//!
//! - `event_loop`: the loop itself, its single deadline, and the handling of exits,
//!   start outcomes, signals and timers; carrying out the fleet's actions;
//! - `dispatch`: control requests (`supctl`), answered from the loop;
//! - `status`: turning unit state into the wire types of `supctl status`;
//! - `reload`: reading the unit directory off the loop, in order, and applying it;
//! - `start`: starting one unit in a blocking thread (cgroup, plan, spawn);
//! - `exits`: exits from the reaper, annotated with OOM kills off the loop;
//! - `cgroups`: per-unit cgroup bookkeeping over the `cgroup` driver;
//! - `log_registry`: every unit's log; `watch`: the unit directory watcher.
//!
//! Nothing here polls: the loop sleeps until an event or the next deadline, and no
//! blocking IO (files, cgroupfs) runs on it.

mod actions;
mod cgroups;
mod dispatch;
mod enable;
mod event_loop;
mod events;
mod exec;
mod exits;
mod health;
mod kill;
mod log_registry;
mod metrics;
mod network;
mod notify;
mod peers;
mod probe_helper;
mod probe_start;
mod reload;
mod start;
mod state_dir;
mod status;
mod stop_post;
mod watch;
mod worker;

use std::path::PathBuf;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch as tokio_watch};

use crate::control::server;
use crate::logs::LogWriter;
use crate::reaper::{self, Registry};
use cgroups::CgroupJobs;
use event_loop::{Daemon, Inputs, Links};
use log_registry::LogRegistry;

#[derive(Debug, Clone)]
pub struct Config {
    pub units_dir: PathBuf,
    pub state_dir: PathBuf,
    /// Name of supd's cgroup subtree (below supd's own cgroup).
    pub cgroup_root: String,
    /// Copy every line of unit output to supd's stderr (the console, as PID 1).
    pub forward_output: bool,
    /// `--control-group`: the gid whose members may use the read-only verbs.
    pub control_group: Option<u32>,
    /// `--metrics-listen`: where to serve Prometheus metrics.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `--log-target`: where unit output goes besides memory.
    pub log_targets: crate::logs::Targets,
}

/// How supd's run ended: what the machine should do next (PID 1) and whether a
/// second shutdown request asked to hurry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending {
    pub halt: crate::pid1::Halt,
    pub hurried: bool,
    /// A unit with `on_failure = "exit"` (or `"poweroff"`/`"reboot"`) failed:
    /// supd exits with its code, and the `on_failure` value that ended the run.
    pub exit_code: Option<(i32, crate::unit::OnFailure)>,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot read units directory {path}: {source}")]
    UnitsDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    StateDir(String),
    #[error("the event loop ended early: {0}")]
    EventLoop(String),
    #[error("cannot listen on {path}: {source}")]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot install handler for {signal}: {source}")]
    Signal {
        signal: &'static str,
        source: std::io::Error,
    },
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the log writer: {0}")]
    LogWriter(std::io::Error),
}

/// Run supd until a shutdown request has stopped every unit.
pub async fn run(config: Config) -> Result<Ending, DaemonError> {
    let logs_dir = config.state_dir.join("logs");
    state_dir::prepare(&config.state_dir).map_err(DaemonError::StateDir)?;
    state_dir::prepare(&logs_dir).map_err(DaemonError::StateDir)?;
    let incumbents = reload::Incumbents::default();
    let parses = reload::Parses::default();
    let loaded = reload::read_dir(
        config.units_dir.clone(),
        config.state_dir.clone(),
        incumbents.clone(),
        parses.clone(),
    )
    .await
    .map_err(|source| DaemonError::UnitsDir {
        path: config.units_dir.clone(),
        source,
    })?;
    reload::log_rejections(&loaded);
    let socket_path = config.state_dir.join(crate::control::client::SOCKET_NAME);
    let listener = server::bind(&socket_path).map_err(|source| DaemonError::Socket {
        path: socket_path.clone(),
        source,
    })?;
    if let Some(gid) = config.control_group {
        server::share_with_group(&socket_path, gid).map_err(|source| DaemonError::Socket {
            path: socket_path.clone(),
            source,
        })?;
    }
    let writer = LogWriter::start_with(config.forward_output, &config.log_targets)
        .map_err(DaemonError::LogWriter)?;

    let registry = Registry::default();
    let cgroups = CgroupJobs::new(&config.cgroup_root).await;
    let (exit_tx, exits_raw) = mpsc::unbounded_channel();
    let (annotated_tx, exits) = mpsc::unbounded_channel();
    let (outcome_tx, outcomes) = mpsc::unbounded_channel();
    let (query_tx, queries) = mpsc::unbounded_channel();
    let (loaded_tx, loaded_rx) = mpsc::unbounded_channel();
    let (notice_tx, notices) = mpsc::unbounded_channel();
    let (probe_tx, probe_reports) = mpsc::unbounded_channel();
    let (changes, changes_rx) = tokio_watch::channel(0u64);
    let listen = |kind, name| {
        signal(kind).map_err(|source| DaemonError::Signal {
            signal: name,
            source,
        })
    };
    let inputs = Inputs {
        exits,
        outcomes,
        queries,
        loaded: loaded_rx,
        notices,
        probe_reports,
        sigterm: listen(SignalKind::terminate(), "SIGTERM")?,
        sigint: listen(SignalKind::interrupt(), "SIGINT")?,
        sighup: listen(SignalKind::hangup(), "SIGHUP")?,
        dir_watch: watch::DirWatch::start(&config.units_dir),
    };
    tokio::spawn(reaper::run(registry.clone(), exit_tx));
    tokio::spawn(exits::annotate(
        exits_raw,
        cgroups.oom_reader(),
        annotated_tx,
    ));
    let reloads = reload::spawn_worker(
        config.units_dir.clone(),
        config.state_dir.clone(),
        incumbents.clone(),
        parses,
        loaded_tx,
    );
    let peers = peers::PeerPolicy::new(cgroups.subtree_paths());
    let policy = peers.clone();
    let counters = metrics::Counters::default();
    if let Some(addr) = config.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| DaemonError::Metrics { addr, source })?;
        tracing::info!(%addr, "serving metrics on /metrics");
        tokio::spawn(metrics::serve(listener, query_tx.clone(), counters.clone()));
    }
    let server_task = tokio::spawn(server::serve(
        listener,
        server::Handle {
            queries: query_tx,
            changes: changes_rx,
            owner_uid: nix::unistd::geteuid().as_raw(),
            read_gid: config.control_group,
            peer_check: std::sync::Arc::new(move |pid| policy.check(pid)),
        },
    ));

    let logs = LogRegistry::new(logs_dir, writer.clone());
    let links = Links {
        outcomes: outcome_tx,
        changes,
        reloads,
        incumbents,
    };
    let notify = notify::NotifySockets::new(
        config.state_dir.join(crate::notify::socket::NOTIFY_DIR),
        notice_tx,
    );
    let extras = event_loop::Extras {
        peers,
        notify,
        probes: health::Probes::new(probe_tx),
        trimmer: crate::memory::Trimmer::start(),
        networks: network::Networks::new(&config.state_dir, registry.clone()),
        counters,
    };
    let state_dir = config.state_dir.clone();
    let mut daemon = Daemon::new(config, registry, cgroups, logs, links, extras);
    daemon.load_disabled();
    daemon.apply_loaded(loaded, None);
    tracing::info!(units = daemon.unit_count(), socket = %socket_path.display(), "supd started");
    // On a worker, where the reaper, the timers and the sockets wake it: awaited
    // here, the loop would make every event a wake-up of this thread besides.
    let (ending, cgroups, networks) = match tokio::spawn(daemon.run(inputs)).await {
        Ok(done) => done,
        // A panic goes on to supd's main, which halts in order as before.
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only a runtime shutting down cancels it, and that cannot happen
            // while this is awaited.
            Err(e) => return Err(DaemonError::EventLoop(e.to_string())),
        },
    };

    server_task.abort();
    let _ = std::fs::remove_file(&socket_path);
    kill_stray_children();
    cgroups.teardown();
    // Every unit stopped: nothing uses their image roots (their upper layers stay).
    crate::image::root::unmount_all(&state_dir);
    crate::spawn::credentials::teardown(&state_dir);
    // On the network worker (nft runs as a child reaped by the reaper task).
    networks.teardown().await;
    writer.flush().await;
    tracing::info!("all units stopped; supd exits");
    Ok(ending)
}

/// Children re-parented to supd (daemons that left their unit's process group) must
/// not outlive it: kill and reap whatever is left.
fn kill_stray_children() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let me = std::process::id() as i32;
    // The fork server is supd's own, not a unit's: told to go (it exits at
    // end-of-file), it is neither killed nor reported here.
    let fork_server = crate::spawn::shut_down_fork_server();
    let killed: Vec<i32> = crate::procfs::processes()
        .into_iter()
        .filter(|p| p.ppid == me && p.pid > 1 && Some(p.pid) != fork_server)
        .filter(|p| kill(Pid::from_raw(p.pid), Signal::SIGKILL).is_ok())
        .map(|p| p.pid)
        .collect();
    if !killed.is_empty() {
        tracing::warn!(
            count = killed.len(),
            "killed processes left behind by units"
        );
    }
    for pid in killed {
        // SIGKILL cannot be caught; the wait ends as soon as the kernel tears it down
        // (ECHILD if the reaper task got there first).
        let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
    }
}
