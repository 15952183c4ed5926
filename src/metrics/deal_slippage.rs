//! Deal slippage: deals that did not close by their expected close date (SPEC §6.2, §11).
//!
//! - E, the expected close date of a deal for period P: the value in force at the later of
//!   P's start (midnight in the reporting time zone) and the deal's creation, rebuilt from
//!   `deal_history` changes of `expected_close_date` made up to the as-of date (before the
//!   first change, the old value of the earliest change). Without history rows, the deal's
//!   `expected_close_date`.
//! - Cohort of P: deals with E in P, created by the end of P, not closed before P starts.
//! - `deals_due`: cohort deals with E before the as-of date T. Of those,
//!   `deals_closed_on_time` closed (won or lost) on or before E, split into
//!   `deals_won_on_time` and `deals_lost`; `deals_slipped` did not (closed later, or still
//!   open), with `slipped_amount`. `slippage_rate_pct` = 100 × slipped / due.
//! - `avg_slip_days`, `median_slip_days` over slipped deals: days from E to the close date,
//!   or to T when still open.
//! - `close_date_pushes`: changes to a later date made during P (and by T) on P's cohort;
//!   null without deal_history.
//! - Team: the owner's team on day E.
//!
//! How E is found without a deals × periods product: each deal's history becomes *versions*
//! (a value and the instants it was in force from/to); each version is placed in the period
//! holding its value, and kept when that period's reference instant falls in the version's
//! interval. One version at most is in force at any instant, so a deal enters a period's
//! cohort at most once.
//!
//! Example (as of Mar 31; D1 expected Feb 10, pushed on Feb 5 to Mar 20, won Mar 25):
//!
//! | period  | deals_expected | due | slipped | avg_slip_days | pushes |
//! |---------|----------------|-----|---------|---------------|--------|
//! | 2024-02 | 1 (E = Feb 10) | 1   | 1       | 44 (to Mar 25)| 1      |
//! | 2024-03 | 1 (E = Mar 20) | 1   | 1       | 5             | 0      |

use chrono::NaiveDate;
use chrono_tz::Tz;
use polars::prelude::*;

use crate::columns::{
    AMOUNT, AVG_SLIP_DAYS, CHANGED_AT, CLOSE_DATE_PUSHES, CLOSED_DATE, CREATED_AT, CREATED_DATE,
    DEAL_CODE, DEAL_ID, DEALS_CLOSED_ON_TIME, DEALS_DUE, DEALS_EXPECTED, DEALS_LOST, DEALS_SLIPPED,
    DEALS_WON_ON_TIME, EXPECTED_CLOSE_DATE, MEDIAN_SLIP_DAYS, NEW_VALUE, OLD_VALUE, PERIOD_END,
    PERIOD_IDX, PERIOD_START, REP_CODE, SLIPPAGE_RATE_PCT, SLIPPED_AMOUNT, SOURCE_ROW, STATUS,
    TEAM_CODE,
};
use crate::metrics::dates::date_lit;
use crate::metrics::dates::{local_midnight, to_local_date, utc_datetime};
use crate::metrics::entities::with_team_on;
use crate::metrics::is_won;
use crate::metrics::levels::{
    Aggs, OrderStats, Sums, by_levels_keyed, cents, count_i64, pct, ratio,
};
use crate::metrics::periods::PeriodFrames;

/// The format of `deal_history`'s `old_value` and `new_value` dates.
const HISTORY_DATE: &str = "%Y-%m-%d";

/// A `deal_history` value column as dates: the first `%Y-%m-%d` date in each value
/// ("2024-03-15", "2024-03-15T10:00:00Z", "on 2024-03-15"), null where there is none.
pub fn history_date(e: Expr) -> Expr {
    e.str().to_date(StrptimeOptions {
        format: Some(HISTORY_DATE.into()),
        strict: false,
        exact: false,
        cache: true,
    })
}

/// Output columns after the shared ones.
pub const COLUMNS: [&str; 11] = [
    DEALS_EXPECTED,
    DEALS_DUE,
    DEALS_CLOSED_ON_TIME,
    DEALS_WON_ON_TIME,
    DEALS_LOST,
    DEALS_SLIPPED,
    SLIPPED_AMOUNT,
    SLIPPAGE_RATE_PCT,
    AVG_SLIP_DAYS,
    MEDIAN_SLIP_DAYS,
    CLOSE_DATE_PUSHES,
];

const E: &str = "__expected";
const FROM: &str = "__from";
const TO: &str = "__to";

/// Expected-close-date versions, each with its deal's columns: the columns of `deals`, then
/// `__expected` (Date), `__from`, `__to` (UTC instants; null = open). Versions of deals not in
/// `deals` drop out.
///
/// `deals` with [`DEAL_CODE`]; `changes` from [`coded_changes`]. Changes after `as_of` do not
/// count.
pub fn versions(
    deals: LazyFrame,
    changes: Option<LazyFrame>,
    as_of: NaiveDate,
    tz: Tz,
) -> PolarsResult<LazyFrame> {
    // A deal without history has one version, its own expected date, and its row is at hand:
    // only the versions from the history are joined with the deals.
    let unchanged = |d: LazyFrame| {
        d.with_columns([
            col(EXPECTED_CLOSE_DATE).alias(E),
            lit(NULL).cast(utc_datetime()).alias(FROM),
            lit(NULL).cast(utc_datetime()).alias(TO),
        ])
    };
    let Some(changes) = changes else {
        return Ok(unchanged(deals));
    };
    // Each deal's changes contiguous and in order; numbered, so "first of a deal" is a
    // reduction (`min_by`) and "next of the same deal" a plain shift, not a per-deal sort or
    // window. Cached, so both readers below share one sort (without it polars sorted twice).
    let ordered = changes
        .sort(
            [DEAL_CODE, CHANGED_AT, SOURCE_ROW],
            SortMultipleOptions::default(),
        )
        .with_row_index("__order", None)
        .cache();
    let counted = ordered
        .clone()
        .filter(to_local_date(col(CHANGED_AT), tz).lt_eq(date_lit(as_of)));
    // Version 0: the value before the earliest change (even one made after the as-of date),
    // in force until the first change that counts.
    let first_counted = counted
        .clone()
        .group_by([col(DEAL_CODE)])
        .agg([col(CHANGED_AT).min().alias(TO)]);
    let before_first = ordered
        .group_by([col(DEAL_CODE)])
        .agg([col(OLD_VALUE).min_by(col("__order")).alias(E)])
        .join(
            first_counted,
            [col(DEAL_CODE)],
            [col(DEAL_CODE)],
            JoinArgs::new(JoinType::Left),
        )
        .with_column(lit(NULL).cast(utc_datetime()).alias(FROM));
    let after_each = counted.with_columns([
        col(NEW_VALUE).alias(E),
        col(CHANGED_AT).alias(FROM),
        when(col(DEAL_CODE).shift(lit(-1)).eq(col(DEAL_CODE)))
            .then(col(CHANGED_AT).shift(lit(-1)))
            .otherwise(lit(NULL).cast(utc_datetime()))
            .alias(TO),
    ]);
    let with_history = concat(
        [
            before_first.select([col(DEAL_CODE), col(E), col(FROM), col(TO)]),
            after_each.select([col(DEAL_CODE), col(E), col(FROM), col(TO)]),
        ],
        UnionArgs::default(),
    )?
    // Read twice: as rows, and for the deals that have a history.
    .cache();
    let changed = with_history.clone().join(
        deals.clone(),
        [col(DEAL_CODE)],
        [col(DEAL_CODE)],
        JoinArgs::new(JoinType::Inner),
    );
    let without_history = unchanged(
        deals.join(
            with_history
                .select([col(DEAL_CODE)])
                .unique(None, UniqueKeepStrategy::Any),
            [col(DEAL_CODE)],
            [col(DEAL_CODE)],
            JoinArgs::new(JoinType::Anti),
        ),
    );
    concat_lf_diagonal([changed, without_history], UnionArgs::default())
}

/// The history's changes of the deals in `deals`, with the deal's [`DEAL_CODE`] instead of
/// its id: `__deal_code`, `changed_at`, `old_value`, `new_value`, `source_row`. The one join on
/// the deal id's text; [`versions`] and [`push_dates`] then sort, group and join integers.
/// Changes to deals not in
/// `deals` drop out: they have no version to count against. Cached: both read it.
///
/// `changes`: `deal_id`, `changed_at`, `old_value`, `new_value` (Dates), `source_row`, already
/// limited to `field = expected_close_date`; `deals` with `deal_id` and [`DEAL_CODE`].
pub fn coded_changes(changes: LazyFrame, deals: LazyFrame) -> LazyFrame {
    changes
        .join(
            deals.select([col(DEAL_ID), col(DEAL_CODE)]),
            [col(DEAL_ID)],
            [col(DEAL_ID)],
            JoinArgs::new(JoinType::Inner),
        )
        .select([
            col(DEAL_CODE),
            col(CHANGED_AT),
            col(OLD_VALUE),
            col(NEW_VALUE),
            col(SOURCE_ROW),
        ])
        .cache()
}

/// Every change of an expected close date to a later date, made by the as-of date:
/// `__deal_code` and `__changed_date` (reporting time zone). The same for every grain, so
/// built once before the grains.
///
/// `changes` from [`coded_changes`].
pub fn push_dates(changes: LazyFrame, as_of: NaiveDate, tz: Tz) -> LazyFrame {
    changes
        .filter(col(NEW_VALUE).gt(col(OLD_VALUE)).fill_null(lit(false)))
        .with_column(to_local_date(col(CHANGED_AT), tz).alias(CHANGED_DATE))
        .filter(col(CHANGED_DATE).lt_eq(date_lit(as_of)))
        .select([col(DEAL_CODE), col(CHANGED_DATE)])
}

const CHANGED_DATE: &str = "__changed_date";
/// A deal and a period as one integer key ([`deal_period`]).
const DEAL_PERIOD: &str = "__deal_period";

/// [`DEAL_CODE`] in the high 32 bits, `period_idx` (shifted to be >= 0) in the low: one
/// integer key, which polars joins and groups by without row-encoding two columns.
fn deal_period() -> Expr {
    let period = (col(PERIOD_IDX).cast(DataType::Int64) + lit(1i64 << 31)).cast(DataType::UInt64);
    (col(DEAL_CODE).cast(DataType::UInt64) * lit(1u64 << 32) + period).alias(DEAL_PERIOD)
}

/// Number of pushes per deal and period, from [`push_dates`]: `__deal_period`
/// ([`deal_period`]), `__pushes`.
fn pushes(push_dates: LazyFrame, periods: &PeriodFrames) -> LazyFrame {
    periods
        .place(push_dates, CHANGED_DATE)
        .group_by([deal_period()])
        .agg([count_i64(len()).alias("__pushes")])
}

/// Every dated version of [`versions`] with what slippage reads of its deal and the owner's
/// team on the expected date, as codes: the same for every grain, so built once before the
/// grains. The deal's status is three flags (`__status_not_open`, `__status_won`,
/// `__status_lost`) and its id is its [`DEAL_CODE`]: this frame is held through the tables
/// stage, and the pushes
/// join on one integer instead of the id's text and the period.
///
/// `versions` from [`versions`] of deals as of T (`deal_id`, [`DEAL_CODE`], `rep_id`,
/// `created_at`, `created_date`, `status`, `closed_date`, `expected_close_date`, `amount`);
/// `segments` from [`crate::metrics::entities::team_segments`] with
/// [`crate::metrics::entities::Codes`].
pub fn expected_closes(versions: LazyFrame, segments: LazyFrame) -> LazyFrame {
    let dated = versions.filter(col(E).is_not_null());
    with_team_on(dated, E, segments).select([
        col(DEAL_CODE),
        col(E),
        col(FROM),
        col(TO),
        col(CREATED_AT),
        col(CREATED_DATE),
        col(STATUS).neq(lit("open")).alias(NOT_OPEN),
        is_won().alias(WON),
        col(STATUS).eq(lit("lost")).alias(LOST),
        col(CLOSED_DATE),
        col(AMOUNT),
        col(REP_CODE),
        col(TEAM_CODE),
    ])
}

const NOT_OPEN: &str = "__status_not_open";
const WON: &str = "__status_won";
const LOST: &str = "__status_lost";

/// Slippage rows at all levels (before [`crate::metrics::levels::finish`]).
///
/// `expected` from [`expected_closes`]; `push_dates` from [`push_dates`], when there is a deal
/// history.
pub fn deal_slippage(
    expected: LazyFrame,
    push_dates: Option<LazyFrame>,
    periods: &PeriodFrames,
    as_of: NaiveDate,
    tz: Tz,
) -> PolarsResult<LazyFrame> {
    let t = date_lit(as_of);
    let has_history = push_dates.is_some();
    let cohort = periods.with_bounds(periods.place(expected, E));
    let start_instant = local_midnight(col(PERIOD_START), tz);
    let reference = when(col(CREATED_AT).gt(start_instant.clone()))
        .then(col(CREATED_AT))
        .otherwise(start_instant);
    let in_force = col(FROM)
        .is_null()
        .or(col(FROM).lt_eq(reference.clone()))
        .and(col(TO).is_null().or(reference.lt(col(TO))));
    let closed = col(NOT_OPEN).and(col(CLOSED_DATE).is_not_null());
    let cohort = cohort
        .filter(in_force)
        .filter(col(CREATED_DATE).lt_eq(col(PERIOD_END)))
        .filter(
            col(CLOSED_DATE)
                .is_null()
                .or(col(CLOSED_DATE).gt_eq(col(PERIOD_START))),
        );
    let due = col(E).lt(t.clone());
    let on_time = due
        .clone()
        .and(closed.clone())
        .and(col(CLOSED_DATE).lt_eq(col(E)));
    let slipped = due.clone().and(on_time.clone().not());
    let slip_end = when(closed).then(col(CLOSED_DATE)).otherwise(t);
    let days = |e: Expr| e.cast(DataType::Int32).cast(DataType::Float64);
    let mut events = cohort.with_columns([
        due.alias("__due"),
        on_time.clone().alias("__on_time"),
        on_time.clone().and(col(WON)).alias("__won_on_time"),
        on_time.and(col(LOST)).alias("__lost"),
        slipped.clone().alias("__slipped"),
        when(slipped.clone())
            .then(col(AMOUNT).fill_null(lit(0.0)))
            .otherwise(lit(0.0))
            .alias("__slipped_amount"),
        when(slipped)
            .then(days(slip_end) - days(col(E)))
            .otherwise(lit(NULL).cast(DataType::Float64))
            .alias("__slip_days"),
    ]);
    if let Some(p) = push_dates {
        events = events
            .with_column(deal_period())
            .join(
                pushes(p, periods),
                [col(DEAL_PERIOD)],
                [col(DEAL_PERIOD)],
                JoinArgs::new(JoinType::Left),
            )
            .with_column(col("__pushes").fill_null(lit(0i64)));
    } else {
        events = events.with_column(lit(0i64).alias("__pushes"));
    }
    let events = events.select([
        col(PERIOD_IDX),
        col(REP_CODE),
        col(TEAM_CODE),
        col("__due"),
        col("__on_time"),
        col("__won_on_time"),
        col("__lost"),
        col("__slipped"),
        col("__slipped_amount"),
        col("__slip_days"),
        col("__pushes"),
    ]);
    // Every part adds up: counts, whole days, and amounts rounded to cents only at the end.
    let parts = [
        (DEALS_EXPECTED, len()),
        (DEALS_DUE, col("__due").sum()),
        (DEALS_CLOSED_ON_TIME, col("__on_time").sum()),
        (DEALS_WON_ON_TIME, col("__won_on_time").sum()),
        (DEALS_LOST, col("__lost").sum()),
        (DEALS_SLIPPED, col("__slipped").sum()),
        (SLIPPED_AMOUNT, col("__slipped_amount").sum()),
        ("__slip_days_sum", col("__slip_days").sum()),
        ("__slip_days_count", col("__slip_days").count()),
        (CLOSE_DATE_PUSHES, col("__pushes").sum()),
    ];
    let count = |name: &str| count_i64(col(name)).alias(name);
    let figures = [
        count(DEALS_EXPECTED),
        count(DEALS_DUE),
        count(DEALS_CLOSED_ON_TIME),
        count(DEALS_WON_ON_TIME),
        count(DEALS_LOST),
        count(DEALS_SLIPPED),
        cents(col(SLIPPED_AMOUNT)).alias(SLIPPED_AMOUNT),
        // The mean of whole days from their exact sum, as polars' mean computes it.
        ratio(col("__slip_days_sum"), col("__slip_days_count")).alias(AVG_SLIP_DAYS),
        count(CLOSE_DATE_PUSHES),
    ];
    // Over the slipped deals only: with nulls polars sorts each group to find a median.
    let median = [col("__slip_days").median().alias(MEDIAN_SLIP_DAYS)];
    let order_stats = OrderStats {
        filter: col("__slip_days").is_not_null(),
        aggs: &median,
    };
    let zero = [
        DEALS_EXPECTED,
        DEALS_DUE,
        DEALS_CLOSED_ON_TIME,
        DEALS_WON_ON_TIME,
        DEALS_LOST,
        DEALS_SLIPPED,
        SLIPPED_AMOUNT,
        CLOSE_DATE_PUSHES,
    ];
    let sums = Sums {
        parts: &parts,
        figures: &figures,
    };
    let rows = by_levels_keyed(
        events,
        periods,
        Aggs::Sums(sums),
        Some(&order_stats),
        &zero,
        None,
    )?
    .with_column(pct(col(DEALS_SLIPPED), col(DEALS_DUE)).alias(SLIPPAGE_RATE_PCT));
    Ok(if has_history {
        rows
    } else {
        rows.with_column(lit(NULL).cast(DataType::Int64).alias(CLOSE_DATE_PUSHES))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Grain;
    use crate::metrics::MetricId;
    use crate::testutil::*;

    #[test]
    fn history_dates_are_the_first_iso_date_in_each_value() -> PolarsResult<()> {
        let values = [
            Some("2024-03-15"),
            Some("2024-03-15T10:00:00Z"),
            Some("on 2024-03-15"),
            None,
            Some("2024-02-29"),
            Some("2023-02-29"),
            Some("15.03.2024"),
            Some(""),
        ];
        let df = df!("v" => values)?
            .lazy()
            .select([history_date(col("v"))
                .dt()
                .to_string("%Y-%m-%d")
                .fill_null(lit("-"))])
            .collect()?;
        let got: Vec<&str> = df.column("v")?.str()?.iter().flatten().collect();
        assert_eq!(
            got,
            [
                "2024-03-15",
                "2024-03-15",
                "2024-03-15",
                "-",
                "2024-02-29",
                "-",
                "-",
                "-"
            ]
        );
        Ok(())
    }

    const COLS: [&str; 14] = [
        "period",
        "level",
        "rep_id",
        DEALS_EXPECTED,
        DEALS_DUE,
        DEALS_CLOSED_ON_TIME,
        DEALS_WON_ON_TIME,
        DEALS_LOST,
        DEALS_SLIPPED,
        SLIPPED_AMOUNT,
        SLIPPAGE_RATE_PCT,
        AVG_SLIP_DAYS,
        MEDIAN_SLIP_DAYS,
        CLOSE_DATE_PUSHES,
    ];

    fn run(
        deals: LazyFrame,
        history: Option<LazyFrame>,
        grain: Grain,
        from: &str,
        to: &str,
        as_of: &str,
    ) -> PolarsResult<DataFrame> {
        let accepted = Accepted {
            reps: Some(reps(&[("R1", "T1"), ("R2", "T1")])),
            reps_have_team: true,
            deals: Some(deals),
            deal_history: history,
            ..Default::default()
        };
        prepare(accepted, as_of)
            .metrics
            .table(MetricId::DealSlippage, &periods(grain, from, to))?
            .collect()
    }

    fn rep_rows(df: &DataFrame) -> Vec<String> {
        rows(df, &COLS)
            .into_iter()
            .filter(|r| r.contains("|rep|"))
            .collect()
    }

    #[test]
    fn deal_pushed_twice_inside_one_quarter() -> PolarsResult<()> {
        // Created Jan 10 expecting Jan 31; pushed Jan 20 to Feb 15 and Feb 10 to Feb 28; won
        // Mar 5. By month: January sees E = Jan 31 (slipped 34 days, 1 push in January);
        // February sees E = Feb 15, the value in force on Feb 1 (slipped 19 days, 1 push);
        // March sees no E of this deal. By quarter: E = Jan 31 (in force at creation), 2 pushes.
        let deals = deals_expected(&[(
            "D2",
            "R1",
            "2024-01-10T09:00:00Z",
            "won",
            Some("2024-03-05"),
            "2024-02-28",
            20_000.0,
        )]);
        let changes = [
            (
                "D2",
                "2024-01-20T11:00:00Z",
                "expected_close_date",
                "2024-01-31",
                "2024-02-15",
            ),
            ("D2", "2024-01-25T11:00:00Z", "amount", "25000", "20000"),
            (
                "D2",
                "2024-02-10T16:30:00Z",
                "expected_close_date",
                "2024-02-15",
                "2024-02-28",
            ),
        ];
        let h = history(&changes);
        // The same history exported newest first: versions follow time, not file order.
        let mut newest_first = changes;
        newest_first.reverse();
        let by_month_reversed = run(
            deals.clone(),
            Some(history(&newest_first)),
            Grain::Month,
            "2024-01-01",
            "2024-03-01",
            "2024-06-30",
        )?;
        let by_month = run(
            deals.clone(),
            Some(h.clone()),
            Grain::Month,
            "2024-01-01",
            "2024-03-01",
            "2024-06-30",
        )?;
        assert_eq!(
            rep_rows(&by_month),
            [
                "2024-01|rep|R1|1|1|0|0|0|1|20000.0|100.0|34.0|34.0|1",
                "2024-02|rep|R1|1|1|0|0|0|1|20000.0|100.0|19.0|19.0|1",
            ]
        );
        assert_eq!(rep_rows(&by_month_reversed), rep_rows(&by_month));
        let by_quarter = run(
            deals,
            Some(h),
            Grain::Quarter,
            "2024-01-01",
            "2024-01-01",
            "2024-06-30",
        )?;
        assert_eq!(
            rep_rows(&by_quarter),
            ["2024-Q1|rep|R1|1|1|0|0|0|1|20000.0|100.0|34.0|34.0|2"]
        );
        Ok(())
    }

    #[test]
    fn pushes_count_for_their_own_deal_only() -> PolarsResult<()> {
        // D1 (R1) and D2 (R2) both created Jan 10 expecting Jan 31, both still open at T =
        // Jun 30. Only D2 is pushed: on Jan 20, to Feb 15. D9 is not a deal (a history row
        // of a deleted deal): its push counts nowhere. D2 comes second, so a push credited
        // by position instead of by deal would land on R1.
        // January: both slipped 151 days (Jan 31 -> Jun 30); R2 has 1 push, R1 none.
        // February: D2's version in force on Feb 1 expects Feb 15: slipped 136 days, no push.
        let deals = deals_expected(&[
            (
                "D1",
                "R1",
                "2024-01-10T09:00:00Z",
                "open",
                None,
                "2024-01-31",
                1_000.0,
            ),
            (
                "D2",
                "R2",
                "2024-01-10T09:00:00Z",
                "open",
                None,
                "2024-02-15",
                2_000.0,
            ),
        ]);
        let h = history(&[
            (
                "D9",
                "2024-01-12T10:00:00Z",
                "expected_close_date",
                "2024-01-20",
                "2024-03-20",
            ),
            (
                "D2",
                "2024-01-20T11:00:00Z",
                "expected_close_date",
                "2024-01-31",
                "2024-02-15",
            ),
        ]);
        let accepted = Accepted {
            reps: Some(reps(&[("R1", "T1"), ("R2", "T1")])),
            reps_have_team: true,
            deals: Some(deals),
            deal_history: Some(h),
            ..Default::default()
        };
        let df = prepare(accepted, "2024-06-30")
            .metrics
            .table(
                MetricId::DealSlippage,
                &periods(Grain::Month, "2024-01-01", "2024-02-01"),
            )?
            .collect()?;
        assert_eq!(
            rep_rows(&df),
            [
                "2024-01|rep|R1|1|1|0|0|0|1|1000.0|100.0|151.0|151.0|0",
                "2024-01|rep|R2|1|1|0|0|0|1|2000.0|100.0|151.0|151.0|1",
                "2024-02|rep|R2|1|1|0|0|0|1|2000.0|100.0|136.0|136.0|0",
            ]
        );
        let company: Vec<String> = rows(&df, &COLS)
            .into_iter()
            .filter(|r| r.contains("|company|"))
            .collect();
        assert!(company[0].starts_with("2024-01|company|") && company[0].ends_with("|1"));
        Ok(())
    }

    #[test]
    fn on_time_lost_early_closed_not_due_and_open() -> PolarsResult<()> {
        // As of Mar 20, March cohort (E in March):
        //  D1 won Mar 2, E Mar 10: won on time (early).
        //  D2 lost Mar 9, E Mar 10: lost on time.
        //  D3 lost Mar 12, E Mar 10: lost after E = slipped 2 days.
        //  D4 open, E Mar 5: slipped to the as-of date, 15 days, amount 700.
        //  D5 open, E Mar 25: after the as-of date, in the cohort but not due.
        //  D6 won Feb 27, E Mar 10: closed before March: not in the cohort at all.
        // R1: due 4, on time 2 (1 won, 1 lost), slipped 2 (700 + 300), rate 50 %, avg and
        // median 8.5 days.
        //  D7 (R2) won Mar 5, E Mar 10: on time; R2 slipped nothing, so no average or median.
        // Team and company: due 5, on time 3, rate 40 %.
        let deals = deals_expected(&[
            (
                "D1",
                "R1",
                "2024-02-01T00:00:00Z",
                "won",
                Some("2024-03-02"),
                "2024-03-10",
                100.0,
            ),
            (
                "D2",
                "R1",
                "2024-02-01T00:00:00Z",
                "lost",
                Some("2024-03-09"),
                "2024-03-10",
                200.0,
            ),
            (
                "D3",
                "R1",
                "2024-02-01T00:00:00Z",
                "lost",
                Some("2024-03-12"),
                "2024-03-10",
                300.0,
            ),
            (
                "D4",
                "R1",
                "2024-02-01T00:00:00Z",
                "open",
                None,
                "2024-03-05",
                700.0,
            ),
            (
                "D5",
                "R1",
                "2024-02-01T00:00:00Z",
                "open",
                None,
                "2024-03-25",
                900.0,
            ),
            (
                "D6",
                "R1",
                "2024-02-01T00:00:00Z",
                "won",
                Some("2024-02-27"),
                "2024-03-10",
                50.0,
            ),
            (
                "D7",
                "R2",
                "2024-02-01T00:00:00Z",
                "won",
                Some("2024-03-05"),
                "2024-03-10",
                400.0,
            ),
        ]);
        let out = run(
            deals,
            None,
            Grain::Month,
            "2024-03-01",
            "2024-03-01",
            "2024-03-20",
        )?;
        // Without deal_history, pushes are null.
        assert_eq!(
            rows(&out, &COLS),
            [
                "2024-03|company|-|6|5|3|2|1|2|1000.0|40.0|8.5|8.5|-",
                "2024-03|team|-|6|5|3|2|1|2|1000.0|40.0|8.5|8.5|-",
                "2024-03|rep|R1|5|4|2|1|1|2|1000.0|50.0|8.5|8.5|-",
                "2024-03|rep|R2|1|1|1|1|0|0|0.0|0.0|-|-|-",
            ]
        );
        Ok(())
    }

    #[test]
    fn deal_created_mid_period_uses_the_value_at_creation() -> PolarsResult<()> {
        // Created Feb 15 09:00 expecting Feb 20; pushed at 12:00 the same day to Mar 10. For
        // February the reference is the creation instant (after Feb 1), so E = Feb 20; won
        // Mar 1: slipped 10 days. For March E = Mar 10 and it was won on time.
        let deals = deals_expected(&[(
            "D1",
            "R1",
            "2024-02-15T09:00:00Z",
            "won",
            Some("2024-03-01"),
            "2024-03-10",
            10.0,
        )]);
        let h = history(&[(
            "D1",
            "2024-02-15T12:00:00Z",
            "expected_close_date",
            "2024-02-20",
            "2024-03-10",
        )]);
        let out = run(
            deals,
            Some(h),
            Grain::Month,
            "2024-01-01",
            "2024-03-01",
            "2024-06-30",
        )?;
        assert_eq!(
            rep_rows(&out),
            [
                "2024-02|rep|R1|1|1|0|0|0|1|10.0|100.0|10.0|10.0|1",
                "2024-03|rep|R1|1|1|1|1|0|0|0.0|0.0|-|-|0",
            ]
        );
        Ok(())
    }

    #[test]
    fn history_after_the_as_of_date_does_not_count() -> PolarsResult<()> {
        // As of Jan 31, a push made on Feb 3 has not happened: E is still its old value, Jan 20,
        // even though deals.expected_close_date already shows the new one.
        let deals = deals_expected(&[(
            "D1",
            "R1",
            "2024-01-02T00:00:00Z",
            "open",
            None,
            "2024-02-28",
            10.0,
        )]);
        let h = history(&[(
            "D1",
            "2024-02-03T10:00:00Z",
            "expected_close_date",
            "2024-01-20",
            "2024-02-28",
        )]);
        let out = run(
            deals,
            Some(h),
            Grain::Month,
            "2024-01-01",
            "2024-01-01",
            "2024-01-31",
        )?;
        assert_eq!(
            rep_rows(&out),
            ["2024-01|rep|R1|1|1|0|0|0|1|10.0|100.0|11.0|11.0|0"]
        );
        Ok(())
    }
}
