//! Sharing the CPU between guests.
//!
//! Guest code runs on the same tokio worker threads as everything else, and
//! wasm does not yield on its own. Every epoch tick a running guest is
//! interrupted and yields. A guest that keeps computing for more than
//! [`HEAVY_AFTER_TICKS`] ticks is *heavy*: from then on it must hold one of a
//! few CPU slots to run, and heavy guests take turns on them. There is one
//! slot fewer than worker threads, so a guest stuck in a loop can slow other
//! heavy guests but never the ordinary requests.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmhouse_clickhouse::OnWait;
use wasmtime::{StoreContextMut, UpdateDeadline};

/// Ticks of computing after which a guest counts as heavy.
pub(crate) const HEAVY_AFTER_TICKS: u32 = 2;

/// The slots heavy guests take turns on.
#[derive(Clone)]
pub(crate) struct CpuSlots {
    slots: Arc<Semaphore>,
}

impl CpuSlots {
    /// Slots for a runtime with `workers` worker threads.
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(workers.saturating_sub(1).max(1))),
        }
    }

    /// Slots for the current machine's parallelism (tokio's default number of
    /// worker threads).
    pub(crate) fn for_this_machine() -> Self {
        Self::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    /// The epoch callback for one store: stop the guest at `deadline`, yield
    /// every tick, and make it queue for a slot once it is heavy; and the
    /// store's [`CpuShare`], to give the slot up while the guest waits.
    pub(crate) fn epoch_callback<T>(
        &self,
        deadline: std::time::Instant,
    ) -> (
        impl FnMut(StoreContextMut<'_, T>) -> wasmtime::Result<UpdateDeadline> + Send + Sync + 'static,
        Arc<CpuShare>,
    ) {
        let slots = self.slots.clone();
        let share = Arc::new(CpuShare::default());
        let callback = {
            let share = share.clone();
            move |_: StoreContextMut<'_, T>| {
                if std::time::Instant::now() >= deadline {
                    return Ok(UpdateDeadline::Interrupt);
                }
                let ticks = share.ticks.fetch_add(1, Ordering::Relaxed) + 1;
                if ticks < HEAVY_AFTER_TICKS {
                    return Ok(UpdateDeadline::Yield(1));
                }
                // Give the slot up and queue for one again (the queue is fair).
                share.release();
                let slots = slots.clone();
                let share = share.clone();
                Ok(UpdateDeadline::YieldCustom(
                    1,
                    Box::pin(async move {
                        if let Ok(permit) = slots.acquire_owned().await {
                            *share.lock() = Some(permit);
                        }
                    }),
                ))
            }
        };
        (callback, share)
    }
}

/// One store's claim on the CPU slots: how many ticks its guest has computed
/// since it last waited, and the slot it holds once heavy.
///
/// A guest waiting for ClickHouse computes nothing, so it gives its slot up
/// and starts counting afresh ([`CpuShare::waiting`]). Holding the slot
/// through the wait would stall every heavy guest behind one that waits for
/// a pooled connection, itself held by guests queued for the slot: under
/// overload, when every guest turns heavy from yielding alone, that was a
/// standstill until the requests' deadlines.
#[derive(Debug, Default)]
pub(crate) struct CpuShare {
    ticks: AtomicU32,
    held: Mutex<Option<OwnedSemaphorePermit>>,
}

impl OnWait for CpuShare {
    /// The guest is about to wait (for ClickHouse): give the slot up, and
    /// count its computing from zero when it runs again.
    fn waiting(&self) {
        self.ticks.store(0, Ordering::Relaxed);
        self.release();
    }
}

impl CpuShare {
    fn release(&self) {
        self.lock().take();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<OwnedSemaphorePermit>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
