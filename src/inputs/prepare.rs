//! The inputs as the metrics read them ([`MetricInputs`]): as of the as-of date, reduced to
//! the columns each table uses, with the team segments and names every table shares. Built
//! once per run from the accepted input frames ([`Accepted`]) and collected once in the
//! inputs stage, so every table of every grain reads memory.

use chrono::NaiveDate;
use chrono_tz::Tz;
use polars::prelude::*;

use crate::calendar::{Calendar, Grain};
use crate::columns::{
    ACTIVITY_ID, ACTIVITY_TYPE, AMOUNT, CHANGED_AT, CLOSED_AT, CLOSED_DATE, CREATED_AT,
    CREATED_DATE, DATE, DEAL_CODE, DEAL_ID, DIRECTION, DURATION_MINUTES, EXPECTED_CLOSE_DATE,
    FIELD, LEAD_ID, LIST_AMOUNT, NEW_VALUE, OLD_VALUE, REP_CODE, REP_ID, REP_NAME, ROLE,
    SOURCE_ROW, STARTED_AT, STATUS, TEAM_CODE, TEAM_ID, TEAM_NAME,
};
use crate::error::Error;
use crate::inputs::text::lowercased;
use crate::metrics::dates::date_lit;
use crate::metrics::dates::to_local_date;
use crate::metrics::entities::CodeSpace;
use crate::metrics::lead_response_time;
use crate::metrics::levels::Dimensions;
use crate::metrics::{
    MetricId, MetricInputs, Settings, deal_slippage, entities, is_won, selling_time,
};

/// Accepted input frames, as [`crate::inputs::scan::Input::accepted`] returns them.
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

/// The metric inputs of a run, with what the inputs stage needs beside them.
#[derive(Clone)]
pub struct Prepared {
    pub metrics: MetricInputs,
    /// What `requests` is computed from, for computing it in executions of its own
    /// ([`Prepared::take_request_sources`]).
    request_sources: Option<RequestSources>,
    /// Distinct activity types that no selling-time list names: `activity_type`.
    pub unclassified: Option<LazyFrame>,
}

/// The prepared leads, activities and deal owners that the response-time requests come from,
/// for runs that compute the requests apart from the inputs stage ([`crate::inputs::spill`]).
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

    /// Both kinds of request, assembled ([`RequestSources::assemble`]).
    pub fn requests(&self, segments: LazyFrame) -> PolarsResult<LazyFrame> {
        let follow_ups =
            lead_response_time::follow_up_requests(self.activities.clone(), self.owners.clone())?;
        self.assemble(self.first_touches(), follow_ups, segments)
    }

    /// The activities of the deals in part `k` of `n`, as the follow-ups read them
    /// ([`lead_response_time::follow_up_rows`]); their requests come from
    /// `inputs::spill`.
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
        let requests = request_sources
            .as_ref()
            .map(|src| src.requests(segments.clone()))
            .transpose()
            .map_err(bug)?;
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
            metrics: MetricInputs {
                dims: Dimensions {
                    rep_names,
                    team_names,
                    segments,
                    codes,
                    code_space: None,
                    as_of,
                    extra_sort: vec![],
                },
                won,
                quotas: a.quotas.clone(),
                expected_closes,
                push_dates,
                requests,
                daily_minutes,
                calendar,
                grains: grains.to_vec(),
                reporting,
                settings,
            },
            request_sources,
            unclassified,
        })
    }

    /// Every lazy input frame the metrics read, for [`Prepared::materialize`].
    fn frames_mut(&mut self) -> Vec<&mut LazyFrame> {
        let mut out = vec![
            &mut self.metrics.dims.rep_names,
            &mut self.metrics.dims.team_names,
            &mut self.metrics.dims.segments,
            &mut self.metrics.dims.codes.reps,
            &mut self.metrics.dims.codes.teams,
        ];
        for f in [
            &mut self.metrics.won,
            &mut self.metrics.quotas,
            &mut self.metrics.expected_closes,
            &mut self.metrics.push_dates,
            &mut self.metrics.requests,
            &mut self.metrics.daily_minutes,
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
            self.metrics.won = None;
        }
        if !uses(&[QuotaAttainment]) {
            self.metrics.quotas = None;
        }
        if !uses(&[DealSlippage]) {
            self.metrics.expected_closes = None;
            self.metrics.push_dates = None;
        }
        if !uses(&[LeadResponseTime]) {
            self.metrics.requests = None;
            self.request_sources = None;
        }
        if !uses(&[SellingTime]) {
            self.metrics.daily_minutes = None;
            self.unclassified = None;
        }
    }

    /// Takes the response-time requests out of [`Prepared::input_plans`], to be computed in
    /// executions of their own ([`RequestSources`]); put them back with
    /// [`Prepared::set_requests`].
    pub fn take_request_sources(&mut self) -> Option<RequestSources> {
        self.metrics
            .requests
            .take()
            .and(self.request_sources.clone())
    }

    /// The response-time requests, collected.
    pub fn set_requests(&mut self, requests: DataFrame) {
        self.metrics.requests = Some(requests.lazy());
    }

    /// The plans of every prepared input, in a fixed order; pass their results, collected, to
    /// [`Prepared::materialize`].
    pub fn input_plans(&mut self) -> Vec<LazyFrame> {
        self.frames_mut().into_iter().map(|f| f.clone()).collect()
    }

    /// Replaces every prepared input by its collected frame (`dfs` in [`Prepared::input_plans`]
    /// order), so every table of every grain reads memory instead of re-running the scans.
    pub fn materialize(&mut self, dfs: Vec<DataFrame>) -> PolarsResult<()> {
        for (slot, df) in self.frames_mut().into_iter().zip(dfs) {
            *slot = df.lazy();
        }
        // Counting the numbered reps and teams is free now that they are in memory.
        let count =
            |lf: &LazyFrame| -> PolarsResult<u64> { Ok(lf.clone().collect()?.height() as u64) };
        let codes = &self.metrics.dims.codes;
        self.metrics.dims.code_space = Some(CodeSpace {
            reps: count(&codes.reps)?,
            teams: count(&codes.teams)?,
        });
        Ok(())
    }

    /// One warning per activity type that no selling-time list names (SPEC §6.5), from the
    /// collected [`Prepared::unclassified`] (a few distinct values).
    pub fn warn_unclassified(&self) -> PolarsResult<()> {
        let Some(lf) = &self.unclassified else {
            return Ok(());
        };
        let df = lf.clone().collect()?;
        for t in df.column(ACTIVITY_TYPE)?.str()?.iter().flatten() {
            tracing::warn!(
                activity_type = t,
                "activity type is in no selling or non_selling list; counted as unclassified"
            );
        }
        Ok(())
    }
}

/// Deals won with a close date, credited to the owner's team on that date: `__rep_code`,
/// `__team_code` (null for a deal without an owner), `closed_date`, `amount`, `list_amount`.
/// The same for every grain (the tables place them in periods by `closed_date`), so built
/// once before the grains, and only what the tables read: it is held through the tables
/// stage.
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
