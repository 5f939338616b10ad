//! sd_notify on the daemon's side: each unit that may notify (`type = "notify"`)
//! gets its socket before its first start, kept across restarts; what its own
//! processes send on it (see `notify::sender`) becomes fleet events (ready, watchdog, start extension) or status (STATUS=,
//! MAINPID=).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio::io::AsyncReadExt;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::event_loop::Daemon;
use crate::notify::Notice;
use crate::notify::sender::Membership;
use crate::notify::socket::{self, UnitNotice};
use crate::supervise::{Event, Now};
use crate::unit::{ServiceType, Unit};

/// One unit's socket: its directory, the task reading it, and the run its
/// cgroup holds (see `socket::Watch`).
#[derive(Debug)]
struct Receiver {
    dir: PathBuf,
    task: JoinHandle<()>,
    run: Arc<AtomicU64>,
}

/// The notify sockets, and what units said last.
#[derive(Debug)]
pub struct NotifySockets {
    root: PathBuf,
    tx: mpsc::UnboundedSender<UnitNotice>,
    receivers: HashMap<String, Receiver>,
    /// `STATUS=` text per unit, with the start attempt that sent it (None: not
    /// known).
    pub status: HashMap<String, (Option<u64>, String)>,
    /// `MAINPID=` per unit, as the service sees it.
    pub main_pid: HashMap<String, i32>,
}

impl NotifySockets {
    pub fn new(root: PathBuf, tx: mpsc::UnboundedSender<UnitNotice>) -> Self {
        NotifySockets {
            root,
            tx,
            receivers: HashMap::new(),
            status: HashMap::new(),
            main_pid: HashMap::new(),
        }
    }

    /// The unit's socket (created on first use), if it may notify: what the
    /// start stores its attempt in once the unit's cgroup holds nothing of the
    /// run before. `membership` (asked only when the socket is made) tells the
    /// unit's processes from others (`None` without cgroups): only theirs count
    /// (`notify::sender`).
    pub fn ensure(
        &mut self,
        unit: &Unit,
        membership: impl FnOnce() -> Option<Membership>,
    ) -> Option<Arc<AtomicU64>> {
        if unit.service.lifecycle.kind != ServiceType::Notify {
            self.forget(&unit.name);
            return None;
        }
        if let Some(r) = self.receivers.get(&unit.name) {
            return Some(r.run.clone());
        }
        match socket::create(&self.root, &unit.name) {
            Ok((dir, sock)) => {
                let run = Arc::new(AtomicU64::new(0));
                let watch = socket::Watch {
                    unit: unit.name.clone(),
                    in_unit: membership(),
                    run: run.clone(),
                };
                let task = tokio::spawn(socket::receive(sock, watch, self.tx.clone()));
                let receiver = Receiver {
                    dir,
                    task,
                    run: run.clone(),
                };
                self.receivers.insert(unit.name.clone(), receiver);
                Some(run)
            }
            Err(e) => {
                tracing::error!(unit = %unit.name, error = %e, "cannot create the notify socket; READY=1 cannot arrive");
                None
            }
        }
    }

    /// Units whose name `keep` rejects lose their socket.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        let gone: Vec<String> = self
            .receivers
            .keys()
            .filter(|u| !keep(u))
            .cloned()
            .collect();
        for unit in gone {
            self.forget(&unit);
        }
    }

    /// The unit is gone (or no longer notifies): its socket goes.
    pub fn forget(&mut self, unit: &str) {
        if let Some(r) = self.receivers.remove(unit) {
            r.task.abort();
            let _ = std::fs::remove_dir_all(r.dir);
        }
        self.status.remove(unit);
        self.main_pid.remove(unit);
    }
}

/// Read a service's readiness pipe (`ready_fd`) until its first newline: that is
/// READY=1 for this attempt (s6's notification-fd). The pipe closing first, or a
/// kilobyte without a newline, means the service never said it is ready.
pub async fn read_ready_pipe(
    fd: OwnedFd,
    unit: String,
    attempt: u64,
    out: mpsc::UnboundedSender<UnitNotice>,
) {
    const LIMIT: usize = 1024;
    let mut rx = match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
        Ok(rx) => rx,
        Err(e) => {
            tracing::warn!(unit, error = %e, "cannot read the readiness pipe (ready_fd)");
            return;
        }
    };
    let mut seen = 0;
    let mut chunk = [0u8; 256];
    while seen < LIMIT {
        let n = match rx.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if chunk[..n].contains(&b'\n') {
            let notice = UnitNotice {
                unit,
                notice: Notice::Ready,
                attempt: Some(attempt),
                from_pipe: true,
            };
            let _ = out.send(notice);
            return;
        }
        seen += n;
    }
    tracing::warn!(
        unit,
        "{LIMIT} bytes on ready_fd without a newline; no longer read"
    );
}

impl NotifySockets {
    /// Wait for the readiness line of attempt `attempt` on `fd`.
    pub fn watch_ready_pipe(&self, unit: &str, attempt: u64, fd: OwnedFd) {
        tokio::spawn(read_ready_pipe(
            fd,
            unit.to_string(),
            attempt,
            self.tx.clone(),
        ));
    }
}

impl Daemon {
    /// A message from a unit's service.
    pub(super) fn on_notice(&mut self, n: UnitNotice) {
        let now = Now::read();
        let unit = n.unit;
        if let Some(attempt) = n.attempt
            && self.fleet.get(&unit).map(|s| s.machine.attempt()) != Some(attempt)
        {
            // From a run that has since been replaced.
            tracing::debug!(unit, attempt, "a notice of an earlier run: dropped");
            return;
        }
        let actions = match n.notice {
            Notice::Ready => {
                let how = if n.from_pipe { "ready_fd" } else { "READY=1" };
                tracing::info!(unit, "ready ({how})");
                self.fleet.on_ready(&unit, now)
            }
            Notice::Watchdog => self.fleet.on_notify(&unit, Event::WatchdogPing, now),
            Notice::ExtendTimeout(by) => self.fleet.on_notify(&unit, Event::ExtendStart(by), now),
            Notice::Status(text) => {
                self.notify.status.insert(unit, (n.attempt, text));
                return;
            }
            Notice::MainPid(pid) => {
                self.notify.main_pid.insert(unit, pid);
                return;
            }
            Notice::Stopping => {
                // Asked to stop (by supd: its phase says so), or going by itself.
                let asked = self.fleet.get(&unit).is_some_and(|s| {
                    matches!(s.machine.phase(), crate::supervise::Phase::Stopping { .. })
                });
                if asked {
                    tracing::debug!(unit, "the service is stopping (STOPPING=1)");
                } else {
                    tracing::info!(unit, "the service is stopping by itself (STOPPING=1)");
                }
                return;
            }
            Notice::WatchdogTrigger => {
                // Not acted on: sup has no watchdog action to run on demand.
                tracing::warn!(unit, "WATCHDOG=trigger from the service (ignored)");
                return;
            }
        };
        self.execute(actions);
    }
}
