//! Golden snapshots: every table of the sample run (as of 2024-06-30, month and quarter
//! grains), each partition as CSV text under its path, so a change in any figure shows the
//! values that moved. The snapshots were checked by hand against `data/README.md`'s worked
//! figures, which `cli::sample_run_writes_hand_checked_figures` asserts one by one. After a
//! deliberate change, `INSTA_UPDATE=always cargo test` rewrites them for review in `git diff`
//! (CI never rewrites them).

use std::path::Path;

use polars::prelude::*;

use crate::common::*;

const TABLES: [&str; 6] = [
    "quota_attainment",
    "deal_slippage",
    "lead_response_time",
    "deal_size",
    "selling_time",
    "rep_scorecard",
];

/// Every partition of `table` under `output`, in path order, as `# <grain>/<period>` followed
/// by the partition's rows as CSV (header included; floats as polars writes them: the shortest
/// text that reads back as the same double).
fn table_csv(output: &Path, table: &str) -> String {
    let mut text = String::new();
    for (rel, (bytes, _)) in snapshot(&output.join(table)) {
        let mut df = ParquetReader::new(std::io::Cursor::new(bytes))
            .finish()
            .expect("parquet");
        let mut csv = Vec::new();
        CsvWriter::new(&mut csv).finish(&mut df).expect("csv");
        let part = rel.trim_end_matches("/part-0.parquet");
        text += &format!("# {part}\n{}", String::from_utf8(csv).expect("utf-8"));
    }
    text
}

#[test]
fn every_table_of_the_sample_run() {
    let sb = Sandbox::new();
    let out = sb.run_into("golden");
    for table in TABLES {
        insta::assert_snapshot!(table, table_csv(&out, table));
    }
}
