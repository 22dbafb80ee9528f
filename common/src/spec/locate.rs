//! Finds where a key path sits in YAML text, so that validation errors (found on typed
//! values, which carry no positions) can still point at a line and column; and turns
//! serde_yaml's positions into the lines an editor shows.

/// Line and column (1-based) of a serde_yaml error, counted as an editor and the rest of the
/// loader (`str::lines`) count them: lines end at `\n`. serde_yaml's own line numbers follow
/// YAML 1.1, where U+0085, U+2028, U+2029 and a lone `\r` also end a line, so a file holding
/// one of them got errors pointing at lines past its end. Its byte index is exact.
pub(crate) fn yaml_position(text: &str, e: &serde_yaml::Error) -> Option<(usize, usize)> {
    e.location().map(|l| line_column(text, l.index()))
}

/// Line and column (1-based, the column in characters) of byte `index` of `text`.
fn line_column(text: &str, index: usize) -> (usize, usize) {
    let mut index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    let before = &text[..index];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    (line, before[line_start..].chars().count() + 1)
}

/// Line and column (1-based) of the deepest key of `path` found in `text`.
#[allow(
    clippy::indexing_slicing,
    reason = "depth counts a zip over path, so depth <= path.len(); col and off come from find on that line"
)]
pub(crate) fn locate(text: &str, path: &[&str]) -> Option<(usize, usize)> {
    // Stack of (indent, key) for block mappings seen so far.
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut best: Option<(usize, usize, usize)> = None; // (depth, line, col)
    for (lineno, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let body = trimmed.trim_start_matches("- ");
        let indent = indent + (trimmed.len() - body.len());
        let Some(colon) = body.find(':') else {
            continue;
        };
        let key = body[..colon].trim().trim_matches('"').trim_matches('\'');
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key.to_string()));
        let depth = stack
            .iter()
            .zip(path.iter())
            .take_while(|((_, k), p)| k == *p)
            .count();
        if depth == stack.len() && best.is_none_or(|(d, _, _)| depth > d) {
            best = Some((depth, lineno + 1, indent + 1));
            // A flow mapping on this line may hold the remaining keys.
            let mut col = indent + colon;
            let mut found = depth;
            for seg in &path[depth..] {
                let needle = format!("{seg}:");
                match line[col..].find(&needle) {
                    Some(off) => {
                        col += off;
                        found += 1;
                    }
                    None => break,
                }
            }
            if found > depth {
                best = Some((found, lineno + 1, col + 1));
            }
            if best.is_some_and(|(d, _, _)| d == path.len()) {
                break;
            }
        }
    }
    best.map(|(_, l, c)| (l, c))
}

#[cfg(test)]
mod tests {
    use super::{line_column, locate, yaml_position};

    fn position(text: &str) -> Option<(usize, usize)> {
        let e = serde_yaml::from_str::<serde_yaml::Value>(text).unwrap_err();
        yaml_position(text, &e)
    }

    #[test]
    fn positions_count_newlines_only() {
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("a\u{85}b\u{2028}c\rd\ne", 12), (2, 2));
        assert_eq!(line_column("é", 1), (1, 1));
        assert_eq!(line_column("a", 99), (1, 2));
        // Where serde_yaml agrees (no unusual breaks), the positions are its own.
        let text = "a: 1\nb: [1, 2\n";
        let e = serde_yaml::from_str::<serde_yaml::Value>(text).unwrap_err();
        let own = e.location().map(|l| (l.line(), l.column()));
        assert_eq!(yaml_position(text, &e), own);
    }

    /// Found by `apitap-chaos fuzz --target spec`: U+0085 in a quoted value moved every
    /// later error line down by one, past the end of the file.
    #[test]
    fn unusual_line_breaks_do_not_shift_lines() {
        assert_eq!(position("a: 1\nb: 'x\u{85}\u{85}\nc: 2\n"), Some((4, 1)));
        assert_eq!(
            position("a: 'x\u{2028}\u{2029}\r'\nb: c: d\n"),
            Some((2, 5))
        );
    }

    #[test]
    fn finds_block_and_flow_keys() {
        let text = "a:\n  b:\n    c: 1\n  d: { e: 2, f: 3 }\n";
        assert_eq!(locate(text, &["a", "b", "c"]), Some((3, 5)));
        assert_eq!(locate(text, &["a", "d", "f"]), Some((4, 14)));
        assert_eq!(locate(text, &["a", "x"]), Some((1, 1)));
    }
}
