//! Error messages of bounded length. Messages quote what they refuse (`invalid pipeline
//! name "…"`, the parser's `invalid type: string "…"`), and a value can be as long as the
//! document (256 KiB): one such error filled a terminal and buried the others. The middle of
//! a long message goes; its start (what was refused) and its end (why) stay.

/// Longest message or hint kept whole, in characters.
pub const MAX_MESSAGE_CHARS: usize = 400;

/// Characters kept from the start and from the end of a longer message.
const HEAD: usize = 240;
const TAIL: usize = 120;

/// `text`, or its start and end with the number of characters cut between them.
pub(crate) fn elide(text: String) -> String {
    let n = text.chars().count();
    if n <= MAX_MESSAGE_CHARS {
        return text;
    }
    let head: String = text.chars().take(HEAD).collect();
    let tail: String = text.chars().skip(n - TAIL).collect();
    format!("{head}…[{} characters cut]…{tail}", n - HEAD - TAIL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::spec::{env, BASE};
    use crate::spec::load;

    #[test]
    fn short_messages_stay_long_ones_keep_both_ends() {
        assert_eq!(elide("short".into()), "short");
        let long = format!("bad value \"{}\": expected a label", "é".repeat(1000));
        let cut = elide(long);
        assert!(cut.starts_with("bad value \"éé"), "{cut}");
        assert!(cut.ends_with("éé\": expected a label"), "{cut}");
        assert!(cut.contains("…[670 characters cut]…"), "{cut}");
        assert!(cut.chars().count() < MAX_MESSAGE_CHARS);
    }

    /// Found by `apitap-chaos fuzz --target spec`: a 9,000-character pipeline name came back
    /// whole in an 18 KB error message.
    #[test]
    fn spec_errors_quote_long_values_in_part() {
        let name = "é".repeat(9000);
        let text = BASE.replacen("name: users", &format!("name: {name}"), 1);
        let errors = load("f.yaml", &text, Some(&env())).unwrap_err();
        let message = &errors.0[0].message;
        assert!(
            message.starts_with("invalid pipeline name \"ééé"),
            "{message}"
        );
        assert!(message.contains("characters cut]"), "{message}");
        assert!(
            message.chars().count() <= MAX_MESSAGE_CHARS + 40,
            "{message}"
        );
    }
}
