//! The one place where boringtun's clock meets the `now` the caller passes in.
//!
//! boringtun's `Tunn` and `RateLimiter` read `Instant::now()` themselves. In a normal build they
//! read the system's monotonic clock and [`sync`] does nothing: the runtime's `now` and
//! boringtun's reading are the same clock a few microseconds apart. With the cargo feature
//! `virtual-time` boringtun reads `mock_instant`'s thread-local clock instead, and [`sync`] sets
//! that clock from `now` before every call into boringtun, so tests drive WireGuard's timers
//! (rekey, keepalive, retransmission) by passing a virtual `now`.

use std::time::Instant;

/// Makes boringtun's clock read `now` on this thread (feature `virtual-time`), or does nothing.
///
/// The mock clock counts from a process-wide epoch taken at the first call, set an hour back
/// so that every `now` a test takes from `Instant::now()` lies after it. The clock never goes
/// backwards (boringtun subtracts instants and would panic): an older `now` leaves it where it
/// is.
#[cfg(feature = "virtual-time")]
pub fn sync(now: Instant) {
    use std::sync::OnceLock;
    use std::time::Duration;

    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(|| {
        let t = Instant::now();
        t.checked_sub(Duration::from_secs(3600)).unwrap_or(t)
    });
    let t = now.saturating_duration_since(epoch);
    if t > mock_instant::MockClock::time() {
        mock_instant::MockClock::set_time(t);
    }
}

/// Makes boringtun's clock read `now` on this thread (feature `virtual-time`), or does nothing.
#[cfg(not(feature = "virtual-time"))]
#[inline(always)]
pub fn sync(now: Instant) {
    let _ = now;
}
