//! Who belongs to which team on which day (SPEC §2 team_memberships, §11 "Entities").
//!
//! [`team_segments`] turns reps + memberships into non-overlapping, gap-free date segments per
//! rep, `[seg_start, seg_end)`, each with the team in force: the covering membership that
//! started last, else `reps.team_id`, else null. Every known rep's timeline is fully tiled,
//! so [`with_team_on`] is an inner join that never loses an event of a known rep.

use chrono::NaiveDate;
use polars::prelude::*;

use crate::columns::{REP_ID, SOURCE_ROW, TEAM_CODE, TEAM_ID, VALID_FROM, VALID_TO};
use crate::metrics::dates::date_lit;

pub const SEG_START: &str = "seg_start";
pub const SEG_END: &str = "seg_end";
pub const SEG_FIRST_DAY: &str = "__seg_first_day";
pub const SEG_LAST_DAY: &str = "__seg_last_day";

/// `rows` with every segment of their rep (matched on `key`, `rep_id` or `__rep_code`): the
/// `keep` columns of the segment and its first and last day (inclusive) as days since 1970,
/// for overlap arithmetic.
pub fn with_segment_days(
    rows: LazyFrame,
    segments: LazyFrame,
    key: &str,
    keep: &[&str],
) -> LazyFrame {
    let day = |c: &str| col(c).cast(DataType::Int32);
    let mut select: Vec<Expr> = std::iter::once(key)
        .chain(keep.iter().copied())
        .map(col)
        .collect();
    select.push(day(SEG_START).alias(SEG_FIRST_DAY));
    select.push((day(SEG_END) - lit(1)).alias(SEG_LAST_DAY));
    rows.join(
        segments.select(select),
        [col(key)],
        [col(key)],
        JoinArgs::new(JoinType::Inner),
    )
}

fn far_past() -> NaiveDate {
    NaiveDate::from_ymd_opt(1000, 1, 1).unwrap_or(NaiveDate::MIN)
}
fn far_future() -> NaiveDate {
    NaiveDate::from_ymd_opt(9999, 12, 31).unwrap_or(NaiveDate::MAX)
}

/// `rep_id`, `seg_start`, `seg_end` (exclusive), `team_id`.
///
/// `reps` has `rep_id` and optionally `team_id`; `memberships` has `rep_id`, `team_id`,
/// `valid_from`, `valid_to` (null = open) and `source_row`.
pub fn team_segments(
    reps: LazyFrame,
    has_rep_team: bool,
    memberships: Option<LazyFrame>,
) -> PolarsResult<LazyFrame> {
    let rep_team = if has_rep_team {
        col(TEAM_ID)
    } else {
        lit(NULL).cast(DataType::String).alias(TEAM_ID)
    };
    let reps = reps.select([col(REP_ID), rep_team.alias("rep_team")]);
    let Some(m) = memberships else {
        return Ok(reps.select([
            col(REP_ID),
            date_lit(far_past()).alias(SEG_START),
            date_lit(far_future()).alias(SEG_END),
            col("rep_team").alias(TEAM_ID),
        ]));
    };
    let m = m.select([
        col(REP_ID),
        col(TEAM_ID),
        col(VALID_FROM),
        col(VALID_TO),
        col(SOURCE_ROW),
    ]);
    let bounds = concat(
        [
            reps.clone()
                .select([col(REP_ID), date_lit(far_past()).alias(SEG_START)]),
            m.clone()
                .select([col(REP_ID), col(VALID_FROM).alias(SEG_START)]),
            m.clone()
                .filter(col(VALID_TO).is_not_null())
                .select([col(REP_ID), col(VALID_TO).alias(SEG_START)]),
        ],
        UnionArgs::default(),
    );
    let bounds = bounds?;
    let segments = bounds
        .unique(None, UniqueKeepStrategy::Any)
        .sort([REP_ID, SEG_START], SortMultipleOptions::default())
        .with_column(
            col(SEG_START)
                .shift(lit(-1))
                .over([col(REP_ID)])?
                .fill_null(date_lit(far_future()))
                .alias(SEG_END),
        );
    let covering = segments
        .clone()
        .join(
            m,
            [col(REP_ID)],
            [col(REP_ID)],
            JoinArgs::new(JoinType::Inner),
        )
        .filter(
            col(VALID_FROM)
                .lt_eq(col(SEG_START))
                .and(col(VALID_TO).is_null().or(col(SEG_START).lt(col(VALID_TO)))),
        )
        .group_by([col(REP_ID), col(SEG_START)])
        // Overlaps: the membership that started last wins; ties go to the later file row.
        .agg([col(TEAM_ID)
            .sort_by(
                [col(VALID_FROM), col(SOURCE_ROW)],
                SortMultipleOptions::default(),
            )
            .last()
            .alias("m_team")]);
    Ok(segments
        .join(
            covering,
            [col(REP_ID), col(SEG_START)],
            [col(REP_ID), col(SEG_START)],
            JoinArgs::new(JoinType::Left),
        )
        .join(
            reps,
            [col(REP_ID)],
            [col(REP_ID)],
            JoinArgs::new(JoinType::Left),
        )
        .select([
            col(REP_ID),
            col(SEG_START),
            col(SEG_END),
            coalesce(&[col("m_team"), col("rep_team")]).alias(TEAM_ID),
        ]))
}

/// Integer codes for reps and teams: the tables stage groups by them instead of the id text
/// (polars groups by one integer key much faster than by text keys) and turns them back into
/// ids when a table is finished ([`crate::metrics::levels::finish`]).
#[derive(Clone)]
pub struct Codes {
    /// `__rep_code` (u32), `rep_id`.
    pub reps: LazyFrame,
    /// `__team_code` (u32), `team_id`: every team a segment names.
    pub teams: LazyFrame,
}

impl Codes {
    /// Team codes numbered over the teams `segments` name; `reps` numbers the reps
    /// (`__rep_code`, `rep_id`). Any numbering works as long as every frame of a run reads
    /// the same one, which is why the caller collects these with the segments.
    pub fn new(reps: LazyFrame, segments: LazyFrame) -> Codes {
        // Numbered in id order, so the numbering does not depend on the segments' row order;
        // cached, so every frame that reads it in one execution reads one evaluation.
        let teams = segments
            .select([col(TEAM_ID)])
            .drop_nulls(None)
            .unique(None, UniqueKeepStrategy::Any)
            .sort([TEAM_ID], SortMultipleOptions::default())
            .with_row_index(TEAM_CODE, None)
            .cache();
        Codes { reps, teams }
    }

    /// `segments` with each row's `__rep_code` and `__team_code` (null without a team), so
    /// [`with_team_on`] hands the codes to every event it places.
    pub fn on_segments(&self, segments: LazyFrame) -> LazyFrame {
        let segments = lookup(segments, self.reps.clone(), REP_ID);
        lookup(segments, self.teams.clone(), TEAM_ID)
    }
}

/// Adds `team_id` (the rep's team on `date_col`) to events with a `rep_id` column, and the
/// segments' other columns (the codes of [`Codes::on_segments`]).
///
/// Events with a null `rep_id` keep a null team; every known rep's segments tile all time, so
/// each other event matches exactly one segment.
pub fn with_team_on(events: LazyFrame, date_col: &str, segments: LazyFrame) -> LazyFrame {
    with_team_on_by(events, REP_ID, date_col, segments)
}

/// [`with_team_on`] for events that name their rep by `key`: `rep_id`, or `__rep_code` where
/// the events carry the code and not the id.
pub fn with_team_on_by(
    events: LazyFrame,
    key: &str,
    date_col: &str,
    segments: LazyFrame,
) -> LazyFrame {
    events
        .join(
            segments,
            [col(key)],
            [col(key)],
            JoinArgs::new(JoinType::Left),
        )
        .filter(
            col(SEG_START).is_null().or(col(SEG_START)
                .lt_eq(col(date_col))
                .and(col(date_col).lt(col(SEG_END)))
                .fill_null(lit(false))),
        )
        .drop(cols([SEG_START, SEG_END]))
}

/// How many rep and team codes a run numbers ([`Codes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeSpace {
    pub reps: u64,
    pub teams: u64,
}

impl CodeSpace {
    /// Team slots per rep in `levels::sums_by_pair`'s pair code (a team or none), if every pair of a
    /// rep or none and a team or none fits the code part of the group key (32 bits,
    /// `levels::group_key`).
    pub fn team_slots(self) -> Option<u64> {
        let slots = self.teams.checked_add(1)?;
        let pairs = self.reps.checked_add(1)?.checked_mul(slots)?;
        (pairs <= 1 << 32).then_some(slots)
    }
}

/// `rows` with the columns of `table` whose `key` matches (a left join on one column).
pub fn lookup(rows: LazyFrame, table: LazyFrame, key: &str) -> LazyFrame {
    rows.join(table, [col(key)], [col(key)], JoinArgs::new(JoinType::Left))
}
