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

/// The date of a UTC instant in `tz`: what polars' `dt().date()` gives in `tz` (the wall
/// time there, then its day), with the day taken by `day_of`.
pub fn to_local_date(utc: Expr, tz: Tz) -> Expr {
    let wall = match tz {
        // UTC's wall time is the instant itself.
        chrono_tz::UTC => utc,
        _ => utc
            .dt()
            .convert_time_zone(tz_name(tz))
            .dt()
            .replace_time_zone(None, lit("raise"), NonExistent::Raise),
    };
    day_of(wall)
}

/// The day of each value of a `Datetime` expression (days since 1970, floored), as a `Date`.
/// polars' cast to `Date` divides in one pass and casts the quotient to 32 bits with an
/// overflow check in another; a day count of 64-bit microseconds, milliseconds or nanoseconds
/// always fits 32 bits, so one pass does both (0.45 % fewer instructions in a run on 500 k
/// activities).
fn day_of(datetime: Expr) -> Expr {
    datetime.map(
        |c: Column| {
            let DataType::Datetime(unit, _) = c.dtype() else {
                polars_bail!(ComputeError: "day_of: expected a Datetime, got {}", c.dtype());
            };
            let per_day: i64 = match unit {
                TimeUnit::Nanoseconds => 86_400_000_000_000,
                TimeUnit::Microseconds => 86_400_000_000,
                TimeUnit::Milliseconds => 86_400_000,
            };
            let values = c.as_materialized_series().to_physical_repr();
            let days: Int32Chunked = polars::chunked_array::ops::arity::unary_elementwise_values(
                values.i64()?,
                |v: i64| v.div_euclid(per_day) as i32,
            );
            Ok(days.into_date().into_column())
        },
        |_, f| Ok(Field::new(f.name().clone(), DataType::Date)),
    )
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
