//! The metric registry: a [`MetricId`] per table of SPEC §6, and [`MetricInputs::table`],
//! which maps it to its module's plan and finishes every table the same way
//! ([`levels::finish`]).
//!
//! Each metric module holds one metric's formula (in its `//!`), its plan, its output columns
//! and its tests; `levels`, `periods`, `entities` and `dates` are the roll-ups and date
//! arithmetic they share. Metric code builds lazy plans only: it reads no files, imports
//! nothing from `inputs`, `output` or `storage`, and collects nothing.

pub mod dates;
pub mod deal_size;
pub mod deal_slippage;
pub mod entities;
pub mod lead_response_time;
pub mod levels;
pub mod periods;
pub mod quota_attainment;
pub mod rep_scorecard;
pub mod selling_time;

use chrono_tz::Tz;
use polars::prelude::*;

use crate::calendar::{Calendar, Grain, Period};
use crate::columns::{
    ATTAINMENT_PCT, AVG_DEAL_SIZE, BOOKINGS, CLOSED_DATE, DEALS_DUE, DEALS_SLIPPED, FIRST_TOUCH,
    FIRST_TOUCH_REQUESTS, FIRST_TOUCH_RESPONDED, IS_PARTIAL_PERIOD, LEVEL,
    MEDIAN_FIRST_TOUCH_RESPONSE_MINUTES, MEDIAN_RESPONSE_MINUTES, NON_SELLING_MINUTES, PERIOD,
    PERIOD_END, PERIOD_IDX, PERIOD_START, QUOTA, REP_ID, REP_NAME, REQUESTS, RESPONDED,
    RESPONSE_KIND, SELLING_MINUTES, SELLING_TIME_PCT, SLIPPAGE_RATE_PCT, STATUS, TEAM_ID,
    TEAM_NAME, Table, WON_AMOUNT, WON_DEALS,
};
use crate::error::Error;
use levels::Dimensions;
use periods::PeriodFrames;
use selling_time::SellingSettings;

/// The metric tables of SPEC §6, in the order they are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricId {
    QuotaAttainment,
    DealSlippage,
    LeadResponseTime,
    DealSize,
    SellingTime,
    RepScorecard,
}

impl MetricId {
    pub const ALL: [MetricId; 6] = [
        MetricId::QuotaAttainment,
        MetricId::DealSlippage,
        MetricId::LeadResponseTime,
        MetricId::DealSize,
        MetricId::SellingTime,
        MetricId::RepScorecard,
    ];

    /// The metric's name, which is also its output table's name.
    pub fn name(self) -> &'static str {
        match self {
            MetricId::QuotaAttainment => "quota_attainment",
            MetricId::DealSlippage => "deal_slippage",
            MetricId::LeadResponseTime => "lead_response_time",
            MetricId::DealSize => "deal_size",
            MetricId::SellingTime => "selling_time",
            MetricId::RepScorecard => "rep_scorecard",
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

    /// Whether the table is built from the run's other finished tables (the scorecard) rather
    /// than from the inputs ([`MetricInputs::scorecard`]).
    pub fn is_derived(self) -> bool {
        self == MetricId::RepScorecard
    }

    /// Input tables the metric cannot do without.
    pub fn required_tables(self) -> &'static [Table] {
        match self {
            MetricId::QuotaAttainment => &[Table::Reps, Table::Quotas, Table::Deals],
            MetricId::DealSlippage | MetricId::DealSize => &[Table::Reps, Table::Deals],
            MetricId::LeadResponseTime => &[Table::Reps, Table::Leads, Table::Activities],
            MetricId::SellingTime => &[Table::Reps, Table::Activities],
            MetricId::RepScorecard => &[Table::Reps],
        }
    }
}

/// Metric settings from the pipeline file, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub sla_minutes: Vec<u32>,
    pub selling: SellingSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sla_minutes: vec![5, 60, 1440],
            selling: SellingSettings::default(),
        }
    }
}

/// The prepared frames the metric tables are computed from: the inputs as of the as-of date,
/// reduced to what the metrics read, the same for every grain. Built (and collected once) by
/// `inputs::prepare`; a frame is `None` when its input is not configured or no metric of the
/// run reads it.
#[derive(Clone)]
pub struct MetricInputs {
    pub dims: Dimensions,
    /// Deals won by T with a close date (`won_deals`).
    pub won: Option<LazyFrame>,
    pub quotas: Option<LazyFrame>,
    /// Pushes of expected close dates, with a deal history ([`deal_slippage::push_dates`]).
    pub push_dates: Option<LazyFrame>,
    /// Expected-close-date versions of every deal with what slippage reads of the deal and the
    /// owner's team ([`deal_slippage::expected_closes`]).
    pub expected_closes: Option<LazyFrame>,
    /// Lead-response requests of both kinds ([`lead_response_time::requests`]).
    pub requests: Option<LazyFrame>,
    /// Logged minutes per rep and day, or per rep and longer bucket ([`selling_time::daily`]).
    pub daily_minutes: Option<LazyFrame>,
    pub calendar: Calendar,
    /// The grains the tables may ask for: the minutes per rep are summed in buckets that lie
    /// in one period of each ([`selling_time::daily`]).
    pub grains: Vec<Grain>,
    pub reporting: Tz,
    pub settings: Settings,
}

impl MetricInputs {
    /// Output columns of `id`'s table after the shared ones.
    pub fn columns(&self, id: MetricId) -> Vec<String> {
        let owned = |cols: &[&str]| cols.iter().map(|c| c.to_string()).collect();
        match id {
            MetricId::QuotaAttainment => owned(&quota_attainment::COLUMNS),
            MetricId::DealSlippage => owned(&deal_slippage::COLUMNS),
            MetricId::LeadResponseTime => lead_response_time::columns(&self.settings.sla_minutes),
            MetricId::DealSize => owned(&deal_size::COLUMNS),
            MetricId::SellingTime => owned(&selling_time::COLUMNS),
            MetricId::RepScorecard => owned(&rep_scorecard::column_names()),
        }
    }

    /// The finished table of `id` for `periods` (one grain, consecutive periods); for the
    /// scorecard use [`MetricInputs::scorecard`].
    pub fn table(&self, id: MetricId, periods: &[Period]) -> PolarsResult<LazyFrame> {
        if let Some(p) = periods.iter().find(|p| !self.grains.contains(&p.grain)) {
            polars_bail!(ComputeError: "the inputs were prepared without the grain {}", p.grain.name());
        }
        let pf = PeriodFrames::new(periods, self.dims.as_of)?.with_code_space(self.dims.code_space);
        let rows = self.rows(id, &pf)?;
        let mut dims = self.dims.clone();
        if id == MetricId::LeadResponseTime {
            dims.extra_sort = vec![RESPONSE_KIND.to_string()];
        }
        let cols = self.columns(id);
        let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
        levels::finish(rows, &pf, &dims, &cols)
    }

    /// `id`'s rows at all levels, before names and order are added.
    fn rows(&self, id: MetricId, pf: &PeriodFrames) -> PolarsResult<LazyFrame> {
        let segments = || self.dims.segments.clone();
        let as_of = self.dims.as_of;
        match id {
            MetricId::QuotaAttainment => {
                let won = pf.place(need(&self.won, Table::Deals)?, CLOSED_DATE);
                let shares = quota_attainment::quota_shares(
                    need(&self.quotas, Table::Quotas)?,
                    segments(),
                    pf,
                )?;
                quota_attainment::quota_attainment(won, shares, pf)
            }
            MetricId::DealSlippage => deal_slippage::deal_slippage(
                need(&self.expected_closes, Table::Deals)?,
                self.push_dates.clone(),
                pf,
                as_of,
                self.reporting,
            ),
            MetricId::LeadResponseTime => lead_response_time::lead_response_time(
                need(&self.requests, Table::Activities)?,
                pf,
                &self.settings.sla_minutes,
            ),
            MetricId::DealSize => {
                // The same periods plus the one before, so the first has a predecessor.
                let mut extended = Vec::with_capacity(pf.periods_list.len() + 1);
                if let Some(first) = pf.periods_list.first() {
                    extended.push(self.calendar.prev(first));
                }
                extended.extend_from_slice(&pf.periods_list);
                let ext = PeriodFrames::with_first_idx(&extended, as_of, -1)?;
                let won = ext.place(need(&self.won, Table::Deals)?, CLOSED_DATE);
                Ok(deal_size::deal_size(won, &ext)?.filter(col(PERIOD_IDX).gt_eq(lit(0))))
            }
            MetricId::SellingTime => selling_time::selling_time(
                need(&self.daily_minutes, Table::Activities)?,
                segments(),
                pf,
                self.settings.selling.working_minutes_per_day,
            ),
            MetricId::RepScorecard => Err(polars_err!(
                ComputeError: "internal error (a bug): the scorecard is built from finished tables"
            )),
        }
    }

    /// The scorecard of one grain from this run's finished tables of that grain (each with the
    /// shared columns and `period`).
    pub fn scorecard(
        &self,
        periods: &[Period],
        done: &[(MetricId, DataFrame)],
    ) -> PolarsResult<LazyFrame> {
        let pf = PeriodFrames::new(periods, self.dims.as_of)?;
        let shared = || {
            [
                PERIOD,
                LEVEL,
                TEAM_ID,
                TEAM_NAME,
                REP_ID,
                REP_NAME,
                PERIOD_START,
                PERIOD_END,
                IS_PARTIAL_PERIOD,
            ]
            .map(col)
        };
        let mut parts = Vec::new();
        for (id, df) in done {
            let cols = match id {
                MetricId::QuotaAttainment => vec![col(ATTAINMENT_PCT), col(BOOKINGS), col(QUOTA)],
                MetricId::DealSlippage => {
                    vec![col(SLIPPAGE_RATE_PCT), col(DEALS_SLIPPED), col(DEALS_DUE)]
                }
                MetricId::LeadResponseTime => {
                    let is_first = col(RESPONSE_KIND).eq(lit(FIRST_TOUCH));
                    // Follow-up requests still make an entity's row exist, with null figures.
                    let when_first =
                        |c: &str| when(is_first.clone()).then(col(c)).otherwise(lit(NULL));
                    vec![
                        when_first(MEDIAN_RESPONSE_MINUTES)
                            .alias(MEDIAN_FIRST_TOUCH_RESPONSE_MINUTES),
                        when_first(REQUESTS).alias(FIRST_TOUCH_REQUESTS),
                        when_first(RESPONDED).alias(FIRST_TOUCH_RESPONDED),
                    ]
                }
                MetricId::DealSize => vec![col(AVG_DEAL_SIZE), col(WON_AMOUNT), col(WON_DEALS)],
                MetricId::SellingTime => vec![
                    col(SELLING_TIME_PCT),
                    col(SELLING_MINUTES),
                    col(NON_SELLING_MINUTES),
                ],
                MetricId::RepScorecard => continue,
            };
            parts.push(
                df.clone()
                    .lazy()
                    .select(shared().into_iter().chain(cols).collect::<Vec<_>>()),
            );
        }
        rep_scorecard::rep_scorecard(parts, &pf)
    }
}

fn need(lf: &Option<LazyFrame>, table: Table) -> PolarsResult<LazyFrame> {
    lf.clone()
        .ok_or_else(|| polars_err!(ComputeError: "the {} table is not configured", table))
}

/// `status = won`.
pub fn is_won() -> Expr {
    col(STATUS).eq(lit("won"))
}
