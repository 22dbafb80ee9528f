//! Where each key path of a YAML document sits, from the parser's own events and spans.
//!
//! A [`Pipeline`](super::Pipeline) carries no positions, so validation problems (found on
//! typed values) are placed through this index: the key of `spec.source.http.url` is at the
//! line and column the parser reported for it. The same index names the key path of a parse
//! error from its position (the node the error points into).
//!
//! The index is built from the raw event stream: aliases are not expanded (an alias is one
//! node, at the alias), and a node keeps its own key and a link to its parent, not its
//! whole path, so its size is bounded by the document's. Text the parser cannot read ends
//! the index there; what came before stays usable.

use serde_saphyr::granit_parser::{Event, Parser, StructureStyle};

/// What a node is, with the text of a scalar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Mapping,
    Sequence,
    Scalar(String),
    /// An alias (`*name`) of the anchor with this id.
    Alias(usize),
}

/// How a node is reached from its parent.
#[derive(Debug)]
enum Step {
    /// The root of the document.
    Root,
    /// A mapping's value, under this key.
    Key(String),
    /// A sequence's item.
    Item(usize),
    /// A mapping or sequence used as a key: it has its mapping's path.
    ComplexKey,
}

/// One node: the root, a mapping's value, a sequence's item or a complex key.
#[derive(Debug)]
pub(crate) struct Node {
    parent: usize,
    step: Step,
    /// Character offset of the node's key, when it is a mapping's value.
    key: Option<usize>,
    /// Character offsets: start (inclusive) and end (exclusive) of the node.
    pub start: usize,
    end: usize,
    pub kind: Kind,
    /// Id of the anchor (`&name`) on the node; 0 for none.
    anchor: usize,
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
            let (kind, anchor) = match event {
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
                Event::MappingStart(_, a, _) => (Kind::Mapping, a),
                Event::SequenceStart(_, a, _) => (Kind::Sequence, a),
                Event::Scalar(value, _, a, _) => (Kind::Scalar(value.into_owned()), a),
                Event::Alias(id) => (Kind::Alias(id), 0),
                _ => continue,
            };
            // A key: remember it; its value is the next node.
            if let Some(top) = open.last_mut().filter(|o| o.mapping && o.key.is_none()) {
                match kind {
                    Kind::Scalar(k) => top.key = Some((k, start)),
                    Kind::Alias(_) => top.key = Some(("*".into(), start)),
                    Kind::Mapping | Kind::Sequence => {
                        in_key = 1;
                        key_node = index.nodes.len();
                        index.nodes.push(Node {
                            parent: top.node,
                            step: Step::ComplexKey,
                            key: None,
                            start,
                            end,
                            kind,
                            anchor,
                        });
                    }
                }
                continue;
            }
            let (parent, step, key) = match open.last_mut() {
                None => (0, Step::Root, None),
                Some(top) if top.mapping => {
                    let (k, at) = top.key.take().unwrap_or_default();
                    (top.node, Step::Key(k), Some(at))
                }
                Some(top) => {
                    top.next += 1;
                    (top.node, Step::Item(top.next - 1), None)
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
                parent,
                step,
                key,
                start,
                end,
                kind,
                anchor,
            });
        }
        index
    }

    /// The root node of the first document.
    pub fn root(&self) -> Option<&Node> {
        self.nodes.first()
    }

    /// The innermost node that holds character `offset` (a key belongs to its mapping), by
    /// its index.
    pub fn node_at(&self, offset: usize) -> Option<usize> {
        self.nodes
            .iter()
            .rposition(|n| n.start <= offset && (offset < n.end || offset == n.start))
    }

    /// What node `i` is; for an alias, what its anchor is on.
    pub fn kind(&self, i: usize) -> Option<&Kind> {
        let kind = &self.nodes.get(i)?.kind;
        let Kind::Alias(id) = kind else {
            return Some(kind);
        };
        self.nodes
            .get(..i)?
            .iter()
            .rfind(|n| n.anchor == *id)
            .map_or(Some(kind), |n| Some(&n.kind))
    }

    /// Key path of node `i` as in messages: `spec.source.http.url`, `spec.shards.values[2]`;
    /// empty for the root.
    pub fn path(&self, i: usize) -> String {
        let mut steps = Vec::new();
        let mut at = i;
        while let Some(n) = self.nodes.get(at) {
            steps.push(&n.step);
            if matches!(n.step, Step::Root) || n.parent >= at {
                break;
            }
            at = n.parent;
        }
        let mut path = String::new();
        for step in steps.into_iter().rev() {
            match step {
                Step::Key(k) if path.is_empty() => path.push_str(k),
                Step::Key(k) => {
                    path.push('.');
                    path.push_str(k);
                }
                Step::Item(n) => path.push_str(&format!("[{n}]")),
                Step::Root | Step::ComplexKey => {}
            }
        }
        path
    }

    /// Character offset of the deepest key of `path` found: the key itself when the path is
    /// in the document, else the deepest key on the way to it (where the missing key
    /// belongs).
    pub fn key_of(&self, path: &str) -> Option<usize> {
        // How much of `path` each node's own path spells (parents come first), and whether
        // that path is empty (so that a key under it takes no dot).
        let mut spelled: Vec<Option<(usize, bool)>> = Vec::with_capacity(self.nodes.len());
        let mut best: Option<(usize, usize)> = None;
        for (i, n) in self.nodes.iter().enumerate() {
            let parent = if matches!(n.step, Step::Root) {
                Some((0, true))
            } else {
                spelled.get(n.parent).copied().flatten()
            };
            let this = parent.and_then(|(m, empty)| {
                let rest = path.get(m..)?;
                let step = match &n.step {
                    Step::Root | Step::ComplexKey => return Some((m, empty)),
                    Step::Key(k) if empty => k.clone(),
                    Step::Key(k) => format!(".{k}"),
                    Step::Item(n) => format!("[{n}]"),
                };
                let tail = rest.strip_prefix(step.as_str())?;
                (tail.is_empty() || tail.starts_with('.') || tail.starts_with('['))
                    .then_some((m + step.len(), false))
            });
            spelled.push(this);
            if let Some((m, _)) = this {
                if best.is_none_or(|(b, _)| m > b) {
                    best = Some((m, i));
                }
            }
        }
        let node = self.nodes.get(best?.1)?;
        node.key.or(Some(node.start))
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
        assert_eq!(p.path(node), "a.d.f[1]");
        assert_eq!(*p.kind(node).unwrap(), Kind::Scalar("y".into()));
        // The key `e` belongs to the mapping that holds it.
        assert_eq!(p.path(p.node_at(text.find('e').unwrap()).unwrap()), "a.d");
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
        let key = p.node_at(2).unwrap();
        assert_eq!(p.path(key), "");
        assert_eq!(p.kind(key), Some(&Kind::Sequence));
        assert_eq!(p.key_of("y").map(|o| line_column(text, o)), Some((4, 1)));
        // An alias is what its anchor is on.
        let alias = p.node_at(text.find("*a").unwrap()).unwrap();
        assert_eq!(p.kind(alias), Some(&Kind::Scalar("1".into())));
        assert_eq!(p.key_of("x").map(|o| line_column(text, o)), Some((3, 1)));
        assert!((0..p.nodes.len()).any(|i| p.path(i) == "?"));
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

    /// Long keys nested deep over many items: nodes that each kept their whole path would
    /// take path length × items (here 30 KB × 30,000), so nodes keep only their own key.
    #[test]
    fn long_paths_are_built_on_demand() {
        let mut text = String::new();
        for level in 0..30 {
            text.push_str(&format!("{}{}:\n", "  ".repeat(level), "k".repeat(1_000)));
        }
        text.push_str(&format!(
            "{}[{}]\n",
            "  ".repeat(30),
            vec!["a"; 30_000].join(",")
        ));
        let p = Positions::of(&text);
        assert_eq!(p.nodes.len(), 30 + 1 + 30_000);
        let last = p.path(p.nodes.len() - 1);
        assert_eq!(last.len(), 30 * 1_000 + 29 + "[29999]".len());
        assert!(last.ends_with("[29999]"));
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
