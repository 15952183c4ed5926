//! Lead and follow-up response time (SPEC §6.3, §11).
//!
//! Two kinds of request, column `response_kind`:
//! - `first_touch`: each lead; the response is the earliest outbound activity on the lead at or
//!   after its `created_at`. Credited to the lead's owner, else to the responding rep; an
//!   unowned, unanswered lead counts in the company row only. Period: the lead's creation date.
//! - `follow_up`: on each deal, activities ordered by (`started_at`, `activity_id`); internal
//!   ones are ignored. Each run of consecutive inbound activities is one request, starting at
//!   its first inbound; the response is the next outbound on the deal, by any rep. Credited to
//!   the deal's owner; period: the request's date.
//!
//! Activities after the as-of day do not exist yet, so a request without a response by then
//! is `unresponded`. Minutes are fractional. `mean/median/p90_response_minutes` are over
//! responded requests (median and p90 by linear interpolation, numpy's default);
//! `within_sla_<S>m` counts responses within S minutes (inclusive) and `within_sla_<S>m_pct`
//! divides by all requests, unresponded included.
//!
//! Example (first_touch, one rep, SLA 60): four leads, answered after 10, 30 and 90 minutes
//! and one never answered:
//!
//! | requests | responded | mean | median | p90                 | within_sla_60m | within_sla_60m_pct |
//! |----------|-----------|------|--------|---------------------|----------------|--------------------|
//! | 4        | 3         | 43.3 | 30     | 30 + 0.8 × 60 = 78  | 2              | 50                 |

use polars::prelude::*;

use crate::columns::{
    ACTIVITY_ID, CREATED_AT, DEAL_ID, DIRECTION, FIRST_TOUCH, FOLLOW_UP, LEAD_ID,
    MEAN_RESPONSE_MINUTES, MEDIAN_RESPONSE_MINUTES, P90_RESPONSE_MINUTES, PERIOD_IDX, REP_CODE,
    REP_ID, REQUESTS, RESPONDED, RESPONSE_KIND, STARTED_AT, TEAM_CODE, TEAM_ID, UNRESPONDED,
};
use crate::metrics::dates::utc_datetime;
use crate::metrics::entities::with_team_on;
use crate::metrics::levels::{
    Aggs, OrderStats, Sums, by_levels_keyed, count_i64, divided, pct, ratio,
};
use crate::metrics::periods::PeriodFrames;
use crate::text_hash::text_hash;

const REQUEST_AT: &str = "__request_at";
const RESPONSE_AT: &str = "__response_at";
const REQUEST_DATE: &str = "__request_date";
const MICROS: &str = "__micros";
const MICROS_PER_MINUTE: f64 = 60_000_000.0;
/// The response kinds, in the order of their index in the prepared requests (4 bytes a
/// request instead of the kind's 16-byte text view).
const KINDS: [&str; 2] = [FIRST_TOUCH, FOLLOW_UP];
const KIND_FIRST_TOUCH: u32 = 0;
const KIND_FOLLOW_UP: u32 = 1;

/// Output columns after the shared ones, for the given SLA thresholds.
pub fn columns(sla_minutes: &[u32]) -> Vec<String> {
    let mut cols: Vec<String> = [
        RESPONSE_KIND,
        REQUESTS,
        RESPONDED,
        UNRESPONDED,
        MEAN_RESPONSE_MINUTES,
        MEDIAN_RESPONSE_MINUTES,
        P90_RESPONSE_MINUTES,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for s in sla_minutes {
        cols.push(within(*s));
        cols.push(format!("{}_pct", within(*s)));
    }
    cols
}

fn within(s: u32) -> String {
    format!("within_sla_{s}m")
}

fn is_outbound() -> Expr {
    col(DIRECTION).eq(lit("outbound"))
}

fn is_inbound() -> Expr {
    col(DIRECTION).eq(lit("inbound"))
}

/// First-touch requests: `rep_id`, `__request_at`, `__response_at` (null when unanswered).
///
/// `leads`: `lead_id`, `rep_id` (nullable), `created_at`; `activities`: `activity_id`,
/// `rep_id`, `lead_id`, `direction` (lower case), `started_at`.
pub fn first_touch_requests(leads: LazyFrame, activities: LazyFrame) -> LazyFrame {
    first_touches_of(leads, touches(activities))
}

/// The outbound activities on a lead, as [`first_touches_of`] reads them: `lead_id`,
/// `started_at`, `__responder` (the activity's rep), `activity_id`.
pub fn touches(activities: LazyFrame) -> LazyFrame {
    activities
        .filter(is_outbound().and(col(LEAD_ID).is_not_null()))
        .select([
            col(LEAD_ID),
            col(STARTED_AT),
            col(REP_ID).alias("__responder"),
            col(ACTIVITY_ID),
        ])
}

/// [`first_touch_requests`] from the [`touches`] of the activities.
pub fn first_touches_of(leads: LazyFrame, outbound: LazyFrame) -> LazyFrame {
    let first = leads
        .clone()
        .select([col(LEAD_ID), col(CREATED_AT)])
        .join(
            outbound,
            [col(LEAD_ID)],
            [col(LEAD_ID)],
            JoinArgs::new(JoinType::Inner),
        )
        // A touch logged before the lead existed is not a response to it.
        .filter(col(STARTED_AT).gt_eq(col(CREATED_AT)))
        // Touches numbered once in (time, id) order, so each lead's first touch is the one
        // with the lowest number: a plain reduction instead of a sort within every lead.
        .sort([STARTED_AT, ACTIVITY_ID], SortMultipleOptions::default())
        .with_row_index("__order", None)
        .group_by([col(LEAD_ID)])
        .agg([
            col(STARTED_AT).min().alias(RESPONSE_AT),
            col("__responder")
                .min_by(col("__order"))
                .alias("__responder"),
        ]);
    leads
        .join(
            first,
            [col(LEAD_ID)],
            [col(LEAD_ID)],
            JoinArgs::new(JoinType::Left),
        )
        .select([
            coalesce(&[col(REP_ID), col("__responder")]).alias(REP_ID),
            col(CREATED_AT).alias(REQUEST_AT),
            col(RESPONSE_AT),
        ])
}

/// How many parts the follow-up activities are sorted in, split by their deal's hash: each
/// part's sort holds only its own rows and sorted copy, so the sorts' peak memory is about
/// that of the activities plus one part's copy, not twice the activities.
const FOLLOW_UP_PARTS: u64 = 8;

/// Follow-up requests: `rep_id` (the deal's owner; null for an unknown deal),
/// `__request_at`, `__response_at` (null when unanswered).
///
/// `owners`: `deal_id`, `rep_id` of known deals.
pub fn follow_up_requests(
    activities: LazyFrame,
    owners: Option<LazyFrame>,
) -> PolarsResult<LazyFrame> {
    follow_ups_of_rows(follow_up_rows(activities), owners)
}

/// The activities follow-ups are found in: `deal_id`, `__deal_hash`, `activity_id`, `__out`
/// (outbound, else inbound), `started_at`; every inbound and outbound activity with a deal.
pub fn follow_up_rows(activities: LazyFrame) -> LazyFrame {
    activities
        .filter(
            col(DEAL_ID)
                .is_not_null()
                .and(is_inbound().or(is_outbound())),
        )
        .select([
            col(DEAL_ID),
            text_hash(col(DEAL_ID)).alias(DEAL_HASH),
            col(ACTIVITY_ID),
            is_outbound().alias("__out"),
            col(STARTED_AT),
        ])
}

/// `rows` of [`follow_up_rows`] holding part `k` of `n` of the deals (split by the deal id's
/// hash, so a deal's activities are all in one part).
pub fn follow_up_part(rows: LazyFrame, k: u64, n: u64) -> LazyFrame {
    rows.filter((col(DEAL_HASH) % lit(n)).eq(lit(k)))
}

/// The deal `owners` (`deal_id`, `rep_id`) with the hash that splits them into parts as
/// [`follow_up_part`] splits the rows, for [`owners_of_part`].
pub fn owners_to_split(owners: LazyFrame) -> LazyFrame {
    owners.with_column(text_hash(col(DEAL_ID)).alias(DEAL_HASH))
}

/// The owners of the deals in part `k` of `n` ([`follow_up_part`]), from
/// [`owners_to_split`]: all that part's requests can meet, so a part's join builds on its own
/// owners rather than on every deal's.
pub fn owners_of_part(owners: LazyFrame, k: u64, n: u64) -> LazyFrame {
    follow_up_part(owners, k, n).drop(cols([DEAL_HASH]))
}

/// Follow-up requests, as [`follow_up_requests`], from [`follow_up_rows`] (or some parts of
/// them, whole deals each).
pub fn follow_ups_of_rows(
    activities: LazyFrame,
    owners: Option<LazyFrame>,
) -> PolarsResult<LazyFrame> {
    // Cached, so the parts below filter one shared stream of rows: without it the optimiser
    // pushes each part's filter down into a scan of its own, and rows read from a file (the
    // spilled parts of `inputs::spill`) were read and decoded once per part.
    let activities = activities.cache();
    // A deal's activities are all in one part, so each part's requests are complete.
    let parts = (0..FOLLOW_UP_PARTS)
        .map(|part| {
            follow_ups_of_part(sorted_by_deal(follow_up_part(
                activities.clone(),
                part,
                FOLLOW_UP_PARTS,
            )))
        })
        .collect::<Vec<_>>();
    let requests = concat(parts, UnionArgs::default())?;
    Ok(match owners {
        Some(o) => requests
            .join(
                o.select([col(DEAL_ID), col(REP_ID)]),
                [col(DEAL_ID)],
                [col(DEAL_ID)],
                JoinArgs::new(JoinType::Left),
            )
            .select([col(REP_ID), col(REQUEST_AT), col(RESPONSE_AT)]),
        None => requests.select([
            lit(NULL).cast(DataType::String).alias(REP_ID),
            col(REQUEST_AT),
            col(RESPONSE_AT),
        ]),
    })
}

/// The sum of the answered requests' response times, for the mean.
const SUM_MICROS: &str = "__sum_micros";
/// The hash of each activity's deal id ([`follow_up_rows`]).
const DEAL_HASH: &str = "__deal_hash";
/// Each deal's rows as one run, numbered ([`sorted_by_deal`]).
const RUN: &str = "__run";

/// Follow-up rows (whole deals) in deal order: each deal's rows contiguous and in
/// (`started_at`, `activity_id`) order, with [`RUN`] numbering the deals, so the checks after
/// it compare integers, not text. Sorted by the deal id's 64-bit hash first, which compares
/// faster than its text, then by the id, which keeps apart two deals whose ids share a hash.
/// The order of deals is arbitrary, which is harmless: every figure is independent of it.
fn sorted_by_deal(rows: LazyFrame) -> LazyFrame {
    rows.sort(
        [DEAL_HASH, DEAL_ID, STARTED_AT, ACTIVITY_ID],
        SortMultipleOptions::default(),
    )
    .with_column(col(DEAL_ID).rle_id().alias(RUN))
}

/// The follow-up requests (`deal_id`, `__request_at`, `__response_at`) among `sorted` rows
/// ([`sorted_by_deal`]), which hold every inbound and outbound activity of each of their
/// deals.
fn follow_ups_of_part(sorted: LazyFrame) -> LazyFrame {
    // Each deal's rows are contiguous, so "previous on the deal" and "next outbound on the
    // deal" are plain shifts and fills checked against the run number, with no per-deal window.
    let run = || col(RUN);
    let out = || col("__out");
    let when_outbound = |e: Expr, dtype: DataType| {
        when(out())
            .then(e)
            .otherwise(lit(NULL).cast(dtype))
            .fill_null_with_strategy(FillNullStrategy::Backward(None))
    };
    sorted
        .with_columns([
            // Whether the previous activity on the deal was outbound (null: none before).
            when(run().shift(lit(1)).eq(run()).fill_null(lit(false)))
                .then(out().shift(lit(1)))
                .otherwise(lit(NULL).cast(DataType::Boolean))
                .alias("__prev_out"),
            // The next outbound at or after each row (inbound rows have none of their own).
            when(when_outbound(run(), DataType::UInt32).eq(run()))
                .then(when_outbound(col(STARTED_AT), utc_datetime()))
                .otherwise(lit(NULL).cast(utc_datetime()))
                .alias(RESPONSE_AT),
        ])
        // A request: an inbound activity first on its deal or right after an outbound one.
        .filter(out().not().and(col("__prev_out").fill_null(lit(true))))
        .select([
            col(DEAL_ID),
            col(STARTED_AT).alias(REQUEST_AT),
            col(RESPONSE_AT),
        ])
}

/// Both kinds of request in one frame, the same for every grain: `response_kind` (its index
/// in `KINDS`), `__rep_code`, `__team_code` (the rep's team on the request date),
/// `__request_date` and `__micros` (null when unanswered).
///
/// `first_touch` and `follow_up` come from the functions above; `request_date` turns a request
/// instant into its reporting-time-zone date.
pub fn requests(
    first_touch: LazyFrame,
    follow_up: LazyFrame,
    request_date: impl Fn(Expr) -> Expr,
    segments: LazyFrame,
) -> PolarsResult<LazyFrame> {
    let requests = concat(
        [
            first_touch.with_column(lit(KIND_FIRST_TOUCH).alias(RESPONSE_KIND)),
            follow_up.with_column(lit(KIND_FOLLOW_UP).alias(RESPONSE_KIND)),
        ],
        UnionArgs::default(),
    )?
    .select([
        col(RESPONSE_KIND),
        col(REP_ID),
        request_date(col(REQUEST_AT)).alias(REQUEST_DATE),
        (col(RESPONSE_AT) - col(REQUEST_AT))
            .dt()
            .total_microseconds(false)
            .alias(MICROS),
    ]);
    // Not pre-sorted by response time: on the streaming engine the sort costs the inputs stage
    // more than the median and p90 group-bys gain from it.
    // The tables read the rep and team codes; the ids' text would double the frame.
    Ok(with_team_on(requests, REQUEST_DATE, segments).drop(cols([REP_ID, TEAM_ID])))
}

/// Response-time rows at all levels, per response kind, from [`requests`].
pub fn lead_response_time(
    requests: LazyFrame,
    periods: &PeriodFrames,
    sla_minutes: &[u32],
) -> PolarsResult<LazyFrame> {
    let events = periods.place(requests, REQUEST_DATE).select([
        col(PERIOD_IDX),
        col(REP_CODE),
        col(TEAM_CODE),
        col(RESPONSE_KIND),
        col(MICROS),
    ]);
    // Figures come from integer microseconds and turn into minutes last: comparisons with the
    // SLA are exact, and no value depends on how an engine divides a column by a constant (the
    // streaming engine and the in-memory one can differ in the last bit).
    let us = || col(MICROS);
    let mut parts = vec![
        (REQUESTS, len()),
        (RESPONDED, us().count()),
        (SUM_MICROS, us().sum()),
    ];
    let mut figures = vec![
        count_i64(col(REQUESTS)).alias(REQUESTS),
        count_i64(col(RESPONDED)).alias(RESPONDED),
        // From the exact integer sum, so the mean does not depend on the order of requests.
        // In microseconds until the rows are finished, as the median and p90 (below).
        ratio(col(SUM_MICROS), col(RESPONDED)).alias(MEAN_RESPONSE_MINUTES),
    ];
    // Over the answered requests only: with the unanswered ones in the column as nulls,
    // polars sorts each group instead of a quickselect (a sixth of the tables stage at 5 M
    // activities), and the interpolation's fraction picked up rounding from the null count
    // (a p90 of 12.599999999999998 where numpy gives 12.6).
    let order_stats = [
        us().median().alias(MEDIAN_RESPONSE_MINUTES),
        us().quantile(lit(0.9), QuantileMethod::Linear)
            .alias(P90_RESPONSE_MINUTES),
    ];
    let order_stats = OrderStats {
        filter: us().is_not_null(),
        aggs: &order_stats,
    };
    let mut zero: Vec<String> = vec![REQUESTS.into(), RESPONDED.into()];
    let within_names: Vec<String> = sla_minutes.iter().map(|s| within(*s)).collect();
    for (s, name) in sla_minutes.iter().zip(&within_names) {
        let limit = i64::from(*s) * MICROS_PER_MINUTE as i64;
        parts.push((name.as_str(), us().lt_eq(lit(limit)).sum()));
        figures.push(count_i64(col(name.as_str())).alias(name.as_str()));
        zero.push(name.clone());
    }
    let zero: Vec<&str> = zero.iter().map(String::as_str).collect();
    let rows = by_levels_keyed(
        events,
        periods,
        Aggs::Sums(Sums {
            parts: &parts,
            figures: &figures,
        }),
        Some(&order_stats),
        &zero,
        Some((RESPONSE_KIND, &KINDS)),
    )?;
    let mut derived = vec![(col(REQUESTS) - col(RESPONDED)).alias(UNRESPONDED)];
    for c in [
        MEAN_RESPONSE_MINUTES,
        MEDIAN_RESPONSE_MINUTES,
        P90_RESPONSE_MINUTES,
    ] {
        derived.push(divided(col(c), MICROS_PER_MINUTE).alias(c));
    }
    for s in sla_minutes {
        derived.push(pct(col(within(*s)), col(REQUESTS)).alias(format!("{}_pct", within(*s))));
    }
    Ok(rows.with_columns(derived))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Grain;
    use crate::columns::LEVEL;
    use crate::metrics::MetricId;
    use crate::testutil::*;

    const COLS: [&str; 13] = [
        "period",
        "level",
        "rep_id",
        RESPONSE_KIND,
        REQUESTS,
        RESPONDED,
        UNRESPONDED,
        MEAN_RESPONSE_MINUTES,
        MEDIAN_RESPONSE_MINUTES,
        P90_RESPONSE_MINUTES,
        "within_sla_5m",
        "within_sla_60m",
        "within_sla_60m_pct",
    ];

    fn run(
        leads_: LazyFrame,
        acts: LazyFrame,
        deals_: Option<LazyFrame>,
        grain: Grain,
        from: &str,
        to: &str,
    ) -> PolarsResult<DataFrame> {
        let accepted = Accepted {
            reps: Some(reps(&[("R1", "T1"), ("R2", "T1")])),
            reps_have_team: true,
            leads: Some(leads_),
            activities: Some(acts),
            deals: deals_,
            ..Default::default()
        };
        prepare(accepted, "2024-03-31")
            .metrics
            .table(MetricId::LeadResponseTime, &periods(grain, from, to))?
            .collect()
    }

    fn out<'a>(
        id: &'a str,
        rep: &'a str,
        lead: Option<&'a str>,
        deal: Option<&'a str>,
        dir: &'a str,
        at: &'a str,
    ) -> ActivityRow<'a> {
        (id, rep, lead, deal, "email", dir, at, Some(1.0))
    }

    /// An outbound touch on a lead.
    fn touch(
        id: &'static str,
        rep: &'static str,
        lead: &'static str,
        at: &'static str,
    ) -> ActivityRow<'static> {
        out(id, rep, Some(lead), None, "outbound", at)
    }

    /// An activity on a deal, in direction `dir`.
    fn on_deal<'a>(
        id: &'a str,
        rep: &'a str,
        deal: &'a str,
        dir: &'a str,
        at: &'a str,
    ) -> ActivityRow<'a> {
        out(id, rep, None, Some(deal), dir, at)
    }

    /// The rows of one response kind, of one level if `level` is given.
    fn kind_rows(df: &DataFrame, kind: &str, level: Option<&str>) -> Vec<String> {
        rows(df, &COLS)
            .into_iter()
            .filter(|r| r.contains(kind) && level.is_none_or(|l| r.contains(&format!("|{l}|"))))
            .collect()
    }

    #[test]
    fn first_touch_owner_responder_early_touch_and_percentiles() -> PolarsResult<()> {
        // L1 (R1) answered after 10 min; L2 (R1) touched 5 min *before* it was created (not a
        // response), then after 30; L3 (no owner) answered by R2 after 90; L4 (R1) never
        // answered; L5 (no owner) never answered: company row only.
        // Company: 5 requests, 3 responded [10, 30, 90]: mean 43.33, median 30,
        // p90 = 30 + 0.8 × (90 − 30) = 78; within 5 min 0, within 60 min 2 = 40 % of 5.
        // R1: L1, L2, L4: 3 requests, [10, 30]: median 20, p90 = 10 + 0.9 × 20 = 28.
        // R2 (responder of the unowned L3): 1 request, 90.
        let leads_ = leads(&[
            ("L1", Some("R1"), "2024-01-10T09:00:00Z"),
            ("L2", Some("R1"), "2024-01-10T10:00:00Z"),
            ("L3", None, "2024-01-10T11:00:00Z"),
            ("L4", Some("R1"), "2024-01-10T12:00:00Z"),
            ("L5", None, "2024-01-10T13:00:00Z"),
        ]);
        let acts = activities(&[
            out(
                "A1",
                "R1",
                Some("L1"),
                None,
                "outbound",
                "2024-01-10T09:10:00Z",
            ),
            out(
                "A2",
                "R1",
                Some("L2"),
                None,
                "outbound",
                "2024-01-10T09:55:00Z",
            ),
            out(
                "A3",
                "R1",
                Some("L2"),
                None,
                "outbound",
                "2024-01-10T10:30:00Z",
            ),
            out(
                "A4",
                "R2",
                Some("L3"),
                None,
                "outbound",
                "2024-01-10T12:30:00Z",
            ),
            out(
                "A5",
                "R1",
                Some("L4"),
                None,
                "inbound",
                "2024-01-10T12:30:00Z",
            ),
        ]);
        let df = run(leads_, acts, None, Grain::Month, "2024-01-01", "2024-01-01")?;
        assert_eq!(
            kind_rows(&df, FIRST_TOUCH, None),
            [
                "2024-01|company|-|first_touch|5|3|2|43.333333333333336|30.0|78.0|0|2|40.0",
                "2024-01|team|-|first_touch|4|3|1|43.333333333333336|30.0|78.0|0|2|50.0",
                "2024-01|rep|R1|first_touch|3|2|1|20.0|20.0|28.0|0|2|66.66666666666667",
                "2024-01|rep|R2|first_touch|1|1|0|90.0|90.0|90.0|0|0|0.0",
            ]
        );
        Ok(())
    }

    #[test]
    fn percentiles_ignore_unanswered_requests_exactly() -> PolarsResult<()> {
        // R1's leads answered after 0 and 14 minutes, a third never: p90 over [0, 14] is
        // 0 + 0.9 × 14 = 12.6 exactly, as numpy gives. (Interpolating with the unanswered
        // request counted as a null in the same column gave 12.599999999999998.) R2's only
        // lead is never answered: no median, no p90.
        let leads_ = leads(&[
            ("L1", Some("R1"), "2024-01-10T09:00:00Z"),
            ("L2", Some("R1"), "2024-01-10T10:00:00Z"),
            ("L3", Some("R1"), "2024-01-10T11:00:00Z"),
            ("L4", Some("R2"), "2024-01-10T12:00:00Z"),
        ]);
        let acts = activities(&[
            touch("A1", "R1", "L1", "2024-01-10T09:00:00Z"),
            touch("A2", "R1", "L2", "2024-01-10T10:14:00Z"),
        ]);
        let df = run(leads_, acts, None, Grain::Month, "2024-01-01", "2024-01-01")?;
        let percentiles = |level: &str, rep: Option<&str>| -> PolarsResult<[Option<f64>; 2]> {
            let mut row = df
                .clone()
                .lazy()
                .filter(col(LEVEL).eq(lit(level)))
                .filter(col(RESPONSE_KIND).eq(lit(FIRST_TOUCH)));
            if let Some(r) = rep {
                row = row.filter(col(REP_ID).eq(lit(r)));
            }
            let row = row.collect()?;
            assert_eq!(row.height(), 1, "{level} {rep:?}");
            let value = |c: &str| -> PolarsResult<Option<f64>> { Ok(row.column(c)?.f64()?.get(0)) };
            Ok([
                value(MEDIAN_RESPONSE_MINUTES)?,
                value(P90_RESPONSE_MINUTES)?,
            ])
        };
        assert_eq!(percentiles("rep", Some("R1"))?, [Some(7.0), Some(12.6)]);
        assert_eq!(percentiles("rep", Some("R2"))?, [None, None]);
        assert_eq!(percentiles("company", None)?, [Some(7.0), Some(12.6)]);
        Ok(())
    }

    #[test]
    fn first_touch_tie_goes_to_the_lower_activity_id() -> PolarsResult<()> {
        // Unowned L1, touches in file order: A9 (R2, the latest), A2 (R2) and A1 (R1), the last
        // two at the same instant. The first touch is A1 (time, then id): R1 is credited.
        // Unowned L2: B10 (R2) and B1 (R1) at the same instant; "B1" sorts before "B10" (a
        // prefix comes first), so R1 again. R1: 2 requests, answered after 20 and 50 min:
        // mean and median 35, p90 = 20 + 0.9 × 30 = 47.
        let leads_ = leads(&[
            ("L1", None, "2024-01-10T09:00:00Z"),
            ("L2", None, "2024-01-10T09:00:00Z"),
        ]);
        let acts = activities(&[
            touch("A9", "R2", "L1", "2024-01-10T09:30:00Z"),
            touch("A2", "R2", "L1", "2024-01-10T09:20:00Z"),
            touch("A1", "R1", "L1", "2024-01-10T09:20:00Z"),
            touch("B10", "R2", "L2", "2024-01-10T09:50:00Z"),
            touch("B1", "R1", "L2", "2024-01-10T09:50:00Z"),
        ]);
        let df = run(leads_, acts, None, Grain::Month, "2024-01-01", "2024-01-01")?;
        assert_eq!(
            kind_rows(&df, FIRST_TOUCH, Some("rep")),
            ["2024-01|rep|R1|first_touch|2|2|0|35.0|35.0|47.0|0|2|100.0"]
        );
        Ok(())
    }

    #[test]
    fn follow_up_runs_offsets_and_period_boundary() -> PolarsResult<()> {
        // Deal D1 (owner R1). Three inbound messages then one reply (an internal note in between
        // neither starts nor breaks the run) = one request, answered by R2 (any rep counts):
        // inbound at 23:50 UTC on Jan 31 written as 18:50-05:00, reply 00:20 UTC Feb 1 = 30 min,
        // counted in January (the request's period). Then an inbound on Feb 2 never answered.
        let acts = activities(&[
            on_deal("A1", "R1", "D1", "inbound", "2024-01-31T18:50:00-05:00"),
            on_deal("A2", "R1", "D1", "inbound", "2024-01-31T23:55:00Z"),
            on_deal("A3", "R1", "D1", "internal", "2024-01-31T23:56:00Z"),
            on_deal("A4", "R1", "D1", "inbound", "2024-02-01T00:05:00+00:00"),
            on_deal("A5", "R2", "D1", "outbound", "2024-02-01T01:20:00+01:00"),
            on_deal("A6", "R1", "D1", "inbound", "2024-02-02T10:00:00Z"),
        ]);
        let deals_ = deals(&[("D1", "R1", "2024-01-02", "open", None, 1.0, None)]);
        let df = run(
            leads(&[]),
            acts,
            Some(deals_),
            Grain::Month,
            "2024-01-01",
            "2024-02-01",
        )?;
        let follow = kind_rows(&df, FOLLOW_UP, Some("rep"));
        assert_eq!(
            follow,
            [
                "2024-01|rep|R1|follow_up|1|1|0|30.0|30.0|30.0|0|1|100.0",
                "2024-02|rep|R1|follow_up|1|0|1|-|-|-|0|0|0.0"
            ]
        );
        // Every period has a company row per kind, zero when empty.
        let company: Vec<String> = rows(&df, &["period", "level", RESPONSE_KIND, REQUESTS])
            .into_iter()
            .filter(|r| r.contains("company"))
            .collect();
        assert_eq!(
            company,
            [
                "2024-01|company|first_touch|0",
                "2024-01|company|follow_up|1",
                "2024-02|company|first_touch|0",
                "2024-02|company|follow_up|1"
            ]
        );
        Ok(())
    }

    #[test]
    fn follow_up_never_crosses_deals_and_ties_go_by_activity_id() -> PolarsResult<()> {
        let rows_ = [
            // D1's inbound is never answered on D1; D2's later outbound must not count for it.
            ("X1", "R1", "D1", "inbound", "2024-01-10T10:00:00Z"),
            // D2 starts with an inbound (D1's inbound before it is another deal's): 120 min.
            ("X0", "R2", "D2", "inbound", "2024-01-10T09:00:00Z"),
            ("X2", "R2", "D2", "outbound", "2024-01-10T11:00:00Z"),
            // Same instant: Z1 (outbound) sorts before Z2 (inbound), so Z2 is unanswered...
            ("Z2", "R1", "D3", "inbound", "2024-01-11T10:00:00Z"),
            ("Z1", "R1", "D3", "outbound", "2024-01-11T10:00:00Z"),
            // ... while Y1 (inbound) sorts before Y2 (outbound): answered after 0 minutes.
            ("Y1", "R1", "D4", "inbound", "2024-01-12T10:00:00Z"),
            ("Y2", "R1", "D4", "outbound", "2024-01-12T10:00:00Z"),
        ];
        let rows_: Vec<ActivityRow> = rows_
            .iter()
            .map(|(id, rep, deal, dir, ts)| out(id, rep, None, Some(deal), dir, ts))
            .collect();
        let deals_ = deals(&[
            ("D1", "R1", "2024-01-02", "open", None, 1.0, None),
            ("D2", "R2", "2024-01-02", "open", None, 1.0, None),
            ("D3", "R1", "2024-01-02", "open", None, 1.0, None),
            ("D4", "R1", "2024-01-02", "open", None, 1.0, None),
        ]);
        let df = run(
            leads(&[]),
            activities(&rows_),
            Some(deals_),
            Grain::Month,
            "2024-01-01",
            "2024-01-01",
        )?;
        let follow = kind_rows(&df, FOLLOW_UP, Some("rep"));
        assert_eq!(
            follow,
            [
                "2024-01|rep|R1|follow_up|3|1|2|0.0|0.0|0.0|1|1|33.333333333333336",
                "2024-01|rep|R2|follow_up|1|1|0|120.0|120.0|120.0|0|0|0.0"
            ]
        );
        Ok(())
    }

    #[test]
    fn follow_ups_of_deals_in_every_sorting_part_are_all_counted() -> PolarsResult<()> {
        // 64 deals, each asking at 10:00 and answered after i minutes (i = 1..=64), spread over
        // all the parts the follow-ups are sorted in. Company: 64 requests, mean = median =
        // 32.5, p90 = 57 + 0.7 × (58 − 57) = 57.7 (position 0.9 × 63 = 56.7), within 5 min 5,
        // within 60 min 60 = 93.75 %.
        let ids: Vec<String> = (1..=64).map(|i| format!("D{i}")).collect();
        let parts = df!("d" => &ids)?
            .lazy()
            .select([(text_hash(col("d")) % lit(FOLLOW_UP_PARTS)).alias("part")])
            .collect()?
            .column("part")?
            .n_unique()?;
        assert_eq!(parts as u64, FOLLOW_UP_PARTS);
        let base = chrono::DateTime::parse_from_rfc3339("2024-01-10T10:00:00Z")
            .map_err(|e| polars_err!(ComputeError: "{e}"))?;
        let at = |m: i64| (base + chrono::Duration::minutes(m)).format("%Y-%m-%dT%H:%M:%SZ");
        let stamps: Vec<(String, String, String, String)> = (1..=64i64)
            .map(|i| {
                (
                    format!("I{i}"),
                    format!("O{i}"),
                    at(0).to_string(),
                    at(i).to_string(),
                )
            })
            .collect();
        let acts: Vec<ActivityRow> = ids
            .iter()
            .zip(&stamps)
            .flat_map(|(deal, (inb, outb, asked, answered))| {
                [
                    on_deal(inb, "R1", deal, "inbound", asked),
                    on_deal(outb, "R1", deal, "outbound", answered),
                ]
            })
            .collect();
        let owned: Vec<DealRow> = ids
            .iter()
            .map(|d| (d.as_str(), "R1", "2024-01-02", "open", None, 1.0, None))
            .collect();
        let df = run(
            leads(&[]),
            activities(&acts),
            Some(deals(&owned)),
            Grain::Month,
            "2024-01-01",
            "2024-01-01",
        )?;
        assert_eq!(
            kind_rows(&df, FOLLOW_UP, Some("company")),
            ["2024-01|company|-|follow_up|64|64|0|32.5|32.5|57.7|5|60|93.75"]
        );
        Ok(())
    }

    /// Follow-up rows of two deals: D1 asks at 09:00 and is answered at 09:10, D2 asks at 09:05
    /// and is answered at 09:20; `hashes` are their deal hashes.
    fn two_deals(hashes: [u64; 2]) -> PolarsResult<LazyFrame> {
        Ok(DataFrame::new_infer_height(vec![
            Column::new(DEAL_ID.into(), ["D1", "D2", "D1", "D2"]),
            Column::new(
                DEAL_HASH.into(),
                [hashes[0], hashes[1], hashes[0], hashes[1]],
            ),
            Column::new(ACTIVITY_ID.into(), ["A1", "A2", "A3", "A4"]),
            Column::new("__out".into(), [false, false, true, true]),
            timestamps(
                STARTED_AT,
                &[
                    "2024-01-10T09:00:00Z",
                    "2024-01-10T09:05:00Z",
                    "2024-01-10T09:10:00Z",
                    "2024-01-10T09:20:00Z",
                ],
            ),
        ])?
        .lazy())
    }

    #[test]
    fn deals_whose_ids_share_a_hash_are_sorted_apart() -> PolarsResult<()> {
        // With one hash for both deals, sorting by the hash alone would interleave them
        // (in, in, out, out), which read as one deal gives one request; the id after the hash
        // keeps them apart: two requests, answered after 10 and 15 minutes.
        let minutes = |hashes: [u64; 2]| -> PolarsResult<Vec<String>> {
            let df = follow_ups_of_rows(two_deals(hashes)?, None)?
                .select([(col(RESPONSE_AT) - col(REQUEST_AT))
                    .dt()
                    .total_minutes(false)
                    .alias("m")])
                .collect()?;
            Ok(sorted_rows(&df, &["m"]))
        };
        let both = vec!["10".to_string(), "15".to_string()];
        assert_eq!(minutes([7, 8])?, both);
        assert_eq!(minutes([7, 7])?, both);
        Ok(())
    }
}
