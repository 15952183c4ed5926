#![allow(clippy::unwrap_used, clippy::disallowed_methods)]
//! One integration-test binary (`autotests = false`): every module here runs the real
//! `sales-metrics` binary on files and reads the Parquet it wrote back.

mod bad_input;
mod cli;
mod common;
mod generated;
mod golden;
mod props;
mod real;
mod s3;
