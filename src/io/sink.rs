//! Turning collected tables into Parquet objects at their Hive paths (SPEC §7).
//!
//! `<output>/<table>/grain=<grain>/period=<label>/part-0.parquet`: one object per period, with
//! `grain` and `period` in the path only. Writing goes through [`Location::put_all_atomic`].

use anyhow::{Context, Result};

use polars::prelude::*;
use rayon::prelude::*;

use crate::calendar::Grain;
use crate::columns::PERIOD;
use crate::io::location::Location;

/// One partition ready to publish.
pub struct Partition {
    pub table: String,
    pub grain: Grain,
    pub period: String,
    pub rows: usize,
    pub bytes: Vec<u8>,
}

impl Partition {
    /// Path below the output root.
    pub fn rel_path(&self) -> String {
        partition_path(&self.table, self.grain, &self.period)
    }
}

pub fn partition_path(table: &str, grain: Grain, period: &str) -> String {
    format!("{table}/grain={grain}/period={period}/part-0.parquet")
}

/// Splits finished tables (each with a `period` column) into one Parquet object per period,
/// table by table in the order given and each table's periods in order (every period gets an
/// object: the company row always exists).
///
/// Every table's periods are encoded in one parallel pass (one period at a time, encoding took
/// 0.26 s of a 5 M-activity run's 5 s, on one core).
pub fn partitions(tables: &[(&str, Grain, &DataFrame)]) -> Result<Vec<Partition>> {
    let mut split = Vec::new();
    for (table, grain, df) in tables {
        let parts = anyhow::Context::context(
            df.partition_by_stable([PERIOD], true),
            "splitting by period",
        )?;
        split.extend(parts.into_iter().map(|part| (*table, *grain, part)));
    }
    split
        .into_par_iter()
        .map(|(table, grain, part)| {
            let period = part
                .column(PERIOD)?
                .str()?
                .get(0)
                .unwrap_or_default()
                .to_string();
            let mut part = part.drop(PERIOD)?;
            let rows = part.height();
            // Columns one after another: the periods are the parallel work here, and polars'
            // column-parallel encoding inside this pool blocked each worker on its own pool
            // (medium: 0.22-0.25 s -> 0.14-0.19 s for the 192 partitions).
            let bytes = parquet_bytes(&mut part, false)?;
            Ok(Partition {
                table: table.to_string(),
                grain,
                period,
                rows,
                bytes,
            })
        })
        .collect()
}

/// Encodes a frame as one Parquet file in memory, its columns in parallel if `parallel`.
pub fn parquet_bytes(df: &mut DataFrame, parallel: bool) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let written = ParquetWriter::new(&mut buf)
        .set_parallel(parallel)
        .with_statistics(StatisticsOptions::default())
        .finish(df);
    anyhow::Context::context(written, "encoding parquet")?;
    Ok(buf)
}

/// Publishes the partitions, several at once ([`Location::put_all_atomic`]).
pub fn publish(root: &Location, parts: &[Partition], run_id: &str) -> Result<()> {
    let files: Vec<(String, &[u8])> = parts
        .iter()
        .map(|p| (p.rel_path(), p.bytes.as_slice()))
        .collect();
    root.put_all_atomic(&files, run_id)
        .with_context(|| format!("writing the partitions under {}", root.display()))
}
