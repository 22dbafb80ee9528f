//! Property tests of the small parsers that read user input outside the YAML loader: the
//! JSON path subset, RFC 3339 timestamps and cron expressions. Whatever the text, each
//! answers Ok or Err and never panics; what it accepts means what it says.

use proptest::prelude::*;
use serde_json::Value;

use crate::cron::Cron;
use crate::fuzz::json;
use crate::fuzz::jsonpath::{self as paths, step};
use crate::jsonpath::JsonPath;
use crate::timestamp;

/// Unix seconds of 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
const FIRST: i64 = -62_167_219_200;
const LAST: i64 = 253_402_300_799;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn json_paths_never_panic(text in "(?s).{0,60}", doc in "[\\[\\]{}\",:0-9a-z ]{0,40}") {
        let value: Value = serde_json::from_str(&doc).unwrap_or(Value::Null);
        if let Ok(path) = JsonPath::parse(&text) {
            let _ = path.find(&value);
        }
        let dollar = format!("${text}");
        if let Ok(path) = JsonPath::parse(&dollar) {
            let _ = path.find(&value);
        }
    }

    /// A path written from steps parses as those steps and finds the value placed there.
    #[test]
    fn json_paths_find_what_they_point_at(steps in prop::collection::vec(step(), 0..6)) {
        paths::check_steps(&steps)?;
    }

    /// Path-like text parses or fails cleanly; what parses round-trips.
    #[test]
    fn json_path_text_round_trips(text in paths::text(), doc in json::any_value()) {
        paths::check_text(&text, &doc)?;
    }

    #[test]
    fn timestamps_never_panic(text in "(?s).{0,40}") {
        if let Ok(secs) = timestamp::parse(&text) {
            // A day's worth of offset either side of the years 0000 to 9999.
            prop_assert!((FIRST - 86_400..=LAST + 86_400).contains(&secs), "{text}");
        }
    }

    /// Near-timestamps: a real one with one character replaced.
    #[test]
    fn damaged_timestamps_never_panic(
        secs in FIRST..=LAST,
        at in 0..20usize,
        c in prop::sample::select(vec!['é', '+', '-', ' ', 'T', ':', '.', 'Z', '9', '\u{10FFFF}']),
    ) {
        let mut chars: Vec<char> = timestamp::format(secs).chars().collect();
        chars[at] = c;
        let text: String = chars.into_iter().collect();
        let result = timestamp::parse(&text);
        if !c.is_ascii() {
            prop_assert!(result.unwrap_err().contains("non-ASCII"), "{}", text);
        }
    }

    #[test]
    fn timestamps_round_trip(secs in FIRST..=LAST) {
        prop_assert_eq!(timestamp::parse(&timestamp::format(secs)), Ok(secs));
    }

    #[test]
    fn cron_parsing_never_panics(text in "[0-9*/,\\- a-zA-Z@#?+]{0,30}") {
        if let Ok(cron) = Cron::parse(&text) {
            let _ = cron.next_after(1_767_225_600);
        }
    }

    /// `ever_fires` (a calendar check) agrees with croner searching eight years ahead from
    /// 2026, which holds every date a cron can name, February 29th 2028 included.
    #[test]
    fn ever_fires_agrees_with_the_search(
        fields in prop::collection::vec("(\\*|[0-9]{1,2})(-[0-9]{1,2})?(/[1-9])?(,[0-9]{1,2})?", 5)
    ) {
        let text = fields.join(" ");
        if let Ok(cron) = Cron::parse(&text) {
            let from = 1_767_225_600;
            let found = cron.search_after(from).is_some_and(|t| t < from + 8 * 366 * 86_400);
            prop_assert_eq!(cron.ever_fires(), found, "{}", text);
        }
    }
}
