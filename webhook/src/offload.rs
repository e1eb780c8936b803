//! Where an admission's CPU work runs: decoding the review, planning the mutation, writing
//! the patch and the answer.
//!
//! That work is linear in the request, but a request may be up to `--max-body-bytes`
//! (4 MiB), and anyone allowed to create a pod can send one. Done on a runtime worker, it
//! holds that worker (and every connection waiting on it) for as long as it runs, and a
//! future that never yields cannot be timed out, so `--request-timeout` would not hold.
//!
//! - Requests below [`INLINE_BELOW`] bytes are worked on where they are, on the runtime
//!   worker: the typical pod (~5 KB) costs ~40 µs of CPU there, and a hop to another thread
//!   would add more than the work itself (BENCHMARKS.md, "Bounded work per admission").
//! - Larger ones run on tokio's blocking threads, at most [`CpuPool::slots`] at a time; the
//!   rest wait for a slot without holding a worker. The handler awaits both with the
//!   request deadline: past it, the answer is the timeout denial, work that has not started
//!   never starts, and work already running finishes on its own thread and is dropped.
//!   Other requests keep being served by the runtime workers meanwhile.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Requests of at least this many bytes are worked on off the runtime workers. At the
/// measured ~8 ns/byte of a release build, 64 KiB is ~0.5 ms of CPU: about the longest a
/// worker should be held by one request.
pub const INLINE_BELOW: usize = 64 * 1024;

/// The blocking-thread slots for large requests.
#[derive(Debug, Clone)]
pub struct CpuPool {
    slots: Arc<Semaphore>,
    size: usize,
}

/// The work panicked (a bug); the payload's text, when it is text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panicked(pub String);

impl CpuPool {
    /// `slots` large requests worked on at once (at least one).
    pub fn new(slots: usize) -> Self {
        let size = slots.max(1);
        Self {
            slots: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    /// Half the CPUs this process may use (cgroup quota included), at least one: the other
    /// half stays with the runtime workers, which serve every other request.
    pub fn for_this_machine() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Self::new(cpus / 2)
    }

    pub fn slots(&self) -> usize {
        self.size
    }

    /// Waits for a place to work on a request of `request_bytes`: at once for small
    /// requests, else until a blocking-thread slot is free.
    pub async fn place(&self, request_bytes: usize) -> Place {
        if request_bytes < INLINE_BELOW {
            return Place::Inline;
        }
        match self.slots.clone().acquire_owned().await {
            Ok(permit) => Place::Offloaded(permit),
            // The semaphore is never closed; working inline is the safe answer if it were.
            Err(_) => Place::Inline,
        }
    }
}

/// Where one piece of work runs; see [`CpuPool::place`].
#[derive(Debug)]
pub enum Place {
    Inline,
    Offloaded(OwnedSemaphorePermit),
}

impl Place {
    /// True when the work runs off the runtime workers.
    pub fn is_offloaded(&self) -> bool {
        matches!(self, Self::Offloaded(_))
    }

    /// Runs `work` here or on a blocking thread, inside the caller's tracing span. A panic
    /// (a bug) is caught and returned, so it fails one request, not the connection.
    pub async fn run<T, F>(self, work: F) -> Result<T, Panicked>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let span = tracing::Span::current();
        let guarded = move || catch_unwind(AssertUnwindSafe(|| span.in_scope(work)));
        let result = match self {
            Self::Inline => guarded(),
            Self::Offloaded(permit) => {
                let joined = tokio::task::spawn_blocking(move || {
                    let _slot = permit;
                    guarded()
                })
                .await;
                match joined {
                    Ok(r) => r,
                    Err(e) => return Err(Panicked(format!("the work's thread failed: {e}"))),
                }
            }
        };
        result.map_err(|payload| {
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            Panicked(text)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    /// CPU-bound until released: never sleeps, never yields.
    fn spin_until(flag: Arc<AtomicBool>) -> impl FnOnce() -> u32 + Send + 'static {
        move || {
            let mut turns = 0u32;
            while !flag.load(Ordering::Acquire) {
                turns = turns.wrapping_add(1);
                std::hint::spin_loop();
            }
            turns
        }
    }

    #[tokio::test]
    async fn small_requests_run_inline_large_ones_offloaded() {
        let pool = CpuPool::new(1);
        assert!(!pool.place(INLINE_BELOW - 1).await.is_offloaded());
        assert!(pool.place(INLINE_BELOW).await.is_offloaded());
        let here = std::thread::current().id();
        let inline = pool
            .place(10)
            .await
            .run(move || std::thread::current().id());
        assert_eq!(inline.await, Ok(here));
        let away = pool
            .place(1 << 20)
            .await
            .run(move || std::thread::current().id());
        assert_ne!(away.await, Ok(here));
    }

    /// On a one-thread runtime (nothing else to run on), CPU-bound work that never yields
    /// neither stops the deadline from firing nor stops other tasks from running. (The work
    /// spins until released, so the deadline fires whatever its length; the clock cannot be
    /// paused: tokio does not advance a paused clock while blocking work is in flight.)
    #[tokio::test(flavor = "current_thread")]
    async fn the_deadline_fires_and_others_run_while_offloaded_work_spins() {
        let pool = CpuPool::new(1);
        let release = Arc::new(AtomicBool::new(false));
        let spinning = pool.place(1 << 20).await.run(spin_until(release.clone()));
        let timed = tokio::time::timeout(Duration::from_millis(50), spinning).await;
        assert!(timed.is_err(), "the deadline fired while the work spun");
        // The slot is still taken by the abandoned work; other small work runs meanwhile.
        let other = tokio::spawn(async { 40 + 2 });
        assert_eq!(other.await.ok(), Some(42));
        assert_eq!(pool.slots.available_permits(), 0);
        release.store(true, Ordering::Release);
        // The abandoned work finishes on its own thread and gives its slot back.
        let back = pool.place(1 << 20).await;
        assert!(back.is_offloaded());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn waiting_for_a_slot_is_bounded_by_the_deadline_too() {
        let pool = CpuPool::new(1);
        let release = Arc::new(AtomicBool::new(false));
        let first = pool.place(1 << 20).await.run(spin_until(release.clone()));
        let first = tokio::spawn(first);
        tokio::task::yield_now().await;
        let second = tokio::time::timeout(Duration::from_millis(50), pool.place(1 << 20)).await;
        assert!(
            second.is_err(),
            "no slot while the first request's work runs"
        );
        release.store(true, Ordering::Release);
        assert!(first.await.expect("joined").is_ok());
        assert_eq!(pool.slots.available_permits(), 1);
    }

    #[tokio::test]
    async fn a_panic_fails_the_work_not_the_caller() {
        let pool = CpuPool::new(1);
        for size in [10, 1 << 20] {
            let r: Result<(), _> = pool
                .place(size)
                .await
                .run(|| panic!("bug in the mutation"))
                .await;
            assert_eq!(r, Err(Panicked("bug in the mutation".to_owned())));
        }
        assert_eq!(pool.slots.available_permits(), 1);
    }

    #[test]
    fn at_least_one_slot() {
        assert_eq!(CpuPool::new(0).slots(), 1);
        assert!(CpuPool::for_this_machine().slots() >= 1);
    }
}
