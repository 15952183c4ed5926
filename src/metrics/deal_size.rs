//! Average deal size and discounting per rep, team and company (SPEC §6.4, §11).
//!
//! - Over deals won in P: `won_deals`, `won_amount`, `avg_deal_size` = won_amount / won_deals,
//!   `median_deal_size` (linear interpolation between the two middle values).
//! - Over won deals with list_amount > 0: `list_amount` (summed list prices), `net_amount`
//!   (their summed amounts), `discount_amount` = list − net,
//!   `avg_discount_pct` = 100 × (1 − net / list), null when no deal had a list price.
//! - `prev_avg_deal_size`: the same entity (rep by rep_id, team by team_id) in the immediately
//!   preceding period of the grain; `avg_deal_size_change_pct` = 100 × (avg − prev) / prev.
//!   Null when absent or 0.
//!
//! Example (one rep, monthly):
//!
//! | period  | won_deals | won_amount | avg_deal_size | list_amount | avg_discount_pct | change_pct |
//! |---------|-----------|------------|---------------|-------------|------------------|------------|
//! | 2024-01 | 2         | 30 000     | 15 000        | 40 000      | 25               | null       |
//! | 2024-02 | 0 (no row)|            |               |             |                  |            |
//! | 2024-03 | 1         | 9 000      | 9 000         | 0           | null             | null (Feb absent) |

use polars::prelude::*;

use crate::columns::{
    AMOUNT, AVG_DEAL_SIZE, AVG_DEAL_SIZE_CHANGE_PCT, AVG_DISCOUNT_PCT, DISCOUNT_AMOUNT, LEVEL,
    LIST_AMOUNT, MEDIAN_DEAL_SIZE, NET_AMOUNT, PERIOD_IDX, PREV_AVG_DEAL_SIZE, REP_CODE, TEAM_CODE,
    WON_AMOUNT, WON_DEALS,
};
use crate::metrics::levels::{REP, TEAM, by_levels, cents, count_i64, pct, ratio};
use crate::metrics::periods::PeriodFrames;

/// Output columns after the shared ones.
pub const COLUMNS: [&str; 10] = [
    WON_DEALS,
    WON_AMOUNT,
    AVG_DEAL_SIZE,
    MEDIAN_DEAL_SIZE,
    LIST_AMOUNT,
    NET_AMOUNT,
    DISCOUNT_AMOUNT,
    AVG_DISCOUNT_PCT,
    PREV_AVG_DEAL_SIZE,
    AVG_DEAL_SIZE_CHANGE_PCT,
];

/// Deal-size rows at all levels for every period of `periods`.
///
/// `won`: won deals with `period_idx`, `__rep_code`, `__team_code`, `amount`, `list_amount`.
/// `periods` should start one period before the reported window, so the first reported
/// period has its predecessor; the caller drops that extra period.
pub fn deal_size(won: LazyFrame, periods: &PeriodFrames) -> PolarsResult<LazyFrame> {
    let listed = col(LIST_AMOUNT).gt(lit(0.0)).fill_null(lit(false));
    let aggs = [
        count_i64(len()).alias(WON_DEALS),
        cents(col(AMOUNT).sum()).alias(WON_AMOUNT),
        col(AMOUNT).median().alias(MEDIAN_DEAL_SIZE),
        cents(col(LIST_AMOUNT).filter(listed.clone()).sum()).alias(LIST_AMOUNT),
        cents(col(AMOUNT).filter(listed).sum()).alias(NET_AMOUNT),
    ];
    let rows = by_levels(
        won,
        periods,
        &aggs,
        &[WON_DEALS, WON_AMOUNT, LIST_AMOUNT, NET_AMOUNT],
    )?
    .with_columns([
        ratio(col(WON_AMOUNT), col(WON_DEALS)).alias(AVG_DEAL_SIZE),
        cents(col(LIST_AMOUNT) - col(NET_AMOUNT)).alias(DISCOUNT_AMOUNT),
        (lit(100.0) - pct(col(NET_AMOUNT), col(LIST_AMOUNT))).alias(AVG_DISCOUNT_PCT),
    ]);
    // Match the previous period by entity id, so a rep who changed teams still matches.
    let entity = when(col(LEVEL).eq(lit(REP)))
        .then(col(REP_CODE))
        .when(col(LEVEL).eq(lit(TEAM)))
        .then(col(TEAM_CODE))
        .otherwise(lit(0u32))
        .alias("__entity");
    // Read twice: the rows and their previous-period copy.
    let rows = rows.with_column(entity).cache();
    let prev = rows.clone().select([
        col(LEVEL),
        col("__entity"),
        (col(PERIOD_IDX) + lit(1)).alias(PERIOD_IDX),
        col(AVG_DEAL_SIZE).alias(PREV_AVG_DEAL_SIZE),
    ]);
    let keys = [col(LEVEL), col("__entity"), col(PERIOD_IDX)];
    Ok(rows
        .join(prev, keys.clone(), keys, JoinArgs::new(JoinType::Left))
        .with_column(
            pct(
                col(AVG_DEAL_SIZE) - col(PREV_AVG_DEAL_SIZE),
                col(PREV_AVG_DEAL_SIZE),
            )
            .alias(AVG_DEAL_SIZE_CHANGE_PCT),
        )
        .drop(cols(["__entity"])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Grain;
    use crate::metrics::MetricId;
    use crate::testutil::*;

    const COLS: [&str; 14] = [
        "period",
        "level",
        "team_id",
        "rep_id",
        WON_DEALS,
        WON_AMOUNT,
        AVG_DEAL_SIZE,
        MEDIAN_DEAL_SIZE,
        LIST_AMOUNT,
        NET_AMOUNT,
        DISCOUNT_AMOUNT,
        AVG_DISCOUNT_PCT,
        PREV_AVG_DEAL_SIZE,
        AVG_DEAL_SIZE_CHANGE_PCT,
    ];

    #[test]
    fn discount_median_and_previous_period() -> PolarsResult<()> {
        // R1 moves from T1 to T2 on Feb 1; R2 stays in T1.
        // Jan: R1 wins 100 (list 125) and 300 (no list): avg 200, median (100+300)/2 = 200,
        //      listed deals only: list 125, net 100, discount 25, 100 × (1 − 100/125) = 20 %.
        // Feb: R1 wins 200 (list 200): avg 200, prev 200 (matched by rep id across the team
        //      change), change 0 %. R2 wins 50 (list 0 = no list price). Team T1 = 50, prev
        //      T1 Jan = 200, change −75 %. T2 had no January row: prev null.
        //      Company: 250 / 2 = 125, prev 200, change −37.5 %.
        // Mar: nothing won: company row with 0 deals, avg null, prev 125, change null.
        let p = prepared(
            reps(&[("R1", "T1"), ("R2", "T1")]),
            Some(memberships(&[
                ("R1", "T1", "2023-01-01", Some("2024-02-01")),
                ("R1", "T2", "2024-02-01", None),
            ])),
            None,
            Some(deals(&[
                (
                    "D1",
                    "R1",
                    "2024-01-02",
                    "won",
                    Some("2024-01-10"),
                    100.0,
                    Some(125.0),
                ),
                (
                    "D2",
                    "R1",
                    "2024-01-02",
                    "won",
                    Some("2024-01-11"),
                    300.0,
                    None,
                ),
                (
                    "D3",
                    "R1",
                    "2024-01-02",
                    "won",
                    Some("2024-02-11"),
                    200.0,
                    Some(200.0),
                ),
                (
                    "D4",
                    "R2",
                    "2024-01-02",
                    "won",
                    Some("2024-02-12"),
                    50.0,
                    Some(0.0),
                ),
                (
                    "D5",
                    "R2",
                    "2024-01-02",
                    "lost",
                    Some("2024-02-12"),
                    900.0,
                    Some(1000.0),
                ),
            ])),
            "2024-03-31",
        );
        let out = p
            .metrics
            .table(
                MetricId::DealSize,
                &periods(Grain::Month, "2024-01-01", "2024-03-01"),
            )?
            .collect()?;
        assert_eq!(
            rows(&out, &COLS),
            [
                "2024-01|company|-|-|2|400.0|200.0|200.0|125.0|100.0|25.0|20.0|-|-",
                "2024-01|team|T1|-|2|400.0|200.0|200.0|125.0|100.0|25.0|20.0|-|-",
                "2024-01|rep|T1|R1|2|400.0|200.0|200.0|125.0|100.0|25.0|20.0|-|-",
                "2024-02|company|-|-|2|250.0|125.0|125.0|200.0|200.0|0.0|0.0|200.0|-37.5",
                "2024-02|team|T1|-|1|50.0|50.0|50.0|0.0|0.0|0.0|-|200.0|-75.0",
                "2024-02|team|T2|-|1|200.0|200.0|200.0|200.0|200.0|0.0|0.0|-|-",
                "2024-02|rep|T1|R2|1|50.0|50.0|50.0|0.0|0.0|0.0|-|-|-",
                "2024-02|rep|T2|R1|1|200.0|200.0|200.0|200.0|200.0|0.0|0.0|200.0|0.0",
                "2024-03|company|-|-|0|0.0|-|-|0.0|0.0|0.0|-|125.0|-",
            ]
        );
        Ok(())
    }

    #[test]
    fn previous_period_outside_the_window_is_still_found() -> PolarsResult<()> {
        // A backfill of March alone still compares with February (avg 400 -> 100: −75 %).
        let p = prepared(
            reps(&[("R1", "T1")]),
            None,
            None,
            Some(deals(&[
                (
                    "D1",
                    "R1",
                    "2024-01-02",
                    "won",
                    Some("2024-02-10"),
                    400.0,
                    None,
                ),
                (
                    "D2",
                    "R1",
                    "2024-01-02",
                    "won",
                    Some("2024-03-10"),
                    100.0,
                    None,
                ),
            ])),
            "2024-03-31",
        );
        let out = p
            .metrics
            .table(
                MetricId::DealSize,
                &periods(Grain::Month, "2024-03-01", "2024-03-01"),
            )?
            .collect()?;
        assert_eq!(
            rows(
                &out,
                &[
                    "period",
                    "level",
                    AVG_DEAL_SIZE,
                    PREV_AVG_DEAL_SIZE,
                    AVG_DEAL_SIZE_CHANGE_PCT
                ]
            ),
            [
                "2024-03|company|100.0|400.0|-75.0",
                "2024-03|team|100.0|400.0|-75.0",
                "2024-03|rep|100.0|400.0|-75.0"
            ]
        );
        Ok(())
    }

    #[test]
    fn even_count_median_interpolates() -> PolarsResult<()> {
        // Four deals 10, 20, 40, 1000: median (20 + 40) / 2 = 30, mean 267.5.
        let p = prepared(
            reps(&[("R1", "T1")]),
            None,
            None,
            Some(deals(&[
                (
                    "D1",
                    "R1",
                    "2024-01-02",
                    "won",
                    Some("2024-01-03"),
                    10.0,
                    None,
                ),
                (
                    "D2",
                    "R1",
                    "2024-01-02",
                    "won",
                    Some("2024-01-04"),
                    1000.0,
                    None,
                ),
                (
                    "D3",
                    "R1",
                    "2024-01-02",
                    "won",
                    Some("2024-01-05"),
                    20.0,
                    None,
                ),
                (
                    "D4",
                    "R1",
                    "2024-01-02",
                    "won",
                    Some("2024-01-06"),
                    40.0,
                    None,
                ),
            ])),
            "2024-01-31",
        );
        let out = p
            .metrics
            .table(
                MetricId::DealSize,
                &periods(Grain::Month, "2024-01-01", "2024-01-01"),
            )?
            .collect()?;
        assert_eq!(
            rows(&out, &["level", AVG_DEAL_SIZE, MEDIAN_DEAL_SIZE]),
            ["company|267.5|30.0", "team|267.5|30.0", "rep|267.5|30.0"]
        );
        Ok(())
    }

    #[test]
    fn empty_input_keeps_the_schema() -> PolarsResult<()> {
        let p = prepared(
            reps(&[("R1", "T1")]),
            None,
            None,
            Some(deals(&[])),
            "2024-01-31",
        );
        let out = p
            .metrics
            .table(
                MetricId::DealSize,
                &periods(Grain::Month, "2024-01-01", "2024-01-01"),
            )?
            .collect()?;
        assert_eq!(
            rows(&out, &COLS),
            ["2024-01|company|-|-|0|0.0|-|-|0.0|0.0|0.0|-|-|-"]
        );
        assert_eq!(out.column(WON_DEALS)?.dtype(), &DataType::Int64);
        Ok(())
    }
}
