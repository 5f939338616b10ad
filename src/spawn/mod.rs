//! Starting a service process.
//!
//! supd's own process is multithreaded (tokio), so it never runs Rust code in a forked
//! child. Instead it `posix_spawn`s a fresh copy of its own binary in helper mode
//! (`supd __spawn UNIT`, see `helper`), which is single-threaded and may do anything:
//! it receives a `LaunchPlan` over a socket on fd 3, sets up the process (session,
//! credentials, working directory; later namespaces and mounts) and execs the service.
//! The socket is close-on-exec in the helper, so a successful exec shows up here as EOF
//! without a message; a failure arrives first as a `SpawnError` naming the step.

pub mod container;
pub mod helper;
pub mod mounts;
pub mod seccomp;
pub mod security;

use std::ffi::{CStr, CString};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl, open};
use nix::sys::stat::Mode;
use nix::unistd::{Group, User, pipe2};
use serde::{Deserialize, Serialize};

use crate::reaper::Registry;
use crate::supervise::ExitStatus;
use crate::unit::{ContainerSpec, IdSpec, MountKind, MountSpec, Namespace, Unit};
use mounts::PlannedMount;
use seccomp::SeccompProgram;

/// The fd on which the helper finds its control socket.
pub const HELPER_FD: RawFd = 3;
/// The argv[1] that selects helper mode in the supd binary.
pub const HELPER_ARG: &str = "__spawn";
/// A helper that neither execs nor reports within this time is killed.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything the helper needs, fully resolved: it does no lookups of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchPlan {
    pub unit: String,
    pub argv: Vec<String>,
    /// `KEY=value` strings, the complete environment of the service.
    pub env: Vec<String>,
    pub workdir: PathBuf,
    pub credentials: Option<Credentials>,
    pub umask: Option<u32>,
    pub container: ContainerSpec,
    /// The mounts to make, in order: the unit's own plus the defaults (see
    /// `effective_mounts`), with overlay directories resolved.
    pub mounts: Vec<PlannedMount>,
    pub seccomp: Option<SeccompProgram>,
}

/// What the helper (or the container's first process) tells supd, one JSON line each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Report {
    /// The host pid that will exec (or run the init of) the service.
    Pid(i32),
    Error(SpawnError),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// Which step failed, on what, with which errno.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{step}{}: {}", .path.as_ref().map(|p| format!(" {p}")).unwrap_or_default(), describe_errno(*.errno, .detail))]
pub struct SpawnError {
    pub step: String,
    pub path: Option<String>,
    pub errno: Option<i32>,
    pub detail: String,
}

fn describe_errno(errno: Option<i32>, detail: &str) -> String {
    match errno {
        Some(e) => {
            let e = Errno::from_raw(e);
            if detail.is_empty() {
                format!("{e:?} ({})", e.desc())
            } else {
                format!("{e:?} ({}): {detail}", e.desc())
            }
        }
        None => detail.to_string(),
    }
}

impl SpawnError {
    pub fn new(
        step: &str,
        path: Option<&str>,
        errno: Option<Errno>,
        detail: impl Into<String>,
    ) -> Self {
        SpawnError {
            step: step.into(),
            path: path.map(str::to_string),
            errno: errno.map(|e| e as i32),
            detail: detail.into(),
        }
    }
}

/// A started service: its pid (also its process group and session id) and its output.
#[derive(Debug)]
pub struct Spawned {
    pub pid: i32,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// The pid already ended before supd registered it (a very short-lived service).
    pub early_exit: Option<ExitStatus>,
}

/// Resolve a unit into a launch plan. Blocking (user database lookups, creating
/// overlay directories under `state_dir`).
pub fn plan(unit: &Unit, state_dir: &Path) -> Result<LaunchPlan, SpawnError> {
    let svc = &unit.service;
    let mut credentials = resolve_credentials(svc.user.as_ref(), svc.group.as_ref())?;
    let extra_groups = resolve_groups(&svc.supplementary_groups)?;
    if !extra_groups.is_empty() {
        let creds = credentials.get_or_insert_with(|| Credentials {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            groups: vec![nix::unistd::getegid().as_raw()],
        });
        creds.groups.extend(extra_groups);
        creds.groups.sort_unstable();
        creds.groups.dedup();
    }
    let mut env: std::collections::BTreeMap<String, String> = Default::default();
    env.insert("PATH".into(), DEFAULT_PATH.into());
    if let Some(user) = user_record(svc.user.as_ref())? {
        env.insert("HOME".into(), user.dir.to_string_lossy().into_owned());
        env.insert("USER".into(), user.name.clone());
        env.insert("LOGNAME".into(), user.name);
    }
    env.insert("SUP_UNIT".into(), unit.name.clone());
    env.extend(svc.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(LaunchPlan {
        unit: unit.name.clone(),
        argv: svc.exec.clone(),
        env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        workdir: svc.workdir.clone().unwrap_or_else(|| PathBuf::from("/")),
        credentials,
        umask: svc.umask,
        mounts: plan_mounts(unit, state_dir)?,
        seccomp: if unit.container.seccomp {
            Some(default_seccomp()?)
        } else {
            None
        },
        container: unit.container.clone(),
    })
}

/// The default filter is the same for every unit: compiled once per supd process.
fn default_seccomp() -> Result<SeccompProgram, SpawnError> {
    static PROGRAM: std::sync::OnceLock<Result<SeccompProgram, String>> =
        std::sync::OnceLock::new();
    PROGRAM
        .get_or_init(SeccompProgram::default_filter)
        .clone()
        .map_err(|e| SpawnError::new("compile seccomp filter", None, None, e))
}

/// The unit's mounts plus the defaults a container needs to see itself consistently:
/// with its own PID and mount namespaces a fresh `/proc` (so host processes are not
/// visible), and with a `rootfs` also a minimal `/dev` and a read-only `/sys`. A
/// mount the unit declares on the same target replaces the default.
pub fn effective_mounts(c: &ContainerSpec) -> Vec<MountSpec> {
    let has = |ns| c.namespaces.contains(&ns);
    let declared = |t: &str| c.mounts.iter().any(|m| m.target == Path::new(t));
    let default = |kind, target: &str| MountSpec::plain(kind, target);
    let mut out = Vec::new();
    if has(Namespace::Mnt) && has(Namespace::Pid) && !declared("/proc") {
        out.push(default(MountKind::Proc, "/proc"));
    }
    if has(Namespace::Mnt) && c.rootfs.is_some() {
        if !declared("/dev") {
            out.push(default(MountKind::Dev, "/dev"));
        }
        if !declared("/sys") {
            out.push(default(MountKind::Sysfs, "/sys"));
        }
    }
    out.extend(c.mounts.iter().cloned());
    out
}

/// Overlay mounts get an upper and a work directory kept by supd, per unit and
/// mount target (`STATE/overlay/UNIT/<target, escaped>/{upper,work}`), so changes
/// survive restarts of the unit and do not move when other mounts are added.
fn plan_mounts(unit: &Unit, state_dir: &Path) -> Result<Vec<PlannedMount>, SpawnError> {
    effective_mounts(&unit.container)
        .into_iter()
        .map(|spec| {
            let overlay_dirs = match spec.kind {
                MountKind::Overlay { .. } => {
                    let base = state_dir
                        .join("overlay")
                        .join(&unit.name)
                        .join(escape_target(&spec.target));
                    let (upper, work) = (base.join("upper"), base.join("work"));
                    for d in [&upper, &work] {
                        std::fs::create_dir_all(d)
                            .map_err(|e| io_error("create overlay directory", e))?;
                    }
                    Some((upper, work))
                }
                _ => None,
            };
            Ok(PlannedMount { spec, overlay_dirs })
        })
        .collect()
}

/// A mount target as one directory name: `/srv/data` -> `srv%2Fdata`.
fn escape_target(target: &Path) -> String {
    let t = target.to_string_lossy();
    let t = t.trim_start_matches('/');
    if t.is_empty() {
        return "%2F".into();
    }
    t.replace('%', "%25").replace('/', "%2F")
}

fn resolve_groups(groups: &[IdSpec]) -> Result<Vec<u32>, SpawnError> {
    groups
        .iter()
        .map(|g| match g {
            IdSpec::Id(id) => Ok(*id),
            IdSpec::Name(name) => match Group::from_name(name) {
                Ok(Some(g)) => Ok(g.gid.as_raw()),
                Ok(None) => Err(SpawnError::new(
                    "resolve group",
                    None,
                    None,
                    format!("no group {name:?} in the group database"),
                )),
                Err(e) => Err(SpawnError::new(
                    "resolve group",
                    None,
                    Some(e),
                    name.clone(),
                )),
            },
        })
        .collect()
}

fn user_record(user: Option<&IdSpec>) -> Result<Option<User>, SpawnError> {
    let lookup = match user {
        None => return Ok(None),
        Some(IdSpec::Name(name)) => User::from_name(name),
        Some(IdSpec::Id(uid)) => User::from_uid((*uid).into()),
    };
    match (lookup, user) {
        (Ok(Some(u)), _) => Ok(Some(u)),
        (Ok(None), Some(IdSpec::Id(_))) => Ok(None),
        (Ok(None), _) => Err(SpawnError::new(
            "resolve user",
            None,
            None,
            format!("no user {user:?} in the user database"),
        )),
        (Err(e), _) => Err(SpawnError::new(
            "resolve user",
            None,
            Some(e),
            format!("{user:?}"),
        )),
    }
}

/// uid, primary gid and supplementary groups, as systemd's User=/Group= do: a named
/// user brings its primary group and its group memberships; `group` overrides the
/// primary group.
fn resolve_credentials(
    user: Option<&IdSpec>,
    group: Option<&IdSpec>,
) -> Result<Option<Credentials>, SpawnError> {
    if user.is_none() && group.is_none() {
        return Ok(None);
    }
    let record = user_record(user)?;
    let uid = match (user, &record) {
        (_, Some(u)) => u.uid.as_raw(),
        (Some(IdSpec::Id(id)), None) => *id,
        _ => nix::unistd::geteuid().as_raw(),
    };
    let gid = match group {
        Some(IdSpec::Id(id)) => *id,
        Some(IdSpec::Name(name)) => match Group::from_name(name) {
            Ok(Some(g)) => g.gid.as_raw(),
            Ok(None) => {
                return Err(SpawnError::new(
                    "resolve group",
                    None,
                    None,
                    format!("no group {name:?} in the group database"),
                ));
            }
            Err(e) => {
                return Err(SpawnError::new(
                    "resolve group",
                    None,
                    Some(e),
                    name.clone(),
                ));
            }
        },
        None => match &record {
            Some(u) => u.gid.as_raw(),
            None => nix::unistd::getegid().as_raw(),
        },
    };
    let mut groups = vec![gid];
    if let Some(u) = &record
        && let Ok(name) = CString::new(u.name.as_bytes())
        && let Ok(list) = nix::unistd::getgrouplist(&name, u.gid)
    {
        groups.extend(list.into_iter().map(|g| g.as_raw()));
    }
    groups.sort_unstable();
    groups.dedup();
    Ok(Some(Credentials { uid, gid, groups }))
}

/// Start the helper for `plan`, register its pid for `owner`, and wait until it has
/// exec'd the service (or failed). Blocking: call from a blocking thread.
///
/// On failure the pid is returned too when a helper was started (its exit still
/// reaches the registry).
pub fn spawn(
    plan: &LaunchPlan,
    registry: &Registry,
    owner: &str,
    place: &mut dyn FnMut(i32) -> Result<(), SpawnError>,
) -> Result<Spawned, (Option<i32>, SpawnError)> {
    // The running binary itself, even if the file on disk was replaced since.
    spawn_with_helper(c"/proc/self/exe", plan, registry, owner, place)
}

/// `spawn` with an explicit path to the supd binary that serves as the helper (for
/// benchmarks and tools that link the library but are not supd themselves).
pub fn spawn_with_helper(
    helper: &CStr,
    plan: &LaunchPlan,
    registry: &Registry,
    owner: &str,
    place: &mut dyn FnMut(i32) -> Result<(), SpawnError>,
) -> Result<Spawned, (Option<i32>, SpawnError)> {
    let payload = serde_json::to_vec(plan).map_err(|e| {
        (
            None,
            SpawnError::new("encode plan", None, None, e.to_string()),
        )
    })?;
    let (mut ours, theirs) = UnixStream::pair().map_err(|e| (None, io_error("socketpair", e)))?;
    let (out_r, out_w) =
        pipe2(OFlag::O_CLOEXEC).map_err(|e| (None, SpawnError::new("pipe", None, Some(e), "")))?;
    let (err_r, err_w) =
        pipe2(OFlag::O_CLOEXEC).map_err(|e| (None, SpawnError::new("pipe", None, Some(e), "")))?;
    let devnull =
        open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()).map_err(|e| {
            (
                None,
                SpawnError::new("open", Some("/dev/null"), Some(e), ""),
            )
        })?;
    let theirs = avoid_fd(OwnedFd::from(theirs), HELPER_FD)
        .map_err(|e| (None, SpawnError::new("fcntl", None, Some(e), "")))?;

    let helper_pid = posix_spawn_helper(helper, &plan.unit, [&devnull, &out_w, &err_w, &theirs])
        .map_err(|e| {
            (
                None,
                SpawnError::new("posix_spawn", Some("/proc/self/exe"), Some(e), ""),
            )
        })?;
    drop((devnull, out_w, err_w, theirs));
    // A pidfd keeps naming this helper even after it was reaped and its pid reused.
    // The helper itself is not registered: unless it turns out to be the service,
    // its exit is nobody's business (the reaper keeps it briefly as unclaimed).
    let helper = Pidfd::open(helper_pid);
    // Into the unit's cgroup while the helper still waits for its plan: everything
    // it starts is born inside (and a cgroup namespace is rooted there).
    if let Err(e) = place(helper_pid) {
        if let Some(fd) = helper {
            fd.kill();
        }
        return Err((None, e));
    }
    let mut reported: Option<(i32, Option<Pidfd>)> = None;
    let mut early_exit = None;
    let outcome = hand_over(&mut ours, &payload, |pid| {
        // Registered the moment it is known, so no exit of it can be lost.
        early_exit = registry.register(pid, owner);
        reported = Some((pid, Pidfd::open(pid)));
    });
    match (outcome, reported) {
        (Ok(()), Some((pid, _))) => Ok(Spawned {
            pid,
            stdout: out_r,
            stderr: err_r,
            early_exit,
        }),
        (result, reported) => {
            // Whatever was started is killed, so nothing runs unsupervised; pidfds
            // make sure an already-reaped pid reused by someone else is not hit.
            let pid = reported.as_ref().map(|(p, _)| *p);
            if let Some((_, Some(fd))) = reported {
                fd.kill();
            }
            if let Some(fd) = helper {
                fd.kill();
            }
            let error = result.err().unwrap_or_else(|| {
                SpawnError::new("helper", None, None, "ended without reporting a pid")
            });
            Err((pid, error))
        }
    }
}

/// A process handle that cannot be confused with a later process of the same pid.
struct Pidfd(OwnedFd);

impl Pidfd {
    fn open(pid: i32) -> Option<Pidfd> {
        // SAFETY: pidfd_open(2) with a plain pid and no flags.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        // SAFETY: a non-negative result is a fresh descriptor nothing else owns.
        (fd >= 0).then(|| Pidfd(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }))
    }

    fn kill(&self) {
        // SAFETY: pidfd_send_signal(2) on our own descriptor; ESRCH (already gone) is fine.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }
}

/// Send the plan, then read the reports until EOF, which comes once every copy of
/// the close-on-exec socket is gone: the service exec'd. `on_pid` is called as soon
/// as the service's pid is known. The whole exchange has one deadline.
fn hand_over(
    sock: &mut UnixStream,
    payload: &[u8],
    mut on_pid: impl FnMut(i32),
) -> Result<(), SpawnError> {
    let deadline = std::time::Instant::now() + HELPER_TIMEOUT;
    sock.write_all(payload)
        .map_err(|e| io_error("send plan", e))?;
    sock.shutdown(std::net::Shutdown::Write)
        .map_err(|e| io_error("send plan", e))?;
    let mut reader = BufReader::new(&*sock);
    let mut line = String::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            let detail = format!("no exec within {}s; killed", HELPER_TIMEOUT.as_secs());
            return Err(SpawnError::new("helper", None, None, detail));
        }
        reader
            .get_ref()
            .set_read_timeout(Some(left))
            .map_err(|e| io_error("setsockopt", e))?;
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(io_error("read helper report", e)),
        }
        match serde_json::from_str::<Report>(line.trim_end()) {
            Ok(Report::Pid(p)) => on_pid(p),
            Ok(Report::Error(e)) => return Err(e),
            Err(_) => {
                return Err(SpawnError::new(
                    "helper",
                    None,
                    None,
                    line.trim_end().to_string(),
                ));
            }
        }
    }
}

fn io_error(step: &str, e: std::io::Error) -> SpawnError {
    SpawnError::new(
        step,
        None,
        e.raw_os_error().map(Errno::from_raw),
        e.to_string(),
    )
}

/// Make sure `fd` is not `target`: `dup2(fd, fd)` would keep close-on-exec set.
fn avoid_fd(fd: OwnedFd, target: RawFd) -> Result<OwnedFd, Errno> {
    if fd.as_raw_fd() != target {
        return Ok(fd);
    }
    let new = fcntl(&fd, FcntlArg::F_DUPFD_CLOEXEC(target + 1))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// posix_spawn `/proc/self/exe __spawn UNIT` with `fds` as its fds 0..=3.
fn posix_spawn_helper(path: &CStr, unit: &str, fds: [&OwnedFd; 4]) -> Result<i32, Errno> {
    let arg1 = CString::new(HELPER_ARG).map_err(|_| Errno::EINVAL)?;
    let arg2 = CString::new(unit).map_err(|_| Errno::EINVAL)?;
    let dup2: Vec<(RawFd, RawFd)> = fds
        .iter()
        .enumerate()
        .map(|(target, fd)| (fd.as_raw_fd(), target as RawFd))
        .collect();
    posix_spawn(path, &[c"supd", &arg1, &arg2], &[], &dup2)
}

/// posix_spawn `path` in a new session, with every signal at its default and none
/// blocked, after the `dup2` pairs `(from, to)`. glibc implements it with
/// clone(CLONE_VM|CLONE_VFORK) and runs only async-signal-safe code before exec,
/// which makes it safe from a multithreaded process and cheap from any process.
pub(crate) fn posix_spawn(
    path: &CStr,
    argv: &[&CStr],
    envp: &[&CStr],
    dup2: &[(RawFd, RawFd)],
) -> Result<i32, Errno> {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: plain libc calls on properly initialised, owned attribute objects; every
    // pointer passed stays alive until posix_spawn returns; the objects are destroyed
    // on every path.
    unsafe {
        let mut actions = std::mem::MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
        let mut attr = std::mem::MaybeUninit::<libc::posix_spawnattr_t>::uninit();
        check(libc::posix_spawn_file_actions_init(actions.as_mut_ptr()))?;
        if let Err(e) = check(libc::posix_spawnattr_init(attr.as_mut_ptr())) {
            libc::posix_spawn_file_actions_destroy(actions.as_mut_ptr());
            return Err(e);
        }
        let result = (|| {
            for (from, to) in dup2 {
                check(libc::posix_spawn_file_actions_adddup2(
                    actions.as_mut_ptr(),
                    *from,
                    *to,
                ))?;
            }
            let mut all = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
            libc::sigfillset(all.as_mut_ptr());
            let mut none = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
            libc::sigemptyset(none.as_mut_ptr());
            check(libc::posix_spawnattr_setsigdefault(
                attr.as_mut_ptr(),
                all.as_ptr(),
            ))?;
            check(libc::posix_spawnattr_setsigmask(
                attr.as_mut_ptr(),
                none.as_ptr(),
            ))?;
            let flags = (libc::POSIX_SPAWN_SETSIGDEF | libc::POSIX_SPAWN_SETSIGMASK)
                as libc::c_short
                | libc::POSIX_SPAWN_SETSID;
            check(libc::posix_spawnattr_setflags(attr.as_mut_ptr(), flags))?;
            let mut pid: libc::pid_t = 0;
            check(libc::posix_spawn(
                &mut pid,
                path.as_ptr(),
                actions.as_ptr(),
                attr.as_ptr(),
                argv_ptrs.as_ptr() as *const *mut libc::c_char,
                envp_ptrs.as_ptr() as *const *mut libc::c_char,
            ))?;
            Ok(pid)
        })();
        libc::posix_spawn_file_actions_destroy(actions.as_mut_ptr());
        libc::posix_spawnattr_destroy(attr.as_mut_ptr());
        result
    }
}

fn check(rc: libc::c_int) -> Result<(), Errno> {
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw(rc))
    }
}

/// Make fd 3 close-on-exec again in the helper (the dup2 of posix_spawn cleared it).
pub(crate) fn set_cloexec(fd: impl std::os::fd::AsFd) -> Result<(), Errno> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(text: &str) -> ContainerSpec {
        let unit = crate::unit::parse_unit(
            "t",
            Path::new("/t.toml"),
            &format!("{text}\n[service]\nexec = [\"/bin/true\"]\n"),
        )
        .expect("valid unit");
        unit.container
    }

    fn targets(c: &ContainerSpec) -> Vec<String> {
        effective_mounts(c)
            .iter()
            .map(|m| m.target.display().to_string())
            .collect()
    }

    #[test]
    fn default_mounts_follow_namespaces_and_rootfs() {
        assert_eq!(
            targets(&container("")),
            vec!["/proc"],
            "pid+mnt get a fresh /proc"
        );
        assert!(targets(&container("[container]\nnamespaces = [\"mnt\"]")).is_empty());
        assert_eq!(
            targets(&container("[container]\nrootfs = \"/srv/root\"")),
            vec!["/proc", "/dev", "/sys"]
        );
        let declared = container(
            "[container]\nrootfs = \"/r\"\n[[mount]]\ntype = \"tmpfs\"\ntarget = \"/dev\"",
        );
        assert_eq!(
            targets(&declared),
            vec!["/proc", "/sys", "/dev"],
            "a declared /dev replaces the default"
        );
    }

    #[test]
    fn overlay_dirs_are_named_by_target() {
        assert_eq!(escape_target(Path::new("/srv/data")), "srv%2Fdata");
        assert_eq!(escape_target(Path::new("/a%b")), "a%25b");
        assert_eq!(escape_target(Path::new("/")), "%2F");
    }
}
