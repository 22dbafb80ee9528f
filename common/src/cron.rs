//! Cron schedules, in UTC (a spec has no time zone), parsed and searched by the `croner`
//! crate.
//!
//! Accepted: five fields, `minute hour day-of-month month day-of-week`, each `*`, `N`,
//! `A-B`, `*/S`, `A-B/S`, `N/S` (from `N` to the field's maximum) or a comma list of them;
//! month names `JAN`–`DEC` and day names `SUN`–`SAT` in their own fields, in any case and in
//! ranges (`MON-FRI`); day of week 0–7, 0 and 7 both Sunday; and the shortcuts `@yearly`,
//! `@annually`, `@monthly`, `@weekly`, `@daily`, `@hourly`. As in Vixie cron, when both day
//! fields are restricted a day matching either fires.
//!
//! Refused, with a message naming the field: a sixth field (seconds or a year: the
//! scheduler starts runs, and `every` serves intervals under a minute), croner's extensions
//! `L`, `W`, `#`, `?` and `+` (so that [`Cron::ever_fires`] stays an exact calendar check),
//! names outside their field (croner would read `MON` in the hour field as 1), and
//! non-ASCII text.

use chrono::{Datelike, NaiveDate};
use croner::parser::{CronParser, Seconds, Year};
use croner::Weekday;

/// `(name, lowest, highest, names accepted)` of the five fields, in order.
const FIELDS: [(&str, u32, u32, &[&str]); 5] = [
    ("minute", 0, 59, &[]),
    ("hour", 0, 23, &[]),
    ("day of month", 1, 31, &[]),
    ("month", 1, 12, &MONTHS),
    ("day of week", 0, 7, &DAYS),
];

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const SHORTCUTS: [&str; 6] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@hourly",
];

/// croner's pattern characters that this schedule format does not take.
const EXTENSIONS: [char; 5] = ['L', 'W', '#', '?', '+'];

const EXAMPLE: &str = "e.g. \"0 */6 * * *\"";

/// A leap year: every date a cron can name, February 29th included, occurs in it.
const LEAP_YEAR: i32 = 2028;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    inner: croner::Cron,
    /// [`Cron::ever_fires`], worked out once: the scheduler asks on every tick.
    fires: bool,
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        // `N/S`, from N to the field's maximum, was always accepted here (Vixie cron takes
        // it too); croner calls it sloppy.
        .sloppy_ranges(true)
        .build()
}

/// croner's message as a clause: `Range out of bounds.` → `range out of bounds`.
fn detail(e: &croner::errors::CronError) -> String {
    let text = match e {
        croner::errors::CronError::ComponentError(m)
        | croner::errors::CronError::IllegalCharacters(m)
        | croner::errors::CronError::InvalidPattern(m) => m.clone(),
        other => other.to_string(),
    };
    let text = text.trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Checks field `index` on its own, so that the error names it.
fn check_field(index: usize, text: &str) -> Result<(), String> {
    let Some(&(name, lo, hi, names)) = FIELDS.get(index) else {
        return Err(format!("a cron schedule has no field {}", index + 1));
    };
    let upper = text.to_ascii_uppercase();
    let without_names = names.iter().fold(upper, |rest, n| rest.replace(n, "0"));
    let how = {
        let names = match (names.first(), names.last()) {
            (Some(a), Some(b)) => format!(" or a name {a}-{b}"),
            _ => String::new(),
        };
        format!(
            "write the {name} as a number from {lo} to {hi}{names}, a range A-B with A <= B, a step */S, A-B/S or A/S with S >= 1, or a comma list of these"
        )
    };
    if let Some(c) = without_names.chars().find(|c| EXTENSIONS.contains(c)) {
        return Err(format!(
            "{name}: {text:?} uses {c:?}, one of cron's extensions L, W, #, ? and +, which schedules do not take; {how}"
        ));
    }
    if without_names.chars().any(|c| c.is_ascii_alphabetic()) {
        let what = if names.is_empty() {
            "names are only for the month (JAN-DEC) and the day of week (SUN-SAT)".to_string()
        } else {
            format!("{text:?} is not a {name} name")
        };
        return Err(format!("{name}: {what}; {how}"));
    }
    let mut alone = ["*"; 5];
    if let Some(slot) = alone.get_mut(index) {
        *slot = text;
    }
    parser()
        .parse(&alone.join(" "))
        .map(|_| ())
        .map_err(|e| format!("{name}: {text:?} is not valid ({}); {how}", detail(&e)))
}

impl Cron {
    /// Parses a schedule; the error says which field is wrong and how to write it.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(c) = text.chars().find(|c| !c.is_ascii()) {
            return Err(format!(
                "the cron schedule contains the non-ASCII character {c:?}; write it in ASCII, {EXAMPLE}"
            ));
        }
        let t = text.trim();
        if t.contains('@') {
            if !SHORTCUTS.iter().any(|s| s.eq_ignore_ascii_case(t)) {
                return Err(format!(
                    "{t:?} is not a cron shortcut; the shortcuts are {}, or write 5 fields, {EXAMPLE}",
                    SHORTCUTS.join(", ")
                ));
            }
        } else {
            let fields: Vec<&str> = t.split_whitespace().collect();
            if fields.len() != FIELDS.len() {
                return Err(format!(
                    "{text:?} has {} fields; a cron schedule has 5: minute hour day-of-month month day-of-week, {EXAMPLE}",
                    fields.len()
                ));
            }
            for (i, f) in fields.iter().enumerate() {
                check_field(i, f)?;
            }
        }
        let inner = parser()
            .parse(t)
            .map_err(|e| format!("{t:?} is not a cron schedule ({})", detail(&e)))?;
        let fires = fires(&inner.pattern);
        Ok(Self { inner, fires })
    }

    /// Whether the schedule fires on any date. Hours and minutes always allow something,
    /// and a restricted day of week matches some day of every month, so only a day of
    /// month that no allowed month has (`0 0 30 2 *`, day 31 in months of 30 days) rules
    /// out every date. Exact for the forms [`Cron::parse`] accepts (L, W and # are
    /// refused), and needs no clock: croner is asked about each day of a leap year.
    pub fn ever_fires(&self) -> bool {
        self.fires
    }

    /// The first fire time strictly after `after` (Unix seconds), or None when the
    /// schedule never fires (checked first, so that no search runs on for centuries) or
    /// the time is past what croner searches (the year 5000).
    pub fn next_after(&self, after: i64) -> Option<i64> {
        if !self.fires {
            return None;
        }
        self.search_after(after)
    }

    /// croner's search, without the [`Cron::ever_fires`] guard: for a schedule that never
    /// fires it runs to the year 5000 (tests compare the two).
    pub(crate) fn search_after(&self, after: i64) -> Option<i64> {
        let from = chrono::DateTime::from_timestamp(after, 0)?;
        self.inner
            .find_next_occurrence(&from, false)
            .ok()
            .map(|t| t.timestamp())
    }
}

/// Most (schedule, instant) answers [`next_fire`] keeps; the memo is emptied when full.
pub const MEMO_ENTRIES: usize = 16_384;

type Memo = std::sync::Mutex<std::collections::HashMap<(String, i64), Option<i64>>>;

fn memo() -> &'static Memo {
    static MEMO: std::sync::OnceLock<Memo> = std::sync::OnceLock::new();
    MEMO.get_or_init(Default::default)
}

/// `Cron::parse(text)?.next_after(after)`, remembered: the scheduler asks about every
/// scheduled pipeline on every tick, with the same `after` until the pipeline runs again,
/// and a parse and search cost ~90 µs (release build) where a lookup costs well under 1 µs.
/// A schedule that does not parse has no next fire time.
pub fn next_fire(text: &str, after: i64) -> Option<i64> {
    let key = (text.to_string(), after);
    let lock = || {
        memo()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    if let Some(hit) = lock().get(&key) {
        return *hit;
    }
    let next = Cron::parse(text).ok().and_then(|c| c.next_after(after));
    let mut m = lock();
    if m.len() >= MEMO_ENTRIES {
        m.clear();
    }
    m.insert(key, next);
    next
}

#[cfg(test)]
fn memo_len() -> usize {
    memo().lock().map(|m| m.len()).unwrap_or(0)
}

/// See [`Cron::ever_fires`].
fn fires(p: &croner::CronPattern) -> bool {
    if !p.is_dow_wildcard() {
        return true;
    }
    let mut days = NaiveDate::from_ymd_opt(LEAP_YEAR, 1, 1)
        .into_iter()
        .flat_map(|first| first.iter_days())
        .take_while(|d| d.year() == LEAP_YEAR);
    days.any(|d| {
        let weekday = Weekday::from_days_from_sunday(d.weekday().num_days_from_sunday());
        p.month_match(d.month()).unwrap_or(false)
            && p.day_match(LEAP_YEAR, d.month(), d.day(), weekday)
                .unwrap_or(false)
    })
}

#[cfg(test)]
#[path = "cron_tests.rs"]
mod tests;
