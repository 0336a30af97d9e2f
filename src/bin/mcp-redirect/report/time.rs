//! The report's times: RFC 3339 text (a line's `ts` or `@timestamp`, `--since`) to
//! microseconds since the Unix epoch, and back in the log's own format (`mcp_redirect::log`
//! writes it). Microseconds, because the log writes no finer.
#![forbid(unsafe_code)]

use mcp_redirect::log::rfc3339_micros;

/// Microseconds since the Unix epoch for an RFC 3339 date-time (`2026-11-27T06:02:41.123456Z`,
/// `2026-11-27T08:02:41+02:00`), or `None`. Digits past microseconds are dropped; a leap second
/// (`:60`) counts as the next second's start.
pub(super) fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let number = |from: usize, to: usize| -> Option<i64> {
        b.get(from..to)?.iter().try_fold(0i64, |value, &digit| {
            digit
                .is_ascii_digit()
                .then(|| value * 10 + i64::from(digit - b'0'))
        })
    };
    let separators_ok = b.get(4) == Some(&b'-')
        && b.get(7) == Some(&b'-')
        && matches!(b.get(10), Some(b'T' | b't' | b' '))
        && b.get(13) == Some(&b':')
        && b.get(16) == Some(&b':');
    if !separators_ok {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut micros = 0;
    let mut rest = 19;
    if b.get(19) == Some(&b'.') {
        let digits = b[20..].iter().take_while(|d| d.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        for place in 0..6 {
            let digit = if place < digits {
                b[20 + place] - b'0'
            } else {
                0
            };
            micros = micros * 10 + i64::from(digit);
        }
        rest = 20 + digits;
    }
    let offset_seconds = match &b[rest..] {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (hours, minutes) = (number(rest + 1, rest + 3)?, number(rest + 4, rest + 6)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = hours * 3600 + minutes * 60;
            if *sign == b'+' {
                seconds
            } else {
                -seconds
            }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_seconds;
    Some(seconds * 1_000_000 + micros)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's days-from-civil; the inverse of the log's writer).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
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
            assert_eq!(parse_rfc3339(&rfc3339_micros(us)), Some(us as i64));
        }
        let utc = parse_rfc3339("2026-11-27T06:02:41Z").unwrap();
        assert_eq!(parse_rfc3339("2026-11-27T08:02:41+02:00"), Some(utc));
        assert_eq!(parse_rfc3339("2026-11-27t06:02:41.5z"), Some(utc + 500_000));
        assert_eq!(
            parse_rfc3339("2026-11-27T06:02:41.1234567Z"),
            Some(utc + 123_456)
        );
        for bad in [
            "",
            "2026-11-27",
            "2026-11-27T06:02:41",
            "2026-11-27T06:02:41.Z",
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-27T24:00:00Z",
            "2026-11-27T06:02:41+0200",
            "2026-11-27T06:02:41Z ",
            "yesterday",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
