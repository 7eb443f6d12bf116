//! Background compiles of the adaptive mode: specialized pipelines for hot kernels, created off
//! the caller's path and put into the cache, where the next evaluation finds them. Natively a
//! compile thread (started on first use, ended when the backend is dropped); in browsers, where
//! there are no threads, tasks on the event loop that run between evaluations, one compile per
//! turn.

use std::sync::{Arc, Mutex};

use super::context::Context;
use super::pipelines::Pipelines;
use crate::codegen::KernelDesc;
use crate::config::Stats;

/// Work for the compiler: one specialized pipeline, of a description or (natively) of the hot
/// index on disk.
struct Job {
    what: What,
    stats: Arc<Mutex<Stats>>,
}

enum What {
    Specialized(KernelDesc),
    #[cfg(not(target_arch = "wasm32"))]
    Prewarm(super::hot::HotKernel),
    /// The autotuner's measurement of a matmul shape.
    Tune(KernelDesc),
}

impl Job {
    async fn run(&self, ctx: &Context, pipelines: &Pipelines) {
        match &self.what {
            What::Specialized(desc) => pipelines.compile_specialized(ctx, desc, &self.stats).await,
            #[cfg(not(target_arch = "wasm32"))]
            What::Prewarm(k) => pipelines.compile_prewarm(ctx, k, &self.stats).await,
            What::Tune(desc) => super::tune::run(ctx, pipelines, desc, &self.stats).await,
        }
    }
}

pub(crate) struct Compiler {
    #[cfg(not(target_arch = "wasm32"))]
    worker: Mutex<Option<Worker>>,
    #[cfg(target_arch = "wasm32")]
    queue: std::rc::Rc<std::cell::RefCell<std::collections::VecDeque<Job>>>,
}

impl Compiler {
    pub fn new() -> Self {
        Compiler {
            #[cfg(not(target_arch = "wasm32"))]
            worker: Mutex::new(None),
            #[cfg(target_arch = "wasm32")]
            queue: Default::default(),
        }
    }

    /// Queues the specialized compiles of `descs`.
    pub fn request(
        &self,
        ctx: &Arc<Context>,
        pipelines: &Arc<Pipelines>,
        descs: Vec<KernelDesc>,
        stats: Arc<Mutex<Stats>>,
    ) {
        let jobs = descs.into_iter().map(What::Specialized).collect();
        self.queue_jobs(ctx, pipelines, jobs, stats);
    }

    /// Queues the compiles of the hot index's kernels (natively).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn prewarm(
        &self,
        ctx: &Arc<Context>,
        pipelines: &Arc<Pipelines>,
        kernels: Vec<super::hot::HotKernel>,
        stats: Arc<Mutex<Stats>>,
    ) {
        let jobs = kernels.into_iter().map(What::Prewarm).collect();
        self.queue_jobs(ctx, pipelines, jobs, stats);
    }

    /// Queues the autotuner's measurement of a matmul.
    pub fn tune(
        &self,
        ctx: &Arc<Context>,
        pipelines: &Arc<Pipelines>,
        desc: KernelDesc,
        stats: Arc<Mutex<Stats>>,
    ) {
        self.queue_jobs(ctx, pipelines, vec![What::Tune(desc)], stats);
    }

    /// Ends the compile thread (natively): the queued compiles are dropped, the one running
    /// finishes, and the thread is joined, so no driver call outlives the backend — a process
    /// that exits while a thread is inside the driver's compiler can crash in its teardown
    /// (lavapipe: SIGSEGV at exit). In browsers queued compiles end with the page.
    pub fn shutdown(&self) {
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(w) = super::lock(&self.worker).take() {
            w.stop();
        }
    }

    fn queue_jobs(
        &self,
        ctx: &Arc<Context>,
        pipelines: &Arc<Pipelines>,
        jobs: Vec<What>,
        stats: Arc<Mutex<Stats>>,
    ) {
        if jobs.is_empty() {
            return;
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let mut worker = super::lock(&self.worker);
            let worker = worker.get_or_insert_with(|| Worker::start(ctx, pipelines));
            for what in jobs {
                let _ = worker.tx.send(Job {
                    what,
                    stats: stats.clone(),
                });
            }
        }
        #[cfg(target_arch = "wasm32")]
        {
            let idle = self.queue.borrow().is_empty();
            self.queue
                .borrow_mut()
                .extend(jobs.into_iter().map(|what| Job {
                    what,
                    stats: stats.clone(),
                }));
            if idle {
                let (queue, ctx, pipelines) = (self.queue.clone(), ctx.clone(), pipelines.clone());
                wasm_bindgen_futures::spawn_local(async move {
                    loop {
                        // Yield to the event loop first: never inside the caller's evaluation.
                        next_turn().await;
                        let Some(job) = queue.borrow_mut().pop_front() else {
                            break;
                        };
                        job.run(&ctx, &pipelines).await;
                    }
                });
            }
        }
    }
}

impl Drop for Compiler {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The native compile thread and its queue.
#[cfg(not(target_arch = "wasm32"))]
struct Worker {
    tx: std::sync::mpsc::Sender<Job>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[cfg(not(target_arch = "wasm32"))]
impl Worker {
    fn start(ctx: &Arc<Context>, pipelines: &Arc<Pipelines>) -> Worker {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ctx, pipelines, stopped) = (ctx.clone(), pipelines.clone(), stop.clone());
        // No thread (`spawn` failed): the requests are dropped and the generic pipelines keep
        // serving (correct, only not specialized).
        let thread = std::thread::Builder::new()
            .name("tmath-compile".into())
            .spawn(move || {
                for job in rx {
                    if stopped.load(std::sync::atomic::Ordering::Acquire) {
                        break;
                    }
                    pollster::block_on(job.run(&ctx, &pipelines));
                }
            })
            .ok();
        Worker { tx, stop, thread }
    }

    fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        drop(self.tx);
        if let Some(t) = self.thread {
            // Never join from the thread itself (it never drops a backend, but be sure).
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

/// Resolves on a later turn of the event loop (`setTimeout(0)`).
#[cfg(target_arch = "wasm32")]
async fn next_turn() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        let set_timeout = js_sys::Reflect::get(&global, &"setTimeout".into())
            .ok()
            .filter(|f| f.is_function())
            .map(js_sys::Function::from);
        match set_timeout {
            Some(f) => {
                let _ = f.call2(&global, &resolve, &0.into());
            }
            None => {
                let _ = resolve.call0(&wasm_bindgen::JsValue::UNDEFINED);
            }
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}
