//! The spawn helper: `supd __spawn UNIT`, a fresh single-threaded process started by
//! supd with its control socket on fd 3. It reads the `LaunchPlan`, joins or creates
//! the namespaces, prepares the process step by step and execs the service. It
//! reports the service's pid and any failure (naming the step, path and errno) as
//! JSON lines on the socket; the socket is close-on-exec, so supd sees EOF once the
//! service runs.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::ffi::{CStr, CString, OsStr};
use std::io::{BufRead, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::{SigHandler, Signal, signal};
use nix::unistd::{
    AccessFlags, Gid, Uid, access, chdir, execve, setgroups, setresgid, setresuid, setsid,
};

use super::namespaces::{self, Side};
use super::sys::{cloexec_from, close_from, posix_spawn, set_cloexec};
use super::{HELPER_FD, LaunchPlan, Report, SpawnError, Step, mounts};
use super::{hooks, init};
use crate::unit::Namespace;

/// Entry point of helper mode. Never returns. `in_cgroup`: the fork server
/// created this process inside the unit's cgroup already.
pub fn main(in_cgroup: bool) -> ! {
    // SAFETY: supd passes the socket as fd 3 and nothing else in this fresh process
    // owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(HELPER_FD) };
    let mut sock = UnixStream::from(fd);
    // Into the unit's cgroup before anything else: everything the helper starts
    // is born inside (and a cgroup namespace is rooted there).
    let planned = read_plan(&mut sock).and_then(|plan| match in_cgroup {
        true => Ok(plan),
        false => super::sys::join_cgroup(&plan.cgroup_join).map(|()| plan),
    });
    let error = match planned {
        Ok(plan) => match hooks::out_of_the_way(sock, &plan) {
            Ok(moved) => {
                sock = moved;
                match run(&plan, &sock) {
                    Ok(never) => match never {},
                    Err(e) => e,
                }
            }
            Err((same, e)) => {
                sock = same;
                e
            }
        },
        Err(e) => e,
    };
    send(&sock, &Report::Error(error));
    std::process::exit(127);
}

fn send(mut sock: &UnixStream, report: &Report) {
    if let Ok(mut line) = serde_json::to_vec(report) {
        line.push(b'\n');
        // If supd is gone there is nobody to tell.
        let _ = sock.write_all(&line);
    }
}

/// Report the container's first process with its pidfd attached (SCM_RIGHTS), so
/// supd holds a handle on exactly this process.
fn send_pid_with_fd(sock: &UnixStream, child: i32, pidfd: &OwnedFd) -> Result<(), SpawnError> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let mut line = serde_json::to_vec(&Report::Pid(child))
        .map_err(|e| SpawnError::new(Step::Helper, None, None, e.to_string()))?;
    line.push(b'\n');
    let fds = [pidfd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [std::io::IoSlice::new(&line)];
    let sent = sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .map_err(|e| SpawnError::new(Step::SendReport, None, Some(e), "pid"))?;
    if sent != line.len() {
        return Err(SpawnError::new(Step::SendReport, None, None, "short write"));
    }
    Ok(())
}

/// The plan is one line of JSON; supd keeps the socket open after it, to say when the
/// container's first process is registered (`await_registration`).
fn read_plan(sock: &mut UnixStream) -> Result<LaunchPlan, SpawnError> {
    set_cloexec(&*sock)
        .map_err(|e| SpawnError::new(Step::Fcntl, None, Some(e), "control socket"))?;
    // Plans are a few KiB: one or two reads instead of a doubling series. Nothing
    // follows the line until the helper has reported, so none is read past it.
    let mut buf = Vec::with_capacity(64 * 1024);
    std::io::BufReader::new(&*sock)
        .read_until(b'\n', &mut buf)
        .map_err(|e| SpawnError::io(Step::ReadPlan, None, &e, ""))?;
    serde_json::from_slice(&buf)
        .map_err(|e| SpawnError::new(Step::DecodePlan, None, None, e.to_string()))
}

/// Everything between the plan and the exec. Returns only on failure.
fn run(plan: &LaunchPlan, sock: &UnixStream) -> Result<Infallible, SpawnError> {
    let c = &plan.container;
    // Before joining anything: the OOM score is written to ourselves (the container
    // inherits it), and /proc is opened while it is still the host's, since joining a
    // mount or user namespace changes what /proc is and what we may write there.
    let host_proc = namespaces::open_proc()?;
    if let Some(adj) = c.oom_score_adj {
        namespaces::write_proc_at(&host_proc, "self/oom_score_adj", &adj.to_string())?;
    }
    // Opened before any namespace is joined: the program is the host's file.
    let init_program = crate::supervise::runs_under_init(c)
        .then(super::init_program::open_program)
        .flatten();
    namespaces::join(c.join.iter())?;
    let needs_child = !c.namespaces.is_empty() || c.join.contains_key(&Namespace::Pid);
    if !needs_child {
        lead_session()?;
        hooks::run_start_pre(plan)?;
        send(sock, &Report::Pid(std::process::id() as i32));
        return exec_service(plan);
    }
    match namespaces::clone_child(&c.namespaces)? {
        Side::Parent {
            child,
            pidfd,
            release,
        } => {
            let prepared = prepare_child(plan, &host_proc, child, &pidfd, sock)
                .and_then(|()| namespaces::release(release));
            if let Err(e) = prepared {
                super::sys::pidfd_kill(&pidfd);
                return Err(e);
            }
            // The child carries on; the helper's work is done.
            std::process::exit(0);
        }
        Side::Child => {
            drop(host_proc);
            run_container(plan, sock, init_program)
        }
    }
}

/// Make this process (about to exec the service) the leader of a new session and
/// process group: supd signals the service's group, and a new session has no
/// controlling terminal. A helper posix_spawn'd by supd leads one already (and
/// `setsid` would fail for it); one forked by the fork server does not yet.
fn lead_session() -> Result<(), SpawnError> {
    let me = nix::unistd::getpid();
    if nix::unistd::getsid(None) == Ok(me) {
        return Ok(());
    }
    setsid()
        .map(drop)
        .map_err(|e| SpawnError::new(Step::Setsid, None, Some(e), ""))
}

/// From outside: the child's ID maps, then tell supd its pid (with its pidfd).
fn prepare_child(
    plan: &LaunchPlan,
    host_proc: &OwnedFd,
    child: i32,
    pidfd: &OwnedFd,
    sock: &UnixStream,
) -> Result<(), SpawnError> {
    let c = &plan.container;
    if c.namespaces.contains(&Namespace::User) {
        namespaces::write_id_maps(host_proc, child, &c.uid_map, &c.gid_map)?;
    }
    if let Some(net) = &plan.net {
        crate::net::setup::create_veths(net, child.unsigned_abs())
            .map_err(|e| net_error(Step::CreateVeth, &e))?;
    }
    send_pid_with_fd(sock, child, pidfd)?;
    await_registration(sock)
}

fn net_error(step: Step, e: &crate::net::netlink::NetlinkError) -> SpawnError {
    let errno = e.errno().map(Errno::from_raw);
    SpawnError::new(step, None, errno, e.what.clone())
}

/// Wait until supd has registered the child (one byte). Until it is released, the
/// child cannot exit by itself, so it is never reaped before supd knows whose it is:
/// its pid cannot be reused, and its exit cannot be taken for another's.
fn await_registration(mut sock: &UnixStream) -> Result<(), SpawnError> {
    let mut byte = [0u8; 1];
    match sock.read(&mut byte) {
        Ok(1) => Ok(()),
        Ok(_) => Err(SpawnError::new(
            Step::AwaitRegistration,
            None,
            None,
            "supd closed the socket",
        )),
        Err(e) => Err(SpawnError::io(Step::AwaitRegistration, None, &e, "")),
    }
}

/// Inside the new namespaces, in the order runtimes settled on: identity in the user
/// namespace, mounts (propagation first, pivot_root), hostname, loopback, the
/// `exec_start_pre` commands; then the service, directly or under an init.
fn run_container(
    plan: &LaunchPlan,
    sock: &UnixStream,
    init_program: Option<OwnedFd>,
) -> Result<Infallible, SpawnError> {
    let c = &plan.container;
    let created: &BTreeSet<Namespace> = &c.namespaces;
    // Before anything of the unit's runs here: nothing in the container may open
    // this process's /proc entries (its exe is supd's binary on the host).
    super::init_program::not_dumpable()
        .map_err(|e| SpawnError::new(Step::Prctl, None, Some(e), "PR_SET_DUMPABLE"))?;
    // Its own process group, so supd can signal the container as a whole.
    setsid().map_err(|e| SpawnError::new(Step::Setsid, None, Some(e), ""))?;
    // Planned, and its bind sources opened, while the helper is still supd's own
    // uid: the mapped root of a user namespace may not reach them.
    let mount_plan = created
        .contains(&Namespace::Mnt)
        .then(|| mounts::prepare(c, &plan.mounts, &plan.host))
        .transpose()?;
    if created.contains(&Namespace::User) {
        namespaces::become_userns_root(&c.uid_map, &c.gid_map)?;
    }
    if let Some(mount_plan) = mount_plan {
        mount_plan.apply()?;
    }
    if created.contains(&Namespace::Uts) {
        namespaces::set_names(c.hostname.as_deref(), c.domainname.as_deref())?;
    }
    match &plan.net {
        Some(net) => crate::net::setup::configure_inside(net)
            .map_err(|e| net_error(Step::ConfigureInterface, &e))?,
        None if created.contains(&Namespace::Net) => namespaces::loopback_up()?,
        None => {}
    }
    hooks::run_start_pre(plan)?;
    // Only a PID namespace of its own gives the init PID 1 (in a joined one it would
    // be an ordinary process whose exit leaves the service's children behind).
    if !(created.contains(&Namespace::Pid) && c.init) {
        return exec_service(plan);
    }
    // The init itself takes the service's restrictions (identity, capabilities,
    // seccomp): it only forwards signals to and reaps processes of the same user, and
    // the service is then started with a vfork-style posix_spawn instead of a fork.
    init::block_all_signals()?;
    close_stray_fds()?;
    let p = restrict(plan, true)?;
    let argv: Vec<&CStr> = p.argv.iter().map(CString::as_c_str).collect();
    let env: Vec<&CStr> = p.env.iter().map(CString::as_c_str).collect();
    let ready: Vec<_> = hooks::ready_dup(plan).into_iter().collect();
    let service = posix_spawn(&p.path, &argv, &env, &ready)
        .map_err(|e| SpawnError::new(Step::Exec, Some(&p.shown), Some(e), ""))?;
    // The init keeps no descriptor but 0-2: the service's copy of the report socket
    // closed at its exec, so supd sees EOF now; the readiness pipe is the service's
    // alone.
    let _ = sock;
    // Every descriptor above 2 is close-on-exec by now, the init program's own too.
    let ambient = match &plan.credentials {
        Some(creds) if creds.uid != 0 => Some(&c.protection.ambient_capabilities),
        _ => None,
    };
    let after_exec = init::capabilities_after_exec(&c.capabilities, ambient);
    if let Some(program) = &init_program
        && init::program_can_signal_service(&after_exec, c.no_new_privs)
    {
        super::init_program::exec_program(program, service);
    }
    // SAFETY: run_init uses no descriptor above 2, and their owners (the socket,
    // the plan's, the init program's) live in frames that never return. A failure
    // only leaves a descriptor open, and there is nobody left to report it to.
    let _ = unsafe { close_from(3) };
    init::run_init(service)
}

/// The service's program, resolved and ready to exec.
struct Program {
    path: CString,
    shown: String,
    argv: Vec<CString>,
    env: Vec<CString>,
}

/// Exec the service in this process.
pub(super) fn exec_service(plan: &LaunchPlan) -> Result<Infallible, SpawnError> {
    close_stray_fds()?;
    init::unblock_all_signals()?;
    let p = restrict(plan, false)?;
    // Last, after seccomp: a failed step before leaves the pipe unused (the
    // helper exits and supd sees it close without a line).
    hooks::attach_ready_fd(plan)?;
    let e = execve(&p.path, &p.argv, &p.env)
        .err()
        .unwrap_or(Errno::UnknownErrno);
    Err(SpawnError::new(Step::Exec, Some(&p.shown), Some(e), ""))
}

/// The service's restrictions for code of supd's own that runs in its place (a
/// health probe): everything `restrict` does, seccomp last, but no program.
pub(super) fn restrict_only(plan: &LaunchPlan) -> Result<(), SpawnError> {
    let early_seccomp = restrict_process(plan, false)?;
    if !early_seccomp {
        install_seccomp(plan)?;
    }
    Ok(())
}

/// Resource limits, identity, capabilities, umask, no_new_privs, working directory,
/// then seccomp as the very last step before the exec.
fn restrict(plan: &LaunchPlan, for_init: bool) -> Result<Program, SpawnError> {
    let early_seccomp = restrict_process(plan, for_init)?;
    let program = resolve_program(plan)?;
    let shown = program.to_string_lossy().into_owned();
    let path = cstring(program.as_os_str(), &shown)?;
    let argv = plan
        .argv
        .iter()
        .map(|a| cstring(OsStr::new(a), &shown))
        .collect::<Result<Vec<_>, _>>()?;
    let env = plan
        .env
        .iter()
        .map(|a| cstring(OsStr::new(a), &shown))
        .collect::<Result<Vec<_>, _>>()?;
    if !early_seccomp {
        install_seccomp(plan)?;
    }
    Ok(Program {
        path,
        shown,
        argv,
        env,
    })
}

/// `restrict` up to the program: returns whether seccomp is already installed.
fn restrict_process(plan: &LaunchPlan, for_init: bool) -> Result<bool, SpawnError> {
    let c = &plan.container;
    // First the default, so that a unit's own `nofile` overrides it.
    set_default_nofile()?;
    for (name, limit) in &c.rlimits {
        super::security::set_rlimit(name, limit.soft, limit.hard)?;
    }
    let early_seccomp = plan.seccomp.is_some() && !c.no_new_privs;
    if early_seccomp {
        // Without no_new_privs the kernel wants CAP_SYS_ADMIN for the filter, which
        // is about to be dropped: install it now (it allows what follows).
        install_seccomp(plan)?;
    }
    super::security::drop_bounding(&c.capabilities)?;
    set_identity(plan)?;
    // A service that is not root keeps only what the unit lists as ambient.
    let ambient = match &plan.credentials {
        Some(creds) if creds.uid != 0 => Some(&c.protection.ambient_capabilities),
        _ => None,
    };
    super::security::set_capabilities(&c.capabilities, ambient, for_init)?;
    if let Some(mask) = plan.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    if c.no_new_privs {
        nix::sys::prctl::set_no_new_privs()
            .map_err(|e| SpawnError::new(Step::NoNewPrivs, None, Some(e), ""))?;
    }
    let workdir = plan.workdir.to_string_lossy();
    chdir(&plan.workdir).map_err(|e| SpawnError::new(Step::Chdir, Some(&workdir), Some(e), ""))?;
    // Rust ignores SIGPIPE in every program it starts; the service expects the default.
    // SAFETY: restoring the default disposition installs no Rust handler.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }
        .map_err(|e| SpawnError::new(Step::Signal, None, Some(e), "SIGPIPE"))?;
    Ok(early_seccomp)
}

/// The soft RLIMIT_NOFILE a service starts with. supd raises its own soft limit
/// to the hard one, but select(2) cannot handle descriptors of 1024 and above
/// (FD_SETSIZE), so programs expect that much by default and ask for more
/// themselves, as under systemd.
const DEFAULT_NOFILE_SOFT: u64 = 1024;

/// The default soft limit under a given hard limit (which stays as it is).
fn default_nofile(hard: u64) -> u64 {
    DEFAULT_NOFILE_SOFT.min(hard)
}

fn set_default_nofile() -> Result<(), SpawnError> {
    let fail =
        |e, detail: String| SpawnError::new(Step::Setrlimit, Some("nofile"), Some(e), detail);
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| fail(e, "getrlimit".into()))?;
    let soft = default_nofile(hard);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).map_err(|e| fail(e, format!("{soft}/{hard}")))
}

fn install_seccomp(plan: &LaunchPlan) -> Result<(), SpawnError> {
    match &plan.seccomp {
        Some(program) => program
            .install()
            .map_err(|e| SpawnError::new(Step::Seccomp, None, Some(e), "install filter")),
        None => Ok(()),
    }
}

fn set_identity(plan: &LaunchPlan) -> Result<(), SpawnError> {
    let Some(c) = &plan.credentials else {
        return Ok(());
    };
    // Keep the permitted capabilities across the uid change; the keep-list is then
    // applied explicitly.
    nix::sys::prctl::set_keepcaps(true)
        .map_err(|e| SpawnError::new(Step::Prctl, None, Some(e), "PR_SET_KEEPCAPS"))?;
    let groups: Vec<Gid> = c.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    setgroups(&groups).map_err(|e| SpawnError::new(Step::Setgroups, None, Some(e), ""))?;
    let gid = Gid::from_raw(c.gid);
    setresgid(gid, gid, gid)
        .map_err(|e| SpawnError::new(Step::Setresgid, None, Some(e), c.gid.to_string()))?;
    let uid = Uid::from_raw(c.uid);
    setresuid(uid, uid, uid)
        .map_err(|e| SpawnError::new(Step::Setresuid, None, Some(e), c.uid.to_string()))?;
    nix::sys::prctl::set_keepcaps(false)
        .map_err(|e| SpawnError::new(Step::Prctl, None, Some(e), "PR_SET_KEEPCAPS"))
}

/// Nothing but fds 0-3 may reach the service; 3 is already close-on-exec.
fn close_stray_fds() -> Result<(), SpawnError> {
    cloexec_from(4).map_err(|e| SpawnError::new(Step::CloseRange, None, Some(e), ""))
}

/// `exec[0]` as given if it contains a '/', else the first executable match in the
/// service's own PATH (not supd's).
fn resolve_program(plan: &LaunchPlan) -> Result<PathBuf, SpawnError> {
    let name = plan.argv.first().map(String::as_str).unwrap_or_default();
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    let path = plan
        .env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or_default();
    path.split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| access(candidate, AccessFlags::X_OK).is_ok() && candidate.is_file())
        .ok_or_else(|| {
            SpawnError::new(
                Step::Exec,
                Some(name),
                Some(Errno::ENOENT),
                format!("not found in PATH={path}"),
            )
        })
}

fn cstring(s: &OsStr, path: &str) -> Result<CString, SpawnError> {
    CString::new(s.as_bytes()).map_err(|_| {
        SpawnError::new(
            Step::Exec,
            Some(path),
            Some(Errno::EINVAL),
            "argument contains a NUL byte",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_default_to_1024_open_files_under_any_hard_limit() {
        for (hard, soft) in [
            (524_288, 1024),
            (4096, 1024),
            (1024, 1024),
            (256, 256),
            (libc::RLIM_INFINITY, 1024),
        ] {
            assert_eq!(default_nofile(hard), soft, "hard {hard}");
        }
    }
}
