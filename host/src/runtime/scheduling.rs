//! Sharing the CPU between guests.
//!
//! Guest code runs on the same tokio worker threads as everything else, and
//! wasm does not yield on its own. Every epoch tick a running guest is
//! interrupted and yields. A guest that keeps computing for more than
//! [`HEAVY_AFTER_TICKS`] ticks is *heavy*: from then on it must hold one of a
//! few CPU slots to run, and heavy guests take turns on them. There is one
//! slot fewer than worker threads, so a guest stuck in a loop can slow other
//! heavy guests but never the ordinary requests.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::{StoreContextMut, UpdateDeadline};

/// Ticks of computing after which a guest counts as heavy.
pub const HEAVY_AFTER_TICKS: u32 = 2;

/// The slots heavy guests take turns on.
#[derive(Clone)]
pub struct CpuSlots {
    slots: Arc<Semaphore>,
}

impl CpuSlots {
    /// Slots for a runtime with `workers` worker threads.
    pub fn new(workers: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(workers.saturating_sub(1).max(1))),
        }
    }

    /// Slots for the current machine's parallelism (tokio's default number of
    /// worker threads).
    pub fn for_this_machine() -> Self {
        Self::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    /// The epoch callback for one store: stop the guest at `deadline`, yield
    /// every tick, and make it queue for a slot once it is heavy.
    pub fn epoch_callback<T>(
        &self,
        deadline: std::time::Instant,
    ) -> impl FnMut(StoreContextMut<'_, T>) -> wasmtime::Result<UpdateDeadline> + Send + Sync + 'static
    {
        let slots = self.slots.clone();
        let held: Arc<Mutex<Option<OwnedSemaphorePermit>>> = Arc::default();
        let mut ticks = 0u32;
        move |_| {
            if std::time::Instant::now() >= deadline {
                return Ok(UpdateDeadline::Interrupt);
            }
            ticks = ticks.saturating_add(1);
            if ticks < HEAVY_AFTER_TICKS {
                return Ok(UpdateDeadline::Yield(1));
            }
            // Give the slot up and queue for one again (the queue is fair).
            held.lock().unwrap_or_else(PoisonError::into_inner).take();
            let slots = slots.clone();
            let held = held.clone();
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(async move {
                    if let Ok(permit) = slots.acquire_owned().await {
                        *held.lock().unwrap_or_else(PoisonError::into_inner) = Some(permit);
                    }
                }),
            ))
        }
    }
}
