//! Trimming and lower-casing text columns, without copying the columns that need neither.
//!
//! polars' `strip_chars` and `to_lowercase` build a new string column value by value (the
//! lower-casing allocates a `String` per value): at 5 M activities, trimming six columns and
//! lower-casing two was ~11 % of a run's CPU time. Exports are nearly always clean already, so
//! these check each batch first (a scan of the first and last byte, or of the bytes, of each
//! value) and hand the batch back untouched when nothing would change; otherwise they call
//! polars' kernel on it, so the result is always exactly polars'.

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

/// Whether `v` has no leading or trailing whitespace (`v.trim() == v`), looking at its first and
/// last byte only when they are ASCII, as they nearly always are: the check ran over every value
/// of six columns and `str::trim` was 1.7 % of a run's CPU time at 5 M activities.
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
            if all_lowercase_ascii(texts) {
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

/// Whether every value of `texts` is ASCII without capitals, nulls included (as
/// [`all_values`]). Read from the values' views, 16 bytes each: a value of up to 12 bytes lies
/// in its view and is checked as one 128-bit word; longer ones byte by byte in their buffer.
/// Against checking each value as a `&str` byte by byte: 0.75 % fewer instructions in a run on
/// 500 k activities (`scripts/instructions.sh`), where activity types and directions are checked.
fn all_lowercase_ascii(texts: &StringChunked) -> bool {
    texts.downcast_iter().all(|arr| {
        let buffers = arr.data_buffers();
        arr.views().iter().all(|v| {
            if v.is_inline() {
                // Little-endian: the length in the low 4 bytes, then the value; the bytes after
                // it are masked off.
                let bytes = (v.as_u128() >> 32) & ((1u128 << (8 * v.length)) - 1);
                lowercase_ascii_word(bytes)
            } else {
                let start = v.offset as usize;
                buffers[v.buffer_idx as usize][start..start + v.length as usize]
                    .iter()
                    .all(|b| b.is_ascii() && !b.is_ascii_uppercase())
            }
        })
    })
}

/// Whether none of the 16 bytes of `word` is a capital or above 0x7F (zero bytes pass).
fn lowercase_ascii_word(word: u128) -> bool {
    const ONES: u128 = u128::MAX / 0xFF;
    const HIGH: u128 = ONES * 0x80;
    if word & HIGH != 0 {
        return false;
    }
    // Every byte is below 0x80, so adding less than 0x80 to each cannot carry into the next;
    // a byte's high bit then says whether it was at least 'A', or at least the byte after 'Z'.
    let from_a = word + ONES * (0x80 - b'A' as u128);
    let after_z = word + ONES * (0x80 - b'[' as u128);
    from_a & !after_z & HIGH == 0
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
            for b in [
                "",
                "x",
                " y ",
                "é",
                "eleven byte",
                "a value of over twelve bytes",
            ] {
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
    fn lowercase_ascii_check_agrees_with_the_bytes() {
        let bytewise = |v: &str| v.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase());
        let mut values: Vec<String> = ["", "@", "[", "`", "{", "\u{7f}", "é", "É"]
            .iter()
            .map(|v| v.to_string())
            .collect();
        for c in 0u8..=0x7f {
            values.push((c as char).to_string());
        }
        // Every length up to past the views' 12 inline bytes, each position holding a capital.
        for len in 1..=20 {
            for at in 0..len {
                let mut v = vec![b'a'; len];
                for letter in [b'A', b'Z', b'@', b'['] {
                    v[at] = letter;
                    values.push(String::from_utf8(v.clone()).unwrap_or_default());
                }
            }
            values.push("z".repeat(len));
            values.push(format!("{}é", "a".repeat(len)));
        }
        for v in &values {
            let texts = StringChunked::new("t".into(), [Some(v.as_str()), None]);
            assert_eq!(all_lowercase_ascii(&texts), bytewise(v), "{v:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn lowercase_ascii_check_agrees_on_any_text(v in "\\PC{0,20}|[a-zA-Z@\\[`{0-9 ]{0,20}") {
            let texts = StringChunked::new("t".into(), [Some(v.as_str())]);
            let bytewise = v.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase());
            proptest::prop_assert_eq!(all_lowercase_ascii(&texts), bytewise);
        }
    }

    #[test]
    fn any_value_needing_work_gives_polars_result_for_the_batch() -> PolarsResult<()> {
        let messy = [Some(" call"), Some("email\u{a0}"), None, Some("meeting")];
        assert_eq!(
            apply(trimmed, &messy)?,
            owned(&[Some("call"), Some("email"), None, Some("meeting")])
        );
        let mixed = [Some("Call"), Some("ÉMAIL"), None, Some("meeting")];
        assert_eq!(
            apply(lowercased, &mixed)?,
            owned(&[Some("call"), Some("émail"), None, Some("meeting")])
        );
        Ok(())
    }
}
