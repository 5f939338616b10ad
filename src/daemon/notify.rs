//! sd_notify on the daemon's side: each unit that may notify (`type = "notify"`)
//! gets its socket before its first start, kept across restarts; what arrives on it
//! becomes fleet events (ready, watchdog, start extension) or status (STATUS=,
//! MAINPID=).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use tokio::io::AsyncReadExt;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::event_loop::Daemon;
use crate::notify::Notice;
use crate::notify::socket::{self, UnitNotice};
use crate::supervise::{Event, Now};
use crate::unit::{ServiceType, Unit};

/// The notify sockets, and what units said last.
#[derive(Debug)]
pub struct NotifySockets {
    root: PathBuf,
    tx: mpsc::UnboundedSender<UnitNotice>,
    receivers: HashMap<String, (PathBuf, JoinHandle<()>)>,
    /// `STATUS=` text per unit.
    pub status: HashMap<String, String>,
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

    /// The unit's socket directory (created on first use), if it may notify.
    pub fn ensure(&mut self, unit: &Unit) -> Option<PathBuf> {
        if unit.service.lifecycle.kind != ServiceType::Notify {
            self.forget(&unit.name);
            return None;
        }
        if let Some((dir, _)) = self.receivers.get(&unit.name) {
            return Some(dir.clone());
        }
        match socket::create(&self.root, &unit.name) {
            Ok((dir, sock)) => {
                let task = tokio::spawn(socket::receive(sock, unit.name.clone(), self.tx.clone()));
                self.receivers
                    .insert(unit.name.clone(), (dir.clone(), task));
                Some(dir)
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
        if let Some((dir, task)) = self.receivers.remove(unit) {
            task.abort();
            let _ = std::fs::remove_dir_all(dir);
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
            // From a service that has since been replaced.
            return;
        }
        let actions = match n.notice {
            Notice::Ready => {
                let how = if n.attempt.is_some() {
                    "ready_fd"
                } else {
                    "READY=1"
                };
                tracing::info!(unit, "ready ({how})");
                self.fleet.on_ready(&unit, now)
            }
            Notice::Watchdog => self.fleet.on_notify(&unit, Event::WatchdogPing, now),
            Notice::ExtendTimeout(by) => self.fleet.on_notify(&unit, Event::ExtendStart(by), now),
            Notice::Status(text) => {
                self.notify.status.insert(unit, text);
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
