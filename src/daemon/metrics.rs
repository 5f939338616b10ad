//! `supd --metrics-listen ADDR`: Prometheus metrics over HTTP (off by default).
//!
//! Counters that only the event loop sees happen (exits by reason, start latency)
//! live in [`Counters`], atomics shared with the server; everything else is read
//! at scrape time through the same status request `supctl status` makes (its
//! cgroup reads run off the loop). The text format comes from `prometheus-client`;
//! requests are parsed with `httparse`. Each scrape has a deadline and the number
//! of connections at once is capped, so a scraper can never hold supd up.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::control::proto::{Command, Reply, UnitState, UnitStatus};
use crate::control::server::{Answer, Query};

/// Scrapes served at once; more wait for the accept.
const MAX_SCRAPES: usize = 8;
/// A scrape (request, status, answer) that takes longer is dropped.
const SCRAPE_DEADLINE: Duration = Duration::from_secs(10);
const MAX_REQUEST_HEAD: usize = 8 * 1024;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UnitLabel {
    unit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct ExitLabels {
    unit: String,
    /// `code`, `signal` or `oom`.
    reason: String,
    /// The exit code or the signal's name.
    value: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    unit: String,
    state: String,
}

/// What the event loop counts for the metrics.
#[derive(Clone)]
pub struct Counters {
    /// Bounded: per unit at most 256 codes, the signals and `oom`; a removed
    /// unit's go with it.
    exits: Arc<Mutex<BTreeMap<ExitLabels, u64>>>,
    start_latency: Histogram,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            exits: Arc::default(),
            // 0.5 ms .. ~4 s.
            start_latency: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
        }
    }
}

impl Counters {
    /// A main process exited: by code or signal, OOM kills counted apart.
    pub fn exit(&self, unit: &str, code: Option<i32>, signal: Option<&str>, oom: bool) {
        let (reason, value) = match (oom, code, signal) {
            (true, _, _) => ("oom", String::new()),
            (false, Some(c), _) => ("code", c.to_string()),
            (false, None, Some(s)) => ("signal", s.to_owned()),
            (false, None, None) => ("unknown", String::new()),
        };
        let labels = ExitLabels {
            unit: unit.to_owned(),
            reason: reason.to_owned(),
            value,
        };
        *self.lock_exits().entry(labels).or_default() += 1;
    }

    fn lock_exits(&self) -> std::sync::MutexGuard<'_, BTreeMap<ExitLabels, u64>> {
        // Every update is one increment or removal: a poisoned lock is still usable.
        self.exits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// From the start's begin to its service running.
    pub fn started(&self, took: Duration) {
        self.start_latency.observe(took.as_secs_f64());
    }

    /// A removed unit's series go with it.
    pub fn forget(&self, unit: &str) {
        self.lock_exits().retain(|labels, _| labels.unit != unit);
    }
}

/// Serve `/metrics` on `listener` forever.
pub async fn serve(
    listener: TcpListener,
    queries: mpsc::UnboundedSender<Query>,
    counters: Counters,
) {
    let slots = Arc::new(Semaphore::new(MAX_SCRAPES));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accept on the metrics socket failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (queries, counters) = (queries.clone(), counters.clone());
        tokio::spawn(async move {
            let _ =
                tokio::time::timeout(SCRAPE_DEADLINE, scrape(stream, &queries, &counters)).await;
            drop(slot);
        });
    }
}

async fn scrape(
    mut stream: TcpStream,
    queries: &mpsc::UnboundedSender<Query>,
    counters: &Counters,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let path = loop {
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {
                break (
                    req.method.unwrap_or_default().to_owned(),
                    req.path.unwrap_or_default().to_owned(),
                );
            }
            Ok(httparse::Status::Partial) if head.len() < MAX_REQUEST_HEAD => continue,
            _ => {
                return respond(
                    &mut stream,
                    "400 Bad Request",
                    "text/plain",
                    "bad request\n",
                )
                .await;
            }
        }
    };
    match (
        path.0.as_str(),
        path.1.split('?').next().unwrap_or_default(),
    ) {
        ("GET", "/metrics") => {
            let units = status(queries).await.unwrap_or_default();
            let body = render(&units, counters);
            respond(
                &mut stream,
                "200 OK",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                &body,
            )
            .await
        }
        ("GET", _) => respond(&mut stream, "404 Not Found", "text/plain", "try /metrics\n").await,
        _ => {
            respond(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain",
                "GET only\n",
            )
            .await
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    kind: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// Every unit's status (with cgroup usage), as `supctl status --json` has it.
async fn status(queries: &mpsc::UnboundedSender<Query>) -> Option<Vec<UnitStatus>> {
    let (tx, rx) = oneshot::channel();
    let command = Command::Status {
        units: Vec::new(),
        brief: false,
    };
    queries
        .send(Query::Request {
            command,
            answer: tx,
        })
        .ok()?;
    match rx.await.ok()? {
        Answer::Reply(Reply::Status { units }) => Some(units),
        _ => None,
    }
}

const STATES: [UnitState; 7] = [
    UnitState::Inactive,
    UnitState::Starting,
    UnitState::Running,
    UnitState::Stopping,
    UnitState::Restarting,
    UnitState::Exited,
    UnitState::Failed,
];

/// The text exposition of everything: pure, so it is tested without a server.
fn render(units: &[UnitStatus], counters: &Counters) -> String {
    let mut registry = Registry::with_prefix("sup");
    let state: Family<StateLabels, Gauge> = Family::default();
    let gauge = || Family::<UnitLabel, Gauge>::default();
    let float = || Family::<UnitLabel, Gauge<f64, AtomicU64>>::default();
    let (restarts, oom, up, healthy) = (gauge(), gauge(), gauge(), gauge());
    let (memory, memory_max, tasks, tasks_max) = (gauge(), gauge(), gauge(), gauge());
    let cpu = float();
    for u in units {
        let l = UnitLabel {
            unit: u.name.clone(),
        };
        for s in STATES {
            let labels = StateLabels {
                unit: u.name.clone(),
                state: s.to_string(),
            };
            state.get_or_create(&labels).set(i64::from(u.state == s));
        }
        restarts.get_or_create(&l).set(i64::from(u.restarts));
        oom.get_or_create(&l).set(i64::from(u.oom_kills));
        up.get_or_create(&l).set(i64::from(u.ready));
        if let Some(h) = &u.health {
            healthy.get_or_create(&l).set(i64::from(h == "healthy"));
        }
        if let Some(usage) = &u.usage {
            let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            if let Some(m) = usage.memory_current {
                memory.get_or_create(&l).set(clamp(m));
            }
            if let Some(m) = usage.memory_max {
                memory_max.get_or_create(&l).set(clamp(m));
            }
            if let Some(t) = usage.tasks {
                tasks.get_or_create(&l).set(clamp(t));
            }
            if let Some(t) = usage.pids_max {
                tasks_max.get_or_create(&l).set(clamp(t));
            }
            if let Some(us) = usage.cpu_usage_usec {
                cpu.get_or_create(&l).set(us as f64 / 1e6);
            }
        }
    }
    registry.register("unit_state", "1 for the unit's current state", state);
    registry.register(
        "unit_ready",
        "1 when the unit is ready (dependents may start)",
        up,
    );
    registry.register(
        "unit_restarts",
        "automatic restarts since the operator last started it",
        restarts,
    );
    registry.register(
        "unit_oom_kills",
        "OOM kills since supd loaded the unit",
        oom,
    );
    registry.register(
        "unit_healthy",
        "1 healthy, 0 otherwise (units with a [health] check)",
        healthy,
    );
    registry.register(
        "unit_memory_bytes",
        "memory used by the unit's cgroup",
        memory,
    );
    registry.register("unit_memory_max_bytes", "the unit's memory_max", memory_max);
    registry.register(
        "unit_tasks",
        "processes and threads in the unit's cgroup",
        tasks,
    );
    registry.register("unit_tasks_max", "the unit's pids_max", tasks_max);
    registry.register(
        "unit_cpu_seconds",
        "CPU time used by the unit's cgroup",
        cpu,
    );
    let exits: Family<ExitLabels, Counter> = Family::default();
    for (labels, n) in counters.lock_exits().iter() {
        exits.get_or_create(labels).inc_by(*n);
    }
    registry.register(
        "unit_exits",
        "main process exits by reason (code, signal, oom)",
        exits,
    );
    registry.register(
        "start_latency_seconds",
        "from a start's beginning to its service running",
        counters.start_latency.clone(),
    );
    let own = crate::procfs::self_usage();
    let rss: Gauge = Gauge::default();
    rss.set(i64::try_from(own.rss_bytes).unwrap_or(i64::MAX));
    let fds: Gauge = Gauge::default();
    fds.set(i64::try_from(own.open_fds).unwrap_or(i64::MAX));
    registry.register(
        "supd_resident_memory_bytes",
        "supd's own resident memory",
        rss,
    );
    registry.register("supd_open_fds", "supd's own open file descriptors", fds);
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out = "# encoding failed\n".into();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_states_exits_and_supd_itself() {
        let mut web = UnitStatus::new("web", UnitState::Running);
        web.restarts = 2;
        web.usage = Some(crate::control::proto::Usage {
            memory_current: Some(4096),
            memory_max: Some(1 << 20),
            ..Default::default()
        });
        let counters = Counters::default();
        counters.exit("web", Some(1), None, false);
        counters.exit("web", None, Some("SIGKILL"), true);
        counters.started(Duration::from_millis(3));
        let text = render(&[web], &counters);
        for want in [
            "sup_unit_state{unit=\"web\",state=\"running\"} 1",
            "sup_unit_state{unit=\"web\",state=\"failed\"} 0",
            "sup_unit_restarts{unit=\"web\"} 2",
            "sup_unit_memory_bytes{unit=\"web\"} 4096",
            "sup_unit_memory_max_bytes{unit=\"web\"} 1048576",
            "sup_unit_exits_total{unit=\"web\",reason=\"code\",value=\"1\"} 1",
            "sup_unit_exits_total{unit=\"web\",reason=\"oom\",value=\"\"} 1",
            "sup_start_latency_seconds_count 1",
            "sup_supd_resident_memory_bytes ",
            "# EOF",
        ] {
            assert!(text.contains(want), "no {want:?} in\n{text}");
        }
    }
}
