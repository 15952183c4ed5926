//! `sales-metrics`: sales-efficiency metrics from CRM exports, as Hive-partitioned Parquet.
//!
//! # Layout
//! - [`cli`]: raw flags. [`config`]: the pipeline file ([`config::spec`]) and the resolved
//!   [`config::plan::RunPlan`].
//! - [`calendar`]: grains, fiscal years, period labels (pure dates, no Polars).
//! - [`columns`]: every column name and the canonical input schemas.
//! - [`io`]: locations, scanning inputs (typing, reject reasons), writing Parquet.
//! - [`metrics`]: one module per metric, plus periods, team membership and level roll-ups.
//! - [`run`]: the stages of a run, from scan to manifest.
//! - [`text_hash`]: 64-bit hashes of text keys, where hashing or comparing text costs.
//! - [`text_norm`]: trimming and lower-casing text, skipping columns already clean.
//! - [`error`]: failures with exit codes (SPEC §8).

pub mod calendar;
pub mod cli;
pub mod columns;
pub mod config;
pub mod error;
pub mod io;
pub mod metrics;
pub mod run;
pub mod text_hash;
pub mod text_norm;

pub use error::{Error, exit_code};
