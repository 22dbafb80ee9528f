//! Human durations in the spec (`200ms`, `15m`, `1h 30m`). humantime parses them with
//! checked arithmetic (overflow is an error); [`MAX_DURATION`] then keeps every duration
//! small enough for the milliseconds (`u64`) and seconds (`i64`) that later code uses.
//! The one duration parser of the project: chaos scenario files use it too (`with =
//! "apitap_common::spec::duration"`), so both accept the same forms within the same bound.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

use crate::limits::{LimitError, MAX_DURATION};

pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

/// The duration in `text`, or a message saying what is wrong with it.
pub(super) fn parse(text: &str) -> Result<Duration, String> {
    const LIKE: &str = "write it like 500ms, 30s, 15m or 1h 30m";
    let t = text.trim();
    if t.is_empty() {
        return Err(format!("the duration is empty; {LIKE}"));
    }
    if t.parse::<f64>().is_ok() {
        return Err(format!(
            "{t} has no time unit; add one, for example {t}s or {t}ms"
        ));
    }
    let d = humantime::parse_duration(t).map_err(|e| match e {
        humantime::DurationError::UnknownUnit { unit, .. } if !unit.is_empty() => format!(
            "invalid duration {text:?}: unknown time unit {unit:?} (use ms, s, m, h or d); {LIKE}"
        ),
        humantime::DurationError::NumberOverflow => {
            format!("invalid duration {text:?}: the number is too large")
        }
        _ => format!("invalid duration {text:?}; {LIKE}"),
    })?;
    if d > MAX_DURATION {
        let max_days = MAX_DURATION.as_secs() / 86_400;
        return Err(LimitError::new(
            "max_duration",
            format!(
                "the duration {t:?} is {} days",
                d.as_secs().div_ceil(86_400)
            ),
            format!("{max_days} days"),
            format!("use at most {max_days}d"),
        )
        .to_string());
    }
    Ok(d)
}

/// A visitor (rather than `String::deserialize` and a check afterwards) so that the
/// error is raised while the YAML scalar is current: the parser then reports the key path
/// and line of the duration itself instead of those of the enclosing mapping.
struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a duration such as 500ms, 30s, 15m or 1h")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        self.visit_str(&v.to_string())
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_str(DurationVisitor)
}

pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use std::time::Duration;

    #[test]
    fn parses_and_explains() {
        assert_eq!(parse("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("200ms").unwrap(), Duration::from_millis(200));
        assert!(parse("fast")
            .unwrap_err()
            .contains("invalid duration \"fast\""));
        assert!(parse("30")
            .unwrap_err()
            .contains("add one, for example 30s"));
        assert!(parse("5 parsecs")
            .unwrap_err()
            .contains("unknown time unit \"parsecs\""));
        assert!(parse("").unwrap_err().contains("empty"));
    }

    #[test]
    fn durations_that_would_wrap_are_rejected_with_the_limit() {
        assert_eq!(parse("3650d").unwrap(), crate::limits::MAX_DURATION);
        for huge in [
            "3651d",
            "10000000000000000000s",
            "18446744073709551s 616ms",
            "3650d 1s",
        ] {
            let e = parse(huge).unwrap_err();
            assert!(
                e.contains("over the limit max_duration of 3650 days")
                    && e.contains("use at most 3650d"),
                "{huge}: {e}"
            );
        }
        for overflow in ["18446744073709551616s", "99999999999999999999999d"] {
            let e = parse(overflow).unwrap_err();
            assert!(e.contains("too large"), "{overflow}: {e}");
        }
    }
}
