//! The writer thread: takes records from the queue, renders them, sends each to journald and
//! appends them to the file in batches.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::record::{self, Body};
use super::{journald, Event, Queued, Shared, SinkCounters};

/// The file is written at least this often while records arrive...
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// ...and at least every this many lines.
const FLUSH_LINES: u64 = 1000;
/// How long an idle writer sleeps before it looks at its flags without being woken.
const IDLE_WAKE: Duration = Duration::from_secs(1);
/// Mode of a file the writer creates: the daemon's user writes, its group (auditors) reads.
const FILE_MODE: u32 = 0o640;

type Opener = Box<dyn FnMut() -> io::Result<Box<dyn Write + Send>> + Send>;

/// Where the lines go: a writer, and how to open it again (`None`: it cannot be reopened).
pub(crate) struct Output {
    name: String,
    out: Box<dyn Write + Send>,
    open: Option<Opener>,
}

impl Output {
    /// A file opened for appending, created with mode 0640.
    pub(crate) fn file(path: PathBuf) -> io::Result<Output> {
        let out = open_append(&path)?;
        let name = path.display().to_string();
        Ok(Output {
            name,
            out: Box::new(out),
            open: Some(Box::new(move || {
                open_append(&path).map(|f| Box::new(f) as Box<dyn Write + Send>)
            })),
        })
    }

    /// Any writer; `open` makes a new one on [`super::Audit::reopen`].
    #[cfg(test)]
    pub(crate) fn writer(name: &str, out: Box<dyn Write + Send>, open: Option<Opener>) -> Output {
        Output {
            name: name.to_string(),
            out,
            open,
        }
    }
}

/// Opens `path` for appending. A file it creates gets mode 0640 whatever the umask; an
/// existing file keeps the mode the operator gave it.
fn open_append(path: &std::path::Path) -> io::Result<File> {
    let created = OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path);
    match created {
        Ok(f) => {
            f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
            Ok(f)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            OpenOptions::new().append(true).open(path)
        }
        Err(e) => Err(e),
    }
}

/// The file sink: lines batched in a buffer of our own, so that what was written and what
/// was lost is known to the line.
struct FileSink {
    output: Output,
    buf: Vec<u8>,
    lines: u64,
    /// A failed write ended inside a line: the next write starts a new line first.
    torn: bool,
    /// The last write failed (logged once until one succeeds).
    failing: bool,
}

impl FileSink {
    fn push(&mut self, line: &[u8]) {
        self.buf.extend_from_slice(line);
        self.buf.push(b'\n');
        self.lines += 1;
    }

    fn reopen(&mut self) {
        let Some(open) = self.output.open.as_mut() else {
            return;
        };
        match open() {
            Ok(out) => {
                self.output.out = out;
                self.torn = false;
                tracing::info!(file = %self.output.name, "audit file reopened");
            }
            Err(e) => tracing::error!(
                file = %self.output.name,
                "cannot reopen the audit file, writing on to the old one: {e}"
            ),
        }
    }

    fn flush(&mut self, counters: &SinkCounters) {
        if self.buf.is_empty() {
            return;
        }
        let mut result = Ok(());
        if self.torn {
            result = self.output.out.write_all(b"\n");
            if result.is_ok() {
                self.torn = false;
            }
        }
        let mut done = 0;
        if result.is_ok() {
            result = loop {
                if done == self.buf.len() {
                    break self.output.out.flush();
                }
                match self.output.out.write(&self.buf[done..]) {
                    Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => done += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
        }
        let written = self.buf[..done].iter().filter(|&&b| b == b'\n').count() as u64;
        counters.written.fetch_add(written, Ordering::Relaxed);
        match result {
            Ok(()) => {
                if self.failing {
                    tracing::info!(file = %self.output.name, "audit file written again");
                    self.failing = false;
                }
            }
            Err(e) => {
                counters
                    .failed
                    .fetch_add(self.lines - written, Ordering::Relaxed);
                self.torn |= done > 0 && self.buf[done - 1] != b'\n';
                if !self.failing {
                    tracing::error!(
                        file = %self.output.name,
                        lost = self.lines - written,
                        "cannot write the audit file: {e}"
                    );
                    self.failing = true;
                }
            }
        }
        self.buf.clear();
        self.lines = 0;
    }
}

pub(crate) struct Writer {
    rx: Receiver<Queued>,
    shared: Arc<Shared>,
    file: Option<FileSink>,
    journald: Option<journald::Sink>,
    /// The line being rendered.
    line: Vec<u8>,
    /// Drops already reported in an `audit_dropped` line.
    reported: u64,
    last_flush: Instant,
}

impl Writer {
    pub(crate) fn new(
        rx: Receiver<Queued>,
        shared: Arc<Shared>,
        file: Option<Output>,
        journald: Option<journald::Sink>,
    ) -> Writer {
        Writer {
            rx,
            shared,
            file: file.map(|output| FileSink {
                output,
                buf: Vec::with_capacity(64 << 10),
                lines: 0,
                torn: false,
                failing: false,
            }),
            journald,
            line: Vec::with_capacity(1024),
            reported: 0,
            last_flush: Instant::now(),
        }
    }

    /// Runs until every handle is gone or [`super::Audit::shutdown`], writing what is queued.
    pub(crate) fn run(mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(q) => {
                    self.take(&q);
                    let lines = self.file.as_ref().map_or(0, |f| f.lines);
                    if lines >= FLUSH_LINES || self.last_flush.elapsed() >= FLUSH_INTERVAL {
                        self.flush();
                    }
                    continue;
                }
                Err(TryRecvError::Empty) => self.flush(),
                Err(TryRecvError::Disconnected) => {
                    self.flush();
                    return;
                }
            }
            if self.shared.stop.load(Ordering::SeqCst) {
                // Records may have come while the batch was written: those are written too.
                match self.rx.try_recv() {
                    Ok(q) => {
                        self.take(&q);
                        continue;
                    }
                    Err(_) => return,
                }
            }
            match self.rx.recv_timeout(IDLE_WAKE) {
                Ok(q) => self.take(&q),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn take(&mut self, q: &Queued) {
        let Some(body) = Body::of(&q.item) else {
            return;
        };
        self.shared.taken.fetch_add(1, Ordering::Relaxed);
        self.line.clear();
        if let Err(e) = record::render(q, &body, &mut self.line) {
            // Our own types only; a failure here is a bug, and the record is counted lost.
            tracing::error!(seq = q.seq, "cannot render an audit record: {e}");
            for c in [&self.shared.file, &self.shared.journald]
                .into_iter()
                .flatten()
            {
                c.failed.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        self.emit(&body);
    }

    /// Sends the rendered line to journald and queues it for the file.
    fn emit(&mut self, body: &Body<'_>) {
        if let (Some(j), Some(c)) = (self.journald.as_mut(), self.shared.journald.as_ref()) {
            j.send(body, &self.line, c);
        }
        if let Some(f) = self.file.as_mut() {
            f.push(&self.line);
        }
    }

    /// Reports drops, reopens the file if asked, and writes the batch.
    fn flush(&mut self) {
        let dropped = self.shared.dropped.load(Ordering::Relaxed);
        if dropped > self.reported {
            let event = Event::AuditDropped {
                records: dropped - self.reported,
            };
            self.reported = dropped;
            let body = Body::Event(&event);
            self.line.clear();
            let seq = self.shared.next_seq();
            if record::render_at(SystemTime::now(), seq, &body, &mut self.line).is_ok() {
                self.emit(&body);
            }
        }
        if let Some(f) = self.file.as_mut() {
            if self.shared.reopen.swap(false, Ordering::SeqCst) {
                f.reopen();
            }
            if let Some(c) = self.shared.file.as_ref() {
                f.flush(c);
            }
        }
        self.last_flush = Instant::now();
    }
}
