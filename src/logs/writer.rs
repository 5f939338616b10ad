//! The threads that write unit output to files and to the console.
//!
//! Lines reach the file writer through one bounded queue, in order; it owns every open
//! log file, rotates by size, and reopens a file that was deleted or rotated away
//! behind its back. Copies for the console (supd as PID 1, `--forward-output`) go
//! through a second, lossy queue: a slow serial console drops lines (and says how
//! many) instead of slowing anything down. Lines for journald and syslog
//! (`--log-target`) go to their own lossy queues (`remote`); with `file` not among the
//! targets, no file is written and nothing waits.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use tokio::sync::{mpsc, oneshot};

use super::Entry;
use super::remote::{Remote, Targets};
use crate::memory::Shrink;
use crate::unit::LogLimits;

/// Lines waiting for the file writer before services' output is slowed down.
const FILE_QUEUE: usize = 4096;
/// Lines waiting for the console before lines are dropped there.
const CONSOLE_QUEUE: usize = 1024;
/// Log files are readable by root's group, not by everybody: output holds secrets.
const LOG_FILE_MODE: u32 = 0o640;

pub(super) enum Job {
    Write {
        path: Arc<PathBuf>,
        limits: LogLimits,
        text: String,
    },
    /// Answered once every job queued before it is done.
    Flush(oneshot::Sender<()>),
    /// Nothing writes to this file for now: close it (a later line opens it again).
    Close(Arc<PathBuf>),
}

struct Console {
    tx: SyncSender<String>,
    dropped: AtomicU64,
}

/// A handle to the writer threads; cheap to clone.
#[derive(Debug, Clone)]
pub struct LogWriter {
    files: mpsc::Sender<Job>,
    /// Lines are written to files (`--log-target file`).
    to_files: bool,
    console: Option<Arc<Console>>,
    journald: Option<Arc<Remote>>,
    syslog: Option<Arc<Remote>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Console")
    }
}

impl LogWriter {
    /// Start the file writer thread, and with `console` the console thread that copies
    /// every line as `UNIT: line` to supd's stderr. Lines go to files only.
    pub fn start(console: bool) -> std::io::Result<LogWriter> {
        LogWriter::start_with(console, &Targets::default())
    }

    /// `start`, with lines going to `targets`.
    pub fn start_with(console: bool, targets: &Targets) -> std::io::Result<LogWriter> {
        let (files, mut jobs) = mpsc::channel::<Job>(FILE_QUEUE);
        std::thread::Builder::new()
            .name("supd-logs".into())
            .spawn(move || {
                let mut open = OpenFiles::default();
                while let Some(job) = jobs.blocking_recv() {
                    match job {
                        Job::Write { path, limits, text } => open.write(&path, limits, &text),
                        Job::Flush(done) => {
                            let _ = done.send(());
                        }
                        Job::Close(path) => {
                            open.open.remove(path.as_path());
                            open.open.shrink_after_churn();
                        }
                    }
                }
            })?;
        let console = if console {
            let (tx, rx) = sync_channel::<String>(CONSOLE_QUEUE);
            let console = Arc::new(Console {
                tx,
                dropped: AtomicU64::new(0),
            });
            let shared = console.clone();
            std::thread::Builder::new()
                .name("supd-console".into())
                .spawn(move || {
                    for line in rx {
                        let dropped = shared.dropped.swap(0, Ordering::Relaxed);
                        if dropped > 0 {
                            eprintln!("supd: {dropped} lines of unit output not shown here (console too slow)");
                        }
                        eprintln!("{line}");
                    }
                })?;
            Some(console)
        } else {
            None
        };
        let journald = targets.journald.as_deref().map(Remote::journald);
        let syslog = targets.syslog.as_deref().map(Remote::syslog);
        Ok(LogWriter {
            files,
            to_files: targets.files,
            console,
            journald: journald.transpose()?.map(Arc::new),
            syslog: syslog.transpose()?.map(Arc::new),
        })
    }

    /// Whether lines are written to files (`--log-target` names `file`).
    pub fn writes_files(&self) -> bool {
        self.to_files
    }

    /// Queue a line, waiting for room.
    pub(super) async fn send(&self, job: Job) {
        // The writer only goes away when supd exits.
        let _ = self.files.send(job).await;
    }

    /// Queue a line without waiting; with the queue full, a task waits for room.
    pub(super) fn send_now(&self, job: Job) {
        if let Err(mpsc::error::TrySendError::Full(job)) = self.files.try_send(job) {
            let files = self.files.clone();
            tokio::spawn(async move {
                let _ = files.send(job).await;
            });
        }
    }

    /// The file job for a line (none without files), after handing copies to the
    /// console and to journald or syslog.
    pub(super) fn job(
        &self,
        unit: &Arc<str>,
        path: &Arc<PathBuf>,
        limits: LogLimits,
        entry: Entry,
    ) -> Option<Job> {
        self.to_console(unit, &entry);
        for remote in [&self.journald, &self.syslog].into_iter().flatten() {
            remote.send(unit, &entry);
        }
        self.to_files.then(|| Job::Write {
            path: path.clone(),
            limits,
            text: entry.file_text(),
        })
    }

    /// Close the file once every line queued before is written: descriptors are
    /// held only while a unit has output pipes open, not for every unit ever seen.
    pub(super) async fn close(&self, path: &Arc<PathBuf>) {
        self.send(Job::Close(path.clone())).await;
    }

    /// `close` without waiting.
    pub(super) fn close_now(&self, path: &Arc<PathBuf>) {
        self.send_now(Job::Close(path.clone()));
    }

    fn to_console(&self, unit: &str, entry: &Entry) {
        if let Some(console) = &self.console
            && let Err(TrySendError::Full(_)) =
                console.tx.try_send(format!("{unit}: {}", entry.line))
        {
            console.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Wait until every line queued so far is in its file, and sent to journald
    /// or syslog (for at most a second each: a stuck daemon drops them).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.files.send(Job::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
        for remote in [&self.journald, &self.syslog].into_iter().flatten() {
            remote.flush().await;
        }
    }
}

/// Open log files by path, owned by the writer thread.
#[derive(Default)]
struct OpenFiles {
    open: HashMap<PathBuf, OpenLog>,
}

#[derive(Default)]
struct OpenLog {
    file: Option<File>,
    size: u64,
    /// Set after a write error so the error is reported once, not per line.
    failed: bool,
}

impl OpenFiles {
    fn write(&mut self, path: &Path, limits: LogLimits, text: &str) {
        let log = self.open.entry(path.to_path_buf()).or_default();
        match log.write(path, limits, text.as_bytes()) {
            Ok(()) => log.failed = false,
            Err(e) => {
                if !log.failed {
                    tracing::warn!(path = %path.display(), error = %e, "cannot write unit log; keeping lines in memory only");
                }
                log.failed = true;
                log.file = None;
            }
        }
    }
}

impl OpenLog {
    fn write(&mut self, path: &Path, limits: LogLimits, bytes: &[u8]) -> std::io::Result<()> {
        if self.file.is_some() && self.size.saturating_add(bytes.len() as u64) > limits.max_size {
            self.file = None;
            rotate(path, limits.max_files)?;
        }
        // Deleted (or rotated) by someone else: writing on would go nowhere.
        if let Some(f) = &self.file
            && f.metadata().map_or(true, |m| m.nlink() == 0)
        {
            self.file = None;
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => {
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(LOG_FILE_MODE)
                    // Never follow a link planted at the log's name.
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(path)?;
                self.size = f.metadata()?.len();
                self.file.insert(f)
            }
        };
        file.write_all(bytes)?;
        self.size = self.size.saturating_add(bytes.len() as u64);
        Ok(())
    }
}

/// `x.log` -> `x.log.1` -> ... -> `x.log.N`; the oldest is dropped. With N = 0 the
/// live file is simply truncated.
pub fn rotate(path: &Path, keep: u32) -> std::io::Result<()> {
    if keep == 0 {
        return File::create(path).map(drop);
    }
    let numbered = |i: u32| PathBuf::from(format!("{}.{i}", path.display()));
    for i in (1..keep).rev() {
        match std::fs::rename(numbered(i), numbered(i + 1)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    std::fs::rename(path, numbered(1))
}

#[cfg(test)]
mod tests {
    use super::super::SharedLog;
    use super::*;

    #[tokio::test]
    async fn rotates_by_size_and_keeps_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("u.log");
        let writer = LogWriter::start(false).expect("writer");
        let limits = LogLimits {
            max_size: 200,
            max_files: 2,
        };
        let log = SharedLog::new("u", path.clone(), limits, writer.clone());
        for i in 0..40 {
            log.append(super::super::Stream::Stdout, format!("line number {i}"))
                .await;
        }
        writer.flush().await;
        assert!(path.exists());
        assert!(dir.path().join("u.log.1").exists());
        assert!(dir.path().join("u.log.2").exists());
        assert!(!dir.path().join("u.log.3").exists());
        for f in ["u.log", "u.log.1", "u.log.2"] {
            let len = std::fs::metadata(dir.path().join(f)).expect("meta").len();
            assert!(len <= 200, "{f} is {len} bytes");
        }
        let live = std::fs::read_to_string(&path).expect("read");
        assert!(live.contains("line number 39"));
        let tail: Vec<String> = log.tail(2).into_iter().map(|e| e.line).collect();
        assert_eq!(tail, vec!["line number 38", "line number 39"]);
    }

    /// A log of one unbounded file at `path` and the writer behind it.
    fn one_file_log(path: &std::path::Path) -> (LogWriter, SharedLog) {
        let writer = LogWriter::start(false).expect("writer");
        let limits = LogLimits {
            max_size: 1 << 20,
            max_files: 1,
        };
        let log = SharedLog::new("u", path.to_path_buf(), limits, writer.clone());
        (writer, log)
    }

    /// An open file is a descriptor of supd's: held while output pipes are open,
    /// given back when the last one closes (a unit removed keeps none).
    #[tokio::test]
    async fn the_file_is_closed_when_the_last_pipe_closes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("u.log");
        let (writer, log) = one_file_log(&path);
        let open = || {
            std::fs::read_dir("/proc/self/fd")
                .expect("fds")
                .flatten()
                .any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == path))
        };
        log.pipe_opened();
        log.pipe_opened();
        log.append(super::super::Stream::Stdout, "out".into()).await;
        writer.flush().await;
        assert!(open(), "open while output comes");
        log.pipe_closed().await;
        writer.flush().await;
        assert!(open(), "stderr is still open");
        log.pipe_closed().await;
        writer.flush().await;
        assert!(!open(), "closed with the last pipe");
        log.note("a note of supd's".into());
        writer.flush().await;
        assert!(!open(), "a note without pipes does not keep it open");
        let text = std::fs::read_to_string(&path).expect("log");
        assert!(
            text.contains("out") && text.contains("a note of supd's"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_deleted_log_file_is_recreated_and_links_are_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("u.log");
        let (writer, log) = one_file_log(&path);
        log.note("first".into());
        writer.flush().await;
        std::fs::remove_file(&path).expect("rm");
        log.note("second".into());
        writer.flush().await;
        let text = std::fs::read_to_string(&path).expect("recreated");
        assert!(text.contains("second") && !text.contains("first"), "{text}");
        let mode = std::fs::metadata(&path).expect("meta").mode() & 0o777;
        assert_eq!(mode & 0o007, 0, "not readable by others: {mode:o}");

        let planted = dir.path().join("planted");
        std::fs::write(&planted, "").expect("planted");
        let linked = dir.path().join("l.log");
        std::os::unix::fs::symlink(&planted, &linked).expect("symlink");
        let (writer, log) = one_file_log(&linked);
        log.note("secret".into());
        writer.flush().await;
        assert_eq!(std::fs::read_to_string(&planted).expect("read"), "");
        assert!(log.tail(1)[0].line.contains("secret"), "kept in memory");
    }

    /// `--log-target journald,syslog`: every line reaches both sockets, no file is
    /// written, and the last lines are still in memory.
    #[tokio::test]
    async fn lines_go_to_journald_and_syslog_instead_of_files() {
        use std::os::unix::net::UnixDatagram;
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = UnixDatagram::bind(dir.path().join("journal")).expect("bind");
        let syslog = UnixDatagram::bind(dir.path().join("syslog")).expect("bind");
        for s in [&journal, &syslog] {
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .expect("timeout");
        }
        let targets = Targets {
            files: false,
            journald: Some(dir.path().join("journal")),
            syslog: Some(dir.path().join("syslog")),
        };
        let writer = LogWriter::start_with(false, &targets).expect("writer");
        let path = dir.path().join("u.log");
        let limits = LogLimits {
            max_size: 1 << 20,
            max_files: 1,
        };
        let log = SharedLog::new("u", path.clone(), limits, writer.clone());
        log.append(super::super::Stream::Stdout, "out line".into())
            .await;
        log.note("a note".into());
        writer.flush().await;
        let mut buf = vec![0u8; 65536];
        let n = journal.recv(&mut buf).expect("journal datagram");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(text.starts_with("MESSAGE=out line\nPRIORITY=6\n"), "{text}");
        let n = journal.recv(&mut buf).expect("journal datagram");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(text.contains("MESSAGE=a note\nPRIORITY=3\n"), "{text}");
        let n = syslog.recv(&mut buf).expect("syslog datagram");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(
            text.starts_with("<30>") && text.ends_with("]: out line"),
            "{text}"
        );
        assert!(!path.exists(), "no file");
        assert_eq!(log.tail(5).len(), 2, "kept in memory");
    }

    /// `--log-target file,journald`: both.
    #[tokio::test]
    async fn targets_combine() {
        use std::os::unix::net::UnixDatagram;
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = UnixDatagram::bind(dir.path().join("journal")).expect("bind");
        journal
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        let targets = Targets {
            files: true,
            journald: Some(dir.path().join("journal")),
            syslog: None,
        };
        let writer = LogWriter::start_with(false, &targets).expect("writer");
        assert!(writer.writes_files());
        let path = dir.path().join("u.log");
        let limits = LogLimits {
            max_size: 1 << 20,
            max_files: 1,
        };
        let log = SharedLog::new("u", path.clone(), limits, writer.clone());
        log.append(super::super::Stream::Stderr, "both".into())
            .await;
        writer.flush().await;
        let mut buf = vec![0u8; 65536];
        let n = journal.recv(&mut buf).expect("journal datagram");
        assert!(buf[..n].starts_with(b"MESSAGE=both\nPRIORITY=3\n"));
        let text = std::fs::read_to_string(&path).expect("file");
        assert!(text.ends_with(" [stderr] both\n"), "{text}");
    }
}
