//! Liveness: the heartbeats of the threads the gateway cannot do without (the data-path
//! worker, the IKE thread) and the one judgement that `/live` and the systemd watchdog share.
//!
//! A thread stamps its [`Heartbeat`] once per turn of its loop: one relaxed store of a
//! monotonic time it has read for its own timers anyway, never per packet. Idle, it still
//! wakes at least every [`BEAT_INTERVAL`]. [`Liveness::check`] reports the thread whose last
//! beat is older than the threshold ([`STALL_THRESHOLD`]): hung in a system call, spinning
//! inside one batch, deadlocked, or dead after a panic. A thread that ends on purpose (the
//! daemon stopping) retires its heartbeat and is no longer judged.
//!
//! The judgement takes `now` as a parameter; only its callers read the clock.

#![forbid(unsafe_code)]

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest a live thread waits between two beats when it has nothing to do.
pub const BEAT_INTERVAL: Duration = Duration::from_secs(1);

/// A thread silent for longer than this is stalled: ten idle wake-ups missed, far beyond any
/// batch or reload a working thread takes.
pub const STALL_THRESHOLD: Duration = Duration::from_secs(10);

/// `last` of a heartbeat whose thread ended on purpose.
const RETIRED: u64 = u64::MAX;

/// One thread's last sign of life: nanoseconds after `epoch`, written only by that thread.
#[derive(Debug)]
pub struct Heartbeat {
    thread: &'static str,
    epoch: Instant,
    last: AtomicU64,
}

impl Heartbeat {
    /// The heartbeat of `thread`, beating first at `now`.
    pub fn new(thread: &'static str, now: Instant) -> Heartbeat {
        Heartbeat {
            thread,
            epoch: now,
            last: AtomicU64::new(0),
        }
    }

    /// The thread is alive at `now`.
    pub fn beat(&self, now: Instant) {
        let nanos = now.saturating_duration_since(self.epoch).as_nanos();
        self.last.store(
            u64::try_from(nanos).unwrap_or(RETIRED - 1),
            Ordering::Relaxed,
        );
    }

    /// The thread ends on purpose: it is no longer judged.
    pub fn retire(&self) {
        self.last.store(RETIRED, Ordering::Relaxed);
    }

    pub fn thread(&self) -> &'static str {
        self.thread
    }

    /// How long the thread has been silent at `now`; `None` once it retired.
    fn silent(&self, now: Instant) -> Option<Duration> {
        let last = self.last.load(Ordering::Relaxed);
        if last == RETIRED {
            return None;
        }
        let at = self.epoch + Duration::from_nanos(last);
        Some(now.saturating_duration_since(at))
    }
}

/// A thread that has not beaten for longer than the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stalled {
    pub thread: &'static str,
    /// How long it has been silent.
    pub silent: Duration,
    pub threshold: Duration,
}

impl fmt::Display for Stalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "thread {} stalled: no heartbeat for {:.1} s (limit {} s)",
            self.thread,
            self.silent.as_secs_f64(),
            self.threshold.as_secs()
        )
    }
}

/// The heartbeats `/live` and the watchdog judge.
#[derive(Debug)]
pub struct Liveness {
    hearts: Vec<Arc<Heartbeat>>,
    /// In milliseconds; tests shorten it.
    threshold: AtomicU64,
}

impl Liveness {
    /// Judges `hearts` against [`STALL_THRESHOLD`].
    pub fn new(hearts: Vec<Arc<Heartbeat>>) -> Liveness {
        let threshold = AtomicU64::new(STALL_THRESHOLD.as_millis() as u64);
        Liveness { hearts, threshold }
    }

    /// Judges against `threshold` instead; it must exceed [`BEAT_INTERVAL`] by a margin.
    pub fn set_threshold(&self, threshold: Duration) {
        let ms = u64::try_from(threshold.as_millis()).unwrap_or(u64::MAX);
        self.threshold.store(ms, Ordering::Relaxed);
    }

    pub fn threshold(&self) -> Duration {
        Duration::from_millis(self.threshold.load(Ordering::Relaxed))
    }

    /// `Ok` if every thread that has not retired beat within the threshold before `now`,
    /// else the one silent longest.
    pub fn check(&self, now: Instant) -> Result<(), Stalled> {
        let threshold = self.threshold();
        let worst = self
            .hearts
            .iter()
            .filter_map(|h| Some((h.thread, h.silent(now)?)))
            .filter(|(_, silent)| *silent > threshold)
            .max_by_key(|(_, silent)| *silent);
        match worst {
            Some((thread, silent)) => Err(Stalled {
                thread,
                silent,
                threshold,
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn liveness(t0: Instant) -> (Liveness, Arc<Heartbeat>, Arc<Heartbeat>) {
        let worker = Arc::new(Heartbeat::new("ixgw-worker", t0));
        let ike = Arc::new(Heartbeat::new("ixgw-ike", t0));
        let l = Liveness::new(vec![worker.clone(), ike.clone()]);
        (l, worker, ike)
    }

    #[test]
    fn threads_that_beat_are_live() {
        let t0 = Instant::now();
        let (l, worker, ike) = liveness(t0);

        assert_eq!(l.check(t0), Ok(()));
        assert_eq!(l.check(t0 + 10 * S), Ok(()), "the threshold itself is live");
        worker.beat(t0 + 9 * S);
        ike.beat(t0 + 15 * S);
        assert_eq!(l.check(t0 + 19 * S), Ok(()));
    }

    #[test]
    fn a_silent_thread_is_stalled_and_the_longest_silent_is_named() {
        let t0 = Instant::now();
        let (l, worker, ike) = liveness(t0);
        worker.beat(t0 + 2 * S);
        ike.beat(t0 + 5 * S);

        let stalled = l.check(t0 + 13 * S);
        assert_eq!(
            stalled,
            Err(Stalled {
                thread: "ixgw-worker",
                silent: 11 * S,
                threshold: 10 * S,
            })
        );
        assert_eq!(
            stalled.unwrap_err().to_string(),
            "thread ixgw-worker stalled: no heartbeat for 11.0 s (limit 10 s)"
        );
        assert_eq!(
            l.check(t0 + 16 * S).map_err(|s| s.thread),
            Err("ixgw-worker")
        );

        worker.beat(t0 + 16 * S);
        assert_eq!(l.check(t0 + 16 * S).map_err(|s| s.thread), Err("ixgw-ike"));
        ike.beat(t0 + 16 * S);
        assert_eq!(l.check(t0 + 16 * S), Ok(()), "beating again is live again");
    }

    #[test]
    fn a_retired_thread_is_not_judged() {
        let t0 = Instant::now();
        let (l, worker, ike) = liveness(t0);
        worker.retire();
        ike.beat(t0 + 60 * S);

        assert_eq!(l.check(t0 + 65 * S), Ok(()));
    }

    #[test]
    fn the_threshold_can_be_changed() {
        let t0 = Instant::now();
        let (l, _, _) = liveness(t0);
        l.set_threshold(3 * S);

        assert_eq!(l.threshold(), 3 * S);
        assert_eq!(l.check(t0 + 3 * S), Ok(()));
        assert!(l.check(t0 + 4 * S).is_err());
    }

    #[test]
    fn no_threads_is_live() {
        let l = Liveness::new(vec![]);
        assert_eq!(l.check(Instant::now() + 3600 * S), Ok(()));
    }
}
