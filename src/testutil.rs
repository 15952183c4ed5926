//! Helpers for metric unit tests: tiny frames from strings, and rows rendered as text so
//! expectations read like the hand calculation beside them.

use chrono::NaiveDate;
use polars::prelude::*;

use crate::calendar::{Calendar, Grain, Period};
/// The accepted input frames a test builds its metric inputs from, as a run does.
pub use crate::inputs::prepare::Accepted;
use crate::metrics::dates::epoch_days;

pub fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
}

/// A Date column from `YYYY-MM-DD` strings (`None` = null).
pub fn dates(name: &str, vals: &[Option<&str>]) -> Column {
    let days: Vec<Option<i32>> = vals.iter().map(|v| v.map(|s| epoch_days(d(s)))).collect();
    Column::new(name.into(), days)
        .cast(&DataType::Date)
        .expect("date column")
}

/// A UTC timestamp column from RFC 3339 strings.
pub fn timestamps(name: &str, vals: &[&str]) -> Column {
    let micros: Vec<i64> = vals
        .iter()
        .map(|s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .expect("test timestamp")
                .timestamp_micros()
        })
        .collect();
    Column::new(name.into(), micros)
        .cast(&DataType::Datetime(
            TimeUnit::Microseconds,
            Some(TimeZone::UTC),
        ))
        .expect("timestamp column")
}

pub fn periods(grain: Grain, from: &str, to: &str) -> Vec<Period> {
    Calendar::new(1)
        .expect("calendar")
        .periods_between(grain, d(from), d(to))
}

/// Each row as `a|b|c`; floats exactly (the shortest text that reads back as the same double, as `{:?}` prints it), nulls as `-`.
pub fn rows(df: &DataFrame, cols: &[&str]) -> Vec<String> {
    let df = df.select(cols.iter().copied()).expect("columns exist");
    (0..df.height())
        .map(|i| {
            df.columns()
                .iter()
                .map(|c| match c.get(i).expect("row") {
                    AnyValue::Null => "-".to_string(),
                    AnyValue::Float64(f) => format!("{f:?}"),
                    AnyValue::String(s) => s.to_string(),
                    AnyValue::StringOwned(s) => s.to_string(),
                    v => v.to_string(),
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

/// `rows` sorted, for results whose order is not part of the contract.
pub fn sorted_rows(df: &DataFrame, cols: &[&str]) -> Vec<String> {
    let mut r = rows(df, cols);
    r.sort();
    r
}

/// `rep_id`, `rep_name`, `team_id` from `(rep, team)` pairs.
pub fn reps(pairs: &[(&str, &str)]) -> LazyFrame {
    let ids: Vec<&str> = pairs.iter().map(|p| p.0).collect();
    let teams: Vec<&str> = pairs.iter().map(|p| p.1).collect();
    df!("rep_id" => &ids, "rep_name" => &ids, "team_id" => &teams)
        .expect("reps")
        .lazy()
}

/// Accepted deals: `(deal_id, rep_id, created, status, closed, amount, list_amount)`, dates as
/// `YYYY-MM-DD` (created at midnight UTC).
pub type DealRow<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    f64,
    Option<f64>,
);

/// Team segments of `reps` (and `memberships`) with the rep and team codes the tables stage reads.
pub fn coded_segments(reps: LazyFrame, memberships: Option<LazyFrame>) -> PolarsResult<LazyFrame> {
    let segments = crate::metrics::entities::team_segments(reps.clone(), true, memberships)?;
    let rep_codes = reps
        .select([col(crate::columns::REP_ID)])
        .with_row_index(crate::columns::REP_CODE, None);
    let codes = crate::metrics::entities::Codes::new(rep_codes, segments.clone());
    Ok(codes.on_segments(segments))
}

pub fn deals(rows: &[DealRow]) -> LazyFrame {
    let created: Vec<String> = rows.iter().map(|r| format!("{}T00:00:00Z", r.2)).collect();
    let created: Vec<&str> = created.iter().map(String::as_str).collect();
    DataFrame::new_infer_height(vec![
        Column::new(
            "deal_id".into(),
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        ),
        Column::new(
            "rep_id".into(),
            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        ),
        timestamps("created_at", &created),
        Column::new(
            "status".into(),
            rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        ),
        dates("closed_at", &rows.iter().map(|r| r.4).collect::<Vec<_>>()),
        dates(
            "expected_close_date",
            &rows.iter().map(|r| r.4).collect::<Vec<_>>(),
        ),
        Column::new(
            "amount".into(),
            rows.iter().map(|r| r.5).collect::<Vec<_>>(),
        ),
        Column::new(
            "list_amount".into(),
            rows.iter().map(|r| r.6).collect::<Vec<_>>(),
        ),
    ])
    .expect("deals")
    .lazy()
}

/// Accepted memberships: `(rep_id, team_id, valid_from, valid_to)`.
pub fn memberships(rows: &[(&str, &str, &str, Option<&str>)]) -> LazyFrame {
    DataFrame::new_infer_height(vec![
        Column::new(
            "rep_id".into(),
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        ),
        Column::new(
            "team_id".into(),
            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        ),
        dates(
            "valid_from",
            &rows.iter().map(|r| Some(r.2)).collect::<Vec<_>>(),
        ),
        dates("valid_to", &rows.iter().map(|r| r.3).collect::<Vec<_>>()),
        Column::new(
            "source_row".into(),
            (1..=rows.len() as u32).collect::<Vec<_>>(),
        ),
    ])
    .expect("memberships")
    .lazy()
}

/// Accepted quotas: `(rep_id, period_start, period_end, quota_amount)`.
pub fn quotas(rows: &[(&str, &str, &str, f64)]) -> LazyFrame {
    DataFrame::new_infer_height(vec![
        Column::new(
            "rep_id".into(),
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        ),
        dates(
            "period_start",
            &rows.iter().map(|r| Some(r.1)).collect::<Vec<_>>(),
        ),
        dates(
            "period_end",
            &rows.iter().map(|r| Some(r.2)).collect::<Vec<_>>(),
        ),
        Column::new(
            "quota_amount".into(),
            rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        ),
    ])
    .expect("quotas")
    .lazy()
}

/// Prepared inputs with UTC reporting and a calendar fiscal year.
pub fn prepared(
    reps: LazyFrame,
    memberships: Option<LazyFrame>,
    quotas: Option<LazyFrame>,
    deals: Option<LazyFrame>,
    as_of: &str,
) -> crate::inputs::prepare::Prepared {
    let accepted = Accepted {
        reps: Some(reps),
        reps_have_team: true,
        memberships,
        quotas,
        deals,
        deals_have_list_amount: true,
        ..Default::default()
    };
    prepare(accepted, as_of)
}

/// Prepared inputs from any accepted frames (UTC, calendar year, default settings, all metrics).
pub fn prepare(accepted: Accepted, as_of: &str) -> crate::inputs::prepare::Prepared {
    prepare_with(
        accepted,
        as_of,
        chrono_tz::UTC,
        crate::metrics::Settings::default(),
    )
}

/// Deals with their own expected close date:
/// `(deal_id, rep_id, created (RFC 3339), status, closed, expected, amount)`.
pub type SlipRow<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    &'a str,
    f64,
);

pub fn deals_expected(rows: &[SlipRow]) -> LazyFrame {
    DataFrame::new_infer_height(vec![
        Column::new(
            "deal_id".into(),
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        ),
        Column::new(
            "rep_id".into(),
            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        ),
        timestamps("created_at", &rows.iter().map(|r| r.2).collect::<Vec<_>>()),
        Column::new(
            "status".into(),
            rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        ),
        dates("closed_at", &rows.iter().map(|r| r.4).collect::<Vec<_>>()),
        dates(
            "expected_close_date",
            &rows.iter().map(|r| Some(r.5)).collect::<Vec<_>>(),
        ),
        Column::new(
            "amount".into(),
            rows.iter().map(|r| r.6).collect::<Vec<_>>(),
        ),
        Column::new(
            "list_amount".into(),
            rows.iter().map(|_| None::<f64>).collect::<Vec<_>>(),
        ),
    ])
    .expect("deals")
    .lazy()
}

/// Accepted deal_history rows: `(deal_id, changed_at (RFC 3339), field, old, new)`.
pub fn history(rows: &[(&str, &str, &str, &str, &str)]) -> LazyFrame {
    DataFrame::new_infer_height(vec![
        Column::new(
            "deal_id".into(),
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        ),
        timestamps("changed_at", &rows.iter().map(|r| r.1).collect::<Vec<_>>()),
        Column::new("field".into(), rows.iter().map(|r| r.2).collect::<Vec<_>>()),
        Column::new(
            "old_value".into(),
            rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        ),
        Column::new(
            "new_value".into(),
            rows.iter().map(|r| r.4).collect::<Vec<_>>(),
        ),
        Column::new(
            "source_row".into(),
            (1..=rows.len() as u32).collect::<Vec<_>>(),
        ),
    ])
    .expect("history")
    .lazy()
}

/// Accepted leads: `(lead_id, owner, created_at (RFC 3339))`.
pub fn leads(rows: &[(&str, Option<&str>, &str)]) -> LazyFrame {
    DataFrame::new_infer_height(vec![
        Column::new(
            "lead_id".into(),
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        ),
        Column::new(
            "rep_id".into(),
            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        ),
        timestamps("created_at", &rows.iter().map(|r| r.2).collect::<Vec<_>>()),
    ])
    .expect("leads")
    .lazy()
}

/// Accepted activities:
/// `(activity_id, rep_id, lead_id, deal_id, type, direction, started_at (RFC 3339), minutes)`.
pub type ActivityRow<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    &'a str,
    &'a str,
    &'a str,
    Option<f64>,
);

pub fn activities(rows: &[ActivityRow]) -> LazyFrame {
    DataFrame::new_infer_height(vec![
        Column::new(
            "activity_id".into(),
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        ),
        Column::new(
            "rep_id".into(),
            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        ),
        Column::new(
            "lead_id".into(),
            rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        ),
        Column::new(
            "deal_id".into(),
            rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        ),
        Column::new(
            "activity_type".into(),
            rows.iter().map(|r| r.4).collect::<Vec<_>>(),
        ),
        Column::new(
            "direction".into(),
            rows.iter().map(|r| r.5).collect::<Vec<_>>(),
        ),
        timestamps("started_at", &rows.iter().map(|r| r.6).collect::<Vec<_>>()),
        Column::new(
            "duration_minutes".into(),
            rows.iter().map(|r| r.7).collect::<Vec<_>>(),
        ),
    ])
    .expect("activities")
    .lazy()
}

/// `rep_id`, `rep_name`, `team_id`, `role` from `(rep, team, role)`.
pub fn reps_with_roles(rows: &[(&str, &str, &str)]) -> LazyFrame {
    let ids: Vec<&str> = rows.iter().map(|p| p.0).collect();
    df!(
        "rep_id" => &ids,
        "rep_name" => &ids,
        "team_id" => rows.iter().map(|p| p.1).collect::<Vec<_>>(),
        "role" => rows.iter().map(|p| p.2).collect::<Vec<_>>()
    )
    .expect("reps")
    .lazy()
}

/// Like [`prepare`], with a reporting time zone and settings of the test's choice.
pub fn prepare_with(
    accepted: Accepted,
    as_of: &str,
    tz: chrono_tz::Tz,
    settings: crate::metrics::Settings,
) -> crate::inputs::prepare::Prepared {
    prepare_for(
        &accepted,
        as_of,
        tz,
        Calendar::new(1).expect("calendar"),
        &crate::calendar::Grain::ALL,
        settings,
    )
}

/// Like [`prepare_with`], with the calendar and the grains the tables may ask for of the
/// test's choice too.
pub fn prepare_for(
    accepted: &Accepted,
    as_of: &str,
    tz: chrono_tz::Tz,
    calendar: Calendar,
    grains: &[crate::calendar::Grain],
    settings: crate::metrics::Settings,
) -> crate::inputs::prepare::Prepared {
    let mut p =
        crate::inputs::prepare::Prepared::new(accepted, d(as_of), tz, calendar, grains, settings)
            .expect("prepared");
    // Collected as a run's inputs stage collects them.
    let frames = crate::exec::collect_all(p.input_plans(), polars::prelude::Engine::InMemory)
        .expect("prepared frames");
    p.materialize(frames).expect("materialized");
    p
}
