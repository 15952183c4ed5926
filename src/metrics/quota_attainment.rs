//! Quota attainment: bookings / quota per rep, team and company (SPEC §6.1, §11).
//!
//! - `bookings` = sum(amount) of deals won in P, credited to the owner and to the owner's team
//!   on the close date.
//! - `quota`: each quota row is spread evenly over its days; a period gets
//!   quota_amount × (days of the row in P and in the team) / (days of the row), so a row that
//!   lies wholly in P contributes exactly quota_amount. Null when no quota row covers P
//!   (0 only for a real zero quota).
//! - `attainment_pct` = 100 × bookings / quota, null when quota is null or 0.
//! - Team and company rows: `reps_with_quota` (reps with a positive quota share in P, credited
//!   to that team), `reps_at_or_above_quota` (of those, rep attainment over the whole of P ≥ 100)
//!   and `share_reps_at_quota_pct`; null on rep rows.
//!
//! Example (one rep, monthly grain, a 90 000 quarterly quota over Jan–Mar 2024 = 91 days):
//!
//! | period  | bookings | quota                | attainment_pct |
//! |---------|----------|----------------------|----------------|
//! | 2024-01 | 40 000   | 90 000 × 31/91 ≈ 30 659 | ≈ 130.5       |
//! | 2024-02 | 0        | 90 000 × 29/91 ≈ 28 681 | 0             |
//! | 2024-03 | 20 000   | 90 000 × 31/91 ≈ 30 659 | ≈ 65.2        |

use polars::prelude::*;

use crate::columns::{
    AMOUNT, ATTAINMENT_PCT, BOOKINGS, LEVEL, PERIOD_END, PERIOD_IDX, PERIOD_START, QUOTA,
    QUOTA_AMOUNT, REP_CODE, REP_ID, REPS_AT_OR_ABOVE_QUOTA, REPS_WITH_QUOTA,
    SHARE_REPS_AT_QUOTA_PCT, TEAM_CODE, TEAM_ID,
};
use crate::metrics::dates::epoch_days;
use crate::metrics::entities::{SEG_FIRST_DAY, SEG_LAST_DAY, with_segment_days};
use crate::metrics::levels::{COMPANY, REP, TEAM, by_levels, cents, count_i64, pct};
use crate::metrics::periods::PeriodFrames;

/// Output columns after the shared ones.
pub const COLUMNS: [&str; 6] = [
    BOOKINGS,
    QUOTA,
    ATTAINMENT_PCT,
    REPS_WITH_QUOTA,
    REPS_AT_OR_ABOVE_QUOTA,
    SHARE_REPS_AT_QUOTA_PCT,
];

/// Each quota row's share of each period, split by the rep's team on each day.
///
/// `quotas`: `rep_id`, `period_start`, `period_end` (inclusive), `quota_amount`.
/// `segments` carry the codes of [`crate::metrics::entities::Codes::on_segments`].
/// Output: `period_idx`, `rep_id`, `team_id`, `__rep_code`, `__team_code`, `quota`.
pub fn quota_shares(
    quotas: LazyFrame,
    segments: LazyFrame,
    periods: &PeriodFrames,
) -> PolarsResult<LazyFrame> {
    let days = |c: &str| col(c).cast(DataType::Int32);
    let (win_start, win_end) = (
        lit(epoch_days(periods.first_day)),
        lit(epoch_days(periods.last_day)),
    );
    let period_bounds = periods.periods.clone().select([
        col(PERIOD_IDX),
        days(PERIOD_START).alias("p_start"),
        days(PERIOD_END).alias("p_end"),
    ]);
    let quotas = quotas
        .select([
            col(REP_ID),
            days(PERIOD_START).alias("q_start"),
            days(PERIOD_END).alias("q_end"),
            col(QUOTA_AMOUNT),
        ])
        .with_column(
            (col("q_end") - col("q_start") + lit(1))
                .cast(DataType::Float64)
                .alias("q_days"),
        );
    let pieces = with_segment_days(quotas, segments, REP_ID, &[REP_CODE, TEAM_ID, TEAM_CODE])
        .with_columns([
            polars::lazy::dsl::max_horizontal([col("q_start"), col(SEG_FIRST_DAY), win_start])?
                .alias("o_start"),
            polars::lazy::dsl::min_horizontal([col("q_end"), col(SEG_LAST_DAY), win_end])?
                .alias("o_end"),
        ])
        .filter(col("o_start").lt_eq(col("o_end")));
    let days_in = polars::lazy::dsl::min_horizontal([col("o_end"), col("p_end")])?
        - polars::lazy::dsl::max_horizontal([col("o_start"), col("p_start")])?
        + lit(1);
    Ok(pieces
        .join_builder()
        .with(period_bounds)
        .join_where(vec![
            col("o_start").lt_eq(col("p_end")),
            col("o_end").gt_eq(col("p_start")),
        ])
        .select([
            col(PERIOD_IDX),
            col(REP_ID),
            col(TEAM_ID),
            col(REP_CODE),
            col(TEAM_CODE),
            // Ratio first, so a row wholly inside P gives exactly quota_amount × 1.0.
            (col(QUOTA_AMOUNT) * (days_in.cast(DataType::Float64) / col("q_days"))).alias(QUOTA),
        ]))
}

/// Quota attainment rows at all levels (before [`crate::metrics::levels::finish`]).
///
/// `won`: won deals placed in periods with `period_idx`, `__rep_code`, `__team_code`, `amount`;
/// `shares`: from [`quota_shares`].
pub fn quota_attainment(
    won: LazyFrame,
    shares: LazyFrame,
    periods: &PeriodFrames,
) -> PolarsResult<LazyFrame> {
    // Both are read twice below (the totals and the reps-at-quota counts).
    let shares = shares.cache();
    let events = concat_lf_diagonal(
        [
            won.select([
                col(PERIOD_IDX),
                col(REP_CODE),
                col(TEAM_CODE),
                col(AMOUNT).alias(BOOKINGS),
            ]),
            shares.clone(),
        ],
        UnionArgs::default(),
    )?;
    let aggs = [
        cents(col(BOOKINGS).sum()).alias(BOOKINGS),
        when(col(QUOTA).count().gt(lit(0)))
            .then(cents(col(QUOTA).sum()))
            .otherwise(lit(NULL).cast(DataType::Float64))
            .alias(QUOTA),
    ];
    let shares = shares.cache();
    let rows = by_levels(events, periods, &aggs, &[BOOKINGS])?
        .with_column(pct(col(BOOKINGS), col(QUOTA)).alias(ATTAINMENT_PCT))
        .cache();

    // Reps with a positive quota in P, judged by their own attainment over the whole of P.
    let rep_judged = rows
        .clone()
        .filter(col(LEVEL).eq(lit(REP)).and(col(QUOTA).gt(lit(0.0))))
        .select([
            col(PERIOD_IDX),
            col(REP_CODE),
            col(ATTAINMENT_PCT)
                .gt_eq(lit(100.0))
                .fill_null(lit(false))
                .alias("__at"),
        ]);
    let counts = [
        count_i64(len()).alias(REPS_WITH_QUOTA),
        count_i64(col("__at").sum()).alias(REPS_AT_OR_ABOVE_QUOTA),
    ];
    let team_counts = shares
        .filter(col(QUOTA).gt(lit(0.0)).and(col(TEAM_CODE).is_not_null()))
        .group_by([col(PERIOD_IDX), col(TEAM_CODE), col(REP_CODE)])
        .agg([col(QUOTA).sum().alias("__share")])
        .join(
            rep_judged.clone(),
            [col(PERIOD_IDX), col(REP_CODE)],
            [col(PERIOD_IDX), col(REP_CODE)],
            JoinArgs::new(JoinType::Inner),
        )
        .group_by([col(PERIOD_IDX), col(TEAM_CODE)])
        .agg(counts.clone())
        .with_column(lit(TEAM).alias(LEVEL));
    let company_counts = rep_judged
        .group_by([col(PERIOD_IDX)])
        .agg(counts)
        .with_columns([
            lit(COMPANY).alias(LEVEL),
            lit(NULL).cast(DataType::UInt32).alias(TEAM_CODE),
        ]);
    let all_counts = concat_lf_diagonal([team_counts, company_counts], UnionArgs::default())?;
    let mut args = JoinArgs::new(JoinType::Left);
    args.nulls_equal = true;
    let not_rep = col(LEVEL).neq(lit(REP));
    Ok(rows
        .join(
            all_counts,
            [col(LEVEL), col(PERIOD_IDX), col(TEAM_CODE)],
            [col(LEVEL), col(PERIOD_IDX), col(TEAM_CODE)],
            args,
        )
        .with_columns([
            when(not_rep.clone())
                .then(col(REPS_WITH_QUOTA).fill_null(lit(0i64)))
                .otherwise(lit(NULL))
                .alias(REPS_WITH_QUOTA),
            when(not_rep)
                .then(col(REPS_AT_OR_ABOVE_QUOTA).fill_null(lit(0i64)))
                .otherwise(lit(NULL))
                .alias(REPS_AT_OR_ABOVE_QUOTA),
        ])
        .with_column(
            pct(col(REPS_AT_OR_ABOVE_QUOTA), col(REPS_WITH_QUOTA)).alias(SHARE_REPS_AT_QUOTA_PCT),
        ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Grain;
    use crate::metrics::MetricId;
    use crate::testutil::*;

    const COLS: [&str; 10] = [
        "period",
        "level",
        "team_id",
        "rep_id",
        BOOKINGS,
        QUOTA,
        ATTAINMENT_PCT,
        REPS_WITH_QUOTA,
        REPS_AT_OR_ABOVE_QUOTA,
        SHARE_REPS_AT_QUOTA_PCT,
    ];

    #[test]
    fn quarterly_quota_prorated_by_day_and_split_at_team_change() -> PolarsResult<()> {
        // R3 has 91 000 for Q1 2024 (91 days: 1 000 a day) and moves T2 -> T1 on Feb 15.
        // Jan: 31 days in T2 = 31 000. Feb: 1–14 in T2 = 14 000, 15–29 in T1 = 15 000.
        // Mar: 31 days in T1 = 31 000.
        let m = memberships(&[
            ("R3", "T2", "2024-01-01", Some("2024-02-15")),
            ("R3", "T1", "2024-02-15", None),
        ]);
        let segs = coded_segments(reps(&[("R3", "T2")]), Some(m))?;
        let pf = PeriodFrames::new(
            &periods(Grain::Month, "2024-01-01", "2024-03-31"),
            d("2024-06-30"),
        )?;
        let q = quotas(&[("R3", "2024-01-01", "2024-03-31", 91_000.0)]);
        let out = quota_shares(q, segs, &pf)?.collect()?;
        assert_eq!(
            sorted_rows(&out, &[PERIOD_IDX, REP_ID, TEAM_ID, QUOTA]),
            [
                "0|R3|T2|31000.0",
                "1|R3|T1|15000.0",
                "1|R3|T2|14000.0",
                "2|R3|T1|31000.0"
            ]
        );
        Ok(())
    }

    #[test]
    fn quota_is_exact_for_whole_rows_and_clipped_to_the_window() -> PolarsResult<()> {
        // Three monthly 30 000 quotas sum to exactly 90 000 for the quarter; a quarterly
        // 90 000 seen in February alone gives 90 000 × 29/91 = 28 681.32.
        let segs = coded_segments(reps(&[("R1", "T1"), ("R2", "T1")]), None)?;
        let q = quotas(&[
            ("R2", "2024-01-01", "2024-01-31", 30_000.0),
            ("R2", "2024-02-01", "2024-02-29", 30_000.0),
            ("R2", "2024-03-01", "2024-03-31", 30_000.0),
            ("R1", "2024-01-01", "2024-03-31", 90_000.0),
        ]);
        let quarter = PeriodFrames::new(
            &periods(Grain::Quarter, "2024-01-01", "2024-01-01"),
            d("2024-06-30"),
        )?;
        let out = quota_shares(q.clone(), segs.clone(), &quarter)?
            .group_by([col(REP_ID)])
            .agg([col(QUOTA).sum()])
            .collect()?;
        assert_eq!(
            sorted_rows(&out, &[REP_ID, QUOTA]),
            ["R1|90000.0", "R2|90000.0"]
        );
        let r2 = out.filter(&out.column(REP_ID)?.str()?.equal("R2"))?;
        assert_eq!(
            r2.column(QUOTA)?.f64()?.get(0),
            Some(90_000.0),
            "exact, not just to the cent"
        );
        let feb = PeriodFrames::new(
            &periods(Grain::Month, "2024-02-01", "2024-02-01"),
            d("2024-06-30"),
        )?;
        let out = quota_shares(q, segs, &feb)?.collect()?;
        assert_eq!(
            sorted_rows(&out, &[REP_ID, QUOTA]),
            ["R1|28681.31868131868", "R2|30000.0"]
        );
        Ok(())
    }

    #[test]
    fn attainment_with_zero_and_missing_quota() -> PolarsResult<()> {
        // Jan 2024: R1 books 12 000 on 10 000 (120 %), R2 10 000 on 20 000 (50 %),
        // R3 has a real zero quota (attainment null, not counted as "with quota"),
        // R4 books 5 000 with no quota row at all (quota null).
        // Team T1 = 22 000 / 30 000 = 73.33 %, 2 reps with quota, 1 at or above.
        // Team T2 = 5 000 / 0 (R3's zero) -> null. Company = 27 000 / 30 000 = 90 %.
        // Feb: no quota covers it, nothing booked: company row only, quota null.
        let p = prepared(
            reps(&[("R1", "T1"), ("R2", "T1"), ("R3", "T2"), ("R4", "T2")]),
            None,
            Some(quotas(&[
                ("R1", "2024-01-01", "2024-01-31", 10_000.0),
                ("R2", "2024-01-01", "2024-01-31", 20_000.0),
                ("R3", "2024-01-01", "2024-01-31", 0.0),
            ])),
            Some(deals(&[
                (
                    "D1",
                    "R1",
                    "2024-01-02",
                    "won",
                    Some("2024-01-10"),
                    12_000.0,
                    None,
                ),
                (
                    "D2",
                    "R2",
                    "2024-01-02",
                    "won",
                    Some("2024-01-31"),
                    10_000.0,
                    None,
                ),
                (
                    "D3",
                    "R4",
                    "2024-01-02",
                    "won",
                    Some("2024-01-15"),
                    5_000.0,
                    None,
                ),
                (
                    "D4",
                    "R1",
                    "2024-01-02",
                    "lost",
                    Some("2024-01-15"),
                    9_000.0,
                    None,
                ),
                ("D5", "R1", "2024-01-02", "open", None, 7_000.0, None),
            ])),
            "2024-02-15",
        );
        let out = p
            .metrics
            .table(
                MetricId::QuotaAttainment,
                &periods(Grain::Month, "2024-01-01", "2024-02-01"),
            )?
            .collect()?;
        assert_eq!(
            rows(&out, &COLS),
            [
                "2024-01|company|-|-|27000.0|30000.0|90.0|2|1|50.0",
                "2024-01|team|T1|-|22000.0|30000.0|73.33333333333333|2|1|50.0",
                "2024-01|team|T2|-|5000.0|0.0|-|0|0|-",
                "2024-01|rep|T1|R1|12000.0|10000.0|120.0|-|-|-",
                "2024-01|rep|T1|R2|10000.0|20000.0|50.0|-|-|-",
                "2024-01|rep|T2|R3|0.0|0.0|-|-|-|-",
                "2024-01|rep|T2|R4|5000.0|-|-|-|-|-",
                "2024-02|company|-|-|0.0|-|-|0|0|-",
            ]
        );
        assert_eq!(
            rows(&out, &["is_partial_period"]),
            ["false"; 7]
                .iter()
                .chain(&["true"])
                .copied()
                .collect::<Vec<_>>()
        );
        Ok(())
    }

    #[test]
    fn team_change_credits_each_day_to_its_team() -> PolarsResult<()> {
        // R3: 91 000 for Q1, T2 until Feb 14, T1 from Feb 15. Won 22 000 on Feb 10 (in T2)
        // and 18 000 on Mar 20 (in T1). Quarter: T2 gets 45 days = 45 000 quota and the
        // 22 000; T1 gets 46 000 and 18 000. The rep row shows T1 (team on the last day) and
        // judges R3 on 40 000 / 91 000 = 43.96 %, so neither team counts R3 at quota.
        let p = prepared(
            reps(&[("R3", "T2")]),
            Some(memberships(&[
                ("R3", "T2", "2024-01-01", Some("2024-02-15")),
                ("R3", "T1", "2024-02-15", None),
            ])),
            Some(quotas(&[("R3", "2024-01-01", "2024-03-31", 91_000.0)])),
            Some(deals(&[
                (
                    "D7",
                    "R3",
                    "2024-01-15",
                    "won",
                    Some("2024-02-10"),
                    22_000.0,
                    None,
                ),
                (
                    "D8",
                    "R3",
                    "2024-02-20",
                    "won",
                    Some("2024-03-20"),
                    18_000.0,
                    None,
                ),
            ])),
            "2024-06-30",
        );
        let out = p
            .metrics
            .table(
                MetricId::QuotaAttainment,
                &periods(Grain::Quarter, "2024-01-01", "2024-01-01"),
            )?
            .collect()?;
        assert_eq!(
            rows(&out, &COLS),
            [
                "2024-Q1|company|-|-|40000.0|91000.0|43.956043956043956|1|0|0.0",
                "2024-Q1|team|T1|-|18000.0|46000.0|39.130434782608695|1|0|0.0",
                "2024-Q1|team|T2|-|22000.0|45000.0|48.888888888888886|1|0|0.0",
                "2024-Q1|rep|T1|R3|40000.0|91000.0|43.956043956043956|-|-|-",
            ]
        );
        Ok(())
    }

    #[test]
    fn as_of_ignores_later_closes_and_creations() -> PolarsResult<()> {
        // As of Jan 20: D1 (closed Jan 25) is still open, D2 (created Jan 21) does not exist.
        let p = prepared(
            reps(&[("R1", "T1")]),
            None,
            Some(quotas(&[("R1", "2024-01-01", "2024-01-31", 1_000.0)])),
            Some(deals(&[
                (
                    "D1",
                    "R1",
                    "2024-01-02",
                    "won",
                    Some("2024-01-25"),
                    500.0,
                    None,
                ),
                (
                    "D2",
                    "R1",
                    "2024-01-21",
                    "won",
                    Some("2024-01-21"),
                    700.0,
                    None,
                ),
                (
                    "D3",
                    "R1",
                    "2024-01-02",
                    "won",
                    Some("2024-01-20"),
                    100.0,
                    None,
                ),
            ])),
            "2024-01-20",
        );
        let out = p
            .metrics
            .table(
                MetricId::QuotaAttainment,
                &periods(Grain::Month, "2024-01-01", "2024-01-01"),
            )?
            .collect()?;
        assert_eq!(
            rows(
                &out,
                &[
                    "level",
                    BOOKINGS,
                    QUOTA,
                    ATTAINMENT_PCT,
                    "is_partial_period"
                ]
            ),
            [
                "company|100.0|1000.0|10.0|true",
                "team|100.0|1000.0|10.0|true",
                "rep|100.0|1000.0|10.0|true"
            ]
        );
        Ok(())
    }

    #[test]
    fn empty_inputs_give_company_rows_only() -> PolarsResult<()> {
        let p = prepared(
            reps(&[("R1", "T1")]),
            None,
            Some(quotas(&[])),
            Some(deals(&[])),
            "2024-03-31",
        );
        let out = p
            .metrics
            .table(
                MetricId::QuotaAttainment,
                &periods(Grain::Month, "2024-01-01", "2024-02-01"),
            )?
            .collect()?;
        assert_eq!(
            rows(&out, &COLS),
            [
                "2024-01|company|-|-|0.0|-|-|0|0|-",
                "2024-02|company|-|-|0.0|-|-|0|0|-"
            ]
        );
        assert_eq!(out.column(REPS_WITH_QUOTA)?.dtype(), &DataType::Int64);
        assert_eq!(out.column("period_start")?.dtype(), &DataType::Date);
        Ok(())
    }
}
