//! The response-time follow-ups of a run with many activities, computed apart from the inputs
//! stage through temporary Parquet files, so only one part of the deals' activities is held
//! at a time (see [`StagedRequests`]).

use std::time::Instant;

use anyhow::{Context, Result};
use polars::prelude::*;
use tracing::{debug, info};

use crate::columns::Table;
use crate::config::plan::{FOLLOW_UP_PART_ROWS, Format, Origin, RunPlan};
use crate::inputs::Loaded;
use crate::inputs::prepare::{Prepared, RequestSources};
use crate::inputs::scan::read_error;
use crate::metrics::lead_response_time;

/// How many parts the follow-ups are computed in apart from the inputs stage
/// ([`StagedRequests`]), when the activities need more than one part of
/// [`RunPlan::follow_up_part_rows`] rows.
pub fn follow_up_parts(plan: &RunPlan, loaded: &Loaded) -> Result<Option<u64>> {
    let Some(acts) = loaded.inputs.iter().find(|i| i.table == Table::Activities) else {
        return Ok(None);
    };
    // Parquet files say how many rows they hold; CSV files and queries must be read to count,
    // so those are counted only when a part size is given.
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
/// them that stage would need ~7 GiB. Here the inputs stage only writes those rows, one
/// Parquet file per part of the deals (split by the deal id's hash) in a temporary directory
/// (`TMPDIR`; removed when done), and the outbound activities on a lead to one more file,
/// and collects the deal owners (with the hash that splits them likewise, so each part meets
/// only its own deals' owners). Then each part's follow-ups are computed on their own, so
/// only one part's rows are held, and the first touches in an execution of their own from that
/// file and the leads (beside the files being written they would raise the inputs stage's
/// peak again), which spares reading and checking the activities a second time. At 50 M
/// activities a run peaks near 3 GiB instead of ~7 GiB, for a few seconds more.
pub struct StagedRequests {
    src: RequestSources,
    parts: u64,
    dir: tempfile::TempDir,
    /// For the inputs stage: the deal owners (with a deals input), then one file sink per part
    /// and one for the touches.
    pub plans: Vec<LazyFrame>,
}

impl StagedRequests {
    pub fn new(src: RequestSources, parts: u64) -> Result<StagedRequests> {
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
    pub fn finish(self, results: Vec<DataFrame>, prepared: &Prepared) -> PolarsResult<DataFrame> {
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
                let part = lead_response_time::follow_ups_of_rows(rows, owners)?
                    .collect_with_engine(Engine::Streaming)?
                    .unwrap_single();
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
            .assemble(first.lazy(), follow, prepared.metrics.dims.segments.clone())?
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
