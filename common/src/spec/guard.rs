//! The YAML parser's options, with the limits of a document mapped onto its budget, and a
//! first pass that reads the whole document before it is turned into a
//! [`Pipeline`](super::Pipeline).
//!
//! serde-saphyr counts every node it hands out, aliases (`*name`) expanded, and stops as
//! soon as a budget is crossed, with the position where it was; so each limit costs what the
//! limit allows, not what an alias bomb would expand to. The budgets are set from
//! [`Limits`]: `max_nesting_depth` is its depth, `max_yaml_nodes` its node count (and the
//! counts that cannot be crossed without crossing it: events, anchors, aliases, replayed
//! events), `max_yaml_scalar_bytes` the bytes of scalar text. Its own heuristic on the ratio
//! of aliases to anchors is off: the node count bounds what aliases can do.
//!
//! The typed pass stops at the first value of the wrong type (an unknown key at the top,
//! say) and skips what it does not need, so on its own it could report a type error for a
//! document that is not valid YAML, or never expand the alias bomb behind that key. The
//! [`walk`] reads every node first, aliases expanded, so that syntax errors, duplicate keys,
//! a second document and crossed limits are reported before any type error, as before.

use serde::de::IgnoredAny;

use crate::limits::Limits;

/// The options every pass parses with.
pub(crate) fn options(limits: &Limits) -> serde_saphyr::Options {
    let nodes = limits.max_yaml_nodes;
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: limits.max_nesting_depth,
            max_nodes: nodes,
            // A node is one or two events (start and end); the stream and the document add
            // four. Each alias and each anchor adds at least one node.
            max_events: nodes.saturating_mul(2).saturating_add(4),
            max_aliases: nodes,
            max_anchors: nodes,
            max_recorded_anchor_events: nodes.saturating_mul(2),
            max_total_scalar_bytes: limits.max_yaml_scalar_bytes,
            max_recorded_anchor_bytes: limits.max_yaml_scalar_bytes,
            enforce_alias_anchor_ratio: false,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: nodes.saturating_mul(2),
            max_replay_stack_depth: limits.max_nesting_depth,
        },
        // YAML 1.2 booleans only: `yes`, `no`, `on` and `off` are strings, as before.
        strict_booleans: true,
        // `<<` is an ordinary key, as it was: merge keys are YAML 1.1 and the spec does not
        // document them.
        merge_keys: serde_saphyr::MergeKeyPolicy::AsOrdinary,
        // Messages are rendered by the loader; no snippet of the text in them.
        with_snippet: false,
    }
}

/// Reads every node of `text` under the budgets of `limits`. serde's `IgnoredAny` visits
/// every value, and serde-saphyr reads an ignored value as any other (its
/// `deserialize_ignored_any` is `deserialize_any`): every node, aliases expanded, is counted.
pub(crate) fn walk(text: &str, limits: &Limits) -> Result<(), serde_saphyr::Error> {
    serde_saphyr::from_str_with_options::<IgnoredAny>(text, options(limits)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::walk;
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

    fn breach(text: &str, limits: &Limits) -> String {
        format!("{:?}", walk(text, limits).expect_err("rejected"))
    }

    #[test]
    fn a_deep_alias_bomb_stops_at_the_node_budget() {
        let text = laughs(9, 10);
        assert!(text.len() < 1000);
        let started = std::time::Instant::now();
        let e = breach(&text, &Limits::default());
        assert!(e.contains("Nodes"), "{e}");
        // The budget stops it after 50,000 nodes, not 10^9.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn a_wide_alias_bomb_stops_at_the_node_budget() {
        // One anchor of 2,000 items aliased 2,000 times: 4 million nodes from 14 KB.
        let items = vec!["a"; 2_000].join(", ");
        let aliases = vec!["*x"; 2_000].join(", ");
        let text = format!("x: &x [{items}]\ny: [{aliases}]\n");
        assert!(breach(&text, &Limits::default()).contains("Nodes"));
    }

    #[test]
    fn aliases_within_the_budget_and_plain_documents_pass() {
        assert!(walk(&laughs(2, 10), &Limits::default()).is_ok());
        assert!(walk("a: !tag { b: [1, 2.5, true, ~, x] }\n", &Limits::default()).is_ok());
        let limits = Limits {
            max_yaml_nodes: 5,
            ..Limits::default()
        };
        assert!(walk("[1, 2, 3, 4]", &limits).is_ok());
        assert!(breach("[1, 2, 3, 4, 5]", &limits).contains("Nodes"));
    }

    #[test]
    fn deep_nesting_is_rejected_at_the_depth_budget() {
        let limits = Limits::default();
        let deep = format!("{}1{}", "[".repeat(33), "]".repeat(33));
        assert!(breach(&deep, &limits).contains("Depth"));
        let fine = format!("{}1{}", "[".repeat(32), "]".repeat(32));
        assert!(walk(&fine, &limits).is_ok());
        // Aliases count at the depth they are used, not where their anchor is.
        let nested = format!("a: &a {}1{}\nb: [[*a]]\n", "[".repeat(31), "]".repeat(31));
        assert!(breach(&nested, &limits).contains("Depth"));
    }

    #[test]
    fn long_scalars_repeated_by_aliases_stop_at_the_scalar_budget() {
        // 200 aliases of 10,000 bytes: 2 MB of strings from 11 KB of text.
        let text = |aliases: usize| {
            let aliases = vec!["*a"; aliases].join(", ");
            format!("a: &a {}\nb: [{aliases}]\n", "x".repeat(10_000))
        };
        assert!(breach(&text(200), &Limits::default()).contains("ScalarBytes"));
        assert!(walk(&text(2), &Limits::default()).is_ok());
    }

    #[test]
    fn syntax_errors_duplicates_and_second_documents_are_found() {
        let limits = Limits::default();
        assert!(walk("a: [1, 2", &limits).is_err());
        assert!(walk("a: 1\na: 2\n", &limits).is_err());
        assert!(walk("a: 1\n---\nb: 2\n", &limits).is_err());
    }
}
