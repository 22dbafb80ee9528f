//! Where each key path of a YAML document sits, from the parser's own events and spans.
//!
//! A [`Pipeline`](super::Pipeline) carries no positions, so validation problems (found on
//! typed values) are placed through this index: the key of `spec.source.http.url` is at the
//! line and column the parser reported for it. The same index names the key path of a parse
//! error from its position (the node the error points into).
//!
//! The index is built from the raw event stream: aliases are not expanded (an alias is one
//! node, at the alias), so its cost is bounded by the document's size. Text the parser
//! cannot read ends the index there; what came before stays usable.

use serde_saphyr::granit_parser::{Event, Parser, StructureStyle};

/// What a node is, with the text of a scalar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Mapping,
    Sequence,
    Scalar(String),
    Alias,
}

/// One node in value position (the root, a mapping's value or a sequence's item).
#[derive(Debug)]
pub(crate) struct Node {
    /// Key path as in messages: `spec.source.http.url`, `spec.shards.values[2]`; empty for
    /// the root.
    pub path: String,
    /// Character offset of the node's key, when it is a mapping's value.
    key: Option<usize>,
    /// Character offsets: start (inclusive) and end (exclusive) of the node.
    pub start: usize,
    end: usize,
    pub kind: Kind,
}

/// The nodes of a document in document order (a parent before its children).
#[derive(Debug, Default)]
pub(crate) struct Positions {
    nodes: Vec<Node>,
    /// Character offsets where documents start (the `---` of an explicit start).
    pub documents: Vec<usize>,
    /// Where the parser stopped on an error, the innermost mapping or sequence still open
    /// (brackets never closed, a key indented wrongly): the parser's message names only the
    /// token it tripped on.
    pub open_at_error: Option<Unclosed>,
}

/// A mapping or sequence open where the parser stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unclosed {
    /// Character offset of its start.
    pub start: usize,
    pub mapping: bool,
    /// Written with brackets (`[`, `{`) rather than by indentation.
    pub flow: bool,
}

/// An open mapping or sequence while the events are read.
struct Open {
    node: usize,
    mapping: bool,
    /// Mapping: the key read and not yet given a value (text, offset).
    key: Option<(String, usize)>,
    /// Sequence: index of the next item.
    next: usize,
    flow: bool,
}

impl Positions {
    /// Indexes `text`, as far as the parser reads it.
    pub fn of(text: &str) -> Self {
        let mut index = Positions::default();
        let mut open: Vec<Open> = Vec::new();
        // Depth inside a complex key (a mapping or sequence used as a key), which has no path.
        let mut in_key = 0usize;
        // The node of that complex key (its path is the mapping's).
        let mut key_node = 0usize;
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else {
                // The innermost one written with brackets, if any: that is where one is missing.
                let flow = open.iter().rev().find(|o| o.flow);
                index.open_at_error = flow.or(open.last()).and_then(|o| {
                    Some(Unclosed {
                        start: index.nodes.get(o.node)?.start,
                        mapping: o.mapping,
                        flow: o.flow,
                    })
                });
                break;
            };
            let (start, end) = (span.start.index(), span.end.index());
            let container = matches!(event, Event::MappingStart(..) | Event::SequenceStart(..));
            let flow = matches!(
                event,
                Event::MappingStart(StructureStyle::Flow, ..)
                    | Event::SequenceStart(StructureStyle::Flow, ..)
            );
            let closes = matches!(event, Event::MappingEnd | Event::SequenceEnd);
            if in_key > 0 {
                if container {
                    in_key += 1;
                } else if closes {
                    in_key -= 1;
                    if in_key == 0 {
                        let key = index.nodes.get_mut(key_node).map(|n| {
                            n.end = start.max(n.start);
                            n.start
                        });
                        if let (Some(top), Some(at)) = (open.last_mut(), key) {
                            top.key = Some(("?".into(), at));
                        }
                    }
                }
                continue;
            }
            let kind = match event {
                Event::DocumentStart(..) => {
                    index.documents.push(start);
                    continue;
                }
                // Only the first document is indexed; a second one is an error.
                _ if index.documents.len() > 1 => continue,
                Event::MappingEnd | Event::SequenceEnd => {
                    if let Some(done) = open.pop() {
                        if let Some(node) = index.nodes.get_mut(done.node) {
                            node.end = start.max(node.start);
                        }
                    }
                    continue;
                }
                Event::MappingStart(..) => Kind::Mapping,
                Event::SequenceStart(..) => Kind::Sequence,
                Event::Scalar(value, ..) => Kind::Scalar(value.into_owned()),
                Event::Alias(_) => Kind::Alias,
                _ => continue,
            };
            // A key: remember it; its value is the next node.
            if let Some(top) = open.last_mut().filter(|o| o.mapping && o.key.is_none()) {
                match kind {
                    Kind::Scalar(k) => top.key = Some((k, start)),
                    Kind::Alias => top.key = Some(("*".into(), start)),
                    Kind::Mapping | Kind::Sequence => {
                        in_key = 1;
                        key_node = index.nodes.len();
                        let path = index.nodes.get(top.node).map(|n| n.path.clone());
                        index.nodes.push(Node {
                            path: path.unwrap_or_default(),
                            key: None,
                            start,
                            end,
                            kind,
                        });
                    }
                }
                continue;
            }
            let (path, key) = match open.last_mut() {
                None => (String::new(), None),
                Some(top) if top.mapping => {
                    let (k, at) = top.key.take().unwrap_or_default();
                    let parent = index.nodes.get(top.node).map_or("", |n| n.path.as_str());
                    let path = if parent.is_empty() {
                        k
                    } else {
                        format!("{parent}.{k}")
                    };
                    (path, Some(at))
                }
                Some(top) => {
                    let parent = index.nodes.get(top.node).map_or("", |n| n.path.as_str());
                    let path = format!("{parent}[{}]", top.next);
                    top.next += 1;
                    (path, None)
                }
            };
            if container {
                open.push(Open {
                    node: index.nodes.len(),
                    mapping: kind == Kind::Mapping,
                    key: None,
                    next: 0,
                    flow,
                });
            }
            index.nodes.push(Node {
                path,
                key,
                start,
                end,
                kind,
            });
        }
        index
    }

    /// The root node of the first document.
    pub fn root(&self) -> Option<&Node> {
        self.nodes.first()
    }

    /// The innermost node that holds character `offset` (a key belongs to its mapping).
    pub fn node_at(&self, offset: usize) -> Option<&Node> {
        self.nodes
            .iter()
            .rfind(|n| n.start <= offset && (offset < n.end || offset == n.start))
    }

    /// Character offset of the deepest key of `path` found: the key itself when the path is
    /// in the document, else the deepest key on the way to it (where the missing key
    /// belongs).
    pub fn key_of(&self, path: &str) -> Option<usize> {
        self.nodes
            .iter()
            .filter(|n| {
                path == n.path
                    || path
                        .strip_prefix(n.path.as_str())
                        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
            })
            .max_by_key(|n| n.path.len())
            .and_then(|n| n.key.or(Some(n.start)))
    }
}

/// Line and column (1-based, the column in characters) of character `offset` of `text`,
/// counted as an editor counts them: lines end at `\n`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut line = 1;
    let mut column = 1;
    for c in text.chars().take(offset) {
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::{line_column, Kind, Positions};

    #[test]
    fn keys_of_block_and_flow_mappings_and_sequences() {
        let text = "a:\n  b:\n    c: 1\n  d: { e: 2, f: [x, y] }\n";
        let p = Positions::of(text);
        let at = |path: &str| p.key_of(path).map(|o| line_column(text, o));
        assert_eq!(at("a.b.c"), Some((3, 5)));
        assert_eq!(at("a.d.f"), Some((4, 14)));
        // A key that is not there: where it belongs.
        assert_eq!(at("a.x"), Some((1, 1)));
        assert_eq!(at("a.d.f[1]"), Some((4, 21)));
        let y = text.find('y').unwrap();
        let node = p.node_at(y).unwrap();
        assert_eq!(node.path, "a.d.f[1]");
        assert_eq!(node.kind, Kind::Scalar("y".into()));
        // The key `e` belongs to the mapping that holds it.
        assert_eq!(p.node_at(text.find('e').unwrap()).unwrap().path, "a.d");
    }

    #[test]
    fn complex_keys_aliases_and_broken_text_do_not_stop_the_index() {
        let text = "? [k]\n: v\nx: &a 1\ny: *a\nz: [1, 2\nw: 3\n";
        let p = Positions::of(text);
        let open = p.open_at_error.unwrap();
        assert_eq!(
            (open.start, open.mapping, open.flow),
            (text.find("[1, 2").unwrap(), false, true)
        );
        // The complex key is a node of the mapping's path, with its own kind.
        assert_eq!(
            p.node_at(2).map(|n| (n.path.as_str(), &n.kind)),
            Some(("", &Kind::Sequence))
        );
        assert_eq!(p.key_of("y").map(|o| line_column(text, o)), Some((4, 1)));
        assert_eq!(p.key_of("x").map(|o| line_column(text, o)), Some((3, 1)));
        assert!(p.nodes.iter().any(|n| n.path == "?"));
    }

    /// Found by `apitap-chaos fuzz --target spec`: U+0085 in a quoted value moved every
    /// later error line down by one, past the end of the file (the parser counts it as a
    /// line break; editors do not).
    #[test]
    fn unusual_line_breaks_do_not_shift_lines() {
        let line = |text: &str| {
            let e = crate::spec::load("f.yaml", text, None).unwrap_err();
            e.0[0].line
        };
        assert_eq!(line("a: 1\nb: 'x\u{85}\u{85}'\nc: [\n"), Some(3));
        assert_eq!(line("a: 'x\u{2028}\u{2029}\r'\nb: c: d\n"), Some(2));
    }

    #[test]
    fn documents_are_listed_and_positions_count_newlines_only() {
        let p = Positions::of("a: 1\n---\nb: 2\n");
        assert_eq!(p.documents.len(), 2);
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("a\u{85}b\u{2028}c\rd\ne", 8), (2, 1));
        assert_eq!(line_column("é", 1), (1, 2));
    }
}
