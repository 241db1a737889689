//! What systemd hears while the gateway runs, besides `READY=1`, `RELOADING=1` and
//! `STOPPING=1`: `WATCHDOG=1` while every thread of the [`Liveness`] beats (the judgement
//! `/live` makes), so that with `WatchdogSec=` systemd restarts a daemon whose worker or IKE
//! thread hangs; and `STATUS=` ("3/4 peers up, 2 attachments", or which thread stalled),
//! which `systemctl status` shows.
//!
//! [`Liveness`]: crate::admin::health::Liveness

use std::time::Duration;

use crate::admin::health::Stalled;
use crate::metrics::PeerCount;

/// How often `STATUS=` is refreshed when no watchdog asks for more.
pub(super) const STATUS_INTERVAL: Duration = Duration::from_secs(5);

/// The watchdog interval systemd set for this process (`WATCHDOG_USEC`), if any.
pub(super) fn from_env() -> Option<Duration> {
    let mut usec = 0;
    (sd_notify::watchdog_enabled(false, &mut usec) && usec > 0).then(|| Duration::from_micros(usec))
}

/// How often to report: half the watchdog interval, as sd_watchdog_enabled(3) recommends, or
/// [`STATUS_INTERVAL`] if that is sooner.
pub(super) fn period(watchdog: Option<Duration>) -> Duration {
    watchdog.map_or(STATUS_INTERVAL, |w| (w / 2).min(STATUS_INTERVAL))
}

/// `STATUS=` of a gateway whose threads beat.
pub(super) fn status_line(peers: PeerCount, attachments: usize) -> String {
    let s = if attachments == 1 { "" } else { "s" };
    format!(
        "{}/{} peers up, {attachments} attachment{s}",
        peers.up, peers.configured
    )
}

/// What to tell systemd at one report.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Report {
    /// Send `WATCHDOG=1`.
    pub keepalive: bool,
    pub status: String,
}

/// Turns the liveness judgement into reports, and logs when a thread stalls and recovers.
#[derive(Debug)]
pub(super) struct Watchdog {
    enabled: bool,
    /// The thread last found stalled.
    stalled: Option<&'static str>,
}

impl Watchdog {
    pub(super) fn new(interval: Option<Duration>) -> Watchdog {
        Watchdog {
            enabled: interval.is_some(),
            stalled: None,
        }
    }

    /// The report for the judgement `live`; `status` is asked only when every thread beats.
    pub(super) fn report(
        &mut self,
        live: Result<(), Stalled>,
        status: impl FnOnce() -> String,
    ) -> Report {
        match live {
            Ok(()) => {
                if let Some(thread) = self.stalled.take() {
                    tracing::warn!(thread, "the stalled thread runs again");
                }
                Report {
                    keepalive: self.enabled,
                    status: status(),
                }
            }
            Err(stalled) => {
                if self.stalled != Some(stalled.thread) {
                    tracing::error!(
                        watchdog = self.enabled,
                        "{stalled}: /live answers 503 and the systemd watchdog is no longer fed"
                    );
                }
                self.stalled = Some(stalled.thread);
                Report {
                    keepalive: false,
                    status: stalled.to_string(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stalled(thread: &'static str) -> Stalled {
        Stalled {
            thread,
            silent: Duration::from_millis(12_300),
            threshold: Duration::from_secs(10),
        }
    }

    #[test]
    fn status_counts_peers_and_attachments() {
        let peers = |up, configured| PeerCount { up, configured };
        assert_eq!(status_line(peers(3, 4), 2), "3/4 peers up, 2 attachments");
        assert_eq!(status_line(peers(0, 1), 1), "0/1 peers up, 1 attachment");
        assert_eq!(status_line(peers(0, 0), 0), "0/0 peers up, 0 attachments");
    }

    #[test]
    fn reports_at_half_the_watchdog_interval_or_every_status_interval() {
        assert_eq!(period(Some(Duration::from_secs(30))), STATUS_INTERVAL);
        assert_eq!(period(Some(Duration::from_secs(6))), Duration::from_secs(3));
        assert_eq!(period(None), STATUS_INTERVAL);
    }

    #[test]
    fn the_watchdog_is_fed_only_while_every_thread_beats() {
        let mut w = Watchdog::new(Some(Duration::from_secs(30)));

        let live = w.report(Ok(()), || "2/2 peers up, 1 attachment".into());
        let stalled_worker = w.report(Err(stalled("ixgw-worker")), || unreachable!());
        let still = w.report(Err(stalled("ixgw-worker")), || unreachable!());
        let again = w.report(Ok(()), || "1/2 peers up, 1 attachment".into());

        assert_eq!(
            live,
            Report {
                keepalive: true,
                status: "2/2 peers up, 1 attachment".into()
            }
        );
        let expected = Report {
            keepalive: false,
            status: "thread ixgw-worker stalled: no heartbeat for 12.3 s (limit 10 s)".into(),
        };
        assert_eq!(stalled_worker, expected);
        assert_eq!(still, expected);
        assert_eq!(
            again,
            Report {
                keepalive: true,
                status: "1/2 peers up, 1 attachment".into()
            }
        );
    }

    #[test]
    fn without_a_watchdog_only_the_status_is_reported() {
        let mut w = Watchdog::new(None);
        let r = w.report(Ok(()), || "0/0 peers up, 0 attachments".into());
        assert!(!r.keepalive);
        assert_eq!(r.status, "0/0 peers up, 0 attachments");
    }
}
