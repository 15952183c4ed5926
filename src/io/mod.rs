//! Everything that touches storage: locations, scanning inputs, writing outputs.

pub mod generate;
pub mod location;
pub mod s3;
pub mod scan;
pub mod sink;
