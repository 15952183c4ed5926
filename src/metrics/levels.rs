//! Rep, team and company rows from one event frame (SPEC §5), and the columns every table shares.
//!
//! [`by_levels`] runs the same aggregations three times: per rep, per team (the team credited on
//! each event's own day) and for the company, so team and company rows come from summed
//! components, never from averaged percentages. Aggregations that add up ([`Sums`]) are
//! summed once per rep and team and those sums added up per level. [`finish`] adds names, the rep's display team,
//! period dates and the fixed row order.

use chrono::NaiveDate;
use polars::prelude::*;

use crate::columns::{
    IS_PARTIAL_PERIOD, LEVEL, PERIOD, PERIOD_END, PERIOD_IDX, PERIOD_START, REP_CODE, REP_ID,
    REP_NAME, TEAM_CODE, TEAM_ID, TEAM_NAME,
};
use crate::metrics::dates::date_lit;
use crate::metrics::entities::CodeSpace;
use crate::metrics::entities::{Codes, lookup, with_team_on};
use crate::metrics::periods::PeriodFrames;

pub const REP: &str = "rep";
pub const TEAM: &str = "team";
pub const COMPANY: &str = "company";

/// Aggregates `events` (`period_idx`, `__rep_code`, `__team_code`, value columns) at the
/// three levels.
///
/// Every period of `periods` gets a company row; `zero_fill` columns (sums and counts) are 0
/// there when nothing happened, the others stay null. Output: `level`, `period_idx`,
/// `__team_code` (team rows), `__rep_code` (rep rows), then the aggregations; [`finish`]
/// turns the codes into ids.
pub fn by_levels(
    events: LazyFrame,
    periods: &PeriodFrames,
    aggs: &[Expr],
    zero_fill: &[&str],
) -> PolarsResult<LazyFrame> {
    by_levels_keyed(events, periods, Aggs::Each(aggs), None, zero_fill, None)
}

/// The aggregations of [`by_levels_keyed`].
pub enum Aggs<'a> {
    /// Computed over each level's events.
    Each(&'a [Expr]),
    /// Parts that add up across groups, and the figures computed from them.
    Sums(Sums<'a>),
}

/// Aggregations made of parts that add up: counts (`len()`, `count()`) and sums whose order
/// does not matter (integers, whole numbers, amounts rounded to cents after). Given the
/// number of codes ([`PeriodFrames::code_space`]), [`by_levels_keyed`] sums the parts once per
/// period, rep and team, and each level adds up those rows instead of every event.
pub struct Sums<'a> {
    /// Each part's column name and its aggregation over events.
    pub parts: &'a [(&'a str, Expr)],
    /// The output columns, computed from the parts' columns (which are then dropped).
    pub figures: &'a [Expr],
}

/// Order statistics (median, quantile) of [`by_levels_keyed`]: aggregations over the events
/// that `filter` keeps, e.g. those with a value.
///
/// Polars' streaming engine has no median or quantile, so a group-by with one runs in memory,
/// and there every other aggregation gathers its group's values by index too. Apart, the
/// sums and counts stream, and the in-memory group-by holds only the rows that `filter`
/// keeps; the two are joined on the group key. Kept: one group-by of sums and medians (which
/// also gives up [`Sums`]' per-pair path) took 3.1 % longer at 5 M activities (8 interleaved
/// pairs), for the same bytes.
pub struct OrderStats<'a> {
    pub filter: Expr,
    pub aggs: &'a [Expr],
}

/// [`by_levels`] with one more grouping key, e.g. `response_kind`: `key.0` names an events
/// column holding each event's index (u32, below 256) into the values `key.1`, and the output
/// column of that name holds the value itself. The company row exists once per period and
/// value. `order_stats` are null for a group with no event its filter keeps.
pub fn by_levels_keyed(
    events: LazyFrame,
    periods: &PeriodFrames,
    aggs: Aggs,
    order_stats: Option<&OrderStats>,
    zero_fill: &[&str],
    key: Option<(&str, &[&str])>,
) -> PolarsResult<LazyFrame> {
    if key.is_some_and(|(_, values)| values.len() > 256) {
        return Err(
            polars_err!(ComputeError: "internal error (a bug): a level key has over 256 values"),
        );
    }
    // The events feed three group-bys. Cached, they are computed once; otherwise each branch's
    // own filter is pushed into its copy, the copies differ, and the joins behind them run
    // three times.
    // The key's period and extra parts computed once for the three levels (each cast is a
    // pass over the rows).
    let events = events.with_column(base_key(key)).cache();
    // With the number of codes known, the sums once per period, rep and team (and the extra
    // key); cached, as the three levels read them.
    let pair_sums = match (&aggs, periods.code_space.and_then(CodeSpace::team_slots)) {
        (Aggs::Sums(sums), Some(slots)) => Some((
            sums_by_pair(events.clone(), sums.parts, slots).cache(),
            slots,
        )),
        _ => None,
    };
    let level = |code: Option<&str>| {
        let grouped = match code {
            Some(c) => events.clone().filter(col(c).is_not_null()),
            None => events.clone(),
        };
        let mut rows = match (&aggs, &pair_sums) {
            (Aggs::Each(aggs), _) => grouped.clone().group_by([group_key(code)]).agg(*aggs),
            (Aggs::Sums(sums), None) => figures(
                grouped
                    .clone()
                    .group_by([group_key(code)])
                    .agg(named(sums.parts)),
                sums,
            ),
            (Aggs::Sums(sums), Some((pairs, slots))) => {
                let summed = sums
                    .parts
                    .iter()
                    .map(|(name, _)| col(*name).sum().alias(*name))
                    .collect::<Vec<_>>();
                figures(
                    level_of_pairs(pairs.clone(), code, *slots)
                        .group_by([col(GROUP)])
                        .agg(summed),
                    sums,
                )
            }
        };
        if let Some(o) = order_stats {
            let stats = grouped
                .filter(o.filter.clone())
                .group_by([group_key(code)])
                .agg(o.aggs);
            rows = rows.join(
                stats,
                [col(GROUP)],
                [col(GROUP)],
                JoinArgs::new(JoinType::Left),
            );
        }
        rows.with_columns(ungroup(code, key)).drop(cols([GROUP]))
    };
    // An event with no rep (an unowned, unanswered lead) or no team counts in the company row only.
    let rep = level(Some(REP_CODE)).with_column(lit(REP).alias(LEVEL));
    let team = level(Some(TEAM_CODE)).with_column(lit(TEAM).alias(LEVEL));
    let company_agg = level(None);
    let mut company_rows = periods.periods.clone().select([col(PERIOD_IDX)]);
    let mut company_keys = vec![col(PERIOD_IDX)];
    if let Some((name, values)) = key {
        let values = DataFrame::new_infer_height(vec![Column::new(name.into(), values)])?.lazy();
        company_rows = company_rows.cross_join(values, None);
        company_keys.push(col(name));
    }
    let company = company_rows
        .join(
            company_agg,
            company_keys.clone(),
            company_keys,
            JoinArgs::new(JoinType::Left),
        )
        .with_columns(
            zero_fill
                .iter()
                .map(|c| col(*c).fill_null(lit(0)))
                .collect::<Vec<_>>(),
        )
        .with_column(lit(COMPANY).alias(LEVEL));
    concat_lf_diagonal([company, team, rep], UnionArgs::default())
}

fn named(parts: &[(&str, Expr)]) -> Vec<Expr> {
    parts
        .iter()
        .map(|(name, e)| e.clone().alias(*name))
        .collect()
}

/// `sums`' figures from its parts, per group.
fn figures(grouped: LazyFrame, sums: &Sums) -> LazyFrame {
    let mut out = vec![col(GROUP)];
    out.extend(sums.figures.iter().cloned());
    grouped.select(out)
}

/// A code's slot in the pair code of [`sums_by_pair`]: the code + 1, 0 for none.
fn slot(code: &str) -> Expr {
    (col(code).cast(DataType::UInt64) + lit(1u64)).fill_null(lit(0u64))
}

/// The parts of [`Sums`] per period, extra key, rep and team: grouped by [`group_key`]'s
/// layout with the pair's code, rep slot × `team_slots` + team slot ([`slot`]), in the code
/// part. Events without a rep or team are kept (slot 0): the company row counts them.
fn sums_by_pair(events: LazyFrame, parts: &[(&str, Expr)], team_slots: u64) -> LazyFrame {
    let pair = slot(REP_CODE) * lit(team_slots) + slot(TEAM_CODE);
    events
        .group_by([(col(BASE) + pair * lit(CODE_SHIFT)).alias(GROUP)])
        .agg(named(parts))
}

/// The rows of [`sums_by_pair`] keyed as [`group_key`] keys the level of `code` (rep, team,
/// or the company for none): a rep's or team's level keeps the rows that have one.
fn level_of_pairs(pairs: LazyFrame, code: Option<&str>, team_slots: u64) -> LazyFrame {
    let pair = || col(GROUP).floor_div(lit(CODE_SHIFT)) % lit(1u64 << 32);
    let base = || col(GROUP) - pair() * lit(CODE_SHIFT);
    let slot = match code {
        None => return pairs.with_column(base().alias(GROUP)),
        Some(c) if c == REP_CODE => pair().floor_div(lit(team_slots)),
        Some(_) => pair() % lit(team_slots),
    };
    pairs
        .filter(slot.clone().gt(lit(0u64)))
        .with_column((base() + (slot - lit(1u64)) * lit(CODE_SHIFT)).alias(GROUP))
}

/// The distinct (`period_idx`, `code`) pairs of `events`, through the packed group key: on
/// two columns polars row-encodes every row's keys and hashes them as bytes (a fifth of the
/// selling-time table at 50 M activities).
pub fn distinct_period_codes(events: LazyFrame, code: &str) -> LazyFrame {
    events
        .select([base_key(None), col(code)])
        .select([group_key(Some(code))])
        .unique(None, UniqueKeepStrategy::Any)
        .select(ungroup(Some(code), None))
}

/// The packed group key of [`by_levels_keyed`].
const GROUP: &str = "__group";
/// Added to `period_idx` so the key's period part is never negative.
const PERIOD_OFFSET: i64 = 1 << 23;
const PERIOD_SHIFT: u64 = 1 << 40;
const CODE_SHIFT: u64 = 1 << 8;

/// [`group_key`] without the entity's code.
const BASE: &str = "__group_base";

/// The parts of [`group_key`] every level shares: the period and the extra key.
fn base_key(key: Option<(&str, &[&str])>) -> Expr {
    let mut packed = (col(PERIOD_IDX).cast(DataType::Int64) + lit(PERIOD_OFFSET))
        .cast(DataType::UInt64)
        * lit(PERIOD_SHIFT);
    if let Some((name, _)) = key {
        packed = packed + col(name).cast(DataType::UInt64);
    }
    packed.alias(BASE)
}

/// Each level's grouping as one u64: `period_idx` + 2^23 in the top 24 bits, the entity's
/// code (u32) below it, the extra key's index in the low 8 bits; from [`base_key`]'s column.
/// Polars' group-by has a fast path for one integer key; with several keys, or text ones, it
/// row-encodes every row's keys and hashes them as bytes.
fn group_key(code: Option<&str>) -> Expr {
    match code {
        Some(c) => col(BASE) + col(c).cast(DataType::UInt64) * lit(CODE_SHIFT),
        None => col(BASE),
    }
    .alias(GROUP)
}

/// `period_idx`, the code and the extra key back from [`group_key`].
fn ungroup(code: Option<&str>, key: Option<(&str, &[&str])>) -> Vec<Expr> {
    let g = || col(GROUP);
    let mut out = vec![
        (g().floor_div(lit(PERIOD_SHIFT)).cast(DataType::Int64) - lit(PERIOD_OFFSET))
            .cast(DataType::Int32)
            .alias(PERIOD_IDX),
    ];
    if let Some(c) = code {
        out.push(
            (g().floor_div(lit(CODE_SHIFT)) % lit(1u64 << 32))
                .cast(DataType::UInt32)
                .alias(c),
        );
    }
    if let Some((name, values)) = key {
        let index = || g() % lit(CODE_SHIFT);
        let mut label = lit(NULL).cast(DataType::String);
        for (i, v) in values.iter().enumerate().rev() {
            label = when(index().eq(lit(i as u64)))
                .then(lit(*v))
                .otherwise(label);
        }
        out.push(label.alias(name));
    }
    out
}

/// Final shape of a metric table: the shared leading columns, then `metric_cols`, sorted
/// company, team, rep, then team_id, rep_id. `period` stays for partitioning (the sink drops it).
///
/// A rep row shows the team of the last day of the period, or of the as-of day in the
/// current period (SPEC §11); team rows keep the team their events were credited to.
pub fn finish(
    rows: LazyFrame,
    periods: &PeriodFrames,
    ctx: &Dimensions,
    metric_cols: &[&str],
) -> PolarsResult<LazyFrame> {
    // Cached: the rows split into rep and other rows below, and without the cache the
    // optimiser pushes each branch's level filter into its own copy of every aggregation, and
    // every group-by of a table runs twice.
    let rows = lookup(rows, ctx.codes.reps.clone(), REP_CODE);
    let rows = lookup(rows, ctx.codes.teams.clone(), TEAM_CODE)
        .drop(cols([REP_CODE, TEAM_CODE]))
        .join(
            periods.periods.clone(),
            [col(PERIOD_IDX)],
            [col(PERIOD_IDX)],
            JoinArgs::new(JoinType::Inner),
        )
        .cache();
    let is_rep = col(LEVEL).eq(lit(REP));
    let team_day = when(col(PERIOD_END).gt(date_lit(ctx.as_of)))
        .then(date_lit(ctx.as_of))
        .otherwise(col(PERIOD_END))
        .alias("__team_day");
    let rep_rows = with_team_on(
        rows.clone()
            .filter(is_rep.clone())
            .drop(cols([TEAM_ID]))
            .with_column(team_day),
        "__team_day",
        ctx.segments.clone(),
    )
    .drop(cols(["__team_day", REP_CODE, TEAM_CODE]));
    let other_rows = rows.filter(is_rep.not());
    let rows = concat_lf_diagonal([other_rows, rep_rows], UnionArgs::default())?;
    let rows = lookup(rows, ctx.rep_names.clone(), REP_ID);
    let rows = lookup(rows, ctx.team_names.clone(), TEAM_ID);
    Ok(ordered(rows, PERIOD_IDX, &ctx.extra_sort, metric_cols))
}

/// The shared leading columns, then `metric_cols`; rows sorted by `period_key`, then company,
/// team, rep, then `team_id`, `rep_id` and `extra_sort`.
pub fn ordered(
    rows: LazyFrame,
    period_key: &str,
    extra_sort: &[String],
    metric_cols: &[&str],
) -> LazyFrame {
    let level_order = when(col(LEVEL).eq(lit(COMPANY)))
        .then(lit(0))
        .when(col(LEVEL).eq(lit(TEAM)))
        .then(lit(1))
        .otherwise(lit(2))
        .alias("__level_order");
    let mut select = vec![
        col(PERIOD),
        col(LEVEL),
        col(TEAM_ID),
        col(TEAM_NAME),
        col(REP_ID),
        col(REP_NAME),
        col(PERIOD_START),
        col(PERIOD_END),
        col(IS_PARTIAL_PERIOD),
    ];
    select.extend(metric_cols.iter().map(|c| col(*c)));
    let mut sort_by = vec![
        period_key.to_string(),
        "__level_order".to_string(),
        TEAM_ID.to_string(),
        REP_ID.to_string(),
    ];
    // A table keyed by more than the entity (e.g. response_kind) sorts by that too.
    sort_by.extend(extra_sort.iter().cloned());
    rows.with_column(level_order)
        .sort(
            sort_by,
            SortMultipleOptions::default()
                .with_nulls_last(false)
                .with_maintain_order(true),
        )
        .select(select)
}

/// Dimension frames every metric's [`finish`] needs.
#[derive(Clone)]
pub struct Dimensions {
    /// `rep_id`, `rep_name`.
    pub rep_names: LazyFrame,
    /// `team_id`, `team_name`.
    pub team_names: LazyFrame,
    /// From [`crate::metrics::entities::team_segments`], with [`Codes::on_segments`].
    pub segments: LazyFrame,
    pub codes: Codes,
    /// How many reps and teams `codes` number, once they are collected (the rep and team
    /// pairs are then summed by one integer key, [`by_levels`]).
    pub code_space: Option<CodeSpace>,
    pub as_of: NaiveDate,
    pub extra_sort: Vec<String>,
}

/// A money sum rounded to the cent (half away from zero): floating-point sums of cents carry
/// noise in the last bits (9109.199999999999), and that noise can depend on summation order.
pub fn cents(e: Expr) -> Expr {
    e.round(2, RoundMode::HalfAwayFromZero)
}

/// 100 × num / den, null when the denominator is null or 0.
pub fn pct(num: Expr, den: Expr) -> Expr {
    ratio(num * lit(100.0), den)
}

/// num / den, null when the denominator is null or 0.
pub fn ratio(num: Expr, den: Expr) -> Expr {
    when(den.clone().eq(lit(0)).or(den.clone().is_null()))
        .then(lit(NULL).cast(DataType::Float64))
        .otherwise(num.cast(DataType::Float64) / den.cast(DataType::Float64))
}

/// `e / divisor` as Float64, every value divided by `divisor`: a workaround for polars, whose
/// division by a literal can give a different last digit from run to run.
///
/// polars divides a column by a literal as a product with the literal's reciprocal when the
/// column has several values, and as a division when it has one (both sides then have one
/// value); the two can differ in the last bit, and which one a row met depended on how the
/// streaming engine batched it: the same input gave a mean of 496.33333333333337 minutes in
/// one run and 496.3333333333333 in the next.
pub fn divided(e: Expr, divisor: f64) -> Expr {
    e.map(
        move |c: Column| {
            let values = c.cast(&DataType::Float64)?;
            Ok(values.f64()?.apply_values(|x| x / divisor).into_column())
        },
        |_, f| Ok(Field::new(f.name().clone(), DataType::Float64)),
    )
}

/// A count aggregation as INT64 (polars counts are u32 otherwise).
pub fn count_i64(e: Expr) -> Expr {
    e.cast(DataType::Int64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// polars' division by a literal differs in the last bit between a one-row and a
    /// many-row column; [`divided`] does not.
    #[test]
    fn division_by_a_constant_does_not_depend_on_the_batch() -> PolarsResult<()> {
        let micros = 29_780_000_000.0_f64;
        let by = |rows: usize, e: Expr| -> PolarsResult<f64> {
            let df = df!("x" => vec![micros; rows])?
                .lazy()
                .select([e])
                .collect()?;
            Ok(df.column("x")?.f64()?.get(0).unwrap_or(f64::NAN))
        };
        let exact = micros / 60e6;
        assert_eq!(exact, 496.3333333333333);
        assert_eq!(by(1, col("x") / lit(60e6))?, exact);
        assert_eq!(by(3, col("x") / lit(60e6))?, 496.33333333333337);
        assert_eq!(by(1, divided(col("x"), 60e6))?, exact);
        assert_eq!(by(3, divided(col("x"), 60e6))?, exact);
        Ok(())
    }

    #[test]
    fn group_key_round_trips_period_code_and_key() -> PolarsResult<()> {
        // Extremes: a period before the window (-1), the largest code, both key values.
        let df = df!(
            PERIOD_IDX => [-1i32, 0, 8_000_000],
            REP_CODE => [0u32, u32::MAX, 7],
            "kind" => [1u32, 0, 1],
        )?;
        let key = Some(("kind", &["a", "b"][..]));
        let back = df
            .clone()
            .lazy()
            .with_column(base_key(key))
            .select([group_key(Some(REP_CODE))])
            .select(ungroup(Some(REP_CODE), key))
            .collect()?;
        let expected = df!(
            PERIOD_IDX => [-1i32, 0, 8_000_000],
            REP_CODE => [0u32, u32::MAX, 7],
            "kind" => ["b", "a", "b"],
        )?;
        assert!(back.equals(&expected), "{back}");
        Ok(())
    }

    /// `by_levels_keyed` over two months of events with [`Sums`]: R0 moves from T0 to T1
    /// inside January, R1 has no team, one event has no rep; two values of an extra key.
    fn summed_levels(space: Option<CodeSpace>) -> PolarsResult<Vec<String>> {
        use crate::calendar::Grain;
        use crate::testutil::{d, periods, sorted_rows};
        let events = df!(
            PERIOD_IDX => [0i32, 0, 0, 0, 0, 1, 1],
            REP_CODE => [Some(0u32), Some(0), Some(1), None, Some(0), Some(1), Some(0)],
            TEAM_CODE => [Some(0u32), Some(1), None, None, Some(1), None, Some(1)],
            "kind" => [0u32, 0, 0, 0, 1, 0, 0],
            "v" => [Some(10i64), Some(20), None, Some(5), Some(7), Some(1), Some(2)],
        )?
        .lazy();
        let mut pf = PeriodFrames::new(
            &periods(Grain::Month, "2024-01-01", "2024-02-29"),
            d("2024-06-30"),
        )?;
        pf.code_space = space;
        let parts = [
            ("n", len()),
            ("answered", col("v").count()),
            ("total", col("v").sum()),
        ];
        let figures = [
            count_i64(col("n")).alias("n"),
            count_i64(col("total")).alias("total"),
            ratio(col("total").cast(DataType::Float64), col("answered")).alias("mean"),
        ];
        let sums = Sums {
            parts: &parts,
            figures: &figures,
        };
        let key = Some(("kind", &["a", "b"][..]));
        let out = by_levels_keyed(events, &pf, Aggs::Sums(sums), None, &["n", "total"], key)?
            .collect()?;
        Ok(sorted_rows(
            &out,
            &[
                LEVEL, PERIOD_IDX, "kind", TEAM_CODE, REP_CODE, "n", "total", "mean",
            ],
        ))
    }

    #[test]
    fn sums_by_rep_and_team_add_up_to_every_level() -> PolarsResult<()> {
        // January "a": R0 10 (T0) and 20 (T1), R1 none (no team), no rep 5; "b": R0 7 (T1).
        // February "a": R1 1, R0 2 (T1); "b": nothing, a zero company row.
        let expected = [
            "company|0|a|-|-|4|35|11.666666666666666",
            "company|0|b|-|-|1|7|7.0",
            "company|1|a|-|-|2|3|1.5",
            "company|1|b|-|-|0|0|-",
            "rep|0|a|-|0|2|30|15.0",
            "rep|0|a|-|1|1|0|-",
            "rep|0|b|-|0|1|7|7.0",
            "rep|1|a|-|0|1|2|2.0",
            "rep|1|a|-|1|1|1|1.0",
            "team|0|a|0|-|1|10|10.0",
            "team|0|a|1|-|1|20|20.0",
            "team|0|b|1|-|1|7|7.0",
            "team|1|a|1|-|1|2|2.0",
        ];
        let rolled_up = summed_levels(Some(CodeSpace { reps: 2, teams: 2 }))?;
        assert_eq!(rolled_up, expected);
        // Without the code space, or with one too large for the key, each level sums its
        // events: the same rows.
        assert_eq!(summed_levels(None)?, expected);
        let huge = CodeSpace {
            reps: 1 << 20,
            teams: 1 << 12,
        };
        assert_eq!(huge.team_slots(), None);
        assert_eq!(summed_levels(Some(huge))?, expected);
        Ok(())
    }

    #[test]
    fn team_slots_fit_the_key_or_are_refused() {
        let fits = CodeSpace {
            reps: (1 << 16) - 1,
            teams: (1 << 16) - 1,
        };
        assert_eq!(fits.team_slots(), Some(1 << 16));
        let one_more = CodeSpace {
            reps: 1 << 16,
            teams: (1 << 16) - 1,
        };
        assert_eq!(one_more.team_slots(), None);
        let overflow = CodeSpace {
            reps: u64::MAX,
            teams: 1,
        };
        assert_eq!(overflow.team_slots(), None);
    }
}
