//! Everything that touches storage: locations, scanning inputs, writing outputs.

pub mod location;
pub mod scan;
pub mod sink;
