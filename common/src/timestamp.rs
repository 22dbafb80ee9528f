//! RFC 3339 timestamps (`2026-01-31T12:00:00Z`, `…+02:00`) to and from Unix seconds, for
//! time-window shards and watermarks. Small on purpose: UTC output, whole seconds.
//!
//! The accepted text is checked here, byte by byte, because the format is narrower than
//! what chrono's parsers take (no week dates, no `+0200`, no missing seconds); the calendar
//! (month lengths, leap years, days since 1970) is chrono's.

use chrono::{DateTime, Datelike, NaiveDate, Timelike};

/// Unix seconds of an RFC 3339 timestamp. Never panics: the text is checked to be ASCII
/// before any byte position is used, and every number is a fixed count of digits.
#[allow(
    clippy::indexing_slicing,
    reason = "b.len() >= 20 is checked first and every fixed index is below 20; n counts bytes of frac"
)]
pub fn parse(text: &str) -> Result<i64, String> {
    let like = "write it like 2026-01-31T00:00:00Z";
    let t = text.trim();
    if let Some(c) = t.chars().find(|c| !c.is_ascii()) {
        return Err(format!(
            "{text:?} is not an RFC 3339 timestamp: it contains the non-ASCII character {c:?}; {like}"
        ));
    }
    let bad = || format!("{text:?} is not an RFC 3339 timestamp; {like}");
    let b = t.as_bytes();
    if b.len() < 20 {
        return Err(bad());
    }
    let num = |a: usize, z: usize| digits(&b[a..z]).ok_or_else(bad);
    let sep = |i: usize, set: &[u8]| set.contains(&b[i]);
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return Err(bad());
    }
    let (y, mo, d, h, mi, s) = (
        num(0, 4)?,
        num(5, 7)?,
        num(8, 10)?,
        num(11, 13)?,
        num(14, 16)?,
        num(17, 19)?,
    );
    // chrono refuses a day the month lacks (February 29th outside leap years included).
    let midnight = u32::try_from(mo)
        .ok()
        .zip(u32::try_from(d).ok())
        .and_then(|(mo, d)| NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, mo, d))
        .ok_or_else(bad)?
        .and_time(chrono::NaiveTime::MIN)
        .and_utc()
        .timestamp();
    // Second 60 (a leap second) counts as the first second of the next minute.
    if h > 23 || mi > 59 || s > 60 {
        return Err(bad());
    }
    let mut rest = &b[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return Err(bad());
        }
        rest = &frac[n..];
    }
    let offset = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), oh @ .., b':', m1, m2] if oh.len() == 2 => {
            let (oh, om) = (
                digits(oh).ok_or_else(bad)?,
                digits(&[*m1, *m2]).ok_or_else(bad)?,
            );
            if oh > 23 || om > 59 {
                return Err(bad());
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return Err(bad()),
    };
    Ok(midnight + h * 3600 + mi * 60 + s - offset)
}

/// The value of a run of ASCII digits (no sign, no spaces); at most 4 digits are passed.
fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
}

/// `YYYY-MM-DDTHH:MM:SSZ` of Unix seconds.
pub fn format(secs: i64) -> String {
    format_wide(i128::from(secs))
}

/// Seconds in 400 Gregorian years: the calendar repeats itself after them, weekdays too.
const CYCLE_SECS: i128 = 146_097 * 86_400;

/// [`format`] for any instant, also past the years chrono can hold (the mock API dates
/// record `u64::MAX` too): chrono formats the instant's place within its 400-year cycle,
/// and the cycles are added to the year. Years before 0 print with a minus sign, those
/// past 9999 with more digits; [`parse`] takes neither.
pub fn format_wide(secs: i128) -> String {
    let cycles = secs.div_euclid(CYCLE_SECS);
    let within = secs.rem_euclid(CYCLE_SECS);
    #[allow(
        clippy::expect_used,
        reason = "`within` is in 0..CYCLE_SECS: the years 1970 to 2369, which chrono holds"
    )]
    let t = i64::try_from(within)
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .expect("the first 400 years after 1970 fit chrono");
    let year = i128::from(t.year()) + cycles * 400;
    format!(
        "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_offsets() {
        assert_eq!(parse("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(parse("2026-01-01T00:01:00Z").unwrap(), 1_767_225_660);
        assert_eq!(parse("2026-01-01T02:01:00+02:00").unwrap(), 1_767_225_660);
        assert_eq!(
            parse("2024-02-29T12:00:00.250Z").unwrap(),
            parse("2024-02-29T12:00:00Z").unwrap()
        );
        for s in [0, 951_782_400, 1_767_225_660, 4_102_444_800] {
            assert_eq!(parse(&format(s)).unwrap(), s);
        }
        // A leap second is the first second of the next minute; separators `t` and ` `,
        // a lowercase `z` and surrounding blanks are accepted.
        assert_eq!(
            parse("2016-12-31T23:59:60Z").unwrap(),
            parse("2017-01-01T00:00:00Z").unwrap()
        );
        assert_eq!(parse(" 2026-01-01t00:01:00z ").unwrap(), 1_767_225_660);
        assert_eq!(parse("2026-01-01 00:01:00Z").unwrap(), 1_767_225_660);
        assert_eq!(parse("2025-12-31T23:01:00-01:00").unwrap(), 1_767_225_660);
        for bad in [
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-01-01",
            "yesterday",
            "2026-01-01T00:00:00",
            "+026-01-01T00:00:00Z",
            "2026-01-01T00:00:00+2:000",
            "2026-01-01T00:00:00+24:00",
            "2026-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:60:00Z",
            "2026-01-01T00:00:61Z",
            "2026-00-01T00:00:00Z",
            "2026-01-00T00:00:00Z",
            "2026-01-01T00:00:00+0200",
            "2026-01-01T00:00Z",
            "20260101T000000Z",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00Z[UTC]",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn leap_days_come_from_the_calendar() {
        assert!(parse("2024-02-29T00:00:00Z").is_ok());
        assert!(parse("2000-02-29T00:00:00Z").is_ok());
        assert!(parse("0000-02-29T00:00:00Z").is_ok());
        assert_eq!(
            parse("2024-03-01T00:00:00Z").unwrap() - parse("2024-02-28T00:00:00Z").unwrap(),
            2 * 86_400
        );
        assert_eq!(format(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format(-1), "1969-12-31T23:59:59Z");
        assert_eq!(format(-62_167_219_200), "0000-01-01T00:00:00Z");
        assert_eq!(format(253_402_300_799), "9999-12-31T23:59:59Z");
    }

    /// Past chrono's years the 400-year cycle carries on: the values are those of the
    /// proleptic Gregorian calendar (worked out independently with Python's big integers).
    #[test]
    fn far_instants_format_by_the_400_year_cycle() {
        let unix = |minutes: u64| 1_767_225_600 + i128::from(minutes) * 60;
        assert_eq!(format_wide(unix(4_294_967_296)), "10192-02-16T04:16:00Z");
        assert_eq!(
            format_wide(unix(1_000_000_000_000)),
            "1903350-04-24T10:40:00Z"
        );
        assert_eq!(
            format_wide(unix(u64::MAX)),
            "35073242957257-04-29T12:15:00Z"
        );
        assert!(format(i64::MIN).starts_with('-'), "{}", format(i64::MIN));
        assert!(format(i64::MAX).ends_with('Z'));
        for s in [
            -CYCLE_SECS - 1,
            -1,
            0,
            CYCLE_SECS - 1,
            CYCLE_SECS,
            7 * CYCLE_SECS + 86_399,
        ] {
            let (a, b) = (format_wide(s), format_wide(s + CYCLE_SECS));
            // One cycle later: the same date and time, 400 years on.
            let year = |t: &str| -> i128 {
                let date = t.split('T').next().unwrap();
                date.rsplitn(3, '-').last().unwrap().parse().unwrap()
            };
            assert_eq!(year(&b) - year(&a), 400, "{a} {b}");
            assert_eq!(a[a.len() - 15..], b[b.len() - 15..], "{a} {b}");
        }
    }

    #[test]
    fn non_ascii_text_is_an_error_not_a_panic() {
        for bad in [
            "202é-01-01T00:00:00Z",
            "2026-01-01T00:00:00Zé",
            "2026-01-01T00:00:00+0é:00",
            "2026-01-01T00:00:00.é",
            "é",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("non-ASCII character 'é'"), "{bad}: {e}");
        }
    }
}
