//! `supctl exec` on the daemon's side: the loop only checks that the unit runs and
//! hands the connection task a `Launcher` holding what a join needs (the unit's
//! definition, a pidfd of its main process, its cgroup). The launcher runs in a
//! blocking thread: it resolves the service's plan with the operator's changes
//! (command, `-u`, `-e`, `-w`) and starts a join helper (`spawn::join`, as a health
//! probe's) with the client's descriptors as its stdin, stdout and stderr.

use std::ffi::CString;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use tokio::sync::oneshot;

use super::event_loop::Daemon;
use crate::control::exec::Launcher;
use crate::control::proto::Reply;
use crate::control::server::Answer;
use crate::spawn::join::{self, EncodedJoinPlan, JoinAction, JoinPlan};
use crate::unit::Unit;

/// What the operator asked to run.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub unit: String,
    pub argv: Vec<String>,
    pub tty: bool,
    pub user: Option<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
}

impl Daemon {
    pub(super) fn exec_request(&mut self, req: ExecRequest, answer: oneshot::Sender<Answer>) {
        let answered = match self.exec_launcher(req) {
            Ok(launcher) => Answer::Exec(launcher),
            Err(reply) => Answer::Reply(*reply),
        };
        // The client may have gone away; nothing to do then.
        let _ = answer.send(answered);
    }

    fn exec_launcher(&self, req: ExecRequest) -> Result<Launcher, Box<Reply>> {
        let bad = |message: String| {
            Box::new(Reply::Error {
                code: crate::control::proto::ErrorCode::BadRequest,
                message,
            })
        };
        if req.argv.is_empty() {
            return Err(bad("exec needs a command".into()));
        }
        if let Some(kv) = req
            .env
            .iter()
            .find(|kv| kv.split_once('=').is_none_or(|(k, _)| k.is_empty()))
        {
            return Err(bad(format!("env {kv:?}: expected KEY=VALUE")));
        }
        let Some(slot) = self.fleet.get(&req.unit) else {
            return Err(Box::new(self.not_found(std::slice::from_ref(&req.unit))));
        };
        let state = super::status::unit_state(slot.machine.state());
        let attempt = slot.machine.attempt();
        let target = slot.machine.pid().and_then(|_| {
            self.main_pidfds
                .get(&req.unit)
                .filter(|(a, _)| *a == attempt)
                .map(|(_, fd)| fd.clone())
        });
        let Some(target) = target else {
            return Err(Box::new(super::kill::not_running(&req.unit, state)));
        };
        let spec = slot.spec.clone();
        let cgroup = self.cgroups.for_probe(&req.unit);
        let registry = self.registry.clone();
        let state_dir = self.state_dir().to_path_buf();
        Ok(Launcher(Box::new(move |stdio| {
            let plan = exec_plan(&spec, &state_dir, req).map_err(|e| e.to_string())?;
            let procs = cgroup
                .join_files()
                .iter()
                .map(|p| CString::new(p.as_os_str().as_bytes()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| "a cgroup path holds a NUL".to_string())?;
            let [i, o, e] = &stdio;
            let (_helper, sock) = join::start_command(
                &plan,
                target.as_fd(),
                &registry,
                &procs,
                [i.as_fd(), o.as_fd(), e.as_fd()],
            )
            .map_err(|e| e.to_string())?;
            Ok(sock)
        })))
    }
}

/// The service's plan (its identity, restrictions and environment) with the
/// operator's command and changes. Blocking (account files).
fn exec_plan(
    spec: &Unit,
    state_dir: &std::path::Path,
    req: ExecRequest,
) -> Result<EncodedJoinPlan, crate::spawn::SpawnError> {
    let mut launch = crate::spawn::plan(spec, state_dir)?;
    // What only a start uses: the container has its mounts, and the readiness
    // pipe is the service's.
    launch.mounts.clear();
    launch.exec_start_pre.clear();
    launch.ready_fd = None;
    launch.argv = req.argv;
    if let Some(user) = &req.user {
        crate::spawn::run_as(&mut launch, spec, user)?;
    }
    for kv in req.env {
        let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
        let prefix = format!("{key}=");
        launch.env.retain(|e| !e.starts_with(&prefix));
        launch.env.push(kv);
    }
    if let Some(dir) = req.workdir {
        launch.workdir = PathBuf::from(dir);
    }
    JoinPlan {
        launch,
        action: JoinAction::Command { tty: req.tty },
        timeout_ms: 0,
    }
    .encode()
}
