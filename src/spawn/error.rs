//! What went wrong while starting a service, precise enough to act on: the step,
//! the path it worked on and the errno. Travels from the helper to supd as JSON.

use std::fmt;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::mounts::Fs;

/// Which step failed, on what, with which errno.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{step}{}: {}", .path.as_ref().map(|p| format!(" {p}")).unwrap_or_default(), describe_errno(*.errno, .detail))]
pub struct SpawnError {
    pub step: Step,
    pub path: Option<String>,
    /// A raw errno rather than `Errno`, so the helper can send it as a number.
    pub errno: Option<i32>,
    pub detail: String,
    /// What the start wrote before it failed (`exec_start_pre` commands, the
    /// helper): kept for the unit's log, which only reads a started service.
    #[serde(default, skip_serializing_if = "EarlyOutput::is_empty")]
    pub output: EarlyOutput,
}

/// Lines written to the unit's stdout and stderr before its start failed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EarlyOutput {
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

impl EarlyOutput {
    pub fn is_empty(&self) -> bool {
        self.stdout.is_empty() && self.stderr.is_empty()
    }
}

/// The steps of a start, in the order they run. `Display` gives the words shown
/// in `supctl status` (`chdir /srv: ENOENT (...)`), which scripts and tests match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    // In supd: resolving the unit.
    ReadAccounts,
    ExecStartPre,
    ExecStopPost,
    ReadyFd,
    ResolveUser,
    ResolveGroup,
    CreateOverlayDir,
    /// Mounting an image unit's overlay root (supd, before the helper).
    PrepareImageRoot,
    CompileSeccomp,
    EnvFile,
    Credentials,
    // In supd: starting the helper and talking to it.
    Cgroup,
    EncodePlan,
    Socketpair,
    Pipe,
    Open,
    Fcntl,
    PosixSpawn,
    SendPlan,
    Setsockopt,
    ReadReport,
    /// Telling the helper its child is registered and may be released.
    SendRegistered,
    Helper,
    // In the helper, up to the clone.
    SendReport,
    ReadPlan,
    DecodePlan,
    Dup,
    Write,
    OpenNamespace,
    Setns,
    Clone,
    /// Waiting for supd to register the child before releasing it.
    AwaitRegistration,
    ReleaseChild,
    // In the container's first process, before any mount.
    Setsid,
    Setresgid,
    Setresuid,
    Setgroups,
    Prctl,
    // Mounts, in the order `mounts::plan` makes them.
    MakeRootPrivate,
    BindRootfs,
    OpenRoot,
    MountTarget,
    BindMount,
    RemountBind,
    Mount(Fs),
    HoldHostDev,
    MountDev,
    SetPropagation,
    CreateDeviceNode,
    BindDevice,
    Mkdir,
    Symlink,
    KeepWritable,
    ProtectSystem,
    RestoreWritable,
    ProtectKernel,
    ProtectCgroups,
    Mask,
    BindReadOnlyPath,
    Reopen,
    RemountReadOnly,
    HideStateDir,
    BindNotify,
    ChdirRootfs,
    PivotRoot,
    MakeOldRootSlave,
    DetachOldRoot,
    RemountRootReadOnly,
    SetRootPropagation,
    // Hostname and network.
    Sethostname,
    Setdomainname,
    Socket,
    GetIfFlags,
    SetIfFlags,
    /// supd: the bridge of a network, the unit's published host ports.
    Bridge,
    ReservePort,
    /// The helper: the veth pair into the container.
    CreateVeth,
    /// The container: its `ethN` addresses and default route.
    ConfigureInterface,
    // Restrictions, then exec (directly or from the container's init).
    Sigprocmask,
    CloseRange,
    Setrlimit,
    Capabilities,
    NoNewPrivs,
    Chdir,
    Signal,
    Seccomp,
    Exec,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self {
            Step::Mount(fs) => return write!(f, "mount {}", fs.as_str()),
            Step::ReadAccounts => "read accounts",
            Step::ExecStartPre => "exec_start_pre",
            Step::ExecStopPost => "exec_stop_post",
            Step::ReadyFd => "ready_fd",
            Step::ResolveUser => "resolve user",
            Step::ResolveGroup => "resolve group",
            Step::CreateOverlayDir => "create overlay directory",
            Step::PrepareImageRoot => "prepare image root",
            Step::CompileSeccomp => "compile seccomp filter",
            Step::EnvFile => "env_file",
            Step::Credentials => "credentials",
            Step::Cgroup => "cgroup",
            Step::EncodePlan => "encode plan",
            Step::Socketpair => "socketpair",
            Step::Pipe => "pipe",
            Step::Open => "open",
            Step::Fcntl => "fcntl",
            Step::PosixSpawn => "posix_spawn",
            Step::SendPlan => "send plan",
            Step::Setsockopt => "setsockopt",
            Step::ReadReport => "read helper report",
            Step::SendRegistered => "send registration",
            Step::Helper => "helper",
            Step::SendReport => "send report",
            Step::ReadPlan => "read plan",
            Step::DecodePlan => "decode plan",
            Step::Dup => "dup",
            Step::Write => "write",
            Step::OpenNamespace => "open namespace",
            Step::Setns => "setns",
            Step::Clone => "clone",
            Step::AwaitRegistration => "await registration",
            Step::ReleaseChild => "release child",
            Step::Setsid => "setsid",
            Step::Setresgid => "setresgid",
            Step::Setresuid => "setresuid",
            Step::Setgroups => "setgroups",
            Step::Prctl => "prctl",
            Step::MakeRootPrivate => "make / private",
            Step::BindRootfs => "bind rootfs",
            Step::OpenRoot => "open root",
            Step::MountTarget => "mount target",
            Step::BindMount => "bind mount",
            Step::RemountBind => "remount bind",
            Step::HoldHostDev => "open host /dev",
            Step::MountDev => "mount /dev tmpfs",
            Step::SetPropagation => "set propagation",
            Step::CreateDeviceNode => "create device node",
            Step::BindDevice => "bind device",
            Step::Mkdir => "mkdir",
            Step::Symlink => "symlink",
            Step::KeepWritable => "keep writable",
            Step::ProtectSystem => "protect system",
            Step::RestoreWritable => "restore writable",
            Step::ProtectKernel => "protect kernel",
            Step::ProtectCgroups => "protect cgroups",
            Step::Mask => "mask",
            Step::BindReadOnlyPath => "bind read-only path",
            Step::Reopen => "reopen",
            Step::RemountReadOnly => "remount read-only",
            Step::HideStateDir => "hide supd state",
            Step::BindNotify => "bind notify socket",
            Step::ChdirRootfs => "chdir rootfs",
            Step::PivotRoot => "pivot_root",
            Step::MakeOldRootSlave => "make old root slave",
            Step::DetachOldRoot => "detach old root",
            Step::RemountRootReadOnly => "remount / read-only",
            Step::SetRootPropagation => "set root propagation",
            Step::Sethostname => "sethostname",
            Step::Setdomainname => "setdomainname",
            Step::Socket => "socket",
            Step::GetIfFlags => "SIOCGIFFLAGS",
            Step::SetIfFlags => "SIOCSIFFLAGS",
            Step::Bridge => "network bridge",
            Step::ReservePort => "publish port",
            Step::CreateVeth => "create veth",
            Step::ConfigureInterface => "configure interface",
            Step::Sigprocmask => "sigprocmask",
            Step::CloseRange => "close_range",
            Step::Setrlimit => "setrlimit",
            Step::Capabilities => "capabilities",
            Step::NoNewPrivs => "no_new_privs",
            Step::Chdir => "chdir",
            Step::Signal => "signal",
            Step::Seccomp => "seccomp",
            Step::Exec => "exec",
        };
        f.write_str(word)
    }
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
    /// `step` failed on `path` (if any) with `errno` (if any); `detail` says more.
    pub fn new(
        step: Step,
        path: Option<&str>,
        errno: Option<Errno>,
        detail: impl Into<String>,
    ) -> Self {
        SpawnError {
            step,
            path: path.map(str::to_string),
            errno: errno.map(|e| e as i32),
            detail: detail.into(),
            output: EarlyOutput::default(),
        }
    }

    /// `step` failed with an I/O error: its errno, if it has one, plus `detail`.
    pub fn io(
        step: Step,
        path: Option<&str>,
        e: &std::io::Error,
        detail: impl Into<String>,
    ) -> Self {
        SpawnError::new(step, path, e.raw_os_error().map(Errno::from_raw), detail)
    }
}

/// An I/O error with its own text as the detail (it may carry no errno).
pub(crate) fn io_error(step: Step, e: std::io::Error) -> SpawnError {
    SpawnError::io(step, None, &e, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_the_words_status_has_always_shown() {
        let cases = [
            (
                SpawnError::new(Step::Chdir, Some("/srv"), Some(Errno::ENOENT), ""),
                "chdir /srv: ENOENT (No such file or directory)",
            ),
            (
                SpawnError::new(Step::Mount(Fs::Sysfs), Some("/sys"), Some(Errno::EPERM), ""),
                "mount sysfs /sys: EPERM (Operation not permitted)",
            ),
            (
                SpawnError::new(Step::Cgroup, Some("web"), Some(Errno::EBUSY), "not empty"),
                "cgroup web: EBUSY (Device or resource busy): not empty",
            ),
            (
                SpawnError::new(Step::Helper, None, None, "ended without reporting a pid"),
                "helper: ended without reporting a pid",
            ),
            (
                SpawnError::new(Step::MakeRootPrivate, Some("/"), Some(Errno::EINVAL), ""),
                "make / private /: EINVAL (Invalid argument)",
            ),
        ];
        for (error, shown) in cases {
            assert_eq!(error.to_string(), shown);
        }
    }

    #[test]
    fn errors_cross_the_socket_as_json() {
        for step in [Step::Exec, Step::Mount(Fs::Overlay), Step::ResolveUser] {
            let e = SpawnError::new(step, Some("/x"), Some(Errno::EACCES), "why");
            let json = serde_json::to_string(&e).expect("encode");
            let back: SpawnError = serde_json::from_str(&json).expect("decode");
            assert_eq!(back, e, "{json}");
        }
        let json = serde_json::to_string(&Step::Mount(Fs::Proc)).expect("encode");
        assert_eq!(json, r#"{"mount":"proc"}"#);
    }
}
