//! The Prometheus text exposition (format 0.0.4) of the collector's families, written straight
//! into the scrape's buffer: no `MetricFamily` per family, no `String` per label, no
//! allocation per sample.
//!
//! The bytes are those of `prometheus::TextEncoder` for the same family (the tests compare
//! the two): `# HELP` (help with `\` and newline escaped), `# TYPE`, then one line per sample,
//! `name{label="value",...} value`, label values with `\`, newline and `"` escaped, and the
//! value as `f64`'s `Display` prints it (an integer below 2^53 is its own digits). A family
//! without samples writes nothing, as `Registry::gather` prunes it.

use std::fmt::Write as _;
use std::ops::Range;

use prometheus::proto::MetricType;

use super::collector::{Def, Sink, TextCollector, Value};

/// Integers up to this are exactly an `f64`, whose `Display` then prints their digits.
const EXACT: u64 = 1 << 53;

/// Writes the families handed to it as text into `out`.
pub(crate) struct TextSink<'o> {
    out: &'o mut String,
    family: Option<&'static Def>,
    /// Whether `family`'s `# HELP` and `# TYPE` are written (at its first sample).
    started: bool,
    /// The label sets of keyed samples (`{...}`, escaped), rendered at their first use:
    /// `ends[k]` is where key `k`'s ends in `blocks`. Nine families of 10,000 peers render
    /// and escape each peer's labels once, not nine times.
    blocks: String,
    ends: Vec<usize>,
    /// The label names the blocks were rendered with.
    block_names: &'static [&'static str],
}

impl<'o> TextSink<'o> {
    pub(crate) fn new(out: &'o mut String) -> Self {
        TextSink {
            out,
            family: None,
            started: false,
            blocks: String::new(),
            ends: Vec::new(),
            block_names: &[],
        }
    }

    /// The family's `# HELP` and `# TYPE` lines before its first sample; then its name.
    fn begin_sample(&mut self) -> Option<&'static Def> {
        let def = self.family?;
        let out = &mut *self.out;
        if !self.started {
            self.started = true;
            if !def.help.is_empty() {
                out.push_str("# HELP ");
                out.push_str(def.name);
                out.push(' ');
                escape(out, def.help, false);
                out.push('\n');
            }
            out.push_str("# TYPE ");
            out.push_str(def.name);
            out.push_str(match def.kind {
                MetricType::GAUGE => " gauge\n",
                _ => " counter\n",
            });
        }
        out.push_str(def.name);
        Some(def)
    }

    fn end_sample(&mut self, value: Value) {
        let out = &mut *self.out;
        out.push(' ');
        match value {
            Value::Count(n) if n <= EXACT => integer(out, n),
            v => {
                // Writing into a `String` cannot fail.
                let _ = write!(out, "{}", v.as_f64());
            }
        }
        out.push('\n');
    }

    /// The buffer, to write between the families (those of other collectors).
    pub(crate) fn out(&mut self) -> &mut String {
        self.out
    }

    /// Writes `collector`'s families and returns where each family's text is in the buffer
    /// (families without samples left out).
    pub(crate) fn chunks(
        &mut self,
        collector: &dyn TextCollector,
    ) -> Vec<(&'static str, Range<usize>)> {
        let mut marks = Marks {
            text: self,
            starts: Vec::new(),
        };
        collector.write(&mut marks);
        let starts = marks.starts;
        let end = self.out.len();
        (starts.iter().enumerate())
            .map(|(i, &(name, start))| (name, start..starts.get(i + 1).map_or(end, |s| s.1)))
            .filter(|(_, r)| !r.is_empty())
            .collect()
    }
}

impl Sink for TextSink<'_> {
    fn family(&mut self, def: &'static Def) {
        self.family = Some(def);
        self.started = false;
    }

    fn sample(&mut self, labels: &[&str], value: Value) {
        let Some(def) = self.begin_sample() else {
            debug_assert!(false, "a sample before its family");
            return;
        };
        debug_assert_eq!(def.labels.len(), labels.len(), "{}", def.name);
        label_set(self.out, def.labels, labels);
        self.end_sample(value);
    }

    fn keyed_sample(&mut self, key: usize, labels: &[&str], value: Value) {
        let Some(def) = self.begin_sample() else {
            debug_assert!(false, "a sample before its family");
            return;
        };
        debug_assert_eq!(def.labels.len(), labels.len(), "{}", def.name);
        if self.block_names != def.labels {
            self.blocks.clear();
            self.ends.clear();
            self.block_names = def.labels;
        }
        if key == self.ends.len() {
            label_set(&mut self.blocks, def.labels, labels);
            self.ends.push(self.blocks.len());
        }
        match self.ends.get(key) {
            Some(&end) => {
                let start = key.checked_sub(1).map_or(0, |k| self.ends[k]);
                self.out.push_str(&self.blocks[start..end]);
            }
            // Keys not met in order are not kept.
            None => label_set(self.out, def.labels, labels),
        }
        self.end_sample(value);
    }
}

/// A [`TextSink`] that notes where each family starts.
struct Marks<'s, 'o> {
    text: &'s mut TextSink<'o>,
    starts: Vec<(&'static str, usize)>,
}

impl Sink for Marks<'_, '_> {
    fn family(&mut self, def: &'static Def) {
        self.starts.push((def.name, self.text.out.len()));
        self.text.family(def);
    }

    fn sample(&mut self, labels: &[&str], value: Value) {
        self.text.sample(labels, value);
    }

    fn keyed_sample(&mut self, key: usize, labels: &[&str], value: Value) {
        self.text.keyed_sample(key, labels, value);
    }
}

/// Appends `{name="value",...}`, nothing for no labels.
fn label_set(out: &mut String, names: &[&str], values: &[&str]) {
    let mut separator = '{';
    for (name, value) in names.iter().zip(values) {
        out.push(separator);
        out.push_str(name);
        out.push_str("=\"");
        escape(out, value, true);
        out.push('"');
        separator = ',';
    }
    if separator == ',' {
        out.push('}');
    }
}

/// Appends the decimal digits of `n`.
fn integer(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

/// Appends `s` with `\` and newline escaped, and `"` too if `quote`.
fn escape(out: &mut String, s: &str, quote: bool) {
    let special = |b: u8| b == b'\\' || b == b'\n' || (quote && b == b'"');
    if !s.bytes().any(special) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEERISH: Def = Def::gauge("t_peer", &["a", "b"], "Per key.");
    const OTHER: Def = Def::gauge("t_other", &["c", "d"], "Other names, same keys.");
    const BARE: Def = Def::gauge("t_bare", &[], "No labels.\nTwo lines \\ one backslash.");

    fn with(f: impl FnOnce(&mut TextSink<'_>)) -> String {
        let mut out = String::new();
        f(&mut TextSink::new(&mut out));
        out
    }

    /// Keyed samples read as plain ones, whatever order the keys come in.
    #[test]
    fn keyed_samples_are_plain_samples() {
        let rows = [["x", "1"], ["y\"", "2"], ["z\n", "3"]];
        let plain = with(|s| {
            for def in [&PEERISH, &OTHER, &PEERISH] {
                s.family(def);
                for (k, r) in rows.iter().enumerate() {
                    s.sample(r, Value::Count(k as u64));
                }
            }
        });
        let keyed = with(|s| {
            for def in [&PEERISH, &OTHER, &PEERISH] {
                s.family(def);
                for (k, r) in rows.iter().enumerate() {
                    s.keyed_sample(k, r, Value::Count(k as u64));
                }
            }
        });
        assert_eq!(keyed, plain);
        assert!(
            plain.contains("t_other{c=\"y\\\"\",d=\"2\"} 1\n"),
            "{plain}"
        );
        let skipping = with(|s| {
            s.family(&PEERISH);
            s.keyed_sample(2, &rows[2], Value::Count(2));
            s.keyed_sample(0, &rows[0], Value::Count(0));
            s.keyed_sample(2, &rows[2], Value::Count(2));
        });
        assert_eq!(
            skipping,
            "# HELP t_peer Per key.\n# TYPE t_peer gauge\nt_peer{a=\"z\\n\",b=\"3\"} 2\nt_peer{a=\"x\",b=\"1\"} 0\nt_peer{a=\"z\\n\",b=\"3\"} 2\n"
        );
    }

    /// Integers are exact up to 2^53 and `f64` beyond, as the encoder's `f64` prints them.
    #[test]
    fn values_are_written_as_f64_displays_them() {
        let text = with(|s| {
            s.family(&BARE);
            for n in [0, 9, 10, EXACT - 1, EXACT, EXACT + 1, u64::MAX] {
                s.sample(&[], Value::Count(n));
            }
            for x in [0.25, 1_764_000_123.456, 1e21] {
                s.sample(&[], Value::Real(x));
            }
        });
        let want: Vec<String> = [0u64, 9, 10, EXACT - 1, EXACT, EXACT + 1, u64::MAX]
            .iter()
            .map(|&n| (n as f64).to_string())
            .chain(
                [0.25f64, 1_764_000_123.456, 1e21]
                    .iter()
                    .map(f64::to_string),
            )
            .map(|v| format!("t_bare {v}"))
            .collect();
        let got: Vec<&str> = text.lines().skip(2).collect();
        assert_eq!(got, want);
        assert!(text.starts_with(
            "# HELP t_bare No labels.\\nTwo lines \\\\ one backslash.\n# TYPE t_bare gauge\n"
        ));
    }

    #[test]
    fn a_family_without_samples_writes_nothing() {
        assert_eq!(with(|s| s.family(&BARE)), "");
    }
}
