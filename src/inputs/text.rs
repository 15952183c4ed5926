//! Trimming and lower-casing text columns, without copying the columns that need neither.
//!
//! polars' `strip_chars` and `to_lowercase` build a new string column value by value (the
//! lower-casing allocates a `String` per value), a large part of a run's work when every
//! key and type column goes through them. Exports are nearly always clean already, so these
//! check each batch first and hand it back untouched when nothing would change; otherwise
//! they call polars' kernel on it, so the result is always exactly polars'.

use polars::prelude::*;

/// The text expression `e` with leading and trailing whitespace removed (as `str::trim`, which
/// is what polars' `strip_chars(NULL)` applies).
pub fn trimmed(e: Expr) -> Expr {
    e.map(
        |c: Column| {
            let texts = c.as_materialized_series().str()?;
            if all_values(texts, untrimmed) {
                return Ok(c);
            }
            let none = Column::full_null(PlSmallStr::EMPTY, 1, &DataType::Null);
            Ok(texts.strip_chars(&none)?.into_column())
        },
        |_, f| Ok(f.clone()),
    )
}

/// Whether `v` has no leading or trailing whitespace (`v.trim() == v`), looking at its first
/// and last byte only when they are ASCII, as they nearly always are. Kept over `str::trim`,
/// which cost 3.4 % of a run's instructions on 500 k activities (`scripts/instructions.sh`).
fn untrimmed(v: &str) -> bool {
    // `char::is_whitespace` in ASCII: tab, line feed, vertical tab, form feed, carriage return
    // and space.
    let white = |b: u8| matches!(b, b'\t'..=b'\r' | b' ');
    match v.as_bytes() {
        [] => true,
        [first, .., last] | [first @ last] if first.is_ascii() && last.is_ascii() => {
            !white(*first) && !white(*last)
        }
        _ => v.trim().len() == v.len(),
    }
}

/// The text expression `e` lower-cased (as polars' `to_lowercase`).
pub fn lowercased(e: Expr) -> Expr {
    e.map(
        |c: Column| {
            let texts = c.as_materialized_series().str()?;
            // ASCII without capitals is the only text lower-casing leaves unchanged for sure.
            let lower_ascii = |v: &str| v.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase());
            if all_values(texts, lower_ascii) {
                return Ok(c);
            }
            Ok(texts.to_lowercase().into_column())
        },
        |_, f| Ok(f.clone()),
    )
}

/// Whether `keep` holds for every value of `texts`, nulls included (a null slot's bytes are
/// whatever the array holds there; checking them too can only send a batch the slow way).
fn all_values(texts: &StringChunked, keep: impl Fn(&str) -> bool) -> bool {
    texts
        .downcast_iter()
        .all(|arr| arr.values_iter().all(&keep))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(f: fn(Expr) -> Expr, values: &[Option<&str>]) -> PolarsResult<Vec<Option<String>>> {
        let df = df!("t" => values)?.lazy().select([f(col("t"))]).collect()?;
        Ok(df
            .column("t")?
            .str()?
            .iter()
            .map(|v| v.map(str::to_string))
            .collect())
    }

    fn owned(values: &[Option<&str>]) -> Vec<Option<String>> {
        values.iter().map(|v| v.map(str::to_string)).collect()
    }

    #[test]
    fn clean_text_comes_back_as_it_was() -> PolarsResult<()> {
        let clean = [
            Some("call"),
            None,
            Some("a long activity id 0001"),
            Some(""),
        ];
        assert_eq!(apply(trimmed, &clean)?, owned(&clean));
        assert_eq!(apply(lowercased, &clean)?, owned(&clean));
        Ok(())
    }

    #[test]
    fn untrimmed_agrees_with_str_trim() {
        let ends = [
            "", "a", "\t", "\n", "\u{b}", "\u{c}", "\r", " ", "\u{1c}", "\u{85}", "\u{a0}", "é",
            "\u{3000}",
        ];
        for a in ends {
            for b in ["", "x", " y ", "é", "a value of over twelve bytes"] {
                for c in ends {
                    let v = format!("{a}{b}{c}");
                    assert_eq!(untrimmed(&v), v.trim() == v, "{v:?}");
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn untrimmed_agrees_with_str_trim_on_any_text(v in "\\PC{0,20}|[ \t\u{b}-\r\u{1c}a\u{a0}é]{0,20}") {
            proptest::prop_assert_eq!(untrimmed(&v), v.trim() == v);
        }
    }

    #[test]
    fn any_value_needing_work_gives_polars_result_for_the_batch() -> PolarsResult<()> {
        let messy = [Some(" call"), Some("email\u{a0}"), None, Some("meeting\t")];
        assert_eq!(
            apply(trimmed, &messy)?,
            owned(&[Some("call"), Some("email"), None, Some("meeting")])
        );
        let mixed = [Some("Call"), Some("ÉMAIL"), None, Some("meeting")];
        assert_eq!(
            apply(lowercased, &mixed)?,
            owned(&[Some("call"), Some("émail"), None, Some("meeting")])
        );
        // Non-ASCII lower case is lower-cased by polars too (and comes back the same).
        assert_eq!(
            apply(lowercased, &[Some("émail")])?,
            owned(&[Some("émail")])
        );
        Ok(())
    }
}
