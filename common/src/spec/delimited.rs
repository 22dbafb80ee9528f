//! The one scan for references written between two markers, as `${VAR}` secrets and
//! `{{ var }}` template variables are.

/// A piece of scanned text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    /// Text outside any reference.
    Text(&'a str),
    /// What stands between an `open` and the first `close` after it.
    Reference(&'a str),
    /// An `open` without a `close` after it: the scan ends here.
    Unclosed,
}

/// `text` cut into the text between references and the references, in order.
pub(crate) fn pieces<'a>(
    text: &'a str,
    open: &'a str,
    close: &'a str,
) -> impl Iterator<Item = Piece<'a>> + 'a {
    let mut rest = Some(text);
    let mut next = None;
    std::iter::from_fn(move || {
        if let Some(piece) = next.take() {
            return Some(piece);
        }
        let r = rest.take()?;
        let Some((before, after)) = r.split_once(open) else {
            return (!r.is_empty()).then_some(Piece::Text(r));
        };
        match after.split_once(close) {
            Some((reference, tail)) => {
                next = Some(Piece::Reference(reference));
                rest = Some(tail);
            }
            None => next = Some(Piece::Unclosed),
        }
        Some(Piece::Text(before))
    })
}

/// The references of `text`, in order; an `open` without a `close` gives `None` and ends
/// them.
pub(crate) fn between<'a>(
    text: &'a str,
    open: &'a str,
    close: &'a str,
) -> impl Iterator<Item = Option<&'a str>> + 'a {
    pieces(text, open, close).filter_map(|piece| match piece {
        Piece::Text(_) => None,
        Piece::Reference(r) => Some(Some(r)),
        Piece::Unclosed => Some(None),
    })
}

#[cfg(test)]
mod tests {
    use super::{between, pieces, Piece};

    #[test]
    fn text_and_references_alternate_and_an_unclosed_one_ends_the_scan() {
        let found: Vec<_> = pieces("a ${X}${} c ${Y", "${", "}").collect();
        assert_eq!(
            found,
            [
                Piece::Text("a "),
                Piece::Reference("X"),
                Piece::Text(""),
                Piece::Reference(""),
                Piece::Text(" c "),
                Piece::Unclosed,
            ]
        );
        let found: Vec<_> = pieces("/{{ a }}/x", "{{", "}}").collect();
        assert_eq!(
            found,
            [Piece::Text("/"), Piece::Reference(" a "), Piece::Text("/x")]
        );
        assert_eq!(pieces("", "${", "}").count(), 0);
    }

    #[test]
    fn between_keeps_only_the_references() {
        let found: Vec<_> = between("a ${X} b ${} c ${Y", "${", "}").collect();
        assert_eq!(found, [Some("X"), Some(""), None]);
        assert_eq!(between("no marker", "${", "}").count(), 0);
    }
}
