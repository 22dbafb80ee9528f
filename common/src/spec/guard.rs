//! A bounded pre-pass over a YAML document, run before the document is turned into a
//! `serde_yaml::Value` or a [`Pipeline`](super::Pipeline).
//!
//! serde_yaml (0.9) keeps the events of a document and replays the anchored events each
//! time an alias refers to them. An anchor of 20,000 items aliased 20,000 times is about
//! 150 KB of text but 400 million nodes once deserialized, and serde_yaml's own guard
//! (a jump count of 100 per event) lets that through. It exposes no event API, so aliases
//! cannot be rejected by looking at events, and a text scan for `&` and `*` would misread
//! block scalars, quoted strings and SQL (`SELECT *`).
//!
//! So the pre-pass deserializes the document into nothing, with a seed that counts every
//! node it is handed (aliases expanded, as every later pass sees them) and how deep it is,
//! and stops with an error as soon as either goes over its limit. Its cost is bounded by
//! the limits, not by the expansion. Anchors and aliases that stay within the budget keep
//! working. Anything else the pre-pass trips on (bad syntax, two documents) is left to the
//! real parse, which reports it as before.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};

use super::locate::yaml_position;
use crate::limits::{LimitError, Limits};

/// Where a limit was crossed: the error and the position (line, column) serde_yaml gave.
pub(crate) struct Crossed {
    pub error: LimitError,
    pub position: Option<(usize, usize)>,
}

/// Checks node count and nesting depth of `text` against `limits`.
pub(crate) fn check(text: &str, limits: &Limits) -> Result<(), Crossed> {
    let state = Budget {
        nodes: Cell::new(0),
        crossed: Cell::new(None),
        limits,
    };
    let result = Node {
        budget: &state,
        depth: 0,
    }
    .deserialize(serde_yaml::Deserializer::from_str(text));
    match (result, state.crossed.take()) {
        (Err(e), Some(error)) => Err(Crossed {
            error,
            position: yaml_position(text, &e),
        }),
        // serde_yaml's own guard, which deeply nested aliases reach before the node budget.
        (Err(e), None) if e.to_string().starts_with("repetition limit exceeded") => {
            Err(Crossed {
                error: LimitError::new(
                    "yaml_alias_repetitions",
                    "the document's aliases (*name) repeat their anchors more often than the YAML parser allows",
                    "100 repetitions per YAML event of the document",
                    ALIAS_FIX,
                ),
                position: None,
            })
        }
        _ => Ok(()),
    }
}

const ALIAS_FIX: &str = "write the values out instead of repeating anchors (&name) through aliases (*name), and keep the spec small";

struct Budget<'a> {
    nodes: Cell<usize>,
    /// Set when a limit is crossed, so that the caller can tell that error from others.
    crossed: Cell<Option<LimitError>>,
    limits: &'a Limits,
}

/// The seed for one node at `depth` (0 for the document's root).
#[derive(Clone, Copy)]
struct Node<'a> {
    budget: &'a Budget<'a>,
    depth: usize,
}

impl Node<'_> {
    /// Counts this node; an error once a limit is crossed.
    fn enter<E: de::Error>(self) -> Result<(), E> {
        let b = self.budget;
        let nodes = b.nodes.get() + 1;
        b.nodes.set(nodes);
        let crossed = if self.depth > b.limits.max_nesting_depth {
            Some(LimitError::new(
                "max_nesting_depth",
                format!("mappings and lists are nested {} deep here", self.depth),
                format!("{} levels", b.limits.max_nesting_depth),
                "a pipeline nests only a few levels; remove the extra nesting",
            ))
        } else if nodes > b.limits.max_yaml_nodes {
            Some(LimitError::new(
                "max_yaml_nodes",
                format!("the document holds more than {} YAML nodes once its aliases (*name) are expanded", b.limits.max_yaml_nodes),
                format!("{} nodes", b.limits.max_yaml_nodes),
                ALIAS_FIX,
            ))
        } else {
            None
        };
        match crossed {
            Some(error) => {
                let message = error.message();
                b.crossed.set(Some(error));
                Err(E::custom(message))
            }
            None => Ok(()),
        }
    }

    fn child(self) -> Self {
        Self {
            budget: self.budget,
            depth: self.depth + 1,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.enter()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.enter()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.enter()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.enter()
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.enter()
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.enter()
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.enter()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.enter::<A::Error>()?;
        while seq.next_element_seed(self.child())?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.enter::<A::Error>()?;
        while map.next_key_seed(self.child())?.is_some() {
            map.next_value_seed(self.child())?;
        }
        Ok(())
    }

    /// A tagged node (`!tag value`).
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        self.enter::<A::Error>()?;
        let ((), variant) = data.variant_seed(self.child())?;
        de::VariantAccess::newtype_variant_seed(variant, self.child())
    }
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::limits::Limits;

    /// `levels` anchors, each a list of `width` aliases of the one before: width^levels
    /// nodes from a few hundred bytes.
    fn laughs(levels: usize, width: usize) -> String {
        let mut text = "a0: &a0 [x]\n".to_string();
        for i in 1..=levels {
            let items = vec![format!("*a{}", i - 1); width].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
        }
        text
    }

    #[test]
    fn a_deep_alias_bomb_stops_at_the_repetition_limit() {
        let text = laughs(9, 10);
        assert!(text.len() < 1000);
        let crossed = check(&text, &Limits::default()).expect_err("rejected");
        assert_eq!(crossed.error.limit, "yaml_alias_repetitions");
    }

    #[test]
    fn a_wide_alias_bomb_stops_at_the_node_budget() {
        // One anchor of 2,000 items aliased 2,000 times: 4 million nodes from 14 KB.
        let items = vec!["a"; 2_000].join(", ");
        let aliases = vec!["*x"; 2_000].join(", ");
        let text = format!("x: &x [{items}]\ny: [{aliases}]\n");
        let crossed = check(&text, &Limits::default()).expect_err("rejected");
        assert_eq!(crossed.error.limit, "max_yaml_nodes");
        // Inside the anchored list that the aliases repeat.
        assert_eq!(crossed.position.map(|(line, _)| line), Some(1));
    }

    #[test]
    fn aliases_within_the_budget_and_plain_documents_pass() {
        assert!(check(&laughs(2, 10), &Limits::default()).is_ok());
        assert!(check("a: !tag { b: [1, 2.5, true, ~, x] }\n", &Limits::default()).is_ok());
        let limits = Limits {
            max_yaml_nodes: 5,
            ..Limits::default()
        };
        assert!(check("[1, 2, 3, 4]", &limits).is_ok());
        assert!(check("[1, 2, 3, 4, 5]", &limits).is_err());
    }

    #[test]
    fn deep_nesting_is_rejected_before_serde_yaml_recursion_limit() {
        let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
        let crossed = check(&deep, &Limits::default()).expect_err("rejected");
        assert_eq!(crossed.error.limit, "max_nesting_depth");
        let fine = format!("{}1{}", "[".repeat(30), "]".repeat(30));
        assert!(check(&fine, &Limits::default()).is_ok());
    }

    #[test]
    fn other_yaml_errors_are_left_to_the_parser() {
        assert!(check("a: [1, 2", &Limits::default()).is_ok());
        assert!(check("a: 1\n---\nb: 2\n", &Limits::default()).is_ok());
    }
}
