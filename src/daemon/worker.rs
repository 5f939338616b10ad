//! A thread of its own for short blocking jobs that come often (health probe
//! starts): run one after the other, they need one thread, where tokio's blocking
//! pool would grow a thread per job in flight and wake a different one each time.
//! The thread starts at the first job (no probes, no thread) and runs inside the
//! runtime's context, so a job may spawn tasks.

use std::sync::mpsc;

type Job = Box<dyn FnOnce() + Send>;

#[derive(Debug)]
pub struct SerialWorker {
    name: &'static str,
    jobs: Option<mpsc::Sender<Job>>,
}

impl SerialWorker {
    pub fn new(name: &'static str) -> Self {
        SerialWorker { name, jobs: None }
    }

    /// Queue `job`. Call from within the runtime. If the thread cannot be made
    /// (or has gone), the job runs in tokio's blocking pool instead: it is never
    /// dropped.
    pub fn run(&mut self, job: impl FnOnce() + Send + 'static) {
        let job: Job = Box::new(job);
        let job = match &self.jobs {
            Some(tx) => match tx.send(job) {
                Ok(()) => return,
                Err(mpsc::SendError(job)) => job,
            },
            None => job,
        };
        match self.start() {
            Some(tx) => {
                if let Err(mpsc::SendError(job)) = tx.send(job) {
                    tokio::task::spawn_blocking(job);
                }
                self.jobs = Some(tx);
            }
            None => {
                tokio::task::spawn_blocking(job);
            }
        }
    }

    fn start(&self) -> Option<mpsc::Sender<Job>> {
        let (tx, rx) = mpsc::channel::<Job>();
        let runtime = tokio::runtime::Handle::current();
        let spawned = std::thread::Builder::new()
            .name(self.name.to_string())
            .spawn(move || {
                let _context = runtime.enter();
                for job in rx {
                    job();
                }
            });
        match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::warn!(thread = self.name, error = %e, "cannot start a thread; using the blocking pool");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_in_order_on_one_thread_that_can_spawn_tasks() {
        let mut worker = SerialWorker::new("test-worker");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for i in 0..20 {
            let tx = tx.clone();
            worker.run(move || {
                let name = std::thread::current().name().map(str::to_string);
                tokio::spawn(async move {
                    let _ = tx.send((i, name));
                });
            });
        }
        drop(tx);
        let mut seen = Vec::new();
        while let Some(x) = rx.recv().await {
            seen.push(x);
        }
        seen.sort();
        let want: Vec<_> = (0..20)
            .map(|i| (i, Some("test-worker".to_string())))
            .collect();
        assert_eq!(seen, want);
    }
}
