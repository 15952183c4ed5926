//! `sales-metrics`: sales-efficiency metrics from CRM exports, as Hive-partitioned Parquet.
//!
//! # Layout
//! Each module depends only on those listed before it (no import cycles).
//! - [`error`]: failures with exit codes (SPEC §8). [`columns`]: every column name and the
//!   canonical input schemas. [`calendar`]: grains, fiscal years, period labels (pure dates).
//! - [`cli`]: raw flags, no I/O.
//! - [`storage`]: where inputs and outputs live ([`storage::Location`]: local paths and S3).
//! - [`metrics`]: one module per metric (formula, plan, columns, tests) and the roll-ups they
//!   share; lazy plans only.
//! - [`config`]: the pipeline file ([`config::spec`]) and the resolved
//!   [`config::plan::RunPlan`].
//! - [`exec`]: running several plans in one polars execution.
//! - [`text_hash`]: 64-bit hashes of text keys.
//! - [`inputs`]: scanning, typing, reject reasons, the metric inputs as of the as-of date, and
//!   the follow-up spill of large runs.
//! - [`output`]: partitions, atomic publishing, rejects and the manifest.
//! - [`run`]: the stages of a run, from reading the inputs to the manifest.
//! - [`generate`]: a deterministic generated dataset for tests and the benchmark.

pub mod calendar;
pub mod cli;
pub mod columns;
pub mod config;
pub mod error;
pub mod exec;
pub mod generate;
pub mod inputs;
pub mod metrics;
pub mod output;
pub mod run;
pub mod storage;
#[cfg(test)]
pub mod testutil;
pub mod text_hash;

pub use error::{Error, exit_code};
