//! Command-line flags (SPEC §9): raw values only. No I/O here; `config::plan` resolves them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "sales-metrics",
    version,
    about = "Sales-efficiency metrics from CRM exports, as Hive-partitioned Parquet"
)]
pub struct Cli {
    /// Log format on stderr (filter with RUST_LOG).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compute the metrics and publish them (default pipeline: the bundled sample).
    Run(RunArgs),
    /// Read and check every input, print a report, write nothing.
    Validate(ValidateArgs),
    /// Write a realistic, deterministic dataset and a pipeline file for it.
    Generate(GenerateArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum DataFormat {
    Csv,
    Parquet,
}

#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    /// Directory to write into (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 40)]
    pub reps: u64,
    #[arg(long, default_value_t = 3_000)]
    pub deals: u64,
    #[arg(long, default_value_t = 5_000)]
    pub leads: u64,
    #[arg(long, default_value_t = 30_000)]
    pub activities: u64,
    /// The same seed and sizes always give the same files.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = DataFormat::Parquet)]
    pub format: DataFormat,
}

#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// Pipeline file (TOML). Default: pipelines/sample.toml.
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
    /// Evaluate the data as of the end of this day (YYYY-MM-DD, reporting time zone). Default: today.
    #[arg(long)]
    pub as_of: Option<String>,
    /// Grain to compute (week, month, quarter, year); repeatable. Default: the pipeline's grains.
    #[arg(long)]
    pub grain: Vec<String>,
    /// Compute only this period, e.g. 2024-03, 2024-Q1, 2024-W09, FY2025-Q1.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub period: Option<String>,
    /// First period of a backfill (a label, as for --period).
    #[arg(long, requires = "to")]
    pub from: Option<String>,
    /// Last period of a backfill (a label of the same grain as --from).
    #[arg(long, requires = "from")]
    pub to: Option<String>,
    /// Comma-separated metrics to compute. Default: the pipeline's metrics.
    #[arg(long, value_delimiter = ',')]
    pub metrics: Vec<String>,
    /// Output location (path). Default: the output uri in the pipeline file.
    #[arg(long)]
    pub output: Option<String>,
    /// Print the plan (inputs, periods, partitions to replace) and exit without writing.
    #[arg(long)]
    pub dry_run: bool,
    /// With more activities than this, the response-time follow-ups are computed apart from
    /// the other inputs, this many activities at a time: less memory, a little more time.
    /// Default: 15000000.
    #[arg(long, env = "SALES_METRICS_FOLLOW_UP_PART_ROWS", value_parser = clap::value_parser!(u64).range(1..))]
    pub follow_up_part_rows: Option<u64>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct ValidateArgs {
    /// Pipeline file (TOML). Default: pipelines/sample.toml.
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
    /// Evaluate the data as of this day. Default: today.
    #[arg(long)]
    pub as_of: Option<String>,
    /// Also write the rejected rows under _rejects/ in the output location (nothing else is
    /// written).
    #[arg(long)]
    pub write_rejects: bool,
    /// Output location for --write-rejects. Default: the output uri in the pipeline file.
    #[arg(long)]
    pub output: Option<String>,
}

impl From<ValidateArgs> for RunArgs {
    fn from(v: ValidateArgs) -> RunArgs {
        RunArgs {
            pipeline: v.pipeline,
            as_of: v.as_of,
            output: v.output,
            ..RunArgs::default()
        }
    }
}
