//! One workload, several supervisors: N services, each the same shell script
//! that reports its start on a shared fifo and then execs a `sleep`, run by
//! supd (containerised and plain) and by s6-svscan, runsvdir and supervisord.
//! The harness (benches/peers.rs) times events on the fifo, never sleeps to
//! wait for a state.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::{Supd, procs, write_units};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// supd with its default container per unit.
    SupContainer,
    /// supd with `namespaces = []`: plain processes in cgroups.
    SupPlain,
    S6,
    Runit,
    Supervisord,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::SupContainer,
        Kind::SupPlain,
        Kind::S6,
        Kind::Runit,
        Kind::Supervisord,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::SupContainer => "sup (containers)",
            Kind::SupPlain => "sup (namespaces=[])",
            Kind::S6 => "s6-svscan",
            Kind::Runit => "runsvdir",
            Kind::Supervisord => "supervisord",
        }
    }

    /// The program the peer needs on PATH (supd is this package's).
    pub fn program(self) -> Option<&'static str> {
        match self {
            Kind::SupContainer | Kind::SupPlain => None,
            Kind::S6 => Some("s6-svscan"),
            Kind::Runit => Some("runsvdir"),
            Kind::Supervisord => Some("supervisord"),
        }
    }
}

/// Service `i`'s name; its sleep's argument is `SLEEP_BASE + i`, which is how
/// the harness finds its process.
pub fn service(i: usize) -> String {
    format!("s{i:04}")
}
const SLEEP_BASE: usize = 1_000_000;

/// The generated services and the fifo they report on, read by a thread that
/// timestamps each line as it arrives.
pub struct Workload {
    pub dir: PathBuf,
    pub n: usize,
    fifo: PathBuf,
    events: Receiver<(String, Instant)>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Workload {
    /// `n` scripts in `dir/scripts` (the same file is every supervisor's
    /// command) and the fifo `dir/ready`.
    pub fn new(dir: &Path, n: usize) -> Workload {
        let fifo = dir.join("ready");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o622))
            .expect("mkfifo");
        std::fs::create_dir_all(dir.join("scripts")).expect("mkdir");
        for i in 0..n {
            let path = dir.join("scripts").join(service(i));
            // One short line per start: a write below PIPE_BUF is atomic, so
            // the lines of 200 services starting at once never interleave.
            let script = format!(
                "#!/bin/sh\necho {} > {}\nexec /bin/sleep {}\n",
                service(i),
                fifo.display(),
                SLEEP_BASE + i
            );
            std::fs::write(&path, script).expect("write script");
            chmod(&path, 0o755);
        }
        // Read and write: the fifo never reports end of file while services
        // come and go, and their open for writing never blocks.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .expect("open fifo");
        let (tx, events) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(file).lines() {
                let line = line.expect("read fifo");
                if line == "__end__" || tx.send((line, Instant::now())).is_err() {
                    return;
                }
            }
        });
        Workload {
            dir: dir.to_path_buf(),
            n,
            fifo,
            events,
            reader: Some(reader),
        }
    }

    pub fn script(&self, i: usize) -> PathBuf {
        self.dir.join("scripts").join(service(i))
    }

    /// Forget the lines of an earlier supervisor.
    pub fn clear(&self) {
        while self.events.try_recv().is_ok() {}
    }

    /// When every service had reported at least once (all `n` names seen).
    pub fn wait_all(&self, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        let mut seen = HashSet::new();
        let mut last = Instant::now();
        while seen.len() < self.n {
            let (name, at) = self.next(deadline, || {
                format!("{} of {} services", seen.len(), self.n)
            });
            seen.insert(name);
            last = at;
        }
        last
    }

    /// When service `i` next reports (its command ran again).
    pub fn wait_for(&self, i: usize, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        let name = service(i);
        loop {
            let (got, at) = self.next(deadline, || format!("service {name}"));
            if got == name {
                return at;
            }
        }
    }

    fn next(&self, deadline: Instant, what: impl Fn() -> String) -> (String, Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.events.recv_timeout(left) {
            Ok(event) => event,
            Err(RecvTimeoutError::Timeout) => panic!("timed out waiting for {}", what()),
            Err(RecvTimeoutError::Disconnected) => panic!("fifo reader ended"),
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        if let Ok(mut f) = OpenOptions::new().write(true).open(&self.fifo) {
            let _ = f.write_all(b"__end__\n");
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A supervisor running the workload.
pub enum Running {
    Sup(Supd),
    Peer { child: Child, cgroup: PeerCgroup },
}

impl Running {
    pub fn root(&self) -> u32 {
        match self {
            Running::Sup(supd) => supd.child.id(),
            Running::Peer { child, .. } => child.id(),
        }
    }

    /// The supervisor's processes: the supervisor and everything it keeps per
    /// service (sup-init, s6-supervise, runsv), not the services themselves.
    pub fn kept(&self) -> Vec<procs::Proc> {
        procs::tree(self.root())
            .into_iter()
            .filter(|p| p.argv.first().map(String::as_str) != Some("/bin/sleep"))
            .collect()
    }

    /// Service `i`'s process (its sleep), if it runs now.
    pub fn service_pid(&self, i: usize) -> Option<u32> {
        let arg = (SLEEP_BASE + i).to_string();
        procs::tree(self.root())
            .into_iter()
            .find(|p| p.argv.len() == 2 && p.argv[0] == "/bin/sleep" && p.argv[1] == arg)
            .map(|p| p.pid)
    }

    /// Stop it and everything it started: supd by SIGTERM, waited for (it
    /// stops its units and removes its cgroups); a peer by killing every
    /// process of its cgroup.
    pub fn stop(self) {
        match self {
            Running::Sup(supd) => drop(supd),
            Running::Peer { mut child, cgroup } => {
                cgroup.kill_all();
                let _ = child.wait();
            }
        }
    }
}

/// Start `kind` on the workload, its files in `dir` (fresh per start). The
/// clock starts just before the supervisor's process is created.
pub fn launch(kind: Kind, work: &Workload, dir: &Path) -> (Running, Instant) {
    std::fs::create_dir_all(dir).expect("mkdir");
    match kind {
        Kind::SupContainer | Kind::SupPlain => {
            let container = if kind == Kind::SupPlain {
                "[container]\nnamespaces = []\n"
            } else {
                ""
            };
            let units: Vec<(String, String)> = (0..work.n)
                .map(|i| {
                    let text = format!(
                        "{container}[service]\nexec = [{:?}]\nrestart_delay = \"0s\"\n",
                        work.script(i)
                    );
                    (service(i), text)
                })
                .collect();
            write_units(dir, &units);
            let t0 = Instant::now();
            let mut supd = Supd::start(dir);
            supd.drain_log();
            (Running::Sup(supd), t0)
        }
        Kind::S6 | Kind::Runit => {
            let scan = dir.join("scan");
            for i in 0..work.n {
                let svc = scan.join(service(i));
                std::fs::create_dir_all(&svc).expect("mkdir");
                std::os::unix::fs::symlink(work.script(i), svc.join("run")).expect("link");
            }
            let mut cmd = if kind == Kind::S6 {
                Command::new("s6-svscan")
            } else {
                let mut c = Command::new("runsvdir");
                c.arg("-P");
                c
            };
            cmd.arg(&scan);
            peer(cmd)
        }
        Kind::Supervisord => {
            let mut conf = format!(
                "[supervisord]\nnodaemon=true\nlogfile={0}/supervisord.log\npidfile={0}/supervisord.pid\nchildlogdir={0}\n",
                dir.display()
            );
            for i in 0..work.n {
                // startsecs=0: running as soon as started (no 1 s probation),
                // as the other supervisors consider it.
                conf += &format!(
                    "[program:{}]\ncommand={}\nautorestart=true\nstartsecs=0\nstdout_logfile=NONE\nstderr_logfile=NONE\n",
                    service(i),
                    work.script(i).display()
                );
            }
            let path = dir.join("supervisord.conf");
            std::fs::write(&path, conf).expect("write conf");
            let mut cmd = Command::new("supervisord");
            cmd.arg("-c").arg(path);
            peer(cmd)
        }
    }
}

fn peer(mut cmd: Command) -> (Running, Instant) {
    let cgroup = PeerCgroup::create();
    let procs = CString::new(
        cgroup
            .0
            .join("cgroup.procs")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .expect("path");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (open, write, close) on memory prepared
    // before the fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || join_cgroup(&procs));
    }
    let t0 = Instant::now();
    let child = cmd.spawn().expect("spawn peer");
    (Running::Peer { child, cgroup }, t0)
}

/// Write "0" (the writer itself) into `procs`: the peer and everything it
/// starts live in its cgroup, so that stopping it misses nothing.
fn join_cgroup(procs: &CString) -> std::io::Result<()> {
    // SAFETY: a NUL-terminated path that outlives the call.
    let fd = unsafe { libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: writes one byte from a static buffer to the fd just opened.
    let written = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
    // SAFETY: closes the fd this function opened, once.
    unsafe { libc::close(fd) };
    if written != 1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A cgroup of the bench's own holding one peer and all its descendants (the
/// pids hierarchy on cgroup v1, the unified one on v2).
pub struct PeerCgroup(PathBuf);

impl PeerCgroup {
    fn create() -> PeerCgroup {
        let own = std::fs::read_to_string("/proc/self/cgroup").expect("cgroup");
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let (mount, path) = own
            .lines()
            .find_map(|line| {
                let mut parts = line.splitn(3, ':');
                let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
                let path = path.trim_start_matches('/');
                if v2 && controllers.is_empty() {
                    Some(("/sys/fs/cgroup".to_string(), path))
                } else if !v2 && controllers.split(',').any(|c| c == "pids") {
                    Some(("/sys/fs/cgroup/pids".to_string(), path))
                } else {
                    None
                }
            })
            .expect("a pids or unified cgroup hierarchy");
        let dir = Path::new(&mount)
            .join(path)
            .join(format!("sup-bench-peer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir cgroup");
        PeerCgroup(dir)
    }

    /// SIGKILL every member until none is left (a process forked meanwhile
    /// joins the cgroup and is killed in the next pass), then remove it.
    fn kill_all(&self) {
        loop {
            let pids = std::fs::read_to_string(self.0.join("cgroup.procs")).unwrap_or_default();
            if pids.trim().is_empty() {
                break;
            }
            for pid in pids
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for PeerCgroup {
    fn drop(&mut self) {
        self.kill_all();
        // Killed processes leave the cgroup once reaped: by the peer's parent
        // (us, waiting) or by init for its orphans, shortly after.
        for _ in 0..500 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!("could not remove {}", self.0.display());
    }
}

/// How long moving one process between two cgroups takes (one write of its
/// pid into `cgroup.procs`, what a start's placement does per hierarchy) when
/// the previous migration was `gap` ms earlier: 20 writes per gap. On cgroup v1
/// a migration takes the threadgroup rwsem for writing, which waits for an RCU
/// grace period unless another writer was there within about one.
pub fn migration_cost(gaps_ms: &[u64]) -> Vec<(u64, Vec<Duration>)> {
    let base = PeerCgroup::create();
    let (a, b) = (base.0.join("a"), base.0.join("b"));
    for d in [&a, &b] {
        std::fs::create_dir_all(d).expect("mkdir cgroup");
    }
    let mut sleeper = Command::new("/bin/sleep")
        .arg("1000")
        .spawn()
        .expect("sleep");
    let pid = sleeper.id().to_string();
    let out = gaps_ms
        .iter()
        .map(|&gap| {
            let samples = (0..20)
                .map(|i| {
                    std::thread::sleep(Duration::from_millis(gap));
                    let to = if i % 2 == 0 { &a } else { &b };
                    let t0 = Instant::now();
                    std::fs::write(to.join("cgroup.procs"), &pid).expect("migrate");
                    t0.elapsed()
                })
                .collect();
            (gap, samples)
        })
        .collect();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    for d in [&a, &b] {
        let _ = std::fs::remove_dir(d);
    }
    out
}

/// Remove what is left of the cgroups named `name` below this process's own
/// in every hierarchy (supd removes its own when it stops: this only catches a
/// supd that was killed). Empty directories only: rmdir refuses the others.
pub fn remove_cgroups(name: &str) {
    let Ok(own) = std::fs::read_to_string("/proc/self/cgroup") else {
        return;
    };
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let controller = controllers.split(',').next().unwrap_or("");
        let controller = controller.strip_prefix("name=").unwrap_or(controller);
        let mount = if controllers.is_empty() {
            ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
                .into_iter()
                .find(|m| Path::new(m).join("cgroup.controllers").exists())
                .map(PathBuf::from)
        } else {
            Some(Path::new("/sys/fs/cgroup").join(controller))
        };
        if let Some(mount) = mount {
            remove_empty(&mount.join(path.trim_start_matches('/')).join(name));
        }
    }
}

fn remove_empty(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty(&e.path());
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
}
