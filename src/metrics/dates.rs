//! Instants and dates as polars expressions: UTC datetimes, the date of an instant in the
//! reporting time zone, and the instant a local date begins. Shared by the input typing and
//! the metrics.

use chrono::NaiveDate;
use chrono_tz::Tz;
use polars::prelude::*;

/// Days since 1970-01-01, the physical value of a polars `Date`.
pub fn epoch_days(d: NaiveDate) -> i32 {
    // Dates we build stay within ±5.8 million years of 1970, so i32 holds them.
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or(NaiveDate::MIN)).num_days() as i32
}

/// A `Date` literal.
pub fn date_lit(d: NaiveDate) -> Expr {
    lit(epoch_days(d)).cast(DataType::Date)
}

/// The date of a UTC instant in `tz`.
pub fn to_local_date(utc: Expr, tz: Tz) -> Expr {
    utc.dt().convert_time_zone(tz_name(tz)).dt().date()
}

pub fn utc_datetime() -> DataType {
    DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
}

pub fn tz_name(tz: Tz) -> TimeZone {
    // chrono-tz names are valid IANA names, which is all polars checks.
    TimeZone::opt_try_new(Some(tz.name()))
        .ok()
        .flatten()
        .unwrap_or(TimeZone::UTC)
}

/// The UTC instant at which `date` begins in `tz`.
pub fn local_midnight(date: Expr, tz: Tz) -> Expr {
    localize(
        date.cast(DataType::Datetime(TimeUnit::Microseconds, None)),
        tz,
    )
}

/// Reads a naive datetime as wall-clock time in `tz` and returns UTC microseconds.
pub fn localize(naive: Expr, tz: Tz) -> Expr {
    naive
        .dt()
        .cast_time_unit(TimeUnit::Microseconds)
        .dt()
        .replace_time_zone(Some(tz_name(tz)), lit("earliest"), NonExistent::Null)
        .dt()
        .convert_time_zone(TimeZone::UTC)
}
