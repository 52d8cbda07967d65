//! Cron schedules in a named timezone: [`Schedule::parse`] reads a cron expression and
//! [`Schedule::next_after`] / [`Schedule::due`] say when it fires. Pure: no I/O, no clock.
//!
//! Syntax: five fields (`minute hour day-of-month month day-of-week`, firing at second 0) or
//! six with seconds first (`second minute hour day-of-month month day-of-week`). A field is
//! `*`, a number, a range `a-b`, a step `*/n`, `a-b/n` or `a/n` (from `a` to the field's
//! end), or a comma-separated list of those. Months take `jan`…`dec`, days of the week
//! `sun`…`sat` (any case); day-of-week `0` and `7` are both Sunday. `?` means `*` in the day
//! fields. Shorthands: `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily`
//! (`@midnight`), `@hourly`.
//!
//! Day-of-month and day-of-week combine as in Vixie cron: when both are restricted (neither
//! starts with `*` or `?`), a day matches if *either* matches; otherwise both must.
//!
//! Time is wall-clock time in the schedule's zone, mapped to instants as follows:
//! - a wall-clock time that occurs twice (the clocks fall back) fires once, at its first
//!   occurrence; so an hourly schedule fires 24 times on a 25-hour day, once per wall-clock
//!   hour, and none of them twice;
//! - a wall-clock time that does not occur (the clocks spring forward) fires once, at the
//!   first instant after the gap; if other times of the schedule fall on that instant too,
//!   it is still one firing.
//!
//! Formally the fire instant of a matching wall-clock time `L` is the first instant whose
//! wall-clock reading is at or past `L`. That map never goes backwards, which is what lets
//! [`Schedule::next_after`] scan wall-clock times in order and stop at the first one past
//! `after`. Every search is bounded: a schedule that matches no date within
//! [`SEARCH_DAYS`] days (e.g. `0 0 30 2 *`) has no next occurrence.

use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// The longest expression accepted, in bytes.
pub const MAX_EXPR_LEN: usize = 256;

/// How many days ahead (or back, for [`Schedule::due`]) a search looks: a little over eleven
/// years, enough for February 29th across a century year that is not a leap year.
pub const SEARCH_DAYS: i64 = 4100;

/// Why an expression is not a schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Nothing but whitespace.
    #[error("empty schedule: expected a cron expression such as `0 0 3 * * *` or `@daily`")]
    Empty,
    /// Longer than [`MAX_EXPR_LEN`].
    #[error("schedule is {len} bytes long; at most {max} are accepted")]
    TooLong { len: usize, max: usize },
    /// Neither five nor six fields.
    #[error(
        "schedule has {found} field(s); expected 5 (minute hour day-of-month month \
         day-of-week) or 6 (second minute hour day-of-month month day-of-week)"
    )]
    FieldCount { found: usize },
    /// An `@…` word this parser does not know.
    #[error(
        "unknown schedule shorthand `{0}` (known: @yearly, @annually, @monthly, @weekly, \
         @daily, @midnight, @hourly)"
    )]
    UnknownShorthand(String),
    /// One field does not parse.
    #[error("{field} field `{value}`: {reason}")]
    Field {
        /// The field's name (`second`, `minute`, `hour`, `day-of-month`, `month`,
        /// `day-of-week`).
        field: &'static str,
        /// The field as given (shortened if long).
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The six fields in order, with their bounds and names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Second => "second",
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        }
    }

    /// The values a number may take (day-of-week allows 7 for Sunday).
    fn bounds(self) -> (u32, u32) {
        match self {
            Field::Second | Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            Field::DayOfWeek => (0, 7),
        }
    }

    /// The range `*` stands for.
    fn star(self) -> (u32, u32) {
        match self {
            Field::DayOfWeek => (0, 6),
            f => f.bounds(),
        }
    }

    fn names(self) -> &'static [&'static str] {
        const MONTHS: [&str; 12] = [
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ];
        const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
        match self {
            Field::Month => &MONTHS,
            Field::DayOfWeek => &DAYS,
            _ => &[],
        }
    }

    /// The value of a name, if this field has names.
    fn name_value(self, text: &str) -> Option<u32> {
        let first = if self == Field::Month { 1 } else { 0 };
        self.names()
            .iter()
            .position(|n| n.eq_ignore_ascii_case(text))
            .and_then(|i| u32::try_from(i).ok())
            .map(|i| i + first)
    }
}

/// A parsed cron schedule. Each field is a bit set of the values it matches.
#[derive(Clone, PartialEq, Eq)]
pub struct Schedule {
    seconds: u64,
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    days_of_month: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, Sunday = 0.
    days_of_week: u8,
    /// Day-of-month was given as `*` or `?` (or starts with `*`, as in `*/2`).
    dom_star: bool,
    /// Day-of-week was given as `*` or `?` (or starts with `*`).
    dow_star: bool,
    /// The expression as given (trimmed), for display.
    source: String,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Schedule").field(&self.source).finish()
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Schedule::parse(s)
    }
}

/// The shortened form of a field for error messages.
fn shown(text: &str) -> String {
    const MAX: usize = 40;
    if text.chars().count() > MAX {
        let mut s: String = text.chars().take(MAX).collect();
        s.push('…');
        s
    } else {
        text.to_owned()
    }
}

/// A number or (in month and day-of-week) a name.
fn parse_value(field: Field, text: &str) -> Result<u32, String> {
    if text.is_empty() {
        return Err("a value is missing".into());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let (lo, hi) = field.bounds();
        // Leading zeros are fine; anything longer than this is out of range anyway.
        let trimmed = text.trim_start_matches('0');
        let v = if trimmed.is_empty() {
            0
        } else if trimmed.len() > 2 {
            u32::MAX
        } else {
            trimmed.parse::<u32>().map_err(|e| e.to_string())?
        };
        if v < lo || v > hi {
            return Err(format!("{} is out of range {lo}-{hi}", shown(text)));
        }
        return Ok(v);
    }
    field.name_value(text).ok_or_else(|| {
        if field.names().is_empty() {
            format!("`{}` is not a number", shown(text))
        } else {
            format!(
                "`{}` is neither a number nor one of {}",
                shown(text),
                field.names().join(", ")
            )
        }
    })
}

/// One comma-separated item: `*`, `v`, `a-b`, each optionally `/step`.
fn parse_item(field: Field, item: &str) -> Result<u64, String> {
    let (range, step) = match item.split_once('/') {
        Some((r, s)) => {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("step `{}` is not a positive number", shown(s)));
            }
            let (lo, hi) = field.star();
            let span = hi - lo + 1;
            let step = if s.trim_start_matches('0').len() > 2 {
                u32::MAX
            } else {
                s.parse::<u32>().unwrap_or(u32::MAX)
            };
            if step == 0 || step > span {
                return Err(format!("step {} is not in 1-{span}", shown(s)));
            }
            (r, Some(step))
        }
        None => (item, None),
    };
    let (start, end) = if range == "*" || range == "?" {
        if range == "?" && !matches!(field, Field::DayOfMonth | Field::DayOfWeek) {
            return Err("`?` is allowed only in day-of-month and day-of-week".into());
        }
        field.star()
    } else if let Some((a, b)) = range.split_once('-') {
        let a = parse_value(field, a)?;
        let b = parse_value(field, b)?;
        if a > b {
            return Err(format!("range {a}-{b} runs backwards"));
        }
        (a, b)
    } else {
        let v = parse_value(field, range)?;
        // `a/n` runs from `a` to the end of the field.
        if step.is_some() {
            (v, field.bounds().1)
        } else {
            (v, v)
        }
    };
    let step = step.unwrap_or(1);
    let mut bits = 0u64;
    let mut v = start;
    while v <= end {
        bits |= 1u64 << v;
        v = match v.checked_add(step) {
            Some(n) => n,
            None => break,
        };
    }
    Ok(bits)
}

/// A whole field: a comma-separated list of items.
fn parse_field(field: Field, text: &str) -> Result<u64, ScheduleError> {
    let err = |reason: String| ScheduleError::Field {
        field: field.name(),
        value: shown(text),
        reason,
    };
    let mut bits = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(err("empty list item".into()));
        }
        bits |= parse_item(field, item).map_err(err)?;
    }
    if field == Field::DayOfWeek && bits & (1 << 7) != 0 {
        // 7 is Sunday too.
        bits = (bits & !(1 << 7)) | 1;
    }
    Ok(bits)
}

impl Schedule {
    /// Parses a five-field (minute first) or six-field (second first) cron expression, or
    /// one of the `@` shorthands.
    pub fn parse(expr: &str) -> Result<Schedule, ScheduleError> {
        if expr.len() > MAX_EXPR_LEN {
            return Err(ScheduleError::TooLong {
                len: expr.len(),
                max: MAX_EXPR_LEN,
            });
        }
        let source = expr.trim();
        if source.is_empty() {
            return Err(ScheduleError::Empty);
        }
        let expanded = if let Some(word) = source.strip_prefix('@') {
            match word.to_ascii_lowercase().as_str() {
                "yearly" | "annually" => "0 0 0 1 1 *",
                "monthly" => "0 0 0 1 * *",
                "weekly" => "0 0 0 * * 0",
                "daily" | "midnight" => "0 0 0 * * *",
                "hourly" => "0 0 * * * *",
                _ => return Err(ScheduleError::UnknownShorthand(shown(source))),
            }
        } else {
            source
        };
        let fields: Vec<&str> = expanded.split_ascii_whitespace().collect();
        let (second, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            found => return Err(ScheduleError::FieldCount { found }),
        };
        let [minute, hour, dom, month, dow] = rest else {
            return Err(ScheduleError::FieldCount {
                found: fields.len(),
            });
        };
        let is_star = |f: &str| f.starts_with('*') || f.starts_with('?');
        // Each mask fits its type: parse_item only sets bits within the field's bounds.
        let narrow = |bits: u64| u32::try_from(bits).unwrap_or(u32::MAX);
        Ok(Schedule {
            seconds: parse_field(Field::Second, second)?,
            minutes: parse_field(Field::Minute, minute)?,
            hours: narrow(parse_field(Field::Hour, hour)?),
            days_of_month: narrow(parse_field(Field::DayOfMonth, dom)?),
            months: u16::try_from(parse_field(Field::Month, month)?).unwrap_or(u16::MAX),
            days_of_week: u8::try_from(parse_field(Field::DayOfWeek, dow)?).unwrap_or(u8::MAX),
            dom_star: is_star(dom),
            dow_star: is_star(dow),
            source: source.to_owned(),
        })
    }

    /// Whether the schedule fires on this (local) date.
    fn matches_date(&self, date: NaiveDate) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom = self.days_of_month & (1 << date.day()) != 0;
        let dow = self.days_of_week & (1 << date.weekday().num_days_from_sunday()) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first matching time of day at or after second-of-day `from`.
    fn next_time(&self, from: u32) -> Option<NaiveTime> {
        let (h0, m0, s0) = (from / 3600, from / 60 % 60, from % 60);
        let mut h = next_bit(u64::from(self.hours), h0)?;
        loop {
            let m_from = if h == h0 { m0 } else { 0 };
            let mut m = next_bit(self.minutes, m_from);
            while let Some(min) = m {
                let s_from = if h == h0 && min == m0 { s0 } else { 0 };
                if let Some(s) = next_bit(self.seconds, s_from) {
                    return NaiveTime::from_hms_opt(h, min, s);
                }
                m = next_bit(self.minutes, min + 1);
            }
            h = next_bit(u64::from(self.hours), h + 1)?;
        }
    }

    /// The first fire time strictly after `after`, or `None` if none falls within
    /// [`SEARCH_DAYS`] days.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        // Every wall-clock time at or before `after`'s own reading fires at or before
        // `after` (the instant map never goes backwards), so the scan starts just past it.
        let local = local_reading(after.timestamp(), tz)?;
        let mut date = local.date();
        let mut from = local.time().num_seconds_from_midnight() + 1;
        for _ in 0..SEARCH_DAYS {
            if self.matches_date(date) {
                while from < 86_400 {
                    let Some(time) = self.next_time(from) else {
                        break;
                    };
                    let at = fire_instant(date.and_time(time), tz)?;
                    if at > after {
                        return Some(at);
                    }
                    // Only in the repeated hour after the clocks fall back: this reading
                    // already fired before `after`.
                    from = time.num_seconds_from_midnight() + 1;
                }
            }
            date = date.succ_opt()?;
            from = 0;
        }
        None
    }

    /// The tick to run now, if any: the latest fire time in `(last_fired, now]`. A
    /// scheduler that was down for several ticks therefore runs once, not once per missed
    /// tick, and records the returned instant as its new `last_fired`. With `last_fired`
    /// `None` (never fired) the latest fire time within [`SEARCH_DAYS`] days before `now`
    /// is due; a caller that wants a new schedule to wait for its first tick passes the
    /// instant it started watching instead.
    pub fn due(
        &self,
        last_fired: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        tz: Tz,
    ) -> Option<DateTime<Utc>> {
        let floor = match last_fired {
            Some(t) => t,
            None => now.checked_sub_signed(Duration::days(SEARCH_DAYS))?,
        };
        if floor >= now {
            return None;
        }
        let first = self.next_after(floor, tz).filter(|t| *t <= now)?;
        // Fire times are whole seconds, so a binary search over whole seconds finds the
        // latest `s` with a fire time in `(s, now]`; that fire time is the latest one.
        let mut lo = first.timestamp() - 1; // next_after(lo) = first <= now
        let mut hi = now.timestamp(); // next_after(hi) > now
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let at = DateTime::from_timestamp(mid, 0)?;
            if self.next_after(at, tz).is_some_and(|t| t <= now) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let latest = self.next_after(DateTime::from_timestamp(lo, 0)?, tz)?;
        Some(latest.max(first))
    }
}

/// The lowest set bit of `bits` at or above `from`.
fn next_bit(bits: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let rest = bits >> from;
    if rest == 0 {
        None
    } else {
        Some(from + rest.trailing_zeros())
    }
}

/// The wall-clock reading in `tz` at a whole-second instant.
fn local_reading(timestamp: i64, tz: Tz) -> Option<NaiveDateTime> {
    let at = DateTime::from_timestamp(timestamp, 0)?;
    Some(at.with_timezone(&tz).naive_local())
}

/// The first instant whose wall-clock reading in `tz` is at or past `local`: the instant
/// itself when the reading occurs once, the first occurrence when it occurs twice, and the
/// first instant after the gap when it does not occur.
fn fire_instant(local: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    use chrono::LocalResult;
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        LocalResult::None => {
            // In a gap. Offsets stay within ±26 hours, so the reading `local` is passed
            // somewhere in this window; find where by bisection over whole seconds.
            let naive = local.and_utc().timestamp();
            let mut lo = naive - 30 * 3600; // reading before `local`
            let mut hi = naive + 30 * 3600; // reading after `local`
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if local_reading(mid, tz)? >= local {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            DateTime::from_timestamp(hi, 0)
        }
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
