//! Configuration: [`spec`] holds what the user wrote, [`plan`] the resolved, validated run.

pub mod plan;
pub mod spec;
