//! One run, stage by stage: read and check the inputs, compute every (metric, grain) table,
//! then publish partitions, rejects and, last, the run manifest.
//!
//! Nothing is published until every table has been computed and every input passed its
//! reject limit, so a failing run leaves the previous outputs as they were.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use polars::prelude::*;
use tracing::{debug, info, info_span};

use crate::calendar::{Grain, Period};
use crate::config::plan::{RunPlan, Window};
use crate::exec::collect_all;
use crate::inputs::prepare::Prepared;
use crate::inputs::{self, InputReport, Loaded, reject_limit_error};
use crate::metrics::{MetricId, MetricInputs};
use crate::output::partitions::{self, Partition};
use crate::output::{self, PartitionReport, RunSummary};

/// Runs the whole job: compute, then publish. With `plan.dry_run`, stops after planning.
pub fn run(plan: &RunPlan, run_id: &str, started_at: DateTime<Utc>) -> Result<RunSummary> {
    let span = info_span!("run", run_id, pipeline = %plan.pipeline_name, as_of = %plan.as_of);
    let _guard = span.enter();
    let mut summary = RunSummary::new(plan, run_id, started_at);
    let mut timings = BTreeMap::new();

    let t = Instant::now();
    if !plan.dry_run {
        plan.output.preflight()?;
    }
    let loaded = inputs::load(plan)?;
    let prepared = prepare(plan, &loaded)?;
    if plan.dry_run {
        let earliest = match plan.window {
            Window::Auto => inputs::earliest_date(plan, &loaded)?,
            _ => None,
        };
        let periods = window_periods(plan, earliest, &mut summary);
        timings.insert("plan".to_string(), t.elapsed().as_millis());
        summary.partitions = planned_partitions(plan, &periods);
        summary.timings_ms = timings;
        return Ok(summary);
    }
    timings.insert("plan".to_string(), t.elapsed().as_millis());

    let t = Instant::now();
    let read = inputs::read(plan, &loaded, prepared)?;
    timings.insert("inputs".to_string(), t.elapsed().as_millis());
    let periods = window_periods(plan, read.earliest, &mut summary);
    summary.inputs = read.reports;

    let mut outputs: Vec<Partition> = Vec::new();
    if reject_limit_error(&summary.inputs).is_none() {
        read.prepared.warn_unclassified()?;
        let tables = compute_tables(plan, &read.prepared.metrics, &periods, &mut timings)?;
        let t = Instant::now();
        outputs = partitions::partitions(&tables.in_metric_order(plan))?;
        timings.insert("encode".to_string(), t.elapsed().as_millis());
        log_tables(&tables, &outputs);
    }

    // Rejects are written even when the run fails on them: they say what to fix.
    let t = Instant::now();
    write_rejects(plan, &loaded, &summary.inputs, run_id)?;
    if reject_limit_error(&summary.inputs).is_some() {
        // The caller reports the failure (exit 3) after printing this summary.
        summary.status = "failed_rejects".into();
        summary.timings_ms = timings;
        output::write_manifest(&plan.output, &mut summary)?;
        return Ok(summary);
    }

    partitions::publish(&plan.output, &outputs, run_id)?;
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
    output::write_manifest(&plan.output, &mut summary)?;
    Ok(summary)
}

/// `validate`: reads and checks every input; writes nothing, or only the rejects when
/// `rejects_run_id` is given.
pub fn validate(plan: &RunPlan, rejects_run_id: Option<&str>) -> Result<Vec<InputReport>> {
    let loaded = inputs::load(plan)?;
    // The metric inputs too, so schema problems they would hit show up here.
    prepare(plan, &loaded)?;
    let reports = inputs::check(plan, &loaded)?;
    if let Some(run_id) = rejects_run_id {
        write_rejects(plan, &loaded, &reports, run_id)?;
    }
    Ok(reports)
}

/// The metric inputs' plans, for the metrics of the run.
fn prepare(plan: &RunPlan, loaded: &Loaded) -> Result<Prepared> {
    let mut prepared = Prepared::new(
        &loaded.accepted,
        plan.as_of,
        plan.reporting_tz,
        plan.calendar,
        &plan.grains,
        plan.settings.clone(),
    )?;
    prepared.retain_for(&plan.metrics);
    Ok(prepared)
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

/// `--dry-run`: every partition the run would replace.
fn planned_partitions(plan: &RunPlan, periods: &[(Grain, Vec<Period>)]) -> Vec<PartitionReport> {
    let mut out = Vec::new();
    for m in &plan.metrics {
        for (g, ps) in periods {
            for p in ps {
                out.push(PartitionReport {
                    table: m.name().into(),
                    grain: g.name().into(),
                    period: p.label.clone(),
                    path: plan
                        .output
                        .join(&partitions::partition_path(m.name(), *g, &p.label))
                        .display(),
                    rows: 0,
                });
            }
        }
    }
    out
}

/// The computed tables of a run, each with its grain and metric.
struct Tables(Vec<(Grain, MetricId, DataFrame)>);

impl Tables {
    /// The tables in the pipeline's metric order, then grain: the order of the partitions.
    fn in_metric_order<'a>(&'a self, plan: &RunPlan) -> Vec<(&'static str, Grain, &'a DataFrame)> {
        let mut out = Vec::new();
        for m in &plan.metrics {
            for (g, cm, df) in &self.0 {
                if cm == m {
                    out.push((m.name(), *g, df));
                }
            }
        }
        out
    }
}

/// The tables stage, one execution: every table of every grain from the metric inputs (in
/// memory), then each grain's scorecard from those tables.
fn compute_tables(
    plan: &RunPlan,
    inputs: &MetricInputs,
    periods: &[(Grain, Vec<Period>)],
    timings: &mut BTreeMap<String, u128>,
) -> Result<Tables> {
    let t = Instant::now();
    let mut keys = Vec::new();
    let mut plans: Vec<LazyFrame> = Vec::new();
    for (g, ps) in periods {
        for m in plan.metrics.iter().filter(|m| !m.is_derived()) {
            let lf = inputs.table(*m, ps)?;
            debug!(metric = m.name(), grain = g.name(), plan = %lf.explain(true).unwrap_or_default(), "optimized plan");
            keys.push((*g, *m));
            plans.push(lf);
        }
    }
    // The streaming engine here too: it holds less than the in-memory one. (polars has no
    // streaming median or quantile, so those group-bys run in memory inside this execution.)
    let tables = collect_all(plans, Engine::Streaming)
        .map_err(anyhow::Error::from)
        .context("computing the metric tables")?;
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
            scorecards.push(inputs.scorecard(ps, &done)?);
        }
        let scorecards = collect_all(scorecards, Engine::Streaming)
            .map_err(anyhow::Error::from)
            .context("computing the scorecards")?;
        for ((g, _), df) in periods.iter().zip(scorecards) {
            computed.push((*g, MetricId::RepScorecard, df));
        }
        timings.insert("scorecard".to_string(), t.elapsed().as_millis());
    }
    Ok(Tables(computed))
}

fn log_tables(tables: &Tables, outputs: &[Partition]) {
    for (g, m, df) in &tables.0 {
        let parts = outputs
            .iter()
            .filter(|p| p.table == m.name() && p.grain == *g)
            .count();
        info!(
            metric = m.name(),
            grain = g.name(),
            rows = df.height(),
            partitions = parts,
            "table"
        );
    }
}

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
            output::write_rejects(&plan.output, input.table.name(), input.rejected()?, run_id)?;
        }
    }
    Ok(())
}
