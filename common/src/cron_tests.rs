use super::{memo_len, next_fire, Cron, MEMO_ENTRIES};
use crate::timestamp::{format, parse};

fn next(expr: &str, after: &str) -> String {
    let cron = Cron::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    format(cron.next_after(parse(after).unwrap()).unwrap())
}

fn refused(expr: &str) -> String {
    match Cron::parse(expr) {
        Ok(c) => panic!("{expr:?} was accepted: {c:?}"),
        Err(e) => e,
    }
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
        next("0 0 * * 7", "2026-01-01T00:00:00Z"),
        "2026-01-04T00:00:00Z"
    );
    // Strictly after: a fire time is not its own next one, and seconds round up.
    assert_eq!(
        next("* * * * *", "2026-01-01T00:00:00Z"),
        "2026-01-01T00:01:00Z"
    );
    assert_eq!(
        next("* * * * *", "2026-01-01T00:00:59Z"),
        "2026-01-01T00:01:00Z"
    );
    // `N/S`: from N to the field's end.
    assert_eq!(
        next("5/20 * * * *", "2026-01-01T00:30:00Z"),
        "2026-01-01T00:45:00Z"
    );
    // Both day fields restricted: either one fires (2026-01-02 is a Friday).
    assert_eq!(
        next("0 0 13 * 5", "2026-01-01T00:00:00Z"),
        "2026-01-02T00:00:00Z"
    );
}

#[test]
fn names_shortcuts_ranges_steps_and_lists() {
    let monday = "2026-01-05T09:00:00Z";
    assert_eq!(next("0 9 * * MON-FRI", "2026-01-03T00:00:00Z"), monday);
    assert_eq!(next("0 9 * * mon-fri", "2026-01-03T00:00:00Z"), monday);
    // Friday 09:00 is followed by Monday's.
    assert_eq!(next("0 9 * * MON-FRI", "2026-01-02T09:00:00Z"), monday);
    assert_eq!(
        next("0 9 * * SAT,SUN", "2026-01-05T00:00:00Z"),
        "2026-01-10T09:00:00Z"
    );
    assert_eq!(
        next("0 9 * * MON-SUN", "2026-01-03T09:00:00Z"),
        "2026-01-04T09:00:00Z"
    );
    assert_eq!(
        next("0 0 1 JAN *", "2026-01-01T00:00:00Z"),
        "2027-01-01T00:00:00Z"
    );
    assert_eq!(
        next("0 0 1 jul,Dec *", "2026-01-01T00:00:00Z"),
        "2026-07-01T00:00:00Z"
    );
    assert_eq!(
        next("0 0 1 MAR-MAY/2 *", "2026-03-02T00:00:00Z"),
        "2026-05-01T00:00:00Z"
    );
    assert_eq!(
        next("0,30 9-17/4 * * *", "2026-01-01T09:30:00Z"),
        "2026-01-01T13:00:00Z"
    );
    assert_eq!(
        next("0,30 9-17/4 * * *", "2026-01-01T17:00:00Z"),
        "2026-01-01T17:30:00Z"
    );
    assert_eq!(
        next("0,30 9-17/4 * * *", "2026-01-01T17:30:00Z"),
        "2026-01-02T09:00:00Z"
    );

    let after = "2026-06-15T10:20:00Z";
    for (shortcut, expected) in [
        ("@yearly", "2027-01-01T00:00:00Z"),
        ("@annually", "2027-01-01T00:00:00Z"),
        ("@monthly", "2026-07-01T00:00:00Z"),
        // 2026-06-21 is a Sunday.
        ("@weekly", "2026-06-21T00:00:00Z"),
        ("@daily", "2026-06-16T00:00:00Z"),
        ("@hourly", "2026-06-15T11:00:00Z"),
        (" @DAILY ", "2026-06-16T00:00:00Z"),
    ] {
        assert_eq!(next(shortcut, after), expected, "{shortcut}");
    }
}

#[test]
fn month_and_year_ends_and_leap_days() {
    // Day 31 skips the months of 30 days.
    assert_eq!(
        next("0 0 31 * *", "2026-04-01T00:00:00Z"),
        "2026-05-31T00:00:00Z"
    );
    assert_eq!(
        next("0 0 31 * *", "2026-05-31T00:00:00Z"),
        "2026-07-31T00:00:00Z"
    );
    assert_eq!(
        next("0 0 1 * *", "2026-12-31T12:00:00Z"),
        "2027-01-01T00:00:00Z"
    );
    assert_eq!(
        next("59 23 31 12 *", "2026-12-31T23:59:00Z"),
        "2027-12-31T23:59:00Z"
    );
    assert_eq!(
        next("* * * * *", "2027-12-31T23:59:59Z"),
        "2028-01-01T00:00:00Z"
    );
    // February 29th only in leap years; 2100 is none, so 2096's comes eight years before
    // the next.
    assert_eq!(
        next("0 0 29 2 *", "2026-01-01T00:00:00Z"),
        "2028-02-29T00:00:00Z"
    );
    assert_eq!(
        next("0 0 29 2 *", "2028-02-29T00:00:00Z"),
        "2032-02-29T00:00:00Z"
    );
    assert_eq!(
        next("0 0 29 2 *", "2096-03-01T00:00:00Z"),
        "2104-02-29T00:00:00Z"
    );
    assert_eq!(
        next("0 0 29 2 *", "1999-03-01T00:00:00Z"),
        "2000-02-29T00:00:00Z"
    );
    // After February 28th comes the 29th in a leap year and March 1st otherwise.
    assert_eq!(
        next("0 0 * * *", "2028-02-28T00:00:00Z"),
        "2028-02-29T00:00:00Z"
    );
    assert_eq!(
        next("0 0 * * *", "2027-02-28T00:00:00Z"),
        "2027-03-01T00:00:00Z"
    );
    assert_eq!(
        next("0 0 28-31 2 *", "2027-02-28T00:00:00Z"),
        "2028-02-28T00:00:00Z"
    );
    // 2028-02-29 is a Tuesday.
    assert_eq!(
        next("0 12 * FEB TUE", "2028-02-23T00:00:00Z"),
        "2028-02-29T12:00:00Z"
    );
}

#[test]
fn refusals_name_the_field_and_say_how_to_write_it() {
    for (bad, says) in [
        ("* * * *", "has 4 fields; a cron schedule has 5"),
        ("", "has 0 fields"),
        ("0 0 * * * *", "has 6 fields"),
        ("0 0 0 * * * 2030", "has 7 fields"),
        ("60 * * * *", "minute: \"60\" is not valid"),
        // A field refusal says how to write the field.
        ("60 * * * *", "write the minute as a number from 0 to 59"),
        ("* * * 13 *", "from 1 to 12 or a name JAN-DEC"),
        ("* 24 * * *", "hour: \"24\" is not valid"),
        ("* * 0 * *", "day of month: \"0\" is not valid"),
        ("* * 32 * *", "day of month: \"32\""),
        ("* * * 13 *", "month: \"13\""),
        ("* * * * 8", "day of week: \"8\""),
        (
            "*/0 * * * *",
            "minute: \"*/0\" is not valid (step cannot be zero)",
        ),
        ("5-1 * * * *", "minute: \"5-1\" is not valid"),
        ("1-2-3 * * * *", "minute: \"1-2-3\""),
        ("*/99999 * * * *", "minute: \"*/99999\""),
        ("99999999999 * * * *", "minute: \"99999999999\""),
        (
            "a * * * *",
            "minute: names are only for the month (JAN-DEC)",
        ),
        ("0 MON * * *", "hour: names are only for"),
        ("0 0 * MON *", "month: \"MON\" is not a month name"),
        (
            "0 0 * * JAN",
            "day of week: \"JAN\" is not a day of week name",
        ),
        ("0 0 * * SUNDAY", "\"SUNDAY\" is not a day of week name"),
        ("0 0 L * *", "uses 'L', one of cron's extensions"),
        ("0 0 15W * *", "uses 'W'"),
        ("0 0 * * 5#2", "uses '#'"),
        ("0 0 ? * *", "uses '?'"),
        ("0 0 1 * +MON", "uses '+'"),
        ("0 0 * * 5L", "uses 'L'"),
        (
            "@reboot",
            "\"@reboot\" is not a cron shortcut; the shortcuts are @yearly",
        ),
        ("@daily 5", "is not a cron shortcut"),
        ("0 0 * * @daily", "is not a cron shortcut"),
        ("0 0 1 é *", "non-ASCII character 'é'"),
        ("0\u{a0}0 * * *", "non-ASCII character '\\u{a0}'"),
    ] {
        let e = refused(bad);
        assert!(e.contains(says), "{bad:?}: {e}");
    }
}

#[test]
fn huge_input_is_refused_without_echoing_all_of_it_twice() {
    let huge = "9".repeat(100_000);
    let e = refused(&format!("{huge} * * * *"));
    assert!(e.starts_with("minute: \"999"), "{}", &e[..80]);
    let e = refused(&"* ".repeat(50_000));
    assert!(e.contains("has 50000 fields"), "{}", &e[e.len() - 120..]);
    // A long list of valid values is still a valid schedule.
    let list = vec!["7"; 2_000].join(",");
    assert_eq!(
        next(&format!("{list} * * * *"), "2026-01-01T00:00:00Z"),
        "2026-01-01T00:07:00Z"
    );
}

#[test]
fn ever_fires_agrees_with_searching_ahead() {
    let from = parse("2026-01-01T00:00:00Z").unwrap();
    let mut never = 0;
    for dom in ["*", "1", "28", "29", "30", "31", "30,31", "29-31", "L"] {
        for month in ["*", "2", "4", "2,4", "1-3", "*/2", "FEB", "APR-JUN/2"] {
            for dow in ["*", "1", "SAT"] {
                let expr = format!("0 0 {dom} {month} {dow}");
                let Ok(cron) = Cron::parse(&expr) else {
                    assert_eq!(dom, "L", "{expr}");
                    continue;
                };
                // croner's own search, without the guard: every date a cron can name
                // comes within 8 years of any start.
                let found = cron
                    .search_after(from)
                    .is_some_and(|t| t < from + 8 * 366 * 86_400);
                assert_eq!(cron.ever_fires(), found, "{expr}");
                assert_eq!(cron.next_after(from).is_some(), found, "{expr}");
                never += usize::from(!found);
            }
        }
    }
    // With day of week `*`: 30 2, 31 2, 31 4, 31 2,4, 30,31 2 and 31 APR-JUN/2 (April and
    // June), with FEB for 2 twice more (30 and 31, 30,31).
    assert_eq!(never, 9);
    assert!(!Cron::parse("0 0 30 2 *").unwrap().ever_fires());
    assert!(!Cron::parse("0 0 31 4,6,9,11 *").unwrap().ever_fires());
    assert!(!Cron::parse("0 0 31 APR,JUN,SEP,NOV *")
        .unwrap()
        .ever_fires());
    assert!(Cron::parse("0 0 31 2,3 *").unwrap().ever_fires());
    assert!(Cron::parse("0 0 29 2 *").unwrap().ever_fires());
    assert!(Cron::parse("@yearly").unwrap().ever_fires());
}

#[test]
fn the_memo_answers_as_the_parser_does_and_stays_bounded() {
    let after = 1_700_000_000;
    for expr in ["*/5 9-17 * * MON-FRI", "@daily", "0 0 30 2 *", "not a cron"] {
        let direct = Cron::parse(expr).ok().and_then(|c| c.next_after(after));
        assert_eq!(next_fire(expr, after), direct, "{expr}");
        assert_eq!(next_fire(expr, after), direct, "{expr} (memoised)");
    }
    for i in 0..(MEMO_ENTRIES as i64 + 10) {
        next_fire("@hourly", after + i);
    }
    assert!(memo_len() <= MEMO_ENTRIES);
}
