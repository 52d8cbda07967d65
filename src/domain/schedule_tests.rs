//! Tests of cron parsing and of fire times across daylight-saving transitions.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::{MAX_EXPR_LEN, Schedule, ScheduleError};

const BERLIN: Tz = chrono_tz::Europe::Berlin;
const SANTIAGO: Tz = chrono_tz::America::Santiago;
const HAVANA: Tz = chrono_tz::America::Havana;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .expect("valid UTC time")
}

fn sched(expr: &str) -> Schedule {
    Schedule::parse(expr).unwrap_or_else(|e| panic!("`{expr}` parses: {e}"))
}

/// Every fire time in `(from, until]`.
fn fires(s: &Schedule, from: DateTime<Utc>, until: DateTime<Utc>, tz: Tz) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut at = from;
    while let Some(next) = s.next_after(at, tz) {
        if next > until {
            break;
        }
        assert!(next > at, "{next} is not after {at}");
        out.push(next);
        at = next;
        assert!(out.len() < 100_000, "runaway");
    }
    out
}

/// The wall-clock reading of an instant in `tz`, as `HH:MM:SS±offset`.
fn wall(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S%:z")
        .to_string()
}

#[test]
fn berlin_spring_forward_fires_a_skipped_0230_once_at_0300_summer_time() {
    // 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00 UTC, so 02:30 never happens.
    assert_eq!(
        BERLIN.from_local_datetime(
            &NaiveDate::from_ymd_opt(2026, 3, 29)
                .unwrap()
                .and_hms_opt(2, 30, 0)
                .unwrap()
        ),
        LocalResult::None
    );
    let s = sched("30 2 * * *");
    let got = fires(
        &s,
        utc(2026, 3, 27, 12, 0, 0),
        utc(2026, 3, 31, 12, 0, 0),
        BERLIN,
    );
    let shown: Vec<String> = got.iter().map(|t| wall(*t, BERLIN)).collect();
    assert_eq!(
        shown,
        [
            "2026-03-28 02:30:00+01:00",
            "2026-03-29 03:00:00+02:00",
            "2026-03-30 02:30:00+02:00",
            "2026-03-31 02:30:00+02:00",
        ]
    );
    assert_eq!(got[1], utc(2026, 3, 29, 1, 0, 0));
}

#[test]
fn berlin_fall_back_fires_a_repeated_0230_once_at_its_first_occurrence() {
    // 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00 UTC, so 02:30 happens twice.
    assert!(matches!(
        BERLIN.from_local_datetime(
            &NaiveDate::from_ymd_opt(2026, 10, 25)
                .unwrap()
                .and_hms_opt(2, 30, 0)
                .unwrap()
        ),
        LocalResult::Ambiguous(..)
    ));
    let s = sched("0 30 2 * * *");
    let got = fires(
        &s,
        utc(2026, 10, 23, 12, 0, 0),
        utc(2026, 10, 27, 12, 0, 0),
        BERLIN,
    );
    let shown: Vec<String> = got.iter().map(|t| wall(*t, BERLIN)).collect();
    assert_eq!(
        shown,
        [
            "2026-10-24 02:30:00+02:00",
            "2026-10-25 02:30:00+02:00",
            "2026-10-26 02:30:00+01:00",
            "2026-10-27 02:30:00+01:00",
        ]
    );
    // Asked from inside the repeated hour (second 02:10, CET), the day's tick is behind.
    let second_0210 = utc(2026, 10, 25, 1, 10, 0);
    assert_eq!(wall(second_0210, BERLIN), "2026-10-25 02:10:00+01:00");
    assert_eq!(
        s.next_after(second_0210, BERLIN),
        Some(utc(2026, 10, 26, 1, 30, 0))
    );
}

#[test]
fn an_hourly_schedule_fires_every_real_hour_of_the_short_spring_day_once() {
    let s = sched("@hourly");
    let day_start = utc(2026, 3, 28, 23, 0, 0); // 00:00 CET on the 29th
    let day_end = utc(2026, 3, 29, 22, 0, 0); // 00:00 CEST on the 30th
    let got = fires(&s, day_start, day_end, BERLIN);
    // 23 real hours: 01:00 … 23:00 and the next midnight, one tick each, an hour apart.
    assert_eq!(got.len(), 23, "{got:?}");
    for pair in got.windows(2) {
        assert_eq!(pair[1] - pair[0], Duration::hours(1), "{pair:?}");
    }
    assert_eq!(got[0], day_start + Duration::hours(1));
    // The skipped 02:00 is the 03:00 CEST tick; no wall-clock hour but 02 appears.
    let hours: Vec<u32> = got
        .iter()
        .map(|t| t.with_timezone(&BERLIN).hour())
        .collect();
    assert_eq!(hours[1], 3);
    assert!(!hours.contains(&2));
}

#[test]
fn an_hourly_schedule_fires_each_wall_clock_hour_of_the_long_autumn_day_once() {
    let s = sched("0 * * * *");
    let day_start = utc(2026, 10, 24, 22, 0, 0); // 00:00 CEST on the 25th
    let day_end = utc(2026, 10, 25, 23, 0, 0); // 00:00 CET on the 26th
    let got = fires(&s, day_start - Duration::seconds(1), day_end, BERLIN);
    // 25 real hours hold 24 wall-clock hours (02:00 twice) and the next midnight: each
    // wall-clock hour fires once, 02:00 at its first occurrence.
    let shown: Vec<String> = got.iter().map(|t| wall(*t, BERLIN)).collect();
    assert_eq!(got.len(), 25, "{shown:?}");
    let mut hours: Vec<u32> = got[..24]
        .iter()
        .map(|t| t.with_timezone(&BERLIN).hour())
        .collect();
    hours.dedup();
    assert_eq!(hours, (0..24).collect::<Vec<u32>>());
    assert_eq!(shown[2], "2026-10-25 02:00:00+02:00");
    assert_eq!(shown[3], "2026-10-25 03:00:00+01:00");
    let gaps: Vec<i64> = got.windows(2).map(|p| (p[1] - p[0]).num_hours()).collect();
    assert_eq!(gaps.iter().filter(|g| **g == 2).count(), 1, "{gaps:?}");
    assert!(gaps.iter().all(|g| *g == 1 || *g == 2), "{gaps:?}");
}

#[test]
fn a_quarter_hourly_schedule_fires_each_wall_clock_quarter_once_across_both_transitions() {
    let s = sched("*/15 * * * *");
    for (from, until, expected) in [
        // Spring day: 92 quarters of real time; the 4 skipped quarters fire as one tick.
        (utc(2026, 3, 28, 23, 0, 0), utc(2026, 3, 29, 22, 0, 0), 92),
        // Autumn day: 96 wall-clock quarters, the repeated four fired once.
        (utc(2026, 10, 24, 22, 0, 0), utc(2026, 10, 25, 23, 0, 0), 96),
    ] {
        let got = fires(&s, from, until, BERLIN);
        assert_eq!(got.len(), expected);
        let mut walls: Vec<String> = got.iter().map(|t| wall(*t, BERLIN)).collect();
        let n = walls.len();
        walls.sort();
        walls.dedup();
        assert_eq!(walls.len(), n, "a wall-clock time fired twice");
    }
}

#[test]
fn a_daily_midnight_fires_once_on_the_santiago_day_that_has_no_midnight() {
    // tzdata: Chile moves from -04 to -03 at 04:00 UTC on the first Sunday of September
    // on or after the 2nd, so 2026-09-06 00:00 never happens there.
    let midnight = NaiveDate::from_ymd_opt(2026, 9, 6)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    assert_eq!(SANTIAGO.from_local_datetime(&midnight), LocalResult::None);
    let s = sched("@daily");
    let got = fires(
        &s,
        utc(2026, 9, 4, 12, 0, 0),
        utc(2026, 9, 7, 12, 0, 0),
        SANTIAGO,
    );
    let shown: Vec<String> = got.iter().map(|t| wall(*t, SANTIAGO)).collect();
    assert_eq!(
        shown,
        [
            "2026-09-05 00:00:00-04:00",
            "2026-09-06 01:00:00-03:00",
            "2026-09-07 00:00:00-03:00",
        ]
    );
    assert_eq!(got[1], utc(2026, 9, 6, 4, 0, 0));
}

#[test]
fn a_daily_midnight_fires_once_on_the_havana_day_that_has_no_midnight() {
    // tzdata: Cuba springs forward at 00:00 standard time on the second Sunday of March.
    let midnight = NaiveDate::from_ymd_opt(2026, 3, 8)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    assert_eq!(HAVANA.from_local_datetime(&midnight), LocalResult::None);
    let s = sched("0 0 * * *");
    let got = fires(
        &s,
        utc(2026, 3, 7, 12, 0, 0),
        utc(2026, 3, 9, 12, 0, 0),
        HAVANA,
    );
    let shown: Vec<String> = got.iter().map(|t| wall(*t, HAVANA)).collect();
    assert_eq!(
        shown,
        ["2026-03-08 01:00:00-04:00", "2026-03-09 00:00:00-04:00"]
    );
}

#[test]
fn month_and_weekday_names_select_the_same_days_as_numbers() {
    let named = sched("0 9 * jan,JUL Mon-fri");
    let numbered = sched("0 9 * 1,7 1-5");
    let from = utc(2026, 1, 1, 0, 0, 0);
    let until = utc(2027, 1, 1, 0, 0, 0);
    let got = fires(&named, from, until, chrono_tz::UTC);
    assert_eq!(got, fires(&numbered, from, until, chrono_tz::UTC));
    // January 2026 has 22 weekdays, July 2026 has 23.
    assert_eq!(got.len(), 45);
    assert!(got.iter().all(|t| {
        use chrono::{Datelike, Weekday};
        !matches!(t.weekday(), Weekday::Sat | Weekday::Sun)
            && matches!(t.month(), 1 | 7)
            && t.hour() == 9
    }));
    // 7 and 0 are both Sunday.
    assert_eq!(
        sched("0 0 * * 7"),
        Schedule {
            source: "0 0 * * 7".into(),
            ..sched("0 0 * * 0")
        }
    );
}

#[test]
fn steps_ranges_and_lists_expand_as_in_cron() {
    let minutes = |expr: &str| -> Vec<u32> {
        let s = sched(expr);
        fires(
            &s,
            utc(2026, 5, 4, 9, 59, 59),
            utc(2026, 5, 4, 10, 59, 59),
            chrono_tz::UTC,
        )
        .iter()
        .map(|t| t.minute())
        .collect()
    };
    assert_eq!(minutes("*/15 * * * *"), [0, 15, 30, 45]);
    assert_eq!(minutes("10-50/20 * * * *"), [10, 30, 50]);
    assert_eq!(minutes("50/4 * * * *"), [50, 54, 58]);
    assert_eq!(minutes("1,2,3-5,59 * * * *"), [1, 2, 3, 4, 5, 59]);
    let s = sched("*/20 0 0 * * *");
    assert_eq!(
        fires(
            &s,
            utc(2026, 5, 4, 0, 0, 0),
            utc(2026, 5, 4, 23, 0, 0),
            chrono_tz::UTC
        ),
        [utc(2026, 5, 4, 0, 0, 20), utc(2026, 5, 4, 0, 0, 40)]
    );
}

#[test]
fn restricted_day_of_month_and_day_of_week_match_either_as_in_vixie_cron() {
    let from = utc(2026, 2, 1, 0, 0, 0);
    let until = utc(2026, 3, 1, 0, 0, 0);
    let days = |expr: &str| -> Vec<u32> {
        use chrono::Datelike;
        fires(&sched(expr), from, until, chrono_tz::UTC)
            .iter()
            .map(|t| t.day())
            .collect()
    };
    // February 2026: Fridays are the 6th, 13th, 20th and 27th.
    assert_eq!(days("0 0 10 * fri"), [6, 10, 13, 20, 27]);
    assert_eq!(days("0 0 10 * *"), [10]);
    assert_eq!(days("0 0 * * fri"), [6, 13, 20, 27]);
    // A field starting with `*` counts as unrestricted, so both must hold.
    assert_eq!(days("0 0 */2 * fri"), [13, 27]);
    assert_eq!(days("0 0 ? * fri"), [6, 13, 20, 27]);
}

#[test]
fn shorthands_and_the_six_field_form_fire_when_they_say() {
    let at = utc(2026, 5, 4, 10, 20, 30);
    let tz = chrono_tz::UTC;
    assert_eq!(
        sched("@hourly").next_after(at, tz),
        Some(utc(2026, 5, 4, 11, 0, 0))
    );
    assert_eq!(
        sched("@daily").next_after(at, tz),
        Some(utc(2026, 5, 5, 0, 0, 0))
    );
    assert_eq!(
        sched("@midnight").next_after(at, tz),
        Some(utc(2026, 5, 5, 0, 0, 0))
    );
    // 2026-05-10 is a Sunday.
    assert_eq!(
        sched("@weekly").next_after(at, tz),
        Some(utc(2026, 5, 10, 0, 0, 0))
    );
    assert_eq!(
        sched("@monthly").next_after(at, tz),
        Some(utc(2026, 6, 1, 0, 0, 0))
    );
    assert_eq!(
        sched("@Yearly").next_after(at, tz),
        Some(utc(2027, 1, 1, 0, 0, 0))
    );
    assert_eq!(
        sched("@annually"),
        Schedule {
            source: "@annually".into(),
            ..sched("@yearly")
        }
    );
    assert_eq!(
        sched("45 * * * * *").next_after(at, tz),
        Some(utc(2026, 5, 4, 10, 20, 45))
    );
    assert_eq!(
        sched("*/10 * * * * *").next_after(at, tz),
        Some(utc(2026, 5, 4, 10, 20, 40))
    );
    // The five-field form fires at second 0 of the minute.
    assert_eq!(
        sched("21 10 * * *").next_after(at, tz),
        Some(utc(2026, 5, 4, 10, 21, 0))
    );
    assert_eq!(
        sched("20 10 * * *").next_after(at, tz),
        Some(utc(2026, 5, 5, 10, 20, 0))
    );
}

#[test]
fn the_next_fire_time_is_strictly_after_the_given_instant() {
    let s = sched("0 0 12 * * *");
    let noon = utc(2026, 5, 4, 12, 0, 0);
    assert_eq!(
        s.next_after(noon, chrono_tz::UTC),
        Some(noon + Duration::days(1))
    );
    let just_before = noon - Duration::microseconds(1);
    assert_eq!(s.next_after(just_before, chrono_tz::UTC), Some(noon));
    let just_after = noon + Duration::microseconds(1);
    assert_eq!(
        s.next_after(just_after, chrono_tz::UTC),
        Some(noon + Duration::days(1))
    );
}

#[test]
fn a_date_that_never_comes_has_no_next_fire_time_and_a_rare_one_is_found() {
    let at = utc(2026, 5, 4, 0, 0, 0);
    assert_eq!(sched("0 0 30 2 *").next_after(at, BERLIN), None);
    assert_eq!(sched("0 0 31 4,6,9,11 *").next_after(at, BERLIN), None);
    assert_eq!(
        sched("0 0 29 2 *").next_after(at, chrono_tz::UTC),
        Some(utc(2028, 2, 29, 0, 0, 0))
    );
    // 2100 is not a leap year: the next February 29th after 2096 is in 2104.
    assert_eq!(
        sched("0 0 29 2 *").next_after(utc(2096, 3, 1, 0, 0, 0), chrono_tz::UTC),
        Some(utc(2104, 2, 29, 0, 0, 0))
    );
    assert_eq!(sched("0 0 30 2 *").due(None, at, BERLIN), None);
}

#[test]
fn a_scheduler_that_was_down_runs_a_missed_tick_once() {
    let s = sched("0 */5 * * * *");
    let tz = BERLIN;
    let last = utc(2026, 5, 4, 10, 0, 0);
    // Nothing due before the next tick.
    assert_eq!(s.due(Some(last), last + Duration::minutes(4), tz), None);
    assert_eq!(s.due(Some(last), last, tz), None);
    // Down for an hour and a bit: one tick is due, the latest one.
    let now = last + Duration::minutes(63);
    let tick = s.due(Some(last), now, tz).expect("a tick is due");
    assert_eq!(tick, utc(2026, 5, 4, 11, 0, 0));
    // Once it is recorded, nothing more is due until the next tick.
    assert_eq!(s.due(Some(tick), now, tz), None);
    assert_eq!(
        s.due(Some(tick), utc(2026, 5, 4, 11, 5, 0), tz),
        Some(utc(2026, 5, 4, 11, 5, 0))
    );
    // Down for a month over a rare schedule: still one tick, the latest.
    let monthly = sched("@monthly");
    assert_eq!(
        monthly.due(
            Some(utc(2026, 1, 15, 0, 0, 0)),
            utc(2026, 5, 4, 0, 0, 0),
            chrono_tz::UTC
        ),
        Some(utc(2026, 5, 1, 0, 0, 0))
    );
    // Never fired: the latest tick before now is due.
    assert_eq!(
        monthly.due(None, utc(2026, 5, 4, 0, 0, 0), chrono_tz::UTC),
        Some(utc(2026, 5, 1, 0, 0, 0))
    );
}

#[test]
fn a_missed_tick_in_the_repeated_hour_is_due_once() {
    // Hourly at :30 in Berlin; the scheduler last fired at the first 01:30 and wakes in the
    // second 02:45: the one due tick is the first 02:30.
    let s = sched("30 * * * *");
    let last = utc(2026, 10, 24, 23, 30, 0); // 01:30 CEST
    let now = utc(2026, 10, 25, 1, 45, 0); // 02:45 CET
    assert_eq!(wall(now, BERLIN), "2026-10-25 02:45:00+01:00");
    let tick = s.due(Some(last), now, BERLIN).expect("due");
    assert_eq!(wall(tick, BERLIN), "2026-10-25 02:30:00+02:00");
    assert_eq!(s.due(Some(tick), now, BERLIN), None);
}

#[test]
fn errors_name_the_field_and_what_is_wrong() {
    let err = |expr: &str| Schedule::parse(expr).expect_err(expr).to_string();
    assert!(err("").contains("empty schedule"));
    assert!(err("   ").contains("empty schedule"));
    assert!(err("* * * *").contains("4 field(s)"));
    assert!(err("* * * * * * *").contains("7 field(s)"));
    assert_eq!(
        Schedule::parse("60 * * * *"),
        Err(ScheduleError::Field {
            field: "minute",
            value: "60".into(),
            reason: "60 is out of range 0-59".into()
        })
    );
    assert!(err("0 24 * * *").starts_with("hour field `24`"));
    assert!(err("0 0 0 * *").contains("day-of-month field `0`"));
    assert!(err("0 0 1 13 *").contains("month field `13`"));
    assert!(
        err("0 0 * foo *").contains("month field `foo`: `foo` is neither a number nor one of jan")
    );
    assert!(err("0 0 * * 8").contains("day-of-week field `8`"));
    assert!(err("0 0 * * mon-sun").contains("runs backwards"));
    assert!(err("61 * * * * *").starts_with("second field"));
    assert!(err("*/0 * * * *").contains("step 0 is not in 1-60"));
    assert!(err("*/61 * * * *").contains("step 61"));
    assert!(err("*/x * * * *").contains("step `x`"));
    assert!(err("5-/2 * * * *").contains("a value is missing"));
    assert!(err("1,,2 * * * *").contains("empty list item"));
    assert!(err("-1 * * * *").contains("a value is missing"));
    assert!(err("? * * * *").contains("only in day-of-month and day-of-week"));
    assert!(err("99999999999999999999 * * * *").contains("out of range"));
    assert!(err("@reboot").contains("unknown schedule shorthand `@reboot`"));
    let long = format!("0 0 * * {}", "1,".repeat(200));
    assert_eq!(
        Schedule::parse(&long),
        Err(ScheduleError::TooLong {
            len: long.len(),
            max: MAX_EXPR_LEN
        })
    );
    // A long field is shortened in the message.
    let wide = format!("{} * * * *", "x".repeat(100));
    assert!(err(&wide).len() < 200);
}

#[test]
fn a_schedule_shows_as_it_was_written() {
    let s: Schedule = " 0 30 2 * * mon ".parse().unwrap();
    assert_eq!(s.to_string(), "0 30 2 * * mon");
    assert_eq!(format!("{s:?}"), "Schedule(\"0 30 2 * * mon\")");
}

fn zone() -> impl Strategy<Value = Tz> {
    prop::sample::select(vec![
        chrono_tz::UTC,
        BERLIN,
        SANTIAGO,
        HAVANA,
        chrono_tz::Asia::Beirut,
        chrono_tz::Australia::Lord_Howe,
        chrono_tz::Pacific::Chatham,
        chrono_tz::America::New_York,
    ])
}

/// Cron-like expressions of five or six fields, most of them valid.
fn cron_expr() -> impl Strategy<Value = String> {
    let item = prop_oneof![
        4 => Just("*".to_owned()),
        4 => "[1-6]",
        3 => "[1-3]-[4-6]",
        3 => "\\*/[1-6]",
        2 => "[1-6]/[1-6]",
        1 => "[0-9]{1,2}",
        1 => "(mon|fri|sun|jan|dec)",
    ];
    let field = prop::collection::vec(item, 1..3).prop_map(|items| items.join(","));
    prop::collection::vec(field, 5..=6).prop_map(|fields| fields.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn parsing_any_string_never_panics(s in any::<String>()) {
        let _ = Schedule::parse(&s);
    }

    #[test]
    fn parsing_cron_like_strings_never_panics(s in "[0-9a-zA-Z*/,?@ -]{0,40}") {
        let _ = Schedule::parse(&s);
    }

    #[test]
    fn a_fire_time_is_the_first_after_the_instant_and_reads_as_a_scheduled_time(
        expr in cron_expr(),
        secs in 0i64..4_000_000_000,
        tz in zone(),
    ) {
        if let Ok(schedule) = Schedule::parse(&expr) {
            let after = DateTime::from_timestamp(secs, 0).unwrap();
            if let Some(next) = schedule.next_after(after, tz) {
                prop_assert!(next > after);
                // Nothing fires in between: the tick due at `next` is `next` itself.
                prop_assert_eq!(schedule.due(Some(after), next, tz), Some(next));
                // The wall clock then shows a scheduled time, or `next` ends a gap.
                let reading = next.with_timezone(&tz).naive_local();
                let secs_of_day = reading.time().num_seconds_from_midnight();
                let scheduled = schedule.matches_date(reading.date())
                    && schedule.next_time(secs_of_day) == Some(reading.time());
                let before = (next - Duration::seconds(1)).with_timezone(&tz).naive_local();
                let ends_gap = reading - before > Duration::seconds(1);
                prop_assert!(scheduled || ends_gap, "{expr} at {next} reads {reading}");
            }
        }
    }

    #[test]
    fn consecutive_fire_times_of_a_valid_schedule_increase_in_every_zone(
        minute in 0u32..60,
        hour_step in 1u32..7,
        secs in 0i64..4_000_000_000,
        tz in zone(),
    ) {
        let schedule = Schedule::parse(&format!("{minute} */{hour_step} * * *")).unwrap();
        let mut at = DateTime::from_timestamp(secs, 0).unwrap();
        for _ in 0..30 {
            let next = schedule.next_after(at, tz).unwrap();
            prop_assert!(next > at);
            prop_assert!(next - at <= Duration::hours(i64::from(hour_step) + 3));
            at = next;
        }
    }
}
