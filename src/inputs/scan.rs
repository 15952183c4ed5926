//! Reading one input table: lazy scan, canonical schema check, typing, and reject reasons.
//!
//! `scan_input` turns a CSV or Parquet source into an [`Input`]: a lazy frame holding every
//! original column, the typed canonical columns and a `reject_reason` (null for a good row),
//! following SPEC §8 and §11 "Bad rows". Callers take [`Input::accepted`] (canonical names,
//! good rows only) for metrics and [`Input::rejected`] (original columns + reason) for
//! `_rejects`. Nothing here collects except the schema probe (the CSV header / Parquet footer)
//! and the search for duplicate keys (see `duplicate_rows`).

use anyhow::Result;
use chrono_tz::Tz;
use polars::prelude::*;

use crate::calendar::{Calendar, Grain};
use crate::columns::{ColumnDef, Kind, Need, REJECT_REASON, SOURCE_ROW, Table};
use crate::config::plan::{
    CsvOptions, FileSource, Format, InputSource, Origin, RawSource, StatusMap,
};
use crate::error::Error;
use crate::inputs::text::{lowercased, trimmed};
use crate::metrics::dates::{localize, to_local_date, utc_datetime};
use crate::text_hash::text_hash;

/// Reasons a row is rejected, in the order SPEC §11 checks them (first match wins).
pub const REASONS: [&str; 10] = [
    "null_key",
    "unparseable_date",
    "unparseable_number",
    "negative_amount",
    "unknown_status",
    "missing_closed_at",
    "closed_before_created",
    "end_before_start",
    "unknown_rep",
    "duplicate_key",
];

/// Time zones used to read timestamps and reduce them to dates.
#[derive(Debug, Clone, Copy)]
pub struct Zones {
    pub source: Tz,
    pub reporting: Tz,
}

/// One scanned input table.
#[derive(Clone)]
pub struct Input {
    pub table: Table,
    pub uri: String,
    /// Original source columns, in file order.
    pub source_columns: Vec<String>,
    /// Canonical columns that exist (mapped, or optional ones present in the source).
    pub canonical: Vec<&'static str>,
    /// Columns parsed from text into dates, instants or numbers (for the parse profile).
    pub parsed: Vec<Parsed>,
    /// Read from CSV files (rejects then carry `source_line`).
    pub csv_file: bool,
    checked: LazyFrame,
    /// `checked` without the shared cache: a plan reading a column or two of it on its own
    /// (see [`Input::typed_min`]) reads only those columns.
    unshared: LazyFrame,
}

/// A canonical column whose values are parsed, and the source column they come from.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub canonical: &'static str,
    pub source: String,
    pub kind: Kind,
}

/// Which file each row came from (only read where a rejected row is reported).
const SOURCE_FILE: &str = "__source_file";

const TYPED_PREFIX: &str = "__typed_";

fn typed_name(canonical: &str) -> String {
    format!("{TYPED_PREFIX}{canonical}")
}

impl Input {
    /// Rows in the source: a count that reads no values where the format stores it (Parquet).
    pub fn rows(&self) -> PolarsResult<u64> {
        let df = self
            .unshared
            .clone()
            .select([len().cast(DataType::UInt64).alias("n")])
            .collect()?;
        Ok(df.column("n")?.u64()?.get(0).unwrap_or(0))
    }

    /// Good rows with canonical column names (plus `source_row`).
    pub fn accepted(&self) -> LazyFrame {
        let mut cols: Vec<Expr> = self
            .canonical
            .iter()
            .map(|c| col(typed_name(c)).alias(*c))
            .collect();
        cols.push(col(SOURCE_ROW));
        self.checked
            .clone()
            .filter(col(REJECT_REASON).is_null())
            .select(cols)
    }

    /// Bad rows: every original column, `reject_reason`, `source_file`, `source_row` (1 = the
    /// file's first data row) and, for CSV, `source_line` (the header is line 1; a quoted value
    /// spanning lines shifts later line numbers).
    pub fn rejected(&self) -> PolarsResult<LazyFrame> {
        let mut cols: Vec<Expr> = self
            .source_columns
            .iter()
            .map(|c| col(c.as_str()))
            .collect();
        // Row numbers run on across the files of a glob; restart them per file.
        let file_row = (col(SOURCE_ROW) - col(SOURCE_ROW).min().over([col(SOURCE_FILE)])? + lit(1))
            .cast(DataType::Int64);
        cols.push(col(REJECT_REASON));
        cols.push(col(SOURCE_FILE).cast(DataType::String).alias("source_file"));
        cols.push(file_row.clone().alias(SOURCE_ROW));
        if self.csv_file {
            cols.push((file_row + lit(1i64)).alias("source_line"));
        }
        Ok(self
            .checked
            .clone()
            .select(cols)
            .filter(col(REJECT_REASON).is_not_null()))
    }

    /// The smallest date of a typed column (a Timestamp column by its reporting-time-zone
    /// date), over every row that parsed; one row, column `d`. Cheap: the reject checks are
    /// not computed for it.
    pub fn typed_min(&self, canonical: &str, reporting: Tz, shared: bool) -> Option<LazyFrame> {
        let p = self.parsed.iter().find(|p| p.canonical == canonical)?;
        // The earliest instant's date is the earliest date: converting one value, not all.
        let min = col(typed_name(canonical)).min();
        let date = if p.kind == Kind::Timestamp {
            to_local_date(min, reporting)
        } else {
            min
        };
        let rows = if shared {
            &self.checked
        } else {
            &self.unshared
        };
        Some(rows.clone().select([date.alias("d")]))
    }

    /// One row: `__rows`, `__reason_<r>` per reason, `__nonnull_<c>` per mapped column, and per
    /// parsed column `__failed_<c>` (a value that did not parse) and `__sample_<c>` (the first
    /// such value).
    pub fn profile(&self) -> LazyFrame {
        let count = |e: Expr| e.sum().cast(DataType::Int64);
        let mut aggs = vec![len().cast(DataType::Int64).alias("__rows")];
        for r in REASONS {
            aggs.push(count(col(REJECT_REASON).eq(lit(r))).alias(format!("__reason_{r}")));
        }
        for p in &self.parsed {
            let raw = col(p.source.as_str());
            let failed = raw
                .clone()
                .is_not_null()
                .and(col(typed_name(p.canonical)).is_null());
            aggs.push(count(raw.clone().is_not_null()).alias(format!("__nonnull_{}", p.canonical)));
            aggs.push(count(failed.clone()).alias(format!("__failed_{}", p.canonical)));
            // Filtered before the cast: formatting every value as text costs seconds at 5 M rows.
            aggs.push(
                raw.filter(failed)
                    .first()
                    .cast(DataType::String)
                    .alias(format!("__sample_{}", p.canonical)),
            );
        }
        // Every mapped column is read, as the metrics read them: a file that only a full read
        // finds broken (a line with one field too many) fails `validate` as it fails `run`.
        for c in &self.canonical {
            if !self.parsed.iter().any(|p| p.canonical == *c) {
                aggs.push(count(col(typed_name(c)).is_not_null()).alias(format!("__nonnull_{c}")));
            }
        }
        self.checked.clone().select(aggs)
    }
}

/// A read failure with the likely cause named. A file that cannot be parsed (bad encoding,
/// broken quoting, ragged rows) is bad input, exit 2; an I/O failure may pass on retry, exit 1.
pub fn read_error(table: &str, uri: &str, e: PolarsError) -> anyhow::Error {
    let msg = e.to_string();
    if matches!(e, PolarsError::IO { .. }) {
        return anyhow::Error::from(e).context(format!("{table}: reading {uri}"));
    }
    let hint = if msg.to_lowercase().contains("utf-8") || msg.to_lowercase().contains("utf8") {
        "re-export it as UTF-8 (Latin-1 or Windows-1252 exports need converting)"
    } else {
        "check the delimiter and quoting ([inputs.<table>.csv]) or re-export the file"
    };
    Error::config(format!("{table}: cannot parse {uri}: {msg}; {hint}")).into()
}

/// Scans `src` lazily and attaches typed columns and reject reasons.
///
/// `known_reps` is the accepted `reps.rep_id` list (a small dimension table) for the
/// `unknown_rep` check; `None` while scanning reps itself. `require` lists optional canonical
/// columns that this run needs anyway (e.g. `reps.team_id` without team memberships).
pub fn scan_input(
    src: &InputSource,
    zones: Zones,
    known_reps: Option<&Series>,
    require: &[&str],
) -> Result<Input> {
    let table = src.table;
    let uri = src.uri();
    let (mut raw, csv_file) = scan_origin(src)?;
    let schema = raw
        .collect_schema()
        .map_err(|e| Error::config(format!("{table}: cannot read {uri}: {e}")))?;
    let raw = if csv_file {
        null_markers(raw, &schema, &src.csv)
    } else {
        raw
    };
    let source_columns: Vec<String> = schema
        .iter_names()
        .filter(|n| n.as_str() != SOURCE_ROW && n.as_str() != SOURCE_FILE)
        .map(|n| n.to_string())
        .collect();

    let mut canonical = Vec::new();
    let mut parsed = Vec::new();
    let mut typed = Vec::new();
    let mut reasons = ReasonBuilder::default();
    for def in table.columns() {
        let mapped = src.columns.get(def.name);
        let source_col = mapped.map(String::as_str).unwrap_or(def.name);
        let present = schema.get(source_col);
        // With quota_grain, a missing period_end is filled from period_start below.
        let filled = src.period_end_from.is_some() && def.name == "period_end";
        let needed = (def.need != Need::Optional && !filled)
            || mapped.is_some()
            || require.contains(&def.name);
        let Some(dtype) = present else {
            if needed {
                return Err(Error::InputSchema {
                    table: table.name().into(),
                    canonical: def.name.into(),
                    source_column: source_col.into(),
                    uri,
                    available: source_columns
                        .iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                }
                .into());
            }
            continue;
        };
        let raw_col = col(source_col);
        let value = typed_expr(def, raw_col.clone(), dtype, &src.csv, zones);
        let value = if def.name == crate::columns::STATUS {
            if let Some(m) = src.status_map.as_ref().filter(|m| m.strict) {
                let known: Vec<String> = m
                    .won
                    .iter()
                    .chain(&m.lost)
                    .chain(&m.open)
                    .cloned()
                    .collect();
                reasons.push("unknown_status", in_list(value.clone(), &known).not());
            }
            map_status(value, src.status_map.as_ref())
        } else {
            value
        };
        if matches!(def.kind, Kind::Date | Kind::Timestamp | Kind::Amount) {
            parsed.push(Parsed {
                canonical: def.name,
                source: source_col.to_string(),
                kind: def.kind,
            });
        }
        reasons.column(def, raw_col, col(typed_name(def.name)));
        typed.push(value.alias(typed_name(def.name)));
        canonical.push(def.name);
    }
    reasons.table_rules(table, &canonical, zones);
    if let (Some(reps), true) = (known_reps, canonical.contains(&crate::columns::REP_ID)) {
        let rep = col(typed_name(crate::columns::REP_ID));
        reasons.push(
            "unknown_rep",
            rep.clone()
                .is_not_null()
                .and(rep.is_in(lit(reps.clone()).implode(false), false).not()),
        );
    }

    let mut checked = raw.with_columns(typed);
    if let Some((grain, calendar)) = src.period_end_from
        && !canonical.contains(&"period_end")
    {
        checked = fill_period_end(checked, grain, calendar)?;
        canonical.push("period_end");
    }
    let mut checked = checked.with_column(reasons.build().alias(REJECT_REASON));
    if let Some(key) = table.primary_key() {
        // Duplicate key: the first row in file order among rows passing the other checks wins.
        checked = match src.origin {
            // Files are read in the same order every time: the duplicates are found in a pass
            // of their own, and the checks of the main pass stay row by row (streamable).
            Origin::File(_) => {
                let later = duplicate_rows(&checked, key, text_hash)
                    .map_err(|e| read_error(table.name(), &uri, e))?;
                match later {
                    Some(rows) => mark_duplicates(
                        checked,
                        col(SOURCE_ROW).is_in(lit(rows).implode(false), false),
                    ),
                    None => checked,
                }
            }
            // A query's row order need not repeat between executions: decided in the plan.
            Origin::Sql { .. } => {
                let passed = col(REJECT_REASON).is_null();
                // Rows already rejected get a null key, so they neither count as the first of
                // a key nor are judged again.
                let key_if_passed = when(passed)
                    .then(col(typed_name(key)))
                    .otherwise(lit(NULL).cast(DataType::String));
                mark_duplicates(checked, later_duplicate(key_if_passed, text_hash))
            }
        };
    }
    Ok(Input {
        table,
        uri,
        source_columns,
        canonical,
        parsed,
        csv_file,
        // The profile and the accepted rows read the same checked rows in one execution.
        checked: checked.clone().cache(),
        unshared: checked,
    })
}

/// `reject_reason` becomes `duplicate_key` where `later` holds on a row that passed the other
/// checks.
fn mark_duplicates(checked: LazyFrame, later: Expr) -> LazyFrame {
    checked.with_column(
        when(col(REJECT_REASON).is_null().and(later))
            .then(lit("duplicate_key"))
            .otherwise(col(REJECT_REASON))
            .alias(REJECT_REASON),
    )
}

/// The `source_row`s that repeat the key of an earlier row passing the other checks, or `None`
/// when there are none; exact.
///
/// A hash set over every key (polars' `is_first_distinct`) runs on one thread and holds the
/// whole table in memory until it is done. Instead this reads
/// the key column alone, hashes it to 64 bits and sorts the hashes to find the few that occur
/// more than once (typically none: then that is all). Only rows holding such a hash are read
/// in full and compared by their text, so a collision between different keys costs a little
/// time and changes no result.
fn duplicate_rows(
    checked: &LazyFrame,
    key: &str,
    hash: fn(Expr) -> Expr,
) -> PolarsResult<Option<Series>> {
    let typed_key = || col(typed_name(key));
    let repeated = checked
        .clone()
        .filter(typed_key().is_not_null())
        // Sorted in one step, compared in the next: written as one expression (as in
        // `later_duplicate`) polars sorts three times.
        .select([hash(typed_key()).sort(SortOptions::default()).alias("h")])
        .filter(col("h").eq(col("h").shift(lit(1))))
        .unique(None, UniqueKeepStrategy::Any)
        .collect_with_engine(Engine::Streaming)?
        .unwrap_single();
    let repeated = repeated.column("h")?.as_materialized_series().clone();
    if repeated.is_empty() {
        return Ok(None);
    }
    let later = checked
        .clone()
        .filter(
            col(REJECT_REASON)
                .is_null()
                .and(hash(typed_key()).is_in(lit(repeated).implode(false), false)),
        )
        .select([col(SOURCE_ROW), typed_key()])
        .sort([SOURCE_ROW], SortMultipleOptions::default())
        .filter(typed_key().is_first_distinct().not())
        .select([col(SOURCE_ROW)])
        .collect_with_engine(Engine::Streaming)?
        .unwrap_single();
    let later = later.column(SOURCE_ROW)?.as_materialized_series().clone();
    Ok((!later.is_empty()).then_some(later))
}

/// True for a row whose non-null `key` (text) appeared on an earlier row; exact. For inputs
/// whose row order may change between executions (see [`duplicate_rows`] for files): hashes
/// find the candidate rows, their text decides.
fn later_duplicate(key: Expr, hash: fn(Expr) -> Expr) -> Expr {
    let hashed = || hash(key.clone());
    let sorted = || hashed().sort(SortOptions::default());
    let repeated = sorted().filter(sorted().eq(sorted().shift(lit(1))));
    let candidate = key
        .clone()
        .is_not_null()
        .and(hashed().is_in(repeated.implode(false), false));
    let candidate_key = when(candidate.clone())
        .then(key)
        .otherwise(lit(NULL).cast(DataType::String));
    candidate.and(candidate_key.is_first_distinct().not())
}

/// The mapped source columns of an input, reduced to one row (`__rows` and a null count per
/// column): a read of exactly what the job reads, for the benchmark's baseline.
pub fn scan_source_columns(src: &InputSource) -> Result<LazyFrame> {
    let (mut raw, _) = scan_origin(src)?;
    let schema = raw.collect_schema()?;
    let mut aggs = vec![len().alias("__rows")];
    for source in src.columns.values() {
        if schema.contains(source) {
            aggs.push(
                col(source.as_str())
                    .null_count()
                    .alias(format!("__nulls_{source}")),
            );
        }
    }
    Ok(raw.select(aggs))
}

/// An input's rows as read, lazily, and whether they come from CSV files.
fn scan_origin(src: &InputSource) -> Result<(LazyFrame, bool)> {
    Ok(match &src.origin {
        Origin::File(f) => (
            scan_file(src.table.name(), f, &src.csv, true)?,
            f.format == Format::Csv,
        ),
        Origin::Sql { query, sources } => (scan_sql(src.table, query, sources)?, false),
    })
}

/// A file input or raw source, lazily. `text` reads every CSV column as text (inputs: parsing
/// is ours, so bad values become rejects); raw sources for SQL get inferred types instead.
fn scan_file(what: &str, f: &FileSource, csv: &CsvOptions, text: bool) -> Result<LazyFrame> {
    let uri = f.location.display();
    let files = f.location.expand()?;
    if f.format == Format::Csv {
        for file in files.iter().take(16) {
            sniff_encoding(what, file, &f.location.head(file, 65536)?)?;
        }
    }
    let cloud = f.location.cloud_options()?;
    if files.is_empty() {
        return Err(Error::MissingInput {
            table: what.into(),
            uri,
        }
        .into());
    }
    let path = PlRefPath::new(uri.as_str());
    let row_index = Some(RowIndex {
        name: SOURCE_ROW.into(),
        offset: 1,
    });
    let lf = match f.format {
        Format::Csv => LazyCsvReader::new(path)
            .with_has_header(true)
            .with_separator(csv.delimiter)
            .with_infer_schema_length(if text { Some(0) } else { Some(10_000) })
            // Empty fields are null. Other null markers are applied by `null_markers`, not by
            // polars: its null-value check slices a lone `"` field out of bounds (polars-io
            // 0.55.2, csv/read/parser.rs:1154; found by tests/props.rs).
            .with_missing_is_null(true)
            .with_row_index(row_index)
            .with_include_file_paths(Some(SOURCE_FILE.into()))
            .with_glob(true)
            .with_cloud_options(cloud)
            .finish(),
        Format::Parquet => {
            let args = ScanArgsParquet {
                row_index,
                glob: true,
                include_file_paths: Some(SOURCE_FILE.into()),
                cloud_options: cloud,
                ..Default::default()
            };
            LazyFrame::scan_parquet(path, args)
        }
    };
    anyhow::Context::with_context(lf, || format!("{what}: scanning {uri}"))
}

/// An input derived by a polars SQL query over the raw sources (each registered by name).
fn scan_sql(table: Table, query: &str, sources: &[RawSource]) -> Result<LazyFrame> {
    let mut ctx = polars::sql::SQLContext::new();
    for s in sources {
        let what = format!("[sources.{}]", s.name);
        let mut lf = scan_file(&what, &s.file, &s.csv, false)?;
        let schema = lf.collect_schema().map_err(|e| {
            Error::config(format!(
                "{what}: cannot read {}: {e}",
                s.file.location.display()
            ))
        })?;
        let lf = if s.file.format == Format::Csv {
            null_markers(lf, &schema, &s.csv)
        } else {
            lf
        };
        ctx.register(&s.name, lf.drop(cols([SOURCE_ROW, SOURCE_FILE])));
    }
    let lf = ctx.execute(query).map_err(|e| {
        let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
        Error::config(format!(
            "[inputs.{table}] sql failed: {e}; sources you can query: {}",
            if names.is_empty() {
                "none (add [sources.<name>])".to_string()
            } else {
                names.join(", ")
            }
        ))
    })?;
    Ok(lf
        .with_row_index(SOURCE_ROW, Some(1))
        .with_column(lit(format!("sql:{table}")).alias(SOURCE_FILE)))
}

/// Quotas named by their first day (`quota_grain`): `period_end` is the last day of that
/// grain's period, from a day map generated from the calendar (1950–2100, 55 k rows).
fn fill_period_end(
    checked: LazyFrame,
    grain: Grain,
    calendar: Calendar,
) -> PolarsResult<LazyFrame> {
    use crate::metrics::dates::epoch_days;
    let first = chrono::NaiveDate::from_ymd_opt(1950, 1, 1).unwrap_or_default();
    let last = chrono::NaiveDate::from_ymd_opt(2100, 12, 31).unwrap_or_default();
    let (mut days, mut ends) = (Vec::new(), Vec::new());
    for p in calendar.periods_between(grain, first, last) {
        let end = epoch_days(p.end);
        for d in epoch_days(p.start)..=end {
            days.push(d);
            ends.push(end);
        }
    }
    let map = DataFrame::new_infer_height(vec![
        Column::new("__day".into(), days).cast(&DataType::Date)?,
        Column::new(typed_name("period_end").into(), ends).cast(&DataType::Date)?,
    ])?
    .lazy();
    let mut args = JoinArgs::new(JoinType::Left);
    args.maintain_order = MaintainOrderJoin::Left;
    Ok(checked.join(map, [col(typed_name("period_start"))], [col("__day")], args))
}

/// The typed value of one canonical column, from a source column of dtype `dtype`.
fn typed_expr(
    def: &ColumnDef,
    raw: Expr,
    dtype: &DataType,
    csv: &CsvOptions,
    zones: Zones,
) -> Expr {
    match def.kind {
        Kind::Key | Kind::Text => match dtype {
            DataType::String => trimmed(raw),
            _ => raw.cast(DataType::String),
        },
        Kind::Amount => match dtype {
            DataType::String => trimmed(raw).cast(DataType::Float64),
            _ => raw.cast(DataType::Float64),
        },
        Kind::Timestamp => match dtype {
            DataType::String => parse_timestamp(raw, csv, zones.source),
            DataType::Date => localize(
                raw.cast(DataType::Datetime(TimeUnit::Microseconds, None)),
                zones.source,
            ),
            DataType::Datetime(_, tz) => normalize_datetime(raw, tz.is_some(), zones.source),
            _ => lit(NULL).cast(utc_datetime()),
        },
        Kind::Date => match dtype {
            DataType::String => {
                let fmt = csv.date_format.as_deref().unwrap_or("%Y-%m-%d");
                let as_date = trimmed(raw.clone()).str().to_date(strptime(fmt));
                let from_ts =
                    to_local_date(parse_timestamp(raw, csv, zones.source), zones.reporting);
                coalesce(&[as_date, from_ts])
            }
            DataType::Date => raw,
            DataType::Datetime(_, tz) => to_local_date(
                normalize_datetime(raw, tz.is_some(), zones.source),
                zones.reporting,
            ),
            _ => lit(NULL).cast(DataType::Date),
        },
    }
}

fn strptime(fmt: &str) -> StrptimeOptions {
    StrptimeOptions {
        format: Some(fmt.into()),
        strict: false,
        exact: true,
        cache: true,
    }
}

fn normalize_datetime(raw: Expr, aware: bool, source: Tz) -> Expr {
    if aware {
        raw.dt()
            .cast_time_unit(TimeUnit::Microseconds)
            .dt()
            .convert_time_zone(TimeZone::UTC)
    } else {
        localize(raw, source)
    }
}

/// ISO 8601 with offset (`2024-03-01T09:30:00+01:00`, `...Z`) or naive (read in `source`);
/// `T` or space between date and time, seconds and fractions optional; a bare date is midnight.
/// A `timestamp_format` replaces these forms; a `date_format` is also tried, as midnight, so
/// a date-only column such as "Lead acquisition date" needs only that.
fn parse_timestamp(raw: Expr, csv: &CsvOptions, source: Tz) -> Expr {
    let s = trimmed(raw);
    let dt = |e: Expr, fmt: &str| {
        e.str().to_datetime(
            Some(TimeUnit::Microseconds),
            None,
            strptime(fmt),
            lit("earliest"),
        )
    };
    let midnight = |e: Expr, fmt: &str| {
        localize(
            e.str()
                .to_date(strptime(fmt))
                .cast(DataType::Datetime(TimeUnit::Microseconds, None)),
            source,
        )
    };
    let has_time = |fmt: &str| {
        ["%H", "%I", "%T", "%R", "%M", "%s"]
            .iter()
            .any(|t| fmt.contains(t))
    };
    let mut forms = Vec::new();
    match csv.timestamp_format.as_deref() {
        Some(fmt) if fmt.contains("%z") || fmt.contains("%:z") || fmt.contains("%#z") => {
            forms.push(dt(s.clone(), fmt).dt().convert_time_zone(TimeZone::UTC));
        }
        Some(fmt) if has_time(fmt) => forms.push(localize(dt(s.clone(), fmt), source)),
        Some(fmt) => forms.push(midnight(s.clone(), fmt)),
        None => {
            let norm = s
                .clone()
                .str()
                .replace(lit("T"), lit(" "), true)
                .str()
                .replace(lit("Z"), lit("+00:00"), true);
            for fmt in [
                "%Y-%m-%d %H:%M:%S%.f%:z",
                "%Y-%m-%d %H:%M:%S%.f%z",
                "%Y-%m-%d %H:%M%:z",
            ] {
                forms.push(dt(norm.clone(), fmt).dt().convert_time_zone(TimeZone::UTC));
            }
            for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"] {
                forms.push(localize(dt(norm.clone(), fmt), source));
            }
            forms.push(midnight(s.clone(), "%Y-%m-%d"));
        }
    }
    if let Some(fmt) = csv.date_format.as_deref() {
        forms.push(midnight(s, fmt));
    }
    coalesce(&forms)
}

/// SPEC §10 `status_map`: exact matches; without a map, won/lost case-insensitively; else open.
fn map_status(raw: Expr, map: Option<&StatusMap>) -> Expr {
    let (is_won, is_lost) = match map {
        Some(m) => (in_list(raw.clone(), &m.won), in_list(raw, &m.lost)),
        None => {
            let lower = lowercased(raw);
            (lower.clone().eq(lit("won")), lower.eq(lit("lost")))
        }
    };
    when(is_won)
        .then(lit("won"))
        .when(is_lost)
        .then(lit("lost"))
        .otherwise(lit("open"))
}

fn in_list(e: Expr, values: &[String]) -> Expr {
    let s = Series::new("values".into(), values);
    e.is_in(lit(s).implode(false), false).fill_null(lit(false))
}

/// Collects (condition, reason) pairs per reason; the earliest reason in [`REASONS`] wins.
#[derive(Default)]
struct ReasonBuilder {
    rules: Vec<(&'static str, Expr)>,
}

impl ReasonBuilder {
    fn push(&mut self, reason: &'static str, cond: Expr) {
        self.rules.push((reason, cond));
    }

    /// Per-column checks: null keys, unparseable values, negative amounts.
    fn column(&mut self, def: &ColumnDef, raw: Expr, typed: Expr) {
        let lost_in_parsing = raw.is_not_null().and(typed.clone().is_null());
        let required_null = typed.clone().is_null();
        match def.kind {
            Kind::Key => self.push("null_key", typed.is_null()),
            Kind::Text => {}
            Kind::Timestamp | Kind::Date => {
                let cond = if def.need == Need::Required {
                    required_null
                } else {
                    lost_in_parsing
                };
                self.push("unparseable_date", cond);
            }
            Kind::Amount => {
                let cond = if def.need == Need::Required {
                    required_null
                } else {
                    lost_in_parsing
                };
                self.push("unparseable_number", cond);
                self.push("negative_amount", typed.lt(lit(0.0)).fill_null(lit(false)));
            }
        }
    }

    /// Checks across columns of one table.
    fn table_rules(&mut self, table: Table, present: &[&str], zones: Zones) {
        let t = |c: &str| col(typed_name(c));
        match table {
            Table::Deals => {
                let closed = t(crate::columns::CLOSED_AT);
                let status = t(crate::columns::STATUS);
                let decided = status
                    .clone()
                    .eq(lit("won"))
                    .or(status.clone().eq(lit("lost")));
                self.push("missing_closed_at", decided.and(closed.clone().is_null()));
                // A won deal needs an amount; open and lost deals may leave it empty.
                self.push(
                    "unparseable_number",
                    status
                        .eq(lit("won"))
                        .and(t(crate::columns::AMOUNT).is_null()),
                );
                let created = to_local_date(t(crate::columns::CREATED_AT), zones.reporting);
                self.push(
                    "closed_before_created",
                    closed.lt(created).fill_null(lit(false)),
                );
            }
            Table::Quotas => {
                self.push(
                    "end_before_start",
                    t("period_end").lt(t("period_start")).fill_null(lit(false)),
                );
            }
            Table::TeamMemberships if present.contains(&crate::columns::VALID_TO) => {
                self.push(
                    "end_before_start",
                    t("valid_to").lt(t("valid_from")).fill_null(lit(false)),
                );
            }
            _ => {}
        }
    }

    fn build(self) -> Expr {
        let mut out = lit(NULL).cast(DataType::String);
        // Build from the last reason to the first so the first matching reason is outermost.
        for reason in REASONS.iter().rev() {
            for (r, cond) in self.rules.iter().rev() {
                if r == reason {
                    out = when(cond.clone().fill_null(lit(false)))
                        .then(lit(*reason))
                        .otherwise(out);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::plan::CsvOptions;
    use crate::storage::Location;
    use crate::testutil::rows;

    fn source(
        table: Table,
        path: &std::path::Path,
        columns: &[(&'static str, &str)],
    ) -> InputSource {
        let mut map: BTreeMap<&'static str, String> = table
            .columns()
            .iter()
            .filter(|d| d.need != Need::Optional)
            .map(|d| (d.name, d.name.to_string()))
            .collect();
        for (k, v) in columns {
            map.insert(k, v.to_string());
        }
        InputSource {
            table,
            origin: Origin::File(FileSource {
                location: Location::Local(path.to_path_buf()),
                format: Format::Csv,
            }),
            period_end_from: None,
            columns: map,
            csv: CsvOptions {
                delimiter: b',',
                date_format: None,
                timestamp_format: None,
                null_values: vec![String::new()],
            },
            status_map: None,
            max_reject_fraction: 0.01,
        }
    }

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.path().join(name);
        fs_err::write(&p, text).unwrap();
        p
    }

    fn utc() -> Zones {
        Zones {
            source: chrono_tz::UTC,
            reporting: chrono_tz::UTC,
        }
    }

    fn known() -> Series {
        Series::new("rep_id".into(), ["R1"])
    }

    const DEALS_HEADER: &str =
        "deal_id,rep_id,created_at,status,closed_at,expected_close_date,amount\n";

    #[test]
    fn timestamps_with_offsets_naive_and_date_only() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let body = [
            "D1,R1,2024-01-31T23:30:00-05:00,open,,,1",
            "D2,R1,2024-01-31 23:30:00,open,,,1",
            "D3,R1,2024-01-31T23:30:00.250Z,open,,,1",
            "D4,R1,2024-01-31T23:30,open,,,1",
            "D5,R1,2024-01-31,open,,,1",
            "D6,R1,2024-01-31T23:30:00+0100,open,,,1",
        ];
        let p = write(
            &dir,
            "deals.csv",
            &format!("{DEALS_HEADER}{}\n", body.join("\n")),
        );
        // Naive values are wall-clock time in Europe/Berlin (UTC+1 in January).
        let zones = Zones {
            source: chrono_tz::Europe::Berlin,
            reporting: chrono_tz::UTC,
        };
        let input = scan_input(&source(Table::Deals, &p, &[]), zones, Some(&known()), &[])?;
        let out = input
            .accepted()
            .select([
                col("deal_id"),
                col("created_at").dt().to_string("%Y-%m-%dT%H:%M:%S%.3f"),
            ])
            .collect()?;
        assert_eq!(
            rows(&out, &["deal_id", "created_at"]),
            [
                "D1|2024-02-01T04:30:00.000",
                "D2|2024-01-31T22:30:00.000",
                "D3|2024-01-31T23:30:00.250",
                "D4|2024-01-31T22:30:00.000",
                "D5|2024-01-30T23:00:00.000",
                "D6|2024-01-31T22:30:00.000",
            ]
        );
        Ok(())
    }

    #[test]
    fn reporting_timezone_moves_a_close_across_a_month_boundary() -> Result<()> {
        // 23:30 at UTC−5 on Jan 31 is 04:30 UTC on Feb 1: February in UTC, January in New York.
        let dir = tempfile::tempdir()?;
        let p = write(
            &dir,
            "deals.csv",
            &format!("{DEALS_HEADER}D1,R1,2024-01-02,won,2024-01-31T23:30:00-05:00,,5\n"),
        );
        let src = source(Table::Deals, &p, &[]);
        let closed = |reporting| -> Result<Vec<String>> {
            let input = scan_input(
                &src,
                Zones {
                    source: chrono_tz::UTC,
                    reporting,
                },
                Some(&known()),
                &[],
            )?;
            Ok(rows(&input.accepted().collect()?, &["closed_at"]))
        };
        assert_eq!(closed(chrono_tz::UTC)?, ["2024-02-01"]);
        assert_eq!(closed(chrono_tz::America::New_York)?, ["2024-01-31"]);
        Ok(())
    }

    #[test]
    fn each_reject_reason_and_first_reason_wins() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let body = [
            "D1,R1,2024-01-05,won,2024-01-10,,10",  // good
            ",R1,2024-01-05,open,,,10",             // null_key
            "D3,R1,not a date,open,,,10",           // unparseable_date
            "D4,R1,2024-01-05,open,,,ten",          // unparseable_number
            "D5,R1,2024-01-05,open,,,-5",           // negative_amount
            "D6,R1,2024-01-05,won,,,10",            // missing_closed_at
            "D7,R1,2024-01-05,lost,2024-01-01,,10", // closed_before_created
            "D8,R9,2024-01-05,open,,,10",           // unknown_rep
            "D1,R1,2024-01-06,open,,,10",           // duplicate_key (D1 came first)
            ",R1,bad,open,,,-1",                    // null_key, not the later reasons
            "D3,R1,2024-01-05,open,,,10",           // kept: the first D3 was rejected
            "D12,R1,2024-01-05,won,2024-01-10,,",   // won without amount: unparseable_number
        ];
        let p = write(
            &dir,
            "deals.csv",
            &format!("{DEALS_HEADER}{}\n", body.join("\n")),
        );
        let input = scan_input(&source(Table::Deals, &p, &[]), utc(), Some(&known()), &[])?;
        let rejected = input.rejected()?.collect()?;
        assert_eq!(
            rows(&rejected, &["source_row", "deal_id", REJECT_REASON]),
            [
                "2|-|null_key",
                "3|D3|unparseable_date",
                "4|D4|unparseable_number",
                "5|D5|negative_amount",
                "6|D6|missing_closed_at",
                "7|D7|closed_before_created",
                "8|D8|unknown_rep",
                "9|D1|duplicate_key",
                "10|-|null_key",
                "12|D12|unparseable_number",
            ]
        );
        assert_eq!(
            rows(&input.accepted().collect()?, &["deal_id", "source_row"]),
            ["D1|1", "D3|11"]
        );
        Ok(())
    }

    /// Checked rows of a deals table, for the duplicate checks: D1 thrice, D2 twice, D3 once
    /// but rejected, and a null key.
    fn checked_deals() -> Result<DataFrame> {
        Ok(DataFrame::new_infer_height(vec![
            Column::new(SOURCE_ROW.into(), [1u32, 2, 3, 4, 5, 6, 7, 8]),
            Column::new(
                typed_name("deal_id").into(),
                [
                    Some("D1"),
                    Some("D2"),
                    Some("D1"),
                    None,
                    Some("D3"),
                    Some("D2"),
                    Some("D1"),
                    Some("D4"),
                ],
            ),
            Column::new(
                REJECT_REASON.into(),
                [
                    Some("unknown_rep"),
                    None,
                    None,
                    Some("null_key"),
                    Some("unknown_rep"),
                    None,
                    None,
                    None,
                ],
            ),
        ])?)
    }

    /// Every key of the same length collides.
    fn weak_hash(e: Expr) -> Expr {
        e.str().len_bytes().cast(DataType::UInt64)
    }

    #[test]
    fn duplicate_rows_are_decided_by_text_even_when_hashes_collide() -> Result<()> {
        let checked = checked_deals()?.lazy();
        // Row 1 (D1) is rejected, so row 3 is the first D1 that passed; 6 repeats 2.
        for hash in [text_hash as fn(Expr) -> Expr, weak_hash] {
            let later = duplicate_rows(&checked, "deal_id", hash)?.expect("duplicates");
            let later = DataFrame::new_infer_height(vec![later.into_column()])?;
            assert_eq!(rows(&later, &[SOURCE_ROW]), ["6", "7"]);
        }
        let unique = checked.filter(col(SOURCE_ROW).lt(lit(3u32)));
        assert!(duplicate_rows(&unique, "deal_id", weak_hash)?.is_none());
        Ok(())
    }

    #[test]
    fn later_duplicate_in_the_plan_agrees() -> Result<()> {
        let key = when(col(REJECT_REASON).is_null())
            .then(col(typed_name("deal_id")))
            .otherwise(lit(NULL).cast(DataType::String));
        for hash in [text_hash as fn(Expr) -> Expr, weak_hash] {
            let df = checked_deals()?
                .lazy()
                .select([later_duplicate(key.clone(), hash).alias("later")])
                .collect()?;
            let expected = [
                "false", "false", "false", "false", "false", "true", "true", "false",
            ];
            assert_eq!(rows(&df, &["later"]), expected);
        }
        Ok(())
    }

    #[test]
    fn missing_column_names_table_canonical_and_source() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let p = write(&dir, "deals.csv", "id,owner,created\nD1,R1,2024-01-01\n");
        let src = source(
            Table::Deals,
            &p,
            &[
                ("deal_id", "id"),
                ("rep_id", "owner"),
                ("created_at", "created"),
            ],
        );
        let err = scan_input(&src, utc(), Some(&known()), &[])
            .err()
            .expect("missing status");
        let msg = err.to_string();
        assert!(
            msg.contains("deals")
                && msg.contains("`status`")
                && msg.contains("`id`, `owner`, `created`"),
            "{msg}"
        );
        assert_eq!(crate::error::exit_code(&err), 2);
        Ok(())
    }

    #[test]
    fn status_map_is_exact_and_default_is_case_insensitive() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let p = write(
            &dir,
            "deals.csv",
            &format!(
                "{DEALS_HEADER}D1,R1,2024-01-01,WON,2024-01-02,,1\nD2,R1,2024-01-01,Closed Won,2024-01-02,,1\nD3,R1,2024-01-01,Lost,2024-01-02,,1\n"
            ),
        );
        let mut src = source(Table::Deals, &p, &[]);
        let statuses = |src: &InputSource| -> Result<Vec<String>> {
            Ok(rows(
                &scan_input(src, utc(), Some(&known()), &[])?
                    .accepted()
                    .collect()?,
                &["status"],
            ))
        };
        assert_eq!(statuses(&src)?, ["won", "open", "lost"]);
        src.status_map = Some(StatusMap {
            won: vec!["Closed Won".into()],
            lost: vec!["Lost".into()],
            ..StatusMap::default()
        });
        assert_eq!(statuses(&src)?, ["open", "won", "lost"]);
        Ok(())
    }
}

/// Rejects files whose encoding polars cannot read (UTF-16, Latin-1), with a message that says
/// so, instead of garbled column names. `head` is the file's first 64 KiB.
fn sniff_encoding(table: &str, path: &str, head: &[u8]) -> Result<(), Error> {
    let bad = |what: &str| {
        Error::config(format!(
            "{table}: {path} is {what}; re-export it as UTF-8 (with or without a BOM)"
        ))
    };
    if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        return Err(bad("UTF-16 (it starts with a UTF-16 byte-order mark)"));
    }
    if head.contains(&0) {
        return Err(bad(
            "not text, or UTF-16 without a byte-order mark (it contains NUL bytes)",
        ));
    }
    if let Err(e) = std::str::from_utf8(head) {
        // An error at the very end may be a character cut by the 64 KiB window.
        if e.error_len().is_some() {
            let line = head[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            return Err(bad(&format!(
                "not valid UTF-8 (byte 0x{:02X} on line {line}; Latin-1 or Windows-1252?)",
                head[e.valid_up_to()]
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod more_tests {
    use super::*;
    use crate::config::plan::CsvOptions;
    use crate::storage::Location;
    use crate::testutil::rows;

    fn deals_source(path: &std::path::Path, status_map: Option<StatusMap>) -> InputSource {
        let columns = Table::Deals
            .columns()
            .iter()
            .filter(|d| d.need != Need::Optional)
            .map(|d| (d.name, d.name.to_string()))
            .collect();
        InputSource {
            table: Table::Deals,
            origin: Origin::File(FileSource {
                location: Location::Local(path.to_path_buf()),
                format: Format::Csv,
            }),
            period_end_from: None,
            columns,
            csv: CsvOptions {
                delimiter: b',',
                date_format: None,
                timestamp_format: None,
                null_values: vec![String::new()],
            },
            status_map,
            max_reject_fraction: 0.01,
        }
    }

    fn zones() -> Zones {
        Zones {
            source: chrono_tz::UTC,
            reporting: chrono_tz::UTC,
        }
    }

    #[test]
    fn strict_status_map_rejects_unknown_values() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("deals.csv");
        fs_err::write(
            &p,
            "deal_id,rep_id,created_at,status,closed_at,expected_close_date,amount\n\
             D1,R1,2024-01-01,Closed Won,2024-01-02,,1\n\
             D2,R1,2024-01-01,Negotiation,,,1\n\
             D3,R1,2024-01-01,Closed Wonn,2024-01-02,,1\n",
        )?;
        let map = StatusMap {
            won: vec!["Closed Won".into()],
            lost: vec!["Closed Lost".into()],
            open: vec!["Negotiation".into()],
            strict: true,
        };
        let known = Series::new("rep_id".into(), ["R1"]);
        let input = scan_input(&deals_source(&p, Some(map)), zones(), Some(&known), &[])?;
        assert_eq!(
            rows(&input.rejected()?.collect()?, &["deal_id", REJECT_REASON]),
            ["D3|unknown_status"]
        );
        assert_eq!(
            rows(&input.accepted().collect()?, &["deal_id", "status"]),
            ["D1|won", "D2|open"]
        );
        Ok(())
    }

    #[test]
    fn rejects_name_their_file_and_line_across_a_glob() -> Result<()> {
        // Two files; the bad row is the second data row (line 3) of the second file.
        let dir = tempfile::tempdir()?;
        let header = "deal_id,rep_id,created_at,status,closed_at,expected_close_date,amount\n";
        fs_err::write(
            dir.path().join("deals_1.csv"),
            format!("{header}D1,R1,2024-01-01,open,,,1\nD2,R1,2024-01-01,open,,,2\n"),
        )?;
        fs_err::write(
            dir.path().join("deals_2.csv"),
            format!("{header}D3,R1,2024-01-01,open,,,3\nD4,R1,yesterday,open,,,4\n"),
        )?;
        let known = Series::new("rep_id".into(), ["R1"]);
        let input = scan_input(
            &deals_source(&dir.path().join("deals_*.csv"), None),
            zones(),
            Some(&known),
            &[],
        )?;
        let rejected = input.rejected()?.collect()?;
        assert_eq!(
            rows(
                &rejected,
                &["deal_id", REJECT_REASON, "source_row", "source_line"]
            ),
            ["D4|unparseable_date|2|3"]
        );
        let file = rows(&rejected, &["source_file"]).remove(0);
        assert!(file.ends_with("deals_2.csv"), "{file}");
        // The profile counts every row once and the reasons add up.
        let profile = input.profile().collect()?;
        assert_eq!(
            rows(
                &profile,
                &[
                    "__rows",
                    "__reason_unparseable_date",
                    "__failed_created_at",
                    "__sample_created_at"
                ]
            ),
            ["4|1|1|yesterday"]
        );
        Ok(())
    }
}

/// Turns the configured null markers (`NULL`, `-`, ...) into nulls in every text column.
fn null_markers(raw: LazyFrame, schema: &Schema, csv: &CsvOptions) -> LazyFrame {
    let markers: Vec<&String> = csv.null_values.iter().filter(|v| !v.is_empty()).collect();
    if markers.is_empty() {
        return raw;
    }
    let markers = Series::new(
        "markers".into(),
        markers.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
    );
    let exprs: Vec<Expr> = schema
        .iter()
        .filter(|(_, dtype)| **dtype == DataType::String)
        .map(|(name, _)| {
            let c = col(name.clone());
            when(
                c.clone()
                    .is_in(lit(markers.clone()).implode(false), false)
                    .fill_null(lit(false)),
            )
            .then(lit(NULL).cast(DataType::String))
            .otherwise(c)
            .alias(name.clone())
        })
        .collect();
    raw.with_columns(exprs)
}
