//! The `link` target: the worker's RFC 8288 `Link` header parser
//! (`apitap_worker::fetch::parse_link_header`), which reads what an upstream API sends.
//!
//! Two kinds of input: headers written from links (the oracle: parsing gives back exactly
//! those links, normalised as the parser documents: targets and bare values trimmed, names
//! lower-cased, quoted values unescaped), and hostile text made of the header's punctuation
//! and odd characters (the parser must not panic and may only return targets that appear in
//! the text, at most one per `<`).

use apitap_common::fuzz::hostile;
use apitap_worker::fetch::{next_link, parse_link_header, Link};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// A parameter value as written.
#[derive(Debug, Clone)]
pub enum ParamValue {
    /// `name` alone.
    Bare,
    /// `name=token` (no `;` or `,`, does not start with `"`).
    Token(String),
    /// `name="text"` with `\` and `"` escaped.
    Quoted(String),
}

/// One link as written, with the whitespace around its separators.
#[derive(Debug, Clone)]
pub struct WrittenLink {
    pub target: String,
    pub params: Vec<(String, ParamValue)>,
    pub space: String,
}

/// The input of one case.
#[derive(Debug, Clone)]
pub enum LinkInput {
    Written(Vec<WrittenLink>),
    Text(String),
}

fn without(chars: &'static [char], max: usize) -> impl Strategy<Value = String> {
    hostile::string(max).prop_map(move |s| s.chars().filter(|c| !chars.contains(c)).collect())
}

fn param() -> impl Strategy<Value = (String, ParamValue)> {
    let name = prop_oneof![
        3 => prop::sample::select(&["rel", "REL", "title", "type", "anchor"][..])
            .prop_map(str::to_string),
        1 => without(&['=', ';', ','], 8)
            .prop_map(|s| s.chars().filter(|c| !c.is_whitespace()).collect()),
    ]
    .prop_filter("a name", |n: &String| !n.is_empty());
    let value = prop_oneof![
        1 => Just(ParamValue::Bare),
        2 => prop::sample::select(&["next", "prev", "first last", "NEXT", "next\tlast"][..])
            .prop_map(|s| ParamValue::Quoted(s.to_string())),
        2 => without(&[';', ','], 16)
            .prop_filter("not a quoted string", |t| !t.trim_start().starts_with('"'))
            .prop_map(ParamValue::Token),
        2 => hostile::string(16).prop_map(ParamValue::Quoted),
    ];
    (name, value)
}

fn written_link() -> impl Strategy<Value = WrittenLink> {
    let target = prop_oneof![
        2 => "https://api\\.example\\.com/[a-z0-9/?=&,;%]{0,30}",
        1 => "/[a-z0-9/?=&]{0,20}",
        1 => without(&['>'], 40),
    ];
    let space = prop::sample::select(&["", " ", "\t", "  ", "\u{a0}"][..]).prop_map(str::to_string);
    (target, prop::collection::vec(param(), 0..4), space).prop_map(|(target, params, space)| {
        WrittenLink {
            target,
            params,
            space,
        }
    })
}

/// Pieces of hostile header text.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(
            &["<", ">", ",", ";", "=", "\"", "\\", " ", "rel", "next", "rel=next", "rel=\"next\"",
              "<https://a.example/x>", "; rel=\"next\"", "\0", "é", "\u{a0}"][..]
        )
        .prop_map(str::to_string),
        1 => hostile::string(8),
    ]
}

/// Headers written from links, or hostile text.
pub fn input() -> impl Strategy<Value = LinkInput> {
    prop_oneof![
        1 => prop::collection::vec(written_link(), 0..5).prop_map(LinkInput::Written),
        1 => prop::collection::vec(piece(), 0..40).prop_map(|p| LinkInput::Text(p.concat())),
    ]
}

/// The header text of `links`.
pub fn write(links: &[WrittenLink]) -> String {
    let mut out = Vec::new();
    for l in links {
        let s = &l.space;
        let mut text = format!("<{}>", l.target);
        for (name, value) in &l.params {
            match value {
                ParamValue::Bare => text.push_str(&format!("{s};{s}{name}")),
                ParamValue::Token(t) => text.push_str(&format!("{s};{s}{name}{s}={s}{t}")),
                ParamValue::Quoted(q) => {
                    let escaped = q.replace('\\', "\\\\").replace('"', "\\\"");
                    text.push_str(&format!("{s};{s}{name}={s}\"{escaped}\""));
                }
            }
        }
        out.push(text);
    }
    out.join(",")
}

/// What the parser must return for `links`.
pub fn expected(links: &[WrittenLink]) -> Vec<Link> {
    links
        .iter()
        .map(|l| Link {
            target: l.target.trim().to_string(),
            params: l
                .params
                .iter()
                .map(|(name, value)| {
                    let value = match value {
                        ParamValue::Bare => None,
                        ParamValue::Token(t) => Some(t.trim().to_string()),
                        ParamValue::Quoted(q) => Some(q.clone()),
                    };
                    (name.to_ascii_lowercase(), value)
                })
                .collect(),
        })
        .collect()
}

/// The property of one case.
pub fn check(input: LinkInput) -> Result<(), TestCaseError> {
    match input {
        LinkInput::Written(links) => {
            let header = write(&links);
            let want = expected(&links);
            let got = parse_link_header(&header);
            prop_assert_eq!(&got, &want, "header {:?}", header);
            let next = want
                .iter()
                .find(|l| l.rels().iter().any(|r| r == "next"))
                .map(|l| l.target.clone())
                .filter(|t| !t.is_empty());
            prop_assert_eq!(next_link(&header), next, "header {:?}", header);
        }
        LinkInput::Text(header) => {
            let links = parse_link_header(&header);
            prop_assert!(links.len() <= header.matches('<').count());
            for l in &links {
                prop_assert!(
                    header.contains(&l.target),
                    "{:?} not in {:?}",
                    l.target,
                    header
                );
                prop_assert!(!l.target.contains('>'));
            }
            if let Some(next) = next_link(&header) {
                prop_assert!(links.iter().any(|l| l.target == next));
            }
        }
    }
    Ok(())
}
