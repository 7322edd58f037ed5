//! The `interval` type: PostgreSQL's (months, days, microseconds) triple, its text input and
//! output (`IntervalStyle = postgres`), and its calendar arithmetic with timestamps.
//!
//! The three fields are kept apart because they are not convertible to each other in
//! general: a month is 28 to 31 days and a day 23 to 25 hours in a zone with DST.
//! `timestamp + interval` adds months on the calendar (clamping the day of month), then
//! days, then microseconds, as PostgreSQL does. Comparison and ordering treat a month as
//! 30 days and a day as 24 hours (so `'1 mon' = '30 days'`), PostgreSQL's interval_cmp.
//!
//! Binary format (PostgreSQL's interval_send): `micros i64 | days i32 | months i32`, big-endian.

use std::cmp::Ordering;

use crate::error::{SqlError, SqlResult, SqlState};
use crate::types::{civil_from_days, days_from_civil, UNIX_TO_PG_DAYS, USECS_PER_DAY};

const USECS_PER_SEC: i64 = 1_000_000;
const USECS_PER_HOUR: i64 = 3_600_000_000;
const DAYS_PER_MONTH: i64 = 30;

/// An interval value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Interval {
    /// Whole months (years are 12 months).
    pub months: i32,
    /// Whole days.
    pub days: i32,
    /// Microseconds.
    pub micros: i64,
}

fn overflow() -> SqlError {
    SqlError::out_of_range("interval out of range")
}

impl Interval {
    /// The value PostgreSQL compares intervals by: months as 30 days, days as 24 hours.
    pub fn cmp_key(&self) -> i128 {
        (self.months as i128 * DAYS_PER_MONTH as i128 + self.days as i128) * USECS_PER_DAY as i128
            + self.micros as i128
    }

    /// Orders as PostgreSQL's interval_cmp.
    pub fn compare(&self, other: &Interval) -> Ordering {
        self.cmp_key().cmp(&other.cmp_key())
    }

    /// PostgreSQL's binary send format.
    pub fn to_binary(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.extend_from_slice(&self.micros.to_be_bytes());
        out.extend_from_slice(&self.days.to_be_bytes());
        out.extend_from_slice(&self.months.to_be_bytes());
        out
    }

    /// Parses [`Interval::to_binary`]'s format; None on a wrong length.
    pub fn from_binary(b: &[u8]) -> Option<Interval> {
        if b.len() != 16 {
            return None;
        }
        Some(Interval {
            micros: i64::from_be_bytes(b[0..8].try_into().ok()?),
            days: i32::from_be_bytes(b[8..12].try_into().ok()?),
            months: i32::from_be_bytes(b[12..16].try_into().ok()?),
        })
    }

    /// Text output, IntervalStyle `postgres`: `1 year 2 mons -3 days +04:05:06.5`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let years = self.months / 12;
        let mons = self.months % 12;
        let mut is_before = false;
        let mut is_zero = true;
        for (value, unit) in [
            (years as i64, "year"),
            (mons as i64, "mon"),
            (self.days as i64, "day"),
        ] {
            if value == 0 {
                continue;
            }
            if !out.is_empty() {
                out.push(' ');
            }
            let plus = if is_before && value > 0 { "+" } else { "" };
            let plural = if value == 1 { "" } else { "s" };
            out.push_str(&format!("{plus}{value} {unit}{plural}"));
            is_before = value < 0;
            is_zero = false;
        }
        if is_zero || self.micros != 0 {
            if !out.is_empty() {
                out.push(' ');
            }
            let negative = self.micros < 0;
            let t = self.micros.unsigned_abs();
            let sign = if negative {
                "-"
            } else if is_before {
                "+"
            } else {
                ""
            };
            let hours = t / USECS_PER_HOUR as u64;
            let minutes = t / 60_000_000 % 60;
            let seconds = t / 1_000_000 % 60;
            let frac = t % 1_000_000;
            out.push_str(&format!("{sign}{hours:02}:{minutes:02}:{seconds:02}"));
            if frac != 0 {
                let f = format!("{frac:06}");
                out.push('.');
                out.push_str(f.trim_end_matches('0'));
            }
        }
        out
    }

    /// Parses PostgreSQL's interval input (`1 day 2 hours`, `-1 week`, `1 year 2 mons`,
    /// `3 days 04:05:06.7`, `1.5 hours`, `10 minutes ago`, `@ 1 day`). A bare number counts
    /// in `default_unit` (seconds unless `INTERVAL '5' DAY` names one).
    pub fn parse(s: &str, default_unit: Option<&str>) -> SqlResult<Interval> {
        let bad = || {
            SqlError::new(
                SqlState::INVALID_DATETIME_FORMAT,
                format!("invalid input syntax for type interval: \"{s}\""),
            )
        };
        let mut acc = Accum::default();
        let text = s.trim().to_ascii_lowercase();
        let text = text.strip_prefix('@').unwrap_or(&text);
        // Split "1day" into "1 day" and keep "hh:mm:ss" together.
        let mut tokens: Vec<String> = Vec::new();
        for word in text.split_whitespace() {
            let split = word
                .find(|c: char| c.is_ascii_alphabetic())
                .filter(|&i| i > 0 && !word.contains(':'));
            match split {
                Some(i) => {
                    tokens.push(word[..i].to_string());
                    tokens.push(word[i..].to_string());
                }
                None => tokens.push(word.to_string()),
            }
        }
        if tokens.is_empty() {
            return Err(bad());
        }
        let mut ago = false;
        let mut i = 0;
        while i < tokens.len() {
            let tok = &tokens[i];
            if tok == "ago" {
                if i + 1 != tokens.len() {
                    return Err(bad());
                }
                ago = true;
                i += 1;
                continue;
            }
            if tok.contains(':') {
                acc.add_time(tok).ok_or_else(bad)?;
                i += 1;
                continue;
            }
            let number: f64 = tok.parse().map_err(|_| bad())?;
            if !number.is_finite() || tok.chars().any(|c| c.is_ascii_alphabetic()) {
                return Err(bad());
            }
            let unit = match tokens.get(i + 1) {
                Some(u) if u.chars().all(|c| c.is_ascii_alphabetic()) && u != "ago" => {
                    i += 1;
                    u.as_str()
                }
                _ => default_unit.unwrap_or("second"),
            };
            acc.add(number, unit).ok_or_else(bad)?;
            i += 1;
        }
        let mut iv = acc.finish().ok_or_else(overflow)?;
        if ago {
            iv = iv.checked_neg()?;
        }
        Ok(iv)
    }

    /// `-interval`.
    pub fn checked_neg(&self) -> SqlResult<Interval> {
        Ok(Interval {
            months: self.months.checked_neg().ok_or_else(overflow)?,
            days: self.days.checked_neg().ok_or_else(overflow)?,
            micros: self.micros.checked_neg().ok_or_else(overflow)?,
        })
    }

    /// `interval + interval` (field by field).
    pub fn checked_add(&self, o: &Interval) -> SqlResult<Interval> {
        Ok(Interval {
            months: self.months.checked_add(o.months).ok_or_else(overflow)?,
            days: self.days.checked_add(o.days).ok_or_else(overflow)?,
            micros: self.micros.checked_add(o.micros).ok_or_else(overflow)?,
        })
    }

    /// `interval * factor`: fractional months carry into days (30 a month) and fractional
    /// days into time, as PostgreSQL's interval_mul.
    pub fn mul(&self, factor: f64) -> SqlResult<Interval> {
        if !factor.is_finite() {
            return Err(overflow());
        }
        let months_f = self.months as f64 * factor;
        let days_f = self.days as f64 * factor;
        let micros_f = self.micros as f64 * factor;
        if months_f.abs() > i32::MAX as f64 || days_f.abs() > i32::MAX as f64 {
            return Err(overflow());
        }
        let months = months_f.trunc();
        let month_remainder_days = round6((months_f - months) * DAYS_PER_MONTH as f64);
        let mut days = days_f.trunc() + month_remainder_days.trunc();
        let mut sec_remainder = round6(
            (days_f - days_f.trunc() + month_remainder_days - month_remainder_days.trunc())
                * 86_400.0,
        );
        if sec_remainder.abs() >= 86_400.0 {
            let whole = (sec_remainder / 86_400.0).trunc();
            days += whole;
            sec_remainder -= whole * 86_400.0;
        }
        let micros = (micros_f + sec_remainder * USECS_PER_SEC as f64).round_ties_even();
        if days.abs() > i32::MAX as f64 || micros.abs() >= i64::MAX as f64 {
            return Err(overflow());
        }
        Ok(Interval {
            months: months as i32,
            days: days as i32,
            micros: micros as i64,
        })
    }

    /// `interval / divisor` (22012 for zero).
    pub fn div(&self, divisor: f64) -> SqlResult<Interval> {
        if divisor == 0.0 {
            return Err(SqlError::division_by_zero());
        }
        self.mul(1.0 / divisor)
    }
}

/// Rounds to 6 decimal places (PostgreSQL's TSROUND).
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Interval fields as they are read, before overflow checks.
#[derive(Default)]
struct Accum {
    months: f64,
    days: f64,
    micros: f64,
}

impl Accum {
    fn add(&mut self, n: f64, unit: &str) -> Option<()> {
        match unit {
            "microsecond" | "microseconds" | "us" | "usec" | "usecs" => self.micros += n,
            "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" => self.micros += n * 1e3,
            "second" | "seconds" | "s" | "sec" | "secs" => self.micros += n * 1e6,
            "minute" | "minutes" | "m" | "min" | "mins" => self.micros += n * 60e6,
            "hour" | "hours" | "h" | "hr" | "hrs" => self.micros += n * 3600e6,
            "day" | "days" | "d" => self.add_days(n),
            "week" | "weeks" | "w" => self.add_days(n * 7.0),
            "month" | "months" | "mon" | "mons" => {
                // A fraction of a month becomes days (30 to a month), and of a day, time.
                self.months += n.trunc();
                self.add_days(round6(n.fract() * DAYS_PER_MONTH as f64));
            }
            // A fraction of a year becomes whole months (rounded), as in PostgreSQL.
            "year" | "years" | "y" | "yr" | "yrs" => self.months += (n * 12.0).round(),
            "decade" | "decades" | "dec" | "decs" => self.months += (n * 120.0).round(),
            "century" | "centuries" | "c" | "cent" => self.months += (n * 1200.0).round(),
            "millennium" | "millennia" | "millenniums" | "mil" | "mils" => {
                self.months += (n * 12000.0).round()
            }
            _ => return None,
        }
        Some(())
    }

    fn add_days(&mut self, n: f64) {
        self.days += n.trunc();
        self.micros += round6(n.fract() * 86_400.0) * 1e6;
    }

    /// `[-]hh:mm[:ss[.frac]]`.
    fn add_time(&mut self, tok: &str) -> Option<()> {
        let (negative, body) = match tok.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, tok.strip_prefix('+').unwrap_or(tok)),
        };
        let mut parts = body.split(':');
        let h: f64 = parts.next()?.parse().ok()?;
        let m: f64 = parts.next()?.parse().ok()?;
        let s: f64 = match parts.next() {
            Some(x) => x.parse().ok()?,
            None => 0.0,
        };
        if parts.next().is_some() || !(0.0..60.0).contains(&m) || !(0.0..60.0).contains(&s) {
            return None;
        }
        let us = (h * 3600.0 + m * 60.0) * 1e6 + (s * 1e6).round();
        self.micros += if negative { -us } else { us };
        Some(())
    }

    fn finish(self) -> Option<Interval> {
        let months = self.months.round();
        let days = self.days.round();
        let micros = self.micros.round();
        if months.abs() > i32::MAX as f64 || days.abs() > i32::MAX as f64 || micros.abs() >= 9.2e18
        {
            return None;
        }
        Some(Interval {
            months: months as i32,
            days: days as i32,
            micros: micros as i64,
        })
    }
}

fn ts_out_of_range() -> SqlError {
    SqlError::out_of_range("timestamp out of range")
}

/// `timestamp + interval`: months on the calendar (the day of month clamped to the month's
/// length), then days, then microseconds.
pub fn timestamp_add(ts: i64, iv: &Interval) -> SqlResult<i64> {
    let mut ts = ts;
    if iv.months != 0 {
        let days = ts.div_euclid(USECS_PER_DAY);
        let time = ts.rem_euclid(USECS_PER_DAY);
        let (y, m, d) = civil_from_days(days + UNIX_TO_PG_DAYS);
        let total = y * 12 + (m as i64 - 1) + iv.months as i64;
        let (ny, nm) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u32);
        let nd = d.min(days_in_month(ny, nm));
        let new_days = days_from_civil(ny, nm, nd) - UNIX_TO_PG_DAYS;
        ts = new_days
            .checked_mul(USECS_PER_DAY)
            .and_then(|x| x.checked_add(time))
            .ok_or_else(ts_out_of_range)?;
    }
    ts.checked_add(
        (iv.days as i64)
            .checked_mul(USECS_PER_DAY)
            .ok_or_else(ts_out_of_range)?,
    )
    .and_then(|x| x.checked_add(iv.micros))
    .ok_or_else(ts_out_of_range)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// `timestamp - timestamp`: days and time, whole days moved out of the time part and both
/// given the same sign (PostgreSQL's timestamp_mi with interval_justify_hours).
pub fn timestamp_diff(a: i64, b: i64) -> SqlResult<Interval> {
    let diff = a.checked_sub(b).ok_or_else(overflow)?;
    let mut days = diff / USECS_PER_DAY;
    let mut time = diff - days * USECS_PER_DAY;
    if days > 0 && time < 0 {
        time += USECS_PER_DAY;
        days -= 1;
    } else if days < 0 && time > 0 {
        time -= USECS_PER_DAY;
        days += 1;
    }
    Ok(Interval {
        months: 0,
        days: i32::try_from(days).map_err(|_| overflow())?,
        micros: time,
    })
}

/// `age(a, b)`: the difference in years, months and days as on a calendar, then time.
pub fn age(a: i64, b: i64) -> SqlResult<Interval> {
    let split = |ts: i64| {
        let days = ts.div_euclid(USECS_PER_DAY);
        let time = ts.rem_euclid(USECS_PER_DAY);
        let (y, m, d) = civil_from_days(days + UNIX_TO_PG_DAYS);
        (y, m as i64, d as i64, time)
    };
    let (y1, m1, d1, t1) = split(a);
    let (y2, m2, d2, t2) = split(b);
    let flip = a < b;
    let mut time = t1 - t2;
    let mut mday = d1 - d2;
    let mut mon = m1 - m2;
    let mut year = y1 - y2;
    if flip {
        time = -time;
        mday = -mday;
        mon = -mon;
        year = -year;
    }
    while time < 0 {
        time += USECS_PER_DAY;
        mday -= 1;
    }
    while mday < 0 {
        let (y, m) = if flip { (y1, m1) } else { (y2, m2) };
        mday += days_in_month(y, m as u32) as i64;
        mon -= 1;
    }
    while mon < 0 {
        mon += 12;
        year -= 1;
    }
    if flip {
        time = -time;
        mday = -mday;
        mon = -mon;
        year = -year;
    }
    Ok(Interval {
        months: i32::try_from(year * 12 + mon).map_err(|_| overflow())?,
        days: mday as i32,
        micros: time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(s: &str) -> String {
        Interval::parse(s, None).unwrap().to_text()
    }

    #[test]
    fn text_round_trips_in_postgres_style() {
        assert_eq!(iv("1 day"), "1 day");
        assert_eq!(iv("2 days 3 hours"), "2 days 03:00:00");
        assert_eq!(iv("1 year 2 months"), "1 year 2 mons");
        assert_eq!(iv("-1 day"), "-1 days");
        assert_eq!(iv("1 day -1 hour"), "1 day -01:00:00");
        assert_eq!(iv("-1 day +1 hour"), "-1 days +01:00:00");
        assert_eq!(iv("1.5 hours"), "01:30:00");
        assert_eq!(iv("1.5 days"), "1 day 12:00:00");
        assert_eq!(iv("1.5 months"), "1 mon 15 days");
        assert_eq!(iv("1.5 years"), "1 year 6 mons");
        assert_eq!(iv("90 minutes"), "01:30:00");
        assert_eq!(iv("0"), "00:00:00");
        assert_eq!(iv("1 week"), "7 days");
        assert_eq!(iv("3 days 04:05:06.5"), "3 days 04:05:06.5");
        assert_eq!(iv("10 minutes ago"), "-00:10:00");
        assert_eq!(iv("@ 1 day"), "1 day");
        assert_eq!(iv("1day"), "1 day");
        assert!(Interval::parse("1 fortnight", None).is_err());
        assert!(Interval::parse("", None).is_err());
    }

    #[test]
    fn calendar_arithmetic_matches_postgres() {
        let ts = |y, m, d| (days_from_civil(y, m, d) - UNIX_TO_PG_DAYS) * USECS_PER_DAY;
        let month = Interval::parse("1 month", None).unwrap();
        assert_eq!(
            timestamp_add(ts(2020, 1, 31), &month).unwrap(),
            ts(2020, 2, 29)
        );
        assert_eq!(
            timestamp_diff(ts(2020, 1, 2) + 3_600_000_000, ts(2020, 1, 1))
                .unwrap()
                .to_text(),
            "1 day 01:00:00"
        );
        assert_eq!(
            age(ts(2020, 3, 1), ts(2019, 1, 31)).unwrap().to_text(),
            "1 year 1 mon 1 day"
        );
        assert_eq!(
            age(ts(2019, 1, 31), ts(2020, 3, 1)).unwrap().to_text(),
            "-1 years -1 mons -1 days"
        );
    }
}
