//! Metric registry and the shared input preparation.
//!
//! Each metric module is a set of pure functions from lazy frames to a lazy frame. This module
//! maps a [`MetricId`] to them, prepares the shared inputs once ([`Prepared`]: deals as of the
//! as-of date, team segments, names) and finishes every table the same way
//! ([`levels::finish`]).

pub mod deal_size;
pub mod entities;
pub mod levels;
pub mod periods;
pub mod quota_attainment;
#[cfg(test)]
pub mod testutil;

use chrono::NaiveDate;
use chrono_tz::Tz;
use polars::prelude::*;

use crate::calendar::{Calendar, Period};
use crate::columns::{
    AMOUNT, CLOSED_AT, CLOSED_DATE, CREATED_AT, CREATED_DATE, DEAL_ID, EXPECTED_CLOSE_DATE,
    LIST_AMOUNT, PERIOD_IDX, REP_ID, REP_NAME, STATUS, TEAM_ID, TEAM_NAME, Table,
};
use crate::error::Error;
use crate::io::scan::to_local_date;
use levels::Dimensions;
use periods::{PeriodFrames, date_lit};

/// The metric tables this build computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricId {
    QuotaAttainment,
    DealSize,
}

impl MetricId {
    pub const ALL: [MetricId; 2] = [MetricId::QuotaAttainment, MetricId::DealSize];

    /// The metric's name, which is also its output table's name.
    pub fn name(self) -> &'static str {
        match self {
            MetricId::QuotaAttainment => "quota_attainment",
            MetricId::DealSize => "deal_size",
        }
    }

    pub fn parse(s: &str) -> Result<MetricId, Error> {
        MetricId::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = MetricId::ALL.iter().map(|m| m.name()).collect();
                Error::config(format!(
                    "`{s}` is not a known metric; known: {}",
                    known.join(", ")
                ))
            })
    }

    /// Input tables the metric cannot do without.
    pub fn required_tables(self) -> &'static [Table] {
        match self {
            MetricId::QuotaAttainment => &[Table::Reps, Table::Quotas, Table::Deals],
            MetricId::DealSize => &[Table::Reps, Table::Deals],
        }
    }

    /// Metric columns, after the shared leading ones.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            MetricId::QuotaAttainment => &quota_attainment::COLUMNS,
            MetricId::DealSize => &deal_size::COLUMNS,
        }
    }
}

/// Accepted input frames, as [`crate::io::scan::Input::accepted`] returns them.
#[derive(Clone, Default)]
pub struct Accepted {
    pub reps: Option<LazyFrame>,
    pub reps_have_team: bool,
    pub teams: Option<LazyFrame>,
    pub memberships: Option<LazyFrame>,
    pub quotas: Option<LazyFrame>,
    pub deals: Option<LazyFrame>,
    pub deals_have_list_amount: bool,
}

/// Inputs reduced to what metrics use, as of the as-of date.
#[derive(Clone)]
pub struct Prepared {
    pub dims: Dimensions,
    /// `deal_id`, `rep_id`, `created_date`, `status`, `closed_date`, `expected_close_date`,
    /// `amount`, `list_amount`; deals created after as-of dropped, closed after it reopened.
    pub deals: Option<LazyFrame>,
    pub quotas: Option<LazyFrame>,
    pub calendar: Calendar,
}

impl Prepared {
    pub fn new(
        a: &Accepted,
        as_of: NaiveDate,
        reporting: Tz,
        calendar: Calendar,
    ) -> Result<Prepared, Error> {
        let reps = a
            .reps
            .clone()
            .ok_or_else(|| Error::config("the reps table is required"))?;
        let segments =
            entities::team_segments(reps.clone(), a.reps_have_team, a.memberships.clone())
                .map_err(|e| Error::Config(format!("internal error (a bug): {e}")))?
                .cache();
        let rep_names = reps.select([col(REP_ID), col(REP_NAME)]);
        let team_names = match &a.teams {
            Some(t) => t.clone().select([col(TEAM_ID), col(TEAM_NAME)]),
            None => DataFrame::new_infer_height(vec![
                Column::new_empty(TEAM_ID.into(), &DataType::String),
                Column::new_empty(TEAM_NAME.into(), &DataType::String),
            ])
            .map_err(|e| Error::Config(format!("internal error (a bug): {e}")))?
            .lazy(),
        };
        let deals = a
            .deals
            .clone()
            .map(|d| deals_as_of(d, as_of, reporting, a.deals_have_list_amount).cache());
        Ok(Prepared {
            dims: Dimensions {
                rep_names,
                team_names,
                segments,
                as_of,
                extra_sort: vec![],
            },
            deals,
            quotas: a.quotas.clone(),
            calendar,
        })
    }

    /// The finished table of `id` for `periods` (one grain, consecutive periods).
    pub fn table(&self, id: MetricId, periods: &[Period]) -> PolarsResult<LazyFrame> {
        let as_of = self.dims.as_of;
        match id {
            MetricId::QuotaAttainment => {
                let pf = PeriodFrames::new(periods, as_of)?;
                let deals = self.need(&self.deals, Table::Deals)?;
                let quotas = self.need(&self.quotas, Table::Quotas)?;
                let won = self.won_deals(deals, &pf);
                let shares =
                    quota_attainment::quota_shares(quotas, self.dims.segments.clone(), &pf)?;
                let rows = quota_attainment::quota_attainment(won, shares, &pf)?;
                levels::finish(rows, &pf, &self.dims, id.columns())
            }
            MetricId::DealSize => {
                // One extra period in front, so the first reported period has a predecessor.
                let mut extended = Vec::with_capacity(periods.len() + 1);
                if let Some(first) = periods.first() {
                    extended.push(self.calendar.prev(first));
                }
                extended.extend_from_slice(periods);
                let pf = PeriodFrames::new(&extended, as_of)?;
                let won = self.won_deals(self.need(&self.deals, Table::Deals)?, &pf);
                let rows = deal_size::deal_size(won, &pf)?.filter(col(PERIOD_IDX).gt_eq(lit(1)));
                levels::finish(rows, &pf, &self.dims, id.columns())
            }
        }
    }

    fn need(&self, lf: &Option<LazyFrame>, table: Table) -> PolarsResult<LazyFrame> {
        lf.clone()
            .ok_or_else(|| polars_err!(ComputeError: "the {} table is not configured", table))
    }

    /// Deals won in the window, placed in periods by close date and credited to the owner's team
    /// on that date.
    fn won_deals(&self, deals: LazyFrame, pf: &PeriodFrames) -> LazyFrame {
        let won = deals.filter(is_won().and(col(CLOSED_DATE).is_not_null()));
        entities::with_team_on(
            pf.place(won, CLOSED_DATE),
            CLOSED_DATE,
            self.dims.segments.clone(),
        )
    }
}

/// `status = won`.
pub fn is_won() -> Expr {
    col(STATUS).eq(lit("won"))
}

/// SPEC §11 "Time": as of T, a deal created after T is ignored and one closed after T is open.
pub fn deals_as_of(
    deals: LazyFrame,
    as_of: NaiveDate,
    reporting: Tz,
    has_list_amount: bool,
) -> LazyFrame {
    let t = date_lit(as_of);
    let closed_late = col(CLOSED_AT).gt(t.clone()).fill_null(lit(false));
    let list = if has_list_amount {
        col(LIST_AMOUNT)
    } else {
        lit(NULL).cast(DataType::Float64).alias(LIST_AMOUNT)
    };
    deals
        .with_column(to_local_date(col(CREATED_AT), reporting).alias(CREATED_DATE))
        .filter(col(CREATED_DATE).lt_eq(t))
        .select([
            col(DEAL_ID),
            col(REP_ID),
            col(CREATED_AT),
            col(CREATED_DATE),
            when(closed_late.clone())
                .then(lit("open"))
                .otherwise(col(STATUS))
                .alias(STATUS),
            when(closed_late)
                .then(lit(NULL).cast(DataType::Date))
                .otherwise(col(CLOSED_AT))
                .alias(CLOSED_DATE),
            col(EXPECTED_CLOSE_DATE),
            col(AMOUNT),
            list,
        ])
}
