//! Sharing the CPU between guests.
//!
//! Guest code runs on the same tokio worker threads as everything else, and
//! wasm does not yield on its own. Every epoch tick a running guest is
//! interrupted and yields. A guest that keeps computing for more than
//! [`HEAVY_AFTER_TICKS`] ticks is *heavy*: from then on it must hold one of a
//! few CPU slots to run, and heavy guests take turns on them. There is one
//! slot fewer than worker threads, so a guest stuck in a loop can slow other
//! heavy guests but never the ordinary requests.
//!
//! An interpreter's instance ([`LARGE_COMPONENT_BYTES`] or more: CPython,
//! a JavaScript engine) costs milliseconds of CPU before its handler runs
//! (its tables filled, its heap's pages faulted in as it writes them), and
//! many of them at once only make each slower: their faults and resets
//! interrupt every core, and their working sets push each other out of the
//! caches. So such a request takes a *turn* before it is instantiated, one
//! of one per core, and gives it up when it first waits for ClickHouse,
//! turns heavy, or ends: its CPU-bound start runs with as many others as
//! there are cores, its waits overlap as freely as any request's, and a
//! loop in it keeps no other start waiting.

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
    /// The turns of large components' starts, one per worker thread.
    turns: Arc<Semaphore>,
}

/// Components at least this big take a turn to start (see the module's
/// text): a Rust route is well under it (0.3–1.5 MB), one embedding a
/// Python or JavaScript interpreter (14–19 MB) over it.
pub(crate) const LARGE_COMPONENT_BYTES: usize = 4 << 20;

impl CpuSlots {
    /// Slots for a runtime with `workers` worker threads.
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(workers.saturating_sub(1).max(1))),
            turns: Arc::new(Semaphore::new(workers.max(1))),
        }
    }

    /// Wait for a turn to start an instance of a large component, and
    /// give it to `share`, which holds it until the guest first waits or
    /// the store is dropped.
    pub(crate) async fn take_turn(&self, share: &CpuShare) {
        if let Ok(turn) = self.turns.clone().acquire_owned().await {
            *share.turn.lock().unwrap_or_else(PoisonError::into_inner) = Some(turn);
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
    /// A large component's start turn ([`CpuSlots::take_turn`]).
    turn: Mutex<Option<OwnedSemaphorePermit>>,
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
    /// The instance is made: its computing is counted from here, so that
    /// the start (an interpreter's is milliseconds of it) does not count
    /// towards turning heavy and give the turn up half-way.
    pub(crate) fn instantiated(&self) {
        self.ticks.store(0, Ordering::Relaxed);
    }

    /// Give up the slot and the start turn: the guest waits, or it turned
    /// heavy (a loop must not keep other starts waiting: from then on it
    /// takes turns with the heavy guests).
    fn release(&self) {
        self.lock().take();
        self.end_turn();
    }

    fn end_turn(&self) {
        self.turn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<OwnedSemaphorePermit>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::AsContextMut as _;

    #[tokio::test]
    async fn a_start_turn_is_given_up_at_the_first_wait_when_heavy_or_with_the_share() {
        let slots = CpuSlots::new(2);
        let (first, second, third) = (
            CpuShare::default(),
            CpuShare::default(),
            CpuShare::default(),
        );
        slots.take_turn(&first).await;
        slots.take_turn(&second).await;
        // Both turns taken: a third start waits.
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            slots.take_turn(&third),
        )
        .await;
        assert!(waiting.is_err(), "a third start got a turn of two");
        // The first waits for ClickHouse: its turn goes to the next start.
        first.waiting();
        slots.take_turn(&third).await;
        assert_eq!(slots.turns.available_permits(), 0);
        // A share dropped gives its turn back.
        drop(second);
        assert_eq!(slots.turns.available_permits(), 1);
        // A guest that computes on turns heavy and gives its turn up.
        let (mut callback, share) = slots
            .epoch_callback::<()>(std::time::Instant::now() + std::time::Duration::from_secs(60));
        slots.take_turn(&share).await;
        assert_eq!(slots.turns.available_permits(), 0);
        let mut store = wasmtime::Store::<()>::default();
        let _ = callback(store.as_context_mut());
        assert_eq!(slots.turns.available_permits(), 0, "one tick is not heavy");
        let _ = callback(store.as_context_mut());
        assert_eq!(slots.turns.available_permits(), 1);
    }
}
