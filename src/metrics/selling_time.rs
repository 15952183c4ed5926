//! Time spent selling: share of logged minutes on selling work (SPEC §6.5, §11).
//!
//! - Activities with `duration_minutes` > 0, placed by the date of `started_at`.
//! - Each `activity_type` is `selling` or `non_selling` by the pipeline's lists; a rep's role
//!   lists (e.g. SDR: prospecting is selling) are consulted first and the default lists for
//!   the types they do not name. A type in both lists of one scope is selling. Types in no
//!   list are `unclassified`: counted in their own column and warned about once per type.
//!   Matching ignores case. Direction does not matter.
//! - `selling_time_pct` = 100 × selling / (selling + non_selling), unclassified left out.
//! - With `working_minutes_per_day`: `capacity_minutes` = weekdays (Mon–Fri) of the whole
//!   period × that, for each rep with a row; on team rows each weekday goes to the team the
//!   rep was in that day. `selling_pct_of_capacity` = 100 × selling / capacity. Null otherwise.
//!
//! Example (an AE, default lists, one month): call 30 min, demo 60, crm_update 30, and
//! gardening 15 (in no list):
//!
//! | selling_minutes | non_selling_minutes | unclassified_minutes | total_minutes | selling_time_pct |
//! |-----------------|---------------------|----------------------|---------------|------------------|
//! | 90              | 30                  | 15                   | 135           | 75               |

use std::collections::BTreeMap;

use polars::prelude::*;

use crate::calendar::Grain;
use crate::columns::{
    ACTIVITY_TYPE, CAPACITY_MINUTES, DATE, DURATION_MINUTES, NON_SELLING_MINUTES, PERIOD_END,
    PERIOD_IDX, PERIOD_START, REP_CODE, REP_ID, ROLE, SELLING_MINUTES, SELLING_PCT_OF_CAPACITY,
    SELLING_TIME_PCT, TEAM_CODE, TEAM_ID, TOTAL_MINUTES, UNCLASSIFIED_MINUTES, VALID_FROM,
    VALID_TO,
};
use crate::metrics::entities::{
    SEG_FIRST_DAY, SEG_LAST_DAY, lookup, with_segment_days, with_team_on_by,
};
use crate::metrics::levels::{by_levels, distinct_period_codes, divided, pct};
use crate::metrics::periods::PeriodFrames;

pub const COLUMNS: [&str; 7] = [
    SELLING_MINUTES,
    NON_SELLING_MINUTES,
    UNCLASSIFIED_MINUTES,
    TOTAL_MINUTES,
    SELLING_TIME_PCT,
    CAPACITY_MINUTES,
    SELLING_PCT_OF_CAPACITY,
];

/// An activity's category ([`category`]), as a small code: the sums below compare a number per
/// row instead of a word.
pub const CATEGORY: &str = "category";
pub const SELLING: u32 = 0;
pub const NON_SELLING: u32 = 1;
pub const UNCLASSIFIED: u32 = 2;

/// Activity types of one scope (the defaults, or one role).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeLists {
    pub selling: Vec<String>,
    pub non_selling: Vec<String>,
}

/// The `[metrics.selling_time]` settings, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct SellingSettings {
    pub default: TypeLists,
    /// Role name -> lists that take precedence for reps with that role.
    pub roles: BTreeMap<String, TypeLists>,
    pub working_minutes_per_day: Option<f64>,
}

impl Default for SellingSettings {
    /// SPEC §10's example lists, used when the pipeline file has no `[metrics.selling_time]`.
    fn default() -> Self {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect();
        SellingSettings {
            default: TypeLists {
                selling: v(&["call", "email", "meeting", "demo"]),
                non_selling: v(&["note", "crm_update", "admin", "prospecting"]),
            },
            roles: BTreeMap::from([(
                "SDR".to_string(),
                TypeLists {
                    selling: v(&["prospecting", "call", "email"]),
                    non_selling: v(&["note", "crm_update", "admin"]),
                },
            )]),
            working_minutes_per_day: None,
        }
    }
}

/// `category` of an activity from its `activity_type` and its rep's `role` (both lower
/// case): the role's lists first, then the defaults, else `unclassified`. Within one scope a
/// type in both lists is selling; of two roles that are the same in lower case, the later in
/// the pipeline file's (sorted) order wins.
pub fn category(s: &SellingSettings) -> Expr {
    let in_list = |types: &[String]| {
        types
            .iter()
            .map(|t| col(ACTIVITY_TYPE).eq(lit(t.to_lowercase())))
            .reduce(Expr::or)
            .unwrap_or(lit(false))
            .fill_null(lit(false))
    };
    let mut category = when(in_list(&s.default.selling))
        .then(lit(SELLING))
        .when(in_list(&s.default.non_selling))
        .then(lit(NON_SELLING))
        .otherwise(lit(UNCLASSIFIED));
    for (role, lists) in &s.roles {
        let is_role = col(ROLE).eq(lit(role.to_lowercase())).fill_null(lit(false));
        category = when(is_role.clone().and(in_list(&lists.selling)))
            .then(lit(SELLING))
            .when(is_role.and(in_list(&lists.non_selling)))
            .then(lit(NON_SELLING))
            .otherwise(category);
    }
    category.cast(DataType::UInt32)
}

/// Adds `category` ([`category`]) to activities with `activity_type` and `role`.
pub fn classify(activities: LazyFrame, s: &SellingSettings) -> LazyFrame {
    activities.with_column(category(s).alias(CATEGORY))
}

/// The first day of the bucket that `date` (a `Date`) falls in: the run of days around it that
/// lies in one period of every grain in `grains`. That is its month (quarters and years,
/// calendar or fiscal, are whole months), cut at each Monday when weeks are among the grains.
pub fn bucket_start(date: Expr, grains: &[Grain]) -> Expr {
    let day = || date.clone().cast(DataType::Int32).cast(DataType::Int64);
    let month_start = date
        .clone()
        .dt()
        .month_start()
        .cast(DataType::Int32)
        .cast(DataType::Int64);
    let start = match grains.contains(&Grain::Week) {
        true => {
            // 1970-01-01 was a Thursday, so (day + 3) mod 7 is 0 on a Monday; 100 000 weeks
            // keep the dividend positive for any date a segment or an event carries.
            let week_start = day() - (day() + lit(3i64 + 7 * 100_000)) % lit(7i64);
            when(week_start.clone().gt(month_start.clone()))
                .then(week_start)
                .otherwise(month_start)
        }
        false => month_start,
    };
    start.cast(DataType::Int32).cast(DataType::Date)
}

/// Whether a rep's minutes are summed per bucket ([`bucket_start`]) rather than per day.
const COARSE: &str = "__coarse";

/// `reps` (with `rep_id`) with `__coarse`: true for a rep whose every membership begins and
/// ends on the first day of a bucket. The rep's team segments start at those days (and at the
/// start of time; see [`crate::metrics::entities::team_segments`]), so such a rep is in one
/// team on all days of any bucket. A rep without memberships has one segment: coarse too.
///
/// Read from the memberships, which a run collects before its inputs stage (`inputs::load`):
/// joined in while that stage's execution computed them, polars made the activities wait and
/// held the waiting rows (at 50 M activities, twice the run's peak memory).
pub fn with_coarse(reps: LazyFrame, memberships: Option<LazyFrame>, grains: &[Grain]) -> LazyFrame {
    let Some(m) = memberships else {
        return reps.with_column(lit(true).alias(COARSE));
    };
    let starts_bucket = |c: &str| bucket_start(col(c), grains).eq(col(c));
    let coarse = m.group_by([col(REP_ID)]).agg([starts_bucket(VALID_FROM)
        .fill_null(lit(false))
        .and(starts_bucket(VALID_TO).fill_null(lit(true)))
        .all(true)
        .alias(COARSE)]);
    lookup(reps, coarse, REP_ID).with_column(col(COARSE).fill_null(lit(true)))
}

/// Logged minutes per rep and bucket of days, the same for every grain in `grains`: `date`
/// (the bucket's first day), `__rep_code`, `__team_code` (the code of the rep's team in it),
/// and the `selling_minutes`, `non_selling_minutes`, `unclassified_minutes` and
/// `total_minutes` logged in it. Every later sum adds these, so a period's figures are sums of
/// buckets. A bucket is a day, or, for a rep whose team changes only at the start of one
/// ([`with_coarse`]), the days that lie in one period of every grain ([`bucket_start`]: at
/// most a month). Per rep and month instead of per rep and day, the group-by below meets far
/// fewer keys and the tables read a tenth of the rows; kept because per rep and day a run on
/// 50 M activities takes 19 % longer (`scripts/bench.sh`, interleaved).
///
/// `activities`: classified (see [`classify`]), with `rep_id`'s [`REP_CODE`], `date`
/// (reporting time zone), `duration_minutes`, `category` and the rep's `__coarse`
/// ([`with_coarse`]); `segments` with the codes of
/// [`crate::metrics::entities::Codes::on_segments`].
pub fn daily(activities: LazyFrame, segments: LazyFrame, grains: &[Grain]) -> LazyFrame {
    // Summed as integer micro-minutes: exact, so the sums do not depend on the order in
    // which rows arrive (which varies from run to run on the streaming engine).
    let micro = |e: Expr| {
        (e * lit(MICRO_MINUTES))
            .round(0, RoundMode::HalfAwayFromZero)
            .cast(DataType::Int64)
    };
    let minutes = |cat: u32| {
        when(col(CATEGORY).eq(lit(cat)))
            .then(col(MICRO))
            .otherwise(lit(0i64))
    };
    let bucket = when(col(COARSE).fill_null(lit(false)))
        .then(bucket_start(col(DATE), grains))
        .otherwise(col(DATE));
    let daily = activities
        .filter(col(DURATION_MINUTES).gt(lit(0.0)).fill_null(lit(false)))
        .with_columns([
            micro(col(DURATION_MINUTES)).alias(MICRO),
            bucket.alias(DATE),
        ])
        // Summed per rep, day and category first, one integer key and one sum: polars'
        // streaming group-by keeps every row whose key is not among its few thousand hot
        // ones until the end, and activities arrive in no order, so that is nearly every
        // row. Kept with one sum instead of three, a row takes 24 bytes instead of 40, which
        // lowers the peak memory of large runs.
        .group_by([rep_day_category_key()])
        .agg([col(MICRO).sum()])
        .with_columns(unpack_rep_day_category())
        // At most three rows per rep-day.
        .group_by([col(REP_DAY)])
        .agg([
            minutes(SELLING).sum().alias(SELLING_MINUTES),
            minutes(NON_SELLING).sum().alias(NON_SELLING_MINUTES),
            col(MICRO).sum().alias(TOTAL_MINUTES),
        ])
        // Every activity has one of the three categories, and the sums are exact integers.
        .with_column(
            (col(TOTAL_MINUTES) - col(SELLING_MINUTES) - col(NON_SELLING_MINUTES))
                .alias(UNCLASSIFIED_MINUTES),
        )
        .with_columns(unpack_rep_day())
        .drop(cols([REP_DAY]));
    // Placed by the rep's code, which the segments carry; the tables read the rep's and team's
    // codes, not their ids.
    with_team_on_by(daily, REP_CODE, DATE, segments).drop(cols([REP_ID, TEAM_ID]))
}

const REP_DAY: &str = "__rep_day";
const REP_DAY_CATEGORY: &str = "__rep_day_category";
/// An activity's duration in integer micro-minutes.
const MICRO: &str = "__micro_minutes";
const DAY_OFFSET: i64 = 1 << 31;
/// Reps a run can number: `rep_day_category_key` keeps 30 bits for the rep's code.
pub const MAX_REPS: u64 = 1 << 30;

/// [`REP_CODE`] in the high 32 bits, the day (days since 1970, shifted to be ≥ 0) in the low.
fn rep_day_key() -> Expr {
    let day = (col(DATE).cast(DataType::Int32).cast(DataType::Int64) + lit(DAY_OFFSET))
        .cast(DataType::UInt64);
    (col(REP_CODE).cast(DataType::UInt64) * lit(1u64 << 32) + day).alias(REP_DAY)
}

/// [`rep_day_key`] shifted left by two bits, [`CATEGORY`] (0-2) in those two: the rep's code
/// must stay below [`MAX_REPS`].
fn rep_day_category_key() -> Expr {
    (rep_day_key() * lit(4u64) + col(CATEGORY).cast(DataType::UInt64)).alias(REP_DAY_CATEGORY)
}

/// [`REP_DAY`] and [`CATEGORY`] back from [`rep_day_category_key`].
fn unpack_rep_day_category() -> [Expr; 2] {
    let key = || col(REP_DAY_CATEGORY);
    [
        key().floor_div(lit(4u64)).alias(REP_DAY),
        (key() % lit(4u64)).cast(DataType::UInt32).alias(CATEGORY),
    ]
}

/// [`REP_CODE`] and `date` back from [`rep_day_key`].
fn unpack_rep_day() -> [Expr; 2] {
    let key = || col(REP_DAY);
    [
        key()
            .floor_div(lit(1u64 << 32))
            .cast(DataType::UInt32)
            .alias(REP_CODE),
        ((key() % lit(1u64 << 32)).cast(DataType::Int64) - lit(DAY_OFFSET))
            .cast(DataType::Int32)
            .cast(DataType::Date)
            .alias(DATE),
    ]
}

/// Monday to Friday days from `from` to `to` (days since 1970, inclusive, `from` <= `to`).
fn weekdays_between(from: Expr, to: Expr) -> Expr {
    // Weekdays before day n counted from a Monday long before any date we meet (1970-01-01
    // was a Thursday, so day -3 is a Monday; 100 000 weeks earlier keeps n positive):
    // 5 per whole week, plus the part week's days up to five.
    let before = |day: Expr| {
        let n = day.cast(DataType::Int64) + lit(3i64 + 7 * 100_000);
        let rest = n.clone() % lit(7i64);
        n.floor_div(lit(7i64)) * lit(5i64)
            + when(rest.clone().lt(lit(5i64)))
                .then(rest)
                .otherwise(lit(5i64))
    };
    before(to + lit(1)) - before(from)
}

/// Micro-minutes per minute: the integer unit [`daily`] sums in.
const MICRO_MINUTES: f64 = 1e6;

/// Selling-time rows at all levels, from [`daily`].
pub fn selling_time(
    daily: LazyFrame,
    segments: LazyFrame,
    periods: &PeriodFrames,
    working_minutes_per_day: Option<f64>,
) -> PolarsResult<LazyFrame> {
    let sums = [
        SELLING_MINUTES,
        NON_SELLING_MINUTES,
        UNCLASSIFIED_MINUTES,
        TOTAL_MINUTES,
    ];
    let events = periods.place(daily, DATE).select(
        [col(PERIOD_IDX), col(REP_CODE), col(TEAM_CODE)]
            .into_iter()
            .chain(sums.map(col))
            .collect::<Vec<_>>(),
    );
    let mut aggs: Vec<Expr> = sums
        .iter()
        // Integer micro-minutes until the rows are finished (below).
        .map(|c| col(*c).sum().alias(*c))
        .collect();
    let events = match working_minutes_per_day {
        Some(per_day) => {
            // Each weekday of the period counts for each rep with activity in it, credited to
            // the rep's team that day: per team segment overlapping the period, its weekdays
            // counted by arithmetic (a few rows per rep and period, not one per weekday).
            let days = |c: &str| col(c).cast(DataType::Int32);
            let with_periods = distinct_period_codes(events.clone(), REP_CODE).join(
                periods.periods.clone().select([
                    col(PERIOD_IDX),
                    days(PERIOD_START).alias("__p_start"),
                    days(PERIOD_END).alias("__p_end"),
                ]),
                [col(PERIOD_IDX)],
                [col(PERIOD_IDX)],
                JoinArgs::new(JoinType::Inner),
            );
            let capacity = with_segment_days(with_periods, segments, REP_CODE, &[TEAM_CODE])
                .with_columns([
                    polars::lazy::dsl::max_horizontal([col("__p_start"), col(SEG_FIRST_DAY)])?
                        .alias("__from"),
                    polars::lazy::dsl::min_horizontal([col("__p_end"), col(SEG_LAST_DAY)])?
                        .alias("__to"),
                ])
                .filter(col("__from").lt_eq(col("__to")))
                .select([
                    col(PERIOD_IDX),
                    col(REP_CODE),
                    col(TEAM_CODE),
                    (lit(per_day)
                        * weekdays_between(col("__from"), col("__to")).cast(DataType::Float64))
                    .alias("__capacity"),
                ]);
            aggs.push(col("__capacity").sum().alias(CAPACITY_MINUTES));
            concat_lf_diagonal([events, capacity], UnionArgs::default())?
        }
        None => events,
    };
    let rows = by_levels(events, periods, &aggs, &sums)?
        .with_columns(sums.map(|c| divided(col(c), MICRO_MINUTES).alias(c)))
        .with_column(
            pct(
                col(SELLING_MINUTES),
                col(SELLING_MINUTES) + col(NON_SELLING_MINUTES),
            )
            .alias(SELLING_TIME_PCT),
        );
    Ok(match working_minutes_per_day {
        Some(_) => rows
            .with_column(col(CAPACITY_MINUTES).fill_null(lit(0.0)))
            .with_column(
                pct(col(SELLING_MINUTES), col(CAPACITY_MINUTES)).alias(SELLING_PCT_OF_CAPACITY),
            ),
        None => rows.with_columns([
            lit(NULL).cast(DataType::Float64).alias(CAPACITY_MINUTES),
            lit(NULL)
                .cast(DataType::Float64)
                .alias(SELLING_PCT_OF_CAPACITY),
        ]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Grain;
    use crate::metrics::{MetricId, Settings};
    use crate::testutil::*;

    const COLS: [&str; 10] = [
        "period",
        "level",
        "rep_id",
        SELLING_MINUTES,
        NON_SELLING_MINUTES,
        UNCLASSIFIED_MINUTES,
        TOTAL_MINUTES,
        SELLING_TIME_PCT,
        CAPACITY_MINUTES,
        SELLING_PCT_OF_CAPACITY,
    ];

    fn act(
        id: &'static str,
        rep: &'static str,
        kind: &'static str,
        at: &'static str,
        minutes: Option<f64>,
    ) -> ActivityRow<'static> {
        (id, rep, None, None, kind, "outbound", at, minutes)
    }

    fn accepted(acts: LazyFrame) -> Accepted {
        Accepted {
            reps: Some(reps_with_roles(&[
                ("AE1", "T1", "AE"),
                ("SDR1", "T2", "sdr"),
            ])),
            reps_have_team: true,
            reps_have_role: true,
            activities: Some(acts),
            ..Default::default()
        }
    }

    #[test]
    fn sdr_and_ae_prospecting_unmapped_type_and_ignored_durations() -> PolarsResult<()> {
        // Default lists (SPEC §10): prospecting is non-selling, except for SDRs (role matched
        // case-insensitively). AE1: call 30 + demo 60 selling, prospecting 30 non-selling,
        // gardening 15 unclassified, a zero and a null duration ignored: 90 / 120 = 75 %.
        // SDR1: prospecting 40 + note 10 (SDR list) + CRM_Update 10 (default list, case ignored):
        // 40 / 60 = 66.67 %. Company: 130 / 180 = 72.22 %.
        let acts = activities(&[
            act("A1", "AE1", "call", "2024-01-10T10:00:00Z", Some(30.0)),
            act("A2", "AE1", "demo", "2024-01-10T11:00:00Z", Some(60.0)),
            act(
                "A3",
                "AE1",
                "prospecting",
                "2024-01-10T12:00:00Z",
                Some(30.0),
            ),
            act("A4", "AE1", "gardening", "2024-01-10T13:00:00Z", Some(15.0)),
            act("A5", "AE1", "call", "2024-01-10T14:00:00Z", Some(0.0)),
            act("A6", "AE1", "call", "2024-01-10T15:00:00Z", None),
            act(
                "A7",
                "SDR1",
                "prospecting",
                "2024-01-10T10:00:00Z",
                Some(40.0),
            ),
            act("A8", "SDR1", "note", "2024-01-10T11:00:00Z", Some(10.0)),
            act(
                "A9",
                "SDR1",
                "CRM_Update",
                "2024-01-10T12:00:00Z",
                Some(10.0),
            ),
        ]);
        let p = prepare(accepted(acts), "2024-01-31");
        let df = p
            .metrics
            .table(
                MetricId::SellingTime,
                &periods(Grain::Month, "2024-01-01", "2024-01-01"),
            )?
            .collect()?;
        assert_eq!(
            rows(&df, &COLS),
            [
                "2024-01|company|-|130.0|50.0|15.0|195.0|72.22222222222223|-|-",
                "2024-01|team|-|90.0|30.0|15.0|135.0|75.0|-|-",
                "2024-01|team|-|40.0|20.0|0.0|60.0|66.66666666666667|-|-",
                "2024-01|rep|AE1|90.0|30.0|15.0|135.0|75.0|-|-",
                "2024-01|rep|SDR1|40.0|20.0|0.0|60.0|66.66666666666667|-|-",
            ]
        );
        let unmapped = p.unclassified.clone().expect("activities").collect()?;
        assert_eq!(rows(&unmapped, &[ACTIVITY_TYPE]), ["gardening"]);
        Ok(())
    }

    #[test]
    fn late_evening_utc_is_the_next_day_in_berlin_and_capacity_counts_weekdays() -> PolarsResult<()>
    {
        // 23:30 UTC on Jan 31 is 00:30 on Feb 1 in Berlin: February. With 480 working minutes
        // a day, February 2024 has 21 weekdays: capacity 10 080, 60 selling minutes = 0.6 %.
        let acts = activities(&[act("A1", "AE1", "call", "2024-01-31T23:30:00Z", Some(60.0))]);
        let mut settings = Settings::default();
        settings.selling.working_minutes_per_day = Some(480.0);
        let p = prepare_with(
            accepted(acts),
            "2024-02-29",
            chrono_tz::Europe::Berlin,
            settings,
        );
        let df = p
            .metrics
            .table(
                MetricId::SellingTime,
                &periods(Grain::Month, "2024-01-01", "2024-02-01"),
            )?
            .collect()?;
        assert_eq!(
            rows(&df, &COLS),
            [
                "2024-01|company|-|0.0|0.0|0.0|0.0|-|0.0|-",
                "2024-02|company|-|60.0|0.0|0.0|60.0|100.0|10080.0|0.5952380952380952",
                "2024-02|team|-|60.0|0.0|0.0|60.0|100.0|10080.0|0.5952380952380952",
                "2024-02|rep|AE1|60.0|0.0|0.0|60.0|100.0|10080.0|0.5952380952380952",
            ]
        );
        Ok(())
    }

    #[test]
    fn capacity_splits_at_a_team_change_inside_the_period() -> PolarsResult<()> {
        // AE1 moves T1 -> T2 on Wednesday 2024-02-14. February 2024 has 21 weekdays: 9 before
        // the move (1-2, 5-9, 12-13), 12 from it. At 480 minutes a day: rep 10 080, T1 4 320,
        // T2 5 760; the 60 selling minutes on Feb 20 go to T2.
        let mut a = accepted(activities(&[act(
            "A1",
            "AE1",
            "call",
            "2024-02-20T10:00:00Z",
            Some(60.0),
        )]));
        a.memberships = Some(memberships(&[
            ("AE1", "T1", "2024-01-01", Some("2024-02-14")),
            ("AE1", "T2", "2024-02-14", None),
        ]));
        let mut settings = Settings::default();
        settings.selling.working_minutes_per_day = Some(480.0);
        let p = prepare_with(a, "2024-02-29", chrono_tz::UTC, settings);
        let df = p
            .metrics
            .table(
                MetricId::SellingTime,
                &periods(Grain::Month, "2024-02-01", "2024-02-01"),
            )?
            .collect()?;
        assert_eq!(
            rows(
                &df,
                &[
                    "level",
                    "team_id",
                    "rep_id",
                    SELLING_MINUTES,
                    CAPACITY_MINUTES
                ]
            ),
            [
                "company|-|-|60.0|10080.0",
                "team|T1|-|0.0|4320.0",
                "team|T2|-|60.0|5760.0",
                "rep|T2|AE1|60.0|10080.0",
            ]
        );
        Ok(())
    }

    #[test]
    fn bucket_start_is_the_month_cut_at_mondays_when_weeks_are_asked_for() -> PolarsResult<()> {
        // (day, its bucket's first day with months only, with weeks and months). 2024-02-29 is
        // a Thursday, 2024-03-01 a Friday, 2024-03-03 a Sunday, 2024-03-04 a Monday;
        // 1969-12-31 a Wednesday; 1000-01-01 (the first segment's start) a month's first day.
        let cases = [
            ("2024-02-29", "2024-02-01", "2024-02-26"),
            ("2024-03-01", "2024-03-01", "2024-03-01"),
            ("2024-03-03", "2024-03-01", "2024-03-01"),
            ("2024-03-04", "2024-03-01", "2024-03-04"),
            ("1969-12-31", "1969-12-01", "1969-12-29"),
            ("1000-01-01", "1000-01-01", "1000-01-01"),
        ];
        let mut days: Vec<Option<&str>> = cases.iter().map(|c| Some(c.0)).collect();
        days.push(None);
        let out = DataFrame::new_infer_height(vec![dates(DATE, &days)])?
            .lazy()
            .select([
                bucket_start(col(DATE), &[Grain::Month]).alias("months"),
                bucket_start(col(DATE), &[Grain::Quarter, Grain::Year]).alias("longer"),
                bucket_start(col(DATE), &[Grain::Month, Grain::Week]).alias("weeks"),
            ])
            .collect()?;
        let mut want: Vec<String> = cases
            .iter()
            .map(|c| format!("{}|{}|{}", c.1, c.1, c.2))
            .collect();
        want.push("-|-|-".into());
        assert_eq!(rows(&out, &["months", "longer", "weeks"]), want);
        Ok(())
    }

    #[test]
    fn minutes_are_summed_per_bucket_unless_the_team_changes_inside_one() -> PolarsResult<()> {
        // AE1 stays in T1; AE2 moves T1 -> T2 on Wednesday 2024-02-14, inside a month and a
        // week: its minutes stay per day. AE3 moves on Friday 2024-03-01, the first day of a
        // month and so of a bucket with or without weeks: its minutes are summed per bucket,
        // each bucket in one team. AE4 is in T2 from 2024-01-01, a bucket's start, until
        // Wednesday 2024-02-14, then in its own T1 again: per day too. Rep codes follow the
        // reps' order, team codes the ids'.
        let call = |id, rep, at, minutes| act(id, rep, "call", at, Some(minutes));
        let acts = activities(&[
            call("A1", "AE1", "2024-02-05T10:00:00Z", 10.0),
            call("A2", "AE1", "2024-02-20T10:00:00Z", 20.0),
            call("A3", "AE1", "2024-03-04T10:00:00Z", 30.0),
            call("B1", "AE2", "2024-02-10T10:00:00Z", 10.0),
            call("B2", "AE2", "2024-02-20T10:00:00Z", 20.0),
            call("B3", "AE2", "2024-02-21T10:00:00Z", 5.0),
            call("C1", "AE3", "2024-02-27T10:00:00Z", 10.0),
            call("C2", "AE3", "2024-03-01T10:00:00Z", 20.0),
            call("C3", "AE3", "2024-03-05T10:00:00Z", 40.0),
            call("D1", "AE4", "2024-02-10T10:00:00Z", 10.0),
            call("D2", "AE4", "2024-02-20T10:00:00Z", 20.0),
        ]);
        let a = Accepted {
            reps: Some(reps_with_roles(&[
                ("AE1", "T1", "AE"),
                ("AE2", "T1", "AE"),
                ("AE3", "T1", "AE"),
                ("AE4", "T1", "AE"),
            ])),
            reps_have_team: true,
            reps_have_role: true,
            memberships: Some(memberships(&[
                ("AE2", "T1", "2024-01-01", Some("2024-02-14")),
                ("AE2", "T2", "2024-02-14", None),
                ("AE3", "T1", "2024-01-01", Some("2024-03-01")),
                ("AE3", "T2", "2024-03-01", None),
                ("AE4", "T2", "2024-01-01", Some("2024-02-14")),
            ])),
            activities: Some(acts),
            ..Default::default()
        };
        let prepared = |grains: &[Grain]| {
            let calendar = crate::calendar::Calendar::new(1).expect("calendar");
            prepare_for(
                &a,
                "2024-03-31",
                chrono_tz::UTC,
                calendar,
                grains,
                Settings::default(),
            )
        };
        let daily = |p: &crate::inputs::prepare::Prepared| -> PolarsResult<Vec<String>> {
            let df = p
                .metrics
                .daily_minutes
                .clone()
                .expect("activities")
                .select([
                    col(REP_CODE),
                    col(DATE),
                    col(TEAM_CODE),
                    (col(TOTAL_MINUTES) / lit(MICRO_MINUTES)).alias("minutes"),
                ])
                .sort([REP_CODE, DATE], SortMultipleOptions::default())
                .collect()?;
            Ok(rows(&df, &[REP_CODE, DATE, TEAM_CODE, "minutes"]))
        };
        let ae2 = [
            "1|2024-02-10|0|10.0",
            "1|2024-02-20|1|20.0",
            "1|2024-02-21|1|5.0",
        ];
        let ae4 = ["3|2024-02-10|1|10.0", "3|2024-02-20|0|20.0"];
        let months = prepared(&[Grain::Month, Grain::Quarter]);
        let mut want = vec!["0|2024-02-01|0|30.0", "0|2024-03-01|0|30.0"];
        want.extend(ae2);
        want.extend(["2|2024-02-01|0|10.0", "2|2024-03-01|1|60.0"]);
        want.extend(ae4);
        assert_eq!(daily(&months)?, want);
        let mut want = vec![
            "0|2024-02-05|0|10.0",
            "0|2024-02-19|0|20.0",
            "0|2024-03-04|0|30.0",
        ];
        want.extend(ae2);
        want.extend([
            "2|2024-02-26|0|10.0",
            "2|2024-03-01|1|20.0",
            "2|2024-03-04|1|40.0",
        ]);
        want.extend(ae4);
        assert_eq!(daily(&prepared(&[Grain::Week, Grain::Month]))?, want);

        // The tables add the buckets up: February T1 30 + 10 + 10 + 20, T2 25 + 10; March T1
        // 30, T2 60.
        let df = months
            .metrics
            .table(
                MetricId::SellingTime,
                &periods(Grain::Month, "2024-02-01", "2024-03-01"),
            )?
            .filter(col("level").eq(lit("team")))
            .collect()?;
        assert_eq!(
            rows(&df, &["period", "team_id", TOTAL_MINUTES]),
            [
                "2024-02|T1|70.0",
                "2024-02|T2|35.0",
                "2024-03|T1|30.0",
                "2024-03|T2|60.0"
            ]
        );
        // A grain the inputs were not prepared for is refused, not computed from buckets
        // that may straddle its periods.
        assert!(
            months
                .metrics
                .table(
                    MetricId::SellingTime,
                    &periods(Grain::Week, "2024-02-05", "2024-02-05")
                )
                .is_err()
        );
        Ok(())
    }

    /// A day of 2024 from a generated `(kind, n)`: day n, the first of its month, or the Monday
    /// on or before it, so that generated team changes fall on bucket starts and inside buckets.
    fn day_of(kind: u8, n: i64) -> chrono::NaiveDate {
        use chrono::Datelike;
        let day = d("2024-01-01") + chrono::Days::new(n as u64);
        match kind {
            0 => day,
            1 => day.with_day(1).expect("first of the month"),
            _ => day - chrono::Days::new(u64::from(day.weekday().num_days_from_monday())),
        }
    }

    use proptest::option;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 96,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]
        /// Each team's minutes per period, from the buckets, equal the sums of its reps'
        /// activities on the days they were in it, counted one activity at a time; for any
        /// grain, with or without weeks among the grains, any fiscal year start, and team
        /// changes on and off bucket starts.
        #[test]
        fn team_minutes_from_buckets_equal_the_minutes_of_each_day(
            // (rep, kind of day, day, (kind of day, days later) of the end or open, team)
            moves in proptest::collection::vec(
                (0usize..3, 0u8..3, 0i64..366, option::of((0u8..3, 1i64..120)), 0usize..3),
                0..6,
            ),
            // (rep, day, minutes)
            logged in proptest::collection::vec((0usize..3, 0i64..366, 1u32..100), 1..60),
            grain in proptest::sample::select(Grain::ALL.to_vec()),
            with_weeks in proptest::bool::ANY,
            fiscal_start in 1u32..=12,
        ) {
            let reps = ["R0", "R1", "R2"];
            let teams = ["T0", "T1", "T2"];
            let moves: Vec<(usize, chrono::NaiveDate, Option<chrono::NaiveDate>, usize)> = moves
                .iter()
                .map(|&(r, kind, n, end, t)| {
                    let from = day_of(kind, n);
                    let to = end.map(|(k, l)| day_of(k, n + l)).filter(|to| *to > from);
                    (r, from, to, t)
                })
                .collect();
            // The covering membership that started last (ties: the later row), else T0.
            let team_on = |r: usize, day: chrono::NaiveDate| {
                moves
                    .iter()
                    .filter(|m| m.0 == r && m.1 <= day && m.2.is_none_or(|to| day < to))
                    .max_by_key(|m| m.1)
                    .map_or(0, |m| m.3)
            };
            let calendar = crate::calendar::Calendar::new(fiscal_start).expect("calendar");
            let mut want = BTreeMap::new();
            for &(r, n, minutes) in &logged {
                let day = day_of(0, n);
                let period = calendar.period_of(grain, day).label;
                *want.entry((period, teams[team_on(r, day)])).or_insert(0u32) += minutes;
            }
            let want: Vec<String> = want
                .iter()
                .map(|((period, team), m)| format!("{period}|{team}|{m}.0"))
                .collect();

            let ids: Vec<String> = (0..logged.len()).map(|i| format!("A{i}")).collect();
            let times: Vec<String> = logged
                .iter()
                .map(|l| format!("{}T12:00:00Z", day_of(0, l.1)))
                .collect();
            let rows_: Vec<ActivityRow> = logged
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let minutes = Some(f64::from(l.2));
                    let (id, at) = (ids[i].as_str(), times[i].as_str());
                    (id, reps[l.0], None, None, "call", "outbound", at, minutes)
                })
                .collect();
            let from: Vec<String> = moves.iter().map(|m| m.1.to_string()).collect();
            let to: Vec<Option<String>> =
                moves.iter().map(|m| m.2.map(|t| t.to_string())).collect();
            let membership_rows: Vec<(&str, &str, &str, Option<&str>)> = moves
                .iter()
                .enumerate()
                .map(|(i, m)| (reps[m.0], teams[m.3], from[i].as_str(), to[i].as_deref()))
                .collect();
            let a = Accepted {
                reps: Some(reps_with_roles(&reps.map(|r| (r, "T0", "AE")))),
                reps_have_team: true,
                reps_have_role: true,
                memberships: (!moves.is_empty()).then(|| memberships(&membership_rows)),
                activities: Some(activities(&rows_)),
                ..Default::default()
            };
            let grains = match with_weeks {
                true => vec![grain, Grain::Week],
                false => vec![grain],
            };
            let settings = Settings::default();
            let p = prepare_for(&a, "2025-06-30", chrono_tz::UTC, calendar, &grains, settings);
            let periods = calendar.periods_between(grain, d("2024-01-01"), d("2024-12-31"));
            let df = p
                .metrics

                .table(MetricId::SellingTime, &periods)?
                .filter(col("level").eq(lit("team")).and(col(TOTAL_MINUTES).gt(lit(0.0))))
                .sort(["period", "team_id"], SortMultipleOptions::default())
                .collect()?;
            proptest::prop_assert_eq!(rows(&df, &["period", "team_id", TOTAL_MINUTES]), want);
        }
    }

    #[test]
    fn weekdays_between_counts_monday_to_friday() -> PolarsResult<()> {
        // (from, to) inclusive: Sat-Sun 0, Fri-Mon 2, one Monday 1, the week around
        // 1970-01-01 (a Thursday; Mon 1969-12-29 .. Sun 1970-01-04) 5, February 2024 21.
        let day = |s: &str| crate::metrics::dates::epoch_days(d(s));
        let spans = [
            ("2024-02-03", "2024-02-04"),
            ("2024-02-02", "2024-02-05"),
            ("2024-02-05", "2024-02-05"),
            ("1969-12-29", "1970-01-04"),
            ("2024-02-01", "2024-02-29"),
        ];
        let df = df!(
            "from" => spans.iter().map(|s| day(s.0)).collect::<Vec<_>>(),
            "to" => spans.iter().map(|s| day(s.1)).collect::<Vec<_>>(),
        )?;
        let out = df
            .lazy()
            .select([weekdays_between(col("from"), col("to")).alias("n")])
            .collect()?;
        let n: Vec<Option<i64>> = out.column("n")?.i64()?.iter().collect();
        assert_eq!(n, [Some(0), Some(2), Some(1), Some(5), Some(21)]);
        Ok(())
    }

    #[test]
    fn roles_the_same_in_lower_case_and_capitals_in_lists() -> PolarsResult<()> {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let lists = |selling: &[&str], non_selling: &[&str]| TypeLists {
            selling: v(selling),
            non_selling: v(non_selling),
        };
        // Two roles the same in lower case ("SDR" sorts before "sdr", so "sdr" wins where
        // both list a type), a role whose list is in capitals, a type in both default lists.
        let s = SellingSettings {
            default: lists(
                &["call", "email", "Meeting", "demo"],
                &["note", "crm_update", "admin", "prospecting", "demo"],
            ),
            roles: BTreeMap::from([
                (
                    "SDR".to_string(),
                    lists(&["prospecting", "call"], &["note", "demo"]),
                ),
                ("sdr".to_string(), lists(&["admin"], &["call"])),
                ("AE".to_string(), lists(&["NOTE"], &[])),
                ("empty".to_string(), lists(&[], &[])),
            ]),
            working_minutes_per_day: None,
        };
        let types = [
            "call",
            "email",
            "meeting",
            "demo",
            "note",
            "crm_update",
            "admin",
            "prospecting",
            "gardening",
            "",
            "cal",
            "calls",
        ];
        let roles = ["sdr", "ae", "empty", "other", "SDR"];
        let mut t_col: Vec<Option<&str>> = vec![None, None];
        let mut r_col: Vec<Option<&str>> = vec![None, Some("sdr")];
        for t in types {
            for r in roles.iter().map(|r| Some(*r)).chain([None]) {
                t_col.push(Some(t));
                r_col.push(r);
            }
        }
        let out = df!(ROLE => r_col, ACTIVITY_TYPE => t_col)?
            .lazy()
            .select([category(&s).alias("category")])
            .collect()?;
        // A null type is unclassified.
        assert_eq!(out.column("category")?.u32()?.get(0), Some(UNCLASSIFIED));
        // Spot checks: the later "sdr" wins on call, the earlier "SDR" still counts for
        // prospecting, demo is selling by default but non-selling for an SDR.
        let at = |t: &str, r: &str| {
            let i = 2
                + types.iter().position(|x| *x == t).unwrap() * (roles.len() + 1)
                + roles.iter().position(|x| *x == r).unwrap();
            out.column("category").unwrap().u32().unwrap().get(i)
        };
        assert_eq!(at("call", "sdr"), Some(NON_SELLING));
        assert_eq!(at("prospecting", "sdr"), Some(SELLING));
        assert_eq!(at("demo", "sdr"), Some(NON_SELLING));
        assert_eq!(at("demo", "ae"), Some(SELLING));
        assert_eq!(at("note", "ae"), Some(SELLING));
        assert_eq!(at("gardening", "ae"), Some(UNCLASSIFIED));
        assert_eq!(at("meeting", "other"), Some(SELLING));
        assert_eq!(at("calls", "sdr"), Some(UNCLASSIFIED));
        Ok(())
    }

    #[test]
    fn a_type_in_both_lists_is_selling_and_role_lists_come_first() -> PolarsResult<()> {
        let s = SellingSettings {
            default: TypeLists {
                selling: vec!["Call".into()],
                non_selling: vec!["call".into(), "note".into(), "prospecting".into()],
            },
            roles: BTreeMap::from([(
                "SDR".to_string(),
                TypeLists {
                    selling: vec!["prospecting".into()],
                    non_selling: vec![],
                },
            )]),
            working_minutes_per_day: None,
        };
        let acts = df!(
            ROLE => [Some("sdr"), Some("sdr"), None, Some("ae"), Some("ae"), None],
            ACTIVITY_TYPE => [Some("prospecting"), Some("call"), Some("prospecting"), Some("note"), Some("gardening"), None],
        )?;
        let name = when(col(CATEGORY).eq(lit(SELLING)))
            .then(lit("selling"))
            .when(col(CATEGORY).eq(lit(NON_SELLING)))
            .then(lit("non_selling"))
            .when(col(CATEGORY).eq(lit(UNCLASSIFIED)))
            .then(lit("unclassified"))
            .otherwise(lit("?"))
            .alias(CATEGORY);
        let out = classify(acts.lazy(), &s).with_column(name).collect()?;
        assert_eq!(
            rows(&out, &[ROLE, ACTIVITY_TYPE, CATEGORY]),
            [
                "sdr|prospecting|selling",
                "sdr|call|selling",
                "-|prospecting|non_selling",
                "ae|note|non_selling",
                "ae|gardening|unclassified",
                "-|-|unclassified"
            ]
        );
        Ok(())
    }

    fn days_since_1970(df: &DataFrame) -> PolarsResult<Vec<Option<i32>>> {
        Ok(df
            .column(DATE)?
            .cast(&DataType::Int32)?
            .i32()?
            .iter()
            .collect())
    }

    #[test]
    fn rep_day_key_round_trips_any_day_and_rep() -> PolarsResult<()> {
        let days = [-719_162i32, -1, 0, 19_723, 2_932_896];
        let df = df!(
            REP_CODE => [0u32, 1, u32::MAX, 7, 7],
            DATE => days,
        )?
        .lazy()
        .with_column(col(DATE).cast(DataType::Date))
        .select([rep_day_key()])
        .with_columns(unpack_rep_day())
        .collect()?;
        let codes: Vec<Option<u32>> = df.column(REP_CODE)?.u32()?.iter().collect();
        assert_eq!(codes, [Some(0), Some(1), Some(u32::MAX), Some(7), Some(7)]);
        assert_eq!(days_since_1970(&df)?, days.map(Some));
        Ok(())
    }

    #[test]
    fn rep_day_category_key_round_trips_up_to_the_largest_rep_code() -> PolarsResult<()> {
        let top = (MAX_REPS - 1) as u32;
        let days = [-719_162i32, -1, 0, 19_723, 2_932_896, i32::MIN, i32::MAX];
        let cats = [
            SELLING,
            NON_SELLING,
            UNCLASSIFIED,
            SELLING,
            UNCLASSIFIED,
            NON_SELLING,
            UNCLASSIFIED,
        ];
        let df = df!(
            REP_CODE => [0u32, 1, top, 7, top, top, top],
            DATE => days,
            CATEGORY => cats,
        )?
        .lazy()
        .with_column(col(DATE).cast(DataType::Date))
        .select([rep_day_category_key()])
        .with_columns(unpack_rep_day_category())
        .with_columns(unpack_rep_day())
        .collect()?;
        let codes: Vec<Option<u32>> = df.column(REP_CODE)?.u32()?.iter().collect();
        assert_eq!(codes, [0, 1, top, 7, top, top, top].map(Some));
        assert_eq!(days_since_1970(&df)?, days.map(Some));
        let cats_back: Vec<Option<u32>> = df.column(CATEGORY)?.u32()?.iter().collect();
        assert_eq!(cats_back, cats.map(Some));
        Ok(())
    }
}
