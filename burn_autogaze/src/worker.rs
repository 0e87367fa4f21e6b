//! Inference off the display thread.
//!
//! A worker thread runs a job (the model or patch-diff) on submitted frames.
//! In-flight depth is bounded: one frame runs, at most one waits; a newer
//! submission replaces the waiting one (latest wins, the replaced frame is
//! counted as dropped). Every result carries the sequence number of its
//! frame; a result older than the last one taken is dropped and counted as
//! stale. A job that fails or panics is reported and counted, and the worker
//! keeps running. Nothing here blocks the submitting thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::wait::panic_text;

/// Worker counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkerCounters {
    /// Submissions accepted (started or waiting).
    pub admitted: u64,
    /// Waiting submissions replaced by newer ones before they ran.
    pub dropped: u64,
    /// Results discarded because a newer one had already been taken.
    pub stale: u64,
    /// Jobs that returned an error or panicked.
    pub failed: u64,
    /// Results taken by the caller.
    pub completed: u64,
    /// Jobs running or waiting right now.
    pub in_flight: u64,
}

/// What the worker sends back.
#[derive(Debug)]
pub enum WorkerResult<Out> {
    /// The job's output for frame `seq`.
    Done {
        /// The frame.
        seq: u64,
        /// What the job gave.
        output: Out,
    },
    /// The job failed (an error message, or a panic's payload) on frame `seq`.
    Failed {
        /// The frame.
        seq: u64,
        /// Why.
        message: String,
    },
}

struct Slot<In> {
    pending: Option<(u64, In)>,
    running: bool,
    shutdown: bool,
    counters: WorkerCounters,
    /// The browser's task waiting for an input (no thread to wake there).
    #[cfg(target_arch = "wasm32")]
    waker: Option<std::task::Waker>,
}

struct Shared<In> {
    slot: Mutex<Slot<In>>,
    wake: Condvar,
}

/// A job running on its own thread (in the browser: a task on the page's
/// event loop), latest-wins.
pub struct InferenceWorker<In: Send + 'static, Out: Send + 'static> {
    shared: Arc<Shared<In>>,
    results: Receiver<WorkerResult<Out>>,
    last_taken: Option<u64>,
    thread: Option<JoinHandle<()>>,
}

/// An async job's signature: it borrows its state while it runs.
pub type AsyncJob<S, In, Out, E> =
    for<'a> fn(&'a mut S, In) -> crate::wait::Pending<'a, Result<Out, E>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the slot inconsistent
    // (every critical section is a few field writes), so recover the guard.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<In> Shared<In> {
    fn new() -> Arc<Self> {
        Arc::new(Shared {
            slot: Mutex::new(Slot {
                pending: None,
                running: false,
                shutdown: false,
                counters: WorkerCounters::default(),
                #[cfg(target_arch = "wasm32")]
                waker: None,
            }),
            wake: Condvar::new(),
        })
    }

    /// After a job on frame `seq`: its result sent, the slot's counters
    /// updated.
    fn finish<Out>(&self, seq: u64, outcome: Result<Out, String>, tx: &Sender<WorkerResult<Out>>) {
        let message = match outcome {
            Ok(output) => {
                let _ = tx.send(WorkerResult::Done { seq, output });
                None
            }
            Err(message) => Some(message),
        };
        let mut slot = lock(&self.slot);
        slot.running = false;
        slot.counters.in_flight = slot.pending.is_some() as u64;
        if let Some(message) = message {
            slot.counters.failed += 1;
            drop(slot);
            let _ = tx.send(WorkerResult::Failed { seq, message });
        }
    }
}

/// The browser's worker: a task on the page's event loop that waits for
/// an input, runs the job on it (awaiting its readbacks) and sends the
/// result, until its worker is dropped.
#[cfg(target_arch = "wasm32")]
async fn run_on_the_page<S, In, Out, E: std::fmt::Display>(
    shared: Arc<Shared<In>>,
    mut state: S,
    job: AsyncJob<S, In, Out, E>,
    tx: Sender<WorkerResult<Out>>,
) {
    loop {
        let next = std::future::poll_fn(|cx| {
            let mut slot = lock(&shared.slot);
            if slot.shutdown {
                return std::task::Poll::Ready(None);
            }
            match slot.pending.take() {
                Some(next) => {
                    slot.running = true;
                    std::task::Poll::Ready(Some(next))
                }
                None => {
                    slot.waker = Some(cx.waker().clone());
                    std::task::Poll::Pending
                }
            }
        })
        .await;
        let Some((seq, input)) = next else {
            return;
        };
        let outcome = job(&mut state, input).await.map_err(|e| e.to_string());
        shared.finish(seq, outcome, &tx);
    }
}

/// Lowers the calling thread's priority (best effort; a no-op off Linux).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority with PRIO_PROCESS and who = 0 changes only the
    // calling thread's nice value on Linux; it touches no memory of ours.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

impl<In: Send + 'static, Out: Send + 'static> InferenceWorker<In, Out> {
    /// Starts a worker thread running `job` on each admitted input, at
    /// normal priority.
    pub fn spawn<E: std::fmt::Display>(
        name: &str,
        job: impl FnMut(In) -> Result<Out, E> + Send + 'static,
    ) -> std::io::Result<Self> {
        Self::spawn_with(name, false, job)
    }

    /// As [`InferenceWorker::spawn`]; `background` lowers the thread's
    /// scheduling priority (Linux: nice 10, inherited by the threads it
    /// starts, e.g. a compute pool), so a display sharing the cores is not
    /// starved by inference whose results are latest-wins anyway.
    pub fn spawn_with<E: std::fmt::Display>(
        name: &str,
        background: bool,
        mut job: impl FnMut(In) -> Result<Out, E> + Send + 'static,
    ) -> std::io::Result<Self> {
        let shared = Shared::new();
        let (tx, results): (Sender<WorkerResult<Out>>, _) = channel();
        let worker_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                if background {
                    lower_priority();
                }
                loop {
                    let (seq, input) = {
                        let mut slot = lock(&worker_shared.slot);
                        loop {
                            if slot.shutdown {
                                return;
                            }
                            if let Some(next) = slot.pending.take() {
                                slot.running = true;
                                break next;
                            }
                            slot = worker_shared
                                .wake
                                .wait(slot)
                                .unwrap_or_else(|p| p.into_inner());
                        }
                    };
                    let outcome = catch_unwind(AssertUnwindSafe(|| job(input)));
                    let outcome = match outcome {
                        Ok(result) => result.map_err(|e| e.to_string()),
                        Err(payload) => Err(panic_text(payload.as_ref())),
                    };
                    worker_shared.finish(seq, outcome, &tx);
                }
            })?;
        Ok(Self {
            shared,
            results,
            last_taken: None,
            thread: Some(thread),
        })
    }

    /// A worker for an `async` job (the model, whose readbacks are
    /// awaited: [`crate::wait`]) owning `state`. Natively its thread waits
    /// for each job's future ([`crate::wait::block_on`]), as
    /// [`InferenceWorker::spawn_with`]. In the browser there are no
    /// threads: the job runs as a task on the page's event loop, so the
    /// page never blocks on it (a frame's readback resolves between the
    /// page's frames) and one job runs at a time, latest-wins as here.
    pub fn spawn_async<S: Send + 'static, E: std::fmt::Display + 'static>(
        name: &str,
        background: bool,
        state: S,
        job: AsyncJob<S, In, Out, E>,
    ) -> std::io::Result<Self> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let mut state = state;
            Self::spawn_with(name, background, move |input| {
                pollster::block_on(job(&mut state, input))
            })
        }
        #[cfg(target_arch = "wasm32")]
        {
            let _ = (name, background);
            let shared = Shared::new();
            let (tx, results) = channel();
            wasm_bindgen_futures::spawn_local(run_on_the_page(Arc::clone(&shared), state, job, tx));
            Ok(Self {
                shared,
                results,
                last_taken: None,
                thread: None,
            })
        }
    }

    /// Offers frame `seq`; never blocks. A waiting, not yet started input is
    /// replaced (and counted as dropped).
    pub fn submit(&self, seq: u64, input: In) {
        let mut slot = lock(&self.shared.slot);
        slot.counters.admitted += 1;
        if slot.pending.replace((seq, input)).is_some() {
            slot.counters.dropped += 1;
        }
        slot.counters.in_flight = 1 + slot.running as u64;
        #[cfg(target_arch = "wasm32")]
        let task = slot.waker.take();
        drop(slot);
        self.shared.wake.notify_one();
        #[cfg(target_arch = "wasm32")]
        if let Some(task) = task {
            task.wake();
        }
    }

    /// True when a job runs or waits.
    pub fn busy(&self) -> bool {
        let slot = lock(&self.shared.slot);
        slot.running || slot.pending.is_some()
    }

    /// The newest finished result not older than the last one taken, if any;
    /// older ones are dropped as stale. Never blocks.
    pub fn take_latest(&mut self) -> Option<WorkerResult<Out>> {
        let mut newest: Option<WorkerResult<Out>> = None;
        while let Ok(r) = self.results.try_recv() {
            if let Some(old) = newest.replace(r) {
                self.count_stale(&old);
            }
        }
        let result = newest?;
        let seq = match &result {
            WorkerResult::Done { seq, .. } | WorkerResult::Failed { seq, .. } => *seq,
        };
        if self.last_taken.is_some_and(|last| seq < last) {
            self.count_stale(&result);
            return None;
        }
        if matches!(result, WorkerResult::Done { .. }) {
            self.last_taken = Some(seq);
            lock(&self.shared.slot).counters.completed += 1;
        }
        Some(result)
    }

    fn count_stale(&self, result: &WorkerResult<Out>) {
        if matches!(result, WorkerResult::Done { .. }) {
            lock(&self.shared.slot).counters.stale += 1;
        }
    }

    /// Blocks until a result is available (for tests and offline runs).
    pub fn wait_result(&mut self, timeout: std::time::Duration) -> Option<WorkerResult<Out>> {
        let deadline = web_time::Instant::now() + timeout;
        loop {
            if let Some(r) = self.take_latest() {
                return Some(r);
            }
            if web_time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> WorkerCounters {
        lock(&self.shared.slot).counters
    }
}

impl<In: Send + 'static, Out: Send + 'static> Drop for InferenceWorker<In, Out> {
    fn drop(&mut self) {
        let mut slot = lock(&self.shared.slot);
        slot.shutdown = true;
        #[cfg(target_arch = "wasm32")]
        if let Some(task) = slot.waker.take() {
            task.wake();
        }
        drop(slot);
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[test]
    fn latest_wins_and_results_carry_their_sequence_number() {
        let gate = Arc::new(AtomicBool::new(false));
        let g = Arc::clone(&gate);
        let mut worker = InferenceWorker::spawn("test", move |x: u64| {
            while !g.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok::<_, String>(x * 10)
        })
        .unwrap();
        worker.submit(1, 1);
        // Wait until frame 1 runs, then queue 2, 3, 4: only 4 survives.
        while lock(&worker.shared.slot).pending.is_some() {
            std::thread::sleep(Duration::from_millis(1));
        }
        worker.submit(2, 2);
        worker.submit(3, 3);
        worker.submit(4, 4);
        assert!(worker.busy());
        gate.store(true, Ordering::SeqCst);
        let mut seen = Vec::new();
        while seen.last() != Some(&4) {
            if let Some(WorkerResult::Done { seq, output }) =
                worker.wait_result(Duration::from_secs(10))
            {
                assert_eq!(output, seq * 10);
                seen.push(seq);
            }
        }
        let c = worker.counters();
        assert_eq!((c.admitted, c.dropped), (4, 2));
        assert!(seen.iter().all(|s| [1, 4].contains(s)), "{seen:?}");
        assert_eq!(c.completed + c.stale, 2);
    }

    #[test]
    fn failures_and_panics_are_counted_and_the_worker_keeps_going() {
        let mut worker = InferenceWorker::spawn("test", |x: u64| {
            if x == 1 {
                return Err("bad frame".to_string());
            }
            if x == 2 {
                panic!("boom");
            }
            Ok(x)
        })
        .unwrap();
        for seq in 1..=3 {
            worker.submit(seq, seq);
            let r = worker
                .wait_result(Duration::from_secs(10))
                .expect("a result");
            match (seq, r) {
                (1, WorkerResult::Failed { message, .. }) => assert!(message.contains("bad frame")),
                (2, WorkerResult::Failed { message, .. }) => assert!(message.contains("boom")),
                (3, WorkerResult::Done { output, .. }) => assert_eq!(output, 3),
                (s, other) => panic!("frame {s}: {other:?}"),
            }
        }
        let c = worker.counters();
        assert_eq!((c.failed, c.completed), (2, 1));
    }

    #[test]
    fn older_results_than_the_last_taken_are_stale() {
        let mut worker = InferenceWorker::spawn("test", |x: u64| Ok::<_, String>(x)).unwrap();
        worker.submit(5, 5);
        assert!(matches!(
            worker.wait_result(Duration::from_secs(10)),
            Some(WorkerResult::Done { seq: 5, .. })
        ));
        worker.submit(3, 3);
        std::thread::sleep(Duration::from_millis(50));
        assert!(worker.wait_result(Duration::from_millis(200)).is_none());
        assert_eq!(worker.counters().stale, 1);
    }
}
