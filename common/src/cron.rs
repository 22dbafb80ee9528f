//! Five-field cron schedules (`minute hour day-of-month month day-of-week`, UTC): `*`,
//! `*/n`, `a`, `a-b`, `a-b/n` and comma lists; day-of-week 0–7 with 0 and 7 both Sunday.
//! As in Vixie cron, when both day fields are restricted a day matching either fires.
#![allow(
    clippy::indexing_slicing,
    reason = "each table is sized to its field's range, and every value was range-checked by `num` when the expression was parsed"
)]

use crate::timestamp::{civil_from_days, days_from_civil};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Vec<bool>,
    months: Vec<bool>,
    weekdays: Vec<bool>,
    days_restricted: bool,
    weekdays_restricted: bool,
}

fn field(text: &str, name: &str, min: u32, max: u32) -> Result<(Vec<bool>, bool), String> {
    let mut set = vec![false; max as usize + 1];
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{name}: step {s:?} is not a positive number"))?;
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (num(a, name, min, max)?, num(b, name, min, max)?)
        } else {
            let v = num(range, name, min, max)?;
            (v, if step > 1 { max } else { v })
        };
        if lo > hi {
            return Err(format!("{name}: range {range:?} runs backwards"));
        }
        for v in (lo..=hi).step_by(step as usize) {
            set[v as usize] = true;
        }
    }
    Ok((set, text != "*"))
}

fn num(text: &str, name: &str, min: u32, max: u32) -> Result<u32, String> {
    text.parse::<u32>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| format!("{name}: {text:?} is not a number from {min} to {max}"))
}

impl Cron {
    /// Parses a five-field expression; the error says which field is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [m, h, dom, mon, dow] = fields.as_slice() else {
            return Err(format!(
                "{text:?} has {} fields; a cron schedule has 5: minute hour day-of-month month day-of-week, e.g. \"0 */6 * * *\"",
                fields.len()
            ));
        };
        let (minutes, _) = field(m, "minute", 0, 59)?;
        let (hours, _) = field(h, "hour", 0, 23)?;
        let (days, days_restricted) = field(dom, "day of month", 1, 31)?;
        let (months, _) = field(mon, "month", 1, 12)?;
        let (mut weekdays, weekdays_restricted) = field(dow, "day of week", 0, 7)?;
        if weekdays[7] {
            weekdays[0] = true;
        }
        weekdays.truncate(7);
        Ok(Self {
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_restricted,
            weekdays_restricted,
        })
    }

    fn day_matches(&self, y: i64, m: i64, d: i64) -> bool {
        if !self.months[m as usize] {
            return false;
        }
        let dow = (days_from_civil(y, m, d) + 4).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
        let by_day = self.days[d as usize];
        let by_week = self.weekdays[dow];
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => by_day || by_week,
            (true, false) => by_day,
            (false, true) => by_week,
            (false, false) => true,
        }
    }

    /// Whether the schedule fires on any date. Hours and minutes always allow something,
    /// so only the day of month can rule out every date (`0 0 30 2 *`, or day 31 in months
    /// of 30 days), and only while the day of week is unrestricted (with both restricted a
    /// day matching either fires, and every month has every weekday). Exact and needs no
    /// clock, unlike searching ahead with [`Cron::next_after`].
    pub fn ever_fires(&self) -> bool {
        if !self.days_restricted || self.weekdays_restricted {
            return true;
        }
        (1..=12usize)
            .filter(|m| self.months[*m])
            .any(|m| (1..=max_day(m)).any(|d| self.days[d]))
    }

    /// The first fire time strictly after `after` (Unix seconds), within five years.
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let start_minute = after.div_euclid(60) + 1;
        let first_day = start_minute.div_euclid(1440);
        for day in first_day..first_day + 366 * 5 {
            let (y, m, d) = civil_from_days(day);
            if !self.day_matches(y, m, d) {
                continue;
            }
            for h in (0..24).filter(|h| self.hours[*h as usize]) {
                for min in (0..60).filter(|x| self.minutes[*x as usize]) {
                    let t = (day * 1440 + h * 60 + min) * 60;
                    if t >= start_minute * 60 {
                        return Some(t);
                    }
                }
            }
        }
        None
    }
}

/// The last day `month` has in any year (29 for February: leap years have it).
fn max_day(month: usize) -> usize {
    match month {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::Cron;
    use crate::timestamp::{format, parse};

    fn next(expr: &str, after: &str) -> String {
        format(
            Cron::parse(expr)
                .unwrap()
                .next_after(parse(after).unwrap())
                .unwrap(),
        )
    }

    #[test]
    fn finds_the_next_fire_time() {
        assert_eq!(
            next("*/15 * * * *", "2026-01-01T00:07:30Z"),
            "2026-01-01T00:15:00Z"
        );
        assert_eq!(
            next("0 */6 * * *", "2026-01-01T06:00:00Z"),
            "2026-01-01T12:00:00Z"
        );
        assert_eq!(
            next("30 2 1 * *", "2026-01-15T00:00:00Z"),
            "2026-02-01T02:30:00Z"
        );
        // 2026-01-05 is a Monday.
        assert_eq!(
            next("0 9 * * 1", "2026-01-01T00:00:00Z"),
            "2026-01-05T09:00:00Z"
        );
        assert_eq!(
            next("0 0 29 2 *", "2026-01-01T00:00:00Z"),
            "2028-02-29T00:00:00Z"
        );
        assert_eq!(
            next("0 0 * * 7", "2026-01-01T00:00:00Z"),
            "2026-01-04T00:00:00Z"
        );
    }

    #[test]
    fn rejects_what_is_not_cron() {
        for bad in [
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "*/0 * * * *",
            "5-1 * * * *",
            "a * * * *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ever_fires_agrees_with_searching_ahead() {
        let from = parse("2026-01-01T00:00:00Z").unwrap();
        let mut never = 0;
        for dom in ["*", "1", "28", "29", "30", "31", "30,31", "29-31"] {
            for month in ["*", "2", "4", "2,4", "1-3", "*/2"] {
                for dow in ["*", "1"] {
                    let expr = format!("0 0 {dom} {month} {dow}");
                    let cron = Cron::parse(&expr).unwrap();
                    let found = cron.next_after(from).is_some();
                    assert_eq!(cron.ever_fires(), found, "{expr}");
                    never += usize::from(!found);
                }
            }
        }
        // With day of week `*`: 30 2, 31 2, 31 4, 31 2,4 and 30,31 2.
        assert_eq!(never, 5);
        assert!(!Cron::parse("0 0 30 2 *").unwrap().ever_fires());
        assert!(!Cron::parse("0 0 31 4,6,9,11 *").unwrap().ever_fires());
        assert!(Cron::parse("0 0 31 2,3 *").unwrap().ever_fires());
    }
}
