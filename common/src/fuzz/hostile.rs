//! Text and numbers chosen to break parsers: control characters and NUL, characters outside
//! ASCII (multi-byte, invisible, right-to-left, the last code point), long runs, and numbers
//! at and beyond the limits of 64-bit integers and floats.

use proptest::prelude::*;

/// Characters that are unusual in one way or another; mixed with any `char` by [`char_`].
const ODD: &[char] = &[
    '\0',
    '\u{1}',
    '\u{7f}',
    '\t',
    '\r',
    '\n',
    ' ',
    '\u{a0}',   // no-break space (Unicode whitespace)
    '\u{85}',   // next line (Unicode whitespace)
    '\u{2028}', // line separator
    '\u{200b}', // zero-width space
    '\u{202e}', // right-to-left override
    '\u{feff}', // byte order mark
    'é',
    'ß',
    '日',
    '🦀',
    '\u{10ffff}',
    '"',
    '\'',
    '\\',
    '<',
    '>',
    ',',
    ';',
    '=',
    '.',
    '[',
    ']',
    '$',
    '*',
    '&',
    '#',
    ':',
    '{',
    '}',
];

/// One character: mostly printable ASCII, often an odd one, sometimes any code point.
pub fn char_() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range(' ', '~'),
        3 => prop::sample::select(ODD),
        1 => any::<char>(),
    ]
}

/// A string of up to `max` hostile characters; one case in eight is instead one character
/// repeated up to 10,000 times (long values, long keys).
pub fn string(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        7 => prop::collection::vec(char_(), 0..=max).prop_map(|c| c.into_iter().collect()),
        1 => (char_(), 0..10_000usize).prop_map(|(c, n)| std::iter::repeat_n(c, n).collect()),
    ]
}

/// Numbers as text, at and past the limits of the types that read them.
pub const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "1e308",
    "1.7976931348623157e308",
    "-1.7976931348623157e308",
    "5e-324",
    "1e-400",
    "1e400",
    "0.1",
    "123456789012345678901234567890.5",
    "1E+2",
];

/// A number as text: one of [`NUMBERS`] or any `i64`, `u64` or finite `f64`.
pub fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(NUMBERS).prop_map(str::to_string),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| f.to_string()),
    ]
}
