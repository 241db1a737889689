//! The recorder thread (`ixgw-usage`): at every interval boundary of the wall clock, before a
//! reload and at a clean stop it sums the workers' counters and appends the deltas since its
//! last record to the day's file.
//!
//! A record is one line written with a single `write` in `O_APPEND` mode, then `fdatasync`:
//! a crash can tear at most the line being written, never an earlier one. A file that does
//! not end in a newline (a torn line) gets one first, so the torn line stays a line of its
//! own, which the reader skips. A failed write is logged and counted and the recorder keeps
//! its baseline: the next record covers both intervals, so a full disk that recovers loses
//! nothing while the daemon runs.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{IntCounter, IntGauge, Registry};
use tokio::sync::oneshot;

use super::record::{Cut, Record};
use super::totals::{delta, Totals};
use crate::config::UsageConfig;
use crate::vocab::Counters;

/// Where the recorder reads the workers' current counter tables.
pub type Source = Box<dyn Fn() -> Vec<Arc<Counters>> + Send>;

/// Why the recorder could not start.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("usage.dir {dir}: {source}")]
    Dir {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the usage recorder: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the usage recorder's metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

enum Msg {
    Flush(Cut, oneshot::Sender<()>),
    Names(HashMap<String, String>),
}

/// The running recorder. Dropping it without [`Usage::stop`] still writes the last record
/// (as a stop), from the thread, without waiting for it.
pub struct Usage {
    tx: Option<mpsc::Sender<Msg>>,
    thread: Option<std::thread::JoinHandle<()>>,
    config: UsageConfig,
}

#[derive(Clone)]
struct Metrics {
    written: IntCounter,
    failures: IntCounter,
    last_end: IntGauge,
}

impl Metrics {
    /// The recorder's metrics, registered in `registry` (a registration that fails is logged:
    /// the recorder runs without them).
    fn new(registry: &Registry) -> prometheus::Result<Metrics> {
        let m = Metrics {
            written: IntCounter::new(
                "ixgw_usage_records_written_total",
                "Usage records appended to usage.dir (one per interval, reload and stop).",
            )?,
            failures: IntCounter::new(
                "ixgw_usage_write_failures_total",
                "Usage records that could not be written (full disk, permissions); the next record covers their interval too.",
            )?,
            last_end: IntGauge::new(
                "ixgw_usage_last_record_end_timestamp_seconds",
                "Unix time up to which usage was last written successfully.",
            )?,
        };
        for c in [
            Box::new(m.written.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.failures.clone()),
            Box::new(m.last_end.clone()),
        ] {
            if let Err(e) = registry.register(c) {
                tracing::error!("cannot export the usage recorder's metrics: {e}");
            }
        }
        Ok(m)
    }
}

/// UNIX time now, as a duration since the epoch (0 before it).
fn wall() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl Usage {
    /// Creates the directory (0750) if missing, checks that today's file can be opened for
    /// appending, and starts the thread. `since`: when counting began (the gateway's start).
    /// A full disk does not stop the gateway: accounting must not take a network's data
    /// path down; it is logged, and the records are written once there is room again.
    pub fn start(
        config: &UsageConfig,
        source: Source,
        names: HashMap<String, String>,
        registry: &Registry,
        since: SystemTime,
    ) -> Result<Usage, UsageError> {
        let dir_err = |source| UsageError::Dir {
            dir: config.dir.display().to_string(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(&config.dir)
            .map_err(dir_err)?;
        let now = wall().as_secs() as i64;
        let today = config.dir.join(file_name(now));
        match open(&today) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => tracing::error!(
                file = %today.display(),
                "the disk is full: no usage record can be written until there is room ({e}); the counts are kept meanwhile"
            ),
            Err(e) => return Err(dir_err(e)),
        }
        let since = since
            .duration_since(UNIX_EPOCH)
            .map_or(now, |d| d.as_secs() as i64);
        let mut recorder = Recorder {
            dir: config.dir.clone(),
            interval: config.interval.as_secs().max(1),
            last: Totals::default(),
            since: since.min(now),
            names,
            source,
            metrics: Metrics::new(registry)?,
        };
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ixgw-usage".into())
            .spawn(move || recorder.run(rx))
            .map_err(UsageError::Thread)?;
        Ok(Usage {
            tx: Some(tx),
            thread: Some(thread),
            config: config.clone(),
        })
    }

    /// The configuration it started with.
    pub fn config(&self) -> &UsageConfig {
        &self.config
    }

    /// Writes a record now (ending now, not at a boundary), and waits until it is written or
    /// its failure logged.
    pub async fn flush(&self, cut: Cut) {
        let (done, wait) = oneshot::channel();
        if let Some(tx) = &self.tx {
            if tx.send(Msg::Flush(cut, done)).is_ok() {
                let _ = wait.await;
            }
        }
    }

    /// The facility names for the peer rows from now on (after a reload).
    pub fn set_names(&self, names: HashMap<String, String>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Names(names));
        }
    }

    /// Writes the last record (cut `stop`) and ends the thread.
    pub async fn stop(mut self) {
        self.flush(Cut::Stop).await;
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

struct Recorder {
    dir: PathBuf,
    interval: u64,
    /// The totals the last record written ended with.
    last: Totals,
    /// Where the next record starts: the end of the last one written.
    since: i64,
    names: HashMap<String, String>,
    source: Source,
    metrics: Metrics,
}

impl Recorder {
    fn run(&mut self, rx: mpsc::Receiver<Msg>) {
        loop {
            // The boundary after the last record's end, not after now: a flush that ran
            // past a boundary (a slow disk at a reload) must not skip it.
            let now = wall();
            let since = u64::try_from(self.since).unwrap_or(0);
            let next = (since / self.interval + 1) * self.interval;
            let wait = Duration::from_secs(next).saturating_sub(now);
            match rx.recv_timeout(wait) {
                Ok(Msg::Flush(cut, done)) => {
                    self.cut(wall().as_secs() as i64, cut);
                    let _ = done.send(());
                    if cut == Cut::Stop {
                        return;
                    }
                }
                Ok(Msg::Names(names)) => self.names = names,
                Err(RecvTimeoutError::Timeout) => {
                    let now = wall().as_secs() as i64;
                    // Woken early (the wall clock was slewed or stepped back): not yet.
                    if now >= next as i64 && next as i64 > self.since {
                        self.cut(next as i64, Cut::Interval);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.cut(wall().as_secs() as i64, Cut::Stop);
                    return;
                }
            }
        }
    }

    /// Writes the record of `[since, end)`.
    fn cut(&mut self, end: i64, cut: Cut) {
        let now = Totals::of(&(self.source)());
        let end = end.max(self.since);
        let record = delta(
            &self.last,
            &now,
            (self.since, end),
            self.interval,
            cut,
            &self.names,
        );
        let path = self.dir.join(file_name(record.start));
        match append(&path, &record) {
            Ok(synced) => {
                // In the file: never written again, even if it could not be synced.
                self.last = now;
                self.since = end;
                self.metrics.written.inc();
                self.metrics.last_end.set(end);
                if let Err(e) = synced {
                    self.metrics.failures.inc();
                    tracing::error!(
                        file = %path.display(),
                        "a usage record was written but not synced to disk ({e}); a crash now may lose it"
                    );
                }
            }
            Err(e) => {
                self.metrics.failures.inc();
                tracing::error!(
                    file = %path.display(),
                    since = %super::record::format_utc(self.since),
                    "cannot write a usage record ({e}); the next record will cover this interval too"
                );
            }
        }
    }
}

/// The file a record starting at `start` goes to: `usage-YYYY-MM-DD.jsonl`, the UTC day.
pub fn file_name(start: i64) -> String {
    let day = time::OffsetDateTime::from_unix_timestamp(start)
        .map(|t| t.date())
        .unwrap_or(time::Date::MIN);
    format!(
        "usage-{:04}-{:02}-{:02}.jsonl",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

/// Appends `record` as one line and syncs it to disk; a new file's directory entry too.
/// `Err`: the line is not in the file (a partial write is cut off again), so the next record
/// covers its interval too. `Ok(Err)`: the line is in the file but could not be synced: it
/// must not be written again (that would count its interval twice).
fn append(path: &Path, record: &Record) -> std::io::Result<std::io::Result<()>> {
    let mut file = open(path)?;
    let len = file.metadata()?.len();
    let mut line = Vec::with_capacity(256);
    if len > 0 {
        let mut last = [0u8; 1];
        file.read_exact_at(&mut last, len - 1)?;
        if last[0] != b'\n' {
            line.push(b'\n');
        }
    }
    line.extend_from_slice(record.to_line().as_bytes());
    line.push(b'\n');
    if let Err(e) = file.write_all(&line) {
        // A short write (a full disk) leaves part of the line: cut it off, so that the next
        // record is not glued to it. If even that fails, the reader skips the torn line.
        let _ = file.set_len(len);
        return Err(e);
    }
    Ok(sync(&file, path, len == 0))
}

/// Syncs `file`'s data, and its directory entry when `new`.
fn sync(file: &File, path: &Path, new: bool) -> std::io::Result<()> {
    file.sync_data()?;
    if new {
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::usage::record::parse_line;
    use crate::vocab::{Names, PeerLabels};

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ixgw-usage-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn records(dir: &Path) -> Vec<Record> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
            .iter()
            .flat_map(|f| {
                std::fs::read(f)
                    .unwrap()
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(|l| parse_line(l).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Records `t` into `dir` every `interval` seconds.
    fn record(dir: &Path, interval: u64, t: &Arc<Counters>, registry: &Registry) -> Usage {
        let config = UsageConfig {
            dir: dir.to_path_buf(),
            interval: Duration::from_secs(interval),
        };
        let t = t.clone();
        let source = Box::new(move || vec![t.clone()]) as Source;
        Usage::start(&config, source, HashMap::new(), registry, SystemTime::now()).expect("starts")
    }

    fn table() -> Arc<Counters> {
        Arc::new(Counters::new(
            Instant::now(),
            Names {
                tenants: vec!["a".into(), "b".into()],
                attachments: vec!["a-wg".into()],
                arp_attachments: vec![],
                peers: vec![PeerLabels {
                    peer: "pa".into(),
                    tenant: "a".into(),
                    attachment: "a-wg".into(),
                    facility: "4212345674".into(),
                }],
            },
        ))
    }

    #[test]
    fn file_names_are_utc_days() {
        assert_eq!(file_name(0), "usage-1970-01-01.jsonl");
        assert_eq!(file_name(1_795_541_400), "usage-2026-11-24.jsonl");
        assert_eq!(file_name(1_795_564_799), "usage-2026-11-24.jsonl");
        assert_eq!(file_name(1_795_564_800), "usage-2026-11-25.jsonl");
    }

    #[test]
    fn a_torn_last_line_stays_a_line_of_its_own() {
        let dir = temp_dir("torn");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("usage-2026-11-24.jsonl");
        std::fs::write(&path, b"{\"v\":1,\"start\":\"2026-11").unwrap();
        let r = super::super::record::tests::sample();
        append(&path, &r).unwrap().unwrap();
        append(&path, &r).unwrap().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(parse_line(lines[0].as_bytes()).is_err());
        assert_eq!(parse_line(lines[1].as_bytes()), Ok(r.clone()));
        assert_eq!(parse_line(lines[2].as_bytes()), Ok(r));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn flushes_and_the_stop_record_carry_the_counts() {
        let dir = temp_dir("flush");
        let config = UsageConfig {
            dir: dir.join("sub"),
            interval: Duration::from_secs(3600),
        };
        let t = table();
        let source = {
            let t = t.clone();
            Box::new(move || vec![t.clone()]) as Source
        };
        let registry = Registry::new();
        let names = [("4212345674".to_string(), "Omura clinic".to_string())].into();
        let usage = Usage::start(&config, source, names, &registry, SystemTime::now()).unwrap();
        t.pair(0, 1).add(1000);
        t.peer(0).rx(1000);
        usage.flush(Cut::Reload).await;
        t.pair(0, 1).add(500);
        t.pair(1, 0).add(20);
        usage.stop().await;

        let rs = records(&config.dir);
        assert_eq!(rs.len(), 2, "{rs:?}");
        assert_eq!(rs[0].cut, Cut::Reload);
        assert_eq!(rs[1].cut, Cut::Stop);
        assert_eq!(rs[0].end, rs[1].start, "records follow each other");
        assert_eq!((rs[0].pairs[0].packets, rs[0].pairs[0].bytes), (1, 1000));
        assert_eq!(
            rs[0].peers[0].facility_name.as_deref(),
            Some("Omura clinic")
        );
        let second: Vec<(String, u64)> = rs[1]
            .pairs
            .iter()
            .map(|p| (format!("{}>{}", p.from, p.to), p.bytes))
            .collect();
        assert_eq!(second, [("a>b".to_string(), 500), ("b>a".to_string(), 20)]);
        assert!(rs[1].peers.is_empty());
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        assert!(
            text.contains("ixgw_usage_records_written_total 2"),
            "{text}"
        );
        assert!(text.contains("ixgw_usage_write_failures_total 0"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn records_end_on_interval_boundaries() {
        let dir = temp_dir("interval");
        let t = table();
        let usage = record(&dir, 1, &t, &Registry::new());
        t.pair(0, 1).add(100);
        tokio::time::sleep(Duration::from_millis(2300)).await;
        t.pair(0, 1).add(100);
        usage.stop().await;
        let rs = records(&dir);
        assert!(rs.len() >= 3, "{rs:?}");
        let whole: Vec<&Record> = rs.iter().filter(|r| r.cut == Cut::Interval).collect();
        assert!(whole.len() >= 2, "{rs:?}");
        assert!(whole.iter().skip(1).all(|r| !r.is_partial()), "{rs:?}");
        for w in rs.windows(2) {
            assert_eq!(w[0].end, w[1].start, "no gap, no overlap: {rs:?}");
        }
        let bytes: u64 = rs.iter().flat_map(|r| &r.pairs).map(|p| p.bytes).sum();
        assert_eq!(bytes, 200);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_failed_write_is_counted_and_its_interval_kept() {
        let dir = temp_dir("fail");
        let t = table();
        let registry = Registry::new();
        let usage = record(&dir, 3600, &t, &registry);
        t.pair(0, 1).add(100);
        // Today's file turns into a directory: the append fails.
        let file = dir.join(file_name(wall().as_secs() as i64));
        std::fs::remove_file(&file).unwrap();
        std::fs::create_dir(&file).unwrap();
        usage.flush(Cut::Reload).await;
        std::fs::remove_dir(&file).unwrap();
        t.pair(0, 1).add(100);
        usage.stop().await;
        let rs = records(&dir);
        assert_eq!(rs.len(), 1, "{rs:?}");
        assert_eq!(rs[0].pairs[0].bytes, 200, "nothing lost");
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        assert!(text.contains("ixgw_usage_write_failures_total 1"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A flush that runs past an interval boundary (a slow disk at a reload) does not skip
    /// it: no record spans more than one interval, so a month's end is never inside one.
    #[tokio::test]
    async fn a_slow_flush_skips_no_boundary() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = temp_dir("slow");
        let config = UsageConfig {
            dir: dir.clone(),
            interval: Duration::from_secs(1),
        };
        let names = Names {
            tenants: vec!["a".into(), "b".into()],
            attachments: vec![],
            arp_attachments: vec![],
            peers: vec![],
        };
        let t = Arc::new(Counters::new(Instant::now(), names));
        let slow = Arc::new(AtomicBool::new(false));
        let source = {
            let (t, slow) = (t.clone(), slow.clone());
            Box::new(move || {
                if slow.swap(false, Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1100));
                }
                vec![t.clone()]
            }) as Source
        };
        let registry = Registry::new();
        let usage = Usage::start(
            &config,
            source,
            HashMap::new(),
            &registry,
            SystemTime::now(),
        )
        .expect("starts");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        slow.store(true, Ordering::SeqCst);
        usage.flush(Cut::Reload).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        usage.stop().await;
        let rs = records(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(rs.len() >= 4, "{rs:?}");
        for r in &rs {
            assert!(
                r.end - r.start <= 1,
                "a record spans {} s: {r:?}",
                r.end - r.start
            );
        }
    }
}
