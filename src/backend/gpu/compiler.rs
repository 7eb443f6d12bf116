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

/// Work for the compiler: one specialized pipeline.
struct Job {
    desc: KernelDesc,
    stats: Arc<Mutex<Stats>>,
}

pub(crate) struct Compiler {
    #[cfg(not(target_arch = "wasm32"))]
    tx: Mutex<Option<std::sync::mpsc::Sender<Job>>>,
    #[cfg(target_arch = "wasm32")]
    queue: std::rc::Rc<std::cell::RefCell<std::collections::VecDeque<Job>>>,
}

impl Compiler {
    pub fn new() -> Self {
        Compiler {
            #[cfg(not(target_arch = "wasm32"))]
            tx: Mutex::new(None),
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
        if descs.is_empty() {
            return;
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let mut tx = super::lock(&self.tx);
            let sender = tx.get_or_insert_with(|| {
                let (tx, rx) = std::sync::mpsc::channel::<Job>();
                let (ctx, pipelines) = (ctx.clone(), pipelines.clone());
                let started = std::thread::Builder::new()
                    .name("tmath-compile".into())
                    .spawn(move || {
                        for job in rx {
                            pollster::block_on(
                                pipelines.compile_specialized(&ctx, &job.desc, &job.stats),
                            );
                        }
                    });
                if started.is_err() {
                    // No thread: the requests are dropped and the generic pipelines keep
                    // serving (correct, only not specialized).
                }
                tx
            });
            for desc in descs {
                let _ = sender.send(Job {
                    desc,
                    stats: stats.clone(),
                });
            }
        }
        #[cfg(target_arch = "wasm32")]
        {
            let idle = self.queue.borrow().is_empty();
            self.queue
                .borrow_mut()
                .extend(descs.into_iter().map(|desc| Job {
                    desc,
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
                        pipelines
                            .compile_specialized(&ctx, &job.desc, &job.stats)
                            .await;
                    }
                });
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
