//! Thin binary: logging, flags, the plan, then `sales_metrics::run`; errors become exit codes.

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::Utc;
use clap::Parser;
use sales_metrics::cli::{Cli, Command, DataFormat, LogFormat, RunArgs};
use sales_metrics::config::plan::RunPlan;
use sales_metrics::generate;
use sales_metrics::{Error, exit_code, inputs, output, run};
use tracing_subscriber::EnvFilter;

/// Peak memory is what limits the size of a run; see Cargo.toml.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Polars optimises plans recursively; a roomy stack keeps deep plans from overflowing.
const STACK_BYTES: usize = 64 * 1024 * 1024;

fn main() {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let worker = std::thread::Builder::new()
        .stack_size(STACK_BYTES)
        .spawn(move || real_main(cli));
    let result = match worker.map(|h| h.join()) {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(anyhow::anyhow!(
            "internal error (a bug): the worker thread panicked"
        )),
        Err(e) => Err(anyhow::anyhow!("cannot start the worker thread: {e}")),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(exit_code(&err));
    }
}

fn real_main(cli: Cli) -> anyhow::Result<()> {
    let now = Utc::now();
    let run_id = format!(
        "{}-{:08x}",
        now.format("%Y%m%dT%H%M%SZ"),
        std::process::id() ^ now.timestamp_subsec_nanos()
    );
    match cli.command {
        Command::Run(args) => {
            let plan = plan(args)?;
            let summary = run::run(&plan, &run_id, now)?;
            if plan.dry_run {
                print!("{}", output::dry_run_text(&plan, &summary));
                return Ok(());
            }
            // The summary goes to stdout whatever the outcome, for Airflow's logs and XCom.
            println!("{}", serde_json::to_string(&summary)?);
            if let Some(err) = inputs::reject_limit_error(&summary.inputs) {
                return Err(err.into());
            }
        }
        Command::Validate(args) => {
            let write_rejects = args.write_rejects;
            let plan = plan(args.into())?;
            let reports = run::validate(&plan, write_rejects.then_some(run_id.as_str()))?;
            print!("{}", output::validate_text(&reports));
            if let Some(err) = inputs::reject_limit_error(&reports) {
                return Err(err.into());
            }
        }
        Command::Generate(g) => {
            if g.reps == 0 || g.deals == 0 {
                return Err(Error::config("--reps and --deals must be at least 1").into());
            }
            let generated = generate::generate(generate::GenerateOptions {
                out: g.out,
                reps: g.reps,
                deals: g.deals,
                leads: g.leads,
                activities: g.activities,
                seed: g.seed,
                format: match g.format {
                    DataFormat::Csv => generate::OutFormat::Csv,
                    DataFormat::Parquet => generate::OutFormat::Parquet,
                },
            })?;
            println!("{}", serde_json::to_string(&generated)?);
        }
    }
    Ok(())
}

fn plan(args: RunArgs) -> anyhow::Result<RunPlan> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let path = args.pipeline.clone().unwrap_or_else(default_pipeline);
    let text = fs_err::read_to_string(&path)
        .map_err(|e| Error::config(format!("cannot read the pipeline file: {e}")))?;
    let env = |k: &str| std::env::var(k).ok();
    Ok(RunPlan::from_parts(
        args,
        &path,
        &text,
        &cwd,
        &env,
        Utc::now(),
    )?)
}

/// `pipelines/sample.toml` in the working directory, else the one shipped with the source.
fn default_pipeline() -> PathBuf {
    let local = Path::new("pipelines/sample.toml");
    if local.is_file() {
        local.to_path_buf()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/sample.toml")
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
