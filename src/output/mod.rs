//! Writing results: each table's partitions ([`partitions`]: encoding, atomic publish), the
//! rejected input rows, and the run manifest, through a [`Location`] (local or S3).

pub mod partitions;

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::{DateTime, NaiveDate, Utc};
use polars::prelude::*;
use serde::Serialize;

use crate::config::plan::RunPlan;
use crate::inputs::InputReport;
use crate::storage::Location;

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

impl RunSummary {
    /// The summary of a run that has only been planned.
    pub fn new(plan: &RunPlan, run_id: &str, started_at: DateTime<Utc>) -> RunSummary {
        RunSummary {
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
        }
    }
}

/// Writes the manifest, `_runs/<run_id>.json`, and records its location in `summary`.
pub fn write_manifest(root: &Location, summary: &mut RunSummary) -> Result<()> {
    let rel = format!("_runs/{}.json", summary.run_id);
    summary.manifest = Some(root.join(&rel).display());
    let json = serde_json::to_vec_pretty(summary)?;
    root.put_atomic(&rel, &json, &summary.run_id)?;
    Ok(())
}

/// Writes one input's rejected rows to `_rejects/<table>/run=<run_id>/part-0.parquet`.
pub fn write_rejects(
    root: &Location,
    table: &str,
    rejected: LazyFrame,
    run_id: &str,
) -> Result<()> {
    let mut df = rejected.collect()?;
    let bytes = partitions::parquet_bytes(&mut df)?;
    let rel = format!("_rejects/{table}/run={run_id}/part-0.parquet");
    root.put_atomic(&rel, &bytes, run_id)?;
    Ok(())
}

/// `run --dry-run`'s report: the inputs, the periods and every partition the run would replace.
pub fn dry_run_text(plan: &RunPlan, summary: &RunSummary) -> String {
    let mut out = String::from("dry run: nothing written. inputs:\n");
    for (t, src) in &plan.inputs {
        out += &format!("  {t}: {}\n", src.uri());
    }
    out += &format!("periods: {:?}\n", summary.periods);
    out += "partitions that would be replaced:\n";
    for p in &summary.partitions {
        out += &format!("  {}\n", p.path);
    }
    out
}

/// `validate`'s report: rows read, accepted and rejected per input, and the reasons.
pub fn validate_text(reports: &[InputReport]) -> String {
    let mut out = format!(
        "{:<18} {:>10} {:>10} {:>10}  reasons\n",
        "table", "read", "accepted", "rejected"
    );
    for r in reports {
        let reasons: Vec<String> = r
            .rejected_by_reason
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out += &format!(
            "{:<18} {:>10} {:>10} {:>10}  {}\n",
            r.table,
            r.rows_read,
            r.rows_accepted,
            r.rows_rejected,
            reasons.join(" ")
        );
    }
    out
}
