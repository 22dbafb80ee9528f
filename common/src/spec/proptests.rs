//! Property tests of the loader and of durations: whatever the text, [`load`] answers with
//! a pipeline or with errors that name the file (it never panics), and what it accepts
//! stays within [`crate::limits`].

use std::time::Duration;

use proptest::prelude::*;

use super::{duration, load};
use crate::fuzz::spec::{any_spec, check, env, mutated, BASE};
use crate::limits::{MAX_DURATION, MAX_SHARDS};
use crate::shard;

/// The control: mutations start from a spec that loads.
#[test]
fn the_base_spec_is_valid() {
    let p = load("f.yaml", BASE, Some(&env())).unwrap();
    assert_eq!(shard::expand(&p.spec).unwrap().len(), 31);
    assert_eq!(p.spec.source.http.headers["X-Tag"], "blue");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mutated_specs_load_or_fail_cleanly(text in mutated()) {
        let result = load("f.yaml", &text, Some(&env()));
        check(&text, &result)?;
    }

    /// Hostile values, deep nesting and alias bombs as well as mutations and raw text.
    #[test]
    fn hostile_specs_load_or_fail_cleanly(text in any_spec()) {
        let result = load("f.yaml", &text, Some(&env()));
        check(&text, &result)?;
    }

    #[test]
    fn arbitrary_text_loads_or_fails_cleanly(text in "(?s).{0,300}") {
        let result = load("f.yaml", &text, Some(&env()));
        check(&text, &result)?;
    }

    #[test]
    fn yaml_like_text_loads_or_fails_cleanly(
        text in "[\\[\\]{}:,&*!|>#'\" \n\ta-z0-9.$-]{0,300}"
    ) {
        let result = load("f.yaml", &text, Some(&env()));
        check(&text, &result)?;
    }

    /// Ranges are accepted exactly when they make between 1 and `MAX_SHARDS` shards.
    #[test]
    fn ranges_are_accepted_only_within_the_shard_limit(
        start in prop_oneof![any::<i64>(), -100..100i64],
        len in prop_oneof![any::<i64>(), 0..20_000i64],
        count in prop_oneof![any::<u32>(), 0..20_000u32],
    ) {
        let end = start.saturating_add(len);
        let text = BASE.replace(
            "window: { start: \"2026-01-01T00:00:00Z\", end: \"2026-02-01T00:00:00+02:00\", step: 1d }",
            &format!("range: {{ start: {start}, end: {end}, count: {count} }}"),
        );
        let result = load("f.yaml", &text, Some(&env()));
        check(&text, &result)?;
        let size = i128::from(end) - i128::from(start) + 1;
        let fits = start <= end && count >= 1 && i128::from(count) <= size
            && u64::from(count) <= MAX_SHARDS;
        prop_assert_eq!(result.is_ok(), fits, "{:?}", result.err());
    }

    /// Windows are accepted exactly when their step is 1s to `MAX_DURATION` and they make
    /// at most `MAX_SHARDS` shards.
    #[test]
    fn window_steps_are_accepted_only_within_the_limits(
        step in prop_oneof![any::<u64>(), 0..400_000u64],
    ) {
        let text = BASE.replace("step: 1d", &format!("step: {step}s"));
        let result = load("f.yaml", &text, Some(&env()));
        check(&text, &result)?;
        // The window is 31 days less 2 hours long.
        let span = 31 * 86_400 - 7_200u64;
        let fits = step >= 1 && step <= MAX_DURATION.as_secs() && span.div_ceil(step) <= MAX_SHARDS;
        prop_assert_eq!(result.is_ok(), fits, "{:?}", result.err());
    }

    #[test]
    fn durations_never_panic_and_stay_within_the_limit(text in "(?s).{0,40}") {
        if let Ok(d) = duration::parse(&text) {
            prop_assert!(d <= MAX_DURATION);
        }
    }

    #[test]
    fn durations_are_exact_up_to_the_limit_and_rejected_above(
        secs in prop_oneof![any::<u64>(), 0..=MAX_DURATION.as_secs() + 10],
        millis in 0..2_000u64,
    ) {
        let text = format!("{secs}s {millis}ms");
        let expected = Duration::from_secs(secs).checked_add(Duration::from_millis(millis));
        match (duration::parse(&text), expected) {
            (Ok(d), Some(e)) => {
                prop_assert_eq!(d, e);
                prop_assert!(d <= MAX_DURATION);
            }
            (Err(msg), Some(e)) => {
                prop_assert!(e > MAX_DURATION, "{text}: {msg}");
                prop_assert!(msg.contains("max_duration"), "{text}: {msg}");
            }
            (Err(msg), None) => prop_assert!(msg.contains("too large"), "{text}: {msg}"),
            (Ok(d), None) => prop_assert!(false, "{text} overflows but parsed as {d:?}"),
        }
    }
}
