//! Human durations in the spec (`200ms`, `15m`, `1h 30m`).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

/// The duration in `text`, or a message saying what is wrong with it.
fn parse(text: &str) -> Result<Duration, String> {
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
    humantime::parse_duration(t).map_err(|e| match e {
        humantime::DurationError::UnknownUnit { unit, .. } if !unit.is_empty() => format!(
            "invalid duration {text:?}: unknown time unit {unit:?} (use ms, s, m, h or d); {LIKE}"
        ),
        humantime::DurationError::NumberOverflow => {
            format!("invalid duration {text:?}: the number is too large")
        }
        _ => format!("invalid duration {text:?}; {LIKE}"),
    })
}

/// A visitor (rather than `String::deserialize` and a check afterwards) so that the
/// error is raised while the YAML scalar is current: serde_yaml then reports the key path
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
}
