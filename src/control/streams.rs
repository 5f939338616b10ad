//! The long answers of the control socket, read by the connection's own task:
//! `logs` (from memory or the files, then following) and `events`.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::broadcast;

use super::proto::{LogLine, Reply};
use super::server::send;
use crate::logs::SharedLog;
use crate::logs::history::Filter;

/// What a `logs` request asks for.
pub(super) struct LogWant {
    pub(super) lines: usize,
    pub(super) follow: bool,
    pub(super) filter: Filter,
}

/// `since`/`until` (RFC 3339) and `grep` of a `logs` request.
pub(super) fn log_filter(
    since: &Option<String>,
    until: &Option<String>,
    grep: &Option<String>,
) -> Result<Filter, String> {
    let time = |key: &str, v: &Option<String>| {
        v.as_deref()
            .map(|t| {
                humantime::parse_rfc3339_weak(t)
                    .map_err(|e| format!("{key} {t:?} is not an RFC 3339 time: {e}"))
            })
            .transpose()
    };
    Ok(Filter {
        since: time("since", since)?,
        until: time("until", until)?,
        grep: grep.clone().filter(|g| !g.is_empty()),
    })
}

pub(super) async fn stream_log<R: AsyncRead + Unpin>(
    log: SharedLog,
    want: LogWant,
    rd: &mut BufReader<R>,
    wr: &mut OwnedWriteHalf,
) {
    let LogWant {
        lines,
        follow,
        filter,
    } = want;
    // From the files when memory may not hold it all: a time range, a search,
    // or more lines than memory keeps.
    let from_files = !filter.is_empty() || lines > crate::logs::MEMORY_LINES;
    // Without log files (`--log-target` without `file`), memory is all there is:
    // a file left by an earlier run is not this run's history.
    let history = |log: &SharedLog, filter: &Filter| {
        let (path, keep) = (log.path().clone(), log.limits().max_files);
        let (filter, log) = (filter.clone(), log.clone());
        tokio::task::spawn_blocking(move || match log.writes_files() && path.exists() {
            true => crate::logs::history::read(&path, keep, &filter, lines),
            false => log.tail_matching(lines, &filter),
        })
    };
    if !follow {
        let past = match from_files {
            true => history(&log, &filter).await.unwrap_or_default(),
            false => log.tail(lines),
        };
        for line in past {
            if send(wr, &Reply::Log(line.into())).await.is_err() {
                return;
            }
        }
        let _ = send(wr, &Reply::End).await;
        return;
    }
    let (mut tail, mut rx) = log.tail_and_follow(lines);
    if from_files {
        // Lines written between the read and the subscription may show twice:
        // better than missing one.
        tail = history(&log, &filter).await.unwrap_or_default();
    }
    for line in tail {
        if send(wr, &Reply::Log(line.into())).await.is_err() {
            return;
        }
    }
    let mut probe = [0u8; 1];
    loop {
        tokio::select! {
            next = rx.recv() => match next {
                Ok(line) if !filter.accepts(&line) => {
                    if filter.until.is_some_and(|u| line.at > u) { return }
                }
                Ok(line) => if send(wr, &Reply::Log(line.into())).await.is_err() { return },
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    // Never let a slow reader hold lines (or supd) back: it goes.
                    let note = LogLine {
                        ts: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
                        stream: "stderr".into(),
                        line: format!("[supd: follower dropped: it fell {n} lines behind; run `supctl logs -f` again]"),
                    };
                    let _ = send(wr, &Reply::Log(note)).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            // Any read result (EOF or data) means the client is done with us.
            _ = rd.read(&mut probe) => return,
        }
    }
}

/// Every event for the client (about `units`, or all when empty, and supd-wide
/// ones) until it hangs up. One that falls behind is told how many events it
/// missed and goes on from the newest.
pub(super) async fn stream_events<R: AsyncRead + Unpin>(
    mut rx: broadcast::Receiver<Arc<crate::control::proto::Event>>,
    units: &[String],
    rd: &mut BufReader<R>,
    wr: &mut OwnedWriteHalf,
) {
    use crate::control::proto::{Event, EventKind};
    let mut probe = [0u8; 1];
    loop {
        let event = tokio::select! {
            next = rx.recv() => match next {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(count)) => Arc::new(Event {
                    time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
                    unit: None,
                    kind: EventKind::Dropped { count },
                }),
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = rd.read(&mut probe) => return,
        };
        let wanted = match &event.unit {
            Some(unit) => units.is_empty() || units.contains(unit),
            None => true,
        };
        if wanted && send(wr, &Reply::Event(Event::clone(&event))).await.is_err() {
            return;
        }
    }
}
