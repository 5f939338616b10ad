//! Service output: each unit's stdout and stderr arrive through pipes (`pump`), are
//! cut into lines, stamped, kept in memory (the last lines, for `supctl logs` and
//! `supctl status`), broadcast to followers (`supctl logs -f`), and written to
//! `<state>/logs/<unit>.log`, rotated by size, and/or sent to journald or syslog
//! (`remote`, `supd --log-target`).
//!
//! Writing files and copying lines to the console (as PID 1) happen on dedicated
//! threads (`writer`), behind bounded queues: a slow disk or serial console slows the
//! services' output at worst, never the supervisor.

pub mod history;
mod pump;
mod remote;
mod writer;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::broadcast;

pub use pump::{pump, pump_both};
pub use remote::{JOURNAL_SOCKET, SYSLOG_SOCKET, Targets};
pub use writer::{LogWriter, rotate};

use crate::unit::LogLimits;

/// Lines kept in memory per unit.
pub const MEMORY_LINES: usize = 1000;
/// A line longer than this is cut into pieces (protects memory from binary output).
pub const MAX_LINE: usize = 16 * 1024;
/// Lines a slow follower may fall behind before it is told it skipped some.
const FOLLOW_BUFFER: usize = 1024;

/// Which output of the service a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One line of a unit's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub at: SystemTime,
    pub stream: Stream,
    pub line: String,
}

impl Entry {
    /// The line as it is written to the log file.
    fn file_text(&self) -> String {
        let ts = humantime::format_rfc3339_millis(self.at);
        match self.stream {
            Stream::Stderr => format!("{ts} [stderr] {}\n", self.line),
            Stream::Stdout => format!("{ts} {}\n", self.line),
        }
    }
}

#[derive(Debug)]
struct Memory {
    limits: LogLimits,
    recent: VecDeque<Entry>,
    /// Created for the first follower and dropped when the last one is gone: a
    /// broadcast channel preallocates its whole buffer, which most units never need.
    followers: Option<broadcast::Sender<Entry>>,
    /// Output pipes of the unit still open; the log file is closed when none are.
    pipes: usize,
}

/// One unit's log: shared between the pipe pumps, the daemon and the control server.
#[derive(Debug, Clone)]
pub struct SharedLog {
    unit: Arc<str>,
    path: Arc<PathBuf>,
    memory: Arc<Mutex<Memory>>,
    writer: LogWriter,
}

impl SharedLog {
    pub fn new(unit: &str, path: PathBuf, limits: LogLimits, writer: LogWriter) -> Self {
        SharedLog {
            unit: unit.into(),
            path: Arc::new(path),
            memory: Arc::new(Mutex::new(Memory {
                limits,
                recent: VecDeque::new(),
                followers: None,
                pipes: 0,
            })),
            writer,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Memory> {
        // Every update leaves the memory consistent, so a poisoned lock is still usable.
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn path(&self) -> &PathBuf {
        &self.path
    }

    /// Whether this supd writes the unit's lines to its log files (`--log-target
    /// file`): only then do the files hold this run's history.
    pub fn writes_files(&self) -> bool {
        self.writer.writes_files()
    }

    /// New limits apply from the next line on (a reloaded definition).
    pub fn set_limits(&self, limits: LogLimits) {
        self.lock().limits = limits;
    }

    /// Keep the line in memory and hand it to followers; returns what the file
    /// writer needs. Never blocks on IO.
    fn remember(&self, stream: Stream, line: String) -> (Entry, LogLimits) {
        let entry = Entry {
            at: SystemTime::now(),
            stream,
            line,
        };
        let mut memory = self.lock();
        if memory.recent.len() >= MEMORY_LINES {
            memory.recent.pop_front();
        }
        memory.recent.push_back(entry.clone());
        if let Some(tx) = &memory.followers {
            if tx.receiver_count() == 0 {
                memory.followers = None;
            } else {
                // A follower that left between the check and the send is fine.
                let _ = tx.send(entry.clone());
            }
        }
        (entry, memory.limits)
    }

    /// A line of service output: waits for room in the writer's queue, so a service
    /// that writes faster than the disk is slowed down rather than losing lines.
    pub async fn append(&self, stream: Stream, line: String) {
        let (entry, limits) = self.remember(stream, line);
        if let Some(job) = self.writer.job(&self.unit, &self.path, limits, entry) {
            self.writer.send(job).await;
        }
    }

    /// A line supd adds itself (e.g. why a start failed). Never waits.
    pub fn note(&self, line: String) {
        self.notes([(Stream::Stderr, line)]);
    }

    /// Lines supd adds at once: its own, or what a start that failed wrote before
    /// the unit's output was read. Never waits.
    pub fn notes(&self, lines: impl IntoIterator<Item = (Stream, String)>) {
        for (stream, line) in lines {
            let (entry, limits) = self.remember(stream, line);
            if let Some(job) = self.writer.job(&self.unit, &self.path, limits, entry) {
                self.writer.send_now(job);
            }
        }
        if self.lock().pipes == 0 {
            self.writer.close_now(&self.path);
        }
    }

    /// An output pipe of the unit starts to be read.
    pub fn pipe_opened(&self) {
        self.lock().pipes += 1;
    }

    /// An output pipe reached its end; with the last one, the file is closed.
    pub async fn pipe_closed(&self) {
        let last = {
            let mut memory = self.lock();
            memory.pipes = memory.pipes.saturating_sub(1);
            memory.pipes == 0
        };
        if last {
            self.writer.close(&self.path).await;
        }
    }

    /// The unit's rotation limits (how many files `history` reads).
    pub fn limits(&self) -> LogLimits {
        self.lock().limits
    }

    /// The last `n` lines in memory that `filter` accepts, oldest first.
    pub fn tail_matching(&self, n: usize, filter: &history::Filter) -> Vec<Entry> {
        let memory = self.lock();
        let matching: Vec<&Entry> = memory.recent.iter().filter(|e| filter.accepts(e)).collect();
        let skip = matching.len().saturating_sub(n);
        matching.into_iter().skip(skip).cloned().collect()
    }

    /// The last `n` lines, oldest first.
    pub fn tail(&self, n: usize) -> Vec<Entry> {
        let memory = self.lock();
        let skip = memory.recent.len().saturating_sub(n);
        memory.recent.iter().skip(skip).cloned().collect()
    }

    /// The last `n` lines and a receiver for every line after them, atomically.
    pub fn tail_and_follow(&self, n: usize) -> (Vec<Entry>, broadcast::Receiver<Entry>) {
        let mut memory = self.lock();
        let rx = memory
            .followers
            .get_or_insert_with(|| broadcast::channel(FOLLOW_BUFFER).0)
            .subscribe();
        let skip = memory.recent.len().saturating_sub(n);
        (memory.recent.iter().skip(skip).cloned().collect(), rx)
    }
}
