//! One run, stage by stage: scan and check inputs, count rejects, compute every
//! (metric, grain) table, then publish partitions, rejects and, last, the run manifest.
//!
//! Nothing is published until every table has been computed and every input passed its
//! reject limit, so a failing run leaves the previous outputs as they were.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use polars::prelude::*;
use serde::Serialize;
use tracing::{debug, info, info_span, warn};

use crate::calendar::{Grain, Period};
use crate::columns::{CREATED_AT, LIST_AMOUNT, REP_ID, ROLE, TEAM_ID, TEAM_NAME, Table};
use crate::config::plan::{FOLLOW_UP_PART_ROWS, Format, Origin, RunPlan};
use crate::error::Error;
use crate::io::scan::{Input, Zones, read_error, scan_input};
use crate::io::sink::{self, Partition};
use crate::metrics::selling_time::MAX_REPS;
use crate::metrics::{
    Accepted, MetricId, Prepared, RequestSources, collect_all, lead_response_time,
};

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

#[derive(Debug, Clone, Serialize)]
pub struct PartitionReport {
    pub table: String,
    pub grain: String,
    pub period: String,
    pub path: String,
    pub rows: usize,
}

/// The run manifest (`_runs/<run_id>.json`) and, on one line, the stdout summary.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub status: String,
    pub program_version: String,
    pub pipeline: String,
    pub pipeline_path: String,
    pub pipeline_sha256: String,
    pub as_of: NaiveDate,
    pub started_at: DateTime<Utc>,
    pub output: String,
    pub grains: Vec<String>,
    pub periods: BTreeMap<String, Vec<String>>,
    pub metrics: Vec<String>,
    pub inputs: Vec<InputReport>,
    pub partitions: Vec<PartitionReport>,
    pub rows_written: usize,
    pub timings_ms: BTreeMap<String, u128>,
    pub manifest: Option<String>,
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
                // made the activities wait for them, holding the waiting rows (50 M activities:
                // the run's peak 3.3 -> 7.3 GiB).
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

/// One input's report from its profile (see [`crate::io::scan::Input::profile`]).
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
    for r in crate::io::scan::REASONS {
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
    src: &crate::config::plan::InputSource,
    p: &crate::io::scan::Parsed,
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

/// Each grain's periods for the window (from `earliest` with the automatic window), also
/// recorded in the summary.
fn window_periods(
    plan: &RunPlan,
    earliest: Option<NaiveDate>,
    summary: &mut RunSummary,
) -> Vec<(Grain, Vec<Period>)> {
    let periods: Vec<(Grain, Vec<Period>)> = plan
        .grains
        .iter()
        .map(|g| (*g, plan.periods(*g, earliest)))
        .collect();
    for (g, ps) in &periods {
        summary.periods.insert(
            g.name().into(),
            ps.iter().map(|p| p.label.clone()).collect(),
        );
    }
    periods
}

/// Runs the whole job: compute, then publish. With `plan.dry_run`, stops after planning.
pub fn run(plan: &RunPlan, run_id: &str, started_at: DateTime<Utc>) -> Result<RunSummary> {
    let span = info_span!("run", run_id, pipeline = %plan.pipeline_name, as_of = %plan.as_of);
    let _guard = span.enter();
    let mut timings = BTreeMap::new();
    let mut summary = RunSummary {
        run_id: run_id.to_string(),
        status: "planned".into(),
        program_version: env!("CARGO_PKG_VERSION").into(),
        pipeline: plan.pipeline_name.clone(),
        pipeline_path: plan.pipeline_path.display().to_string(),
        pipeline_sha256: plan.pipeline_sha256.clone(),
        as_of: plan.as_of,
        started_at,
        output: plan.output.display(),
        grains: plan.grains.iter().map(|g| g.name().to_string()).collect(),
        periods: BTreeMap::new(),
        metrics: plan.metrics.iter().map(|m| m.name().to_string()).collect(),
        inputs: vec![],
        partitions: vec![],
        rows_written: 0,
        timings_ms: BTreeMap::new(),
        manifest: None,
    };

    let t = Instant::now();
    if !plan.dry_run {
        plan.output.preflight()?;
    }
    let loaded = load(plan)?;
    let prepared = Prepared::new(
        &loaded.accepted,
        plan.as_of,
        plan.reporting_tz,
        plan.calendar,
        &plan.grains,
        plan.settings.clone(),
    )?;
    let auto_window = matches!(plan.window, crate::config::plan::Window::Auto);
    if plan.dry_run {
        // The window alone: one cheap read of the date columns.
        let earliest = match earliest_plan(&loaded, plan, false)? {
            Some(lf) if auto_window => match lf.collect() {
                Ok(df) => date_of(&df)?,
                Err(e) => {
                    // Input by input, to name the file that polars could not read (exit 2).
                    check(plan, &loaded)?;
                    return Err(anyhow::Error::from(e).context("reading the inputs"));
                }
            },
            _ => None,
        };
        let periods = window_periods(plan, earliest, &mut summary);
        timings.insert("plan".to_string(), t.elapsed().as_millis());
        for m in &plan.metrics {
            for (g, ps) in &periods {
                for p in ps {
                    summary.partitions.push(PartitionReport {
                        table: m.name().into(),
                        grain: g.name().into(),
                        period: p.label.clone(),
                        path: plan
                            .output
                            .join(&sink::partition_path(m.name(), *g, &p.label))
                            .display(),
                        rows: 0,
                    });
                }
            }
        }
        summary.timings_ms = timings;
        return Ok(summary);
    }
    timings.insert("plan".to_string(), t.elapsed().as_millis());

    let mut outputs: Vec<Partition> = Vec::new();
    // Stage 1, one execution: every input is read, parsed and checked once, giving its profile
    // (rows, rejects, parse failures) and the prepared metric inputs. Those are collected on
    // purpose: every table of every grain reads them, and polars does not reliably share a
    // sub-plan across that many consumers (measured: the checks ran once per consumer).
    let t = Instant::now();
    let mut prepared = prepared;
    prepared.retain_for(&plan.metrics);
    // Many activities: the follow-ups apart, one part of the deals at a time (StagedRequests).
    let parts = match prepared.requests {
        Some(_) => follow_up_parts(plan, &loaded)?,
        None => None,
    };
    let staged = match parts {
        Some(parts) => prepared
            .take_request_sources()
            .map(|src| StagedRequests::new(src, parts))
            .transpose()?,
        None => None,
    };
    let n_inputs = loaded.inputs.len();
    let mut stage1: Vec<LazyFrame> = loaded.inputs.iter().map(Input::profile).collect();
    stage1.extend(prepared.input_plans());
    // The automatic window's earliest date, from the same checked rows.
    let window = match auto_window {
        true => earliest_plan(&loaded, plan, true)?,
        false => None,
    };
    stage1.extend(window.iter().cloned());
    let n_staged = staged.as_ref().map_or(0, |s| s.plans.len());
    if let Some(s) = &staged {
        stage1.extend(s.plans.iter().cloned());
    }
    let names: Vec<String> = loaded
        .inputs
        .iter()
        .map(|i| format!("profile/{}", i.table))
        .chain((0..stage1.len() - n_inputs).map(|i| format!("prepared/{i}")))
        .collect();
    let collected = match plan.per_table_timings {
        true => profile_each(names, stage1, &mut timings),
        // The streaming engine reads the inputs in batches: at 5 M activities this stage took
        // 5.7 s and the run peaked at 2.0 GB, against 7.4 s and 2.7 GB in memory (measured
        // again in the third session: in memory still 1-2 s slower, 2.0 GiB against 1.1).
        false => collect_all(stage1, Engine::Streaming).map_err(anyhow::Error::from),
    };
    let mut results = match collected {
        Ok(dfs) => dfs,
        Err(e) => {
            // Input by input, to name a file that polars could not read (exit 2).
            check(plan, &loaded)?;
            return Err(e.context("reading the inputs"));
        }
    };
    debug!(
        ms = t.elapsed().as_millis() as u64,
        "inputs read and checked"
    );
    let staged_results = results.split_off(results.len() - n_staged);
    let earliest = match window {
        Some(_) => results.pop().map(|df| date_of(&df)).transpose()?.flatten(),
        None => None,
    };
    prepared.materialize(results.split_off(n_inputs));
    let redone = prepared
        .redo_requests_if_hashes_shared()
        .map_err(|e| anyhow::Error::from(e).context("computing the response-time follow-ups"))?;
    if redone {
        info!("two deal ids share a hash: the follow-ups were sorted again, by the id too");
    }
    if let Some(s) = staged {
        let requests = s.finish(staged_results, &prepared).map_err(|e| {
            anyhow::Error::from(e).context("computing the response-time follow-ups")
        })?;
        prepared.set_requests(requests);
    }
    timings.insert("inputs".to_string(), t.elapsed().as_millis());
    let periods = window_periods(plan, earliest, &mut summary);

    summary.inputs = loaded
        .inputs
        .iter()
        .zip(&results)
        .map(|(input, df)| report(plan, input, df))
        .collect::<Result<_>>()?;
    if reject_limit_error(&summary.inputs).is_none() {
        // Already in memory: the inputs stage collected it (only when selling_time runs).
        if let Some(lf) = &prepared.unclassified {
            warn_unclassified(&lf.clone().collect()?)?;
        }
        let computed = compute_tables(plan, &prepared, &periods, &mut timings)?;
        // Partitions in the pipeline's metric order, then grain.
        let mut tables = Vec::new();
        for m in &plan.metrics {
            for (g, _) in &periods {
                if let Some((_, _, df)) = computed.iter().find(|(cg, cm, _)| cg == g && cm == m) {
                    tables.push((m.name(), *g, df));
                }
            }
        }
        let t = Instant::now();
        outputs = sink::partitions(&tables)?;
        timings.insert("encode".to_string(), t.elapsed().as_millis());
        for (table, g, df) in &tables {
            let parts = outputs
                .iter()
                .filter(|p| p.table == *table && p.grain == *g)
                .count();
            info!(
                metric = table,
                grain = g.name(),
                rows = df.height(),
                partitions = parts,
                "table"
            );
        }
    }

    // Rejects are written even when the run fails on them: they say what to fix.
    let t = Instant::now();
    write_rejects(plan, &loaded, &summary.inputs, run_id)?;
    if reject_limit_error(&summary.inputs).is_some() {
        // The caller reports the failure (exit 3) after printing this summary.
        summary.status = "failed_rejects".into();
        summary.timings_ms = timings;
        write_manifest(plan, &mut summary)?;
        return Ok(summary);
    }

    sink::publish(&plan.output, &outputs, run_id)?;
    for p in &outputs {
        summary.rows_written += p.rows;
        summary.partitions.push(PartitionReport {
            table: p.table.clone(),
            grain: p.grain.name().into(),
            period: p.period.clone(),
            path: plan.output.join(&p.rel_path()).display(),
            rows: p.rows,
        });
    }
    timings.insert("publish".to_string(), t.elapsed().as_millis());
    info!(partitions = summary.partitions.len(), rows = summary.rows_written, output = %summary.output, "published");
    summary.status = "succeeded".into();
    summary.timings_ms = timings;
    write_manifest(plan, &mut summary)?;
    Ok(summary)
}

/// Stage 2 of a run, one execution: every table of every grain from the prepared inputs in
/// memory, then each grain's scorecard from those tables.
fn compute_tables(
    plan: &RunPlan,
    prepared: &Prepared,
    periods: &[(Grain, Vec<Period>)],
    timings: &mut BTreeMap<String, u128>,
) -> Result<Vec<(Grain, MetricId, DataFrame)>> {
    // Stage 2, one execution: every table of every grain, from the prepared inputs in memory.
    // Nothing is published unless the profiles then pass.
    let t = Instant::now();
    let mut keys = Vec::new();
    let mut plans: Vec<LazyFrame> = Vec::new();
    for (g, ps) in periods {
        for m in plan
            .metrics
            .iter()
            .filter(|m| **m != MetricId::RepScorecard)
        {
            let lf = prepared.table(*m, ps)?;
            debug!(metric = m.name(), grain = g.name(), plan = %lf.explain(true).unwrap_or_default(), "optimized plan");
            keys.push((*g, *m));
            plans.push(lf);
        }
    }
    let names: Vec<String> = keys
        .iter()
        .map(|(g, m)| format!("{}/{}", m.name(), g.name()))
        .collect();
    let tables = match plan.per_table_timings {
        true => profile_each(names, plans, timings)?,
        // Streaming here too (fourth session). Large (50 M activities): tables 46.6 s ->
        // 30.8 s, the stage's peak ~5.6 -> ~5.2 GiB; medium about -0.2 s. (polars has no
        // streaming median or quantile, so those group-bys still run in memory inside this
        // execution.) Outputs were byte-identical for all 192 partitions of both sizes, and the
        // digest test (256-row batches) passes: rows reach the aggregations in varying order on
        // either engine, since the inputs stage streams, so every sum is over integers or
        // rounded to the cent.
        false => collect_all(plans, Engine::Streaming)
            .map_err(anyhow::Error::from)
            .context("computing the metric tables")?,
    };
    timings.insert("compute".to_string(), t.elapsed().as_millis());
    info!(
        tables = tables.len(),
        ms = t.elapsed().as_millis() as u64,
        "computed"
    );
    let mut computed: Vec<(Grain, MetricId, DataFrame)> = keys
        .into_iter()
        .zip(tables)
        .map(|((g, m), df)| (g, m, df))
        .collect();
    if plan.metrics.contains(&MetricId::RepScorecard) {
        let t = Instant::now();
        let mut scorecards = Vec::new();
        for (g, ps) in periods {
            let done: Vec<(MetricId, DataFrame)> = computed
                .iter()
                .filter(|(cg, _, _)| cg == g)
                .map(|(_, m, df)| (*m, df.clone()))
                .collect();
            scorecards.push(prepared.scorecard(ps, &done)?);
        }
        // Every grain's scorecard in one streaming execution (large: 1.2-1.3 s one grain at a
        // time in memory).
        let scorecards = collect_all(scorecards, Engine::Streaming)
            .map_err(anyhow::Error::from)
            .context("computing the scorecards")?;
        for ((g, _), df) in periods.iter().zip(scorecards) {
            computed.push((*g, MetricId::RepScorecard, df));
        }
        timings.insert("scorecard".to_string(), t.elapsed().as_millis());
    }
    Ok(computed)
}

/// How many parts the follow-ups are computed in apart from the inputs stage
/// ([`StagedRequests`]), when the activities need more than one part of
/// [`RunPlan::follow_up_part_rows`] rows.
fn follow_up_parts(plan: &RunPlan, loaded: &Loaded) -> Result<Option<u64>> {
    let Some(acts) = loaded.inputs.iter().find(|i| i.table == Table::Activities) else {
        return Ok(None);
    };
    // Parquet files say how many rows they hold; CSV files and queries must be read to count
    // (1 s for 5 M activities in CSV), so those are counted only when a part size is given.
    let parquet = matches!(
        plan.inputs.get(&Table::Activities).map(|s| &s.origin),
        Some(Origin::File(f)) if f.format == Format::Parquet
    );
    let part_rows = match (plan.follow_up_part_rows, parquet) {
        (Some(n), _) => n,
        (None, true) => FOLLOW_UP_PART_ROWS,
        (None, false) => return Ok(None),
    };
    let rows = acts
        .rows()
        .map_err(|e| read_error(acts.table.name(), &acts.uri, e))?;
    let parts = rows.div_ceil(part_rows.max(1));
    if parts > 1 {
        info!(
            activities = rows,
            parts, "response-time follow-ups computed apart, a part of the deals at a time"
        );
    }
    Ok((parts > 1).then_some(parts))
}

/// The response-time requests of a run with many activities.
///
/// Inside the inputs stage, the follow-ups hold every inbound and outbound activity of a deal
/// before they can be sorted (~1.8 GB at 50 M activities), and with the first touches beside
/// them that stage peaked at 6.6-6.9 GiB. Here the inputs stage only writes those rows, one
/// Parquet file per part of the deals (split by the deal id's hash) in a temporary directory
/// (`TMPDIR`; removed when done), and the outbound activities on a lead to one more file,
/// and collects the deal owners (with the hash that splits them likewise, so each part meets
/// only its own deals' owners). Then each part's follow-ups are computed on their own, so
/// only one part's rows are held, and the first touches in an execution of their own from that
/// file and the leads (beside the files being written they raised the inputs stage's peak to
/// 7.0 GiB). At 50 M activities the run's peak fell to 3.7 GiB, for 6-16 s more; reading the
/// touches from their file instead of reading and checking the activities again took the
/// first touches from 6.2 s to 2.9 s.
struct StagedRequests {
    src: RequestSources,
    parts: u64,
    dir: tempfile::TempDir,
    /// For the inputs stage: the deal owners (with a deals input), then one file sink per part
    /// and one for the touches.
    plans: Vec<LazyFrame>,
}

impl StagedRequests {
    fn new(src: RequestSources, parts: u64) -> Result<StagedRequests> {
        let dir = tempfile::Builder::new()
            .prefix("sales-metrics-")
            .tempdir()
            .context("creating a temporary directory for the follow-ups (set TMPDIR)")?;
        let mut plans: Vec<LazyFrame> = src
            .owners
            .iter()
            .map(|o| lead_response_time::owners_to_split(o.clone()))
            .collect();
        for k in 0..parts {
            plans.push(staged(src.follow_up_rows(k, parts), &part_path(&dir, k))?);
        }
        plans.push(staged(src.touches(), &touches_path(&dir))?);
        Ok(StagedRequests {
            src,
            parts,
            dir,
            plans,
        })
    }

    /// The requests, from the results of `plans` (in their order).
    fn finish(self, results: Vec<DataFrame>, prepared: &Prepared) -> PolarsResult<DataFrame> {
        let mut results = results.into_iter().map(DataFrame::lazy);
        let missing = || polars_err!(ComputeError: "a staged response-time frame is missing");
        let owners = match self.src.owners {
            Some(_) => Some(results.next().ok_or_else(missing)?),
            None => None,
        };
        let follow = (0..self.parts)
            .map(|k| {
                let t = Instant::now();
                let rows = read_staged(&part_path(&self.dir, k))?;
                let owners = owners
                    .clone()
                    .map(|o| lead_response_time::owners_of_part(o, k, self.parts));
                let part = lead_response_time::collect_follow_ups(rows, owners)?;
                debug!(
                    part = k,
                    rows = part.height(),
                    ms = t.elapsed().as_millis() as u64,
                    "follow-ups of a part"
                );
                Ok(part.lazy())
            })
            .collect::<PolarsResult<Vec<_>>>()?;
        let follow = concat(follow, UnionArgs::default())?;
        let t = Instant::now();
        let touches = read_staged(&touches_path(&self.dir))?;
        let first = self
            .src
            .first_touches_of(touches)
            .collect_with_engine(Engine::Streaming)?
            .unwrap_single();
        debug!(
            rows = first.height(),
            ms = t.elapsed().as_millis() as u64,
            "first touches"
        );
        let t = Instant::now();
        let requests = self
            .src
            .assemble(first.lazy(), follow, prepared.dims.segments.clone())?
            .collect_with_engine(Engine::Streaming)?
            .unwrap_single();
        debug!(
            rows = requests.height(),
            ms = t.elapsed().as_millis() as u64,
            "requests assembled"
        );
        Ok(requests)
    }
}

/// Rows per row group of the staged follow-up files.
const FOLLOW_UP_ROW_GROUP: usize = 256 * 1024;

fn part_path(dir: &tempfile::TempDir, k: u64) -> String {
    temp_path(dir, &format!("follow_ups_{k}.parquet"))
}

/// Where [`StagedRequests`] writes the outbound activities on a lead, and reads them back.
fn touches_path(dir: &tempfile::TempDir) -> String {
    temp_path(dir, "touches.parquet")
}

fn temp_path(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path().join(name).to_string_lossy().into_owned()
}

/// A file written by [`staged`], read back.
fn read_staged(path: &str) -> PolarsResult<LazyFrame> {
    LazyFrame::scan_parquet(PlRefPath::new(path), Default::default())
}

/// `rows` written to a Parquet file at `path` as they come, for [`StagedRequests::finish`].
fn staged(rows: LazyFrame, path: &str) -> PolarsResult<LazyFrame> {
    let options = ParquetWriteOptions {
        // Written once and read once, soon: fast compression.
        compression: ParquetCompression::Lz4Raw,
        // Written as it comes (polars' default is one row group: the whole file held).
        row_group_size: Some(FOLLOW_UP_ROW_GROUP),
        ..Default::default()
    };
    rows.sink(
        SinkDestination::File {
            target: SinkTarget::Path(PlRefPath::new(path)),
        },
        FileWriteFormat::Parquet(Arc::new(options)),
        // Sorted or grouped when read back: their order in the file does not matter.
        UnifiedSinkArgs {
            maintain_order: false,
            ..Default::default()
        },
    )
}

/// `--per-table-timings`: collects each plan on its own with polars' profiler and logs its
/// five slowest nodes (slower than one shared execution; for finding where time goes).
fn profile_each(
    names: Vec<String>,
    plans: Vec<LazyFrame>,
    timings: &mut BTreeMap<String, u128>,
) -> Result<Vec<DataFrame>> {
    let mut out = Vec::new();
    for (name, lf) in names.into_iter().zip(plans) {
        let t = Instant::now();
        let (df, profile) = lf
            .profile()
            .map_err(anyhow::Error::from)
            .with_context(|| format!("computing {name}"))?;
        let slowest = profile
            .lazy()
            .with_column((col("end") - col("start")).alias("us"))
            .sort(
                ["us"],
                SortMultipleOptions::default().with_order_descending(true),
            )
            .limit(5)
            .collect()?;
        info!(table = %name, ms = t.elapsed().as_millis() as u64, slowest = %slowest, "table profile");
        timings.insert(name, t.elapsed().as_millis());
        out.push(df);
    }
    Ok(out)
}

/// One warning per activity type that no selling-time list names (SPEC §6.5); `df` holds
/// the distinct unmapped `activity_type` values.
fn warn_unclassified(df: &DataFrame) -> Result<()> {
    for t in df
        .column(crate::columns::ACTIVITY_TYPE)?
        .str()?
        .iter()
        .flatten()
    {
        warn!(
            activity_type = t,
            "activity type is in no selling or non_selling list; counted as unclassified"
        );
    }
    Ok(())
}

fn write_manifest(plan: &RunPlan, summary: &mut RunSummary) -> Result<()> {
    let rel = format!("_runs/{}.json", summary.run_id);
    summary.manifest = Some(plan.output.join(&rel).display());
    let json = serde_json::to_vec_pretty(summary)?;
    plan.output.put_atomic(&rel, &json, &summary.run_id)?;
    Ok(())
}

/// `validate`: scan and check every input, write nothing.
/// Writes `_rejects/<table>/run=<run_id>/part-0.parquet` for every input with rejected rows.
fn write_rejects(
    plan: &RunPlan,
    loaded: &Loaded,
    reports: &[InputReport],
    run_id: &str,
) -> Result<()> {
    for input in &loaded.inputs {
        let report = reports.iter().find(|r| r.table == input.table.name());
        if report.is_some_and(|r| r.rows_rejected > 0) {
            let mut df = input.rejected()?.collect()?;
            let bytes = sink::parquet_bytes(&mut df)?;
            let rel = format!("_rejects/{}/run={run_id}/part-0.parquet", input.table);
            plan.output.put_atomic(&rel, &bytes, run_id)?;
        }
    }
    Ok(())
}

/// `validate`: scan and check every input; write nothing, or only the rejects when
/// `rejects_run_id` is given.
pub fn validate(plan: &RunPlan, rejects_run_id: Option<&str>) -> Result<Vec<InputReport>> {
    let loaded = load(plan)?;
    // Build the metric inputs too, so schema problems they would hit show up here.
    Prepared::new(
        &loaded.accepted,
        plan.as_of,
        plan.reporting_tz,
        plan.calendar,
        &plan.grains,
        plan.settings.clone(),
    )?;
    let reports = check(plan, &loaded)?;
    if let Some(run_id) = rejects_run_id {
        write_rejects(plan, &loaded, &reports, run_id)?;
    }
    Ok(reports)
}

/// Rows and time of a bare read of one input.
#[derive(Debug, Serialize)]
pub struct ScanReport {
    pub table: String,
    pub rows: u64,
    pub ms: u128,
}

/// Benchmark baseline: reads every column the job maps from every input (a `null_count` per
/// column, so nothing is skipped by projection pushdown) and does nothing else.
pub fn bare_scan(plan: &RunPlan) -> Result<Vec<ScanReport>> {
    let mut out = Vec::new();
    for (table, src) in &plan.inputs {
        let t = Instant::now();
        let lf = crate::io::scan::scan_source_columns(src)?;
        let df = lf.collect()?;
        let rows = df
            .column("__rows")?
            .cast(&DataType::UInt64)?
            .u64()?
            .get(0)
            .unwrap_or(0);
        out.push(ScanReport {
            table: table.name().into(),
            rows,
            ms: t.elapsed().as_millis(),
        });
    }
    Ok(out)
}
