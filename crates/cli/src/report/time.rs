//! The report's times: RFC 3339 text (a line's `ts` or `@timestamp`, `--since`) to
//! microseconds since the Unix epoch, read by jiff, and back in the log's own format
//! (`mcp_redirect_core::log` writes it). Microseconds, because the log writes no finer.
#![forbid(unsafe_code)]

use std::borrow::Cow;

use mcp_redirect_core::log::rfc3339_micros;

/// Microseconds since the Unix epoch for an RFC 3339 date-time (`2026-11-27T06:02:41.123456Z`,
/// `2026-11-27T08:02:41+02:00`), or jiff's reason why it is not one. jiff reads RFC 3339 and
/// the ISO 8601 forms around it (`+0200`, no seconds, a `[UTC]` annotation); digits past
/// microseconds are dropped (rounding down), and a leap second (`:60`) reads as `:59`.
pub(super) fn parse_rfc3339(text: &str) -> Result<i64, jiff::Error> {
    let time: jiff::Timestamp = at_most_nanoseconds(text).parse()?;
    // Rounding down, also before 1970; jiff's years (up to 9999) fit an i64 of microseconds.
    let micros = time.as_nanosecond().div_euclid(1000);
    Ok(i64::try_from(micros).expect("jiff's timestamps fit 64-bit microseconds"))
}

/// RFC 3339 allows any number of fraction digits, jiff reads nine (nanoseconds), and the report
/// keeps six: the rest are dropped before parsing.
fn at_most_nanoseconds(text: &str) -> Cow<'_, str> {
    let Some(point) = text.find(['.', ',']) else {
        return Cow::Borrowed(text);
    };
    let fraction = &text[point + 1..];
    let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
    if digits <= 9 {
        return Cow::Borrowed(text);
    }
    Cow::Owned(format!("{}{}", &text[..point + 10], &fraction[digits..]))
}

/// A time for the report: the log's own format.
pub(super) fn format_time(us: i64) -> String {
    rfc3339_micros(us.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_with_the_writer() {
        for us in [
            0,
            951_782_400_000_001,
            1_795_759_361_123_456,
            4_102_444_799_999_999,
        ] {
            assert_eq!(parse_rfc3339(&rfc3339_micros(us)).ok(), Some(us as i64));
        }
        let utc = parse_rfc3339("2026-11-27T06:02:41Z").unwrap();
        let same = |text: &str| parse_rfc3339(text).ok();
        assert_eq!(same("2026-11-27T08:02:41+02:00"), Some(utc));
        assert_eq!(same("2026-11-27t06:02:41.5z"), Some(utc + 500_000));
        assert_eq!(same("2026-11-27 06:02:41Z"), Some(utc));
        assert_eq!(same("2026-11-27T06:02:41.1234567Z"), Some(utc + 123_456));
        // RFC 3339 sets no limit on fraction digits; jiff reads nine, the rest are dropped.
        assert_eq!(
            same("2026-11-27T06:02:41.123456789012Z"),
            Some(utc + 123_456)
        );
        // Digits past microseconds round down, before 1970 too.
        assert_eq!(same("1969-12-31T23:59:59.9999995Z"), Some(-1));
        // jiff's rules where the hand-written parser had its own: an ISO 8601 offset without
        // its colon is read; a leap second is the second before it (was: the one after).
        assert_eq!(same("2026-11-27T08:02:41+0200"), Some(utc));
        assert_eq!(same("2026-11-27T06:02:60Z"), Some(utc + 18_000_000));
        for bad in [
            "",
            "2026-11-27",
            "2026-11-27T06:02:41",
            "2026-11-27T06:02:41.Z",
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-27T24:00:00Z",
            "2026-11-27T06:02:41Z ",
            "yesterday",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }
}
