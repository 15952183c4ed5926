//! Reading the inputs: scanning and typing each table ([`scan`]), the reject reasons and the
//! profile of each input ([`check`]), the frames the metrics read as of the as-of date
//! ([`prepare`]), and the response-time follow-ups of large runs computed apart, through
//! temporary Parquet files ([`spill`]).
//!
//! Nothing here writes to the output location; the reports it returns are what the manifest
//! and `validate` print.

pub mod prepare;
pub mod scan;
pub mod spill;
pub mod text;

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Result;
use chrono::NaiveDate;
use polars::prelude::*;
use serde::Serialize;
use tracing::{debug, warn};

use crate::columns::{CREATED_AT, LIST_AMOUNT, REP_ID, ROLE, TEAM_ID, TEAM_NAME, Table};
use crate::config::plan::{InputSource, RunPlan, Window};
use crate::error::Error;
use crate::exec::Batch;
use crate::metrics::selling_time::MAX_REPS;
use prepare::{Accepted, Prepared};
use scan::{Input, Parsed, Zones, read_error, scan_input};

/// Rows read, accepted and rejected for one input table.
#[derive(Debug, Clone, Serialize)]
pub struct InputReport {
    pub table: String,
    pub uri: String,
    pub rows_read: u64,
    pub rows_accepted: u64,
    pub rows_rejected: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
    pub max_reject_fraction: f64,
}

impl InputReport {
    fn over_limit(&self) -> bool {
        self.rows_read > 0
            && (self.rows_rejected as f64 / self.rows_read as f64) > self.max_reject_fraction
    }
}

/// Scanned inputs plus what the metrics take from them.
pub struct Loaded {
    pub inputs: Vec<Input>,
    pub accepted: Accepted,
}

/// Scans every configured input and attaches reject reasons (lazy: only schemas, the accepted
/// rep ids and each key column, for duplicate keys, are read).
pub fn load(plan: &RunPlan) -> Result<Loaded> {
    let zones = Zones {
        source: plan.source_tz,
        reporting: plan.reporting_tz,
    };
    let reps_src = plan
        .inputs
        .get(&Table::Reps)
        .ok_or_else(|| Error::config("the reps input is required"))?;
    let has_memberships = plan.inputs.contains_key(&Table::TeamMemberships);
    let require: &[&str] = if has_memberships { &[] } else { &[TEAM_ID] };
    let reps = scan_input(reps_src, zones, None, require)?;
    // The accepted rep ids are a small dimension: collect them once for every unknown_rep check.
    let known = reps
        .accepted()
        .select([col(REP_ID)])
        .collect()
        .map_err(|e| read_error(reps.table.name(), &reps.uri, e))?
        .column(REP_ID)?
        .as_materialized_series()
        .clone();
    if known.len() as u64 > MAX_REPS {
        return Err(Error::config(format!(
            "reps: {} accepted reps in {}; a run numbers at most {MAX_REPS} (split the reps into several pipelines)",
            known.len(),
            reps.uri,
        ))
        .into());
    }
    let mut accepted = Accepted {
        reps_have_team: reps.canonical.contains(&TEAM_ID),
        reps_have_role: reps.canonical.contains(&ROLE),
        reps: Some(reps.accepted()),
        ..Accepted::default()
    };
    let mut inputs = vec![reps];
    for (table, src) in &plan.inputs {
        if *table == Table::Reps {
            continue;
        }
        let input = scan_input(src, zones, Some(&known), &[])?;
        let lf = Some(input.accepted());
        match table {
            Table::Teams => {
                accepted.teams_have_name = input.canonical.contains(&TEAM_NAME);
                accepted.teams = lf;
            }
            Table::TeamMemberships => {
                // Collected here, a few rows per rep: the activities' path reads them
                // (`selling_time::with_coarse`), and inside the inputs stage's execution polars
                // made the activities wait for them, holding the waiting rows (at 50 M
                // activities, twice the run's peak memory).
                let m = lf
                    .map(LazyFrame::collect)
                    .transpose()
                    .map_err(|e| read_error(input.table.name(), &input.uri, e))?;
                accepted.memberships = m.map(DataFrame::lazy);
            }
            Table::Quotas => accepted.quotas = lf,
            Table::Deals => {
                accepted.deals_have_list_amount = input.canonical.contains(&LIST_AMOUNT);
                accepted.deals = lf;
            }
            Table::DealHistory => accepted.deal_history = lf,
            Table::Leads => accepted.leads = lf,
            Table::Activities => accepted.activities = lf,
            Table::Reps => {}
        }
        inputs.push(input);
    }
    Ok(Loaded { inputs, accepted })
}

/// Profiles every input in one pass each: rows per reject reason, and parse failures per
/// column. A column where most values do not parse is a configuration problem (a wrong
/// `date_format`, a day-first export read month-first), not bad rows: that fails with exit 2
/// and says which setting to change, instead of rejecting every row.
pub fn check(plan: &RunPlan, loaded: &Loaded) -> Result<Vec<InputReport>> {
    let mut reports = Vec::new();
    for input in &loaded.inputs {
        let df = input
            .profile()
            .collect_with_engine(Engine::Streaming)
            .map(|r| r.unwrap_single())
            .map_err(|e| read_error(input.table.name(), &input.uri, e))?;
        reports.push(report(plan, input, &df)?);
    }
    Ok(reports)
}

/// One input's report from its profile (see [`Input::profile`]).
fn report(plan: &RunPlan, input: &Input, df: &DataFrame) -> Result<InputReport> {
    let src = &plan.inputs[&input.table];
    let int = |name: &str| -> Result<u64> {
        Ok(df.column(name)?.i64()?.get(0).unwrap_or(0).max(0) as u64)
    };
    for p in &input.parsed {
        let failed = int(&format!("__failed_{}", p.canonical))?;
        let nonnull = int(&format!("__nonnull_{}", p.canonical))?;
        if failed >= 2 && failed * 2 > nonnull {
            let sample = df
                .column(&format!("__sample_{}", p.canonical))?
                .str()?
                .get(0)
                .unwrap_or_default()
                .to_string();
            return Err(parse_error(input, src, p, failed, nonnull, &sample).into());
        }
    }
    let mut report = InputReport {
        table: input.table.name().into(),
        uri: input.uri.clone(),
        rows_read: int("__rows")?,
        rows_accepted: 0,
        rows_rejected: 0,
        rejected_by_reason: BTreeMap::new(),
        max_reject_fraction: src.max_reject_fraction,
    };
    for r in scan::REASONS {
        let n = int(&format!("__reason_{r}"))?;
        if n > 0 {
            report.rows_rejected += n;
            report.rejected_by_reason.insert(r.to_string(), n);
        }
    }
    report.rows_accepted = report.rows_read - report.rows_rejected;
    if report.rows_rejected > 0 {
        warn!(table = %report.table, rejected = report.rows_rejected, reasons = ?report.rejected_by_reason, "rows rejected");
    }
    Ok(report)
}

fn parse_error(
    input: &Input,
    src: &InputSource,
    p: &Parsed,
    failed: u64,
    nonnull: u64,
    sample: &str,
) -> Error {
    use crate::columns::Kind;
    let table = input.table;
    let (what, fix) = match p.kind {
        Kind::Date => (
            "a date",
            format!(
                "set [inputs.{table}.csv] date_format (chrono syntax, e.g. \"%d/%m/%Y\"; now {})",
                src.csv
                    .date_format
                    .as_deref()
                    .map(|f| format!("`{f}`"))
                    .unwrap_or_else(|| "ISO 8601".into())
            ),
        ),
        Kind::Timestamp => (
            "a timestamp",
            format!(
                "set [inputs.{table}.csv] timestamp_format or date_format (chrono syntax, e.g. \"%d/%m/%Y %H:%M\"; now {})",
                src.csv
                    .timestamp_format
                    .as_deref()
                    .map(|f| format!("`{f}`"))
                    .unwrap_or_else(|| "ISO 8601".into())
            ),
        ),
        _ => (
            "a number",
            "remove currency symbols and thousands separators from the export".to_string(),
        ),
    };
    Error::config(format!(
        "{table}: {failed} of {nonnull} values of `{}` (source column `{}`) in {} do not parse as {what}, e.g. `{sample}`; {fix}",
        p.canonical, p.source, input.uri
    ))
}

/// The first input over its reject limit, as the error the run fails with.
pub fn reject_limit_error(reports: &[InputReport]) -> Option<Error> {
    reports
        .iter()
        .find(|r| r.over_limit())
        .map(|r| Error::TooManyRejects {
            table: r.table.clone(),
            rejected: r.rows_rejected,
            read: r.rows_read,
            pct: 100.0 * r.rows_rejected as f64 / r.rows_read as f64,
            max: r.max_reject_fraction,
            reasons: r
                .rejected_by_reason
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The inputs stage's results.
pub struct ReadInputs {
    /// Rows read, accepted and rejected per input, in [`Loaded::inputs`] order.
    pub reports: Vec<InputReport>,
    /// The metric inputs, collected.
    pub prepared: Prepared,
    /// The earliest event date, with the automatic window.
    pub earliest: Option<NaiveDate>,
}

/// The inputs stage, one execution: every input is read, parsed and checked once, giving its
/// profile (rows, rejects, parse failures) and the prepared metric inputs. Those are collected
/// on purpose: every table of every grain reads them, and polars does not reliably share a
/// sub-plan across that many consumers (the checks ran once per consumer). With many
/// activities the follow-ups are computed apart afterwards ([`spill::StagedRequests`]).
pub fn read(plan: &RunPlan, loaded: &Loaded, mut prepared: Prepared) -> Result<ReadInputs> {
    let staged = match prepared.metrics.requests {
        Some(_) => spill::follow_up_parts(plan, loaded)?,
        None => None,
    };
    let staged = match staged {
        Some(parts) => prepared
            .take_request_sources()
            .map(|src| spill::StagedRequests::new(src, parts))
            .transpose()?,
        None => None,
    };
    let mut batch = Batch::default();
    let profiles = batch.add(loaded.inputs.iter().map(Input::profile));
    let frames = batch.add(prepared.input_plans());
    // The automatic window's earliest date, from the same checked rows.
    let window = match plan.window {
        Window::Auto => earliest_plan(loaded, plan, true)?,
        _ => None,
    };
    let earliest = batch.add(window);
    let staged_plans = batch.add(staged.iter().flat_map(|s| s.plans.iter().cloned()));
    let t = Instant::now();
    let mut results = match batch.collect(Engine::Streaming) {
        Ok(r) => r,
        Err(e) => return Err(read_failure(plan, loaded, e)),
    };
    debug!(
        ms = t.elapsed().as_millis() as u64,
        "inputs read and checked"
    );
    let earliest = match results.take(earliest).first() {
        Some(df) => date_of(df)?,
        None => None,
    };
    prepared.materialize(results.take(frames))?;
    if let Some(s) = staged {
        let requests = s
            .finish(results.take(staged_plans), &prepared)
            .map_err(|e| {
                anyhow::Error::from(e).context("computing the response-time follow-ups")
            })?;
        prepared.set_requests(requests);
    }
    let reports = loaded
        .inputs
        .iter()
        .zip(&results.take(profiles))
        .map(|(input, df)| report(plan, input, df))
        .collect::<Result<_>>()?;
    Ok(ReadInputs {
        reports,
        prepared,
        earliest,
    })
}

/// `--dry-run`'s window: the earliest event date from one cheap read of the date columns.
pub fn earliest_date(plan: &RunPlan, loaded: &Loaded) -> Result<Option<NaiveDate>> {
    let Some(lf) = earliest_plan(loaded, plan, false)? else {
        return Ok(None);
    };
    match lf.collect() {
        Ok(df) => date_of(&df),
        Err(e) => Err(read_failure(plan, loaded, e)),
    }
}

/// The error of an execution over several inputs that failed: the inputs are checked one by
/// one first, so a file polars cannot read is named (exit 2); otherwise `e` itself.
fn read_failure(plan: &RunPlan, loaded: &Loaded, e: PolarsError) -> anyhow::Error {
    match check(plan, loaded) {
        Err(named) => named,
        Ok(_) => anyhow::Error::from(e).context("reading the inputs"),
    }
}

/// The earliest event date in the date columns the metrics use, as a one-row plan (`d`); the
/// automatic window starts at the period holding it. `shared`: read from the checked rows that
/// the inputs stage computes anyway (free inside that execution); otherwise from the typed
/// columns alone, a read of a few columns (for `--dry-run`).
fn earliest_plan(loaded: &Loaded, plan: &RunPlan, shared: bool) -> Result<Option<LazyFrame>> {
    let wanted = [
        (Table::Deals, CREATED_AT),
        (Table::Deals, "closed_at"),
        (Table::Quotas, "period_start"),
        (Table::Leads, CREATED_AT),
        (Table::Activities, "started_at"),
    ];
    let parts: Vec<LazyFrame> = wanted
        .iter()
        .filter_map(|(t, c)| {
            loaded
                .inputs
                .iter()
                .find(|i| i.table == *t)?
                .typed_min(c, plan.reporting_tz, shared)
        })
        .collect();
    if parts.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        concat(parts, UnionArgs::default())?.select([col("d").min()]),
    ))
}

fn date_of(df: &DataFrame) -> Result<Option<NaiveDate>> {
    let days = df.column("d")?.cast(&DataType::Int32)?.i32()?.get(0);
    Ok(days.map(|d| {
        NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
            + chrono::TimeDelta::days(i64::from(d))
    }))
}
