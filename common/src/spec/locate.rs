//! Finds where a key path sits in YAML text, so that validation errors (found on typed
//! values, which carry no positions) can still point at a line and column.

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
    use super::locate;

    #[test]
    fn finds_block_and_flow_keys() {
        let text = "a:\n  b:\n    c: 1\n  d: { e: 2, f: 3 }\n";
        assert_eq!(locate(text, &["a", "b", "c"]), Some((3, 5)));
        assert_eq!(locate(text, &["a", "d", "f"]), Some((4, 14)));
        assert_eq!(locate(text, &["a", "x"]), Some((1, 1)));
    }
}
