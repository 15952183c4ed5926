//! Metric registry and the shared input preparation.
//!
//! Each metric module is a set of pure functions from lazy frames to a lazy frame. This module
//! maps a [`MetricId`] to them, prepares the shared inputs once ([`Prepared`]: inputs as of the
//! as-of date, team segments, names) and finishes every table the same way
//! ([`levels::finish`]).

pub mod deal_size;
pub mod deal_slippage;
pub mod entities;
pub mod lead_response_time;
pub mod levels;
pub mod periods;
pub mod quota_attainment;
pub mod rep_scorecard;
pub mod selling_time;
#[cfg(test)]
pub mod testutil;

use chrono::NaiveDate;
use chrono_tz::Tz;
use polars::prelude::*;

use crate::calendar::{Calendar, Grain, Period};
use crate::columns::{
    ACTIVITY_ID, ACTIVITY_TYPE, AMOUNT, ATTAINMENT_PCT, AVG_DEAL_SIZE, BOOKINGS, CHANGED_AT,
    CLOSED_AT, CLOSED_DATE, CREATED_AT, CREATED_DATE, DATE, DEAL_CODE, DEAL_ID, DEALS_DUE,
    DEALS_SLIPPED, DIRECTION, DURATION_MINUTES, EXPECTED_CLOSE_DATE, FIELD, FIRST_TOUCH,
    FIRST_TOUCH_REQUESTS, FIRST_TOUCH_RESPONDED, IS_PARTIAL_PERIOD, LEAD_ID, LEVEL, LIST_AMOUNT,
    MEDIAN_FIRST_TOUCH_RESPONSE_MINUTES, MEDIAN_RESPONSE_MINUTES, NEW_VALUE, NON_SELLING_MINUTES,
    OLD_VALUE, PERIOD, PERIOD_END, PERIOD_IDX, PERIOD_START, QUOTA, REP_CODE, REP_ID, REP_NAME,
    REQUESTS, RESPONDED, RESPONSE_KIND, ROLE, SELLING_MINUTES, SELLING_TIME_PCT, SLIPPAGE_RATE_PCT,
    SOURCE_ROW, STARTED_AT, STATUS, TEAM_CODE, TEAM_ID, TEAM_NAME, Table, WON_AMOUNT, WON_DEALS,
};
use crate::error::Error;
use crate::io::scan::to_local_date;
use crate::text_norm::lowercased;
use lead_response_time::DealOrder;
use levels::Dimensions;
use periods::{PeriodFrames, date_lit};
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

/// Accepted input frames, as [`crate::io::scan::Input::accepted`] returns them.
#[derive(Clone, Default)]
pub struct Accepted {
    pub reps: Option<LazyFrame>,
    pub reps_have_team: bool,
    pub reps_have_role: bool,
    pub teams: Option<LazyFrame>,
    pub teams_have_name: bool,
    pub memberships: Option<LazyFrame>,
    pub quotas: Option<LazyFrame>,
    pub deals: Option<LazyFrame>,
    pub deals_have_list_amount: bool,
    pub deal_history: Option<LazyFrame>,
    pub leads: Option<LazyFrame>,
    pub activities: Option<LazyFrame>,
}

/// Inputs reduced to what metrics use, as of the as-of date.
#[derive(Clone)]
pub struct Prepared {
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
    /// Whether `requests` must be computed again in the exact deal order
    /// ([`lead_response_time::FollowUps::shared_hash`]; see [`Prepared::redo_requests_if_hashes_shared`]).
    requests_check: Option<LazyFrame>,
    /// What `requests` is computed from, for computing it in executions of its own
    /// ([`Prepared::take_request_sources`]).
    request_sources: Option<RequestSources>,
    /// Logged minutes per rep and day, or per rep and longer bucket ([`selling_time::daily`]).
    pub daily_minutes: Option<LazyFrame>,
    /// Distinct activity types that no selling-time list names: `activity_type`.
    pub unclassified: Option<LazyFrame>,
    pub calendar: Calendar,
    /// The grains the tables may ask for: the minutes per rep are summed in buckets that lie
    /// in one period of each ([`selling_time::daily`]).
    grains: Vec<Grain>,
    pub reporting: Tz,
    pub settings: Settings,
}

/// The prepared leads, activities and deal owners that the response-time requests come from,
/// for runs that compute the requests apart from the inputs stage (`run::StagedRequests`).
#[derive(Clone)]
pub struct RequestSources {
    leads: LazyFrame,
    activities: LazyFrame,
    /// `deal_id`, `rep_id` of the deals as of T, when there is a deals input.
    pub owners: Option<LazyFrame>,
    reporting: Tz,
}

impl RequestSources {
    /// First-touch requests ([`lead_response_time::first_touch_requests`]).
    pub fn first_touches(&self) -> LazyFrame {
        lead_response_time::first_touch_requests(self.leads.clone(), self.activities.clone())
    }

    /// The outbound activities on a lead ([`lead_response_time::touches`]), which
    /// [`RequestSources::first_touches_of`] reads.
    pub fn touches(&self) -> LazyFrame {
        lead_response_time::touches(self.activities.clone())
    }

    /// [`RequestSources::first_touches`] from `touches` ([`RequestSources::touches`]).
    pub fn first_touches_of(&self, touches: LazyFrame) -> LazyFrame {
        lead_response_time::first_touches_of(self.leads.clone(), touches)
    }

    /// Both kinds of request, assembled ([`RequestSources::assemble`]), with the follow-ups
    /// in `order`; and the follow-ups' [`lead_response_time::FollowUps::shared_hash`] check.
    pub fn requests(
        &self,
        order: DealOrder,
        segments: LazyFrame,
    ) -> PolarsResult<(LazyFrame, LazyFrame)> {
        let follow_ups = lead_response_time::follow_up_requests(
            self.activities.clone(),
            self.owners.clone(),
            order,
        )?;
        let requests = self.assemble(self.first_touches(), follow_ups.requests, segments)?;
        Ok((requests, follow_ups.shared_hash))
    }

    /// The activities of the deals in part `k` of `n`, as the follow-ups read them
    /// ([`lead_response_time::follow_up_rows`]); their requests come from
    /// [`lead_response_time::collect_follow_ups`].
    pub fn follow_up_rows(&self, k: u64, n: u64) -> LazyFrame {
        let rows = lead_response_time::follow_up_rows(self.activities.clone());
        lead_response_time::follow_up_part(rows, k, n)
    }

    /// Both kinds of request ([`lead_response_time::requests`]).
    pub fn assemble(
        &self,
        first_touches: LazyFrame,
        follow_ups: LazyFrame,
        segments: LazyFrame,
    ) -> PolarsResult<LazyFrame> {
        let reporting = self.reporting;
        lead_response_time::requests(
            first_touches,
            follow_ups,
            move |e| to_local_date(e, reporting),
            segments,
        )
    }
}

/// Collects several plans in one execution, so polars shares their common sub-plans (input
/// scans, parsing, the as-of preparation) instead of redoing them for every table.
pub fn collect_all(lfs: Vec<LazyFrame>, engine: Engine) -> PolarsResult<Vec<DataFrame>> {
    let Some(first) = lfs.first() else {
        return Ok(Vec::new());
    };
    let opt = first.get_current_optimizations();
    LazyFrame::collect_all_with_engine(
        lfs.into_iter().map(|lf| lf.logical_plan).collect(),
        engine,
        opt,
    )
}

fn bug(e: PolarsError) -> Error {
    Error::Config(format!("internal error (a bug): {e}"))
}

impl Prepared {
    pub fn new(
        a: &Accepted,
        as_of: NaiveDate,
        reporting: Tz,
        calendar: Calendar,
        grains: &[Grain],
        settings: Settings,
    ) -> Result<Prepared, Error> {
        let reps = a
            .reps
            .clone()
            .ok_or_else(|| Error::config("the reps table is required"))?;
        let role = if a.reps_have_role {
            lowercased(col(ROLE))
        } else {
            lit(NULL).cast(DataType::String)
        };
        // Each rep's row number rides along with the role: it is the rep's code in the tables
        // stage ([`entities::Codes`]) and in the minutes per rep-day (see
        // [`selling_time::daily`]). Cached, so every frame reads the same numbering even where
        // evaluating the reps twice could order them differently (reps from a `sql` query).
        let roles = reps
            .clone()
            .select([col(REP_ID), role.alias(ROLE)])
            .with_row_index(REP_CODE, None)
            .cache();
        let rep_codes = roles.clone().select([col(REP_CODE), col(REP_ID)]);
        let segments =
            entities::team_segments(reps.clone(), a.reps_have_team, a.memberships.clone())
                .map_err(bug)?
                .cache();
        let codes = entities::Codes::new(rep_codes, segments.clone());
        let segments = codes.on_segments(segments).cache();
        let rep_names = reps.clone().select([col(REP_ID), col(REP_NAME)]);
        let team_names = match (&a.teams, a.teams_have_name) {
            (Some(t), true) => t.clone().select([col(TEAM_ID), col(TEAM_NAME)]),
            _ => DataFrame::new_infer_height(vec![
                Column::new_empty(TEAM_ID.into(), &DataType::String),
                Column::new_empty(TEAM_NAME.into(), &DataType::String),
            ])
            .map_err(bug)?
            .lazy(),
        };
        let t = date_lit(as_of);
        // Numbered, for the slippage inputs' deal codes; cached, so every reader sees one
        // numbering.
        let deals = a.deals.clone().map(|d| {
            deals_as_of(d, as_of, reporting, a.deals_have_list_amount)
                .with_row_index(DEAL_CODE, None)
                .cache()
        });
        let changes = a.deal_history.clone().map(|h| {
            let as_date = |c: &str| deal_slippage::history_date(col(c));
            h.filter(lowercased(col(FIELD)).eq(lit("expected_close_date")))
                .select([
                    col(DEAL_ID),
                    col(CHANGED_AT),
                    as_date(OLD_VALUE).alias(OLD_VALUE),
                    as_date(NEW_VALUE).alias(NEW_VALUE),
                    col(SOURCE_ROW),
                ])
        });
        let leads = a.leads.clone().map(|l| {
            l.filter(to_local_date(col(CREATED_AT), reporting).lt_eq(t.clone()))
                .select([col(LEAD_ID), col(REP_ID), col(CREATED_AT)])
        });
        // Activities as of T, lower-cased; read by both activity metrics.
        let activities = a.activities.clone().map(|acts| {
            acts.with_column(to_local_date(col(STARTED_AT), reporting).alias(DATE))
                .filter(col(DATE).lt_eq(t.clone()))
                .select([
                    col(ACTIVITY_ID),
                    col(REP_ID),
                    col(LEAD_ID),
                    col(DEAL_ID),
                    lowercased(col(ACTIVITY_TYPE)).alias(ACTIVITY_TYPE),
                    lowercased(col(DIRECTION)).alias(DIRECTION),
                    col(STARTED_AT),
                    col(DATE),
                    col(DURATION_MINUTES),
                ])
                .cache()
        });
        let won = deals.clone().map(|d| won_deals(d, segments.clone()));
        let changes = match (changes, &deals) {
            (Some(c), Some(d)) => Some(deal_slippage::coded_changes(c, d.clone())),
            _ => None,
        };
        let push_dates = changes
            .clone()
            .map(|c| deal_slippage::push_dates(c, as_of, reporting));
        let expected_closes = match &deals {
            Some(d) => Some(deal_slippage::expected_closes(
                deal_slippage::versions(d.clone(), changes, as_of, reporting).map_err(bug)?,
                segments.clone(),
            )),
            None => None,
        };
        let request_sources = match (&leads, &activities) {
            (Some(leads), Some(acts)) => Some(RequestSources {
                leads: leads.clone(),
                activities: acts.clone(),
                owners: deals.clone().map(|d| d.select([col(DEAL_ID), col(REP_ID)])),
                reporting,
            }),
            _ => None,
        };
        let (requests, requests_check) = match &request_sources {
            Some(src) => {
                let (requests, check) = src
                    .requests(DealOrder::Hash, segments.clone())
                    .map_err(bug)?;
                (Some(requests), Some(check))
            }
            None => (None, None),
        };
        let classified = activities.clone().map(|acts| {
            let with_role = acts.join(
                selling_time::with_coarse(roles, a.memberships.clone(), grains),
                [col(REP_ID)],
                [col(REP_ID)],
                JoinArgs::new(JoinType::Left),
            );
            selling_time::classify(with_role, &settings.selling).cache()
        });
        let daily_minutes = classified
            .clone()
            .map(|c| selling_time::daily(c, segments.clone(), grains));
        let unclassified = classified.map(|c| {
            c.filter(col(selling_time::CATEGORY).eq(lit(selling_time::UNCLASSIFIED)))
                .select([col(ACTIVITY_TYPE)])
                .unique_stable(None, UniqueKeepStrategy::First)
        });
        Ok(Prepared {
            dims: Dimensions {
                rep_names,
                team_names,
                segments,
                codes,
                as_of,
                extra_sort: vec![],
            },
            won,
            quotas: a.quotas.clone(),
            expected_closes,
            push_dates,
            requests,
            requests_check,
            request_sources,
            daily_minutes,
            unclassified,
            calendar,
            grains: grains.to_vec(),
            reporting,
            settings,
        })
    }

    /// Every lazy input frame the metrics read, for [`Prepared::materialize`].
    fn frames_mut(&mut self) -> Vec<&mut LazyFrame> {
        let mut out = vec![
            &mut self.dims.rep_names,
            &mut self.dims.team_names,
            &mut self.dims.segments,
            &mut self.dims.codes.reps,
            &mut self.dims.codes.teams,
        ];
        for f in [
            &mut self.won,
            &mut self.quotas,
            &mut self.expected_closes,
            &mut self.push_dates,
            &mut self.requests,
            &mut self.requests_check,
            &mut self.daily_minutes,
            &mut self.unclassified,
        ]
        .into_iter()
        .flatten()
        {
            out.push(f);
        }
        out
    }

    /// Drops the prepared frames that none of `metrics` reads, so a run computes only what
    /// its tables need.
    pub fn retain_for(&mut self, metrics: &[MetricId]) {
        let uses = |m: &[MetricId]| metrics.iter().any(|x| m.contains(x));
        use MetricId::*;
        if !uses(&[QuotaAttainment, DealSlippage, DealSize]) {
            self.won = None;
        }
        if !uses(&[QuotaAttainment]) {
            self.quotas = None;
        }
        if !uses(&[DealSlippage]) {
            self.expected_closes = None;
            self.push_dates = None;
        }
        if !uses(&[LeadResponseTime]) {
            self.requests = None;
            self.requests_check = None;
            self.request_sources = None;
        }
        if !uses(&[SellingTime]) {
            self.daily_minutes = None;
            self.unclassified = None;
        }
    }

    /// Takes the response-time requests out of [`Prepared::input_plans`], to be computed in
    /// executions of their own ([`RequestSources`]); put them back with
    /// [`Prepared::set_requests`].
    pub fn take_request_sources(&mut self) -> Option<RequestSources> {
        self.requests_check = None;
        self.requests.take().and(self.request_sources.clone())
    }

    /// The response-time requests, collected.
    pub fn set_requests(&mut self, requests: DataFrame) {
        self.requests = Some(requests.lazy());
        self.requests_check = None;
    }

    /// After [`Prepared::materialize`]: when the follow-ups found two deal ids sharing a hash
    /// ([`DealOrder`]), computes the requests again in the exact order and returns true.
    pub fn redo_requests_if_hashes_shared(&mut self) -> PolarsResult<bool> {
        let (Some(check), Some(src)) = (&self.requests_check, &self.request_sources) else {
            return Ok(false);
        };
        if !lead_response_time::hashes_shared(&check.clone().collect()?)? {
            return Ok(false);
        }
        let requests = src
            .requests(DealOrder::HashThenId, self.dims.segments.clone())?
            .0
            .collect_with_engine(Engine::Streaming)?
            .unwrap_single();
        self.set_requests(requests);
        Ok(true)
    }

    /// The plans of every prepared input, in a fixed order; pass their results, collected, to
    /// [`Prepared::materialize`].
    pub fn input_plans(&mut self) -> Vec<LazyFrame> {
        self.frames_mut().into_iter().map(|f| f.clone()).collect()
    }

    /// Replaces every prepared input by its collected frame (`dfs` in [`Prepared::input_plans`]
    /// order), so every table of every grain reads memory instead of re-running the scans.
    pub fn materialize(&mut self, dfs: Vec<DataFrame>) {
        for (slot, df) in self.frames_mut().into_iter().zip(dfs) {
            *slot = df.lazy();
        }
    }

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
    /// scorecard use [`Prepared::scorecard`].
    pub fn table(&self, id: MetricId, periods: &[Period]) -> PolarsResult<LazyFrame> {
        if let Some(p) = periods.iter().find(|p| !self.grains.contains(&p.grain)) {
            polars_bail!(ComputeError: "the inputs were prepared without the grain {}", p.grain.name());
        }
        let pf =
            PeriodFrames::new(periods, self.dims.as_of)?.with_code_space(self.dims.codes.space()?);
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

/// Deals won with a close date, credited to the owner's team on that date: `__rep_code`,
/// `__team_code` (null for a deal without an owner), `closed_date`, `amount`, `list_amount`.
/// The same for every grain (the tables place them in periods by `closed_date`), so built
/// once before the grains, and only what the tables read: it is held through the tables stage
/// (4 MiB at 500 k deals, where the whole prepared deals frame was 24 MiB).
fn won_deals(deals: LazyFrame, segments: LazyFrame) -> LazyFrame {
    let won = deals.filter(is_won().and(col(CLOSED_DATE).is_not_null()));
    entities::with_team_on(won, CLOSED_DATE, segments).select([
        col(REP_CODE),
        col(TEAM_CODE),
        col(CLOSED_DATE),
        col(AMOUNT),
        col(LIST_AMOUNT),
    ])
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
