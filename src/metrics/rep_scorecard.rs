//! Rep scorecard: the headline figure of every metric per rep, team, company and period
//! (SPEC §6.6), each beside its numerator and denominator.
//!
//! Rows are the union of the entity's rows in the other tables of this run and grain; a metric
//! that was not computed in this run (or has no row for the entity) gives nulls, and the
//! company row of every period always exists. The response-time figure is the median
//! first-touch response, with first-touch requests and responses beside it. Built from the
//! already-collected tables, so nothing is computed twice.
//!
//! Example (one rep, one month; slippage not computed in this run):
//!
//! | attainment_pct | bookings | quota  | slippage_rate_pct | median_first_touch_response_minutes | avg_deal_size | selling_time_pct |
//! |----------------|----------|--------|-------------------|-------------------------------------|---------------|------------------|
//! | 130            | 39 000   | 30 000 | null              | 45                                  | 19 500        | 40               |

use polars::prelude::*;

use crate::columns::{
    ATTAINMENT_PCT, AVG_DEAL_SIZE, BOOKINGS, DEALS_DUE, DEALS_SLIPPED, FIRST_TOUCH_REQUESTS,
    FIRST_TOUCH_RESPONDED, LEVEL, MEDIAN_FIRST_TOUCH_RESPONSE_MINUTES, NON_SELLING_MINUTES, QUOTA,
    REP_ID, SELLING_MINUTES, SELLING_TIME_PCT, SLIPPAGE_RATE_PCT, TEAM_ID, WON_AMOUNT, WON_DEALS,
};
use crate::columns::{IS_PARTIAL_PERIOD, PERIOD, PERIOD_END, PERIOD_START, REP_NAME, TEAM_NAME};
use crate::metrics::levels::{COMPANY, ordered};
use crate::metrics::periods::PeriodFrames;

/// Output columns after the shared ones, with their types.
pub const COLUMNS: [(&str, DataType); 15] = [
    (ATTAINMENT_PCT, DataType::Float64),
    (BOOKINGS, DataType::Float64),
    (QUOTA, DataType::Float64),
    (SLIPPAGE_RATE_PCT, DataType::Float64),
    (DEALS_SLIPPED, DataType::Int64),
    (DEALS_DUE, DataType::Int64),
    (MEDIAN_FIRST_TOUCH_RESPONSE_MINUTES, DataType::Float64),
    (FIRST_TOUCH_REQUESTS, DataType::Int64),
    (FIRST_TOUCH_RESPONDED, DataType::Int64),
    (AVG_DEAL_SIZE, DataType::Float64),
    (WON_AMOUNT, DataType::Float64),
    (WON_DEALS, DataType::Int64),
    (SELLING_TIME_PCT, DataType::Float64),
    (SELLING_MINUTES, DataType::Float64),
    (NON_SELLING_MINUTES, DataType::Float64),
];

pub fn column_names() -> Vec<&'static str> {
    COLUMNS.iter().map(|c| c.0).collect()
}

/// Merges finished tables of one grain into one row per entity and period.
///
/// `parts`: finished tables (see [`crate::metrics::levels::finish`]) reduced to the shared
/// columns plus scorecard columns. A rep row shows the same team in every table (its team on
/// the last day of the period), so rows match on period, level, team and rep.
pub fn rep_scorecard(parts: Vec<LazyFrame>, periods: &PeriodFrames) -> PolarsResult<LazyFrame> {
    let mut skeleton = vec![
        Column::new_empty(LEVEL.into(), &DataType::String),
        Column::new_empty(TEAM_ID.into(), &DataType::String),
        Column::new_empty(TEAM_NAME.into(), &DataType::String),
        Column::new_empty(REP_ID.into(), &DataType::String),
        Column::new_empty(REP_NAME.into(), &DataType::String),
    ];
    skeleton.extend(
        COLUMNS
            .iter()
            .map(|(name, dtype)| Column::new_empty((*name).into(), dtype)),
    );
    // The company row of every period exists even when no metric table was computed.
    let company = periods
        .periods
        .clone()
        .with_column(lit(COMPANY).alias(LEVEL));
    let mut frames = vec![DataFrame::new_infer_height(skeleton)?.lazy(), company];
    frames.extend(parts);
    let mut aggs = vec![
        col(TEAM_NAME).max(),
        col(REP_NAME).max(),
        col(PERIOD_START).max(),
        col(PERIOD_END).max(),
        col(IS_PARTIAL_PERIOD).max(),
    ];
    // Each entity appears at most once per source table, so at most one value per column is
    // non-null within a group and `max` picks it.
    aggs.extend(COLUMNS.iter().map(|(name, _)| col(*name).max()));
    let rows = concat_lf_diagonal(frames, UnionArgs::default())?
        .group_by([col(PERIOD), col(LEVEL), col(TEAM_ID), col(REP_ID)])
        .agg(aggs);
    Ok(ordered(rows, PERIOD_START, &[], &column_names()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Grain;
    use crate::metrics::{MetricId, Settings};
    use crate::testutil::*;

    #[test]
    fn company_rows_exist_without_any_other_table() -> PolarsResult<()> {
        let p = prepare(
            Accepted {
                reps: Some(reps(&[("R1", "T1")])),
                reps_have_team: true,
                ..Default::default()
            },
            "2024-02-29",
        );
        let df = p
            .metrics
            .scorecard(&periods(Grain::Month, "2024-01-01", "2024-02-01"), &[])?
            .collect()?;
        assert_eq!(
            rows(
                &df,
                &["period", "level", "rep_id", ATTAINMENT_PCT, WON_DEALS]
            ),
            ["2024-01|company|-|-|-", "2024-02|company|-|-|-"]
        );
        Ok(())
    }

    #[test]
    fn union_of_entities_and_nulls_for_metrics_not_computed() -> PolarsResult<()> {
        // R1 has a quota and a win; R2 only a won deal (no quota). Slippage, response time and
        // selling time are not in this run: their columns are null.
        let accepted = Accepted {
            reps: Some(reps(&[("R1", "T1"), ("R2", "T1")])),
            reps_have_team: true,
            quotas: Some(quotas(&[("R1", "2024-01-01", "2024-01-31", 1_000.0)])),
            deals: Some(deals(&[
                (
                    "D1",
                    "R1",
                    "2024-01-02",
                    "won",
                    Some("2024-01-10"),
                    500.0,
                    None,
                ),
                (
                    "D2",
                    "R2",
                    "2024-01-02",
                    "won",
                    Some("2024-01-11"),
                    300.0,
                    None,
                ),
            ])),
            ..Default::default()
        };
        let p = prepare_with(accepted, "2024-01-31", chrono_tz::UTC, Settings::default());
        let jan = periods(Grain::Month, "2024-01-01", "2024-01-01");
        let mut done = Vec::new();
        for id in [MetricId::QuotaAttainment, MetricId::DealSize] {
            done.push((id, p.metrics.table(id, &jan)?.collect()?));
        }
        let df = p.metrics.scorecard(&jan, &done)?.collect()?;
        let cols = [
            "level",
            "rep_id",
            ATTAINMENT_PCT,
            BOOKINGS,
            QUOTA,
            AVG_DEAL_SIZE,
            WON_DEALS,
            SLIPPAGE_RATE_PCT,
            SELLING_TIME_PCT,
        ];
        assert_eq!(
            rows(&df, &cols),
            [
                "company|-|80.0|800.0|1000.0|400.0|2|-|-",
                "team|-|80.0|800.0|1000.0|400.0|2|-|-",
                "rep|R1|50.0|500.0|1000.0|500.0|1|-|-",
                "rep|R2|-|300.0|-|300.0|1|-|-",
            ]
        );
        assert_eq!(df.column(WON_DEALS)?.dtype(), &DataType::Int64);
        Ok(())
    }
}
