//! Executing plans: several lazy plans in one polars execution.

use polars::prelude::*;

/// Collects several plans in one execution, so polars shares their common sub-plans (input
/// scans, parsing, the as-of preparation) instead of redoing them for every table.
pub fn collect_all(lfs: Vec<LazyFrame>, engine: Engine) -> PolarsResult<Vec<DataFrame>> {
    let Some(first) = lfs.first() else {
        return Ok(Vec::new());
    };
    let opt = first.get_current_optimizations();
    LazyFrame::collect_all_with_engine(
        lfs.into_iter().map(|lf| lf.logical_plan).collect(),
        engine,
        opt,
    )
}

/// Plans gathered for one execution ([`collect_all`]), each group under the [`Slot`] that
/// [`Batch::add`] returned, so results are taken back by name rather than by position.
#[derive(Default)]
pub struct Batch {
    plans: Vec<LazyFrame>,
}

/// Where a group of plans lies in a [`Batch`].
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    start: usize,
    len: usize,
}

impl Batch {
    pub fn add(&mut self, plans: impl IntoIterator<Item = LazyFrame>) -> Slot {
        let start = self.plans.len();
        self.plans.extend(plans);
        Slot {
            start,
            len: self.plans.len() - start,
        }
    }

    /// Runs every plan in one execution.
    pub fn collect(self, engine: Engine) -> PolarsResult<Collected> {
        Ok(Collected(
            collect_all(self.plans, engine)?
                .into_iter()
                .map(Some)
                .collect(),
        ))
    }
}

/// The results of a [`Batch`].
pub struct Collected(Vec<Option<DataFrame>>);

impl Collected {
    /// The results of one slot's plans, in the order they were added (each slot once).
    pub fn take(&mut self, slot: Slot) -> Vec<DataFrame> {
        self.0[slot.start..slot.start + slot.len]
            .iter_mut()
            .filter_map(Option::take)
            .collect()
    }
}
