//! A 64-bit hash of text values, for keys that are expensive to hash or compare as text.
//!
//! Used where a hash only narrows the work and the text still decides: duplicate keys (the
//! hash finds candidate rows, [`crate::inputs::scan`]) and the follow-up ordering (rows sorted by
//! the hash of the deal id, then the deal id, [`crate::metrics::lead_response_time`]).

use polars::prelude::*;

/// Each value of the text expression `e` hashed to a `UInt64` by polars' vectorised kernel;
/// nulls share one value. A fixed seed, so runs are reproducible.
pub fn text_hash(e: Expr) -> Expr {
    e.map(
        |c: Column| {
            let mut hashes = Vec::with_capacity(c.len());
            let texts = c.as_materialized_series().str()?;
            texts.vec_hash(PlSeedableRandomStateQuality::seed_from_u64(17), &mut hashes)?;
            Ok(UInt64Chunked::from_vec(c.name().clone(), hashes).into_column())
        },
        |_, f| Ok(Field::new(f.name().clone(), DataType::UInt64)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_hash_equal_and_nulls_share_a_value() -> PolarsResult<()> {
        let df = df!("k" => [Some("D1"), Some("D2"), Some("D1"), None, None])?
            .lazy()
            .select([text_hash(col("k")).alias("h")])
            .collect()?;
        let h: Vec<Option<u64>> = df.column("h")?.u64()?.iter().collect();
        assert_eq!(h[0], h[2]);
        assert_ne!(h[0], h[1]);
        assert_eq!(h[3], h[4]);
        assert!(h.iter().all(Option::is_some));
        Ok(())
    }
}
