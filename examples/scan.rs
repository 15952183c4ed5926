//! The benchmark's baseline (`scripts/bench.sh`): reads every column a pipeline maps from
//! every input and does nothing else, printing one JSON line of rows and milliseconds per
//! input. A run's time over this is what the job costs beyond reading its inputs.
//!
//!     cargo run --release --example scan -- bench-data/medium/pipeline.toml

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use chrono::Utc;
use clap::Parser;
use polars::prelude::*;
use sales_metrics::cli::RunArgs;
use sales_metrics::config::plan::RunPlan;
use sales_metrics::inputs::scan::scan_source_columns;

#[derive(Parser)]
struct Args {
    /// The pipeline file whose inputs are read.
    pipeline: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let text = fs_err::read_to_string(&args.pipeline)?;
    let cwd = std::env::current_dir()?;
    let env = |k: &str| std::env::var(k).ok();
    let run_args = RunArgs {
        pipeline: Some(args.pipeline.clone()),
        ..RunArgs::default()
    };
    let plan = RunPlan::from_parts(run_args, &args.pipeline, &text, &cwd, &env, Utc::now())?;
    let mut out = Vec::new();
    for (table, src) in &plan.inputs {
        let t = Instant::now();
        let df = scan_source_columns(src)?.collect()?;
        let rows = df.column("__rows")?.cast(&DataType::UInt64)?.u64()?.get(0);
        out.push(serde_json::json!({
            "table": table.name(),
            "rows": rows.unwrap_or(0),
            "ms": t.elapsed().as_millis() as u64,
        }));
    }
    println!("{}", serde_json::Value::Array(out));
    Ok(())
}
