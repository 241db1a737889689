//! Key path → line map of a YAML document, for semantic errors that serde cannot place.
//!
//! Paths are written the way `yaml_serde` writes them in its own errors:
//! `tenants[1].networks[0].exchange`. A mapping entry maps to the line of its key, a sequence
//! item to the line where the item starts. Scalar values are kept with a flag telling whether
//! they were written plain (unquoted), so that validation can tell `0112345673` from
//! `"0112345673"` where it matters.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;

#[derive(Debug, Default)]
pub(super) struct LineMap {
    entries: HashMap<String, Entry>,
}

#[derive(Debug)]
struct Entry {
    line: usize,
    plain_scalar: bool,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

impl LineMap {
    /// Builds the map from the events of the first document. A syntax error ends the walk
    /// early; the caller reports syntax errors through the deserializer, which ran first.
    pub(super) fn build(text: &str) -> LineMap {
        let mut map = LineMap::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut parser = Parser::new_from_str(text);
        while let Ok((event, mark)) = parser.next_token() {
            let line = mark.line();
            match event {
                Event::StreamEnd | Event::DocumentEnd => break,
                Event::Scalar(value, style, ..) => {
                    if let Some(path) = map.node_path(&mut stack, Some(&value), line) {
                        let plain = style == TScalarStyle::Plain;
                        map.entries
                            .entry(path)
                            .and_modify(|e| e.plain_scalar = plain)
                            .or_insert(Entry {
                                line,
                                plain_scalar: plain,
                            });
                    }
                }
                Event::Alias(_) => {
                    map.node_path(&mut stack, Some("*"), line);
                }
                Event::MappingStart(..) => {
                    let path = map.node_path(&mut stack, None, line).unwrap_or_default();
                    map.record(&path, line);
                    stack.push(Frame::Map { path, key: None });
                }
                Event::SequenceStart(..) => {
                    let path = map.node_path(&mut stack, None, line).unwrap_or_default();
                    map.record(&path, line);
                    stack.push(Frame::Seq { path, next: 0 });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                _ => {}
            }
        }
        map
    }

    /// The path of the node that starts at `line`, or `None` if the node is a mapping key
    /// (whose own path is recorded here). `key` is the scalar text when the node is a scalar.
    fn node_path(&mut self, stack: &mut [Frame], key: Option<&str>, line: usize) -> Option<String> {
        match stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                self.record(&p, line);
                Some(p)
            }
            Some(Frame::Map { path, key: slot }) => match slot.take() {
                Some(k) => Some(join(path, &k)),
                None => {
                    let k = key.unwrap_or("?").to_string();
                    let p = join(path, &k);
                    self.record(&p, line);
                    *slot = Some(k);
                    // A complex (non-scalar) key is walked like a value under the path "?".
                    key.is_none().then(|| join(path, "?"))
                }
            },
        }
    }

    fn record(&mut self, path: &str, line: usize) {
        self.entries.entry(path.to_string()).or_insert(Entry {
            line,
            plain_scalar: false,
        });
    }

    /// The line of `path`, or of its nearest recorded ancestor (a defaulted key has none of
    /// its own), or 1.
    pub(super) fn line(&self, path: &str) -> usize {
        let mut p = path;
        loop {
            if let Some(e) = self.entries.get(p) {
                return e.line;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return self.entries.get("").map_or(1, |e| e.line),
            }
        }
    }

    /// Whether the scalar at `path` was written unquoted.
    pub(super) fn is_plain(&self, path: &str) -> bool {
        self.entries.get(path).is_some_and(|e| e.plain_scalar)
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_key_and_item_lines() {
        let text = "\
ix:
  name: a
tenants:
  - name: t
    networks:
      - internal: 10.0.0.0/24
        exchange: 100.64.0.0/24
    tags: [x, \"y\"]
";
        let m = LineMap::build(text);
        assert_eq!(m.line("ix"), 1);
        assert_eq!(m.line("ix.name"), 2);
        assert_eq!(m.line("tenants[0]"), 4);
        assert_eq!(m.line("tenants[0].name"), 4);
        assert_eq!(m.line("tenants[0].networks"), 5);
        assert_eq!(m.line("tenants[0].networks[0].internal"), 6);
        assert_eq!(m.line("tenants[0].networks[0].exchange"), 7);
        assert_eq!(m.line("tenants[0].tags[1]"), 8);
        assert!(m.is_plain("tenants[0].tags[0]"));
        assert!(!m.is_plain("tenants[0].tags[1]"));
        // Unknown paths fall back to their nearest ancestor.
        assert_eq!(m.line("tenants[0].networks[0].missing"), 6);
        assert_eq!(m.line("tenants[0].attachments[3].mtu"), 4);
    }
}
