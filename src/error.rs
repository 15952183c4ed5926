//! Failures a caller branches on, each mapped to the exit code SPEC §8 gives it.
//!
//! Everything else travels as `anyhow::Error` with context; `main` prints the chain once
//! and asks [`exit_code`] which code to use.

use thiserror::Error;

/// Errors with a fixed meaning for the operator: fix the config, fix the data, or retry.
#[derive(Debug, Error)]
pub enum Error {
    /// Bad flags, pipeline file or configuration: a retry will not help (exit 2).
    #[error("{0}")]
    Config(String),
    /// An input does not have the columns the job needs (exit 2).
    #[error(
        "{table}: canonical column `{canonical}` is mapped to `{source_column}`, which is not in {uri}; columns there: {available}"
    )]
    InputSchema {
        table: String,
        canonical: String,
        source_column: String,
        uri: String,
        available: String,
    },
    /// An input file or glob that matches nothing (exit 2).
    #[error("{table}: no input file matches `{uri}`; check its `uri` in the pipeline file")]
    MissingInput { table: String, uri: String },
    /// Too many rejected rows in one table: nothing was published (exit 3).
    #[error(
        "{table}: {rejected} of {read} rows rejected ({pct:.2} %), above max_reject_fraction {max} ({reasons}); nothing was published. Fix the rows listed under _rejects/{table}/ or raise max_reject_fraction"
    )]
    TooManyRejects {
        table: String,
        rejected: u64,
        read: u64,
        pct: f64,
        max: f64,
        reasons: String,
    },
    /// Reading or writing storage failed; a retry may fix it (exit 1).
    #[error("storage: {0}")]
    Storage(String),
}

impl Error {
    pub fn config(msg: impl Into<String>) -> Self {
        Error::Config(msg.into())
    }
}

/// Exit code for an error chain: the first [`enum@Error`] in it decides, anything else is 1.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<Error>() {
            return match e {
                Error::Config(_) | Error::InputSchema { .. } | Error::MissingInput { .. } => 2,
                Error::TooManyRejects { .. } => 3,
                Error::Storage(_) => 1,
            };
        }
    }
    1
}
