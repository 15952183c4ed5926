//! Period dimension frames for one grain: the periods of the window and a day → period map.
//!
//! Events are placed in periods by their reporting-time-zone date ([`PeriodFrames::place`]),
//! which also filters them to the window. Both are generated from the calendar (a few
//! thousand rows at most), never from the data.

use chrono::NaiveDate;
use polars::prelude::*;

use crate::calendar::Period;
use crate::columns::{IS_PARTIAL_PERIOD, PERIOD, PERIOD_END, PERIOD_IDX, PERIOD_START};
use crate::metrics::dates::epoch_days;
use crate::metrics::entities::CodeSpace;

#[derive(Clone)]
pub struct PeriodFrames {
    /// The periods, in order; `period_idx` = position + the first index.
    pub periods_list: Vec<Period>,
    /// `period_idx` (i32, consecutive), `period`, `period_start`, `period_end`, `is_partial_period`.
    pub periods: LazyFrame,
    /// `period_idx` of each day of the window, in order from `first_day`
    /// ([`PeriodFrames::place`]).
    day_periods: Series,
    /// `period_start` and `period_end` of each period, in order
    /// ([`PeriodFrames::with_bounds`]).
    starts: Series,
    ends: Series,
    first_idx: i32,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    /// How many reps and teams the run numbers, when known: the level roll-ups then add up
    /// sums per rep and team ([`crate::metrics::levels::Sums`]).
    pub code_space: Option<CodeSpace>,
}

impl PeriodFrames {
    /// Frames for `periods` (consecutive, in order); a period ending after `as_of` is partial.
    pub fn new(periods: &[Period], as_of: NaiveDate) -> PolarsResult<PeriodFrames> {
        Self::with_first_idx(periods, as_of, 0)
    }

    /// As [`PeriodFrames::new`], numbering periods from `first_idx` (e.g. −1 for a period
    /// added in front of a window, so the window keeps its indices).
    pub fn with_first_idx(
        periods: &[Period],
        as_of: NaiveDate,
        first_idx: i32,
    ) -> PolarsResult<PeriodFrames> {
        let n = periods.len() as i32;
        let idx: Vec<i32> = (first_idx..first_idx + n).collect();
        let labels: Vec<&str> = periods.iter().map(|p| p.label.as_str()).collect();
        let starts: Vec<i32> = periods.iter().map(|p| epoch_days(p.start)).collect();
        let ends: Vec<i32> = periods.iter().map(|p| epoch_days(p.end)).collect();
        let partial: Vec<bool> = periods.iter().map(|p| p.end > as_of).collect();
        let periods_df = DataFrame::new_infer_height(vec![
            Column::new(PERIOD_IDX.into(), idx),
            Column::new(PERIOD.into(), labels),
            Column::new(PERIOD_START.into(), &starts).cast(&DataType::Date)?,
            Column::new(PERIOD_END.into(), &ends).cast(&DataType::Date)?,
            Column::new(IS_PARTIAL_PERIOD.into(), partial),
        ])?;
        let mut day_idx = Vec::new();
        for (i, p) in periods.iter().enumerate() {
            for _ in epoch_days(p.start)..=epoch_days(p.end) {
                day_idx.push(first_idx + i as i32);
            }
        }
        let day_periods = Series::new(PERIOD_IDX.into(), &day_idx);
        let bound = |name: &str, days: &[i32]| Series::new(name.into(), days).cast(&DataType::Date);
        let (starts_s, ends_s) = (bound(PERIOD_START, &starts)?, bound(PERIOD_END, &ends)?);
        let first_day = periods.first().map(|p| p.start).unwrap_or(as_of);
        let last_day = periods.last().map(|p| p.end).unwrap_or(as_of);
        Ok(PeriodFrames {
            periods_list: periods.to_vec(),
            periods: periods_df.lazy(),
            day_periods,
            starts: starts_s,
            ends: ends_s,
            first_idx,
            first_day,
            last_day,
            code_space: None,
        })
    }

    /// These frames with the run's [`CodeSpace`], when it is known.
    pub fn with_code_space(mut self, space: Option<CodeSpace>) -> Self {
        self.code_space = space;
        self
    }

    /// Adds `period_start` and `period_end` to rows with a `period_idx` of these periods, by
    /// lookup (no join).
    pub fn with_bounds(&self, rows: LazyFrame) -> LazyFrame {
        let i = || col(PERIOD_IDX) - lit(self.first_idx);
        rows.with_columns([
            lit(self.starts.clone())
                .gather(i(), false)
                .alias(PERIOD_START),
            lit(self.ends.clone()).gather(i(), false).alias(PERIOD_END),
        ])
    }

    /// Adds `period_idx` to events by their date column; events outside the window (or
    /// without a date) drop out.
    ///
    /// The window's days are consecutive, so a day's period is a lookup by its offset from the
    /// first day: no join with a table of days, and the events keep their order.
    pub fn place(&self, events: LazyFrame, date_col: &str) -> LazyFrame {
        let first = lit(epoch_days(self.first_day));
        let offset = || col(date_col).cast(DataType::Int32) - first.clone();
        let n_days = self.day_periods.len() as i32;
        events
            .filter(offset().gt_eq(lit(0)).and(offset().lt(lit(n_days))))
            .with_column(
                lit(self.day_periods.clone())
                    .gather(offset(), false)
                    .alias(PERIOD_IDX),
            )
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::calendar::Grain;
    use crate::testutil::{d, dates, periods, rows};

    #[test]
    fn place_keeps_window_days_in_order_with_their_period_and_bounds() -> PolarsResult<()> {
        // Window Jan–Feb 2024 with first index -1 (as deal_size extends it): the day before
        // and after the window and a missing date drop out; the rest keep their order.
        let pf = PeriodFrames::with_first_idx(
            &periods(Grain::Month, "2024-01-01", "2024-02-29"),
            d("2024-06-30"),
            -1,
        )?;
        let events = DataFrame::new_infer_height(vec![
            dates(
                "day",
                &[
                    Some("2024-02-29"),
                    Some("2023-12-31"),
                    Some("2024-01-01"),
                    None,
                    Some("2024-03-01"),
                    Some("2024-01-31"),
                    Some("2024-02-01"),
                ],
            ),
            Column::new("n".into(), [1, 2, 3, 4, 5, 6, 7]),
        ])?;
        let out = pf.with_bounds(pf.place(events.lazy(), "day")).collect()?;
        assert_eq!(
            rows(&out, &["n", PERIOD_IDX, PERIOD_START, PERIOD_END]),
            [
                "1|0|2024-02-01|2024-02-29",
                "3|-1|2024-01-01|2024-01-31",
                "6|-1|2024-01-01|2024-01-31",
                "7|0|2024-02-01|2024-02-29"
            ]
        );
        Ok(())
    }
}
