//! RFC 3339 timestamps (`2026-01-31T12:00:00Z`, `…+02:00`) to and from Unix seconds, for
//! time-window shards. Small on purpose: UTC output, whole seconds.

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
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 60 {
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
    Ok(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset)
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
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
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
        for bad in [
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-01-01",
            "yesterday",
            "2026-01-01T00:00:00",
            "+026-01-01T00:00:00Z",
            "2026-01-01T00:00:00+2:000",
            "2026-01-01T00:00:00+24:00",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
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
