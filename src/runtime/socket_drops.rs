//! Kernel drops of the UDP sockets, exported per attachment.
//!
//! A datagram the kernel cannot queue on a full socket receive buffer is dropped before ixgw
//! sees it; the kernel counts it per socket in the `drops` column of `/proc/net/udp` and
//! `/proc/net/udp6` (see proc_net(5)), where the `inode` column is the socket's `st_ino`. The
//! runtime records each UDP socket's inode when it binds it ([`SocketDrops::track`]);
//! at scrape time [`SocketDropsCollector`] reads both files once and emits
//! `ixgw_socket_drops_total{attachment,socket}` for the sockets in use.
//!
//! The exported counter never goes backwards for an attachment name within one process: the
//! collector accumulates the increase of each socket's count since its last reading into a
//! total per attachment name. A socket kept across a reload keeps counting; a socket replaced
//! by a reload (new listen address) starts from zero while the total goes on from where the
//! old one left it. The kernel's count is 32 bits wide and wraps; increases are taken modulo
//! 2^32, so the total stays right as long as a socket drops fewer than 2^32 datagrams between
//! two readings.
//!
//! Parsing is a pure function over the file's text ([`parse_udp_drops`]); only
//! [`SocketDropsCollector::collect`] and [`SocketDrops::refresh`] read the files. A file that
//! is missing or cannot be parsed is logged at debug level and the series of the sockets not
//! found are left out of that scrape; `/metrics` itself never fails for it.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, Metric, MetricFamily, MetricType};

/// The files listing the process's network namespace's UDP sockets.
const PROC_FILES: [&str; 2] = ["/proc/net/udp", "/proc/net/udp6"];

const DROPS_NAME: &str = "ixgw_socket_drops_total";
const DROPS_HELP: &str = "Datagrams the kernel dropped on the attachment's UDP socket (receive buffer full, before ixgw saw them), from the drops column of /proc/net/udp and /proc/net/udp6.";
const RCVBUF_NAME: &str = "ixgw_socket_receive_buffer_bytes";
const RCVBUF_HELP: &str = "The attachment's UDP socket receive buffer as the kernel reports it (SO_RCVBUF, which counts the kernel's bookkeeping: twice the size asked for).";

/// One UDP socket in use: its attachment, the address it was bound to (an attachment may have
/// several sockets: IPsec's 500 and 4500), its inode and its receive buffer size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TrackedSocket {
    pub attachment: String,
    pub socket: String,
    pub inode: u64,
    pub receive_buffer: Option<usize>,
}

/// The inode of a socket, as the `inode` column of `/proc/net/udp` shows it.
pub(crate) fn socket_inode(socket: impl AsFd) -> std::io::Result<u64> {
    let stat = rustix::fs::fstat(socket)?;
    // `st_ino` is a `c_ulong`, 32 bits wide on some targets.
    #[allow(clippy::useless_conversion)]
    Ok(u64::from(stat.st_ino))
}

/// A line of `/proc/net/udp` or `/proc/net/udp6` that does not have the expected layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}: `{text}`")]
pub(crate) struct ProcParseError {
    /// 1-based.
    pub line: usize,
    pub problem: &'static str,
    pub text: String,
}

/// Header words of `/proc/net/udp{,6}`: `sl local_address rem_address st tx_queue rx_queue tr
/// tm->when retrnsmt uid timeout inode ref pointer drops`. The data lines join `tx_queue:rx_queue`
/// and `tr:tm->when`, so they have two fields fewer.
const HEADER_WORDS: usize = 15;
const FIELDS: usize = 13;
const INODE_FIELD: usize = 9;
const DROPS_FIELD: usize = 12;

/// The (inode, drops) pairs of `/proc/net/udp` or `/proc/net/udp6` text. The header is
/// checked, so that a kernel with another layout is refused rather than misread.
pub(crate) fn parse_udp_drops(text: &str) -> Result<Vec<(u64, u32)>, ProcParseError> {
    let err = |line: usize, problem, text: &str| ProcParseError {
        line,
        problem,
        text: text.chars().take(200).collect(),
    };
    let mut lines = text.lines().enumerate();
    let (_, header) = lines.next().ok_or_else(|| err(1, "no header", ""))?;
    let words: Vec<&str> = header.split_whitespace().collect();
    if words.len() != HEADER_WORDS
        || words.first() != Some(&"sl")
        || words.get(INODE_FIELD + 2) != Some(&"inode")
        || words.last() != Some(&"drops")
    {
        return Err(err(1, "unexpected header", header));
    }
    let mut out = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != FIELDS {
            return Err(err(i + 1, "unexpected number of fields", line));
        }
        let inode = fields[INODE_FIELD]
            .parse::<u64>()
            .map_err(|_| err(i + 1, "inode is not a number", line))?;
        // The kernel prints a 32-bit count; should it ever print a wider one, its low 32 bits
        // still give the right increases (see the module docs).
        let drops = fields[DROPS_FIELD]
            .parse::<u64>()
            .map_err(|_| err(i + 1, "drops is not a number", line))? as u32;
        out.push((inode, drops));
    }
    Ok(out)
}

/// Fuzzing body shared by `fuzz/` and the property tests: any bytes as `/proc/net/udp` text give
/// (inode, drops) pairs, at most one per line, or an error naming a line of the text, never a
/// panic.
pub fn fuzz_parse_udp_drops(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_udp_drops(text) {
        Ok(pairs) => assert!(pairs.len() < text.lines().count().max(1)),
        Err(e) => assert!(e.line >= 1 && e.line <= text.lines().count().max(1), "{e}"),
    }
}

#[derive(Debug)]
struct Socket {
    tracked: TrackedSocket,
    /// The kernel's count at the last reading (0 when bound).
    last: u32,
}

#[derive(Debug, Default)]
struct State {
    sockets: Vec<Socket>,
    /// Per attachment name and socket address, every drop counted so far; entries are never
    /// removed, so a pair that comes back continues from its total.
    totals: HashMap<(String, String), u64>,
}

/// The UDP sockets in use and the drops counted on them so far. Shared by the runtime
/// (which replaces the set on start and reload) and the scraper.
#[derive(Debug, Default)]
pub(crate) struct SocketDrops {
    state: Mutex<State>,
}

/// The series of one scrape: attachment, socket address, total drops (`None` when its socket
/// was not found) and receive buffer size.
pub(crate) type Series = Vec<(String, String, Option<u64>, Option<usize>)>;

impl SocketDrops {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is one step.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `sockets` the set in use. A socket already tracked (same inode) keeps its last
    /// reading, so its count continues under its (possibly new) attachment name; a new one
    /// starts from 0, the count of a socket just bound.
    pub(crate) fn track(&self, sockets: Vec<TrackedSocket>) {
        let mut state = self.state();
        let mut old: HashMap<u64, u32> = state
            .sockets
            .drain(..)
            .map(|s| (s.tracked.inode, s.last))
            .collect();
        state.sockets = sockets
            .into_iter()
            .map(|tracked| Socket {
                last: old.remove(&tracked.inode).unwrap_or(0),
                tracked,
            })
            .collect();
    }

    /// Adds the increase since the last reading of every tracked socket found in `readings`
    /// (inode → the kernel's count) and returns the series, in tracking order. The sockets
    /// of one address (one per data-path worker, tracked one after the other) make one
    /// series: their total.
    pub(crate) fn observe(&self, readings: &HashMap<u64, u32>) -> Series {
        let mut state = self.state();
        let State { sockets, totals } = &mut *state;
        let mut series: Series = Vec::with_capacity(sockets.len());
        let each = sockets.iter_mut().map(|s| {
            let total = readings.get(&s.tracked.inode).map(|&now| {
                let increase = u64::from(now.wrapping_sub(s.last));
                s.last = now;
                let key = (s.tracked.attachment.clone(), s.tracked.socket.clone());
                let total = totals.entry(key).or_insert(0);
                *total = total.saturating_add(increase);
                *total
            });
            (
                s.tracked.attachment.clone(),
                s.tracked.socket.clone(),
                total,
                s.tracked.receive_buffer,
            )
        });
        for one in each {
            match series.last_mut() {
                Some(last) if (&last.0, &last.1) == (&one.0, &one.1) => {
                    last.2 = one.2.or(last.2);
                }
                _ => series.push(one),
            }
        }
        series
    }

    /// Reads the kernel's counts now, so that what the sockets about to be closed dropped
    /// until this moment stays in their attachments' totals.
    pub(crate) fn refresh(&self) {
        self.observe(&read_proc());
    }
}

/// The kernel's per-socket drop counts of both files, logging (at debug) what cannot be read.
fn read_proc() -> HashMap<u64, u32> {
    let mut readings = HashMap::new();
    for path in PROC_FILES {
        let parsed = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| parse_udp_drops(&text).map_err(|e| e.to_string()));
        match parsed {
            Ok(pairs) => readings.extend(pairs),
            Err(e) => tracing::debug!("socket drops: cannot read {path}: {e}"),
        }
    }
    readings
}

/// Registered in the metrics hub's registry; reads `/proc/net/udp{,6}` once per scrape.
pub(crate) struct SocketDropsCollector {
    drops: Arc<SocketDrops>,
    descs: Vec<Desc>,
}

impl SocketDropsCollector {
    pub(crate) fn new(drops: Arc<SocketDrops>) -> prometheus::Result<Self> {
        let desc = |name: &str, help: &str| {
            Desc::new(
                name.to_owned(),
                help.to_owned(),
                vec!["attachment".to_owned(), "socket".to_owned()],
                HashMap::new(),
            )
        };
        let descs = vec![
            desc(DROPS_NAME, DROPS_HELP)?,
            desc(RCVBUF_NAME, RCVBUF_HELP)?,
        ];
        Ok(SocketDropsCollector { drops, descs })
    }

    /// The metric families for one scrape's readings.
    pub(crate) fn families(&self, readings: &HashMap<u64, u32>) -> Vec<MetricFamily> {
        let series = self.drops.observe(readings);
        let mut drops = Vec::new();
        let mut buffers = Vec::new();
        for (attachment, socket, total, buffer) in &series {
            let labels = || vec![label("attachment", attachment), label("socket", socket)];
            match total {
                Some(total) => {
                    let mut c = proto::Counter::default();
                    c.set_value(*total as f64);
                    let mut m = Metric::from_label(labels());
                    m.set_counter(c);
                    drops.push(m);
                }
                None => tracing::debug!(
                    attachment,
                    socket,
                    "socket drops: the attachment's socket is not in /proc/net/udp or udp6"
                ),
            }
            if let Some(bytes) = buffer {
                let mut g = proto::Gauge::default();
                g.set_value(*bytes as f64);
                let mut m = Metric::from_label(labels());
                m.set_gauge(g);
                buffers.push(m);
            }
        }
        vec![
            family(DROPS_NAME, DROPS_HELP, MetricType::COUNTER, drops),
            family(RCVBUF_NAME, RCVBUF_HELP, MetricType::GAUGE, buffers),
        ]
    }
}

impl Collector for SocketDropsCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.families(&read_proc())
    }
}

fn label(name: &str, value: &str) -> LabelPair {
    let mut pair = LabelPair::default();
    pair.set_name(name.to_owned());
    pair.set_value(value.to_owned());
    pair
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_owned());
    f.set_help(help.to_owned());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from Linux 6.x: three IPv4 sockets, the first of which overflowed (296 drops),
    /// with the trailing blanks the kernel pads lines with.
    const UDP: &str = concat!(
        "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            \n",
        " 4341: 0100007F:C20E 00000000:0000 07 00000000:00000D00 00:00000000 00000000     0        0 16580 2 0000000086e52394 296       \n",
        " 6483: 00000000:CA6C 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 16581 2 000000001c1d200e 0         \n",
        "10561: 00000000:9A5A 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 16583 2 00000000e6590c77 0         \n",
    );

    /// The same moment's IPv6 sockets: `[::1]` with 66 drops and `[::]`.
    const UDP6: &str = concat!(
        "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n",
        "10232: 00000000000000000000000001000000:D911 00000000000000000000000000000000:0000 07 00000000:00000D00 00:00000000 00000000     0        0 16582 2 0000000067256e52 66\n",
        "14931: 00000000000000000000000000000000:EB6C 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 16584 2 00000000bafcfa0a 0\n",
    );

    #[test]
    fn parses_captured_udp_and_udp6() {
        assert_eq!(
            parse_udp_drops(UDP),
            Ok(vec![(16580, 296), (16581, 0), (16583, 0)])
        );
        assert_eq!(parse_udp_drops(UDP6), Ok(vec![(16582, 66), (16584, 0)]));
    }

    #[test]
    fn a_header_alone_is_no_sockets() {
        let header = UDP.lines().next().unwrap_or_default();
        assert_eq!(parse_udp_drops(header), Ok(vec![]));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let header = UDP.lines().next().unwrap_or_default();
        let cases = [
            ("", 1, "no header"),
            ("sl local_address drops\n", 1, "unexpected header"),
            (
                // A layout with one more column: refused, not misread.
                &format!("{} extra\n", header.trim_end()),
                1,
                "unexpected header",
            ),
            (
                &format!("{header}\n 1: 0100007F:C20E 00000000:0000 07\n"),
                2,
                "unexpected number of fields",
            ),
            (
                &format!(
                    "{header}\n{}",
                    UDP.lines().nth(1).unwrap_or_default().replace("16580", "x")
                ),
                2,
                "inode is not a number",
            ),
            (
                &format!(
                    "{header}\n{}",
                    UDP.lines()
                        .nth(1)
                        .unwrap_or_default()
                        .replace(" 296 ", " -1 ")
                ),
                2,
                "drops is not a number",
            ),
        ];
        for (text, line, problem) in cases {
            let err = parse_udp_drops(text).expect_err(text);
            assert_eq!((err.line, err.problem), (line, problem), "{text}");
        }
    }

    fn tracked(attachment: &str, inode: u64) -> TrackedSocket {
        TrackedSocket {
            attachment: attachment.into(),
            socket: "0.0.0.0:51820".into(),
            inode,
            receive_buffer: Some(8 << 20),
        }
    }

    fn readings(pairs: &[(u64, u32)]) -> HashMap<u64, u32> {
        pairs.iter().copied().collect()
    }

    fn totals(series: &Series) -> Vec<(&str, Option<u64>)> {
        series.iter().map(|(a, _, t, _)| (a.as_str(), *t)).collect()
    }

    #[test]
    fn totals_never_go_backwards_across_replaced_sockets_and_wraps() {
        let d = SocketDrops::default();
        d.track(vec![tracked("a", 10), tracked("b", 20)]);
        assert_eq!(
            totals(&d.observe(&readings(&[(10, 5), (20, 7)]))),
            [("a", Some(5)), ("b", Some(7))]
        );

        // Reload: `a` keeps its socket, `b` gets a new one (new listen address).
        d.track(vec![tracked("a", 10), tracked("b", 21)]);
        assert_eq!(
            totals(&d.observe(&readings(&[(10, 6), (21, 2)]))),
            [("a", Some(6)), ("b", Some(9))]
        );

        // The kernel's 32-bit count wraps.
        d.track(vec![tracked("a", 10)]);
        d.observe(&readings(&[(10, u32::MAX - 1)]));
        assert_eq!(
            totals(&d.observe(&readings(&[(10, 3)]))),
            [("a", Some(u64::from(u32::MAX) + 4))]
        );

        // `b` left and comes back on a third socket: it goes on from 9.
        d.track(vec![tracked("b", 22)]);
        assert_eq!(totals(&d.observe(&readings(&[(22, 1)]))), [("b", Some(10))]);
    }

    /// One address served by several workers, a socket each: one series, their sum, even
    /// when one of them is missing from a reading.
    #[test]
    fn the_sockets_of_one_address_make_one_series() {
        let d = SocketDrops::default();
        d.track(vec![tracked("a", 10), tracked("a", 11), tracked("b", 20)]);
        let series = d.observe(&readings(&[(10, 5), (11, 7), (20, 1)]));
        assert_eq!(totals(&series), [("a", Some(12)), ("b", Some(1))]);
        assert_eq!(
            totals(&d.observe(&readings(&[(10, 6), (20, 1)]))),
            [("a", Some(13)), ("b", Some(1))]
        );
        assert_eq!(
            totals(&d.observe(&readings(&[(11, 9), (20, 1)]))),
            [("a", Some(15)), ("b", Some(1))]
        );
    }

    #[test]
    fn a_kept_socket_under_a_new_name_counts_only_what_follows() {
        let d = SocketDrops::default();
        d.track(vec![tracked("old", 10)]);
        d.observe(&readings(&[(10, 50)]));
        d.track(vec![tracked("new", 10)]);
        assert_eq!(
            totals(&d.observe(&readings(&[(10, 53)]))),
            [("new", Some(3))]
        );
    }

    #[test]
    fn a_socket_missing_from_proc_has_no_drop_series_this_scrape() {
        let drops = Arc::new(SocketDrops::default());
        drops.track(vec![tracked("a", 10), tracked("b", 20)]);
        let c = SocketDropsCollector::new(drops.clone()).expect("static descs");

        let f = c.families(&readings(&[(20, 4)]));

        assert_eq!(f.len(), 2);
        assert_eq!(f[0].name(), DROPS_NAME);
        let drops: Vec<(&str, f64)> = f[0]
            .get_metric()
            .iter()
            .map(|m| (m.get_label()[0].value(), m.get_counter().get_value()))
            .collect();
        assert_eq!(drops, [("b", 4.0)]);
        assert_eq!(f[1].name(), RCVBUF_NAME);
        assert_eq!(f[1].get_metric().len(), 2);
        assert_eq!(f[1].get_metric()[0].get_gauge().get_value(), 8_388_608.0);
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_or_names_its_line(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            fuzz_parse_udp_drops(&data);
        }

        #[test]
        fn mangled_proc_text_never_panics(cut in 0usize..400, junk in "[ 0-9A-Fa-f:\n]{0,40}") {
            let mut text = UDP.to_string();
            text.truncate(cut.min(text.len()));
            text.push_str(&junk);
            fuzz_parse_udp_drops(text.as_bytes());
        }
    }
}
